"""Run a command as an unprivileged user, for real (no faked privilege checks).

The test user is nobody (65534) with one capability left: CAP_DAC_READ_SEARCH,
only so that it can read the Python installation under /root (mode 0700 on
this image). It grants no write access and none of CAP_NET_ADMIN,
CAP_SYS_ADMIN or CAP_DAC_OVERRIDE, so writing /proc/sys or entering a
namespace fails exactly as it would for any ordinary user.
"""

from __future__ import annotations

UNPRIVILEGED: tuple[str, ...] = (
    "setpriv",
    "--reuid=65534",
    "--regid=65534",
    "--clear-groups",
    "--inh-caps=-all,+dac_read_search",
    "--ambient-caps=+dac_read_search",
)
