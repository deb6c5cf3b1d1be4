"""What every check reads (Evidence) and the documentation record of a finding ID."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tcptune.model.findings import Finding, Severity
from tcptune.model.snapshot import Owner, Snapshot, SocketDetails
from tcptune.model.tcpstates import TcpState
from tcptune.model.values import SysctlValue

if TYPE_CHECKING:  # profiles (and tomllib) load only when a profile is asked for
    from tcptune.profiles.model import Profile


@dataclass(frozen=True)
class FindingDoc:
    """The fixed text of a finding ID: shown in findings and by `tcptune explain ID`."""

    id: str
    title: str
    summary: str  # one line, <= 70 characters
    explanation: str
    references: tuple[str, ...]
    proven_by: tuple[str, ...] = ()  # claim ids in tcptune/reference/claims.py


@dataclass(frozen=True)
class OwnerCount:
    """A process and how many of the sockets in question it holds."""

    owner: Owner
    sockets: int
    local_ports: tuple[int, ...]


@dataclass(frozen=True)
class Evidence:
    """Everything a check may read: the snapshot, the profile and rates. Frozen; no I/O."""

    snapshot: Snapshot
    profile: Profile | None = None
    rates: Mapping[str, float] | None = None  # counter name -> per second over the interval
    interval: float | None = None
    # False: not root, so other users' descriptors (and their sockets' owners) are hidden
    owners_readable: bool = True

    def value(self, name: str) -> SysctlValue | None:
        """Return a readable sysctl's live value."""
        return self.snapshot.value(name)

    def int_value(self, name: str) -> int | None:
        """Return a readable integer sysctl's live value."""
        value = self.snapshot.value(name)
        return value if isinstance(value, int) else None

    def count(self, state: TcpState) -> int:
        """Return the number of sockets in ``state`` over both families."""
        return self.snapshot.sockets.total(state) if self.snapshot.sockets else 0

    @property
    def details(self) -> SocketDetails | None:
        """Return the per-socket details, if the inspection collected them."""
        return self.snapshot.sockets.details if self.snapshot.sockets else None

    @property
    def owners_known(self) -> bool:
        """Return whether the inspection looked up socket owners (not with --no-owners)."""
        return self.snapshot.owners is not None

    def counter(self, name: str) -> int | None:
        """Return a TcpExt or Tcp total (per namespace, since its creation)."""
        counters = self.snapshot.counters
        return counters.tcp_ext.get(name, counters.tcp.get(name))

    def rate(self, name: str) -> float | None:
        """Return a counter's change per second over --interval, if measured."""
        return None if self.rates is None else self.rates.get(name)

    def holders(self, inode: int) -> tuple[int, ...]:
        """Return the PIDs holding socket ``inode`` (empty without --owners)."""
        owners = self.snapshot.owners
        return owners.holders.get(inode, ()) if owners is not None else ()

    def process(self, pid: int) -> Owner:
        """Return name and user of a holder (``?`` if it vanished before it was described)."""
        owners = self.snapshot.owners
        found = owners.processes.get(pid) if owners is not None else None
        return found or Owner(pid, "?", "?")

    def close_wait_by_process(self) -> dict[str, int] | None:
        """Return CLOSE_WAIT sockets per process name, each socket once per name; None if unknown.

        A socket that forked workers share counts once for their common name,
        so the values never add up to more than the sockets there are.
        None when owners were not looked up (--no-owners) or details are missing.
        """
        details = self.details
        if details is None or not self.owners_known:
            return None
        per_name: Counter[str] = Counter()
        for inode in details.close_wait_inodes:
            per_name.update({self.process(pid).name for pid in self.holders(inode)})
        return dict(per_name)

    def owners_of(self, inodes_ports: Iterable[tuple[int, int]]) -> list[OwnerCount]:
        """Rank the processes holding these (inode, local port) sockets, most first."""
        per_pid: Counter[int] = Counter()
        ports: dict[int, set[int]] = {}
        for inode, port in inodes_ports:
            for pid in self.holders(inode):
                per_pid[pid] += 1
                ports.setdefault(pid, set()).add(port)
        return [
            OwnerCount(self.process(pid), count, tuple(sorted(ports[pid])))
            for pid, count in per_pid.most_common()
        ]


def finding(
    doc: FindingDoc,
    severity: Severity,
    evidence: Iterable[str],
    recommendation: str,
    *,
    title: str | None = None,
    explanation: str | None = None,
    subject: str | None = None,
    data: Mapping[str, object] | None = None,
    references: tuple[str, ...] = (),
) -> Finding:
    """Return a Finding built from ``doc`` with this occurrence's evidence."""
    return Finding(
        id=doc.id,
        severity=severity,
        title=title or doc.title,
        evidence=tuple(evidence),
        explanation=explanation or doc.explanation,
        recommendation=recommendation,
        references=references or doc.references,
        subject=subject,
        data=dict(data or {}),
    )


def since(ev: Evidence, name: str) -> str:
    """Return 'N since boot' (or since the namespace was created), and the rate if measured."""
    from tcptune.model.kernelcounters import totals_span

    total = ev.counter(name)
    span = totals_span(ev.snapshot.context.initial_netns)
    text = f"{name} {total if total is not None else '?'} {span}"
    rate = ev.rate(name)
    if rate is not None:
        text += f", {rate:.1f}/s over the last {ev.interval:g} s"
    return text
