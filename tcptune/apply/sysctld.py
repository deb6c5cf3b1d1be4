"""Persist settings as a sysctl.d drop-in, and tell which boot-time file wins for each key.

The boot order, as systemd-sysctl (sysctl.d(5)) and procps ``sysctl --system``
(sysctl(8); PreloadSystem() in procps src/sysctl.c) apply it:

1. Every ``*.conf`` in /etc/sysctl.d, /run/sysctl.d, /usr/local/lib/sysctl.d,
   /usr/lib/sysctl.d and /lib/sysctl.d; a file name in an earlier directory masks
   the same name in the later ones (a symlink to /dev/null masks with nothing).
2. The surviving files sorted by file name alone (strcmp), whatever their
   directory; for a key set in several files the last one applied wins.
3. procps then applies /etc/sysctl.conf last; systemd-sysctl reads it through the
   /etc/sysctl.d/99-sysctl.conf symlink that distributions ship.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from tcptune.apply.atomicfile import AtomicWriteError, atomic_write, remove_durably
from tcptune.exitcodes import UsageError
from tcptune.inspect.procfs import describe_os_error
from tcptune.model.record import record
from tcptune.model.values import same_text, unit_of

DROPIN_NAME = "90-tcptune.conf"
MARKER = "# tcptune-managed"
HEADER_LINES = 5  # the marker must sit in the first lines, not anywhere in a foreign file
BOOT_DIRS = (
    "etc/sysctl.d",
    "run/sysctl.d",
    "usr/local/lib/sysctl.d",
    "usr/lib/sysctl.d",
    "lib/sysctl.d",
)
GLOB_CHARACTERS = frozenset("*?[")


@record
class SearchPath:
    """Where boot-time sysctl settings are read, highest-priority directory first."""

    dirs: tuple[Path, ...]
    sysctl_conf: Path | None = None  # applied after every drop-in by procps

    @classmethod
    def under(cls, root: Path = Path("/")) -> SearchPath:
        """Return the standard search path below ``root`` (``/`` on a live host)."""
        return cls(tuple(root / d for d in BOOT_DIRS), root / "etc/sysctl.conf")


@record
class BootSetting:
    """One ``key = value`` line of a sysctl configuration file."""

    key: str  # as written, without a leading "-"
    path: str  # the /proc/sys-relative path it names, e.g. net/ipv4/tcp_fin_timeout
    value: str
    file: Path
    line: int
    ignore_errors: bool  # a leading "-": failures to set it are not errors

    def where(self) -> str:
        """Return 'FILE:LINE'."""
        return f"{self.file}:{self.line}"


def key_to_path(key: str) -> str:
    """Return the /proc/sys-relative path a sysctl.d key names.

    sysctl.d(5): if the first separator is a slash, remaining slashes and dots are
    left intact; if it is a dot, dots and slashes are interchanged.
    """
    separators = [i for i in (key.find("."), key.find("/")) if i >= 0]
    if not separators or key[min(separators)] == "/":
        return key
    return key.translate(str.maketrans("./", "/."))


def name_to_path(name: str) -> str:
    """Return the /proc/sys-relative path of a dotted tcptune sysctl name."""
    return name.replace(".", "/")


def path_to_name(path: str) -> str:
    """Return the dotted name of a /proc/sys-relative path (the inverse of name_to_path)."""
    return path.replace("/", ".")


def parse_conf(text: str, file: Path) -> list[BootSetting]:
    """Return the explicit settings of a sysctl.d file, in file order.

    Lines starting with '#' or ';' are comments (sysctl.d(5)). Glob keys are left
    out: an explicit key is excluded from every glob match, and tcptune only asks
    about explicit keys. A "-key" line without "=" only excludes a key from globs.
    """
    settings = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        key, equals, value = line.partition("=")
        if not equals:
            continue
        key = key.strip()
        ignore_errors = key.startswith("-")
        key = key.removeprefix("-").strip()
        if not key or GLOB_CHARACTERS & set(key):
            continue
        settings.append(
            BootSetting(key, key_to_path(key), value.strip(), file, number, ignore_errors)
        )
    return settings


def _conf_names(directory: Path) -> set[str]:
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return set()
    # systemd skips hidden files; both tools take only names ending in ".conf".
    return {
        e.name
        for e in entries
        if e.name.endswith(".conf") and not e.name.startswith(".") and not e.is_dir()
    }


def boot_files(search: SearchPath, overlay: Mapping[Path, str] | None = None) -> list[Path]:
    """Return the files applied at boot, in order; ``overlay`` adds files not yet written."""
    overlay = overlay or {}
    chosen: dict[str, Path] = {}
    for directory in search.dirs:
        names = _conf_names(directory) | {p.name for p in overlay if p.parent == directory}
        for name in names:
            chosen.setdefault(name, directory / name)
    files = [chosen[name] for name in sorted(chosen)]
    conf = search.sysctl_conf
    if conf is not None and (conf in overlay or conf.is_file()):
        files.append(conf)
    return files


def boot_settings(
    search: SearchPath, overlay: Mapping[Path, str] | None = None
) -> tuple[list[BootSetting], list[str]]:
    """Return every setting applied at boot in application order, and files unreadable."""
    overlay = overlay or {}
    settings: list[BootSetting] = []
    problems: list[str] = []
    for file in boot_files(search, overlay):
        if file in overlay:
            text = overlay[file]
        else:
            try:
                text = file.read_text(encoding="utf-8", errors="replace")
            except OSError as exc:
                problems.append(f"{file}: {describe_os_error(exc)}")
                continue
        settings += parse_conf(text, file)
    return settings, problems


def winning_settings(settings: Sequence[BootSetting]) -> dict[str, BootSetting]:
    """Return, per /proc/sys path, the setting applied last (the one in effect after boot)."""
    return {setting.path: setting for setting in settings}


# --------------------------------------------------------------------------- the drop-in


@record
class ConfLine:
    """One line of a configuration file, numbered from 1."""

    number: int
    text: str


@record
class DropinPlan:
    """The drop-in tcptune would write, what it replaces, and boot-order warnings."""

    path: Path
    text: str
    previous: str | None  # the current content (carries tcptune's marker), None if absent
    warnings: tuple[str, ...]
    # Lines of ``previous`` that the new text drops and that tcptune did not write
    # (attributed), or, with no record of what it wrote, every such setting line.
    foreign: tuple[ConfLine, ...] = ()
    attributed: bool = True
    notes: tuple[str, ...] = ()  # facts about persisting from here (e.g. a namespace)

    @property
    def action(self) -> str:
        """Return 'create', 'replace' or 'unchanged'."""
        if self.previous is None:
            return "create"
        return "unchanged" if _body(self.previous) == _body(self.text) else "replace"


def _body(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip() and line[0] not in "#;"]


def foreign_lines(current: str, written: str | None, new: str) -> tuple[ConfLine, ...]:
    """Return the lines of ``current`` that tcptune did not write and ``new`` does not keep.

    ``written`` is the text tcptune last wrote there (from its undo record). Without
    it, nothing can be attributed: every setting line ``new`` does not keep is returned.
    Lines compare with surrounding blanks stripped.
    """
    kept = {line.strip() for line in new.splitlines()}
    ours = None if written is None else {line.strip() for line in written.splitlines()}
    lines = []
    for number, raw in enumerate(current.splitlines(), start=1):
        line = raw.strip()
        if not line or line in kept:
            continue
        if (ours is None and line[0] in "#;") or (ours is not None and line in ours):
            continue
        lines.append(ConfLine(number, line))
    return tuple(lines)


def is_tcptune_file(text: str) -> bool:
    """Return whether ``text`` carries tcptune's marker line in its header."""
    return any(line.startswith(MARKER) for line in text.splitlines()[:HEADER_LINES])


def read_own_file(path: Path) -> str | None:
    """Return a drop-in tcptune wrote (None if absent); refuse a file someone else wrote."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {describe_os_error(exc)}") from exc
    if not is_tcptune_file(text):
        raise UsageError(
            f"{path} exists and tcptune did not write it (no '{MARKER}' line in its header): "
            "tcptune will not replace it; move it away or choose another --sysctl-dir"
        )
    return text


def render_dropin(profile: str, settings: Sequence[tuple[str, str]], when: float, who: str) -> str:
    """Return the drop-in text: a header naming the profile and time, then the settings."""
    stamp = dt.datetime.fromtimestamp(when, tz=dt.UTC).isoformat(timespec="seconds")
    lines = [
        f"{MARKER}: written by `tcptune apply --persist`; tcptune replaces or removes",
        "# only files carrying this line. Undo with `tcptune rollback`.",
        f"# profile {profile}, written {stamp.replace('+00:00', 'Z')} by {who}",
        "# Files whose names sort after this one override it at boot (sysctl.d(5)).",
    ]
    lines += [f"{name} = {value}" for name, value in settings]
    return "\n".join(lines) + "\n"


def boot_warnings(search: SearchPath, dropin: Path, text: str) -> tuple[str, ...]:
    """Return why ``text`` at ``dropin`` would not be what boot leaves in effect."""
    if dropin.parent not in search.dirs:
        read = ", ".join(str(d) for d in search.dirs)
        return (
            f"{dropin.parent} is not read at boot (systemd-sysctl and sysctl --system read {read})",
        )
    files = boot_files(search, {dropin: text})
    if dropin not in files:
        masking = next(f for f in files if f.name == dropin.name)
        return (f"{masking} has the same name in a higher-priority directory and hides {dropin}",)
    settings, problems = boot_settings(search, {dropin: text})
    winners = winning_settings(settings)
    warnings = [f"cannot check boot order: {problem}" for problem in problems]
    for ours in parse_conf(text, dropin):
        winner = winners.get(ours.path)
        if (
            winner is not None
            and winner.file != dropin
            and not same_text(unit_of(path_to_name(ours.path)), winner.value, ours.value)
        ):
            warnings.append(
                f"{ours.key}: {winner.where()} sets {winner.value!r}, which overrides "
                f"{ours.value!r} at boot ({winner.file.name} is applied after {dropin.name})"
            )
    return tuple(warnings)


def plan_dropin(
    directory: Path,
    search: SearchPath,
    profile: str,
    settings: Sequence[tuple[str, str]],
    when: float,
    who: str,
) -> DropinPlan:
    """Return the drop-in for ``settings``, refusing to plan over a file tcptune did not write."""
    path = directory / DROPIN_NAME
    previous = read_own_file(path)
    text = render_dropin(profile, settings, when, who)
    return DropinPlan(path, text, previous, boot_warnings(search, path, text))


def install_dropin(plan: DropinPlan) -> None:
    """Write the planned drop-in atomically (temporary file, fsync, rename, fsync directory).

    Only a failure before the rename raises: once renamed, the new file is what
    boot reads, so a failed directory fsync must not make the apply undo its keys.
    """
    plan.path.parent.mkdir(parents=True, exist_ok=True)
    try:
        atomic_write(plan.path, plan.text, stale_after=0)  # under the state lock
    except AtomicWriteError as exc:
        if not exc.replaced:
            raise


def restore_dropin(path: Path, previous: str | None) -> None:
    """Put back what ``path`` held before tcptune wrote it: the old text, or no file."""
    try:
        if previous is None:
            remove_durably(path)
        else:
            atomic_write(path, previous, stale_after=0)
    except AtomicWriteError as exc:
        if not exc.replaced:
            raise
