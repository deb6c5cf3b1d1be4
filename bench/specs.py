"""What the benchmark measures: the commands, the socket mixes, the targets, and output parsing.

Pure: nothing here runs a command or touches the system, so the suite tests it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

PSUTIL_SNIPPET: Final = (
    "import collections, json, psutil; "
    "print(json.dumps(collections.Counter(c.status for c in psutil.net_connections(kind='tcp'))))"
)
AUDIT_OK: Final = frozenset({0, 1, 2, 3})  # the audit's verdicts (tcptune/exitcodes.py)
WATCH_REFRESHES: Final = 5  # extra refreshes of the watch spec over its baseline


@dataclass(frozen=True)
class CommandSpec:
    """One command to measure, run without a shell unless its argv starts one."""

    key: str  # short unique handle for --only and the targets
    name: str  # label in the results table
    argv: tuple[str, ...]
    ok_exit: frozenset[int] = frozenset({0})  # statuses that mean "ran to completion"
    counts: str | None = None  # how to read state counts from stdout, see parse_counts()
    # CPU per refresh = (median CPU - median CPU of spec ``baseline``) / ``refreshes``.
    refreshes: int | None = None
    baseline: str | None = None
    slow: bool = False  # measured after the core rounds, while TIME_WAIT lasts
    idle_only: bool = False  # only in the idle scenario (start-up)


@dataclass(frozen=True)
class Tools:
    """Where the measured programs are: the venv's interpreter and script, the C floors."""

    python: str  # the interpreter the installed console script runs
    tcptune: tuple[str, ...]  # argv prefix that runs the installed tcptune
    nlcount: str | None = None  # compiled ../shared/bench/nlcount.c, if a compiler was found
    auditfloor: str | None = None
    bench_python: str = "python3"  # the interpreter with psutil (for the psutil spec)


def commands(tools: Tools) -> tuple[CommandSpec, ...]:
    """Return every command the benchmark measures, in the order of each round."""
    tt = tools.tcptune
    six = str(1 + WATCH_REFRESHES)
    specs = [
        CommandSpec("python", "python -c pass (start-up floor)", (tools.python, "-c", "pass")),
        # The audit of issue 13 (sock_diag counts and details, CLOSE_WAIT owners). Issue 12
        # added a BPF inventory of every socket's options, on by default: measured apart.
        CommandSpec(
            "tcptune",
            "tcptune audit --json --no-options",
            (*tt, "audit", "--json", "--no-options"),
            AUDIT_OK,
            "tcptune-json",
        ),
        CommandSpec(
            "tcptune-no-owners",
            "tcptune audit --json --no-owners --no-options",
            (*tt, "audit", "--json", "--no-owners", "--no-options"),
            AUDIT_OK,
            "tcptune-json",
        ),
        # The full audit without any BPF: the sock_diag dump and a readlink of every
        # /proc/PID/fd entry, as an unprivileged (or BTF-less) run does it.
        CommandSpec(
            "tcptune-no-bpf",
            "tcptune audit --json --no-options --source netlink --owners-source procfs",
            (
                *tt,
                "audit",
                "--json",
                "--no-options",
                "--source",
                "netlink",
                "--owners-source",
                "procfs",
            ),
            AUDIT_OK,
            "tcptune-json",
        ),
        # The same counts-only audit forced onto the sock_diag dump (the path without
        # BPF, and the one unprivileged runs take): both sources measured in one run.
        CommandSpec(
            "tcptune-no-owners-netlink",
            "tcptune audit --json --no-owners --no-options --source netlink",
            (*tt, "audit", "--json", "--no-owners", "--no-options", "--source", "netlink"),
            AUDIT_OK,
            "tcptune-json",
        ),
        CommandSpec(
            "tcptune-options",
            "tcptune audit --json (with the BPF options inventory)",
            (*tt, "audit", "--json"),
            AUDIT_OK,
            "tcptune-json",
            slow=True,
        ),
    ]
    if tools.nlcount:
        specs.append(CommandSpec("nlcount", "C floor: nlcount", (tools.nlcount,), counts="floor"))
    if tools.auditfloor:
        specs.append(
            CommandSpec("auditfloor", "C floor: auditfloor", (tools.auditfloor,), counts="floor")
        )
    specs += [
        CommandSpec(
            "ss",
            "ss -tan | awk | sort | uniq -c",
            ("sh", "-c", "ss -tan | awk '{print $1}' | sort | uniq -c"),
            counts="uniq-c",
        ),
        CommandSpec(
            "ss-p",
            "ss -tanp state close-wait | users",
            # The runbook's "who holds CLOSE_WAIT": -p reads every process's descriptors.
            (
                "sh",
                "-c",
                'ss -Htanp state close-wait | grep -o \'users:(("[^"]*",pid=[0-9]*\' '
                "| sort | uniq -c",
            ),
            slow=True,
        ),
        CommandSpec(
            "watch-1",
            "tcptune watch --count 1",
            (*tt, "watch", "--json", "--interval", "0.05", "--count", "1"),
        ),
        CommandSpec(
            "watch",
            f"tcptune watch --count {1 + WATCH_REFRESHES}",
            (*tt, "watch", "--json", "--interval", "0.05", "--count", str(1 + WATCH_REFRESHES)),
            refreshes=WATCH_REFRESHES,
            baseline="watch-1",
        ),
        # The same refreshes counted over sock_diag, as watch did before the BPF counter
        # (and still does unprivileged): the before/after of issue 13 item 5 in one run.
        CommandSpec(
            "watch-netlink-1",
            "tcptune watch --source netlink --count 1",
            (*tt, "watch", "--json", "--source", "netlink", "--interval", "0.05", "--count", "1"),
        ),
        CommandSpec(
            "watch-netlink",
            f"tcptune watch --source netlink --count {1 + WATCH_REFRESHES}",
            (*tt, "watch", "--json", "--source", "netlink", "--interval", "0.05", "--count", six),
            refreshes=WATCH_REFRESHES,
            baseline="watch-netlink-1",
        ),
        CommandSpec(
            "netstat",
            "netstat -ant | awk | sort | uniq -c",
            ("sh", "-c", "netstat -ant | awk '{print $6}' | sort | uniq -c"),
            counts="uniq-c",
            slow=True,
        ),
        CommandSpec(
            "psutil",
            "psutil.net_connections (Counter)",
            (tools.bench_python, "-c", PSUTIL_SNIPPET),
            counts="json-dict",
            slow=True,
        ),
    ]
    return tuple(specs)


# --------------------------------------------------------------------------- mixes


@dataclass(frozen=True)
class Mix:
    """A socket mix: fractions of the total per state, and who holds TIME_WAIT."""

    name: str
    established: float
    time_wait: float
    close_wait: float
    fin_wait2: float  # the orphaned clients of CLOSE_WAIT pairs (<= close_wait)
    server_time_wait: bool  # True: the server closes first, each client from its own address
    description: str

    def __post_init__(self) -> None:
        parts = (self.established, self.time_wait, self.close_wait, self.fin_wait2)
        if abs(sum(parts) - 1) > 1e-6 or min(parts) < 0 or self.fin_wait2 > self.close_wait:
            raise ValueError(f"mix {self.name}: fractions must sum to 1, FIN_WAIT2 <= CLOSE_WAIT")


MIXES: Final[Mapping[str, Mix]] = MappingProxyType(
    {
        "server": Mix(
            "server",
            0.26,
            0.52,
            0.155,
            0.065,
            True,
            "26% ESTABLISHED, 52% server-side TIME_WAIT (each client its own 127.x address), "
            "15.5% CLOSE_WAIT, 6.5% FIN_WAIT2",
        ),
        "client": Mix(
            "client",
            0.40,
            0.25,
            0.20,
            0.15,
            False,
            "40% ESTABLISHED, 25% client-side TIME_WAIT (16 destinations), 20% CLOSE_WAIT, "
            "15% FIN_WAIT2",
        ),
        "timewait": Mix(
            "timewait",
            0.0,
            1.0,
            0.0,
            0.0,
            True,
            "100% server-side TIME_WAIT (no descriptors)",
        ),
    }
)


@dataclass(frozen=True)
class Plan:
    """How many connections of each kind one scenario creates."""

    established_pairs: int
    close_wait_pairs: int  # server CLOSE_WAIT (held) + client FIN_WAIT2 (orphan)
    detached_close_wait: int  # server CLOSE_WAIT (held) whose orphaned peer already expired
    time_wait: int
    server_time_wait: bool = False

    @classmethod
    def for_size(cls, total: int, mix: Mix) -> Plan:
        """Split ``total`` sockets following ``mix``."""
        pairs = round(total * mix.established / 2)
        fin_wait2 = round(total * mix.fin_wait2)
        close_wait = max(round(total * mix.close_wait), fin_wait2)
        time_wait = max(total - 2 * pairs - close_wait - fin_wait2, 0)
        return cls(pairs, fin_wait2, close_wait - fin_wait2, time_wait, mix.server_time_wait)

    @property
    def expected(self) -> dict[str, int]:
        """Return the state counts the plan must produce (listeners are closed before)."""
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
            return n // parts + (1 if i < n % parts else 0)

        return [
            Plan(
                share(self.established_pairs, i),
                share(self.close_wait_pairs, i),
                share(self.detached_close_wait, i),
                0,
                self.server_time_wait,
            )
            for i in range(parts)
        ]


def client_address(index: int) -> str:
    """Return the index-th client address of server-side TIME_WAIT: 127.1.0.1 onwards."""
    index %= 1 << 22
    return f"127.{1 + (index >> 16)}.{(index >> 8) & 255}.{index & 255}"


# --------------------------------------------------------------------------- parsing

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
# include/net/tcp_states.h, in code order (1..11).
KERNEL_STATES: Final = (
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
)


def normalize_state(name: str) -> str | None:
    """Map an ss/netstat/psutil/kernel state name to the kernel's, or None if it is not one."""
    upper = name.strip().upper()
    if upper in KERNEL_STATES:
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
            case "floor":  # "6:100000 8:30000 ... [close_wait_inodes:N ...]"
                floor: dict[str, int] = {}
                for word in stdout.split():
                    code, _, number = word.partition(":")
                    if code.isdigit() and 1 <= int(code) <= len(KERNEL_STATES):
                        floor[KERNEL_STATES[int(code) - 1]] = int(number)
                return floor
            case _:
                return None
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


def select(specs: Sequence[CommandSpec], only: Sequence[str]) -> list[CommandSpec]:
    """Return the specs named by ``only`` (all when empty), with the baselines they need."""
    known = {s.key for s in specs}
    unknown = [key for key in only if key not in known]
    if unknown:
        raise ValueError(f"unknown command key {unknown[0]!r}; known: {', '.join(sorted(known))}")
    if not only:
        return list(specs)
    keep = set(only) | {s.baseline for s in specs if s.key in only and s.baseline}
    return [s for s in specs if s.key in keep]
