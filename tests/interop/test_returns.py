"""mandatory and basic.return; immediate.

An unroutable mandatory message comes back as basic.return 312 NO_ROUTE naming the exchange
and routing key it was published with, its content header and body exactly as published.
A message that reaches a queue through an exchange-to-exchange binding or an alternate
exchange is routed; the direct reply-to pseudo-queue is not a route (a mandatory reply is
delivered *and* returned).  ``immediate`` is refused with connection.close 540.  All checked
against RabbitMQ 3.10.8 with this same code.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import aio_pika
import aiormq
import amqp
import amqp.exceptions
import kombu
import pika
import pika.spec
import pytest

from tests.interop.pika_client import connect
from tests.interop.test_raw_protocol import Raw, shortstr, table


@pytest.fixture
def raw(port: int) -> Iterator[Raw]:
    client = Raw(port).connect(channels=(1, 2))
    yield client
    client.close()


def every_property(user: str = "guest") -> bytes:
    """Property flags with all 14 basic properties set, and their values."""
    headers = {
        "s": ("S", b"text"),
        "n": ("I", -7),
        "nested": ("F", {"a": ("A", [("l", 1), ("S", b"x")])}),
        "void": ("V", None),
    }
    return (
        b"\xff\xfc"
        + shortstr("application/json")  # content-type
        + shortstr("gzip")  # content-encoding
        + table(headers)
        + b"\x02"  # delivery-mode
        + b"\x05"  # priority
        + shortstr("corr-1")  # correlation-id
        + shortstr("reply.here")  # reply-to
        + shortstr("60000")  # expiration
        + shortstr("msg-1")  # message-id
        + b"\x00\x00\x00\x00\x65\x00\x00\x00"  # timestamp
        + shortstr("kind")  # type
        + shortstr(user)  # user-id
        + shortstr("app")  # app-id
        + shortstr("cluster")  # cluster-id (deprecated, still carried)
    )


def pump(conn: pika.BlockingConnection, until: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not until():
        assert time.monotonic() < deadline, "timed out"
        conn.process_data_events(time_limit=0.05)


# -- the returned message -----------------------------------------------------------------------


def test_return_carries_the_content_as_published(raw: Raw, name: str) -> None:
    """basic.return 312 NO_ROUTE with the exchange and routing key as published, and the
    content header (every property) and body byte-for-byte as published."""
    properties = every_property()
    body = bytes(range(256)) * 1200  # 300 KiB: several body frames each way
    raw.publish(1, "amq.direct", name, body, properties=properties, mandatory=True)
    returned = raw.expect(pika.spec.Basic.Return, 1)
    assert (returned.reply_code, returned.reply_text) == (312, "NO_ROUTE")
    assert (returned.exchange, returned.routing_key) == ("amq.direct", name)
    header, got = raw.read_content(1)
    assert header[12:] == properties
    assert got == body


def test_mandatory_routed_message_is_not_returned(raw: Raw, name: str, exchanges: list[str]) -> None:
    """Routed directly, through an exchange-to-exchange binding or through an alternate
    exchange: not returned.  Through an e2e binding into an exchange that routes nowhere, or
    to an alternate exchange that routes nowhere: returned."""
    source, middle, alternate, lonely = (name + suffix for suffix in ("-src", "-mid", "-ae", "-lonely"))
    exchanges += [source, middle, alternate, lonely]
    queue = raw.call(1, pika.spec.Queue.Declare(queue="", exclusive=True), pika.spec.Queue.DeclareOk).queue
    raw.call(1, pika.spec.Exchange.Declare(exchange=alternate, type="fanout"), pika.spec.Exchange.DeclareOk)
    raw.call(1, pika.spec.Exchange.Declare(exchange=lonely, type="fanout"), pika.spec.Exchange.DeclareOk)
    raw.call(1, pika.spec.Exchange.Declare(exchange=middle, type="direct"), pika.spec.Exchange.DeclareOk)
    declare = pika.spec.Exchange.Declare(exchange=source, type="direct", arguments={"alternate-exchange": alternate})
    raw.call(1, declare, pika.spec.Exchange.DeclareOk)
    raw.call(
        1, pika.spec.Exchange.Bind(destination=middle, source=source, routing_key="e2e"), pika.spec.Exchange.BindOk
    )
    raw.call(1, pika.spec.Queue.Bind(queue=queue, exchange=middle, routing_key="e2e"), pika.spec.Queue.BindOk)
    raw.call(1, pika.spec.Queue.Bind(queue=queue, exchange=source, routing_key="direct"), pika.spec.Queue.BindOk)
    raw.call(
        1, pika.spec.Exchange.Bind(destination=lonely, source=middle, routing_key="dead"), pika.spec.Exchange.BindOk
    )
    raw.call(
        1, pika.spec.Exchange.Bind(destination=middle, source=source, routing_key="dead"), pika.spec.Exchange.BindOk
    )

    for key in ("direct", "e2e", "dead", "anything"):
        raw.publish(1, source, key, key.encode(), mandatory=True)
    raw.send_method(1, pika.spec.Basic.Qos())  # a round trip: everything before is routed
    # "anything" goes to the alternate exchange, which has no binding: returned.
    # "dead" goes source -> middle -> lonely (no binding): returned, not sent to the alternate.
    returned = []
    while True:
        _, method = raw.read_method()
        if isinstance(method, pika.spec.Basic.QosOk):
            break
        assert isinstance(method, pika.spec.Basic.Return), method
        returned.append((method.routing_key, raw.read_content(1)[1]))
    assert sorted(returned) == [("anything", b"anything"), ("dead", b"dead")]
    got = [raw.get(2, queue) for _ in range(2)]
    assert sorted(g[2] for g in got if g is not None) == [b"direct", b"e2e"]
    assert raw.get(2, queue) is None


def test_mandatory_to_a_missing_exchange_is_404_not_a_return(port: int, name: str) -> None:
    conn = amqp.Connection(f"127.0.0.1:{port}")
    conn.connect()
    try:
        channel = conn.channel()
        channel.basic_publish(amqp.Message("x"), exchange=name, routing_key="k", mandatory=True)
        with pytest.raises(amqp.exceptions.NotFound) as error:
            channel.queue_declare("", exclusive=True)
        assert error.value.reply_text == f"NOT_FOUND - no exchange '{name}' in vhost '/'"
        assert error.value.method_sig == (60, 40)
    finally:
        conn.close()


# -- immediate --------------------------------------------------------------------------------------


@pytest.mark.parametrize("exchange, key", [("", "routable"), ("", "unroutable"), ("missing", "k")])
def test_immediate_is_not_implemented(port: int, name: str, exchange: str, key: str) -> None:
    """immediate=true, whether routable, unroutable or to a missing exchange: connection.close
    540 NOT_IMPLEMENTED - immediate=true (60, 40), checked before anything else (RabbitMQ
    3.10.8); other connections carry on."""
    conn = amqp.Connection(f"127.0.0.1:{port}")
    conn.connect()
    bystander = Raw(port).connect()
    try:
        channel = conn.channel()
        queue, _, _ = channel.queue_declare("", exclusive=True)
        routing_key = queue if key == "routable" else name
        channel.basic_publish(
            amqp.Message("x"),
            exchange=name if exchange else "",
            routing_key=routing_key,
            mandatory=True,
            immediate=True,
        )
        with pytest.raises(amqp.exceptions.AMQPNotImplementedError) as error:
            channel.queue_declare("", exclusive=True)
        assert error.value.reply_code == 540
        assert error.value.reply_text == "NOT_IMPLEMENTED - immediate=true"
        assert error.value.method_sig == (60, 40)
        bystander.call(1, pika.spec.Basic.Qos(), pika.spec.Basic.QosOk)
    finally:
        bystander.close()
        if conn.connected:
            conn.close()


# -- direct reply-to ---------------------------------------------------------------------------------


def test_mandatory_direct_reply_is_delivered_and_returned(port: int, name: str) -> None:
    """A reply published with mandatory to a direct reply-to address reaches the requester
    *and* comes back to the replier as 312 NO_ROUTE: RabbitMQ 3.10.8 does not count the
    pseudo-queue as a route.  A reply to an address nobody holds is only returned."""
    with connect(port) as requester, connect(port) as responder:
        req = requester.channel()
        replies: list[bytes] = []
        req.basic_consume("amq.rabbitmq.reply-to", lambda c, m, p, b: replies.append(b), auto_ack=True)
        req.queue_declare(name, exclusive=False, auto_delete=True)
        req.basic_publish("", name, b"question", pika.BasicProperties(reply_to="amq.rabbitmq.reply-to"))

        res = responder.channel()
        returns: list[tuple[str, bytes]] = []
        res.add_on_return_callback(lambda c, m, p, b: returns.append((m.reply_text, b)))
        method, properties, _ = None, None, None
        deadline = time.monotonic() + 5
        while method is None:
            assert time.monotonic() < deadline
            method, properties, _ = res.basic_get(name, auto_ack=True)
        address = properties.reply_to
        assert address.startswith("amq.rabbitmq.reply-to.")
        res.basic_publish("", address, b"answer", mandatory=True)
        res.basic_publish("", "amq.rabbitmq.reply-to.nobody", b"lost", mandatory=True)
        pump(responder, lambda: len(returns) == 2)
        pump(requester, lambda: len(replies) == 1)
        assert returns == [("NO_ROUTE", b"answer"), ("NO_ROUTE", b"lost")]
        assert replies == [b"answer"]
        res.queue_delete(name)


# -- client libraries -------------------------------------------------------------------------------


def test_pika_on_return_callback(port: int, name: str) -> None:
    """pika without confirms: returns arrive in publish order with their properties."""
    with connect(port) as conn:
        channel = conn.channel()
        returns: list[tuple[int, str, bytes, Any]] = []
        channel.add_on_return_callback(lambda c, m, p, b: returns.append((m.reply_code, m.routing_key, b, p)))
        for i in range(3):
            properties = pika.BasicProperties(content_type="text/plain", headers={"i": i}, message_id=f"id-{i}")
            channel.basic_publish("", f"{name}-{i}", b"body-%d" % i, properties, mandatory=True)
        pump(conn, lambda: len(returns) == 3)
        assert [(code, key, body) for code, key, body, _ in returns] == [
            (312, f"{name}-{i}", b"body-%d" % i) for i in range(3)
        ]
        assert [(p.content_type, p.headers, p.message_id) for *_, p in returns] == [
            ("text/plain", {"i": i}, f"id-{i}") for i in range(3)
        ]


def test_py_amqp_basic_return_event(port: int, name: str) -> None:
    conn = amqp.Connection(f"127.0.0.1:{port}")
    conn.connect()
    try:
        channel = conn.channel()
        returned: list[tuple[int, str, str, Any]] = []
        channel.events["basic_return"].add(
            lambda exc, exchange, key, message: returned.append((exc.reply_code, exchange, key, message))
        )
        message = amqp.Message("lost", content_type="text/plain", application_headers={"k": "v"})
        channel.basic_publish(message, exchange="amq.topic", routing_key=name, mandatory=True)
        deadline = time.monotonic() + 5
        while not returned:
            assert time.monotonic() < deadline
            try:
                conn.drain_events(timeout=0.2)
            except TimeoutError:
                pass
        code, exchange, key, got = returned[0]
        assert (code, exchange, key) == (312, "amq.topic", name)
        assert got.body == "lost"
        assert got.properties["content_type"] == "text/plain"
        assert got.properties["application_headers"] == {"k": "v"}
    finally:
        conn.close()


def test_kombu_producer_on_return(port: int, name: str) -> None:
    returned: list[tuple[int, str, str]] = []

    def on_return(exception: Any, exchange: str, routing_key: str, message: Any) -> None:
        returned.append((exception.reply_code, routing_key, message.body))

    with kombu.Connection(f"amqp://guest:guest@127.0.0.1:{port}//") as conn:
        producer = kombu.Producer(conn.channel(), on_return=on_return)
        producer.publish("unroutable", routing_key=name, mandatory=True, serializer="raw")
        deadline = time.monotonic() + 5
        while not returned:
            assert time.monotonic() < deadline
            try:
                conn.drain_events(timeout=0.2)
            except TimeoutError:
                pass
    assert returned[0][:2] == (312, name)
    assert returned[0][2] in ("unroutable", b"unroutable")


def test_aio_pika_return_callback(port: int, name: str) -> None:
    """aio-pika (publisher confirms on, as by default): the publish resolves to the returned
    message and the channel's return callbacks see it, properties intact."""

    async def main() -> None:
        connection = await aio_pika.connect(f"amqp://guest:guest@127.0.0.1:{port}/")
        async with connection:
            channel = await connection.channel()
            got: list[tuple[bytes, str | None, str | None]] = []

            def on_return(channel: Any, message: aio_pika.abc.AbstractIncomingMessage) -> None:
                got.append((message.body, message.correlation_id, message.message_id))

            channel.return_callbacks.add(on_return)
            message = aio_pika.Message(b"back", correlation_id="c-1", message_id="m-1")
            result = await channel.default_exchange.publish(message, routing_key=name, mandatory=True)
            assert isinstance(result.delivery, aiormq.spec.Basic.Return)
            assert (result.delivery.reply_code, result.delivery.routing_key) == (312, name)
            assert got == [(b"back", "c-1", "m-1")]

    asyncio.run(main())
