"""The eleven TCP states and their kernel codes.

Codes from include/net/tcp_states.h (the same numbers appear in
/proc/net/tcp's ``st`` column and in inet_diag's ``idiag_state``):
https://github.com/torvalds/linux/blob/master/include/net/tcp_states.h
"""

from __future__ import annotations

import enum


class TcpState(enum.IntEnum):
    """A TCP state as the Linux kernel numbers it."""

    ESTABLISHED = 1
    SYN_SENT = 2
    SYN_RECV = 3
    FIN_WAIT1 = 4
    FIN_WAIT2 = 5
    TIME_WAIT = 6
    CLOSE = 7
    CLOSE_WAIT = 8
    LAST_ACK = 9
    LISTEN = 10
    CLOSING = 11

    @property
    def label(self) -> str:
        """Return the name as ss and netstat print it, e.g. ``CLOSE_WAIT``."""
        return self.name


# inet_diag reports request sockets as TCP_SYN_RECV; TCP_NEW_SYN_RECV (12) is
# only an internal code, so a dump mask of bits 1..12 covers every socket.
# idiag_states is a bit mask indexed by state code (net/ipv4/inet_diag.c).
ALL_STATES_MASK = sum(1 << code for code in range(1, 13))
