"""Frozen records of every TCP socket's options as the kernel holds them, and their owners.

Read during inspection by the BPF TCP iterator (inspect/bpf/tcpiter.py);
the advisor and the `sockets` command only read these. A value of None for
keepalive idle/interval/count or linger2 means the socket never set it and
follows the namespace's sysctl (tcp_keepalive_*, tcp_fin_timeout): the kernel
stores 0 for "default" (keepalive_time_when() and friends in include/net/tcp.h).
"""

from __future__ import annotations

from collections.abc import Mapping

from tcptune.model.record import record
from tcptune.model.snapshot import Endpoint
from tcptune.model.tcpstates import TcpState

# include/net/sock.h: skc_reuse values
SK_NO_REUSE, SK_CAN_REUSE, SK_FORCE_REUSE = 0, 1, 2


@record
class SocketOptions:
    """One full TCP socket's options (TIME_WAIT and request sockets have none)."""

    inode: int  # 0: no file (an orphan, or not yet accepted)
    state: TcpState
    local: Endpoint
    remote: Endpoint
    uid: int
    reuseaddr: bool  # SO_REUSEADDR (skc_reuse != SK_NO_REUSE)
    reuseport: bool  # SO_REUSEPORT
    keepalive: bool  # SO_KEEPALIVE (SOCK_KEEPOPEN)
    keepalive_idle: int | None  # TCP_KEEPIDLE in seconds; None: tcp_keepalive_time
    keepalive_interval: int | None  # TCP_KEEPINTVL; None: tcp_keepalive_intvl
    keepalive_count: int | None  # TCP_KEEPCNT; None: tcp_keepalive_probes
    linger: bool  # SO_LINGER l_onoff (SOCK_LINGER)
    linger_seconds: int  # SO_LINGER l_linger (meaningful with linger on)
    linger2: int | None  # TCP_LINGER2 seconds; -1: negative (RST); None: tcp_fin_timeout
    user_timeout_ms: int  # TCP_USER_TIMEOUT; 0: off
    idle_seconds: float = 0.0  # since the peer was last heard from (keepalive_time_elapsed())

    @property
    def own_keepalive(self) -> bool:
        """Return whether any keepalive timing is the socket's own rather than the sysctl's."""
        return (
            self.keepalive_idle is not None
            or self.keepalive_interval is not None
            or self.keepalive_count is not None
        )


@record
class Process:
    """A process holding sockets: pid, command name and user (names are untrusted text)."""

    pid: int
    name: str
    user: str


@record
class SocketInventory:
    """Every TCP socket's options in one network namespace, with who holds each socket."""

    sockets: tuple[SocketOptions, ...]
    holders: Mapping[int, tuple[int, ...]]  # inode -> pids holding it
    processes: Mapping[int, Process]  # pid -> process
    hz: int | None  # the kernel's jiffies per second, as measured (None: no socket to tell)
    cost_seconds: float = 0.0  # the iterator's load + read + decode time
    btf_cached: bool = False  # the BTF layout came from the cache

    def owners(self, inode: int) -> tuple[Process, ...]:
        """Return the processes holding socket ``inode`` (forked children share sockets)."""
        return tuple(self.processes[pid] for pid in self.holders.get(inode, ()))


@record
class InventoryStatus:
    """Whether the inventory could be read; if not, why and what the audit does instead."""

    inventory: SocketInventory | None
    unavailable: str | None = None  # e.g. "needs CAP_BPF and CAP_PERFMON"
    detail: str | None = None  # for --debug: the verifier log's last line, the errno
    requested: bool = False  # the user asked for options: unavailable makes it incomplete
