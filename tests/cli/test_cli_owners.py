"""audit's owners source end to end: BPF task_file as root, procfs for an ordinary user.

Each test runs tcptune in a throwaway network namespace holding CLOSE_WAIT
sockets, as root and (setpriv) as nobody, and reads the JSON's "owners".
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from tcptune.exitcodes import ExitStatus
from tests.lab import SocketLab, kernel_lab, skip_or_fail
from tests.lab.privileges import UNPRIVILEGED, run_tcptune

pytestmark = pytest.mark.kernel
NEEDS = "owners via procfs: needs CAP_BPF and CAP_PERFMON (or CAP_SYS_ADMIN)"
# nobody's own CLOSE_WAIT socket: the server end of a pair whose client closed
HOLDER = """
import os, socket, sys
listener = socket.socket()
listener.bind(("127.0.0.1", 0))
listener.listen(1)
client = socket.create_connection(listener.getsockname())
server, _ = listener.accept()
client.close()
print(os.getpid(), flush=True)
sys.stdin.read()
"""


@pytest.fixture
def lab() -> Iterator[SocketLab]:
    with kernel_lab() as made:
        yield made


def audit(*args: str, prefix: tuple[str, ...] = ()) -> tuple[int, dict[str, Any], str]:
    done = run_tcptune("audit", "--json", "--no-options", *args, prefix=prefix)
    return done.returncode, json.loads(done.stdout), done.stderr


def close_wait_owners(document: dict[str, Any]) -> dict[int, int]:
    (finding,) = [f for f in document["findings"] if f["id"] == "close-wait"]
    return {o["pid"]: o["sockets"] for o in finding["data"]["owners"]}


def test_root_uses_bpf_and_procfs_names_the_same_owners(lab: SocketLab) -> None:
    lab.close_wait(4)
    lab.wait_for_states({"CLOSE_WAIT": 4, "FIN_WAIT2": 4})
    code, bpf, err = audit("--owners-source", "auto")
    if bpf["owners"]["source"] != "bpf task_file":
        skip_or_fail(f"BPF task_file cannot run here: {bpf['owners']['bpf_unavailable']}")
    assert code != ExitStatus.INCOMPLETE, err
    assert bpf["owners"]["bpf_unavailable"] is None
    assert bpf["owners"]["sockets"] == 4 and bpf["owners"]["processes"] == 1
    _code, procfs, _err = audit("--owners-source", "procfs")
    assert procfs["owners"]["source"] == "procfs"
    assert procfs["owners"]["bpf_unavailable"] == "not tried (--owners-source procfs)"
    assert close_wait_owners(bpf) == close_wait_owners(procfs) == {os.getpid(): 4}
    debug = run_tcptune("--debug", "audit", "--json", "--no-options")
    assert "tcptune: debug: owners via bpf task_file, " in debug.stderr
    _code, none, _err = audit("--no-owners")
    assert none["owners"] is None


def test_bpf_owners_asked_where_no_socket_needs_one_is_a_complete_audit(lab: SocketLab) -> None:
    # No CLOSE_WAIT socket, no shared listener: there is no owner to look up, so an
    # --owners-source bpf monitoring run on a quiet host is not "incomplete" (exit 3).
    code, document, err = audit("--owners-source", "bpf")
    assert code != ExitStatus.INCOMPLETE, err
    assert document["problems"] == []
    assert document["owners"]["bpf_unavailable"] is None


def test_an_ordinary_user_falls_back_to_procfs_and_still_finds_its_own(lab: SocketLab) -> None:
    holder = subprocess.Popen(
        [*UNPRIVILEGED, sys.executable, "-c", HOLDER],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        pid = int(holder.stdout.readline())
        lab.wait_for_states({"CLOSE_WAIT": 1, "FIN_WAIT2": 1, "LISTEN": 1})
        code, document, err = audit(prefix=UNPRIVILEGED)
        assert code != ExitStatus.INCOMPLETE, err
        assert document["owners"]["source"] == "procfs"
        assert document["owners"]["bpf_unavailable"] == NEEDS
        assert close_wait_owners(document) == {pid: 1}
        debug = run_tcptune("--debug", "audit", "--no-options", prefix=UNPRIVILEGED)
        assert "tcptune: debug: owners via procfs (CapEff lacks CAP_BPF and CAP_PERFMON)" in (
            debug.stderr
        )
        code, document, err = audit("--owners-source", "bpf", prefix=UNPRIVILEGED)
        assert code == ExitStatus.INCOMPLETE
        assert {"source": "socket owners (BPF task_file)", "message": NEEDS} in document["problems"]
        assert close_wait_owners(document) == {pid: 1}  # the walk still ran
    finally:
        holder.communicate("", timeout=10)
