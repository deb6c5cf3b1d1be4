"""Issue 11: text output escapes what the system hands it; JSON stays exact (for real)."""

from __future__ import annotations

import ctypes
import json
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from click.testing import CliRunner

from tcptune.cli import cli
from tcptune.output.escape import escape, one_line, terminal_text
from tests.lab import SocketLab

PR_SET_NAME, PR_GET_NAME = 15, 16  # include/uapi/linux/prctl.h
HOSTILE = "\x1b[2J\x1b]0;pwn\x07x"  # clear screen, set title with OSC ... BEL


@contextmanager
def process_named(name: bytes) -> Iterator[None]:
    """Rename this (main) thread, which is the process's comm, for the body."""
    libc = ctypes.CDLL(None, use_errno=True)
    old = ctypes.create_string_buffer(16)
    libc.prctl(PR_GET_NAME, old, 0, 0, 0)
    libc.prctl(PR_SET_NAME, ctypes.c_char_p(name), 0, 0, 0)
    try:
        yield
    finally:
        libc.prctl(PR_SET_NAME, old, 0, 0, 0)


def test_escape_leaves_text_alone_and_escapes_every_control() -> None:
    assert escape("nginx: worker") == "nginx: worker"
    assert escape(HOSTILE) == "\\x1b[2J\\x1b]0;pwn\\x07x"
    assert escape("a\nb\u202ec\x9b") == "a\\nb\\u202ec\\x9b"
    assert terminal_text("line 1\nbad \x1b[31m\n") == "line 1\nbad \\x1b[31m\n"
    assert one_line("x" * 10_000, limit=100).endswith("(9940 more characters)")


@pytest.mark.kernel
def test_a_process_named_with_escape_sequences_is_escaped_in_text_and_exact_in_json(
    lab: SocketLab,
) -> None:
    lab.close_wait(3)
    lab.wait_for_states({"CLOSE_WAIT": 3, "FIN_WAIT2": 3})
    with process_named(HOSTILE.encode()):
        text = CliRunner().invoke(cli, ["audit"])
        data = CliRunner().invoke(cli, ["audit", "--json"])
    assert "\x1b" not in text.stdout and "\x07" not in text.stdout
    assert "\\x1b[2J\\x1b]0;pwn\\x07x" in text.stdout
    evidence = [line for f in json.loads(data.stdout)["findings"] for line in f["evidence"]]
    assert any(f" {HOSTILE} (user root)" in line for line in evidence)  # exact in JSON
