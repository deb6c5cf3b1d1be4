"""Read the age of every CLOSE_WAIT socket: a kernel-filtered sock_diag dump with tcp_info.

A dump of its own (idiag_states = 1 << CLOSE_WAIT, idiag_ext = INET_DIAG_INFO),
so the main dump stays lean: only the CLOSE_WAIT sockets are sent, each with
its struct tcp_info (include/uapi/linux/tcp.h). Works unprivileged. Layouts:
include/uapi/linux/netlink.h, inet_diag.h; message offsets as in diagparse.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Callable

from tcptune.inspect.diagparse import NLMSG_DONE, NLMSG_ERROR, TCPDIAG_GETSOCK, SockDiagError
from tcptune.model.closewait import CloseWaitAges
from tcptune.model.tcpstates import TcpState

NETLINK_SOCK_DIAG = 4
NLM_F_REQUEST, NLM_F_DUMP = 0x1, 0x300
INET_DIAG_INFO = 2  # enum inet_diag_attr; requested as bit INET_DIAG_INFO - 1
CLOSE_WAIT_MASK = 1 << TcpState.CLOSE_WAIT.value
_NLMSGHDR = struct.Struct("=IHHII")
_REQUEST = struct.Struct("=BBBB48xII")  # legacy inet_diag_req: both families at once
_ATTR = struct.Struct("=HH")
_U32 = struct.Struct("=I")
MESSAGE_BODY = 88  # nlmsghdr (16) + struct inet_diag_msg (72): attributes follow
PORT_AT, INODE_AT = 20, 84  # big-endian sport; host-order u32 inode
# struct tcp_info: tcpi_last_data_recv at 52, tcpi_last_ack_recv at 56 (u32 ms)
LAST_DATA_RECV, LAST_ACK_RECV = 52, 56
MAX_MESSAGES = 4_000_000  # a runaway bound
SockFactory = Callable[[], socket.socket]


def _open() -> socket.socket:
    return socket.socket(
        socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_SOCK_DIAG
    )


def request() -> bytes:
    """Return the dump request: CLOSE_WAIT sockets of both families, with tcp_info."""
    payload = _REQUEST.pack(socket.AF_UNSPEC, 0, 0, 1 << (INET_DIAG_INFO - 1), CLOSE_WAIT_MASK, 0)
    flags = NLM_F_REQUEST | NLM_F_DUMP
    return _NLMSGHDR.pack(_NLMSGHDR.size + len(payload), TCPDIAG_GETSOCK, flags, 1, 0) + payload


def read_close_wait_ages(sock_factory: SockFactory | None = None) -> CloseWaitAges:
    """Return every CLOSE_WAIT socket's age; raise OSError or SockDiagError if netlink fails."""
    ages: dict[int, tuple[float, float]] = {}
    ports: dict[int, int] = {}
    with (sock_factory or _open)() as sock:
        sock.sendall(request())
        while True:
            chunk = sock.recv(1 << 16)
            if not chunk:
                raise SockDiagError("netlink closed the dump early")
            if _parse(memoryview(chunk), ages, ports):
                return CloseWaitAges(ages, ports)
            if len(ages) > MAX_MESSAGES:
                raise SockDiagError(f"more than {MAX_MESSAGES} CLOSE_WAIT sockets")


def _parse(chunk: memoryview, ages: dict[int, tuple[float, float]], ports: dict[int, int]) -> bool:
    """Add one chunk's messages; return True at the end of the dump."""
    position = 0
    while position + 16 <= len(chunk):
        length, kind = struct.unpack_from("=IH", chunk, position)
        if length < 16 or position + length > len(chunk):
            raise SockDiagError(f"malformed netlink message of length {length}")
        if kind == NLMSG_DONE:
            return True
        if kind == NLMSG_ERROR:
            error = -struct.unpack_from("=i", chunk, position + 16)[0]
            raise SockDiagError(f"sock_diag error {error}")
        if kind == TCPDIAG_GETSOCK and length >= MESSAGE_BODY:
            message = chunk[position : position + length]
            inode = _U32.unpack_from(message, INODE_AT)[0]
            info = _attribute(message, INET_DIAG_INFO)
            if info is not None and len(info) >= LAST_ACK_RECV + 4:
                last_ack = _U32.unpack_from(info, LAST_ACK_RECV)[0] / 1000
                last_data = _U32.unpack_from(info, LAST_DATA_RECV)[0] / 1000
                ages[inode] = (last_ack, max(last_ack, last_data))
                ports[inode] = int.from_bytes(message[PORT_AT : PORT_AT + 2], "big")
        position += (length + 3) & ~3
    return False


def _attribute(message: memoryview, wanted: int) -> memoryview | None:
    """Return the payload of the first rtattr of type ``wanted`` after the diag message."""
    position = MESSAGE_BODY
    while position + 4 <= len(message):
        length, kind = _ATTR.unpack_from(message, position)
        if length < 4 or position + length > len(message):
            return None
        if kind == wanted:
            return message[position + 4 : position + length]
        position += (length + 3) & ~3
    return None
