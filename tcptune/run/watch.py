"""The core of ``tcptune watch``: successive counts-only snapshots become frames.

Everything with a side effect is injected (the inspection, the clocks, the
sleep, the output and the key reader), so the loop runs in tests with fakes;
tcptune.output.terminal owns the real terminal and tcptune.output draws the frames.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Hashable, Mapping
from typing import TYPE_CHECKING

from tcptune.advise import counter_rates
from tcptune.advise.teardown import ORPHANS_WARNING, TIME_WAIT_CAP_WARNING, timewait_minisockets
from tcptune.model.record import record
from tcptune.model.snapshot import Snapshot
from tcptune.model.tcpstates import TcpState
from tcptune.run.trends import Trend, Window

if TYPE_CHECKING:
    pass

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
MAX_ORPHANS = "net.ipv4.tcp_max_orphans"
SYNCOOKIES = "net.ipv4.tcp_syncookies"
# Orphans churn on any busy host (every close() with data in flight is one for a
# moment): a rising count is worth a line only from this many on.
ORPHANS_RISING_FLOOR = 100
TOP_OWNERS = 3  # processes shown with their CLOSE_WAIT trend (watch --owners)
DEFAULT_WINDOW = 30.0  # seconds of refreshes a trend is judged over

QUIT_KEYS = frozenset({"q", "Q", "\x1b"})  # q, or Esc
RESIZE = "<resize>"  # what a key reader returns when the terminal changed size
END_OF_INPUT = "<eof>"  # what a key reader returns when its input closed

Inspect = Callable[[], Snapshot]
Owners = Callable[[Snapshot], Mapping[str, int] | None]  # CLOSE_WAIT sockets per process name
KeyReader = Callable[[float], str | None]  # waits up to N seconds, returns a key or None


@record
class StateRow:
    """One TCP state's sockets now, the change since the last refresh, and its trend."""

    state: TcpState
    ipv4: int
    ipv6: int
    change: int | None  # None on the first refresh
    alert: str | None = None  # why this row is highlighted
    trend: Trend | None = None  # over the window; None when built without one

    @property
    def total(self) -> int:
        """Return IPv4 plus IPv6."""
        return self.ipv4 + self.ipv6


@record
class RateRow:
    """One counter: its per-namespace total (since boot only in the initial namespace) and rate."""

    table: str  # "Tcp" or "TcpExt"
    name: str
    value: int | None  # None when the counter is missing
    per_second: float | None  # None on the first refresh or when missing
    alert: str | None = None


@record
class OwnerRow:
    """A process name holding CLOSE_WAIT sockets, and their trend (watch --owners)."""

    name: str
    sockets: int
    trend: Trend
    alert: str | None = None


@record
class Frame:
    """What one refresh shows: state counts, trends, counter rates and what is rising."""

    number: int  # 1 for the first refresh
    taken_at: float  # time.time() of the snapshot
    interval: float  # the requested refresh interval, seconds
    elapsed: float | None  # measured seconds since the previous refresh
    source: str | None  # "bpf", "netlink" or "procfs"; None if sockets could not be read
    states: tuple[StateRow, ...]  # empty if sockets could not be read
    rates: tuple[RateRow, ...]
    time_wait_cap: int | None  # net.ipv4.tcp_max_tw_buckets, if readable
    problems: tuple[str, ...]  # what this inspection could not read
    window: float = DEFAULT_WINDOW  # seconds trends are judged over
    orphans: int | None = None  # sockstat orphan (host-wide), if readable
    orphan_cap: int | None = None  # net.ipv4.tcp_max_orphans (host-wide key)
    orphan_alert: str | None = None
    owners: tuple[OwnerRow, ...] | None = None  # None: owners not looked up
    source_notes: tuple[str, ...] = ()  # why a faster source was not used

    @property
    def total(self) -> int:
        """Return every TCP socket of every state and family."""
        return sum(row.total for row in self.states)

    @property
    def alerts(self) -> tuple[str, ...]:
        """Return every highlighted reason: states, owners, orphans, then counters."""
        rows: tuple[StateRow | OwnerRow | RateRow, ...] = (
            *self.states,
            *(self.owners or ()),
            *self.rates,
        )
        reasons = [row.alert for row in rows if row.alert]
        if self.orphan_alert:
            reasons.insert(len([r for r in self.states if r.alert]), self.orphan_alert)
        return tuple(reasons)


def _seconds(span: float) -> str:
    return f"{span:.1f}" if span < 10 else f"{span:.0f}"


def _rising(what: str, trend: Trend, now: int) -> str:
    return f"{what} rising: {trend.rise:+.0f} in {_seconds(trend.span)} s, now {now}"


def _state_alert(
    state: TcpState, trend: Trend, total: int, snapshot: Snapshot, cap: int | None
) -> str | None:
    if state is TcpState.CLOSE_WAIT and trend.rising:
        return _rising("CLOSE_WAIT", trend, total) + " (an application is not closing sockets)"
    if state is TcpState.SYN_RECV and trend.rising:
        cookies = snapshot.value(SYNCOOKIES)
        return _rising("SYN_RECV", trend, total) + (
            " (handshakes not completing: a SYN flood, or final ACKs lost"
            + (f"; tcp_syncookies={cookies})" if cookies is not None else ")")
        )
    # tcp_max_tw_buckets counts every timewait minisocket (inet_twsk_alloc): TIME_WAIT and
    # orphaned FIN_WAIT_2 alike, i.e. sockstat tw.
    timewait = timewait_minisockets(snapshot.counters.sockstat, total)
    if state is TcpState.TIME_WAIT and cap and timewait >= TIME_WAIT_CAP_WARNING * cap:
        return (
            f"timewait sockets {timewait} (TIME_WAIT {total} + orphaned FIN_WAIT_2) are "
            f"{100 * timewait / cap:.0f}% of tcp_max_tw_buckets {cap} "
            "(beyond it sockets skip TIME_WAIT)"
        )
    return None


def _orphan_alert(orphans: int | None, cap: int | None, trend: Trend) -> str | None:
    if orphans is None:
        return None
    if cap and orphans >= ORPHANS_WARNING * cap:
        return (
            f"orphans {orphans} are {100 * orphans / cap:.0f}% of tcp_max_orphans {cap} "
            "(beyond it the kernel resets orphaned connections)"
        )
    if trend.rising and orphans >= ORPHANS_RISING_FLOOR:
        return _rising("orphans", trend, orphans) + " (closed sockets still sending)"
    return None


def _rate_alert(name: str, window: Window) -> str | None:
    per_second = window.increase(("counter", name))
    if name in ALARM_COUNTERS and per_second:
        return f"{name} rising: {per_second:.1f}/s over the last {_seconds(window.span)} s"
    return None


def sample(snapshot: Snapshot, owners: Mapping[str, int] | None) -> dict[Hashable, float]:
    """Return what the window keeps of one refresh: totals, counters, orphans, owners."""
    values: dict[Hashable, float] = {}
    if snapshot.sockets is not None:
        values.update({state: snapshot.sockets.total(state) for state in TcpState})
    for table in (snapshot.counters.tcp, snapshot.counters.tcp_ext):
        values.update({("counter", name): value for name, value in table.items()})
    orphans = snapshot.counters.sockstat.get("TCP", {}).get("orphan")
    if orphans is not None:
        values["orphans"] = orphans
    values.update({("owner", name): count for name, count in (owners or {}).items()})
    return values


def _owner_rows(window: Window, owners: Mapping[str, int]) -> tuple[OwnerRow, ...]:
    ranked = sorted(owners.items(), key=lambda item: (-item[1], item[0]))[:TOP_OWNERS]
    rows = []
    for name, sockets in ranked:
        trend = window.trend(("owner", name))
        alert = _rising(f"CLOSE_WAIT of {name}", trend, sockets) if trend.rising else None
        rows.append(OwnerRow(name, sockets, trend, alert))
    return tuple(rows)


def build_frame(
    number: int,
    snapshot: Snapshot,
    interval: float,
    elapsed: float | None,
    previous: Snapshot | None,
    window: Window | None = None,
    owners: Mapping[str, int] | None = None,
) -> Frame:
    """Return the frame for ``snapshot``: changes since ``previous``, trends over ``window``.

    ``window`` must already hold this refresh's sample; without one, the trend
    is judged on ``previous`` and ``snapshot`` alone.
    """
    if window is None:
        apart = elapsed or interval
        window = Window(2 * apart)
        if previous is not None:
            window.add(0.0, sample(previous, None))
        window.add(apart, sample(snapshot, owners))
    cap = snapshot.value(TW_BUCKETS)
    cap = cap if isinstance(cap, int) else None
    states: list[StateRow] = []
    sockets, before = snapshot.sockets, previous.sockets if previous else None
    if sockets is not None:
        for state in TcpState:
            total = sockets.total(state)
            change = total - before.total(state) if before is not None else None
            trend = window.trend(state)
            alert = _state_alert(state, trend, total, snapshot, cap)
            states.append(
                StateRow(
                    state,
                    sockets.ipv4.get(state, 0),
                    sockets.ipv6.get(state, 0),
                    change,
                    alert,
                    trend,
                )
            )
    rates = (
        counter_rates(previous.counters, snapshot.counters, elapsed)
        if previous is not None and elapsed
        else {}
    )
    tables = {"Tcp": snapshot.counters.tcp, "TcpExt": snapshot.counters.tcp_ext}
    rate_rows = tuple(
        RateRow(table, name, tables[table].get(name), rates.get(name), _rate_alert(name, window))
        for table, name in WATCHED_COUNTERS
    )
    orphans = snapshot.counters.sockstat.get("TCP", {}).get("orphan")
    orphan_cap = snapshot.value(MAX_ORPHANS)
    orphan_cap = orphan_cap if isinstance(orphan_cap, int) else None
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
        window=window.seconds,
        orphans=orphans,
        orphan_cap=orphan_cap,
        orphan_alert=_orphan_alert(orphans, orphan_cap, window.trend("orphans")),
        owners=None if owners is None else _owner_rows(window, owners),
        source_notes=sockets.notes if sockets else (),
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
    window: float = DEFAULT_WINDOW,
    owners: Owners | None = None,
    once: bool = False,
) -> int:
    """Inspect every ``interval`` seconds and show each frame; return how many were shown.

    Trends are judged over the refreshes of the last ``window`` seconds;
    ``owners`` names the processes holding CLOSE_WAIT sockets in a snapshot.
    Stops after ``count`` frames, or when ``read_key`` returns a quit key or
    the end of input; with ``once``, refreshes for one window and shows only
    the frame that completes it. A resize shows the last frame again
    (re-laid out by ``show``) without a new inspection. Refreshes keep a
    fixed cadence: the time an inspection takes is not added to the interval.
    """
    if not (interval > 0 and math.isfinite(interval)):  # nan would spin, inf overflow sleep
        raise ValueError(f"interval must be a positive finite number of seconds, got {interval}")
    history = Window(window)
    previous: tuple[Snapshot, float] | None = None
    shown = refreshes = 0
    while count is None or shown < count:
        started = clock()
        snapshot = inspect()
        held = owners(snapshot) if owners is not None else None
        history.add(started, sample(snapshot, held))
        elapsed = started - previous[1] if previous else None
        refreshes += 1
        frame = build_frame(
            refreshes, snapshot, interval, elapsed, previous[0] if previous else None, history, held
        )
        previous = (snapshot, started)
        if once and not history.filled:
            sleep(max(0.0, started + interval - clock()))
            continue
        show(frame)
        shown += 1
        if once or (count is not None and shown >= count):
            break
        deadline = started + interval
        if read_key is None:
            sleep(max(0.0, deadline - clock()))
            continue
        while True:  # keys are read at least once per refresh, even one slower than interval
            key = read_key(max(0.0, deadline - clock()))
            if key in QUIT_KEYS or key == END_OF_INPUT:
                return shown
            if key == RESIZE:
                show(frame)
            if deadline - clock() <= 0:
                break
    return shown


__all__ = [
    "ALARM_COUNTERS",
    "END_OF_INPUT",
    "QUIT_KEYS",
    "RESIZE",
    "WATCHED_COUNTERS",
    "Frame",
    "OwnerRow",
    "RateRow",
    "StateRow",
    "build_frame",
    "run_watch",
    "sample",
]
