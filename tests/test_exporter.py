"""``trioping-exporter`` as users run it: a process, scraped over HTTP, its text read by
prometheus_client's own parser.

Against loopback (counts match what was sent and answered), against the lab (a silent
host; the scripted responder's drops, duplicates, truncated replies and ICMP errors, each
in its own series), through reloads (kept hosts never go backwards), and every way a
start can fail (one line on stderr, exit 2, no traceback).
"""

from __future__ import annotations

import base64
import contextlib
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from trioping._exporter_config import ConfigError, load_config, parse_buckets, parse_duration

from .conftest import REPO, default_sigint, requires_raw
from .netlab import NetLab, ResponderFactory
from .pki import Certs, make_certs, requires_openssl

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def trusting(certs: Certs) -> ssl.SSLContext:
    """A client context trusting the test CA.  Python 3.13 verifies strictly by default
    (VERIFY_X509_STRICT), which wants a keyUsage extension in the CA certificate that
    tests/pki.py's CA does not carry; the checks made here are about the exporter, not the CA."""
    context = ssl.create_default_context(cafile=str(certs.ca))
    context.verify_flags &= ~ssl.VERIFY_X509_STRICT
    return context


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def exporter_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "trioping.exporter", *args]


def run_exporter(*args: str, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        exporter_command(*args), capture_output=True, text=True, timeout=timeout, check=False, cwd=REPO
    )


class Running:
    """An exporter process on a free loopback port; stopped (SIGTERM, then SIGKILL) at the end."""

    def __init__(self, *args: str, scheme: str = "http", context: ssl.SSLContext | None = None) -> None:
        self.context = context
        self.port = free_port()
        self.base = f"{scheme}://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            exporter_command(f"--web.listen-address=127.0.0.1:{self.port}", *args),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO,
            preexec_fn=default_sigint,
        )

    def wait_ready(self, timeout: float = 15) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"exporter exited {self.process.returncode}: {self.process.stderr!r}")
            try:
                self.request("/-/healthy")  # any answer (a 401 too) means it listens
                return
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.05)
        raise AssertionError("exporter did not start listening")

    def request(self, path: str, *, method: str = "GET", headers: dict[str, str] | None = None) -> tuple[int, str]:
        req = urllib.request.Request(self.base + path, method=method, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=10, context=self.context) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def get(self, path: str) -> str:
        status, body = self.request(path)
        assert status == 200, (status, body)
        return body

    def scrape(self) -> Samples:
        samples: Samples = {}
        for family in text_string_to_metric_families(self.get("/metrics")):
            for sample in family.samples:
                samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
        return samples

    def stop(self) -> tuple[int, str]:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            _, err = self.process.communicate(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            _, err = self.process.communicate()
        return self.process.returncode, err


@contextlib.contextmanager
def exporter(*args: str, scheme: str = "http", context: ssl.SSLContext | None = None) -> Iterator[Running]:
    running = Running(*args, scheme=scheme, context=context)
    try:
        running.wait_ready()
        yield running
    finally:
        running.stop()


def series(samples: Samples, name: str, **labels: str) -> float:
    """The one sample of *name* whose labels include *labels*."""
    found = [v for (n, ls), v in samples.items() if n == name and set(labels.items()) <= set(ls)]
    assert len(found) == 1, (name, labels, found)
    return found[0]


def hosts_of(samples: Samples) -> set[str]:
    return {dict(ls)["host"] for (n, ls) in samples if n == "smokeping_requests_total"}


def wait_for(running: Running, predicate: object, timeout: float = 10) -> Samples:
    assert callable(predicate)
    deadline = time.monotonic() + timeout
    while True:
        samples = running.scrape()
        if predicate(samples):
            return samples
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met in {timeout} s: {sorted(samples.items())[:40]}")
        time.sleep(0.1)


def assert_consistent(samples: Samples) -> None:
    """What every scrape must satisfy: per host, answers <= requests (no negative loss) and
    cumulative buckets that never decrease and end at the count."""
    for (name, labels), requests in samples.items():
        if name != "smokeping_requests_total":
            continue
        answered = samples[("smokeping_response_duration_seconds_count", labels)]
        assert 0 <= answered <= requests, labels
        buckets = sorted(
            (float(dict(ls)["le"]), v)
            for (n, ls), v in samples.items()
            if n == "smokeping_response_duration_seconds_bucket" and {k: v for k, v in ls if k != "le"} == dict(labels)
        )
        counts = [v for _, v in buckets]
        assert counts == sorted(counts), labels
        assert counts[-1] == answered, labels


# -- configuration, without a process ------------------------------------------------------------


def test_go_durations() -> None:
    assert parse_duration("1s") == 1.0
    assert parse_duration("500ms") == 0.5
    assert parse_duration("1m30s") == 90.0
    assert parse_duration("1.5h") == 5400.0
    assert parse_duration("0") == 0.0
    for bad in ("1", "s", "", "1 s", "1d", "-"):
        with pytest.raises(ValueError, match="invalid duration"):
            parse_duration(bad)


def test_buckets_must_increase() -> None:
    assert parse_buckets("0.001,0.01,1") == (0.001, 0.01, 1.0)
    for bad in ("0.1,0.01", "a,b", "0.1,0.1", "inf"):
        with pytest.raises(ConfigError):
            parse_buckets(bad)


def test_smokeping_probers_own_example_file_loads(tmp_path: Path) -> None:
    path = tmp_path / "smokeping_prober.yml"
    path.write_text(
        "targets:\n"
        "- hosts:\n"
        "  - localhost\n"
        "  interval: 1s # Duration, Default 1s.\n"
        "  network: ip # One of ip, ip4, ip6. Default: ip (automatic IPv4/IPv6)\n"
        "  protocol: icmp # One of icmp, udp. Default: icmp (Requires privileged operation)\n"
        "  size: 56 # Packet data size in bytes. Default 56 (Range: 24 - 65535)\n"
        "  source: 127.0.1.1 # Souce IP address to use. Default: None (automatic selection)\n"
        "  tos: 0x00 # Packet ToS field in decimal, hexadecimal or binary format. Default: 0 (Range: 0-255)\n"
        "- hosts: [127.0.0.2]\n"
        "  interval: 250ms\n"
        "  tos: 0b100\n"
    )
    first, second = load_config(path)
    assert (first.hosts, first.interval, first.network, first.size, first.source, first.tos) == (
        ("localhost",),
        1.0,
        "ip",
        56,
        "127.0.1.1",
        0,
    )
    assert (second.hosts, second.interval, second.tos, second.line) == (("127.0.0.2",), 0.25, 4, 10)


@requires_raw
def test_a_files_labels_are_on_its_hosts_series(tmp_path: Path) -> None:
    """smokeping_prober's ``labels:`` (extra labels per target group): a file using them must
    work unchanged, its labels on every series of the group's hosts."""
    path = tmp_path / "labelled.yml"
    path.write_text(
        "targets:\n"
        "- hosts: [127.0.0.1]\n"
        "  interval: 50ms\n"
        "  labels:\n"
        "    site: 'ams \"1\"'\n"
        "    tier: 2\n"
        "- hosts: [127.0.0.2]\n"
        "  interval: 50ms\n"
    )
    (first, second) = load_config(path)
    assert first.labels == (("site", 'ams "1"'), ("tier", "2"))
    assert second.labels == ()
    with exporter(f"--config.file={path}") as running:
        samples = wait_for(running, lambda s: series(s, "smokeping_requests_total", host="127.0.0.2") >= 3)
        assert series(samples, "smokeping_requests_total", host="127.0.0.1", site='ams "1"', tier="2") >= 1
        assert series(samples, "smokeping_response_duration_seconds_count", host="127.0.0.1", site='ams "1"') >= 0
        assert_consistent(samples)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("targets:\n- hosts: [127.0.0.1]\n  intervall: 1s\n", r":3: unknown key 'intervall'"),
        ("target:\n- hosts: [127.0.0.1]\n", r":1: unknown key 'target'"),
        ("targets:\n- hosts: [127.0.0.1]\n  interval: 1x\n", r":3: interval: must be a duration"),
        ("targets:\n- hosts: [127.0.0.1]\n  network: ip5\n", r":3: network: must be one of ip, ip4, ip6"),
        ("targets:\n- hosts: [127.0.0.1]\n  protocol: tcp\n", r":3: protocol: must be one of"),
        ("targets:\n- hosts: [127.0.0.1]\n  size: 10\n", r":3: size: must be a whole number of bytes from 24"),
        ("targets:\n- hosts: [127.0.0.1]\n  tos: 256\n", r":3: tos: must be a number from 0 to 255"),
        ("targets:\n- hosts: 127.0.0.1\n", r":2: hosts: must be a list"),
        ("targets:\n- hosts: [127.0.0.1\n", r"not valid YAML"),
        ("targets:\n- hosts: [127.0.0.1]\n  labels: [a]\n", r":3: labels: must be a mapping"),
        ("targets:\n- hosts: [127.0.0.1]\n  labels: {1x: a}\n", r":3: labels: '1x' is not a Prometheus label"),
    ],
)
def test_a_bad_file_is_one_line_naming_key_and_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.yml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message) as caught:
        load_config(path)
    assert "\n" not in str(caught.value)


# -- start-up failures: one line, exit 2 ---------------------------------------------------------


def assert_one_line(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert result.returncode == 2, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_bad_flags_are_one_line(tmp_path: Path) -> None:
    assert_one_line(run_exporter("127.0.0.1", "--ping.interval=1"), "--ping.interval", "invalid duration")
    assert_one_line(run_exporter("127.0.0.1", "--no-such-flag"), "--no-such-flag")
    assert_one_line(run_exporter("127.0.0.1", "-s", "10"), "24-65535")
    assert_one_line(run_exporter("127.0.0.1", "--buckets=1,0.5"), "--buckets")
    assert_one_line(run_exporter(), "no targets")


def test_a_bad_config_file_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.yml"
    path.write_text("targets:\n- hosts: [127.0.0.1]\n  sizes: 56\n")
    assert_one_line(run_exporter(f"--config.file={path}"), f"{path}:3", "'sizes'")
    assert_one_line(run_exporter(f"--config.file={tmp_path / 'missing.yml'}"), "missing.yml", "cannot read")
    twice = tmp_path / "twice.yml"
    twice.write_text("targets:\n- hosts: [127.0.0.1]\n- hosts: [127.0.0.1]\n  interval: 2s\n")
    assert_one_line(run_exporter(f"--config.file={twice}"), "listed twice")


def test_missing_tls_files_are_one_line(tmp_path: Path) -> None:
    web = tmp_path / "web.yml"
    web.write_text(f"tls_server_config:\n  cert_file: {tmp_path}/nope.crt\n  key_file: {tmp_path}/nope.key\n")
    result = run_exporter("127.0.0.1", f"--web.config.file={web}", f"--web.listen-address=127.0.0.1:{free_port()}")
    assert_one_line(result, "nope")


def test_without_the_extra_one_line_naming_it(tmp_path: Path) -> None:
    blocked = tmp_path / "prometheus_client"
    blocked.mkdir()
    (blocked / "__init__.py").write_text("raise ImportError('not installed (simulated)')\n")
    result = subprocess.run(
        exporter_command("127.0.0.1"),
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{REPO}"},
    )
    assert_one_line(result, "pip install 'trioping[exporter]'")


def test_the_library_and_the_ping_command_never_import_the_exporters_parts() -> None:
    code = (
        "import sys, trioping, trioping._cli, trioping._fping; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('prometheus_client', 'hypercorn', 'yaml', 'bcrypt') or 'exporter' in m or 'webconfig' in m))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=20, check=True)
    assert result.stdout.strip() == "[]"


@requires_raw
def test_a_port_in_use_is_one_line() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_exporter("127.0.0.1", f"--web.listen-address=127.0.0.1:{port}")
    assert_one_line(result, f"127.0.0.1:{port}", "address already in use")


@requires_raw
def test_an_unresolvable_name_is_one_line() -> None:
    result = run_exporter("no-such-host.invalid", f"--web.listen-address=127.0.0.1:{free_port()}")
    assert_one_line(result, "no-such-host.invalid")


def test_without_privileges_one_line(tmp_path: Path) -> None:
    setpriv = "/usr/bin/setpriv"
    if not os.path.exists(setpriv) or os.geteuid() != 0:
        pytest.skip("needs root and setpriv to drop CAP_NET_RAW")
    ranges = Path("/proc/sys/net/ipv4/ping_group_range").read_text().split()
    if int(ranges[0]) <= 0 <= int(ranges[1]):
        pytest.skip("datagram ICMP sockets are allowed for gid 0 here: nothing to refuse")
    result = subprocess.run(
        [setpriv, "--bounding-set=-all", "--inh-caps=-all", *exporter_command("127.0.0.1")],
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
        cwd=REPO,
    )
    assert_one_line(result, "CAP_NET_RAW")


# -- the process, against loopback ---------------------------------------------------------------


@requires_raw
def test_loopback_counts_match_what_was_sent_and_answered() -> None:
    with exporter("127.0.0.1", "::1", "localhost", "-i", "50ms", "--resolve.interval=100ms") as running:
        samples = wait_for(
            running,
            lambda s: (
                len(hosts_of(s)) == 3 and min(series(s, "smokeping_requests_total", host=h) for h in hosts_of(s)) >= 10
            ),
        )
        assert_consistent(samples)
        assert series(samples, "smokeping_requests_total", host="localhost", ip="127.0.0.1", source="", tos="0") >= 10
        for host in ("127.0.0.1", "::1", "localhost"):
            requests = series(samples, "smokeping_requests_total", host=host)
            answered = series(samples, "smokeping_response_duration_seconds_count", host=host)
            assert requests - answered <= 1  # at most the probe in flight
            assert series(samples, "smokeping_response_ttl", host=host) == 64
            assert 0 < series(samples, "smokeping_response_duration_seconds_sum", host=host) < answered * 0.01
            assert series(samples, "smokeping_response_duplicates_total", host=host) == 0
            assert series(samples, "smokeping_send_errors_total", host=host) == 0
            assert series(samples, "trioping_late_replies_total", host=host) == 0
        buckets = sorted(
            float(dict(ls)["le"]) for (n, ls) in samples if n == "smokeping_response_duration_seconds_bucket"
        )
        assert buckets[:2] == [5e-05, 5e-05]
        assert buckets[-1] == float("inf")
        assert series(samples, "trioping_kernel_receive_drops_total") == 0
        assert ("process_cpu_seconds_total", ()) in samples
        later = running.scrape()
        for key, value in samples.items():
            if key[0].endswith("_total") or key[0].endswith("_count"):
                assert later.get(key, value) >= value, key
        page = running.get("/")
        assert "localhost" in page
        assert "<td>up</td>" in page
        assert "/metrics" in page
        started = time.monotonic()
        status, err = running.stop()
        assert status == 0, err
        assert time.monotonic() - started < 3.0, err  # a hang check; the second is measured in benchmarks
        assert "Traceback" not in err


@requires_raw
def test_sigint_stops_within_a_second() -> None:
    with exporter("127.0.0.1") as running:
        started = time.monotonic()
        running.process.send_signal(signal.SIGINT)
        status = running.process.wait(timeout=5)
        assert status == 0
        assert time.monotonic() - started < 3.0
        assert "Traceback" not in running.process.communicate()[1]


# -- reload ----------------------------------------------------------------------------------------


def write_targets(path: Path, *hosts: str, interval: str = "50ms") -> None:
    path.write_text("targets:\n- hosts:\n" + "".join(f"  - {h}\n" for h in hosts) + f"  interval: {interval}\n")


@requires_raw
def test_reload_keeps_adds_and_removes_hosts(tmp_path: Path) -> None:
    config = tmp_path / "targets.yml"
    write_targets(config, "127.0.0.1", "127.0.0.2")
    with exporter(f"--config.file={config}") as running:
        before = wait_for(running, lambda s: series(s, "smokeping_requests_total", host="127.0.0.2") >= 5)
        assert hosts_of(before) == {"127.0.0.1", "127.0.0.2"}
        kept = series(before, "smokeping_response_duration_seconds_count", host="127.0.0.2")

        write_targets(config, "127.0.0.2", "127.0.0.3")
        running.process.send_signal(signal.SIGHUP)
        after = wait_for(running, lambda s: "127.0.0.3" in hosts_of(s) and "127.0.0.1" not in hosts_of(s))
        assert hosts_of(after) == {"127.0.0.2", "127.0.0.3"}
        assert series(after, "smokeping_response_duration_seconds_count", host="127.0.0.2") >= kept
        after = wait_for(running, lambda s: series(s, "smokeping_requests_total", host="127.0.0.3") >= 3)
        assert_consistent(after)

        # A bad file: reported, and the running targets go on.
        config.write_text("targets:\n- hosts: [127.0.0.4]\n  colour: blue\n")
        counted = series(running.scrape(), "smokeping_requests_total", host="127.0.0.2")
        status, body = running.request("/-/reload", method="POST")
        assert status == 500
        assert "colour" in body
        samples = wait_for(running, lambda s: series(s, "smokeping_requests_total", host="127.0.0.2") > counted)
        assert hosts_of(samples) == {"127.0.0.2", "127.0.0.3"}
        assert series(samples, "smokeping_prober_config_last_reload_successful") == 0

        # A new interval: the host moves to another monitor with its counts.
        answered = series(running.scrape(), "smokeping_response_duration_seconds_count", host="127.0.0.2")
        write_targets(config, "127.0.0.2", interval="70ms")
        assert running.request("/-/reload", method="POST")[0] == 200
        assert running.request("/-/reload")[0] == 405
        samples = running.scrape()
        assert hosts_of(samples) == {"127.0.0.2"}
        assert series(samples, "smokeping_requests_total", host="127.0.0.2") >= counted
        assert series(samples, "smokeping_response_duration_seconds_count", host="127.0.0.2") >= answered
        samples = wait_for(running, lambda s: series(s, "smokeping_requests_total", host="127.0.0.2") > counted + 5)
        assert_consistent(samples)
        assert "<td>70ms</td>" in running.get("/")
        status, err = running.stop()
    assert status == 0
    lines = [line for line in err.splitlines() if "reload failed" in line]
    assert len(lines) == 1, err
    assert "colour" in lines[0], err
    assert f"{config}:3" in lines[0], err


# -- web configuration -----------------------------------------------------------------------------


@requires_raw
def test_basic_auth_wrong_password_gets_401_and_no_metrics(tmp_path: Path) -> None:
    import bcrypt

    hashed = bcrypt.hashpw(b"s3cret", bcrypt.gensalt(rounds=4)).decode()
    web = tmp_path / "web.yml"
    web.write_text(f"basic_auth_users:\n  prom: '{hashed}'\n")
    good = {"Authorization": "Basic " + base64.b64encode(b"prom:s3cret").decode()}
    bad = {"Authorization": "Basic " + base64.b64encode(b"prom:wrong").decode()}
    with exporter("127.0.0.1", f"--web.config.file={web}") as running:
        status, body = running.request("/metrics", headers=good)
        assert status == 200
        assert "smokeping_requests_total" in body
        for headers in (bad, {}):
            for path in ("/metrics", "/", "/-/reload"):
                status, body = running.request(path, headers=headers)
                assert status == 401
                assert "smokeping" not in body
                assert "127.0.0.1" not in body


@requires_raw
@requires_openssl
def test_tls_serves_https_only(tmp_path: Path) -> None:
    certs: Certs = make_certs(tmp_path / "pki")
    web = tmp_path / "web.yml"
    web.write_text(f"tls_server_config:\n  cert_file: {certs.server_cert}\n  key_file: {certs.server_key}\n")
    context = trusting(certs)
    with exporter("127.0.0.1", f"--web.config.file={web}", scheme="https", context=context) as running:
        assert "smokeping_requests_total" in running.get("/metrics")
        plain = Running.__new__(Running)
        plain.base, plain.context = f"http://127.0.0.1:{running.port}", None
        with pytest.raises((urllib.error.URLError, ConnectionError)):
            plain.request("/metrics")


@requires_raw
@requires_openssl
def test_tls_client_certificates_are_required_when_configured(tmp_path: Path) -> None:
    certs: Certs = make_certs(tmp_path / "pki")
    web = tmp_path / "web.yml"
    web.write_text(
        f"tls_server_config:\n  cert_file: {certs.server_cert}\n  key_file: {certs.server_key}\n"
        f"  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: {certs.ca}\n"
    )
    with_client = trusting(certs)
    with_client.load_cert_chain(str(certs.client_cert), str(certs.client_key))
    with exporter("127.0.0.1", f"--web.config.file={web}", scheme="https", context=with_client) as running:
        assert "smokeping_requests_total" in running.get("/metrics")
        running.context = trusting(certs)
        with pytest.raises((urllib.error.URLError, ConnectionError, ssl.SSLError)):
            running.request("/metrics")


# -- the lab: a silent host, and the scripted responder's faults -----------------------------------


@requires_raw
@pytest.mark.netlab
def test_lab_faults_each_land_in_their_series(netlab: NetLab, responder: ResponderFactory) -> None:
    # Per family, by arrival: an answer, a drop, an answer with its duplicate, a truncated
    # reply, an ICMP unreachable, then nothing more.
    responder(["ok", "drop", "duplicate", "truncate", "unreachable", "drop"])
    hosts = [netlab.responder_v4, netlab.responder_v6, netlab.silent_v4, netlab.silent_v6]
    with exporter(*hosts, "-i", "100ms", "--ping.timeout=300ms") as running:
        samples = wait_for(
            running,
            lambda s: all(series(s, "smokeping_requests_total", host=h) >= 10 for h in hosts),
            timeout=15,
        )
        assert_consistent(samples)
        for host in (netlab.responder_v4, netlab.responder_v6):
            assert series(samples, "smokeping_response_duration_seconds_count", host=host) == 2
            assert series(samples, "smokeping_response_duplicates_total", host=host) == 1
            assert series(samples, "trioping_invalid_replies_total", host=host, reason="truncated") == 1
            assert series(samples, "trioping_icmp_errors_total", host=host, kind="destination-unreachable") == 1
            assert series(samples, "smokeping_response_ttl", host=host) == netlab.remote_reply_ttl
        for host in (netlab.silent_v4, netlab.silent_v6):
            assert series(samples, "smokeping_response_duration_seconds_count", host=host) == 0
            assert series(samples, "smokeping_requests_total", host=host) >= 10
        page = running.get("/")
        assert "<td>down</td>" in page


# -- re-resolution, in process ---------------------------------------------------------------------


@requires_raw
async def test_a_name_whose_address_changes_gets_a_new_ip_series(monkeypatch: pytest.MonkeyPatch) -> None:
    """The resolver is the one thing replaced here (a name that moves needs a DNS server we
    do not have); the pinging is real, on loopback."""
    import trio

    from trioping import Family
    from trioping import _exporter as exporter_module
    from trioping._exporter_config import TargetGroup

    answers = {"moving.test": "127.5.0.1"}

    async def resolve(host: object, family: object = None) -> tuple[str, Family]:
        assert isinstance(host, str)
        return answers[host], Family.V4

    monkeypatch.setattr(exporter_module, "resolve", resolve)
    async with trio.open_nursery() as nursery:
        exporter = exporter_module.Exporter(nursery, (0.001, 0.01), 0.5, resolve_every=0.05)
        await exporter.start_many([TargetGroup(hosts=("moving.test", "127.5.0.9"), interval=0.02)])
        nursery.start_soon(exporter.reresolve_forever)
        with trio.fail_after(10):  # answered at its first address (a condition, not a sleep)
            while not all(s.received for s in exporter.targets.values()):  # noqa: ASYNC110
                await trio.sleep(0.02)
        before = {s.host: (s.ip, s.received) for s in exporter.targets.values()}
        first = exporter.freeze()
        kept_sent = first.transmitted(first.labels.index('host="127.5.0.9",ip="127.5.0.9",source="",tos="0"'))
        assert kept_sent > 0
        assert before["moving.test"][0] == "127.5.0.1"
        assert before["moving.test"][1] > 0
        answers["moving.test"] = "127.5.0.2"

        def moved_and_answered() -> bool:
            series = next(s for s in exporter.targets.values() if s.host == "moving.test")
            return series.ip == "127.5.0.2" and series.received > 0

        with trio.fail_after(10):
            while not moved_and_answered():  # noqa: ASYNC110  (polling the exporter's state, as a scrape would)
                await trio.sleep(0.02)
        frozen = exporter.freeze()
        at = {labels: index for index, labels in enumerate(frozen.labels)}
        assert [labels for labels in at if "moving.test" in labels] == [
            'host="moving.test",ip="127.5.0.2",source="",tos="0"'
        ]
        moved = at['host="moving.test",ip="127.5.0.2",source="",tos="0"']
        assert 0 < sum(frozen.buckets(moved)) <= frozen.transmitted(moved)
        kept = at['host="127.5.0.9",ip="127.5.0.9",source="",tos="0"']
        assert frozen.transmitted(kept) > kept_sent  # the other host went on meanwhile
        nursery.cancel_scope.cancel()
