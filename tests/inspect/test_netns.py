"""--netns and --pid: every reading comes from the target namespace, errors are clear."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tcptune.exitcodes import ExitStatus, PermissionDeniedError, UnavailableError
from tcptune.inspect import netns
from tests.lab import require_netns_capability, skip_or_fail
from tests.lab.privileges import UNPRIVILEGED, run_tcptune


@pytest.fixture
def named_netns() -> Iterator[str]:
    """Create a throwaway `ip netns` namespace with a recognisable tcp_fin_timeout."""
    reason = require_netns_capability()
    if reason is not None:
        skip_or_fail(reason)
    name = f"tcptune-test-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(
            [
                "ip",
                "netns",
                "exec",
                name,
                "sh",
                "-c",
                "echo 23 > /proc/sys/net/ipv4/tcp_fin_timeout && ip link set lo up",
            ],
            check=True,
        )
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


@pytest.mark.kernel
def test_audit_reads_the_named_namespace(named_netns: str) -> None:
    result = run_tcptune("--netns", named_netns, "audit", "--json")
    document = json.loads(result.stdout)
    assert document["context"]["netns"] == f"netns {named_netns}"
    assert document["context"]["initial_netns"] is False
    assert document["sysctls"]["net.ipv4.tcp_fin_timeout"]["value"] == 23
    assert document["sockets"]["total"] == 0
    text = run_tcptune("--netns", named_netns, "audit").stdout
    assert f"netns {named_netns}" in text.splitlines()[1]
    plan = json.loads(
        run_tcptune("--netns", named_netns, "apply", "server-profile", "--json").stdout
    )
    assert plan["context"]["netns"] == f"netns {named_netns}"
    fin = next(item for item in plan["items"] if item["name"] == "net.ipv4.tcp_fin_timeout")
    assert (fin["current"], fin["desired"], fin["action"]) == (23, 30, "change")


@pytest.mark.kernel
def test_audit_reads_a_process_namespace_with_its_sockets() -> None:
    reason = require_netns_capability()
    if reason is not None:
        skip_or_fail(reason)
    holder = subprocess.Popen(
        [
            "unshare",
            "--net",
            sys.executable,
            "-c",
            "import socket,subprocess,sys\n"
            "subprocess.run(['ip','link','set','lo','up'],check=True)\n"
            "l=socket.socket(); l.bind(('127.0.0.1',0)); l.listen()\n"
            "c=socket.create_connection(l.getsockname()); s,_=l.accept(); c.close()\n"
            "print('ready',flush=True); sys.stdin.read()",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "ready\n"
        result = run_tcptune("--pid", str(holder.pid), "audit", "--json")
        document = json.loads(result.stdout)
        states = document["sockets"]["states"]
        assert states["LISTEN"]["total"] == 1
        assert states["CLOSE_WAIT"]["total"] == 1
        assert document["context"]["netns"].startswith(f"netns of pid {holder.pid}")
        close_wait = next(f for f in document["findings"] if f["id"] == "close-wait")
        assert close_wait["data"]["owners"][0]["pid"] == holder.pid
    finally:
        holder.kill()
        holder.wait()


def test_missing_namespace_and_process_are_unavailable() -> None:
    result = run_tcptune("--netns", "tcptune-no-such-ns", "audit")
    assert result.returncode == ExitStatus.UNAVAILABLE
    assert (
        result.stderr == "tcptune: no network namespace 'tcptune-no-such-ns' "
        "(see `ip netns list`)\n"
    )
    result = run_tcptune("--pid", "2147483647", "audit")
    assert result.returncode == ExitStatus.UNAVAILABLE
    assert result.stderr == "tcptune: no process 2147483647\n"
    both = run_tcptune("--pid", "1", "--netns", "x", "audit")
    assert both.returncode == ExitStatus.USAGE


@pytest.mark.kernel
def test_unprivileged_user_is_told_what_is_needed() -> None:
    result = run_tcptune("--pid", "1", "audit", prefix=UNPRIVILEGED)
    assert result.returncode == ExitStatus.NO_PERMISSION, result.stderr
    assert result.stderr.startswith("tcptune: netns of pid 1")
    assert "Traceback" not in result.stderr


NS_PATH = Path("/proc/4242/ns/net")
LABEL = "netns of pid 4242 (nginx)"


def test_root_refused_a_namespace_is_told_the_real_reason_not_to_become_root() -> None:
    denied = PermissionError(errno.EACCES, "Permission denied")
    error = netns.open_error(denied, LABEL, NS_PATH, euid=0)
    assert isinstance(error, PermissionDeniedError)
    assert str(error) == (
        f"{LABEL}: cannot open {NS_PATH}: permission denied (EACCES) even as root "
        "(the kernel's ptrace access check on the process refused it)"
    )
    assert "needs root" not in str(error)
    as_user = netns.open_error(denied, LABEL, NS_PATH, euid=1000)
    assert str(as_user) == f"{LABEL}: cannot open {NS_PATH}: permission denied (EACCES); needs root"


def test_any_other_open_error_names_its_errno_instead_of_an_internal_error(
    tmp_path: Path,
) -> None:
    regular = tmp_path / "file"
    regular.write_text("")
    with pytest.raises(UnavailableError) as caught:
        netns.enter(regular / "ns" / "net", LABEL)  # ENOTDIR: was a bare NotADirectoryError
    assert str(caught.value) == (
        f"{LABEL}: cannot open {regular}/ns/net: not a directory (ENOTDIR)"
    )
    with pytest.raises(UnavailableError, match=r"gone \(.* does not exist\)"):
        netns.enter(tmp_path / "missing", LABEL)
