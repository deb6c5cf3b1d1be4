"""Who holds the wanted sockets, matched in the kernel by the BPF task_file iterator.

The wanted inodes go into a BPF hash map (inode -> position in the sorted
wanted array, filled with one BPF_MAP_UPDATE_BATCH); one pass of the
task_file program looks up every socket descriptor's inode there and writes
a record (position, holder PID) only for a wanted one, so the output and
what Python keeps grow with the wanted sockets' holders, not with every
descriptor. It replaces a readlink per descriptor (inspect/owners.py keeps
that walk as the fallback). Anything that stops it (no privilege, no BTF, no
iterator or helper, a map the kernel will not make or fill, a refused
program, output that is not whole records) becomes OwnersBpfUnavailable with
the user's reason and a --debug detail, never another exception. The seams
are BpfSeams (inspect/bpf/seams.py: BTF file, kernel notes, cache directory,
bpf(2), ``build_owners``).
"""

from __future__ import annotations

import os
from array import array
from dataclasses import replace
from typing import Any, TypeAlias

from tcptune.inspect.bpf import cache, fileiter, loader
from tcptune.inspect.bpf.btf import BtfError, load_btf
from tcptune.inspect.bpf.seams import BpfSeams
from tcptune.inspect.bpf.syscall import BPF_MAP_TYPE_HASH, BpfError, bpf_reason
from tcptune.inspect.procfs import ProcFS, ProcReadError

# (positions in the wanted array, holder PIDs), one pair per record
Columns: TypeAlias = "tuple[memoryview[int], memoryview[int]]"

SOURCE = "bpf task_file"  # the owners source named in the Snapshot and the JSON
PROGRAM_NAME = b"tcptune_owners"
MAP_NAME = b"tcptune_wanted"
# Output bound: this many holders a wanted socket on average (nginx's forked workers
# share a listener), and never less than MIN_RECORDS; beyond it the procfs walk answers.
HOLDERS_PER_SOCKET, MIN_RECORDS = 64, 1 << 16
QUESTION = "task_file matched: sock_from_file, i_ino, tgid, map lookup (2)"  # the cache key
# include/uapi/linux/capability.h
CAP_SYS_ADMIN, CAP_PERFMON, CAP_BPF = 21, 38, 39


class OwnersBpfUnavailable(Exception):
    """The iterator cannot run here: ``reason`` for the user, ``detail`` for --debug."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.detail = detail


def missing_capability(status: str) -> str | None:
    """Return which capability a tracing program lacks, from /proc/self/status, or None.

    bpf_prog_load() (kernel/bpf/syscall.c) wants CAP_BPF for any tracing
    program and CAP_PERFMON for a perfmon type (BPF_PROG_TYPE_TRACING);
    bpf_token_capable() lets CAP_SYS_ADMIN stand in for either.
    """
    line = next((item for item in status.splitlines() if item.startswith("CapEff:")), "")
    try:
        effective = int(line.split()[1], 16)
    except (IndexError, ValueError):
        return None  # unknown: let bpf(2) decide
    if effective >> CAP_SYS_ADMIN & 1:
        return None
    missing = [
        name
        for bit, name in ((CAP_BPF, "CAP_BPF"), (CAP_PERFMON, "CAP_PERFMON"))
        if not effective >> bit & 1
    ]
    return " and ".join(missing) or None


def read_matches(procfs: ProcFS, seams: BpfSeams, wanted: array[int]) -> Columns:
    """Return (position in ``wanted``, holder PID) for every descriptor of a wanted socket.

    ``wanted`` is sorted and distinct (Holders.inodes()). A socket held by
    two processes (a forked child) has two records; one held twice by the
    same process (dup) has two records with the same PID. Records come in
    task order, as the /proc walk visits PIDs.
    """
    try:
        status = procfs.read_text("self/status")
    except ProcReadError:
        status = ""
    lacking = missing_capability(status)
    if lacking:
        raise OwnersBpfUnavailable(f"needs {lacking} (or CAP_SYS_ADMIN)", f"CapEff lacks {lacking}")
    try:
        resolved, cached = cache.cached_layout(
            (seams.btf_path, seams.notes_path, seams.cache_dir),
            lambda: procfs.read_text("sys/kernel/osrelease"),
            QUESTION,
            lambda: fileiter.resolve(load_btf(seams.btf_path)),
            _valid,
            seams.debug,
        )
        seams.debug.append(f"owners: task_file layout {'cached' if cached else 'from BTF'}")
        spec = fileiter.program_spec(resolved)
        data = _run_matched(seams, spec, wanted)
        return fileiter.matches(data, len(wanted))
    except BtfError as exc:
        raise OwnersBpfUnavailable(f"kernel BTF: {exc}", str(exc)) from exc
    except BpfError as exc:
        raise OwnersBpfUnavailable(*bpf_reason(exc)) from exc
    except ValueError as exc:
        raise OwnersBpfUnavailable(f"unexpected iterator output: {exc}", str(exc)) from exc
    except OSError as exc:  # reading the iterator's descriptor failed
        reason = f"reading the task_file iterator: {exc.strerror or exc}"
        raise OwnersBpfUnavailable(reason, str(exc)) from exc


def _run_matched(seams: BpfSeams, spec: fileiter.OwnersProgram, wanted: array[int]) -> bytearray:
    """Make and fill the wanted-inode map, run the program over it once, return its output.

    The map lives as long as the program: its descriptor is closed once the
    program is loaded (the program holds the map), and both go when the
    iteration ends. Batch updates (kernel 5.6) predate both the task_file
    iterator (5.8) and bpf_sock_from_file (5.11), so a kernel that refuses
    one here is an answer for procfs, not a reason to try element by element.
    """
    bpf = seams.bpf()
    keys = wanted if wanted.itemsize == spec.ino_size else array("I", wanted)  # 32-bit i_ino
    size = len(keys)
    map_fd = bpf.map_create(BPF_MAP_TYPE_HASH, spec.ino_size, fileiter.VALUE_SIZE, size, MAP_NAME)
    try:
        bpf.map_update_batch(map_fd, keys, array("I", range(size)))
        code = seams.build_owners(replace(spec, map_fd=map_fd))
        attached = loader.Attached(bpf, code, spec.attach_btf_id, PROGRAM_NAME)
    finally:
        os.close(map_fd)
    try:
        limit = fileiter.RECORD * max(len(wanted) * HOLDERS_PER_SOCKET, MIN_RECORDS)
        return attached.read(limit)
    finally:
        attached.close()


def _valid(resolved: dict[str, Any]) -> bool:
    """Return whether a cached layout has the shape this version builds and decodes."""
    try:
        fileiter.program_spec(resolved)
    except ValueError:
        return False
    return True
