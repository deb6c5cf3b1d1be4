"""The counting program's shape and the decoding of its one-byte records (no kernel needed)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from tcptune.inspect.bpf import asm, tcpcount
from tcptune.inspect.bpf.btf import load_btf
from tcptune.inspect.bpf.seams import VMLINUX_BTF
from tests.lab import skip_or_fail

LAYOUT = {
    "attach_btf_id": 99,
    "meta_offset": 0,
    "object_offset": 8,
    "seq_offset": 0,
    "state_offset": 18,
    "family_offset": 16,
    "substate_offset": 72,
    "seq_write": 127,
    "to_timewait": 138,
}
JUMPS = {0x15, 0x55}  # JEQ and JNE against an immediate


def test_every_jump_lands_where_its_comment_says() -> None:
    code = asm.disassemble(tcpcount.build(LAYOUT))
    assert len(code) == 23 and code[-2:] == [(0xB7, 0, 0, 0, 0), (0x95, 0, 0, 0, 0)]
    targets = {i: i + 1 + off for i, (op, _d, _s, off, _imm) in enumerate(code) if op in JUMPS}
    assert targets == {4: 21, 6: 11, 9: 11, 13: 15}  # NULL: out; not TIME_WAIT or no tw: family
    assert code[6][4] == 6 and code[13][4] == socket.AF_INET6  # TCP_TIME_WAIT, AF_INET6
    assert code[8] == (0x85, 0, 0, 0, 138) and code[20] == (0x85, 0, 0, 0, 127)  # the helpers
    assert code[10] == (0x71, 9, 0, 72, 0)  # r9 = tw_substate through the helper's pointer
    assert code[19] == (0xB7, 3, 0, 0, 1)  # one byte per socket


def test_a_cached_layout_must_hold_every_offset() -> None:
    assert tcpcount.valid(LAYOUT)
    assert not tcpcount.valid({**LAYOUT, "substate_offset": "72"})
    assert not tcpcount.valid({k: v for k, v in LAYOUT.items() if k != "seq_write"})
    assert not tcpcount.valid({**LAYOUT, "state_offset": -1})


def test_records_count_by_family_with_request_sockets_as_syn_recv() -> None:
    ipv6 = tcpcount.IPV6
    data = bytes([1, 1, 6, 1 | ipv6, 10, 10 | ipv6, 12, 12 | ipv6, 3, 5])
    ipv4_counts, ipv6_counts = tcpcount.count(data)
    assert {c: n for c, n in enumerate(ipv4_counts) if n} == {1: 2, 6: 1, 10: 1, 3: 2, 5: 1}
    assert {c: n for c, n in enumerate(ipv6_counts) if n} == {1: 1, 10: 1, 3: 1}


def test_an_unexpected_code_is_counted_where_it_falls() -> None:
    ipv4_counts, ipv6_counts = tcpcount.count(bytes([1, 0, 77, 77 | tcpcount.IPV6, 12]))
    assert {c: n for c, n in enumerate(ipv4_counts) if n} == {1: 1, 0: 1, 77: 1, 3: 1}
    assert {c: n for c, n in enumerate(ipv6_counts) if n} == {77: 1}
    assert tcpcount.count(b"") == ([0] * 256, [0] * 256)


@pytest.mark.kernel
def test_every_offset_resolves_from_this_kernels_btf() -> None:
    if not VMLINUX_BTF.exists():
        skip_or_fail("this kernel exports no BTF")
    resolved = tcpcount.resolve(load_btf(Path(VMLINUX_BTF)))
    assert tcpcount.valid(resolved)
    assert resolved["object_offset"] == 8 and resolved["meta_offset"] == 0  # bpf_iter__tcp
