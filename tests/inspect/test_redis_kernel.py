"""The issue's own acceptance check: redis-server --tcp-keepalive 300 in a throwaway namespace.

redis sets SO_KEEPALIVE with TCP_KEEPIDLE on every client socket it accepts
(anetKeepAlive in src/anet.c), so a tcp_keepalive_time change reaches none of
them; the audit must say so, naming redis-server and its 300 s.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.lab import fresh_netns, require_netns_capability, skip_or_fail
from tests.lab.privileges import run_tcptune

pytestmark = pytest.mark.kernel
PORT = 6390
CLIENTS = 25


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    binary = shutil.which("redis-server")
    if binary is None:
        skip_or_fail("redis-server is not installed (scripts/install-deps.sh installs it)")
    reason = require_netns_capability()
    if reason is not None:
        skip_or_fail(reason)
    with fresh_netns():
        server = subprocess.Popen(
            [
                *(binary, "--tcp-keepalive", "300", "--port", str(PORT), "--bind", "127.0.0.1"),
                *("--save", "", "--appendonly", "no", "--dir", str(tmp_path)),
            ],
            stdout=subprocess.DEVNULL,
        )
        clients: list[socket.socket] = []
        try:
            deadline = time.monotonic() + 10
            while True:
                try:
                    socket.create_connection(("127.0.0.1", PORT)).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.02)
            for _ in range(CLIENTS):
                client = socket.create_connection(("127.0.0.1", PORT))
                client.sendall(b"PING\r\n")
                assert client.recv(16) == b"+PONG\r\n"  # accepted and set up by redis
                clients.append(client)
            yield server
        finally:
            for client in clients:
                client.close()
            server.terminate()
            server.wait(timeout=10)


def test_audit_says_redis_keeps_its_own_300_s(redis: subprocess.Popen[bytes]) -> None:
    done = run_tcptune("audit", "--json", "--options")
    if done.returncode == 3 and "CAP_BPF" in done.stderr:
        skip_or_fail(done.stderr)
    keepalive = next(f for f in json.loads(done.stdout)["findings"] if f["id"] == "keepalive")
    assert keepalive["data"]["reached"] == 0
    assert keepalive["data"]["keepalive_sockets"] == CLIENTS
    assert keepalive["data"]["own_idle"] == [
        {"process": "redis-server", "sockets": CLIENTS, "idle": 300}
    ]
    assert any(
        "(redis-server: 25 sockets, idle 300 s): a change of tcp_keepalive_time does not "
        "reach them" in line
        for line in keepalive["evidence"]
    )
