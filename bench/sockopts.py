"""Measure the socket-option inventory (BPF TCP iterator) at N sockets, cold and warm cache.

Run as root from the checkout: `python3 -m bench.sockopts 10000 150000`. Each size runs in a
throwaway network namespace (unshare(CLONE_NEWNET) in a child process) filled
with N/2 loopback ESTABLISHED pairs held by that child; nothing touches the
host's namespace. Cold: a fresh BTF cache directory (the BTF is parsed and
resolved); warm: the same directory again (layout from the cache). Each is
measured REPEAT times; best and median are reported, with and without the
owner scan (one readlink per open descriptor), which is the inventory's
other cost. No timing is asserted anywhere: these are figures for README.
"""

from __future__ import annotations

import ctypes
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPEAT = 5
CLONE_NEWNET = 0x40000000


def _in_fresh_netns() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWNET) != 0:
        raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWNET)")
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    Path("/proc/sys/net/ipv4/ip_local_port_range").write_text("1024 65535\n")
    Path("/proc/sys/net/core/somaxconn").write_text("65535\n")


PAIRS_PER_HOLDER = 9000  # 18,000 descriptors: under a 20,000 RLIMIT_NOFILE


def _hold(pairs: int, ready: int, release: int) -> None:
    """In a forked holder: make ``pairs`` ESTABLISHED pairs, report, hold until released."""
    held = []
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4096)
    for index in range(pairs):
        client = socket.create_connection(listener.getsockname())
        if index % 2:  # half of them with keepalive, a tenth with their own idle
            client.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            if index % 10 == 1:
                client.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 300)
        held += [client, listener.accept()[0]]
    os.write(ready, b"k")
    os.read(release, 1)  # returns at EOF: the parent closed its end


def _fill(sockets: int) -> tuple[list[int], int]:
    """Fork holders making sockets/2 pairs in all; return their pids and the release fd."""
    release_read, release_write = os.pipe()
    ready_read, ready_write = os.pipe()
    pids, left = [], sockets // 2
    while left > 0:
        share = min(left, PAIRS_PER_HOLDER)
        left -= share
        pid = os.fork()
        if pid == 0:
            os.close(release_write)
            try:
                _hold(share, ready_write, release_read)
            finally:
                os._exit(0)
        pids.append(pid)
    os.close(release_read)
    for _ in pids:
        os.read(ready_read, 1)
    return pids, release_write


def _measure(cache: Path, owners: bool) -> float:
    from tcptune.inspect.bpf.seams import BpfSeams
    from tcptune.inspect.procfs import ProcFS
    from tcptune.inspect.sockopts import read_inventory

    idle = int(Path("/proc/sys/net/ipv4/tcp_keepalive_time").read_text())
    started = time.perf_counter()
    status = read_inventory(ProcFS(), idle, seams=BpfSeams(cache_dir=cache), owners=owners)
    elapsed = time.perf_counter() - started
    if status.inventory is None:
        raise SystemExit(f"inventory not available: {status.unavailable}")
    return elapsed


def run_size(sockets: int) -> dict[str, object]:
    """Fill a fresh namespace with ``sockets`` sockets and time the inventory there."""
    _in_fresh_netns()
    started = time.perf_counter()
    pids, release = _fill(sockets)
    filled = time.perf_counter() - started
    result: dict[str, object] = {"sockets": sockets + len(pids), "fill_seconds": round(filled, 1)}
    for owners in (False, True):
        cold, warm = [], []
        for _ in range(REPEAT):
            with tempfile.TemporaryDirectory() as directory:
                cold.append(_measure(Path(directory), owners))
                warm.append(_measure(Path(directory), owners))
        key = "with_owners" if owners else "no_owners"
        result[key] = {
            "cold_best_ms": round(min(cold) * 1000, 1),
            "cold_median_ms": round(statistics.median(cold) * 1000, 1),
            "warm_best_ms": round(min(warm) * 1000, 1),
            "warm_median_ms": round(statistics.median(warm) * 1000, 1),
        }
    os.close(release)
    for pid in pids:
        os.waitpid(pid, 0)
    return result


def main(sizes: list[int]) -> None:
    """Run each size in its own child (its own namespace) and print one JSON line per size."""
    if os.geteuid() != 0:
        raise SystemExit("bench.sockopts needs root (CAP_BPF, CAP_PERFMON, CAP_SYS_ADMIN)")
    for size in sizes:
        read_end, write_end = os.pipe()
        child = os.fork()
        if child == 0:
            os.close(read_end)
            try:
                line = json.dumps(run_size(size))
            except BaseException as exc:  # report, never escape the child
                line = json.dumps({"sockets": size, "error": repr(exc)})
            os.write(write_end, line.encode())
            os._exit(0)
        os.close(write_end)
        with os.fdopen(read_end) as pipe:
            print(pipe.read(), flush=True)
        os.waitpid(child, 0)


if __name__ == "__main__":
    main([int(arg) for arg in sys.argv[1:]] or [10_000, 150_000])
