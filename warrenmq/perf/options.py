"""Command-line options, named after RabbitMQ PerfTest's where they overlap.

Precedence: built-in defaults < ``--scenario`` < ``--smoke`` < explicit options.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Sequence
from typing import Any

from .config import ConfigError, PerfConfig
from .procstat import listening_pid
from .scenarios import SCENARIOS, get_scenario
from .uri import DEFAULT_URI, parse_uri

S = argparse.SUPPRESS  # only options actually given land in the namespace


def _flag(value: str) -> str:
    flag = value.strip().lower()
    if flag not in ("persistent", "mandatory"):
        raise argparse.ArgumentTypeError(f"unknown flag {value!r} (persistent, mandatory)")
    return flag


def _pid(value: str) -> int | str:
    if value == "auto":
        return value
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is neither a PID nor 'auto'") from None


def resolve_broker_pid(uri: str) -> int:
    """'auto': the local process listening on the URI's port."""
    parsed = parse_uri(uri)
    if parsed.host not in (
        "127.0.0.1",
        "localhost",
        "::1",
    ) and not parsed.host.startswith("127."):
        raise ConfigError("--broker-pid auto only works for a broker on this machine")
    pid = listening_pid(parsed.port)
    if pid is None:
        raise ConfigError(f"--broker-pid auto: found no process listening on port {parsed.port}")
    return pid


def _arguments(value: str) -> dict[str, Any]:
    """PerfTest's ``key=value,key=value`` (integers and true/false typed, the rest strings)."""
    out: dict[str, Any] = {}
    for pair in filter(None, (p.strip() for p in value.split(","))):
        key, sep, text = pair.partition("=")
        if not sep or not key:
            raise argparse.ArgumentTypeError(f"{pair!r} is not key=value")
        typed: Any = text
        if re.fullmatch(r"-?[0-9]+", text):
            typed = int(text)
        elif text in ("true", "false"):
            typed = text == "true"
        out[key.strip()] = typed
    return out


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="warren-perf",
        description="Load generator for AMQP 0-9-1 brokers (PerfTest-style).",
        argument_default=S,
    )
    p.add_argument(
        "--uri",
        "-H",
        dest="uri",
        action="append",
        help="broker URI (default " + DEFAULT_URI.replace("%", "%%") + "); repeat it for several brokers:"
        " queue i then lives on URI i mod k, and its producers and consumers connect there",
    )
    p.add_argument(
        "--scenario",
        "-S",
        choices=list(SCENARIOS),
        help="a standard scenario's options",
    )
    p.add_argument(
        "--smoke",
        action="store_true",
        help="shrink the scenario to a few seconds (pipeline check)",
    )
    p.add_argument(
        "--list-scenarios",
        action="store_true",
        help="list the standard scenarios and exit",
    )
    g = p.add_argument_group("workload")
    g.add_argument("-x", "--producers", type=int, help="producer connections (default 1)")
    g.add_argument("-y", "--consumers", type=int, help="consumer connections (default 1)")
    g.add_argument("-s", "--size", type=int, help="message body size in bytes (default 12)")
    g.add_argument(
        "-a",
        "--auto-ack",
        dest="auto_ack",
        action="store_true",
        help="consume with no-ack",
    )
    g.add_argument("-q", "--qos", type=int, help="consumer prefetch count (default 0 = unlimited)")
    g.add_argument(
        "--multi-ack-every",
        "-A",
        dest="multi_ack_every",
        type=int,
        help="ack with multiple=true every N",
    )
    g.add_argument(
        "-f",
        "--flag",
        dest="flags",
        type=_flag,
        action="append",
        help="persistent | mandatory",
    )
    g.add_argument(
        "-c",
        "--confirm",
        type=int,
        help="publisher confirms, at most WINDOW outstanding",
    )
    g.add_argument("--fanout", type=int, help="publish to a fanout exchange bound to N queues")
    g.add_argument("--queues", type=int, help="spread producers and consumers over N queues")
    g.add_argument(
        "--quorum-queue",
        dest="quorum",
        action="store_true",
        help="declare quorum queues (x-queue-type: quorum; durable, persistent messages)",
    )
    g.add_argument(
        "-r",
        "--rate",
        type=float,
        help="total publish rate limit in msg/s (enables latency)",
    )
    g.add_argument(
        "--latency",
        action="store_true",
        help="embed timestamps and report latency without --rate",
    )
    g.add_argument(
        "-z",
        "--duration",
        "--time",
        dest="duration",
        type=float,
        help="seconds to run (default 10)",
    )
    g.add_argument(
        "--drain-timeout",
        type=float,
        help="seconds to let consumers catch up at the end (default 30)",
    )
    g.add_argument("--queue-prefix", help="prefix for queue and exchange names (default perf-)")
    g.add_argument(
        "--queue-args",
        "-qa",
        dest="queue_args",
        type=_arguments,
        help="queue arguments, e.g. x-queue-type=stream (durable queues for streams and quorum queues)",
    )
    g.add_argument(
        "--consumer-args",
        "-ca",
        dest="consumer_args",
        type=_arguments,
        help="consumer arguments, e.g. x-stream-offset=first",
    )
    m = p.add_argument_group("modes")
    m.add_argument(
        "--backlog",
        type=int,
        help="publish N messages with no consumer, then drain them",
    )
    m.add_argument("--no-drain", dest="drain", action="store_false", help="backlog: do not drain")
    m.add_argument(
        "--idle-connections",
        type=int,
        help="open N connections with one channel each and hold them",
    )
    m.add_argument("--hold", type=float, help="idle: seconds to hold the connections (default 2)")
    m.add_argument(
        "--connect-concurrency",
        type=int,
        help="idle: handshakes in flight (default 100)",
    )
    m.add_argument(
        "--connect-timeout",
        type=float,
        help="seconds per connection handshake (default 10)",
    )
    m.add_argument(
        "--max-failures",
        type=int,
        help="idle: stop opening after N failures (default 100)",
    )
    o = p.add_argument_group("measurement and output")
    o.add_argument(
        "--broker-pid",
        type=_pid,
        help="sample CPU and RSS of this process and its children from /proc ('auto': whoever listens on the port)",
    )
    o.add_argument(
        "--settle-timeout",
        type=float,
        help="max seconds to wait for broker RSS to settle before reading it (default 10)",
    )
    o.add_argument("--json", action="store_true", help="print one JSON document instead of a table")
    o.add_argument("--progress", action="store_true", help="print per-interval rates to stderr")
    o.add_argument("--interval", type=float, help="progress interval in seconds (default 1)")
    o.add_argument(
        "--producer-processes",
        type=int,
        help="OS processes for producers (default min(x, cpus))",
    )
    o.add_argument(
        "--consumer-processes",
        type=int,
        help="OS processes for consumers (default min(y, cpus))",
    )
    return p


def config_from_args(
    argv: Sequence[str] | None = None,
) -> tuple[PerfConfig, argparse.Namespace]:
    """Parse argv into a validated config; raises SystemExit on bad usage."""
    parser = build_parser()
    ns = parser.parse_args(argv)
    try:
        return merge(vars(ns)), ns
    except ConfigError as e:
        parser.error(str(e))
        raise  # unreachable: parser.error exits


def merge(given: dict[str, Any]) -> PerfConfig:
    """Apply scenario, smoke and explicit options over the defaults."""
    given = dict(given)
    given.pop("list_scenarios", None)
    smoke = bool(given.pop("smoke", False))
    values: dict[str, Any] = {}
    name = given.get("scenario")
    if name:
        scenario = get_scenario(name)
        values.update(scenario.options)
        if smoke:
            values.update(scenario.smoke)
    elif smoke:
        values.update({"duration": 1.0})
    flags = given.pop("flags", None) or []
    if "persistent" in flags:
        values["persistent"] = True
    if "mandatory" in flags:
        values["mandatory"] = True
    uris = given.pop("uri", None)
    if isinstance(uris, list):  # --uri given once or more
        given["uri"] = uris[0]
        given["uris"] = uris if len(uris) > 1 else []
    elif uris is not None:
        given["uri"] = uris
    values.update(given)
    if values.get("quorum"):
        values["persistent"] = True  # as PerfTest's --quorum-queue
    try:
        for uri in values.get("uris") or [values.get("uri", DEFAULT_URI)]:
            parse_uri(uri)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    if values.get("broker_pid") == "auto":
        values["broker_pid"] = resolve_broker_pid(values.get("uri", DEFAULT_URI))
    return PerfConfig(**values).validate()
