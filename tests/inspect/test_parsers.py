"""Edge cases of the counter parsers, units and the netlink request."""

from __future__ import annotations

import socket
import struct
from pathlib import Path

import pytest

from tcptune.inspect.counters import parse_header_pairs, parse_sockstat
from tcptune.inspect.procfs import ProcFS, ProcReadError, is_valid_sysctl_name
from tcptune.inspect.sockdiag import request
from tcptune.model.tcpstates import ALL_STATES_MASK
from tcptune.model.units import duration


def test_sockstat_parsed_by_name() -> None:
    text = "sockets: used 13\nTCP: inuse 5 orphan 1 tw 7 alloc 9 mem 3\n"
    tables = parse_sockstat(text, "sockstat")
    assert tables["TCP"] == {"inuse": 5, "orphan": 1, "tw": 7, "alloc": 9, "mem": 3}


def test_sockstat_odd_pairs_name_the_line() -> None:
    with pytest.raises(ProcReadError, match=r"sockstat: line 1: odd name/value list"):
        parse_sockstat("TCP: inuse 5 orphan\n", "sockstat")


def test_header_pairs_follow_names_not_positions() -> None:
    text = "TcpExt: B A\nTcpExt: 2 1\nIpExt: X\nIpExt: 9\n"
    assert parse_header_pairs(text, "netstat") == {"TcpExt": {"B": 2, "A": 1}, "IpExt": {"X": 9}}


def test_header_pairs_reject_mismatched_tables() -> None:
    with pytest.raises(ProcReadError, match="values for 'Udp' follow header 'Tcp'"):
        parse_header_pairs("Tcp: A\nUdp: 1\n", "snmp")
    with pytest.raises(ProcReadError, match="a header without its values"):
        parse_header_pairs("Tcp: A\n", "snmp")


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        (0, "0 s"),
        (59, "59 s"),
        (75, "1 min 15 s"),
        (7200, "2 h"),
        (7875, "2 h 11 min"),
        (90061, "1 d 1 h"),
    ],
)
def test_duration(seconds: int, shown: str) -> None:
    assert duration(seconds) == shown


@pytest.mark.parametrize(
    "name", ["net/../../etc/passwd", "net..ipv4", "net.ipv4.", ".net", "NET.ipv4", "net"]
)
def test_malformed_sysctl_names_never_become_paths(name: str) -> None:
    assert not is_valid_sysctl_name(name)
    with pytest.raises(ValueError, match="not a well-formed sysctl name"):
        ProcFS().sysctl_path(name)


def test_netlink_request_layout() -> None:
    message = request(7)
    length, kind, flags, sequence, _pid = struct.unpack_from("=IHHII", message)
    assert length == len(message) == 16 + 60  # nlmsghdr + legacy inet_diag_req
    assert kind == 18 and flags == 0x301 and sequence == 7  # TCPDIAG_GETSOCK, dump
    (family,) = struct.unpack_from("=B", message, 16)
    (states,) = struct.unpack_from("=I", message, 16 + 52)
    assert family == socket.AF_UNSPEC  # both families in one dump
    assert states == ALL_STATES_MASK == 0x1FFE


@pytest.mark.parametrize(
    ("text", "spans"),
    [("", ()), ("8080", ((8080, 8080),)), ("9000-9010,8080,9011", ((8080, 8080), (9000, 9011)))],
)
def test_port_lists_parse_into_merged_spans(text: str, spans: tuple[tuple[int, int], ...]) -> None:
    from tcptune.model.ports import format_port_list, parse_port_list

    assert parse_port_list(text) == spans
    assert parse_port_list(format_port_list(spans)) == spans


@pytest.mark.parametrize("text", ["abc", "1-", "-5", "70000", "20-10", "1,,2", "1-2000000000"])
def test_malformed_port_lists_are_rejected(text: str) -> None:
    from tcptune.model.ports import parse_port_list

    with pytest.raises(ValueError, match="port"):
        parse_port_list(text)


def test_garbled_reserved_ports_make_the_inspection_incomplete_not_a_crash(
    tmp_path: Path,
) -> None:
    import shutil

    from tcptune.inspect.inspector import SocketSource
    from tcptune.model.snapshot import ReadStatus
    from tcptune.run.audit import run_audit
    from tests.conftest import FIXTURES

    tree = tmp_path / "proc"
    shutil.copytree(FIXTURES / "container-ns", tree, symlinks=True)
    (tree / "sys/net/ipv4/ip_local_reserved_ports").write_text("1-2000000000\n")
    (tree / "sys/net/ipv4/ip_local_port_range").write_text("60999\t32768\n")
    result = run_audit(ProcFS(tree), source=SocketSource.PROCFS)
    sysctls = result.snapshot.sysctls
    assert sysctls["net.ipv4.ip_local_reserved_ports"].status is ReadStatus.UNREADABLE
    assert sysctls["net.ipv4.ip_local_port_range"].status is ReadStatus.UNREADABLE
    assert not result.snapshot.complete
