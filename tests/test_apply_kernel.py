"""The applier against the real kernel, always inside a throwaway network namespace.

Every test that writes runs in fresh_netns(): a new namespace starts from kernel
defaults and only per-namespace keys are written, so the host is never touched.
"""

from __future__ import annotations

import errno
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tcptune.applier import (
    ProcSysctlWriter,
    WriteAborted,
    apply_profile,
    preview,
    rollback,
    write_all,
)
from tcptune.exitcodes import (
    BadInputError,
    LockedError,
    PermissionDeniedError,
    UnavailableError,
    UsageError,
    WriteFailedError,
)
from tcptune.plan import Action
from tcptune.procfs import ProcFS
from tcptune.statestore import Change
from tcptune.sysctld import DROPIN_NAME
from tcptune.verify import verify_profile
from tests.apply_support import NOBODY, environment, load_profile, raw_profile
from tests.lab import current_netns, fresh_netns, require_netns_capability, skip_or_fail

pytestmark = pytest.mark.kernel

FIN = "net.ipv4.tcp_fin_timeout"
KEEPALIVE = "net.ipv4.tcp_keepalive_time"
PORTS = "net.ipv4.ip_local_port_range"
TW_REUSE = "net.ipv4.tcp_tw_reuse"
RESERVED = "net.ipv4.ip_local_reserved_ports"
WATCHED = (FIN, KEEPALIVE, PORTS, TW_REUSE, RESERVED)
COMMAND = "tcptune apply test --apply"


@pytest.fixture
def netns() -> Iterator[str]:
    """Run the test in a brand-new network namespace (kernel defaults), then leave it."""
    reason = require_netns_capability()
    if reason is not None:
        skip_or_fail(reason)
    host = current_netns()
    with fresh_netns() as inside:
        assert inside != host
        yield inside


def live(name: str) -> str:
    """Return a sysctl's text in the calling thread's namespace."""
    return ProcFS().sysctl_path(name).read_text()


def snapshot() -> dict[str, str]:
    return {name: live(name) for name in WATCHED}


class SpyWriter:
    """Write through /proc/sys, recording each write; fail or lie on the Nth write."""

    def __init__(self, fail_on: int | None = None, lie_on: int | None = None) -> None:
        self.inner = ProcSysctlWriter(ProcFS())
        self.writes: list[tuple[str, str]] = []
        self.fail_on, self.lie_on = fail_on, lie_on

    def read(self, name: str) -> str:
        return self.inner.read(name)

    def write(self, name: str, text: str) -> None:
        self.writes.append((name, text))
        if len(self.writes) == self.fail_on:
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        self.inner.write(name, "7" if len(self.writes) == self.lie_on else text)


WEB = {
    FIN: {"value": 15},
    KEEPALIVE: {"max": 600},
    PORTS: {"value": [20000, 40000]},
    RESERVED: {"value": "9000-9010,8080"},
    "net.ipv4.tcp_max_orphans": {"min": 65536},  # host-wide: skipped in a namespace
}


def test_the_plan_writes_nothing(netns: str, tmp_path: Path) -> None:
    before = snapshot()
    env = environment(tmp_path)
    plan, dropin = preview(load_profile("web", WEB), env, persist=True)
    assert [item.name for item in plan.changes] == [FIN, KEEPALIVE, PORTS, RESERVED]
    assert dropin is not None and dropin.action == "create"
    assert snapshot() == before
    assert not (tmp_path / "state").exists()
    assert not dropin.path.exists()


def test_apply_verify_reapply_and_rollback_restore_exactly(netns: str, tmp_path: Path) -> None:
    before = snapshot()
    logged: list[str] = []
    env = environment(tmp_path, log=logged.append)
    profile = load_profile("web", WEB)

    result = apply_profile(profile, env, persist=False, command=COMMAND)
    assert result.record_id == 1
    assert (live(FIN), live(KEEPALIVE), live(PORTS)) == ("15\n", "600\n", "20000\t40000\n")
    assert live(RESERVED) == "8080,9000-9010\n"
    assert [i.name for i in result.plan.having(Action.SKIP)] == ["net.ipv4.tcp_max_orphans"]
    assert "host-wide" in (result.plan.items[-1].reason or "")
    assert verify_profile(profile, ProcFS(), env.boot).status == 0

    spy = SpyWriter()
    again_env = environment(tmp_path, writer=spy)
    again = apply_profile(profile, again_env, persist=False, command=COMMAND)
    assert again.record_id is None and spy.writes == []

    undone = rollback(env, command="tcptune rollback")
    assert undone.record.id == 1
    assert snapshot() == before  # byte for byte, tabs included
    assert verify_profile(profile, ProcFS(), env.boot).status == 4
    with pytest.raises(UnavailableError, match="nothing to roll back"):
        rollback(env, command="tcptune rollback")
    assert snapshot() == before  # a second rollback never re-applies

    history = env.store.history()
    assert [(e.id, e.action, e.outcome) for e in history] == [
        (1, "apply", "applied"),
        (2, "apply", "already in place"),
        (3, "rollback", "rolled back"),
    ]
    assert history[0].who.sudo_user == "alice"
    assert history[0].changes[0] == Change(FIN, before[FIN].strip(), "15")
    assert logged[0].startswith("apply #1 applied: net.ipv4.tcp_fin_timeout 60 -> 15")
    assert logged[1].startswith("rollback #3 rolled back: undid apply #1")


def test_rollback_undoes_one_apply_at_a_time(netns: str, tmp_path: Path) -> None:
    original = live(FIN)
    env = environment(tmp_path)
    apply_profile(load_profile("a", {FIN: {"value": 15}}), env, persist=False, command=COMMAND)
    apply_profile(load_profile("b", {FIN: {"value": 20}}), env, persist=False, command=COMMAND)
    assert rollback(env, command="x").record.profile == "b"
    assert live(FIN) == "15\n"
    assert rollback(env, command="x").record.profile == "a"
    assert live(FIN) == original


def test_a_value_the_kernel_rejects_restores_every_key(netns: str, tmp_path: Path) -> None:
    before = snapshot()
    env = environment(tmp_path)
    # tcp_tw_reuse takes 0..2 (proc_dou8vec_minmax, extra2 = SYSCTL_TWO): 3 is EINVAL.
    profile = raw_profile("bad", {FIN: 15, KEEPALIVE: 600, TW_REUSE: 3})
    with pytest.raises(WriteFailedError) as failure:
        apply_profile(profile, env, persist=False, command=COMMAND)
    message = str(failure.value)
    assert "could not set net.ipv4.tcp_tw_reuse to 3: invalid argument (EINVAL)" in message
    assert "restored and verified 2 key(s)" in message
    assert snapshot() == before
    assert env.store.undo_stack() == ()
    assert env.store.history()[-1].outcome == "failed"


def test_a_port_range_below_the_unprivileged_floor(netns: str, tmp_path: Path) -> None:
    before = snapshot()
    spy = SpyWriter()
    profile = raw_profile("low", {FIN: 15, PORTS: (80, 90)})
    with pytest.raises(BadInputError, match=r"below net.ipv4.ip_unprivileged_port_start \(1024\)"):
        apply_profile(profile, environment(tmp_path, writer=spy), persist=False, command=COMMAND)
    assert spy.writes == [] and snapshot() == before
    # Past the check, the kernel itself refuses it (ipv4_local_port_range): all restored.
    writer = ProcSysctlWriter(ProcFS())
    changes = [Change(FIN, before[FIN], "15"), Change(PORTS, before[PORTS], "80 90")]
    with pytest.raises(WriteAborted) as aborted:
        write_all(changes, writer)
    assert aborted.value.errno == errno.EINVAL and aborted.value.unrestored == ()
    assert "could not set net.ipv4.ip_local_port_range to 80 90" in aborted.value.reason
    assert snapshot() == before


@pytest.mark.parametrize(
    ("failure", "reason"),
    [
        ({"fail_on": 3}, f"could not set {PORTS} to 20000 40000: input/output error (EIO)"),
        ({"lie_on": 2}, f"{KEEPALIVE} reads back '7' after writing 600"),
    ],
    ids=["write-fails", "reads-back-wrong"],
)
def test_an_injected_failure_leaves_every_value_as_it_was(
    netns: str, tmp_path: Path, failure: dict[str, int], reason: str
) -> None:
    before = snapshot()
    spy = SpyWriter(**failure)
    env = environment(tmp_path, writer=spy)
    with pytest.raises(WriteFailedError, match="nothing was changed") as error:
        apply_profile(load_profile("web", WEB), env, persist=True, command=COMMAND)
    assert reason in str(error.value)
    assert snapshot() == before
    assert not (env.dropin_dir / DROPIN_NAME).exists()
    assert env.store.undo_stack() == ()


def test_a_held_lock_stops_a_second_apply(netns: str, tmp_path: Path) -> None:
    before = snapshot()
    spy = SpyWriter()
    env = environment(tmp_path, writer=spy, lock_timeout=0.2)
    env.store.directory.mkdir(parents=True)
    holder = os.open(env.store.lock_path, os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(holder, fcntl.LOCK_EX)  # a first apply, still running
        with pytest.raises(LockedError, match="another tcptune apply or rollback holds"):
            apply_profile(load_profile("web", WEB), env, persist=False, command=COMMAND)
        with pytest.raises(LockedError):
            rollback(env, command="tcptune rollback")
    finally:
        os.close(holder)
    assert spy.writes == [] and snapshot() == before


def test_a_non_root_identity_is_refused_before_anything(netns: str, tmp_path: Path) -> None:
    env = environment(tmp_path, identity=NOBODY)
    with pytest.raises(PermissionDeniedError, match=f"nobody .*Run: sudo {COMMAND}$"):
        apply_profile(load_profile("web", WEB), env, persist=False, command=COMMAND)
    assert not env.store.directory.exists()


def test_persist_writes_the_drop_in_warns_of_overrides_and_rollback_removes_it(
    netns: str, tmp_path: Path
) -> None:
    env = environment(tmp_path)
    vendor = env.boot.dirs[3] / "95-vendor.conf"  # usr/lib/sysctl.d, sorts after 90-
    vendor.write_text("net/ipv4/tcp_fin_timeout = 45\n")
    result = apply_profile(load_profile("web", WEB), env, persist=True, command=COMMAND)
    dropin = env.dropin_dir / DROPIN_NAME
    assert result.dropin is not None and result.dropin.path == dropin
    text = dropin.read_text()
    assert "net.ipv4.tcp_fin_timeout = 15\n" in text and "net.ipv4.tcp_max_orphans" not in text
    assert "net.ipv4.ip_local_port_range = 20000 40000\n" in text
    [warning] = result.dropin.warnings
    assert f"{vendor}:1 sets '45', which overrides '15' at boot" in warning
    report = verify_profile(load_profile("web", WEB), ProcFS(), env.boot)
    assert report.boot[FIN].value == "45" and report.boot_agrees[FIN] is False
    assert report.boot[KEEPALIVE].file == dropin and report.boot_agrees[KEEPALIVE] is True

    assert rollback(env, command="x").dropin_action == "removed"
    assert not dropin.exists()


def test_rollback_restores_tcptune_s_own_older_drop_in(netns: str, tmp_path: Path) -> None:
    env = environment(tmp_path)
    apply_profile(load_profile("a", {FIN: {"value": 15}}), env, persist=True, command=COMMAND)
    dropin = env.dropin_dir / DROPIN_NAME
    first = dropin.read_text()
    apply_profile(load_profile("b", {FIN: {"value": 20}}), env, persist=True, command=COMMAND)
    assert "= 20" in dropin.read_text()
    assert rollback(env, command="x").dropin_action == "restored"
    assert dropin.read_text() == first and live(FIN) == "15\n"


def test_a_drop_in_tcptune_did_not_write_stops_the_apply_before_any_write(
    netns: str, tmp_path: Path
) -> None:
    before = snapshot()
    spy = SpyWriter()
    env = environment(tmp_path, writer=spy)
    (env.dropin_dir / DROPIN_NAME).write_text("net.ipv4.tcp_fin_timeout = 5\n")
    with pytest.raises(UsageError, match="tcptune did not write it"):
        apply_profile(load_profile("web", WEB), env, persist=True, command=COMMAND)
    assert spy.writes == [] and snapshot() == before
    assert (env.dropin_dir / DROPIN_NAME).read_text() == "net.ipv4.tcp_fin_timeout = 5\n"


def test_a_required_key_this_kernel_lacks_blocks_the_apply(netns: str, tmp_path: Path) -> None:
    spy = SpyWriter()
    profile = load_profile("x", {FIN: {"value": 15}, "net.ipv4.tcp_tw_recycle": {"value": 0}})
    with pytest.raises(UnavailableError, match=r"removed in Linux 4\.12"):
        apply_profile(profile, environment(tmp_path, writer=spy), persist=False, command=COMMAND)
    assert spy.writes == []
