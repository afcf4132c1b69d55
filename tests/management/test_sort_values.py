"""Sorting reads values from snapshots; every one must be what the rendered JSON holds there."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from warrenmq import admin
from warrenmq.management import render, sort_values
from warrenmq.management.listing import dotted, select
from warrenmq.management.rates import Rates

NODE = "rabbit@test"


def _rates() -> Rates:
    rates = Rates(None)  # type: ignore[arg-type]  # never sampled here
    rates._rates = {
        ("queue", "/", "q1"): {"publish": 2.5, "messages": -1.0, "messages_ready": 3.0},
        ("exchange", "/", "x1"): {"publish_in": 4.0},
        ("connection", "c1"): {"recv_oct": 10.0},
    }
    return rates


def _queue(name: str, **changes: Any) -> admin.QueueInfo:
    fields: dict[str, Any] = dict(
        name=name, vhost="/", type="classic", durable=True, auto_delete=False, exclusive=True, owner="c1",
        arguments={"x-max-length": 5}, policy="p", effective_policy_definition={"max-length": 5}, state="running",
        messages_ready=7, messages_unacknowledged=2, messages_paged_out=1, message_bytes_ready=70,
        message_bytes_unacknowledged=20, consumers=3, active_consumers=1, exclusive_consumer_tag="t",
        single_active_consumer_tag=None, memory=4096, idle_since=1700000000.0,
        message_stats={"publish": 9, "ack": 1, "deliver_get": 4},
    )  # fmt: skip
    fields.update(changes)
    return admin.QueueInfo(**fields)


def _paths(value: Any, prefix: str = "") -> list[str]:
    out = []
    if isinstance(value, dict):
        for key, inner in value.items():
            path = f"{prefix}{key}"
            out.append(path)
            out.extend(_paths(inner, path + "."))
    return out


def _agree(column: Any, item: Any, rendered: dict[str, Any], extra: list[str]) -> None:
    for key in [*_paths(rendered), *extra]:
        assert column(key)(item) == dotted(rendered, key), key


def test_queue_values_are_the_rendered_ones() -> None:
    rates = _rates()
    column = sort_values.queue_columns(rates, NODE)
    for q in (_queue("q1"), _queue("q2", policy=None, active_consumers=0, idle_since=None, message_stats={})):
        rendered = render.queue_json(q, rates, NODE)
        _agree(column, q, rendered, ["message_stats.get", "message_stats.get_details.rate", "no_such", "a.b.c"])


def test_exchange_values_are_the_rendered_ones() -> None:
    rates = _rates()
    column = sort_values.exchange_columns(rates)
    for policy in ("p", None):
        x = admin.ExchangeInfo("x1", "/", "topic", True, False, False, {"a": 1}, policy, {"publish_in": 3})
        _agree(column, x, render.exchange_json(x, rates), ["policy", "message_stats.publish_out_details.rate"])


def test_connection_values_are_the_rendered_ones() -> None:
    rates = _rates()
    column = sort_values.connection_columns(rates, NODE)
    c = admin.ConnectionInfo(
        "c1", "/", "guest", "running", "AMQP 0-9-1", "PLAIN", "127.0.0.1", 5000, "127.0.0.1", 5672, False, 2,
        2047, 131072, 60, {"product": "pika"}, 1700000000000, 100, 200, 3, 4, 0, "mine",
    )  # fmt: skip
    _agree(column, c, render.connection_json(c, rates, NODE), [])


def test_paging_renders_only_the_page() -> None:
    rendered: list[str] = []

    def render_page(names: Sequence[str]) -> list[dict[str, Any]]:
        rendered.extend(names)
        return [{"name": name} for name in names]

    names = [f"q{i:03d}" for i in range(250)]
    page = select(
        names[::-1],
        {"page": "2", "page_size": "30", "name": "Q1", "sort": "name", "sort_reverse": "true"},
        render=render_page,
        column=lambda key: (lambda n: n) if key == "name" else (lambda n: "/"),
        name=lambda n: n,
    )
    assert isinstance(page, dict)
    assert (page["filtered_count"], page["total_count"], page["page_count"], page["item_count"]) == (100, 250, 4, 30)
    assert [item["name"] for item in page["items"]] == [f"q{i}" for i in range(169, 139, -1)]
    assert rendered == [item["name"] for item in page["items"]]  # the other 220 were never rendered
