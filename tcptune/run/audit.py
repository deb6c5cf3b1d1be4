"""Run one audit: inspect (twice with --interval), load the profile, run the advisor."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from tcptune.advise import Evidence, advise_ignoring, counter_rates
from tcptune.exitcodes import ExitStatus, UsageError
from tcptune.inspect.inspector import OPTIONS_BY_DEFAULT_MAX_SOCKETS, SocketSource, inspect
from tcptune.inspect.owners import OwnerSource
from tcptune.inspect.procfs import ProcFS
from tcptune.model.findings import Finding, exit_status
from tcptune.model.record import record
from tcptune.model.snapshot import Snapshot

if TYPE_CHECKING:
    from tcptune.inspect.bpf.seams import BpfSeams
    from tcptune.model.closewait import CloseWaitSummary
    from tcptune.profiles.model import Profile


@record
class AuditResult:
    """A snapshot, the profile it was compared with, and the findings."""

    snapshot: Snapshot
    profile: Profile | None
    findings: tuple[Finding, ...]
    interval: float | None
    # CLOSE_WAIT sockets per process name; None when owners were not looked up
    close_wait_by_process: Mapping[str, int] | None = None
    # Tcp/TcpExt counter name -> change per second over --interval; None without it
    rates: Mapping[str, float] | None = None
    close_wait_ages: CloseWaitSummary | None = None  # ages per process (tcp_info)
    unmatched_ignores: tuple[str, ...] = ()  # --ignore ID:SUBJECT words that hid nothing

    @property
    def status(self) -> ExitStatus:
        """Return the exit status the worst finding and completeness call for."""
        return exit_status(self.findings, self.snapshot.complete)


def run_audit(
    procfs: ProcFS,
    *,
    source: SocketSource = SocketSource.AUTO,
    profile: str | None = None,
    profile_dirs: Sequence[Path] = (),
    ignore: Sequence[str] = (),
    interval: float | None = None,
    netns_name: str | None = None,
    owners: bool = True,
    sleep: Callable[[float], None] = time.sleep,
    options: BpfSeams | None = None,
    options_required: bool = False,
    options_max_sockets: int = OPTIONS_BY_DEFAULT_MAX_SOCKETS,
    owners_source: OwnerSource = OwnerSource.AUTO,
    owner_seams: BpfSeams | None = None,
    socket_seams: BpfSeams | None = None,
) -> AuditResult:
    """Inspect, compare with ``profile`` if given, and return the findings.

    ``options`` reads every socket's options (BPF); ``options_required``
    makes their absence an incomplete inspection, and reads them even above
    ``options_max_sockets`` live sockets, where a plain audit leaves them out;
    ``socket_seams`` lets the socket details come from one BPF walk.
    """
    loaded = None
    if profile:
        from tcptune.profiles.locate import ProfileLocator  # only now: profiles need tomllib

        loaded = ProfileLocator(profile_dirs).load(profile)
    if interval is not None and not 0 < interval < math.inf:
        raise UsageError("--interval must be a positive number of seconds")
    rates = None
    extra = loaded.specs_outside_catalogue() if loaded is not None else ()

    def full() -> Snapshot:
        return inspect(
            procfs,
            source=source,
            details=True,
            owners=owners,
            extra=extra,
            netns_name=netns_name,
            options=options,
            options_required=options_required,
            options_max_sockets=options_max_sockets,
            owners_source=owners_source,
            owner_seams=owner_seams,
            socket_seams=socket_seams,
        )

    if interval is not None:
        first = inspect(procfs, source=source, netns_name=netns_name, socket_seams=socket_seams)
        started = time.monotonic()
        sleep(interval)
        snapshot = full()
        elapsed = max(time.monotonic() - started, 1e-9)
        rates = counter_rates(first.counters, snapshot.counters, elapsed)
    else:
        snapshot = full()
    evidence = Evidence(snapshot, loaded, rates, interval, owners_readable=os.geteuid() == 0)
    found, unmatched = advise_ignoring(evidence, ignore)
    findings = tuple(found)
    return AuditResult(
        snapshot,
        loaded,
        findings,
        interval,
        evidence.close_wait_by_process(),
        rates,
        evidence.close_wait_summary,  # the one computed for the findings
        tuple(unmatched),
    )
