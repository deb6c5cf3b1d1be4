"""Shared test fixtures: paths to committed procfs trees, resolved from this file."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tcptune.inspect.procfs import ProcFS
from tests.lab import SocketLab, kernel_lab

FIXTURES = Path(__file__).resolve().parent / "fixtures"


@pytest.fixture
def container_proc() -> ProcFS:
    """Return a procfs tree copied from a real container namespace (kernel 6.18)."""
    return ProcFS(FIXTURES / "container-ns")


@pytest.fixture
def old_host_proc() -> ProcFS:
    """Return a host-namespace tree that still has tcp_tw_recycle (a pre-4.12 kernel)."""
    return ProcFS(FIXTURES / "old-kernel-host")


@pytest.fixture
def broken_proc() -> ProcFS:
    """Return a tree with truncated lines, unknown states and missing files."""
    return ProcFS(FIXTURES / "broken")


@pytest.fixture
def lab() -> Iterator[SocketLab]:
    """Provide a SocketLab inside a fresh network namespace (fails in CI if impossible)."""
    with kernel_lab() as the_lab:
        yield the_lab
