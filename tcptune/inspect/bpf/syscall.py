"""bpf(2) through ctypes: make and fill a map, load a program, create a link and an iterator.

Constants are the stable UAPI of include/uapi/linux/bpf.h (tests compare
them with the running kernel's BTF enums). Errors become BpfError with the
errno and, for a refused program, the verifier's log.
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import struct
from array import array

# __NR_bpf per architecture (arch/*/include/uapi/asm/unistd*.h, the syscall tables)
SYSCALL_NUMBERS = {"x86_64": 321, "aarch64": 280, "riscv64": 280, "ppc64le": 361, "s390x": 351}
# enum bpf_cmd
BPF_MAP_CREATE, BPF_PROG_LOAD, BPF_MAP_UPDATE_BATCH = 0, 5, 26
BPF_LINK_CREATE, BPF_ITER_CREATE = 28, 33
# enum bpf_map_type
BPF_MAP_TYPE_HASH = 1
# enum bpf_prog_type, enum bpf_attach_type
BPF_PROG_TYPE_TRACING = 26
BPF_TRACE_ITER = 28
ATTR_SIZE = 144  # at least every field we set; the kernel checks the rest is zero
LOG_BYTES = 1 << 20
READ_STEP = 1 << 16  # the read buffer grows by this much (bytearray over-allocates on top)
_ZEROS = bytes(READ_STEP)

# union bpf_attr, the BPF_PROG_LOAD member up to attach_btf_obj_fd
_PROG_LOAD = struct.Struct("<IIQQIIQII16sIIIIQIIQIIII")
_LINK_CREATE = struct.Struct("<IIIIQI")  # prog_fd, target_fd, attach_type, flags, iter_info+len
_ITER_CREATE = struct.Struct("<II")  # link_fd, flags
# map_type, key_size, value_size, max_entries, map_flags, inner_map_fd, numa_node, map_name
_MAP_CREATE = struct.Struct("<IIIIIII16s")
# the batch member: in_batch, out_batch, keys, values, count, map_fd, elem_flags, flags
_MAP_BATCH = struct.Struct("<QQQQIIQQ")


class BpfError(Exception):
    """A bpf(2) command failed; ``log`` holds the verifier's output for a refused program."""

    def __init__(self, message: str, error: int, log: str = "") -> None:
        super().__init__(message)
        self.errno = error
        self.log = log

    @property
    def last_log_line(self) -> str:
        """Return the verifier's verdict: the log's last line before its statistics, or ''."""
        lines = [line for line in self.log.splitlines() if line.strip()]
        while lines and lines[-1].startswith(("processed ", "verification time", "stack depth")):
            lines.pop()
        return lines[-1] if lines else ""


def bpf_reason(exc: BpfError) -> tuple[str, str]:
    """Return the user's reason and the --debug detail for a failed bpf(2) command."""
    if exc.errno == errno.EPERM:
        return f"needs CAP_BPF and CAP_PERFMON ({exc})", str(exc)
    if exc.errno == errno.ENOSYS:
        return f"this kernel has no bpf(2) ({exc})", str(exc)
    if exc.log:
        return "the kernel's verifier refused the program", exc.last_log_line
    return str(exc), str(exc)


class Bpf:
    """The bpf(2) system call; an instance per process is enough."""

    def __init__(self, machine: str | None = None) -> None:
        machine = machine or platform.machine()
        if machine not in SYSCALL_NUMBERS:
            raise BpfError(f"bpf(2) number unknown for {machine}", errno.ENOSYS)
        self._number = SYSCALL_NUMBERS[machine]
        self._libc = ctypes.CDLL(None, use_errno=True)
        self._libc.syscall.restype = ctypes.c_long

    def call(self, command: int, attr: bytes, what: str) -> int:
        """Run one bpf(2) command on ``attr``; return the result or raise BpfError."""
        buffer = ctypes.create_string_buffer(attr.ljust(ATTR_SIZE, b"\0"), ATTR_SIZE)
        result = self._libc.syscall(
            ctypes.c_long(self._number),
            ctypes.c_int(command),
            buffer,
            ctypes.c_uint(ATTR_SIZE),
        )
        if result < 0:
            error = ctypes.get_errno()
            raise BpfError(f"{what}: {os.strerror(error)}", error)
        return int(result)

    def prog_load(self, code: bytes, attach_btf_id: int, name: bytes, license_: bytes) -> int:
        """Load a BPF_TRACE_ITER tracing program; on refusal retry once to fetch the log."""
        insns = ctypes.create_string_buffer(code, len(code))
        licence = ctypes.create_string_buffer(license_)
        try:
            return self._prog_load(insns, len(code) // 8, licence, attach_btf_id, name, None)
        except BpfError as exc:
            if exc.errno not in (errno.EACCES, errno.EINVAL):
                raise
            log = ctypes.create_string_buffer(LOG_BYTES)
            try:  # the same load with a log: its last line says why
                return self._prog_load(insns, len(code) // 8, licence, attach_btf_id, name, log)
            except BpfError as again:
                text = log.value.decode("utf-8", "replace")
                raise BpfError(str(again), again.errno, text) from exc

    def _prog_load(
        self,
        insns: ctypes.Array[ctypes.c_char],
        count: int,
        licence: ctypes.Array[ctypes.c_char],
        attach_btf_id: int,
        name: bytes,
        log: ctypes.Array[ctypes.c_char] | None,
    ) -> int:
        attr = _PROG_LOAD.pack(
            BPF_PROG_TYPE_TRACING,
            count,
            ctypes.addressof(insns),
            ctypes.addressof(licence),
            1 if log is not None else 0,  # log_level
            len(log) if log is not None else 0,
            ctypes.addressof(log) if log is not None else 0,
            0,  # kern_version
            0,  # prog_flags
            name[:15],
            0,  # prog_ifindex
            BPF_TRACE_ITER,  # expected_attach_type
            *(0, 0, 0, 0, 0, 0, 0),  # prog BTF, func_info, line_info: none
            attach_btf_id,
            0,  # attach_btf_obj_fd: 0 is vmlinux
            0,
        )
        return self.call(BPF_PROG_LOAD, attr, "BPF_PROG_LOAD")

    def map_create(
        self, map_type: int, key_size: int, value_size: int, max_entries: int, name: bytes
    ) -> int:
        """Create a map (preallocated: map_flags 0) and return its descriptor."""
        attr = _MAP_CREATE.pack(map_type, key_size, value_size, max_entries, 0, 0, 0, name[:15])
        return self.call(BPF_MAP_CREATE, attr, "BPF_MAP_CREATE")

    def map_update_batch(self, map_fd: int, keys: array[int], values: array[int]) -> None:
        """Store keys[i] -> values[i] for every i in one call (generic_map_update_batch).

        The arrays' item sizes must be the map's key and value sizes. A kernel
        without the command, or a map type without it, answers EINVAL or ENOTSUPP.
        """
        if len(keys) != len(values):
            raise ValueError(f"{len(keys)} keys for {len(values)} values")
        attr = _MAP_BATCH.pack(
            0, 0, keys.buffer_info()[0], values.buffer_info()[0], len(keys), map_fd, 0, 0
        )
        self.call(BPF_MAP_UPDATE_BATCH, attr, "BPF_MAP_UPDATE_BATCH")

    def link_create(self, prog_fd: int) -> int:
        """Attach an iterator program to its target (no target-specific iter_info)."""
        attr = _LINK_CREATE.pack(prog_fd, 0, BPF_TRACE_ITER, 0, 0, 0)
        return self.call(BPF_LINK_CREATE, attr, "BPF_LINK_CREATE")

    def iter_create(self, link_fd: int) -> int:
        """Return a readable file descriptor that runs the program once per object."""
        return self.call(BPF_ITER_CREATE, _ITER_CREATE.pack(link_fd, 0), "BPF_ITER_CREATE")


def read_all(fd: int, limit: int) -> bytearray:
    """Read an iterator descriptor to its end, at most ``limit`` bytes, into one buffer.

    Each read lands in the buffer itself (bpf_seq_read hands over at most
    one seq_file buffer a call), so the output is never held twice, as
    chunks and their join.
    """
    buffer = bytearray()
    size = 0
    with open(fd, "rb", buffering=0, closefd=False) as stream:
        while True:
            if size == len(buffer):
                if size > limit:
                    raise BpfError(f"iterator output larger than {limit} bytes", errno.EFBIG)
                buffer += memoryview(_ZEROS)[: min(READ_STEP, limit + 1 - size)]
            got = stream.readinto(memoryview(buffer)[size:])
            if not got:
                del buffer[size:]
                return buffer
            size += got
