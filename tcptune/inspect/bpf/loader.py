"""A generic BPF iterator: build a record-copying program, load it, read its output.

The record-copying shape serves any iterator target (tcp for the socket
options; task_file's owners program matches in a map and has its own
builder in fileiter.py, but loads and reads through ``Attached``): take the
object from the context, optionally convert it with a helper
(bpf_skc_to_tcp_sock), copy a few fields into a fixed-size record on the
stack with plain loads (the verifier checks each against BTF), and append
the record to the seq_file with bpf_seq_write. A pointer read from the
context is checked for NULL first: iterators register theirs as
PTR_TO_BTF_ID_OR_NULL (task_iter.c ctx_arg_info).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from tcptune.inspect.bpf import asm
from tcptune.inspect.bpf.asm import R0, R1, R2, R6, R7, R8, R10
from tcptune.inspect.bpf.syscall import Bpf, read_all
from tcptune.model.record import record

LICENSE = b"GPL"  # bpf_seq_write and the BTF-typed loads are GPL-only
MAX_STACK = 512  # the verifier's stack limit per frame


@record
class Read:
    """One value copied into the record: follow ``pointers`` from the base, then load."""

    name: str
    from_ctx: bool  # base: the context (True) or the iterated object (False)
    pointers: tuple[int, ...]  # offsets of 8-byte pointers dereferenced on the way
    offset: int  # offset of the value in the last struct
    size: int  # 1, 2, 4 or 8 bytes per load
    pieces: int = 1  # an array: this many consecutive loads of ``size``


@record
class IterProgram:
    """Everything the builder needs, all resolved from BTF by name beforehand."""

    attach_btf_id: int  # the FUNC bpf_iter_<target>
    meta_offset: int  # ctx->meta
    seq_offset: int  # meta->seq
    object_offset: int  # ctx-><object>
    seq_write: int  # BPF_FUNC_seq_write
    convert: int | None  # a helper turning the object into the type the reads expect
    reads: tuple[Read, ...]
    clock: int | None = None  # a helper whose result is stored as "now" (e.g. bpf_jiffies64)


CLOCK = "now"  # the record field the clock helper's result goes to


def record_reads(spec: IterProgram) -> tuple[Read, ...]:
    """Return the reads plus the clock's 8-byte slot: every field the record holds."""
    if spec.clock is None:
        return spec.reads
    return (*spec.reads, Read(CLOCK, True, (), 0, 8))


def layout(reads: Sequence[Read]) -> tuple[dict[str, int], int]:
    """Return each read's offset in the record (largest first, so all are aligned) and its size."""
    offsets: dict[str, int] = {}
    position = 0
    for read in sorted(reads, key=lambda item: -item.size):
        offsets[read.name] = position
        position += read.size * read.pieces
    size = (position + 7) // 8 * 8
    if size > MAX_STACK:
        raise ValueError(f"record of {size} bytes exceeds the BPF stack")
    return offsets, size


_OUT = b"OUT"  # placeholder (4 bytes, never an 8-byte instruction): jump to the end


def build(spec: IterProgram) -> bytes:
    """Return the program's instructions."""
    offsets, size = layout(record_reads(spec))
    record = -size  # the record sits at the top of the stack: r10 - size
    code: list[bytes] = [
        # r6 = ctx; r7 = ctx->meta->seq, the seq_file the record is written to
        asm.mov_reg(R6, R1),
        asm.load(8, R7, R6, spec.meta_offset),
        asm.load(8, R7, R7, spec.seq_offset),
        # r8 = the object; NULL on the final call that ends the iteration
        asm.load(8, R8, R6, spec.object_offset),
        _OUT + bytes([R8]),
    ]
    if spec.convert is not None:
        # r8 = convert(r8), skipping objects it refuses (NULL)
        code += [asm.mov_reg(R1, R8), asm.call(spec.convert), _OUT + bytes([R0])]
        code += [asm.mov_reg(R8, R0)]
    if spec.clock is not None:
        # record.now = clock()
        code += [asm.call(spec.clock), asm.store(8, R10, record + offsets[CLOCK], R0)]
    for read in spec.reads:
        # r1 = the value: walk the pointers (each load checked against BTF), then load
        base = R6 if read.from_ctx else R8
        for hop, pointer in enumerate(read.pointers):
            code.append(asm.load(8, R1, base, pointer))
            if read.from_ctx and not hop:
                code.append(_OUT + bytes([R1]))  # a context pointer may be NULL: skip
            base = R1
        for piece in range(read.pieces):
            step = piece * read.size
            code.append(asm.load(read.size, R2, base, read.offset + step))
            # record[name] = r2
            code.append(asm.store(read.size, R10, record + offsets[read.name] + step, R2))
    code += [*asm.seq_write(R7, record, size, spec.seq_write), *asm.return_zero()]
    out = len(code) - 2
    return asm.program(
        [
            asm.jump_if_zero(part[3], out - index - 1) if len(part) == len(_OUT) + 1 else part
            for index, part in enumerate(code)
        ]
    )


def spec_from_layout(resolved: Mapping[str, Any]) -> IterProgram:
    """Return the spec from a resolved (possibly cached, JSON-shaped) layout (KeyError: not one)."""
    reads = tuple(
        Read(r["name"], r["from_ctx"], tuple(r["pointers"]), r["offset"], r["size"], r["pieces"])
        for r in resolved["reads"]
    )
    return IterProgram(
        resolved["attach_btf_id"],
        resolved["meta_offset"],
        resolved["seq_offset"],
        resolved["object_offset"],
        resolved["seq_write"],
        resolved["convert"],
        reads,
        resolved["clock"],
    )


class Attached:
    """A program loaded and attached once; each ``read`` runs a new iteration of it.

    Loading (verification) and attaching happen once, so a refresh costs one
    BPF_ITER_CREATE and the reads of its output.
    """

    def __init__(self, bpf: Bpf, code: bytes, attach_btf_id: int, name: bytes) -> None:
        self._bpf = bpf
        self._prog = bpf.prog_load(code, attach_btf_id, name, LICENSE)
        try:
            self._link: int | None = bpf.link_create(self._prog)
        except BaseException:
            os.close(self._prog)
            raise

    def open_iteration(self) -> int:
        """Return a new iteration's descriptor, to read in chunks and close (the caller's)."""
        if self._link is None:
            raise ValueError("the iterator program was closed")
        return self._bpf.iter_create(self._link)

    def read(self, limit: int) -> bytearray:
        """Return everything one iteration writes, at most ``limit`` bytes."""
        iterator = self.open_iteration()
        try:
            return read_all(iterator, limit)
        finally:
            os.close(iterator)

    def close(self) -> None:
        """Detach and unload the program (idempotent)."""
        if self._link is not None:
            os.close(self._link)
            os.close(self._prog)
            self._link = None


def run(bpf: Bpf, code: bytes, attach_btf_id: int, name: bytes, limit: int) -> bytearray:
    """Load ``code``, attach it, and return everything one iteration writes."""
    attached = Attached(bpf, code, attach_btf_id, name)
    try:
        return attached.read(limit)
    finally:
        attached.close()
