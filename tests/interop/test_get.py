"""basic.get, get-ok and get-empty, with every client library, and mixed with consumers.

get-ok's message-count is the number of *ready* messages left after this one (messages
delivered and not yet acknowledged do not count); its exchange and routing key are those the
message was published with; a get in ack mode leaves the message unacknowledged under a
delivery tag shared with the channel's consumers.  Checked against RabbitMQ 3.10.8 with this
same code.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import aio_pika
import amqp
import amqp.exceptions
import amqpstorm
import kombu
import pika
import pika.exceptions
import pika.spec
import pytest

from tests.interop.test_raw_protocol import Raw


@pytest.fixture
def queue(conn: pika.BlockingConnection, name: str) -> Iterator[str]:
    conn.channel().queue_declare(name)
    yield name
    if conn.is_open:
        conn.channel().queue_delete(name)


def fill(conn: pika.BlockingConnection, queue: str, *bodies: bytes, exchange: str = "", key: str = "") -> None:
    channel = conn.channel()
    channel.confirm_delivery()
    for body in bodies:
        channel.basic_publish(exchange, key or queue, body, pika.BasicProperties(message_id=body.decode()))
    channel.close()


# -- the protocol -------------------------------------------------------------------------------


def test_get_empty_and_get_ok_fields(port: int, name: str) -> None:
    """get-empty carries cluster-id ""; get-ok carries the delivery tag, redelivered, the
    exchange and routing key as published, and the ready count left (RabbitMQ 3.10.8)."""
    raw = Raw(port).connect()
    try:
        raw.call(1, pika.spec.Queue.Declare(queue=name, exclusive=True), pika.spec.Queue.DeclareOk)
        raw.call(1, pika.spec.Queue.Bind(queue=name, exchange="amq.topic", routing_key="a.*"), pika.spec.Queue.BindOk)
        empty = raw.call(1, pika.spec.Basic.Get(queue=name), pika.spec.Basic.GetEmpty)
        assert empty.cluster_id in ("", b"")
        raw.publish(1, "amq.topic", "a.b", b"first", properties=b"\x80\x00" + b"\x0atext/plain")
        raw.publish(1, "amq.topic", "a.c", b"second")
        got = raw.get(1, name, no_ack=False)
        assert got is not None
        get_ok, header, body = got
        assert (get_ok.delivery_tag, get_ok.redelivered, get_ok.exchange, get_ok.routing_key) == (
            1,
            False,
            "amq.topic",
            "a.b",
        )
        assert get_ok.message_count == 1
        assert (header[12:], body) == (b"\x80\x00\x0atext/plain", b"first")
        got = raw.get(1, name, no_ack=False)
        assert got is not None
        assert (got[0].delivery_tag, got[0].routing_key, got[0].message_count, got[2]) == (2, "a.c", 0, b"second")
        assert raw.get(1, name) is None
    finally:
        raw.close()


def test_get_from_missing_queue_is_404(port: int, name: str) -> None:
    """basic.get of a missing queue: channel.close 404 (60, 70); the other channel carries on."""
    raw = Raw(port).connect(channels=(1, 2))
    try:
        raw.send_method(1, pika.spec.Basic.Get(queue=name))
        close = raw.channel_close(1)
        assert (close.reply_code, close.reply_text) == (404, f"NOT_FOUND - no queue '{name}' in vhost '/'")
        assert (close.class_id, close.method_id) == (60, 70)
        queue = raw.call(2, pika.spec.Queue.Declare(queue="", exclusive=True), pika.spec.Queue.DeclareOk).queue
        raw.call(2, pika.spec.Basic.Get(queue=queue), pika.spec.Basic.GetEmpty)
    finally:
        raw.close()


def test_message_count_counts_ready_messages_only(conn: pika.BlockingConnection, queue: str) -> None:
    """With a consumer holding two unacknowledged messages, get-ok's count is the ready ones
    left; a get in ack mode takes its message out of the ready count too."""
    fill(conn, queue, *(b"%d" % i for i in range(6)))
    consumer_channel = conn.channel()
    consumer_channel.basic_qos(prefetch_count=2)
    held: list[bytes] = []
    consumer_channel.basic_consume(queue, lambda c, m, p, b: held.append(b))
    deadline = time.monotonic() + 5
    while len(held) < 2:
        assert time.monotonic() < deadline
        conn.process_data_events(time_limit=0.05)
    channel = conn.channel()
    counts = []
    while True:
        method, _, body = channel.basic_get(queue)
        if method is None:
            break
        counts.append((body, method.message_count))
    assert held == [b"0", b"1"]
    assert counts == [(b"2", 3), (b"3", 2), (b"4", 1), (b"5", 0)]
    channel.basic_ack(0, multiple=True)
    consumer_channel.close()  # 0 and 1 go back
    again = conn.channel().basic_get(queue, auto_ack=True)
    assert (again[2], again[0].redelivered, again[0].message_count) == (b"0", True, 1)


def test_get_and_consumer_share_delivery_tags(port: int, name: str) -> None:
    """Tags are the channel's: a consumer's delivery and a get on the same channel count on
    from one another (RabbitMQ 3.10.8)."""
    raw = Raw(port).connect(channels=(1, 2))
    try:
        raw.call(1, pika.spec.Queue.Declare(queue=name, exclusive=True), pika.spec.Queue.DeclareOk)
        other = name + "-other"
        raw.call(1, pika.spec.Queue.Declare(queue=other, exclusive=True), pika.spec.Queue.DeclareOk)
        raw.call(1, pika.spec.Basic.Consume(queue=name, consumer_tag="c"), pika.spec.Basic.ConsumeOk)
        raw.publish(2, "", name, b"delivered")
        assert raw.expect(pika.spec.Basic.Deliver, 1).delivery_tag == 1
        raw.read_content(1)
        raw.publish(2, "", other, b"got")
        raw.call(2, pika.spec.Basic.Qos(), pika.spec.Basic.QosOk)
        got = raw.get(1, other, no_ack=False)
        assert got is not None and got[0].delivery_tag == 2
        raw.publish(2, "", name, b"delivered again")
        assert raw.expect(pika.spec.Basic.Deliver, 1).delivery_tag == 3
        raw.read_content(1)
        raw.send_method(1, pika.spec.Basic.Ack(3, multiple=True))
        raw.call(1, pika.spec.Basic.Cancel(consumer_tag="c"), pika.spec.Basic.CancelOk)
        declare_ok = raw.call(1, pika.spec.Queue.Declare(queue=name, passive=True), pika.spec.Queue.DeclareOk)
        assert declare_ok.message_count == 0
    finally:
        raw.close()


def test_ack_of_a_no_ack_get_is_406(conn: pika.BlockingConnection, queue: str) -> None:
    """A no-ack get leaves nothing to acknowledge: ack of its tag is 406 unknown delivery tag
    (60, 80) (RabbitMQ 3.10.8)."""
    fill(conn, queue, b"gone")
    channel = conn.channel()
    method, _, _ = channel.basic_get(queue, auto_ack=True)
    assert method.delivery_tag == 1
    channel.basic_ack(1)
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as error:
        channel.basic_get(queue)
    assert (error.value.reply_code, error.value.reply_text) == (406, "PRECONDITION_FAILED - unknown delivery tag 1")
    assert conn.channel().queue_declare(queue, passive=True).method.message_count == 0


def test_unacked_get_returns_to_its_place_when_the_channel_closes(conn: pika.BlockingConnection, queue: str) -> None:
    fill(conn, queue, b"1", b"2", b"3")
    channel = conn.channel()
    assert channel.basic_get(queue)[2] == b"1"
    assert channel.basic_get(queue)[2] == b"2"
    channel.close()
    again = conn.channel()
    got = []
    while (result := again.basic_get(queue, auto_ack=True))[0] is not None:
        got.append((result[2], result[0].redelivered))
    assert got == [(b"1", True), (b"2", True), (b"3", False)]


def test_get_after_requeue_sees_the_original_order(conn: pika.BlockingConnection, queue: str) -> None:
    """Messages nacked with requeue go back to their original positions: a following get
    sees them first, redelivered, with the count of ready messages after each."""
    fill(conn, queue, b"1", b"2", b"3", b"4")
    channel = conn.channel()
    tags = [channel.basic_get(queue)[0].delivery_tag for _ in range(3)]
    channel.basic_nack(tags[2], requeue=True)
    channel.basic_nack(tags[0], requeue=True)
    got = []
    while (result := channel.basic_get(queue, auto_ack=True))[0] is not None:
        got.append((result[2], result[0].redelivered, result[0].message_count))
    assert got == [(b"1", True, 2), (b"3", True, 1), (b"4", False, 0)]
    channel.basic_nack(tags[1], requeue=False)


# -- client libraries ---------------------------------------------------------------------------


def test_py_amqp_basic_get(port: int, name: str) -> None:
    conn = amqp.Connection(f"127.0.0.1:{port}")
    conn.connect()
    try:
        channel = conn.channel()
        channel.queue_declare(name, exclusive=True)
        assert channel.basic_get(name) is None
        channel.confirm_select()
        for i in range(3):
            channel.basic_publish(amqp.Message(f"m{i}", content_type="text/plain"), routing_key=name)
        message = channel.basic_get(name)
        assert (message.body, message.delivery_info["message_count"], message.delivery_tag) == ("m0", 2, 1)
        assert message.delivery_info["routing_key"] == name and message.content_type == "text/plain"
        channel.basic_reject(message.delivery_tag, requeue=True)
        message = channel.basic_get(name, no_ack=True)
        assert (message.body, message.delivery_info["redelivered"], message.delivery_info["message_count"]) == (
            "m0",
            True,
            2,
        )
    finally:
        conn.close()


def test_kombu_get(port: int, name: str) -> None:
    """kombu's Queue.get (basic.get): message count, requeue, ack, None when empty."""
    with kombu.Connection(f"amqp://guest:guest@127.0.0.1:{port}//") as conn:
        queue = kombu.Queue(name, routing_key=name, auto_delete=True)
        producer = conn.Producer()
        for i in range(3):
            producer.publish({"n": i}, routing_key=name, declare=[queue])
        bound = queue(conn.channel())
        deadline = time.monotonic() + 5
        while (first := bound.get()) is None:
            assert time.monotonic() < deadline
        assert first.payload == {"n": 0}
        first.requeue()
        again = bound.get()
        assert again.payload == {"n": 0} and again.delivery_info["redelivered"]
        again.ack()
        second = bound.get(no_ack=True)
        assert second.payload == {"n": 1} and second.delivery_info["message_count"] == 1
        third = bound.get()
        assert third.payload == {"n": 2} and third.delivery_info["message_count"] == 0
        third.reject()
        assert bound.get() is None
        bound.delete()


def test_amqpstorm_basic_get(port: int, name: str) -> None:
    connection = amqpstorm.Connection("127.0.0.1", "guest", "guest", port=port)
    try:
        channel = connection.channel()
        channel.queue.declare(name, exclusive=True)
        assert channel.basic.get(name) is None
        channel.confirm_deliveries()
        for i in range(2):
            amqpstorm.Message.create(channel, f"m{i}", {"message_id": f"id{i}"}).publish(name)
        message = channel.basic.get(name)
        assert (message.body, message.message_id, message.method["message_count"]) == ("m0", "id0", 1)
        message.ack()
        message = channel.basic.get(name, no_ack=True)
        assert (message.body, message.method["message_count"]) == ("m1", 0)
        assert channel.basic.get(name) is None
    finally:
        connection.close()


def test_aio_pika_get(port: int, name: str) -> None:
    async def main() -> None:
        connection = await aio_pika.connect(f"amqp://guest:guest@127.0.0.1:{port}/")
        async with connection:
            channel = await connection.channel()
            queue = await channel.declare_queue(name, exclusive=True)
            assert await queue.get(fail=False) is None
            with pytest.raises(aio_pika.exceptions.QueueEmpty):
                await queue.get()
            for i in range(3):
                await channel.default_exchange.publish(aio_pika.Message(b"m%d" % i), name)
            message = await queue.get()
            assert (message.body, message.message_count, message.redelivered) == (b"m0", 2, False)
            await message.reject(requeue=True)
            message = await queue.get()
            assert (message.body, message.redelivered) == (b"m0", True)
            await message.ack()
            bodies = []
            while (message := await queue.get(no_ack=True, fail=False)) is not None:
                bodies.append(message.body)
            assert bodies == [b"m1", b"m2"]

    asyncio.run(main())
