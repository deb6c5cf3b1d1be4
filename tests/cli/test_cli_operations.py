"""audit --format prometheus and check, and --output: parsed back and checked against a lab."""

from __future__ import annotations

import json
import os
import socket
import stat
import time
from collections import Counter
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tcptune.exitcodes import ExitStatus, plugin_status
from tests.conftest import FIXTURES
from tests.conftest import invoke as _run
from tests.lab import SocketLab, read_netstat

CONTAINER = str(FIXTURES / "container-ns")


def _metrics(text: str) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """Return {sample name: {sorted labels: value}}, failing on any repeated series."""
    samples: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(text):
        assert family.documentation, f"{family.name} has no help text"
        for sample in family.samples:
            labels = tuple(sorted(sample.labels.items()))
            series = samples.setdefault(sample.name, {})
            assert labels not in series, f"repeated series {sample.name}{dict(labels)}"
            series[labels] = sample.value
    return samples


def _types(text: str) -> dict[str, str]:
    return {family.name: family.type for family in text_string_to_metric_families(text)}


def _sysctl(name: str) -> str:
    return Path("/proc/sys", *name.split(".")).read_text().strip()


@pytest.mark.kernel
def test_prometheus_output_matches_real_sockets_and_counters(lab: SocketLab) -> None:
    lab.listen()  # 1 LISTEN
    lab.established(2)  # 4 ESTABLISHED
    lab.close_wait(3)  # 3 CLOSE_WAIT + 3 FIN_WAIT2
    lab.time_wait(2, socket.AF_INET6)  # 2 TIME_WAIT, IPv6
    lab.linger_zero_close(3)  # TCPAbortOnData +3 in this fresh namespace
    before = time.time()
    code, out, err = _run("audit", "--format", "prometheus")
    after = time.time()
    assert err == ""
    metrics = _metrics(out)
    sockets = {
        "{state}/{family}".format(**dict(labels)): value
        for labels, value in metrics["tcptune_sockets"].items()
    }
    assert len(sockets) == 22  # every state and family, zeros included
    assert {series: n for series, n in sockets.items() if n} == {
        "listen/ipv4": 1,
        "established/ipv4": 4,
        "close_wait/ipv4": 3,
        "fin_wait2/ipv4": 3,
        "time_wait/ipv6": 2,
    }
    netstat, snmp = read_netstat(name="netstat"), read_netstat(name="snmp")
    mib = {dict(k)["counter"]: v for k, v in metrics["tcptune_tcp_mib_total"].items()}
    assert mib["TCPAbortOnData"] == 3 == netstat["TcpExt"]["TCPAbortOnData"]
    assert mib["ActiveOpens"] == snmp["Tcp"]["ActiveOpens"]
    assert mib["ListenOverflows"] == 0
    # sockstat's tw also counts the orphaned FIN_WAIT2 ends, kept as timewait minisocks
    # (net/ipv4/tcp.c __tcp_close with tcp_fin_timeout <= 60 s): 2 + 3.
    assert metrics["tcptune_sockstat"][(("field", "tw"), ("table", "TCP"))] == 5
    types = _types(out)
    assert types["tcptune_tcp_mib"] == "counter"
    assert types["tcptune_sockets"] == "gauge"
    # Settings: one gauge by key, in /proc/sys units; a port range as two bounds.
    settings = {dict(k)["key"]: v for k, v in metrics["tcptune_sysctl_value"].items()}
    assert settings["net.ipv4.tcp_fin_timeout"] == int(_sysctl("net.ipv4.tcp_fin_timeout"))
    low, high = map(int, _sysctl("net.ipv4.ip_local_port_range").split())
    assert metrics["tcptune_sysctl_range"] == {
        (("bound", "low"), ("key", "net.ipv4.ip_local_port_range")): low,
        (("bound", "high"), ("key", "net.ipv4.ip_local_port_range")): high,
    }
    assert "net.ipv4.ip_local_reserved_ports" not in settings  # not a number
    keepalive = int(_sysctl("net.ipv4.tcp_keepalive_time")) + int(
        _sysctl("net.ipv4.tcp_keepalive_intvl")
    ) * int(_sysctl("net.ipv4.tcp_keepalive_probes"))
    assert metrics["tcptune_keepalive_detection_seconds"][()] == keepalive
    # The 3 CLOSE_WAIT sockets are this test process's; 2 TIME_WAIT go to one destination.
    (holder,) = metrics["tcptune_close_wait_sockets"].items()
    assert holder[1] == 3
    assert metrics["tcptune_time_wait_busiest_destination_sockets"][()] == 2
    # The run itself: complete, its exit status, its time.
    assert metrics["tcptune_inspection_complete"][()] == 1
    assert metrics["tcptune_audit_exit_status"][()] == code
    assert before - 1 <= metrics["tcptune_audit_timestamp_seconds"][()] <= after + 1
    # One series per active finding, the same ones the JSON report lists.
    _code, document, _err = _run("audit", "--json")
    expected = Counter(
        (f["id"], f.get("subject") or "", f["severity"]) for f in json.loads(document)["findings"]
    )
    found = Counter(
        (dict(labels)["id"], dict(labels)["subject"], dict(labels)["severity"])
        for labels in metrics.get("tcptune_finding", {})
    )
    assert found == Counter(set(expected))
    per_severity = {dict(k)["severity"]: v for k, v in metrics["tcptune_findings"].items()}
    assert per_severity["warning"] == sum(
        n for (_i, _s, sev), n in expected.items() if sev == "warning"
    )


def test_prometheus_from_a_fixture_is_valid_and_marks_incomplete_inspections() -> None:
    code, out, _err = _run(
        "--proc-root", str(FIXTURES / "broken"), "audit", "--format", "prometheus"
    )
    assert code == ExitStatus.INCOMPLETE
    metrics = _metrics(out)
    assert metrics["tcptune_inspection_complete"][()] == 0
    assert metrics["tcptune_audit_exit_status"][()] == 3
    keys = {dict(k)["key"] for k in metrics["tcptune_sysctl_value"]}
    assert "net.ipv4.tcp_fin_timeout" not in keys  # unreadable: no series
    assert "tcptune_sysctl_range" not in metrics  # the broken port range: no series either
    info = dict(next(iter(metrics["tcptune_audit_info"])))
    assert info["source"] == "procfs" and info["profile"] == ""


def test_output_replaces_the_file_atomically(tmp_path: Path) -> None:
    target = tmp_path / "tcptune.prom"
    target.write_text("old\n")
    old_inode = target.stat().st_ino
    code, out, err = _run("--proc-root", CONTAINER, "audit", "--output", str(target))
    assert (code, out, err) == (ExitStatus.WARNING, "", "")
    assert target.stat().st_ino != old_inode  # a rename, not a rewrite in place
    _code, printed, _err = _run("--proc-root", CONTAINER, "audit")
    assert target.read_text() == printed
    assert os.listdir(tmp_path) == ["tcptune.prom"]  # no temporary file left


@pytest.mark.parametrize("problem", ["missing directory", "is a directory"])
def test_an_unwritable_output_is_one_line_and_leaves_nothing_behind(
    tmp_path: Path, problem: str
) -> None:
    if problem == "missing directory":
        target = tmp_path / "nowhere" / "tcptune.prom"  # fails before a temporary file exists
    else:
        target = tmp_path / "tcptune.prom"  # the rename over it fails, after the write
        target.mkdir()
    before = sorted(os.listdir(tmp_path))
    code, out, err = _run(
        "--proc-root", CONTAINER, "audit", "--format", "prometheus", "--output", str(target)
    )
    assert code == ExitStatus.WRITE_FAILED
    assert out == ""
    assert err.startswith(f"tcptune: cannot write {target}: ") and err.count("\n") == 1
    assert sorted(os.listdir(tmp_path)) == before  # no temporary file left behind


def test_output_replaces_a_symlink_itself_and_leaves_its_target_alone(
    tmp_path: Path,
) -> None:
    real = tmp_path / "real.prom"
    real.write_text("old\n")
    link = tmp_path / "link.prom"
    link.symlink_to(real)
    code, out, err = _run("--proc-root", CONTAINER, "audit", "--output", str(link))
    assert (code, out, err) == (ExitStatus.WARNING, "", "")
    assert not link.is_symlink() and real.read_text() == "old\n"
    _code, printed, _err = _run("--proc-root", CONTAINER, "audit")
    assert link.read_text() == printed
    assert sorted(os.listdir(tmp_path)) == ["link.prom", "real.prom"]


@pytest.mark.parametrize("kind", ["FIFO", "directory"])
def test_output_refuses_anything_but_a_regular_file_and_leaves_it_alone(
    tmp_path: Path, kind: str
) -> None:
    special = tmp_path / "special"
    if kind == "directory":
        special.mkdir()
    else:
        os.mkfifo(special)
    target = special
    before = sorted(os.listdir(tmp_path))
    code, out, err = _run("--proc-root", CONTAINER, "audit", "--output", str(target))
    assert code == ExitStatus.WRITE_FAILED
    assert out == ""
    assert err.startswith(f"tcptune: cannot write {target}") and err.count("\n") == 1
    assert f"it is a {kind}; --output replaces only" in err
    assert sorted(os.listdir(tmp_path)) == before  # nothing replaced, no temporary file
    is_fifo = stat.S_ISFIFO(os.stat(special).st_mode)
    assert is_fifo == (kind != "directory")


@pytest.mark.parametrize("mode", [0o600, 0o664, 0o640])
def test_output_keeps_the_mode_of_the_file_it_replaces(tmp_path: Path, mode: int) -> None:
    target = tmp_path / "tcptune.prom"
    target.write_text("old\n")
    os.chmod(target, mode)
    code, _out, err = _run("--proc-root", CONTAINER, "audit", "--output", str(target))
    assert code == ExitStatus.WARNING, err
    assert stat.S_IMODE(target.stat().st_mode) == mode
    assert target.read_text() != "old\n"


def test_a_new_output_file_is_0644_whatever_the_umask(tmp_path: Path) -> None:
    # The collector (node_exporter) usually runs as another user: it must be able to read.
    target = tmp_path / "new.prom"
    previous = os.umask(0o077)
    try:
        code, _out, err = _run("--proc-root", CONTAINER, "audit", "--output", str(target))
    finally:
        os.umask(previous)
    assert code == ExitStatus.WARNING, err
    assert stat.S_IMODE(target.stat().st_mode) == 0o644


def test_an_empty_output_name_is_a_usage_error() -> None:
    code, out, err = _run("--proc-root", CONTAINER, "audit", "--output", "")
    assert code == ExitStatus.USAGE
    assert out == ""
    assert "Invalid value for '--output': needs a file name, got an empty string" in err
    assert "internal error" not in err


def _without_time(document: str) -> dict[str, object]:
    return {key: value for key, value in json.loads(document).items() if key != "taken_at"}


def test_json_is_an_alias_of_format_json_and_conflicts_are_refused() -> None:
    _code, alias, _err = _run("--proc-root", CONTAINER, "audit", "--json")
    _code, explicit, _err = _run("--proc-root", CONTAINER, "audit", "--format", "json")
    assert _without_time(alias) == _without_time(explicit)
    code, out, err = _run("--proc-root", CONTAINER, "audit", "--json", "--format", "text")
    assert code == ExitStatus.USAGE and out == ""
    assert "--json means --format json" in err


def test_check_line_is_one_plugin_status_with_perfdata() -> None:
    code, out, err = _run("--proc-root", CONTAINER, "audit", "--format", "check")
    assert code == 1 and err == ""
    assert out.count("\n") == 1
    status, perfdata = out.rstrip("\n").split(" | ")
    assert status == "TCPTUNE WARNING - 1 finding: port-range-listeners"
    values = dict(item.split("=") for item in perfdata.split())
    assert values["close_wait"] == "2" and values["established"] == "8"
    assert values["sockets"] == "16"
    assert values["keepalive_detection"] == "7875s"
    assert values["ActiveOpens"] == "8c" and values["TW"] == "4c"
    code, out, _err = _run(
        "--proc-root", CONTAINER, "audit", "--format=check", "--ignore", "port-range-listeners"
    )
    assert code == 0 and out.startswith("TCPTUNE OK - no warnings")


def test_check_reports_an_incomplete_inspection_as_unknown() -> None:
    code, out, err = _run("--proc-root", str(FIXTURES / "broken"), "audit", "--format", "check")
    assert code == 3 and err == ""  # the plugin's story is its one line
    assert out.startswith("TCPTUNE UNKNOWN - inspection incomplete: ")
    assert "more)" in out and out.count("|") == 1


@pytest.mark.parametrize(
    ("args", "message", "usual"),
    [
        (["audit", "--no-such-flag"], "No such option '--no-such-flag'", ExitStatus.USAGE),
        (["audit", "--profile", "no|such"], "no profile named 'no/such'", ExitStatus.UNAVAILABLE),
        (["audit", "--json"], "--json means --format json", ExitStatus.USAGE),
        (["audit", "--output", "/nonexistent/x.prom"], "cannot write", ExitStatus.WRITE_FAILED),
        (
            ["audit", "--interval", "-1"],
            "Invalid value for '--interval': must be a number of seconds above 0",
            ExitStatus.USAGE,
        ),
        (["audit", "--interval", "nan"], "Invalid value for '--interval'", ExitStatus.USAGE),
        (["audit", "--output", ""], "Invalid value for '--output'", ExitStatus.USAGE),
    ],
)
def test_every_error_in_check_mode_is_unknown(
    args: list[str], message: str, usual: ExitStatus
) -> None:
    code, out, err = _run("--proc-root", CONTAINER, *args, "--format", "check")
    assert code == 3, out + err
    assert out.startswith(f"TCPTUNE UNKNOWN - {message}") and out.count("\n") == 1
    assert "|" not in out  # a '|' in a message would start the perfdata
    assert err == ""
    if args != ["audit", "--json"]:  # the same error without check mode keeps its status
        code, _out, err = _run("--proc-root", CONTAINER, *args)
        assert code == usual and err.count("\n") >= 1


def test_check_mode_on_a_bad_profile_file(tmp_path: Path) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text("name = [\n")
    code, out, _err = _run(
        "--proc-root", CONTAINER, "audit", "--profile", str(broken), "--format", "check"
    )
    assert code == 3 and out.startswith("TCPTUNE UNKNOWN - ")
    code, _out, _err = _run("--proc-root", CONTAINER, "audit", "--profile", str(broken))
    assert code == ExitStatus.BAD_INPUT


@pytest.mark.parametrize(
    ("status", "plugin"),
    [(0, 0), (1, 1), (2, 2), (3, 3), (4, 3), (64, 3), (65, 3), (70, 3), (74, 3), (77, 3), (130, 3)],
)
def test_plugin_status_keeps_verdicts_and_turns_errors_unknown(status: int, plugin: int) -> None:
    assert plugin_status(status) == plugin
