"""Socket-option findings over a constructed inventory: the advisor is pure, no kernel needed."""

from __future__ import annotations

import dataclasses

from tcptune.advise import Evidence, advise
from tcptune.inspect.inspector import inspect
from tcptune.inspect.procfs import ProcFS
from tcptune.model.snapshot import Endpoint
from tcptune.model.sockopts import InventoryStatus, Process, SocketInventory, SocketOptions
from tcptune.model.tcpstates import TcpState
from tests.conftest import FIXTURES


def socket(inode: int, **options: object) -> SocketOptions:
    base = SocketOptions(
        inode=inode,
        state=TcpState.ESTABLISHED,
        local=Endpoint("10.0.0.1", 5432),
        remote=Endpoint("10.0.0.2", 40000 + inode),
        uid=0,
        reuseaddr=True,
        reuseport=False,
        keepalive=False,
        keepalive_idle=None,
        keepalive_interval=None,
        keepalive_count=None,
        linger=False,
        linger_seconds=0,
        linger2=None,
        user_timeout_ms=0,
    )
    return dataclasses.replace(base, **options)  # type: ignore[arg-type]


def findings(*sockets: SocketOptions) -> dict[str, object]:
    procfs = ProcFS(FIXTURES / "container-ns")
    inventory = SocketInventory(
        sockets,
        {s.inode: (100 + s.inode % 2,) for s in sockets},
        {100: Process(100, "postgres", "pg"), 101: Process(101, "\x1b[2Jevil", "x")},
        hz=250,
    )
    snapshot = dataclasses.replace(inspect(procfs), sockopts=InventoryStatus(inventory))
    return {f.id: f for f in advise(Evidence(snapshot))}


def test_idle_sockets_without_keepalive_are_counted_per_process() -> None:
    found = findings(
        socket(2, idle_seconds=3600.0),
        socket(4, idle_seconds=700.0),
        socket(6, idle_seconds=10.0),
        socket(8, idle_seconds=9000.0, keepalive=True),
    )
    idle = found["idle-no-keepalive"]
    assert idle.data == {"sockets": 2, "longest_seconds": 3600}  # type: ignore[attr-defined]
    assert idle.evidence == (  # type: ignore[attr-defined]
        "2 ESTABLISHED sockets in 1 process idle for over 10 min without SO_KEEPALIVE "
        "(longest 1 h): postgres: 2 sockets",
    )


def test_user_timeout_shorter_than_keepalive_idle_plus_interval_is_called_out() -> None:
    found = findings(
        socket(2, user_timeout_ms=20_000, keepalive=True, keepalive_idle=10, keepalive_interval=30),
        socket(4, user_timeout_ms=120_000, keepalive=True, keepalive_idle=10),
    )
    assert found["user-timeout"].data["cut"] == 1  # type: ignore[attr-defined]


def test_keepalive_reach_counts_own_idle_apart() -> None:
    found = findings(
        socket(2, keepalive=True, keepalive_idle=300),
        socket(4, keepalive=True, keepalive_idle=300),
        socket(3, keepalive=True),
    )
    data = found["keepalive"].data  # type: ignore[attr-defined]
    assert (data["reached"], data["keepalive_sockets"]) == (1, 3)
    assert data["own_idle"] == [{"process": "postgres", "sockets": 2, "idle": 300}]


def test_no_inventory_no_option_findings() -> None:
    procfs = ProcFS(FIXTURES / "container-ns")
    ids = {f.id for f in advise(Evidence(inspect(procfs)))}
    assert not ids & {"linger-abort", "linger-block", "user-timeout", "linger2"}
