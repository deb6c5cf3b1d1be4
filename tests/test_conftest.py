"""The shared fixtures mark what they do: a namespace test is a kernel test, said or not."""

from __future__ import annotations

import pytest


def test_a_namespace_test_is_marked_kernel_without_saying_so(
    netns: str, request: pytest.FixtureRequest
) -> None:
    assert netns.startswith("net:[")
    assert request.node.get_closest_marker("kernel") is not None


def test_a_test_without_a_namespace_is_not(request: pytest.FixtureRequest) -> None:
    assert request.node.get_closest_marker("kernel") is None
