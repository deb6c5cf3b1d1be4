"""Telling network namespaces apart: inode, cookie and boot id."""

from __future__ import annotations

import pytest

from tcptune.inspect.inspector import read_context
from tcptune.inspect.nsidentity import (
    NamespaceIdentity,
    current_namespace,
    namespace_difference,
    netns_cookie,
)
from tcptune.inspect.procfs import ProcFS
from tests.lab import fresh_netns, require_netns_capability, skip_or_fail

BOOT = "74b9b4cc-5b56-449e-a04a-de2b3be7033a"
INIT = 0xEFFFFFF9


def ns(
    inode: int | None, cookie: int | None, boot: str | None = BOOT, initial: bool | None = False
) -> NamespaceIdentity:
    return NamespaceIdentity(inode, initial, cookie, boot)


@pytest.mark.parametrize(
    ("recorded", "here", "verdict"),
    [
        (ns(4026532177, 7123), ns(4026532177, 7123), None),
        (ns(4026532177, 7123), ns(4026532177, 7125), "the same inode number: the kernel reused it"),
        (ns(4026532177, 7123), ns(4026532246, 7124), "was net:[4026532177] (cookie 7123)"),
        (ns(4026532177, 7123), ns(4026532177, 7123, "other-boot"), "during an earlier boot"),
        # No cookie on one side (an old record, or a kernel before 5.14): the inode decides.
        (ns(4026532177, None), ns(4026532177, 7123), None),
        (ns(4026532177, None, None), ns(4026532246, 7123), "this is net:[4026532246]"),
        # The host's own namespace is the host's across reboots: a persisted apply
        # must stay undoable after one.
        (ns(INIT, 1, initial=True), ns(INIT, 1, "other-boot", initial=True), None),
        (ns(INIT, 1, initial=True), ns(4026532177, 7123), "was the host's initial namespace"),
        (ns(4026532177, 7123), ns(INIT, 1, initial=True), "was another namespace"),
    ],
    ids=[
        "same",
        "inode-reused",
        "different",
        "earlier-boot",
        "old-record-same-inode",
        "old-record-other-inode",
        "host-after-reboot",
        "host-then-container",
        "container-then-host",
    ],
)
def test_namespace_difference(
    recorded: NamespaceIdentity, here: NamespaceIdentity, verdict: str | None
) -> None:
    difference = namespace_difference(recorded, here)
    if verdict is None:
        assert difference is None
    else:
        assert difference is not None and verdict in difference


@pytest.mark.kernel
def test_every_new_namespace_gets_a_new_cookie() -> None:
    reason = require_netns_capability()
    if reason is not None:
        skip_or_fail(reason)
    host = netns_cookie()
    assert host is not None  # Linux 5.14+ (this lab runs 6.x)
    cookies = []
    for _ in range(3):
        with fresh_netns():
            here = current_namespace(ProcFS(), read_context(ProcFS()))
            assert here.initial is False and here.boot_id
            cookies.append(here.cookie)
    assert len({host, *cookies}) == 4
