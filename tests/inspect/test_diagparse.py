"""Bulk parsing of fixed-size dump chunks gives what the message-by-message loop gives."""

from __future__ import annotations

import random
import socket
import struct

import pytest

from tcptune.inspect.diagparse import DumpParser, SockDiagError
from tcptune.inspect.sockdiag import details_builder
from tcptune.model.snapshot import Endpoint, SocketDetails

MULTI = 0x2


def message(
    state: int,
    *,
    family: int = socket.AF_INET,
    timer: int = 0,
    local: tuple[str, int] = ("127.0.0.1", 8080),
    remote: tuple[str, int] = ("127.0.0.2", 40000),
    inode: int = 0,
    size: int = 96,
) -> bytes:
    """Return one inet_diag_msg reply of ``size`` bytes (attributes as zero padding)."""

    def raw(address: str) -> bytes:
        return socket.inet_pton(family, address).ljust(16, b"\0")

    body = (
        struct.pack("=BBBB", family, state, timer, 0)
        + struct.pack("!HH", local[1], remote[1])
        + raw(local[0])
        + raw(remote[0])
        + struct.pack("=I8sIIIII", 0, bytes(8), 0, 0, 0, 0, inode)
    )
    body = body.ljust(size - 16, b"\0")
    return struct.pack("=IHHII", size, 18, MULTI, 1, 0) + body


def _random_messages(rng: random.Random, family: int, size: int, count: int) -> list[bytes]:
    prefix = "127.0.{}.{}" if family == socket.AF_INET else "fd00::{:x}:{:x}"
    states = [1, 1, 5, 6, 6, 6, 8, 10, 3]
    out = []
    for _ in range(count):
        state = rng.choice(states)
        out.append(
            message(
                state,
                family=family,
                timer=rng.choice([0, 2]),
                local=(prefix.format(rng.randrange(3), 1), rng.choice([80, 8080, 40001])),
                remote=(
                    prefix.format(rng.randrange(2), rng.randrange(1, 40)),
                    rng.randrange(1024, 1100),
                ),
                inode=rng.choice([0, rng.randrange(1, 10**6)]),
                size=size,
            )
        )
    return out


def _parse(chunks: list[bytes]) -> tuple[list[int], list[int], SocketDetails]:
    ipv4, ipv6 = [0] * 256, [0] * 256
    details = details_builder()
    parser = DumpParser(ipv4, ipv6, details)
    for chunk in chunks:
        parser.feed(bytearray(chunk), len(chunk))
    return ipv4, ipv6, details.build()


@pytest.mark.parametrize(("family", "size"), [(socket.AF_INET, 96), (socket.AF_INET6, 124)])
def test_bulk_chunks_read_like_single_messages(family: int, size: int) -> None:
    messages = _random_messages(random.Random(size), family, size, 400)
    bulk = _parse([b"".join(messages[:250]), b"".join(messages[250:])])
    single = _parse(messages)  # one message per chunk: the message-by-message loop
    assert bulk[:2] == single[:2]
    a, b = bulk[2], single[2]
    assert (a.established_keepalive, a.fin_wait2_orphaned, a.fin_wait2_held) == (
        b.established_keepalive,
        b.fin_wait2_orphaned,
        b.fin_wait2_held,
    )
    assert list(a.close_wait_inodes.items()) == list(b.close_wait_inodes.items())
    assert a.listeners == b.listeners
    for name in (
        "close_wait_by_local",
        "time_wait_by_remote",
        "time_wait_by_remote_address",
        "time_wait_by_local_port",
    ):
        assert dict(getattr(a, name)) == dict(getattr(b, name)), name
        assert getattr(a, name).total == getattr(b, name).total


def test_mixed_families_and_sizes_fall_back_and_still_count() -> None:
    rng = random.Random(1)
    messages = _random_messages(rng, socket.AF_INET, 96, 30) + _random_messages(
        rng, socket.AF_INET6, 96, 30
    )
    rng.shuffle(messages)
    odd = message(1, size=124)
    ipv4, ipv6, _details = _parse([b"".join(messages), b"".join(messages[:10]) + odd])
    assert sum(ipv4) + sum(ipv6) == 60 + 10 + 1


def test_interrupted_chunk_is_noticed_even_when_uniform() -> None:
    messages = [message(6) for _ in range(20)]
    flagged = bytearray(b"".join(messages))
    struct.pack_into("=H", flagged, 6, MULTI | 0x10)  # NLM_F_DUMP_INTR on the first
    parser = DumpParser([0] * 256, [0] * 256)
    parser.feed(flagged, len(flagged))
    assert parser.interrupted


def test_unknown_family_is_an_error() -> None:
    bad = message(1, family=socket.AF_INET)
    bad = bad[:16] + bytes([99]) + bad[17:]
    with pytest.raises(SockDiagError, match="unexpected address family 99"):
        DumpParser([0] * 256, [0] * 256).feed(bytearray(bad * 10), len(bad) * 10)


def close_wait_message(
    inode: int, last_ack: int, last_data: int, *, port: int = 8080, mark: bool = False
) -> bytes:
    """Return a CLOSE_WAIT reply with attributes as the kernel lays them out.

    INET_DIAG_SHUTDOWN (u8), INET_DIAG_MARK (u32) only with ``mark``, then
    INET_DIAG_INFO (a 232-byte struct tcp_info); without ``mark`` a trailing
    INET_DIAG_CONG keeps the total length the same, so only the layout differs.
    """
    shutdown = struct.pack("=HHB3x", 5, 8, 1)
    marked = struct.pack("=HHI", 8, 15, 7) if mark else b""
    info = bytearray(232)
    struct.pack_into("=II", info, 52, last_data, last_ack)
    tcp_info = struct.pack("=HH", 4 + len(info), 2) + info
    cong = b"" if mark else struct.pack("=HH4s", 8, 4, b"bbr\0")
    attributes = shutdown + marked + tcp_info + cong
    head = message(8, local=("127.0.0.1", port), inode=inode, size=88)
    size = len(head) + len(attributes)
    return struct.pack("=I", size) + head[4:] + attributes


def _close_wait_columns(chunks: list[bytes]) -> list[tuple[int, int, int, int]]:
    ipv4, _ipv6, details = _parse(chunks)
    ages = details.close_wait_ages
    assert ages is not None and len(ages) == ipv4[8]
    return list(
        zip(ages.inodes, ages.local_ports, ages.last_ack_ms, ages.last_data_ms, strict=True)
    )


def test_close_wait_ages_read_in_bulk_like_single_messages() -> None:
    rng = random.Random(8)
    messages = [
        close_wait_message(rng.randrange(1, 10**6), rng.randrange(10**7), rng.randrange(10**7))
        for _ in range(60)
    ]
    bulk = _close_wait_columns([b"".join(messages)])
    assert bulk == _close_wait_columns(messages)
    assert len(bulk) == 60 and [row[0] for row in bulk] == sorted(row[0] for row in bulk)
    assert {row[1] for row in bulk} == {8080}


@pytest.mark.parametrize(("family", "size"), [(socket.AF_INET, 96), (socket.AF_INET6, 124)])
def test_a_server_s_one_local_endpoint_counts_like_single_messages(family: int, size: int) -> None:
    # A server's TIME_WAIT (one pass) and CLOSE_WAIT sockets (another, with tcp_info) all
    # on its listening endpoint: each column holds one value, counted with one add.
    rng = random.Random(size)
    local = ("127.0.0.1" if family == socket.AF_INET else "fd00::1", 8080)
    remote = "127.0.0.9" if family == socket.AF_INET else "fd00::9"
    time_wait = [
        message(6, family=family, local=local, remote=(remote, rng.randrange(1, 9)), size=size)
        for _ in range(200)
    ]
    close_wait = [close_wait_message(n + 1, 10 * n, 20 * n) for n in range(100)]
    bulk = _parse([b"".join(time_wait), b"".join(close_wait)])
    single = _parse(time_wait + close_wait)
    assert bulk[:2] == single[:2]
    for name in ("close_wait_by_local", "time_wait_by_local_port", "time_wait_by_remote"):
        a, b = getattr(bulk[2], name), getattr(single[2], name)
        assert (dict(a), a.total, a.error) == (dict(b), b.total, b.error), name
    assert dict(bulk[2].close_wait_by_local) == {Endpoint("127.0.0.1", 8080): 100}
    assert dict(bulk[2].time_wait_by_local_port) == {8080: 200}


def test_a_chunk_whose_attribute_layout_differs_falls_back_per_message() -> None:
    plain = [close_wait_message(100 + n, 1000 * n, 2000 * n) for n in range(20)]
    marked = close_wait_message(999, 123_456, 234_567, mark=True)
    assert len(marked) == len(plain[0])  # same size: only the attribute walk tells them apart
    chunk = b"".join(plain[:10]) + marked + b"".join(plain[10:])
    rows = _close_wait_columns([chunk])
    expected = [(100 + n, 8080, 1000 * n, 2000 * n) for n in range(20)] + [
        (999, 8080, 123_456, 234_567)
    ]
    assert rows == expected  # a fixed offset would have read the marked one's wrong bytes


def test_close_wait_without_tcp_info_has_no_ages_but_counts() -> None:
    messages = [message(8, inode=n + 1) for n in range(12)]  # no attributes at all
    ipv4, _ipv6, details = _parse([b"".join(messages)])
    assert ipv4[8] == 12 and details.close_wait == 12
    assert details.close_wait_ages is None
    assert len(details.close_wait_inodes) == 12


def test_a_chunk_histogram_counts_every_state_byte() -> None:
    from collections import Counter

    from tcptune.inspect.diagparse import _histogram

    for states in (bytes([6]) * 372, bytes([1, 1, 5, 10, 1, 8, 8]), bytes(range(256)) * 3):
        assert _histogram(states) == Counter(states)
