"""The exporter's configuration: smokeping_prober's flags' values and its YAML file.

An existing smokeping_prober file must work unchanged, so the file's keys, defaults and
value syntax are smokeping_prober's (Go durations such as ``500ms``, ``tos`` in decimal,
hex or binary).  Where smokeping_prober silently ignores a mistake (an unknown key, a size
out of range discovered only when probing starts), this module refuses it with one line
that names the file, the key and its line, so that a typo cannot quietly stop a host
being probed.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ._errors import TriopingError

DEFAULT_BUCKETS = tuple(5e-05 * 2**i for i in range(20))
"""smokeping_prober's buckets: ``prometheus.ExponentialBuckets(0.00005, 2, 20)``."""

NETWORKS = ("ip", "ip4", "ip6")
PROTOCOLS = ("icmp", "udp")
"""``icmp``: raw sockets (privileged); ``udp``: ICMP datagram sockets, as pro-bing names them."""
_GROUP_KEYS = ("hosts", "host", "interval", "labels", "network", "protocol", "size", "source", "tos")
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_OWN_LABELS = ("host", "ip", "source", "tos")
_MIN_SIZE, _MAX_SIZE = 24, 65535


class ConfigError(TriopingError):
    """A bad flag value or configuration file: one line naming what is wrong and where."""


_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float:
    """Seconds in a Go duration (``time.ParseDuration``: ``1s``, ``500ms``, ``1m30s``).

    Raises ValueError with Go's wording for anything else (a bare number included, which
    Go refuses too, except ``0``).
    """
    text = text.strip()
    sign = 1.0
    rest = text
    if rest[:1] in "+-" and rest:
        sign = -1.0 if rest[0] == "-" else 1.0
        rest = rest[1:]
    if rest == "0":
        return 0.0
    if not rest:
        raise ValueError(f'invalid duration "{text}"')
    total = 0.0
    position = 0
    while position < len(rest):
        match = _DURATION_PART.match(rest, position)
        if match is None:
            raise ValueError(f'invalid duration "{text}"')
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        position = match.end()
    return sign * total


def format_duration(seconds: float) -> str:
    """The short Go-style spelling of *seconds* for messages and the ``/`` page."""
    if seconds >= 1 and float(seconds).is_integer():
        return f"{int(seconds)}s"
    if seconds < 1:
        return f"{seconds * 1e3:g}ms"
    return f"{seconds:g}s"


def parse_buckets(text: str) -> tuple[float, ...]:
    """``--buckets``: comma-separated, strictly increasing, finite upper bounds."""
    try:
        buckets = tuple(float(part) for part in text.split(","))
    except ValueError:
        raise ConfigError(f"--buckets: not a comma-separated list of numbers: {text!r}") from None
    if not buckets or any(not math.isfinite(b) for b in buckets) or list(buckets) != sorted(set(buckets)):
        raise ConfigError(f"--buckets: bucket bounds must be finite and strictly increasing: {text!r}")
    return buckets


@dataclass(frozen=True, slots=True)
class TargetGroup:
    """One ``targets:`` entry (or the hosts given on the command line).  ``line`` is where
    it starts in the file (0 for the command line), for messages."""

    hosts: tuple[str, ...]
    interval: float = 1.0
    network: str = "ip"
    protocol: str = "icmp"
    size: int = 56
    source: str = ""
    tos: int = 0
    labels: tuple[tuple[str, str], ...] = ()
    """smokeping_prober's ``labels:``: extra labels on every series of the group's hosts."""
    line: int = 0
    host_lines: tuple[int, ...] = ()


def _where(path: str, node: yaml.Node) -> str:
    return f"{path}:{node.start_mark.line + 1}"


def _scalar(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    return loader.construct_object(node, deep=True)


def _group(path: str, loader: yaml.SafeLoader, node: yaml.Node) -> TargetGroup:
    if not isinstance(node, yaml.MappingNode):
        raise ConfigError(
            f"{_where(path, node)}: each entry of targets must be a mapping (hosts: [...], interval: ...)"
        )
    values: dict[str, Any] = {}
    nodes: dict[str, yaml.Node] = {}
    for key_node, value_node in node.value:
        key = _scalar(loader, key_node)
        if key not in _GROUP_KEYS:
            known = ", ".join(k for k in _GROUP_KEYS if k != "host")
            raise ConfigError(f"{_where(path, key_node)}: unknown key {key!r} in a target group (known: {known})")
        if key in nodes:
            raise ConfigError(f"{_where(path, key_node)}: key {key!r} given twice in one target group")
        nodes[key] = value_node
        values[key] = _scalar(loader, value_node)

    def bad(key: str, what: str) -> ConfigError:
        return ConfigError(f"{_where(path, nodes[key])}: {key}: {what}, not {values[key]!r}")

    hosts: list[str] = []
    host_lines: list[int] = []
    if "hosts" in values:
        hosts_node = nodes["hosts"]
        if not isinstance(hosts_node, yaml.SequenceNode):
            raise bad("hosts", "must be a list of host names or addresses")
        for item in hosts_node.value:
            host = _scalar(loader, item)
            if not isinstance(host, str) or not host.strip():
                raise ConfigError(f"{_where(path, item)}: hosts: each host must be a non-empty string, not {host!r}")
            hosts.append(host.strip())
            host_lines.append(item.start_mark.line + 1)
    if "host" in values:  # smokeping_prober folds a single `host` into `hosts`
        if not isinstance(values["host"], str) or not values["host"].strip():
            raise bad("host", "must be a host name or address")
        if not hosts:
            hosts.append(values["host"].strip())
            host_lines.append(nodes["host"].start_mark.line + 1)
    group: dict[str, Any] = {}
    if "interval" in values:
        raw = values["interval"]
        if isinstance(raw, str):
            try:
                interval = parse_duration(raw)
            except ValueError:
                raise bad("interval", "must be a duration such as 1s, 500ms or 1m") from None
        elif isinstance(raw, int) and not isinstance(raw, bool):
            interval = raw / 1e9  # yaml.v2 decodes an integer into a time.Duration as nanoseconds
        else:
            raise bad("interval", "must be a duration such as 1s, 500ms or 1m")
        if interval <= 0:
            raise bad("interval", "must be more than zero")
        group["interval"] = interval
    if "network" in values:
        if values["network"] not in NETWORKS:
            raise bad("network", f"must be one of {', '.join(NETWORKS)}")
        group["network"] = values["network"]
    if "protocol" in values:
        if values["protocol"] not in PROTOCOLS:
            raise bad("protocol", f"must be one of {', '.join(PROTOCOLS)}")
        group["protocol"] = values["protocol"]
    if "size" in values:
        size = values["size"]
        if isinstance(size, bool) or not isinstance(size, int) or not _MIN_SIZE <= size <= _MAX_SIZE:
            raise bad("size", f"must be a whole number of bytes from {_MIN_SIZE} to {_MAX_SIZE}")
        group["size"] = size
    if "source" in values:
        source = values["source"]
        if source is None:
            source = ""
        if not isinstance(source, str):
            raise bad("source", "must be an IP address")
        group["source"] = source.strip()
    if "tos" in values:
        tos = values["tos"]
        if isinstance(tos, str):  # a quoted "0x10"
            try:
                tos = int(tos, 0)
            except ValueError:
                raise bad("tos", "must be a number from 0 to 255 (decimal, 0x hex or 0b binary)") from None
        if isinstance(tos, bool) or not isinstance(tos, int) or not 0 <= tos <= 255:
            raise bad("tos", "must be a number from 0 to 255 (decimal, 0x hex or 0b binary)")
        group["tos"] = tos
    if "labels" in values:
        labels = values["labels"]
        if labels is None:
            labels = {}
        if not isinstance(labels, dict):
            raise bad("labels", "must be a mapping of label names to values")
        extra: dict[str, str] = {}
        for name, value in labels.items():
            if not isinstance(name, str) or not _LABEL_NAME.fullmatch(name) or name.startswith("__"):
                raise bad("labels", f"{name!r} is not a Prometheus label name")
            if isinstance(value, bool) or not isinstance(value, str | int | float):
                raise bad("labels", f"the value of {name!r} must be a string")
            if name not in _OWN_LABELS:  # smokeping_prober's own labels win, as there
                extra[name] = str(value)
        group["labels"] = tuple(sorted(extra.items()))
    return TargetGroup(hosts=tuple(hosts), line=node.start_mark.line + 1, host_lines=tuple(host_lines), **group)


def load_config(path: str | Path) -> list[TargetGroup]:
    """The target groups of a smokeping_prober configuration file.

    Raises :class:`ConfigError` (one line: file, line, key, what is wrong) for a file that
    cannot be read or parsed, an unknown key, or a bad value.
    """
    name = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{name}: cannot read the configuration file: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{name}: the configuration file is not UTF-8 text") from None
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
        if root is None:
            return []
        if not isinstance(root, yaml.MappingNode):
            raise ConfigError(f"{_where(name, root)}: the configuration must be a mapping with a `targets:` list")
        groups: list[TargetGroup] = []
        for key_node, value_node in root.value:
            key = _scalar(loader, key_node)
            if key != "targets":
                raise ConfigError(f"{_where(name, key_node)}: unknown key {key!r} (known: targets)")
            if isinstance(value_node, yaml.ScalarNode) and _scalar(loader, value_node) is None:
                continue
            if not isinstance(value_node, yaml.SequenceNode):
                raise ConfigError(f"{_where(name, value_node)}: targets must be a list of target groups")
            groups.extend(_group(name, loader, item) for item in value_node.value)
        return groups
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{name}:{mark.line + 1}" if mark is not None else name
        raise ConfigError(f"{where}: not valid YAML: {exc.problem or exc.context}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{name}: not valid YAML: {exc}") from None
    finally:
        loader.dispose()


def check_unique(groups: list[TargetGroup], config_file: str | None) -> None:
    """Refuse a host listed twice with the same source and tos: both would export the same
    series, and Prometheus rejects a scrape that repeats one."""
    seen: dict[tuple[str, str, int], str] = {}
    for group in groups:
        lines = group.host_lines or (0,) * len(group.hosts)
        for host, line in zip(group.hosts, lines, strict=True):
            where = f"{config_file}:{line}" if line else "the command line"
            key = (host, group.source, group.tos)
            if key in seen:
                raise ConfigError(
                    f"{where}: host {host!r} is listed twice with the same source and tos (also on {seen[key]})"
                )
            seen[key] = where


__all__ = [
    "DEFAULT_BUCKETS",
    "ConfigError",
    "TargetGroup",
    "check_unique",
    "format_duration",
    "load_config",
    "parse_buckets",
    "parse_duration",
]
