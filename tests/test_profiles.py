"""Profile validation, inheritance and lookup order; errors name the file, key and problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from tcptune.exitcodes import BadInputError, UnavailableError
from tcptune.profiles import ProfileLocator

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
