"""Shared fixtures: privilege checks, the network-namespace lab (tests/netlab.py), the
private namespaces of the datagram and option tests (tests/nsutil.py) and the router chain of
the trace tests (tests/tracelab.py)."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

pytest_plugins = ["tests.netlab", "tests.nsutil", "tests.tracelab", "tests.promlab"]


def _can_open_raw_icmp() -> bool:
    try:
        socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP).close()
    except PermissionError:
        return False
    return True


CAN_RAW = _can_open_raw_icmp()

requires_raw = pytest.mark.skipif(
    not CAN_RAW, reason="raw ICMP sockets need root or CAP_NET_RAW; run the suite as root to include these"
)


RX_STAMP_MAY_BE_LATE = "monotonic"
"""The clock a reply may fall back to right after the machine's first timestamping socket
opens: Linux switches receive stamping on from a workqueue (net_enable_timestamp), so a
reply in that window has no kernel RX stamp and is timed, and labelled, monotonic.  A lost
*transmit* stamp would show as ``kernel-rx`` instead, which the tests still reject."""


REPO = Path(__file__).resolve().parent.parent


def run_cli(*args: str, timeout: float = 30, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """``python -m trioping ARGS`` as a user runs it, bounded by *timeout* seconds."""
    return subprocess.run(
        [sys.executable, "-m", "trioping", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        cwd=REPO,
    )


def default_sigint() -> None:
    """``preexec_fn`` for a child that must die of SIGINT as usual: a child started from a
    non-interactive shell can inherit SIGINT as ignored."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
