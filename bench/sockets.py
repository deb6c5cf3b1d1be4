"""Inside a throwaway namespace: fill it with real loopback sockets in known states.

Descriptor-holding sockets (both ends of ESTABLISHED pairs, CLOSE_WAIT server
ends) are spread over forked holder processes, each under its descriptor
limit; TIME_WAIT needs no descriptor and is made last by a few maker
processes, on the client side (the client closes first) or the server side
(the server closes first, each client from its own 127.x address).
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import select
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, NoReturn

from bench.specs import Plan, client_address, normalize_state

# Sysctls set inside the benchmark namespace only (after checking it is not the host's).  All
# are per-netns (net/ipv4/sysctl_net_ipv4.c ipv4_net_table, net/core/sysctl_net_core.c
# netns_core_table); global ones such as tcp_max_orphans are registered for init_net only
# (ipv4_table) and do not even exist under /proc/sys inside a new namespace.
NETNS_SYSCTLS: Final[tuple[tuple[str, str], ...]] = (
    ("net.ipv4.ip_local_port_range", "1024 65535"),
    ("net.ipv4.tcp_max_tw_buckets", "1000000"),
    # Orphaned FIN_WAIT2 must outlive the measurement.  Above 60 s they stay full orphan
    # sockets (net/ipv4/tcp.c __tcp_close) and count against the host-wide tcp_max_orphans,
    # hence the guard in the scenario.
    ("net.ipv4.tcp_fin_timeout", "300"),
    # The default 2 lets connect() on loopback recycle a TIME_WAIT 4-tuple older than 1 s
    # (net/ipv4/tcp_ipv4.c tcp_twsk_unique), which would eat into the TIME_WAIT count.
    ("net.ipv4.tcp_tw_reuse", "0"),
    ("net.core.somaxconn", "65535"),
    ("net.ipv4.tcp_max_syn_backlog", "65535"),
)
TCP_FIN_WAIT2: Final = 5  # include/net/tcp_states.h
FD_RESERVE: Final = 64  # descriptors a holder keeps free for Python, the control socket, ...
IP_BIND_ADDRESS_NO_PORT: Final = 24  # include/uapi/linux/in.h: pick the port at connect()
Work = Callable[..., Any]


def die(message: str) -> NoReturn:
    """Print an error and exit with status 2."""
    print(f"bench: error: {message}", file=sys.stderr, flush=True)
    sys.exit(2)


def _dest(i: int, dests: int) -> str:
    """Return the i-th loopback destination; all of 127.0.0.0/8 is local on lo."""
    return f"127.0.0.{1 + i % dests}"


def _pair(listener: socket.socket, dest: str) -> tuple[socket.socket, socket.socket]:
    """Connect to ``listener`` via ``dest`` and accept; return (client, server)."""
    client = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    client.connect((dest, listener.getsockname()[1]))
    server, _ = listener.accept()
    return client, server


def _listener() -> socket.socket:
    """Open a listener on 0.0.0.0 with a kernel-chosen port."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("0.0.0.0", 0))
    sock.listen(4096)
    return sock


def _child(ctl: socket.socket, work: Work, *args: Any) -> NoReturn:
    """Run ``work(*args)`` in a forked child, report on ``ctl`` and exit without cleanup.

    ``work`` returns its report, or None when it already sent one itself.
    """
    code = 0
    try:
        socket.setdefaulttimeout(30)  # no socket call may hang the benchmark
        report = work(*args)
        if report is not None:
            ctl.sendall(json.dumps({"ok": True, **report}).encode() + b"\n")
    except BaseException as exc:
        code = 1
        with contextlib.suppress(OSError):
            ctl.sendall(json.dumps({"ok": False, "error": repr(exc)}).encode() + b"\n")
    finally:
        os._exit(code)


def hold(plan: Plan, dests: int, ctl: socket.socket) -> None:
    """Create this holder's sockets, report, then keep them open until ctl closes."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if plan.peak_fds + FD_RESERVE > hard:
        raise RuntimeError(f"{plan.peak_fds} descriptors do not fit under RLIMIT_NOFILE {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    held: list[socket.socket] = []
    i = 0
    # Detached CLOSE_WAIT first: TCP_LINGER2 = 1 s makes the orphaned client a FIN_WAIT2
    # minisock that expires after ~1 s (net/ipv4/tcp.c tcp_fin_time, __tcp_close), while the
    # rest is being built; its server end stays CLOSE_WAIT forever, like a leaked socket.
    # Once such a client port is free again, connect() may pick it for the same destination
    # (it checks only its own 4-tuple, net/ipv4/inet_hashtables.c __inet_check_established),
    # and its SYN would hit and reset the CLOSE_WAIT end still owning that 4-tuple.  So every
    # detached client is connected before any is closed, and on a listener port of its own.
    detached = _listener()
    clients: list[socket.socket] = []
    for _ in range(plan.detached_close_wait):
        client, server = _pair(detached, _dest(i, dests))
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_LINGER2, 1)
        client.shutdown(socket.SHUT_WR)
        clients.append(client)
        held.append(server)
        i += 1
    detached.close()
    # close() only once the FIN is acked: in FIN_WAIT2 __tcp_close() turns the socket into a
    # FIN_WAIT2 minisock that just expires.  Closed in FIN_WAIT1 instead, an ACK arriving
    # while close() holds the socket lock arms the keepalive timer (tcp_rcv_state_process),
    # and when tcp_fin_time() <= TCP_TIMEWAIT_LEN net/ipv4/tcp_timer.c tcp_keepalive_timer()
    # then sends a RST, taking the CLOSE_WAIT end with it.
    _wait_fin_wait2(clients)
    for client in clients:
        client.close()
    clients.clear()
    listener = _listener()
    # CLOSE_WAIT + orphaned FIN_WAIT2: lives tcp_fin_timeout (300 s here).
    for _ in range(plan.close_wait_pairs):
        client, server = _pair(listener, _dest(i, dests))
        client.close()
        held.append(server)
        i += 1
    for _ in range(plan.established_pairs):
        held.extend(_pair(listener, _dest(i, dests)))
        i += 1
    listener.close()
    ctl.sendall(json.dumps({"ok": True, "held": len(held)}).encode() + b"\n")
    socket.setdefaulttimeout(None)
    ctl.settimeout(None)
    ctl.recv(1)  # block until the orchestrator closes its end


def _wait_fin_wait2(clients: Sequence[socket.socket], timeout_s: float = 30.0) -> None:
    """Wait until every socket is in FIN_WAIT2, read from TCP_INFO's tcpi_state."""
    pending = list(clients)
    deadline = time.monotonic() + timeout_s
    while pending:
        pending = [
            c
            for c in pending
            if c.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 1)[0] != TCP_FIN_WAIT2
        ]
        if pending and time.monotonic() > deadline:
            raise TimeoutError(f"{len(pending)} sockets never reached FIN_WAIT2")
        if pending:
            time.sleep(0.01)


def make_server_time_wait(n: int, offset: int) -> dict[str, Any]:
    """Create ``n`` server-side TIME_WAIT sockets, each client from its own address.

    The server closes first (an HTTP server with Connection: close): it sends
    FIN, the client reads EOF and closes, and the server end enters TIME_WAIT
    with the client's address and port as its remote endpoint.
    """
    listener = _listener()
    port = listener.getsockname()[1]
    for i in range(n):
        client = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        client.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
        client.bind((client_address(i + offset), 0))
        client.connect(("127.0.0.1", port))
        server, _ = listener.accept()
        server.close()
        if client.recv(1) != b"":
            raise RuntimeError("client received data instead of EOF")
        client.close()
    listener.close()
    return {"time_wait": n}


def make_time_wait(n: int, dests: int, offset: int) -> dict[str, Any]:
    """Create ``n`` TIME_WAIT sockets: client closes, server reads EOF, then server closes."""
    listener = _listener()
    for i in range(n):
        client, server = _pair(listener, _dest(i + offset, dests))
        client.close()
        if server.recv(1) != b"":
            raise RuntimeError("server received data instead of EOF")
        server.close()
    listener.close()
    return {"time_wait": n}


@dataclass
class Workers:
    """Forked children and their control sockets."""

    pids: list[int] = field(default_factory=list)
    ctls: list[socket.socket] = field(default_factory=list)

    def spawn(self, work: Work, *args: Any, pass_ctl: bool = False) -> None:
        """Fork a child running ``work``; it reports one JSON line on its control socket."""
        parent_end, child_end = socket.socketpair()
        pid = os.fork()
        if pid == 0:
            parent_end.close()
            for other in self.ctls:
                other.close()
            _child(child_end, work, *args, *((child_end,) if pass_ctl else ()))
        child_end.close()
        self.pids.append(pid)
        self.ctls.append(parent_end)

    def collect(self, timeout_s: float) -> list[dict[str, Any]]:
        """Wait for one report line from every child."""
        reports: dict[int, dict[str, Any]] = {}
        buffers: dict[int, bytes] = {i: b"" for i in range(len(self.ctls))}
        deadline = time.monotonic() + timeout_s
        while len(reports) < len(self.ctls):
            pending = [c for i, c in enumerate(self.ctls) if i not in reports]
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{len(pending)} workers did not report within {timeout_s} s")
            for sock in select.select(pending, [], [], left)[0]:
                i = self.ctls.index(sock)
                chunk = sock.recv(65536)
                if not chunk:
                    reports[i] = {"ok": False, "error": "worker exited without a report"}
                    continue
                buffers[i] += chunk
                if b"\n" in buffers[i]:
                    reports[i] = json.loads(buffers[i].split(b"\n", 1)[0])
        bad = [r for r in reports.values() if not r.get("ok")]
        if bad:
            raise RuntimeError(f"worker failed: {bad[0].get('error')}")
        return [reports[i] for i in range(len(self.ctls))]

    def stop(self) -> None:
        """Close the control sockets (children exit) and reap every child."""
        for sock in self.ctls:
            sock.close()
        for pid in self.pids:
            os.waitpid(pid, 0)
        self.pids.clear()
        self.ctls.clear()


def ss_counts() -> dict[str, int]:
    """Count TCP states with ``ss -Htan`` (netlink sock_diag) in this namespace."""
    out = subprocess.run(["ss", "-Htan"], capture_output=True, text=True, check=True).stdout
    counts: Counter[str] = Counter()
    for line in out.splitlines():
        state = normalize_state(line.split(maxsplit=1)[0])
        counts[state or line.split(maxsplit=1)[0]] += 1
    return dict(counts)


def global_orphans() -> int:
    """Return the host-wide orphan count (tcp_orphan_count is global, net/ipv4/proc.c)."""
    with open("/proc/net/sockstat", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("TCP:"):
                fields = line.split()
                return int(fields[fields.index("orphan") + 1])
    return 0


def wait_for_counts(expected: Mapping[str, int], timeout_s: float) -> dict[str, int]:
    """Poll ``ss`` until the namespace holds exactly ``expected``; return the last counts."""
    deadline = time.monotonic() + timeout_s
    while True:
        counts = ss_counts()
        if counts == dict(expected) or time.monotonic() >= deadline:
            return counts
        time.sleep(0.25)


def setup_namespace(host_netns: str) -> dict[str, str]:
    """Check that this is not the host namespace, bring lo up and raise namespaced sysctls."""
    here = os.readlink("/proc/self/ns/net")
    if here == host_netns:
        die(f"refusing to touch sysctls: still in the host network namespace {here}")
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    applied: dict[str, str] = {}
    for name, value in NETNS_SYSCTLS:
        path = Path("/proc/sys") / name.replace(".", "/")
        path.write_text(value + "\n")
        applied[name] = " ".join(path.read_text().split())
    return applied
