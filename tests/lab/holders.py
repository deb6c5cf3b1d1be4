"""Real processes holding sockets with known options: tests/lab/holder.c, compiled with gcc.

Each holder runs as a binary named after its role (its comm is what tcptune
reports as the owner), listens on a loopback port in the caller's network
namespace, accepts the connections the test makes, sets options on each
accepted socket, and holds them until it is stopped.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
from pathlib import Path
from types import TracebackType
from typing import Self

SOURCE = Path(__file__).with_name("holder.c")


def build_holder(directory: Path) -> Path:
    """Compile holder.c into ``directory`` and return the binary."""
    if shutil.which("gcc") is None:
        from tests.lab.netns import skip_or_fail

        skip_or_fail("gcc is not installed: the socket-option holders cannot be built")
    binary = directory / "holder"
    subprocess.run(["gcc", "-O1", "-Wall", "-o", str(binary), str(SOURCE)], check=True)
    return binary


class Holder:
    """One holder process and the client ends of its connections (held by the test)."""

    def __init__(self, binary: Path, name: str, mode: str, port: int, count: int) -> None:
        named = binary.with_name(name)
        if not named.exists():
            shutil.copy2(binary, named)
        self.port = port
        self.process = subprocess.Popen(
            [str(named), mode, str(port), str(count)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        assert self.process.stdout.readline() == "listening\n"
        self.clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(count)]
        assert self.process.stdout.readline() == "ready\n"

    @property
    def pid(self) -> int:
        """Return the holder's process id."""
        return self.process.pid

    def stop(self) -> None:
        """Close the clients, end the holder and reap it."""
        for client in self.clients:
            client.close()
        if self.process.stdin:
            self.process.stdin.close()
        self.process.wait(timeout=10)
        if self.process.stdout:
            self.process.stdout.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
