#!/bin/sh
# Install tcptune from this checkout for every user of the machine, where the system
# Python refuses `pip install` (PEP 668: Debian 12, Ubuntu 23.04 and later):
#
#   /opt/tcptune                     a virtual environment holding tcptune and its dependencies
#   /usr/local/bin/tcptune           a link to its console script (on sudo's secure_path)
#   /usr/local/share/man/man1/tcptune.1                      man tcptune
#   /usr/local/share/bash-completion/completions/tcptune     bash completion
#   /usr/local/share/zsh/site-functions/_tcptune             zsh completion
#   /usr/local/share/fish/vendor_completions.d/tcptune.fish  fish completion
#   /usr/local/lib/systemd/system/tcptune-metrics.{service,timer}  installed, not enabled
#
# Usage (as root):
#   sh scripts/install.sh               install, or upgrade in place (safe to run again)
#   sh scripts/install.sh --uninstall   remove all of the above (keeps /var/lib/tcptune
#                                       and any /etc/sysctl.d/90-tcptune.conf)
#
# Environment:
#   TCPTUNE_ROOT      install under this directory as if it were / (tests, staging); the
#                     links are relative, so ROOT/usr/local/bin/tcptune runs in place
#   TCPTUNE_PYTHON    the Python 3.11+ that makes the venv (default: python3)
#   TCPTUNE_VENV      the venv (default: /opt/tcptune)
#   TCPTUNE_BIN_DIR   where the link goes (default: /usr/local/bin)
#   TCPTUNE_PIP_ARGS  extra pip arguments, e.g. "--index-url URL" or
#                     "--no-index --find-links DIR" on a machine without an index
set -eu

ROOT=${TCPTUNE_ROOT:-}
PYTHON=${TCPTUNE_PYTHON:-python3}
VENV=${TCPTUNE_VENV:-/opt/tcptune}
BIN_DIR=${TCPTUNE_BIN_DIR:-/usr/local/bin}
PIP_ARGS=${TCPTUNE_PIP_ARGS:-}
SHARE=/usr/local/share
MAN_PAGE=$SHARE/man/man1/tcptune.1
BASH_COMPLETION=$SHARE/bash-completion/completions/tcptune
ZSH_COMPLETION=$SHARE/zsh/site-functions/_tcptune
FISH_COMPLETION=$SHARE/fish/vendor_completions.d/tcptune.fish
UNIT_DIR=/usr/local/lib/systemd/system  # systemd's unit path for the local administrator
UNITS="tcptune-metrics.service tcptune-metrics.timer"
MARKER=.installed-by-tcptune  # in the venv: only a venv carrying it is ever removed
SOURCE=$(cd "$(dirname "$0")/.." && pwd)

say() { printf 'install.sh: %s\n' "$*"; }
die() {
    printf 'install.sh: %s\n' "$*" >&2
    exit 1
}

if [ -z "$ROOT" ] && [ "$(id -u)" -ne 0 ]; then
    die "run as root (sudo sh scripts/install.sh), or set TCPTUNE_ROOT to install elsewhere"
fi
case "$VENV$BIN_DIR" in
    *[!A-Za-z0-9/._-]*) die "TCPTUNE_VENV and TCPTUNE_BIN_DIR must be plain absolute paths" ;;
esac
case "$VENV" in /?*) ;; *) die "TCPTUNE_VENV must be an absolute path, got '$VENV'" ;; esac
case "$BIN_DIR" in /?*) ;; *) die "TCPTUNE_BIN_DIR must be an absolute path" ;; esac

remove_file() { # remove ROOT/$1 if it is a file or link, and say so
    if [ -f "$ROOT$1" ] || [ -L "$ROOT$1" ]; then
        rm -f "$ROOT$1"
        say "removed $ROOT$1"
    fi
}

uninstall() {
    link="$ROOT$BIN_DIR/tcptune"
    if [ -L "$link" ]; then
        case "$(readlink "$link")" in
            *"$VENV/bin/tcptune") remove_file "$BIN_DIR/tcptune" ;;
            *) say "left $link alone: it does not point into $VENV" ;;
        esac
    elif [ -e "$link" ]; then
        say "left $link alone: not a link this script made"
    fi
    for path in "$MAN_PAGE" "$BASH_COMPLETION" "$ZSH_COMPLETION" "$FISH_COMPLETION"; do
        remove_file "$path"
    done
    for unit in $UNITS; do
        if grep -qs '^# Installed by tcptune scripts/install.sh' "$ROOT$UNIT_DIR/$unit"; then
            remove_file "$UNIT_DIR/$unit"
        fi
    done
    if [ -f "$ROOT$VENV/$MARKER" ]; then
        rm -rf "$ROOT$VENV"
        say "removed $ROOT$VENV"
    elif [ -e "$ROOT$VENV" ]; then
        say "left $ROOT$VENV alone: not made by this script"
    fi
    say "kept /var/lib/tcptune (undo records, history) and /etc/sysctl.d/90-tcptune.conf if any"
}

if [ "${1:-}" = "--uninstall" ]; then
    uninstall
    exit 0
elif [ $# -gt 0 ]; then
    die "usage: sh scripts/install.sh [--uninstall]"
fi

# --- the venv --------------------------------------------------------------------------
command -v "$PYTHON" >/dev/null 2>&1 || die "no $PYTHON: install Python 3.11 or later"
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' ||
    die "tcptune needs Python 3.11 or later; $PYTHON is $("$PYTHON" -V 2>&1)"
venv_python="$ROOT$VENV/bin/python"
if [ -e "$ROOT$VENV" ] && [ ! -f "$ROOT$VENV/$MARKER" ]; then
    die "$ROOT$VENV exists and was not made by this script: move it, or set TCPTUNE_VENV"
fi
if ! "$venv_python" -m pip --version >/dev/null 2>&1; then
    if ! "$PYTHON" -m venv --clear "$ROOT$VENV" >/dev/null 2>&1; then
        # Debian and Ubuntu ship venv's pip bootstrap separately, in python3-venv.
        if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" -eq 0 ]; then
            say "installing python3-venv"
            apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends python3-venv >/dev/null
        fi
        "$PYTHON" -m venv --clear "$ROOT$VENV" ||
            die "cannot make a venv with $PYTHON (on Debian/Ubuntu: apt-get install python3-venv)"
    fi
    echo "made by $SOURCE/scripts/install.sh; removed by its --uninstall" >"$ROOT$VENV/$MARKER"
    say "made the virtual environment $ROOT$VENV"
fi

# --- tcptune into it, built from a copy (a build writes build/ and *.egg-info) -----------
work=$(mktemp -d "${TMPDIR:-/tmp}/tcptune-install.XXXXXX")
trap 'rm -rf "$work"' EXIT
tar -C "$SOURCE" --exclude=./.git --exclude=./build --exclude='*.egg-info' \
    --exclude='__pycache__' -cf - . | tar -C "$work" -xf -
# shellcheck disable=SC2086  # PIP_ARGS is a list of words
"$venv_python" -m pip install --disable-pip-version-check -q --upgrade $PIP_ARGS "$work"

# --- the link, the man page, the completions and the units ------------------------------
relative() { # print the path of $1 relative to the directory $2 (both absolute)
    "$venv_python" -c 'import os, sys; print(os.path.relpath(sys.argv[1], sys.argv[2]))' "$1" "$2"
}
mkdir -p "$ROOT$BIN_DIR"
if [ -e "$ROOT$BIN_DIR/tcptune" ] && [ ! -L "$ROOT$BIN_DIR/tcptune" ]; then
    die "$ROOT$BIN_DIR/tcptune exists and is not a link: remove it first"
fi
ln -sfn "$(relative "$VENV/bin/tcptune" "$BIN_DIR")" "$ROOT$BIN_DIR/tcptune"
tcptune="$ROOT$VENV/bin/tcptune"

man_source=$("$venv_python" -c 'import pathlib, tcptune
print(pathlib.Path(tcptune.__file__).parent / "man" / "tcptune.1")')
if [ -f "$man_source" ]; then
    install -D -m 0644 "$man_source" "$ROOT$MAN_PAGE"
fi
for shell in bash zsh fish; do
    case $shell in
        bash) target=$BASH_COMPLETION ;;
        zsh) target=$ZSH_COMPLETION ;;
        fish) target=$FISH_COMPLETION ;;
    esac
    mkdir -p "$(dirname "$ROOT$target")"
    _TCPTUNE_COMPLETE=${shell}_source "$tcptune" >"$ROOT$target.new"
    mv -f "$ROOT$target.new" "$ROOT$target"
done

mkdir -p "$ROOT$UNIT_DIR"
for unit in $UNITS; do
    {
        echo "# Installed by tcptune scripts/install.sh from contrib/systemd/$unit"
        sed "s|^ExecStart=/usr/local/bin/tcptune |ExecStart=$BIN_DIR/tcptune |" \
            "$SOURCE/contrib/systemd/$unit"
    } >"$ROOT$UNIT_DIR/$unit.new"
    chmod 0644 "$ROOT$UNIT_DIR/$unit.new"
    mv -f "$ROOT$UNIT_DIR/$unit.new" "$ROOT$UNIT_DIR/$unit"
done
if [ -z "$ROOT" ] && [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
    systemctl daemon-reload || true
fi

say "installed $("$tcptune" --version) in $ROOT$VENV; $ROOT$BIN_DIR/tcptune links to it"
