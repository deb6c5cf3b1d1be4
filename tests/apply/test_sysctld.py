"""Boot order, key syntax and the drop-in, against temporary directory trees."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tcptune.apply.sysctld import (
    DROPIN_NAME,
    ConfLine,
    SearchPath,
    boot_files,
    boot_settings,
    boot_warnings,
    foreign_lines,
    install_dropin,
    key_to_path,
    parse_conf,
    plan_dropin,
    restore_dropin,
    winning_settings,
)
from tcptune.exitcodes import UsageError

FIN = "net/ipv4/tcp_fin_timeout"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """Return a root with the standard sysctl.d directories, all empty."""
    for directory in ("etc/sysctl.d", "run/sysctl.d", "usr/local/lib/sysctl.d", "usr/lib/sysctl.d"):
        (tmp_path / directory).mkdir(parents=True)
    return tmp_path


def put(root: Path, relative: str, text: str) -> Path:
    path = root / relative
    path.write_text(text)
    return path


def winner(root: Path) -> tuple[str, str] | None:
    settings, problems = boot_settings(SearchPath.under(root))
    assert problems == []
    found = winning_settings(settings).get(FIN)
    return (found.value, str(found.file.relative_to(root))) if found else None


@pytest.mark.parametrize(
    ("key", "path"),
    [
        ("net.ipv4.tcp_fin_timeout", FIN),
        ("net/ipv4/tcp_fin_timeout", FIN),
        ("net.ipv4.conf.enp3s0/200.forwarding", "net/ipv4/conf/enp3s0.200/forwarding"),
        ("net/ipv4/conf/enp3s0.200/forwarding", "net/ipv4/conf/enp3s0.200/forwarding"),
        ("kernel", "kernel"),
    ],
)
def test_keys_take_dots_or_slashes_as_sysctl_d_5_says(key: str, path: str) -> None:
    assert key_to_path(key) == path


def test_parse_conf_reads_values_comments_dash_prefix_and_skips_globs(tmp_path: Path) -> None:
    text = (
        "# comment\n; also a comment\n\n"
        "net.ipv4.tcp_fin_timeout=30\n"
        "  -net/ipv4/tcp_keepalive_time =  600  \n"
        "net.ipv4.ip_local_port_range = 1024\t65535\n"
        "net.ipv4.conf.*.rp_filter = 1\n"
        "-net.ipv4.conf.lo.rp_filter\n"
        "garbage without equals\n"
    )
    settings = parse_conf(text, tmp_path / "x.conf")
    assert [(s.path, s.value, s.line, s.ignore_errors) for s in settings] == [
        (FIN, "30", 4, False),
        ("net/ipv4/tcp_keepalive_time", "600", 5, True),
        ("net/ipv4/ip_local_port_range", "1024\t65535", 6, False),
    ]


def test_files_sort_by_name_across_directories(root: Path) -> None:
    put(root, "usr/lib/sysctl.d/50-default.conf", "net.ipv4.tcp_fin_timeout = 50\n")
    put(root, "etc/sysctl.d/20-early.conf", "net.ipv4.tcp_fin_timeout = 20\n")
    put(root, "run/sysctl.d/70-late.conf", "net.ipv4.tcp_fin_timeout = 70\n")
    assert winner(root) == ("70", "run/sysctl.d/70-late.conf")
    names = [p.name for p in boot_files(SearchPath.under(root))]
    assert names == ["20-early.conf", "50-default.conf", "70-late.conf"]


def test_a_name_in_etc_masks_the_same_name_in_run_and_usr_lib(root: Path) -> None:
    put(root, "usr/lib/sysctl.d/50-x.conf", "net.ipv4.tcp_fin_timeout = 1\n")
    put(root, "run/sysctl.d/50-x.conf", "net.ipv4.tcp_fin_timeout = 2\n")
    assert winner(root) == ("2", "run/sysctl.d/50-x.conf")
    put(root, "etc/sysctl.d/50-x.conf", "net.ipv4.tcp_fin_timeout = 3\n")
    assert winner(root) == ("3", "etc/sysctl.d/50-x.conf")
    assert len(boot_files(SearchPath.under(root))) == 1


def test_a_symlink_to_dev_null_masks_a_vendor_file(root: Path) -> None:
    put(root, "usr/lib/sysctl.d/50-x.conf", "net.ipv4.tcp_fin_timeout = 1\n")
    os.symlink("/dev/null", root / "etc/sysctl.d/50-x.conf")
    assert winner(root) is None


def test_etc_sysctl_conf_is_applied_after_every_drop_in(root: Path) -> None:
    put(root, "etc/sysctl.conf", "net.ipv4.tcp_fin_timeout = 5\n")
    put(root, "etc/sysctl.d/zz-last-name.conf", "net.ipv4.tcp_fin_timeout = 9\n")
    assert winner(root) == ("5", "etc/sysctl.conf")


def test_only_conf_files_count(root: Path) -> None:
    put(root, "etc/sysctl.d/README", "net.ipv4.tcp_fin_timeout = 1\n")
    put(root, "etc/sysctl.d/.hidden.conf", "net.ipv4.tcp_fin_timeout = 2\n")
    put(root, "etc/sysctl.d/x.conf.bak", "net.ipv4.tcp_fin_timeout = 3\n")
    assert winner(root) is None


def test_override_warning_names_the_later_file_and_value(root: Path) -> None:
    later = put(root, "usr/lib/sysctl.d/99-vendor.conf", "net/ipv4/tcp_fin_timeout = 45\n")
    put(root, "etc/sysctl.d/10-early.conf", "net.ipv4.tcp_fin_timeout = 30\n")
    dropin = root / "etc/sysctl.d" / DROPIN_NAME
    warnings = boot_warnings(SearchPath.under(root), dropin, "net.ipv4.tcp_fin_timeout = 15\n")
    assert len(warnings) == 1
    assert f"{later}:1 sets '45', which overrides '15'" in warnings[0]


def test_a_later_file_with_the_same_value_is_no_override(root: Path) -> None:
    put(root, "etc/sysctl.conf", "net.ipv4.ip_local_port_range = 1024   65535\n")
    dropin = root / "etc/sysctl.d" / DROPIN_NAME
    text = "net.ipv4.ip_local_port_range = 1024 65535\n"
    assert boot_warnings(SearchPath.under(root), dropin, text) == ()


def test_a_drop_in_outside_the_search_path_or_masked_is_reported(root: Path) -> None:
    search = SearchPath.under(root)
    elsewhere = root / "opt" / DROPIN_NAME
    assert "is not read at boot" in boot_warnings(search, elsewhere, "a.b = 1\n")[0]
    put(root, f"etc/sysctl.d/{DROPIN_NAME}", "# someone else's\n")
    masked = root / "usr/lib/sysctl.d" / DROPIN_NAME
    assert "hides" in boot_warnings(search, masked, "a.b = 1\n")[0]


def test_drop_in_is_written_atomically_with_header_and_replaced_only_if_ours(root: Path) -> None:
    search, directory = SearchPath.under(root), root / "etc/sysctl.d"
    settings = [("net.ipv4.tcp_fin_timeout", "15"), ("net.ipv4.ip_local_port_range", "1024 65535")]
    plan = plan_dropin(directory, search, "web", settings, 0.0, "root (uid 0)")
    assert plan.action == "create"
    install_dropin(plan)
    text = (directory / DROPIN_NAME).read_text()
    assert text.startswith("# tcptune-managed")
    assert "# profile web, written 1970-01-01T00:00:00Z by root (uid 0)" in text
    body = "net.ipv4.tcp_fin_timeout = 15\nnet.ipv4.ip_local_port_range = 1024 65535\n"
    assert text.endswith(body)
    assert sorted(p.name for p in directory.iterdir()) == [DROPIN_NAME]  # no temporary left

    again = plan_dropin(directory, search, "web", settings, 99.0, "root (uid 0)")
    assert again.action == "unchanged"  # the header's time does not count
    replaced = plan_dropin(directory, search, "web", settings[:1], 99.0, "root (uid 0)")
    assert replaced.action == "replace" and replaced.previous == text

    restore_dropin(directory / DROPIN_NAME, None)
    assert not (directory / DROPIN_NAME).exists()


def test_a_foreign_file_with_our_name_is_never_replaced(root: Path) -> None:
    foreign = put(root, f"etc/sysctl.d/{DROPIN_NAME}", "net.ipv4.tcp_fin_timeout = 7\n")
    with pytest.raises(UsageError, match="tcptune did not write it"):
        plan_dropin(root / "etc/sysctl.d", SearchPath.under(root), "web", [], 0.0, "root")
    assert foreign.read_text() == "net.ipv4.tcp_fin_timeout = 7\n"


WRITTEN = (
    "# tcptune-managed: written by `tcptune apply --persist`; tcptune replaces or removes\n"
    "# profile a, written 1970-01-01T00:00:00Z by root (uid 0)\n"
    "net.ipv4.tcp_fin_timeout = 15\n"
    "net.ipv4.tcp_keepalive_time = 600\n"
)


def test_foreign_lines_are_those_tcptune_did_not_write_and_will_not_keep() -> None:
    current = WRITTEN.replace("= 600", "= 900") + "\n# keep swap low\nvm.swappiness = 1\n"
    new = "# tcptune-managed\nnet.ipv4.tcp_fin_timeout = 20\nvm.swappiness = 1\n"
    assert foreign_lines(current, WRITTEN, new) == (
        ConfLine(4, "net.ipv4.tcp_keepalive_time = 900"),  # a hand-edited value
        ConfLine(6, "# keep swap low"),
    )  # vm.swappiness = 1 is kept by the new text, so it is not lost
    assert foreign_lines(WRITTEN, WRITTEN, new) == ()  # all tcptune's own


def test_without_a_record_every_setting_line_not_kept_is_named() -> None:
    new = "# tcptune-managed\nnet.ipv4.tcp_fin_timeout = 15\n"
    assert foreign_lines(WRITTEN, None, new) == (ConfLine(4, "net.ipv4.tcp_keepalive_time = 600"),)
