"""``python -m trioping.exporter``: the ``trioping-exporter`` command, a Prometheus exporter
with smokeping_prober's flags, configuration file and metrics.  Its dependencies are an
extra (``pip install 'trioping[exporter]'``); the library and the ``trioping`` command never
import them, nor this module."""

from __future__ import annotations

import sys
from collections.abc import Sequence

_NEEDED = ("prometheus_client", "hypercorn", "yaml")


def main(argv: Sequence[str] | None = None) -> int:
    for module in _NEEDED:
        try:
            __import__(module)
        except ImportError:
            print(
                f"trioping-exporter: needs {module}, which is not installed: pip install 'trioping[exporter]'",
                file=sys.stderr,
            )
            return 2
    from ._exporter import main as exporter_main

    return exporter_main(argv)


def run() -> None:
    sys.exit(main())


__all__ = ["main", "run"]

if __name__ == "__main__":
    run()
