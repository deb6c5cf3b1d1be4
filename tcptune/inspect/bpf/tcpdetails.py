"""The audit's socket details from one bpf_iter_tcp walk: a sock_diag message per socket.

The netlink dump with details makes the kernel walk its socket hash three
times (TIME_WAIT, CLOSE_WAIT with tcp_info, the rest) and build a message
per socket. This program walks it once (bpf_iter_tcp, net/ipv4/tcp_ipv4.c:
listening and established hashes, full sockets, TIME_WAIT minisockets and
request sockets alike) and writes, per socket, a fixed-size record laid out
as the sock_diag reply would be, so inspect/diagparse.py's DumpParser reads
it with its bulk path and no decision is coded twice: a 16-byte nlmsghdr
(length RECORD_SIZE, type TCPDIAG_GETSOCK, flags NLM_F_MULTI), then struct
inet_diag_msg filled as net/ipv4/inet_diag.c does:

- inet_diag_msg_common_fill: family, sport (htons(skc_num)), dport
  (skc_dport, already big-endian), for AF_INET only src[0]/dst[0]
  (skc_rcv_saddr, skc_daddr) with the rest zero, for AF_INET6 the
  skc_v6_rcv_saddr/skc_v6_daddr addresses (v4-mapped ones included);
- inet_sk_diag_fill for a full socket: its state; idiag_timer 1 when
  icsk_pending is ICSK_TIME_RETRANS, _REO_TIMEOUT or _LOSS_PROBE, 4 for
  ICSK_TIME_PROBE0, else 2 when sk_timer is pending (timer_pending(): the
  timer's entry.pprev is set; the keepalive timer), else 0; uid
  (sock_i_uid, which bpf_iter_tcp_seq_show hands the program as ctx->uid);
  for the states whose inode the audit reads (CLOSE_WAIT, FIN_WAIT2, LISTEN)
  the inode (sock_i_ino: sk->sk_ino since Linux 6.17, set by sock_graft and
  0 once sock_orphan ran; before that through sk_socket->file->f_inode, 0
  once sk_socket is NULL, three dependent loads a socket; so no other state's);
  tcp_diag_get_info's LISTEN queue: rqueue sk_ack_backlog, wqueue
  sk_max_ack_backlog;
- inet_twsk_diag_fill for a TIME_WAIT minisocket: tw_substate as its state
  (an orphaned FIN_WAIT2 kept as a minisocket is FIN_WAIT2), timer 3,
  uid and inode 0;
- inet_req_diag_fill for a request socket (TCP_NEW_SYN_RECV): SYN_RECV,
  timer 1, uid and inode 0.

Fields the audit never reads stay zero: retrans, interface, cookie,
expires, a non-listener's queues, the inode of the other states. After the message come three u32s:
for a CLOSE_WAIT socket the jiffies since the last data and since the last
ACK received (tcp_get_info: now - icsk_ack.lrcvtime and now - rcv_tstamp,
now being tcp_jiffies32, the low 32 bits of bpf_jiffies64), and for every
socket its namespace's tcp_keepalive_time in jiffies, which with the sysctl
in seconds gives HZ; ``jiffies_to_msecs`` turns the ages into tcp_info's
milliseconds exactly as the kernel does.
"""

from __future__ import annotations

import _socket  # not socket: see sockdiag.py
import sys
from array import array
from typing import Any

from tcptune.inspect.bpf import asm
from tcptune.inspect.bpf.asm import R0, R1, R2, R6, R7, R8, R9, R10, Label
from tcptune.inspect.bpf.btf import Btf, BtfError, context_offset
from tcptune.model.tcpstates import TcpState

ITERATOR = "bpf_iter_tcp"
RECORD_SIZE = 104  # 88 bytes of message, three u32s, 4 bytes of padding (8-byte aligned)
AGES_AT = 88  # u32 jiffies since the last data, then since the last ACK (tcp_info's order)
KEEPALIVE_AT = 96  # u32: the namespace's tcp_keepalive_time in jiffies
TCPDIAG_GETSOCK, NLM_F_MULTI = 18, 0x2  # as diagparse: a dump part, not interrupted
TCP_NEW_SYN_RECV = 12  # include/net/tcp_states.h: a request socket
# include/net/inet_connection_sock.h: the icsk_pending values inet_sk_diag_fill tests
ICSK_TIME_RETRANS, ICSK_TIME_PROBE0, ICSK_TIME_LOSS_PROBE, ICSK_TIME_REO_TIMEOUT = 1, 3, 5, 6
SOCK = "inet_conn.icsk_inet.sk."
# Record name -> (struct, member path: "." within a struct, "->" through a pointer)
MEMBERS: dict[str, tuple[str, str]] = {
    "family": ("sock_common", "skc_family"),
    "state": ("sock_common", "skc_state"),
    "num": ("sock_common", "skc_num"),
    "dport": ("sock_common", "skc_dport"),
    "rcv_saddr": ("sock_common", "skc_rcv_saddr"),
    "daddr": ("sock_common", "skc_daddr"),
    "v6_rcv_saddr": ("sock_common", "skc_v6_rcv_saddr"),
    "v6_daddr": ("sock_common", "skc_v6_daddr"),
    "keepalive_time": ("sock_common", "skc_net.net->ipv4.sysctl_tcp_keepalive_time"),
    "substate": ("tcp_timewait_sock", "tw_sk.tw_substate"),
    "pending": ("tcp_sock", "inet_conn.icsk_pending"),
    "timer_pprev": ("tcp_sock", SOCK + "sk_timer.entry.pprev"),
    "ack_backlog": ("tcp_sock", SOCK + "sk_ack_backlog"),
    "max_ack_backlog": ("tcp_sock", SOCK + "sk_max_ack_backlog"),
    "inode": ("tcp_sock", SOCK + "sk_ino"),  # sock_i_ino() since Linux 6.17: one load
    "lrcvtime": ("tcp_sock", "inet_conn.icsk_ack.lrcvtime"),
    "rcv_tstamp": ("tcp_sock", "rcv_tstamp"),
}
# Where a kernel lacks a member, the same value through pointers: before sk_ino
# sock_i_ino() read the socket's inode, which its file's f_inode is.
FALLBACKS = {"inode": ("tcp_sock", SOCK + "sk_socket->file->f_inode->i_ino")}
SIZES = {"v6_rcv_saddr": 16, "v6_daddr": 16}  # loaded as four u32s
HELPERS = {
    "seq_write": "BPF_FUNC_seq_write",
    "to_tcp": "BPF_FUNC_skc_to_tcp_sock",
    "to_timewait": "BPF_FUNC_skc_to_tcp_timewait_sock",
    "jiffies": "BPF_FUNC_jiffies64",
}
CONTEXT_KEYS = ("attach_btf_id", "meta_offset", "object_offset", "uid_offset", "seq_offset")
_U32 = 0xFFFFFFFF
_BYTES = bytes(range(256))


def resolve(btf: Btf) -> dict[str, Any]:
    """Return the program's offsets and helper ids by name (JSON-ready, cacheable)."""
    try:
        attach, params = btf.func_params(ITERATOR)
    except BtfError as exc:
        raise BtfError(f"this kernel has no TCP socket iterator ({exc})") from exc
    resolved: dict[str, Any] = {
        "attach_btf_id": attach,
        "meta_offset": context_offset(params, ITERATOR, "meta"),
        "object_offset": context_offset(params, ITERATOR, "sk_common"),
        "uid_offset": context_offset(params, ITERATOR, "uid"),
        "seq_offset": btf.path("bpf_iter_meta", "seq").offset,
    }
    for name, (struct_name, path) in MEMBERS.items():
        try:
            resolved[name] = _member(btf, struct_name, path, SIZES.get(name))
        except BtfError:
            if name not in FALLBACKS:
                raise
            struct_name, path = FALLBACKS[name]
            resolved[name] = _member(btf, struct_name, path, SIZES.get(name))
    for name, helper in HELPERS.items():
        resolved[name] = btf.enumerator("bpf_func_id", helper)
    return resolved


def _member(btf: Btf, struct_name: str, path: str, size: int | None) -> dict[str, Any]:
    """Return {"pointers": offsets of the pointers followed, "offset", "size"} of a member."""
    type_id = btf.find(4, struct_name)  # BTF_KIND_STRUCT
    hops = path.split("->")
    pointers = []
    for hop in hops[:-1]:
        field = btf.path_in(type_id, hop)
        pointers.append(field.offset)
        type_id = btf.pointee(field.type_id)
    field = btf.path_in(type_id, hops[-1])
    if field.bits:
        raise BtfError(f"{struct_name}.{path} is a bitfield")
    found = size or field.size
    if field.size != found or found not in (1, 2, 4, 8, 16):
        raise BtfError(f"{struct_name}.{path}: a {field.size}-byte member, not {found}")
    return {"pointers": pointers, "offset": field.offset, "size": found}


def valid(resolved: dict[str, Any]) -> bool:
    """Return whether a (cached, untrusted) layout holds every value the builder needs."""

    def small(value: Any) -> bool:
        return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 1 << 31

    if not all(small(resolved.get(key)) for key in (*CONTEXT_KEYS, *HELPERS)):
        return False
    for name in MEMBERS:
        member = resolved.get(name)
        if not isinstance(member, dict) or not isinstance(member.get("pointers"), list):
            return False
        if not all(small(value) for value in (member.get("offset"), *member["pointers"])):
            return False
        if member.get("size") not in (1, 2, 4, 8, 16):
            return False
    return True


def build(resolved: dict[str, Any], owner_inodes: bool = True) -> bytes:
    """Return the program: one RECORD_SIZE sock_diag message per socket.

    Without ``owner_inodes`` the CLOSE_WAIT inodes, which serve only the
    owner lookup, are left 0: a load from a line of the socket not otherwise
    read (three dependent ones before sk_ino), saved for every CLOSE_WAIT
    socket. FIN_WAIT2's (0: orphaned) and LISTEN's (shown) are always read.
    """
    rec = -RECORD_SIZE  # the record sits at the top of the stack: r10 - RECORD_SIZE

    def load(name: str, dst: int, base: int, extra: int = 0, size: int | None = None) -> list[Any]:
        member = resolved[name]
        code: list[Any] = []
        for pointer in member["pointers"]:  # a NULL on the way reads as 0 (BTF probe loads)
            code.append(asm.load(8, dst, base, pointer))
            base = dst
        code.append(asm.load(size or member["size"], dst, base, member["offset"] + extra))
        return code

    def put(size: int, offset: int, src: int) -> bytes:
        return asm.store(size, R10, rec + offset, src)

    code: list[Any] = [
        asm.mov_reg(R6, R1),  # r6 = ctx
        asm.load(8, R7, R6, resolved["meta_offset"]),
        asm.load(8, R7, R7, resolved["seq_offset"]),  # r7 = ctx->meta->seq
        asm.load(8, R8, R6, resolved["object_offset"]),  # r8 = ctx->sk_common
        asm.jump_to_if_equal(R8, 0, "out"),  # NULL: the call that ends the iteration
        # the record starts zeroed: the verifier wants every byte bpf_seq_write reads set
        *(asm.store_imm(8, R10, rec + offset, 0) for offset in range(0, RECORD_SIZE, 8)),
        asm.store_imm(4, R10, rec, RECORD_SIZE),  # nlmsg_len
        asm.store_imm(2, R10, rec + 4, TCPDIAG_GETSOCK),  # nlmsg_type
        asm.store_imm(2, R10, rec + 6, NLM_F_MULTI),  # nlmsg_flags
        # inet_diag_msg_common_fill
        *load("family", R9, R8),
        put(1, 16, R9),
        *load("num", R1, R8),
        asm.to_big_endian(R1, 16),
        put(2, 20, R1),
        *load("dport", R1, R8),
        put(2, 22, R1),
        *load("keepalive_time", R1, R8),
        put(4, KEEPALIVE_AT, R1),
        asm.jump_to_if_equal(R9, _socket.AF_INET6, "ipv6"),
        *load("rcv_saddr", R1, R8),
        put(4, 24, R1),
        *load("daddr", R1, R8),
        put(4, 40, R1),
        asm.goto("state"),
        Label("ipv6"),
    ]
    for word in range(4):
        code += [*load("v6_rcv_saddr", R1, R8, 4 * word, 4), put(4, 24 + 4 * word, R1)]
        code += [*load("v6_daddr", R1, R8, 4 * word, 4), put(4, 40 + 4 * word, R1)]
    code += [
        Label("state"),
        *load("state", R9, R8),
        asm.jump_to_if_equal(R9, TcpState.TIME_WAIT, "timewait"),
        asm.jump_to_if_equal(R9, TCP_NEW_SYN_RECV, "request"),
        # inet_sk_diag_fill: a full socket
        put(1, 17, R9),
        asm.load(4, R1, R6, resolved["uid_offset"]),  # ctx->uid: sock_i_uid, as netlink
        put(4, 80, R1),
        asm.mov_reg(R1, R8),
        asm.call(resolved["to_tcp"]),  # r0 = bpf_skc_to_tcp_sock(sk)
        asm.jump_to_if_equal(R0, 0, "write"),
        asm.mov_reg(R8, R0),  # r8 = the tcp_sock
        *load("pending", R1, R8),
        asm.mov_imm(R2, 1),
        asm.jump_to_if_equal(R1, ICSK_TIME_RETRANS, "timer"),
        asm.jump_to_if_equal(R1, ICSK_TIME_REO_TIMEOUT, "timer"),
        asm.jump_to_if_equal(R1, ICSK_TIME_LOSS_PROBE, "timer"),
        asm.mov_imm(R2, 4),
        asm.jump_to_if_equal(R1, ICSK_TIME_PROBE0, "timer"),
        asm.mov_imm(R2, 0),
        *load("timer_pprev", R1, R8),
        asm.jump_to_if_equal(R1, 0, "timer"),
        asm.mov_imm(R2, 2),  # sk_timer pending: the keepalive timer
        Label("timer"),
        put(1, 18, R2),
        asm.jump_to_if_equal(R9, TcpState.LISTEN, "listen"),
        asm.jump_to_if_equal(R9, TcpState.CLOSE_WAIT, "ages"),
        asm.jump_to_if_equal(R9, TcpState.FIN_WAIT2, "inode"),
        asm.goto("write"),  # the audit reads no inode of another state
        Label("listen"),
        *load("ack_backlog", R1, R8),
        put(4, 72, R1),
        *load("max_ack_backlog", R1, R8),
        put(4, 76, R1),
        asm.goto("inode"),
        Label("ages"),
        asm.call(resolved["jiffies"]),  # r0 = jiffies; its low 32 bits are tcp_jiffies32
        asm.mov_reg(R2, R0),
        *load("lrcvtime", R1, R8),
        asm.sub_reg(R2, R1),
        put(4, AGES_AT, R2),  # the u32 difference, as tcp_get_info computes it
        *load("rcv_tstamp", R1, R8),
        asm.sub_reg(R0, R1),
        put(4, AGES_AT + 4, R0),
        *([] if owner_inodes else [asm.goto("write")]),
        Label("inode"),
        *load("inode", R1, R8),
        put(4, 84, R1),  # idiag_inode is a u32
        asm.goto("write"),
        # inet_twsk_diag_fill: the substate, timer 3
        Label("timewait"),
        put(1, 17, R9),
        asm.store_imm(1, R10, rec + 18, 3),
        asm.mov_reg(R1, R8),
        asm.call(resolved["to_timewait"]),  # r0 = bpf_skc_to_tcp_timewait_sock(sk)
        asm.jump_to_if_equal(R0, 0, "write"),
        *load("substate", R1, R0),
        put(1, 17, R1),
        asm.goto("write"),
        # inet_req_diag_fill: SYN_RECV, timer 1
        Label("request"),
        asm.store_imm(1, R10, rec + 17, TcpState.SYN_RECV),
        asm.store_imm(1, R10, rec + 18, 1),
        Label("write"),
        *asm.seq_write(R7, rec, RECORD_SIZE, resolved["seq_write"]),
        Label("out"),
        *asm.return_zero(),
    ]
    return asm.assemble(code)


def hz_from(keepalive_jiffies: int, keepalive_seconds: int) -> int | None:
    """Return jiffies per second from tcp_keepalive_time in both units, or None if they disagree.

    proc_dointvec_jiffies stores the sysctl's seconds times HZ.
    """
    if keepalive_seconds <= 0 or keepalive_jiffies % keepalive_seconds:
        return None
    hz = keepalive_jiffies // keepalive_seconds
    return hz if 0 < hz <= 100_000 else None


def _times_small(values: array[int], factor: int) -> array[int] | None:
    """Return every u32 of ``values`` times ``factor``, or None if a product might wrap.

    A value whose top byte is below that of U32 // factor cannot wrap (one
    C-level translate of the top bytes tells), and then the column read as
    one integer, times ``factor``, is every value times ``factor`` in place,
    as no product carries into its neighbour: 0.5 ms for 31,000 ages instead
    of 3 ms for a max() and a multiply per value.
    """
    size = values.itemsize
    top = size - 1 if sys.byteorder == "little" else 0
    below = _U32 // factor >> 8 * (size - 1)  # top bytes that cannot wrap
    if memoryview(values).cast("B")[top::size].tobytes().translate(None, _BYTES[:below]):
        return None
    whole = int.from_bytes(values, sys.byteorder) * factor
    product = array("I")
    product.frombytes(whole.to_bytes(len(values) * size, sys.byteorder))
    return product


def jiffies_to_msecs(values: array[int], hz: int) -> array[int]:
    """Return the u32 milliseconds of u32 jiffies as the kernel's jiffies_to_msecs() rounds.

    include/linux/jiffies.h, kernel/time/time.c: (MSEC_PER_SEC / HZ) * j when
    HZ divides 1000, else rounded up (DIV_ROUND_UP(j * 1000, HZ) in lowest
    terms, for HZ above 1000 too), truncated to the unsigned int it returns.
    """
    if hz == 1000:
        return values
    if 1000 % hz == 0:
        factor = 1000 // hz
        product = _times_small(values, factor)
        if product is not None:
            return product
        return array("I", [value * factor & _U32 for value in values])
    return array("I", [(value * 1000 + hz - 1) // hz & _U32 for value in values])
