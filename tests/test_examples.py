"""The README's library example and ``examples/`` run as written (loopback only)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from .conftest import REPO, requires_raw

pytestmark = requires_raw


def _run(*argv: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *argv], capture_output=True, text=True, timeout=timeout, check=False, cwd=REPO
    )


def test_the_readme_library_example_runs() -> None:
    section = (REPO / "README.md").read_text().split("## Library", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    done = _run("-c", code)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("5 0.0 ")
    assert lines[1].startswith("reply in ")
    assert sum(line.startswith("Reply(") for line in lines[2:]) == 3


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["examples/fanout_hosts.py", "127.0.0.1", "::1"], "127.0.0.1    3/3 replies"),
        (["examples/subnet_sweep.py", "127.0.9.0/29"], "127.0.9.6"),
        (["examples/monitor.py", "127.0.0.1", "::1", "--seconds", "0.5", "--every", "0.1"], "::1: "),
    ],
)
def test_the_examples_run(argv: list[str], expected: str) -> None:
    done = _run(*argv)
    assert done.returncode == 0, done.stderr
    assert expected in done.stdout
