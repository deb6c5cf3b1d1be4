"""tcptune watch: the pure core with injected fakes, its renderings, and one real run in a lab."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator, Mapping

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
    assert "CLOSE_WAIT rising: +15 to 25" in alerts
    assert (
        "timewait sockets 850 (TIME_WAIT 850 + orphaned FIN_WAIT_2) are 85% of "
        "tcp_max_tw_buckets 1000"
    ) in alerts
    assert "ListenOverflows rising: 4.0/s" in alerts and "ListenDrops rising" in alerts
    assert "ActiveOpens" not in alerts  # busy is not trouble
    # Falling CLOSE_WAIT, TIME_WAIT back to 10%, counters flat: nothing to highlight.
    assert third.alerts == ()
    assert {row.state: row.change for row in third.states}[TcpState.CLOSE_WAIT] == -5


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
        assert timeout > 0
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
    }
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
        assert row.rstrip().endswith("+110▲")
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
    assert document["source"] == "netlink" and document["complete"] is True
    assert document["sockets"]["states"]["CLOSE_WAIT"]["ipv6"] == 3
