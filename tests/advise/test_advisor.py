"""Each finding, provoked for real in a throwaway namespace (or on a fixture tree)."""

from __future__ import annotations

import dataclasses
import os
import socket
from pathlib import Path

from tcptune.advise import DOCS, Evidence, advise
from tcptune.inspect.inspector import SocketSource, inspect
from tcptune.inspect.procfs import ProcFS
from tcptune.model.findings import Finding, Severity
from tcptune.model.snapshot import Counters
from tcptune.run.audit import run_audit
from tests.conftest import FIXTURES
from tests.lab import SocketLab


def write_sysctl(name: str, value: str) -> None:
    """Set a sysctl of the test's own namespace (never the host's: lab is required)."""
    Path("/proc/sys", *name.split(".")).write_text(value)


def findings(
    profile: str | None = None, profile_dirs: tuple[Path, ...] = (), **kwargs: object
) -> dict[str, Finding]:
    result = run_audit(ProcFS(), profile=profile, profile_dirs=profile_dirs, **kwargs)  # type: ignore[arg-type]
    return {item.key: item for item in result.findings}


def test_close_wait_names_this_process_as_owner(lab: SocketLab) -> None:
    conns = lab.close_wait(3)
    found = findings()["close-wait"]
    assert found.severity is Severity.INFO
    assert found.evidence[0] == "3 sockets in CLOSE_WAIT"
    owner = found.data["owners"][0]  # type: ignore[index]
    assert owner["pid"] == os.getpid()
    assert owner["sockets"] == 3
    assert owner["local_ports"] == [conns[0].server_port]
    assert "no sysctl fixes this" in found.explanation


def test_close_wait_threshold_turns_into_a_warning(lab: SocketLab) -> None:
    lab.close_wait(100)
    assert findings()["close-wait"].severity is Severity.WARNING


def test_fin_wait2_separates_orphaned_from_held(lab: SocketLab) -> None:
    lab.close_wait(2)
    lab.fin_wait2_held(1)
    found = findings()["fin-wait-2"]
    assert found.data == {"count": 3, "held": 1}
    assert "2 orphaned: gone within tcp_fin_timeout = 60 s" in found.evidence
    assert "does not shorten TIME_WAIT" in found.explanation


def test_time_wait_near_its_cap_warns_and_says_lowering_is_no_fix(lab: SocketLab) -> None:
    """The cap counts orphaned FIN_WAIT_2 minisockets too (claim tw-buckets-count-fin-wait2)."""
    write_sysctl("net.ipv4.tcp_max_tw_buckets", "10")
    lab.time_wait(5)
    lab.close_wait(4)  # four orphaned FIN_WAIT_2 timewait minisockets
    found = findings()["time-wait"]
    assert found.severity is Severity.WARNING
    assert (
        "tcp_max_tw_buckets = 10: 9 timewait sockets (sockstat tw, orphaned FIN_WAIT_2 "
        "included) = 90% of the cap"
    ) in found.evidence
    assert "lowering it is not a fix" in found.explanation


def test_time_wait_exhausting_ports_to_one_destination_is_critical(lab: SocketLab) -> None:
    write_sysctl("net.ipv4.ip_local_port_range", "40000\t40009")
    lab.time_wait(9)
    found = findings()["time-wait"]
    assert found.severity is Severity.CRITICAL
    assert any("9 TIME_WAIT of 10 ephemeral ports" in line for line in found.evidence)


def test_keepalive_counts_the_sockets_a_change_would_touch(lab: SocketLab) -> None:
    lab.keepalive(2)
    lab.established(3)
    found = findings()["keepalive"]
    assert found.data["keepalive_armed"] == 2
    assert found.data["established"] == 10
    assert found.data["late_for"] == [
        "Azure Load Balancer",
        "AWS NLB",
        "Google Cloud VPC firewall",
        "Google Cloud NAT",
    ]
    assert "keepalive-aggressive" not in findings()


def test_the_widely_copied_30_2_2_is_called_aggressive(lab: SocketLab) -> None:
    for name, value in (("time", "30"), ("intvl", "2"), ("probes", "2")):
        write_sysctl(f"net.ipv4.tcp_keepalive_{name}", value)
    found = findings()["keepalive-aggressive"]
    assert found.severity is Severity.WARNING
    assert found.evidence[0].endswith(
        "the peer is declared dead 4 s after the first unanswered probe"
    )


def test_rising_zero_linger_resets_warn_with_a_rate(lab: SocketLab) -> None:
    result = run_audit(ProcFS(), interval=2.0, sleep=lambda _s: lab.linger_zero_close(4))
    found = {item.id: item for item in result.findings}["linger-zero"]
    assert found.severity is Severity.WARNING
    assert any(
        "TCPAbortOnData 4 since this network namespace was created, " in line
        and "/s over the last 2 s" in line
        for line in found.evidence
    )


def test_unread_data_close_is_abort_on_close(lab: SocketLab) -> None:
    lab.close_with_unread_data(2)
    found = findings()["abort-on-close"]
    assert found.evidence == ("TCPAbortOnClose 2 since this network namespace was created",)


def test_listen_overflow_is_seen(lab: SocketLab) -> None:
    lab.syn_recv_overflow()
    found = findings()["listen-overflow"]
    assert found.severity is Severity.WARNING
    assert found.data["overflows"] >= 1  # type: ignore[operator]


def test_reuseport_listeners_are_grouped_with_their_owner(lab: SocketLab) -> None:
    first = lab.listen(reuseport=True)
    port = first.getsockname()[1]
    lab.listen(port=port, reuseport=True)
    found = findings()[f"reuseport:127.0.0.1:{port}"]
    assert found.title == f"2 listeners share 127.0.0.1:{port} (SO_REUSEPORT)"
    assert any(f"[{os.getpid()}]" in line for line in found.evidence)
    assert "net.ipv4.tcp_migrate_req = 0" in found.evidence


def test_listener_inside_the_ephemeral_range_unless_reserved(lab: SocketLab) -> None:
    lab.listen(port=45678)
    assert findings()["port-range-listeners"].data == {"ports": [45678]}
    write_sysctl("net.ipv4.ip_local_reserved_ports", "45678")
    assert "port-range-listeners" not in findings()


def test_timestamps_off_disables_tw_reuse(lab: SocketLab) -> None:
    write_sysctl("net.ipv4.tcp_timestamps", "0")
    found = findings()["timestamps-off"]
    assert "net.ipv4.tcp_tw_reuse = 2: has no effect without timestamps" in found.evidence


def test_profile_mismatch_and_absent_key(lab: SocketLab, tmp_path: Path) -> None:
    (tmp_path / "mine.toml").write_text(
        'schema = 1\nname = "mine"\nsummary = "s"\ndescription = "d"\n'
        '[sysctl."net.ipv4.tcp_fin_timeout"]\nvalue = 30\nwhy = "Free orphans sooner."\n'
        'risk = "Slow peers lose the last segments."\n'
        '[sysctl."net.ipv4.tcp_no_such_key"]\nvalue = 1\nwhy = "w"\nrisk = "r"\n'
    )
    found = findings(profile="mine", profile_dirs=(tmp_path,))
    mismatch = found["profile-mismatch:net.ipv4.tcp_fin_timeout"]
    assert mismatch.severity is Severity.WARNING
    assert mismatch.evidence == ("net.ipv4.tcp_fin_timeout = 1 min (60 s); profile mine wants 30",)
    assert mismatch.explanation == "Free orphans sooner."
    assert mismatch.recommendation.endswith("What it costs: Slow peers lose the last segments.")
    absent = found["profile-key-absent:net.ipv4.tcp_no_such_key"]
    assert absent.severity is Severity.WARNING
    ignored = run_audit(
        ProcFS(),
        profile="mine",
        profile_dirs=(tmp_path,),
        ignore=("profile-mismatch:net.ipv4.tcp_fin_timeout", "keepalive"),
    )
    keys = {item.key for item in ignored.findings}
    assert "profile-mismatch:net.ipv4.tcp_fin_timeout" not in keys
    assert "keepalive" not in keys
    assert "profile-key-absent:net.ipv4.tcp_no_such_key" in keys


def test_tw_recycle_on_an_old_kernel_is_critical() -> None:
    procfs = ProcFS(FIXTURES / "old-kernel-host")
    snapshot = inspect(procfs, source=SocketSource.PROCFS, details=True)
    found = {f.id: f for f in advise(Evidence(snapshot))}
    assert found["tw-recycle"].severity is Severity.CRITICAL
    assert "net.ipv4.tcp_tw_recycle = 1 on this kernel" in found["tw-recycle"].evidence


def test_orphans_near_the_host_wide_cap() -> None:
    procfs = ProcFS(FIXTURES / "old-kernel-host")
    snapshot = inspect(procfs, source=SocketSource.PROCFS)
    sockstat = {**snapshot.counters.sockstat, "TCP": {"orphan": 240000}}
    counters = dataclasses.replace(snapshot.counters, sockstat=sockstat)
    evidence = Evidence(dataclasses.replace(snapshot, counters=counters))
    found = {f.id: f for f in advise(evidence)}["orphans"]
    assert found.severity is Severity.CRITICAL
    assert "tcp_max_orphans = 262144 (92% used)" in found.evidence


def test_every_finding_id_is_documented_and_short() -> None:
    for doc in DOCS.values():
        assert len(doc.summary) <= 70, doc.id
        assert doc.references, doc.id


def test_no_counters_no_crash() -> None:
    procfs = ProcFS(FIXTURES / "container-ns")
    snapshot = dataclasses.replace(inspect(procfs), counters=Counters())
    assert isinstance(advise(Evidence(snapshot)), list)


def test_ipv6_close_wait_is_attributed_too(lab: SocketLab) -> None:
    lab.close_wait(1, socket.AF_INET6)
    found = findings()["close-wait"]
    assert found.data["owners"][0]["pid"] == os.getpid()  # type: ignore[index]


def test_no_owners_skips_the_descriptor_scan_and_says_so(lab: SocketLab) -> None:
    lab.close_wait(2)
    result = run_audit(ProcFS(), owners=False)
    found = {item.id: item for item in result.findings}["close-wait"]
    assert found.data["owners"] == []
    assert "owning processes not looked up (--no-owners)" in found.evidence


def test_values_the_kernel_accepts_but_mean_nothing_are_flagged(lab: SocketLab) -> None:
    write_sysctl("net.ipv4.tcp_keepalive_probes", "0")
    write_sysctl("net.ipv4.tcp_timestamps", "7")
    found = findings()
    probes = found["setting-out-of-range:net.ipv4.tcp_keepalive_probes"]
    assert probes.evidence == (
        "net.ipv4.tcp_keepalive_probes = 0, outside tcptune's sanity range 1..127",
        "the kernel accepts 0..255 (proc_dou8vec_minmax, a u8)",
    )
    assert probes.title == "tcp_keepalive_probes = 0 is outside the sensible 1..127"
    assert "setting-out-of-range:net.ipv4.tcp_timestamps" in found
    assert "setting-out-of-range:net.ipv4.tcp_fin_timeout" not in found


def test_reserving_ports_keeps_the_ports_already_reserved(lab: SocketLab) -> None:
    write_sysctl("net.ipv4.ip_local_reserved_ports", "40000-40010,50000")
    lab.listen(port=45678)
    found = findings()["port-range-listeners"]
    assert found.recommendation.startswith(
        "sysctl -w net.ipv4.ip_local_reserved_ports=40000-40010,45678,50000 "
    )


def test_a_profile_pinning_tw_recycle_to_zero_is_not_flagged(tmp_path: Path) -> None:
    (tmp_path / "pin.toml").write_text(
        'schema = 1\nname = "pin"\nsummary = "s"\ndescription = "d"\n'
        '[sysctl."net.ipv4.tcp_tw_recycle"]\nvalue = 0\noptional = true\n'
        'why = "Old kernels: keep it off."\nrisk = "None."\n'
    )
    procfs = ProcFS(FIXTURES / "container-ns")
    result = run_audit(procfs, source=SocketSource.PROCFS, profile="pin", profile_dirs=(tmp_path,))
    assert "tw-recycle" not in {item.id for item in result.findings}


def test_keepalive_armed_wording_never_says_at_least_zero_of_zero() -> None:
    from tcptune.advise.keepalive import keepalive_armed_text

    assert keepalive_armed_text(0, 0) == (
        "no ESTABLISHED sockets now, so none a keepalive sysctl change would touch"
    )
    assert keepalive_armed_text(0, 5).startswith("none of the 5 ESTABLISHED sockets has")
    assert keepalive_armed_text(2, 5).startswith("2 of 5 ESTABLISHED sockets have")
    assert "at least" not in keepalive_armed_text(0, 0) + keepalive_armed_text(0, 5)
