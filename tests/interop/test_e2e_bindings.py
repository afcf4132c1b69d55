"""Exchange-to-exchange bindings (exchange.bind / exchange.unbind).

A message travels every path of bindings from the exchange it was published to; each
exchange is visited at most once (so cycles end) and each queue gets at most one copy,
however many paths lead to it.  An exchange's alternate exchange is used when that exchange
itself routes the message nowhere (a binding to another exchange counts as a route).  All
checked against RabbitMQ 3.10.8 with this same code.
"""

from __future__ import annotations

import asyncio
import time

import aio_pika
import amqp
import amqp.exceptions
import amqpstorm
import kombu
import pika
import pika.exceptions
import pytest

from tests.interop.pika_client import connect
from tests.server import ServerProcess


def declare(ch, exchanges: list[str], name: str, kind: str = "fanout", **options) -> str:
    ch.exchange_declare(name, kind, **options)
    exchanges.append(name)
    return name


def queue_of(ch, exchange: str = "", key: str = "") -> str:
    queue = ch.queue_declare("", exclusive=True).method.queue
    if exchange:
        ch.queue_bind(queue, exchange, key)
    return queue


def drain(ch, queue: str) -> list[bytes]:
    bodies = []
    while True:
        method, _, body = ch.basic_get(queue, auto_ack=True)
        if method is None:
            return bodies
        bodies.append(body)


def test_chain_of_exchange_types(ch, exchanges: list[str], name: str) -> None:
    """topic -> direct -> headers -> queue: each hop applies its own type's rules to the
    message's routing key and headers."""
    topic = declare(ch, exchanges, name + "-topic", "topic")
    direct = declare(ch, exchanges, name + "-direct", "direct")
    headers = declare(ch, exchanges, name + "-headers", "headers")
    ch.exchange_bind(direct, topic, "orders.*")
    ch.exchange_bind(headers, direct, "orders.eu")
    queue = ch.queue_declare("", exclusive=True).method.queue
    ch.queue_bind(queue, headers, "", arguments={"x-match": "all", "priority": "high"})
    for key, priority, body in [
        ("orders.eu", "high", b"routed"),
        ("orders.eu", "low", b"headers say no"),
        ("orders.us", "high", b"direct says no"),
        ("invoices.eu", "high", b"topic says no"),
    ]:
        ch.basic_publish(topic, key, body, pika.BasicProperties(headers={"priority": priority}))
    assert drain(ch, queue) == [b"routed"]


def test_many_paths_to_a_queue_give_one_copy(ch, exchanges: list[str], name: str) -> None:
    """A diamond (X -> A -> Q, X -> B -> Q), a direct binding of Q to X too, and the same
    exchange bound twice with different keys: Q gets the message once."""
    x = declare(ch, exchanges, name + "-x", "topic")
    a = declare(ch, exchanges, name + "-a")
    b = declare(ch, exchanges, name + "-b")
    ch.exchange_bind(a, x, "k.#")
    ch.exchange_bind(a, x, "#.k")
    ch.exchange_bind(b, x, "k.k")
    queue = queue_of(ch, a)
    ch.queue_bind(queue, b)
    ch.queue_bind(queue, x, "*.k")
    ch.basic_publish(x, "k.k", b"once")
    assert drain(ch, queue) == [b"once"]


def test_cycles_end_and_deliver_once(ch, exchanges: list[str], name: str) -> None:
    """X1 -> X2 -> X3 -> X1 with a queue on each and one on an exchange bound to itself:
    publishing to any of them reaches every queue once, and the broker stays responsive."""
    x1, x2, x3 = (declare(ch, exchanges, f"{name}-{i}") for i in (1, 2, 3))
    ch.exchange_bind(x2, x1)
    ch.exchange_bind(x3, x2)
    ch.exchange_bind(x1, x3)
    ch.exchange_bind(x2, x2)  # an exchange bound to itself (RabbitMQ allows it)
    queues = [queue_of(ch, x) for x in (x1, x2, x3)]
    for start in (x1, x2, x3):
        ch.basic_publish(start, "", start.encode())
    for queue in queues:
        assert sorted(drain(ch, queue)) == sorted(x.encode() for x in (x1, x2, x3))


def test_alternate_exchanges_along_the_way(ch, exchanges: list[str], name: str) -> None:
    """Each exchange's alternate is used when that exchange routes the message nowhere: the
    middle exchange's alternate catches what the middle cannot route; the source's alternate
    is not used for a message the source passed on to another exchange (RabbitMQ 3.10.8)."""
    source_ae = declare(ch, exchanges, name + "-src-ae")
    middle_ae = declare(ch, exchanges, name + "-mid-ae")
    middle = declare(ch, exchanges, name + "-mid", "direct", arguments={"alternate-exchange": middle_ae})
    source = declare(ch, exchanges, name + "-src", "direct", arguments={"alternate-exchange": source_ae})
    ch.exchange_bind(middle, source, "to-middle")
    routed = queue_of(ch, middle, "to-middle")
    ch.queue_bind(routed, middle, "never")
    caught_by_source_ae = queue_of(ch, source_ae)
    caught_by_middle_ae = queue_of(ch, middle_ae)
    ch.exchange_unbind(middle, source, "to-middle")
    ch.exchange_bind(middle, source, "to-middle")
    ch.exchange_bind(middle, source, "dead-end")
    ch.basic_publish(source, "to-middle", b"routed")
    ch.basic_publish(source, "dead-end", b"middle cannot route")
    ch.basic_publish(source, "elsewhere", b"source cannot route")
    assert drain(ch, routed) == [b"routed"]
    assert drain(ch, caught_by_middle_ae) == [b"middle cannot route"]
    assert drain(ch, caught_by_source_ae) == [b"source cannot route"]


def test_unbind_and_delete_cut_the_path(conn: pika.BlockingConnection, ch, exchanges: list[str], name: str) -> None:
    """Unbinding one of two paths leaves the other; deleting the middle exchange removes its
    bindings on both sides, and a new exchange of the same name starts with none."""
    x = declare(ch, exchanges, name + "-x", "direct")
    middle = declare(ch, exchanges, name + "-mid")
    ch.exchange_bind(middle, x, "a")
    ch.exchange_bind(middle, x, "b")
    queue = queue_of(ch, middle)
    ch.exchange_unbind(middle, x, "a")
    ch.exchange_unbind(middle, x, "a")  # unbinding what is not bound is fine
    ch.basic_publish(x, "a", b"a")
    ch.basic_publish(x, "b", b"b")
    assert drain(ch, queue) == [b"b"]
    ch.exchange_delete(middle)
    declare(ch, exchanges, middle)
    ch.basic_publish(x, "b", b"gone")
    assert drain(ch, queue) == []


def test_auto_delete_source_goes_with_its_last_exchange_binding(
    conn: pika.BlockingConnection, ch, exchanges: list[str], name: str
) -> None:
    """An auto-delete exchange whose last binding (as the source of an exchange-to-exchange
    binding) is removed is deleted (RabbitMQ 3.10.8)."""
    source = declare(ch, exchanges, name + "-auto", auto_delete=True)
    destination = declare(ch, exchanges, name + "-dst")
    ch.exchange_bind(destination, source)
    ch.exchange_unbind(destination, source)
    probe = conn.channel()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as error:
        probe.exchange_declare(source, passive=True)
    assert error.value.reply_code == 404


def test_unbind_of_another_connections_exclusive_queue(port: int, conn: pika.BlockingConnection) -> None:
    """Another connection's exclusive queue: queue.bind is 405 RESOURCE_LOCKED; queue.unbind
    of a binding it does not have is unbind-ok, of one it has is 405 (RabbitMQ 3.10.8 checks
    the owner only once it found the binding)."""
    owner = conn.channel()
    queue = owner.queue_declare("", exclusive=True).method.queue
    owner.queue_bind(queue, "amq.direct", "bound")
    locked = (
        f"RESOURCE_LOCKED - cannot obtain exclusive access to locked queue '{queue}' in vhost '/'. It could be "
        "originally declared on another connection or the exclusive property value does not match that of the "
        "original declaration."
    )
    other = amqp.Connection(f"127.0.0.1:{port}")
    other.connect()
    try:
        channel = other.channel()
        channel.queue_unbind(queue, "amq.direct", "not-bound")
        for action, method_sig in [
            (lambda c: c.queue_bind(queue, "amq.direct", "k"), (50, 20)),
            (lambda c: c.queue_unbind(queue, "amq.direct", "bound"), (50, 50)),
        ]:
            with pytest.raises(amqp.exceptions.ResourceLocked) as error:
                action(other.channel())
            assert (error.value.reply_text, error.value.method_sig) == (locked, method_sig)
        channel.basic_publish(amqp.Message("still bound"), exchange="amq.direct", routing_key="bound")
    finally:
        other.close()
    deadline = time.monotonic() + 5
    while owner.queue_declare(queue, passive=True).method.message_count != 1:
        assert time.monotonic() < deadline


# -- client libraries ---------------------------------------------------------------------------


def test_py_amqp_exchange_bind(port: int, name: str) -> None:
    conn = amqp.Connection(f"127.0.0.1:{port}")
    conn.connect()
    try:
        channel = conn.channel()
        channel.exchange_declare(name + "-a", "fanout", auto_delete=False)
        channel.exchange_declare(name + "-b", "fanout", auto_delete=False)
        channel.exchange_bind(destination=name + "-b", source=name + "-a")
        channel.exchange_bind(destination=name + "-a", source=name + "-b")  # a cycle
        queue, _, _ = channel.queue_declare("", exclusive=True)
        channel.queue_bind(queue, name + "-b")
        channel.confirm_select()
        channel.basic_publish(amqp.Message("around"), exchange=name + "-a")
        assert channel.basic_get(queue, no_ack=True).body == "around"
        assert channel.basic_get(queue, no_ack=True) is None
        channel.exchange_unbind(destination=name + "-b", source=name + "-a")
        channel.basic_publish(amqp.Message("cut"), exchange=name + "-a")
        assert channel.basic_get(queue, no_ack=True) is None
        channel.exchange_delete(name + "-a")
        channel.exchange_delete(name + "-b")
    finally:
        conn.close()


def test_aio_pika_exchange_bind(port: int, name: str) -> None:
    async def main() -> list[bytes]:
        connection = await aio_pika.connect(f"amqp://guest:guest@127.0.0.1:{port}/")
        async with connection:
            channel = await connection.channel()
            logs = await channel.declare_exchange(name + "-logs", aio_pika.ExchangeType.TOPIC, auto_delete=True)
            errors = await channel.declare_exchange(name + "-errors", aio_pika.ExchangeType.FANOUT, auto_delete=True)
            await errors.bind(logs, routing_key="*.error")
            queue = await channel.declare_queue("", exclusive=True)
            await queue.bind(errors)
            await logs.publish(aio_pika.Message(b"disk full"), routing_key="disk.error", mandatory=False)
            await logs.publish(aio_pika.Message(b"all fine"), routing_key="disk.info", mandatory=False)
            got = []
            while (message := await queue.get(no_ack=True, fail=False)) is not None:
                got.append(message.body)
            await errors.unbind(logs, routing_key="*.error")
            return got

    assert asyncio.run(main()) == [b"disk full"]


def test_kombu_exchange_bind_to(port: int, name: str) -> None:
    with kombu.Connection(f"amqp://guest:guest@127.0.0.1:{port}//") as conn:
        channel = conn.channel()
        upstream = kombu.Exchange(name + "-up", "direct", auto_delete=True)(channel)
        downstream = kombu.Exchange(name + "-down", "fanout", auto_delete=True)(channel)
        upstream.declare()
        downstream.declare()
        downstream.bind_to(upstream, routing_key="go")
        queue = kombu.Queue("", downstream, exclusive=True)(channel)
        queue.declare()
        producer = kombu.Producer(channel, exchange=upstream)
        producer.publish({"n": 1}, routing_key="go")
        producer.publish({"n": 2}, routing_key="stop")
        producer.publish({"n": 3}, routing_key="go")
        got = []
        while len(got) < 2:
            message = queue.get(no_ack=True)
            if message is not None:
                got.append(message.payload)
        assert got == [{"n": 1}, {"n": 3}]


def test_amqpstorm_exchange_bind(port: int, name: str) -> None:
    connection = amqpstorm.Connection("127.0.0.1", "guest", "guest", port=port)
    try:
        channel = connection.channel()
        channel.exchange.declare(name + "-a", "fanout")
        channel.exchange.declare(name + "-b", "fanout")
        channel.exchange.bind(destination=name + "-b", source=name + "-a")
        channel.queue.declare(name, exclusive=True)
        channel.queue.bind(name, name + "-a")
        channel.queue.bind(name, name + "-b")
        channel.confirm_deliveries()
        assert amqpstorm.Message.create(channel, "one copy").publish("", exchange=name + "-a")
        assert channel.basic.get(name, no_ack=True).body == "one copy"
        assert channel.basic.get(name, no_ack=True) is None
        channel.exchange.delete(name + "-a")
        channel.exchange.delete(name + "-b")
    finally:
        connection.close()


# -- durability -----------------------------------------------------------------------------------


def test_durable_exchange_bindings_survive_a_restart(fresh_server: ServerProcess, name: str) -> None:
    """A durable exchange-to-exchange binding between durable exchanges is kept across a
    restart, and so is the route it makes."""
    fresh_server.start()
    with connect(fresh_server.port) as conn:
        ch = conn.channel()
        ch.exchange_declare(name + "-src", "topic", durable=True)
        ch.exchange_declare(name + "-dst", "fanout", durable=True)
        ch.exchange_bind(name + "-dst", name + "-src", "a.#")
        ch.queue_declare(name, durable=True)
        ch.queue_bind(name, name + "-dst")
    assert fresh_server.stop() == 0
    fresh_server.start()
    with connect(fresh_server.port) as conn:
        ch = conn.channel()
        ch.confirm_delivery()
        ch.basic_publish(name + "-src", "a.b", b"after restart")
        ch.basic_publish(name + "-src", "b.a", b"not routed")
        assert drain(ch, name) == [b"after restart"]
