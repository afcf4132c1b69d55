"""A snapshot's value under a key of its JSON (as render.py gives it), read without rendering.

Sorting 10,000 queues by a column must not render 10,000 queue objects: for the keys render.py
fills straight from the snapshot, its counters or the rates, these readers give exactly the
rendered value (tests/management/test_sort_values.py checks every one against render.py); any
other key renders the item and reads it there.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any, TypeVar

from warrenmq import admin
from warrenmq.management import render
from warrenmq.management.listing import dotted
from warrenmq.management.rates import Key, Rates

T = TypeVar("T")

QUEUE_ATTRIBUTES = frozenset(
    {
        "arguments",
        "auto_delete",
        "consumers",
        "durable",
        "effective_policy_definition",
        "exclusive",
        "exclusive_consumer_tag",
        "memory",
        "message_bytes",
        "message_bytes_ready",
        "message_bytes_unacknowledged",
        "messages",
        "messages_paged_out",
        "messages_ready",
        "messages_unacknowledged",
        "name",
        "policy",
        "single_active_consumer_tag",
        "state",
        "type",
        "vhost",
    }
)
QUEUE_GAUGES = ("messages", "messages_ready", "messages_unacknowledged")
EXCHANGE_ATTRIBUTES = frozenset({"arguments", "auto_delete", "durable", "internal", "name", "type", "vhost"})
CONNECTION_ATTRIBUTES = frozenset(
    {
        "auth_mechanism",
        "channel_max",
        "channels",
        "client_properties",
        "connected_at",
        "frame_max",
        "host",
        "name",
        "peer_host",
        "peer_port",
        "port",
        "protocol",
        "recv_cnt",
        "recv_oct",
        "send_cnt",
        "send_oct",
        "send_pend",
        "ssl",
        "state",
        "timeout",
        "user",
        "user_provided_name",
        "vhost",
    }
)
CONNECTION_GAUGES = ("recv_oct", "send_oct")


def _columns(
    attributes: frozenset[str],
    rates: Rates,
    rate_key: Callable[[T], Key],
    gauges: tuple[str, ...],
    stats: Callable[[T], admin.Counters] | None,
    special: dict[str, Callable[[T], Any]],
    rendered: Callable[[T], dict[str, Any]],
) -> Callable[[str], Callable[[T], Any]]:
    gauge_rates = {f"{name}_details.rate": name for name in gauges}

    def column(key: str) -> Callable[[T], Any]:
        if key in attributes:
            return operator.attrgetter(key)
        reader = special.get(key)
        if reader is not None:
            return reader
        gauge = gauge_rates.get(key)
        if gauge is not None:
            return lambda item: rates.rate(rate_key(item), gauge)
        if stats is not None and key.startswith("message_stats."):
            read_stats = stats
            counter = key[len("message_stats.") :]
            if "." not in counter and not counter.endswith("_details"):
                return lambda item: read_stats(item).get(counter, 0)
            if counter.endswith("_details.rate") and counter.count(".") == 1:
                name = counter[: -len("_details.rate")]
                return lambda item: rates.rate(rate_key(item), name) if name in read_stats(item) else 0
        return lambda item: dotted(rendered(item), key)

    return column


def queue_columns(rates: Rates, node: str) -> Callable[[str], Callable[[admin.QueueInfo], Any]]:
    def utilisation(q: admin.QueueInfo) -> float:
        return 1.0 if q.active_consumers else 0.0

    return _columns(
        QUEUE_ATTRIBUTES,
        rates,
        lambda q: ("queue", q.vhost, q.name),
        QUEUE_GAUGES,
        lambda q: q.message_stats,
        {"node": lambda _q: node, "consumer_utilisation": utilisation, "consumer_capacity": utilisation},
        lambda q: render.queue_json(q, rates, node),
    )


def exchange_columns(rates: Rates) -> Callable[[str], Callable[[admin.ExchangeInfo], Any]]:
    return _columns(
        EXCHANGE_ATTRIBUTES,
        rates,
        lambda x: ("exchange", x.vhost, x.name),
        (),
        lambda x: x.message_stats,
        {"policy": lambda x: x.policy or 0},  # absent from the JSON without one
        lambda x: render.exchange_json(x, rates),
    )


def connection_columns(rates: Rates, node: str) -> Callable[[str], Callable[[admin.ConnectionInfo], Any]]:
    return _columns(
        CONNECTION_ATTRIBUTES,
        rates,
        lambda c: ("connection", c.name),
        CONNECTION_GAUGES,
        None,
        {"node": lambda _c: node, "type": lambda _c: "network"},
        lambda c: render.connection_json(c, rates, node),
    )
