"""The socket-holder program for the bpf_iter_task_file iterator, and decoding its records.

The iterator (kernel/bpf/task_iter.c) calls the program once per open file
of every task in tcptune's PID namespace, as /proc lists them; threads that
share their leader's file table are skipped (task_seq_get_next() with
skip_if_dup_files), so a descriptor appears once per process, or once per
thread that unshared its table. bpf_sock_from_file() (net/core/filter.c,
once kernel/trace/bpf_trace.c) turns a socket's file into its struct socket
and answers NULL for any other file, which the loader skips. Each record is
the socket's inode (socket->file->f_inode->i_ino, the number /proc shows as
socket:[N]) and the holder's process id (task->tgid), every offset from BTF.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tcptune.inspect.bpf import loader
from tcptune.inspect.bpf.btf import Btf, BtfError

ITERATOR = "bpf_iter_task_file"
HELPER = "BPF_FUNC_sock_from_file"
COLUMN_CODES = {4: "I", 8: "Q"}  # memoryview formats of the two columns' widths


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
    for name, field in (("tgid", tgid), ("i_ino", ino)):
        if field.bits or field.size not in COLUMN_CODES:
            raise BtfError(f"{name} is a {field.size}-byte member; 4 or 8 expected")
    reads = [
        {"name": "inode", "from_ctx": False, "pointers": [socket_file.offset, inode.offset]},
        {"name": "tgid", "from_ctx": True, "pointers": [_arg(params, "task")]},
    ]
    reads[0].update(offset=ino.offset, size=ino.size, pieces=1)
    reads[1].update(offset=tgid.offset, size=tgid.size, pieces=1)
    return {
        "attach_btf_id": attach,
        "meta_offset": _arg(params, "meta"),
        "seq_offset": btf.path("bpf_iter_meta", "seq").offset,
        "object_offset": _arg(params, "file"),
        "seq_write": btf.enumerator("bpf_func_id", "BPF_FUNC_seq_write"),
        "convert": convert,
        "clock": None,
        "reads": reads,
    }


def _arg(params: list[str], name: str) -> int:
    """Return the context offset of an iterator argument: each takes 8 bytes (btf_ctx_access)."""
    if name not in params:
        raise BtfError(f"{ITERATOR} has no argument {name!r}")
    return params.index(name) * 8


def columns(data: bytes, resolved: Mapping[str, Any]) -> tuple[memoryview[int], memoryview[int]]:
    """Return the records' inodes and holder PIDs as two strided views (no object per record).

    ValueError for output that is not whole records, or a layout this
    version cannot decode (a damaged cache file).
    """
    spec = loader.spec_from_layout(resolved)
    offsets, size = loader.layout(loader.record_reads(spec))
    if len(data) % size:
        raise ValueError(f"{len(data)} bytes of task_file output are not whole {size}-byte records")
    view = memoryview(data)
    found: dict[str, memoryview[int]] = {}
    for read in spec.reads:
        if read.size not in COLUMN_CODES or offsets[read.name] % read.size or read.pieces != 1:
            raise ValueError(f"task_file record field {read.name!r} cannot be decoded")
        words = view.cast("I") if read.size == 4 else view.cast("Q")
        found[read.name] = words[offsets[read.name] // read.size :: size // read.size]
    if set(found) != {"inode", "tgid"}:
        raise ValueError(f"task_file records hold {sorted(found)}, not inode and tgid")
    return found["inode"], found["tgid"]
