"""Parse the kernel's BTF (/sys/kernel/btf/vmlinux) and resolve struct members by name.

The format is include/uapi/linux/btf.h and Documentation/bpf/btf.rst: a
header, a type section of variable-length records (type ids count from 1 in
order), and a string section. Only what a question names is resolved: a
member path such as ``inet_conn.icsk_inet.sk.sk_socket`` becomes an offset
and a size, an enumerator becomes its value, a function its type id. Nothing
here guesses an offset: a missing name raises BtfError naming it.
"""

from __future__ import annotations

import struct
from pathlib import Path

from tcptune.inspect.bpf.seams import VMLINUX_BTF
from tcptune.model.record import record

MAX_BTF_BYTES = 64 << 20  # a vmlinux BTF is ~5 MiB; refuse anything absurd

BTF_MAGIC = 0xEB9F
_HEADER = struct.Struct("<HBBIIIII")  # magic, version, flags, hdr_len, type/str off+len
_TYPE = struct.Struct("<III")  # name_off, info, size_or_type
_MEMBER = struct.Struct("<III")  # name_off, type, offset (bits, or bitfield size<<24|offset)
_ENUM = struct.Struct("<Ii")  # name_off, val
_PARAM = struct.Struct("<II")  # name_off, type

# BTF_KIND_* (include/uapi/linux/btf.h)
INT, PTR, ARRAY, STRUCT, UNION, ENUM, FWD, TYPEDEF = 1, 2, 3, 4, 5, 6, 7, 8
VOLATILE, CONST, RESTRICT, FUNC, FUNC_PROTO, VAR, DATASEC = 9, 10, 11, 12, 13, 14, 15
FLOAT, DECL_TAG, TYPE_TAG, ENUM64 = 16, 17, 18, 19
_MODIFIERS = {TYPEDEF, VOLATILE, CONST, RESTRICT, TYPE_TAG}
_NAMED_KINDS = frozenset({STRUCT, UNION, ENUM, ENUM64, FUNC, TYPEDEF})
# Bytes that follow the common 12-byte record, per kind: fixed, and per vlen item.
_EXTRA = {INT: (4, 0), ARRAY: (12, 0), STRUCT: (0, 12), UNION: (0, 12), ENUM: (0, 8)}
_EXTRA.update({FUNC_PROTO: (0, 8), VAR: (4, 0), DATASEC: (0, 12), DECL_TAG: (4, 0)})
_EXTRA[ENUM64] = (0, 12)


class BtfError(Exception):
    """The BTF is unreadable, malformed, or lacks a name asked for."""


@record
class Field:
    """A member found by name: byte offset from the outer struct, size, and bitfield bits."""

    offset: int
    size: int  # bytes of the member's type (for a bitfield: of the byte range holding it)
    type_id: int
    bit_shift: int = 0  # bitfields only: the value is (loaded >> bit_shift) & (2**bits - 1)
    bits: int = 0  # 0: not a bitfield


class Btf:
    """An index over one BTF blob: record offsets by type id, names on demand."""

    def __init__(self, data: bytes) -> None:
        if len(data) < _HEADER.size:
            raise BtfError("too short for a BTF header")
        magic, _version, _flags, hdr_len, type_off, type_len, str_off, str_len = (
            _HEADER.unpack_from(data)
        )
        if magic != BTF_MAGIC:
            raise BtfError(f"bad magic {magic:#x} (not BTF, or another byte order)")
        self._data = data
        self._types = hdr_len + type_off
        self._strings = hdr_len + str_off
        self._strings_end = self._strings + str_len
        if self._types + type_len > len(data) or self._strings_end > len(data):
            raise BtfError("sections run past the end of the data")
        self._offsets, self._named = self._index(self._types, self._types + type_len)

    def _index(self, start: int, end: int) -> tuple[list[int], dict[tuple[int, int], int]]:
        """Return each type record's byte offset (index = type id; 0 is void) and named types.

        One pass, no string decoded: names are found later by their string
        offset, so indexing ~126k types stays a tight loop (~0.1 s).
        """
        offsets = [0]
        named: dict[tuple[int, int], int] = {}
        append, unpack, extra, data = offsets.append, _TYPE.unpack_from, _EXTRA, self._data
        keep, remember = _NAMED_KINDS, named.setdefault
        position, type_id = start, 0
        while position < end:
            append(position)
            type_id += 1
            name_off, info, _size = unpack(data, position)
            kind = (info >> 24) & 0x1F
            if kind in keep and name_off:
                remember((kind, name_off), type_id)
            fixed, per_item = extra.get(kind, (0, 0))
            position += 12 + fixed + per_item * (info & 0xFFFF)
        if position != end:
            raise BtfError("type section does not end on a record boundary")
        return offsets, named

    def _string_offsets(self, name: str) -> list[int]:
        """Return every offset of ``name`` in the string section (BTF dedups: usually one)."""
        needle = b"\0" + name.encode("ascii") + b"\0"
        found: list[int] = []
        position = self._data.find(needle, self._strings, self._strings_end)
        while position >= 0:
            found.append(position + 1 - self._strings)
            position = self._data.find(needle, position + 1, self._strings_end)
        return found

    def name(self, offset: int) -> str:
        """Return the string at ``offset`` of the string section."""
        start = self._strings + offset
        stop = self._data.find(b"\0", start, self._strings_end)
        if stop < 0:
            raise BtfError(f"unterminated string at {offset}")
        return self._data[start:stop].decode("ascii", "replace")

    def _record(self, type_id: int) -> tuple[int, int, int, int, int]:
        """Return (name_off, kind, vlen, kind_flag, size_or_type) of a type id."""
        if not 0 < type_id < len(self._offsets):
            raise BtfError(f"type id {type_id} out of range")
        name_off, info, size = _TYPE.unpack_from(self._data, self._offsets[type_id])
        return name_off, (info >> 24) & 0x1F, info & 0xFFFF, info >> 31, size

    def find(self, kind: int, name: str) -> int:
        """Return the id of the named type of ``kind`` (the lowest id, as the kernel does)."""
        named = self._named
        ids = [named[(kind, at)] for at in self._string_offsets(name) if (kind, at) in named]
        if not ids:
            raise BtfError(f"no {_KIND_NAMES.get(kind, kind)} {name!r} in BTF")
        return min(ids)

    def resolve(self, type_id: int) -> int:
        """Return ``type_id`` with typedefs and qualifiers peeled off."""
        for _ in range(64):
            _name, kind, _vlen, _flag, target = self._record(type_id)
            if kind not in _MODIFIERS:
                return type_id
            type_id = target
        raise BtfError("typedef chain too long")

    def size(self, type_id: int) -> int:
        """Return the size in bytes of a type (pointers are 8: bpf(2) is 64-bit here)."""
        type_id = self.resolve(type_id)
        _name, kind, _vlen, _flag, size = self._record(type_id)
        if kind == PTR:
            return 8
        if kind == ARRAY:
            element, _index_type, count = struct.unpack_from(
                "<III", self._data, self._offsets[type_id] + 12
            )
            return self.size(element) * int(count)
        if kind in (INT, ENUM, ENUM64, STRUCT, UNION, FLOAT):
            return size
        raise BtfError(f"type id {type_id} ({_KIND_NAMES.get(kind, kind)}) has no size")

    def pointee(self, type_id: int) -> int:
        """Return the struct a pointer type points to (typedefs peeled)."""
        _name, kind, _vlen, _flag, target = self._record(self.resolve(type_id))
        if kind != PTR:
            raise BtfError(f"type id {type_id} is not a pointer")
        return self.resolve(target)

    def member(self, struct_id: int, name: str) -> Field:
        """Return the named member of a struct or union, searching anonymous members as C does."""
        found = self._member(self.resolve(struct_id), name)
        if found is None:
            outer = self.name(self._record(self.resolve(struct_id))[0]) or "(anonymous)"
            raise BtfError(f"no member {name!r} in struct {outer}")
        return found

    def _member(self, struct_id: int, name: str) -> Field | None:
        _name, kind, vlen, kind_flag, _size = self._record(struct_id)
        if kind not in (STRUCT, UNION):
            return None
        base = self._offsets[struct_id] + 12
        for item in range(vlen):
            name_off, member_type, offset = _MEMBER.unpack_from(self._data, base + 12 * item)
            bits, bit_offset = (offset >> 24, offset & 0xFFFFFF) if kind_flag else (0, offset)
            if name_off == 0:  # an anonymous struct or union: its members are ours
                inner = self._member(self.resolve(member_type), name)
                if inner is not None:
                    return _shifted(inner, bit_offset // 8)
                continue
            if self.name(name_off) != name:
                continue
            if bits:  # a bitfield: the bytes that hold it, and where it sits in them
                first = bit_offset // 8
                last = (bit_offset + bits - 1) // 8
                return Field(first, last - first + 1, member_type, bit_offset % 8, bits)
            if bit_offset % 8:
                raise BtfError(f"member {name!r} is not byte-aligned")
            return Field(bit_offset // 8, self.size(member_type), member_type)
        return None

    def array_element(self, type_id: int) -> tuple[int, int] | None:
        """Return (element size, count) if ``type_id`` is an array, else None."""
        type_id = self.resolve(type_id)
        if self._record(type_id)[1] != ARRAY:
            return None
        element, _index, count = struct.unpack_from("<III", self._data, self._offsets[type_id] + 12)
        return self.size(element), count

    def is_signed(self, type_id: int) -> bool:
        """Return whether an integer type is signed (BTF_INT_SIGNED in its encoding)."""
        type_id = self.resolve(type_id)
        if self._record(type_id)[1] != INT:
            return False
        encoding = struct.unpack_from("<I", self._data, self._offsets[type_id] + 12)[0]
        return bool((encoding >> 24) & 0x1)

    def path(self, struct_name: str, dotted: str) -> Field:
        """Return the member ``a.b.c`` of struct ``struct_name``, offsets summed."""
        return self.path_in(self.find(STRUCT, struct_name), dotted)

    def path_in(self, type_id: int, dotted: str) -> Field:
        """Return the member ``a.b.c`` of the struct ``type_id``, offsets summed."""
        offset, field = 0, None
        for part in dotted.split("."):
            field = self.member(type_id, part)
            offset += field.offset
            type_id = field.type_id
        assert field is not None
        return _shifted(field, offset - field.offset)

    def enumerator(self, enum_name: str, name: str) -> int:
        """Return the value of enumerator ``name`` of ``enum enum_name``."""
        type_id = self.find(ENUM, enum_name)
        _name, _kind, vlen, _flag, _size = self._record(type_id)
        base = self._offsets[type_id] + 12
        for item in range(vlen):
            name_off, value = _ENUM.unpack_from(self._data, base + 8 * item)
            if self.name(name_off) == name:
                return int(value)
        raise BtfError(f"no enumerator {name!r} in enum {enum_name}")

    def func_params(self, func_name: str) -> tuple[int, list[str]]:
        """Return a function's type id and its parameter names in order."""
        func_id = self.find(FUNC, func_name)
        proto = self._record(func_id)[4]
        _name, kind, vlen, _flag, _ret = self._record(proto)
        if kind != FUNC_PROTO:
            raise BtfError(f"{func_name} has no prototype")
        base = self._offsets[proto] + 12
        names = [self.name(_PARAM.unpack_from(self._data, base + 8 * i)[0]) for i in range(vlen)]
        return func_id, names


def _shifted(field: Field, by: int) -> Field:
    return Field(field.offset + by, field.size, field.type_id, field.bit_shift, field.bits)


_KIND_NAMES = {STRUCT: "struct", UNION: "union", ENUM: "enum", FUNC: "function"}
_KIND_NAMES.update({TYPEDEF: "typedef", ENUM64: "enum64"})


def context_offset(params: list[str], iterator: str, name: str) -> int:
    """Return where the iterator argument ``name`` sits in a program's context.

    Each argument takes 8 bytes of the context (btf_ctx_access); ``params``
    are the bpf_iter_<target> function's (Btf.func_params).
    """
    if name not in params:
        raise BtfError(f"{iterator} has no argument {name!r}")
    return params.index(name) * 8


def load_btf(path: Path = VMLINUX_BTF) -> Btf:
    """Read and index a BTF file, raising BtfError if it is absent or malformed."""
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_BTF_BYTES + 1)
    except OSError as exc:
        raise BtfError(f"{path}: {exc.strerror or exc}") from exc
    if len(data) > MAX_BTF_BYTES:
        raise BtfError(f"{path}: larger than {MAX_BTF_BYTES >> 20} MiB")
    return Btf(data)
