"""Real-kernel test lab: throwaway network namespaces and TCP sockets in known states.

Typical use in a test marked ``@pytest.mark.kernel``::

    with kernel_lab() as lab:          # skips (or fails under CI) without namespace support
        lab.close_wait(3)
        lab.wait_for_states({"CLOSE_WAIT": 3, "FIN_WAIT2": 3})
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from .netns import current_netns, fresh_netns, require_netns_capability, skip_or_fail
from .sockets import (
    PROC_NET,
    TCP_STATES,
    Conn,
    ListenOverflow,
    SocketLab,
    TcpEntry,
    count_tcp_states,
    read_netstat,
    read_tcp_table,
)
from .tools import promtool, require_tool

__all__ = [
    "PROC_NET",
    "TCP_STATES",
    "Conn",
    "ListenOverflow",
    "SocketLab",
    "TcpEntry",
    "count_tcp_states",
    "current_netns",
    "fresh_netns",
    "kernel_lab",
    "promtool",
    "read_netstat",
    "read_tcp_table",
    "require_netns_capability",
    "require_tool",
    "skip_or_fail",
]


@contextmanager
def kernel_lab(timeout: float = 5.0) -> Iterator[SocketLab]:
    """Yield a SocketLab inside a fresh namespace, or skip/fail the test when none can be made."""
    reason = require_netns_capability()
    if reason is not None:
        skip_or_fail(reason)
    with fresh_netns(), SocketLab(timeout=timeout) as lab:
        yield lab
