"""External tools the contrib tests check artefacts with (promtool, tmux, chromium).

``sh scripts/install-deps.sh`` installs each from Debian. A test whose tool is
missing skips locally and fails under CI, like a real-kernel test.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from .netns import skip_or_fail

DEBIAN_PACKAGE = {"promtool": "prometheus", "tmux": "tmux", "chromium": "chromium"}


def require_tool(name: str) -> str:
    """Return the path of ``name``, or skip (fail under CI) naming the package to install."""
    found = shutil.which(name)
    if found is None:
        package = DEBIAN_PACKAGE.get(name, name)
        skip_or_fail(f"{name} is not installed (Debian package {package}: scripts/install-deps.sh)")
    return found


def promtool(*args: str, stdin: str | None = None, cwd: Path | None = None) -> str:
    """Run promtool with ``args``; return its combined output, failing the test on an error."""
    result = subprocess.run(
        [require_tool("promtool"), *args],
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        cwd=cwd,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"promtool {' '.join(args)} failed:\n{output}"
    return output
