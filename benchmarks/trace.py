"""Traces through the router lab: ``trioping -T`` and ``--mtr`` against traceroute and mtr, side by side.

    python benchmarks/trace.py                  # every comparison, 5 alternating repeats
    python benchmarks/trace.py --repeat 9 --only mtr4 mtr6

The lab is the one the trace tests use (``tests/tracelab.py``: client, three routers, a
target; IPv4 and IPv6), built for this run in namespaces named after this process and
removed at the end.  Every command runs in the client namespace as a whole process
(``ip netns exec``, start-up included), the anchor and trioping alternating so that a busy
moment of a shared machine touches both; best and median wall times are shown with their
ratios:

* ``trace4`` / ``trace6``: ``traceroute -I -n TARGET`` against ``trioping -T -n TARGET``
  (3 probes a hop, all hops at once).  No goal: traceroute is a C program that is done in a
  few milliseconds, so the ratio is mostly Python's start-up (``python -c "import trio"`` in
  the same namespace is shown as the floor).  ``trace4-dgram``: trioping with every
  capability dropped (``setpriv``), so on ICMP datagram sockets.
* ``silent``: the same with router 2 sending no time-exceeded and a 1 s wait (``-w 1`` /
  ``-W 1``): the issue's "a trace completes in about one timeout at most" (hops in parallel).
* ``mtr4`` / ``mtr6``: ``mtr -r -n -c 10 -i 0.1 TARGET`` against
  ``trioping --mtr -n -c 10 -i 0.1 TARGET``; goal: at most 1.5x.  mtr's figure is its
  10 rounds plus its default grace time for late answers (``-G``, 5 s).  ``mtr4-dgram``:
  trioping without capabilities; ``mtr4-silent``: router 2 silent (trioping then waits out
  its ``-W`` for the last round's lost probes).  ``mtr4-grace``, for reference only: mtr
  with ``-G 0.1``, i.e. without most of its grace time.

A comparison whose tool is missing, or whose trioping option does not exist yet in the
installed trioping, is skipped with a line saying so.  Each command's output is checked
(exit status 0, the target listed) before it is timed.  Needs root (namespaces); nothing
here sends anywhere but the lab's own namespaces (198.19.70-75.x, 2001:db8:70-75::).
"""

from __future__ import annotations

import argparse
import compileall
import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # the lab lives with the tests

from tests.nsutil import _SETPRIV_NO_CAPS, _ip  # noqa: E402
from tests.tracelab import TraceLab, Unavailable, trace_lab  # noqa: E402

GOAL_MTR = 1.5


@dataclass(frozen=True)
class Comparison:
    name: str
    anchor: list[str]
    trioping: list[str]
    target: str
    needs: str  # the trioping option that must exist
    goal: float | None = None
    silence: int | None = None
    note: str = ""


def trioping_argv() -> list[str]:
    """The console script next to this interpreter (as a user runs it), else ``-m``."""
    script = Path(sys.executable).with_name("trioping")
    return [str(script)] if script.exists() else [sys.executable, "-m", "trioping"]


def comparisons(lab: TraceLab) -> list[Comparison]:
    trioping = trioping_argv()
    dropped = [*_SETPRIV_NO_CAPS, *trioping]  # no CAP_NET_RAW: datagram sockets
    mtr = ["-n", "-c", "10", "-i", "0.1"]
    t4, t6 = lab.target4, lab.target6
    grace = "mtr with its grace time cut to 0.1 s (-G 0.1), for reference: no goal"
    return [
        Comparison("trace4", ["traceroute", "-I", "-n", t4], [*trioping, "-T", "-n", t4], t4, "--traceroute"),
        Comparison("trace6", ["traceroute", "-I", "-n", t6], [*trioping, "-T", "-n", t6], t6, "--traceroute"),
        Comparison(
            "trace4-dgram",
            ["traceroute", "-I", "-n", t4],
            [*dropped, "-T", "-n", t4],
            t4,
            "--traceroute",
            note="trioping without capabilities (datagram sockets)",
        ),
        Comparison(
            "silent",
            ["traceroute", "-I", "-n", "-w", "1", t4],
            [*trioping, "-T", "-n", "-W", "1", t4],
            t4,
            "--traceroute",
            silence=2,
            note="about one wait (1 s) at most: hops in parallel",
        ),
        Comparison("mtr4", ["mtr", "-r", *mtr, t4], [*trioping, "--mtr", *mtr, t4], t4, "--mtr", goal=GOAL_MTR),
        Comparison("mtr6", ["mtr", "-r", *mtr, t6], [*trioping, "--mtr", *mtr, t6], t6, "--mtr", goal=GOAL_MTR),
        Comparison(
            "mtr4-dgram",
            ["mtr", "-r", *mtr, t4],
            [*dropped, "--mtr", *mtr, t4],
            t4,
            "--mtr",
            goal=GOAL_MTR,
            note="trioping without capabilities (datagram sockets)",
        ),
        Comparison(
            "mtr4-silent",
            ["mtr", "-r", *mtr, t4],
            [*trioping, "--mtr", *mtr, t4],
            t4,
            "--mtr",
            goal=GOAL_MTR,
            silence=2,
        ),
        Comparison(
            "mtr4-grace", ["mtr", "-r", *mtr, "-G", "0.1", t4], [*trioping, "--mtr", *mtr, t4], t4, "--mtr", note=grace
        ),
    ]


def timed(lab: TraceLab, argv: list[str], env: dict[str, str]) -> tuple[float, str | None]:
    """Wall seconds of *argv* run in the client namespace, and what was wrong with its output."""
    start = time.perf_counter()
    done = subprocess.run(
        [_ip(), "netns", "exec", lab.client, *argv], capture_output=True, text=True, env=env, cwd="/", timeout=120
    )
    wall = time.perf_counter() - start
    if done.returncode != 0:
        return wall, f"exit status {done.returncode}: {(done.stderr or done.stdout).strip()[-300:]}"
    if argv[-1] not in done.stdout.split("\n", 1)[-1]:  # beyond a header line naming the target
        return wall, f"the target is not among the hops:\n{done.stdout}"
    return wall, None


def has_option(env: dict[str, str], option: str) -> bool:
    done = subprocess.run([*trioping_argv(), "--help"], capture_output=True, text=True, env=env, timeout=60)
    return option in done.stdout


def fmt(seconds: float) -> str:
    return f"{seconds * 1e3:9.1f} ms"


def compile_installed_trioping(env: dict[str, str]) -> None:
    """Compile the bytecode of the trioping the command will run (as ``pip install`` does)."""
    where = subprocess.run(
        [sys.executable, "-c", "import os, trioping; print(os.path.dirname(trioping.__file__))"],
        capture_output=True,
        text=True,
        env=env,
        cwd="/",
        timeout=60,
        check=True,
    ).stdout.strip()
    compileall.compile_dir(where, quiet=1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--only", nargs="*", default=[], metavar="NAME", help="comparisons by name (see the docstring)")
    args = parser.parse_args()
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    compile_installed_trioping(env)
    failed = False
    with contextlib.ExitStack() as stack:
        try:
            lab = stack.enter_context(trace_lab())
        except Unavailable as exc:
            print(f"trace benchmark skipped: the lab cannot be built here ({exc})")
            return 0
        floor = [timed(lab, [sys.executable, "-c", "import trio"], env)[0] for _ in range(max(3, args.repeat))]
        print(f"Traces through the 3-router lab, whole processes in its client namespace, {args.repeat} repeats")
        print(f"  floor: python -c 'import trio' best {fmt(min(floor))}, median {fmt(statistics.median(floor))}")
        for case in comparisons(lab):
            if not args.only or case.name in args.only:
                failed |= not compare(lab, case, env, args.repeat)
    return 1 if failed else 0


def compare(lab: TraceLab, case: Comparison, env: dict[str, str], repeat: int) -> bool:
    """Time one comparison and print it; False when a command's output was wrong."""
    anchor_tool = case.anchor[0]
    if shutil.which(anchor_tool) is None:
        print(f"{case.name}: skipped, {anchor_tool} is not installed (apt-get install {anchor_tool})")
        return True
    runs = {"anchor": case.anchor}
    missing = not has_option(env, case.needs)
    if not missing:
        runs["trioping"] = case.trioping
    with lab.silence(case.silence) if case.silence else contextlib.nullcontext():
        for argv in runs.values():  # once untimed: page cache, and the output checked
            _wall, problem = timed(lab, argv, env)
            if problem:
                print(f"{case.name}: {' '.join(argv)}: {problem}")
                return False
        walls: dict[str, list[float]] = {key: [] for key in runs}
        for _ in range(repeat):
            for key, argv in runs.items():
                wall, problem = timed(lab, argv, env)
                if problem:
                    print(f"{case.name}: {' '.join(argv)}: {problem}")
                    return False
                walls[key].append(wall)
    silenced = f" (router {case.silence} silent)" if case.silence else ""
    note = f" -- {case.note}" if case.note else ""
    print(f"{case.name}{silenced}{note}:")
    shown = {
        key: " ".join(Path(word).name if word.startswith("/") else word for word in argv) for key, argv in runs.items()
    }
    width = max(55, *(len(text) for text in shown.values()))
    for key, text in shown.items():
        print(f"  {text:{width}} best {fmt(min(walls[key]))}  median {fmt(statistics.median(walls[key]))}")
    if missing:
        print(f"  trioping: skipped, this trioping has no {case.needs} option yet")
        return True
    best = min(walls["trioping"]) / min(walls["anchor"])
    median = statistics.median(walls["trioping"]) / statistics.median(walls["anchor"])
    verdict = ""
    if case.goal is not None:
        verdict = f"  (goal <= {case.goal}x: {'meets' if median <= case.goal else 'misses'})"
    print(f"  trioping / {anchor_tool}: best {best:.2f}x, median {median:.2f}x{verdict}")
    return True


if __name__ == "__main__":
    raise SystemExit(main())
