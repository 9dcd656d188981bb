"""``python -m trioping.fping``: the ``trioping-fping`` command (fping 5.1's options and
output, pinging with trioping).  The command lives in the private modules ``_fping`` and
``_fping_options``; the library never imports them."""

from __future__ import annotations

from ._fping import main, run

__all__ = ["main", "run"]

if __name__ == "__main__":
    run()
