"""A real Prometheus server for tests: scrape what the test serves, then ask it in PromQL.

The exporter's promise is that Prometheus (and dashboards built on smokeping_prober) read it
unchanged; only the real server checks that: it parses the exposition format strictly, keeps
counters across scrapes and answers ``rate`` and ``histogram_quantile`` as users run them.

Usage, in a test (the ``promlab`` fixture stops every server it started, also on failure)::

    lab = promlab([ScrapeJob("exporter", ["127.0.0.1:9374"])])      # or: await promlab.start(...)
    lab.wait_for('up{job="exporter"}', lambda r: value(r) == 1, timeout=15)

Prometheus listens on 127.0.0.1 at a free port, keeps its data in the test's temporary
directory, scrapes every second (``rate(...[5s])`` answers after a few seconds) and has its
lifecycle API on, so :meth:`PromLab.reload` can change the jobs while it runs.  Every wait is
bounded.  Tests that need it skip where ``/usr/bin/prometheus`` (Debian: ``prometheus``) is
missing.  Queries go through urllib with proxies switched off, so they never leave loopback.
"""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trio

PROMETHEUS = shutil.which("prometheus") or shutil.which("/usr/bin/prometheus")
requires_prometheus = pytest.mark.skipif(
    PROMETHEUS is None, reason="Prometheus is not installed (Debian: apt-get install prometheus)"
)

START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
POLL = 0.25

Result = list[dict[str, Any]]


@dataclass(frozen=True)
class ScrapeJob:
    """One ``scrape_configs`` entry: static targets (``"127.0.0.1:PORT"``) and how to reach them."""

    name: str
    targets: Sequence[str]
    metrics_path: str = "/metrics"
    scheme: str = "http"
    basic_auth: tuple[str, str] | None = None
    ca_file: str | None = None
    client_cert: tuple[str, str] | None = None  # (certificate file, key file)
    server_name: str | None = None
    scrape_interval: str | None = None
    labels: dict[str, str] | None = None

    def config(self) -> dict[str, Any]:
        entry: dict[str, Any] = {"targets": list(self.targets)}
        if self.labels:
            entry["labels"] = dict(self.labels)
        job: dict[str, Any] = {
            "job_name": self.name,
            "metrics_path": self.metrics_path,
            "scheme": self.scheme,
            "static_configs": [entry],
        }
        if self.scrape_interval is not None:
            job["scrape_interval"] = self.scrape_interval
            job["scrape_timeout"] = self.scrape_interval
        if self.basic_auth is not None:
            job["basic_auth"] = {"username": self.basic_auth[0], "password": self.basic_auth[1]}
        tls: dict[str, Any] = {}
        if self.ca_file is not None:
            tls["ca_file"] = self.ca_file
        if self.client_cert is not None:
            tls["cert_file"], tls["key_file"] = self.client_cert
        if self.server_name is not None:
            tls["server_name"] = self.server_name
        if tls:
            job["tls_config"] = tls
        return job


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (the kernel's pick; a race is unlikely, not impossible)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def value(result: Result) -> float | None:
    """The one sample's value of an instant query's result, or None when there is not exactly one."""
    if len(result) != 1:
        return None
    return float(result[0]["value"][1])


def values(result: Result, label: str) -> dict[str, float]:
    """The samples' values keyed by one of their labels."""
    return {sample["metric"].get(label, ""): float(sample["value"][1]) for sample in result}


_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class PrometheusError(AssertionError):
    """Prometheus did not start, did not answer, or refused a query or a reload."""


class PromLab:
    """One Prometheus process; build it with the ``promlab`` fixture, which stops it."""

    def __init__(self, directory: Path, jobs: Sequence[ScrapeJob], interval: str = "1s") -> None:
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self.interval = interval
        self.config_path = directory / "prometheus.yml"
        self.log_path = directory / "prometheus.log"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None
        self.last_result: Result = []
        self._write_config(jobs)

    def _write_config(self, jobs: Sequence[ScrapeJob]) -> None:
        config = {
            "global": {
                "scrape_interval": self.interval,
                "scrape_timeout": self.interval,
                "evaluation_interval": self.interval,
            },
            "scrape_configs": [job.config() for job in jobs],
        }
        # JSON is YAML; no YAML library is needed to write it.
        self.config_path.write_text(json.dumps(config, indent=2))

    # --- life cycle -----------------------------------------------------------------------

    def start(self) -> None:
        """Start the server and return once ``/-/ready`` says so (bounded by START_TIMEOUT)."""
        if PROMETHEUS is None:
            pytest.skip("Prometheus is not installed (Debian: apt-get install prometheus)")
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    PROMETHEUS,
                    f"--config.file={self.config_path}",
                    f"--storage.tsdb.path={self.directory / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    "--web.enable-lifecycle",
                    "--log.level=warn",
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.directory,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise PrometheusError(f"Prometheus exited with {self.process.returncode}: {self.log_tail()}")
            try:
                if self._request("/-/ready", timeout=2)[0] == 200:
                    return
            except (OSError, urllib.error.URLError):
                pass
            time.sleep(POLL)
        self.stop()
        raise PrometheusError(f"Prometheus was not ready within {START_TIMEOUT:.0f} s: {self.log_tail()}")

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after STOP_TIMEOUT, and the data removed (the log stays); idempotent."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=STOP_TIMEOUT)
        shutil.rmtree(self.directory / "data", ignore_errors=True)

    def log_tail(self, lines: int = 20) -> str:
        try:
            return " | ".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def reload(self, jobs: Sequence[ScrapeJob] | None = None, *, signal_hup: bool = False) -> None:
        """Rewrite the jobs (when given) and make Prometheus reread them.

        Through ``POST /-/reload`` by default, which fails loudly on a refused config; with
        *signal_hup*, by SIGHUP, then waits until the reload is reported.
        """
        if jobs is not None:
            self._write_config(jobs)
        if not signal_hup:
            status, body = self._request("/-/reload", method="POST")
            if status != 200:
                raise PrometheusError(f"reload refused ({status}): {body.decode(errors='replace').strip()}")
            return
        assert self.process is not None, "Prometheus is not running"
        before = self._last_reload()
        self.process.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + START_TIMEOUT
        while self._last_reload() == before:
            if time.monotonic() > deadline:
                raise PrometheusError(f"SIGHUP reload not reported within {START_TIMEOUT:.0f} s: {self.log_tail()}")
            time.sleep(POLL)
        if not self._api("status/runtimeinfo")["reloadConfigSuccess"]:
            raise PrometheusError(f"reload failed: {self.log_tail()}")

    def _last_reload(self) -> str:
        return str(self._api("status/runtimeinfo")["lastConfigTime"])

    # --- HTTP API -------------------------------------------------------------------------

    def _request(self, path: str, *, method: str = "GET", timeout: float = 10) -> tuple[int, bytes]:
        request = urllib.request.Request(self.url + path, method=method)
        try:
            with _OPENER.open(request, timeout=timeout) as response:
                return int(response.status), bytes(response.read())
        except urllib.error.HTTPError as error:
            with error:
                return error.code, error.read()

    def _api(self, path: str, **params: str) -> Any:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        status, body = self._request(f"/api/v1/{path}{query}")
        try:
            answer = json.loads(body)
        except ValueError:
            raise PrometheusError(f"{path}: HTTP {status}, not JSON: {body[:200]!r}") from None
        if answer.get("status") != "success":
            raise PrometheusError(f"{path} {params}: {answer.get('errorType')}: {answer.get('error')}")
        return answer["data"]

    def query(self, promql: str) -> Result:
        """An instant query's samples, each ``{"metric": {...}, "value": [time, "text"]}``.

        A scalar or string result comes back as one sample without labels.
        """
        data = self._api("query", query=promql)
        if data["resultType"] in ("scalar", "string"):
            return [{"metric": {}, "value": data["result"]}]
        return list(data["result"])

    def wait_for(self, promql: str, predicate: Callable[[Result], bool], timeout: float = 20.0) -> Result:
        """Poll *promql* until *predicate* accepts its result; fail with the last one after *timeout*."""
        deadline = time.monotonic() + timeout
        while True:
            result = self.query(promql)
            if predicate(result):
                return result
            if time.monotonic() > deadline:
                raise PrometheusError(f"after {timeout:g} s, {promql} gave {result}; targets: {self.targets()}")
            time.sleep(POLL)

    def targets(self) -> Result:
        """The active targets (``/api/v1/targets``): ``health``, ``lastError``, ``labels``, ``scrapeUrl``..."""
        return list(self._api("targets", state="active")["activeTargets"])

    # --- the same from Trio, without blocking the run loop --------------------------------

    async def query_async(self, promql: str) -> Result:
        return await trio.to_thread.run_sync(self.query, promql)

    async def targets_async(self) -> Result:
        return await trio.to_thread.run_sync(self.targets)

    async def reload_async(self, jobs: Sequence[ScrapeJob] | None = None, *, signal_hup: bool = False) -> None:
        await trio.to_thread.run_sync(lambda: self.reload(jobs, signal_hup=signal_hup))

    async def wait_for_async(self, promql: str, predicate: Callable[[Result], bool]) -> Result:
        """Poll *promql* until *predicate* accepts its result; bound it with ``trio.fail_after``.

        The latest result is kept in :attr:`last_result` for the failure message.
        """
        while True:
            self.last_result = await self.query_async(promql)
            if predicate(self.last_result):
                return self.last_result
            await trio.sleep(POLL)


class PromLabs:
    """What the ``promlab`` fixture gives: call it (or ``await .start``) to run a Prometheus."""

    def __init__(self, directory: Path) -> None:
        self._directory = directory
        self._labs: list[PromLab] = []

    def _new(self, jobs: Sequence[ScrapeJob], interval: str) -> PromLab:
        lab = PromLab(self._directory / f"prometheus-{len(self._labs)}", jobs, interval)
        self._labs.append(lab)
        return lab

    def __call__(self, jobs: Sequence[ScrapeJob], interval: str = "1s") -> PromLab:
        lab = self._new(jobs, interval)
        lab.start()
        return lab

    async def start(self, jobs: Sequence[ScrapeJob], interval: str = "1s") -> PromLab:
        lab = self._new(jobs, interval)
        await trio.to_thread.run_sync(lab.start)
        return lab

    def stop_all(self) -> None:
        for lab in self._labs:
            lab.stop()


@pytest.fixture
def promlab(tmp_path: Path) -> Iterator[PromLabs]:
    """Start real Prometheus servers for a test; all are stopped when it ends, however it ends."""
    if PROMETHEUS is None:
        pytest.skip("Prometheus is not installed (Debian: apt-get install prometheus)")
    labs = PromLabs(tmp_path)
    try:
        yield labs
    finally:
        labs.stop_all()
