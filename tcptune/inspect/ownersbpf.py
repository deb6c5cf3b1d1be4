"""Every socket descriptor's inode and holder PID from the BPF task_file iterator.

One pass in the kernel replaces a readlink per descriptor (inspect/owners.py
keeps that walk as the fallback). Anything that stops the iterator (no
privilege, no BTF, no iterator or helper, a refused program, output that is
not whole records) becomes OwnersBpfUnavailable with the user's reason and a
--debug detail, never another exception. The seams are the inventory's
BpfSeams (BTF file, kernel notes, cache directory, bpf(2), builder).
"""

from __future__ import annotations

import threading
from typing import Any, TypeAlias

from tcptune.inspect.bpf import cache, fileiter, loader
from tcptune.inspect.bpf.btf import BtfError, load_btf
from tcptune.inspect.bpf.seams import BpfSeams
from tcptune.inspect.bpf.syscall import BpfError, bpf_reason
from tcptune.inspect.procfs import ProcFS, ProcReadError

# (inodes, holder PIDs), one pair per record
Columns: TypeAlias = "tuple[memoryview[int], memoryview[int]]"

SOURCE = "bpf task_file"  # the owners source named in the Snapshot and the JSON
PROGRAM_NAME = b"tcptune_owners"
MAX_OUTPUT = 1 << 30  # 16 bytes a socket descriptor: 67 million descriptors, a runaway bound
QUESTION = "task_file: socket->file->f_inode->i_ino, task->tgid (1)"  # the cache key's question
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


def read_socket_files(procfs: ProcFS, seams: BpfSeams) -> Columns:
    """Return (inodes, holder PIDs) of every socket descriptor, one pair per record.

    A socket held by two processes (a forked child) has two records; one
    held twice by the same process (dup) has two records with the same PID.
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
        code = seams.build(loader.spec_from_layout(resolved))
        data = loader.run(seams.bpf(), code, resolved["attach_btf_id"], PROGRAM_NAME, MAX_OUTPUT)
        return fileiter.columns(data, resolved)
    except BtfError as exc:
        raise OwnersBpfUnavailable(f"kernel BTF: {exc}", str(exc)) from exc
    except BpfError as exc:
        raise OwnersBpfUnavailable(*bpf_reason(exc)) from exc
    except ValueError as exc:
        raise OwnersBpfUnavailable(f"unexpected iterator output: {exc}", str(exc)) from exc
    except OSError as exc:  # reading the iterator's descriptor failed
        reason = f"reading the task_file iterator: {exc.strerror or exc}"
        raise OwnersBpfUnavailable(reason, str(exc)) from exc


def _valid(resolved: dict[str, Any]) -> bool:
    """Return whether a cached layout has the shape this version builds and decodes."""
    try:
        fileiter.columns(b"", resolved)
        return isinstance(resolved["attach_btf_id"], int)
    except (KeyError, TypeError, ValueError, IndexError):
        return False


class Prefetch:
    """read_socket_files started in a thread, so its kernel walk overlaps the socket dump.

    The iterator runs inside read() with the GIL released, as the dump does;
    ``result()`` waits for it and raises what it raised. A socket accepted
    and then closed by its peer while both run can be missed (reported as
    not matched to a process), as with any walk that is not atomic.
    """

    def __init__(self, procfs: ProcFS, seams: BpfSeams) -> None:
        self._columns: Columns | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(
            target=self._run, args=(procfs, seams), name="task_file prefetch", daemon=True
        )
        self._thread.start()

    def _run(self, procfs: ProcFS, seams: BpfSeams) -> None:
        try:
            self._columns = read_socket_files(procfs, seams)
        except BaseException as exc:  # raised again in the caller's thread
            self._error = exc

    def wait(self) -> None:
        """Wait for the pass to end, whatever it found."""
        self._thread.join()

    def result(self) -> Columns:
        """Return the columns, or raise what the pass raised (OwnersBpfUnavailable)."""
        self._thread.join()
        if self._error is not None:
            raise self._error
        assert self._columns is not None
        return self._columns
