"""Profile validation, inheritance and lookup order; errors name the file, key and problem."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tcptune.exitcodes import BadInputError, UnavailableError
from tcptune.profiles.locate import ProfileLocator

CC = "net.ipv4.tcp_congestion_control"  # a string value outside the catalogue
RESERVED = "net.ipv4.ip_local_reserved_ports"
HEAD = 'schema = 1\nname = "{name}"\nsummary = "s"\ndescription = "d"\n'


def write(directory: Path, name: str, body: str = "", head: str = HEAD) -> Path:
    path = directory / f"{name}.toml"
    path.write_text(head.format(name=name) + body)
    return path


def target(key: str, spec: str) -> str:
    return f'[sysctl."{key}"]\n{spec}\nwhy = "because"\nrisk = "this"\n'


@pytest.fixture
def empty_shipped(tmp_path: Path) -> Path:
    shipped = tmp_path / "shipped"
    shipped.mkdir()
    return shipped


def locator(directory: Path, shipped: Path) -> ProfileLocator:
    return ProfileLocator([directory], shipped=shipped)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("x = [", "TOML syntax"),
        ("colour = 1\n", "unknown field 'colour'"),
        (target("net.ipv4.tcp_fin_timeout", 'value = "30"'), "must be an integer, got '30'"),
        (target("net.ipv4.tcp_fin_timeout", "value = true"), "must be an integer, got True"),
        (target("net.ipv4.tcp_tw_reuse", "value = 3"), "3 is above the kernel's maximum 2"),
        (target("net.ipv4.tcp_keepalive_probes", "value = 0"), "below the kernel's minimum 1"),
        (target("net/../../etc/passwd", "value = 1"), "not a well-formed dotted sysctl name"),
        (
            target("net.ipv4.ip_local_port_range", "value = [60000, 1024]"),
            "low port 60000 is above high port 1024",
        ),
        (target("net.ipv4.ip_local_port_range", "value = 1024"), "must be [low, high]"),
        (target("net.ipv4.ip_local_reserved_ports", 'value = "80;443"'), "port list"),
        (target("net.ipv4.tcp_fin_timeout", "min = 60\nmax = 30"), "min 60 is above max 30"),
        (target("net.ipv4.tcp_fin_timeout", "value = 3\nmin = 1"), "either value, or min"),
        ('[sysctl."net.ipv4.tcp_fin_timeout"]\nvalue = 30\nrisk = "r"\n', "why: is required"),
        (
            '[sysctl."net.ipv4.tcp_fin_timeout"]\nvalue = 30\nwhy = "w"\nrisk = "r"\nbogus = 1\n',
            "unknown field 'bogus'",
        ),
        # Values the kernel reads as ASCII text, and that the sysctl.d drop-in
        # writes on one line: nothing else may slip in.
        (target(CC, 'value = "cubic\\nnet.ipv4.tcp_syncookies = 0"'), "found '\\n'"),
        (target(CC, 'value = "bbr\\r"'), "printable ASCII"),
        (target(CC, 'value = "cu\\tbic"'), "printable ASCII"),
        (target(CC, 'value = "cubic\\u001b[2J"'), "found '\\x1b'"),
        (target(CC, 'value = "cübic"'), "found 'ü'"),
        (target(RESERVED, 'value = "8080\\n"'), "port list"),
        (target(RESERVED, 'value = "80\\n,443"'), "port list"),
        (target(RESERVED, 'value = "٨٠"'), "port list"),  # Arabic-Indic digits
        (target(RESERVED, 'value = "70000"'), "port 70000 is above 65535"),
        (target(RESERVED, 'value = "8080,65530-65536"'), "port 65536 is above 65535"),
        (target(RESERVED, f'value = "{"9" * 5000}"'), "is above 65535"),
        (target(RESERVED, 'value = "9010-9000"'), "port range 9010-9000: 9010 is above 9000"),
        (target("net.ipv4.tcp_fin_timeout\\n", "value = 1"), "not a well-formed dotted"),
    ],
)
def test_bad_profiles_are_rejected_naming_file_and_key(
    tmp_path: Path, empty_shipped: Path, body: str, message: str
) -> None:
    path = write(tmp_path, "bad", body)
    with pytest.raises(BadInputError) as caught:
        locator(tmp_path, empty_shipped).load("bad")
    assert str(caught.value).startswith(str(path))
    assert message in str(caught.value)


def test_name_must_match_the_file(tmp_path: Path, empty_shipped: Path) -> None:
    (tmp_path / "one.toml").write_text(HEAD.format(name="two"))
    with pytest.raises(BadInputError, match="'two' does not match the file name 'one'"):
        locator(tmp_path, empty_shipped).load("one")


def test_inheritance_child_wins_and_chain_is_recorded(tmp_path: Path, empty_shipped: Path) -> None:
    write(
        tmp_path,
        "base",
        target("net.ipv4.tcp_fin_timeout", "value = 60")
        + target("net.core.somaxconn", "min = 1024"),
    )
    write(
        tmp_path, "child", 'extends = "base"\n' + target("net.ipv4.tcp_fin_timeout", "value = 30")
    )
    profile = locator(tmp_path, empty_shipped).load("child")
    assert profile.chain == ("child", "base")
    assert profile.targets["net.ipv4.tcp_fin_timeout"].value == 30
    assert profile.targets["net.ipv4.tcp_fin_timeout"].defined_in == "child"
    somaxconn = profile.targets["net.core.somaxconn"]
    assert (somaxconn.minimum, somaxconn.defined_in) == (1024, "base")
    assert somaxconn.satisfied_by(4096) and not somaxconn.satisfied_by(128)
    assert somaxconn.desired(128) == 1024 and somaxconn.desired(4096) == 4096


def test_inheritance_cycle_and_missing_parent(tmp_path: Path, empty_shipped: Path) -> None:
    write(tmp_path, "a", 'extends = "b"\n')
    write(tmp_path, "b", 'extends = "a"\n')
    with pytest.raises(BadInputError, match="inheritance cycle a -> b -> a"):
        locator(tmp_path, empty_shipped).load("a")
    write(tmp_path, "orphan", 'extends = "nobody"\n')
    with pytest.raises(BadInputError, match="parent profile 'nobody' not found"):
        locator(tmp_path, empty_shipped).load("orphan")


def test_user_directory_shadows_shipped_and_paths_work(tmp_path: Path) -> None:
    shipped, mine = tmp_path / "shipped", tmp_path / "mine"
    shipped.mkdir()
    mine.mkdir()
    write(shipped, "web", target("net.ipv4.tcp_fin_timeout", "value = 60"))
    write(mine, "web", target("net.ipv4.tcp_fin_timeout", "value = 20"))
    found = ProfileLocator([mine], shipped=shipped)
    assert found.load("web").targets["net.ipv4.tcp_fin_timeout"].value == 20
    assert [s.name for s in found.available()] == ["web"]
    by_path = found.load(str(shipped / "web.toml"))
    assert by_path.targets["net.ipv4.tcp_fin_timeout"].value == 60


def test_unknown_profile_lists_what_exists(tmp_path: Path, empty_shipped: Path) -> None:
    write(tmp_path, "alpha")
    with pytest.raises(UnavailableError, match=r"no profile named 'beta' \(available: alpha\)"):
        locator(tmp_path, empty_shipped).load("beta")
    with pytest.raises(UnavailableError, match=r"no profile file /nope/x\.toml"):
        locator(tmp_path, empty_shipped).load("/nope/x.toml")


def test_every_shipped_profile_validates_and_cites_sources() -> None:
    found = ProfileLocator([])
    names = {source.name for source in found.available()}
    assert {"kernel-default", "server-profile"} <= names
    for name in names:
        profile = found.load(name)
        assert len(profile.summary) <= 70, name
        for key, item in profile.targets.items():
            assert item.why and item.risk, (name, key)


@pytest.mark.parametrize("value", ["", "8080", "8080,9000-9010", "0-65535", "443,443"])
def test_good_reserved_port_lists_pass(tmp_path: Path, empty_shipped: Path, value: str) -> None:
    write(tmp_path, "ports", target(RESERVED, f'value = "{value}"'))
    assert locator(tmp_path, empty_shipped).load("ports").targets[RESERVED].value == value


def test_printable_ascii_string_values_pass(tmp_path: Path, empty_shipped: Path) -> None:
    write(tmp_path, "cc", target(CC, 'value = "cubic reno ~!"'))
    assert locator(tmp_path, empty_shipped).load("cc").targets[CC].value == "cubic reno ~!"


def test_a_utf8_byte_order_mark_is_accepted(tmp_path: Path, empty_shipped: Path) -> None:
    text = HEAD.format(name="bom") + target("net.ipv4.tcp_fin_timeout", "value = 30")
    (tmp_path / "bom.toml").write_bytes(b"\xef\xbb\xbf" + text.encode())
    profile = locator(tmp_path, empty_shipped).load("bom")
    assert profile.targets["net.ipv4.tcp_fin_timeout"].value == 30


def test_an_override_extends_the_profile_of_the_same_name_it_shadows(tmp_path: Path) -> None:
    mine, system, shipped = (tmp_path / name for name in ("mine", "etc", "shipped"))
    for directory in (mine, system, shipped):
        directory.mkdir()
    write(shipped, "web", target("net.ipv4.tcp_fin_timeout", "value = 60"))
    write(system, "web", 'extends = "web"\n' + target("net.core.somaxconn", "min = 1024"))
    write(mine, "web", 'extends = "web"\n' + target("net.ipv4.tcp_fin_timeout", "value = 20"))
    found = ProfileLocator([mine, system], shipped=shipped)
    profile = found.load("web")
    assert profile.chain == ("web", "web", "web")
    assert profile.targets["net.ipv4.tcp_fin_timeout"].value == 20
    assert profile.targets["net.core.somaxconn"].minimum == 1024
    # Given as a path, the system copy extends the next one after it: the shipped one.
    by_path = found.load(str(system / "web.toml"))
    assert by_path.chain == ("web", "web")
    assert by_path.targets["net.ipv4.tcp_fin_timeout"].value == 60
    # The last one has nothing after it to extend.
    write(shipped, "web", 'extends = "web"\n')
    with pytest.raises(BadInputError, match="parent profile 'web' not found in a location after"):
        ProfileLocator([mine, system], shipped=shipped).load("web")


def test_a_cycle_through_an_override_is_still_a_cycle(tmp_path: Path, empty_shipped: Path) -> None:
    mine, system = tmp_path / "mine", tmp_path / "etc"
    mine.mkdir()
    system.mkdir()
    write(mine, "a", 'extends = "b"\n')
    write(system, "b", 'extends = "a"\n')  # finds mine/a first: a real cycle
    with pytest.raises(BadInputError, match="inheritance cycle a -> b -> a"):
        ProfileLocator([mine, system], shipped=empty_shipped).load("a")


def test_catalogue_lists_every_profile_and_marks_the_broken_ones(
    tmp_path: Path, empty_shipped: Path
) -> None:
    from tcptune.profiles.model import BrokenProfile

    write(tmp_path, "alpha", target("net.ipv4.tcp_fin_timeout", "value = 30"))
    (tmp_path / "broken.toml").write_text("schema = [\n")
    (tmp_path / "latin1.toml").write_bytes(b"name = '\xe9'\n")
    write(tmp_path, "orphan", 'extends = "nobody"\n')
    write(tmp_path, "zulu")
    entries = locator(tmp_path, empty_shipped).catalogue()
    assert [entry.name for entry in entries] == ["alpha", "broken", "latin1", "orphan", "zulu"]
    broken = {entry.name: entry.reason for entry in entries if isinstance(entry, BrokenProfile)}
    assert set(broken) == {"broken", "latin1", "orphan"}
    assert "TOML syntax" in broken["broken"]
    assert "cannot read" in broken["latin1"]
    assert "parent profile 'nobody' not found" in broken["orphan"]


class CountingDirectory:
    """A shipped-profiles directory that counts how often it is listed."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.listings = 0

    def iterdir(self) -> Iterator[Path]:
        self.listings += 1
        return self.path.iterdir()


def test_long_extends_chains_list_each_directory_once(tmp_path: Path) -> None:
    # 301 chained profiles took 65 s to list: every parent lookup listed every directory.
    count = 301
    write(tmp_path, "p0")
    for number in range(1, count):
        write(tmp_path, f"p{number}", f'extends = "p{number - 1}"\n')
    shipped = CountingDirectory(tmp_path)
    entries = ProfileLocator([], shipped=shipped).catalogue()  # type: ignore[arg-type]
    assert len(entries) == count
    longest = max(entries, key=lambda entry: len(getattr(entry, "chain", ())))
    assert getattr(longest, "chain", ()) == tuple(f"p{n}" for n in range(count - 1, -1, -1))
    assert shipped.listings == 1
