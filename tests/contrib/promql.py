"""What the contrib Prometheus artefacts need: tcptune's real series and PromQL selectors."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable

from click.testing import CliRunner
from prometheus_client.parser import text_string_to_metric_families

from tcptune.cli import cli
from tests.conftest import FIXTURES
from tests.lab import SocketLab

Labels = dict[str, str]
# A metric selector: tcptune_NAME, optionally followed by {label matchers}.
SELECTOR = re.compile(r"\b(tcptune_[a-z0-9_]+)\b(\{[^}]*\})?")
MATCHER = re.compile(r'(\w+)\s*(=~|!~|!=|=)\s*"([^"]*)"')
# Series the rules and dashboard may use before tcptune writes them (none now).
PENDING: frozenset[str] = frozenset()


def live_audits(lab: SocketLab) -> dict[str, str]:
    """Return {instance name: Prometheus text} of real audits with every kind of series.

    The lab gets CLOSE_WAIT (per-process series), TIME_WAIT, a zero-linger reset and a
    listener; it is audited with owners ("lab") and with --profile ("lab-profile":
    profile-mismatch findings). A host-namespace tree ("host-tree") adds the host-wide
    keys (tcp_max_orphans) a lab's namespace does not show.
    """
    lab.listen()
    lab.established(1)
    lab.close_wait(2)
    lab.time_wait(2)
    lab.linger_zero_close(1)
    runs = {
        "lab": ["audit"],
        "lab-profile": ["audit", "--profile", "server-profile"],
        "host-tree": ["--proc-root", str(FIXTURES / "old-kernel-host"), "audit"],
    }
    texts: dict[str, str] = {}
    for instance, arguments in runs.items():
        result = CliRunner().invoke(cli, [*arguments, "--format", "prometheus"])
        assert result.exit_code in (0, 1, 2), result.stderr
        texts[instance] = result.stdout
    return texts


def parse_series(texts: dict[str, str]) -> dict[str, list[Labels]]:
    """Return {series name: [labels, ...]} over every text."""
    series: dict[str, list[Labels]] = {}
    for text in texts.values():
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                series.setdefault(sample.name, []).append(dict(sample.labels))
    return series


def live_series(lab: SocketLab) -> dict[str, list[Labels]]:
    """Return {series name: [labels, ...]} from real audits (see live_audits)."""
    return parse_series(live_audits(lab))


def input_series(texts: dict[str, str], job: str = "node") -> list[dict[str, str]]:
    """Return promtool test input_series: every real sample, constant, under its instance."""
    items: list[dict[str, str]] = []
    for instance, text in texts.items():
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                labels = {**sample.labels, "instance": instance, "job": job}
                matchers = ", ".join(f"{k}={json.dumps(v)}" for k, v in sorted(labels.items()))
                items.append(
                    {"series": f"{sample.name}{{{matchers}}}", "values": f"{sample.value}x30"}
                )
    return items


def selectors(expression: str) -> Iterable[tuple[str, list[tuple[str, str, str]]]]:
    """Yield each tcptune metric an expression selects, with its label matchers."""
    for match in SELECTOR.finditer(expression):
        yield match.group(1), MATCHER.findall(match.group(2) or "")


def unmatched_selectors(expressions: Iterable[str], live: dict[str, list[Labels]]) -> list[str]:
    """Return every selector no real series satisfies (a typo in a name or a label value)."""
    missing: list[str] = []
    for expression in expressions:
        for name, matchers in selectors(expression):
            if name in PENDING and name not in live:
                continue
            candidates = live.get(name, [])
            if not any(_satisfies(labels, matchers) for labels in candidates):
                missing.append(f"{name}{matchers or ''} in {expression.strip()!r}")
    return missing


def _satisfies(labels: Labels, matchers: list[tuple[str, str, str]]) -> bool:
    for label, operator, value in matchers:
        actual = labels.get(label, "")
        ok = {
            "=": actual == value,
            "!=": actual != value,
            "=~": re.fullmatch(value, actual) is not None,
            "!~": re.fullmatch(value, actual) is None,
        }[operator]
        if not ok:
            return False
    return True
