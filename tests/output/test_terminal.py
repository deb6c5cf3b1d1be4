"""The full-screen terminal layer on a real pseudo-terminal: always restored, whatever happens."""

from __future__ import annotations

import contextlib
import os
import select
import signal
import socket
import subprocess
import sys
import termios
import time
from collections.abc import Iterator

import pytest

from tcptune.output.terminal import (
    ENTER,
    LEAVE,
    FullScreen,
    StopSignal,
    TerminalGone,
    run_fullscreen,
)
from tcptune.run.watch import END_OF_INPUT, RESIZE
from tests.lab import SocketLab


@pytest.fixture
def pty() -> Iterator[tuple[int, int]]:
    """Yield (master, slave) of a fresh pseudo-terminal; close whatever is left open."""
    master, slave = os.openpty()
    yield master, slave
    for fd in (master, slave):
        with contextlib.suppress(OSError):  # a test may have closed it already
            os.close(fd)


def drain(master: int, want: str = "", timeout: float = 5.0) -> str:
    """Read what the terminal received, until ``want`` appears (or nothing more arrives)."""
    seen = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        readable, _, _ = select.select([master], [], [], 0.05 if not want else 0.2)
        if not readable:
            if not want or want.encode() in seen:
                break
            continue
        try:
            chunk = os.read(master, 65536)
        except OSError:
            break
        seen += chunk
        if want and want.encode() in seen and not select.select([master], [], [], 0.05)[0]:
            break
    return seen.decode("utf-8", "replace")


def test_an_exception_leaves_the_terminal_as_it_was(pty: tuple[int, int]) -> None:
    master, slave = pty
    modes = termios.tcgetattr(slave)
    handlers = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGHUP, signal.SIGWINCH)}
    with pytest.raises(RuntimeError, match="boom"), FullScreen(slave, slave) as screen:
        assert not termios.tcgetattr(slave)[3] & termios.ECHO  # cbreak: no echo
        screen.draw("hello\nworld")
        raise RuntimeError("boom")
    assert termios.tcgetattr(slave) == modes
    assert {s: signal.getsignal(s) for s in handlers} == handlers
    output = drain(master)
    assert output.index(ENTER) < output.index("hello") < output.index("world")
    assert output.index("world") < output.index(LEAVE)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_a_stop_signal_restores_first_then_surfaces(pty: tuple[int, int], signum: int) -> None:
    master, slave = pty
    modes = termios.tcgetattr(slave)
    handler = signal.getsignal(signum)
    with pytest.raises(StopSignal) as stopped, FullScreen(slave, slave) as screen:
        os.kill(os.getpid(), signum)
        screen.read_key(2.0)  # the handler raises here at the latest
    assert stopped.value.signum == signum
    assert termios.tcgetattr(slave) == modes
    assert signal.getsignal(signum) == handler
    assert drain(master).endswith(LEAVE)


def test_ctrl_c_ends_the_full_screen_quietly(pty: tuple[int, int]) -> None:
    master, slave = pty
    modes = termios.tcgetattr(slave)

    def body(screen: FullScreen) -> None:
        raise KeyboardInterrupt

    run_fullscreen(body, slave, slave)  # returns: Ctrl-C is how one quits
    assert termios.tcgetattr(slave) == modes
    assert drain(master).endswith(LEAVE)


def test_keys_and_resize_events(pty: tuple[int, int]) -> None:
    master, slave = pty
    with FullScreen(slave, slave) as screen:
        assert screen.read_key(0.01) is None
        os.kill(os.getpid(), signal.SIGWINCH)
        assert screen.read_key(2.0) == RESIZE
        assert screen.read_key(0.01) is None  # the wake-up pipe was drained
        os.write(master, b"q")
        assert screen.read_key(2.0) == "q"


def test_a_vanished_terminal_ends_quietly(pty: tuple[int, int]) -> None:
    master, slave = pty
    with FullScreen(slave, slave) as screen:
        os.close(master)  # the terminal emulator is gone: writes now fail with EIO
        with pytest.raises(TerminalGone):
            screen.draw("anyone there?")
        assert screen.read_key(1.0) == END_OF_INPUT

    def body(screen: FullScreen) -> None:
        screen.draw("x")

    run_fullscreen(body, slave, slave)  # returns instead of raising


@pytest.mark.kernel
@pytest.mark.parametrize("stop", ["q", "SIGTERM"])
def test_watch_full_screen_on_a_pty(lab: SocketLab, pty: tuple[int, int], stop: str) -> None:
    lab.close_wait(2, socket.AF_INET)
    master, slave = pty
    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"} | {"TERM": "xterm"}
    # The child inherits this thread's (the lab's) network namespace.
    child = subprocess.Popen(
        [sys.executable, "-m", "tcptune", "watch", "--interval", "0.2"],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=env,
        start_new_session=True,
    )
    try:
        screen = drain(master, want="CLOSE_WAIT", timeout=10.0)
        assert ENTER in screen and "q quits" in screen
        assert "4 sockets via bpf" in screen or "4 sockets via netlink" in screen
        if stop == "q":
            os.write(master, b"q")
            assert child.wait(timeout=10) == 0
        else:  # restore the terminal, then die of the signal as if tcptune had no handler
            child.send_signal(signal.SIGTERM)
            assert child.wait(timeout=10) == -signal.SIGTERM
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert drain(master).endswith(LEAVE)
