"""The retry-queue pattern, built as users build it on RabbitMQ with pika: a work queue whose
rejected messages go (dead-letter exchange) to a wait queue with a TTL, whose expired
messages go (its own dead-letter exchange) back to the work exchange and so to the work
queue; the consumer counts attempts from the x-death header and parks a message that keeps
failing.  Ran unchanged against RabbitMQ 3.10.8.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from typing import Any

import pika
import pytest

from tests.interop.ext_support import connect, wait_until

DELAY_MS = 100
MAX_RETRIES = 3


class Topology:
    """orders (direct) -> <p>.work --rejected--> <p>.retry (direct) -> <p>.wait (TTL)
    --expired--> orders again; <p>.parked for messages that never succeed."""

    def __init__(self, channel: Any, prefix: str) -> None:
        self.ch = channel
        self.exchange = f"{prefix}.orders"
        self.retry_exchange = f"{prefix}.retry"
        self.work = f"{prefix}.work"
        self.wait = f"{prefix}.wait"
        self.parked = f"{prefix}.parked"
        ch = channel
        ch.exchange_declare(self.exchange, "direct", durable=True)
        ch.exchange_declare(self.retry_exchange, "direct", durable=True)
        ch.queue_declare(self.work, durable=True, arguments={"x-dead-letter-exchange": self.retry_exchange})
        ch.queue_bind(self.work, self.exchange, "order")
        ch.queue_declare(
            self.wait,
            durable=True,
            arguments={"x-message-ttl": DELAY_MS, "x-dead-letter-exchange": self.exchange},
        )
        ch.queue_bind(self.wait, self.retry_exchange, "order")
        ch.queue_declare(self.parked, durable=True)

    def delete(self) -> None:
        for queue in (self.work, self.wait, self.parked):
            self.ch.queue_delete(queue)
        for exchange in (self.exchange, self.retry_exchange):
            self.ch.exchange_delete(exchange)


def attempts(properties: Any, queue: str) -> int:
    """How often this message was rejected in ``queue`` so far (RabbitMQ's x-death count)."""
    for death in (properties.headers or {}).get("x-death", []):
        if death["queue"] == queue and death["reason"] == "rejected":
            return int(death["count"])
    return 0


class Worker:
    """Fails every order until its ``succeed_on`` attempt (never for b"poison")."""

    def __init__(self, channel: Any, topology: Topology, succeed_on: int) -> None:
        self.ch = channel
        self.t = topology
        self.succeed_on = succeed_on
        self.log: list[tuple[bytes, int, float]] = []
        self.done: list[bytes] = []
        channel.basic_qos(prefetch_count=10)
        channel.basic_consume(topology.work, self.on_message)

    def on_message(self, ch: Any, method: Any, props: Any, body: bytes) -> None:
        retries = attempts(props, self.t.work)
        self.log.append((body, retries, time.monotonic()))
        if body != b"poison" and retries + 1 >= self.succeed_on:
            self.done.append(body)
            ch.basic_ack(method.delivery_tag)
        elif retries >= MAX_RETRIES:
            # Give up: park it (with its history) and take it off the work queue.
            ch.basic_publish("", self.t.parked, body, props)
            ch.basic_ack(method.delivery_tag)
        else:
            ch.basic_reject(method.delivery_tag, requeue=False)  # retry after DELAY_MS


@pytest.fixture
def topology(port: int, name: str) -> Iterator[tuple[Any, Topology]]:
    conn = connect(port)
    ch = conn.channel()
    t = Topology(ch, name)
    yield conn, t
    t.delete()
    conn.close()


def test_a_failing_message_is_retried_after_a_delay_and_then_succeeds(topology: tuple[Any, Topology]) -> None:
    conn, t = topology
    publisher = conn.channel()
    publisher.confirm_delivery()
    worker = Worker(conn.channel(), t, succeed_on=3)
    publisher.basic_publish(t.exchange, "order", b"order-1", pika.BasicProperties(delivery_mode=2))
    wait_until(lambda: worker.done, timeout=10, conn=conn, what="the order to succeed")
    assert [(body, retries) for body, retries, _ in worker.log] == [(b"order-1", 0), (b"order-1", 1), (b"order-1", 2)]
    times = [at for _, _, at in worker.log]
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    assert all(gap >= DELAY_MS / 1000 * 0.9 for gap in gaps), gaps  # each retry waited its delay
    for queue in (t.work, t.wait, t.parked):
        assert publisher.queue_declare(queue, passive=True).method.message_count == 0


def test_a_message_that_keeps_failing_is_parked_with_its_history(topology: tuple[Any, Topology]) -> None:
    conn, t = topology
    publisher = conn.channel()
    publisher.confirm_delivery()
    worker = Worker(conn.channel(), t, succeed_on=1)
    publisher.basic_publish(t.exchange, "order", b"poison", pika.BasicProperties(message_id="p-1"))
    publisher.basic_publish(t.exchange, "order", b"fine")
    wait_until(
        lambda: publisher.queue_declare(t.parked, passive=True).method.message_count == 1,
        timeout=10,
        conn=conn,
        what="the poison message to be parked",
    )
    assert worker.done == [b"fine"]
    _, props, body = publisher.basic_get(t.parked, auto_ack=True)
    assert body == b"poison" and props.message_id == "p-1"
    history = [(d["queue"], d["reason"], d["count"]) for d in props.headers["x-death"]]
    assert history == [(t.wait, "expired", MAX_RETRIES), (t.work, "rejected", MAX_RETRIES)]
    assert props.headers["x-first-death-queue"] == t.work
    assert [retries for body, retries, _ in worker.log if body == b"poison"] == [0, 1, 2, 3]


def test_retries_of_many_messages_keep_flowing(topology: tuple[Any, Topology]) -> None:
    """Fifty orders, each failing once: all succeed on their second attempt."""
    conn, t = topology
    publisher = conn.channel()
    publisher.confirm_delivery()
    worker = Worker(conn.channel(), t, succeed_on=2)
    orders = [b"order-%d" % i for i in range(50)]
    for body in orders:
        publisher.basic_publish(t.exchange, "order", body)
    wait_until(lambda: len(worker.done) == len(orders), timeout=10, conn=conn, what="every order to succeed")
    assert sorted(worker.done) == sorted(orders)
    assert worker.done == orders  # one delay for all: they come back in order
