"""Measuring: one run of a command (wall, CPU, max RSS), rounds of runs, and the tools.

Wall time is taken by bash around the command; max RSS and CPU come from
getrusage(RUSAGE_CHILDREN) of that bash, which covers the command's whole
process tree (see bench/README.md, Method). The C floors are compiled here
at run time, and tcptune is installed from this checkout into a fresh venv,
so its start-up is what users of the console script get.
"""

from __future__ import annotations

import os
import select
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final

from bench.specs import CommandSpec, Tools

PY: Final = sys.executable
FLOOR_SOURCES: Final = ("nlcount", "auditfloor")


def log(message: str) -> None:
    """Print a progress line on stderr."""
    print(f"[bench] {message}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Sample:
    """One measured run of a command."""

    wall_s: float
    cpu_s: float
    maxrss_kib: int
    exit_code: int  # the shell's $? (128+N: died of signal N); -9 when the run was killed
    timed_out: bool
    stdout: str
    stderr_tail: str


# Runs "$@" as a child of bash and reports, from the same process after exec, the rusage of
# the reaped children (RUSAGE_CHILDREN: max ru_maxrss over the command's whole process tree,
# summed CPU) plus bash's EPOCHREALTIME around the command, on fd 3.  A process started
# directly by this (large) Python would not do: exec_mmap() in fs/exec.c folds the high-water
# RSS of the pre-exec mm, i.e. this interpreter's (shared under vfork, copied by fork), into the
# new program's signal->maxrss, and wait4() would report ~20 MiB even for /bin/true.  Children
# of bash start from bash's small mm, so the floor is ~1 MiB, the same as GNU time's %M.
RUSAGE_WRAPPER: Final = """trap : INT
t0=$EPOCHREALTIME
"$@" 3>&-
rc=$?
t1=$EPOCHREALTIME
exec "$0" -I -S -c 'import resource, sys
r = resource.getrusage(resource.RUSAGE_CHILDREN)
print(*sys.argv[1:], r.ru_maxrss, r.ru_utime + r.ru_stime)' "$rc" "$t0" "$t1" >&3
"""


def run_once(spec: CommandSpec, timeout_s: float) -> Sample:
    """Run ``spec`` under RUSAGE_WRAPPER in its own process group and return its measures.

    RUSAGE_CHILDREN covers every descendant that was waited for: kernel/exit.c
    wait_task_zombie folds each reaped child's max(maxrss, cmaxrss) into the parent's cmaxrss,
    so for ``sh -c 'a | b | c'`` the figure is the largest RSS of sh, a, b and c (not their
    sum) and the CPU is their total.  Linux reports ru_maxrss in KiB (getrusage(2)).
    """
    argv = ["bash", "-c", RUSAGE_WRAPPER, PY, *spec.argv]
    with (
        tempfile.TemporaryFile() as out,
        tempfile.TemporaryFile() as err,
        tempfile.TemporaryFile() as rep,
    ):
        actions = [
            (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
            (os.POSIX_SPAWN_DUP2, out.fileno(), 1),
            (os.POSIX_SPAWN_DUP2, err.fileno(), 2),
            (os.POSIX_SPAWN_DUP2, rep.fileno(), 3),
        ]
        timed_out = False
        start = time.perf_counter()
        pid = os.posix_spawnp("bash", argv, os.environ, file_actions=actions, setpgroup=0)
        pidfd = os.pidfd_open(pid)
        try:
            if not select.select([pidfd], [], [], timeout_s)[0]:
                # A command over its time limit is killed with its whole process group.
                timed_out = True
                os.killpg(pid, signal.SIGKILL)
        finally:
            os.close(pidfd)
        os.waitpid(pid, 0)
        outer_wall = time.perf_counter() - start
        for f in (out, err, rep):
            f.seek(0)
        stdout = out.read(1 << 20).decode(errors="replace")
        stderr = err.read().decode(errors="replace")
        report = rep.read().decode(errors="replace").split()
    if timed_out or len(report) != 5:
        return Sample(outer_wall, 0.0, 0, -signal.SIGKILL, True, stdout, stderr[-600:])
    rc, t0, t1, maxrss, cpu = report
    # EPOCHREALTIME uses the locale's decimal separator.
    wall = float(t1.replace(",", ".")) - float(t0.replace(",", "."))
    return Sample(
        wall_s=wall,
        cpu_s=float(cpu),
        maxrss_kib=int(maxrss),
        exit_code=int(rc),  # bash's $?: 128+N when the command died of signal N
        timed_out=False,
        stdout=stdout,
        stderr_tail=stderr[-600:],
    )


@dataclass
class CommandResult:
    """All runs of one command in one scenario, summarized."""

    key: str
    name: str
    argv: list[str]
    walls_s: list[float] = field(default_factory=list)
    cpus_s: list[float] = field(default_factory=list)
    maxrss_kib: list[int] = field(default_factory=list)
    exit_codes: list[int] = field(default_factory=list)
    ok_exit: list[int] = field(default_factory=list)
    refreshes: int | None = None
    counts: dict[str, int] | None = None
    counts_match: bool | None = None
    stdout_head: str = ""
    stderr_tail: str = ""
    last_stdout: str = field(default="", repr=False)  # full output of the last run, not saved

    def add(self, sample: Sample) -> None:
        """Record one run."""
        self.walls_s.append(sample.wall_s)
        self.cpus_s.append(sample.cpu_s)
        self.maxrss_kib.append(sample.maxrss_kib)
        self.exit_codes.append(sample.exit_code)
        self.stdout_head = sample.stdout[:400]
        self.last_stdout = sample.stdout
        if sample.exit_code not in self.ok_exit or sample.timed_out:
            self.stderr_tail = sample.stderr_tail

    @property
    def ok(self) -> bool:
        """Tell whether every run completed with an accepted exit status."""
        return bool(self.exit_codes) and all(c in self.ok_exit for c in self.exit_codes)

    def summary(self) -> dict[str, Any]:
        """Return the JSON-ready summary with medians and maxima."""
        data = asdict(self)
        del data["last_stdout"]
        data["ok"] = self.ok
        if self.walls_s:
            data["median_wall_s"] = statistics.median(self.walls_s)
            data["min_wall_s"] = min(self.walls_s)
            data["median_cpu_s"] = statistics.median(self.cpus_s)
            data["max_rss_mib"] = max(self.maxrss_kib) / 1024
        return data


def measure_all(
    specs: Sequence[CommandSpec],
    repeat: int,
    timeout_s: float,
    deadline: float | None,
    warmup: bool,
) -> tuple[list[CommandResult], int, str | None]:
    """Measure every spec ``repeat`` times, interleaved so all see the same sockets."""
    results = [
        CommandResult(
            key=s.key,
            name=s.name,
            argv=list(s.argv),
            ok_exit=sorted(s.ok_exit),
            refreshes=s.refreshes,
        )
        for s in specs
    ]
    if warmup:
        for spec in specs:
            run_once(spec, timeout_s)  # page cache, .pyc files
    done = 0
    stopped: str | None = None
    # The core commands first, interleaved, as many rounds as TIME_WAIT allows; then the
    # slow ones (each run can take seconds at 200,000 sockets) with what time is left.
    for phase in (False, True):
        chosen = [(s, r) for s, r in zip(specs, results, strict=True) if s.slow is phase]
        last_round = 0.0
        for rep in range(repeat):
            if not chosen:
                break
            if rep and deadline is not None and time.monotonic() + last_round > deadline:
                what = "slow commands" if phase else "rounds"
                note = f"{what}: stopped after {rep} of {repeat}, TIME_WAIT about to expire"
                stopped = note if stopped is None else f"{stopped}; {note}"
                break
            if phase and deadline is not None and time.monotonic() > deadline and rep == 0:
                note = "slow commands not measured: TIME_WAIT expired"
                stopped = note if stopped is None else f"{stopped}; {note}"
                break
            started = time.monotonic()
            for spec, result in chosen:
                result.add(run_once(spec, timeout_s))
            last_round = time.monotonic() - started
            if not phase:
                done += 1
            log(f"  {'slow ' if phase else ''}round {rep + 1}/{repeat}: {last_round:.1f} s")
    return results, done, stopped


def compile_floors(sources: Path, into: Path) -> dict[str, str]:
    """Compile the C floors (nlcount.c, auditfloor.c) into ``into``; return name -> binary."""
    compiler = shutil.which("cc") or shutil.which("gcc")
    built: dict[str, str] = {}
    if compiler is None:
        log("no C compiler: the C floors are left out")
        return built
    for name in FLOOR_SOURCES:
        source = sources / f"{name}.c"
        if not source.exists():
            log(f"{source} missing: floor left out")
            continue
        binary = into / name
        subprocess.run([compiler, "-O2", "-o", str(binary), str(source)], check=True)
        built[name] = str(binary)
    return built


def make_venv(repo: Path, into: Path) -> tuple[str, str]:
    """Install tcptune from ``repo`` into a new venv; return its python and tcptune paths.

    A wheel is built from the checkout without build isolation (the running
    interpreter has setuptools), then installed with its dependencies, so
    the console script runs the interpreter and site a user would have.
    """
    venv = into / "venv"
    # No pip (and no setuptools .pth) in the venv: the running pip installs into it.
    subprocess.run([PY, "-m", "venv", "--without-pip", str(venv)], check=True)
    wheels = into / "wheels"
    subprocess.run(
        [
            PY,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(wheels),
            str(repo),
        ],
        check=True,
    )
    (wheel,) = wheels.glob("tcptune-*.whl")
    subprocess.run(
        [
            PY,
            "-m",
            "pip",
            "--python",
            str(venv / "bin" / "python"),
            "install",
            "-q",
            "--disable-pip-version-check",
            str(wheel),
        ],
        check=True,
    )
    return str(venv / "bin" / "python"), str(venv / "bin" / "tcptune")


def checkout_tools(repo: Path) -> tuple[str, tuple[str, ...]]:
    """Return the running interpreter and `python -m tcptune` (quick mode: no venv)."""
    subprocess.run([PY, "-m", "compileall", "-q", str(repo / "tcptune")], check=True)
    return PY, (PY, "-m", "tcptune")


def prepare_tools(repo: Path, floors: Path, into: Path, venv: bool) -> Tools:
    """Return the Tools: tcptune installed in a venv (or the checkout), the C floors built."""
    if venv:
        python, script = make_venv(repo, into)
        tcptune: tuple[str, ...] = (script,)
    else:
        python, tcptune = checkout_tools(repo)
    built = compile_floors(floors, into)
    return Tools(python, tcptune, built.get("nlcount"), built.get("auditfloor"), PY)


def temporary_directory() -> tempfile.TemporaryDirectory[str]:
    """Return a temporary directory for the tools (the floors, the venv)."""
    return tempfile.TemporaryDirectory(prefix="tcptune-bench-")


def calibrate(timeout_s: float) -> dict[str, Any]:
    """Check that a pipeline member's RSS reaches the report: a 96 MiB process inside sh -c."""
    spec = CommandSpec(
        key="calibration",
        name="sh -c 'python (96 MiB) | cat'",
        argv=("sh", "-c", f"{PY} -c 'b = bytes(1) * (96 << 20); print(len(b))' | cat"),
    )
    sample = run_once(spec, timeout_s)
    mib = sample.maxrss_kib / 1024
    return {"command": spec.name, "max_rss_mib": mib, "ok": mib >= 96}
