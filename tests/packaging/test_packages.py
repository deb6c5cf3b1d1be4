"""The wheel and the sdist hold every module, topic file and profile of the source tree.

Both are built from a copy of the checkout (tests/lab/install.py), the way pip
builds them for `pip install .` or an upload; a package that setuptools does not
find, or a data file no package-data glob matches, fails here, not on a user's
machine.
"""

from __future__ import annotations

import email.parser
import tarfile
import zipfile
from pathlib import Path

import tcptune
from tests.conftest import Packages
from tests.lab import install

DIST_INFO = f"tcptune-{tcptune.__version__}.dist-info"


def expected_in_wheel() -> set[str]:
    """Return every file of tcptune/ and profiles/ under the name it must have in the wheel."""
    return {install.installed_name(name) for name in install.source_files()}


def test_the_source_tree_has_what_the_test_looks_for() -> None:
    names = install.source_files()
    # Guards against an expectation that silently shrank (a moved directory, a failing git).
    assert "tcptune/cli/group.py" in names and "tcptune/entry.py" in names
    assert any(name.startswith("tcptune/reference/topics/state/") for name in names)
    assert "profiles/server-profile.toml" in names


def test_the_wheel_holds_every_module_topic_and_profile(packages: Packages) -> None:
    names = install.wheel_names(packages.wheel)
    missing = sorted(expected_in_wheel() - names)
    assert missing == [], f"{packages.wheel.name} lacks {missing}"
    # Nothing else is installed at the top level (no stray tests/ or profiles/ package).
    assert {name.split("/")[0] for name in names} == {"tcptune", DIST_INFO}


def test_the_wheel_declares_the_console_script_and_the_version(packages: Packages) -> None:
    with zipfile.ZipFile(packages.wheel) as archive:
        entry_points = archive.read(f"{DIST_INFO}/entry_points.txt").decode()
        metadata = email.parser.Parser().parsestr(archive.read(f"{DIST_INFO}/METADATA").decode())
    assert "[console_scripts]\ntcptune = tcptune.entry:run\n" in entry_points
    assert metadata["Name"] == "tcptune"
    assert metadata["Version"] == tcptune.__version__
    assert metadata["Requires-Python"] == ">=3.11"


def test_the_sdist_holds_the_source_and_builds_a_complete_wheel(
    packages: Packages, tmp_path: Path
) -> None:
    names = install.sdist_names(packages.sdist)
    missing = sorted(set(install.source_files()) - names)
    assert missing == [], f"{packages.sdist.name} lacks {missing}"
    assert {"pyproject.toml", "setup.py", "README.md", "PKG-INFO"} <= names
    with tarfile.open(packages.sdist) as archive:
        member = archive.extractfile(f"tcptune-{tcptune.__version__}/PKG-INFO")
        assert member is not None
        assert email.parser.Parser().parsestr(member.read().decode())["Version"] == (
            tcptune.__version__
        )
    # pip install tcptune-X.tar.gz builds a wheel from the sdist: that one is complete too.
    top = install.unpack_sdist(packages.sdist, tmp_path / "unpacked")
    rebuilt = install.build_wheel(top, tmp_path / "dist")
    missing = sorted(expected_in_wheel() - install.wheel_names(rebuilt))
    assert missing == [], f"the wheel built from the sdist lacks {missing}"
