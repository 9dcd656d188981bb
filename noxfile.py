"""Every check, from scratch: ``python3 -m venv .venv && .venv/bin/pip install nox && .venv/bin/nox``.

The default sessions are ``tests`` (on every supported Python that nox can find), ``lint``
and ``typecheck`` (on one); ``bench`` compares against fping, iputils ping, icmplib, traceroute, mtr and
``python -c "import trio"``, and trioping-exporter with smokeping_prober, and is run on
request (``nox -s bench``).

Interpreters are found as nox finds them: ``python3.X`` on PATH, and the versions pyenv,
mise or asdf have active (``PYENV_VERSION=3.11.7:3.12.1:3.13.0 nox`` makes three pyenv
versions visible at once).  A supported version that is missing is skipped; only when none
is present does nox fail, naming them.
"""

from __future__ import annotations

import shutil
import subprocess

import nox

SUPPORTED = ("3.11", "3.12", "3.13", "3.14")


def _present(version: str) -> bool:
    """Whether nox will find this interpreter, asked the way nox asks."""
    try:
        from python_discovery import get_interpreter  # nox's own interpreter discovery
    except ImportError:  # an older nox: PATH only (a pyenv shim for an inactive version fails to run)
        found = shutil.which(f"python{version}")
        return found is not None and subprocess.run([found, "-c", ""], capture_output=True, check=False).returncode == 0
    return get_interpreter(version) is not None


PRESENT = [version for version in SUPPORTED if _present(version)]
TEST_PYTHONS = PRESENT or list(SUPPORTED)  # none present: nox fails on them, by name
CHECK_PYTHON = TEST_PYTHONS[0]  # lint and types need one interpreter (mypy checks for 3.11)

nox.options.sessions = ["tests", "lint", "typecheck"]
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = True
if hasattr(nox.options, "download_python"):  # run on what is present; no standalone builds fetched
    nox.options.download_python = "never"


@nox.session(python=TEST_PYTHONS)
def tests(session: nox.Session) -> None:
    session.install("-e", ".[test]")
    session.run("pytest", *session.posargs)


@nox.session(python=CHECK_PYTHON)
def lint(session: nox.Session) -> None:
    session.install("ruff")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(python=CHECK_PYTHON)
def typecheck(session: nox.Session) -> None:
    session.install("-e", ".[test]", "mypy", "nox", "types-PyYAML")  # PyYAML (the exporter extra) ships no types
    session.run("mypy", "--strict", "trioping", "tests")


@nox.session(python=CHECK_PYTHON)
def bench(session: nox.Session) -> None:
    # Installed as users install it: an editable install puts an import hook in every
    # interpreter's start-up, which whole-process timings would include.
    # pytest: the trace benchmark builds its lab with tests/tracelab.py
    session.install(".[exporter]", "icmplib", "pytest")
    scripts = session.posargs or [
        "benchmarks/cli_startup.py",
        "benchmarks/rtt_accuracy.py",
        "benchmarks/core.py",
        "benchmarks/fanout.py",
        "benchmarks/python_floor.py",
        "benchmarks/trace.py",
        "benchmarks/exporter.py",
    ]
    for script in scripts:
        session.run("python", script)
