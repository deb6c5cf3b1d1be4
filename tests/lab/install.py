"""Build what users install (wheel, sdist) and install it where the checkout is invisible.

The suite runs against the checkout, which can hide a broken package: a module
the wheel leaves out is still importable from the working tree or from an
editable install. These helpers build the wheel and the sdist from a copy of
the source (the build never writes into the checkout), install the wheel into
a virtual environment made *without* system site packages, and run its console
script from a directory outside the checkout with a clean environment.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# What a wheel or sdist is built from: the packages, the profiles and the build files.
SOURCE_DIRS = ("tcptune", "profiles")
SOURCE_FILES = ("pyproject.toml", "setup.py", "README.md")
PROFILE_PACKAGE = "tcptune/bundled_profiles"  # profiles/ installs as this package (pyproject)
BUILD_TIMEOUT = 300  # seconds: a build or an install takes a few seconds with pip's cache
# A PATH without the checkout, pyenv shims or user bins: what a login shell of root has.
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def source_files() -> list[str]:
    """Return the files the packages must ship, relative to the checkout (``tcptune/...``).

    Tracked files when the checkout is a git work tree (an untracked scratch file
    is not expected to ship), otherwise every file but byte code.
    """
    done = subprocess.run(
        ["git", "-C", str(REPO), "ls-files", "-z", "--", *SOURCE_DIRS],
        capture_output=True,
        check=False,
    )
    if done.returncode == 0 and done.stdout:
        names = [name for name in done.stdout.decode().split("\0") if name]
        return sorted(name for name in names if (REPO / name).is_file())
    found = []
    for directory in SOURCE_DIRS:
        for path in (REPO / directory).rglob("*"):
            if path.is_file() and "__pycache__" not in path.parts:
                found.append(path.relative_to(REPO).as_posix())
    return sorted(found)


def installed_name(source_name: str) -> str:
    """Return where a source file lands in the wheel: profiles/X -> tcptune/bundled_profiles/X."""
    if source_name.startswith("profiles/"):
        return PROFILE_PACKAGE + source_name[len("profiles") :]
    return source_name


def copy_source(destination: Path, *, leave_out: Iterable[str] = ()) -> Path:
    """Copy what the packages are built from into ``destination``, without ``leave_out`` paths."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for directory in SOURCE_DIRS:
        shutil.copytree(REPO / directory, destination / directory, ignore=ignore)
    for name in SOURCE_FILES:
        shutil.copy2(REPO / name, destination / name)
    for name in leave_out:
        path = destination / name
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()
    return destination


def _run(command: list[str], cwd: Path | None = None) -> str:
    """Run a build step; raise AssertionError with its output when it fails."""
    done = subprocess.run(
        command, cwd=cwd, capture_output=True, text=True, check=False, timeout=BUILD_TIMEOUT
    )
    if done.returncode != 0:
        raise AssertionError(
            f"{' '.join(command)}: exit {done.returncode}\n{done.stdout}\n{done.stderr}"
        )
    return done.stdout


def build_wheel(source: Path, outdir: Path) -> Path:
    """Build a wheel from ``source`` offline (the setuptools installed here) and return it."""
    outdir.mkdir(parents=True, exist_ok=True)
    pip_wheel = [sys.executable, "-m", "pip", "wheel", "--no-build-isolation", "--no-deps", "-q"]
    _run([*pip_wheel, "--wheel-dir", str(outdir), str(source)])
    (wheel,) = outdir.glob("tcptune-*.whl")
    return wheel


def build_sdist(source: Path, outdir: Path) -> Path:
    """Build an sdist from ``source`` through setuptools' PEP 517 hook and return it."""
    outdir.mkdir(parents=True, exist_ok=True)
    hook = "import sys; from setuptools import build_meta; build_meta.build_sdist(sys.argv[1])"
    _run([sys.executable, "-c", hook, str(outdir)], cwd=source)
    (sdist,) = outdir.glob("tcptune-*.tar.gz")
    return sdist


def wheel_names(wheel: Path) -> set[str]:
    """Return the file names inside a wheel."""
    with zipfile.ZipFile(wheel) as archive:
        return {name for name in archive.namelist() if not name.endswith("/")}


def sdist_names(sdist: Path) -> set[str]:
    """Return the file names inside an sdist, without its top directory (``tcptune-X.Y.Z/``)."""
    with tarfile.open(sdist) as archive:
        return {
            member.name.split("/", 1)[1]
            for member in archive.getmembers()
            if member.isfile() and "/" in member.name
        }


def unpack_sdist(sdist: Path, destination: Path) -> Path:
    """Unpack an sdist and return its top directory."""
    with tarfile.open(sdist) as archive:
        archive.extractall(destination, filter="data")
    (top,) = destination.iterdir()
    return top


def build_requirements() -> list[str]:
    """Return pyproject.toml's build-system requirements (what pip's isolated build installs)."""
    with (REPO / "pyproject.toml").open("rb") as file:
        requires: list[str] = tomllib.load(file)["build-system"]["requires"]
    return requires


def download_dependencies(wheel: Path, wheelhouse: Path) -> None:
    """Fetch from the package index (pip's cache) into ``wheelhouse`` what installing needs.

    The wheel's dependencies, and the build backend, so that ``pip install --no-index
    --find-links WHEELHOUSE CHECKOUT`` can build in isolation as it would from the index.
    """
    wheelhouse.mkdir(parents=True, exist_ok=True)
    download = [sys.executable, "-m", "pip", "download", "-q", "--dest", str(wheelhouse)]
    _run([*download, str(wheel), *build_requirements()])


def clean_env(extra_path: Iterable[Path] = (), **extra: str) -> dict[str, str]:
    """Return a minimal environment: no PYTHONPATH, no virtualenv, no pyenv, a throwaway HOME."""
    path = os.pathsep.join([*(str(entry) for entry in extra_path), SYSTEM_PATH])
    env = {"PATH": path, "LANG": "C.UTF-8", "HOME": extra.pop("HOME", "/nonexistent")}
    env.update(extra)
    return env


@dataclass(frozen=True)
class Venv:
    """A virtual environment made without system site packages."""

    root: Path

    @property
    def python(self) -> Path:
        """Return the environment's interpreter."""
        return self.root / "bin" / "python"

    def script(self, name: str = "tcptune") -> Path:
        """Return an installed console script."""
        return self.root / "bin" / name

    def site_packages(self) -> Path:
        """Return the environment's site-packages directory."""
        (found,) = (self.root / "lib").glob("python3*/site-packages")
        return found


def make_venv(root: Path, wheel: Path, wheelhouse: Path | None, *, deps: bool = True) -> Venv:
    """Create a venv at ``root`` (no system site packages, no pip) and install ``wheel`` into it.

    The outer pip installs through ``--python`` (pip >= 22.3), which saves bootstrapping
    pip into every test venv; the dependencies come from ``wheelhouse`` only.
    """
    _run([sys.executable, "-m", "venv", "--without-pip", str(root)])
    venv = Venv(root)
    command = [sys.executable, "-m", "pip", "--python", str(venv.python), "install", "-q"]
    command += ["--no-index", "--find-links", str(wheelhouse)] if wheelhouse else ["--no-index"]
    command += [] if deps else ["--no-deps"]
    _run([*command, str(wheel)])
    return venv


def run_installed(
    command: list[str | Path],
    cwd: Path,
    env: Mapping[str, str],
    timeout: float = 60,
) -> subprocess.CompletedProcess[str]:
    """Run an installed program from ``cwd`` with exactly ``env``; never raise on its status."""
    return subprocess.run(
        [str(word) for word in command],
        cwd=cwd,
        env=dict(env),
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
    )
