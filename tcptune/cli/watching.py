"""The watch command: live counts per state, counter rates and what is rising."""

from __future__ import annotations

import os
import sys
from typing import Any

import click

from tcptune.cli.group import NETNS_LABEL, SECONDS
from tcptune.cli.sockets import bpf_seams
from tcptune.exitcodes import ExitStatus


@click.command()
@click.option(
    "--interval",
    type=SECONDS,
    default=2.0,
    show_default=True,
    metavar="SECONDS",
    help="Refresh every SECONDS (above 0, at most 86400).",
)
@click.option(
    "--count",
    type=click.IntRange(min=1),
    metavar="N",
    help="Stop after N refreshes (default: run until q or Ctrl-C).",
)
@click.option(
    "--json", "as_json", is_flag=True, help="Print one JSON object per refresh (JSON lines)."
)
@click.option(
    "--source",
    type=click.Choice(["auto", "netlink", "procfs"]),
    default="auto",
    show_default=True,
    help="Where to read socket states, as for audit; auto counts in the kernel with a "
    "BPF iterator when privileged (with --owners: walks the sockets with BPF from 2,000 "
    "sockets, as audit does), else over netlink.",
)
@click.option(
    "--window",
    type=SECONDS,
    default=30.0,
    show_default=True,
    metavar="SECONDS",
    help="Judge what is rising by a line fitted through the refreshes of the last SECONDS "
    "(at least --interval); the sparklines show them.",
)
@click.option(
    "--owners/--no-owners",
    default=False,
    show_default=True,
    help="Also show the processes holding CLOSE_WAIT sockets, each with its trend. Costs "
    "one BPF task_file pass (root), else a readlink per open descriptor on the host, per "
    "refresh while CLOSE_WAIT sockets exist.",
)
@click.option(
    "--once",
    is_flag=True,
    help="For scripts: refresh for one --window, print one line (or JSON object) and exit "
    "1 if anything is rising, 0 if not.",
)
@click.pass_obj
def watch(
    procfs: Any,
    interval: float,
    count: int | None,
    as_json: bool,
    source: str,
    window: float,
    owners: bool,
    once: bool,
) -> ExitStatus:
    """Watch sockets per state and TCP counter rates live, marking what is rising.

    On a terminal the screen is redrawn every --interval, with a sparkline
    of the last refreshes per state; rising trouble is bold red (with
    NO_COLOR set in the environment: marked ▲ instead): CLOSE_WAIT or
    SYN_RECV growing over the --window (a fitted line, not the last two
    refreshes), orphans near tcp_max_orphans or growing, TIME_WAIT past 80%
    of tcp_max_tw_buckets, listen overflows or drops, TIME_WAIT overflows,
    memory aborts. q or Ctrl-C quits. Piped or redirected, it prints one
    line per refresh with ▲ on what is rising (--json: one JSON object per
    line). Each refresh is one counts-only inspection (one run of a BPF
    iterator loaded once, or unprivileged one sock_diag dump; no per-socket
    details) unless --owners asks for the CLOSE_WAIT holders.

    \b
    Examples:
      tcptune watch
      tcptune watch --owners --window 60
      tcptune watch --interval 1 --count 300 >> incident.log
      tcptune watch --json | jq -c .sockets.states.CLOSE_WAIT
      tcptune watch --once --interval 1 --window 10 || echo rising
      sudo tcptune --pid 4242 watch          a container's namespace

    \b
    Exit status: 0 after --count refreshes or when quit on the terminal;
    with --once 0 nothing rising, 1 something rising; 130 Ctrl-C in line
    mode; 64 usage.
    """
    from tcptune.exitcodes import UsageError
    from tcptune.inspect.inspector import SocketSource
    from tcptune.output import terminal
    from tcptune.output import watch as watch_output
    from tcptune.run import watch as live
    from tcptune.run.watchsources import live_sources

    if window < interval:
        raise UsageError(f"--window {window:g} is shorter than --interval {interval:g}")
    if once and count is not None:
        raise UsageError("--once prints one refresh; it cannot go with --count")
    netns_name = click.get_current_context().meta.get(NETNS_LABEL)
    seams = bpf_seams(None) if owners else None  # owners: BPF task_file when it can run
    take, held = live_sources(procfs, SocketSource(source), netns_name, owners, seams)
    unicode = "utf" in (sys.stdout.encoding or "").lower()
    full_screen = sys.stdout.isatty() and os.environ.get("TERM") != "dumb" and not once
    if as_json or not full_screen:
        frames: list[live.Frame] = []

        def show(frame: live.Frame) -> None:
            frames.append(frame)
            if as_json:
                click.echo(watch_output.watch_json(frame))
            else:
                click.echo(watch_output.watch_line(frame, unicode))

        try:
            live.run_watch(
                take, show, interval=interval, count=count, window=window, owners=held, once=once
            )
        except BrokenPipeError:  # the reader left (`| head`): an end, like a closed terminal
            terminal.discard_stdout()
        if once and frames and frames[-1].alerts:
            return ExitStatus.WARNING
        return ExitStatus.OK

    styled = not os.environ.get("NO_COLOR")  # https://no-color.org

    def on_screen(screen: terminal.FullScreen) -> None:
        def show(frame: live.Frame) -> None:
            screen.draw(watch_output.watch_screen(frame, *screen.size(), styled, unicode))

        live.run_watch(
            take,
            show,
            interval=interval,
            count=count,
            read_key=screen.read_key,
            window=window,
            owners=held,
        )

    try:
        keys: int | None = sys.stdin.fileno()
    except (AttributeError, ValueError, OSError):
        keys = None
    terminal.run_fullscreen(on_screen, sys.stdout.fileno(), keys)
    return ExitStatus.OK
