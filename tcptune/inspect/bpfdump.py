"""The audit's socket states and details from one BPF walk instead of three sock_diag dumps.

inspect/bpf/tcpdetails.py's program writes a sock_diag-shaped record per
socket; the iterator's descriptor is read in chunks by a reader thread
(sockdiag.read_ahead, as the netlink dump is read), so the kernel's walk and
the parsing overlap, and each chunk goes to the same DumpParser as a netlink
chunk: memory stays flat and the two sources cannot decide differently.
CLOSE_WAIT ages arrive in jiffies and become tcp_info's milliseconds here.
Anything that stops the walk (no privilege, no BTF, no iterator, a refused
program, a failed read, an HZ that cannot be told) is BpfDumpUnavailable
with the user's reason, never another exception; the caller then dumps
over netlink as it always did.
"""

from __future__ import annotations

import errno
import os
import struct
from collections.abc import Callable
from typing import Any

from tcptune.inspect.bpf import tcpdetails
from tcptune.inspect.bpf.btf import BtfError, load_btf
from tcptune.inspect.bpf.cache import cached_layout
from tcptune.inspect.bpf.loader import Attached
from tcptune.inspect.bpf.seams import BpfSeams
from tcptune.inspect.bpf.syscall import BpfError, bpf_reason
from tcptune.inspect.diagparse import DumpParser, SockDiagError
from tcptune.inspect.ownersbpf import missing_capability
from tcptune.inspect.procfs import ProcFS, ProcReadError
from tcptune.inspect.sockdetails import DetailsBuilder
from tcptune.inspect.sockdiag import read_ahead

PROGRAM_NAME = b"tcptune_dump"
QUESTION = "tcpdetails 2"  # the BTF cache key's question: change it when resolve() changes
MAX_OUTPUT = 1 << 32  # 104 bytes a socket: 41 million sockets, a runaway bound
# A read returns at most the seq_file's buffer (bpf_seq_read: PAGE_SIZE << 3, 32 KiB
# with 4 KiB pages); asked for whole records that fit it, it returns exactly that
# many (it stops once the count reaches the size asked), so one readv() of
# READS_PER_CHUNK such pieces runs that many reads (do_loop_readv_writev) for
# one thread wake-up and one chunk to parse: 635 -> 159 chunks at 200,000 sockets.
SEQ_BUFFER = os.sysconf("SC_PAGE_SIZE") << 3
READS_PER_CHUNK = 4
QUEUED_CHUNKS = 2  # chunks read ahead of the parser: 256 KiB, whatever the socket count
_U32 = struct.Struct("=I")

StateCounts = list[int]  # indexed by the state byte, 0-255 (as sockdiag.dump_counts)
Build = Callable[[dict[str, Any], bool], bytes]  # layout, owner inodes -> program


class BpfDumpUnavailable(Exception):
    """The BPF walk cannot run here: ``reason`` for the user (a note), ``detail`` for --debug."""

    def __init__(self, reason: str, detail: str = "") -> None:
        if detail and detail not in reason:
            reason = f"{reason}: {detail}"
        super().__init__(f"BPF socket walk not used: {reason}")
        self.reason = str(self)
        self.detail = detail


def dump_details(
    procfs: ProcFS,
    seams: BpfSeams,
    details: DetailsBuilder | None,
    build: Build = tcpdetails.build,
) -> tuple[StateCounts, StateCounts]:
    """Return (IPv4, IPv6) counts by state byte from one walk; ``details`` receives the rest.

    ``details`` is a sockdiag.details_builder (raw keys); the CLOSE_WAIT
    inodes are read only when it keeps them (for the owner lookup).
    ``build`` is the seam a test replaces with a program the verifier refuses.
    """
    try:
        status = procfs.read_text("self/status")
    except ProcReadError:
        status = ""
    lacking = missing_capability(status)
    if lacking:  # known before indexing BTF, for a load bpf(2) would refuse
        raise BpfDumpUnavailable(f"needs {lacking} (or CAP_SYS_ADMIN)")
    try:
        resolved, cached = cached_layout(
            (seams.btf_path, seams.notes_path, seams.cache_dir),
            lambda: procfs.read_text("sys/kernel/osrelease"),
            QUESTION,
            lambda: tcpdetails.resolve(load_btf(seams.btf_path)),
            tcpdetails.valid,
            seams.debug,
        )
        owner_inodes = details is not None and details.keep_inodes
        program = build(resolved, owner_inodes)
        attached = Attached(seams.bpf(), program, resolved["attach_btf_id"], PROGRAM_NAME)
    except BtfError as exc:
        raise BpfDumpUnavailable(f"kernel BTF: {exc}") from exc
    except BpfError as exc:
        raise BpfDumpUnavailable(*bpf_reason(exc)) from exc
    except OSError as exc:  # e.g. /proc/sys/kernel/osrelease unreadable
        raise BpfDumpUnavailable(str(exc)) from exc
    seams.debug.append(f"BPF socket walk loaded ({'cached' if cached else 'resolved'} BTF layout)")
    if details is not None:
        details.reset()
    try:
        fd = attached.open_iteration()
        try:
            counts, keepalive_jiffies = read_records(fd, details)
        finally:
            os.close(fd)
    except (BpfError, OSError, SockDiagError) as exc:
        raise BpfDumpUnavailable(f"the iterator failed: {exc}") from exc
    finally:
        attached.close()
    if details is not None and details.close_wait_last_ack:
        hz = _hz(procfs, keepalive_jiffies)
        details.convert_ages(lambda values: tcpdetails.jiffies_to_msecs(values, hz))
    return counts


def read_records(
    fd: int, details: DetailsBuilder | None
) -> tuple[tuple[StateCounts, StateCounts], int]:
    """Parse the iteration's output chunk by chunk; return the counts and a keepalive in jiffies.

    A read returns whole records when the buffer holds the seq_file's (it
    keeps an object that does not fit for the next read); a partial record
    is carried over all the same.
    """
    ipv4, ipv6 = [0] * 256, [0] * 256
    parser = DumpParser(ipv4, ipv6, details, ages_at=tcpdetails.AGES_AT)
    size_of = tcpdetails.RECORD_SIZE
    carry = bytearray()
    total = 0
    keepalive = 0
    piece = max(SEQ_BUFFER // size_of, 1) * size_of

    def read(buffer: bytearray) -> int:
        view = memoryview(buffer)
        return os.readv(fd, [view[start : start + piece] for start in range(0, len(view), piece)])

    chunks = read_ahead(
        [read], lambda _chunk, size: size == 0, piece * READS_PER_CHUNK, QUEUED_CHUNKS
    )
    for _index, chunk, size in chunks:
        total += size
        if total > MAX_OUTPUT:
            raise BpfError(f"iterator output larger than {MAX_OUTPUT} bytes", errno.EFBIG)
        if carry:
            chunk = carry + chunk[:size]
            size = len(chunk)
        whole = size - size % size_of
        carry = chunk[whole:size]
        if whole:
            if not keepalive:
                keepalive = _U32.unpack_from(chunk, tcpdetails.KEEPALIVE_AT)[0]
            parser.feed(chunk, whole)
    if carry:
        raise BpfError(f"{len(carry)} bytes left over: not whole records", errno.EIO)
    return (ipv4, ipv6), keepalive


def _hz(procfs: ProcFS, keepalive_jiffies: int) -> int:
    """Return HZ: the namespace's tcp_keepalive_time in jiffies (the walk's) over seconds."""
    try:
        seconds = int(procfs.read_text("sys/net/ipv4/tcp_keepalive_time").strip())
    except (ProcReadError, ValueError) as exc:
        raise BpfDumpUnavailable(f"cannot tell the kernel's HZ ({exc})") from exc
    hz = tcpdetails.hz_from(keepalive_jiffies, seconds)
    if hz is None:
        raise BpfDumpUnavailable(
            f"cannot tell the kernel's HZ (tcp_keepalive_time {seconds} s, "
            f"{keepalive_jiffies} jiffies)"
        )
    return hz
