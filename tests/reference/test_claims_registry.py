"""The claims registry: every claim has its kernel test, every ``Proven by:`` names a claim."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from tcptune.advise import DOCS
from tcptune.model.kernelcounters import COUNTER_DOCS
from tcptune.reference.claims import CLAIMS, TEST_MODULE
from tcptune.reference.explain import load_topics

ROOT = Path(__file__).resolve().parents[2]
PROVEN_BY = re.compile(r"^Proven by:((?:.+\n?)+?)(?:\n\n|\Z)", re.MULTILINE)


def kernel_tests() -> dict[str, str]:
    """Return test function name -> docstring of the kernel claims module."""
    tree = ast.parse((ROOT / TEST_MODULE).read_text(encoding="utf-8"))
    return {
        node.name: ast.get_docstring(node) or ""
        for node in tree.body
        if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")
    }


def proven_by(body: str) -> list[list[str]]:
    """Return the claim ids of each ``Proven by:`` paragraph in a topic body."""
    return [
        [part.strip() for part in match.group(1).replace("\n", " ").split(",") if part.strip()]
        for match in PROVEN_BY.finditer(body + "\n")
    ]


def test_every_claim_names_an_existing_kernel_test_that_names_it_back() -> None:
    tests = kernel_tests()
    for claim in CLAIMS.values():
        assert claim.test in tests, f"{claim.id}: no {claim.node_id}"
        assert f"Claim {claim.id}:" in tests[claim.test], f"{claim.test} docstring"
        assert claim.source and claim.statement


def test_every_kernel_claims_test_is_registered() -> None:
    registered = {claim.test for claim in CLAIMS.values()}
    assert set(kernel_tests()) == registered


def test_kernel_claims_module_is_marked_kernel() -> None:
    assert "pytestmark = pytest.mark.kernel" in (ROOT / TEST_MODULE).read_text(encoding="utf-8")


def test_every_proven_by_line_names_registered_claims() -> None:
    cited: set[str] = set()
    for name, topic in load_topics().items():
        for ids in proven_by(topic.body):
            assert ids, f"{name}: empty Proven by line"
            unknown = [claim for claim in ids if claim not in CLAIMS]
            assert not unknown, f"{name}: Proven by names unknown claims {unknown}"
            cited.update(ids)
    for doc in DOCS.values():
        unknown = [claim for claim in doc.proven_by if claim not in CLAIMS]
        assert not unknown, f"finding {doc.id}: proven_by names unknown claims {unknown}"
        cited.update(doc.proven_by)
    for counter in COUNTER_DOCS.values():  # the explain counters topic prints these
        cited.update(counter.proven_by)
    assert set(CLAIMS) <= cited, f"claims no topic or finding cites: {set(CLAIMS) - cited}"


def test_proven_by_parses_wrapped_lines() -> None:
    body = "text\n\nProven by: a-b, c,\nd-e\n\nmore"
    assert proven_by(body) == [["a-b", "c", "d-e"]]
