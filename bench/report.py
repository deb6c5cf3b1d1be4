"""Turning measured scenarios into targets, tables and the README's figures. Pure."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

# (numerator key, denominator keys summed, bound): median wall time ratios at every size.
RATIO_TARGETS: Final[tuple[tuple[str, tuple[str, ...], float], ...]] = (
    ("tcptune-no-owners", ("nlcount",), 2.0),
    ("tcptune-no-owners", ("ss",), 0.7),
    ("tcptune", ("auditfloor",), 1.0),  # owners (and details, when it may) by BPF
    ("tcptune-no-bpf", ("auditfloor",), 1.6),  # sock_diag and a readlink per descriptor
    ("tcptune", ("ss", "ss-p"), 0.25),
)
IDLE_TARGET: Final = ("tcptune", ("python",), 2.0)
RSS_TARGETS_MIB: Final[Mapping[str, float]] = {"tcptune-no-owners": 30.0, "tcptune": 40.0}
FLAT_MIB: Final = 2.0
WATCH_CPU_S: Final = 0.100
SCALING_KEYS: Final = ("tcptune", "tcptune-no-owners", "nlcount", "auditfloor", "ss", "ss-p")


@dataclass(frozen=True)
class TargetRow:
    """One target in one scenario: the value, the bound, whether it is met."""

    scenario: str
    measure: str
    target: str
    value: float | None
    met: bool | None
    note: str = ""

    def cells(self) -> list[str]:
        """Return the row as table cells."""
        value = "-" if self.value is None else f"{self.value:.2f}"
        met = "-" if self.met is None else ("yes" if self.met else "NO")
        return [self.scenario, self.measure, self.target, value, met, self.note]


def by_key(scenario: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """Return a scenario's command summaries by spec key."""
    return {c["key"]: c for c in scenario.get("commands", [])}


def ratio(
    scenario: Mapping[str, Any], numerator: str, denominators: Sequence[str], bound: float
) -> TargetRow:
    """Return median wall(numerator) / sum of median walls(denominators) against ``bound``."""
    commands = by_key(scenario)
    label = f"{numerator} / {' + '.join(denominators)}"
    name = str(scenario.get("name", "?"))
    wanted = [numerator, *denominators]
    missing = [key for key in wanted if key not in commands]
    if missing:
        return TargetRow(name, label, f"<= {bound:g}x", None, None, f"{missing[0]} not measured")
    failed = [key for key in wanted if not commands[key]["ok"]]
    if failed:
        return TargetRow(name, label, f"<= {bound:g}x", None, None, f"{failed[0]} failed")
    below = sum(commands[key]["median_wall_s"] for key in denominators)
    value = commands[numerator]["median_wall_s"] / below
    return TargetRow(name, label, f"<= {bound:g}x", value, value <= bound)


def scenario_targets(scenario: Mapping[str, Any]) -> list[TargetRow]:
    """Return every target that applies to one scenario."""
    name = str(scenario.get("name", "?"))
    if "error" in scenario:
        return [TargetRow(name, "scenario", "-", None, None, str(scenario["error"]))]
    if scenario.get("sockets") == 0:
        return [ratio(scenario, IDLE_TARGET[0], IDLE_TARGET[1], IDLE_TARGET[2])]
    rows = [ratio(scenario, num, den, bound) for num, den, bound in RATIO_TARGETS]
    commands = by_key(scenario)
    for key, bound in RSS_TARGETS_MIB.items():
        if key in commands and "max_rss_mib" in commands[key]:
            rss = commands[key]["max_rss_mib"]
            rows.append(TargetRow(name, f"{key} max RSS MiB", f"<= {bound:g}", rss, rss <= bound))
    watch = commands.get("watch", {}).get("cpu_per_refresh_s")
    if watch is not None:
        rows.append(
            TargetRow(
                name,
                "watch CPU ms per refresh",
                f"<= {WATCH_CPU_S * 1000:g}",
                watch * 1000,
                watch <= WATCH_CPU_S,
            )
        )
    return rows


def flatness(scenarios: Iterable[Mapping[str, Any]]) -> list[TargetRow]:
    """Return, per mix and audit mode, the spread of max RSS over the sizes (<= 2 MiB)."""
    spread: dict[tuple[str, str], list[float]] = {}
    for scenario in scenarios:
        if "error" in scenario or not scenario.get("sockets"):
            continue
        for key in RSS_TARGETS_MIB:
            command = by_key(scenario).get(key)
            if command and "max_rss_mib" in command:
                spread.setdefault((str(scenario["mix"]), key), []).append(command["max_rss_mib"])
    rows = []
    for (mix, key), values in sorted(spread.items()):
        if len(values) < 2:
            continue
        width = max(values) - min(values)
        rows.append(
            TargetRow(
                f"mix {mix}",
                f"{key} RSS spread over {len(values)} sizes MiB",
                f"<= {FLAT_MIB:g}",
                width,
                width <= FLAT_MIB,
            )
        )
    return rows


def all_targets(scenarios: Sequence[Mapping[str, Any]]) -> list[TargetRow]:
    """Return the targets of every scenario, then the flatness of memory per mix."""
    rows = [row for scenario in scenarios for row in scenario_targets(scenario)]
    return rows + flatness(scenarios)


def fmt_ms(seconds: float | None) -> str:
    """Format seconds as whole milliseconds."""
    return "-" if seconds is None else f"{seconds * 1000:.0f}"


def status(command: Mapping[str, Any]) -> str:
    """Summarize exit codes and count checks of a command."""
    text = ",".join(str(c) for c in sorted(set(command["exit_codes"])))
    if not command["ok"]:
        text += " FAILED"
    if command.get("counts_match") is True:
        text += " counts ok"
    elif command.get("counts_match") is False:
        text += " COUNTS DIFFER"
    return text


def result_rows(scenarios: Sequence[Mapping[str, Any]]) -> list[list[str]]:
    """Return one row per command and scenario for the results table."""
    rows = []
    for sc in scenarios:
        if "error" in sc:
            rows.append([sc["name"], str(sc.get("sockets", "?")), "ERROR: " + sc["error"]])
            continue
        for cmd in sc["commands"]:
            cpu = fmt_ms(cmd.get("median_cpu_s"))
            if cmd.get("cpu_per_refresh_s") is not None:
                cpu += f" ({fmt_ms(cmd['cpu_per_refresh_s'])}/refresh)"
            rows.append(
                [
                    sc["name"],
                    f"{sc['sockets']:,}",
                    cmd["name"],
                    fmt_ms(cmd.get("median_wall_s")),
                    fmt_ms(cmd.get("min_wall_s")),
                    f"{cmd.get('max_rss_mib', 0):.1f}",
                    cpu,
                    str(len(cmd["walls_s"])),
                    status(cmd),
                ]
            )
    return rows


RESULT_HEADERS: Final = (
    "scenario",
    "sockets",
    "command",
    "median ms",
    "min ms",
    "max RSS MiB",
    "CPU ms",
    "runs",
    "exit / check",
)
TARGET_HEADERS: Final = ("scenario", "measure", "target", "value", "met", "note")


def scaling_markdown(scenarios: Sequence[Mapping[str, Any]]) -> str:
    """Return the README's scaling table: per mix and size, wall ms and max RSS per command."""
    header = ["mix", "sockets", *SCALING_KEYS]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for sc in scenarios:
        if "error" in sc:
            continue
        commands = by_key(sc)
        cells = [str(sc.get("mix", "-")), f"{sc['sockets']:,}"]
        for key in SCALING_KEYS:
            cmd = commands.get(key)
            if cmd is None or "median_wall_s" not in cmd:
                cells.append("-")
            else:
                cells.append(f"{fmt_ms(cmd['median_wall_s'])} ms, {cmd['max_rss_mib']:.1f} MiB")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def targets_markdown(rows: Sequence[TargetRow]) -> str:
    """Return the targets as a Markdown table."""
    lines = ["| " + " | ".join(TARGET_HEADERS) + " |", "|" + "---|" * len(TARGET_HEADERS)]
    lines += ["| " + " | ".join(row.cells()) + " |" for row in rows]
    return "\n".join(lines)
