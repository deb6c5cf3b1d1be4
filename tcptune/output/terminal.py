"""A full-screen terminal session that always gives the terminal back as it found it.

The escape sequences are xterm's (ctlseqs: the alternate screen buffer is
private mode 1049, the cursor 25), which every current terminal emulator and
tmux understand. Keys are read in cbreak mode (tty(3)): no echo, no line
buffering, and Ctrl-C still raises SIGINT.
"""

from __future__ import annotations

import contextlib
import errno
import os
import select
import signal
import sys
import termios
import tty
from collections.abc import Callable
from types import FrameType, TracebackType
from typing import Any, Self

from tcptune.run.watch import END_OF_INPUT, RESIZE

ENTER = "\x1b[?1049h\x1b[?25l"  # alternate screen, hide the cursor
LEAVE = "\x1b[?25h\x1b[?1049l"  # show the cursor, main screen
HOME = "\x1b[H"
CLEAR_LINE_END = "\x1b[K"
CLEAR_BELOW = "\x1b[J"
# Errors that mean the terminal is gone (hung up, or the reader of a pipe left).
GONE_ERRNOS = frozenset({errno.EIO, errno.EPIPE, errno.ENXIO, errno.EBADF})
STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)

Handler = Callable[[int, FrameType | None], object] | int | signal.Handlers | None


class TerminalGone(Exception):
    """The terminal went away (EIO/EPIPE on write): end quietly, nothing to restore."""


class StopSignal(Exception):
    """SIGTERM or SIGHUP arrived: leave the full screen, then die of the signal."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class FullScreen:
    """Own a terminal: alternate screen, hidden cursor, cbreak keys, resize events.

    ``__exit__`` restores the screen, the cursor, the terminal modes and the
    signal handlers whatever ended the block: an exception, Ctrl-C, SIGTERM
    or SIGHUP (raised in the block as StopSignal), or a vanished terminal.
    """

    def __init__(self, output_fd: int, input_fd: int | None = None) -> None:
        """Draw on ``output_fd``; read keys from ``input_fd`` if it is a terminal."""
        self.output_fd = output_fd
        self.input_fd = input_fd if input_fd is not None and os.isatty(input_fd) else None
        self._saved_modes: list[Any] | None = None
        self._saved_handlers: dict[int, Handler] = {}
        self._wake_read = self._wake_write = -1

    def __enter__(self) -> Self:
        """Switch to the alternate screen and install the signal handlers."""
        try:
            self._wake_read, self._wake_write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
            for signum in STOP_SIGNALS:
                self._saved_handlers[signum] = signal.signal(signum, self._on_stop)
            self._saved_handlers[signal.SIGWINCH] = signal.signal(signal.SIGWINCH, self._on_resize)
            if self.input_fd is not None:
                self._saved_modes = termios.tcgetattr(self.input_fd)
                tty.setcbreak(self.input_fd, termios.TCSANOW)
            self._write(ENTER)
        except BaseException:
            self._restore()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Give the terminal back: main screen, cursor, modes and handlers."""
        self._restore()

    # -- signals --------------------------------------------------------------------------

    def _on_stop(self, signum: int, _frame: FrameType | None) -> None:
        raise StopSignal(signum)

    def _on_resize(self, _signum: int, _frame: FrameType | None) -> None:
        # The self-pipe trick: select() in read_key wakes up on the byte.
        with contextlib.suppress(OSError):
            os.write(self._wake_write, b"w")

    def _restore(self) -> None:
        with contextlib.suppress(OSError, TerminalGone):
            self._write(LEAVE)
        if self._saved_modes is not None and self.input_fd is not None:
            with contextlib.suppress(OSError, termios.error):
                termios.tcsetattr(self.input_fd, termios.TCSAFLUSH, self._saved_modes)
            self._saved_modes = None
        for signum, handler in self._saved_handlers.items():
            signal.signal(signum, handler)
        self._saved_handlers.clear()
        for fd in (self._wake_read, self._wake_write):
            if fd >= 0:
                os.close(fd)
        self._wake_read = self._wake_write = -1

    # -- output ---------------------------------------------------------------------------

    def _write(self, text: str) -> None:
        data = text.encode("utf-8", "replace")
        try:
            while data:
                written = os.write(self.output_fd, data)
                data = data[written:]
        except OSError as exc:
            if exc.errno in GONE_ERRNOS:
                raise TerminalGone(os.strerror(exc.errno or 0)) from exc
            raise

    def size(self) -> tuple[int, int]:
        """Return (columns, lines), or 80×24 if the terminal does not say."""
        try:
            columns, lines = os.get_terminal_size(self.output_fd)
        except OSError:
            return 80, 24
        return (columns or 80, lines or 24)

    def draw(self, text: str) -> None:
        """Replace the screen with ``text``, line by line, without clearing first (no flicker)."""
        lines = text.rstrip("\n").split("\n")
        body = "".join(f"{line}{CLEAR_LINE_END}\r\n" for line in lines[:-1])
        self._write(f"{HOME}{body}{lines[-1]}{CLEAR_LINE_END}{CLEAR_BELOW}")

    # -- input ----------------------------------------------------------------------------

    def read_key(self, timeout: float) -> str | None:
        """Wait up to ``timeout`` s; return a key, RESIZE, END_OF_INPUT, or None."""
        watched = [self._wake_read] + ([self.input_fd] if self.input_fd is not None else [])
        readable, _, _ = select.select(watched, [], [], max(0.0, timeout))
        if self._wake_read in readable:
            with contextlib.suppress(BlockingIOError):
                while os.read(self._wake_read, 64):
                    pass
            return RESIZE
        if self.input_fd is not None and self.input_fd in readable:
            try:
                data = os.read(self.input_fd, 32)
            except OSError as exc:
                if exc.errno in GONE_ERRNOS:
                    return END_OF_INPUT
                raise
            return data.decode("utf-8", "replace") if data else END_OF_INPUT
        return None


def run_fullscreen(
    body: Callable[[FullScreen], object], output_fd: int, input_fd: int | None
) -> None:
    """Run ``body`` on a FullScreen; Ctrl-C and a vanished terminal end it quietly.

    After SIGTERM or SIGHUP the terminal is restored first, then the process
    dies of the same signal, so its parent sees the usual status.
    """
    try:
        with FullScreen(output_fd, input_fd) as screen:
            body(screen)
    except (KeyboardInterrupt, TerminalGone):
        return
    except StopSignal as stop:
        die_of(stop.signum)


def discard_stdout() -> None:
    """Point stdout at /dev/null, so the exit-time flush after EPIPE neither fails nor warns."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, ValueError, OSError):
        return  # not a real file (a test's capture): nothing will be flushed to a pipe
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, fd)
    os.close(null)


def die_of(signum: int) -> None:
    """End this process by ``signum`` with its default action."""
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


__all__ = [
    "FullScreen",
    "StopSignal",
    "TerminalGone",
    "die_of",
    "discard_stdout",
    "run_fullscreen",
]
