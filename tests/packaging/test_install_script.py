"""scripts/install.sh, the README's first command, run for real into a fake root.

TCPTUNE_ROOT makes the script install under a temporary directory as if it were
/: the venv in ROOT/opt/tcptune, the link in ROOT/usr/local/bin, the man page,
completions and systemd units under ROOT/usr/local. The links are relative, so
the installed binary runs in place, and ``systemd-analyze verify --root=ROOT``
checks the units exactly as installed. Where this machine has Debian's own
Python, whose pip refuses to install (PEP 668), the script is run with it:
the case the script exists for.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

import tcptune
from tests.lab import install, require_netns_capability, skip_or_fail

pytestmark = pytest.mark.install

SCRIPT = install.REPO / "scripts" / "install.sh"
SYSTEM_PYTHON = Path("/usr/bin/python3")  # Debian's and Ubuntu's, externally managed
UNITS = ("tcptune-metrics.service", "tcptune-metrics.timer")
INSTALLED = (  # what the script puts under the root besides the venv
    "usr/local/bin/tcptune",
    "usr/local/share/man/man1/tcptune.1",
    "usr/local/share/bash-completion/completions/tcptune",
    "usr/local/share/zsh/site-functions/_tcptune",
    "usr/local/share/fish/vendor_completions.d/tcptune.fish",
    *(f"usr/local/lib/systemd/system/{unit}" for unit in UNITS),
)
PROBE = (
    "import os, sys, sysconfig; "
    "marker = os.path.join(sysconfig.get_path('stdlib'), 'EXTERNALLY-MANAGED'); "
    "print(os.path.exists(marker) and sys.prefix == sys.base_prefix)"
)


def externally_managed(python: Path) -> bool:
    """Return whether ``python`` is a system interpreter whose pip refuses to install."""
    if not os.access(python, os.X_OK):
        return False
    done = subprocess.run([python, "-c", PROBE], capture_output=True, text=True, check=False)
    return done.stdout.strip() == "True"


@dataclass(frozen=True)
class Installer:
    """Runs scripts/install.sh into ``root`` with a clean environment."""

    root: Path
    python: Path
    pip_args: str
    workdir: Path

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run the script with ``args``; return what it did."""
        env = install.clean_env(
            HOME=str(self.workdir),
            TMPDIR=str(self.workdir),
            TCPTUNE_ROOT=str(self.root),
            TCPTUNE_PYTHON=str(self.python),
            TCPTUNE_PIP_ARGS=self.pip_args,
        )
        return install.run_installed(
            ["sh", SCRIPT, *args], cwd=self.workdir, env=env, timeout=install.BUILD_TIMEOUT
        )


@pytest.fixture
def installer(wheelhouse: Path, tmp_path: Path) -> Installer:
    """Return an installer into tmp_path/root, with Debian's externally managed Python if here."""
    python = SYSTEM_PYTHON if externally_managed(SYSTEM_PYTHON) else Path(sys.executable)
    workdir = tmp_path / "work"
    workdir.mkdir()
    return Installer(tmp_path / "root", python, f"--no-index --find-links {wheelhouse}", workdir)


def verify_units(root: Path, *units: str) -> subprocess.CompletedProcess[str]:
    """Run ``systemd-analyze verify`` on installed units, against the systemd tree under root."""
    if shutil.which("systemd-analyze") is None:
        skip_or_fail("systemd-analyze is not installed (sh scripts/install-deps.sh)")
    if not (root / "usr/lib/systemd/system").exists():  # sysinit.target, timers.target, ...
        shutil.copytree("/usr/lib/systemd/system", root / "usr/lib/systemd/system", symlinks=True)
    paths = [f"/usr/local/lib/systemd/system/{unit}" for unit in units]
    return subprocess.run(
        ["systemd-analyze", "verify", f"--root={root}", *paths],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.kernel
def test_install_run_verify_upgrade_and_uninstall(installer: Installer) -> None:
    root, workdir = installer.root, installer.workdir
    if installer.python == SYSTEM_PYTHON:  # the PEP 668 case: plain pip refuses here
        refused = subprocess.run(
            [SYSTEM_PYTHON, "-m", "pip", "install", "--dry-run", "--no-deps", "--no-index", "x"],
            capture_output=True,
            text=True,
            check=False,
        )
        assert "externally-managed-environment" in refused.stderr, refused.stderr

    first = installer.run()
    assert first.returncode == 0, first.stdout + first.stderr
    assert f"installed tcptune, version {tcptune.__version__}" in first.stdout
    assert [name for name in INSTALLED if not (root / name).is_file()] == []
    link = root / "usr/local/bin/tcptune"
    assert os.readlink(link) == "../../../opt/tcptune/bin/tcptune"  # relative: works in ROOT

    # The link runs, from outside the checkout, with a clean environment.
    env = install.clean_env(HOME=str(workdir))
    version = install.run_installed([link, "--version"], cwd=workdir, env=env)
    assert (version.returncode, version.stdout, version.stderr) == (
        0,
        f"tcptune, version {tcptune.__version__}\n",
        "",
    )
    # man tcptune, and bash completion of a profile name through the installed script.
    manpath = {"MANPATH": str(root / "usr/local/share/man"), "MANPAGER": "cat", "MANWIDTH": "80"}
    if shutil.which("man"):
        page = install.run_installed(["man", "tcptune"], cwd=workdir, env={**env, **manpath})
        assert page.returncode == 0 and "tcptune audit [OPTIONS]" in page.stdout, page.stderr
    completion = root / "usr/local/share/bash-completion/completions/tcptune"
    code = (
        f". {completion}; COMP_WORDS=(tcptune apply serv); COMP_CWORD=2; "
        '_tcptune_completion tcptune; printf "%s\\n" "${COMPREPLY[@]}"'
    )
    completed = install.run_installed(
        ["bash", "-c", code], cwd=workdir, env=install.clean_env([link.parent], HOME=str(workdir))
    )
    assert completed.stdout.split() == ["server-profile"], completed.stderr

    # `sudo tcptune apply server-profile`, in a throwaway namespace.
    reason = require_netns_capability()
    if reason is not None:
        skip_or_fail(reason)
    command = ["unshare", "-n", link, "apply", "server-profile", "--apply"]
    applied = install.run_installed(
        [*command, "--state-dir", workdir / "state"], cwd=workdir, env=env
    )
    assert applied.returncode == 0, applied.stdout + applied.stderr

    # The units as installed: ExecStart= names the link, and systemd accepts them.
    service = (root / "usr/local/lib/systemd/system" / UNITS[0]).read_text()
    assert "\nExecStart=/usr/local/bin/tcptune audit " in service
    verified = verify_units(root, *UNITS)
    assert (verified.returncode, verified.stdout + verified.stderr) == (0, "")
    binary = root / "opt/tcptune/bin/tcptune"
    binary.rename(binary.with_name("aside"))  # and systemd would notice a missing binary
    missing = verify_units(root, UNITS[0])
    assert missing.returncode != 0 and "is not executable" in missing.stderr
    binary.with_name("aside").rename(binary)

    again = installer.run()  # idempotent: the venv is kept, tcptune reinstalled in place
    assert again.returncode == 0, again.stdout + again.stderr
    assert "made the virtual environment" not in again.stdout
    assert install.run_installed([link, "--version"], cwd=workdir, env=env).returncode == 0

    removed = installer.run("--uninstall")
    assert removed.returncode == 0, removed.stdout + removed.stderr
    assert [name for name in INSTALLED if os.path.lexists(root / name)] == []
    assert not (root / "opt/tcptune").exists()


def test_sudo_finds_what_the_script_links(installer: Installer) -> None:
    # The documented use is `sudo tcptune apply ...`: sudo's secure_path must hold the link.
    if shutil.which("sudo") is None:
        pytest.skip("sudo is not installed")
    done = subprocess.run(
        ["sudo", "-n", "sh", "-c", 'echo "$PATH"'], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "/usr/local/bin" in done.stdout.strip().split(":")


def test_the_script_refuses_what_it_did_not_make(installer: Installer) -> None:
    foreign = installer.root / "opt/tcptune"
    foreign.mkdir(parents=True)
    (foreign / "precious").write_text("not ours")
    done = installer.run()
    assert done.returncode == 1 and "was not made by this script" in done.stderr
    gone = installer.run("--uninstall")
    assert gone.returncode == 0 and "left" in gone.stdout
    assert (foreign / "precious").read_text() == "not ours"
    usage = installer.run("--frobnicate")
    assert usage.returncode == 1 and "usage: sh scripts/install.sh [--uninstall]" in usage.stderr
