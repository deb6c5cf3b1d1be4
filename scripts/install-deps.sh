#!/bin/sh
# Install the Debian tools the real-kernel tests and the benchmark call, if missing:
# ip (iproute2), sysctl (procps), unshare/setpriv/nsenter (util-linux), netstat (net-tools),
# strace (the fault-injection sweep: strace -e inject=SYSCALL:error=EIO:when=N),
# and the tools the contrib tests check artefacts with: promtool (prometheus: metrics,
# alert rules, dashboard queries), tmux (the watch screen), chromium (the HTML report),
# systemd-analyze (systemd: verifies the shipped units), sudo (its secure_path must find
# the link scripts/install.sh makes), redis-server (issue 12's acceptance check: its own
# TCP_KEEPIDLE is read from the kernel; tests/inspect/test_redis_kernel.py).
set -eu
missing=""
command -v ip >/dev/null 2>&1 || missing="$missing iproute2"
command -v sysctl >/dev/null 2>&1 || missing="$missing procps"
command -v setpriv >/dev/null 2>&1 || missing="$missing util-linux"
command -v netstat >/dev/null 2>&1 || missing="$missing net-tools"
command -v promtool >/dev/null 2>&1 || missing="$missing prometheus"
command -v tmux >/dev/null 2>&1 || missing="$missing tmux"
command -v chromium >/dev/null 2>&1 || missing="$missing chromium"
command -v strace >/dev/null 2>&1 || missing="$missing strace"
command -v systemd-analyze >/dev/null 2>&1 || missing="$missing systemd"
command -v sudo >/dev/null 2>&1 || missing="$missing sudo"
command -v redis-server >/dev/null 2>&1 || missing="$missing redis-server"
if [ -n "$missing" ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "install-deps: need root to install:$missing" >&2
        exit 1
    fi
    # The packages are tools for the tests, not services for this machine: prometheus
    # and redis-server would start their daemons from postinst. A policy-rc.d that
    # answers 101 ("action forbidden", Debian's invoke-rc.d policy interface) keeps
    # every service stopped while they install; it is removed again afterwards.
    policy=/usr/sbin/policy-rc.d
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy"
        chmod 0755 "$policy"
        trap 'rm -f "$policy"' EXIT
        trap 'exit 1' INT TERM
    fi
    apt-get update -q
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing
fi
