#!/bin/sh
# Install the Debian tools the real-kernel tests and the benchmark call, if missing:
# ip (iproute2), sysctl (procps), unshare/setpriv/nsenter (util-linux), netstat (net-tools).
set -eu
missing=""
command -v ip >/dev/null 2>&1 || missing="$missing iproute2"
command -v sysctl >/dev/null 2>&1 || missing="$missing procps"
command -v setpriv >/dev/null 2>&1 || missing="$missing util-linux"
command -v netstat >/dev/null 2>&1 || missing="$missing net-tools"
if [ -n "$missing" ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "install-deps: need root to install:$missing" >&2
        exit 1
    fi
    apt-get update -q
    # shellcheck disable=SC2086
    apt-get install -y -q --no-install-recommends $missing
fi
