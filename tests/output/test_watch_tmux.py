"""tcptune watch in a real terminal (tmux): a steady leak reads "rising" on every screen.

tmux runs an interactive shell in a pane of its own server (a socket in tmp_path, no
configuration); the shell starts the watch inside a fresh network namespace (unshare -n)
together with a leak that leaves one more CLOSE_WAIT socket every 0.3 s. The watch
refreshes every 0.1 s: comparing with the previous refresh would say "rising" on one
screen in three, the window says it on every one. After q the pane must be back on the
shell's own screen, cursor shown, terminal modes as before.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.lab import require_netns_capability, require_tool, skip_or_fail

pytestmark = pytest.mark.kernel

REPO = Path(__file__).resolve().parents[2]
NOW = re.compile(r"CLOSE_WAIT rising: \+\d+ in [\d.]+ s, now (\d+)")
# One CLOSE_WAIT socket every PERIOD seconds, COUNT times; gone after LIFETIME seconds.
LEAK = """
import os, socket, sys, time
period, count, lifetime = float(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
open(sys.argv[4], "w").write(str(os.getpid()))
end = time.monotonic() + lifetime
listener = socket.socket()
listener.bind(("127.0.0.1", 0))
listener.listen(count)
held = []
for _ in range(count):
    client = socket.create_connection(listener.getsockname())
    held.append(listener.accept()[0])
    client.close()
    time.sleep(period)
time.sleep(max(0.0, end - time.monotonic()))
"""


class Tmux:
    """A private tmux server with one 100x40 pane running an interactive shell."""

    def __init__(self, workdir: Path) -> None:
        self.base = [require_tool("tmux"), "-S", str(workdir / "tmux.sock"), "-f", "/dev/null"]
        self.run("new-session", "-d", "-s", "t", "-x", "100", "-y", "40", "env PS1='$ ' sh -i")

    def run(self, *args: str) -> str:
        done = subprocess.run(
            [*self.base, *args], capture_output=True, text=True, check=True, timeout=10
        )
        return done.stdout

    def type(self, line: str) -> None:
        self.run("send-keys", "-t", "t", "-l", line)
        self.run("send-keys", "-t", "t", "Enter")

    def screen(self) -> str:
        return self.run("capture-pane", "-p", "-t", "t")

    def show(self, fmt: str) -> str:
        return self.run("display-message", "-p", "-t", "t", fmt).strip()

    def wait_for(self, text: str, timeout: float = 10.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            screen = self.screen()
            if text in screen:
                return screen
            time.sleep(0.05)
        raise AssertionError(f"{text!r} not on screen after {timeout} s:\n{self.screen()}")

    def close(self) -> None:
        subprocess.run([*self.base, "kill-server"], capture_output=True, check=False, timeout=10)


@pytest.fixture
def tmux(tmp_path: Path) -> Iterator[Tmux]:
    reason = require_netns_capability()
    if reason is not None:
        skip_or_fail(reason)
    terminal = Tmux(tmp_path)
    try:
        yield terminal
    finally:
        terminal.close()


def test_a_steady_leak_is_rising_on_every_screen_and_q_restores_the_terminal(
    tmux: Tmux, tmp_path: Path
) -> None:
    (tmp_path / "leak.py").write_text(LEAK)
    pidfile = tmp_path / "leak.pid"
    tmux.type(f"cd {shlex.quote(str(REPO))} && stty -g > {tmp_path / 'before'}")
    python = shlex.quote(sys.executable)
    inside = (
        f"ip link set lo up && {python} {tmp_path / 'leak.py'} 0.3 60 20 {pidfile} & "
        f"exec {python} -m tcptune watch --interval 0.1 --window 2 --owners"
    )
    tmux.type(f"unshare -n sh -c {shlex.quote(inside)}; echo watch-exit=$?")
    try:
        tmux.wait_for("▲ CLOSE_WAIT rising")
        assert tmux.show("#{alternate_on} #{cursor_flag}") == "1 0"  # full screen, no cursor
        screens = []
        for _ in range(16):  # 4 s: about 13 more leaked sockets, 40 refreshes
            time.sleep(0.25)
            screens.append(tmux.screen())
        for screen in screens:
            assert "▲ CLOSE_WAIT rising: +" in screen, screen
            assert "▲ CLOSE_WAIT of " in screen, screen  # the leaking process, by name
            row = next(line for line in screen.splitlines() if line.startswith("CLOSE_WAIT "))
            assert "█" in row, screen  # the sparkline climbs to the newest refresh
        counts = [int(NOW.search(screen)[1]) for screen in screens]  # type: ignore[index]
        assert counts[-1] - counts[0] >= 8  # the leak went on all along
        tmux.run("send-keys", "-t", "t", "q")
        after = tmux.wait_for("watch-exit=0")
    finally:
        if pidfile.exists():
            subprocess.run(["kill", pidfile.read_text()], check=False)
    # Back on the shell's own screen (the alternate screen left), cursor visible, modes
    # (echo, canonical input) as before.
    assert "stty -g >" in after and "CLOSE_WAIT" not in after
    assert tmux.show("#{alternate_on} #{cursor_flag}") == "0 1"
    tmux.type(f"stty -g > {tmp_path / 'after'}")
    deadline = time.monotonic() + 5
    while not (tmp_path / "after").exists() or not (tmp_path / "after").read_text():
        assert time.monotonic() < deadline, tmux.screen()
        time.sleep(0.05)
    assert (tmp_path / "after").read_text() == (tmp_path / "before").read_text()
