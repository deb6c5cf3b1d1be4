#!/usr/bin/env python3
"""Benchmark tcptune against the classic socket-state runbook commands on many real sockets.

Each scenario (an idle namespace, then one per ``--sizes`` entry) runs in its own throwaway
network namespace: the script re-executes itself under ``unshare --net``, brings ``lo`` up,
raises a few *namespaced* sysctls, fills the namespace with a mix of ESTABLISHED, TIME_WAIT,
CLOSE_WAIT and FIN_WAIT2 loopback sockets, verifies the counts and then measures every command
(median wall time, max RSS, CPU).  The host namespace is never touched.  See bench/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import resource
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final, NoReturn

# --------------------------------------------------------------------------------------------
# What is measured.  Add a spec here to measure another command; ``key`` is its CLI handle.
# --------------------------------------------------------------------------------------------

PY: Final = sys.executable
PSUTIL_SNIPPET: Final = (
    "import collections, json, psutil; "
    "print(json.dumps(collections.Counter(c.status for c in psutil.net_connections(kind='tcp'))))"
)


@dataclass(frozen=True)
class CommandSpec:
    """One command to measure, run without a shell unless its argv starts one."""

    key: str  # short unique handle for --only/--include and the ratio targets
    name: str  # label in the results table
    argv: tuple[str, ...]
    ok_exit: frozenset[int] = frozenset({0})  # statuses that mean "ran to completion"
    counts: str | None = None  # how to read state counts from stdout, see parse_counts()
    run_for_s: float | None = None  # long-running command: SIGINT after this many seconds
    # CPU per refresh = (median CPU - median CPU of spec ``baseline``) / ``refreshes``: the
    # baseline runs the same command with fewer refreshes, so start-up cost cancels out.
    refreshes: int | None = None
    baseline: str | None = None
    optional: bool = False  # measured only when named with --include (baseline comes along)


COMMANDS: Final[tuple[CommandSpec, ...]] = (
    CommandSpec(
        key="tcptune",
        name="tcptune audit --json",
        argv=(PY, "-m", "tcptune", "audit", "--json"),
        # 0-3 are the audit's verdicts (OK/WARNING/CRITICAL/INCOMPLETE, tcptune/exitcodes.py).
        ok_exit=frozenset({0, 1, 2, 3}),
        counts="tcptune-json",
    ),
    CommandSpec(
        key="python",
        name="python3 -c pass (start-up floor)",
        argv=(PY, "-c", "pass"),
    ),
    CommandSpec(
        key="tcptune-no-owners",
        name="tcptune audit --json --no-owners",
        argv=(PY, "-m", "tcptune", "audit", "--json", "--no-owners"),
        ok_exit=frozenset({0, 1, 2, 3}),
        counts="tcptune-json",
    ),
    CommandSpec(
        key="ss-p",
        name="ss -tanp | awk | sort | uniq -c",
        # The peer for attribution: -p also reads every process's descriptors.
        argv=("sh", "-c", "ss -tanp | awk '{print $1}' | sort | uniq -c"),
        counts="uniq-c",
    ),
    CommandSpec(
        key="ss",
        name="ss -tan | awk | sort | uniq -c",
        argv=("sh", "-c", "ss -tan | awk '{print $1}' | sort | uniq -c"),
        counts="uniq-c",
    ),
    CommandSpec(
        key="netstat",
        name="netstat -ant | awk | sort | uniq -c",
        argv=("sh", "-c", "netstat -ant | awk '{print $6}' | sort | uniq -c"),
        counts="uniq-c",
    ),
    CommandSpec(
        key="psutil",
        name="psutil.net_connections (Counter)",
        argv=(PY, "-c", PSUTIL_SNIPPET),
        counts="json-dict",
    ),
    CommandSpec(
        key="tcptune-watch-1",
        name="tcptune watch --count 1",
        argv=(PY, "-m", "tcptune", "watch", "--json", "--interval", "0.1", "--count", "1"),
        optional=True,
    ),
    CommandSpec(
        key="tcptune-watch",
        name="tcptune watch --count 21",
        argv=(PY, "-m", "tcptune", "watch", "--json", "--interval", "0.1", "--count", "21"),
        refreshes=20,
        baseline="tcptune-watch-1",
        optional=True,
    ),
)

# Ratio targets: (numerator key, denominator key, bound, "max" or "min").
# The targets are for `tcptune audit` against `ss -tan`; the audit also
# names CLOSE_WAIT owners, so it is compared with `ss -tanp` too, and the
# --no-owners audit (what the periodic metrics run uses) with `ss -tan`.
TARGETS: Final[tuple[tuple[str, str, float, str], ...]] = (
    ("tcptune", "ss", 0.8, "max"),
    ("tcptune-no-owners", "ss", 0.8, "max"),
    ("tcptune", "ss-p", 0.8, "max"),
    ("psutil", "tcptune", 10.0, "min"),
    ("psutil", "tcptune-no-owners", 10.0, "min"),
)
IDLE_TARGET_S: Final = 0.150

# Socket mix (fractions of the total).  CLOSE_WAIT >= FIN_WAIT2 because every FIN_WAIT2 here is
# the orphaned client of a CLOSE_WAIT server; the surplus CLOSE_WAITs lost their peer.
DEFAULT_MIX: Final = (0.40, 0.25, 0.20, 0.15)  # ESTABLISHED, TIME_WAIT, CLOSE_WAIT, FIN_WAIT2

# Sysctls set inside the benchmark namespace only (after checking it is not the host's).  All
# are per-netns (net/ipv4/sysctl_net_ipv4.c ipv4_net_table, net/core/sysctl_net_core.c
# netns_core_table); global ones such as tcp_max_orphans are registered for init_net only
# (ipv4_table) and do not even exist under /proc/sys inside a new namespace.
NETNS_SYSCTLS: Final[tuple[tuple[str, str], ...]] = (
    ("net.ipv4.ip_local_port_range", "1024 65535"),
    ("net.ipv4.tcp_max_tw_buckets", "1000000"),
    # Orphaned FIN_WAIT2 must outlive the measurement.  Above 60 s they stay full orphan
    # sockets (net/ipv4/tcp.c __tcp_close) and count against the host-wide tcp_max_orphans,
    # hence the guard in run_scenario().
    ("net.ipv4.tcp_fin_timeout", "300"),
    # The default 2 lets connect() on loopback recycle a TIME_WAIT 4-tuple older than 1 s
    # (net/ipv4/tcp_ipv4.c tcp_twsk_unique), which would eat into the TIME_WAIT count.
    ("net.ipv4.tcp_tw_reuse", "0"),
    ("net.core.somaxconn", "65535"),
    ("net.ipv4.tcp_max_syn_backlog", "65535"),
)

TCP_FIN_WAIT2: Final = 5  # include/net/tcp_states.h
TIME_WAIT_LEN_S: Final = 60.0  # TCP_TIMEWAIT_LEN, include/net/tcp.h; not tunable
TIME_WAIT_MARGIN_S: Final = 5.0
FD_RESERVE: Final = 64  # descriptors a holder keeps free for Python, the control socket, ...
REPO: Final = Path(__file__).resolve().parent.parent
RESULTS: Final = Path(__file__).resolve().parent / "results" / "latest.json"

# Names ss and netstat print, mapped to the kernel's (include/net/tcp_states.h).
_STATE_ALIASES: Final[Mapping[str, str]] = MappingProxyType(
    {
        "ESTAB": "ESTABLISHED",
        "SYN-SENT": "SYN_SENT",
        "SYN-RECV": "SYN_RECV",
        "FIN-WAIT-1": "FIN_WAIT1",
        "FIN-WAIT-2": "FIN_WAIT2",
        "TIME-WAIT": "TIME_WAIT",
        "UNCONN": "CLOSE",
        "CLOSE-WAIT": "CLOSE_WAIT",
        "LAST-ACK": "LAST_ACK",
        "CLOSING": "CLOSING",
        "LISTEN": "LISTEN",
    }
)
_KERNEL_STATES: Final = frozenset(
    {
        "ESTABLISHED",
        "SYN_SENT",
        "SYN_RECV",
        "FIN_WAIT1",
        "FIN_WAIT2",
        "TIME_WAIT",
        "CLOSE",
        "CLOSE_WAIT",
        "LAST_ACK",
        "LISTEN",
        "CLOSING",
    }
)


def log(message: str) -> None:
    """Print a progress line on stderr."""
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def die(message: str) -> NoReturn:
    """Print an error and exit with status 2."""
    print(f"bench: error: {message}", file=sys.stderr, flush=True)
    sys.exit(2)


def normalize_state(name: str) -> str | None:
    """Map an ss/netstat/psutil/kernel state name to the kernel's, or None if it is not one."""
    upper = name.strip().upper()
    if upper in _KERNEL_STATES:
        return upper
    return _STATE_ALIASES.get(upper)


def parse_counts(kind: str, stdout: str) -> dict[str, int] | None:
    """Read per-state counts out of a command's output; None when it cannot be parsed."""
    try:
        match kind:
            case "uniq-c":
                counts: dict[str, int] = {}
                for line in stdout.splitlines():
                    parts = line.split()
                    if len(parts) == 2 and (state := normalize_state(parts[1])) is not None:
                        counts[state] = counts.get(state, 0) + int(parts[0])
                return counts
            case "json-dict":
                raw = json.loads(stdout)
                return {normalize_state(k) or k: int(v) for k, v in raw.items() if v}
            case "tcptune-json":
                states = json.loads(stdout)["sockets"]["states"]
                return {k: int(v["total"]) for k, v in states.items() if v["total"]}
            case _:
                return None
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


# --------------------------------------------------------------------------------------------
# Measuring one run
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    """One measured run of a command."""

    wall_s: float
    cpu_s: float
    maxrss_kib: int
    exit_code: int  # the shell's $? (128+N: died of signal N); -9 when the run was killed
    timed_out: bool
    stdout: str
    stderr_tail: str


# Runs "$@" as a child of bash and reports, from the same process after exec, the rusage of
# the reaped children (RUSAGE_CHILDREN: max ru_maxrss over the command's whole process tree,
# summed CPU) plus bash's EPOCHREALTIME around the command, on fd 3.  A process started
# directly by this (large) Python would not do: exec_mmap() in fs/exec.c folds the high-water
# RSS of the pre-exec mm, i.e. this interpreter's (shared under vfork, copied by fork), into the
# new program's signal->maxrss, and wait4() would report ~20 MiB even for /bin/true.  Children
# of bash start from bash's small mm, so the floor is ~1 MiB, the same as GNU time's %M.
RUSAGE_WRAPPER: Final = """trap : INT
t0=$EPOCHREALTIME
"$@" 3>&-
rc=$?
t1=$EPOCHREALTIME
exec "$0" -I -S -c 'import resource, sys
r = resource.getrusage(resource.RUSAGE_CHILDREN)
print(*sys.argv[1:], r.ru_maxrss, r.ru_utime + r.ru_stime)' "$rc" "$t0" "$t1" >&3
"""


def run_once(spec: CommandSpec, timeout_s: float) -> Sample:
    """Run ``spec`` under RUSAGE_WRAPPER in its own process group and return its measures.

    RUSAGE_CHILDREN covers every descendant that was waited for: kernel/exit.c
    wait_task_zombie folds each reaped child's max(maxrss, cmaxrss) into the parent's cmaxrss,
    so for ``sh -c 'a | b | c'`` the figure is the largest RSS of sh, a, b and c (not their
    sum) and the CPU is their total.  Linux reports ru_maxrss in KiB (getrusage(2)).
    """
    argv = ["bash", "-c", RUSAGE_WRAPPER, PY, *spec.argv]
    with (
        tempfile.TemporaryFile() as out,
        tempfile.TemporaryFile() as err,
        tempfile.TemporaryFile() as rep,
    ):
        actions = [
            (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
            (os.POSIX_SPAWN_DUP2, out.fileno(), 1),
            (os.POSIX_SPAWN_DUP2, err.fileno(), 2),
            (os.POSIX_SPAWN_DUP2, rep.fileno(), 3),
        ]
        timed_out = False
        start = time.perf_counter()
        pid = os.posix_spawnp("bash", argv, os.environ, file_actions=actions, setpgroup=0)
        pidfd = os.pidfd_open(pid)
        try:
            limit = spec.run_for_s if spec.run_for_s is not None else timeout_s
            if not select.select([pidfd], [], [], limit)[0]:
                # A long-running spec gets SIGINT (bash traps it and still reports); a
                # command over its time limit is killed with its whole process group.
                timed_out = spec.run_for_s is None
                os.killpg(pid, signal.SIGKILL if timed_out else signal.SIGINT)
                if not select.select([pidfd], [], [], 5.0)[0]:
                    timed_out = True
                    os.killpg(pid, signal.SIGKILL)
        finally:
            os.close(pidfd)
        os.waitpid(pid, 0)
        outer_wall = time.perf_counter() - start
        for f in (out, err, rep):
            f.seek(0)
        stdout = out.read(1 << 20).decode(errors="replace")
        stderr = err.read().decode(errors="replace")
        report = rep.read().decode(errors="replace").split()
    if timed_out or len(report) != 5:
        return Sample(outer_wall, 0.0, 0, -signal.SIGKILL, True, stdout, stderr[-600:])
    rc, t0, t1, maxrss, cpu = report
    # EPOCHREALTIME uses the locale's decimal separator.
    wall = float(t1.replace(",", ".")) - float(t0.replace(",", "."))
    return Sample(
        wall_s=wall,
        cpu_s=float(cpu),
        maxrss_kib=int(maxrss),
        exit_code=int(rc),  # bash's $?: 128+N when the command died of signal N
        timed_out=False,
        stdout=stdout,
        stderr_tail=stderr[-600:],
    )


@dataclass
class CommandResult:
    """All runs of one command in one scenario, summarized."""

    key: str
    name: str
    argv: list[str]
    walls_s: list[float] = field(default_factory=list)
    cpus_s: list[float] = field(default_factory=list)
    maxrss_kib: list[int] = field(default_factory=list)
    exit_codes: list[int] = field(default_factory=list)
    ok_exit: list[int] = field(default_factory=list)
    refreshes: int | None = None
    counts: dict[str, int] | None = None
    counts_match: bool | None = None
    stdout_head: str = ""
    stderr_tail: str = ""
    last_stdout: str = field(default="", repr=False)  # full output of the last run, not saved

    def add(self, sample: Sample) -> None:
        """Record one run."""
        self.walls_s.append(sample.wall_s)
        self.cpus_s.append(sample.cpu_s)
        self.maxrss_kib.append(sample.maxrss_kib)
        self.exit_codes.append(sample.exit_code)
        self.stdout_head = sample.stdout[:400]
        self.last_stdout = sample.stdout
        if sample.exit_code not in self.ok_exit or sample.timed_out:
            self.stderr_tail = sample.stderr_tail

    @property
    def ok(self) -> bool:
        """Tell whether every run completed with an accepted exit status."""
        return bool(self.exit_codes) and all(c in self.ok_exit for c in self.exit_codes)

    def summary(self) -> dict[str, Any]:
        """Return the JSON-ready summary with medians and maxima."""
        data = asdict(self)
        del data["last_stdout"]
        data["ok"] = self.ok
        if self.walls_s:
            data["median_wall_s"] = statistics.median(self.walls_s)
            data["min_wall_s"] = min(self.walls_s)
            data["median_cpu_s"] = statistics.median(self.cpus_s)
            data["max_rss_mib"] = max(self.maxrss_kib) / 1024
        return data


# --------------------------------------------------------------------------------------------
# Inside the namespace: filling it with sockets
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    """How many connections of each kind one scenario creates."""

    established_pairs: int
    close_wait_pairs: int  # server CLOSE_WAIT (held) + client FIN_WAIT2 (orphan)
    detached_close_wait: int  # server CLOSE_WAIT (held) whose orphaned peer already expired
    time_wait: int

    @classmethod
    def for_size(cls, total: int, mix: Sequence[float]) -> Plan:
        """Split ``total`` sockets following ``mix`` (ESTAB, TIME_WAIT, CLOSE_WAIT, FIN_WAIT2)."""
        est, _tw, cw, fw2 = mix
        pairs = round(total * est / 2)
        fin_wait2 = round(total * fw2)
        close_wait = max(round(total * cw), fin_wait2)
        time_wait = max(total - 2 * pairs - close_wait - fin_wait2, 0)
        return cls(pairs, fin_wait2, close_wait - fin_wait2, time_wait)

    @property
    def expected(self) -> dict[str, int]:
        """Return the state counts the plan must produce."""
        counts = {
            "ESTABLISHED": 2 * self.established_pairs,
            "TIME_WAIT": self.time_wait,
            "CLOSE_WAIT": self.close_wait_pairs + self.detached_close_wait,
            "FIN_WAIT2": self.close_wait_pairs,
        }
        return {k: v for k, v in counts.items() if v}

    @property
    def held_fds(self) -> int:
        """Return the descriptors the plan's held sockets need in total."""
        return 2 * self.established_pairs + self.close_wait_pairs + self.detached_close_wait

    @property
    def peak_fds(self) -> int:
        """Return the most descriptors open at once (detached pairs are built in one go)."""
        return max(self.held_fds, 2 * self.detached_close_wait)

    def split(self, parts: int) -> list[Plan]:
        """Share the descriptor-holding work among ``parts`` holders as evenly as possible."""

        def share(n: int, i: int) -> int:
            """Return holder ``i``'s part of ``n``."""
            return n // parts + (1 if i < n % parts else 0)

        return [
            Plan(
                share(self.established_pairs, i),
                share(self.close_wait_pairs, i),
                share(self.detached_close_wait, i),
                0,
            )
            for i in range(parts)
        ]


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


def _child(ctl: socket.socket, work: Any, *args: Any) -> NoReturn:
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


def _hold(plan: Plan, dests: int, ctl: socket.socket) -> None:
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


def _make_time_wait(n: int, dests: int, offset: int) -> dict[str, Any]:
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

    def spawn(self, work: Any, *args: Any, pass_ctl: bool = False) -> None:
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


# --------------------------------------------------------------------------------------------
# Inside the namespace: one scenario
# --------------------------------------------------------------------------------------------


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


def measure_all(
    specs: Sequence[CommandSpec],
    repeat: int,
    timeout_s: float,
    deadline: float | None,
    warmup: bool,
) -> tuple[list[CommandResult], int, str | None]:
    """Measure every spec ``repeat`` times, interleaved so all see the same sockets."""
    results = [
        CommandResult(
            key=s.key,
            name=s.name,
            argv=list(s.argv),
            ok_exit=sorted(s.ok_exit),
            refreshes=s.refreshes,
        )
        for s in specs
    ]
    if warmup:
        for spec in specs:
            run_once(spec, timeout_s)  # page cache, .pyc files
    done = 0
    stopped: str | None = None
    last_round = 0.0
    for rep in range(repeat):
        if rep and deadline is not None and time.monotonic() + last_round > deadline:
            stopped = f"stopped after {rep} of {repeat} rounds: TIME_WAIT sockets about to expire"
            break
        started = time.monotonic()
        for spec, result in zip(specs, results, strict=True):
            result.add(run_once(spec, timeout_s))
        last_round = time.monotonic() - started
        done += 1
        log(f"  round {rep + 1}/{repeat}: {last_round:.1f} s")
    return results, done, stopped


def run_scenario(cfg: dict[str, Any]) -> dict[str, Any]:
    """Build one scenario's sockets in this (fresh) namespace and measure every command."""
    sysctls = setup_namespace(cfg["host_netns"])
    specs = [
        CommandSpec(**{**s, "argv": tuple(s["argv"]), "ok_exit": frozenset(s["ok_exit"])})
        for s in cfg["commands"]
    ]
    size: int = cfg["size"]
    plan = Plan.for_size(size, cfg["mix"])
    scenario: dict[str, Any] = {
        "name": cfg["name"],
        "sockets": size,
        "plan": asdict(plan),
        "expected": plan.expected,
        "sysctls": sysctls,
    }
    log(f"scenario {cfg['name']}: {size} sockets, plan {plan.expected}")
    orphans_now = global_orphans()
    orphan_budget = cfg["max_orphans"] // 4
    if orphans_now + plan.close_wait_pairs > orphan_budget:
        die(
            f"{plan.close_wait_pairs} orphaned FIN_WAIT2 on top of {orphans_now} existing "
            f"orphans would exceed a quarter of the host's tcp_max_orphans ({cfg['max_orphans']})"
        )
    holders = Workers()
    makers = Workers()
    deadline: float | None = None
    try:
        started = time.monotonic()
        if plan.held_fds:
            _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
            per_holder = hard - FD_RESERVE
            if per_holder < 1024:
                die(f"RLIMIT_NOFILE hard limit {hard} is too low to hold sockets")
            parts = math.ceil(plan.peak_fds / per_holder)
            for share in plan.split(parts):
                holders.spawn(_hold, share, cfg["dests"], pass_ctl=True)
            holders.collect(timeout_s=600)
            log(
                f"  {parts} holder processes hold {plan.held_fds} descriptors "
                f"({time.monotonic() - started:.1f} s)"
            )
        if plan.time_wait:
            # TIME_WAIT last: it lasts a fixed 60 s from here on.
            deadline = time.monotonic() + TIME_WAIT_LEN_S - TIME_WAIT_MARGIN_S
            workers = max(1, min(os.cpu_count() or 1, 4))
            base, extra = divmod(plan.time_wait, workers)
            offset = 0
            for w in range(workers):
                n = base + (1 if w < extra else 0)
                makers.spawn(_make_time_wait, n, cfg["dests"], offset)
                offset += n
            makers.collect(timeout_s=300)
            makers.stop()
        scenario["create_s"] = time.monotonic() - started
        counts = wait_for_counts(plan.expected, timeout_s=20)
        scenario["counts_before"] = counts
        scenario["counts_ok"] = counts == plan.expected
        log(
            f"  created in {scenario['create_s']:.1f} s; ss counts {counts}"
            + ("" if scenario["counts_ok"] else f"  MISMATCH, expected {plan.expected}")
        )
        results, done, stopped = measure_all(
            specs, cfg["repeat"], cfg["timeout"], deadline, warmup=cfg["warmup"]
        )
        scenario["counts_after"] = ss_counts()
        scenario["rounds"] = done
        scenario["note"] = stopped
        summaries = []
        for spec, result in zip(specs, results, strict=True):
            if spec.counts is not None and result.ok:
                result.counts = parse_counts(spec.counts, result.last_stdout)
                if result.counts is not None:
                    result.counts_match = result.counts == (plan.expected or {})
            summaries.append(result.summary())
        by_key = {r.key: r for r in results}
        for spec, summary in zip(specs, summaries, strict=True):
            ref = by_key.get(spec.baseline or "")
            if spec.refreshes and ref is not None and ref.ok and summary["ok"]:
                extra_cpu = summary["median_cpu_s"] - statistics.median(ref.cpus_s)
                summary["cpu_per_refresh_s"] = extra_cpu / spec.refreshes
        scenario["commands"] = summaries
        if cfg.get("calibrate"):
            scenario["calibration"] = calibrate(cfg["timeout"])
    finally:
        makers.stop()
        holders.stop()
    return scenario


def calibrate(timeout_s: float) -> dict[str, Any]:
    """Check that a pipeline member's RSS reaches the report: a 96 MiB process inside sh -c."""
    spec = CommandSpec(
        key="calibration",
        name="sh -c 'python (96 MiB) | cat'",
        argv=("sh", "-c", f"{PY} -c 'b = bytes(1) * (96 << 20); print(len(b))' | cat"),
    )
    sample = run_once(spec, timeout_s)
    mib = sample.maxrss_kib / 1024
    return {"command": spec.name, "max_rss_mib": mib, "ok": mib >= 96}


def inner_main(cfg_json: str, result_path: str) -> None:
    """Run one scenario inside the namespace and write its JSON result."""
    os.chdir(REPO)  # `python -m tcptune` then works from a plain checkout
    cfg = json.loads(cfg_json)
    scenario = run_scenario(cfg)
    Path(result_path).write_text(json.dumps(scenario))


# --------------------------------------------------------------------------------------------
# Outside: orchestration, table, JSON
# --------------------------------------------------------------------------------------------


def spec_to_json(spec: CommandSpec) -> dict[str, Any]:
    """Serialize a spec for the inner process."""
    data = asdict(spec)
    data["ok_exit"] = sorted(spec.ok_exit)
    data["argv"] = list(spec.argv)
    return data


def select_specs(args: argparse.Namespace) -> list[CommandSpec]:
    """Return the specs to measure: defaults, --include'd optional ones, --cmd extras, --only."""
    known = {s.key for s in COMMANDS}
    for key in [*args.include, *args.only]:
        if key not in known:
            die(f"unknown command key {key!r}; known: {', '.join(sorted(known))}")
    include = set(args.include)
    include |= {s.baseline for s in COMMANDS if s.key in include and s.baseline is not None}
    specs = [s for s in COMMANDS if not s.optional or s.key in include]
    for i, extra in enumerate(args.cmd):
        name, sep, command = extra.partition("=")
        if not sep or not name or not command:
            die(f"--cmd expects NAME=SHELL-COMMAND, got {extra!r}")
        specs.append(CommandSpec(key=f"cmd{i + 1}", name=name, argv=("sh", "-c", command)))
    if args.only:
        keep = {*args.only, *include}
        specs = [s for s in specs if s.key in keep or s.key.startswith("cmd")]
    return specs


def run_in_namespace(cfg: dict[str, Any]) -> dict[str, Any]:
    """Re-execute this script under ``unshare --net`` for one scenario and load its result."""
    with tempfile.TemporaryDirectory(prefix="tcptune-bench-") as tmp:
        result = Path(tmp) / "scenario.json"
        argv = [
            "unshare",
            "--net",
            "--",
            PY,
            str(Path(__file__).resolve()),
            "--inner-scenario",
            json.dumps(cfg),
            "--inner-result",
            str(result),
        ]
        proc = subprocess.run(argv, check=False, timeout=3600)
        if proc.returncode != 0 or not result.exists():
            return {
                "name": cfg["name"],
                "sockets": cfg["size"],
                "error": f"scenario process exited {proc.returncode}",
            }
        loaded: dict[str, Any] = json.loads(result.read_text())
        return loaded


def _fmt_ms(seconds: float | None) -> str:
    """Format seconds as milliseconds."""
    return "-" if seconds is None else f"{seconds * 1000:.0f}"


def _status(cmd: Mapping[str, Any]) -> str:
    """Summarize exit codes and count checks of a command."""
    codes = sorted(set(cmd["exit_codes"]))
    text = ",".join(str(c) for c in codes)
    if not cmd["ok"]:
        text += " FAILED"
    if cmd.get("counts_match") is True:
        text += " counts ok"
    elif cmd.get("counts_match") is False:
        text += " COUNTS DIFFER"
    return text


def ratios(scenario: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Compute the target ratios of one scenario's median wall times."""
    by_key = {c["key"]: c for c in scenario.get("commands", [])}
    rows = []
    for num, den, bound, kind in TARGETS:
        a, b = by_key.get(num), by_key.get(den)
        row: dict[str, Any] = {
            "ratio": f"{num}/{den}",
            "target": f"{'<=' if kind == 'max' else '>='} {bound:g}x",
            "value": None,
            "met": None,
            "note": "",
        }
        if a is None or b is None:
            row["note"] = "not measured"
        elif not a["ok"] or not b["ok"]:
            failed = num if not a["ok"] else den
            row["note"] = f"{failed} failed (exit {sorted(set(by_key[failed]['exit_codes']))})"
        else:
            value = a["median_wall_s"] / b["median_wall_s"]
            row["value"] = value
            row["met"] = value <= bound if kind == "max" else value >= bound
        rows.append(row)
    return rows


def print_report(report: Mapping[str, Any]) -> None:
    """Print the results and targets as tables."""
    from tabulate import tabulate

    rows = []
    for sc in report["scenarios"]:
        if "error" in sc:
            rows.append([sc["name"], sc["sockets"], "ERROR: " + sc["error"], "", "", "", "", ""])
            continue
        for cmd in sc["commands"]:
            per_refresh = cmd.get("cpu_per_refresh_s")
            cpu = _fmt_ms(cmd.get("median_cpu_s"))
            if per_refresh is not None:
                cpu += f" ({_fmt_ms(per_refresh)}/refresh)"
            rows.append(
                [
                    sc["name"],
                    sc["sockets"],
                    cmd["name"],
                    _fmt_ms(cmd.get("median_wall_s")),
                    _fmt_ms(cmd.get("min_wall_s")),
                    f"{cmd.get('max_rss_mib', 0):.1f}",
                    cpu,
                    _status(cmd),
                ]
            )
    print(
        tabulate(
            rows,
            headers=[
                "scenario",
                "sockets",
                "command",
                "median ms",
                "min ms",
                "max RSS MiB",
                "CPU ms",
                "exit / check",
            ],
            colalign=("left", "right", "left", "right", "right", "right", "right", "left"),
            disable_numparse=True,
        )
    )
    print()
    target_rows = []
    for sc in report["scenarios"]:
        if "error" in sc:
            continue
        if sc["sockets"] == 0:
            tc = next((c for c in sc["commands"] if c["key"] == "tcptune"), None)
            if tc is not None:
                med = tc.get("median_wall_s")
                met = tc["ok"] and med is not None and med < IDLE_TARGET_S
                target_rows.append(
                    [
                        sc["name"],
                        "tcptune wall",
                        f"< {IDLE_TARGET_S * 1000:.0f} ms",
                        f"{_fmt_ms(med)} ms",
                        "yes" if met else "NO",
                        "" if tc["ok"] else "tcptune failed",
                    ]
                )
            continue
        for row in ratios(sc):
            value = "-" if row["value"] is None else f"{row['value']:.2f}x"
            met = "-" if row["met"] is None else ("yes" if row["met"] else "NO")
            target_rows.append(
                [sc["name"], row["ratio"] + " wall", row["target"], value, met, row["note"]]
            )
    headers = ["scenario", "measure", "target", "value", "met", "note"]
    print(tabulate(target_rows, headers=headers, disable_numparse=True))
    for sc in report["scenarios"]:
        notes = [sc.get("note")] if sc.get("note") else []
        if sc.get("counts_ok") is False:
            notes.append(f"socket counts {sc['counts_before']} != expected {sc['expected']}")
        if sc.get("counts_after") not in (None, sc.get("counts_before")):
            notes.append(f"socket counts changed during measurement: now {sc['counts_after']}")
        if "calibration" in sc and not sc["calibration"]["ok"]:
            notes.append(f"max-RSS calibration failed: {sc['calibration']}")
        for note in notes:
            print(f"note ({sc['name']}): {note}")


def tool_versions() -> dict[str, str]:
    """Return the versions of the measured tools, best effort."""
    versions: dict[str, str] = {}
    for name, argv in (("ss", ["ss", "-V"]), ("netstat", ["netstat", "--version"])):
        try:
            out = subprocess.run(argv, capture_output=True, text=True, check=False).stdout
            versions[name] = out.splitlines()[0].strip() if out else "?"
        except OSError:
            versions[name] = "missing"
    try:
        import psutil

        versions["psutil"] = psutil.__version__
    except ImportError:
        versions["psutil"] = "missing"
    return versions


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(
        description="Benchmark tcptune audit against ss/netstat/psutil on many real sockets, "
        "each scenario in a throwaway network namespace."
    )
    parser.add_argument(
        "--sizes",
        default="10000,50000,150000",
        help="comma-separated socket totals (default: %(default)s)",
    )
    parser.add_argument("--repeat", type=int, default=5, help="runs per command (median)")
    parser.add_argument("--quick", action="store_true", help="smoke run: --sizes 2000 --repeat 2")
    parser.add_argument(
        "--cmd",
        action="append",
        default=[],
        metavar="NAME=SHELL-COMMAND",
        help="also measure this shell command (repeatable)",
    )
    parser.add_argument(
        "--include",
        action="append",
        default=[],
        metavar="KEY",
        help="also measure an optional spec, e.g. tcptune-watch (repeatable)",
    )
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="KEY",
        help="measure only these spec keys (plus any --cmd; repeatable)",
    )
    parser.add_argument(
        "--mix",
        default=",".join(f"{x * 100:g}" for x in DEFAULT_MIX),
        help="percent ESTABLISHED,TIME_WAIT,CLOSE_WAIT,FIN_WAIT2 (default: %(default)s)",
    )
    parser.add_argument(
        "--dests",
        type=int,
        default=16,
        help="loopback destinations 127.0.0.1..N to spread 4-tuples over",
    )
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per command run")
    parser.add_argument("--no-idle", action="store_true", help="skip the idle-namespace scenario")
    parser.add_argument("--output", type=Path, default=RESULTS, help="JSON results path")
    parser.add_argument("--inner-scenario", help=argparse.SUPPRESS)
    parser.add_argument("--inner-result", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes, args.repeat = "2000", 2
    return args


def main(argv: Sequence[str] | None = None) -> None:
    """Run every scenario in its own namespace, print the tables and write the JSON."""
    args = parse_args(argv)
    if args.inner_scenario is not None:
        inner_main(args.inner_scenario, args.inner_result)
        return
    if os.geteuid() != 0:
        die("needs root: `unshare --net` requires CAP_SYS_ADMIN")
    for tool in ("unshare", "ip", "bash"):
        if shutil.which(tool) is None:
            die(f"{tool} not found")
    probe = ["bash", "-c", "echo $EPOCHREALTIME"]
    if not subprocess.run(probe, capture_output=True, text=True, check=False).stdout.strip():
        die("bash >= 5.0 is needed (EPOCHREALTIME)")
    try:
        sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
        mix = [float(x) / 100 for x in args.mix.split(",")]
    except ValueError:
        die("--sizes and --mix take comma-separated numbers")
    if len(mix) != 4 or abs(sum(mix) - 1) > 1e-6 or mix[3] > mix[2]:
        die("--mix needs 4 percentages summing to 100 with FIN_WAIT2 <= CLOSE_WAIT")
    if args.repeat < 1 or any(s < 0 for s in sizes) or not 1 <= args.dests <= 254:
        die("--repeat must be >= 1, sizes >= 0 and --dests within 1..254")
    specs = select_specs(args)
    # An installed tcptune is byte-compiled by pip; a checkout run with
    # PYTHONDONTWRITEBYTECODE=1 (as on this machine) would otherwise recompile
    # every module on every run. Compile once so start-up is measured as users get it.
    subprocess.run([PY, "-m", "compileall", "-q", str(REPO / "tcptune")], check=True)
    base = {
        "host_netns": os.readlink("/proc/self/ns/net"),
        "max_orphans": int(Path("/proc/sys/net/ipv4/tcp_max_orphans").read_text()),
        "commands": [spec_to_json(s) for s in specs],
        "mix": mix,
        "dests": args.dests,
        "timeout": args.timeout,
    }
    scenarios_cfg = (
        []
        if args.no_idle
        else [
            {
                **base,
                "name": "idle",
                "size": 0,
                "repeat": max(args.repeat, 5),
                "warmup": True,
                "calibrate": True,
            }
        ]
    )
    scenarios_cfg += [
        {**base, "name": f"{n:,}", "size": n, "repeat": args.repeat, "warmup": False} for n in sizes
    ]
    started = time.time()
    scenarios = [run_in_namespace(cfg) for cfg in scenarios_cfg]
    report = {
        "meta": {
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
            "duration_s": round(time.time() - started, 1),
            "kernel": platform.release(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "tools": tool_versions(),
            "argv": sys.argv[1:],
            "repeat": args.repeat,
            "mix": dict(
                zip(["ESTABLISHED", "TIME_WAIT", "CLOSE_WAIT", "FIN_WAIT2"], mix, strict=True)
            ),
            "method": "wall = bash EPOCHREALTIME around the command, median over repeats; "
            "max RSS = max over repeats of getrusage(RUSAGE_CHILDREN).ru_maxrss of the bash "
            "that ran the command (max over its reaped process tree); "
            "CPU = ru_utime + ru_stime of the same, median over repeats",
        },
        "scenarios": scenarios,
        "targets": {sc["name"]: ratios(sc) for sc in scenarios if "error" not in sc},
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print_report(report)
    print(f"\nJSON: {args.output}")


if __name__ == "__main__":
    main()
