"""Read every TCP socket's options in this network namespace, and who holds each socket.

The BPF TCP iterator (inspect/bpf/) sees the options as the kernel stores
them; owners are joined by socket inode (inspect/owners.py: the BPF
task_file iterator when it runs). Anything that stops the iterator (no
privilege, no BTF, no iterator, a missing member, a refused program)
becomes an InventoryStatus saying why, never an exception.
The seams are parameters: the BTF file, the cache directory, the bpf(2)
caller, the members wanted and the program builder.
"""

from __future__ import annotations

import _socket  # not socket: see sockdiag.py
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from tcptune.inspect.bpf import loader, tcpiter
from tcptune.inspect.bpf.btf import BtfError, load_btf
from tcptune.inspect.bpf.seams import BpfSeams
from tcptune.inspect.bpf.syscall import BpfError, bpf_reason
from tcptune.inspect.procfs import ProcFS
from tcptune.model.snapshot import Endpoint
from tcptune.model.tcpstates import TcpState

if TYPE_CHECKING:  # the records load with read_inventory: BpfSeams alone (owners) needs none
    from tcptune.model.sockopts import InventoryStatus, Process, SocketOptions

MAX_OUTPUT = 1 << 31  # 2 GiB of records (~25 million sockets): a runaway bound
PROGRAM_NAME = b"tcptune_sockopt"
FALLBACK = "keepalive use is inferred from armed timers instead"
# include/linux/sched.h MAX_SCHEDULE_TIMEOUT: sk_lingertime for SO_LINGER beyond it
MAX_SCHEDULE_TIMEOUT = (1 << 63) - 1


def read_inventory(
    procfs: ProcFS,
    keepalive_time: int | None,
    *,
    seams: BpfSeams | None = None,
    owners: bool = True,
    requested: bool = False,
) -> InventoryStatus:
    """Return every TCP socket's options and holders, or why they cannot be read."""
    from tcptune.model.sockopts import InventoryStatus, SocketInventory

    seams = seams or BpfSeams()
    started = time.perf_counter()
    try:
        resolved, cached = _layout(procfs, seams)
        code = seams.build(tcpiter.program_spec(resolved))
        data = loader.run(seams.bpf(), code, resolved["attach_btf_id"], PROGRAM_NAME, MAX_OUTPUT)
        rows = list(tcpiter.decode(data, resolved))
    except BtfError as exc:
        return _unavailable(f"kernel BTF: {exc}", str(exc), requested)
    except BpfError as exc:
        reason, detail = bpf_reason(exc)
        return _unavailable(reason, detail, requested)
    except ValueError as exc:
        return _unavailable(f"unexpected iterator output: {exc}", str(exc), requested)
    hz = _hz(rows, keepalive_time)
    sockets = tuple(map(_Converter(hz, resolved), rows)) if hz else ()
    if rows and not hz:
        reason = "cannot tell the kernel's HZ"
        return _unavailable(reason, "tcp_keepalive_time unreadable", requested)
    holders: dict[int, tuple[int, ...]] = {}
    processes: dict[int, Process] = {}
    if owners and sockets:
        holders, processes = _owners(procfs, (s.inode for s in sockets), seams)
    cost = time.perf_counter() - started
    inventory = SocketInventory(sockets, holders, processes, hz, cost, cached)
    return InventoryStatus(inventory, requested=requested)


def _unavailable(reason: str, detail: str, requested: bool) -> InventoryStatus:
    from tcptune.model.sockopts import InventoryStatus

    return InventoryStatus(None, f"socket options not available: {reason}", detail, requested)


def _layout(procfs: ProcFS, seams: BpfSeams) -> tuple[dict[str, Any], bool]:
    """Return the resolved layout, from the cache when this kernel's BTF was seen before."""
    from tcptune.inspect.bpf import cache

    wanted = tcpiter.TCP_WANTED if seams.wanted is None else seams.wanted
    return cache.cached_layout(
        (seams.btf_path, seams.notes_path, seams.cache_dir),
        lambda: procfs.read_text("sys/kernel/osrelease"),
        repr([(w.name, w.paths, w.optional) for w in wanted]),
        lambda: tcpiter.resolve(load_btf(seams.btf_path), wanted),
        _valid,
        seams.debug,
    )


def _valid(resolved: dict[str, Any]) -> bool:
    """Return whether a cached layout has the shape this version builds and decodes."""
    try:
        tcpiter.program_spec(resolved)
        tcpiter.record_decoder(resolved)
        return all(isinstance(resolved[k], int) for k in ("keepopen", "linger"))
    except (KeyError, TypeError, ValueError, IndexError):
        return False


def _hz(rows: Sequence[Mapping[str, Any]], keepalive_time: int | None) -> int | None:
    """Return jiffies per second: the namespace's tcp_keepalive_time in jiffies over seconds."""
    if not rows or not keepalive_time:
        return None
    jiffies = int(rows[0]["netns_keepalive_time"])
    hz = round(jiffies / keepalive_time)
    return hz if hz > 0 else None


class _Converter:
    """Turn decoded records into SocketOptions: seconds, 0 ("use the sysctl") as None.

    Built once per inventory; addresses repeat (127.0.0.1, a service's own
    address), so their text is memoised: at 150,000 sockets this is most of
    the decoding time.
    """

    def __init__(self, hz: int, resolved: Mapping[str, Any]) -> None:
        from tcptune.model.sockopts import SK_NO_REUSE, SocketOptions

        self.options, self.no_reuse = SocketOptions, SK_NO_REUSE
        self.hz = hz
        self.keepopen = 1 << int(resolved["keepopen"])
        self.linger = 1 << int(resolved["linger"])
        self.addresses: dict[bytes | None, str] = {}
        self.states = {state.value: state for state in TcpState}

    def address(self, raw: bytes | None) -> str:
        """Return an address's text, memoised."""
        text = self.addresses.get(raw)
        if text is None:
            text = self.addresses[raw] = _address(raw)
        return text

    def __call__(self, row: Mapping[str, Any]) -> SocketOptions:
        hz = self.hz
        ipv6 = row["family"] == 10  # AF_INET6
        flags = row["flags"]
        linger2 = row["linger2"]
        lingertime = row["lingertime"]
        keepalive_time, keepalive_intvl = row["keepalive_time"], row["keepalive_intvl"]
        state = self.states.get(row["state"], TcpState.CLOSE)
        local = self.address(row.get("local6") if ipv6 else row["local4"])
        remote = self.address(row.get("remote6") if ipv6 else row["remote4"])
        return self.options(
            inode=row["inode"],
            state=state,
            local=Endpoint(local, row["local_port"]),
            remote=Endpoint(remote, row["remote_port"]),
            uid=row["uid"],
            reuseaddr=row["reuse"] != self.no_reuse,
            reuseport=bool(row["reuseport"]),
            keepalive=bool(flags & self.keepopen),
            keepalive_idle=keepalive_time // hz if keepalive_time else None,
            keepalive_interval=keepalive_intvl // hz if keepalive_intvl else None,
            keepalive_count=row["keepalive_probes"] or None,
            linger=bool(flags & self.linger),
            linger_seconds=lingertime // hz if lingertime < MAX_SCHEDULE_TIMEOUT else -1,
            linger2=-1 if linger2 < 0 else (linger2 // hz if linger2 else None),
            user_timeout_ms=row["user_timeout"],
            idle_seconds=0.0 if state is TcpState.LISTEN else _idle(row) / hz,
        )


def _idle(row: Mapping[str, Any]) -> int:
    """Return jiffies since the peer was last heard from, as keepalive_time_elapsed() counts.

    tcp_jiffies32 is the low 32 bits of jiffies; the differences wrap as u32.
    """
    now = row["now"] & 0xFFFFFFFF
    return int(min((now - row["lrcvtime"]) & 0xFFFFFFFF, (now - row["rcv_tstamp"]) & 0xFFFFFFFF))


def _address(raw: bytes | None) -> str:
    if not raw:
        return "?"
    family = _socket.AF_INET6 if len(raw) == 16 else _socket.AF_INET
    return _socket.inet_ntop(family, raw)


def _owners(
    procfs: ProcFS, inodes: Iterable[int], seams: BpfSeams
) -> tuple[dict[int, tuple[int, ...]], dict[int, Process]]:
    """Return who holds each socket inode (BPF task_file, else procfs), and their details."""
    from tcptune.inspect.owners import look_up_owners
    from tcptune.model.sockopts import Process

    found = look_up_owners(procfs, inodes, seams=seams)
    holders = {inode: tuple(pids) for inode, pids in found.holders.items()}
    processes = {pid: Process(pid, o.name, o.user) for pid, o in found.processes.items()}
    return holders, processes
