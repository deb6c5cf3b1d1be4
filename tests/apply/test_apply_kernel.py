"""The applier against the real kernel, always inside a throwaway network namespace.

Every test that writes runs in fresh_netns(): a new namespace starts from kernel
defaults and only per-namespace keys are written, so the host is never touched.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
from dataclasses import replace
from pathlib import Path

import pytest

from tcptune.apply.applier import apply_profile, preview
from tcptune.apply.plan import Action
from tcptune.apply.records import Change
from tcptune.apply.rollback import rollback
from tcptune.apply.statestore import StateStore
from tcptune.apply.sysctld import DROPIN_NAME, ConfLine
from tcptune.apply.verify import verify_profile
from tcptune.apply.writer import ProcSysctlWriter, WriteAborted, write_all
from tcptune.cli.commandline import as_root
from tcptune.exitcodes import (
    BadInputError,
    LockedError,
    PermissionDeniedError,
    UnavailableError,
    UsageError,
    WriteFailedError,
)
from tcptune.inspect.nsidentity import netns_cookie
from tcptune.inspect.procfs import ProcFS
from tests.apply_support import NOBODY, environment, load_profile, raw_profile
from tests.lab import fresh_netns

pytestmark = pytest.mark.kernel

FIN = "net.ipv4.tcp_fin_timeout"
KEEPALIVE = "net.ipv4.tcp_keepalive_time"
PORTS = "net.ipv4.ip_local_port_range"
TW_REUSE = "net.ipv4.tcp_tw_reuse"
RESERVED = "net.ipv4.ip_local_reserved_ports"
WATCHED = (FIN, KEEPALIVE, PORTS, TW_REUSE, RESERVED)
COMMAND = "tcptune apply test --apply"


def live(name: str) -> str:
    """Return a sysctl's text in the calling thread's namespace."""
    return ProcFS().sysctl_path(name).read_text()


def snapshot() -> dict[str, str]:
    return {name: live(name) for name in WATCHED}


class SpyWriter:
    """Write through /proc/sys, recording each write; fail or lie on the Nth write.

    ``error`` is what the failing write raises (default EIO); with ``landed`` the
    value reaches the kernel first, as if the writer failed after the write(2).
    """

    def __init__(
        self,
        fail_on: int | None = None,
        lie_on: int | None = None,
        error: BaseException | None = None,
        landed: bool = False,
    ) -> None:
        self.inner = ProcSysctlWriter(ProcFS())
        self.writes: list[tuple[str, str]] = []
        self.fail_on, self.lie_on = fail_on, lie_on
        self.error = error or OSError(errno.EIO, os.strerror(errno.EIO))
        self.landed = landed

    def read(self, name: str) -> str:
        return self.inner.read(name)

    def write(self, name: str, text: str) -> None:
        self.writes.append((name, text))
        if len(self.writes) == self.fail_on:
            if self.landed:
                self.inner.write(name, text)
            raise self.error
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
    assert logged[0].startswith("apply #1 applied in net:[")  # issue 11: the namespace named
    assert "not initial): net.ipv4.tcp_fin_timeout 60 -> 15" in logged[0]
    assert history[0].netns is not None and "not initial)" in history[0].netns
    assert logged[1].startswith("rollback #3 rolled back in net:[")
    assert "not initial): undid apply #1" in logged[1]


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
    command = as_root(COMMAND, NOBODY.euid)  # the CLI decides sudo; the applier quotes it
    with pytest.raises(PermissionDeniedError, match=f"nobody .*Run: sudo {COMMAND}$"):
        apply_profile(load_profile("web", WEB), env, persist=False, command=command)
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


# ------------------------------------------------------------------ any writer exception


@pytest.mark.parametrize(
    ("error", "landed", "reason", "status"),
    [
        (
            UnicodeEncodeError("ascii", "cub\xefc", 3, 4, "ordinal not in range(128)"),
            False,
            f"could not set {PORTS} to 20000 40000: the value is not ASCII text, "
            "which /proc/sys takes (invalid argument)",
            WriteFailedError,
        ),
        (
            ValueError("bad\nvalue"),
            False,
            f"could not set {PORTS} to 20000 40000: ValueError: bad value",
            WriteFailedError,
        ),
        (
            RuntimeError("writer broke after writing"),
            True,  # the value reached the kernel: it must be restored too
            f"could not set {PORTS} to 20000 40000: RuntimeError: writer broke after writing",
            WriteFailedError,
        ),
        (
            KeyboardInterrupt(),
            True,
            f"could not set {PORTS} to 20000 40000: interrupted",
            WriteFailedError,
        ),
    ],
    ids=["unicode-encode-error", "value-error", "after-the-write", "ctrl-c"],
)
def test_any_exception_from_the_writer_restores_every_key_already_written(
    netns: str,
    tmp_path: Path,
    error: BaseException,
    landed: bool,
    reason: str,
    status: type[Exception],
) -> None:
    before = snapshot()
    logged: list[str] = []
    spy = SpyWriter(fail_on=3, error=error, landed=landed)
    env = environment(tmp_path, writer=spy, log=logged.append)
    with pytest.raises(status) as failure:
        apply_profile(load_profile("web", WEB), env, persist=True, command=COMMAND)
    message = str(failure.value)
    assert reason in message and "\n" not in message
    assert "restored and verified 2 key(s) already written; nothing was changed" in message
    assert snapshot() == before
    assert not (env.dropin_dir / DROPIN_NAME).exists()
    assert env.store.undo_stack() == ()  # nothing left to roll back: all of it was undone
    [entry] = env.store.history()
    assert (entry.action, entry.outcome, entry.message) == ("apply", "failed", message)
    [line] = logged
    assert line.startswith("apply #1 failed in net:[") and "not initial): " in line
    assert line.endswith(f": {message} (by root (uid 0, via sudo from alice))")


def test_the_real_writer_s_encoding_error_mid_apply_is_undone(netns: str) -> None:
    # The reviewer's case: tcp_fin_timeout 17 lands, then a non-ASCII congestion
    # control name makes ProcSysctlWriter.write raise UnicodeEncodeError.
    before = live(FIN)
    congestion = "net.ipv4.tcp_congestion_control"
    changes = [Change(FIN, before, "17"), Change(congestion, live(congestion), "cub\u00efc")]
    with pytest.raises(WriteAborted) as aborted:
        write_all(changes, ProcSysctlWriter(ProcFS()))
    assert aborted.value.errno == errno.EINVAL and aborted.value.unrestored == ()
    assert aborted.value.restored == 1
    assert "could not set net.ipv4.tcp_congestion_control to cub\u00efc" in aborted.value.reason
    assert live(FIN) == before


def test_a_value_that_is_not_printable_ascii_is_refused_before_any_write(
    netns: str, tmp_path: Path
) -> None:
    before = snapshot()
    spy = SpyWriter()
    env = environment(tmp_path, writer=spy)
    # Fullwidth digits pass str.isdigit(); the kernel's parser takes ASCII only.
    profile = raw_profile("wide", {FIN: 17, RESERVED: "8080,\uff19\uff10\uff19\uff10"})
    with pytest.raises(BadInputError, match=r"'8080,\\uff19.*' is not printable ASCII text"):
        apply_profile(profile, env, persist=False, command=COMMAND)
    assert spy.writes == [] and snapshot() == before
    assert not env.store.state_path.exists()


# ------------------------------------------------------------------ which namespace


def rewrite_record(env_state: Path, **fields: object) -> None:
    """Change fields of the newest undo record in state.json (None deletes the field)."""
    document = json.loads(env_state.read_text())
    record = document["undo_stack"][-1]
    for key, value in fields.items():
        if value is None:
            record.pop(key, None)
        else:
            record[key] = value
    env_state.write_text(json.dumps(document))


def test_each_apply_records_the_namespace_cookie_and_boot_id(netns: str, tmp_path: Path) -> None:
    env = environment(tmp_path)
    apply_profile(load_profile("a", {FIN: {"value": 15}}), env, persist=False, command=COMMAND)
    [record] = env.store.undo_stack()
    assert f"net:[{record.netns_inode}]" == netns
    assert record.netns_cookie is not None and record.netns_cookie == netns_cookie()
    assert record.boot_id == Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    assert record.initial_netns is False


def test_rollback_refuses_a_namespace_that_reuses_the_inode_number(
    netns: str, tmp_path: Path
) -> None:
    original = live(FIN)
    env = environment(tmp_path)
    apply_profile(load_profile("a", {FIN: {"value": 15}}), env, persist=False, command=COMMAND)
    with fresh_netns() as other:
        # The kernel gave the apply's inode number to this new namespace (as it does
        # once the old one is freed); only the cookie still tells them apart.
        rewrite_record(env.store.state_path, netns_inode=int(other[5:-1]))
        other_before = live(FIN)
        with pytest.raises(UnavailableError) as refused:
            rollback(env, command="tcptune rollback")
        assert "the same inode number: the kernel reused it" in str(refused.value)
        assert "nothing was changed" in str(refused.value)
        assert live(FIN) == other_before
    assert live(FIN) == "15\n"
    rollback(env, command="tcptune rollback")  # from the apply's own namespace: allowed
    assert live(FIN) == original


def test_rollback_refuses_an_apply_made_during_an_earlier_boot(netns: str, tmp_path: Path) -> None:
    env = environment(tmp_path)
    apply_profile(load_profile("a", {FIN: {"value": 15}}), env, persist=False, command=COMMAND)
    rewrite_record(env.store.state_path, boot_id="00000000-0000-4000-8000-000000000000")
    with pytest.raises(UnavailableError, match=r"during an earlier boot .*no longer exists"):
        rollback(env, command="tcptune rollback")
    assert live(FIN) == "15\n" and len(env.store.undo_stack()) == 1


def test_a_record_without_the_new_fields_falls_back_to_the_inode(
    netns: str, tmp_path: Path
) -> None:
    original = live(FIN)
    env = environment(tmp_path)
    apply_profile(load_profile("a", {FIN: {"value": 15}}), env, persist=False, command=COMMAND)
    rewrite_record(env.store.state_path, netns_cookie=None, boot_id=None, initial_netns=None)
    with fresh_netns(), pytest.raises(UnavailableError, match=r"was net:\[\d+\] and this is"):
        rollback(env, command="tcptune rollback")
    rollback(env, command="tcptune rollback")
    assert live(FIN) == original


# ------------------------------------------------------------------ --persist and namespaces


def test_persist_is_refused_in_a_namespace_entered_with_netns_or_pid(
    netns: str, tmp_path: Path
) -> None:
    before = snapshot()
    spy = SpyWriter()
    env = environment(tmp_path, writer=spy, netns_name="netns blue")
    profile = load_profile("web", WEB)
    for attempt in (
        lambda: preview(profile, env, persist=True),
        lambda: apply_profile(profile, env, persist=True, command=COMMAND),
    ):
        with pytest.raises(UsageError) as refused:
            attempt()
        message = str(refused.value)
        assert message.startswith("--persist cannot be used with --netns/--pid (netns blue)")
        assert "never to that namespace; nothing was written" in message
    assert spy.writes == [] and snapshot() == before
    assert not env.store.directory.exists() and not (env.dropin_dir / DROPIN_NAME).exists()
    plan, dropin = preview(profile, env, persist=False)  # without --persist: fine
    assert dropin is None and plan.context.netns_name == "netns blue"


def test_persist_from_inside_a_namespace_says_boot_does_not_follow_it(
    netns: str, tmp_path: Path
) -> None:
    env = environment(tmp_path)
    _, dropin = preview(load_profile("web", WEB), env, persist=True)
    assert dropin is not None
    [note] = dropin.notes
    assert note.startswith(f"This is not the host's initial network namespace ({netns})")
    assert f"takes effect when a system that boots with {env.dropin_dir} starts" in note
    assert note.endswith("it does not follow this namespace.")


# ------------------------------------------------------------------ hand edits in the drop-in


def test_reapplying_names_hand_edits_in_the_drop_in_and_rollback_keeps_them(
    netns: str, tmp_path: Path
) -> None:
    env = environment(tmp_path)
    apply_profile(load_profile("a", {FIN: {"value": 15}}), env, persist=True, command=COMMAND)
    dropin = env.dropin_dir / DROPIN_NAME
    edited = dropin.read_text().replace(f"{FIN} = 15", f"{FIN} = 16") + "vm.swappiness = 1\n"
    dropin.write_text(edited)
    number = len(edited.splitlines())
    expected = (ConfLine(number - 1, f"{FIN} = 16"), ConfLine(number, "vm.swappiness = 1"))

    profile = load_profile("b", {FIN: {"value": 20}})
    _, planned = preview(profile, env, persist=True)
    assert planned is not None and planned.action == "replace"
    assert (planned.foreign, planned.attributed) == (expected, True)
    result = apply_profile(profile, env, persist=True, command=COMMAND)
    assert result.dropin is not None and result.dropin.foreign == expected
    assert "vm.swappiness" not in dropin.read_text()

    undone = rollback(env, command="x")
    assert undone.dropin_action == "restored" and undone.notes == ()
    assert dropin.read_text() == edited  # the hand edits are back
    assert live(FIN) == "15\n"


def test_rollback_names_lines_added_after_its_apply_that_the_restore_drops(
    netns: str, tmp_path: Path
) -> None:
    env = environment(tmp_path)
    apply_profile(load_profile("a", {FIN: {"value": 15}}), env, persist=True, command=COMMAND)
    dropin = env.dropin_dir / DROPIN_NAME
    dropin.write_text(dropin.read_text() + "vm.swappiness = 1\n")
    undone = rollback(env, command="x")
    assert undone.dropin_action == "removed" and not dropin.exists()
    [note] = undone.notes
    assert "has lines tcptune did not write, added after apply #1" in note
    assert note.endswith("line 6: vm.swappiness = 1")


def test_without_a_record_of_the_drop_in_every_dropped_line_is_named(
    netns: str, tmp_path: Path
) -> None:
    env = environment(tmp_path)
    two = {FIN: {"value": 15}, KEEPALIVE: {"value": 600}}
    apply_profile(load_profile("a", two), env, persist=True, command=COMMAND)
    unrecorded = replace(env, store=StateStore(tmp_path / "elsewhere"))  # no undo record
    _, planned = preview(load_profile("b", {FIN: {"value": 15}}), unrecorded, persist=True)
    assert planned is not None and planned.attributed is False
    assert [line.text for line in planned.foreign] == [f"{KEEPALIVE} = 600"]
