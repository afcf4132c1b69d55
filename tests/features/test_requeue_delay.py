"""Delayed retry for consumers: with the queue argument ``x-delay-on-requeue`` (ms), a message
a consumer rejects, nacks or abandons with requeue comes back (redelivered) only after that
delay; meanwhile it is neither ready nor unacknowledged (``messages_delayed`` in the API)."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
import uuid
from typing import Any

import aio_pika
import kombu
import pika

from warrenmq.testing import RunningBroker


def queue_info(broker: RunningBroker, name: str) -> dict[str, Any]:
    request = urllib.request.Request(
        f"{broker.management_url}/api/queues/%2F/{name}", headers={"Authorization": "Basic Z3Vlc3Q6Z3Vlc3Q="}
    )
    info: dict[str, Any] = json.load(urllib.request.urlopen(request, timeout=5))
    return info


def test_a_nacked_message_comes_back_after_the_delay(amqp_broker: RunningBroker) -> None:
    name = f"retry-{uuid.uuid4().hex[:8]}"
    conn = pika.BlockingConnection(pika.URLParameters(amqp_broker.url))
    ch = conn.channel()
    ch.queue_declare(name, arguments={"x-delay-on-requeue": 300})
    ch.basic_publish("", name, b"flaky")
    ch.basic_publish("", name, b"next")
    deliveries: list[tuple[float, bytes, bool]] = []

    def on_message(channel: Any, method: Any, props: Any, body: bytes) -> None:
        deliveries.append((time.monotonic(), body, method.redelivered))
        if body == b"flaky" and not method.redelivered:
            channel.basic_nack(method.delivery_tag, requeue=True)
        else:
            channel.basic_ack(method.delivery_tag)

    ch.basic_qos(prefetch_count=1)
    ch.basic_consume(name, on_message)
    deadline = time.monotonic() + 10
    while len(deliveries) < 2:
        conn.process_data_events(time_limit=0.02)
        assert time.monotonic() < deadline
    # The nacked one waits; the next message is not held up behind it.
    assert [(body, again) for _, body, again in deliveries] == [(b"flaky", False), (b"next", False)]
    info = queue_info(amqp_broker, name)
    assert info["messages_delayed"] == 1 and info["messages_ready"] == 0
    while len(deliveries) < 3:
        conn.process_data_events(time_limit=0.02)
        assert time.monotonic() < deadline
    nacked_at, (came_back, body, again) = deliveries[0][0], deliveries[2]
    assert body == b"flaky" and again
    assert came_back - nacked_at >= 0.3
    conn.close()


def test_purge_drops_the_waiting_ones_too(amqp_broker: RunningBroker) -> None:
    name = f"retry-{uuid.uuid4().hex[:8]}"
    conn = pika.BlockingConnection(pika.URLParameters(amqp_broker.url))
    ch = conn.channel()
    ch.queue_declare(name, arguments={"x-delay-on-requeue": 60_000})
    ch.basic_publish("", name, b"x")
    method, _props, _body = ch.basic_get(name)
    ch.basic_reject(method.delivery_tag, requeue=True)
    assert ch.queue_purge(name).method.message_count == 1
    assert queue_info(amqp_broker, name)["messages_delayed"] == 0
    conn.close()


def test_aio_pika_nack_with_requeue_waits(amqp_broker: RunningBroker) -> None:
    name = f"aretry-{uuid.uuid4().hex[:8]}"

    async def main() -> tuple[float, bool]:
        async with await aio_pika.connect(amqp_broker.url) as connection:
            channel = await connection.channel()
            queue = await channel.declare_queue(name, arguments={"x-delay-on-requeue": 200})
            await channel.default_exchange.publish(aio_pika.Message(b"job"), name)
            first = await queue.get(timeout=5)
            assert first is not None
            await first.nack(requeue=True)
            nacked = time.monotonic()
            assert await queue.get(fail=False) is None  # not ready while it waits
            async with queue.iterator() as messages:
                async for again in messages:
                    await again.ack()
                    return time.monotonic() - nacked, again.redelivered
        raise AssertionError("no message")

    waited, redelivered = asyncio.run(asyncio.wait_for(main(), 10))
    assert redelivered and waited >= 0.2


def test_kombu_requeue_waits(amqp_broker: RunningBroker) -> None:
    name = f"kretry-{uuid.uuid4().hex[:8]}"
    url = amqp_broker.url.replace("amqp://", "pyamqp://")
    queue = kombu.Queue(name, routing_key=name, queue_arguments={"x-delay-on-requeue": 250})
    with kombu.Connection(url) as conn, conn.SimpleQueue(queue) as simple:
        simple.put({"job": 1})
        first = simple.get(timeout=5)
        requeued_at = time.monotonic()
        first.requeue()
        again = simple.get(timeout=5)
        assert again.payload == {"job": 1} and again.delivery_info["redelivered"]
        assert time.monotonic() - requeued_at >= 0.25
        again.ack()
