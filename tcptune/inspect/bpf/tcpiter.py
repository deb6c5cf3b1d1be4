"""The socket-option program for the bpf_iter_tcp iterator, and decoding its records.

Each read names its member path from struct tcp_sock; ``->`` follows a
pointer into the struct it points to; ``|`` lists alternatives for kernels
that moved a member (sk_flags became sock_common's skc_flags in Linux 6.14).
Every offset comes from BTF by name. Options are read as fields, not with
bpf_getsockopt(): getsockopt(TCP_KEEPIDLE) and (TCP_LINGER2) return the
sysctl's value for a socket that never set its own (keepalive_time_when(),
do_tcp_getsockopt()), so "own" and "(sysctl)" could not be told apart, and
bpf_getsockopt() has no SO_LINGER at all (sol_socket_sockopt()).
"""

from __future__ import annotations

import _socket  # not socket: see sockdiag.py
import struct
from collections.abc import Iterable, Sequence
from typing import Any

from tcptune.inspect.bpf import loader
from tcptune.inspect.bpf.btf import Btf, BtfError, context_offset
from tcptune.inspect.bpf.loader import IterProgram
from tcptune.model.record import record

SOCK = "inet_conn.icsk_inet.sk."
COMMON = SOCK + "__sk_common."


@record
class Wanted:
    """A value to read: its record name and the member path(s) from struct tcp_sock."""

    name: str
    paths: str  # "a.b->c.d|x.y": alternatives by |, pointers by ->
    optional: bool = False  # absent on some kernels (IPv6 addresses without CONFIG_IPV6)


TCP_WANTED: tuple[Wanted, ...] = (
    Wanted("inode", SOCK + "sk_socket->file->f_inode->i_ino"),
    Wanted("state", COMMON + "skc_state"),
    Wanted("family", COMMON + "skc_family"),
    Wanted("local_port", COMMON + "skc_num"),  # host byte order
    Wanted("remote_port", COMMON + "skc_dport"),  # network byte order
    Wanted("local4", COMMON + "skc_rcv_saddr"),
    Wanted("remote4", COMMON + "skc_daddr"),
    Wanted("local6", COMMON + "skc_v6_rcv_saddr.in6_u.u6_addr32", optional=True),
    Wanted("remote6", COMMON + "skc_v6_daddr.in6_u.u6_addr32", optional=True),
    Wanted("reuse", COMMON + "skc_reuse"),  # a bitfield: SK_NO_REUSE / CAN / FORCE
    Wanted("reuseport", COMMON + "skc_reuseport"),  # a 1-bit bitfield
    Wanted("flags", f"{COMMON}skc_flags|{SOCK}sk_flags"),  # enum sock_flags bits
    Wanted("lingertime", SOCK + "sk_lingertime"),  # jiffies
    Wanted("keepalive_time", "keepalive_time"),  # jiffies, 0: the sysctl
    Wanted("keepalive_intvl", "keepalive_intvl"),  # jiffies, 0: the sysctl
    Wanted("keepalive_probes", "keepalive_probes"),  # count, 0: the sysctl
    Wanted("linger2", "linger2"),  # jiffies, 0: the sysctl, <0: RST
    Wanted("user_timeout", "inet_conn.icsk_user_timeout"),  # ms
    # When the peer was last heard from (u32 jiffies): keepalive_time_elapsed() in tcp.h
    Wanted("rcv_tstamp", "rcv_tstamp"),
    Wanted("lrcvtime", "inet_conn.icsk_ack.lrcvtime"),
    # The namespace's tcp_keepalive_time in jiffies: with the sysctl in seconds it gives HZ.
    Wanted("netns_keepalive_time", COMMON + "skc_net.net->ipv4.sysctl_tcp_keepalive_time"),
)
RAW = frozenset({"local4", "remote4", "local6", "remote6"})  # bytes, kept as they are
ITERATOR = "bpf_iter_tcp"


def resolve(btf: Btf, wanted: Sequence[Wanted] = TCP_WANTED) -> dict[str, Any]:
    """Return the program's layout (JSON-ready, cacheable); BtfError names what is missing."""
    try:
        attach, params = btf.func_params(ITERATOR)
    except BtfError as exc:
        raise BtfError(f"this kernel has no TCP socket iterator ({exc})") from exc
    meta = btf.path("bpf_iter_meta", "seq")
    reads: list[dict[str, Any]] = []
    bits: dict[str, list[int]] = {}
    signed: list[str] = []
    for item in wanted:
        try:
            read, field = _resolve_one(btf, item)
        except BtfError:
            if item.optional:
                continue
            raise
        reads.append(read)
        if field.bits:
            bits[item.name] = [field.bit_shift, field.bits]
        if btf.is_signed(field.type_id):
            signed.append(item.name)
    reads.append(
        {
            "name": "uid",
            "from_ctx": True,
            "pointers": [],
            "offset": context_offset(params, ITERATOR, "uid"),
        }
    )
    reads[-1].update(size=4, pieces=1)
    return {
        "attach_btf_id": attach,
        "meta_offset": context_offset(params, ITERATOR, "meta"),
        "seq_offset": meta.offset,
        "object_offset": context_offset(params, ITERATOR, "sk_common"),
        "seq_write": btf.enumerator("bpf_func_id", "BPF_FUNC_seq_write"),
        "convert": btf.enumerator("bpf_func_id", "BPF_FUNC_skc_to_tcp_sock"),
        "clock": btf.enumerator("bpf_func_id", "BPF_FUNC_jiffies64"),
        "reads": reads,
        "bits": bits,
        "signed": signed,
        "keepopen": btf.enumerator("sock_flags", "SOCK_KEEPOPEN"),
        "linger": btf.enumerator("sock_flags", "SOCK_LINGER"),
    }


def _resolve_one(btf: Btf, item: Wanted) -> tuple[dict[str, Any], Any]:
    """Resolve the first of an item's alternative paths that this kernel has."""
    errors: list[str] = []
    for alternative in item.paths.split("|"):
        try:
            type_id = btf.find(4, "tcp_sock")  # BTF_KIND_STRUCT
            pointers: list[int] = []
            hops = alternative.split("->")
            for hop in hops[:-1]:
                field = btf.path_in(type_id, hop)
                pointers.append(field.offset)
                type_id = btf.pointee(field.type_id)
            field = btf.path_in(type_id, hops[-1])
        except BtfError as exc:
            errors.append(str(exc))
            continue
        element = btf.array_element(field.type_id)
        size, pieces = element if element and not field.bits else (field.size, 1)
        if size not in (1, 2, 4, 8):
            raise BtfError(f"{item.name}: a {size}-byte member cannot be loaded")
        read = {"name": item.name, "from_ctx": False, "pointers": pointers}
        read.update(offset=field.offset, size=size, pieces=pieces)
        return read, field
    raise BtfError(f"{item.name}: {'; '.join(errors)}")


def program_spec(resolved: dict[str, Any]) -> IterProgram:
    """Return the loader's spec from a resolved (possibly cached) layout."""
    return loader.spec_from_layout(resolved)


def record_decoder(resolved: dict[str, Any]) -> tuple[struct.Struct, list[str]]:
    """Return a struct for one record and the field names in its order."""
    reads = loader.record_reads(program_spec(resolved))
    offsets, size = loader.layout(reads)
    codes = {1: "B", 2: "H", 4: "I", 8: "Q"}
    fmt, names, position = "<", [], 0
    for read in sorted(reads, key=lambda r: offsets[r.name]):
        fmt += "x" * (offsets[read.name] - position)
        width = read.size * read.pieces
        fmt += f"{width}s" if read.name in RAW else codes[read.size]
        names.append(read.name)
        position = offsets[read.name] + width
    fmt += "x" * (size - position)
    return struct.Struct(fmt), names


def decode(data: bytes | bytearray, resolved: dict[str, Any]) -> Iterable[dict[str, Any]]:
    """Yield each record as a dict: bitfields extracted, signed fields signed."""
    record, names = record_decoder(resolved)
    if len(data) % record.size:
        raise ValueError(f"{len(data)} bytes are not whole {record.size}-byte records")
    bits = {name: (shift, (1 << width) - 1) for name, (shift, width) in resolved["bits"].items()}
    sizes = {r["name"]: r["size"] for r in resolved["reads"]}
    signed = {name: 1 << (8 * sizes[name] - 1) for name in resolved["signed"]}
    for row in record.iter_unpack(data):
        values = dict(zip(names, row, strict=True))
        for name, (shift, mask) in bits.items():
            values[name] = (values[name] >> shift) & mask
        for name, sign_bit in signed.items():
            if values[name] >= sign_bit:
                values[name] -= sign_bit << 1
        values["remote_port"] = _socket.ntohs(values["remote_port"])
        yield values
