"""The BPF walk's program shape, its records read by DumpParser, and jiffies to milliseconds."""

from __future__ import annotations

import os
import random
import socket
import struct
from array import array
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tcptune.inspect.bpf import asm, tcpdetails
from tcptune.inspect.bpf.btf import VMLINUX_BTF, Btf, BtfError, Field, load_btf
from tcptune.inspect.bpf.syscall import BpfError
from tcptune.inspect.bpfdump import read_records
from tcptune.inspect.diagparse import DumpParser
from tcptune.inspect.sockdiag import details_builder
from tests.inspect.test_diagparse import message
from tests.lab import skip_or_fail

SIZE = tcpdetails.RECORD_SIZE


def record(
    state: int, *, ages: tuple[int, int] = (0, 0), keepalive: int = 0, **fields: object
) -> bytes:
    """Return one BPF record: a sock_diag message of RECORD_SIZE, then (data, ACK) and keepalive."""
    body = bytearray(message(state, size=SIZE, **fields))  # type: ignore[arg-type]
    struct.pack_into("=III", body, tcpdetails.AGES_AT, *ages, keepalive)
    return bytes(body)


def layout() -> dict[str, object]:
    member = {"pointers": [], "offset": 4, "size": 4}
    found: dict[str, object] = {key: 8 for key in tcpdetails.CONTEXT_KEYS}
    found.update({key: 100 + i for i, key in enumerate(tcpdetails.HELPERS)})
    found.update({name: dict(member) for name in tcpdetails.MEMBERS})
    found["inode"] = {"pointers": [288, 16, 32], "offset": 64, "size": 8}
    found["v6_rcv_saddr"] = found["v6_daddr"] = {"pointers": [], "offset": 72, "size": 16}
    return found


def test_assemble_counts_every_jump_to_its_label() -> None:
    code = asm.assemble(
        [
            asm.jump_to_if_equal(1, 7, "end"),
            asm.goto("middle"),
            asm.mov_imm(0, 1),
            asm.Label("middle"),
            asm.mov_imm(0, 2),
            asm.Label("end"),
            asm.exit_(),
        ]
    )
    listing = asm.disassemble(code)
    assert [(op, off, imm) for op, _d, _s, off, imm in listing[:2]] == [(0x15, 3, 7), (0x05, 1, 0)]
    with pytest.raises(ValueError, match="loops"):
        asm.assemble([asm.Label("top"), asm.mov_imm(0, 0), asm.goto("top")])


def test_the_program_writes_one_record_per_socket_and_ends_on_null() -> None:
    listing = asm.disassemble(tcpdetails.build(layout()))
    calls = [imm for op, _d, _s, _off, imm in listing if op == 0x85]
    assert sorted(set(calls)) == [100, 101, 102, 103]  # seq_write, to_tcp, to_timewait, jiffies
    write = max(i for i, (op, *_rest, imm) in enumerate(listing) if op == 0x85 and imm == 100)
    assert listing[write - 1] == (0xB7, 3, 0, 0, SIZE)  # r3 = RECORD_SIZE
    assert listing[-2:] == [(0xB7, 0, 0, 0, 0), (0x95, 0, 0, 0, 0)]
    op, _dst, _src, skip, imm = listing[4]  # if sk_common == NULL: return 0
    assert (op, imm, 4 + 1 + skip) == (0x15, 0, len(listing) - 2)
    header = [(off, imm) for op, dst, _s, off, imm in listing if dst == 10 and op in (0x62, 0x6A)]
    assert (-SIZE, SIZE) in header and (-SIZE + 4, 18) in header and (-SIZE + 6, 2) in header
    for index, (op, _d, _s, off, _imm) in enumerate(listing):
        if op & 0x07 == 0x05 and op not in (0x85, 0x95):  # every jump lands inside, forward
            assert off >= 0 and index + 1 + off < len(listing)


def test_a_cached_layout_must_hold_every_member() -> None:
    assert tcpdetails.valid(layout())
    assert not tcpdetails.valid({**layout(), "seq_write": "1"})
    assert not tcpdetails.valid({**layout(), "inode": {"pointers": [-1], "offset": 0, "size": 8}})
    assert not tcpdetails.valid({**layout(), "state": {"pointers": [], "offset": 0, "size": 3}})
    broken = layout()
    del broken["rcv_tstamp"]
    assert not tcpdetails.valid(broken)


@pytest.mark.parametrize(
    ("hz", "jiffies", "msecs"),
    [
        (1000, [0, 5, 0xFFFFFFFF], [0, 5, 0xFFFFFFFF]),
        (250, [0, 5, 0x40000001], [0, 20, 4]),  # 4 * j as an unsigned int
        (250, [0, 5, 0x3FFFFFFF], [0, 20, 0xFFFFFFFC]),  # nothing wraps
        (100, [3], [30]),
        (100, [0x18FFFFFF, 0x19999999], [0xF9FFFFF6, 0xFFFFFFFA]),  # at the wrap: exact
        (100, [0x18FFFFFF, 0x1A000000], [0xF9FFFFF6, 0x04000000]),  # one wraps
        (300, [1, 3, 299], [4, 10, 997]),  # rounded up: DIV_ROUND_UP(j * 10, 3)
        (1024, [1, 1024, 1025], [1, 1000, 1001]),
    ],
)
def test_jiffies_to_msecs_rounds_as_the_kernel(
    hz: int, jiffies: list[int], msecs: list[int]
) -> None:
    assert tcpdetails.jiffies_to_msecs(array("I", jiffies), hz).tolist() == msecs


@given(
    st.sampled_from([100, 250, 500]),
    st.lists(st.integers(0, 0xFFFFFFFF), max_size=64),
)
def test_jiffies_to_msecs_of_a_column_is_each_value_converted(hz: int, jiffies: list[int]) -> None:
    factor = 1000 // hz
    expected = [value * factor & 0xFFFFFFFF for value in jiffies]
    assert tcpdetails.jiffies_to_msecs(array("I", jiffies), hz).tolist() == expected
    # the same values below the wrap, so that the whole column is multiplied at once
    small = [value // factor for value in jiffies]
    assert tcpdetails.jiffies_to_msecs(array("I", small), hz).tolist() == [
        value * factor for value in small
    ]


def test_hz_is_the_keepalive_time_in_jiffies_over_seconds() -> None:
    assert tcpdetails.hz_from(7200 * 250, 7200) == 250
    assert tcpdetails.hz_from(7201, 7200) is None  # changed between the two reads
    assert tcpdetails.hz_from(0, 0) is None


def _records(rng: random.Random, count: int) -> list[bytes]:
    out = []
    for index in range(count):
        state = rng.choice([1, 1, 5, 6, 6, 8, 10])
        # IPv4 alone first (chunks read in bulk), then both (message by message)
        family = rng.choice([socket.AF_INET, socket.AF_INET6][: 1 + 2 * index // count])
        prefix = "127.0.0.{}" if family == socket.AF_INET else "::ffff:127.0.0.{}"
        out.append(
            record(
                state,
                family=family,
                timer=rng.choice([0, 2]),
                local=(prefix.format(rng.randrange(1, 4)), rng.choice([80, 8080])),
                remote=(prefix.format(rng.randrange(1, 9)), rng.randrange(1024, 1100)),
                inode=index + 1 if state != 5 or rng.random() < 0.5 else 0,
                ages=(rng.randrange(10**6), rng.randrange(10**6)),
                keepalive=1_800_000,
            )
        )
    return out


def test_records_read_from_a_descriptor_in_chunks_parse_as_one_buffer(tmp_path: Path) -> None:
    records = _records(random.Random(5), 1500)  # 156,000 bytes: 64 KiB reads split records
    data = b"".join(records)
    path = tmp_path / "records"
    path.write_bytes(data)
    read = details_builder()
    fd = os.open(path, os.O_RDONLY)
    try:
        counts, keepalive = read_records(fd, read)
    finally:
        os.close(fd)
    ipv4, ipv6 = [0] * 256, [0] * 256
    whole = details_builder()
    DumpParser(ipv4, ipv6, whole, ages_at=tcpdetails.AGES_AT).feed(bytearray(data), len(data))
    assert counts == (ipv4, ipv6) and keepalive == 1_800_000
    assert read.build() == whole.build()
    close_wait = [r for r in records if r[17] == 8]
    assert len(read.close_wait_last_data) == len(close_wait) > 100
    expected = [struct.unpack_from("=II", r, tcpdetails.AGES_AT) for r in close_wait]
    got = list(zip(read.close_wait_last_data, read.close_wait_last_ack, strict=True))
    assert got == expected  # (data, ACK) in dump order, bulk and message by message alike


def test_a_torn_last_record_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "records"
    path.write_bytes(b"".join(_records(random.Random(1), 20))[:-10])
    fd = os.open(path, os.O_RDONLY)
    try:
        with pytest.raises(BpfError, match="not whole records"):
            read_records(fd, details_builder())
    finally:
        os.close(fd)


@pytest.mark.kernel
def test_every_member_resolves_from_this_kernels_btf() -> None:
    if not VMLINUX_BTF.exists():
        skip_or_fail("this kernel exports no BTF")
    resolved = tcpdetails.resolve(load_btf(Path(VMLINUX_BTF)))
    assert tcpdetails.valid(resolved)
    assert resolved["uid_offset"] == 16 and resolved["object_offset"] == 8  # bpf_iter__tcp
    btf = load_btf(Path(VMLINUX_BTF))
    try:
        btf.path("sock", "sk_ino")
    except BtfError:
        assert len(resolved["inode"]["pointers"]) == 3  # socket, file, inode: before 6.17
    else:  # sock_i_ino()'s own field: one load from the socket
        assert resolved["inode"]["pointers"] == [] and resolved["inode"]["size"] == 8
    older = tcpdetails.resolve(WithoutSkIno(Path(VMLINUX_BTF).read_bytes()))
    assert tcpdetails.valid(older) and len(older["inode"]["pointers"]) == 3
    assert {k: v for k, v in older.items() if k != "inode"} == {
        k: v for k, v in resolved.items() if k != "inode"
    }


class WithoutSkIno(Btf):
    """The kernel's BTF as a kernel before Linux 6.17 has it: no sock.sk_ino."""

    def path_in(self, type_id: int, dotted: str) -> Field:
        if dotted.rsplit(".", 1)[-1] == "sk_ino":
            raise BtfError("no member 'sk_ino' in struct sock")
        return super().path_in(type_id, dotted)
