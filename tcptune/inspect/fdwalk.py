"""The /proc/PID/fd walk: each process's socket inodes, inline or ahead in a forked child.

``socket_inodes`` is the one walk, and the one place that says what a
socket descriptor is (a ``socket:[INODE]`` link): the sequential lookup
(inspect/owners.py) matches it as it goes. ``ForkedWalk`` runs the same walk
in a child forked before the socket dump, while the wanted inodes are not
known yet, so the two kernel-bound phases overlap on two cores (a thread
does not: each readlink retakes the GIL the dump's parsing holds). The
child walks from the first process, records every socket descriptor (inode
and PID, 12 bytes each, in walk order) in a memfd and exits; after the dump
the parent walks from the last process down until it meets the child
(``Meeting``), then reads the child's records back, bounded and checked, or
falls back to walking everything itself.
"""

from __future__ import annotations

# not signal: its enum conversions cost ~1 ms at import, on every audit
import _signal  # type: ignore[import-not-found]
import contextlib
import gc
import os
from array import array
from collections.abc import Callable, Iterable, Iterator
from types import TracebackType

from tcptune.inspect.procfs import ProcFS

SOCKET_LINK = "socket:["  # fs/socket.c sockfs_dname(): "socket:[%lu]", the inode number
PID_CODE = "i"  # pid_t is an int (include/uapi/asm-generic/posix_types.h __kernel_pid_t)
INODE_CODE = "Q"  # unsigned long i_ino, 64 bits on every architecture tcptune runs on
HEADER_BYTES = 8  # the record count, little-endian
RECORD_BYTES = array(INODE_CODE).itemsize + array(PID_CODE).itemsize
# fs.nr_open caps one process at 1,048,576 descriptors (fs/file.c sysctl_nr_open);
# the records of 64 times that (768 MiB) are more than any walk writes.
MAX_RECORDS = 1 << 26
WALK_FAILED = 1  # the child's exit status when the walk raised
NOT_OURS = -1  # no status: waitpid found no such child


def process_ids(procfs: ProcFS) -> list[str]:
    """Return the PID entries of ``procfs``, in its directory order (empty if unreadable)."""
    try:
        return [entry for entry in os.listdir(str(procfs.root)) if entry.isdigit()]
    except OSError:
        return []


def socket_inodes(
    procfs: ProcFS, skip: int = 0, pids: Iterable[str] | None = None
) -> Iterator[tuple[int, array[int]]]:
    """Yield (pid, its socket inodes in directory order) for each process under ``procfs``.

    Every process's descriptors are read, whoever owns the process: a socket's
    uid says who created it, not who holds it now (nginx workers hold sockets
    root created). Each readlink goes through a directory descriptor, so it
    resolves one path component instead of four. Processes that exited or
    are not ours to read are left out, as is ``skip`` (a walker's own PID:
    a forked child holds copies of its parent's descriptors). ``pids``: only
    those entries, in that order (default: every process_ids entry).
    """
    proc = str(procfs.root)
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
    readlink, prefix, cut = os.readlink, SOCKET_LINK, len(SOCKET_LINK)
    for pid in process_ids(procfs) if pids is None else pids:
        number = int(pid)
        if number == skip:
            continue
        try:
            fd_dir = os.open(f"{proc}/{pid}/fd", flags)
        except OSError:  # exited, or not ours to read
            continue
        inodes = array(INODE_CODE)
        add = inodes.append
        try:
            names = os.listdir(fd_dir)
            for name in names:
                try:
                    link = readlink(name, dir_fd=fd_dir)
                    if link[:cut] == prefix:
                        add(int(link[cut:-1]))
                except (OSError, ValueError):  # closed meanwhile, or a tree's odd link
                    continue
        except OSError:
            continue  # the process exited between open and listing
        finally:
            os.close(fd_dir)
        if inodes:
            yield number, inodes


class SocketDescriptors:
    """Every socket descriptor a walk met: parallel arrays, in walk order (PID by PID)."""

    def __init__(self, inodes: array[int] | None = None, pids: array[int] | None = None) -> None:
        self.inodes = inodes if inodes is not None else array(INODE_CODE)
        self.pids = pids if pids is not None else array(PID_CODE)


def socket_descriptors(
    procfs: ProcFS, skip: int = 0, pids: Iterable[str] | None = None
) -> SocketDescriptors:
    """Return the walk (``socket_inodes``) as records."""
    found = SocketDescriptors()
    for pid, inodes in socket_inodes(procfs, skip, pids):
        found.inodes.extend(inodes)
        found.pids.extend(array(PID_CODE, (pid,)) * len(inodes))
    return found


class Meeting:
    """Where the child's walk (from the first process) and the parent's (from the last) meet.

    Two 8-byte counters in memory shared across the fork: ``front``, how many
    of ``pids`` the child has taken, and ``back``, the lowest index the
    parent has taken. Each side claims an index before walking it, the child
    only below ``back`` and the parent only from ``front`` on, so every
    process is walked by one side at least (both, at most the one they meet
    on: the parent drops its records of what the child took). Aligned 8-byte
    stores are atomic on the architectures Linux runs CPython on.
    """

    def __init__(self, pids: list[str]) -> None:
        self.pids = pids
        import mmap  # only when a walk goes ahead: not on an idle audit

        self._memory = mmap.mmap(-1, 16)  # MAP_SHARED | MAP_ANONYMOUS: the child writes it too
        self._counters = memoryview(self._memory).cast("q")
        self._counters[0], self._counters[1] = 0, len(pids)

    @property
    def front(self) -> int:
        """Return how many processes, from the first, the child has taken."""
        return self._counters[0]

    def child_takes(self, index: int) -> bool:
        """Claim ``pids[index]`` for the child, unless the parent got there."""
        if index >= self._counters[1]:
            return False
        self._counters[0] = index + 1
        return True

    def parent_takes(self, index: int) -> bool:
        """Claim ``pids[index]`` for the parent, unless the child got there."""
        if index < self._counters[0]:
            return False
        self._counters[1] = index
        return True

    def close(self) -> None:
        """Free the shared memory."""
        self._counters.release()
        self._memory.close()


def write_descriptors(procfs: ProcFS, fd: int, meeting: Meeting) -> None:
    """Walk the processes ``meeting`` gives this child (not itself); write the records to ``fd``.

    The layout ``ForkedWalk.result`` reads: the count (8 bytes, little-endian),
    the inodes, then the PIDs, in this machine's byte order.
    """

    def taken() -> Iterator[str]:  # claimed one by one, as the walk reaches each
        for index, pid in enumerate(meeting.pids):
            if not meeting.child_takes(index):
                return
            yield pid

    write_records(fd, socket_descriptors(procfs, os.getpid(), taken()))


def write_records(fd: int, found: SocketDescriptors) -> None:
    """Write ``found`` to ``fd`` as ``ForkedWalk.result`` reads it (see write_descriptors)."""
    for data in (len(found.inodes).to_bytes(HEADER_BYTES, "little"), found.inodes, found.pids):
        view = memoryview(data).cast("B")
        while view:
            view = view[os.write(fd, view) :]


ChildWalk = Callable[[ProcFS, int, Meeting], None]  # the child's work: walk, write to the fd


class ForkedWalk:
    """The walk in a forked child, started before the socket dump; always closed by its starter.

    The child runs only ``walk`` and leaves with os._exit (no atexit handler,
    no stdio flush, no parent code path). ``result``, after the dump, walks
    from the last process down to where the child got (``Meeting``), waits
    for the child and checks what it wrote; ``close`` kills a child still
    running and reaps it, so no zombie outlives the inspection, whatever the
    parent raised.
    """

    def __init__(self, procfs: ProcFS, pid: int, fd: int, meeting: Meeting) -> None:
        self._procfs, self._pid, self._fd, self._meeting = procfs, pid, fd, meeting
        self._status: int | None = None  # waitpid's status once reaped
        self._found: SocketDescriptors | None = None

    @classmethod
    def start(cls, procfs: ProcFS, walk: ChildWalk = write_descriptors) -> ForkedWalk | None:
        """Fork the walker, or return None when forking is not safe or not possible.

        Only from a process with no other Python thread alive (checked right
        before the fork): a child of a threaded process may inherit a lock
        another thread held, and never get it.
        """
        import threading  # only when a walk may go ahead: not on an idle audit

        if threading.active_count() != 1:
            return None
        try:
            fd = os.memfd_create("tcptune-fdwalk", os.MFD_CLOEXEC)
        except OSError:
            return None
        meeting = Meeting(process_ids(procfs))
        # SIGINT stays blocked across the fork: until the child has dropped
        # Python's handler, a Ctrl-C must not raise KeyboardInterrupt into
        # the parent's code paths there.
        mask = _signal.pthread_sigmask(_signal.SIG_BLOCK, {_signal.SIGINT})
        try:
            pid = os.fork()
            if pid == 0:  # the child: the walk, then out, whatever happens
                status = WALK_FAILED
                try:
                    gc.disable()  # no finalizer of a parent object runs here
                    _signal.signal(_signal.SIGINT, _signal.SIG_DFL)  # Ctrl-C just ends it
                    _signal.pthread_sigmask(_signal.SIG_SETMASK, mask)
                    walk(procfs, fd, meeting)
                    status = 0
                finally:
                    os._exit(status)
            return cls(procfs, pid, fd, meeting)
        except OSError:  # fork failed: no child
            os.close(fd)
            meeting.close()
            return None
        finally:
            _signal.pthread_sigmask(_signal.SIG_SETMASK, mask)

    @property
    def pid(self) -> int:
        """Return the child's PID."""
        return self._pid

    def result(self) -> SocketDescriptors | None:
        """Wait for the child; return its records, or None if it failed (walk inline then).

        A failure is any exit but status 0, a signal, or data whose size is
        not exactly the header's count of records.
        """
        if self._status is None:
            mine = self._walk_back()
            try:
                self._status = os.waitpid(self._pid, 0)[1]
            except ChildProcessError:  # reaped by someone else (SIGCHLD ignored): unknown
                self._status = NOT_OURS
            if self._status != NOT_OURS and os.waitstatus_to_exitcode(self._status) == 0:
                self._found = self._read()
            if self._found is not None:  # then the parent's part, what the child did not take
                front = self._meeting.front  # final: the child has exited
                for index, pid, inodes in reversed(mine):
                    if index >= front:
                        self._found.inodes.extend(inodes)
                        self._found.pids.extend(array(PID_CODE, (pid,)) * len(inodes))
        return self._found

    def _walk_back(self) -> list[tuple[int, int, array[int]]]:
        """Walk from the last process down to the child's; return (index, pid, inodes) of each."""
        pids, mine = self._meeting.pids, []
        for index in range(len(pids) - 1, -1, -1):
            if not self._meeting.parent_takes(index):
                break
            for pid, inodes in socket_inodes(self._procfs, self._pid, (pids[index],)):
                mine.append((index, pid, inodes))
        return mine

    def _read(self) -> SocketDescriptors | None:
        try:
            size = os.fstat(self._fd).st_size
            count = int.from_bytes(os.pread(self._fd, HEADER_BYTES, 0), "little")
            if size < HEADER_BYTES or count > MAX_RECORDS:
                return None
            if size != HEADER_BYTES + count * RECORD_BYTES:
                return None
            inodes = array(INODE_CODE, bytes(count * array(INODE_CODE).itemsize))
            pids = array(PID_CODE, bytes(count * array(PID_CODE).itemsize))
            if count and os.preadv(self._fd, [inodes, pids], HEADER_BYTES) != size - HEADER_BYTES:
                return None
        except OSError:
            return None
        return SocketDescriptors(inodes, pids)

    def close(self) -> None:
        """Kill the child if it still runs, reap it, free the records' memfd (idempotent)."""
        if self._status is None:
            with contextlib.suppress(ProcessLookupError):  # a zombie is still killable: unusual
                os.kill(self._pid, _signal.SIGKILL)
            try:
                self._status = os.waitpid(self._pid, 0)[1]
            except ChildProcessError:
                self._status = NOT_OURS
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
            self._meeting.close()

    def __enter__(self) -> ForkedWalk:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
