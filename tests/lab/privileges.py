"""Run tcptune in a subprocess, and as an unprivileged user for real (no faked checks).

The test user is nobody (65534) with one capability left: CAP_DAC_READ_SEARCH,
only so that it can read the Python installation under /root (mode 0700 on
this image). It grants no write access and none of CAP_NET_ADMIN,
CAP_SYS_ADMIN or CAP_DAC_OVERRIDE, so writing /proc/sys or entering a
namespace fails exactly as it would for any ordinary user.
"""

from __future__ import annotations

import subprocess
import sys

UNPRIVILEGED: tuple[str, ...] = (
    "setpriv",
    "--reuid=65534",
    "--regid=65534",
    "--clear-groups",
    "--inh-caps=-all,+dac_read_search",
    "--ambient-caps=+dac_read_search",
)


def run_tcptune(*args: str, prefix: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    """Run tcptune in a subprocess (optionally behind ``prefix``, e.g. UNPRIVILEGED).

    A subprocess inherits the calling thread's network namespace, and entering
    another namespace (--netns/--pid) moves only the subprocess, never the test.
    """
    return subprocess.run(
        [*prefix, sys.executable, "-m", "tcptune", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
