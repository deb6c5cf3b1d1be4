"""An idle audit imports only what it uses: heavy modules stay out of the start-up path.

Each run is the real `python -X importtime -m tcptune audit --json` in an empty network
namespace (`unshare -n`); the modules it loaded are read from -X importtime's report on
stderr, less those the bare interpreter loads itself (`-c pass`). The interpreter runs
without `site` (-S), with this checkout and the directory holding click on PYTHONPATH, as
in a clean venv: a .pth file of the test machine's Python (certifi's imports tempfile and
importlib.resources) would otherwise hide what tcptune imports.
The time it takes is measured by bench/ (the idle scenario), never asserted here.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import click
import pytest

from tests.lab import require_netns_capability, skip_or_fail

REPO = Path(__file__).resolve().parents[2]
DEPENDENCIES = Path(click.__file__).resolve().parents[1]  # site-packages, or a venv's

# Modules only some commands or some data need. uuid, platform and urllib.parse are not
# listed: click.types imports the first two, pathlib the third, so every command loads them.
HEAVY = (
    "tempfile",
    "shutil",
    "zipfile",
    "importlib.resources",
    "subprocess",
    "tomllib",
    "argparse",
    "logging",
    "email",
    "http",
    "xml",
    "asyncio",
    # socket converts its constants to enums (~3 ms): the netlink dump and the BPF readers
    # use _socket, the same socket type and functions beneath
    "socket",
    "selectors",
    "signal",  # its enums too: the fork of the descriptor walk (inspect/fdwalk.py) uses _signal
    "mmap",  # only when that walk goes ahead
    "tabulate",  # text tables only
    "psutil",  # only to describe the owners of sockets the advice names
    "prometheus_client",  # --format prometheus
    "jsonschema",
    # apply, rollback, verify, history (apply/atomicfile.py, the one atomic writer, is shared)
    "tcptune.apply.plan",
    "tcptune.apply.applier",
    "tcptune.apply.statestore",
    "tcptune.apply.sysctld",
    "tcptune.apply.writer",
    "tcptune.profiles",  # only with --profile
    "tcptune.reference",  # explain
    "tcptune.output.metrics",
    "tcptune.output.html",
)


def imported(*args: str) -> set[str]:
    """Return the modules ``python -X importtime ARGS`` loaded, in an empty network namespace."""
    done = subprocess.run(
        ["unshare", "-n", sys.executable, "-S", "-X", "importtime", *args],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": os.pathsep.join((str(REPO), str(DEPENDENCIES)))},
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode in (0, 1), done.stderr  # 1: a WARNING finding in this namespace
    return {
        line.rsplit("|", 1)[1].strip()
        for line in done.stderr.splitlines()
        if line.startswith("import time:") and not line.endswith("imported package")
    }


def heavy(modules: set[str]) -> list[str]:
    """Return the modules of ``modules`` that are HEAVY or inside a HEAVY package."""
    return sorted(name for name in modules if name in HEAVY or name.startswith(HEAVY_PREFIXES))


HEAVY_PREFIXES = tuple(f"{name}." for name in HEAVY)


# Without socket options the BPF seams for owners are built (inspect/bpf/seams.py, light);
# no program is built, loaded or read, so neither the inventory nor the loader is imported.
NOT_WITHOUT_OPTIONS = (
    "tcptune.model.sockopts",
    "tcptune.inspect.sockopts",
    "tcptune.inspect.bpf.cache",
    "tcptune.inspect.bpf.loader",
    "tcptune.inspect.bpf.syscall",
    "tcptune.inspect.bpf.btf",
    "ctypes",
    "hashlib",
)


@pytest.mark.kernel
@pytest.mark.parametrize("options", [(), ("--no-options",)], ids=["options", "no-options"])
def test_an_idle_audit_imports_no_heavy_module(options: tuple[str, ...]) -> None:
    reason = require_netns_capability()
    if reason is not None:
        skip_or_fail(reason)
    bare = imported("-c", "pass")
    audit = imported("-m", "tcptune", "audit", "--json", *options)
    assert "tcptune.run.audit" in audit and "json" in audit | bare  # the parsing works
    assert heavy(audit - bare) == []
    if options:
        assert sorted(audit & set(NOT_WITHOUT_OPTIONS)) == []
