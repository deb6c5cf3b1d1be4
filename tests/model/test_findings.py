"""--ignore matching: IDs, ID:SUBJECT with short or dotted sysctl keys, unknown IDs."""

from __future__ import annotations

import pytest

from tcptune.model.findings import Finding, Severity, is_ignored, unknown_ignore_ids


def _finding(finding_id: str, subject: str | None = None) -> Finding:
    return Finding(finding_id, Severity.WARNING, "t", (), "e", "r", (), subject=subject)


@pytest.mark.parametrize(
    ("finding", "ignore", "ignored"),
    [
        (_finding("close-wait"), "close-wait", True),
        (_finding("close-wait"), "close-wait:x", False),
        (_finding("profile-mismatch", "net.ipv4.tcp_fin_timeout"), "profile-mismatch", True),
        (
            _finding("profile-mismatch", "net.ipv4.tcp_fin_timeout"),
            "profile-mismatch:net.ipv4.tcp_fin_timeout",
            True,
        ),
        (
            _finding("profile-mismatch", "net.ipv4.tcp_fin_timeout"),
            "profile-mismatch:tcp_fin_timeout",
            True,
        ),
        (_finding("profile-mismatch", "net.core.somaxconn"), "profile-mismatch:somaxconn", True),
        (
            _finding("profile-mismatch", "net.ipv4.tcp_fin_timeout"),
            "profile-mismatch:fin_timeout",
            False,
        ),
        (
            _finding("profile-mismatch", "net.ipv4.tcp_fin_timeout"),
            "profile-key-absent:tcp_fin_timeout",
            False,
        ),
        (_finding("profile-mismatch", "net.ipv6.conf.all.x"), "profile-mismatch:conf.all.x", False),
        (_finding("reuseport", "0.0.0.0:8080"), "reuseport:0.0.0.0:8080", True),
        (_finding("reuseport", "0.0.0.0:8080"), "reuseport:0.0.0.0:9090", False),
    ],
)
def test_is_ignored(finding: Finding, ignore: str, ignored: bool) -> None:
    assert is_ignored(finding, [ignore]) is ignored


def test_unknown_ignore_ids_looks_only_at_the_id() -> None:
    known = {"close-wait", "profile-mismatch"}
    words = ["close-wait", "profile-mismatch:anything", "nonsense", "clos-wait:x"]
    assert unknown_ignore_ids(words, known) == ["nonsense", "clos-wait:x"]
