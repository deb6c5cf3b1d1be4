"""audit --format check with -w/-c: real CLOSE_WAIT sockets in a namespace decide the status."""

from __future__ import annotations

import re

import nagiosplugin

from tcptune.exitcodes import ExitStatus
from tests.conftest import FIXTURES
from tests.lab import SocketLab
from tests.lab.privileges import run_tcptune

# Perfdata, per the Monitoring Plugins guidelines: 'label'=value[UOM];[warn];[crit];[min];[max]
PERF = re.compile(
    r"^(?P<label>[^=' ]+)=(?P<value>-?[\d.]+)(?P<uom>[a-zA-Z%]*)"
    r"(?:;(?P<warn>[^;]*)(?:;(?P<crit>[^;]*)(?:;(?P<min>[^;]*)(?:;(?P<max>[^;]*))?)?)?)?$"
)


def check(*args: str) -> tuple[int, str, dict[str, dict[str, str]]]:
    """Run the check; return its status, the text before '|' and the perfdata by label."""
    done = run_tcptune("audit", "--format", "check", "--no-owners", *args)
    assert done.stderr == ""
    (line,) = done.stdout.splitlines()
    text, _, perfdata = line.partition(" | ")
    items = {}
    for item in perfdata.split():
        match = PERF.match(item)
        assert match is not None, item
        for key in ("warn", "crit"):  # a threshold printed must parse as a range
            if match[key]:
                nagiosplugin.Range(match[key])
        items[match["label"]] = {k: v for k, v in match.groupdict().items() if v}
    return done.returncode, text, items


def test_thresholds_decide_the_status_with_the_findings(lab: SocketLab) -> None:
    lab.close_wait(3)
    lab.wait_for_states({"CLOSE_WAIT": 3, "FIN_WAIT2": 3})
    baseline, _, perf = check()
    assert baseline in (ExitStatus.OK, ExitStatus.WARNING)
    assert perf["close_wait"]["value"] == "3" and perf["orphans"]["min"] == "0"
    assert perf["port_use"]["uom"] == "%" and perf["port_use"]["max"] == "100"

    quiet, text, perf = check("-w", "close_wait=10", "-c", "close_wait=20")
    assert quiet == baseline
    assert (perf["close_wait"]["warn"], perf["close_wait"]["crit"]) == ("10", "20")

    warned, text, perf = check("-w", "close_wait=2,time_wait=100")
    assert warned == ExitStatus.WARNING
    assert text.startswith("TCPTUNE WARNING - close_wait 3 (warning: 2)")
    assert perf["close_wait"]["warn"] == "2" and perf["time_wait"]["warn"] == "100"

    critical, text, _ = check("-w", "close_wait=2", "--critical", "close_wait=@3:5")
    assert critical == ExitStatus.CRITICAL
    assert text.startswith("TCPTUNE CRITICAL - close_wait 3 (critical: @3:5)")


def tree_check(tree: str, *args: str) -> tuple[int, str]:
    """Run the check on a committed procfs tree; return its status and its one line."""
    done = run_tcptune("--proc-root", str(FIXTURES / tree), "audit", "--format", "check", *args)
    assert done.stderr == ""
    return done.returncode, done.stdout.rstrip("\n")


def test_an_incomplete_inspection_stays_unknown_whatever_the_thresholds() -> None:
    status, line = tree_check("broken", "-w", "close_wait=1000")
    assert status == ExitStatus.INCOMPLETE and line.startswith("TCPTUNE UNKNOWN - ")


def test_thresholds_need_the_check_format_and_valid_ranges() -> None:
    done = run_tcptune("--proc-root", str(FIXTURES / "container-ns"), "audit", "-w", "close_wait=3")
    assert done.returncode == ExitStatus.USAGE
    assert done.stderr == "tcptune: -w/--warning and -c/--critical go with --format check\n"
    assert tree_check("container-ns", "-c", "close_wait=20:10") == (
        3,
        "TCPTUNE UNKNOWN - --critical close_wait: '20:10': the start 20 is above the end 10",
    )
