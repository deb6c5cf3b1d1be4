"""The installed console script works, run as a user runs it: a fresh venv, outside the checkout.

The venv is made without system site packages, so neither the checkout nor the
editable install of the interpreter running the tests can supply a module the
wheel lacks (what hid tcptune.cli's absence from the suite). Every command runs
from a temporary directory with a minimal environment and no PYTHONPATH.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

import tcptune
from tests.conftest import Packages
from tests.lab import install, require_netns_capability, skip_or_fail

pytestmark = pytest.mark.install


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """Return an empty working directory outside the checkout."""
    directory = tmp_path / "elsewhere"
    directory.mkdir()
    return directory


def run(venv: install.Venv, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the venv's tcptune console script with a clean environment from ``cwd``."""
    env = install.clean_env([venv.root / "bin"], HOME=str(cwd))
    return install.run_installed([venv.script(), *args], cwd=cwd, env=env)


def in_throwaway_netns(
    venv: install.Venv, cwd: Path, *args: str
) -> subprocess.CompletedProcess[str]:
    """Run the installed tcptune inside a new, empty network namespace (``unshare -n``)."""
    reason = require_netns_capability()
    if reason is not None:
        skip_or_fail(reason)
    env = install.clean_env([venv.root / "bin"], HOME=str(cwd))
    return install.run_installed(["unshare", "-n", venv.script(), *args], cwd=cwd, env=env)


def test_the_venv_cannot_see_the_checkout(installed: install.Venv, outside: Path) -> None:
    env = install.clean_env(HOME=str(outside))
    code = "import sys, tcptune; print(tcptune.__file__); print(sys.prefix != sys.base_prefix)"
    done = install.run_installed([installed.python, "-c", code], cwd=outside, env=env)
    assert done.returncode == 0, done.stderr
    location, in_venv = done.stdout.split()
    assert Path(location).is_relative_to(installed.site_packages()) and in_venv == "True"
    assert not (installed.site_packages() / "__editable__.tcptune-0.1.0.pth").exists()
    assert list(installed.site_packages().glob("*.pth")) == []  # no editable finder, no paths


def test_version_matches_the_installed_metadata(installed: install.Venv, outside: Path) -> None:
    done = run(installed, outside, "--version")
    assert (done.returncode, done.stdout, done.stderr) == (
        0,
        f"tcptune, version {tcptune.__version__}\n",
        "",
    )
    code = "import importlib.metadata as m, tcptune;"
    code += " print(m.version('tcptune'), tcptune.__version__)"
    env = install.clean_env(HOME=str(outside))
    meta = install.run_installed([installed.python, "-c", code], cwd=outside, env=env)
    assert meta.stdout.split() == [tcptune.__version__, tcptune.__version__], meta.stderr


@pytest.mark.kernel
def test_audit_json_in_a_throwaway_namespace(installed: install.Venv, outside: Path) -> None:
    done = in_throwaway_netns(installed, outside, "audit", "--json")
    assert done.returncode in (0, 1), done.stderr  # ok or warnings: a verdict, no crash
    assert done.stderr == ""
    report = json.loads(done.stdout)
    assert report["schema"] == 1 and report["complete"] is True
    assert report["context"]["initial_netns"] is False
    assert report["sockets"]["total"] == 0  # a new namespace has no sockets
    assert report["sysctls"]["net.ipv4.tcp_fin_timeout"]["status"] == "ok"


@pytest.mark.kernel
def test_apply_a_shipped_profile_in_a_throwaway_namespace(
    installed: install.Venv, outside: Path
) -> None:
    state = outside / "state"
    done = in_throwaway_netns(
        installed, outside, "apply", "server-profile", "--apply", "--state-dir", str(state)
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "applied" in done.stdout.lower() and done.stderr == ""
    assert (state / "state.json").is_file()


def test_explain_and_profiles_read_the_shipped_data(installed: install.Venv, outside: Path) -> None:
    explained = run(installed, outside, "explain", "close-wait")
    assert explained.returncode == 0 and explained.stderr == ""
    assert explained.stdout.startswith("CLOSE-WAIT: ")
    listed = run(installed, outside, "profiles")
    assert listed.returncode == 0 and listed.stderr == ""
    shipped = {path.stem for path in (install.REPO / "profiles").glob("*.toml")}
    names = {line.split()[0] for line in listed.stdout.splitlines()[2:] if line[:1].strip()}
    assert shipped <= names, listed.stdout


@pytest.fixture
def broken(packages: Packages, tmp_path: Path) -> install.Venv:
    """Return an install whose tcptune/cli package is gone: the bug this suite once missed."""
    venv = install.make_venv(tmp_path / "broken", packages.wheel, None, deps=False)
    shutil.rmtree(venv.site_packages() / "tcptune" / "cli")
    return venv


def test_a_broken_install_exits_70_with_one_line(broken: install.Venv, outside: Path) -> None:
    done = run(broken, outside, "audit")
    assert done.returncode == 70 and done.stdout == ""
    (line,) = done.stderr.splitlines()
    assert line.startswith("tcptune: cannot start (broken installation?): ModuleNotFoundError")


def test_a_broken_install_is_unknown_to_nagios(broken: install.Venv, outside: Path) -> None:
    done = run(broken, outside, "audit", "--format", "check")
    assert done.returncode == 3 and done.stderr == ""
    (line,) = done.stdout.splitlines()
    assert line.startswith("TCPTUNE UNKNOWN - tcptune cannot start: ModuleNotFoundError")
