"""The standard scenarios: named option sets plus the figures that matter."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Headline:
    """A figure that sums up a scenario, and which way is better."""

    metric: str
    label: str
    better: str  # "higher" or "lower"


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    options: dict[str, Any]
    headlines: tuple[Headline, ...]
    needs_broker_pid: bool = False
    # Options that make the scenario a few-second smoke test (tests, bench-smoke).
    smoke: dict[str, Any] = field(default_factory=dict)
    # Run by bench/compare.py when no scenarios are named (the cluster ones are asked for).
    in_bench: bool = True


_RATES = (
    Headline("publish_rate", "publish msg/s", "higher"),
    Headline("consume_rate", "consume msg/s", "higher"),
)
_SHORT = {"duration": 1.0, "drain_timeout": 10.0}

# Order matters for runners that go down the list: memory scenarios first, while
# the broker holds no garbage from earlier runs; the 1M backlog last.
SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario(
            "idle-connections",
            "memory per idle connection with one open channel (1,000 connections)",
            {"idle_connections": 1000, "hold": 3.0, "settle_timeout": 60.0},
            (
                Headline("bytes_per_connection", "broker bytes/connection", "lower"),
                Headline("connections_failed", "failed connections", "lower"),
            ),
            needs_broker_pid=True,
            smoke={"idle_connections": 20, "hold": 0.2, "settle_timeout": 0.5},
        ),
        Scenario(
            "queued-memory",
            "memory per queued 100 B message (200,000 messages, no consumer)",
            {"backlog": 200_000, "size": 100, "drain": False, "consumers": 0, "settle_timeout": 60.0},
            (
                Headline("bytes_per_message", "broker bytes/queued msg", "lower"),
                Headline("backlog_publish_rate", "publish msg/s", "higher"),
            ),
            needs_broker_pid=True,
            smoke={"backlog": 2000, "settle_timeout": 0.5},
        ),
        Scenario(
            "connections-10k",
            "10,000 concurrent idle connections (one channel each) held without errors",
            {
                "idle_connections": 10_000,
                "hold": 3.0,
                "max_failures": 200,
                "connect_concurrency": 200,
            },
            (
                Headline("connections_opened", "connections opened", "higher"),
                Headline("connections_failed", "failed connections", "lower"),
                Headline("bytes_per_connection", "broker bytes/connection", "lower"),
            ),
            smoke={"idle_connections": 50, "hold": 0.2, "settle_timeout": 0.5},
        ),
        Scenario(
            "transient-16b",
            "1 producer -> 1 consumer, 16 B transient messages, auto-ack",
            {"producers": 1, "consumers": 1, "size": 16, "auto_ack": True},
            _RATES,
            smoke=_SHORT,
        ),
        Scenario(
            "transient-1k",
            "1 producer -> 1 consumer, 1 KiB transient messages, auto-ack",
            {"producers": 1, "consumers": 1, "size": 1024, "auto_ack": True},
            _RATES,
            smoke=_SHORT,
        ),
        Scenario(
            "manual-ack-100",
            "1 -> 1, 16 B, manual ack of each message, prefetch 100",
            {
                "producers": 1,
                "consumers": 1,
                "size": 16,
                "qos": 100,
                "multi_ack_every": 0,
            },
            _RATES,
            smoke=_SHORT,
        ),
        Scenario(
            "manual-ack-1000-multi",
            "1 -> 1, 16 B, prefetch 1000, one multiple-ack every 100 messages",
            {
                "producers": 1,
                "consumers": 1,
                "size": 16,
                "qos": 1000,
                "multi_ack_every": 100,
            },
            _RATES,
            smoke=_SHORT,
        ),
        Scenario(
            "persistent-confirm",
            "1 -> 1, 16 B persistent messages to a durable queue, confirm window 256, manual ack",
            {
                "producers": 1,
                "consumers": 1,
                "size": 16,
                "persistent": True,
                "confirm": 256,
                "qos": 1000,
                "multi_ack_every": 100,
            },
            (
                Headline("confirm_rate", "confirmed msg/s", "higher"),
                Headline("consume_rate", "consume msg/s", "higher"),
            ),
            smoke=_SHORT,
        ),
        Scenario(
            "stream",
            "1 -> 1 stream queue (x-stream-offset first), 16 B, prefetch 1000, one multiple-ack every 100",
            {
                "producers": 1,
                "consumers": 1,
                "size": 16,
                "qos": 1000,
                "multi_ack_every": 100,
                "queue_args": {"x-queue-type": "stream"},
                "consumer_args": {"x-stream-offset": "first"},
            },
            _RATES,
            smoke=_SHORT,
        ),
        Scenario(
            "stream-confirm",
            "as stream, with publisher confirms (window 256): a confirm means the message is on disk",
            {
                "producers": 1,
                "consumers": 1,
                "size": 16,
                "confirm": 256,
                "qos": 1000,
                "multi_ack_every": 100,
                "queue_args": {"x-queue-type": "stream"},
                "consumer_args": {"x-stream-offset": "first"},
            },
            (
                Headline("confirm_rate", "confirmed msg/s", "higher"),
                Headline("consume_rate", "consume msg/s", "higher"),
            ),
            smoke=_SHORT,
        ),
        Scenario(
            "stream-read-1m",
            "1,000,000 16 B messages appended to a stream, then read by a consumer from its first offset",
            {
                "backlog": 1_000_000,
                "size": 16,
                "qos": 1000,
                "multi_ack_every": 100,
                "queue_args": {"x-queue-type": "stream"},
                "consumer_args": {"x-stream-offset": "first"},
                "drain_timeout": 600.0,
            },
            (
                Headline("backlog_publish_rate", "publish msg/s", "higher"),
                Headline("drain_rate", "read from first msg/s", "higher"),
                Headline("drain_rss_peak_bytes", "broker peak RSS while reading", "lower"),
            ),
            smoke={"backlog": 5000, "drain_timeout": 30.0, "settle_timeout": 0.5},
        ),
        Scenario(
            "fanout-10",
            "1 producer -> fanout exchange -> 10 queues, 1 consumer each, 16 B, auto-ack",
            # Flat out, the queues fill faster than they drain: do not wait long.
            {
                "producers": 1,
                "consumers": 10,
                "fanout": 10,
                "size": 16,
                "auto_ack": True,
                "drain_timeout": 5.0,
            },
            (
                Headline("publish_rate", "publish msg/s", "higher"),
                Headline("consume_rate", "deliveries/s (all queues)", "higher"),
            ),
            smoke={"duration": 1.0, "rate": 5000.0, "drain_timeout": 10.0},
        ),
        Scenario(
            "latency-1000",
            "1 -> 1 at 1,000 msg/s, 16 B, auto-ack; end-to-end latency",
            {
                "producers": 1,
                "consumers": 1,
                "size": 16,
                "auto_ack": True,
                "rate": 1000.0,
            },
            (
                Headline("latency_p50_ms", "latency p50 ms", "lower"),
                Headline("latency_p99_ms", "latency p99 ms", "lower"),
                Headline("latency_p999_ms", "latency p99.9 ms", "lower"),
            ),
            smoke={"duration": 1.0, "rate": 200.0},
        ),
        Scenario(
            "quorum-confirm",
            "1 -> 1, 16 B persistent messages to a quorum queue, confirm window 256, manual ack",
            {
                "producers": 1,
                "consumers": 1,
                "size": 16,
                "quorum": True,
                "persistent": True,
                "confirm": 256,
                "qos": 1000,
                "multi_ack_every": 100,
            },
            (
                Headline("confirm_rate", "confirmed msg/s", "higher"),
                Headline("consume_rate", "consume msg/s", "higher"),
            ),
            smoke=_SHORT,
            in_bench=False,
        ),
        Scenario(
            "quorum-spread",
            "6 quorum queues, 1 -> 1 each, 16 B persistent, confirm window 256; queue i on --uri i mod k",
            {
                "producers": 6,
                "consumers": 6,
                "queues": 6,
                "size": 16,
                "quorum": True,
                "persistent": True,
                "confirm": 256,
                "qos": 1000,
                "multi_ack_every": 100,
            },
            (
                Headline("confirm_rate", "confirmed msg/s (all queues)", "higher"),
                Headline("consume_rate", "consume msg/s (all queues)", "higher"),
            ),
            smoke=_SHORT,
            in_bench=False,
        ),
        Scenario(
            "backlog-1m",
            "1,000,000 16 B messages published with no consumer, then drained",
            {
                "backlog": 1_000_000,
                "size": 16,
                "auto_ack": True,
                "drain_timeout": 600.0,
            },
            (
                Headline("backlog_publish_rate", "publish msg/s", "higher"),
                Headline("drain_rate", "drain msg/s", "higher"),
                Headline("broker_rss_peak_bytes", "broker peak RSS", "lower"),
            ),
            smoke={"backlog": 5000, "drain_timeout": 30.0, "settle_timeout": 0.5},
        ),
    )
}


def scenario_names() -> list[str]:
    return list(SCENARIOS)


def get_scenario(name: str) -> Scenario:
    try:
        return SCENARIOS[name]
    except KeyError:
        raise KeyError(f"unknown scenario {name!r}; choose from: {', '.join(SCENARIOS)}") from None
