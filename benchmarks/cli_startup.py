"""Start-up of the ``trioping`` command against ``python -c "import trio"``, side by side.

    python benchmarks/cli_startup.py               # 40 rounds
    python benchmarks/cli_startup.py --rounds 100

Both are whole processes of the same interpreter: ``trioping 127.0.0.1 -c 1`` (start-up,
option parsing, one probe to loopback, its reply, the summary) and the import of Trio that
any Trio program pays.  The goal is a ratio of at most 1.5.

Runs alternate (trio, trioping, trio, ...) so that a busy moment of a shared machine
touches both; medians are compared.  The package's bytecode is compiled first, as
``pip install`` does, so the first run does not pay for compiling (nor does any run under
``PYTHONDONTWRITEBYTECODE``).  Nothing here sends anywhere but 127.0.0.1.
"""

from __future__ import annotations

import argparse
import compileall
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
GOAL = 1.5


def trioping_argv() -> list[str]:
    """The console script next to this interpreter (as a user runs it), else ``-m``."""
    script = Path(sys.executable).with_name("trioping")
    if script.exists():
        return [str(script)]
    found = shutil.which("trioping")
    return [found] if found else [sys.executable, "-m", "trioping"]


def wall(argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, check=True, timeout=30)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=40)
    args = parser.parse_args()
    import trioping  # the copy the command will run

    compileall.compile_dir(str(Path(trioping.__file__).parent), quiet=1)
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    baseline = [sys.executable, "-c", "import trio"]
    command = [*trioping_argv(), "127.0.0.1", "-c", "1"]
    try:
        subprocess.run(command, capture_output=True, env=env, check=True, timeout=30)
    except subprocess.CalledProcessError as exc:
        print(f"{' '.join(command)} failed (status {exc.returncode}): {exc.stderr.decode().strip()[-300:]}")
        return 1
    for _ in range(3):  # warm the page cache
        wall(baseline, env)
        wall(command, env)
    trio_times: list[float] = []
    command_times: list[float] = []
    for _ in range(args.rounds):
        trio_times.append(wall(baseline, env))
        command_times.append(wall(command, env))
    trio_median = statistics.median(trio_times)
    command_median = statistics.median(command_times)
    ratio = command_median / trio_median
    print(f"Whole-process start-up, {args.rounds} alternating rounds, medians ({sys.version.split()[0]}):")
    print(f"  {' '.join(baseline):40} {trio_median * 1e3:7.1f} ms  (min {min(trio_times) * 1e3:.1f})")
    print(f"  {' '.join(command):40} {command_median * 1e3:7.1f} ms  (min {min(command_times) * 1e3:.1f})")
    verdict = "meets" if ratio <= GOAL else "misses"
    print(f"  ratio {ratio:.2f}x (goal <= {GOAL}x: {verdict}); min/min {min(command_times) / min(trio_times):.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
