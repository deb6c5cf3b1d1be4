"""What every check reads (Evidence) and the documentation record of a finding ID."""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Mapping, Sequence
from functools import cached_property
from typing import TYPE_CHECKING

from tcptune.model.findings import Finding, Severity
from tcptune.model.holding import HeldSockets, take
from tcptune.model.record import record
from tcptune.model.snapshot import InodePorts, Owner, Snapshot, SocketDetails
from tcptune.model.tcpstates import TcpState
from tcptune.model.values import SysctlValue

if TYPE_CHECKING:  # profiles (and tomllib) load only when a profile is asked for
    from tcptune.model.closewait import CloseWaitSummary
    from tcptune.profiles.model import Profile


@record
class FindingDoc:
    """The fixed text of a finding ID: shown in findings and by `tcptune explain ID`."""

    id: str
    title: str
    summary: str  # one line, <= 70 characters
    explanation: str
    references: tuple[str, ...]
    proven_by: tuple[str, ...] = ()  # claim ids in tcptune/reference/claims.py


@record
class OwnerCount:
    """A process and how many of the sockets in question it holds."""

    owner: Owner
    sockets: int
    local_ports: tuple[int, ...]


@record
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

    def process(self, pid: int) -> Owner:
        """Return name and user of a holder (``?`` if it vanished before it was described)."""
        owners = self.snapshot.owners
        found = owners.processes.get(pid) if owners is not None else None
        return found or Owner(pid, "?", "?")

    @cached_property
    def close_wait_sockets(self) -> tuple[array[int], array[int]]:
        """Return the CLOSE_WAIT sockets' (inodes, local ports) columns, ascending by inode.

        The tcp_info ages' columns when the dump sent them (every socket, inode 0
        included), else the details' (procfs; constructed snapshots).
        """
        ages = self.snapshot.close_wait_ages
        if ages is not None:
            return ages.inodes, ages.local_ports
        found = self.details.close_wait_inodes if self.details is not None else {}
        if isinstance(found, InodePorts):
            return found.inodes, found.ports
        inodes = sorted(found)
        return array("Q", inodes), array("H", (found[inode] for inode in inodes))

    @cached_property
    def close_wait_held(self) -> HeldSockets | None:
        """Return the CLOSE_WAIT column grouped by holding PID; None without owners."""
        owners = self.snapshot.owners
        if owners is None:
            return None
        return HeldSockets.of(owners.holders, self.close_wait_sockets[0])

    @cached_property
    def close_wait_names(self) -> dict[str, tuple[tuple[int, ...], array[int]]]:
        """Return process name -> (its PIDs, the CLOSE_WAIT indices they hold, each once)."""
        held = self.close_wait_held
        if held is None:
            return {}
        pids_of: dict[str, list[int]] = {}
        for pid in sorted(held.by_pid):
            pids_of.setdefault(self.process(pid).name, []).append(pid)
        return {name: (tuple(pids), held.union(pids)) for name, pids in pids_of.items()}

    @cached_property
    def close_wait_summary(self) -> CloseWaitSummary | None:
        """Return the CLOSE_WAIT ages overall and per process name, computed once per audit."""
        from tcptune.advise.closewait import summarize  # it builds on this module

        return summarize(self)

    def close_wait_by_process(self) -> dict[str, int] | None:
        """Return CLOSE_WAIT sockets per process name, each socket once per name; None if unknown.

        A socket that forked workers share counts once for their common name,
        so the values never add up to more than the sockets there are.
        None when owners were not looked up (--no-owners) or details are missing.
        """
        if self.details is None or not self.owners_known:
            return None
        return {name: len(indices) for name, (_pids, indices) in self.close_wait_names.items()}

    def close_wait_owners(self) -> list[OwnerCount]:
        """Rank the processes holding CLOSE_WAIT sockets, most first."""
        held = self.close_wait_held
        return self._ranked(held, self.close_wait_sockets[1]) if held is not None else []

    def owners_of(self, inodes: Sequence[int], ports: Sequence[int]) -> list[OwnerCount]:
        """Rank the processes holding these sockets (inodes, local ports in step), most first."""
        owners = self.snapshot.owners
        if owners is None:
            return []
        return self._ranked(HeldSockets.of(owners.holders, inodes), array("H", ports))

    def _ranked(self, held: HeldSockets, ports: array[int]) -> list[OwnerCount]:
        ranked = sorted(held.by_pid.items(), key=lambda item: (-len(item[1]), item[0]))
        return [
            OwnerCount(self.process(pid), len(indices), tuple(sorted(set(take(ports, indices)))))
            for pid, indices in ranked
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
