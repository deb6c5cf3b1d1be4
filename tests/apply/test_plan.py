"""Plans built from committed procfs trees: what would change, be kept, skipped or block."""

from __future__ import annotations

from pathlib import Path

from tcptune.apply.plan import Action, Plan, read_plan, writable_text
from tcptune.exitcodes import BadInputError, ExitStatus, UnavailableError
from tcptune.inspect.procfs import ProcFS
from tcptune.model.sysctls import Unit
from tcptune.model.values import format_value, same_text
from tests.apply_support import load_profile, raw_profile


def actions(plan: Plan) -> dict[str, Action]:
    return {item.name: item.action for item in plan.items}


def test_container_plan_changes_keeps_and_skips_host_wide_keys(container_proc: ProcFS) -> None:
    profile = load_profile(
        "web",
        {
            "net.ipv4.tcp_fin_timeout": {"value": 15},
            "net.ipv4.tcp_keepalive_time": {"min": 600},  # fixture: 7200
            "net.ipv4.tcp_max_orphans": {"min": 65536},
        },
    )
    plan = read_plan(profile, container_proc)
    assert plan.context.initial_netns is False
    assert actions(plan) == {
        "net.ipv4.tcp_fin_timeout": Action.CHANGE,
        "net.ipv4.tcp_keepalive_time": Action.KEEP,
        "net.ipv4.tcp_max_orphans": Action.SKIP,
    }
    fin = plan.items[0]
    assert (fin.current, fin.current_text, fin.desired, fin.write_text) == (60, "60", 15, "15")
    assert "host-wide" in (plan.items[2].reason or "")
    assert plan.error() is None


def test_a_missing_key_blocks_unless_optional(old_host_proc: ProcFS) -> None:
    required = load_profile("x", {"net.ipv4.tcp_migrate_req": {"value": 1}})
    error = read_plan(required, old_host_proc).error()
    assert isinstance(error, UnavailableError)
    assert "net.ipv4.tcp_migrate_req: this kernel has no such key" in str(error)
    optional = load_profile("x", {"net.ipv4.tcp_migrate_req": {"value": 1, "optional": True}})
    assert actions(read_plan(optional, old_host_proc)) == {"net.ipv4.tcp_migrate_req": Action.SKIP}


def test_a_port_range_below_the_unprivileged_floor_is_blocked(container_proc: ProcFS) -> None:
    profile = raw_profile("low", {"net.ipv4.ip_local_port_range": (80, 90)})
    plan = read_plan(profile, container_proc)
    item = plan.items[0]
    assert item.action is Action.BLOCKED and item.blocked_status is ExitStatus.BAD_INPUT
    assert "below net.ipv4.ip_unprivileged_port_start (1024)" in (item.reason or "")
    assert isinstance(plan.error(), BadInputError)
    # Lowering the floor in the same profile makes the range acceptable.
    both = raw_profile(
        "low", {"net.ipv4.ip_unprivileged_port_start": 80, "net.ipv4.ip_local_port_range": (80, 90)}
    )
    assert plan_has_no_block(read_plan(both, container_proc, allow_unlisted=True))


def plan_has_no_block(plan: Plan) -> bool:
    return Action.BLOCKED not in actions(plan).values()


def test_port_lists_compare_as_sets_of_ports() -> None:
    assert same_text(Unit.PORT_LIST, "9000-9010,8080", "8080,9000-9005,9006-9010\n")
    assert not same_text(Unit.PORT_LIST, "8080", "8081")
    assert same_text(Unit.PORT_RANGE, "32768\t60999\n", "32768 60999")
    assert format_value((1024, 65535)) == "1024 65535"


def test_a_value_that_is_not_printable_ascii_blocks_the_plan(container_proc: ProcFS) -> None:
    name = "net.ipv4.ip_local_reserved_ports"
    for value in ("8080,\uff19\uff10\uff19\uff10", "8080\n9090", "8080\x1b[2J"):
        plan = read_plan(raw_profile("odd", {name: value}), container_proc)
        [item] = plan.items
        assert item.action is Action.BLOCKED and item.blocked_status is ExitStatus.BAD_INPUT
        assert f"the value {value!a} is not printable ASCII text" in (item.reason or "")
        assert isinstance(plan.error(), BadInputError)
    assert writable_text("8080,9000-9010") and writable_text("32768 60999")


def _tree_with(source: Path, tmp_path: Path, path: str, text: str) -> ProcFS:
    """Return a copy of the fixture tree ``source`` with one more file under sys/."""
    import shutil

    tree = tmp_path / "proc"
    shutil.copytree(source, tree, symlinks=True)
    (tree / "sys" / path).parent.mkdir(parents=True, exist_ok=True)
    (tree / "sys" / path).write_text(text)
    return ProcFS(tree)


def _with_swappiness(source: Path, tmp_path: Path) -> ProcFS:
    return _tree_with(source, tmp_path, "vm/swappiness", "60\n")


def test_a_key_outside_the_catalogue_is_refused_unless_allowed(
    old_host_proc: ProcFS, tmp_path: Path
) -> None:
    # Issue 11: vm.swappiness was planned (and written) through a fake proc root.
    procfs = _with_swappiness(old_host_proc.root, tmp_path)
    profile = raw_profile("vm", {"vm.swappiness": 10})
    [item] = read_plan(profile, procfs).items
    assert item.action is Action.BLOCKED and item.blocked_status is ExitStatus.BAD_INPUT
    assert "not in tcptune's catalogue" in (item.reason or "") and "--allow-unlisted" in (
        item.reason or ""
    )
    [allowed] = read_plan(profile, procfs, allow_unlisted=True).items
    assert allowed.action is Action.CHANGE
    assert "host-wide: the write changes the whole machine" in (allowed.scope_note or "")


def test_an_unlisted_host_wide_key_is_refused_in_a_container_even_when_allowed(
    container_proc: ProcFS, tmp_path: Path
) -> None:
    procfs = _with_swappiness(container_proc.root, tmp_path)
    [item] = read_plan(raw_profile("vm", {"vm.swappiness": 10}), procfs, allow_unlisted=True).items
    assert item.action is Action.BLOCKED
    assert "refused inside a container's network namespace" in (item.reason or "")


def test_a_read_only_key_is_blocked_in_the_dry_run(container_proc: ProcFS, tmp_path: Path) -> None:
    import shutil

    tree = tmp_path / "proc"
    shutil.copytree(container_proc.root, tree, symlinks=True)
    key = tree / "sys/net/ipv4/tcp_fin_timeout"
    key.chmod(0o444)  # as net.core.rmem_max shows inside a container
    [item] = read_plan(raw_profile("ro", {"net.ipv4.tcp_fin_timeout": 17}), ProcFS(tree)).items
    assert item.action is Action.BLOCKED and "read-only here (mode 0444)" in (item.reason or "")


def _with_allowed_cc(source: Path, tmp_path: Path) -> ProcFS:
    return _tree_with(source, tmp_path, "net/ipv4/tcp_allowed_congestion_control", "reno cubic\n")


def test_a_namespace_visible_global_key_is_host_wide_on_the_host(
    old_host_proc: ProcFS, tmp_path: Path
) -> None:
    procfs = _with_allowed_cc(old_host_proc.root, tmp_path)
    profile = raw_profile("cc", {"net.ipv4.tcp_allowed_congestion_control": "reno"})
    [item] = read_plan(profile, procfs, allow_unlisted=True).items
    assert item.action is Action.CHANGE
    assert "host-wide although every network namespace shows it" in (item.scope_note or "")
    assert "tcp_cong_list" in (item.scope_note or "")


def test_a_namespace_visible_global_key_is_refused_in_a_container(
    container_proc: ProcFS, tmp_path: Path
) -> None:
    procfs = _with_allowed_cc(container_proc.root, tmp_path)
    profile = raw_profile("cc", {"net.ipv4.tcp_allowed_congestion_control": "reno"})
    [item] = read_plan(profile, procfs, allow_unlisted=True).items
    assert item.action is Action.BLOCKED and item.blocked_status is ExitStatus.BAD_INPUT
    assert "refused inside a container's network namespace" in (item.reason or "")
