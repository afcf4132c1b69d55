"""Priority queues (x-max-priority 1..255): highest priority first, FIFO within a priority, a
priority above the maximum counts as the maximum, no priority counts as 0; persistent
messages keep their order across a restart.  Validation texts are RabbitMQ 3.10.8's.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import pika
import pika.exceptions
import pytest

from tests.interop.ext_support import Scratch, connect, wait_until
from tests.server import ServerProcess


@pytest.fixture
def s(port: int) -> Iterator[Scratch]:
    with Scratch(port) as scratch:
        yield scratch


def publish_all(s: Scratch, queue: str, items: list[tuple[bytes, int | None]], **properties: Any) -> None:
    for body, priority in items:
        s.publish("", queue, body, priority=priority, **properties)


def expected_order(items: list[tuple[bytes, int | None]], max_priority: int) -> list[bytes]:
    """Highest (capped) priority first; publish order within a priority."""
    ranked = sorted(enumerate(items), key=lambda e: (-min(e[1][1] or 0, max_priority), e[0]))
    return [body for _, (body, _) in ranked]


def test_highest_priority_first_fifo_within_a_priority(s: Scratch, name: str) -> None:
    queue = s.queue(name, x_max_priority=10)
    items: list[tuple[bytes, int | None]] = [
        (b"a0", 0), (b"b5", 5), (b"c1", 1), (b"d5", 5), (b"e10", 10), (b"f", None), (b"g1", 1), (b"h10", 10)
    ]  # fmt: skip
    publish_all(s, queue, items)
    assert s.bodies(queue) == [b"e10", b"h10", b"b5", b"d5", b"c1", b"g1", b"a0", b"f"]


def test_priority_above_the_maximum_counts_as_the_maximum(s: Scratch, name: str) -> None:
    queue = s.queue(name, x_max_priority=3)
    publish_all(s, queue, [(b"p3", 3), (b"p9", 9), (b"p200", 200), (b"p2", 2), (b"p3b", 3)])
    assert s.bodies(queue) == [b"p3", b"p9", b"p200", b"p3b", b"p2"]


@pytest.mark.parametrize("max_priority", [1, 255])
def test_the_whole_range(s: Scratch, name: str, max_priority: int) -> None:
    queue = s.queue(name, x_max_priority=max_priority)
    rng = random.Random(max_priority)
    items: list[tuple[bytes, int | None]] = [(f"m{i}".encode(), rng.randint(0, 255)) for i in range(60)]
    publish_all(s, queue, items)
    assert s.bodies(queue) == expected_order(items, max_priority)


def test_a_queue_without_x_max_priority_ignores_priorities(s: Scratch, name: str) -> None:
    queue = s.queue(name)
    publish_all(s, queue, [(b"1", 1), (b"2", 9), (b"3", 255)])
    assert s.bodies(queue) == [b"1", b"2", b"3"]


def test_consumer_gets_the_backlog_by_priority(s: Scratch, name: str) -> None:
    queue = s.queue(name, x_max_priority=5)
    publish_all(s, queue, [(b"low", 1), (b"high", 5), (b"mid", 3)])
    ch = s.channel()
    ch.basic_qos(prefetch_count=1)
    received: list[bytes] = []

    def on_message(channel: Any, method: Any, props: Any, body: bytes) -> None:
        received.append(body)
        if body == b"high":
            s.publish("", queue, b"urgent", priority=4)  # arrives before "mid" is delivered
        channel.basic_ack(method.delivery_tag)

    ch.basic_consume(queue, on_message)
    wait_until(lambda: len(received) == 4, conn=s.conn, what="four deliveries")
    assert received == [b"high", b"urgent", b"mid", b"low"]


def test_requeued_message_returns_to_its_place_within_its_priority(s: Scratch, name: str) -> None:
    queue = s.queue(name, x_max_priority=5)
    publish_all(s, queue, [(b"a5", 5), (b"b5", 5), (b"c1", 1)])
    ch = s.channel()
    method, _, body = ch.basic_get(queue)
    assert body == b"a5"
    ch.basic_nack(method.delivery_tag, requeue=True)
    assert [(m.redelivered, b) for m, _, b in s.drain(queue)] == [(True, b"a5"), (False, b"b5"), (False, b"c1")]


@pytest.mark.parametrize(
    ("value", "error"),
    [
        (256, "{max_value_exceeded,256}"),
        (300, "{max_value_exceeded,300}"),
        (-1, "{value_negative,-1}"),
        ("5", '"expected integer, got longstr"'),
    ],
)
def test_invalid_x_max_priority(s: Scratch, name: str, value: Any, error: str) -> None:
    ch = s.channel()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as exc:
        ch.queue_declare(name, arguments={"x-max-priority": value})
    assert exc.value.reply_code == 406
    assert exc.value.reply_text == (
        f"PRECONDITION_FAILED - invalid arg 'x-max-priority' for queue '{name}' in vhost '/': {error}"
    )


def test_x_max_priority_zero_is_accepted(s: Scratch, name: str) -> None:
    queue = s.queue(name, x_max_priority=0)
    publish_all(s, queue, [(b"1", 0), (b"2", 5)])
    assert s.bodies(queue) == [b"1", b"2"]


def test_priority_order_survives_a_restart(fresh_server: ServerProcess) -> None:
    server = fresh_server.start()
    items: list[tuple[bytes, int | None]] = [(f"m{i}".encode(), (i * 7) % 11) for i in range(40)]
    with connect(server.port) as conn:
        ch = conn.channel()
        ch.confirm_delivery()
        ch.queue_declare("prio", durable=True, arguments={"x-max-priority": 10})
        for body, priority in items:
            ch.basic_publish("", "prio", body, pika.BasicProperties(priority=priority, delivery_mode=2))
        method, _, body = ch.basic_get("prio")  # one requeued: it keeps its place
        ch.basic_nack(method.delivery_tag, requeue=True)
    assert server.stop() == 0
    server.start()
    with connect(server.port) as conn:
        ch = conn.channel()
        got = []
        while True:
            method, props, body = ch.basic_get("prio", auto_ack=True)
            if method is None:
                break
            got.append((body, props.priority))
    assert [body for body, _ in got] == expected_order(items, 10)
    assert dict(got) == {body: priority for body, priority in items}
