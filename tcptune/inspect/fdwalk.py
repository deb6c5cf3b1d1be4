"""The /proc/PID/fd walk: every socket descriptor's (pid, inode), inline or ahead in a thread.

``socket_descriptors`` is the one walk (a readlink per descriptor through a
directory descriptor; vanished processes and descriptors skipped): the
sequential lookup runs it inline (inspect/owners.py), and
``WalkAhead`` runs it in a thread during the socket dump, before the wanted
inodes are known. Either way it records every socket descriptor compactly
(parallel arrays, 12 bytes a descriptor, in walk order), matched to the
wanted inodes afterwards by the one ``owners.fill_holders``.
"""

from __future__ import annotations

import os
import threading
from array import array

from tcptune.inspect.procfs import ProcFS

PID_CODE = "i"  # pid_t is an int (include/uapi/asm-generic/posix_types.h __kernel_pid_t)
THREAD_NAME = "tcptune descriptor walk"


class SocketDescriptors:
    """Every socket descriptor the walk met: parallel arrays, in walk order (PID by PID)."""

    def __init__(self) -> None:
        self.inodes = array("Q")
        self.pids = array(PID_CODE)


def socket_descriptors(
    procfs: ProcFS, stop: threading.Event | None = None, into: SocketDescriptors | None = None
) -> SocketDescriptors:
    """Return (pid, socket inode) of every socket descriptor under ``procfs``, PID by PID.

    Every process's descriptors are read, whoever owns the process: a socket's
    uid says who created it, not who holds it now (nginx workers hold sockets
    root created). Each readlink goes through a directory descriptor, so it
    resolves one path component instead of four. A set ``stop`` ends the walk
    at the next process; ``into`` is filled instead of a new record set.
    """
    found = into if into is not None else SocketDescriptors()
    proc = str(procfs.root)
    try:
        pids = [entry for entry in os.listdir(proc) if entry.isdigit()]
    except OSError:
        return found
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
    readlink, add_inode, add_pid = os.readlink, found.inodes.append, found.pids.append
    for pid in pids:
        if stop is not None and stop.is_set():
            break
        try:
            fd_dir = os.open(f"{proc}/{pid}/fd", flags)
        except OSError:  # exited, or not ours to read
            continue
        number = int(pid)
        try:
            for name in os.listdir(fd_dir):
                try:
                    link = readlink(name, dir_fd=fd_dir)
                except OSError:
                    continue
                if link[:8] == "socket:[":
                    add_inode(int(link[8:-1]))
                    add_pid(number)
        except (OSError, ValueError):
            continue
        finally:
            os.close(fd_dir)
    return found


class WalkAhead:
    """``socket_descriptors`` run in a thread (its syscalls release the GIL, as the dump's do).

    Measured at 200,000 sockets it overlaps the dump, but each readlink hands
    the GIL back and forth with the dump's parsing and reader threads, so the
    walk takes ~650 ms beside the dump against ~450 ms alone: a smaller
    switch interval did not help (measured). A forked walker (no shared GIL)
    measured 27-29% faster in-process; see issue 13's notes.

    A socket whose descriptor appears after the walk passed its process
    (accepted during the dump) is not matched, as with any walk that is not
    atomic.
    """

    def __init__(self, procfs: ProcFS) -> None:
        self.found = SocketDescriptors()
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(
            target=self._run, args=(procfs,), name=THREAD_NAME, daemon=True
        )
        self._thread.start()

    def _run(self, procfs: ProcFS) -> None:
        try:
            socket_descriptors(procfs, self._stop, self.found)
        except BaseException as exc:  # raised again in the caller's thread
            self._error = exc

    def stop(self) -> None:
        """End the walk at its next process and wait for it (done, or no longer needed)."""
        self._stop.set()
        self._thread.join()

    def result(self) -> SocketDescriptors:
        """Wait for the walk; return its records, or raise what it raised."""
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self.found
