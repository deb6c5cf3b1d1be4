"""Validate a profile's TOML: schema, fields, sysctl names and each value's bounds.

The text comes from profiles/locate.py, read with a size bound
(MAX_PROFILE_BYTES); this module turns it into a Profile with its own
targets only, or raises BadInputError naming the file and key.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable

from tcptune.exitcodes import BadInputError
from tcptune.inspect.procfs import is_valid_sysctl_name
from tcptune.model.ports import parse_port_list
from tcptune.model.sysctls import KNOWN_SYSCTLS, Unit
from tcptune.model.values import SysctlValue
from tcptune.profiles.model import Profile, ProfileSource, Target

SCHEMA_VERSION = 1
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
BYTE_ORDER_MARK = "\ufeff"  # some editors start a UTF-8 file with it; TOML does not allow it
_TOP_FIELDS = {"schema", "name", "summary", "description", "extends", "references", "sysctl"}
_TARGET_FIELDS = {"value", "min", "max", "why", "risk", "optional", "references"}

MAX_PROFILE_BYTES = 8 << 20  # a profile is a few KiB; this is far above any real one


def read_source(entry: Traversable | Path) -> str:
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
