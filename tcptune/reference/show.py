"""``tcptune explain TOPIC --show``: run the topic's experiment in a throwaway network namespace.

The experiment runs in a forked child that first calls unshare(CLONE_NEWNET) and checks that
its namespace changed, so every socket it makes lives on a private loopback and every counter
it reads is the new namespace's. It writes no sysctl at all: each experiment works with the
defaults a new namespace starts with. The child reports its observations through a pipe and
exits; the namespace disappears with it. Needs CAP_SYS_ADMIN (root) for the unshare.
"""

from __future__ import annotations

import errno
import json
import os
import select
import socket
import struct
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from tcptune.model.record import record

CLONE_NEWNET = 0x40000000  # include/uapi/linux/sched.h
_SIOCGIFFLAGS, _SIOCSIFFLAGS, _IFF_UP = 0x8913, 0x8914, 0x1  # sockios.h, if.h
_IFREQ = struct.Struct("16sH22x")
_DEADLINE_S = 10.0
_MAX_REPORT = 64 * 1024


@record
class ShowResult:
    """What one experiment saw: a heading and one line per observation."""

    topic: str
    title: str
    lines: tuple[str, ...]


class ShowUnavailable(Exception):
    """The experiment could not run here (no namespace support, timeout)."""


class ShowNotPermitted(ShowUnavailable):
    """unshare(CLONE_NEWNET) was refused: the experiment needs root (CAP_SYS_ADMIN)."""


# -- helpers that run inside the child's namespace ------------------------------------------


def _counters() -> dict[str, int]:
    """Return Tcp and TcpExt counters of this process's (new) namespace, by name."""
    values: dict[str, int] = {}
    for name in ("snmp", "netstat"):
        lines = Path("/proc/self/net", name).read_text(encoding="ascii").splitlines()
        for header, row in zip(lines[::2], lines[1::2], strict=False):
            group, _, keys = header.partition(":")
            if group in ("Tcp", "TcpExt"):
                values.update(zip(keys.split(), map(int, row.split()[1:]), strict=False))
    return values


def _sockstat() -> dict[str, int]:
    for line in Path("/proc/self/net/sockstat").read_text(encoding="ascii").splitlines():
        if line.startswith("TCP:"):
            words = line.split()[1:]
            return dict(zip(words[::2], map(int, words[1::2]), strict=False))
    return {}


def _states() -> list[tuple[str, int, int, float]]:
    """Return (st hex code, local port, inode, timer seconds left) from /proc/net/tcp."""
    rows = []
    for line in Path("/proc/self/net/tcp").read_text(encoding="ascii").splitlines()[1:]:
        fields = line.split()
        when = int(fields[5].split(":")[1], 16) / 100  # clock_t, USER_HZ 100
        rows.append((fields[3], int(fields[1].split(":")[1], 16), int(fields[9]), when))
    return rows


def _delta(before: Mapping[str, int], *names: str) -> str:
    now = _counters()
    return ", ".join(f"{name} +{now[name] - before[name]}" for name in names)


@contextmanager
def _pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    """Yield a connected loopback (client, server) pair; close both afterwards."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.create_connection(listener.getsockname(), timeout=2)
        server, _ = listener.accept()
    server.settimeout(2)
    try:
        yield client, server
    finally:
        client.close()
        server.close()


def _peer_sees(sock: socket.socket) -> str:
    try:
        data = sock.recv(16)
    except OSError as exc:
        return f"{type(exc).__name__} ({exc.strerror})"
    return "end of file" if data == b"" else f"{len(data)} bytes"


# -- the experiments ------------------------------------------------------------------------


def _linger_zero() -> list[str]:
    with _pair() as (client, server):
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        before = _counters()
        client.close()
        seen = _peer_sees(server)
        return [
            "close() with SO_LINGER {1, 0} on an idle socket (nothing in flight):",
            f"  counters: {_delta(before, 'TCPAbortOnData', 'OutRsts', 'TCPAbortOnClose')}",
            f"  the peer's recv(): {seen}",
            f"  TIME_WAIT left: {sum(1 for r in _states() if r[0] == '06')}",
        ]


def _unread_close() -> list[str]:
    with _pair() as (client, server):
        server.sendall(b"unread")
        select.select([client], [], [], 2)
        before = _counters()
        client.close()
        return [
            "close() of a socket whose received data was never read:",
            f"  counters: {_delta(before, 'TCPAbortOnClose', 'OutRsts', 'TCPAbortOnData')}",
            f"  the peer's recv(): {_peer_sees(server)}",
        ]


def _orphan_fin_wait2() -> list[str]:
    with _pair() as (client, server):
        port = client.getsockname()[1]
        client.close()
        server.recv(1)
        time.sleep(0.05)
        rows = [r for r in _states() if r[1] == port]
        counts = _sockstat()
        lines = ["close() by one side; the peer reads EOF and keeps its socket (CLOSE_WAIT):"]
        for code, _port, inode, left in rows:
            lines.append(
                f"  closed side in /proc/net/tcp: st {code}, inode {inode}, {left:.0f} s left"
            )
        lines.append(
            f"  sockstat: inuse {counts.get('inuse')} (the CLOSE_WAIT end), "
            f"tw {counts.get('tw')} (the FIN_WAIT2 minisocket)"
        )
        lines.append(
            f"  Tcp CurrEstab: {_counters()['CurrEstab']} (CLOSE_WAIT counts as established)"
        )
        server.shutdown(socket.SHUT_WR)
        time.sleep(0.05)
        codes = sorted(r[0] for r in _states())
        lines.append(f"  shutdown(SHUT_WR) on the CLOSE_WAIT end: st now {' '.join(codes)}")
        lines.append(f"  (CLOSE_WAIT gone, no close(): descriptor {server.fileno()} still open)")
        return lines


def _time_wait() -> list[str]:
    with _pair() as (client, server):
        port = client.getsockname()[1]
        client.close()
        server.recv(1)
        server.close()
        time.sleep(0.05)
        fin_timeout = Path("/proc/sys/net/ipv4/tcp_fin_timeout").read_text().strip()
        rows = [r for r in _states() if r[1] == port]
        return [
            "the side that closed first, after the peer closed too:",
            *(
                f"  st {code} (TIME_WAIT), {left:.0f} s left on its timer"
                for code, *_x, left in rows
            ),
            f"  (tcp_fin_timeout here is {fin_timeout}; TIME_WAIT is TCP_TIMEWAIT_LEN, 60 s)",
        ]


def _user_timeout() -> list[str]:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    first = socket.create_connection(listener.getsockname(), timeout=2)  # fills the queue
    bounded = socket.socket()
    bounded.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, 1000)
    bounded.settimeout(5)
    started = time.monotonic()
    try:
        bounded.connect(listener.getsockname())
        outcome = "connected"
    except OSError as exc:
        outcome = f"{type(exc).__name__} ({exc.strerror})"
    elapsed = time.monotonic() - started
    for sock in (bounded, first, listener):
        sock.close()
    return [
        "connect() with TCP_USER_TIMEOUT=1000 to a listener whose accept queue is full",
        "(the kernel drops the SYNs):",
        f"  connect(): {outcome} after {elapsed:.2f} s",
        "  (with tcp_syn_retries=6 alone it would take about 131 s)",
    ]


def _keepalive() -> list[str]:
    lines = ["keepalive timers (/proc/net/tcp tr 2) of three idle ESTABLISHED sockets:"]
    options: list[tuple[str, list[tuple[int, int, int]]]] = [
        ("no SO_KEEPALIVE", []),
        ("SO_KEEPALIVE", [(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)]),
        (
            "SO_KEEPALIVE + TCP_KEEPIDLE=60",
            [
                (socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1),
                (socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 60),
            ],
        ),
    ]
    for label, opts in options:
        with _pair() as (client, _server):
            for level, name, value in opts:
                client.setsockopt(level, name, value)
            port = client.getsockname()[1]
            tail = Path("/proc/self/net/tcp").read_text().splitlines()[1:]
            timer = next(
                (row.split()[5] for row in tail if int(row.split()[1].split(":")[1], 16) == port),
                "?",
            )
            kind, when = timer.split(":") if ":" in timer else ("?", "0")
            armed = f"{int(when, 16) / 100:.0f} s" if kind == "02" else "none"
            lines.append(f"  {label}: keepalive timer {armed}")
    lines.append("  (tcp_keepalive_time is the namespace default; TCP_KEEPIDLE overrides it)")
    return lines


EXPERIMENTS: Mapping[str, Callable[[], list[str]]] = {
    "so_linger": _linger_zero,
    "linger-zero": _linger_zero,
    "abort-on-close": _unread_close,
    "shutdown-vs-close": _unread_close,
    "fin-wait-2": _orphan_fin_wait2,
    "close-wait": _orphan_fin_wait2,
    "time-wait": _time_wait,
    "net.ipv4.tcp_fin_timeout": _time_wait,
    "tcp_user_timeout": _user_timeout,
    "net.ipv4.tcp_syn_retries": _user_timeout,
    "so_keepalive": _keepalive,
    "keepalive": _keepalive,
    "net.ipv4.tcp_keepalive_time": _keepalive,
}


# -- the throwaway namespace ----------------------------------------------------------------


def _bring_lo_up() -> None:
    import fcntl

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        req = bytearray(_IFREQ.pack(b"lo", 0))
        fcntl.ioctl(sock.fileno(), _SIOCGIFFLAGS, req)
        (flags,) = _IFREQ.unpack(req)[1:]
        fcntl.ioctl(sock.fileno(), _SIOCSIFFLAGS, bytearray(_IFREQ.pack(b"lo", flags | _IFF_UP)))


def _child(topic: str, write_fd: int) -> None:
    """Run in the forked child: new namespace, experiment, report; never returns."""
    import ctypes

    status = 1
    report: dict[str, object]
    try:
        before = os.readlink("/proc/self/ns/net")
        if ctypes.CDLL(None, use_errno=True).unshare(CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            report = {
                "error": f"unshare(CLONE_NEWNET): {os.strerror(err)} (needs root)",
                "permission": err == errno.EPERM,
            }
        elif os.readlink("/proc/self/ns/net") == before:
            report = {"error": "unshare(CLONE_NEWNET) left the process in its namespace"}
        else:
            _bring_lo_up()
            report = {"lines": EXPERIMENTS[topic]()}
            status = 0
    except Exception as exc:  # any failure becomes the report, never a traceback
        report = {"error": f"{type(exc).__name__}: {exc}"}
    with os.fdopen(write_fd, "w", encoding="utf-8") as out:
        out.write(json.dumps(report))
    os._exit(status)


def run_show(topic: str, title: str) -> ShowResult:
    """Run ``topic``'s experiment in a forked child inside a new network namespace."""
    if topic not in EXPERIMENTS:
        raise KeyError(topic)
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through the pipe
        os.close(read_fd)
        _child(topic, write_fd)
    os.close(write_fd)
    chunks: list[bytes] = []
    deadline = time.monotonic() + _DEADLINE_S
    with os.fdopen(read_fd, "rb") as pipe:
        while time.monotonic() < deadline and sum(map(len, chunks)) < _MAX_REPORT:
            if not select.select([pipe], [], [], max(deadline - time.monotonic(), 0))[0]:
                break
            chunk = os.read(pipe.fileno(), 4096)
            if not chunk:
                break
            chunks.append(chunk)
    finished = 0
    while not finished:
        finished, _status = os.waitpid(pid, os.WNOHANG)
        if not finished and time.monotonic() >= deadline:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            raise ShowUnavailable(f"the experiment did not finish within {_DEADLINE_S:g} s")
        if not finished:
            time.sleep(0.01)
    try:
        report = json.loads(b"".join(chunks).decode("utf-8"))
    except ValueError as exc:
        raise ShowUnavailable("the experiment reported nothing readable") from exc
    if "error" in report:
        refused = ShowNotPermitted if report.get("permission") else ShowUnavailable
        raise refused(str(report["error"]))
    return ShowResult(topic, title, tuple(str(line) for line in report["lines"]))


__all__ = ["EXPERIMENTS", "ShowNotPermitted", "ShowResult", "ShowUnavailable", "run_show"]
