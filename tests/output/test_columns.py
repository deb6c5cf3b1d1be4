"""Every text command fits 80 columns: each explain topic, each profile, each fixture's audit."""

from __future__ import annotations

import shutil
import socket
from pathlib import Path

import pytest
from click.testing import CliRunner

from tcptune.advise import finding_topics
from tcptune.cli import cli
from tcptune.profiles.locate import ProfileLocator
from tcptune.reference import explain as reference
from tests.conftest import FIXTURES
from tests.lab import SocketLab

WIDTH = 80
TOPICS = sorted(reference.with_findings(reference.load_topics(), finding_topics()))
SHIPPED = sorted(source.name for source in ProfileLocator([]).available())
TREES = sorted(path.name for path in FIXTURES.iterdir() if path.is_dir())


def run(*args: str) -> str:
    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code in (0, 1, 2, 3), result.stderr
    return result.stdout


def assert_fits(text: str) -> None:
    wide = [(len(line), line) for line in text.splitlines() if len(line) > WIDTH]
    assert wide == [], f"lines wider than {WIDTH} columns: {wide}"


@pytest.mark.parametrize("topic", [None, *TOPICS])
def test_explain_fits(topic: str | None) -> None:
    assert_fits(run("explain", *([topic] if topic else [])))


def test_profiles_list_fits_and_wraps_each_summary() -> None:
    out = run("profiles")
    assert_fits(out)
    for name in SHIPPED:
        assert any(line.startswith(f"{name} ") for line in out.splitlines()), name


@pytest.mark.parametrize("name", SHIPPED)
def test_profiles_show_fits(name: str) -> None:
    assert_fits(run("profiles", "show", name))


@pytest.mark.parametrize("profile", [None, *SHIPPED])
@pytest.mark.parametrize("tree", TREES)
def test_audit_of_every_fixture_tree_fits(tree: str, profile: str | None) -> None:
    with_profile = ["--profile", profile] if profile else []
    assert_fits(run("--proc-root", str(FIXTURES / tree), "audit", *with_profile))


def test_audit_with_hostile_values_still_fits(tmp_path: Path) -> None:
    tree = tmp_path / "proc"
    shutil.copytree(FIXTURES / "container-ns", tree, symlinks=True)
    sysctl = tree / "sys" / "net" / "ipv4"
    (sysctl / "tcp_keepalive_time").write_text("999999999999999999999999999999\n")
    (sysctl / "tcp_keepalive_intvl").write_text("99999999999999999999\n")
    (sysctl / "tcp_keepalive_probes").write_text("9999999999999\n")
    (sysctl / "ip_local_reserved_ports").write_text(
        ",".join(f"{port}-{port + 1}" for port in range(10000, 10400, 4)) + "\n"
    )
    out = run("--proc-root", str(tree), "audit")
    assert_fits(out)
    assert "10000-10001,10004-10005," in out  # wrapped after commas, numbers kept whole


def test_long_names_and_broken_profiles_still_fit(tmp_path: Path) -> None:
    name = "a-rather-long-profile-name-for-a-very-specific-workload"
    (tmp_path / f"{name}.toml").write_text(
        f'schema = 1\nname = "{name}"\nsummary = "{"word " * 30}"\ndescription = "d"\n'
        'extends = "server-profile"\n'
    )
    (tmp_path / "broken.toml").write_text("schema = [\n")
    assert_fits(run("profiles", "--profile-dir", str(tmp_path)))
    assert_fits(run("profiles", "show", name, "--profile-dir", str(tmp_path)))


@pytest.mark.kernel
def test_audit_in_a_live_namespace_fits(lab: SocketLab) -> None:
    lab.listen()
    lab.established(2)
    lab.close_wait(2, socket.AF_INET6)
    lab.time_wait(2)
    lab.linger_zero_close(2)
    assert_fits(run("audit"))
    assert_fits(run("audit", "--profile", "server-profile"))
