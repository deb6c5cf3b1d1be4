"""Cache what was resolved from BTF, keyed by the running kernel's BTF identity.

Indexing ~126k BTF types costs ~0.2 s; the resolved layout is a few hundred
bytes of JSON. The key is the kernel release, the BTF file's size and the
kernel's GNU build id (/sys/kernel/notes), plus a hash of what was asked, so
a new kernel or a changed question misses. Cache files are untrusted input:
read without following links, bounded, and validated by the caller.
"""

from __future__ import annotations

import importlib
import json
import os
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

MAX_CACHE_BYTES = 1 << 20
NT_GNU_BUILD_ID = 3


def build_id(notes: bytes) -> str | None:
    """Return the GNU build id from an ELF note section such as /sys/kernel/notes."""
    position = 0
    while position + 12 <= len(notes):
        name_size, desc_size, kind = struct.unpack_from("<III", notes, position)
        name_start = position + 12
        desc_start = name_start + (name_size + 3) // 4 * 4
        name = notes[name_start : name_start + name_size]
        if kind == NT_GNU_BUILD_ID and name == b"GNU\0":
            return notes[desc_start : desc_start + desc_size].hex()
        position = desc_start + (desc_size + 3) // 4 * 4
    return None


def _sha256(data: bytes) -> str:
    """Return the SHA-256 hex digest from CPython's own module where there is one.

    hashlib imports _hashlib, i.e. OpenSSL's libcrypto: 3.7 MiB of RSS and a
    few ms for two digests of a few bytes. The built-in module (_sha2 since
    Python 3.12, _sha256 before) computes the same digest.
    """
    for name in ("_sha2", "_sha256", "hashlib"):
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        return str(module.sha256(data).hexdigest())
    raise ImportError("no SHA-256 implementation")


def btf_key(btf_path: Path, notes_path: Path, release: str, question: str) -> str:
    """Return the cache key of ``question`` asked of the BTF at ``btf_path``."""
    size = btf_path.stat().st_size
    try:
        with notes_path.open("rb") as handle:
            identity = build_id(handle.read(65536))
    except OSError:
        identity = None
    if identity is None:  # no build id: the BTF's own bytes identify it
        with btf_path.open("rb") as handle:
            identity = _sha256(handle.read())
    text = f"{release}\0{size}\0{identity}\0{question}"
    return _sha256(text.encode())[:32]


def load(cache_dir: Path, key: str) -> dict[str, Any] | None:
    """Return the cached layout for ``key``, or None if absent or unreadable."""
    path = cache_dir / f"btf-{key}.json"
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        with os.fdopen(fd, "rb") as handle:
            data = handle.read(MAX_CACHE_BYTES + 1)
    except OSError:
        return None
    if len(data) > MAX_CACHE_BYTES:
        return None
    try:
        value = json.loads(data)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def store(cache_dir: Path, key: str, value: dict[str, Any]) -> None:
    """Write the layout for ``key`` atomically; raise OSError if it cannot be written."""
    from tcptune.apply.atomicfile import atomic_write

    cache_dir.mkdir(mode=0o755, parents=True, exist_ok=True)
    atomic_write(cache_dir / f"btf-{key}.json", json.dumps(value, sort_keys=True), 0o644)


def cached_layout(
    where: tuple[Path, Path, Path | None],
    release: Callable[[], str],
    question: str,
    resolve: Callable[[], dict[str, Any]],
    valid: Callable[[dict[str, Any]], bool],
    debug: list[str],
) -> tuple[dict[str, Any], bool]:
    """Return a resolved layout and whether it came from the cache.

    ``where`` is (BTF file, kernel notes, cache directory or None). A cache
    that cannot be keyed, read or written is only a --debug line: the layout
    is then resolved from BTF (BtfError from ``resolve`` propagates).
    """
    btf_path, notes_path, cache_dir = where
    key = None
    if cache_dir is not None:
        try:
            key = btf_key(btf_path, notes_path, release().strip(), question)
        except (OSError, ValueError) as exc:
            debug.append(f"BTF cache unused: {exc}")
        if key is not None:
            found = load(cache_dir, key)
            if found is not None and valid(found):
                return found, True
    resolved = resolve()
    if key is not None and cache_dir is not None:
        try:
            store(cache_dir, key, resolved)
        except OSError as exc:
            debug.append(f"BTF cache not written: {exc}")
    return resolved, False
