"""The sockets command, and the options every command that reads socket options shares."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from tcptune.inspect.sockopts import BpfSeams

BTF_CACHE_OPTION = click.option(
    "--btf-cache",
    "btf_cache",
    metavar="DIR",
    type=click.Path(path_type=Path, file_okay=False, readable=False),  # best effort
    envvar="TCPTUNE_BTF_CACHE",
    help="Keep the struct layout resolved from the kernel's BTF here, keyed by the "
    "kernel's build (default: /var/cache/tcptune for root, else ~/.cache/tcptune).",
)


def bpf_seams(btf_cache: Path | None) -> BpfSeams:
    """Return the BPF seams for the live kernel with the chosen cache directory."""
    from tcptune.inspect.sockopts import BpfSeams, default_cache_dir

    return BpfSeams(cache_dir=btf_cache or default_cache_dir())


def debug_requested() -> bool:
    """Return whether the global --debug flag is set."""
    root = click.get_current_context().find_root()
    return bool(root.params.get("debug"))


def report_unavailable(status: Any) -> None:
    """Print, with --debug, why the socket options could not be read (the verifier's verdict)."""
    if status is not None and status.unavailable and status.detail and debug_requested():
        click.echo(f"tcptune: debug: socket options: {status.detail}", err=True)
