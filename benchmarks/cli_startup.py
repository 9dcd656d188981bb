"""Start-up of the ``trioping`` command against ``python -c "import trio"``, side by side.

    python benchmarks/cli_startup.py               # 40 rounds
    python benchmarks/cli_startup.py --rounds 100
    python benchmarks/cli_startup.py --compare /tmp/old/.venv/bin/trioping   # before/after, same run

Both are whole processes of the same interpreter: ``trioping 127.0.0.1 -c 1`` (start-up,
option parsing, one probe to loopback, its reply, the summary) and the import of Trio that
any Trio program pays.  The goal is a ratio of at most 1.5.

Runs alternate (trio, trioping, trio, ...) so that a busy moment of a shared machine
touches both; medians are compared, of wall time and of CPU time (user + system, from
``wait4``), which a busy or throttled machine disturbs less.  The package's bytecode is compiled first, as
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


def timed(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU seconds of one run of *argv*."""
    start = time.perf_counter()
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    _pid, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(argv)} failed")
    return wall, usage.ru_utime + usage.ru_stime


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument(
        "--compare",
        nargs="*",
        default=[],
        metavar="TRIOPING",
        help="other trioping executables, timed in the same rounds",
    )
    args = parser.parse_args()
    import trioping  # the copy the command will run

    compileall.compile_dir(str(Path(trioping.__file__).parent), quiet=1)
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    baseline = [sys.executable, "-c", "import trio"]
    commands = [[*trioping_argv(), "127.0.0.1", "-c", "1"]] + [[path, "127.0.0.1", "-c", "1"] for path in args.compare]
    for command in commands:
        try:
            subprocess.run(command, capture_output=True, env=env, check=True, timeout=30)
        except subprocess.CalledProcessError as exc:
            print(f"{' '.join(command)} failed (status {exc.returncode}): {exc.stderr.decode().strip()[-300:]}")
            return 1
    for _ in range(3):  # warm the page cache
        for argv in (baseline, *commands):
            timed(argv, env)
    walls: list[list[float]] = [[] for _ in range(1 + len(commands))]
    cpus: list[list[float]] = [[] for _ in range(1 + len(commands))]
    for _ in range(args.rounds):
        for index, argv in enumerate((baseline, *commands)):
            wall, cpu = timed(argv, env)
            walls[index].append(wall)
            cpus[index].append(cpu)
    wall_medians = [statistics.median(column) for column in walls]
    cpu_medians = [statistics.median(column) for column in cpus]
    print(f"Whole-process start-up, {args.rounds} alternating rounds, medians (Python {sys.version.split()[0]}):")
    print(f"  {'':60} {'wall':>9} {'ratio':>6} {'CPU':>9} {'ratio':>6}")
    for index, argv in enumerate((baseline, *commands)):
        wall, cpu = wall_medians[index], cpu_medians[index]
        print(
            f"  {' '.join(argv):60} {wall * 1e3:6.1f} ms {wall / wall_medians[0]:5.2f}x"
            f" {cpu * 1e3:6.1f} ms {cpu / cpu_medians[0]:5.2f}x"
        )
    ratio = wall_medians[1] / wall_medians[0]
    verdict = "meets" if ratio <= GOAL else "misses"
    print(f"  {commands[0][0]}: {ratio:.2f}x python -c 'import trio' in wall time (goal <= {GOAL}x: {verdict})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
