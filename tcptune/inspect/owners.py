"""Find which processes hold given socket inodes, by reading /proc/PID/fd links.

Only the inodes asked for are looked up (CLOSE_WAIT sockets, listeners), and
psutil supplies process details (name, user) for the few PIDs that match.
"""

from __future__ import annotations

import os
import pwd
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from tcptune.inspect.procfs import ProcFS, ProcReadError


@dataclass(frozen=True)
class Owner:
    """A process holding sockets."""

    pid: int
    name: str
    user: str


def socket_holders(
    procfs: ProcFS, inodes: Iterable[int], *, first_holder: bool = False
) -> dict[int, list[int]]:
    """Return ``{inode: [pid, ...]}`` for the wanted inodes (forked children share sockets).

    Every process's descriptors are read, whoever owns the process: a socket's
    uid says who created it, not who holds it now (nginx workers hold sockets
    root created). Each readlink goes through a directory descriptor, so it
    resolves one path component instead of four. With ``first_holder`` the
    walk stops once every inode has a holder: only for callers that do not
    name every holder (the audit's outputs do, so it reads everything).
    """
    wanted = {f"socket:[{inode}]" for inode in inodes if inode}
    holders: dict[int, list[int]] = {}
    if not wanted:
        return holders
    missing = len(wanted)  # inodes still without a holder
    proc = str(procfs.root)
    try:
        pids = [entry for entry in os.listdir(proc) if entry.isdigit()]
    except OSError:
        return holders
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
    readlink = os.readlink
    for pid in pids:
        try:
            fd_dir = os.open(f"{proc}/{pid}/fd", flags)
        except OSError:  # exited, or not ours to read
            continue
        try:
            for name in os.listdir(fd_dir):
                try:
                    link = readlink(name, dir_fd=fd_dir)
                except OSError:
                    continue
                if link in wanted:  # one hash lookup per descriptor, no parsing
                    inode = int(link[8:-1])
                    found = holders.get(inode)
                    if found is None:
                        holders[inode] = [int(pid)]
                        missing -= 1
                    elif int(pid) not in found:
                        found.append(int(pid))
        except OSError:
            continue
        finally:
            os.close(fd_dir)
        if first_holder and not missing:
            break  # every wanted socket has a holder
    return holders


def describe_processes(procfs: ProcFS, pids: Iterable[int]) -> Mapping[int, Owner]:
    """Return name and user of each PID; vanished processes are named '?'.

    On the live /proc psutil supplies the details; on any other procfs root
    (a fixture, a host's /proc mounted elsewhere) comm and status are read
    from that tree, since psutil only knows one global procfs path.
    """
    if procfs.root != Path("/proc"):
        return {pid: _from_tree(procfs, pid) for pid in set(pids)}
    import psutil

    owners: dict[int, Owner] = {}
    for pid in set(pids):
        try:
            process = psutil.Process(pid)
            with process.oneshot():
                owners[pid] = Owner(pid, process.name(), process.username())
        except (psutil.Error, KeyError):
            owners[pid] = Owner(pid, "?", "?")
    return owners


def _from_tree(procfs: ProcFS, pid: int) -> Owner:
    try:
        name = procfs.read_text(f"{pid}/comm").strip()
        status = procfs.read_text(f"{pid}/status")
    except ProcReadError:
        return Owner(pid, "?", "?")
    uid = next((line.split()[1] for line in status.splitlines() if line.startswith("Uid:")), "?")
    try:
        user = pwd.getpwuid(int(uid)).pw_name
    except (KeyError, ValueError):
        user = uid
    return Owner(pid, name, user)
