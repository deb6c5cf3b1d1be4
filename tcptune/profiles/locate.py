"""Find profile files: an explicit path, the given directories, then the shipped ones.

Search order, first match wins: an explicit file path, then --profile-dir
directories, ~/.config/tcptune/profiles, /etc/tcptune/profiles, and the
profiles shipped in the package. Every directory is passed in.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # importlib.resources costs ~10 ms; load it only when listing
    from importlib.resources.abc import Traversable

from tcptune.exitcodes import BadInputError, UnavailableError
from tcptune.profiles.model import BrokenProfile, Profile, ProfileSource
from tcptune.profiles.resolve import resolve
from tcptune.profiles.validate import read_source, validate


def shipped_profiles() -> Traversable:
    """Return the directory of profiles shipped with tcptune.

    An installed wheel carries them as the data package tcptune.bundled_profiles
    (pyproject.toml maps it to the top-level profiles/); a source checkout,
    including an editable install run from the checkout, reads profiles/ itself.
    """
    from importlib.resources import files

    try:
        return files("tcptune.bundled_profiles")
    except ModuleNotFoundError:
        return Path(__file__).resolve().parents[2] / "profiles"


def default_profile_dirs(home: Path | None = None) -> tuple[Path, ...]:
    """Return the user and system profile directories, most specific first."""
    home = home or Path.home()
    return (home / ".config/tcptune/profiles", Path("/etc/tcptune/profiles"))


class ProfileLocator:
    """Find profiles by name in the given directories, then among the shipped ones.

    The directories are listed once per locator, and each file is read and
    validated at most once: resolving long ``extends`` chains for every
    profile would otherwise list and parse every directory per ancestor.
    """

    def __init__(self, dirs: Sequence[Path], shipped: Traversable | None = None) -> None:
        self.dirs = tuple(dirs)
        self.shipped = shipped if shipped is not None else shipped_profiles()
        self._listing: tuple[tuple[str, Traversable | Path], ...] | None = None
        self._positions: dict[str, list[int]] = {}  # name -> where it is, in search order
        self._sources: dict[int, ProfileSource] = {}
        self._validated: dict[str, Profile] = {}
        self.notes: list[str] = []  # directories skipped, e.g. an unreadable ~/.config

    def _candidates(self) -> tuple[tuple[str, Traversable | Path], ...]:
        """Return (name, file) for every profile file in search order, listing once."""
        if self._listing is None:
            found: list[tuple[str, Traversable | Path]] = []
            for directory in self.dirs:
                found += [(p.stem, p) for p in _listed(directory, self.notes)]
            found += sorted(
                (
                    (entry.name.removesuffix(".toml"), entry)
                    for entry in self.shipped.iterdir()
                    if entry.name.endswith(".toml")
                ),
                key=lambda item: item[0],
            )
            self._listing = tuple(found)
            for position, (name, _entry) in enumerate(found):
                self._positions.setdefault(name, []).append(position)
        return self._listing

    def _first_positions(self) -> list[int]:
        """Return the position of the first file of each name: the one a name finds."""
        self._candidates()
        return [positions[0] for positions in self._positions.values()]

    def _source_at(self, position: int) -> ProfileSource:
        source = self._sources.get(position)
        if source is None:
            name, entry = self._candidates()[position]
            source = ProfileSource(name, str(entry), read_source(entry), position)
            self._sources[position] = source
        return source

    def available(self) -> list[ProfileSource]:
        """Return every findable profile, one per name, the first location winning."""
        return [self._source_at(position) for position in self._first_positions()]

    def catalogue(self) -> list[Profile | BrokenProfile]:
        """Return every findable profile resolved, or why it cannot be used; one per name."""
        entries: list[Profile | BrokenProfile] = []
        for position in self._first_positions():
            name, entry = self._candidates()[position]
            try:
                entries.append(resolve(self._source_at(position), self))
            except BadInputError as exc:
                entries.append(BrokenProfile(name, str(entry), str(exc)))
        return entries

    def find(self, name_or_path: str, after: ProfileSource | None = None) -> ProfileSource:
        """Return the profile named ``name_or_path`` or at that file path.

        With ``after``, search only the locations after that profile's own: a
        profile that overrides another of the same name can extend it.
        """
        if "/" in name_or_path or name_or_path.endswith(".toml"):
            path = Path(name_or_path)
            if path.is_dir():
                raise UnavailableError(f"{name_or_path} is a directory, not a profile file")
            if not path.is_file():
                raise UnavailableError(f"no profile file {name_or_path}")
            return ProfileSource(path.stem, str(path), read_source(path))
        self._candidates()
        start = 0 if after is None else self._position_of(after) + 1
        for position in self._positions.get(name_or_path, []):
            if position >= start:
                return self._source_at(position)
        where = "" if after is None else f" after {after.path}"
        known = ", ".join(self._positions) or "none"
        raise UnavailableError(f"no profile named {name_or_path!r}{where} (available: {known})")

    def _position_of(self, source: ProfileSource) -> int:
        """Return where ``source`` sits in the search order; -1 for a file outside it."""
        if source.position is not None:
            return source.position
        wanted = _identity(source.path)
        for position, (_name, entry) in enumerate(self._candidates()):
            if _identity(str(entry)) == wanted:
                return position
        return -1

    def identity(self, source: ProfileSource) -> str:
        """Return a key that is the same for two sources exactly when they are one file."""
        position = self._position_of(source)
        return f"#{position}" if position >= 0 else _identity(source.path)

    def validate(self, source: ProfileSource) -> Profile:
        """Return :func:`validate` of ``source``, validating each file once."""
        profile = self._validated.get(source.path)
        if profile is None:
            profile = self._validated[source.path] = validate(source)
        return profile

    def load(self, name_or_path: str) -> Profile:
        """Find, validate and resolve a profile with its ancestors."""
        return resolve(self.find(name_or_path), self)


def _identity(path: str) -> str:
    """Return ``path`` with symlinks resolved, to tell whether two paths are one file."""
    import os

    return os.path.realpath(path)


def _listed(directory: Path, notes: list[str]) -> list[Path]:
    """Return the *.toml files of ``directory``; skip (with a note) one that cannot be listed."""
    try:
        if not directory.is_dir():
            return []
        return sorted(directory.glob("*.toml"))
    except OSError as exc:
        from tcptune.inspect.procfs import describe_os_error

        notes.append(f"skipped profile directory {directory}: {describe_os_error(exc)}")
        return []
