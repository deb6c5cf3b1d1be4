"""Small profiles and applier environments for the applier tests; nothing here writes."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tcptune.apply.applier import Environment
from tcptune.apply.statestore import StateStore
from tcptune.apply.sysctld import SearchPath
from tcptune.apply.writer import ProcSysctlWriter, SysctlWriter
from tcptune.inspect.invoker import Identity
from tcptune.inspect.procfs import ProcFS
from tcptune.model.values import SysctlValue
from tcptune.profiles.model import Profile, ProfileSource, Target
from tcptune.profiles.validate import validate

ROOT = Identity(uid=0, euid=0, user="root", sudo_user="alice")
NOBODY = Identity(uid=65534, euid=65534, user="nobody")


def profile_text(name: str, targets: dict[str, dict[str, Any]]) -> str:
    """Return a schema-1 profile TOML with a why and risk for every target."""
    lines = [
        "schema = 1",
        f'name = "{name}"',
        'summary = "test profile"',
        'description = "A profile written by a test."',
    ]
    for key, table in targets.items():
        lines.append(f'[sysctl."{key}"]')
        lines += [f"{field} = {json.dumps(value)}" for field, value in table.items()]
        lines += ['why = "because the test says so"', 'risk = "none, in a throwaway namespace"']
    return "\n".join(lines) + "\n"


def write_profile(directory: Path, name: str, targets: dict[str, dict[str, Any]]) -> Path:
    """Write a profile file ``name``.toml into ``directory`` and return its path."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.toml"
    path.write_text(profile_text(name, targets))
    return path


def load_profile(name: str, targets: dict[str, dict[str, Any]]) -> Profile:
    """Return a validated profile without touching the file system."""
    return validate(ProfileSource(name, f"<test {name}>", profile_text(name, targets)))


def raw_profile(name: str, values: dict[str, SysctlValue]) -> Profile:
    """Return a profile built directly, bypassing validation (for values the kernel rejects)."""
    targets = {
        key: Target(key, value, None, None, "test", "test", False, (), name)
        for key, value in values.items()
    }
    return Profile(name, "raw", "raw", None, (), targets, f"<raw {name}>", (name,))


def environment(
    tmp_path: Path,
    *,
    writer: SysctlWriter | None = None,
    identity: Identity = ROOT,
    lock_timeout: float = 0.2,
    log: Callable[[str], None] | None = None,
    netns_name: str | None = None,
) -> Environment:
    """Return an environment on the live /proc with state and boot files under ``tmp_path``."""
    procfs = ProcFS()
    boot_root = tmp_path / "root"
    for directory in ("etc/sysctl.d", "run/sysctl.d", "usr/lib/sysctl.d"):
        (boot_root / directory).mkdir(parents=True, exist_ok=True)
    return Environment(
        procfs=procfs,
        writer=writer or ProcSysctlWriter(procfs),
        store=StateStore(tmp_path / "state"),
        boot=SearchPath.under(boot_root),
        dropin_dir=boot_root / "etc/sysctl.d",
        identity=identity,
        lock_timeout=lock_timeout,
        clock=lambda: 1_700_000_000.0,
        log=log or (lambda message: None),
        netns_name=netns_name,
    )
