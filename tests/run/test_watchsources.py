"""What a watch refresh reads, against the real kernel in a throwaway namespace."""

from __future__ import annotations

from pathlib import Path

import pytest

from tcptune.inspect.bpf.seams import BpfSeams
from tcptune.inspect.inspector import inspect
from tcptune.inspect.procfs import ProcFS
from tcptune.inspect.statecounts import SocketSource
from tcptune.model.tcpstates import TcpState
from tcptune.run.watchsources import live_sources
from tests.lab import SocketLab
from tests.lab.netns import skip_or_fail

PROC = ProcFS(Path("/proc"))


@pytest.mark.kernel
def test_owners_refresh_walks_with_bpf_and_names_the_same_holders(
    lab: SocketLab, tmp_path: Path
) -> None:
    lab.close_wait(3)
    lab.wait_for_states({"CLOSE_WAIT": 3, "FIN_WAIT2": 3})
    seams = BpfSeams(cache_dir=tmp_path)
    audited = inspect(PROC, details=True, socket_seams=seams, bpf_min_sockets=0).sockets
    if audited is None or audited.source != "bpf":
        skip_or_fail(f"the BPF walk cannot run here: {audited and audited.notes}")
    take, held = live_sources(PROC, SocketSource.AUTO, None, True, seams, bpf_min_sockets=0)
    walked = take()
    assert walked.sockets is not None and held is not None
    assert walked.sockets.source == "bpf", walked.sockets.notes  # as the audit's
    assert walked.sockets.total(TcpState.CLOSE_WAIT) == 3
    take_nl, held_nl = live_sources(PROC, SocketSource.NETLINK, None, True, seams)
    dumped = take_nl()
    assert dumped.sockets is not None and dumped.sockets.source == "netlink"
    assert held_nl is not None
    by_process = held(walked)
    assert by_process and sum(by_process.values()) == 3  # this test process holds them
    assert by_process == held_nl(dumped)
    # Below the threshold a refresh stays on netlink, as the audit does.
    small, _ = live_sources(PROC, SocketSource.AUTO, None, True, seams, bpf_min_sockets=10**6)
    assert small().sockets.source == "netlink"  # type: ignore[union-attr]
