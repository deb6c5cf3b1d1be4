"""The core of ``tcptune watch``: successive counts-only snapshots become frames.

Everything with a side effect is injected (the inspection, the clocks, the
sleep, the output and the key reader), so the loop runs in tests with fakes;
tcptune.output.terminal owns the real terminal and tcptune.output draws the frames.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from tcptune.advise import counter_rates
from tcptune.advise.teardown import TIME_WAIT_CAP_WARNING, timewait_minisockets
from tcptune.model.snapshot import Snapshot
from tcptune.model.tcpstates import TcpState

# The counters whose rate each refresh shows: (kernel table, counter name), in
# display order. Tcp is /proc/net/snmp, TcpExt /proc/net/netstat.
WATCHED_COUNTERS: tuple[tuple[str, str], ...] = (
    ("Tcp", "ActiveOpens"),
    ("Tcp", "PassiveOpens"),
    ("Tcp", "AttemptFails"),
    ("Tcp", "EstabResets"),
    ("TcpExt", "ListenOverflows"),
    ("TcpExt", "ListenDrops"),
    ("TcpExt", "TCPAbortOnData"),
    ("TcpExt", "TCPAbortOnClose"),
    ("TcpExt", "TCPAbortOnTimeout"),
    ("TcpExt", "TCPAbortOnMemory"),
    ("TcpExt", "TCPTimeWaitOverflow"),
)
# Counters any increase of which means connections were lost, not just made:
# a full accept queue (tcp_conn_request, tcp_check_req), TIME_WAIT skipped at
# tcp_max_tw_buckets (inet_twsk_alloc), an orphan or tcp_mem reset
# (tcp_out_of_resources). Sources: net/ipv4/tcp_input.c, inet_timewait_sock.c,
# tcp_timer.c.
ALARM_COUNTERS = frozenset(
    {"ListenOverflows", "ListenDrops", "TCPTimeWaitOverflow", "TCPAbortOnMemory"}
)
TW_BUCKETS = "net.ipv4.tcp_max_tw_buckets"

QUIT_KEYS = frozenset({"q", "Q", "\x1b"})  # q, or Esc
RESIZE = "<resize>"  # what a key reader returns when the terminal changed size
END_OF_INPUT = "<eof>"  # what a key reader returns when its input closed

Inspect = Callable[[], Snapshot]
KeyReader = Callable[[float], str | None]  # waits up to N seconds, returns a key or None


@dataclass(frozen=True)
class StateRow:
    """One TCP state's sockets now, and the change since the previous refresh."""

    state: TcpState
    ipv4: int
    ipv6: int
    change: int | None  # None on the first refresh
    alert: str | None = None  # why this row is highlighted

    @property
    def total(self) -> int:
        """Return IPv4 plus IPv6."""
        return self.ipv4 + self.ipv6


@dataclass(frozen=True)
class RateRow:
    """One counter: its per-namespace total (since boot only in the initial namespace) and rate."""

    table: str  # "Tcp" or "TcpExt"
    name: str
    value: int | None  # None when the counter is missing
    per_second: float | None  # None on the first refresh or when missing
    alert: str | None = None


@dataclass(frozen=True)
class Frame:
    """What one refresh shows: state counts, counter rates and what is rising."""

    number: int  # 1 for the first refresh
    taken_at: float  # time.time() of the snapshot
    interval: float  # the requested refresh interval, seconds
    elapsed: float | None  # measured seconds since the previous refresh
    source: str | None  # "netlink" or "procfs"; None if sockets could not be read
    states: tuple[StateRow, ...]  # empty if sockets could not be read
    rates: tuple[RateRow, ...]
    time_wait_cap: int | None  # net.ipv4.tcp_max_tw_buckets, if readable
    problems: tuple[str, ...]  # what this inspection could not read

    @property
    def total(self) -> int:
        """Return every TCP socket of every state and family."""
        return sum(row.total for row in self.states)

    @property
    def alerts(self) -> tuple[str, ...]:
        """Return every highlighted row's reason, states first."""
        rows: tuple[StateRow | RateRow, ...] = (*self.states, *self.rates)
        return tuple(row.alert for row in rows if row.alert)


def _state_alert(
    state: TcpState, total: int, change: int | None, cap: int | None, timewait: int
) -> str | None:
    if state is TcpState.CLOSE_WAIT and change is not None and change > 0:
        return f"CLOSE_WAIT rising: +{change} to {total} (an application is not closing sockets)"
    # tcp_max_tw_buckets counts every timewait minisocket (inet_twsk_alloc): TIME_WAIT and
    # orphaned FIN_WAIT_2 alike, i.e. sockstat tw.
    if state is TcpState.TIME_WAIT and cap and timewait >= TIME_WAIT_CAP_WARNING * cap:
        return (
            f"timewait sockets {timewait} (TIME_WAIT {total} + orphaned FIN_WAIT_2) are "
            f"{100 * timewait / cap:.0f}% of tcp_max_tw_buckets {cap} "
            "(beyond it sockets skip TIME_WAIT)"
        )
    return None


def _rate_alert(name: str, per_second: float | None) -> str | None:
    if name in ALARM_COUNTERS and per_second:
        return f"{name} rising: {per_second:.1f}/s"
    return None


def build_frame(
    number: int,
    snapshot: Snapshot,
    interval: float,
    elapsed: float | None,
    previous: Snapshot | None,
) -> Frame:
    """Return the frame for ``snapshot``, compared with the previous refresh's snapshot."""
    cap = snapshot.value(TW_BUCKETS)
    cap = cap if isinstance(cap, int) else None
    states: list[StateRow] = []
    sockets, before = snapshot.sockets, previous.sockets if previous else None
    if sockets is not None:
        for state in TcpState:
            total = sockets.total(state)
            change = total - before.total(state) if before is not None else None
            states.append(
                StateRow(
                    state,
                    sockets.ipv4.get(state, 0),
                    sockets.ipv6.get(state, 0),
                    change,
                    _state_alert(
                        state,
                        total,
                        change,
                        cap,
                        timewait_minisockets(snapshot.counters.sockstat, total),
                    ),
                )
            )
    rates = (
        counter_rates(previous.counters, snapshot.counters, elapsed)
        if previous is not None and elapsed
        else {}
    )
    tables = {"Tcp": snapshot.counters.tcp, "TcpExt": snapshot.counters.tcp_ext}
    rate_rows = tuple(
        RateRow(
            table,
            name,
            tables[table].get(name),
            rates.get(name),
            _rate_alert(name, rates.get(name)),
        )
        for table, name in WATCHED_COUNTERS
    )
    return Frame(
        number=number,
        taken_at=snapshot.taken_at,
        interval=interval,
        elapsed=elapsed,
        source=sockets.source if sockets else None,
        states=tuple(states),
        rates=rate_rows,
        time_wait_cap=cap,
        problems=tuple(f"{p.source}: {p.message}" for p in snapshot.problems),
    )


def run_watch(
    inspect: Inspect,
    show: Callable[[Frame], None],
    *,
    interval: float,
    count: int | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    read_key: KeyReader | None = None,
) -> int:
    """Inspect every ``interval`` seconds and show each frame; return how many were shown.

    Stops after ``count`` frames, or when ``read_key`` returns a quit key or
    the end of input. A resize shows the last frame again (re-laid out by
    ``show``) without a new inspection. Refreshes keep a fixed cadence: the
    time an inspection takes is not added to the interval.
    """
    if not (interval > 0 and math.isfinite(interval)):  # nan would spin, inf overflow sleep
        raise ValueError(f"interval must be a positive finite number of seconds, got {interval}")
    previous: tuple[Snapshot, float] | None = None
    shown = 0
    while count is None or shown < count:
        started = clock()
        snapshot = inspect()
        elapsed = started - previous[1] if previous else None
        frame = build_frame(
            shown + 1, snapshot, interval, elapsed, previous[0] if previous else None
        )
        previous = (snapshot, started)
        show(frame)
        shown += 1
        if count is not None and shown >= count:
            break
        deadline = started + interval
        if read_key is None:
            sleep(max(0.0, deadline - clock()))
            continue
        while (remaining := deadline - clock()) > 0:
            key = read_key(remaining)
            if key in QUIT_KEYS or key == END_OF_INPUT:
                return shown
            if key == RESIZE:
                show(frame)
    return shown


__all__ = [
    "ALARM_COUNTERS",
    "END_OF_INPUT",
    "QUIT_KEYS",
    "RESIZE",
    "WATCHED_COUNTERS",
    "Frame",
    "RateRow",
    "StateRow",
    "build_frame",
    "run_watch",
]
