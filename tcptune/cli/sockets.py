"""The sockets command, and the options every command that reads socket options shares."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from tcptune.cli.group import NETNS_LABEL
from tcptune.exitcodes import ExitStatus

if TYPE_CHECKING:
    from tcptune.inspect.bpf.seams import BpfSeams

BTF_CACHE_OPTION = click.option(
    "--btf-cache",
    "btf_cache",
    metavar="DIR",
    type=click.Path(path_type=Path, file_okay=False, readable=False),  # best effort
    envvar="TCPTUNE_BTF_CACHE",
    help="Keep the struct layout resolved from the kernel's BTF here, keyed by the "
    "kernel's build (default: /var/cache/tcptune for root, else ~/.cache/tcptune; "
    "environment: TCPTUNE_BTF_CACHE).",
)


def bpf_seams(btf_cache: Path | None) -> BpfSeams:
    """Return the BPF seams for the live kernel with the chosen cache directory."""
    from tcptune.inspect.bpf.seams import BpfSeams, default_cache_dir

    return BpfSeams(cache_dir=btf_cache or default_cache_dir())


def debug_requested() -> bool:
    """Return whether the global --debug flag is set."""
    root = click.get_current_context().find_root()
    return bool(root.params.get("debug"))


def report_unavailable(status: Any) -> None:
    """Print, with --debug, why the socket options could not be read (the verifier's verdict)."""
    if status is not None and status.unavailable and status.detail and debug_requested():
        click.echo(f"tcptune: debug: socket options: {status.detail}", err=True)


def report_owners(owners: Any) -> None:
    """Print, with --debug, where socket owners came from and why BPF was not used."""
    if owners is not None and debug_requested():
        why = f" ({owners.bpf_detail})" if owners.bpf_detail else ""
        cost = owners.cost_seconds * 1000
        ahead = ", walked ahead in a forked child" if owners.walked_ahead else ""
        click.echo(
            f"tcptune: debug: owners via {owners.source}{why}{ahead}, {cost:.0f} ms", err=True
        )


# TcpState names a socket with options can be in (TIME_WAIT has none)
STATE_NAMES = [
    *("ESTABLISHED", "SYN_SENT", "SYN_RECV", "FIN_WAIT1", "FIN_WAIT2"),
    *("CLOSE", "CLOSE_WAIT", "LAST_ACK", "LISTEN", "CLOSING"),
]


@click.command()
@click.option(
    "--pid",
    "holder_pid",
    type=click.IntRange(min=1),
    metavar="PID",
    help="Only sockets this process holds.",
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    metavar="PORT",
    help="Only sockets with this local or remote port.",
)
@click.option(
    "--state",
    "states",
    multiple=True,
    metavar="STATE",
    type=click.Choice(STATE_NAMES, case_sensitive=False),
    help="Only sockets in this state (repeatable), e.g. LISTEN or CLOSE_WAIT.",
)
@click.option("--wide", is_flag=True, help="Full addresses, every keepalive value, all owners.")
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="One JSON document (schema: tcptune/schemas/sockets.json).",
)
@BTF_CACHE_OPTION
@click.pass_obj
def sockets(
    procfs: Any,
    holder_pid: int | None,
    port: int | None,
    states: tuple[str, ...],
    wide: bool,
    as_json: bool,
    btf_cache: Path | None,
) -> ExitStatus:
    """Show every TCP socket's options as the kernel holds them, and who holds it.

    Like ss, but with the options: linger (off, {1,0} close() aborts, {1,N}
    close() blocks), keepalive with the idle time in effect and whose it is
    (own TCP_KEEPIDLE or the sysctl), user timeout (uto), TCP_LINGER2 (l2),
    SO_REUSEADDR (ra) and SO_REUSEPORT (rp), and the owning process. Read
    with a BPF iterator: needs CAP_BPF and CAP_PERFMON (root). TIME-WAIT and
    SYN-RECV sockets carry no options and are not listed.

    \b
    Examples:
      sudo tcptune sockets
      sudo tcptune sockets --state LISTEN --wide
      sudo tcptune sockets --port 6379 --json | jq '.sockets[].keepalive'
      sudo tcptune --pid 4242 sockets        a container's namespace
      sudo tcptune sockets --pid 4242        sockets process 4242 holds

    \b
    Exit status: 0 shown; 3 the options could not be read (the reason is on
    stderr; --debug adds the verifier's verdict); 64 usage.
    """
    import json

    from tcptune.model.tcpstates import TcpState
    from tcptune.output.sockets import sockets_dict, sockets_text
    from tcptune.run.sockets import SocketsFilter, run_sockets

    wanted = SocketsFilter(holder_pid, port, tuple(TcpState[s.upper()] for s in states))
    netns_name = click.get_current_context().meta.get(NETNS_LABEL)
    result = run_sockets(procfs, bpf_seams(btf_cache), wanted, netns_name)
    report_unavailable(result.status)
    if as_json:
        click.echo(json.dumps(sockets_dict(result), indent=2))
    elif result.status.inventory is not None:
        click.echo(sockets_text(result, wide), nl=False)
    if result.status.inventory is None:
        click.echo(f"tcptune: {result.status.unavailable}", err=True)
        return ExitStatus.INCOMPLETE
    return ExitStatus.OK
