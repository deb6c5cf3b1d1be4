"""TCP state counts from the BPF iterator, loaded once and run again for every refresh.

``tcptune watch`` refreshes a counts-only snapshot every second or so; over
netlink each refresh makes the kernel build one sock_diag message per
socket. BpfCounter loads inspect/bpf/tcpcount.py's program on first use,
keeps it attached, and runs one iteration per refresh (BPF_ITER_CREATE and
a few reads). Anything that stops it (no privilege, no BTF, no iterator, a
refused program, a failed run) becomes ``reason``, and the caller counts
over netlink instead, as it always did.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tcptune.inspect.bpf import tcpcount
from tcptune.inspect.bpf.btf import BtfError, load_btf
from tcptune.inspect.bpf.cache import cached_layout
from tcptune.inspect.bpf.loader import Attached
from tcptune.inspect.bpf.seams import BpfSeams
from tcptune.inspect.bpf.syscall import BpfError, bpf_reason
from tcptune.inspect.ownersbpf import missing_capability
from tcptune.inspect.procfs import ProcFS, ProcReadError

PROGRAM_NAME = b"tcptune_count"
QUESTION = "tcpcount 1"  # the BTF cache key's question: change it when resolve() changes
MAX_OUTPUT = 1 << 28  # one byte a socket: 268 million sockets, a runaway bound

Counts = tuple[tcpcount.StateCounts, tcpcount.StateCounts]


class BpfCounter:
    """Count TCP sockets by state and family in the kernel; ``reason`` says why not."""

    def __init__(
        self,
        procfs: ProcFS,
        seams: BpfSeams | None = None,
        build: Callable[[dict[str, Any]], bytes] = tcpcount.build,
    ) -> None:
        self._procfs = procfs
        self._seams = seams or BpfSeams()
        self._build = build
        self._attached: Attached | None = None
        self.reason: str | None = None  # set once the counter cannot (or can no longer) run
        self.loads = 0  # programs loaded: one for a whole watch

    @property
    def debug(self) -> list[str]:
        """Return what happened besides ``reason``: whether the BTF layout came from the cache."""
        return self._seams.debug

    def counts(self) -> Counts | None:
        """Return (IPv4, IPv6) counts by state code, or None once ``reason`` is set."""
        attached = self._attach()
        if attached is None:
            return None
        try:
            return tcpcount.count(attached.read(MAX_OUTPUT))
        except (BpfError, OSError) as exc:
            self._fail(f"the iterator failed: {exc}", str(exc))
            self.close()
            return None

    def _attach(self) -> Attached | None:
        if self._attached is not None or self.reason is not None:
            return self._attached
        try:
            status = self._procfs.read_text("self/status")
        except ProcReadError:
            status = ""
        lacking = missing_capability(status)
        if lacking:  # known before indexing BTF (~0.2 s) for a load bpf(2) would refuse
            self._fail(f"needs {lacking} (or CAP_SYS_ADMIN)", "")
            return None
        try:
            seams = self._seams
            resolved, cached = cached_layout(
                (seams.btf_path, seams.notes_path, seams.cache_dir),
                lambda: self._procfs.read_text("sys/kernel/osrelease"),
                QUESTION,
                lambda: tcpcount.resolve(load_btf(seams.btf_path)),
                tcpcount.valid,
                seams.debug,
            )
            code = self._build(resolved)
            self._attached = Attached(
                self._seams.bpf(), code, resolved["attach_btf_id"], PROGRAM_NAME
            )
        except BtfError as exc:
            self._fail(f"kernel BTF: {exc}", str(exc))
        except BpfError as exc:
            self._fail(*bpf_reason(exc))
        except OSError as exc:  # e.g. /proc/sys/kernel/osrelease unreadable
            self._fail(str(exc), str(exc))
        else:
            self.loads += 1
            self._seams.debug.append(
                f"BPF state counter loaded ({'cached' if cached else 'resolved'} BTF layout)"
            )
        return self._attached

    def _fail(self, reason: str, detail: str) -> None:
        """Set ``reason``, with the detail (e.g. the verifier's verdict) when it adds one."""
        if detail and detail not in reason:
            reason = f"{reason}: {detail}"
        self.reason = f"BPF state counter not used: {reason}"

    def close(self) -> None:
        """Unload the program (idempotent); later counts() return None."""
        if self._attached is not None:
            self._attached.close()
            self._attached = None
        if self.reason is None:
            self.reason = "BPF state counter closed"
