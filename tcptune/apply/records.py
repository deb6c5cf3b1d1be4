"""The undo stack's records (state.json) and the strict validation of what tcptune reads back.

``state.json`` holds every apply not yet rolled back, each with the values it
replaced and the namespace it changed, and ``next_id``, the record counter. It is
read strictly: a value of the wrong type, a sysctl name that is not a dotted name,
a time that is not a finite moment in years 1970-9999 are named with the file and
the record and refused (exit 65). history.py reads its lines with the same checks.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from tcptune.apply.sysctld import DROPIN_NAME, is_tcptune_file
from tcptune.exitcodes import BadInputError
from tcptune.inspect.invoker import Identity
from tcptune.inspect.procfs import is_valid_sysctl_name
from tcptune.model.record import record
from tcptune.model.sysctls import KNOWN_SYSCTLS

STATE_SCHEMA = 1
# 9999-12-31T23:59:59Z, the last second datetime (and so every renderer) can show.
MAX_TIME = 253_402_300_799.0
MAX_ID = 2**53  # ids stay exact in every JSON reader (IEEE 754 doubles); ids are below it
MAX_DIGITS = 20  # a JSON integer longer than this is no id, time or counter tcptune wrote


@record
class Change:
    """One sysctl write: the text it had and the text written."""

    name: str
    before: str
    after: str


@record
class DropinBackup:
    """What a sysctl.d drop-in held before tcptune wrote it (None: there was no file)."""

    path: str
    previous: str | None
    written: str | None = None  # what tcptune wrote there (None in records before it was kept)


@record
class ApplyRecord:
    """An apply on the undo stack, saved before its first write."""

    id: int
    time: float
    profile: str
    netns_inode: int | None
    who: Identity
    changes: tuple[Change, ...]
    dropin: DropinBackup | None
    complete: bool  # False while writing, or if a failed write could not be restored
    # The namespace's stronger identity (netns.NamespaceIdentity); None in older records.
    netns_cookie: int | None = None
    boot_id: str | None = None
    initial_netns: bool | None = None
    # Keys outside the catalogue written with --allow-unlisted; rollback writes no other.
    unlisted: tuple[str, ...] = ()


class Invalid(ValueError):
    """A field of a state or history file that is missing or malformed."""


def field(data: Any, key: str, where: str, default: Any = ...) -> Any:
    if not isinstance(data, dict):
        raise Invalid(f"{where}: expected an object, got {brief(data)}")
    if key not in data:
        if default is ...:
            raise Invalid(f"{where}: {key!r} is missing")
        return default
    return data[key]


def brief(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, float) else repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def as_id(value: Any, where: str, *, optional: bool = False) -> Any:
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_ID:
        raise Invalid(f"{where}: expected a whole number 0..2^53, got {brief(value)}")
    return value


def as_text(value: Any, where: str, *, optional: bool = False) -> Any:
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise Invalid(f"{where}: expected a string, got {brief(value)}")
    return value


def as_flag(value: Any, where: str, *, optional: bool = False) -> Any:
    if value is None and optional:
        return None
    if not isinstance(value, bool):
        raise Invalid(f"{where}: expected true or false, got {brief(value)}")
    return value


def as_time(value: Any, where: str) -> float:
    number_ok = isinstance(value, int | float) and not isinstance(value, bool)
    if not number_ok or not math.isfinite(value) or not 0 <= value <= MAX_TIME:
        raise Invalid(f"{where}: expected seconds since 1970 up to year 9999, got {brief(value)}")
    return float(value)


def as_identity(data: Any, where: str) -> Identity:
    return Identity(
        uid=as_id(field(data, "uid", where), f"{where}.uid"),
        euid=as_id(field(data, "euid", where), f"{where}.euid"),
        user=as_text(field(data, "user", where), f"{where}.user"),
        sudo_user=as_text(
            field(data, "sudo_user", where, None), f"{where}.sudo_user", optional=True
        ),
        net_admin=as_flag(field(data, "net_admin", where, False), f"{where}.net_admin"),
    )


MAX_VALUE_TEXT = 4096  # /proc/sys text handlers take at most a page (kernel/sysctl.c)


def _sysctl_value(value: Any, where: str) -> str:
    """Return sysctl text as tcptune reads and writes it: printable ASCII on one line."""
    text: str = as_text(value, where)
    if len(text) > MAX_VALUE_TEXT or not all(" " <= c <= "~" or c == "\t" for c in text):
        raise Invalid(f"{where}: not sysctl text (printable ASCII, one line): {brief(text)}")
    return text


def as_changes(data: Any, where: str) -> tuple[Change, ...]:
    if not isinstance(data, list):
        raise Invalid(f"{where}: expected a list, got {brief(data)}")
    changes = []
    for index, item in enumerate(data):
        at = f"{where}[{index}]"
        name = as_text(field(item, "name", at), f"{at}.name")
        if not is_valid_sysctl_name(name):
            raise Invalid(f"{at}.name: not a dotted sysctl name: {brief(name)}")
        before = _sysctl_value(field(item, "before", at), f"{at}.before")
        after = _sysctl_value(field(item, "after", at), f"{at}.after")
        changes.append(Change(name, before, after))
    return tuple(changes)


def _names(data: Any, where: str) -> tuple[str, ...]:
    if not isinstance(data, list):
        raise Invalid(f"{where}: expected a list, got {brief(data)}")
    for index, name in enumerate(data):
        if not isinstance(name, str) or not is_valid_sysctl_name(name):
            raise Invalid(f"{where}[{index}]: not a dotted sysctl name: {brief(name)}")
    return tuple(data)


def _dropin(data: Any, where: str) -> DropinBackup | None:
    if data is None:
        return None
    path = as_text(field(data, "path", where), f"{where}.path")
    if Path(path).name != DROPIN_NAME:  # tcptune never writes, restores or removes other files
        raise Invalid(f"{where}.path: not a {DROPIN_NAME} drop-in: {brief(path)}")
    if not path.startswith("/") or ".." in Path(path).parts or not path.isprintable():
        raise Invalid(f"{where}.path: not an absolute path without '..': {brief(path)}")
    previous = as_text(field(data, "previous", where), f"{where}.previous", optional=True)
    written = as_text(field(data, "written", where, None), f"{where}.written", optional=True)
    # tcptune only ever replaces a file carrying its marker, and writes one with it:
    # a record whose saved text lacks it was not written by tcptune.
    for key, text in (("previous", previous), ("written", written)):
        if text is not None and not is_tcptune_file(text):
            raise Invalid(f"{where}.{key}: not a drop-in tcptune wrote (no marker line)")
    return DropinBackup(path, previous, written)


def _record(data: Any, where: str) -> ApplyRecord:
    def get(key: str, default: Any = ...) -> Any:
        return field(data, key, where, default)

    unlisted = _names(get("unlisted", []), f"{where}.unlisted")
    changes = as_changes(get("changes"), f"{where}.changes")
    for index, change in enumerate(changes):
        if change.name not in KNOWN_SYSCTLS and change.name not in unlisted:
            raise Invalid(
                f"{where}.changes[{index}].name: {change.name} is not a key tcptune writes "
                "(not in its catalogue, nor allowed by --allow-unlisted in this record)"
            )
    return ApplyRecord(
        id=as_id(get("id"), f"{where}.id"),
        time=as_time(get("time"), f"{where}.time"),
        profile=as_text(get("profile"), f"{where}.profile"),
        netns_inode=as_id(get("netns_inode", None), f"{where}.netns_inode", optional=True),
        who=as_identity(get("who"), f"{where}.who"),
        changes=changes,
        dropin=_dropin(get("dropin", None), f"{where}.dropin"),
        complete=as_flag(get("complete"), f"{where}.complete"),
        netns_cookie=as_id(get("netns_cookie", None), f"{where}.netns_cookie", optional=True),
        boot_id=as_text(get("boot_id", None), f"{where}.boot_id", optional=True),
        initial_netns=as_flag(get("initial_netns", None), f"{where}.initial_netns", optional=True),
        unlisted=unlisted,
    )


def _no_constants(name: str) -> Any:
    raise Invalid(f"{name} is not a JSON number")


def _whole_number(digits: str) -> int:
    if len(digits.lstrip("-")) > MAX_DIGITS:
        raise Invalid(f"a number with {len(digits.lstrip('-'))} digits is out of range")
    return int(digits)


def parse_json(text: str) -> Any:
    """Parse strict JSON: NaN, Infinity, huge integers and deep nesting are refused."""
    try:
        return json.loads(text, parse_constant=_no_constants, parse_int=_whole_number)
    except RecursionError:
        raise Invalid("nested too deeply to be a file tcptune wrote") from None


def load_state(raw: bytes, path: Path) -> tuple[int, tuple[ApplyRecord, ...]]:
    """Return state.json's id counter and undo stack from its bytes; BadInputError if corrupt."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadInputError(
            f"{path}: corrupt state file: not UTF-8 text (byte {exc.start}); nothing was changed"
        ) from exc
    try:
        data = parse_json(text)
        schema = field(data, "schema", "top level")
        if schema != STATE_SCHEMA:
            raise Invalid(f"schema {brief(schema)}, expected {STATE_SCHEMA}")
        counter = as_id(field(data, "next_id", "top level", 0), "next_id")
        items = field(data, "undo_stack", "top level")
        if not isinstance(items, list):
            raise Invalid(f"undo_stack: expected a list, got {brief(items)}")
        records = tuple(_record(item, f"undo_stack[{i}]") for i, item in enumerate(items))
    except ValueError as exc:  # json.JSONDecodeError names the line and column
        raise BadInputError(f"{path}: corrupt state file: {exc}; nothing was changed") from exc
    ids = [r.id for r in records]
    if len(set(ids)) != len(ids):
        raise BadInputError(
            f"{path}: corrupt state file: an apply id appears twice in "
            f"undo_stack {ids}; nothing was changed"
        )
    return counter, records
