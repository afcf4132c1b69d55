"""basic.*: consumers and their tags, acknowledgements, QoS, dispatch and redelivery.

Publishes use publisher confirms, so that a message is in its queue when the publish
returns; a consumer's deliveries are awaited with a timeout, and "no more deliveries" is
shown by the queue's ready count (a message delivered is no longer ready).  Behaviour was
checked against RabbitMQ 3.10.8 with the same code.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import amqp
import pika
import pika.exceptions
import pytest

from tests.interop.pika_client import connect

CONSUMER_TAG = re.compile(r"^amq\.ctag-[A-Za-z0-9_-]{22}$")


@pytest.fixture
def queue(conn: pika.BlockingConnection, name: str) -> Iterator[str]:
    """A fresh queue (deleted afterwards)."""
    conn.channel().queue_declare(name)
    yield name
    if conn.is_open:
        conn.channel().queue_delete(name)


def publish(conn: pika.BlockingConnection, queue: str, *bodies: bytes) -> None:
    channel = conn.channel()
    channel.confirm_delivery()
    for body in bodies:
        channel.basic_publish("", queue, body)
    channel.close()


def ready(conn: pika.BlockingConnection, queue: str) -> int:
    return conn.channel().queue_declare(queue, passive=True).method.message_count


class Consumer:
    """A pika consumer that records its deliveries; ``wait`` pumps the connection."""

    def __init__(self, channel, queue: str, **options) -> None:
        self.channel = channel
        self.deliveries: list[tuple] = []  # (method, properties, body)
        self.tag = channel.basic_consume(queue, self._on_message, **options)

    def _on_message(self, channel, method, properties, body) -> None:
        self.deliveries.append((method, properties, body))

    @property
    def bodies(self) -> list[bytes]:
        return [body for _, _, body in self.deliveries]

    def wait(self, count: int, timeout: float = 5.0) -> list[tuple]:
        deadline = time.monotonic() + timeout
        connection = self.channel.connection
        while len(self.deliveries) < count:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"{len(self.deliveries)} of {count} deliveries within {timeout}s"
            connection.process_data_events(time_limit=min(remaining, 0.1))
        return self.deliveries

    def ack(self, index: int, multiple: bool = False) -> None:
        self.channel.basic_ack(self.deliveries[index][0].delivery_tag, multiple=multiple)


def wait_total(conn: pika.BlockingConnection, consumers: list[Consumer], count: int, timeout: float = 5.0) -> None:
    """Wait until ``consumers`` have ``count`` deliveries between them."""
    deadline = time.monotonic() + timeout
    while sum(len(c.deliveries) for c in consumers) < count:
        assert time.monotonic() < deadline, f"fewer than {count} deliveries within {timeout}s"
        conn.process_data_events(time_limit=0.05)


def settle_ready(conn: pika.BlockingConnection, queue: str, expected: int, timeout: float = 5.0) -> None:
    """Wait until the queue's ready count is ``expected`` (deliveries leave it asynchronously
    in RabbitMQ)."""
    deadline = time.monotonic() + timeout
    while (count := ready(conn, queue)) != expected:
        assert time.monotonic() < deadline, f"ready count {count}, expected {expected}"
        conn.process_data_events(time_limit=0.02)


# -- consumers and tags -----------------------------------------------------------------


def test_server_generated_consumer_tag(port: int, queue: str) -> None:
    """Without a tag the server makes one of RabbitMQ's shape (py-amqp asks for that; pika
    makes its own tags); deliveries carry it."""
    conn = amqp.Connection(f"127.0.0.1:{port}")
    conn.connect()
    try:
        channel = conn.channel()
        got: list[amqp.Message] = []
        tags = [channel.basic_consume(queue, callback=got.append, no_ack=True) for _ in range(2)]
        assert all(CONSUMER_TAG.match(tag) for tag in tags), tags
        assert tags[0] != tags[1]
        channel.basic_publish(amqp.Message("m"), routing_key=queue)
        while not got:
            conn.drain_events(timeout=5)
        assert got[0].delivery_info["consumer_tag"] in tags
        assert got[0].delivery_info["routing_key"] == queue
        assert not got[0].delivery_info["redelivered"]
    finally:
        conn.close()


def test_given_consumer_tag(conn: pika.BlockingConnection, queue: str) -> None:
    """A client-chosen tag is used as given; the same tag may be used on another channel."""
    first = Consumer(conn.channel(), queue, consumer_tag="my-consumer")
    second = Consumer(conn.channel(), queue, consumer_tag="my-consumer")
    assert first.tag == second.tag == "my-consumer"
    publish(conn, queue, b"1", b"2")
    wait_total(conn, [first, second], 2)
    assert {d[0].consumer_tag for d in first.deliveries + second.deliveries} == {"my-consumer"}


def test_no_ack_consumer(conn: pika.BlockingConnection, queue: str) -> None:
    """With no-ack a delivery is settled when sent: nothing comes back when the channel
    closes, and acknowledging it is 406 unknown delivery tag."""
    channel = conn.channel()
    consumer = Consumer(channel, queue, auto_ack=True)
    publish(conn, queue, b"1", b"2", b"3")
    consumer.wait(3)
    assert consumer.bodies == [b"1", b"2", b"3"]
    assert [d[0].delivery_tag for d in consumer.deliveries] == [1, 2, 3]
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as error:
        channel.basic_ack(1)
        channel.queue_declare(queue, passive=True)
    assert (error.value.reply_code, error.value.reply_text) == (406, "PRECONDITION_FAILED - unknown delivery tag 1")
    assert ready(conn, queue) == 0


def test_exclusive_consumer(port: int, conn: pika.BlockingConnection, queue: str) -> None:
    """An exclusive consumer excludes every other consumer (403 "in exclusive use"), and
    cannot start while others consume; once cancelled, others may consume again."""
    in_use = f"ACCESS_REFUSED - queue '{queue}' in vhost '/' in exclusive use"
    with connect(port) as other:
        channel = conn.channel()
        tag = channel.basic_consume(queue, lambda *a: None, exclusive=True)
        for options in ({}, {"exclusive": True}):
            with pytest.raises(pika.exceptions.ChannelClosedByBroker) as error:
                other.channel().basic_consume(queue, lambda *a: None, **options)
            assert (error.value.reply_code, error.value.reply_text) == (403, in_use)
        channel.basic_cancel(tag)

        other.channel().basic_consume(queue, lambda *a: None)
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as error:
            conn.channel().basic_consume(queue, lambda *a: None, exclusive=True)
        assert (error.value.reply_code, error.value.reply_text) == (403, in_use)


def test_cancel(conn: pika.BlockingConnection, queue: str) -> None:
    """After basic.cancel no more deliveries come; what the consumer holds unacknowledged can
    still be acknowledged; cancelling an unknown tag is fine."""
    channel = conn.channel()
    consumer = Consumer(channel, queue)
    publish(conn, queue, b"1")
    consumer.wait(1)
    assert channel.basic_cancel(consumer.tag) == []
    publish(conn, queue, b"2", b"3")
    assert ready(conn, queue) == 2
    assert consumer.bodies == [b"1"]
    consumer.ack(0)
    assert channel.basic_cancel("no-such-consumer") == []
    channel.queue_declare(queue, passive=True)  # the channel is still fine


# -- acknowledgements -------------------------------------------------------------------


def test_ack_multiple(conn: pika.BlockingConnection, queue: str) -> None:
    """ack(multiple) settles every delivery up to the tag; the others come back, redelivered
    and in their order, when the channel closes."""
    channel = conn.channel()
    consumer = Consumer(channel, queue)
    publish(conn, queue, *[str(i).encode() for i in range(6)])
    consumer.wait(6)
    consumer.ack(2, multiple=True)  # 0, 1, 2
    consumer.ack(4)  # 4
    channel.close()
    again = Consumer(conn.channel(), queue, auto_ack=True)
    again.wait(2)
    assert again.bodies == [b"3", b"5"]
    assert all(d[0].redelivered for d in again.deliveries)


def test_ack_multiple_zero_acks_everything(conn: pika.BlockingConnection, queue: str) -> None:
    """basic.ack(0, multiple=true) acknowledges every outstanding delivery (RabbitMQ)."""
    channel = conn.channel()
    consumer = Consumer(channel, queue)
    publish(conn, queue, b"1", b"2", b"3")
    consumer.wait(3)
    channel.basic_ack(0, multiple=True)
    channel.close()
    assert ready(conn, queue) == 0


def test_reject_and_nack(conn: pika.BlockingConnection, queue: str) -> None:
    """reject/nack with requeue puts a message back (redelivered); without requeue it is
    dropped; nack(multiple) covers every delivery up to the tag."""
    channel = conn.channel()
    channel.basic_qos(prefetch_count=4)
    consumer = Consumer(channel, queue)
    publish(conn, queue, b"a", b"b", b"c", b"d")
    consumer.wait(4)
    channel.basic_reject(consumer.deliveries[0][0].delivery_tag, requeue=False)  # a: dropped
    channel.basic_nack(consumer.deliveries[2][0].delivery_tag, multiple=True, requeue=True)  # b, c: back
    consumer.wait(6)
    assert consumer.bodies[4:] == [b"b", b"c"]
    assert [d[0].redelivered for d in consumer.deliveries[4:]] == [True, True]
    channel.basic_ack(0, multiple=True)
    assert ready(conn, queue) == 0


def test_double_ack_is_406(conn: pika.BlockingConnection, queue: str) -> None:
    channel = conn.channel()
    publish(conn, queue, b"once")
    method, _, _ = channel.basic_get(queue)
    channel.basic_ack(method.delivery_tag)
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as error:
        channel.basic_ack(method.delivery_tag)
        channel.queue_declare(queue, passive=True)
    assert error.value.reply_text == f"PRECONDITION_FAILED - unknown delivery tag {method.delivery_tag}"


def test_basic_get(conn: pika.BlockingConnection, queue: str) -> None:
    """basic.get gives one message and the count left, or get-empty; its delivery tags are
    the channel's, shared with consumers."""
    channel = conn.channel()
    assert channel.basic_get(queue) == (None, None, None)
    publish(conn, queue, b"1", b"2", b"3")
    method, _, body = channel.basic_get(queue)
    assert (body, method.message_count, method.delivery_tag, method.redelivered) == (b"1", 2, 1, False)
    consumer = Consumer(channel, queue)
    consumer.wait(2)
    assert [d[0].delivery_tag for d in consumer.deliveries] == [2, 3]
    channel.basic_ack(0, multiple=True)


# -- QoS --------------------------------------------------------------------------------


def test_prefetch_limits_each_consumer(conn: pika.BlockingConnection, queue: str) -> None:
    """prefetch_count (global=false) applies to each consumer created afterwards: with 2,
    a consumer holds at most 2 unacknowledged; an ack lets the next one through."""
    channel = conn.channel()
    channel.basic_qos(prefetch_count=2)
    first = Consumer(channel, queue)
    second = Consumer(channel, queue)
    publish(conn, queue, *[str(i).encode() for i in range(7)])
    settle_ready(conn, queue, 3)
    first.wait(2)
    second.wait(2)
    assert len(first.deliveries) == len(second.deliveries) == 2
    first.ack(0)
    first.wait(3)
    settle_ready(conn, queue, 2)
    assert len(second.deliveries) == 2


def test_global_prefetch_is_shared_by_the_channel(conn: pika.BlockingConnection, queue: str) -> None:
    """RabbitMQ 3.x meaning of global=true: one limit for all the channel's consumers
    together (3 here, across two consumers), besides each consumer's own limit."""
    channel = conn.channel()
    channel.basic_qos(prefetch_count=3, global_qos=True)
    first = Consumer(channel, queue)
    second = Consumer(channel, queue)
    publish(conn, queue, *[str(i).encode() for i in range(8)])
    wait_total(conn, [first, second], 3)
    settle_ready(conn, queue, 5)
    assert len(first.deliveries) + len(second.deliveries) == 3
    (first if first.deliveries else second).ack(0)
    wait_total(conn, [first, second], 4)
    settle_ready(conn, queue, 4)


def test_global_and_per_consumer_prefetch_together(conn: pika.BlockingConnection, queue: str) -> None:
    """Per consumer 2, then per channel 3: both limits apply (RabbitMQ's documented use)."""
    channel = conn.channel()
    channel.basic_qos(prefetch_count=2, global_qos=False)
    channel.basic_qos(prefetch_count=3, global_qos=True)
    first = Consumer(channel, queue)
    publish(conn, queue, *[str(i).encode() for i in range(8)])
    first.wait(2)
    settle_ready(conn, queue, 6)  # the consumer's own limit
    second = Consumer(channel, queue)
    second.wait(1)
    settle_ready(conn, queue, 5)  # the channel's limit
    assert (len(first.deliveries), len(second.deliveries)) == (2, 1)


def test_per_consumer_qos_lifts_an_earlier_global_limit(conn: pika.BlockingConnection, queue: str) -> None:
    """RabbitMQ 3.10.8's quirk: basic.qos(global=false) after basic.qos(global=true) removes
    the channel's shared limit, leaving only the per-consumer one (2 + 2 here, not 3)."""
    channel = conn.channel()
    channel.basic_qos(prefetch_count=3, global_qos=True)
    channel.basic_qos(prefetch_count=2, global_qos=False)
    first = Consumer(channel, queue)
    second = Consumer(channel, queue)
    publish(conn, queue, *[str(i).encode() for i in range(8)])
    first.wait(2)
    second.wait(2)
    settle_ready(conn, queue, 4)
    assert (len(first.deliveries), len(second.deliveries)) == (2, 2)


# -- dispatch ---------------------------------------------------------------------------


def test_round_robin_dispatch(port: int, conn: pika.BlockingConnection, queue: str) -> None:
    """Consumers without prefetch limits take turns: each gets every second message, in
    order."""
    with connect(port) as other:
        first = Consumer(conn.channel(), queue, auto_ack=True)
        second = Consumer(other.channel(), queue, auto_ack=True)
        bodies = [str(i).encode() for i in range(10)]
        publish(conn, queue, *bodies)
        first.wait(5)
        second.wait(5)
        assert sorted([first.bodies, second.bodies]) == [bodies[0::2], bodies[1::2]]


def test_fair_dispatch_with_prefetch_1(port: int, conn: pika.BlockingConnection, queue: str) -> None:
    """With prefetch 1 a consumer that holds an unacknowledged message gets nothing more:
    everything else goes to the consumer that keeps acknowledging."""
    with connect(port) as other:
        slow_channel = conn.channel()
        slow_channel.basic_qos(prefetch_count=1)
        slow = Consumer(slow_channel, queue)
        fast_channel = other.channel()
        fast_channel.basic_qos(prefetch_count=1)
        fast = Consumer(fast_channel, queue)

        publish(conn, queue, *[str(i).encode() for i in range(8)])
        slow.wait(1)
        for i in range(7):
            fast.wait(i + 1)
            fast.ack(i)
        assert len(slow.deliveries) == 1
        assert sorted(slow.bodies + fast.bodies) == [str(i).encode() for i in range(8)]


# -- redelivery -------------------------------------------------------------------------


@pytest.mark.parametrize("closing", ["channel", "connection"])
def test_unacked_messages_return_in_order_when_the_holder_closes(
    port: int, conn: pika.BlockingConnection, queue: str, closing: str
) -> None:
    """Unacknowledged messages go back to the queue in their original order, ahead of newer
    ones, flagged redelivered, when the channel or connection holding them closes."""
    holder_conn = connect(port)
    holder_channel = holder_conn.channel()
    holder = Consumer(holder_channel, queue)
    publish(conn, queue, b"1", b"2", b"3", b"4", b"5")
    holder.wait(5)
    holder.ack(1)  # 2
    holder.ack(3)  # 4
    publish(conn, queue, b"6")
    settle_ready(conn, queue, 0)
    holder.wait(6)
    if closing == "channel":
        holder_channel.close()
        holder_conn.close()
    else:
        holder_conn.close()

    channel = conn.channel()
    got = []
    settle_ready(conn, queue, 4)
    while True:
        method, _, body = channel.basic_get(queue, auto_ack=True)
        if method is None:
            break
        got.append((body, method.redelivered))
    assert got == [(b"1", True), (b"3", True), (b"5", True), (b"6", True)]


def test_basic_recover_requeues_unacked(conn: pika.BlockingConnection, queue: str) -> None:
    """basic.recover(requeue=true) hands every unacknowledged delivery back for
    redelivery."""
    channel = conn.channel()
    consumer = Consumer(channel, queue)
    publish(conn, queue, b"1", b"2")
    consumer.wait(2)
    channel.basic_recover(requeue=True)
    consumer.wait(4)
    assert consumer.bodies[2:] == [b"1", b"2"]
    assert [d[0].redelivered for d in consumer.deliveries] == [False, False, True, True]
    channel.basic_ack(0, multiple=True)
