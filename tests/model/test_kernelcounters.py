"""Lint: every counter tcptune shows or names is in the one reviewed table, and read from it.

A metric HELP string, an audit counter label or a finding title that names a kernel counter
fails here unless the counter is in tcptune/model/kernelcounters.py, so no paraphrase of a
kernel counter can float free of the reviewed wording and its kernel source.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from prometheus_client.parser import text_string_to_metric_families

from tcptune.advise import DOCS
from tcptune.cli import cli
from tcptune.inspect.procfs import ProcFS
from tcptune.model.kernelcounters import COUNTER_DOCS, Kind, Scope, counter_doc
from tcptune.output.common import NOTABLE_SOCKSTAT, NOTABLE_TCP, NOTABLE_TCP_EXT
from tcptune.output.counters import current_values, totals
from tcptune.output.metrics import (
    EXPORTED_COUNTERS,
    SOCKSTAT_FIELDS,
    TCP_MIB_HELP,
    audit_prometheus,
    sockstat_help,
)
from tcptune.reference.claims import CLAIMS
from tcptune.run.audit import run_audit
from tcptune.run.watch import WATCHED_COUNTERS
from tests.conftest import FIXTURES


def kernel_counter_names() -> set[str]:
    """Return every Tcp/TcpExt counter name this kernel prints (read-only, any namespace)."""
    names: set[str] = set()
    for file in ("snmp", "netstat"):
        lines = Path("/proc/net", file).read_text(encoding="ascii").splitlines()
        for header in lines[::2]:
            group, _, keys = header.partition(":")
            if group in ("Tcp", "TcpExt"):
                names.update(keys.split())
    names.discard("RtoAlgorithm")  # constants, not counters; never shown
    return names


def named_counters(text: str, known: set[str]) -> set[str]:
    """Return the kernel counter names that appear as words in ``text`` (TcpExt prefix ok)."""
    words = set(re.findall(r"[A-Za-z][A-Za-z0-9]+", text))
    words |= {word.removeprefix("TcpExt") for word in words if word.startswith("TcpExt")}
    return words & known


REVIEWED = {name for _group, name in COUNTER_DOCS}


def test_every_counter_shown_anywhere_is_in_the_table() -> None:
    shown = {("TCP", key) for key in NOTABLE_SOCKSTAT}
    shown |= {("Tcp", key) for key in NOTABLE_TCP} | {("TcpExt", k) for k in NOTABLE_TCP_EXT}
    shown |= set(EXPORTED_COUNTERS) | {("TCP", key) for key in SOCKSTAT_FIELDS}
    shown |= set(WATCHED_COUNTERS)
    missing = sorted(f"{group} {name}" for group, name in shown - set(COUNTER_DOCS))
    assert not missing, f"shown but not reviewed: {missing}"


def test_table_entries_are_complete_and_cite_registered_claims() -> None:
    for (group, name), doc in COUNTER_DOCS.items():
        assert (doc.group, doc.name) == (group, name)
        assert doc.meaning and not doc.meaning.endswith("."), name
        assert "(" in doc.source or "->" in doc.source, f"{name}: cite a kernel function"
        assert set(doc.proven_by) <= set(CLAIMS), f"{name}: unknown claims {doc.proven_by}"
        expected = Kind.CURRENT if group in ("TCP", "TCP6") or name == "CurrEstab" else Kind.TOTAL
        assert doc.kind is expected, name
    assert counter_doc("TCP", "orphan").scope is Scope.HOST
    assert counter_doc("TCP", "alloc").scope is Scope.HOST
    assert "CLOSE_WAIT" in counter_doc("Tcp", "CurrEstab").label
    with pytest.raises(KeyError, match="not in the reviewed counter table"):
        counter_doc("TcpExt", "NoSuchCounter")


def test_audit_text_labels_are_the_tables_labels() -> None:
    result = CliRunner().invoke(cli, ["--proc-root", str(FIXTURES / "container-ns"), "audit"])
    text = result.stdout
    snapshot = run_audit(ProcFS(FIXTURES / "container-ns")).snapshot
    for doc, _value in [*current_values(snapshot), *totals(snapshot)]:
        assert doc.label in text
    current = text.split("Sockets now", 1)[1].split("Counters (", 1)[0]
    for line in current.splitlines()[3:]:
        label = re.split(r"\s{2,}", line.strip())[0] if line.strip() else ""
        if label:
            assert label.removesuffix(", host-wide") in {d.label for d in COUNTER_DOCS.values()}
    assert "Counters (totals since this network namespace was created)" in text
    assert "since boot" not in text.split("Findings", 1)[0]  # a container: not since boot


def test_prometheus_help_and_counter_labels_come_from_the_table() -> None:
    text = audit_prometheus(run_audit(ProcFS(FIXTURES / "container-ns")))
    known = kernel_counter_names()
    helps = dict(re.findall(r"^# HELP (\S+) (.*)$", text, re.MULTILINE))
    assert helps["tcptune_sockstat"] == sockstat_help().replace("\\", "\\\\")
    assert helps["tcptune_tcp_mib_total"] == TCP_MIB_HELP
    assert "since boot in the initial namespace" in TCP_MIB_HELP
    for name, help_text in helps.items():
        unknown = named_counters(help_text, known) - REVIEWED
        assert not unknown, f"HELP of {name} names unreviewed counters {unknown}"
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if family.name == "tcptune_tcp_mib":
                key = (sample.labels["table"], sample.labels["counter"])
                assert key in COUNTER_DOCS
            if family.name == "tcptune_sockstat":
                assert (sample.labels["table"], sample.labels["field"]) in COUNTER_DOCS


def test_finding_titles_and_texts_name_only_reviewed_counters() -> None:
    known = kernel_counter_names()
    for doc in DOCS.values():
        for part in (doc.title, doc.summary, doc.explanation):
            unknown = named_counters(part, known) - REVIEWED
            assert not unknown, f"finding {doc.id} names unreviewed counters {unknown}"
    result = run_audit(ProcFS(FIXTURES / "container-ns"))
    for finding in result.findings:
        unknown = named_counters(" ".join((finding.title, *finding.evidence)), known) - REVIEWED
        assert not unknown, f"finding {finding.id}: {unknown}"


def test_the_lint_catches_an_unreviewed_counter() -> None:
    assert named_counters("Resets counted in TcpExtTCPAbortFailed", {"TCPAbortFailed"}) == {
        "TCPAbortFailed"
    }
