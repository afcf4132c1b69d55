"""The basic flows with every client library Python programs use.

pika's asyncio adapter, aio-pika, kombu, py-amqp and amqpstorm each declare, publish,
consume, acknowledge and meet an error the way their users do.  Each scenario was also run
against RabbitMQ 3.10.8 and behaves the same there.
"""

from __future__ import annotations

import asyncio
import re
import time

import aio_pika
import aio_pika.exceptions
import amqp
import amqp.exceptions
import amqpstorm
import kombu
import pika
import pika.exceptions
import pytest
from pika.adapters.asyncio_connection import AsyncioConnection

GENERATED_NAME = re.compile(r"^amq\.gen-[A-Za-z0-9_-]{22}$")


def cleanup_queues(port: int, *names: str) -> None:
    with pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", port)) as conn:
        channel = conn.channel()
        for name in names:
            channel.queue_delete(name)


def cleanup_exchanges(port: int, *names: str) -> None:
    with pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", port)) as conn:
        channel = conn.channel()
        for name in names:
            channel.exchange_delete(name)


# -- pika, asyncio adapter --------------------------------------------------------------


def test_pika_asyncio_adapter(port: int, name: str) -> None:
    """Callback style on an asyncio loop: open, declare, qos, consume, publish, ack, close."""

    async def scenario() -> list[tuple[bytes, str | None]]:
        loop = asyncio.get_running_loop()

        def waiter():
            future = loop.create_future()
            return future, lambda *args: future.done() or future.set_result(args)

        opened, on_open = waiter()
        failed = loop.create_future()
        conn = AsyncioConnection(
            pika.ConnectionParameters("127.0.0.1", port),
            on_open_callback=on_open,
            on_open_error_callback=lambda _c, exc: failed.set_exception(exc),
            custom_ioloop=loop,
        )
        done, _ = await asyncio.wait({opened, failed}, timeout=5, return_when=asyncio.FIRST_COMPLETED)
        assert opened in done, failed.exception() if failed.done() else "no connection within 5s"

        channel_open, on_channel = waiter()
        conn.channel(on_open_callback=on_channel)
        (channel,) = await asyncio.wait_for(channel_open, 5)

        declared, on_declared = waiter()
        channel.queue_declare(name, exclusive=True, callback=on_declared)
        (frame,) = await asyncio.wait_for(declared, 5)
        assert frame.method.queue == name

        qos_ok, on_qos = waiter()
        channel.basic_qos(prefetch_count=2, callback=on_qos)
        await asyncio.wait_for(qos_ok, 5)

        received: asyncio.Queue = asyncio.Queue()

        def on_message(ch, method, properties, body) -> None:
            received.put_nowait((body, properties.content_type))
            ch.basic_ack(method.delivery_tag)

        consuming, on_consume_ok = waiter()
        channel.basic_consume(name, on_message, callback=on_consume_ok)
        await asyncio.wait_for(consuming, 5)
        for i in range(5):
            channel.basic_publish("", name, f"m{i}".encode(), pika.BasicProperties(content_type="text/plain"))
        got = [await asyncio.wait_for(received.get(), 5) for _ in range(5)]

        closed, on_closed = waiter()
        conn.add_on_close_callback(on_closed)
        conn.close()
        _, reason = await asyncio.wait_for(closed, 5)
        assert isinstance(reason, pika.exceptions.ConnectionClosedByClient)
        return got

    got = asyncio.run(scenario())
    assert got == [(f"m{i}".encode(), "text/plain") for i in range(5)]


# -- aio-pika ---------------------------------------------------------------------------


def test_aio_pika_publish_consume(port: int, name: str) -> None:
    """aio-pika (publisher confirms on by default): a topic exchange, a bound queue, a
    message with properties and headers consumed through the queue iterator and acked."""
    exchange_name = name + "-topic"

    async def scenario() -> None:
        connection = await aio_pika.connect(f"amqp://guest:guest@127.0.0.1:{port}/")
        async with connection:
            channel = await connection.channel()
            await channel.set_qos(prefetch_count=10)
            exchange = await channel.declare_exchange(exchange_name, aio_pika.ExchangeType.TOPIC, auto_delete=True)
            queue = await channel.declare_queue(name)
            await queue.bind(exchange, "orders.*")
            for key in ("orders.new", "orders.paid", "invoices.new"):
                message = aio_pika.Message(
                    key.encode(), headers={"origin": "test"}, content_type="text/plain", correlation_id=key
                )
                await exchange.publish(message, routing_key=key)
            got = []
            async with queue.iterator() as messages:
                async for message in messages:
                    async with message.process():
                        got.append((message.body, message.routing_key, message.headers, message.correlation_id))
                    if len(got) == 2:
                        break
            assert got == [
                (b"orders.new", "orders.new", {"origin": "test"}, "orders.new"),
                (b"orders.paid", "orders.paid", {"origin": "test"}, "orders.paid"),
            ]
            declared = await channel.declare_queue(name, passive=True)
            assert declared.declaration_result.message_count == 0  # orders.* only, all acked
            await queue.delete()

    asyncio.run(asyncio.wait_for(scenario(), 20))


def test_aio_pika_server_named_queue_get_and_channel_error(port: int, name: str) -> None:
    """A server-named exclusive queue, basic.get through queue.get, and a 404 that closes the
    channel (aio-pika raises ChannelNotFoundEntity) while the connection stays usable."""

    async def scenario() -> None:
        connection = await aio_pika.connect(f"amqp://guest:guest@127.0.0.1:{port}/")
        async with connection:
            channel = await connection.channel()
            queue = await channel.declare_queue(exclusive=True)
            assert GENERATED_NAME.match(queue.name), queue.name
            await channel.default_exchange.publish(aio_pika.Message(b"direct"), routing_key=queue.name)
            message = await queue.get(timeout=5)
            assert message.body == b"direct"
            await message.ack()
            assert await queue.get(fail=False) is None

            broken = await connection.channel()
            with pytest.raises(aio_pika.exceptions.ChannelNotFoundEntity) as error:
                await broken.declare_queue(name + "-missing", passive=True)
            assert f"no queue '{name}-missing' in vhost '/'" in str(error.value)
            other = await connection.channel()
            assert (await other.declare_queue(exclusive=True)).name.startswith("amq.gen-")

    asyncio.run(asyncio.wait_for(scenario(), 20))


# -- kombu ------------------------------------------------------------------------------


def test_kombu_chooses_rabbitmq_3_qos_semantics(port: int) -> None:
    """kombu decides by product and version whether basic.qos(global) means per-channel
    (RabbitMQ 3.3-3.x) or per-consumer: against WarrenMQ, as against RabbitMQ 3.x, it must
    see "not as the spec says"."""
    with kombu.Connection(f"amqp://guest:guest@127.0.0.1:{port}//") as conn:
        conn.connect()
        assert conn.qos_semantics_matches_spec is False


def test_kombu_simple_queue(port: int, name: str) -> None:
    with kombu.Connection(f"amqp://guest:guest@127.0.0.1:{port}//") as conn:
        queue = conn.SimpleQueue(name)
        try:
            queue.put({"hello": "world"})
            queue.put({"n": 2})
            first = queue.get(timeout=5)
            assert first.payload == {"hello": "world"}
            first.ack()
            second = queue.get(timeout=5)
            assert second.payload == {"n": 2}
            second.ack()
            with pytest.raises(queue.Empty):
                queue.get(block=False)
        finally:
            queue.close()
    cleanup_queues(port, name)


def test_kombu_producer_consumer_with_prefetch(port: int, name: str) -> None:
    """kombu's Producer and Consumer over a direct exchange, with prefetch 1 (which kombu
    sends as global QoS against RabbitMQ 3.x): messages come one at a time, each acked."""
    exchange = kombu.Exchange(name + "-direct", "direct", durable=False, auto_delete=True)
    queue = kombu.Queue(name, exchange, routing_key="work", auto_delete=True)
    received: list[dict] = []
    with kombu.Connection(f"amqp://guest:guest@127.0.0.1:{port}//") as conn:

        def on_message(body, message) -> None:
            received.append(body)
            message.ack()

        with kombu.Consumer(conn, [queue], callbacks=[on_message], accept=["json"], prefetch_count=1):
            producer = kombu.Producer(conn)
            for i in range(4):
                producer.publish({"task": i}, exchange=exchange, routing_key="work", serializer="json")
            deadline = time.monotonic() + 5
            while len(received) < 4 and time.monotonic() < deadline:
                conn.drain_events(timeout=1)
    assert received == [{"task": i} for i in range(4)]


# -- py-amqp ----------------------------------------------------------------------------


def test_py_amqp_publish_get_consume(port: int, name: str) -> None:
    """py-amqp with publisher confirms: publish, basic_get with message_count, a consumer
    with drain_events, properties kept, acks."""
    conn = amqp.Connection(f"127.0.0.1:{port}", confirm_publish=True)
    conn.connect()
    try:
        channel = conn.channel()
        channel.queue_declare(name, auto_delete=False)
        for i in range(3):
            message = amqp.Message(f"m{i}", content_type="text/plain", application_headers={"i": i})
            channel.basic_publish(message, routing_key=name)
        got = channel.basic_get(name)
        assert got.body == "m0"
        assert got.delivery_info["message_count"] == 2
        assert got.properties["application_headers"] == {"i": 0}
        channel.basic_ack(got.delivery_tag)

        consumed: list[amqp.Message] = []
        channel.basic_qos(0, 1, False)
        tag = channel.basic_consume(name, callback=consumed.append)
        while len(consumed) < 2:
            conn.drain_events(timeout=5)
            channel.basic_ack(consumed[-1].delivery_tag)
        assert [m.body for m in consumed] == ["m1", "m2"]
        assert consumed[0].properties["content_type"] == "text/plain"
        assert channel.queue_declare(name, passive=True).message_count == 0
        channel.basic_cancel(tag)
        channel.queue_delete(name)
    finally:
        conn.close()


def test_py_amqp_channel_error(port: int, name: str) -> None:
    conn = amqp.Connection(f"127.0.0.1:{port}")
    conn.connect()
    try:
        with pytest.raises(amqp.exceptions.NotFound) as error:
            conn.channel().queue_declare(name, passive=True)
        assert error.value.reply_text == f"NOT_FOUND - no queue '{name}' in vhost '/'"
        assert error.value.method_sig == (50, 10)
        assert conn.channel().queue_declare("", exclusive=True).queue.startswith("amq.gen-")
    finally:
        conn.close()


# -- amqpstorm --------------------------------------------------------------------------


def test_amqpstorm_publish_get_consume(port: int, name: str) -> None:
    """amqpstorm: confirmed publishes, basic.get, a consumer read through
    build_inbound_messages, acks; properties survive the trip."""
    with (
        amqpstorm.Connection("127.0.0.1", "guest", "guest", port=port) as connection,
        connection.channel() as channel,
    ):
        channel.queue.declare(name, auto_delete=False)
        channel.confirm_deliveries()
        for i in range(3):
            message = amqpstorm.Message.create(
                channel, f"m{i}", {"content_type": "text/plain", "headers": {"i": i}, "message_id": f"id{i}"}
            )
            assert message.publish(name) is True

        got = channel.basic.get(name)
        assert got.body == "m0" and got.message_id == "id0"
        got.ack()

        channel.basic.qos(prefetch_count=1)
        channel.basic.consume(queue=name, no_ack=False)
        consumed = []
        for message in channel.build_inbound_messages(break_on_empty=True, empty_timeout=5):
            consumed.append((message.body, message.content_type, message.properties["headers"]))
            message.ack()
            if len(consumed) == 2:
                break
        assert consumed == [("m1", "text/plain", {"i": 1}), ("m2", "text/plain", {"i": 2})]
        assert channel.queue.declare(name, passive=True)["message_count"] == 0
        channel.queue.delete(name)


def test_amqpstorm_channel_error(port: int, name: str) -> None:
    with amqpstorm.Connection("127.0.0.1", "guest", "guest", port=port) as connection:
        channel = connection.channel()
        with pytest.raises(amqpstorm.AMQPChannelError) as error:
            channel.queue.declare(name, passive=True)
        assert error.value.error_code == 404
        assert f"no queue '{name}' in vhost '/'" in str(error.value)
        with connection.channel() as other:
            assert other.queue.declare("", exclusive=True)["queue"].startswith("amq.gen-")
