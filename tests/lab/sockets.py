"""Create real TCP sockets in known states on loopback and read them back from procfs.

Meant to run inside :func:`tests.lab.netns.fresh_netns`, where the namespace starts empty, so
the state counts in ``/proc/net/tcp`` and ``/proc/net/tcp6`` are exactly what the lab made.
Every maker waits until the kernel has moved *its own* sockets into the promised states before
returning, so tests never need to sleep.
"""

from __future__ import annotations

import os
import select
import socket
import struct
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType, TracebackType
from typing import Final, Self

__all__ = [
    "PROC_NET",
    "TCP_STATES",
    "Conn",
    "ListenOverflow",
    "SocketLab",
    "TcpEntry",
    "count_tcp_states",
    "read_netstat",
    "read_tcp_table",
]

# The calling thread's view of its namespace; equal to /proc/net in the main thread (see netns).
PROC_NET: Final = "/proc/thread-self/net"

# include/net/tcp_states.h.  Request sockets (TCP_NEW_SYN_RECV internally) are printed as
# SYN_RECV by net/ipv4/tcp_ipv4.c get_openreq4(), so 0x0C never shows up in /proc/net/tcp.
TCP_STATES: Final[Mapping[int, str]] = MappingProxyType(
    {
        0x01: "ESTABLISHED",
        0x02: "SYN_SENT",
        0x03: "SYN_RECV",
        0x04: "FIN_WAIT1",
        0x05: "FIN_WAIT2",
        0x06: "TIME_WAIT",
        0x07: "CLOSE",
        0x08: "CLOSE_WAIT",
        0x09: "LAST_ACK",
        0x0A: "LISTEN",
        0x0B: "CLOSING",
        0x0C: "NEW_SYN_RECV",
    }
)
_STATE_NAMES: Final = frozenset(TCP_STATES.values())
_LOOPBACK: Final[Mapping[int, str]] = MappingProxyType(
    {socket.AF_INET: "127.0.0.1", socket.AF_INET6: "::1"}
)
_POLL_S: Final = 0.005


@dataclass(frozen=True)
class TcpEntry:
    """One row of /proc/net/tcp or /proc/net/tcp6."""

    family: socket.AddressFamily
    local: tuple[str, int]
    remote: tuple[str, int]
    state: str
    tx_queue: int
    rx_queue: int
    timer: int  # "tr": 0 none, 1 retransmit, 2 keepalive (sk_timer), 3 TIME_WAIT, 4 zero-window
    timer_when: int  # "tm->when", clock_t (USER_HZ) ticks until the timer fires
    inode: int  # 0 for orphaned sockets and TIME_WAIT minisocks (no struct socket left)


@dataclass(frozen=True)
class Conn:
    """A loopback connection made by the lab; closed ends are None but keep their ports."""

    family: socket.AddressFamily
    client: socket.socket | None
    server: socket.socket | None
    client_port: int
    server_port: int
    client_inode: int
    server_inode: int


@dataclass(frozen=True)
class ListenOverflow:
    """A backlog-1 listener that was never accepted from, and the clients that hit it."""

    listener: socket.socket
    clients: tuple[socket.socket, ...]
    port: int


def _decode_addr(family: socket.AddressFamily, text: str) -> tuple[str, int]:
    """Decode ``HEXADDR:HEXPORT`` as printed by net/ipv4/tcp_ipv4.c / net/ipv6/tcp_ipv6.c."""
    addr_hex, port_hex = text.split(":")
    # The address is the network-order buffer printed as native-endian 32-bit words (%08X).
    words = [int(addr_hex[i : i + 8], 16) for i in range(0, len(addr_hex), 8)]
    raw = struct.pack(f"={len(words)}I", *words)
    return socket.inet_ntop(family, raw), int(port_hex, 16)


def read_tcp_table(proc_net: str = PROC_NET) -> list[TcpEntry]:
    """Parse every TCP socket of the namespace from ``tcp`` and ``tcp6`` under ``proc_net``."""
    entries: list[TcpEntry] = []
    for name, family in (("tcp", socket.AF_INET), ("tcp6", socket.AF_INET6)):
        try:
            with open(os.path.join(proc_net, name), encoding="ascii") as fh:
                next(fh)  # header
                for line in fh:
                    f = line.split()
                    tx, rx = f[4].split(":")
                    tr, when = f[5].split(":")
                    entries.append(
                        TcpEntry(
                            family=family,
                            local=_decode_addr(family, f[1]),
                            remote=_decode_addr(family, f[2]),
                            state=TCP_STATES[int(f[3], 16)],
                            tx_queue=int(tx, 16),
                            rx_queue=int(rx, 16),
                            timer=int(tr, 16),
                            timer_when=int(when, 16),
                            inode=int(f[9]),
                        )
                    )
        except FileNotFoundError:  # no IPv6 in this kernel
            continue
    return entries


def count_tcp_states(proc_net: str = PROC_NET) -> Counter[str]:
    """Count TCP sockets per state name, IPv4 and IPv6 together."""
    counts: Counter[str] = Counter()
    for name in ("tcp", "tcp6"):
        try:
            with open(os.path.join(proc_net, name), encoding="ascii") as fh:
                next(fh)
                for line in fh:
                    counts[TCP_STATES[int(line.split(maxsplit=4)[3], 16)]] += 1
        except FileNotFoundError:
            continue
    return counts


def read_netstat(proc_net: str = PROC_NET, name: str = "netstat") -> dict[str, dict[str, int]]:
    """Parse ``netstat`` (TcpExt, IpExt, ...) or ``snmp`` (Tcp, Udp, ...) counters by group."""
    groups: dict[str, dict[str, int]] = {}
    with open(os.path.join(proc_net, name), encoding="ascii") as fh:
        lines = fh.read().splitlines()
    # net/ipv4/proc.c prints each group as a header line followed by a value line.
    for header, values in zip(lines[::2], lines[1::2], strict=True):
        group, _, keys = header.partition(":")
        _, _, nums = values.partition(":")
        groups[group] = dict(zip(keys.split(), map(int, nums.split()), strict=True))
    return groups


def _tcpext(counter: str) -> int:
    """Return one TcpExt counter of the calling thread's namespace."""
    return read_netstat()["TcpExt"][counter]


def _inode(sock: socket.socket) -> int:
    """Return the socket inode, the number /proc/net/tcp prints in its ``inode`` column."""
    return os.fstat(sock.fileno()).st_ino


def _wait_until(check: Callable[[], str | None], timeout: float, what: str) -> None:
    """Poll ``check`` (None means done, else a description of what is still wrong)."""
    deadline = time.monotonic() + timeout
    while True:
        problem = check()
        if problem is None:
            return
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{what} not reached within {timeout:g} s: {problem}")
        time.sleep(_POLL_S)


class SocketLab:
    """Make loopback TCP sockets in exact states and close whatever is still open on exit.

    Use it inside a fresh namespace: ``with fresh_netns(), SocketLab() as lab: ...``.  Makers
    open a private listener, accept every connection and close the listener again, so only the
    requested states remain.  ``timeout`` bounds every blocking socket call and every wait.
    """

    def __init__(self, timeout: float = 5.0) -> None:
        """Prepare an empty lab whose blocking calls and waits give up after ``timeout`` s."""
        self.timeout = timeout
        self._open: list[socket.socket] = []

    def __enter__(self) -> Self:
        """Return the lab itself."""
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Close every socket the lab still holds."""
        self.close()

    def close(self) -> None:
        """Close every socket the lab still holds, newest first."""
        while self._open:
            self._open.pop().close()

    # -- building blocks -------------------------------------------------------------------

    def _track(self, sock: socket.socket) -> socket.socket:
        """Register ``sock`` for cleanup and give it the lab's timeout."""
        sock.settimeout(self.timeout)
        self._open.append(sock)
        return sock

    def _close(self, sock: socket.socket) -> None:
        """Close a tracked socket now."""
        self._open.remove(sock)
        sock.close()

    def _socket(self, family: socket.AddressFamily) -> socket.socket:
        """Open a tracked TCP socket."""
        return self._track(socket.socket(family, socket.SOCK_STREAM))

    def _pairs(
        self,
        n: int,
        family: socket.AddressFamily,
        prepare: Callable[[socket.socket], None] | None = None,
    ) -> list[tuple[socket.socket, socket.socket]]:
        """Connect and accept ``n`` client/server pairs through a short-lived listener."""
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        listener = self.listen(family=family, backlog=max(n, 1))
        addr = listener.getsockname()[:2]
        pairs: list[tuple[socket.socket, socket.socket]] = []
        try:
            for _ in range(n):
                client = self._socket(family)
                if prepare is not None:
                    prepare(client)
                client.connect(addr)
                server, _ = listener.accept()
                pairs.append((client, self._track(server)))
        finally:
            self._close(listener)
        return pairs

    def _conn(
        self,
        client: socket.socket,
        server: socket.socket,
        *,
        keep_client: bool = True,
        keep_server: bool = True,
    ) -> Conn:
        """Describe a pair; must be called while both sockets are still open."""
        return Conn(
            family=socket.AddressFamily(client.family),
            client=client if keep_client else None,
            server=server if keep_server else None,
            client_port=client.getsockname()[1],
            server_port=server.getsockname()[1],
            client_inode=_inode(client),
            server_inode=_inode(server),
        )

    def _await_conns(self, conns: list[Conn], client: str | None, server: str | None) -> None:
        """Wait until each connection's client and server ends are in the given states.

        None means the end must be gone from the table (fully closed).
        """
        want: dict[tuple[socket.AddressFamily, int, int], str | None] = {}
        for c in conns:
            want[(c.family, c.client_port, c.server_port)] = client
            want[(c.family, c.server_port, c.client_port)] = server

        def check() -> str | None:
            """Describe the first socket that is not in its expected state yet."""
            seen = {(e.family, e.local[1], e.remote[1]): e.state for e in read_tcp_table()}
            for key, state in want.items():
                if seen.get(key) != state:
                    return f"{key[1]}->{key[2]} is {seen.get(key)}, want {state}"
            return None

        _wait_until(check, self.timeout, f"client {client} / server {server}")

    # -- public makers ---------------------------------------------------------------------

    def listen(
        self,
        port: int = 0,
        family: socket.AddressFamily = socket.AF_INET,
        backlog: int = 128,
        reuseport: bool = False,
    ) -> socket.socket:
        """Open a LISTEN socket on the loopback address of ``family`` and return it."""
        sock = self._socket(family)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuseport:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((_LOOPBACK[family], port))
        sock.listen(backlog)
        return sock

    def established(self, n: int, family: socket.AddressFamily = socket.AF_INET) -> list[Conn]:
        """Make ``n`` open pairs: 2n ESTABLISHED sockets, both ends held by the lab."""
        conns = [self._conn(c, s) for c, s in self._pairs(n, family)]
        self._await_conns(conns, "ESTABLISHED", "ESTABLISHED")
        return conns

    def close_wait(self, n: int, family: socket.AddressFamily = socket.AF_INET) -> list[Conn]:
        """Make ``n`` pairs whose client close()d: n CLOSE_WAIT (held) + n FIN_WAIT2 (orphans).

        The orphaned client end lives ``net.ipv4.tcp_fin_timeout`` (60 s by default; as a
        TIME_WAIT minisock in substate FIN_WAIT2 when that is <= 60 s, net/ipv4/tcp.c
        __tcp_close) or until the lab closes the server end on exit.
        """
        conns: list[Conn] = []
        for client, server in self._pairs(n, family):
            conns.append(self._conn(client, server, keep_client=False))
            self._close(client)
        self._await_conns(conns, "FIN_WAIT2", "CLOSE_WAIT")
        return conns

    def fin_wait2_held(self, n: int, family: socket.AddressFamily = socket.AF_INET) -> list[Conn]:
        """Make ``n`` pairs whose client did shutdown(SHUT_WR) and keeps its descriptor.

        Client ends are FIN_WAIT2 owned by a process (no fin_timeout applies), servers are
        CLOSE_WAIT.
        """
        conns: list[Conn] = []
        for client, server in self._pairs(n, family):
            client.shutdown(socket.SHUT_WR)
            conns.append(self._conn(client, server))
        self._await_conns(conns, "FIN_WAIT2", "CLOSE_WAIT")
        return conns

    def time_wait(self, n: int, family: socket.AddressFamily = socket.AF_INET) -> list[Conn]:
        """Make exactly ``n`` TIME_WAIT sockets (client ends) and nothing else.

        The client closes first; the server reads EOF, so it is in CLOSE_WAIT before it closes
        (no simultaneous close, which would leave two TIME_WAITs), then LAST_ACK -> CLOSED.
        TIME_WAIT lasts TCP_TIMEWAIT_LEN, a fixed 60 s (include/net/tcp.h).
        """
        conns: list[Conn] = []
        for client, server in self._pairs(n, family):
            conns.append(self._conn(client, server, keep_client=False, keep_server=False))
            self._close(client)
            if server.recv(1) != b"":
                raise RuntimeError("time_wait: server received data instead of EOF")
            self._close(server)
        self._await_conns(conns, "TIME_WAIT", None)
        return conns

    def keepalive(
        self,
        n: int,
        idle: int = 600,
        interval: int = 30,
        count: int = 4,
        family: socket.AddressFamily = socket.AF_INET,
    ) -> list[Conn]:
        """Make ``n`` ESTABLISHED pairs whose client has SO_KEEPALIVE and TCP_KEEP* set.

        The client's keepalive timer (sk_timer) is then armed ``idle`` s ahead: /proc/net/tcp
        shows ``tr`` 2 and sock_diag idiag_timer 2 (net/ipv4/tcp_ipv4.c get_tcp4_sock,
        net/ipv4/inet_diag.c inet_sk_diag_fill).
        """

        def prepare(sock: socket.socket) -> None:
            """Configure keepalive before connect; tcp_finish_connect() arms the timer."""
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, idle)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, interval)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, count)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)

        conns = [self._conn(c, s) for c, s in self._pairs(n, family, prepare)]
        self._await_conns(conns, "ESTABLISHED", "ESTABLISHED")
        return conns

    def linger_zero_close(
        self, n: int, family: socket.AddressFamily = socket.AF_INET
    ) -> list[Conn]:
        """Close ``n`` fresh clients with SO_LINGER {1, 0}: RST; +n TcpExt TCPAbortOnData.

        net/ipv4/tcp.c __tcp_close: a zero linger time with an empty receive queue calls
        tcp_disconnect() and counts LINUX_MIB_TCPABORTONDATA.  Both ends leave the table; the
        server ends stay open (reset) for inspection and are closed on exit.
        """
        conns: list[Conn] = []
        for client, server in self._pairs(n, family):
            client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            conns.append(self._conn(client, server, keep_client=False))
            self._close(client)
        self._await_conns(conns, None, None)
        return conns

    def close_with_unread_data(
        self, n: int, family: socket.AddressFamily = socket.AF_INET
    ) -> list[Conn]:
        """Close ``n`` clients holding unread received data: RST; +n TcpExt TCPAbortOnClose.

        net/ipv4/tcp.c __tcp_close checks unread data first (RFC 2525 2.17) and counts
        LINUX_MIB_TCPABORTONCLOSE, whatever SO_LINGER says.  The server ends stay open (reset)
        for inspection and are closed on exit.
        """
        conns: list[Conn] = []
        for client, server in self._pairs(n, family):
            server.sendall(b"x")
            readable, _, _ = select.select([client], [], [], self.timeout)
            if not readable:
                raise TimeoutError("close_with_unread_data: data never reached the client")
            conns.append(self._conn(client, server, keep_client=False))
            self._close(client)
        self._await_conns(conns, None, None)
        return conns

    def syn_recv_overflow(
        self, connects: int = 6, family: socket.AddressFamily = socket.AF_INET
    ) -> ListenOverflow:
        """Overflow a never-accepting backlog-1 listener: TcpExt ListenOverflows/ListenDrops > 0.

        The accept queue is full once it holds more than ``backlog`` sockets
        (include/net/sock.h sk_acceptq_is_full); further SYNs are dropped in
        net/ipv4/tcp_input.c tcp_conn_request with LISTENOVERFLOWS and tcp_listendrop().
        The first two clients end ESTABLISHED, the rest stay SYN_SENT, retrying.
        """
        if connects < 3:
            raise ValueError("need at least 3 connects to overflow a backlog-1 listener")
        before = _tcpext("ListenOverflows")
        listener = self.listen(family=family, backlog=1)
        addr = listener.getsockname()[:2]
        clients: list[socket.socket] = []
        for _ in range(connects):
            client = self._socket(family)
            client.setblocking(False)
            client.connect_ex(addr)
            clients.append(client)

        def check() -> str | None:
            """Report the overflow counter until it moved."""
            now = _tcpext("ListenOverflows")
            return None if now > before else f"ListenOverflows still {now}"

        _wait_until(check, self.timeout, "ListenOverflows increase")
        return ListenOverflow(listener=listener, clients=tuple(clients), port=addr[1])

    # -- observation -----------------------------------------------------------------------

    def wait_for_states(
        self, expected: Mapping[str, int], timeout: float = 5.0, exact: bool = True
    ) -> Counter[str]:
        """Poll /proc/net/tcp{,6} until the state counts match ``expected``; return them.

        With ``exact`` every state not named must be absent; otherwise only named ones count.
        Raises TimeoutError carrying the last counts seen.
        """
        unknown = set(expected) - _STATE_NAMES
        if unknown:
            raise ValueError(
                f"unknown TCP state names {sorted(unknown)}; use {sorted(_STATE_NAMES)}"
            )
        want = Counter({k: v for k, v in expected.items() if v})
        seen: Counter[str] = Counter()

        def check() -> str | None:
            """Compare the current counts with the wanted ones."""
            nonlocal seen
            seen = count_tcp_states()
            got = seen if exact else Counter({k: seen[k] for k in expected if seen[k]})
            return None if got == want else f"have {dict(seen)}, want {dict(want)}"

        _wait_until(check, timeout, "TCP state counts")
        return seen
