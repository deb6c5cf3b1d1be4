"""The Ansible playbooks in contrib/ansible, run for real by ansible-core against localhost.

The audit playbook points tcptune at a namespace the test made with ``ip netns add`` through
``--netns NAME``; the apply playbook runs whole inside that namespace (``ip netns exec``),
since tcptune refuses --persist with --netns. The apply's state directory and sysctl.d
drop-in go to tmp_path, so the host's own settings are never touched (checked after each
test). Without ansible-core
(``pip install ansible-core``) or network namespaces the tests skip, or fail under CI.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import importlib.util
import itertools
import json
import os
import pwd
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest

from tcptune.advise.teardown import CLOSE_WAIT_WARNING
from tests.conftest import Packages
from tests.lab import install, require_netns_capability, skip_or_fail

pytestmark = pytest.mark.kernel

REPO = Path(__file__).resolve().parents[2]
PLAYBOOKS = REPO / "contrib" / "ansible"
FIN = "net.ipv4.tcp_fin_timeout"
KEEPALIVE = "net.ipv4.tcp_keepalive_time"
PROFILE = "ansible-test"
# Values no kernel uses as its default, so a change is unmistakable.
TARGETS = {FIN: 17, KEEPALIVE: 617}
TIMEOUT = 180  # seconds for one playbook run; a run takes a few seconds
_names = itertools.count()

# Run inside the namespace: make COUNT connections to its own listener and close the client
# ends, so the accepted ends sit in CLOSE_WAIT; print the port once the kernel shows them all
# in CLOSE_WAIT (state 08 in /proc/net/tcp, include/net/tcp_states.h), then hold them until
# stdin closes.
HOLDER = """
import socket, sys, time
count = int(sys.argv[1])
listener = socket.socket()
listener.bind(("127.0.0.1", 0))
listener.listen(count)
held = []
for _ in range(count):
    client = socket.create_connection(listener.getsockname())
    held.append(listener.accept()[0])
    client.close()
def close_wait():
    with open("/proc/self/net/tcp") as table:
        return sum(line.split()[3] == "08" for line in list(table)[1:])
deadline = time.monotonic() + 10
while close_wait() < count and time.monotonic() < deadline:
    time.sleep(0.01)
print(listener.getsockname()[1], close_wait(), flush=True)
sys.stdin.read()
"""

RECAP = re.compile(
    r"^(?P<host>\S+)\s+:\s+ok=(?P<ok>\d+)\s+changed=(?P<changed>\d+)\s+"
    r"unreachable=(?P<unreachable>\d+)\s+failed=(?P<failed>\d+)\s+skipped=(?P<skipped>\d+)",
    re.MULTILINE,
)


@dataclass(frozen=True)
class PlaybookRun:
    """What one ansible-playbook run printed, its exit status, and its PLAY RECAP per host."""

    returncode: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def recap(self) -> dict[str, dict[str, int]]:
        """Return the PLAY RECAP counters (ok, changed, failed, ...) of each host."""
        counters = ("ok", "changed", "unreachable", "failed", "skipped")
        return {
            match["host"]: {key: int(match[key]) for key in counters}
            for match in RECAP.finditer(self.stdout)
        }

    def explain(self) -> str:
        """Return the output, for an assertion message."""
        return (
            f"exit {self.returncode} after {self.seconds:.1f} s\n"
            f"--- stdout\n{self.stdout}\n--- stderr\n{self.stderr}"
        )


@dataclass(frozen=True)
class Ansible:
    """Runs the playbooks with ansible-core: quiet, no colour, no user configuration."""

    workdir: Path
    env: dict[str, str]

    def inventory(self, *hosts: str) -> Path:
        """Write an inventory of local-connection hosts (``NAME [VAR=VALUE ...]``)."""
        path = self.workdir / f"inventory-{next(_names)}.ini"
        local = f"ansible_connection=local ansible_python_interpreter={sys.executable}"
        path.write_text("".join(f"{host} {local}\n" for host in hosts or ("localhost",)))
        return path

    def playbook(
        self,
        name: str,
        variables: dict[str, Any],
        *options: str,
        inventory: Path | None = None,
        netns: str | None = None,
    ) -> PlaybookRun:
        """Run contrib/ansible/NAME with ``variables`` as extra vars and return what it did.

        With ``netns`` the whole run happens inside that namespace (`ip netns exec`), the
        way a host's own playbook run applies to its own namespace: tcptune refuses
        --persist together with --netns, since sysctl.d configures the host at boot.
        """
        extra = self.workdir / f"vars-{next(_names)}.json"
        extra.write_text(json.dumps(variables))
        command = [
            *(["ip", "netns", "exec", netns] if netns else []),
            sys.executable,
            "-m",
            "ansible.cli.playbook",
            "-i",
            str(inventory or self.inventory()),
            "-e",
            f"@{extra}",
            *options,
            str(PLAYBOOKS / name),
        ]
        started = time.monotonic()
        done = subprocess.run(
            command,
            cwd=self.workdir,
            env=self.env,
            capture_output=True,
            text=True,
            check=False,
            timeout=TIMEOUT,
        )
        return PlaybookRun(done.returncode, done.stdout, done.stderr, time.monotonic() - started)


@pytest.fixture
def ansible(tmp_path: Path) -> Ansible:
    """Return an ansible-playbook runner whose configuration and temporary files are in tmp_path."""
    if importlib.util.find_spec("ansible") is None:
        skip_or_fail("ansible-core is not installed (python3 -m pip install ansible-core)")
    workdir = tmp_path / "ansible"
    workdir.mkdir()
    (workdir / "ansible.cfg").write_text("[defaults]\n")
    env = {key: value for key, value in os.environ.items() if not key.startswith("ANSIBLE_")}
    env.update(
        {
            "ANSIBLE_CONFIG": str(workdir / "ansible.cfg"),  # not ~/.ansible.cfg or /etc/ansible
            "ANSIBLE_HOME": str(workdir / "home"),
            "ANSIBLE_LOCAL_TEMP": str(workdir / "local-tmp"),
            "ANSIBLE_REMOTE_TEMP": str(workdir / "remote-tmp"),
            "ANSIBLE_COLLECTIONS_PATH": str(workdir / "collections"),  # builtin modules only
            "ANSIBLE_STDOUT_CALLBACK": "default",
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_GATHERING": "explicit",
            "ANSIBLE_PIPELINING": "1",
            "ANSIBLE_RETRY_FILES_ENABLED": "0",
            "ANSIBLE_DISPLAY_SKIPPED_HOSTS": "0",
            "ANSIBLE_LOCALHOST_WARNING": "0",
            "ANSIBLE_INVENTORY_UNPARSED_WARNING": "0",
            "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        }
    )
    return Ansible(workdir, env)


def _read_host(name: str) -> str:
    return Path("/proc/sys", *name.split(".")).read_text()


@pytest.fixture
def netns() -> Iterator[str]:
    """Create a throwaway ``ip netns`` namespace with lo up; check the host is untouched after."""
    reason = require_netns_capability()
    if reason is not None:
        skip_or_fail(reason)
    host_before = {key: _read_host(key) for key in TARGETS}
    name = f"tcptune-ansible-{os.getpid()}-{next(_names)}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "netns", "exec", name, "ip", "link", "set", "lo", "up"], check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)
    assert {key: _read_host(key) for key in TARGETS} == host_before


def read_sysctls(netns: str) -> dict[str, str]:
    """Return the watched sysctls as the namespace ``netns`` sees them."""
    paths = [str(Path("/proc/sys", *name.split("."))) for name in TARGETS]
    done = subprocess.run(
        ["ip", "netns", "exec", netns, "cat", *paths],
        capture_output=True,
        text=True,
        check=True,
    )
    return dict(zip(TARGETS, done.stdout.split(), strict=True))


@dataclass(frozen=True)
class Holder:
    """A process in the namespace holding CLOSE_WAIT sockets on one local port."""

    pid: int
    port: int
    sockets: int


@pytest.fixture
def close_wait_holder(netns: str) -> Iterator[Holder]:
    """Hold CLOSE_WAIT_WARNING sockets in CLOSE_WAIT inside ``netns`` (a warning finding)."""
    process = subprocess.Popen(
        ["ip", "netns", "exec", netns, sys.executable, "-c", HOLDER, str(CLOSE_WAIT_WARNING)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdin is not None and process.stdout is not None
    try:
        port, held = (int(word) for word in process.stdout.readline().split())
        assert held == CLOSE_WAIT_WARNING
        yield Holder(process.pid, port, held)  # `ip netns exec` execs: the pid is the holder's
    finally:
        process.stdin.close()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def build_args() -> list[str]:
    """Return pip wheel options: build offline where setuptools can make wheels by itself.

    setuptools has bdist_wheel built in since 70.1; before that it needs the wheel package.
    Otherwise pip builds in an isolated environment and fetches setuptools from the index.
    """
    version = importlib.metadata.version("setuptools")
    major, minor = (int(part) for part in re.findall(r"\d+", version)[:2])
    if (major, minor) >= (70, 1) or importlib.util.find_spec("wheel") is not None:
        return ["--no-build-isolation"]
    return []


def netns_var(name: str) -> str:
    """Return an inventory host variable that points tcptune at the namespace ``name``."""
    return "tcptune_global_args='" + json.dumps(["--netns", name]) + "'"


def write_profile(directory: Path) -> Path:
    """Write the test profile (per-namespace keys only) into ``directory``."""
    directory.mkdir()
    lines = ["schema = 1", f'name = "{PROFILE}"', 'summary = "ansible test"']
    lines.append('description = "Written by tests/test_ansible.py."')
    for key, value in TARGETS.items():
        lines += [f'[sysctl."{key}"]', f"value = {value}", 'why = "test"', 'risk = "none"']
    (directory / f"{PROFILE}.toml").write_text("\n".join(lines) + "\n")
    return directory


def test_audit_playbook_installs_audits_and_summarises_the_fleet(
    ansible: Ansible, netns: str, close_wait_holder: Holder, wheelhouse: Path, tmp_path: Path
) -> None:
    venv, report = tmp_path / "venv", tmp_path / "fleet.json"
    variables = {
        "tcptune_source": str(install.copy_source(tmp_path / "source")),
        "tcptune_build_args": build_args(),
        "tcptune_venv": str(venv),
        # A venv of its own (no system site packages, so nothing of this interpreter's leaks
        # in); the dependencies come from the session's wheelhouse, not from the index.
        "tcptune_pip_args": ["--no-index", "--find-links", str(wheelhouse)],
        "tcptune_global_args": ["--netns", netns],
        "tcptune_fleet_report": str(report),
    }
    run = ansible.playbook("audit.yml", variables)
    assert run.returncode == 0, run.explain()
    # The venv was made and the wheel built from the source installed into it, and used.
    assert run.recap["localhost"]["changed"] == 2, run.explain()
    where = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import tcptune; print(tcptune.__file__)"],
        cwd=tmp_path,  # not the checkout: python -c puts the working directory first on sys.path
        capture_output=True,
        text=True,
        check=True,
    )
    assert where.stdout.startswith(str(venv / "lib")), where.stdout

    fleet = json.loads(report.read_text())
    assert fleet["schema"] == 1 and fleet["hosts_audited"] == 1 and fleet["failed"] == []
    assert fleet["by_severity"] == {"critical": [], "warning": ["localhost"], "info": [], "ok": []}
    host = fleet["hosts"]["localhost"]
    assert host["worst"] == "warning" and host["exit_status"] == 1  # audit exit 1 is no failure
    assert host["netns"] == f"netns {netns}" and host["complete"] is True
    assert host["close_wait"] == CLOSE_WAIT_WARNING
    top = {finding["id"]: finding for finding in fleet["top_findings"]}
    assert top["close-wait"]["severity"] == "warning"
    assert (top["close-wait"]["hosts"], top["close-wait"]["occurrences"]) == (["localhost"], 1)
    assert fleet["close_wait_owners"] == [
        {
            "host": "localhost",
            "pid": close_wait_holder.pid,
            "name": psutil.Process(close_wait_holder.pid).name(),
            "user": pwd.getpwuid(os.getuid()).pw_name,
            "sockets": CLOSE_WAIT_WARNING,
            "local_ports": [close_wait_holder.port],
        }
    ]
    assert f"{CLOSE_WAIT_WARNING}  localhost  pid {close_wait_holder.pid}" in run.stdout
    assert f"report: {report}" in run.stdout

    # Again, with a second host whose audit fails (no such namespace: exit 69), and installing
    # from a pip requirement this time, which finds tcptune installed: nothing changes.
    inventory = ansible.inventory(
        f"localhost {netns_var(netns)}", f"broken {netns_var('tcptune-ansible-missing')}"
    )
    variables = {key: value for key, value in variables.items() if key != "tcptune_global_args"}
    again = ansible.playbook(
        "audit.yml", {**variables, "tcptune_pip_spec": "tcptune"}, inventory=inventory
    )
    assert again.returncode == 2, again.explain()  # ansible-playbook: a host failed
    assert again.recap["localhost"]["changed"] == 0, again.explain()
    assert again.recap["broken"]["failed"] == 1, again.explain()
    fleet = json.loads(report.read_text())
    assert (fleet["hosts_audited"], fleet["failed"]) == (1, ["broken"])
    assert fleet["by_severity"]["warning"] == ["localhost"]
    assert "failed:    broken" in again.stdout


def test_hosts_whose_tcptune_crashes_fail_and_the_fleet_is_still_reported(
    ansible: Ansible, netns: str, packages: Packages, wheelhouse: Path, tmp_path: Path
) -> None:
    # Two broken installs: without tcptune/cli, tcptune's entry point exits 70; without
    # tcptune/entry.py, Python fails before tcptune runs (exit 1, a traceback, no JSON).
    # The venvs (with pip, no system site packages) are made up front, in one go: bootstrapping
    # pip costs seconds each, and the test above covers the playbook making one.
    template = tmp_path / "template"
    subprocess.run([sys.executable, "-m", "venv", str(template)], check=True, timeout=TIMEOUT)
    hosts = []
    for host, leave_out in (
        ("good", ""),
        ("no-cli", "tcptune/cli"),
        ("no-entry", "tcptune/entry.py"),
    ):
        wheel = packages.wheel
        if leave_out:
            source = install.copy_source(tmp_path / f"{host}-source", leave_out=[leave_out])
            wheel = install.build_wheel(source, tmp_path / f"{host}-dist")
        shutil.copytree(template, tmp_path / host, symlinks=True)  # python -m pip works in a copy
        hosts.append(f"{host} tcptune_source={wheel} tcptune_venv={tmp_path / host}")
    report = tmp_path / "fleet.json"
    variables = {
        "tcptune_pip_args": ["--no-index", "--find-links", str(wheelhouse)],
        "tcptune_fleet_report": str(report),
    }
    inventory = ansible.inventory(*(f"{host} {netns_var(netns)}" for host in hosts))
    run = ansible.playbook("audit.yml", variables, inventory=inventory)
    assert run.returncode == 2, run.explain()  # ansible-playbook: a host failed
    recap = run.recap
    assert (recap["good"]["failed"], recap["no-cli"]["failed"], recap["no-entry"]["failed"]) == (
        0,
        1,
        1,
    ), run.explain()
    fleet = json.loads(report.read_text())
    assert (fleet["hosts_audited"], fleet["failed"]) == (1, ["no-cli", "no-entry"])
    assert list(fleet["hosts"]) == ["good"]
    assert "failed:    no-cli, no-entry" in run.stdout
    assert "cannot start (broken installation?): ModuleNotFoundError" in run.stdout


def test_apply_playbook_plans_in_check_mode_then_applies_once(
    ansible: Ansible, netns: str, tmp_path: Path
) -> None:
    ansible = from_checkout(ansible)  # the code under test, not whatever the Python has installed
    state, dropins = tmp_path / "state", tmp_path / "sysctl.d"
    variables = {
        "tcptune_install": False,  # tcptune is installed here; the audit test covers install
        "tcptune_python": sys.executable,
        "tcptune_profile": PROFILE,
        "tcptune_apply_args": ["--profile-dir", str(write_profile(tmp_path / "profiles"))],
        "tcptune_state_dir": str(state),
        "tcptune_sysctl_dir": str(dropins),
    }
    before = read_sysctls(netns)
    assert before != {key: str(value) for key, value in TARGETS.items()}

    check = ansible.playbook("apply.yml", variables, "--check", netns=netns)
    assert check.returncode == 0, check.explain()
    assert check.recap["localhost"]["changed"] == 1, check.explain()  # "would change"
    assert f"would set {FIN}: {before[FIN]} -> {TARGETS[FIN]}" in check.stdout
    assert f"{dropins / '90-tcptune.conf'}: would create" in check.stdout
    assert read_sysctls(netns) == before
    assert not state.exists() and not dropins.exists()

    applied = ansible.playbook("apply.yml", variables, netns=netns)
    assert applied.returncode == 0, applied.explain()
    assert applied.recap["localhost"]["changed"] == 1, applied.explain()
    assert read_sysctls(netns) == {key: str(value) for key, value in TARGETS.items()}
    dropin = (dropins / "90-tcptune.conf").read_text().splitlines()
    assert [f"{key} = {value}" for key, value in TARGETS.items()] == dropin[-len(TARGETS) :]
    assert f"set {FIN}: {before[FIN]} -> {TARGETS[FIN]}" in applied.stdout

    again = ansible.playbook("apply.yml", variables, netns=netns)
    assert again.returncode == 0, again.explain()
    assert again.recap["localhost"]["changed"] == 0, again.explain()
    assert "0 written, 2 already right (nothing to change)" in again.stdout


def test_a_failing_apply_stops_the_rollout(ansible: Ansible, netns: str, tmp_path: Path) -> None:
    ansible = from_checkout(ansible)
    state, dropins = tmp_path / "state", tmp_path / "sysctl.d"
    # Two hosts, so the default serial of 20% makes two batches: the first one fails.
    inventory = ansible.inventory(
        "first tcptune_profile=no-such-profile", f"second tcptune_profile={PROFILE}"
    )
    variables = {
        "tcptune_install": False,
        "tcptune_python": sys.executable,
        "tcptune_apply_args": ["--profile-dir", str(write_profile(tmp_path / "profiles"))],
        "tcptune_state_dir": str(state),
        "tcptune_sysctl_dir": str(dropins),
    }
    before = read_sysctls(netns)
    run = ansible.playbook("apply.yml", variables, inventory=inventory, netns=netns)
    assert run.returncode == 2, run.explain()  # ansible-playbook: a host failed
    assert run.recap["first"]["failed"] == 1, run.explain()
    assert "second" not in run.recap, run.explain()  # its batch never started
    assert "no profile named 'no-such-profile'" in run.stdout
    assert read_sysctls(netns) == before
    assert not dropins.exists()


@contextmanager
def another_netns() -> Iterator[str]:
    """Create one more throwaway ``ip netns`` namespace with lo up, deleted afterwards."""
    name = f"tcptune-ansible-{os.getpid()}-{next(_names)}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "netns", "exec", name, "ip", "link", "set", "lo", "up"], check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


def from_checkout(ansible: Ansible) -> Ansible:
    """Return the runner with this checkout first on the hosts' sys.path (tcptune_install false).

    `python -P -m tcptune` ignores the working directory, so without this the playbooks
    would run whatever tcptune the Python has installed, not the code under test.
    """
    return dataclasses.replace(ansible, env={**ansible.env, "PYTHONPATH": str(REPO)})


def tcptune_in(netns: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run tcptune inside ``netns`` (``ip netns exec``), from this checkout."""
    return subprocess.run(
        ["ip", "netns", "exec", netns, sys.executable, "-m", "tcptune", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def test_verify_playbook_reports_which_hosts_drift_from_which_profile_by_key(
    ansible: Ansible, netns: str, tmp_path: Path
) -> None:
    ansible = from_checkout(ansible)
    profiles = write_profile(tmp_path / "profiles")
    boot = tmp_path / "boot"
    (boot / "etc" / "sysctl.d").mkdir(parents=True)
    (boot / "etc" / "sysctl.d" / "50-site.conf").write_text(f"{FIN} = 33\n")
    state = ["--state-dir", str(tmp_path / "state")]
    tuned = tcptune_in(netns, "apply", str(profiles / f"{PROFILE}.toml"), "--apply", *state)
    assert tuned.returncode == 0, tuned.stderr
    report = tmp_path / "drift.json"
    with another_netns() as stock:
        # The profile is a host variable, as in a fleet where hosts have different profiles.
        inventory = ansible.inventory(
            f"tuned {netns_var(netns)} tcptune_profile={PROFILE}",
            f"stock {netns_var(stock)} tcptune_profile={PROFILE}",
            f"broken {netns_var(stock)} tcptune_profile=no-such-profile",
        )
        variables = {
            "tcptune_install": False,
            "tcptune_python": sys.executable,
            "tcptune_verify_args": ["--profile-dir", str(profiles)],
            "tcptune_boot_root": str(boot),
            "tcptune_drift_report": str(report),
        }
        run = ansible.playbook("verify.yml", variables, inventory=inventory)
        defaults = read_sysctls(stock)
        # Check mode runs the same (verify only reads); fail_on_drift fails the drifting host.
        strict = ansible.playbook(
            "verify.yml",
            {**variables, "tcptune_fail_on_drift": True},
            "--check",
            inventory=inventory,
        )
    assert run.returncode == 2, run.explain()  # only "broken" failed (no such profile)
    assert {host: counts["failed"] for host, counts in run.recap.items()} == {
        "tuned": 0,
        "stock": 0,
        "broken": 1,
    }, run.explain()
    assert all(counts["changed"] == 0 for counts in run.recap.values()), run.explain()
    drift = json.loads(report.read_text())
    assert drift["schema"] == 1 and drift["hosts_verified"] == 2
    assert (drift["drifted"], drift["failed"]) == (["stock"], ["broken"])
    assert drift["profiles"] == {PROFILE: {"drifted": ["stock"], "ok": ["tuned"]}}
    assert sorted(drift["by_key"]) == sorted(TARGETS)
    (fin,) = drift["by_key"][FIN]
    assert (fin["host"], fin["profile"], fin["state"]) == ("stock", PROFILE, "drift")
    assert (str(fin["live"]), fin["target"]) == (defaults[FIN], str(TARGETS[FIN]))
    assert fin["boot"]["value"] == "33" and fin["boot"]["file"].endswith("50-site.conf")
    assert drift["hosts"]["tuned"]["drifted_keys"] == []
    assert f"{PROFILE}: drifted stock; ok tuned" in run.stdout
    assert f"stock, {PROFILE}: {defaults[FIN]} -> {TARGETS[FIN]}; boot 33 from" in run.stdout
    assert "failed: broken" in run.stdout

    assert strict.returncode == 2, strict.explain()
    assert strict.recap["stock"]["failed"] == 1 and strict.recap["tuned"]["failed"] == 0
    assert f"stock drifts from {PROFILE}: {FIN}" in " ".join(strict.stdout.split())


def test_rollback_playbook_previews_in_check_mode_then_rolls_back_once(
    ansible: Ansible, netns: str, tmp_path: Path
) -> None:
    ansible = from_checkout(ansible)
    state, dropins = tmp_path / "state", tmp_path / "sysctl.d"
    profile = write_profile(tmp_path / "profiles") / f"{PROFILE}.toml"
    before = read_sysctls(netns)
    applied = tcptune_in(
        netns, "apply", str(profile), "--apply", "--persist",
        "--state-dir", str(state), "--sysctl-dir", str(dropins),
    )  # fmt: skip
    assert applied.returncode == 0, applied.stderr
    assert read_sysctls(netns) == {key: str(value) for key, value in TARGETS.items()}
    variables = {
        "tcptune_python": sys.executable,
        "tcptune_state_dir": str(state),
    }
    state_before = sorted((p.name, p.read_bytes()) for p in state.iterdir())

    check = ansible.playbook("rollback.yml", variables, "--check", netns=netns)
    assert check.returncode == 0, check.explain()
    assert check.recap["localhost"]["changed"] == 1, check.explain()  # "would change"
    assert f"would set {FIN}: {TARGETS[FIN]} -> {before[FIN]}" in check.stdout
    assert "90-tcptune.conf: would be removed" in check.stdout
    assert read_sysctls(netns) == {key: str(value) for key, value in TARGETS.items()}
    assert sorted((p.name, p.read_bytes()) for p in state.iterdir()) == state_before

    done = ansible.playbook("rollback.yml", variables, netns=netns)
    assert done.returncode == 0, done.explain()
    assert done.recap["localhost"]["changed"] == 1, done.explain()
    assert f"set {FIN}: {TARGETS[FIN]} -> {before[FIN]}" in done.stdout
    assert read_sysctls(netns) == before
    assert not (dropins / "90-tcptune.conf").exists()

    again = ansible.playbook("rollback.yml", variables, netns=netns)
    assert again.returncode == 0, again.explain()
    assert again.recap["localhost"]["changed"] == 0, again.explain()
    assert "nothing to roll back" in again.stdout


def test_a_failing_rollback_stops_the_later_batches(
    ansible: Ansible, netns: str, tmp_path: Path
) -> None:
    ansible = from_checkout(ansible)
    profile = write_profile(tmp_path / "profiles") / f"{PROFILE}.toml"
    good, bad = tmp_path / "good-state", tmp_path / "bad-state"
    applied = tcptune_in(netns, "apply", str(profile), "--apply", "--state-dir", str(good))
    assert applied.returncode == 0, applied.stderr
    bad.mkdir(mode=0o700)
    (bad / "state.json").write_text("{ torn")  # exit 65: corrupt state, nothing written
    inventory = ansible.inventory(
        f"first tcptune_state_dir={bad}", f"second tcptune_state_dir={good}"
    )
    run = ansible.playbook(
        "rollback.yml", {"tcptune_python": sys.executable}, inventory=inventory, netns=netns
    )
    assert run.returncode == 2, run.explain()
    assert run.recap["first"]["failed"] == 1, run.explain()
    assert "second" not in run.recap, run.explain()  # its batch never started
    assert read_sysctls(netns) == {key: str(value) for key, value in TARGETS.items()}
