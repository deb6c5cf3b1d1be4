"""The JSON Schemas in tcptune/schemas/ describe what the commands really print.

Each schema is checked as a Draft 2020-12 schema, and then real outputs are
validated against it with the jsonschema library: every command run for real in a
throwaway network namespace (audit with CLOSE_WAIT sockets and a profile, the
plan, an apply, verify with a boot-time file, history, rollback, watch lines),
plus audits of the committed procfs trees (a container, a broken tree).
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from tests.conftest import FIXTURES
from tests.lab import SocketLab
from tests.lab.privileges import run_tcptune

SCHEMAS = resources.files("tcptune") / "schemas"
# Every command that prints JSON, and its schema.
OUTPUTS = {
    "audit": "audit --json",
    "plan": "apply PROFILE --json (with --apply too)",
    "verify": "verify PROFILE --json",
    "history": "history --json",
    "rollback": "rollback --json",
    "watch": "watch --json (each line)",
    "profiles": "profiles --json",
    "profile": "profiles show NAME --json",
    "sockets": "sockets --json",
}


def schema(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((SCHEMAS / f"{name}.json").read_text())
    return loaded


def valid(name: str, text: str) -> Any:
    """Return the parsed output after validating it against schemas/NAME.json."""
    document = json.loads(text)
    jsonschema.Draft202012Validator(schema(name)).validate(document)
    return document


@pytest.mark.parametrize("name", sorted(OUTPUTS))
def test_each_schema_is_a_valid_draft_2020_12_schema(name: str) -> None:
    loaded = schema(name)
    jsonschema.Draft202012Validator.check_schema(loaded)
    assert loaded["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert loaded["$id"].endswith(f"/schemas/{name}.json")


def test_every_shipped_schema_is_for_an_output() -> None:
    shipped = {entry.name.removesuffix(".json") for entry in SCHEMAS.iterdir()}
    assert shipped == set(OUTPUTS)


def ok(*args: str) -> str:
    done = run_tcptune(*args)
    assert done.returncode in (0, 1, 2, 4), done.stdout + done.stderr  # verdicts, not errors
    return done.stdout


@pytest.mark.parametrize("tree", ["container-ns", "broken", "old-kernel-host"])
def test_audits_of_committed_trees_match_the_schema(tree: str) -> None:
    done = run_tcptune("--proc-root", str(FIXTURES / tree), "audit", "--json")
    assert done.returncode in (0, 1, 2, 3)
    valid("audit", done.stdout)


def test_profiles_match_their_schemas() -> None:
    listed = valid("profiles", ok("profiles", "--json"))
    for entry in listed:
        valid("profile", ok("profiles", "show", entry["name"], "--json"))


def test_real_outputs_in_a_namespace_match_their_schemas(lab: SocketLab, tmp_path: Path) -> None:
    lab.close_wait(2)
    lab.wait_for_states({"CLOSE_WAIT": 2, "FIN_WAIT2": 2})
    audit = valid("audit", ok("audit", "--json", "--profile", "server-profile"))
    assert audit["sockets"]["states"]["CLOSE_WAIT"]["total"] == 2
    valid("audit", ok("audit", "--json", "--interval", "0.05", "--no-owners"))
    for line in ok("watch", "--json", "--count", "2", "--interval", "0.05").splitlines():
        valid("watch", line)

    state, boot = ["--state-dir", str(tmp_path / "state")], tmp_path / "boot"
    (boot / "etc/sysctl.d").mkdir(parents=True)
    (boot / "etc/sysctl.d/50-local.conf").write_text("net.ipv4.tcp_fin_timeout = 45\n")
    plan = valid("plan", ok("apply", "server-profile", "--json", *state))
    assert plan["mode"] == "dry-run"
    persisted = ok(
        "apply", "server-profile", "--json", "--persist", "--boot-root", str(boot), *state
    )
    valid("plan", persisted)
    drift = valid("verify", ok("verify", "server-profile", "--json", "--boot-root", str(boot)))
    assert drift["drifted"] is True
    applied = valid("plan", ok("apply", "server-profile", "--apply", "--json", *state))
    assert applied["mode"] == "applied" and applied["written"]
    verified = valid("verify", ok("verify", "server-profile", "--json"))
    # The typed target: a filter compares like with like (live 30 == expected 30).
    fin = next(i for i in verified["items"] if i["name"] == "net.ipv4.tcp_fin_timeout")
    assert fin["expected"] == {"op": "==", "value": 30} and fin["live"] == 30
    backlog = next(i for i in verified["items"] if i["name"] == "net.ipv4.tcp_max_syn_backlog")
    assert backlog["expected"] == {"op": ">=", "value": 8192} and backlog["live"] >= 8192
    assert all(
        item["live"] == item["expected"]["value"]
        for item in verified["items"]
        if item["state"] == "ok" and item["expected"]["op"] == "=="
    )
    valid("history", ok("history", "--json", *state))
    valid("rollback", ok("rollback", "--json", *state))
    valid("history", ok("history", "--json", *state))
