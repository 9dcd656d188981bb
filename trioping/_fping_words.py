"""fping's words, shared by the two fping-style commands (``trioping HOST1 HOST2 ...`` and
``trioping-fping``): its milliseconds and its names of ICMP errors.

A module of their own so that ``trioping-fping`` starts without importing the other
command's module (its options dataclass, its target parsing): start-up is a large part of
a whole process's time next to fping's.
"""

from __future__ import annotations


def fping_ms(seconds: float) -> str:
    """Milliseconds as fping prints them: 3 decimals below 1 ms, fewer as they grow."""
    ms = seconds * 1e3
    if ms < 0:
        return f"{ms:.2g}"
    if ms < 1:
        return f"{ms:.3f}"
    if ms < 10:
        return f"{ms:.2f}"
    if ms < 100:
        return f"{ms:.1f}"
    if ms < 1_000_000:
        return f"{ms:.0f}"
    return f"{ms:.3e}"


def _ms(seconds: float) -> str:
    """:func:`fping_ms`, with the usual case (under a millisecond) in line."""
    ms = seconds * 1e3
    return f"{ms:.3f}" if 0 <= ms < 1 else fping_ms(seconds)


_V4_UNREACHABLE = (
    "ICMP Network Unreachable",
    "ICMP Host Unreachable",
    "ICMP Protocol Unreachable",
    "ICMP Port Unreachable",
    "ICMP Unreachable (Fragmentation Needed)",
    "ICMP Unreachable (Source Route Failed)",
    "ICMP Unreachable (Destination Network Unknown)",
    "ICMP Unreachable (Destination Host Unknown)",
    "ICMP Unreachable (Source Host Isolated)",
    "ICMP Unreachable (Communication with Network Prohibited)",
    "ICMP Unreachable (Communication with Host Prohibited)",
    "ICMP Unreachable (Network Unreachable For Type Of Service)",
    "ICMP Unreachable (Host Unreachable For Type Of Service)",
    "ICMP Unreachable (Communication Administratively Prohibited)",
    "ICMP Unreachable (Host Precedence Violation)",
    "ICMP Unreachable (Precedence cutoff in effect)",
)
_V4_OTHER = {4: "ICMP Source Quench", 5: "ICMP Redirect", 11: "ICMP Time Exceeded", 12: "ICMP Parameter Problem"}
