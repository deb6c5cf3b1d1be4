"""Issue 11: fail one syscall at each step of apply, apply --persist and rollback, for real.

Every run happens in a fresh network namespace (``unshare -n``) with its own
state directory and sysctl.d, under ``strace -e inject=SYSCALL:error=EIO:when=N``.
A baseline run traced with ``-y`` finds, for each syscall, which invocations
touch tcptune's files or /proc/sys; each of those steps (every one that
writes, a sample of the opens and reads, to keep the sweep near 30 s) is then
failed once. After each run the sweep checks that both keys are old or both
new, that the drop-in matches them, that the undo record and the history
match what was written, and that the exit status says which.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.apply_support import write_profile
from tests.lab import require_netns_capability, skip_or_fail

pytestmark = pytest.mark.kernel

FIN, KEEPALIVE = "net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_keepalive_time"
NEW = ("17", "601")
WRITING = ("write", "pwrite64", "fsync", "rename", "unlink", "flock", "ftruncate", "fchmod")
READING = ("openat", "read")
TRACED = ",".join((*WRITING, *READING))
SAMPLE_READS = 3  # every 3rd open or read of tcptune's files: they fail the same way
DONE = (0, 73)  # the change stands (73: a record of it could not be written)
WORKTREE = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Outcome:
    """What one run left behind."""

    fault: str
    code: int
    keys: tuple[str, str]
    stack: list[dict[str, object]] | None  # None: state.json unreadable
    history: list[dict[str, object]]
    dropin: str | None
    stderr: str


@pytest.fixture(scope="module")
def tools() -> None:
    reason = require_netns_capability()
    if reason is not None:
        skip_or_fail(reason)
    for tool in ("strace", "unshare"):
        if shutil.which(tool) is None:
            skip_or_fail(f"{tool} is not installed (scripts/install-deps.sh installs it)")


def _tcptune(*args: str) -> str:
    return " ".join([sys.executable, "-B", "-m", "tcptune", *args])


def _script(case: Path, scenario: str, strace: str) -> str:
    where = f"--state-dir {case}/state"
    apply = f"apply {case}/web.toml --apply {where} --boot-root {case}/root"
    persist = " --persist" if scenario != "apply" else ""
    lines = []
    if scenario == "rollback":  # a clean apply --persist first, then the faulty rollback
        lines.append(_tcptune(f"{apply} --persist") + " >/dev/null")
        command = _tcptune(f"rollback {where}")
    else:
        command = _tcptune(apply + persist)
    lines.append(f"{strace} {command} >{case}/out 2>{case}/err; echo $? >{case}/code")
    lines.append(
        f"cat /proc/sys/net/ipv4/tcp_fin_timeout /proc/sys/net/ipv4/tcp_keepalive_time >{case}/keys"
    )
    return "\n".join(lines)


def _prepare(base: Path, name: str) -> Path:
    case = base / name
    (case / "root/etc/sysctl.d").mkdir(parents=True)
    write_profile(case, "web", {FIN: {"value": int(NEW[0])}, KEEPALIVE: {"value": int(NEW[1])}})
    return case


def _run(case: Path, scenario: str, strace: str) -> None:
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "TCPTUNE_STATE_DIR": ""}
    subprocess.run(
        ["unshare", "-n", "sh", "-c", _script(case, scenario, strace)],
        cwd=WORKTREE,
        env=env,
        check=True,
        timeout=60,
    )


def _outcome(case: Path, fault: str) -> Outcome:
    state = case / "state/state.json"
    try:
        stack = json.loads(state.read_text())["undo_stack"] if state.exists() else []
    except ValueError:
        stack = None
    history_path = case / "state/history.jsonl"
    history = []
    if history_path.exists():
        for line in history_path.read_text().splitlines():
            try:
                history.append(json.loads(line))
            except ValueError:
                continue
    dropin_path = case / "root/etc/sysctl.d/90-tcptune.conf"
    keys = (case / "keys").read_text().split()
    return Outcome(
        fault=fault,
        code=int((case / "code").read_text()),
        keys=(keys[0], keys[1]),
        stack=stack,
        history=history,
        dropin=dropin_path.read_text() if dropin_path.exists() else None,
        stderr=(case / "err").read_text(),
    )


def _steps(base: Path, scenario: str) -> list[tuple[str, int]]:
    """Return (syscall, invocation number) for each traced call touching tcptune's files."""
    case = _prepare(base, f"{scenario}-baseline")
    log = case / "trace"
    _run(case, scenario, f"strace -f -qq -y -e trace={TRACED} -o {log}")
    assert int((case / "code").read_text()) == 0, (case / "err").read_text()
    counts: dict[str, int] = {}
    steps = []
    ours = re.compile(rf"({re.escape(str(case))}|/proc/sys/net)")
    for line in log.read_text().splitlines():
        match = re.match(r"(?:\d+\s+)?(\w+)\(", line)
        if match is None or match.group(1) not in (*WRITING, *READING):
            continue
        call = match.group(1)
        counts[call] = counts.get(call, 0) + 1
        if ours.search(line) and "/web.toml" not in line:
            steps.append((call, counts[call]))
    reads = [s for s in steps if s[0] in READING]
    return [s for s in steps if s[0] in WRITING] + reads[::SAMPLE_READS]


def _sweep(base: Path, scenario: str) -> Iterator[Outcome]:
    steps = _steps(base, scenario)
    assert len(steps) >= 10, steps

    def one(step: tuple[str, int]) -> Outcome:
        call, when = step
        case = _prepare(base, f"{scenario}-{call}-{when}")
        inject = f"strace -f -qq -o /dev/null -e trace={call} "
        inject += f"-e inject={call}:error=EIO:when={when}"
        _run(case, scenario, inject)
        return _outcome(case, f"{scenario}: {call} #{when} fails with EIO")

    with ThreadPoolExecutor(max_workers=4) as pool:
        yield from pool.map(one, steps)


def _check_unit(outcome: Outcome, old: tuple[str, str]) -> bool:
    """Assert both keys moved together; return whether they hold the new values."""
    assert outcome.keys in (old, NEW), f"{outcome.fault}: keys split {outcome.keys}"
    return outcome.keys == NEW


def _old_keys() -> tuple[str, str]:
    result = subprocess.run(
        ["unshare", "-n", "cat", "/proc/sys/net/ipv4/tcp_fin_timeout",
         "/proc/sys/net/ipv4/tcp_keepalive_time"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    first, second = result.stdout.split()
    return first, second


@pytest.mark.parametrize("scenario", ["apply", "persist"])
def test_every_failed_step_of_an_apply_leaves_one_consistent_unit(
    tools: None, tmp_path: Path, scenario: str
) -> None:
    old = _old_keys()
    tried = 0
    for outcome in _sweep(tmp_path, scenario):
        tried += 1
        new = _check_unit(outcome, old)
        assert (outcome.code in DONE) == new, f"{outcome.fault}: exit {outcome.code} {outcome}"
        assert outcome.code != 70 or not new, outcome
        applied = [h for h in outcome.history if h.get("outcome") == "applied"]
        if scenario == "persist":  # the drop-in is part of the unit
            assert (outcome.dropin is not None) == new, f"{outcome.fault}: drop-in {outcome}"
            if new:
                assert outcome.dropin is not None and f"{FIN} = {NEW[0]}" in outcome.dropin
        if new:
            assert outcome.stack is not None and len(outcome.stack) == 1, outcome
            assert outcome.code == 73 or applied, f"{outcome.fault}: exit 0 but no history"
            if outcome.code == 73:
                assert "tcptune: warning: " in outcome.stderr, outcome
        else:
            assert not applied, f"{outcome.fault}: history says applied, keys are old"
            left = outcome.stack or []
            assert all(not r["complete"] for r in left), outcome
            assert not left or "stays in" in outcome.stderr or outcome.code not in DONE, outcome
    assert tried >= 10


def test_every_failed_step_of_a_rollback_leaves_one_consistent_unit(
    tools: None, tmp_path: Path
) -> None:
    old = _old_keys()
    tried = 0
    for outcome in _sweep(tmp_path, "rollback"):
        tried += 1
        restored = not _check_unit(outcome, old)
        assert (outcome.code in DONE) == restored, f"{outcome.fault}: exit {outcome.code} {outcome}"
        assert (outcome.dropin is None) == restored, f"{outcome.fault}: drop-in {outcome}"
        rolled = [h for h in outcome.history if h.get("outcome") == "rolled back"]
        if restored:
            assert outcome.code == 73 or (rolled and outcome.stack == []), outcome
            if outcome.code == 73:
                assert "tcptune: warning: " in outcome.stderr, outcome
        else:
            assert not rolled, f"{outcome.fault}: history says rolled back, keys are new"
            assert outcome.stack is not None and len(outcome.stack) == 1, outcome
    assert tried >= 10


def test_a_rollback_that_cannot_read_the_drop_in_changes_nothing(
    tools: None, tmp_path: Path
) -> None:
    # Issue 11 item 8: it exited 0, dropped the record and left the drop-in "alone".
    old = _old_keys()
    case = _prepare(tmp_path, "dropin-eio")
    dropin = case / "root/etc/sysctl.d/90-tcptune.conf"
    inject = f"strace -f -qq -o /dev/null -P {dropin} -e trace=read -e inject=read:error=EIO:when=1"
    _run(case, "rollback", inject)
    outcome = _outcome(case, "rollback: the first read of the drop-in fails with EIO")
    assert outcome.code == 74, outcome
    assert f"cannot read {dropin} to restore it: input/output error (EIO)" in outcome.stderr
    assert outcome.keys == NEW != old and outcome.dropin is not None
    assert outcome.stack is not None and len(outcome.stack) == 1


@pytest.mark.parametrize("error", ["ENOLCK", "EIO", "ENOSPC"])
def test_a_lock_file_error_is_one_line_and_changes_nothing(
    tools: None, tmp_path: Path, error: str
) -> None:
    old = _old_keys()
    case = _prepare(tmp_path, f"lock-{error}")
    call = "flock" if error != "ENOSPC" else "openat"
    where = f"-P {case}/state/lock " if call == "openat" else ""
    inject = f"strace -f -qq -o /dev/null {where}-e trace={call} -e inject={call}:error={error}"
    _run(case, "apply", inject)
    outcome = _outcome(case, f"apply: {call} of the lock fails with {error}")
    assert outcome.code == 74, outcome
    assert outcome.stderr.count("\n") == 1 and "nothing was changed" in outcome.stderr
    assert outcome.keys == old and outcome.stack == [] and outcome.history == []
