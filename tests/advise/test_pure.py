"""The advisor is a function of frozen data: constructed snapshots in, findings out, no I/O."""

from __future__ import annotations

import json
import subprocess
import sys

from tcptune.advise import Evidence
from tcptune.advise import advise as advise_all
from tcptune.model.findings import Finding, Severity
from tcptune.model.snapshot import (
    Endpoint,
    Listener,
    Owner,
    ReadStatus,
    SocketOwners,
    SysctlReading,
)
from tcptune.model.tcpstates import TcpState
from tcptune.model.values import spec_for
from tests.snapshots import details, profile, settings, snapshot, target

# Modules that touch the file system, the network or other processes.
IO_MODULES = ("psutil", "socket", "pathlib", "pwd", "fcntl", "select", "subprocess", "tomllib")
PURE_PACKAGES = ("tcptune.advise", "tcptune.model", "tcptune.exitcodes")


def test_importing_the_advisor_loads_nothing_that_does_io() -> None:
    probe = (
        "import json, sys; before = set(sys.modules); import tcptune.advise; "
        "print(json.dumps(sorted(set(sys.modules) - before)))"
    )
    loaded = json.loads(
        subprocess.run(
            [sys.executable, "-c", probe], check=True, capture_output=True, text=True
        ).stdout
    )
    ours = [name for name in loaded if name.startswith("tcptune.")]
    assert ours and all(name.startswith(PURE_PACKAGES) for name in ours), ours
    assert not [name for name in loaded if name.split(".")[0] in IO_MODULES]


def advise(evidence: Evidence) -> list[Finding]:
    """Return the findings, less the keepalive summary every snapshot with details gets."""
    return advise_all(evidence, ignore=("keepalive",))


def by_id(found: list[Finding]) -> dict[str, Finding]:
    return {item.key: item for item in found}


def test_defaults_with_no_sockets_give_no_findings() -> None:
    assert advise(Evidence(snapshot())) == []
    assert [item.id for item in advise_all(Evidence(snapshot(socket_details=details())))] == [
        "keepalive"
    ]


def test_shared_listeners_are_attributed_from_the_snapshot_owners() -> None:
    here = Endpoint("0.0.0.0", 8080)
    listeners = (Listener(here, 0, 128, 11, 0), Listener(here, 0, 128, 12, 0))
    owners = SocketOwners(
        {11: (100,), 12: (200,)}, {100: Owner(100, "nginx", "www"), 200: Owner(200, "rogue", "x")}
    )
    found = by_id(advise(Evidence(snapshot(socket_details=details(listeners), owners=owners))))
    shared = found["reuseport:0.0.0.0:8080"]
    assert shared.severity is Severity.WARNING  # two different programs share the port
    assert "held by nginx[100] (www), rogue[200] (x)" in shared.evidence


def test_close_wait_owners_come_from_the_snapshot_and_no_owners_says_so() -> None:
    close_wait = details(close_wait={21: 5000, 22: 5000})
    owners = SocketOwners({21: (7,), 22: (7,)}, {7: Owner(7, "leaky", "app")})
    states = {TcpState.CLOSE_WAIT: 2}
    found = by_id(
        advise(Evidence(snapshot(socket_details=close_wait, owners=owners, states=states)))
    )
    assert found["close-wait"].data["owners"] == [
        {"pid": 7, "name": "leaky", "user": "app", "sockets": 2, "local_ports": [5000]}
    ]
    unknown = by_id(advise(Evidence(snapshot(socket_details=close_wait, states=states))))
    assert "owning processes not looked up (--no-owners)" in unknown["close-wait"].evidence


def test_a_key_outside_the_catalogue_is_compared_from_the_snapshot() -> None:
    name = "net.ipv4.tcp_congestion_control"
    spec = spec_for(name, "bbr")
    live = {name: SysctlReading(spec, ReadStatus.OK, "cubic", "cubic")}
    found = by_id(advise(Evidence(snapshot(profile_sysctls=live), profile(target(name, "bbr")))))
    assert found[f"profile-mismatch:{name}"].data["current"] == "cubic"
    same = {name: SysctlReading(spec, ReadStatus.OK, "bbr", "bbr")}
    assert advise(Evidence(snapshot(profile_sysctls=same), profile(target(name, "bbr")))) == []


def test_a_key_the_inspection_did_not_read_is_reported_absent() -> None:
    name = "net.ipv4.tcp_notsent_lowat"
    found = by_id(advise(Evidence(snapshot(), profile(target(name, 16384)))))
    assert found[f"profile-key-absent:{name}"].evidence == (f"{name}: not read by this inspection",)


def test_listener_in_the_ephemeral_range_unless_reserved() -> None:
    listeners = (Listener(Endpoint("0.0.0.0", 40000), 0, 128, 1, 0),)
    exposed = snapshot(socket_details=details(listeners))
    assert by_id(advise(Evidence(exposed)))["port-range-listeners"].data == {"ports": [40000]}
    reserved = snapshot(settings(ip_local_reserved_ports="40000"), details(listeners))
    assert advise(Evidence(reserved)) == []
