"""Where every BPF reader reaches the kernel: the seams tests replace (inject, don't patch).

This module is imported on every audit (the owner lookup and the socket
options take seams), so it imports nothing heavy: the bpf(2) wrapper, the
program builder and the options program's members load only when a
program is really built or run.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import field
from pathlib import Path
from typing import TYPE_CHECKING

from tcptune.model.record import record

if TYPE_CHECKING:
    from tcptune.inspect.bpf.fileiter import OwnersProgram
    from tcptune.inspect.bpf.loader import IterProgram
    from tcptune.inspect.bpf.syscall import Bpf
    from tcptune.inspect.bpf.tcpiter import Wanted

VMLINUX_BTF = Path("/sys/kernel/btf/vmlinux")
KERNEL_NOTES = Path("/sys/kernel/notes")  # the kernel's build id: the layout cache key


def live_bpf() -> Bpf:
    """Return the bpf(2) caller of the running kernel."""
    from tcptune.inspect.bpf.syscall import Bpf

    return Bpf()


def record_program(spec: IterProgram) -> bytes:
    """Return the generic record-copying program for ``spec`` (loader.build)."""
    from tcptune.inspect.bpf.loader import build

    return build(spec)


def owners_program(spec: OwnersProgram) -> bytes:
    """Return the owners' task_file program matching in its map (fileiter.build)."""
    from tcptune.inspect.bpf.fileiter import build

    return build(spec)


@record
class BpfSeams:
    """The BTF file, the layout cache, the bpf(2) caller, the options wanted, the builders.

    ``wanted`` None means the socket options program's own list
    (tcpiter.TCP_WANTED); ``debug`` collects what happened, for --debug.
    """

    btf_path: Path = VMLINUX_BTF
    notes_path: Path = KERNEL_NOTES
    cache_dir: Path | None = None  # None: resolve from BTF every time
    bpf: Callable[[], Bpf] = live_bpf
    wanted: Sequence[Wanted] | None = None
    build: Callable[[IterProgram], bytes] = record_program
    build_owners: Callable[[OwnersProgram], bytes] = owners_program
    debug: list[str] = field(default_factory=list)


def default_cache_dir(environ: Mapping[str, str] | None = None) -> Path:
    """Return where the BTF layout cache lives: /var/cache/tcptune for root, else XDG."""
    environ = os.environ if environ is None else environ
    if os.geteuid() == 0:
        return Path("/var/cache/tcptune")
    base = environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "tcptune"
