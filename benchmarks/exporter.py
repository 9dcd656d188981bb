"""trioping-exporter against smokeping_prober: many loopback targets at 1 probe/s, side by side.

    python benchmarks/exporter.py                        # the default plan, below
    python benchmarks/exporter.py --sizes 1000 --seconds 30          # both programs, same load
    python benchmarks/exporter.py --sizes 10000 --seconds 60 --only trioping

Default plan: smokeping_prober (Debian's ``prometheus-smokeping-prober``) with 1,000 targets
for 30 s; trioping-exporter with the same 1,000 for 30 s (the like-for-like ratio) and with
10,000 targets for 60 s (its goal).  With ``--sizes``/``--seconds``, every program runs every
size for that long.  The programs run one after the other, never together, so neither steals
the other's CPU.

Both read the same smokeping_prober configuration file (``targets: - hosts: [...]``,
``interval: 1s``): distinct loopback addresses 127.1.0.0, 127.1.0.1, ... (every 127.x.y.z
answers on Linux, so every host is alive and any loss is the prober's own).  Nothing is sent
anywhere but 127.0.0.0/8.

Figures, for each run (the process measured from its start, start-up included):

* cores: the process's CPU time (``/proc/PID/stat``, all threads) over wall time;
* start: the time to the first answered ``/metrics`` scrape;
* RSS (``/proc/PID/statm``) sampled every second: at a quarter, half, three quarters and the
  end of the run, and its growth over the second half ("flat": under 5 MB or 5 %);
* answered: ``sum(smokeping_response_duration_seconds_count) / sum(smokeping_requests_total)``
  from a ``/metrics`` scrape right after the run, and hosts with more than one probe
  unanswered (one may be in flight at the scrape): on loopback every such host is a false loss;
* scrape: wall time of ``GET /metrics``, from a thread scraping every 5 s as Prometheus
  would (median and worst), and its size.

Goals (issue 13) for trioping-exporter at 10,000 targets: below one core on average, no live
host ever reported lost, a scrape under 1 s, memory flat.  A program that is missing, or a
trioping-exporter that is not built yet (``python -m trioping.exporter --help`` fails), is
skipped with a line saying so.  Needs root (raw ICMP sockets).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

SMOKEPING = "prometheus-smokeping-prober"
PROGRAMS = ("smokeping", "trioping")
DEFAULT_PLAN = (("smokeping", 1000, 30.0), ("trioping", 1000, 30.0), ("trioping", 10000, 60.0))
SCRAPE_EVERY = 5.0
FLAT_MB, FLAT_SHARE = 5.0, 0.05
"""RSS counts as flat when it grows less than this (MB, or share of itself) over the second half."""
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
SAMPLE = re.compile(rb"^(smokeping_requests_total|smokeping_response_duration_seconds_count)\{([^}]*)\} (\S+)", re.M)
HOST_LABEL = re.compile(rb'host="([^"]*)"')
NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@dataclass
class Run:
    program: str
    size: int
    seconds: float
    note: str = ""
    cores: float | None = None
    rss_mb: list[tuple[float, float]] = field(default_factory=list)  # (seconds since start, MB)
    requests: float = 0.0
    answered: float = 0.0
    lossy_hosts: int | None = None
    hosts_seen: int = 0
    scrapes: list[float] = field(default_factory=list)
    scrape_bytes: int = 0
    start_up: float | None = None

    @property
    def answered_ratio(self) -> float | None:
        return self.answered / self.requests if self.requests else None

    def rss_at(self, fraction: float) -> float | None:
        """RSS of the last sample taken before *fraction* of the run."""
        before = [mb for at, mb in self.rss_mb if at <= fraction * self.seconds]
        return before[-1] if before else None

    @property
    def rss_growth(self) -> float | None:
        half, end = self.rss_at(0.5), self.rss_at(1.0)
        return None if half is None or end is None else end - half


def loopback_targets(count: int) -> list[str]:
    base = (127 << 24) | (1 << 16)
    return [socket.inet_ntoa((base + i).to_bytes(4, "big")) for i in range(count)]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_config(directory: Path, size: int) -> Path:
    """smokeping_prober's file, which trioping-exporter reads unchanged."""
    path = directory / f"targets-{size}.yml"
    hosts = "\n".join(f"      - {host}" for host in loopback_targets(size))
    path.write_text(f"targets:\n  - interval: 1s\n    network: ip4\n    protocol: icmp\n    hosts:\n{hosts}\n")
    return path


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime: fields 14 and 15


def rss_mb(pid: int) -> float:
    return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE / 1e6


def scrape(url: str, timeout: float = 30.0) -> tuple[float, bytes]:
    start = time.perf_counter()
    with NO_PROXY.open(url, timeout=timeout) as response:
        body = bytes(response.read())
    return time.perf_counter() - start, body


def count(run: Run, body: bytes) -> None:
    """Totals and per-host loss from one exposition (text format, one sample per line)."""
    requests: dict[bytes, float] = {}
    answers: dict[bytes, float] = {}
    for name, labels, value in SAMPLE.findall(body):
        host_match = HOST_LABEL.search(labels)
        host = host_match[1] if host_match else labels
        table = requests if name == b"smokeping_requests_total" else answers
        table[host] = table.get(host, 0.0) + float(value)
    run.requests = sum(requests.values())
    run.answered = sum(answers.values())
    run.hosts_seen = len(requests)
    run.lossy_hosts = sum(1 for host, sent in requests.items() if sent - answers.get(host, 0.0) > 1)


def command(program: str, config: Path, port: int) -> list[str]:
    listen = f"--web.listen-address=127.0.0.1:{port}"
    if program == "smokeping":
        smokeping = shutil.which(SMOKEPING)
        assert smokeping is not None
        return [smokeping, f"--config.file={config}", listen, "--privileged", "--log.level=warn"]
    return [sys.executable, "-m", "trioping.exporter", f"--config.file={config}", listen, "--log.level=warn"]


def missing(program: str, workdir: Path) -> str | None:
    """Why *program* cannot run here, or None."""
    if program == "smokeping":
        if shutil.which(SMOKEPING) is None:
            return f"{SMOKEPING} is not installed (apt-get install prometheus-smokeping-prober)"
        return None
    done = subprocess.run(
        [sys.executable, "-m", "trioping.exporter", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=workdir,
    )
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return f"trioping-exporter is not built here (python -m trioping.exporter --help: {last})"
    return None


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


class Scraper(threading.Thread):
    """Scrapes as Prometheus would, apart from the RSS samples (a scrape may take seconds).

    Until one answers it asks again at once (that answer is the start-up time), then every
    SCRAPE_EVERY seconds.
    """

    def __init__(self, url: str, run: Run, started: float) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.figures = run
        self.started = started
        self.done = threading.Event()

    def run(self) -> None:
        pause = 0.1
        while not self.done.wait(pause):
            try:
                took, _ = scrape(self.url, timeout=120)
            except (OSError, urllib.error.URLError):
                continue
            if self.figures.start_up is None:
                self.figures.start_up = time.monotonic() - self.started
            self.figures.scrapes.append(took)
            pause = SCRAPE_EVERY


def bench(program: str, size: int, seconds: float, workdir: Path) -> Run:
    run = Run(program, size, seconds)
    config = write_config(workdir, size)
    port = free_port()
    url = f"http://127.0.0.1:{port}/metrics"
    log = (workdir / f"{program}-{size}.log").open("wb")
    # cwd elsewhere than the repository: `-m trioping.exporter` must import the installed package.
    process = subprocess.Popen(command(program, config, port), stdout=log, stderr=subprocess.STDOUT, cwd=workdir)
    started = time.monotonic()
    end = started + seconds
    scraper = Scraper(url, run, started)
    scraper.start()
    try:
        while (now := time.monotonic()) < end:
            if process.poll() is not None:
                run.note = f"exited with {process.returncode}: {tail(workdir, program, size)}"
                return run
            run.rss_mb.append((now - started, rss_mb(process.pid)))
            time.sleep(max(0.0, min(1.0, end - time.monotonic())))
        run.cores = cpu_seconds(process.pid) / (time.monotonic() - started)
        run.rss_mb.append((time.monotonic() - started, rss_mb(process.pid)))
        scraper.done.set()
        if run.start_up is None:
            run.note = f"no scrape answered within the run's {seconds:.0f} s"
        try:
            took, body = scrape(url, timeout=120)  # the counts, after the run
        except (OSError, urllib.error.URLError) as exc:
            run.note += f"; the scrape after the run failed: {exc}"
            return run
        run.scrapes.append(took)
        run.scrape_bytes = len(body)
        count(run, body)
        return run
    finally:
        scraper.done.set()
        stop(process)
        scraper.join(timeout=10)
        log.close()


def tail(workdir: Path, program: str, size: int) -> str:
    lines = (workdir / f"{program}-{size}.log").read_text(errors="replace").strip().splitlines()
    return " | ".join(lines[-3:]) or "no output"


def fmt(value: float | None, spec: str, unit: str = "") -> str:
    return "-" if value is None else f"{value:{spec}}{unit}"


def flat(run: Run) -> bool:
    half, growth = run.rss_at(0.5), run.rss_growth
    return half is not None and growth is not None and growth < max(FLAT_MB, FLAT_SHARE * half)


def report(runs: list[Run]) -> None:
    names = {"smokeping": "smokeping_prober", "trioping": "trioping-exporter"}
    print()
    print(
        f"{'program':<18} {'targets':>7} {'s':>4} {'start':>6} {'cores':>6} {'RSS 1/4':>8} {'RSS 1/2':>8} "
        f"{'RSS 3/4':>8} {'RSS end':>8} {'growth':>7} {'requests':>10} {'answered':>8} {'lossy':>6} "
        f"{'scrape':>14} {'size':>8}"
    )
    for run in runs:
        ratio = run.answered_ratio
        scrape_text = (
            f"{statistics.median(run.scrapes) * 1000:.0f}/{max(run.scrapes) * 1000:.0f} ms" if run.scrapes else "-"
        )
        print(
            f"{names[run.program]:<18} {run.size:>7,} {run.seconds:>4.0f} {fmt(run.start_up, '.1f', 's'):>6} "
            f"{fmt(run.cores, '.2f'):>6} {fmt(run.rss_at(0.25), '.0f', ' MB'):>8} "
            f"{fmt(run.rss_at(0.5), '.0f', ' MB'):>8} {fmt(run.rss_at(0.75), '.0f', ' MB'):>8} "
            f"{fmt(run.rss_at(1.0), '.0f', ' MB'):>8} {fmt(run.rss_growth, '+.0f', ' MB'):>7} {run.requests:>10,.0f} "
            f"{fmt(None if ratio is None else ratio * 100, '.1f', '%'):>8} {fmt(run.lossy_hosts, 'd'):>6} "
            f"{scrape_text:>14} {run.scrape_bytes / 1e6:>6.1f} MB"
        )
        if run.note:
            print(f"  {names[run.program]} {run.size:,}: {run.note}")
    print("(start: first scrape answered; cores: CPU time over wall time, start to end of the run; answered:")
    print(" responses / requests at a scrape after the run; lossy: hosts with more than one probe unanswered;")
    print(f" scrape: median/worst GET /metrics, every {SCRAPE_EVERY:.0f} s; growth: RSS end minus RSS at half)")
    done = {(run.program, run.size, run.seconds): run for run in runs if run.cores is not None}
    for (program, size, seconds), theirs in done.items():
        ours = done.get(("trioping", size, seconds))
        if program != "smokeping" or ours is None or not ours.cores or theirs.cores is None:
            continue
        ratio_ours, ratio_theirs = ours.answered_ratio, theirs.answered_ratio
        print(
            f"{size:,} targets, {seconds:.0f} s: trioping-exporter uses {ours.cores / theirs.cores:.2f}x "
            f"smokeping_prober's CPU ({ours.cores:.2f} against {theirs.cores:.2f} cores) and answers "
            f"{fmt(None if ratio_ours is None else ratio_ours * 100, '.1f', '%')} of its requests against "
            f"{fmt(None if ratio_theirs is None else ratio_theirs * 100, '.1f', '%')}"
        )
    for run in runs:
        if run.program == "trioping" and run.cores is not None:
            goals = [
                ("below one core", run.cores < 1.0),
                ("no live host lost", run.lossy_hosts == 0),
                ("scrape under 1 s", bool(run.scrapes) and max(run.scrapes) < 1.0),
                ("memory flat", flat(run)),
            ]
            verdicts = ", ".join(f"{text}: {'yes' if met else 'NO'}" for text, met in goals)
            print(f"trioping-exporter, {run.size:,} targets: {verdicts}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", help="targets per run (default: the plan in the docstring)")
    parser.add_argument("--seconds", type=float, help="length of each run (default 30 s with --sizes)")
    parser.add_argument("--only", nargs="+", choices=PROGRAMS, default=list(PROGRAMS))
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("needs root: both probers open raw ICMP sockets")
        return 2
    if args.sizes is None and args.seconds is None:
        plan = [step for step in DEFAULT_PLAN if step[0] in args.only]
    else:
        sizes = args.sizes or [1000]
        if any(not 1 <= size <= 65536 for size in sizes):
            print("sizes from 1 to 65,536 (127.1.0.0 to 127.1.255.255)")
            return 2
        plan = [(program, size, args.seconds or 30.0) for size in sizes for program in args.only]
    runs: list[Run] = []
    with tempfile.TemporaryDirectory(prefix="trioping-bench-exporter-") as tmp:
        workdir = Path(tmp)
        skipped = {program: missing(program, workdir) for program in {step[0] for step in plan}}
        for why in sorted(filter(None, skipped.values())):
            print(f"skipped: {why}")
        for program, size, seconds in plan:
            if skipped[program]:
                continue
            print(f"{program}: {size:,} targets at 1/s for {seconds:.0f} s ...", flush=True)
            runs.append(bench(program, size, seconds, workdir))
    if runs:
        report(runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
