"""Prometheus exporter-toolkit's ``--web.config.file``: TLS and basic authentication.

Every Go exporter (node_exporter, smokeping_prober, ...) reads the same YAML file for TLS and
passwords, so operators already have one; reading it unchanged is what makes the exporter a
drop-in.  The format is exporter-toolkit's ``docs/web-configuration.md``: unknown keys are
errors (as Go's strict YAML decoding makes them), relative file names are relative to the
file's own directory, passwords are bcrypt hashes.

Only the exporter imports this module: it needs the ``exporter`` extra (PyYAML, bcrypt), which
the library and the ``trioping`` command never require.

Where Python's :mod:`ssl` cannot do what Go's ``crypto/tls`` does, the key is refused with a
line saying so instead of being silently ignored: inline ``cert``/``key`` (OpenSSL loads a
certificate chain from files only), ``client_auth_type`` values that ask for a certificate
without verifying it, and ``client_allowed_sans``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
import ssl
import threading
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bcrypt
import trio
import yaml

from ._errors import TriopingError

__all__ = ["ASGIApp", "WebConfig", "WebConfigError", "basic_auth_middleware", "load_web_config"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class WebConfigError(TriopingError):
    """The web configuration file is unreadable, malformed, or names files that do not work.

    The message is one line naming the file, the key and (when known) the line, for an
    exporter to print as is before exiting 2.
    """

    def __init__(self, path: str, reason: str, *, key: str | None = None, line: int | None = None) -> None:
        where = path if line is None else f"{path}:{line}"
        super().__init__(f"{where}: {key}: {reason}" if key else f"{where}: {reason}")
        self.path = path
        self.key = key
        self.line = line
        self.reason = reason


# Go's names (crypto/tls) for the values the file may hold, mapped to Python's.
_TLS_VERSIONS = {
    "TLS10": ssl.TLSVersion.TLSv1,
    "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
}
_CLIENT_AUTH = {
    "": ssl.CERT_NONE,
    "NoClientCert": ssl.CERT_NONE,
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
}
# OpenSSL verifies every client certificate it asks for, so Go's "ask but do not verify"
# policies cannot be expressed; they are insecure anyway (exporter-toolkit's docs say so).
_CLIENT_AUTH_UNSUPPORTED = frozenset({"RequestClientCert", "RequireAnyClientCert", "RequireClientCert"})
# Go's cipher suite names (tls.CipherSuites()) and their IANA code points; OpenSSL names them
# differently, so they are matched through the code point.  TLS 1.3 suites are listed because
# Go accepts them in the file, and ignored as Go ignores them (they are not configurable).
_CIPHER_SUITES = {
    "TLS_RSA_WITH_AES_128_CBC_SHA": 0x002F,
    "TLS_RSA_WITH_AES_256_CBC_SHA": 0x0035,
    "TLS_RSA_WITH_AES_128_GCM_SHA256": 0x009C,
    "TLS_RSA_WITH_AES_256_GCM_SHA384": 0x009D,
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA": 0xC009,
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA": 0xC00A,
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA": 0xC013,
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA": 0xC014,
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256": 0xC02B,
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384": 0xC02C,
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256": 0xC02F,
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384": 0xC030,
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256": 0xCCA8,
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256": 0xCCA9,
    "TLS_AES_128_GCM_SHA256": 0x1301,
    "TLS_AES_256_GCM_SHA384": 0x1302,
    "TLS_CHACHA20_POLY1305_SHA256": 0x1303,
}
_CURVES = {"CurveP256": "prime256v1", "CurveP384": "secp384r1", "CurveP521": "secp521r1", "X25519": "X25519"}
# exporter-toolkit lets only these response headers be set, some only to these values.
_HEADERS: dict[str, tuple[str, ...]] = {
    "Strict-Transport-Security": (),
    "X-Content-Type-Options": ("nosniff",),
    "X-Frame-Options": ("deny", "sameorigin"),
    "X-XSS-Protection": (),
    "Content-Security-Policy": (),
}
_BCRYPT_HASH = re.compile(rb"\$2[abxy]?\$(0[4-9]|[12][0-9]|3[01])\$[./A-Za-z0-9]{53}")
# Compared against when the user is unknown, so that a wrong name costs the same bcrypt time
# as a wrong password and names cannot be found by timing (exporter-toolkit does the same).
_DECOY_HASH = b"$2b$10$OifDgeptXB9WpHJ146F0NuFJW9HBaSInvx4Qqu8eLG31WFBSdVArS"
# bcrypt reads at most 72 bytes of a password; htpasswd and Go hash only those.
_BCRYPT_MAX_PASSWORD = 72
_CACHE_SIZE = 100
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


@dataclass(frozen=True)
class TLSSettings:
    """``tls_server_config``, with file names made absolute."""

    cert_file: str
    key_file: str
    client_auth: ssl.VerifyMode = ssl.CERT_NONE
    client_ca_file: str | None = None
    client_ca: str | None = None
    min_version: ssl.TLSVersion = ssl.TLSVersion.TLSv1_2
    max_version: ssl.TLSVersion = ssl.TLSVersion.TLSv1_3
    ciphers: tuple[str, ...] = ()
    curves: tuple[str, ...] = ()
    prefer_server_cipher_suites: bool = True


@dataclass
class WebConfig:
    """A loaded and checked web configuration: what to serve TLS with and whom to let in.

    It holds the bcrypt cache, so one object serves an exporter for its whole life (or until a
    reload replaces it).  Without a file an exporter uses ``WebConfig()``: plain HTTP, no
    passwords.
    """

    path: str = ""
    tls: TLSSettings | None = None
    users: dict[str, bytes] = field(default_factory=dict)
    http2: bool = True
    headers: dict[str, str] = field(default_factory=dict)
    rate_limit_interval: float = 0.0
    rate_limit_burst: int = 0
    _cache: OrderedDict[tuple[str, bytes, bytes], bool] = field(default_factory=OrderedDict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def ssl_context(self) -> ssl.SSLContext | None:
        """A server-side context built from the files as they are now, or None without TLS.

        Built afresh on each call, so a server that asks again after a certificate renewal
        gets the new one (exporter-toolkit rereads its files on every connection).
        """
        tls = self.tls
        if tls is None:
            return None
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.options |= ssl.OP_NO_COMPRESSION
        if tls.prefer_server_cipher_suites:
            context.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
        context.minimum_version = tls.min_version
        context.maximum_version = tls.max_version
        context.set_alpn_protocols(["h2", "http/1.1"] if self.http2 else ["http/1.1"])
        if tls.ciphers:
            context.set_ciphers(":".join(tls.ciphers))
        if len(tls.curves) == 1:
            # Python's ssl sets one curve, not a preference list; with several the defaults,
            # which include all four, stay.
            context.set_ecdh_curve(tls.curves[0])
        try:
            context.load_cert_chain(tls.cert_file, tls.key_file)
        except OSError as exc:  # ssl.SSLError is an OSError too
            reason = exc.reason if isinstance(exc, ssl.SSLError) and exc.reason else exc.strerror or str(exc)
            raise WebConfigError(
                self.path, f"cannot load {tls.cert_file} and {tls.key_file}: {reason}", key="tls_server_config"
            ) from None
        context.verify_mode = tls.client_auth
        if tls.client_auth != ssl.CERT_NONE:
            try:
                if tls.client_ca_file is not None:
                    context.load_verify_locations(cafile=tls.client_ca_file)
                elif tls.client_ca is not None:
                    context.load_verify_locations(cadata=tls.client_ca)
                else:
                    context.load_default_certs(ssl.Purpose.CLIENT_AUTH)
            except (OSError, ValueError) as exc:
                raise WebConfigError(
                    self.path, f"cannot load client CA: {exc}", key="tls_server_config.client_ca_file"
                ) from None
        return context

    def tls_files(self) -> tuple[str, str] | None:
        """(certificate file, key file) for servers configured by file name, or None without TLS.

        With hypercorn, set ``certfile``/``keyfile`` from this (they switch TLS on) and make
        its ``create_ssl_context`` return :meth:`ssl_context`, so client authentication and
        TLS versions are honoured too.
        """
        if self.tls is None:
            return None
        return self.tls.cert_file, self.tls.key_file

    def check_credentials(self, authorization: bytes | None) -> bool:
        """Whether an HTTP ``Authorization`` header value lets the request in.

        True when no users are configured.  This may spend a bcrypt verification (~70 ms at
        cost 10): call it from a worker thread, or use :meth:`cached_credentials` first.
        """
        if not self.users:
            return True
        parsed = _parse_basic(authorization)
        if parsed is None:
            return False
        user, password = parsed
        cached = self._cached(user, password)
        if cached is not None:
            return cached
        known = self.users.get(user)
        try:
            matches = bcrypt.checkpw(password[:_BCRYPT_MAX_PASSWORD], known or _DECOY_HASH)
        except ValueError:
            matches = False
        verdict = known is not None and matches
        key = self._cache_key(user, password)
        with self._lock:
            self._cache[key] = verdict
            self._cache.move_to_end(key)
            while len(self._cache) > _CACHE_SIZE:
                self._cache.popitem(last=False)
        return verdict

    def cached_credentials(self, authorization: bytes | None) -> bool | None:
        """The answer :meth:`check_credentials` would give, when it needs no bcrypt; else None."""
        if not self.users:
            return True
        parsed = _parse_basic(authorization)
        if parsed is None:
            return False
        return self._cached(*parsed)

    def _cached(self, user: str, password: bytes) -> bool | None:
        key = self._cache_key(user, password)
        with self._lock:
            verdict = self._cache.get(key)
            if verdict is not None:
                self._cache.move_to_end(key)
            return verdict

    def _cache_key(self, user: str, password: bytes) -> tuple[str, bytes, bytes]:
        # The stored hash is part of the key so a reload that changes a password invalidates
        # it; the attempt is kept as a digest, never in the clear.
        return user, self.users.get(user, _DECOY_HASH), hashlib.sha256(password).digest()


def _parse_basic(authorization: bytes | None) -> tuple[str, bytes] | None:
    """(user, password) from ``Basic base64(user:password)``, or None when it is not that."""
    if authorization is None:
        return None
    scheme, _, encoded = authorization.strip().partition(b" ")
    if scheme.lower() != b"basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True)
        user, colon, password = decoded.partition(b":")
        if not colon:
            return None
        return user.decode("utf-8"), password
    except (binascii.Error, UnicodeDecodeError):
        return None


def basic_auth_middleware(app: ASGIApp, config: WebConfig) -> ASGIApp:
    """Wrap an ASGI app so that only configured users reach it (and configured headers are set).

    Wrong or missing credentials get ``401`` with ``WWW-Authenticate: Basic`` and a body of
    ``Unauthorized`` only: the app is never called, so nothing of the metrics leaks.  bcrypt
    runs in a worker thread, one at a time (it is CPU-bound; exporter-toolkit serialises it
    too), so a scrape never stalls the probing loop; a repeated scrape hits the cache.
    Lifespan events pass through untouched.
    """
    bcrypt_limiter = trio.CapacityLimiter(1)
    extra_headers = [(name.encode("latin-1"), value.encode("latin-1")) for name, value in config.headers.items()]
    bucket = _TokenBucket(config.rate_limit_interval, config.rate_limit_burst)

    async def send_with_headers(send: Send, message: Message) -> None:
        if extra_headers and message["type"] == "http.response.start":
            message = dict(message)
            message["headers"] = [*message.get("headers", ()), *extra_headers]
        await send(message)

    async def respond(send: Send, status: int, reason: bytes, headers: Iterable[tuple[bytes, bytes]] = ()) -> None:
        body = reason + b"\n"
        await send_with_headers(
            send,
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"text/plain; charset=utf-8"),
                    (b"content-length", str(len(body)).encode()),
                    *headers,
                ],
            },
        )
        await send({"type": "http.response.body", "body": body})

    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind not in ("http", "websocket"):
            await app(scope, receive, send)
            return
        if not bucket.allow():
            if kind == "http":
                await respond(send, 429, b"Too Many Requests")
            else:
                await send({"type": "websocket.close", "code": 1013})
            return
        authorization = None
        for name, value in scope.get("headers", ()):
            if name.lower() == b"authorization":
                authorization = bytes(value)
                break
        allowed = config.cached_credentials(authorization)
        if allowed is None:
            allowed = await trio.to_thread.run_sync(config.check_credentials, authorization, limiter=bcrypt_limiter)
        if not allowed:
            if kind == "http":
                await respond(send, 401, b"Unauthorized", [(b"www-authenticate", b"Basic")])
            else:
                await send({"type": "websocket.close", "code": 1008})
            return
        if kind == "http" and extra_headers:

            async def send_extra(message: Message) -> None:
                await send_with_headers(send, message)

            await app(scope, receive, send_extra)
        else:
            await app(scope, receive, send)

    return wrapped


class _TokenBucket:
    """exporter-toolkit's ``rate_limit``: one request per *interval*, bursts of *burst*."""

    def __init__(self, interval: float, burst: int) -> None:
        self._interval = interval
        self._burst = burst
        self._tokens = float(burst)
        self._last = 0.0

    def allow(self) -> bool:
        if self._interval <= 0:
            return True
        now = trio.current_time()
        self._tokens = min(float(self._burst), self._tokens + (now - self._last) / self._interval)
        self._last = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False


class _Reader:
    """Walks the YAML node tree, so that every complaint can name its key and line."""

    def __init__(self, path: str) -> None:
        self.path = path

    def fail(self, node: yaml.Node | None, key: str, reason: str) -> WebConfigError:
        line = node.start_mark.line + 1 if node is not None else None
        return WebConfigError(self.path, reason, key=key, line=line)

    def mapping(self, node: yaml.Node, key: str, allowed: Iterable[str] | None) -> dict[str, yaml.Node]:
        """A mapping's entries by key; a null value is an empty mapping."""
        if _is_null(node):
            return {}
        if not isinstance(node, yaml.MappingNode):
            raise self.fail(node, key, "expected a mapping")
        known = None if allowed is None else frozenset(allowed)
        entries: dict[str, yaml.Node] = {}
        for key_node, value_node in node.value:
            name = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
            full = f"{key}.{name}" if key else str(name)
            if not isinstance(name, str):
                raise self.fail(key_node, key or "(top level)", "keys must be strings")
            if known is not None and name not in known:
                raise self.fail(key_node, full, f"unknown key (known: {', '.join(sorted(known))})")
            if name in entries:
                raise self.fail(key_node, full, "given twice")
            entries[name] = value_node
        return entries

    def string(self, node: yaml.Node, key: str) -> str:
        if not isinstance(node, yaml.ScalarNode) or node.tag != "tag:yaml.org,2002:str":
            if isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:null":
                return ""
            raise self.fail(node, key, "expected a string")
        return str(node.value)

    def boolean(self, node: yaml.Node, key: str) -> bool:
        if isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:bool":
            return bool(yaml.safe_load(node.value))
        raise self.fail(node, key, "expected true or false")

    def integer(self, node: yaml.Node, key: str) -> int:
        if isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:int":
            value = yaml.safe_load(node.value)
            if isinstance(value, int) and value >= 0:
                return value
        raise self.fail(node, key, "expected a non-negative integer")

    def strings(self, node: yaml.Node, key: str) -> list[tuple[yaml.Node, str]]:
        if _is_null(node):
            return []
        if not isinstance(node, yaml.SequenceNode):
            raise self.fail(node, key, "expected a list of strings")
        return [(item, self.string(item, key)) for item in node.value]

    def file(self, node: yaml.Node, key: str, base: Path) -> str:
        name = self.string(node, key)
        path = base / name
        if not path.is_file():
            raise self.fail(node, key, f"no such file: {path}")
        if not os.access(path, os.R_OK):
            raise self.fail(node, key, f"cannot read {path}")
        return str(path)


def _is_null(node: yaml.Node) -> bool:
    return isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:null"


def _go_duration(text: str) -> float | None:
    """Seconds in a Go duration (``500ms``, ``1m30s``, ``0``), or None when it is not one."""
    if text == "0":
        return 0.0
    total, position = 0.0, 0
    while position < len(text):
        match = _DURATION_PART.match(text, position)
        if match is None:
            return None
        total += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
        position = match.end()
    return total if text else None


def load_web_config(path: str | os.PathLike[str]) -> WebConfig:
    """Read and check a web configuration file; every problem is a :class:`WebConfigError`.

    Certificate and key files are loaded here once, so a missing or mismatched file stops the
    exporter at start-up rather than at the first HTTPS connection.
    """
    name = os.fspath(path)
    reader = _Reader(name)
    try:
        text = Path(name).read_text(encoding="utf-8")
    except OSError as exc:
        raise WebConfigError(name, f"cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise WebConfigError(name, "not UTF-8 text") from None
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        line = mark.line + 1 if mark is not None else None
        raise WebConfigError(name, f"not valid YAML: {problem}", line=line) from None
    config = WebConfig(path=name)
    if root is None:
        return config
    base = Path(name).resolve().parent
    top = reader.mapping(root, "", ("tls_server_config", "http_server_config", "basic_auth_users", "rate_limit"))
    if "tls_server_config" in top:
        config.tls = _read_tls(reader, top["tls_server_config"], base)
    if "http_server_config" in top:
        http = reader.mapping(top["http_server_config"], "http_server_config", ("http2", "headers"))
        if "http2" in http:
            config.http2 = reader.boolean(http["http2"], "http_server_config.http2")
        if "headers" in http:
            for header, node in reader.mapping(http["headers"], "http_server_config.headers", _HEADERS).items():
                key = f"http_server_config.headers.{header}"
                value = reader.string(node, key)
                allowed = _HEADERS[header]
                if allowed and value not in allowed:
                    raise reader.fail(node, key, f"must be one of {', '.join(allowed)}")
                if not (value.isascii() and value.isprintable()):
                    raise reader.fail(node, key, "a header value must be printable ASCII")
                if value:
                    config.headers[header] = value
    if "basic_auth_users" in top:
        for user, node in reader.mapping(top["basic_auth_users"], "basic_auth_users", None).items():
            key = f"basic_auth_users.{user}"
            hashed = reader.string(node, key).encode("utf-8")
            if not _BCRYPT_HASH.fullmatch(hashed):
                raise reader.fail(node, key, "not a bcrypt hash (make one with: htpasswd -nBC 10 '' | tr -d ':\\n')")
            config.users[user] = hashed
    if "rate_limit" in top:
        limit = reader.mapping(top["rate_limit"], "rate_limit", ("interval", "burst"))
        if "interval" in limit:
            interval = _go_duration(reader.string(limit["interval"], "rate_limit.interval"))
            if interval is None:
                raise reader.fail(limit["interval"], "rate_limit.interval", "expected a duration such as 1s or 500ms")
            config.rate_limit_interval = interval
        if "burst" in limit:
            config.rate_limit_burst = reader.integer(limit["burst"], "rate_limit.burst")
    config.ssl_context()  # loads the certificate and key now: a bad pair fails at start-up
    return config


def _read_tls(reader: _Reader, node: yaml.Node, base: Path) -> TLSSettings | None:
    where = "tls_server_config"
    tls = reader.mapping(
        node,
        where,
        (
            "cert",
            "key",
            "client_ca",
            "cert_file",
            "key_file",
            "client_auth_type",
            "client_ca_file",
            "client_allowed_sans",
            "min_version",
            "max_version",
            "cipher_suites",
            "prefer_server_cipher_suites",
            "curve_preferences",
        ),
    )
    if not tls:
        return None
    for inline in ("cert", "key"):
        if inline in tls and reader.string(tls[inline], f"{where}.{inline}"):
            raise reader.fail(tls[inline], f"{where}.{inline}", f"inline PEM is not supported here; use {inline}_file")
    if "client_allowed_sans" in tls and reader.strings(tls["client_allowed_sans"], f"{where}.client_allowed_sans"):
        raise reader.fail(tls["client_allowed_sans"], f"{where}.client_allowed_sans", "not supported here")
    for required in ("cert_file", "key_file"):
        if required not in tls or not reader.string(tls[required], f"{where}.{required}"):
            raise reader.fail(node, f"{where}.{required}", "missing (TLS needs both cert_file and key_file)")
    settings: dict[str, Any] = {
        "cert_file": reader.file(tls["cert_file"], f"{where}.cert_file", base),
        "key_file": reader.file(tls["key_file"], f"{where}.key_file", base),
    }
    if "client_auth_type" in tls:
        key = f"{where}.client_auth_type"
        policy = reader.string(tls["client_auth_type"], key)
        if policy in _CLIENT_AUTH_UNSUPPORTED:
            raise reader.fail(
                tls["client_auth_type"],
                key,
                f"{policy} is not supported (Python's ssl verifies every client certificate it asks for); "
                "use VerifyClientCertIfGiven or RequireAndVerifyClientCert",
            )
        if policy not in _CLIENT_AUTH:
            raise reader.fail(tls["client_auth_type"], key, f"unknown value {policy!r}")
        settings["client_auth"] = _CLIENT_AUTH[policy]
    if "client_ca_file" in tls and reader.string(tls["client_ca_file"], f"{where}.client_ca_file"):
        settings["client_ca_file"] = reader.file(tls["client_ca_file"], f"{where}.client_ca_file", base)
    if "client_ca" in tls and reader.string(tls["client_ca"], f"{where}.client_ca"):
        settings["client_ca"] = reader.string(tls["client_ca"], f"{where}.client_ca")
    has_ca = "client_ca_file" in settings or "client_ca" in settings
    if has_ca and settings.get("client_auth", ssl.CERT_NONE) == ssl.CERT_NONE:
        raise reader.fail(
            tls.get("client_ca_file") or tls.get("client_ca"),
            f"{where}.client_auth_type",
            "a client CA is configured without a client_auth_type that verifies it",
        )
    for bound in ("min_version", "max_version"):
        if bound in tls:
            version = reader.string(tls[bound], f"{where}.{bound}")
            if version not in _TLS_VERSIONS:
                raise reader.fail(
                    tls[bound],
                    f"{where}.{bound}",
                    f"unknown TLS version {version!r} (one of {', '.join(_TLS_VERSIONS)})",
                )
            settings[bound] = _TLS_VERSIONS[version]
    if settings.get("min_version", ssl.TLSVersion.TLSv1_2) > settings.get("max_version", ssl.TLSVersion.TLSv1_3):
        raise reader.fail(tls.get("min_version"), f"{where}.min_version", "is above max_version")
    if "cipher_suites" in tls:
        settings["ciphers"] = _openssl_ciphers(reader, tls["cipher_suites"], f"{where}.cipher_suites")
    if "curve_preferences" in tls:
        curves = []
        for item, curve in reader.strings(tls["curve_preferences"], f"{where}.curve_preferences"):
            if curve not in _CURVES:
                raise reader.fail(item, f"{where}.curve_preferences", f"unknown curve {curve!r}")
            curves.append(_CURVES[curve])
        settings["curves"] = tuple(curves)
    if "prefer_server_cipher_suites" in tls:
        settings["prefer_server_cipher_suites"] = reader.boolean(
            tls["prefer_server_cipher_suites"], f"{where}.prefer_server_cipher_suites"
        )
    return TLSSettings(**settings)


def _openssl_ciphers(reader: _Reader, node: yaml.Node, key: str) -> tuple[str, ...]:
    """OpenSSL's names for Go's TLS 1.2 cipher suite names, in the file's order."""
    every = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    every.set_ciphers("ALL")
    by_code = {cipher["id"] & 0xFFFF: cipher["name"] for cipher in every.get_ciphers()}
    names = []
    for item, suite in reader.strings(node, key):
        code = _CIPHER_SUITES.get(suite)
        if code is None:
            raise reader.fail(item, key, f"unknown cipher suite {suite!r}")
        if code >> 8 == 0x13:
            continue
        if code not in by_code:
            raise reader.fail(item, key, f"{suite} is not available in this OpenSSL")
        names.append(by_code[code])
    return tuple(names)
