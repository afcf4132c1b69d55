"""py-amqp (kombu's and so Celery's transport) writes an int header beyond 32 bits with type
letter 'L'.  RabbitMQ 3.10.8 reads 'L' as a signed 64-bit long and delivers the header; WarrenMQ
once closed the publisher's connection with 541 (issue 12).  Checked against RabbitMQ 3.10.8.
"""

from __future__ import annotations

import asyncio
import uuid

import aio_pika
import amqp
import amqp.serialization
import pika

BIG = 2**40


def _py_amqp_publish(port: int, routing_key: str, headers: dict[str, object], exchange: str = "") -> None:
    """The issue's reproduction: a publisher with confirms, as kombu sets one up (a refused
    publish raises here: the confirm never comes, the connection is closed)."""
    conn = amqp.Connection(f"127.0.0.1:{port}", confirm_publish=True)
    conn.connect()
    try:
        channel = conn.channel()
        if not exchange:
            channel.queue_declare(routing_key)
        message = amqp.Message(b"x", application_headers=headers)
        channel.basic_publish(message, exchange=exchange, routing_key=routing_key)
    finally:
        conn.close()


def test_py_amqp_writes_l_for_a_64_bit_int() -> None:
    """What makes this case: py-amqp's encoding of 2**40 (and of -2**31) is type letter 'L'."""
    assert amqp.serialization.dumps("F", [{"big": BIG}]) == b"\x00\x00\x00\x0d\x03bigL" + BIG.to_bytes(8, "big")
    assert amqp.serialization.dumps("A", [[-(2**31)]])[4:5] == b"L"


def test_the_reproduction_delivers_the_header_to_a_pika_consumer(port: int, name: str) -> None:
    _py_amqp_publish(port, name, {"big": BIG, "ms": 1_700_000_000_123, "small": -7})
    with pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", port)) as conn:
        channel = conn.channel()
        method, properties, body = channel.basic_get(name, auto_ack=True)
        channel.queue_delete(name)
    assert method is not None and body == b"x"
    assert properties.headers == {"big": BIG, "ms": 1_700_000_000_123, "small": -7}


def test_the_reproduction_delivers_the_header_to_an_aio_pika_consumer(port: int, name: str) -> None:
    _py_amqp_publish(port, name, {"big": BIG, "negative": -(2**40)})

    async def consume() -> dict[str, object]:
        connection = await aio_pika.connect(f"amqp://guest:guest@127.0.0.1:{port}/")
        async with connection:
            channel = await connection.channel()
            queue = await channel.declare_queue(name, passive=True)
            async with queue.iterator() as messages:
                async for message in messages:
                    async with message.process():
                        headers = dict(message.headers)
                    break
            await queue.delete()
            return headers

    assert asyncio.run(asyncio.wait_for(consume(), 10)) == {"big": BIG, "negative": -(2**40)}


def test_an_l_header_matches_a_headers_binding_of_any_integer_type(port: int, name: str) -> None:
    """RabbitMQ compares header values by type class: py-amqp's 'L' 2**40 matches pika's 'l'
    2**40 in a binding, and py-amqp's 'L' -2**31 matches pika's 'I' -2**31."""
    exchange = f"hx-{uuid.uuid4().hex[:8]}"
    with pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", port)) as conn:
        channel = conn.channel()
        channel.exchange_declare(exchange, "headers", auto_delete=True)
        channel.queue_declare(name, exclusive=True)
        channel.queue_bind(name, exchange, arguments={"x-match": "all", "big": BIG, "edge": -(2**31)})
        _py_amqp_publish(port, "", {"big": BIG + 1, "edge": -(2**31)}, exchange)  # no match
        _py_amqp_publish(port, "", {"big": BIG, "edge": -(2**31)}, exchange)
        method, properties, _ = channel.basic_get(name, auto_ack=True)
        assert method is not None and properties.headers == {"big": BIG, "edge": -(2**31)}
        assert channel.basic_get(name, auto_ack=True)[0] is None
