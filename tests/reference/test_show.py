"""``tcptune explain TOPIC --show``: real experiments in a throwaway namespace, nothing else."""

from __future__ import annotations

from pathlib import Path

import pytest

from tcptune.exitcodes import ExitStatus
from tcptune.reference.show import EXPERIMENTS, run_show
from tests.lab import current_netns, require_netns_capability, skip_or_fail
from tests.lab.privileges import UNPRIVILEGED, run_tcptune

EXPECTED = {
    "so_linger": ("TCPAbortOnData +1, OutRsts +1", "ConnectionResetError"),
    "abort-on-close": ("TCPAbortOnClose +1, OutRsts +1", "ConnectionResetError"),
    "fin-wait-2": ("st 05, inode 0", "tw 1", "CurrEstab: 1", "st now 06"),
    "time-wait": ("st 06 (TIME_WAIT)",),
    "tcp_user_timeout": ("TimeoutError",),
    "so_keepalive": (
        "no SO_KEEPALIVE: keepalive timer none",
        "TCP_KEEPIDLE=60: keepalive timer 60 s",
    ),
}
SYSCTLS = Path("/proc/sys/net/ipv4")


@pytest.fixture
def netns_ok() -> None:
    reason = require_netns_capability()
    if reason is not None:
        skip_or_fail(reason)


@pytest.mark.kernel
@pytest.mark.parametrize("topic", sorted(EXPECTED))
def test_each_experiment_shows_what_the_topic_claims(netns_ok: None, topic: str) -> None:
    before = current_netns()
    settings = {p.name: p.read_text() for p in SYSCTLS.glob("tcp_*") if p.stat().st_mode & 0o444}
    result = run_show(topic, "title")
    text = "\n".join(result.lines)
    for expected in EXPECTED[topic]:
        assert expected in text, text
    assert current_netns() == before  # the experiment ran in a child
    assert {p.name: p.read_text() for p in SYSCTLS.glob("tcp_*") if p.name in settings} == settings


@pytest.mark.kernel
def test_show_through_the_cli_and_refusals(netns_ok: None) -> None:
    shown = run_tcptune("explain", "linger0", "--show")
    assert shown.returncode == 0, shown.stderr
    assert "What the kernel did, in a throwaway network namespace:" in shown.stdout
    none = run_tcptune("explain", "misconceptions", "--show")
    assert none.returncode == ExitStatus.USAGE
    assert "--show works for:" in none.stderr
    refused = run_tcptune("explain", "so_linger", "--show", prefix=UNPRIVILEGED)
    assert refused.returncode == ExitStatus.NO_PERMISSION, refused.stderr
    assert "needs root" in refused.stderr


def test_every_experiment_belongs_to_a_topic() -> None:
    from tcptune.advise import finding_topics
    from tcptune.reference import explain

    topics = explain.with_findings(explain.load_topics(), finding_topics())
    assert set(EXPERIMENTS) <= set(topics)
