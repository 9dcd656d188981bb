"""A real Prometheus scraping ``trioping-exporter``: the queries users run give the values
the lab makes true (loss 0 and 1, the median RTT of a responder that answers after 40 ms),
and a reload while it scrapes resets no counter of a kept host."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from .conftest import requires_raw
from .netlab import NetLab, ResponderFactory
from .promlab import PromLabs, ScrapeJob, values
from .test_exporter import exporter

pytestmark = [requires_raw, pytest.mark.netlab]

LOSS = (
    "1 - sum by (host) (increase(smokeping_response_duration_seconds_count[8s]))"
    " / sum by (host) (increase(smokeping_requests_total[8s]))"
)
MEDIAN = "histogram_quantile(0.5, sum by (host, le) (rate(smokeping_response_duration_seconds_bucket[8s])))"


def targets_file(path: Path, *hosts: str) -> None:
    path.write_text(
        "targets:\n- hosts:\n" + "".join(f"  - {h}\n" for h in hosts) + "  interval: 200ms\n  network: ip4\n"
    )


def test_prometheus_reads_loss_and_median_rtt(
    tmp_path: Path, netlab: NetLab, responder: ResponderFactory, promlab: PromLabs
) -> None:
    responder("delay:40")
    delayed, silent = netlab.responder_v4, netlab.silent_v4
    config = tmp_path / "targets.yml"
    targets_file(config, "127.0.0.1", delayed, silent)
    with exporter(f"--config.file={config}", "--ping.timeout=500ms") as running:
        prometheus = promlab([ScrapeJob("trioping", [f"127.0.0.1:{running.port}"])])
        prometheus.wait_for('up{job="trioping"}', lambda r: len(r) == 1 and float(r[0]["value"][1]) == 1, timeout=20)

        loss = values(prometheus.wait_for(LOSS, lambda r: len(r) == 3, timeout=20), "host")
        assert loss[silent] == 1
        assert loss["127.0.0.1"] < 0.05  # a probe in flight at either end of the window at most
        assert loss[delayed] < 0.1
        median = values(prometheus.wait_for(MEDIAN, lambda r: len(r) >= 2, timeout=20), "host")
        # Every answer of the responder falls in the (25.6 ms, 51.2 ms] bucket, whose middle
        # histogram_quantile reports; loopback answers in tens of microseconds.
        assert median[delayed] == pytest.approx(0.0384)
        assert median["127.0.0.1"] < 0.0004

        # Reload while Prometheus scrapes: one host removed, one added, two kept.
        targets_file(config, delayed, silent, "127.0.0.2")
        running.process.send_signal(signal.SIGHUP)
        prometheus.wait_for(
            'smokeping_requests_total{host="127.0.0.2"}', lambda r: len(r) == 1 and float(r[0]["value"][1]) > 0
        )
        prometheus.wait_for(  # two more scrapes of the kept hosts after the reload (condition, not a sleep)
            'count_over_time(smokeping_requests_total{host="127.0.0.2"}[1m])',
            lambda r: len(r) == 1 and float(r[0]["value"][1]) >= 3,
        )
        for name in ("smokeping_requests_total", "smokeping_response_duration_seconds_count"):
            resets = values(prometheus.query(f"resets({name}[1m])"), "host")
            assert resets[delayed] == 0
            assert resets[silent] == 0
        gone = prometheus.query('smokeping_requests_total{host="127.0.0.1"}')
        assert gone == []
