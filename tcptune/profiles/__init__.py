"""Find, validate and resolve workload profiles (TOML) before anything uses them.

A profile names sysctl targets, each with the rationale (why) and the risk
shown to users. Search order, first match wins: an explicit file path, then
--profile-dir directories, ~/.config/tcptune/profiles, /etc/tcptune/profiles,
and the profiles shipped in the package. Every directory is passed in.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # importlib.resources costs ~10 ms; load it only when listing
    from importlib.resources.abc import Traversable

from tcptune.exitcodes import BadInputError, UnavailableError
from tcptune.inspect.procfs import is_valid_sysctl_name
from tcptune.model.ports import parse_port_list
from tcptune.model.sysctls import KNOWN_SYSCTLS, SysctlSpec, Unit
from tcptune.model.values import SysctlValue, format_value, meets, spec_for, unit_of

SCHEMA_VERSION = 1
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
BYTE_ORDER_MARK = "\ufeff"  # some editors start a UTF-8 file with it; TOML does not allow it
_TOP_FIELDS = {"schema", "name", "summary", "description", "extends", "references", "sysctl"}
_TARGET_FIELDS = {"value", "min", "max", "why", "risk", "optional", "references"}


@dataclass(frozen=True)
class Target:
    """What a profile wants for one sysctl: an exact value or a bound, and why."""

    name: str
    value: SysctlValue | None
    minimum: int | None
    maximum: int | None
    why: str
    risk: str
    optional: bool
    references: tuple[str, ...]
    defined_in: str  # the profile that set it (inheritance)

    @property
    def unit(self) -> Unit:
        """Return the unit the value is read and compared in (model/values.py)."""
        return unit_of(self.name, self.value)

    def satisfied_by(self, current: SysctlValue | None) -> bool:
        """Return whether ``current`` meets this target (the one rule: values.meets)."""
        return meets(self.unit, current, self.value, self.minimum, self.maximum)

    def desired(self, current: SysctlValue | None) -> SysctlValue:
        """Return the value to write: the exact value, or the bound ``current`` misses."""
        if self.value is not None:
            return self.value
        if isinstance(current, int) and self.satisfied_by(current):
            return current
        if self.minimum is not None and (not isinstance(current, int) or current < self.minimum):
            return self.minimum
        assert self.maximum is not None
        return self.maximum

    def describe(self) -> str:
        """Return the target as text: '600', '32768 60999', '>= 4096', '<= 60' or '1024..65535'."""
        if self.value is not None:
            return format_value(self.value) if self.value != "" else '""'
        if self.minimum is not None and self.maximum is not None:
            return f"{self.minimum}..{self.maximum}"
        return f">= {self.minimum}" if self.minimum is not None else f"<= {self.maximum}"


@dataclass(frozen=True)
class Profile:
    """A validated profile with inheritance resolved."""

    name: str
    summary: str
    description: str
    extends: str | None
    references: tuple[str, ...]
    targets: Mapping[str, Target]
    path: str
    chain: tuple[str, ...]  # this profile, then its ancestors

    def specs_outside_catalogue(self) -> tuple[SysctlSpec, ...]:
        """Return how to read the keys this profile sets that the catalogue does not know."""
        return tuple(
            spec_for(name, target.value)
            for name, target in self.targets.items()
            if name not in KNOWN_SYSCTLS
        )


@dataclass(frozen=True)
class ProfileSource:
    """A profile file found by the locator, not yet validated."""

    name: str
    path: str
    text: str
    position: int | None = None  # index in the locator's search order; None: given as a path


@dataclass(frozen=True)
class BrokenProfile:
    """A findable profile that cannot be used: unreadable, invalid, or a bad ancestor."""

    name: str
    path: str
    reason: str  # the error, naming the file and key


def shipped_profiles() -> Traversable:
    """Return the directory of profiles shipped with tcptune.

    An installed wheel carries them as the data package tcptune.bundled_profiles
    (pyproject.toml maps it to the top-level profiles/); a source checkout,
    including an editable install run from the checkout, reads profiles/ itself.
    """
    from importlib.resources import files

    try:
        return files("tcptune.bundled_profiles")
    except ModuleNotFoundError:
        return Path(__file__).resolve().parents[2] / "profiles"


def default_profile_dirs(home: Path | None = None) -> tuple[Path, ...]:
    """Return the user and system profile directories, most specific first."""
    home = home or Path.home()
    return (home / ".config/tcptune/profiles", Path("/etc/tcptune/profiles"))


class ProfileLocator:
    """Find profiles by name in the given directories, then among the shipped ones.

    The directories are listed once per locator, and each file is read and
    validated at most once: resolving long ``extends`` chains for every
    profile would otherwise list and parse every directory per ancestor.
    """

    def __init__(self, dirs: Sequence[Path], shipped: Traversable | None = None) -> None:
        self.dirs = tuple(dirs)
        self.shipped = shipped if shipped is not None else shipped_profiles()
        self._listing: tuple[tuple[str, Traversable | Path], ...] | None = None
        self._positions: dict[str, list[int]] = {}  # name -> where it is, in search order
        self._sources: dict[int, ProfileSource] = {}
        self._validated: dict[str, Profile] = {}
        self.notes: list[str] = []  # directories skipped, e.g. an unreadable ~/.config

    def _candidates(self) -> tuple[tuple[str, Traversable | Path], ...]:
        """Return (name, file) for every profile file in search order, listing once."""
        if self._listing is None:
            found: list[tuple[str, Traversable | Path]] = []
            for directory in self.dirs:
                found += [(p.stem, p) for p in _listed(directory, self.notes)]
            found += sorted(
                (
                    (entry.name.removesuffix(".toml"), entry)
                    for entry in self.shipped.iterdir()
                    if entry.name.endswith(".toml")
                ),
                key=lambda item: item[0],
            )
            self._listing = tuple(found)
            for position, (name, _entry) in enumerate(found):
                self._positions.setdefault(name, []).append(position)
        return self._listing

    def _first_positions(self) -> list[int]:
        """Return the position of the first file of each name: the one a name finds."""
        self._candidates()
        return [positions[0] for positions in self._positions.values()]

    def _source_at(self, position: int) -> ProfileSource:
        source = self._sources.get(position)
        if source is None:
            name, entry = self._candidates()[position]
            source = ProfileSource(name, str(entry), _read(entry), position)
            self._sources[position] = source
        return source

    def available(self) -> list[ProfileSource]:
        """Return every findable profile, one per name, the first location winning."""
        return [self._source_at(position) for position in self._first_positions()]

    def catalogue(self) -> list[Profile | BrokenProfile]:
        """Return every findable profile resolved, or why it cannot be used; one per name."""
        entries: list[Profile | BrokenProfile] = []
        for position in self._first_positions():
            name, entry = self._candidates()[position]
            try:
                entries.append(resolve(self._source_at(position), self))
            except BadInputError as exc:
                entries.append(BrokenProfile(name, str(entry), str(exc)))
        return entries

    def find(self, name_or_path: str, after: ProfileSource | None = None) -> ProfileSource:
        """Return the profile named ``name_or_path`` or at that file path.

        With ``after``, search only the locations after that profile's own: a
        profile that overrides another of the same name can extend it.
        """
        if "/" in name_or_path or name_or_path.endswith(".toml"):
            path = Path(name_or_path)
            if path.is_dir():
                raise UnavailableError(f"{name_or_path} is a directory, not a profile file")
            if not path.is_file():
                raise UnavailableError(f"no profile file {name_or_path}")
            return ProfileSource(path.stem, str(path), _read(path))
        self._candidates()
        start = 0 if after is None else self._position_of(after) + 1
        for position in self._positions.get(name_or_path, []):
            if position >= start:
                return self._source_at(position)
        where = "" if after is None else f" after {after.path}"
        known = ", ".join(self._positions) or "none"
        raise UnavailableError(f"no profile named {name_or_path!r}{where} (available: {known})")

    def _position_of(self, source: ProfileSource) -> int:
        """Return where ``source`` sits in the search order; -1 for a file outside it."""
        if source.position is not None:
            return source.position
        wanted = _identity(source.path)
        for position, (_name, entry) in enumerate(self._candidates()):
            if _identity(str(entry)) == wanted:
                return position
        return -1

    def identity(self, source: ProfileSource) -> str:
        """Return a key that is the same for two sources exactly when they are one file."""
        position = self._position_of(source)
        return f"#{position}" if position >= 0 else _identity(source.path)

    def validate(self, source: ProfileSource) -> Profile:
        """Return :func:`validate` of ``source``, validating each file once."""
        profile = self._validated.get(source.path)
        if profile is None:
            profile = self._validated[source.path] = validate(source)
        return profile

    def load(self, name_or_path: str) -> Profile:
        """Find, validate and resolve a profile with its ancestors."""
        return resolve(self.find(name_or_path), self)


def _identity(path: str) -> str:
    """Return ``path`` with symlinks resolved, to tell whether two paths are one file."""
    import os

    return os.path.realpath(path)


def _listed(directory: Path, notes: list[str]) -> list[Path]:
    """Return the *.toml files of ``directory``; skip (with a note) one that cannot be listed."""
    try:
        if not directory.is_dir():
            return []
        return sorted(directory.glob("*.toml"))
    except OSError as exc:
        from tcptune.inspect.procfs import describe_os_error

        notes.append(f"skipped profile directory {directory}: {describe_os_error(exc)}")
        return []


MAX_PROFILE_BYTES = 8 << 20  # a profile is a few KiB; this is far above any real one


def _read(entry: Traversable | Path) -> str:
    from tcptune.inspect.procfs import describe_os_error, read_bounded

    try:
        if isinstance(entry, Path):  # a FIFO never hangs, /dev/zero is refused
            return read_bounded(entry, MAX_PROFILE_BYTES).decode("utf-8")
        return entry.read_text(encoding="utf-8")
    except OSError as exc:
        raise BadInputError(f"{entry}: cannot read: {describe_os_error(exc)}") from exc
    except UnicodeDecodeError as exc:
        raise BadInputError(f"{entry}: cannot read: not UTF-8 text (byte {exc.start})") from exc


def _fail(path: str, where: str, problem: str) -> BadInputError:
    return BadInputError(f"{path}: {where}: {problem}" if where else f"{path}: {problem}")


def _strings(path: str, where: str, value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise _fail(path, where, "must be a list of strings")
    return tuple(value)


def _int(path: str, where: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail(path, where, f"must be an integer, got {value!r}")
    return value


def _check_range(path: str, where: str, name: str, number: int) -> None:
    spec = KNOWN_SYSCTLS.get(name)
    if spec is None:
        return
    if spec.minimum is not None and number < spec.minimum:
        raise _fail(path, where, f"{number} is below the kernel's minimum {spec.minimum}")
    if spec.maximum is not None and number > spec.maximum:
        raise _fail(path, where, f"{number} is above the kernel's maximum {spec.maximum}")


def _sysctl_text(path: str, where: str, raw: str) -> str:
    """Return ``raw`` if it is printable ASCII, as the kernel's sysctl text interface reads.

    A newline would also end the line in the sysctl.d drop-in written with
    --persist, and let the rest of the value set another key at boot.
    """
    for character in raw:
        if not " " <= character <= "~":
            raise _fail(
                path,
                where,
                "must be printable ASCII text (sysctl values are ASCII; no newlines, tabs or "
                f"control characters), found {character!r}",
            )
    return raw


def _port_list(path: str, where: str, raw: Any) -> str:
    """Return ``raw`` if it is a port list the kernel takes, exactly as written (no blanks)."""
    wanted = 'must be a port list like "8080,9000-9010"'
    if not isinstance(raw, str) or raw != raw.strip():
        raise _fail(path, where, f"{wanted}, got {raw!r}")
    try:
        parse_port_list(raw)  # refuses ports above 65535 and ranges written high-low
    except ValueError as exc:
        raise _fail(path, where, f"{wanted}: {exc}") from exc
    return raw


def _value(path: str, where: str, name: str, raw: Any) -> SysctlValue:
    spec = KNOWN_SYSCTLS.get(name)
    unit = spec.unit if spec else None
    if unit is Unit.PORT_RANGE:
        if not isinstance(raw, list) or len(raw) != 2:
            raise _fail(path, where, f"must be [low, high], got {raw!r}")
        low, high = (_int(path, where, item) for item in raw)
        for port in (low, high):
            _check_range(path, where, name, port)
        if low > high:
            raise _fail(path, where, f"low port {low} is above high port {high}")
        return (low, high)
    if unit is Unit.PORT_LIST:
        return _port_list(path, where, raw)
    if unit in (None, Unit.TEXT) and isinstance(raw, str):
        return _sysctl_text(path, where, raw)
    number = _int(path, where, raw)
    _check_range(path, where, name, number)
    return number


def _target(path: str, profile: str, name: str, table: Any) -> Target:
    where = f'sysctl."{name}"'
    # is_valid_sysctl_name's "$" also matches before a final newline, which would
    # end the key's line in the sysctl.d drop-in: refuse any line break here.
    if "\n" in name or not is_valid_sysctl_name(name):
        raise _fail(path, where, "not a well-formed dotted sysctl name")
    if not isinstance(table, dict):
        raise _fail(path, where, "must be a table")
    unknown = sorted(set(table) - _TARGET_FIELDS)
    if unknown:
        raise _fail(
            path,
            where,
            f"unknown field {unknown[0]!r} (allowed: {', '.join(sorted(_TARGET_FIELDS))})",
        )
    has_value = "value" in table
    has_bound = "min" in table or "max" in table
    if has_value == has_bound:
        raise _fail(path, where, "needs either value, or min and/or max")
    value = _value(path, f"{where}.value", name, table["value"]) if has_value else None
    bounds: dict[str, int | None] = {}
    for key in ("min", "max"):
        bounds[key] = None
        if key in table:
            spec = KNOWN_SYSCTLS.get(name)
            if spec and spec.unit in (Unit.PORT_RANGE, Unit.PORT_LIST):
                raise _fail(path, f"{where}.{key}", "bounds only apply to numeric settings")
            bounds[key] = _int(path, f"{where}.{key}", table[key])
            _check_range(path, f"{where}.{key}", name, bounds[key] or 0)
    if bounds["min"] is not None and bounds["max"] is not None and bounds["min"] > bounds["max"]:
        raise _fail(path, where, f"min {bounds['min']} is above max {bounds['max']}")
    texts: dict[str, str] = {}
    for key in ("why", "risk"):
        text = table.get(key)
        if not isinstance(text, str) or not text.strip():
            raise _fail(path, f"{where}.{key}", "is required: say it for the user")
        texts[key] = " ".join(text.split())
    optional = table.get("optional", False)
    if not isinstance(optional, bool):
        raise _fail(path, f"{where}.optional", "must be true or false")
    return Target(
        name=name,
        value=value,
        minimum=bounds["min"],
        maximum=bounds["max"],
        why=texts["why"],
        risk=texts["risk"],
        optional=optional,
        references=_strings(path, f"{where}.references", table.get("references", [])),
        defined_in=profile,
    )


def validate(source: ProfileSource) -> Profile:
    """Return the profile in ``source`` with its own targets, or raise BadInputError."""
    path = source.path
    try:
        data = tomllib.loads(source.text.removeprefix(BYTE_ORDER_MARK))
    except tomllib.TOMLDecodeError as exc:
        raise _fail(path, "", f"TOML syntax: {exc}") from exc
    except RecursionError:
        raise _fail(path, "", "nested too deeply to be a profile") from None
    except ValueError:  # int(): "Exceeds the limit (4300 digits) for integer string conversion"
        raise _fail(path, "", "a number has far more digits than any sysctl value") from None
    unknown = sorted(set(data) - _TOP_FIELDS)
    if unknown:
        raise _fail(
            path, "", f"unknown field {unknown[0]!r} (allowed: {', '.join(sorted(_TOP_FIELDS))})"
        )
    schema = data.get("schema")
    if type(schema) is not int or schema != SCHEMA_VERSION:  # true == 1 == 1.0 in Python
        raise _fail(path, "schema", f"must be {SCHEMA_VERSION}, got {data.get('schema')!r}")
    name = data.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise _fail(path, "name", f"must be lowercase letters, digits, - or _; got {name!r}")
    if name != source.name:
        raise _fail(path, "name", f"{name!r} does not match the file name {source.name!r}")
    for key in ("summary", "description"):
        if not isinstance(data.get(key), str) or not data[key].strip():
            raise _fail(path, key, "is required and must be text")
    extends = data.get("extends")
    if extends is not None and (not isinstance(extends, str) or not _NAME.match(extends)):
        raise _fail(path, "extends", f"must be a profile name, got {extends!r}")
    tables = data.get("sysctl", {})
    if not isinstance(tables, dict):
        raise _fail(path, "sysctl", "must be a table of sysctl names")
    targets = {key: _target(path, name, key, table) for key, table in tables.items()}
    return Profile(
        name=name,
        summary=" ".join(data["summary"].split()),
        description=data["description"].strip(),
        extends=extends,
        references=_strings(path, "references", data.get("references", [])),
        targets=targets,
        path=path,
        chain=(name,),
    )


def resolve(source: ProfileSource, locator: ProfileLocator) -> Profile:
    """Validate ``source`` and its ancestors and merge them, the child winning per key.

    A parent with the child's own name is searched for only in the locations
    after the child's (a user profile overriding a shipped one and extending
    it); any other parent is found as a name is. A file met twice is a cycle.
    """
    sources = [source]
    chain: list[Profile] = [locator.validate(source)]
    seen = {locator.identity(source)}
    while chain[-1].extends is not None:
        parent_name, child = chain[-1].extends, sources[-1]
        same_name = parent_name == child.name
        try:
            parent_source = locator.find(parent_name, after=child if same_name else None)
        except UnavailableError as exc:
            later = " in a location after this one" if same_name else ""
            raise BadInputError(
                f"{child.path}: extends: parent profile {parent_name!r} not found{later}"
            ) from exc
        parent_key = locator.identity(parent_source)
        if parent_key in seen:
            cycle = " -> ".join([*(p.name for p in chain), parent_name])
            raise BadInputError(f"{source.path}: extends: inheritance cycle {cycle}")
        seen.add(parent_key)
        sources.append(parent_source)
        chain.append(locator.validate(parent_source))
    targets: dict[str, Target] = {}
    for profile in reversed(chain):
        targets.update(profile.targets)
    head = chain[0]
    return Profile(
        name=head.name,
        summary=head.summary,
        description=head.description,
        extends=head.extends,
        references=head.references,
        targets=targets,
        path=head.path,
        chain=tuple(p.name for p in chain),
    )
