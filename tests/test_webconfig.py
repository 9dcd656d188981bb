"""exporter-toolkit's web configuration: loading, checking, and serving behind it for real.

The server tests run a trivial ASGI app under hypercorn's Trio worker on 127.0.0.1 and talk
to it with urllib (in a worker thread), over plain HTTP and over TLS with certificates made
by the ``openssl`` command for each test.
"""

from __future__ import annotations

import base64
import ssl
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import bcrypt
import pytest
import trio
from hypercorn.trio import serve

from tests.pki import Certs as Certs  # re-exported: tests/test_exporter.py imports it from here
from tests.pki import HypercornWebConfig, make_certs, requires_openssl
from trioping._errors import TriopingError
from trioping._webconfig import (
    Message,
    Receive,
    Scope,
    Send,
    WebConfig,
    WebConfigError,
    basic_auth_middleware,
    load_web_config,
)

SECRET_BODY = b"smokeping_requests_total 42\n"
# Cost 4, the lowest bcrypt allows, keeps the tests quick; the checks are the same at any cost.
PASSWORD = b"correct horse"
HASH = bcrypt.hashpw(PASSWORD, bcrypt.gensalt(4)).decode()


def basic(user: str, password: bytes) -> bytes:
    return b"Basic " + base64.b64encode(user.encode() + b":" + password)


def write(tmp_path: Path, text: str, name: str = "web.yml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.fixture
def certs(tmp_path: Path) -> Certs:
    return make_certs(tmp_path / "pki")


# --- loading and checking -----------------------------------------------------------------


def test_empty_file_means_plain_http_and_no_passwords(tmp_path: Path) -> None:
    config = load_web_config(write(tmp_path, ""))
    assert config.ssl_context() is None
    assert config.tls_files() is None
    assert config.check_credentials(None)


def test_default_config_lets_everyone_in() -> None:
    assert WebConfig().check_credentials(None)
    assert WebConfig().check_credentials(b"Basic !!!")


def test_the_sample_layout_of_exporter_toolkit_loads(tmp_path: Path, certs: Certs) -> None:
    """Every documented key that Python's ssl can honour, with relative file names."""
    config = load_web_config(
        write(
            certs.ca.parent,
            f"""
tls_server_config:
  cert_file: server.crt
  key_file: server.key
  client_auth_type: VerifyClientCertIfGiven
  client_ca_file: ca.crt
  min_version: TLS12
  max_version: TLS13
  cipher_suites:
    - TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
    - TLS_AES_128_GCM_SHA256
  prefer_server_cipher_suites: true
  curve_preferences: [CurveP256]
http_server_config:
  http2: false
  headers:
    X-Frame-Options: deny
    X-Content-Type-Options: nosniff
basic_auth_users:
  alice: {HASH}
rate_limit:
  interval: 100ms
  burst: 10
""",
        )
    )
    assert config.tls_files() == (str(certs.server_cert.resolve()), str(certs.server_key.resolve()))
    context = config.ssl_context()
    assert context is not None
    assert context.verify_mode == ssl.CERT_OPTIONAL
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert config.http2 is False
    assert config.headers == {"X-Frame-Options": "deny", "X-Content-Type-Options": "nosniff"}
    assert set(config.users) == {"alice"}
    assert config.rate_limit_interval == pytest.approx(0.1)
    assert config.rate_limit_burst == 10


@pytest.mark.parametrize(
    ("text", "key", "line", "words"),
    [
        ("tls_server_config:\n  cert_file: a\n  colour: blue\n", "tls_server_config.colour", 3, "unknown key"),
        ("basic_auths:\n  a: b\n", "basic_auths", 1, "unknown key"),
        ("basic_auth_users:\n  alice: hunter2\n", "basic_auth_users.alice", 2, "not a bcrypt hash"),
        ("basic_auth_users: [alice]\n", "basic_auth_users", 1, "expected a mapping"),
        ("tls_server_config:\n  cert_file: nowhere.crt\n  key_file: nowhere.key\n", "cert_file", 2, "no such file"),
        ("tls_server_config:\n  key_file: x.key\n", "tls_server_config.cert_file", 2, "missing"),
        ("tls_server_config:\n  cert: '-----BEGIN'\n", "tls_server_config.cert", 2, "use cert_file"),
        ("http_server_config:\n  http2: maybe\n", "http_server_config.http2", 2, "true or false"),
        ("http_server_config:\n  headers:\n    X-Frame-Options: always\n", "X-Frame-Options", 3, "deny"),
        ("http_server_config:\n  headers:\n    Server: me\n", "headers.Server", 3, "unknown key"),
        (
            'http_server_config:\n  headers:\n    Content-Security-Policy: "a\\nb"\n',
            "Content-Security-Policy",
            3,
            "printable ASCII",
        ),
        ("rate_limit:\n  interval: soon\n", "rate_limit.interval", 2, "duration"),
        ("rate_limit:\n  burst: -1\n", "rate_limit.burst", 2, "non-negative integer"),
    ],
)
def test_bad_files_are_one_line_naming_key_and_line(tmp_path: Path, text: str, key: str, line: int, words: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(WebConfigError) as caught:
        load_web_config(path)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"{path}:{line}: ")
    assert key in message
    assert words in message
    assert isinstance(caught.value, TriopingError)


def test_yaml_syntax_errors_name_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, "basic_auth_users:\n  alice: 'unclosed\n")
    with pytest.raises(WebConfigError, match=rf"^{path}:\d+: not valid YAML"):
        load_web_config(path)


def test_missing_file_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(WebConfigError, match=r"nothere\.yml: cannot read: No such file"):
        load_web_config(tmp_path / "nothere.yml")


@pytest.mark.parametrize(
    ("extra", "key", "words"),
    [
        ("  min_version: TLS9\n", "min_version", "unknown TLS version"),
        ("  min_version: TLS13\n  max_version: TLS12\n", "min_version", "above max_version"),
        ("  client_auth_type: RequireAnyClientCert\n", "client_auth_type", "not supported"),
        ("  client_auth_type: Sometimes\n", "client_auth_type", "unknown value"),
        ("  client_ca_file: ca.crt\n", "client_auth_type", "without a client_auth_type"),
        ("  client_allowed_sans: [a.example]\n", "client_allowed_sans", "not supported"),
        ("  cipher_suites: [TLS_FANCY]\n", "cipher_suites", "unknown cipher suite"),
        ("  curve_preferences: [CurveP1000]\n", "curve_preferences", "unknown curve"),
    ],
)
def test_bad_tls_settings(certs: Certs, extra: str, key: str, words: str) -> None:
    path = write(certs.ca.parent, "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n" + extra)
    with pytest.raises(WebConfigError, match=rf"^{path}:\d+: tls_server_config\.{key}: .*{words}"):
        load_web_config(path)


def test_a_key_that_does_not_match_the_certificate_fails_at_load(certs: Certs) -> None:
    path = write(certs.ca.parent, "tls_server_config:\n  cert_file: server.crt\n  key_file: client.key\n")
    with pytest.raises(WebConfigError, match=r"tls_server_config: cannot load .*server\.crt"):
        load_web_config(path)


# --- credentials --------------------------------------------------------------------------


def test_credentials(tmp_path: Path) -> None:
    y_hash = "$2y$" + HASH[4:]  # htpasswd writes $2y$; Go and Python read it the same
    config = load_web_config(write(tmp_path, f"basic_auth_users:\n  alice: {HASH}\n  bob: '{y_hash}'\n"))
    assert config.check_credentials(basic("alice", PASSWORD))
    assert config.check_credentials(basic("bob", PASSWORD))
    assert config.check_credentials(b"basic  " + basic("alice", PASSWORD)[6:])
    assert not config.check_credentials(basic("alice", b"wrong"))
    assert not config.check_credentials(basic("mallory", PASSWORD))
    assert not config.check_credentials(None)
    assert not config.check_credentials(b"")
    assert not config.check_credentials(b"Bearer abc")
    assert not config.check_credentials(b"Basic not-base64!")
    assert not config.check_credentials(b"Basic " + base64.b64encode(b"no colon"))
    assert not config.check_credentials(b"Basic " + base64.b64encode(b"\xff:x"))
    assert not config.check_credentials(basic("alice", PASSWORD * 10))


def test_verified_attempts_are_cached_and_bounded(tmp_path: Path) -> None:
    config = load_web_config(write(tmp_path, f"basic_auth_users:\n  alice: {HASH}\n"))
    right, wrong = basic("alice", PASSWORD), basic("alice", b"wrong")
    assert config.cached_credentials(right) is None
    assert config.check_credentials(right)
    assert config.cached_credentials(right) is True
    assert not config.check_credentials(wrong)
    assert config.cached_credentials(wrong) is False
    assert config.cached_credentials(None) is False  # decided without bcrypt
    for attempt in range(150):
        config.check_credentials(basic("alice", str(attempt).encode()))
    assert len(config._cache) <= 100
    assert all(PASSWORD not in key[2] for key in config._cache)


# --- serving behind the middleware, for real ----------------------------------------------


@dataclass
class Seen:
    lifespan: list[str]
    requests: int = 0


def trivial_app(seen: Seen) -> Callable[[Scope, Receive, Send], Any]:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                seen.lifespan.append(message["type"])
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        seen.requests += 1
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": SECRET_BODY})

    return app


@asynccontextmanager
async def serving(web: WebConfig, seen: Seen) -> AsyncIterator[str]:
    """The trivial app behind the middleware on 127.0.0.1, a free port; yields its base URL."""
    config = HypercornWebConfig(web)
    config.bind = ["127.0.0.1:0"]
    config.accesslog = None
    config.errorlog = None
    config.graceful_timeout = 1
    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        binds = await nursery.start(
            partial(serve, shutdown_trigger=stop.wait),
            basic_auth_middleware(trivial_app(seen), web),
            config,
        )
        try:
            yield str(binds[0])
        finally:
            stop.set()


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes


def fetch(url: str, authorization: bytes | None = None, context: ssl.SSLContext | None = None) -> Reply:
    """One GET with urllib, never through a proxy (the environment's proxy would leave loopback)."""
    handlers: list[urllib.request.BaseHandler] = [urllib.request.ProxyHandler({})]
    if context is not None:
        handlers.append(urllib.request.HTTPSHandler(context=context))
    opener = urllib.request.build_opener(*handlers)
    request = urllib.request.Request(url)
    if authorization is not None:
        request.add_header("Authorization", authorization.decode())
    try:
        with opener.open(request, timeout=10) as response:
            return Reply(response.status, {k.lower(): v for k, v in response.headers.items()}, response.read())
    except urllib.error.HTTPError as error:
        with error:
            return Reply(error.code, {k.lower(): v for k, v in error.headers.items()}, error.read())


async def get(url: str, authorization: bytes | None = None, context: ssl.SSLContext | None = None) -> Reply:
    return await trio.to_thread.run_sync(fetch, url, authorization, context)


async def test_basic_auth_over_http(tmp_path: Path) -> None:
    web = load_web_config(
        write(
            tmp_path,
            f"basic_auth_users:\n  alice: {HASH}\nhttp_server_config:\n  headers:\n    X-Frame-Options: deny\n",
        )
    )
    seen = Seen([])
    async with serving(web, seen) as url:
        assert url.startswith("http://127.0.0.1:")
        ok = await get(url + "/metrics", basic("alice", PASSWORD))
        assert (ok.status, ok.body) == (200, SECRET_BODY)
        assert ok.headers["x-frame-options"] == "deny"
        again = await get(url + "/metrics", basic("alice", PASSWORD))  # from the cache
        assert again.status == 200
        for authorization in (None, basic("alice", b"wrong"), basic("eve", PASSWORD), b"Basic ???"):
            denied = await get(url + "/metrics", authorization)
            assert denied.status == 401
            assert denied.headers["www-authenticate"] == "Basic"
            assert denied.body == b"Unauthorized\n"
            assert denied.headers["x-frame-options"] == "deny"
    assert seen.requests == 2
    assert seen.lifespan == ["lifespan.startup", "lifespan.shutdown"]


async def test_without_users_everything_passes(tmp_path: Path) -> None:
    seen = Seen([])
    async with serving(load_web_config(write(tmp_path, "")), seen) as url:
        assert (await get(url + "/")).status == 200
    assert seen.requests == 1


async def test_rate_limit_answers_429(tmp_path: Path) -> None:
    web = load_web_config(write(tmp_path, "rate_limit:\n  interval: 1h\n  burst: 2\n"))
    seen = Seen([])
    async with serving(web, seen) as url:
        statuses = [(await get(url + "/")).status for _ in range(3)]
    assert statuses == [200, 200, 429]


@requires_openssl
async def test_tls_with_basic_auth(certs: Certs) -> None:
    web = load_web_config(
        write(
            certs.ca.parent,
            "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
            f"basic_auth_users:\n  alice: {HASH}\n",
        )
    )
    client = ssl.create_default_context(cafile=str(certs.ca))
    seen = Seen([])
    async with serving(web, seen) as url:
        assert url.startswith("https://127.0.0.1:")
        ok = await get(url + "/metrics", basic("alice", PASSWORD), client)
        assert (ok.status, ok.body) == (200, SECRET_BODY)
        denied = await get(url + "/metrics", basic("alice", b"nope"), client)
        assert (denied.status, denied.headers["www-authenticate"], denied.body) == (401, "Basic", b"Unauthorized\n")
        with pytest.raises(urllib.error.URLError, match="CERTIFICATE_VERIFY_FAILED"):
            await get(url + "/metrics", basic("alice", PASSWORD), ssl.create_default_context())
    assert seen.requests == 1


@requires_openssl
async def test_tls_client_certificates_required(certs: Certs) -> None:
    web = load_web_config(
        write(
            certs.ca.parent,
            "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
            "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.crt\n  min_version: TLS13\n",
        )
    )
    with_cert = ssl.create_default_context(cafile=str(certs.ca))
    with_cert.load_cert_chain(str(certs.client_cert), str(certs.client_key))
    without_cert = ssl.create_default_context(cafile=str(certs.ca))
    old_tls = ssl.create_default_context(cafile=str(certs.ca))
    old_tls.load_cert_chain(str(certs.client_cert), str(certs.client_key))
    old_tls.maximum_version = ssl.TLSVersion.TLSv1_2
    seen = Seen([])
    async with serving(web, seen) as url:
        assert (await get(url + "/", context=with_cert)).status == 200
        # With TLS 1.3 the server's refusal arrives after the client's handshake has ended,
        # so it shows as a failed read or a reset rather than as a handshake error.
        with pytest.raises((urllib.error.URLError, ConnectionError, ssl.SSLError)):
            await get(url + "/", context=without_cert)
        with pytest.raises(urllib.error.URLError):
            await get(url + "/", context=old_tls)
    assert seen.requests == 1


def _receive_nothing() -> Receive:
    async def receive() -> Message:
        raise AssertionError("not called")

    return receive


async def test_websocket_without_credentials_is_closed(tmp_path: Path) -> None:
    """ASGI's way to refuse a websocket before accepting it: a close, never the app."""
    web = load_web_config(write(tmp_path, f"basic_auth_users:\n  alice: {HASH}\n"))
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    seen = Seen([])
    wrapped = basic_auth_middleware(trivial_app(seen), web)
    await wrapped({"type": "websocket", "headers": []}, _receive_nothing(), send)
    assert sent == [{"type": "websocket.close", "code": 1008}]
    assert seen.requests == 0
