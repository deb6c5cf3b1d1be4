"""The socket-holder program for bpf_iter_task_file: wanted inodes matched in the kernel.

The iterator (kernel/bpf/task_iter.c) calls the program once per open file
of every task in tcptune's PID namespace, as /proc lists them; threads that
share their leader's file table are skipped (task_seq_get_next() with
skip_if_dup_files), so a descriptor appears once per process, or once per
thread that unshared its table. bpf_sock_from_file() (net/core/filter.c,
once kernel/trace/bpf_trace.c) turns a socket's file into its struct socket
and answers NULL for any other file, which the program skips. The socket's
inode (socket->file->f_inode->i_ino, the number /proc shows as socket:[N])
is looked up in a hash map of the wanted inodes (key: the inode, value: its
position in the sorted wanted array); only a hit is written, as the record
(position, holder's task->tgid), two u32. Every offset comes from BTF.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tcptune.inspect.bpf import asm
from tcptune.inspect.bpf.asm import R0, R1, R2, R6, R7, R10
from tcptune.inspect.bpf.btf import Btf, BtfError, context_offset
from tcptune.model.record import record

ITERATOR = "bpf_iter_task_file"
HELPER = "BPF_FUNC_sock_from_file"
RECORD = 8  # u32 position in the wanted array, u32 tgid
KEY_SIZES = (4, 8)  # i_ino is an unsigned long
VALUE_SIZE = 4  # the map's value: a u32 position
KEY_SLOT, RECORD_SLOT = -8, -16  # the lookup key and the record on the stack (r10 + slot)


@record
class OwnersProgram:
    """Every offset and helper the program needs (resolved from BTF), and the map it reads."""

    attach_btf_id: int  # the FUNC bpf_iter_task_file
    meta_offset: int  # ctx->meta
    seq_offset: int  # meta->seq
    task_offset: int  # ctx->task
    file_offset: int  # ctx->file
    tgid_offset: int  # task->tgid (4 bytes)
    socket_file: int  # socket->file
    file_inode: int  # file->f_inode
    ino_offset: int  # inode->i_ino
    ino_size: int  # 4 or 8: the map's key size
    sock_from_file: int  # BPF_FUNC_sock_from_file
    map_lookup: int  # BPF_FUNC_map_lookup_elem
    seq_write: int  # BPF_FUNC_seq_write
    map_fd: int = -1  # the wanted-inode map (set when it exists)


def resolve(btf: Btf) -> dict[str, Any]:
    """Return the program's layout (JSON-ready, cacheable); BtfError names what is missing."""
    try:
        attach, params = btf.func_params(ITERATOR)
    except BtfError as exc:
        raise BtfError(f"this kernel has no task_file iterator ({exc})") from exc
    try:
        convert = btf.enumerator("bpf_func_id", HELPER)
    except BtfError as exc:
        raise BtfError(f"this kernel has no bpf_sock_from_file helper ({exc})") from exc
    tgid = btf.path("task_struct", "tgid")
    socket_file = btf.path("socket", "file")
    inode = btf.path_in(btf.pointee(socket_file.type_id), "f_inode")
    ino = btf.path_in(btf.pointee(inode.type_id), "i_ino")
    if tgid.bits or tgid.size != 4:
        raise BtfError(f"tgid is a {tgid.size}-byte member; 4 expected")
    if ino.bits or ino.size not in KEY_SIZES:
        raise BtfError(f"i_ino is a {ino.size}-byte member; 4 or 8 expected")
    return {
        "attach_btf_id": attach,
        "meta_offset": context_offset(params, ITERATOR, "meta"),
        "seq_offset": btf.path("bpf_iter_meta", "seq").offset,
        "task_offset": context_offset(params, ITERATOR, "task"),
        "file_offset": context_offset(params, ITERATOR, "file"),
        "tgid_offset": tgid.offset,
        "socket_file": socket_file.offset,
        "file_inode": inode.offset,
        "ino_offset": ino.offset,
        "ino_size": ino.size,
        "sock_from_file": convert,
        "map_lookup": btf.enumerator("bpf_func_id", "BPF_FUNC_map_lookup_elem"),
        "seq_write": btf.enumerator("bpf_func_id", "BPF_FUNC_seq_write"),
    }


def program_spec(resolved: Mapping[str, Any], map_fd: int = -1) -> OwnersProgram:
    """Return the spec from a resolved (possibly cached) layout; ValueError if it is not one."""
    names = [name for name in OwnersProgram.__dataclass_fields__ if name != "map_fd"]
    try:
        values = {name: resolved[name] for name in names}
    except (KeyError, TypeError) as exc:
        raise ValueError(f"not a task_file layout ({exc!r})") from exc
    if not all(type(value) is int for value in values.values()):
        raise ValueError("a task_file layout field is not an integer")
    spec = OwnersProgram(**values, map_fd=map_fd)
    if spec.ino_size not in KEY_SIZES:
        raise ValueError(f"i_ino of {spec.ino_size} bytes cannot be a map key")
    return spec


class _ToEnd:
    """Placeholder for "if reg == 0: jump to the final return", resolved by ``build``."""

    def __init__(self, reg: int) -> None:
        self.reg = reg


def build(spec: OwnersProgram) -> bytes:
    """Return the program's instructions (``spec.map_fd`` must be the open map)."""
    parts: list[bytes | _ToEnd] = [
        # r6 = ctx; r7 = ctx->meta->seq, the seq_file records are written to
        asm.mov_reg(R6, R1),
        asm.load(8, R7, R6, spec.meta_offset),
        asm.load(8, R7, R7, spec.seq_offset),
        # r1 = ctx->file: NULL on the final call that ends the iteration
        asm.load(8, R1, R6, spec.file_offset),
        _ToEnd(R1),
        # r0 = bpf_sock_from_file(file): NULL for anything but a socket
        asm.call(spec.sock_from_file),
        _ToEnd(R0),
        # key = socket->file->f_inode->i_ino (each load checked against BTF)
        asm.load(8, R1, R0, spec.socket_file),
        asm.load(8, R1, R1, spec.file_inode),
        asm.load(spec.ino_size, R1, R1, spec.ino_offset),
        asm.store(spec.ino_size, R10, KEY_SLOT, R1),
        # r0 = bpf_map_lookup_elem(map, &key): the position, or NULL for an unwanted socket
        asm.load_map_fd(R1, spec.map_fd),
        asm.mov_reg(R2, R10),
        asm.add_imm(R2, KEY_SLOT),
        asm.call(spec.map_lookup),
        _ToEnd(R0),  # the verifier refuses a map value used before this test
        # record.position = *r0
        asm.load(4, R1, R0, 0),
        asm.store(4, R10, RECORD_SLOT, R1),
        # record.tgid = ctx->task->tgid (ctx->task may be NULL: PTR_TO_BTF_ID_OR_NULL)
        asm.load(8, R1, R6, spec.task_offset),
        _ToEnd(R1),
        asm.load(4, R1, R1, spec.tgid_offset),
        asm.store(4, R10, RECORD_SLOT + 4, R1),
        *asm.seq_write(R7, RECORD_SLOT, RECORD, spec.seq_write),  # the 8-byte record
        *asm.return_zero(),
    ]
    slots, at = [], 0  # each part's first instruction slot (ld_imm64 takes two)
    for part in parts:
        slots.append(at)
        at += 1 if isinstance(part, _ToEnd) else len(part) // 8
    end = at - 2  # the final "r0 = 0"
    return asm.program(
        [
            asm.jump_if_zero(part.reg, end - slot - 1) if isinstance(part, _ToEnd) else part
            for part, slot in zip(parts, slots, strict=True)
        ]
    )


def matches(data: bytes | bytearray, wanted: int) -> tuple[memoryview[int], memoryview[int]]:
    """Return the records' positions and holder PIDs as two strided u32 views.

    ValueError for output that is not whole records or names a position
    outside the ``wanted`` array (the program wrote something else).
    """
    if len(data) % RECORD:
        raise ValueError(
            f"{len(data)} bytes of task_file output are not whole {RECORD}-byte records"
        )
    words = memoryview(data).cast("I")
    positions, pids = words[0::2], words[1::2]
    if positions and max(positions) >= wanted:
        raise ValueError(f"a task_file record names position {max(positions)} of {wanted}")
    return positions, pids
