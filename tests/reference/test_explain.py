"""Tests for the explain reference: topic files, lookups, and no repeated myths."""

from __future__ import annotations

import re

import pytest

from tcptune.reference.explain import (
    BODY_WIDTH,
    SUMMARY_MAX,
    Topic,
    TopicFormatError,
    UnknownTopic,
    find_topic,
    format_topic,
    lint_topic,
    load_topics,
    normalize,
    parse_topic,
)

STATES = (
    "established",
    "syn-sent",
    "syn-recv",
    "fin-wait-1",
    "fin-wait-2",
    "time-wait",
    "close",
    "close-wait",
    "last-ack",
    "listen",
    "closing",
)
SYSCTLS = (
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_tw_reuse",
    "net.ipv4.tcp_tw_recycle",
    "net.ipv4.tcp_max_tw_buckets",
    "net.ipv4.tcp_max_orphans",
    "net.ipv4.tcp_orphan_retries",
    "net.ipv4.tcp_retries2",
    "net.ipv4.tcp_syn_retries",
    "net.ipv4.tcp_synack_retries",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.tcp_max_syn_backlog",
    "net.ipv4.tcp_timestamps",
    "net.ipv4.tcp_rfc1337",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_local_reserved_ports",
    "net.core.somaxconn",
    "net.ipv4.tcp_migrate_req",
)
OPTIONS = (
    "so_linger",
    "so_reuseaddr",
    "so_reuseport",
    "so_keepalive",
    "tcp_user_timeout",
    "shutdown-vs-close",
)
CONCEPTS = ("misconceptions", "keepalive-math")


@pytest.fixture(scope="module")
def topics() -> dict[str, Topic]:
    return load_topics()


def flat(text: str) -> str:
    """Return ``text`` with line breaks and runs of spaces collapsed, for phrase checks."""
    return " ".join(text.split())


def test_every_expected_topic_exists_with_its_kind(topics: dict[str, Topic]) -> None:
    expected = {
        **{name: "state" for name in (*STATES, "states")},
        **{name: "sysctl" for name in SYSCTLS},
        **{name: "option" for name in OPTIONS},
        **{name: "concept" for name in CONCEPTS},
    }
    assert {name: topics[name].kind for name in expected if name in topics} == expected


def test_all_eleven_states_exist(topics: dict[str, Topic]) -> None:
    assert [name for name in STATES if topics.get(name) is None] == []
    assert len(STATES) == 11


@pytest.mark.parametrize("name", [*STATES, "states", *SYSCTLS, *OPTIONS, *CONCEPTS])
def test_topic_passes_lint(topics: dict[str, Topic], name: str) -> None:
    assert lint_topic(topics[name]) == ()


def test_summaries_and_body_widths(topics: dict[str, Topic]) -> None:
    for topic in topics.values():
        assert topic.title and topic.summary, topic.name
        assert len(topic.summary) <= SUMMARY_MAX, topic.name
        assert topic.references, topic.name
        widest = max(len(line) for line in topic.body.split("\n"))
        assert widest <= BODY_WIDTH, topic.name


def test_no_alias_points_at_two_topics(topics: dict[str, Topic]) -> None:
    owner: dict[str, str] = {normalize(name): name for name in topics}
    for name, topic in topics.items():
        for alias in topic.aliases:
            key = normalize(alias)
            assert owner.setdefault(key, name) == name, f"{alias!r}: {owner[key]} and {name}"


def test_state_diagram_fits_and_names_every_state(topics: dict[str, Topic]) -> None:
    diagram = topics["states"].body
    assert max(len(line) for line in diagram.split("\n")) <= 78
    for label in (
        "LISTEN",
        "SYN-SENT",
        "SYN-RECV",
        "ESTABLISHED",
        "FIN-WAIT-1",
        "FIN-WAIT-2",
        "CLOSING",
        "TIME-WAIT",
        "CLOSE-WAIT",
        "LAST-ACK",
        "CLOSE",
    ):
        assert f"| {label}" in diagram or f"|  {label}" in diagram, label


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("close-wait", "close-wait"),
        ("CLOSE_WAIT", "close-wait"),
        ("close_wait", "close-wait"),
        ("Close-Wait", "close-wait"),
        ("TIME_WAIT", "time-wait"),
        ("2MSL", "time-wait"),
        ("SYN_RCVD", "syn-recv"),
        ("closed", "close"),
        ("ESTAB", "established"),
        ("tcp_fin_timeout", "net.ipv4.tcp_fin_timeout"),
        ("TCP_FIN_TIMEOUT", "net.ipv4.tcp_fin_timeout"),
        ("fin_timeout", "net.ipv4.tcp_fin_timeout"),
        ("net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_fin_timeout"),
        ("net/ipv4/tcp_fin_timeout", "net.ipv4.tcp_fin_timeout"),
        ("/proc/sys/net/core/somaxconn", "net.core.somaxconn"),
        ("somaxconn", "net.core.somaxconn"),
        ("tcp-tw-reuse", "net.ipv4.tcp_tw_reuse"),
        ("ip_local_port_range", "net.ipv4.ip_local_port_range"),
        ("SO_LINGER", "so_linger"),
        ("so-linger", "so_linger"),
        ("TCP_KEEPIDLE", "so_keepalive"),
        ("TCP_USER_TIMEOUT", "tcp_user_timeout"),
        ("shutdown", "shutdown-vs-close"),
        ("myths", "misconceptions"),
        ("  keepalive-math  ", "keepalive-math"),
    ],
)
def test_lookup_by_name_alias_case_and_underscore(
    topics: dict[str, Topic], query: str, expected: str
) -> None:
    assert find_topic(topics, query).name == expected


def test_unknown_topic_suggests_close_names(topics: dict[str, Topic]) -> None:
    with pytest.raises(UnknownTopic) as caught:
        find_topic(topics, "close_wiat")
    assert caught.value.name == "close_wiat"
    assert "close-wait" in caught.value.suggestions
    assert len(caught.value.suggestions) <= 5
    assert isinstance(caught.value, LookupError)


def test_unknown_sysctl_typo_suggests_the_sysctl(topics: dict[str, Topic]) -> None:
    with pytest.raises(UnknownTopic) as caught:
        find_topic(topics, "tcp_fin_timout")
    assert caught.value.suggestions[0] == "net.ipv4.tcp_fin_timeout"


def test_unknown_topic_without_anything_close(topics: dict[str, Topic]) -> None:
    with pytest.raises(UnknownTopic) as caught:
        find_topic(topics, "zzzz-qqqq-xxxx")
    assert caught.value.suggestions == ()
    assert "zzzz-qqqq-xxxx" in str(caught.value)


def test_extra_finding_topics_are_added_and_found(topics: dict[str, Topic]) -> None:
    finding = Topic(
        name="orphan-pressure",
        kind="finding",
        title="Orphaned sockets near the host limit",
        summary="Many orphaned sockets; the host may start resetting them.",
        references=("ip-sysctl.rst: tcp_max_orphans",),
        aliases=("orphans-high",),
        body="Body text.",
    )
    merged = load_topics([finding])
    assert len(merged) == len(topics) + 1
    assert find_topic(merged, "ORPHANS_HIGH") is finding
    assert "orphan-pressure" not in topics  # no state kept between calls


def test_extra_topic_clashing_with_a_shipped_name_is_refused() -> None:
    clash = Topic("close-wait", "finding", "t", "s", ("r",), (), "b")
    with pytest.raises(ValueError, match="close-wait"):
        load_topics([clash])


def test_extra_topic_with_unknown_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="kind"):
        load_topics([Topic("x-y", "rumour", "t", "s", ("r",), (), "b")])


def test_parse_topic_reads_the_header_and_body() -> None:
    text = "title: T\nsummary: S\nreferences: a; b;\naliases: X_Y, z\n\nline one\n\nline two\n"
    topic = parse_topic(text, name="n", kind="concept")
    assert topic.references == ("a", "b")
    assert topic.aliases == ("X_Y", "z")
    assert topic.body == "line one\n\nline two"


@pytest.mark.parametrize(
    "text",
    [
        "title: T\nsummary: S\nreferences: a\naliases: b\nbody without blank line\n",
        "title: T\nsummary: S\nreferences: a\n\nbody\n",
        "title: T\nsummary: S\nreferences: a\naliases: b\ncolour: red\n\nbody\n",
        "title: T\ntitle: U\nsummary: S\nreferences: a\naliases: b\n\nbody\n",
        "title: \nsummary: S\nreferences: a\naliases: b\n\nbody\n",
        "title: T\nsummary: S\nreferences: a\naliases: b\n\n\n",
    ],
)
def test_parse_topic_rejects_malformed_files(text: str) -> None:
    with pytest.raises(TopicFormatError):
        parse_topic(text, name="bad", kind="concept")


def test_lint_reports_long_summary_and_lines() -> None:
    topic = Topic("n", "concept", "t", "s" * 71, (), (), "x" * 79)
    problems = lint_topic(topic)
    assert len(problems) == 3


def test_format_topic_shows_title_body_and_references(topics: dict[str, Topic]) -> None:
    text = format_topic(topics["so_linger"])
    assert text.startswith(topics["so_linger"].title)
    assert "References:" in text and "TcpExtTCPAbortOnData" in text


# --- The reference must correct common myths, never repeat them as advice. ---


def test_fin_wait_2_and_time_wait_say_fin_timeout_does_not_change_time_wait(
    topics: dict[str, Topic],
) -> None:
    for name in ("fin-wait-2", "time-wait", "net.ipv4.tcp_fin_timeout"):
        assert "tcp_fin_timeout does not change TIME-WAIT" in flat(topics[name].body), name


def test_time_wait_is_60_seconds_fixed(topics: dict[str, Topic]) -> None:
    body = flat(topics["time-wait"].body)
    assert "60 seconds, fixed at compile time" in body
    assert "TCP_TIMEWAIT_LEN" in body
    assert "no sysctl changes it" in body


def test_close_wait_says_no_sysctl_fixes_it(topics: dict[str, Topic]) -> None:
    body = flat(topics["close-wait"].body)
    assert "No sysctl fixes CLOSE-WAIT." in body
    assert 'It does not last "at least 2 hours"' in body
    assert "SO_REUSEADDR does not remove CLOSE-WAIT sockets" in body


def test_tw_recycle_is_described_as_removed(topics: dict[str, Topic]) -> None:
    body = flat(topics["net.ipv4.tcp_tw_recycle"].body)
    assert "removed it in 4.12" in body
    assert "NAT" in body


def test_tw_reuse_is_outgoing_only_and_default_is_2(topics: dict[str, Topic]) -> None:
    body = flat(topics["net.ipv4.tcp_tw_reuse"].body)
    assert "It does nothing for accepted (incoming) connections" in body
    assert "Default 2 on current kernels" in body


def test_keepalive_sysctls_say_they_need_so_keepalive(topics: dict[str, Topic]) -> None:
    assert "It does not apply to every socket" in flat(topics["net.ipv4.tcp_keepalive_time"].body)
    math = flat(topics["keepalive-math"].body)
    assert "7200 + 75 x 9 = 7875 s" in math
    assert "350 s" in math and "60 s" in math and "600 s" in math and "4 minutes" in math


def test_so_linger_names_the_counter_and_the_default_does_not_block(
    topics: dict[str, Topic],
) -> None:
    body = flat(topics["so_linger"].body)
    assert "TcpExtTCPAbortOnData" in body
    assert "close() does not block by default" in body


def test_so_reuseaddr_never_allows_two_listeners(topics: dict[str, Topic]) -> None:
    body = flat(topics["so_reuseaddr"].body)
    assert "It never allows two listening sockets on the same address and port" in body
    assert 'It does not "kick out" CLOSE-WAIT' in body


def test_max_orphans_is_host_wide(topics: dict[str, Topic]) -> None:
    body = flat(topics["net.ipv4.tcp_max_orphans"].body)
    assert "a container does not see" in body


def test_misconceptions_entries_are_complete(topics: dict[str, Topic]) -> None:
    body = topics["misconceptions"].body
    myths = body.count("MYTH:")
    assert myths >= 15
    for part in ("Why it is wrong:", "What is true:", "Source:"):
        assert body.count(part) == myths, part


def advice(topic: Topic) -> str:
    """Return the body without the quoted claims of the misconceptions topic."""
    blocks = topic.body.split("\n\n")
    return "\n\n".join(block for block in blocks if not block.startswith("MYTH:"))


@pytest.mark.parametrize(
    "pattern",
    [
        r"tcp_tw_recycle\s*=\s*1",
        r"tcp_keepalive_time\s*=\s*30\b",
        r"tcp_max_tw_buckets\s*=\s*\d",
        r"TIME[-_]WAIT (lasts|is) (1|one)\s*(-|to|–)\s*4 minutes",
        r"set SO_LINGER to \{1, 0\} so that",
    ],
)
def test_no_topic_recommends_a_known_bad_setting(topics: dict[str, Topic], pattern: str) -> None:
    for topic in topics.values():
        assert not re.search(pattern, advice(topic), re.IGNORECASE), (topic.name, pattern)


def test_myths_are_only_quoted_inside_myth_entries(topics: dict[str, Topic]) -> None:
    body = topics["misconceptions"].body
    assert 'MYTH: "TIME_WAIT lasts 1 to 4 minutes' in body
    assert "1 to 4 minutes" not in advice(topics["misconceptions"])
