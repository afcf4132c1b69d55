"""Delivery acknowledgement timeouts (RabbitMQ's consumer_timeout) with real clients.

RabbitMQ 3.x closes the channel with 406 PRECONDITION_FAILED and the text checked below (its
rabbit_channel's words); 4.x cancels the consumer with basic.cancel and requeues.  The timeout
comes from the consumer's or the queue's ``x-consumer-timeout``, a ``consumer-timeout`` policy
or the node's ``consumer_timeout``; 0 opts a queue out.  Each test runs its own in-process
broker (the ``amqp_broker_factory`` fixture), since the node setting differs.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from collections.abc import Callable
from typing import Any

import aio_pika
import amqp.exceptions
import kombu
import pika
import pytest
from pika.adapters.blocking_connection import BlockingChannel

from warrenmq.testing import EmbeddedBroker

TEXT = (
    "PRECONDITION_FAILED - delivery acknowledgement on channel {} timed out. Timeout value used: {} ms. "
    "This timeout value can be configured, see consumers doc guide to learn more"
)


def wait_until(conn: pika.BlockingConnection, done: Callable[[], Any], timeout: float = 10.0) -> Any:
    """Process the connection's events until ``done()`` is truthy (an event), or fail."""
    deadline = time.monotonic() + timeout
    while not (value := done()):
        assert time.monotonic() < deadline, "timed out waiting"
        conn.process_data_events(time_limit=0.02)
    return value


def on_close(channel: BlockingChannel, callback: Callable[[Any, Any], Any]) -> None:
    """``callback(channel, reason)`` when the broker closes the channel (pika's blocking API
    reports it only through the channel underneath)."""
    channel._impl.add_on_close_callback(callback)


def hold_one(conn: pika.BlockingConnection, queue: str, body: bytes = b"job") -> tuple[BlockingChannel, list[Any]]:
    """A channel whose consumer receives one message from ``queue`` and never acks it."""
    channel = conn.channel()
    channel.basic_publish("", queue, body)
    got: list[Any] = []
    channel.basic_consume(queue, lambda ch, method, props, b: got.append(method))
    wait_until(conn, lambda: got)
    return channel, got


def test_rabbitmq3_closes_the_channel_with_406_and_requeues(amqp_broker_factory: Callable[..., EmbeddedBroker]) -> None:
    broker = amqp_broker_factory(consumer_timeout=300, management=False)
    conn = pika.BlockingConnection(pika.URLParameters(broker.running.url))  # type: ignore[union-attr]
    setup = conn.channel()
    setup.queue_declare("work")
    started = time.monotonic()
    channel, _got = hold_one(conn, "work")
    closed: list[Any] = []
    on_close(channel, lambda ch, reason: closed.append(reason))
    wait_until(conn, lambda: closed)
    assert time.monotonic() - started >= 0.3  # never before the timeout
    assert closed[0].reply_code == 406
    assert closed[0].reply_text == TEXT.format(channel.channel_number, 300)
    method, _props, body = setup.basic_get("work", auto_ack=True)
    assert body == b"job" and method.redelivered  # requeued, as a closed channel's deliveries are
    conn.close()


def test_a_queue_opts_out_with_x_consumer_timeout_0(amqp_broker_factory: Callable[..., EmbeddedBroker]) -> None:
    """Two consumers hold a message each; only the channel of the queue that did not opt out
    is closed, and the other can still ack after that."""
    broker = amqp_broker_factory(consumer_timeout=200, management=False)
    conn = pika.BlockingConnection(pika.URLParameters(broker.running.url))  # type: ignore[union-attr]
    setup = conn.channel()
    setup.queue_declare("timed")
    setup.queue_declare("eta", arguments={"x-consumer-timeout": 0})
    timed, _ = hold_one(conn, "timed")
    patient, got = hold_one(conn, "eta")
    closed: list[Any] = []
    on_close(timed, lambda ch, reason: closed.append(reason))
    wait_until(conn, lambda: closed)
    conn.process_data_events(time_limit=0.3)  # more than the timeout again: still not closed
    assert patient.is_open
    patient.basic_ack(got[0].delivery_tag)
    assert setup.queue_declare("eta", passive=True).method.message_count == 0
    conn.close()


def test_the_queue_argument_and_a_later_policy_apply(amqp_broker_factory: Callable[..., EmbeddedBroker]) -> None:
    """No node timeout: the queue's x-consumer-timeout closes one channel; a consumer-timeout
    policy set while another consumer already holds a message closes that one too."""
    broker = amqp_broker_factory(management=True)
    running = broker.running
    assert running is not None
    conn = pika.BlockingConnection(pika.URLParameters(running.url))
    setup = conn.channel()
    setup.queue_declare("by-arg", arguments={"x-consumer-timeout": 250})
    setup.queue_declare("by-policy")
    by_arg, _ = hold_one(conn, "by-arg")
    by_policy, _ = hold_one(conn, "by-policy")
    reasons: dict[str, Any] = {}
    on_close(by_arg, lambda ch, reason: reasons.setdefault("arg", reason))
    on_close(by_policy, lambda ch, reason: reasons.setdefault("policy", reason))
    wait_until(conn, lambda: "arg" in reasons)
    assert reasons["arg"].reply_code == 406 and "Timeout value used: 250 ms" in reasons["arg"].reply_text
    assert by_policy.is_open
    put = urllib.request.Request(
        f"{running.management_url}/api/policies/%2F/short",
        data=json.dumps({"pattern": "^by-policy$", "definition": {"consumer-timeout": 200}}).encode(),
        method="PUT",
        headers={"Content-Type": "application/json", "Authorization": "Basic Z3Vlc3Q6Z3Vlc3Q="},
    )
    assert urllib.request.urlopen(put, timeout=5).status in (201, 204)
    wait_until(conn, lambda: "policy" in reasons)
    assert "Timeout value used: 200 ms" in reasons["policy"].reply_text
    conn.close()


def test_basic_get_deliveries_time_out_too(amqp_broker_factory: Callable[..., EmbeddedBroker]) -> None:
    broker = amqp_broker_factory(consumer_timeout=200, management=False)
    conn = pika.BlockingConnection(pika.URLParameters(broker.running.url))  # type: ignore[union-attr]
    channel = conn.channel()
    channel.queue_declare("got")
    channel.basic_publish("", "got", b"x")
    method, _props, _body = channel.basic_get("got")
    assert method is not None
    closed: list[Any] = []
    on_close(channel, lambda ch, reason: closed.append(reason))
    wait_until(conn, lambda: closed)
    assert closed[0].reply_code == 406
    conn.close()


def test_rabbitmq4_cancels_the_consumer_and_keeps_the_channel(
    amqp_broker_factory: Callable[..., EmbeddedBroker],
) -> None:
    """consumer_timeout_action=cancel: basic.cancel to the consumer, its message requeued
    (redelivered to the next consumer), the channel stays open and a late ack of the timed-out
    delivery is ignored."""
    broker = amqp_broker_factory(consumer_timeout=250, consumer_timeout_action="cancel", management=False)
    conn = pika.BlockingConnection(pika.URLParameters(broker.running.url))  # type: ignore[union-attr]
    channel = conn.channel()
    channel.queue_declare("jobs")
    channel.basic_publish("", "jobs", b"job")
    got: list[Any] = []
    cancelled: list[Any] = []
    tag = channel.basic_consume("jobs", lambda ch, method, props, b: got.append(method))
    channel.add_on_cancel_callback(lambda frame: cancelled.append(frame.method.consumer_tag))
    wait_until(conn, lambda: got)
    wait_until(conn, lambda: cancelled)
    assert cancelled == [tag]
    channel.basic_ack(got[0].delivery_tag)  # too late: ignored, not 406 unknown delivery tag
    method, _props, body = channel.basic_get("jobs", auto_ack=True)
    assert body == b"job" and method.redelivered
    assert channel.is_open
    conn.close()


def test_aio_pika_sees_the_406_close(amqp_broker_factory: Callable[..., EmbeddedBroker]) -> None:
    broker = amqp_broker_factory(consumer_timeout=200, management=False)

    async def main() -> Any:
        connection = await aio_pika.connect(broker.running.url)  # type: ignore[union-attr]
        async with connection:
            channel = await connection.channel()
            queue = await channel.declare_queue("aio")
            await channel.default_exchange.publish(aio_pika.Message(b"hold"), "aio")

            async def hold(message: Any) -> None:
                pass  # never acked

            await queue.consume(hold)
            closed = asyncio.get_running_loop().create_future()
            channel.close_callbacks.add(lambda ch, exc: closed.done() or closed.set_result(exc))
            return await asyncio.wait_for(closed, 10)

    exc = asyncio.run(main())
    assert isinstance(exc, aio_pika.exceptions.ChannelPreconditionFailed)
    assert "delivery acknowledgement on channel 1 timed out" in str(exc)


def test_kombu_consumer_timeout_argument_wins(amqp_broker_factory: Callable[..., EmbeddedBroker]) -> None:
    """The consumer's own x-consumer-timeout (RabbitMQ's highest precedence) times a kombu
    consumer out on a node without a timeout; the message goes back to the queue."""
    broker = amqp_broker_factory(management=False)
    url = broker.running.url.replace("amqp://", "pyamqp://")  # type: ignore[union-attr]
    queue = kombu.Queue("kq", consumer_arguments={"x-consumer-timeout": 200})
    with kombu.Connection(url) as conn:
        with conn.Producer() as producer:
            producer.publish(b"hold", routing_key="kq", declare=[queue])
        received: list[Any] = []
        consumer = conn.Consumer(queue, callbacks=[lambda body, message: received.append(message)])
        with consumer, pytest.raises(amqp.exceptions.PreconditionFailed, match="timed out"):
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                try:
                    conn.drain_events(timeout=0.1)
                except TimeoutError:
                    pass
        assert received  # it was delivered, held, and timed out
    with kombu.Connection(url) as conn:
        message = conn.SimpleQueue("kq").get(timeout=5)
        assert message.body == b"hold" and message.delivery_info["redelivered"]
