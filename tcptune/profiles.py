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
from tcptune.procfs import is_valid_sysctl_name
from tcptune.snapshot import SysctlValue
from tcptune.sysctls import KNOWN_SYSCTLS, Unit

SCHEMA_VERSION = 1
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
_PORT_LIST = re.compile(r"^(\d+(-\d+)?)(,\d+(-\d+)?)*$")
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

    def satisfied_by(self, current: SysctlValue | None) -> bool:
        """Return whether ``current`` meets this target."""
        if current is None:
            return False
        if self.value is not None:
            return current == self.value
        if not isinstance(current, int):
            return False
        low_ok = self.minimum is None or current >= self.minimum
        high_ok = self.maximum is None or current <= self.maximum
        return low_ok and high_ok

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
        """Return the target as text: '600', '≥ 4096', '≤ 60' or '1024 ≤ x ≤ 65535'."""
        if self.value is not None:
            if isinstance(self.value, tuple):
                return f"{self.value[0]} {self.value[1]}"
            return str(self.value) if self.value != "" else '""'
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


@dataclass(frozen=True)
class ProfileSource:
    """A profile file found by the locator, not yet validated."""

    name: str
    path: str
    text: str


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
        return Path(__file__).resolve().parent.parent / "profiles"


def default_profile_dirs(home: Path | None = None) -> tuple[Path, ...]:
    """Return the user and system profile directories, most specific first."""
    home = home or Path.home()
    return (home / ".config/tcptune/profiles", Path("/etc/tcptune/profiles"))


class ProfileLocator:
    """Find profiles by name in the given directories, then among the shipped ones."""

    def __init__(self, dirs: Sequence[Path], shipped: Traversable | None = None) -> None:
        self.dirs = tuple(dirs)
        self.shipped = shipped if shipped is not None else shipped_profiles()

    def _candidates(self) -> list[tuple[str, Traversable | Path]]:
        found: list[tuple[str, Traversable | Path]] = []
        for directory in self.dirs:
            if directory.is_dir():
                found += [(p.stem, p) for p in sorted(directory.glob("*.toml"))]
        found += sorted(
            (
                (entry.name.removesuffix(".toml"), entry)
                for entry in self.shipped.iterdir()
                if entry.name.endswith(".toml")
            ),
            key=lambda item: item[0],
        )
        return found

    def available(self) -> list[ProfileSource]:
        """Return every findable profile, one per name, the first location winning."""
        seen: dict[str, ProfileSource] = {}
        for name, entry in self._candidates():
            if name not in seen:
                seen[name] = ProfileSource(name, str(entry), _read(entry))
        return list(seen.values())

    def find(self, name_or_path: str) -> ProfileSource:
        """Return the profile named ``name_or_path`` or at that file path."""
        if "/" in name_or_path or name_or_path.endswith(".toml"):
            path = Path(name_or_path)
            if not path.is_file():
                raise UnavailableError(f"no profile file {name_or_path}")
            return ProfileSource(path.stem, str(path), _read(path))
        for name, entry in self._candidates():
            if name == name_or_path:
                return ProfileSource(name, str(entry), _read(entry))
        known = ", ".join(source.name for source in self.available()) or "none"
        raise UnavailableError(f"no profile named {name_or_path!r} (available: {known})")

    def load(self, name_or_path: str) -> Profile:
        """Find, validate and resolve a profile with its ancestors."""
        return resolve(self.find(name_or_path), self)


def _read(entry: Traversable | Path) -> str:
    try:
        return entry.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInputError(f"{entry}: cannot read: {exc}") from exc


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
        if not isinstance(raw, str) or (raw and not _PORT_LIST.match(raw)):
            raise _fail(path, where, f'must be a port list like "8080,9000-9010", got {raw!r}')
        return raw
    if unit is None and isinstance(raw, str):
        return raw
    number = _int(path, where, raw)
    _check_range(path, where, name, number)
    return number


def _target(path: str, profile: str, name: str, table: Any) -> Target:
    where = f'sysctl."{name}"'
    if not is_valid_sysctl_name(name):
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
        data = tomllib.loads(source.text)
    except tomllib.TOMLDecodeError as exc:
        raise _fail(path, "", f"TOML syntax: {exc}") from exc
    unknown = sorted(set(data) - _TOP_FIELDS)
    if unknown:
        raise _fail(
            path, "", f"unknown field {unknown[0]!r} (allowed: {', '.join(sorted(_TOP_FIELDS))})"
        )
    if data.get("schema") != SCHEMA_VERSION:
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
    """Validate ``source`` and its ancestors and merge them, the child winning per key."""
    chain: list[Profile] = [validate(source)]
    while chain[-1].extends is not None:
        parent_name = chain[-1].extends
        if parent_name in (p.name for p in chain):
            cycle = " -> ".join([*(p.name for p in chain), parent_name])
            raise BadInputError(f"{source.path}: extends: inheritance cycle {cycle}")
        try:
            parent_source = locator.find(parent_name)
        except UnavailableError as exc:
            raise BadInputError(
                f"{chain[-1].path}: extends: parent profile {parent_name!r} not found"
            ) from exc
        chain.append(validate(parent_source))
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
