"""``python -m trioping``: the same command as the ``trioping`` script."""

from ._cli import run

if __name__ == "__main__":
    run()
