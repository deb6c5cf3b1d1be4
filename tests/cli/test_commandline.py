"""The "to apply" and "to undo" lines are rebuilt from what click parsed, sudo decided once."""

from __future__ import annotations

import shlex
from pathlib import Path

from click.testing import CliRunner

from tcptune.cli import cli
from tcptune.cli.commandline import as_root
from tests.apply_support import write_profile
from tests.conftest import FIXTURES


def test_the_apply_line_repeats_every_option_given_and_only_those(tmp_path: Path) -> None:
    profile = write_profile(tmp_path / "p", "web", {"net.ipv4.tcp_fin_timeout": {"value": 15}})
    boot = tmp_path / "root"
    (boot / "etc/sysctl.d").mkdir(parents=True)
    proc = FIXTURES / "container-ns"
    args = ["--proc-root", str(proc), "apply", str(profile), "--persist"]
    args += ["--boot-root", str(boot), "--lock-timeout", "2", "--profile-dir", str(tmp_path)]
    state = str(tmp_path / "state dir")  # given through the environment, with a blank
    result = CliRunner(env={"TCPTUNE_STATE_DIR": state}).invoke(cli, args)
    assert result.exit_code == 0, result.stderr
    expected = ["tcptune", "--proc-root", str(proc), "apply", str(profile), "--apply"]
    expected += ["--persist", "--state-dir", state, "--boot-root", str(boot)]
    expected += ["--lock-timeout", "2.0", "--profile-dir", str(tmp_path)]
    assert as_root(shlex.join(expected), 0) in result.stdout.replace("\n    ", " ")


def test_sudo_is_added_for_everyone_but_root() -> None:
    assert as_root("tcptune rollback", 0) == "tcptune rollback"
    assert as_root("tcptune rollback", 1000) == "sudo tcptune rollback"
