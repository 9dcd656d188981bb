"""Every check, from scratch: ``python3 -m pip install nox && nox``.

The default sessions are ``tests``, ``lint`` and ``typecheck``; ``bench`` compares against
fping, iputils ping and icmplib and is run on request (``nox -s bench``).
"""

from __future__ import annotations

import nox

nox.options.sessions = ["tests", "lint", "typecheck"]
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = True

PYTHON = "3.11"


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    session.install("-e", ".[test]")
    session.run("pytest", *session.posargs)


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    session.install("ruff")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(python=PYTHON)
def typecheck(session: nox.Session) -> None:
    session.install("-e", ".[test]", "mypy", "nox")
    session.run("mypy", "--strict", "trioping", "tests")


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    session.install("-e", ".", "icmplib")
    scripts = session.posargs or [
        "benchmarks/rtt_accuracy.py",
        "benchmarks/fanout.py",
        "benchmarks/python_floor.py",
    ]
    for script in scripts:
        session.run("python", script)
