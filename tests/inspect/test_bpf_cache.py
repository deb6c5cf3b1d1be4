"""The BTF layout cache's key: SHA-256 as hashlib computes it, without OpenSSL's libcrypto."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

from tcptune.inspect.bpf import cache

REPO = Path(__file__).resolve().parents[2]


def test_the_digest_is_hashlibs() -> None:
    for data in (b"", b"abc", bytes(range(256)) * 300):
        assert cache._sha256(data) == hashlib.sha256(data).hexdigest()


def test_a_key_loads_no_openssl(tmp_path: Path) -> None:
    btf = tmp_path / "btf"
    btf.write_bytes(b"not really BTF")  # no build id in the notes: the file's bytes are hashed
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from tcptune.inspect.bpf.cache import btf_key\n"
        f"print(btf_key(Path({str(btf)!r}), Path({str(tmp_path / 'none')!r}), '6.18', 'q'))\n"
        "print('_hashlib' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, check=True
    )
    key, openssl = result.stdout.split()
    identity = hashlib.sha256(b"not really BTF").hexdigest()
    text = f"6.18\0{len(b'not really BTF')}\0{identity}\0q"
    assert key == hashlib.sha256(text.encode()).hexdigest()[:32]
    assert openssl == "False"
