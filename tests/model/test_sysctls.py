"""The sysctl catalogue keeps tcptune's sanity range apart from what the kernel accepts."""

from __future__ import annotations

from tcptune.model.sysctls import KNOWN_SYSCTLS


def test_every_sysctl_says_what_the_kernel_accepts_apart_from_the_sanity_range() -> None:
    for name, spec in KNOWN_SYSCTLS.items():
        assert spec.kernel_accepts, f"{name}: say what the kernel's handler stores"
    assert KNOWN_SYSCTLS["net.ipv4.tcp_keepalive_probes"].minimum == 1  # sanity: 1..127
    assert "0..255" in KNOWN_SYSCTLS["net.ipv4.tcp_keepalive_probes"].kernel_accepts
    assert "no bounds" in KNOWN_SYSCTLS["net.ipv4.tcp_fin_timeout"].kernel_accepts
