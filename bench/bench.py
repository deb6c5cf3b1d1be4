#!/usr/bin/env python3
"""Benchmark tcptune against C floors and the runbook commands on many real sockets.

Each scenario (an idle namespace, then one per mix and size) runs in its own throwaway
network namespace: the script re-executes itself under ``unshare --net``, brings ``lo`` up,
raises a few *namespaced* sysctls, fills the namespace with real loopback sockets, verifies
the counts and measures every command (median wall time, max RSS, CPU), interleaved.  The
host namespace is never touched.  See bench/README.md.  Modules: specs (what is measured),
sockets (filling a namespace), measure (running commands, building the tools), report.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if __name__ == "__main__" and str(REPO) not in sys.path[:1]:
    sys.path.insert(0, str(REPO))  # `python3 bench/bench.py` imports the bench package

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import resource  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402
from collections.abc import Sequence  # noqa: E402
from dataclasses import asdict  # noqa: E402
from typing import Any, Final  # noqa: E402

from bench import report  # noqa: E402
from bench.measure import PY, calibrate, log, measure_all, prepare_tools, temporary_directory  # noqa: E402
from bench.sockets import (  # noqa: E402
    FD_RESERVE,
    Workers,
    die,
    global_orphans,
    hold,
    make_server_time_wait,
    make_time_wait,
    setup_namespace,
    ss_counts,
    wait_for_counts,
)
from bench.specs import MIXES, CommandSpec, Plan, commands, parse_counts, select  # noqa: E402

TIME_WAIT_LEN_S: Final = 60.0  # TCP_TIMEWAIT_LEN, include/net/tcp.h; not tunable
TIME_WAIT_MARGIN_S: Final = 5.0
RESULTS: Final = REPO / "bench" / "results" / "latest.json"
FLOORS: Final = REPO.parent / "shared" / "bench"


def run_scenario(cfg: dict[str, Any]) -> dict[str, Any]:
    """Build one scenario's sockets in this (fresh) namespace and measure every command."""
    sysctls = setup_namespace(cfg["host_netns"])
    specs = [
        CommandSpec(**{**s, "argv": tuple(s["argv"]), "ok_exit": frozenset(s["ok_exit"])})
        for s in cfg["commands"]
    ]
    size: int = cfg["size"]
    mix = MIXES[cfg["mix"]]
    plan = Plan.for_size(size, mix)
    scenario: dict[str, Any] = {
        "name": cfg["name"],
        "mix": cfg["mix"] if size else "-",
        "sockets": size,
        "plan": asdict(plan),
        "expected": plan.expected,
        "sysctls": sysctls,
    }
    log(f"scenario {cfg['name']}: {size} sockets, plan {plan.expected}")
    orphans_now = global_orphans()
    if orphans_now + plan.close_wait_pairs > cfg["max_orphans"] // 4:
        die(
            f"{plan.close_wait_pairs} orphaned FIN_WAIT2 on top of {orphans_now} existing "
            f"orphans would exceed a quarter of the host's tcp_max_orphans ({cfg['max_orphans']})"
        )
    holders, makers = Workers(), Workers()
    deadline: float | None = None
    try:
        started = time.monotonic()
        if plan.held_fds:
            _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
            per_holder = hard - FD_RESERVE
            if per_holder < 1024:
                die(f"RLIMIT_NOFILE hard limit {hard} is too low to hold sockets")
            parts = math.ceil(plan.peak_fds / per_holder)
            for share in plan.split(parts):
                holders.spawn(hold, share, cfg["dests"], pass_ctl=True)
            holders.collect(timeout_s=600)
            log(f"  {parts} holders hold {plan.held_fds} descriptors")
        if plan.time_wait:
            # TIME_WAIT last: it lasts a fixed 60 s from here on.
            deadline = time.monotonic() + TIME_WAIT_LEN_S - TIME_WAIT_MARGIN_S
            workers = max(1, min(os.cpu_count() or 1, 4))
            base, extra = divmod(plan.time_wait, workers)
            offset = 0
            for w in range(workers):
                n = base + (1 if w < extra else 0)
                if plan.server_time_wait:
                    makers.spawn(make_server_time_wait, n, offset)
                else:
                    makers.spawn(make_time_wait, n, cfg["dests"], offset)
                offset += n
            makers.collect(timeout_s=300)
            makers.stop()
        scenario["create_s"] = time.monotonic() - started
        counts = wait_for_counts(plan.expected, timeout_s=20)
        scenario["counts_before"] = counts
        scenario["counts_ok"] = counts == plan.expected
        log(
            f"  created in {scenario['create_s']:.1f} s; ss counts {counts}"
            + ("" if scenario["counts_ok"] else f"  MISMATCH, expected {plan.expected}")
        )
        if cfg.get("shell"):  # --shell: a profiling session inside the built scenario
            scenario["shell_exit"] = subprocess.run(
                ["sh", "-c", cfg["shell"]], check=False
            ).returncode
            return scenario
        with open("/proc/loadavg", encoding="ascii") as handle:
            scenario["loadavg_before"] = handle.read().split()[:3]
        results, done, stopped = measure_all(
            specs, cfg["repeat"], cfg["timeout"], deadline, warmup=cfg["warmup"]
        )
        with open("/proc/loadavg", encoding="ascii") as handle:
            scenario["loadavg_after"] = handle.read().split()[:3]
        scenario["counts_after"] = ss_counts()
        scenario["rounds"] = done
        scenario["note"] = stopped
        summaries = []
        for spec, result in zip(specs, results, strict=True):
            if spec.counts is not None and result.ok:
                result.counts = parse_counts(spec.counts, result.last_stdout)
                if result.counts is not None:
                    result.counts_match = result.counts == (plan.expected or {})
            summaries.append(result.summary())
        keyed = {r.key: r for r in results}
        for spec, summary in zip(specs, summaries, strict=True):
            ref = keyed.get(spec.baseline or "")
            if spec.refreshes and ref is not None and ref.ok and summary["ok"]:
                extra_cpu = summary["median_cpu_s"] - statistics.median(ref.cpus_s)
                summary["cpu_per_refresh_s"] = extra_cpu / spec.refreshes
        scenario["commands"] = summaries
        if cfg.get("calibrate"):
            scenario["calibration"] = calibrate(cfg["timeout"])
    finally:
        makers.stop()
        holders.stop()
    return scenario


def run_in_namespace(cfg: dict[str, Any]) -> dict[str, Any]:
    """Re-execute this script under ``unshare --net`` for one scenario and load its result."""
    with temporary_directory() as tmp:
        result = Path(tmp) / "scenario.json"
        argv = [
            "unshare",
            "--net",
            "--",
            PY,
            str(Path(__file__).resolve()),
            "--inner-scenario",
            json.dumps(cfg),
            "--inner-result",
            str(result),
        ]
        proc = subprocess.run(argv, check=False, timeout=3600)
        if proc.returncode != 0 or not result.exists():
            return {
                "name": cfg["name"],
                "mix": cfg["mix"],
                "sockets": cfg["size"],
                "error": f"scenario process exited {proc.returncode}",
            }
        loaded: dict[str, Any] = json.loads(result.read_text())
        return loaded


def tool_versions() -> dict[str, str]:
    """Return the versions of the measured tools, best effort."""
    versions: dict[str, str] = {}
    for name, argv in (("ss", ["ss", "-V"]), ("netstat", ["netstat", "--version"])):
        try:
            out = subprocess.run(argv, capture_output=True, text=True, check=False).stdout
            versions[name] = out.splitlines()[0].strip() if out else "?"
        except OSError:
            versions[name] = "missing"
    try:
        import psutil

        versions["psutil"] = psutil.__version__
    except ImportError:
        versions["psutil"] = "missing"
    return versions


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(
        description="Benchmark tcptune against C floors, ss, netstat and psutil on many real "
        "sockets, each scenario in a throwaway network namespace."
    )
    parser.add_argument(
        "--sizes", default="10000,50000,200000", help="socket totals (default: %(default)s)"
    )
    parser.add_argument(
        "--mixes",
        default="server,client",
        help=f"socket mixes, of {', '.join(MIXES)} (default: %(default)s)",
    )
    parser.add_argument(
        "--big",
        default="timewait:500000",
        help="extra MIX:SIZE scenarios, comma-separated; '' for none (default: %(default)s)",
    )
    parser.add_argument("--repeat", type=int, default=5, help="runs per command (median)")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="CI-speed sanity run: 2,000 sockets of the server mix, 2 runs, no venv",
    )
    parser.add_argument(
        "--no-venv",
        action="store_true",
        help="run `python -m tcptune` from the checkout instead of a venv install",
    )
    parser.add_argument("--only", action="append", default=[], metavar="KEY")
    parser.add_argument("--dests", type=int, default=16, help="client-side TIME_WAIT destinations")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per command run")
    parser.add_argument("--no-idle", action="store_true", help="skip the idle-namespace scenario")
    parser.add_argument("--output", type=Path, default=RESULTS, help="JSON results path")
    parser.add_argument("--markdown", action="store_true", help="also print Markdown tables")
    parser.add_argument(
        "--shell",
        metavar="CMD",
        help="instead of measuring, run `sh -c CMD` inside each built scenario (for profiling; "
        "TIME_WAIT expires 60 s after it is built)",
    )
    parser.add_argument("--inner-scenario", help=argparse.SUPPRESS)
    parser.add_argument("--inner-result", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes, args.repeat, args.mixes, args.big, args.no_venv = (
            "2000",
            2,
            "server",
            "",
            True,
        )
    return args


def scenario_configs(args: argparse.Namespace, base: dict[str, Any]) -> list[dict[str, Any]]:
    """Return the scenarios to run: idle, every mix at every size, then the big ones."""
    try:
        sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
        mixes = [m for m in args.mixes.split(",") if m]
        big = [(m, int(n)) for m, _, n in (w.partition(":") for w in args.big.split(",") if w)]
    except ValueError:
        die("--sizes and --big take numbers (--big MIX:SIZE,...)")
    for mix in [*mixes, *(m for m, _ in big)]:
        if mix not in MIXES:
            die(f"unknown mix {mix!r}; known: {', '.join(MIXES)}")
    configs = []
    if not args.no_idle:
        configs.append(
            {
                **base,
                "name": "idle",
                "mix": "server",
                "size": 0,
                "repeat": max(args.repeat, 7),
                "warmup": True,
                "calibrate": True,
            }
        )
    for mix, size in [*((m, n) for m in mixes for n in sizes), *big]:
        configs.append(
            {
                **base,
                "name": f"{mix} {size:,}",
                "mix": mix,
                "size": size,
                "repeat": args.repeat,
                "warmup": False,
            }
        )
    return configs


def print_report(scenarios: Sequence[dict[str, Any]], markdown: bool) -> None:
    """Print the results, the targets and (with --markdown) the README tables."""
    from tabulate import tabulate

    print(
        tabulate(
            report.result_rows(scenarios), headers=report.RESULT_HEADERS, disable_numparse=True
        )
    )
    print()
    rows = report.all_targets(scenarios)
    print(
        tabulate(
            [row.cells() for row in rows], headers=report.TARGET_HEADERS, disable_numparse=True
        )
    )
    for sc in scenarios:
        notes = [sc["note"]] if sc.get("note") else []
        if sc.get("counts_ok") is False:
            notes.append(f"socket counts {sc['counts_before']} != expected {sc['expected']}")
        if sc.get("counts_after") not in (None, sc.get("counts_before")):
            notes.append(f"socket counts changed during measurement: now {sc['counts_after']}")
        if "calibration" in sc and not sc["calibration"]["ok"]:
            notes.append(f"max-RSS calibration failed: {sc['calibration']}")
        if "loadavg_before" in sc:
            notes.append(f"load average {sc['loadavg_before'][0]} -> {sc['loadavg_after'][0]}")
        for note in notes:
            print(f"note ({sc['name']}): {note}")
    if markdown:
        print()
        print(report.scaling_markdown(scenarios))
        print()
        print(report.targets_markdown(rows))


def main(argv: Sequence[str] | None = None) -> None:
    """Run every scenario in its own namespace, print the tables and write the JSON."""
    args = parse_args(argv)
    if args.inner_scenario is not None:
        os.chdir(REPO)
        scenario = run_scenario(json.loads(args.inner_scenario))
        Path(args.inner_result).write_text(json.dumps(scenario))
        return
    if os.geteuid() != 0:
        die("needs root: `unshare --net` requires CAP_SYS_ADMIN")
    for tool in ("unshare", "ip", "bash", "ss"):
        if shutil.which(tool) is None:
            die(f"{tool} not found")
    if args.repeat < 1 or not 1 <= args.dests <= 254:
        die("--repeat must be >= 1 and --dests within 1..254")
    with temporary_directory() as tmp:
        tools = prepare_tools(REPO, FLOORS, Path(tmp), venv=not args.no_venv)
        try:
            specs = select(commands(tools), args.only)
        except ValueError as exc:
            die(str(exc))
        base = {
            "host_netns": os.readlink("/proc/self/ns/net"),
            "max_orphans": int(Path("/proc/sys/net/ipv4/tcp_max_orphans").read_text()),
            "commands": [
                {**asdict(s), "ok_exit": sorted(s.ok_exit), "argv": list(s.argv)} for s in specs
            ],
            "dests": args.dests,
            "timeout": args.timeout,
            "shell": args.shell,
        }
        started = time.time()
        scenarios = [run_in_namespace(cfg) for cfg in scenario_configs(args, base)]
    if args.shell:
        sys.exit(max((sc.get("shell_exit", 1) for sc in scenarios), default=0))
    result = {
        "meta": {
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
            "duration_s": round(time.time() - started, 1),
            "kernel": platform.release(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "tools": tool_versions(),
            "argv": sys.argv[1:],
            "repeat": args.repeat,
            "mixes": {name: mix.description for name, mix in MIXES.items()},
            "tcptune": list(tools.tcptune),
            "method": "wall = bash EPOCHREALTIME around the command, median over repeats; "
            "max RSS = max over repeats of getrusage(RUSAGE_CHILDREN).ru_maxrss of the bash "
            "that ran the command (max over its reaped process tree); "
            "CPU = ru_utime + ru_stime of the same, median over repeats",
        },
        "scenarios": scenarios,
        "targets": [asdict(row) for row in report.all_targets(scenarios)],
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print_report(scenarios, args.markdown)
    print(f"\nJSON: {args.output}")


if __name__ == "__main__":
    main()
