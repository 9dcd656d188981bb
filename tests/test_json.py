"""``--json``: every object validated against the schema *as documented in the README*.

The schema block of the README's "JSON output" section is parsed here, so the
documentation, the code and real output over real sockets cannot drift apart.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from trioping import (
    Family,
    IcmpError,
    IcmpErrorKind,
    InvalidReason,
    InvalidReply,
    LateReply,
    Outstanding,
    ProbeResult,
    Reply,
    RttClock,
    SendError,
    Timeout,
)
from trioping._json import dumps, outstanding_object, result_object, summary_object
from trioping._stats import StatsAccumulator

from .conftest import requires_raw, run_cli
from .netlab import NetLab, ResponderFactory

NOW = 1_700_000_000.25
README = Path(__file__).resolve().parent.parent / "README.md"
_JSON_TYPES = {"string": (str,), "int": (int,), "number": (int, float), "bool": (bool,)}
ENUMS = {
    "clock": {c.value for c in RttClock},
    "kind": {k.value for k in IcmpErrorKind},
    "reason": {r.value for r in InvalidReason},
}


@dataclass(frozen=True)
class Field:
    kind: str
    nullable: bool


def documented_schema() -> dict[str, dict[str, Field]]:
    """``type -> {field: Field}`` from the README's schema block."""
    text = README.read_text()
    section = text.split("## JSON output", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```text\n(.*?)```", section, re.S)
    assert block is not None, "the JSON section has no ```text schema block"
    rows: list[tuple[str, list[str]]] = []
    for line in block.group(1).splitlines():
        if line.startswith(" "):  # continuation of the previous row
            rows[-1][1].extend(line.split())
        elif line.startswith("(every probe)"):
            rows.append(("(every probe)", line.removeprefix("(every probe)").split()))
        else:
            name, *fields = line.split()
            rows.append((name, fields))

    def parse(tokens: list[str]) -> dict[str, Field]:
        fields = {}
        for token in tokens:
            name, _, kind = token.partition(":")
            fields[name] = Field(kind.rstrip("?"), kind.endswith("?"))
            assert fields[name].kind in _JSON_TYPES, token
        return fields

    common = parse(dict(rows)["(every probe)"])
    schema = {}
    for name, tokens in rows:
        if name == "(every probe)":
            continue
        schema[name] = parse(tokens) if name == "summary" else {**common, **parse(tokens)}
    return schema


SCHEMA = documented_schema()


def validate(obj: dict[str, Any]) -> None:
    """Raise AssertionError unless *obj* is exactly as documented."""
    assert obj.get("type") in SCHEMA, obj
    fields = SCHEMA[obj["type"]]
    assert set(obj) == set(fields), f"{obj['type']}: fields {sorted(obj)} != documented {sorted(fields)}"
    for name, value in obj.items():
        field = fields[name]
        if value is None:
            assert field.nullable, f"{obj['type']}.{name} is null"
            continue
        types = _JSON_TYPES[field.kind]
        assert isinstance(value, types), f"{obj['type']}.{name} = {value!r} is not {field.kind}"
        assert field.kind == "bool" or not isinstance(value, bool), f"{obj['type']}.{name} is a bool"
        if isinstance(value, float):
            assert math.isfinite(value)
        if name in ENUMS:
            assert value in ENUMS[name], f"{obj['type']}.{name} = {value!r}"
    assert obj["time"] > 1e9


def parse_lines(stdout: str) -> list[dict[str, Any]]:
    """Every stdout line is one JSON object, and nothing else is printed."""
    objects = []
    for line in stdout.splitlines():
        obj = json.loads(line)
        assert isinstance(obj, dict)
        assert dumps(obj) == line  # compact, one line
        validate(obj)
        objects.append(obj)
    return objects


def run_json(*args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, "--json")


# --------------------------------------------------------------------------------------------
# The documented schema and the code


def test_the_readme_documents_every_result_type() -> None:
    produced = {
        Reply: "reply",
        LateReply: "late",
        Timeout: "timeout",
        IcmpError: "error",
        SendError: "send_error",
        InvalidReply: "invalid",
    }
    assert set(typing.get_args(ProbeResult)) == set(produced)
    assert set(SCHEMA) == {*produced.values(), "outstanding", "summary"}


def _samples() -> list[ProbeResult]:
    return [
        Reply("127.0.0.1", "127.0.0.1", 1, 0, 64, 64, 41e-6, RttClock.KERNEL),
        Reply("::1", "::1", 1, 0, 64, None, 0.5, RttClock.MONOTONIC, duplicate=True),
        LateReply("198.18.3.2", "198.18.3.2", 2, 1, 64, 63, 2.5, RttClock.KERNEL_RX),
        Timeout("198.18.5.2", 3, 2),
        IcmpError("198.18.4.4", "198.18.1.2", 4, 3, Family.V4, 3, 1),
        IcmpError("198.18.2.9", "198.18.1.2", 5, 4, Family.V4, 3, 4, 1280),
        IcmpError("2001:db8:2::9", "2001:db8:1::2", 5, 4, Family.V6, 2, 0, 1280),
        IcmpError("198.18.2.9", "198.18.1.2", 6, 5, Family.V4, 99, 0),
        SendError("198.18.2.2", 7, 6, 90, "local error: message too long, mtu=1500", mtu=1500),
        SendError("198.18.2.2", 8, 7, 101, "Network is unreachable"),
        InvalidReply("198.18.3.2", "198.18.3.2", 9, 8, InvalidReason.WRONG_TOKEN),
    ]


@pytest.mark.parametrize("result", _samples(), ids=lambda r: type(r).__name__)
def test_every_result_type_follows_the_schema(result: ProbeResult) -> None:
    obj = result_object(result, "host.example", NOW)
    validate(obj)
    assert json.loads(dumps(obj)) == obj
    assert (obj["host"], obj["target"], obj["seq"], obj["index"]) == (
        "host.example",
        result.target,
        result.sequence,
        result.probe_index,
    )


def test_field_values() -> None:
    reply, dup, late, _, unreachable, frag, too_big, unknown, too_long, *_ = (
        result_object(r, "h", NOW) for r in _samples()
    )
    assert (reply["rtt_ms"], reply["size"], reply["ttl"], reply["clock"], reply["duplicate"]) == (
        0.041,
        64,
        64,
        "kernel",
        False,
    )
    assert (dup["ttl"], dup["duplicate"], late["rtt_ms"], late["clock"]) == (None, True, 2500.0, "kernel-rx")
    assert (unreachable["kind"], unreachable["description"], unreachable["mtu"]) == (
        "destination-unreachable",
        "Destination Host Unreachable",
        None,
    )
    assert (frag["mtu"], too_big["kind"], too_big["mtu"]) == (1280, "packet-too-big", 1280)
    assert unknown["kind"] is None
    assert (too_long["errno"], too_long["mtu"]) == (90, 1500)
    notice = outstanding_object(Outstanding("127.0.0.1", 5, 4), "localhost", NOW)
    validate(notice)
    assert notice == {
        "type": "outstanding",
        "time": NOW,
        "host": "localhost",
        "target": "127.0.0.1",
        "seq": 5,
        "index": 4,
    }


def test_summary_object() -> None:
    acc = StatsAccumulator("localhost", "127.0.0.1")
    acc.transmitted = 3
    for result in _samples()[:4]:
        acc.add(result)
    acc.elapsed = 2.0
    obj = summary_object(acc.snapshot(), "localhost", NOW)
    validate(obj)
    assert obj == {
        "type": "summary",
        "time": NOW,
        "host": "localhost",
        "target": "127.0.0.1",
        "transmitted": 3,
        "received": 1,
        "duplicates": 1,
        "errors": 0,
        "send_errors": 0,
        "late": 1,
        "invalid": 0,
        "loss_percent": pytest.approx(200 / 3, abs=1e-6),
        "elapsed_ms": 2000.0,
        "rtt_min_ms": 0.041,
        "rtt_avg_ms": 0.041,
        "rtt_max_ms": 0.041,
        "rtt_mdev_ms": 0.0,
    }
    empty = summary_object(StatsAccumulator("h", "a").snapshot(), "h", NOW)
    validate(empty)
    assert empty["rtt_avg_ms"] is None


def test_the_readme_example_is_valid() -> None:
    section = README.read_text().split("## JSON output", 1)[1].split("\n## ", 1)[0]
    example = [line for line in section.splitlines() if line.startswith('{"type":')]
    assert len(example) >= 2
    parse_lines("\n".join(example))


# --------------------------------------------------------------------------------------------
# Real output


@requires_raw
def test_cli_json_on_loopback() -> None:
    done = run_json("localhost", "-4", "-c", "3", "-i", "0.02")
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    objects = parse_lines(done.stdout)
    assert [o["type"] for o in objects] == ["reply", "reply", "reply", "summary"]
    assert [o["seq"] for o in objects[:3]] == [1, 2, 3]
    assert {(o["host"], o["target"], o["source"], o["ttl"]) for o in objects[:3]} == {
        ("localhost", "127.0.0.1", "127.0.0.1", 64)
    }
    summary = objects[-1]
    assert (summary["transmitted"], summary["received"], summary["loss_percent"]) == (3, 3, 0)
    assert summary["rtt_min_ms"] <= summary["rtt_avg_ms"] <= summary["rtt_max_ms"]
    assert [o["time"] for o in objects] == sorted(o["time"] for o in objects)


@requires_raw
def test_cli_json_quiet_prints_only_the_summary() -> None:
    done = run_json("::1", "-c", "2", "-i", "0.02", "-q")
    assert done.returncode == 0
    assert [o["type"] for o in parse_lines(done.stdout)] == ["summary"]


@requires_raw
def test_cli_json_every_kind_of_event(netlab: NetLab, responder: ResponderFactory) -> None:
    """A misbehaving responder, an unreachable address and an oversize DF probe."""
    responder({"1": "late:200", "2": "wrong_token", "3": "duplicate", "default": "ok"})
    done = run_json(netlab.responder_v4, "-c", "4", "-i", "0.1", "-W", "0.1", "-O")
    assert done.returncode == 0, done.stderr
    objects = parse_lines(done.stdout)
    by_type: dict[str, list[int]] = {}
    for obj in objects:
        by_type.setdefault(obj["type"], []).append(obj.get("seq", 0))
    assert by_type["reply"] == [3, 3, 4]  # with its duplicate
    assert by_type["invalid"] == [2]
    assert by_type["late"] == [1]
    assert sorted(by_type["timeout"]) == [1, 2]
    assert by_type["outstanding"] == [1, 2]
    assert [o["duplicate"] for o in objects if o["type"] == "reply"] == [False, True, False]
    summary = objects[-1]
    assert summary["type"] == "summary"
    assert (summary["transmitted"], summary["received"], summary["duplicates"]) == (4, 2, 1)
    assert (summary["late"], summary["invalid"], summary["loss_percent"]) == (1, 1, 50)

    unreachable = parse_lines(run_json(netlab.unreachable_v6, "-c", "1").stdout)
    assert [o["type"] for o in unreachable] == ["error", "summary"]
    assert (unreachable[0]["source"], unreachable[0]["kind"], unreachable[0]["icmp_type"]) == (
        netlab.router_v6,
        "destination-unreachable",
        1,
    )

    oversize = run_json(netlab.live_host_v4, "-c", "1", "-M", "do", "-s", "1500")
    assert oversize.returncode == 1
    send_error, summary = parse_lines(oversize.stdout)
    assert (send_error["type"], send_error["errno"], send_error["mtu"]) == ("send_error", 90, 1500)
    assert send_error["message"] == "local error: message too long, mtu=1500"
    assert (summary["transmitted"], summary["errors"], summary["send_errors"]) == (1, 1, 1)
    assert (summary["loss_percent"], summary["rtt_avg_ms"]) == (100, None)


def test_cli_json_errors_stay_on_stderr() -> None:
    done = run_json("nonexistent.invalid", "-c", "1")
    assert done.returncode == 2
    assert done.stdout == ""
    assert len(done.stderr.splitlines()) == 1
