"""Shared test fixtures: procfs trees, throwaway namespaces, the CLI in-process, packages."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import settings

from tcptune.inspect.procfs import ProcFS
from tests.lab import (
    SocketLab,
    current_netns,
    fresh_netns,
    install,
    kernel_lab,
    require_netns_capability,
    skip_or_fail,
)

CliRun = Callable[..., tuple[int, str, str]]

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def pytest_configure(config: pytest.Config) -> None:
    """Keep every tcptune subprocess's BTF layout cache out of the host's /var/cache."""
    import os
    import tempfile

    os.environ.setdefault("TCPTUNE_BTF_CACHE", tempfile.mkdtemp(prefix="tcptune-btf-"))


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


# Property tests: no example database in the checkout, no per-example deadline
# (a loaded CI machine is slow, and speed is measured in bench/, not here).
settings.register_profile("tcptune", database=None, deadline=None, max_examples=100)
settings.load_profile("tcptune")


@pytest.fixture
def netns() -> Iterator[str]:
    """Run the test in a brand-new network namespace (kernel defaults), then leave it."""
    reason = require_netns_capability()
    if reason is not None:
        skip_or_fail(reason)
    host = current_netns()
    with fresh_netns() as inside:
        assert inside != host
        yield inside


def invoke(*args: str) -> tuple[int, str, str]:
    """Run the tcptune CLI in-process: exit status, stdout and stderr kept apart."""
    from tcptune.cli import cli

    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def cli() -> CliRun:
    """Return :func:`invoke`: ``code, out, err = cli("audit", "--json")``."""
    return invoke


# Fixtures that put a test into a throwaway namespace or the real kernel's lab.
KERNEL_FIXTURES = frozenset({"netns", "lab", "ip_netns"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that uses a namespace fixture `kernel`, whether or not it says so."""
    for item in items:
        if KERNEL_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.kernel)


@dataclass(frozen=True)
class Packages:
    """The wheel and the sdist built once per session from a copy of the checkout."""

    wheel: Path
    sdist: Path


@pytest.fixture(scope="session")
def packages(tmp_path_factory: pytest.TempPathFactory) -> Packages:
    """Build the wheel and the sdist (offline, with the setuptools installed here) once."""
    base = tmp_path_factory.mktemp("packages")
    source = install.copy_source(base / "source")
    dist = base / "dist"
    return Packages(install.build_wheel(source, dist), install.build_sdist(source, dist))


@pytest.fixture(scope="session")
def wheelhouse(packages: Packages, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Return a directory holding the wheel and its dependencies (from the index, once)."""
    directory = tmp_path_factory.mktemp("wheelhouse")
    try:
        install.download_dependencies(packages.wheel, directory)
    except AssertionError as exc:
        skip_or_fail(f"cannot fetch tcptune's dependencies from the package index: {exc}")
    return directory


@pytest.fixture(scope="session")
def installed(
    packages: Packages, wheelhouse: Path, tmp_path_factory: pytest.TempPathFactory
) -> install.Venv:
    """Return a venv (no system site packages) with the built wheel and its dependencies."""
    root = tmp_path_factory.mktemp("installed") / "venv"
    return install.make_venv(root, packages.wheel, wheelhouse)
