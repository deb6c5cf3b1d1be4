"""Count TCP sockets by state from /proc/net/tcp and /proc/net/tcp6, line by line.

The fallback where netlink sock_diag is unavailable. Column layout from
net/ipv4/tcp_ipv4.c (get_tcp4_sock, get_timewait4_sock) and
net/ipv6/tcp_ipv6.c (get_tcp6_sock): addresses are hex in host byte order,
ports hex, the state a two-digit hex code from include/net/tcp_states.h.
"""

from __future__ import annotations

import _socket  # not socket: see sockdiag.py
import os
import sys

from tcptune.inspect.procfs import ProcFS, describe_os_error, open_regular
from tcptune.inspect.sockdetails import DetailsBuilder
from tcptune.model.snapshot import Endpoint, Problem
from tcptune.model.tcpstates import TcpState

# A /proc/net/tcp line is 150 characters; 16 M lines is far more sockets than
# any host holds. A tree whose net/tcp never ends (or has no newline) stops here.
MAX_LINE = 4096
MAX_LINES = 16 << 20

_MIN_FIELDS = 10  # sl, local, remote, st, tx:rx, tr:when, retrnsmt, uid, timeout, inode


def _address(hex_address: str) -> str:
    raw = bytes.fromhex(hex_address)
    # Each 32-bit word is printed in host byte order (%08X of a __be32 read as u32).
    words = (
        b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
        if sys.byteorder == "little"
        else raw
    )
    if len(raw) == 4:
        return _socket.inet_ntop(_socket.AF_INET, words)
    if len(raw) == 16:
        return _socket.inet_ntop(_socket.AF_INET6, words)
    raise ValueError(f"address of {len(raw)} bytes")


def _endpoint(field: str) -> Endpoint:
    address, _, port = field.partition(":")
    number = int(port, 16)
    if not 0 <= number <= 0xFFFF:
        raise ValueError(f"port {number} is above 65535")
    return Endpoint(_address(address), number)


def read_proc_tcp(
    procfs: ProcFS,
    relative: str,
    counts: list[int],
    problems: list[Problem],
    details: DetailsBuilder | None = None,
) -> bool:
    """Add the states in ``relative`` (e.g. ``net/tcp``) to ``counts``; return False if unreadable.

    A malformed line is reported as a problem naming the file and line number
    and skipped, so one bad line does not lose the rest of the table.
    """
    path = procfs.path(relative)
    try:  # a regular file only: a FIFO never hangs, a device such as /dev/zero is refused
        handle = os.fdopen(open_regular(path), encoding="ascii", errors="replace")
    except OSError as exc:
        problems.append(Problem(str(path), describe_os_error(exc)))
        return False
    with handle:
        try:
            header = handle.readline(MAX_LINE)  # the column header
        except OSError as exc:
            problems.append(Problem(str(path), describe_os_error(exc)))
            return False
        if not header:
            problems.append(Problem(str(path), "empty file: the column header is missing"))
            return False
        for number in range(2, MAX_LINES + 2):
            line = handle.readline(MAX_LINE)
            if not line:
                break
            if not line.endswith("\n") and len(line) >= MAX_LINE:
                problems.append(
                    Problem(
                        str(path),
                        f"line {number}: longer than {MAX_LINE} characters; "
                        "the rest of the file is not read",
                    )
                )
                return True
            try:
                _parse_line(line, counts, details)
            except (ValueError, IndexError) as exc:
                shown = line.strip()[:80]
                problems.append(Problem(str(path), f"line {number}: {exc}: {shown!r}"))
        else:
            problems.append(
                Problem(str(path), f"more than {MAX_LINES} lines; the rest is not read")
            )
    return True


def _parse_line(line: str, counts: list[int], details: DetailsBuilder | None) -> None:
    fields = line.split()
    if len(fields) < _MIN_FIELDS:
        raise ValueError(f"{len(fields)} fields, expected at least {_MIN_FIELDS}")
    state = int(fields[3], 16)
    if not 1 <= state <= len(TcpState):
        raise ValueError(f"unknown TCP state code {fields[3]}")
    counts[state] += 1
    if details is None:
        return
    if state == TcpState.ESTABLISHED:
        details.established(int(fields[5].partition(":")[0], 16))
        return
    inode = int(fields[9])
    if state == TcpState.FIN_WAIT2:
        details.fin_wait2(inode)
        return
    if state not in (TcpState.CLOSE_WAIT, TcpState.LISTEN, TcpState.TIME_WAIT):
        return
    if state == TcpState.TIME_WAIT:
        local, remote = _endpoint(fields[1]), _endpoint(fields[2])
        details.time_wait(local.port, remote.address, remote.port)
        return
    local, uid = _endpoint(fields[1]), int(fields[7])
    if state == TcpState.CLOSE_WAIT:
        details.close_wait(local.address, local.port, local.port, inode)
    else:
        queued = int(fields[4].partition(":")[2], 16)
        # /proc/net/tcp does not show a listener's backlog limit: 0 means unknown.
        details.listener(local, queued, 0, inode, uid)
