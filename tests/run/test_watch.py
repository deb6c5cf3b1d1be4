"""tcptune watch: the pure core with injected fakes, its renderings, and one real run in a lab."""

from __future__ import annotations

import dataclasses
import json
import socket
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from click.testing import CliRunner

from tcptune.cli import cli
from tcptune.model.snapshot import (
    Context,
    Counters,
    ReadStatus,
    Snapshot,
    SocketCounts,
    SysctlReading,
)
from tcptune.model.sysctls import KNOWN_SYSCTLS
from tcptune.model.tcpstates import TcpState
from tcptune.output import watch as watch_output
from tcptune.run.watch import END_OF_INPUT, RESIZE, Frame, build_frame, run_watch
from tests.lab import SocketLab

TW_CAP = 1000


def fake_snapshot(
    states: Mapping[TcpState, int],
    tcp_ext: Mapping[str, int] | None = None,
    tcp: Mapping[str, int] | None = None,
    taken_at: float = 1_700_000_000.0,
) -> Snapshot:
    """Return a counts-only snapshot with IPv4 ``states`` and tcp_max_tw_buckets TW_CAP."""
    spec = KNOWN_SYSCTLS["net.ipv4.tcp_max_tw_buckets"]
    return Snapshot(
        taken_at=taken_at,
        context=Context("6.1.0", 4026531840, True),
        sysctls={spec.name: SysctlReading(spec, ReadStatus.OK, TW_CAP, str(TW_CAP))},
        sockets=SocketCounts("netlink", dict(states), {}),
        counters=Counters(
            sockstat={},
            tcp=dict(tcp or {"ActiveOpens": 0, "PassiveOpens": 0}),
            tcp_ext=dict(tcp_ext or {"ListenOverflows": 0, "ListenDrops": 0}),
        ),
        problems=(),
    )


class FakeClock:
    """A monotonic clock that moves only when the fake sleep or inspection says so."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def scripted(snapshots: list[Snapshot], clock: FakeClock, cost: float = 0.0) -> Iterator[Snapshot]:
    """Yield each snapshot, advancing the clock by ``cost`` as if inspecting took time."""
    for snapshot in snapshots:
        clock.now += cost
        yield snapshot


def test_frames_carry_counts_rates_and_what_is_rising() -> None:
    clock = FakeClock()
    snapshots = [
        fake_snapshot({TcpState.CLOSE_WAIT: 10, TcpState.TIME_WAIT: 100}),
        fake_snapshot(
            {TcpState.CLOSE_WAIT: 25, TcpState.TIME_WAIT: 850},
            tcp_ext={"ListenOverflows": 8, "ListenDrops": 8},
            tcp={"ActiveOpens": 40, "PassiveOpens": 0},
        ),
        fake_snapshot(
            {TcpState.CLOSE_WAIT: 20, TcpState.TIME_WAIT: 100},
            tcp_ext={"ListenOverflows": 8, "ListenDrops": 8},
            tcp={"ActiveOpens": 40, "PassiveOpens": 0},
        ),
    ]
    source = iter(snapshots)
    frames: list[Frame] = []
    shown = run_watch(
        lambda: next(source),
        frames.append,
        interval=2.0,
        count=3,
        clock=clock,
        sleep=clock.sleep,
    )
    assert shown == 3 and len(frames) == 3
    assert clock.sleeps == [2.0, 2.0]  # no sleep after the last refresh
    first, second, third = frames
    assert first.elapsed is None and all(r.per_second is None for r in first.rates)
    assert first.alerts == ()
    close_wait = {row.state: row for row in second.states}[TcpState.CLOSE_WAIT]
    assert (close_wait.total, close_wait.change) == (25, 15)
    assert second.elapsed == 2.0
    rates = {rate.name: rate.per_second for rate in second.rates}
    assert rates["ListenOverflows"] == 4.0 and rates["ActiveOpens"] == 20.0
    assert rates["TCPAbortOnData"] is None  # absent from this kernel's table: no rate
    alerts = " | ".join(second.alerts)
    assert "CLOSE_WAIT rising: +15 in 2.0 s, now 25" in alerts
    assert (
        "timewait sockets 850 (TIME_WAIT 850 + orphaned FIN_WAIT_2) are 85% of "
        "tcp_max_tw_buckets 1000"
    ) in alerts
    assert "ListenOverflows rising: 4.0/s over the last 2.0 s" in alerts
    assert "ListenDrops rising" in alerts
    assert "ActiveOpens" not in alerts  # busy is not trouble
    # Over the whole window CLOSE_WAIT still rose (10, 25, 20: the fitted line climbs 10)
    # and the overflows happened within it; TIME_WAIT is back to 10%.
    assert {row.state: row.change for row in third.states}[TcpState.CLOSE_WAIT] == -5
    assert [alert.split(":")[0] for alert in third.alerts] == [
        "CLOSE_WAIT rising",
        "ListenOverflows rising",
        "ListenDrops rising",
    ]


def test_cadence_is_fixed_whatever_the_inspection_costs() -> None:
    clock = FakeClock()
    source = scripted([fake_snapshot({})] * 3, clock, cost=0.5)
    run_watch(
        lambda: next(source),
        lambda frame: None,
        interval=2.0,
        count=3,
        clock=clock,
        sleep=clock.sleep,
    )
    assert clock.sleeps == [1.5, 1.5]


def test_quit_key_resize_and_end_of_input() -> None:
    clock = FakeClock()
    inspections: list[int] = []

    def inspect() -> Snapshot:
        inspections.append(1)
        return fake_snapshot({TcpState.ESTABLISHED: len(inspections)})

    keys = iter([None, RESIZE, "x", "q"])

    def read_key(timeout: float) -> str | None:
        assert timeout >= 0
        key = next(keys)
        clock.now += 1.0 if key is None else 0.1
        return key

    frames: list[Frame] = []
    shown = run_watch(inspect, frames.append, interval=2.0, clock=clock, read_key=read_key)
    # Refresh 1, 1 s passes, a resize redraws refresh 1 without inspecting, an unknown key
    # is ignored, q quits before refresh 2.
    assert shown == 1 and len(inspections) == 1
    assert [frame.number for frame in frames] == [1, 1]
    assert run_watch(inspect, frames.append, interval=1.0, read_key=lambda t: END_OF_INPUT) == 1


@pytest.mark.parametrize("interval", [0, -1, float("nan"), float("inf")])
def test_interval_must_be_positive_and_finite(interval: float) -> None:
    # nan passed `interval <= 0` and made the refresh loop spin without sleeping.
    clock = FakeClock()
    with pytest.raises(ValueError, match="positive finite"):
        run_watch(
            lambda: fake_snapshot({}),
            lambda frame: None,
            interval=interval,
            count=3,
            clock=clock,
            sleep=clock.sleep,
        )


def _rising_frame() -> Frame:
    before = fake_snapshot({TcpState.CLOSE_WAIT: 10, TcpState.LISTEN: 2})
    after = fake_snapshot(
        {TcpState.CLOSE_WAIT: 120, TcpState.TIME_WAIT: 900, TcpState.LISTEN: 2},
        tcp_ext={"ListenOverflows": 20, "ListenDrops": 20},
    )
    return build_frame(2, after, 2.0, 2.0, before)


def test_line_marks_rising_values_for_logs() -> None:
    line = watch_output.watch_line(_rising_frame())
    assert "\n" not in line and "\x1b" not in line
    assert line.startswith("2023-11-14T22:13:20Z established=0 ")
    assert "close_wait=120▲" in line and "time_wait=900▲" in line and "listen=2 " in line
    assert "total=1022 |" in line
    assert "ListenOverflows=10.0/s▲" in line and "ActiveOpens=0/s " in line
    first = watch_output.watch_line(build_frame(1, fake_snapshot({}), 2.0, None, None))
    assert "ListenOverflows=- " in first and "▲" not in first


def test_json_lines_are_one_object_per_refresh() -> None:
    document = json.loads(watch_output.watch_json(_rising_frame()))
    assert document["schema"] == 1 and document["refresh"] == 2
    assert document["sockets"]["states"]["CLOSE_WAIT"] == {
        "ipv4": 120,
        "ipv6": 0,
        "total": 120,
        "change": 110,
        "trend": {"per_second": 55.0, "rising": True, "span_seconds": 2.0},
    }
    assert document["window_seconds"] == 4.0  # built without a window: the two refreshes
    assert document["counters"]["ListenOverflows"] == {"value": 20, "per_second": 10.0}
    assert document["tcp_max_tw_buckets"] == TW_CAP
    assert len(document["alerts"]) == 4


@pytest.mark.parametrize(("width", "height"), [(80, 24), (60, 20), (120, 50), (30, 8)])
def test_screen_fits_the_terminal_and_keeps_alerts_first(width: int, height: int) -> None:
    screen = watch_output.watch_screen(_rising_frame(), width, height, styled=False)
    lines = screen.split("\n")
    assert len(lines) <= height
    assert all(len(line) <= width for line in lines)
    assert "\x1b" not in screen
    alerts = [line for line in lines if line.startswith("▲ ")]
    assert lines[2 : 2 + len(alerts)] == alerts  # right under the title, before the tables
    assert len(alerts) == min(4, height - 3)
    if width >= 79:  # side by side: a state row and a counter row share a line
        row = next(line for line in lines if line.startswith("ESTABLISHED "))
        assert "ActiveOpens" in row
        row = next(line for line in lines if line.startswith("CLOSE_WAIT "))
        assert " +110 ▁█ " in row and row.rstrip().endswith("▲")  # change, trend, marker
        assert ("    0    120 " in row) == (width >= 92)  # IPv4 and IPv6 apart when they fit
    if height < 20:
        assert lines[-1].startswith("… (enlarge"[:width])


def test_styled_screen_paints_alert_rows_instead_of_marking_them() -> None:
    screen = watch_output.watch_screen(_rising_frame(), 80, 24, styled=True)
    row = next(line for line in screen.split("\n") if "CLOSE_WAIT " in line and "▲" not in line)
    assert row.startswith(watch_output.WATCH_ALERT_STYLE + "CLOSE_WAIT ")
    assert watch_output.WATCH_RESET in row


@pytest.mark.kernel
def test_watch_counts_real_sockets_in_line_mode(lab: SocketLab) -> None:
    lab.listen()
    lab.established(2)  # 4 ESTABLISHED
    lab.close_wait(3, socket.AF_INET6)  # 3 CLOSE_WAIT + 3 FIN_WAIT2
    lab.time_wait(2)
    result = CliRunner().invoke(cli, ["watch", "--count", "2", "--interval", "0.05"])
    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""
    lines = result.stdout.splitlines()
    assert len(lines) == 2
    for line in lines:
        words = dict(word.split("=", 1) for word in line.split() if "=" in word)
        assert words["established"] == "4"
        assert words["close_wait"] == "3"
        assert words["fin_wait2"] == "3"
        assert words["time_wait"] == "2"
        assert words["listen"] == "1"
        assert words["total"] == "13"
    assert "ListenOverflows=-" in lines[0] and "ListenOverflows=0/s" in lines[1]
    assert "▲" not in result.stdout  # nothing rose between the two refreshes

    json_run = CliRunner().invoke(cli, ["watch", "--count", "1", "--json", "--interval", "1"])
    document = json.loads(json_run.stdout)
    # bpf when the BPF state counter runs (tests/inspect/test_bpfcount_kernel.py), else netlink
    assert document["source"] in {"bpf", "netlink"} and document["complete"] is True
    assert document["sockets"]["states"]["CLOSE_WAIT"]["ipv6"] == 3


def _with(snapshot: Snapshot, **sockstat: int) -> Snapshot:
    """Return ``snapshot`` with sockstat TCP fields and tcp_max_orphans 1000, syncookies 1."""
    sysctls = dict(snapshot.sysctls)
    for name, value in (("net.ipv4.tcp_max_orphans", 1000), ("net.ipv4.tcp_syncookies", 1)):
        spec = KNOWN_SYSCTLS[name]
        sysctls[name] = SysctlReading(spec, ReadStatus.OK, value, str(value))
    counters = Counters({"TCP": dict(sockstat)}, snapshot.counters.tcp, snapshot.counters.tcp_ext)
    return dataclasses.replace(snapshot, sysctls=sysctls, counters=counters)


def _run(snapshots: list[Snapshot], **options: Any) -> list[Frame]:
    clock = FakeClock()
    source = iter(snapshots)
    frames: list[Frame] = []
    run_watch(
        lambda: next(source),
        frames.append,
        interval=1.0,
        count=None if options.get("once") else len(snapshots),
        clock=clock,
        sleep=clock.sleep,
        **options,
    )
    return frames


def test_syn_recv_and_orphans_rising_and_orphans_near_their_cap() -> None:
    snapshots = [
        _with(fake_snapshot({TcpState.SYN_RECV: 10 * n}), orphan=100 + 50 * n) for n in range(6)
    ]
    last = _run(snapshots, window=10.0)[-1]
    alerts = " | ".join(last.alerts)
    assert "SYN_RECV rising: +50 in 5.0 s, now 50 (handshakes not completing" in alerts
    assert "tcp_syncookies=1" in alerts
    assert "orphans rising: +250 in 5.0 s, now 350" in alerts
    assert (last.orphans, last.orphan_cap) == (350, 1000)
    near = _run([_with(fake_snapshot({}), orphan=600)], window=10.0)[-1]
    assert near.alerts == ("orphans 600 are 60% of tcp_max_orphans 1000 (beyond it the kernel "
                           "resets orphaned connections)",)  # fmt: skip
    # A few orphans that come and go on any busy host are not worth a line.
    few = [_with(fake_snapshot({}), orphan=n) for n in range(0, 60, 10)]
    assert _run(few, window=10.0)[-1].alerts == ()


def test_owners_each_get_a_trend_and_only_the_top_ones_are_kept() -> None:
    held = iter([{"java": n, "nginx": 3, "a": 1, "b": 1} for n in range(0, 12, 2)])
    frames = _run([fake_snapshot({})] * 6, window=10.0, owners=lambda snapshot: next(held))
    rows = frames[-1].owners
    assert rows is not None and [row.name for row in rows] == ["java", "nginx", "a"]
    assert rows[0].trend.values == (0, 2, 4, 6, 8, 10) and rows[0].trend.rising
    assert rows[0].alert == "CLOSE_WAIT of java rising: +10 in 5.0 s, now 10"
    assert rows[1].alert is None  # steady
    assert frames[-1].alerts[0] == rows[0].alert
    assert _run([fake_snapshot({})], window=10.0)[-1].owners is None  # not looked up


def test_once_refreshes_for_one_window_and_shows_only_its_last_frame() -> None:
    snapshots = [fake_snapshot({TcpState.CLOSE_WAIT: n}) for n in range(10)]
    frames = _run(snapshots, window=4.0, once=True)
    assert [frame.number for frame in frames] == [5]  # refreshes at 0, 1, 2, 3, 4 s
    assert frames[0].alerts[0].startswith("CLOSE_WAIT rising: +4 in 4.0 s, now 4")


def test_sparklines_scale_to_the_window_in_unicode_or_ascii() -> None:
    assert watch_output.sparkline([0, 1, 2, 3, 4, 5, 6, 7]) == "▁▂▃▄▅▆▇█"
    assert watch_output.sparkline([5, 5, 5]) == "▁▁▁"
    assert watch_output.sparkline(list(range(20)), width=4) == "▁▃▆█"  # the newest 4
    assert watch_output.sparkline([0, 7, 3], unicode=False) == "_#-"
    assert watch_output.sparkline([]) == ""
    screen = watch_output.watch_screen(_rising_frame(), 80, 24, styled=False, unicode=False)
    assert screen.isascii() and "^ CLOSE_WAIT rising" in screen and " _# " in screen


def test_hostile_process_names_are_escaped_on_screen_and_in_lines() -> None:
    held = iter([{"evil\x1b[2J\u202e": 5}])
    frame = _run([fake_snapshot({TcpState.CLOSE_WAIT: 5})], owners=lambda s: next(held))[0]
    screen = watch_output.watch_screen(frame, 100, 40, styled=True)
    assert "evil\\x1b[2J\\u202e" in screen and "\x1b[2J" not in screen
    assert "evil\\x1b[2J\\u202e=5" in watch_output.watch_line(frame)
    assert json.loads(watch_output.watch_json(frame))["close_wait_by_process"][0] == {
        "process": "evil\x1b[2J\u202e",  # JSON stays exact
        "sockets": 5,
        "trend": {"per_second": None, "rising": False, "span_seconds": 0.0},
    }


@pytest.mark.kernel
def test_watch_once_and_its_usage_errors(lab: SocketLab) -> None:
    lab.close_wait(2)
    quiet = CliRunner().invoke(cli, ["watch", "--once", "--interval", "0.05", "--window", "0.2"])
    assert quiet.exit_code == 0, quiet.stderr
    assert len(quiet.stdout.splitlines()) == 1 and "close_wait=2 " in quiet.stdout
    owners = CliRunner().invoke(
        cli, ["watch", "--once", "--owners", "--json", "--interval", "0.05", "--window", "0.1"]
    )
    (held,) = json.loads(owners.stdout)["close_wait_by_process"]
    assert held["sockets"] == 2
    for bad in (["--window", "1", "--interval", "2"], ["--once", "--count", "3"]):
        result = CliRunner().invoke(cli, ["watch", *bad])
        assert result.exit_code == 64, result.output


def test_a_refresh_slower_than_the_interval_still_reads_the_quit_key() -> None:
    # --owners on a busy host can take longer than --interval: q must still quit.
    clock = FakeClock()
    source = scripted([fake_snapshot({})] * 5, clock, cost=3.0)
    waits: list[float] = []

    def read_key(timeout: float) -> str | None:
        waits.append(timeout)
        return "q" if len(waits) == 2 else None

    shown = run_watch(
        lambda: next(source), lambda f: None, interval=1.0, clock=clock, read_key=read_key
    )
    assert shown == 2 and waits == [0.0, 0.0]
