"""contrib/systemd: the periodic metrics units say what they must, and systemd agrees."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from tcptune.cli import cli
from tests.conftest import FIXTURES
from tests.lab import skip_or_fail

UNITS = Path(__file__).resolve().parents[2] / "contrib" / "systemd"
SERVICE = UNITS / "tcptune-metrics.service"
TIMER = UNITS / "tcptune-metrics.timer"
OUTPUT_DIR = "/var/lib/node_exporter/textfile_collector"


def parse_unit(path: Path) -> dict[str, dict[str, list[str]]]:
    """Return {section: {key: [values...]}}; systemd allows a key more than once."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    for number, raw in enumerate(path.read_text().splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        key, sep, value = line.partition("=")
        assert sep and current is not None, f"{path.name}:{number}: not KEY=VALUE: {raw!r}"
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def test_service_runs_the_audit_into_the_collector_directory_hardened(tmp_path: Path) -> None:
    service = parse_unit(SERVICE)["Service"]
    assert service["Type"] == ["oneshot"]
    (command,) = service["ExecStart"]
    argv = shlex.split(command)
    assert argv[0] == "/usr/local/bin/tcptune"  # where scripts/install.sh links it
    assert argv[1:] == [
        "audit",
        "--no-owners",
        "--format",
        "prometheus",
        "--output",
        f"{OUTPUT_DIR}/tcptune.prom",
    ]
    # Verdicts (warning, critical, incomplete) are not failures of the run.
    assert service["SuccessExitStatus"] == ["1 2 3"]
    assert service["ProtectSystem"] == ["strict"]
    assert service["ReadWritePaths"] == [OUTPUT_DIR]
    assert service["NoNewPrivileges"] == ["yes"]
    assert service["CapabilityBoundingSet"] == [""]
    assert "AF_NETLINK" in service["RestrictAddressFamilies"][0].split()
    # It must see the host's sockets and settings.
    assert "PrivateNetwork" not in service and "ProcSubset" not in service
    # The unit's command line works with today's CLI (on a fixture, into tmp_path).
    target = tmp_path / "tcptune.prom"
    result = CliRunner().invoke(
        cli, ["--proc-root", str(FIXTURES / "container-ns"), *argv[1:-1], str(target)]
    )
    assert result.exit_code == 1 and result.stdout == ""  # 1: a warning, a success here
    assert "tcptune_audit_exit_status 1.0" in target.read_text()


def test_timer_fires_every_minute_and_catches_up() -> None:
    timer = parse_unit(TIMER)
    assert timer["Timer"]["OnCalendar"] == ["minutely"]
    assert timer["Timer"]["Persistent"] == ["true"]
    assert timer["Install"]["WantedBy"] == ["timers.target"]


def systemd_analyze_verify(*units: Path, root: Path | None = None) -> tuple[int, str]:
    """Return the exit status and all output of ``systemd-analyze verify`` on ``units``."""
    if shutil.which("systemd-analyze") is None:
        skip_or_fail("systemd-analyze is not installed (sh scripts/install-deps.sh)")
    result = subprocess.run(
        [
            "systemd-analyze",
            "verify",
            *([f"--root={root}"] if root else []),
            *(str(unit) for unit in units),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return result.returncode, result.stdout + result.stderr


def test_systemd_analyze_verify_accepts_both_units(tmp_path: Path) -> None:
    # verify checks that ExecStart's program exists: point it at this interpreter here (the
    # units as scripts/install.sh installs them are verified in tests/packaging).
    text = SERVICE.read_text().replace(
        "ExecStart=/usr/local/bin/tcptune ", f"ExecStart={sys.executable} -m tcptune "
    )
    (tmp_path / SERVICE.name).write_text(text)
    shutil.copy(TIMER, tmp_path / TIMER.name)
    # Unknown keys and bad values are only warnings: any output at all is a failure.
    assert systemd_analyze_verify(tmp_path / SERVICE.name, tmp_path / TIMER.name) == (0, "")
