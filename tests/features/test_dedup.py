"""Deduplication (LavinMQ's arguments): ``x-message-deduplication: true`` on an exchange or a
queue, keyed by the ``x-deduplication-header`` header (or the header that argument names, or
else the message-id); a duplicate is dropped yet confirmed, never returned or sent to an
alternate exchange; ``x-cache-size`` and ``x-cache-ttl`` bound the cache; the cache of a
durable object survives a restart and a crash."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aio_pika
import kombu
import pika
import pytest
from pika.adapters.blocking_connection import BlockingChannel

from tests.server import ServerProcess
from warrenmq.testing import EmbeddedBroker, RunningBroker

DEDUP = {"x-message-deduplication": True}


def fresh(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def channel(url: str) -> tuple[pika.BlockingConnection, BlockingChannel]:
    conn = pika.BlockingConnection(pika.URLParameters(url))
    ch = conn.channel()
    ch.confirm_delivery()
    return conn, ch


def keyed(key: str, **headers: Any) -> pika.BasicProperties:
    return pika.BasicProperties(headers={"x-deduplication-header": key, **headers})


def count(ch: BlockingChannel, queue: str) -> int:
    return int(ch.queue_declare(queue, passive=True).method.message_count)


def test_an_exchange_drops_duplicates_confirmed_and_not_returned(amqp_broker: RunningBroker) -> None:
    conn, ch = channel(amqp_broker.url)
    alternate, exchange, queue, caught = fresh("ae"), fresh("dx"), fresh("q"), fresh("caught")
    ch.exchange_declare(alternate, "fanout")
    ch.queue_declare(caught)
    ch.queue_bind(caught, alternate, "")
    ch.exchange_declare(exchange, "topic", arguments={**DEDUP, "x-cache-size": 100, "alternate-exchange": alternate})
    ch.queue_declare(queue)
    ch.queue_bind(queue, exchange, "orders.#")
    returned: list[Any] = []
    ch.add_on_return_callback(lambda *args: returned.append(args))
    for _ in range(3):  # each publish is confirmed (basic_publish raises on a nack)
        ch.basic_publish(exchange, "orders.new", b"order 1", keyed("order-1"), mandatory=True)
    ch.basic_publish(exchange, "orders.new", b"order 2", keyed("order-2"), mandatory=True)
    ch.basic_publish(exchange, "orders.new", b"no key", mandatory=True)
    ch.basic_publish(exchange, "orders.new", b"no key", mandatory=True)  # no key: never a duplicate
    conn.process_data_events(time_limit=0.05)
    assert returned == []
    assert count(ch, queue) == 4 and count(ch, caught) == 0
    conn.close()


def test_a_queue_dedups_by_message_id_with_aio_pika(amqp_broker: RunningBroker) -> None:
    queue = fresh("dq")

    async def main() -> list[bytes]:
        connection = await aio_pika.connect(amqp_broker.url)
        async with connection:
            ch = await connection.channel(publisher_confirms=True)
            q = await ch.declare_queue(queue, arguments=DEDUP)
            for body, message_id in ((b"a", "1"), (b"a again", "1"), (b"b", "2")):
                await ch.default_exchange.publish(aio_pika.Message(body, message_id=message_id), queue)
            got = []
            while (message := await q.get(no_ack=True, fail=False)) is not None:
                got.append(message.body)
            return got

    assert asyncio.run(main()) == [b"a", b"b"]


def test_the_header_can_be_named_and_the_cache_is_bounded_and_expires(amqp_broker: RunningBroker) -> None:
    """x-deduplication-header names another header; x-cache-size 2 forgets the oldest key;
    x-cache-ttl (or the message's x-cache-ttl header) lets a key through again once it passed."""
    conn, ch = channel(amqp_broker.url)
    queue = fresh("dq")
    ch.queue_declare(
        queue, arguments={**DEDUP, "x-deduplication-header": "order", "x-cache-size": 2, "x-cache-ttl": 60_000}
    )

    def send(order: str, **headers: Any) -> None:
        ch.basic_publish("", queue, order.encode(), pika.BasicProperties(headers={"order": order, **headers}))

    for order in ("1", "2", "1", "3", "1"):  # "3" evicts "1" (the oldest): the last "1" is new
        send(order)
    assert count(ch, queue) == 4
    send("4", **{"x-cache-ttl": 150})
    remembered = time.monotonic()
    send("4")
    assert count(ch, queue) == 5
    deadline = time.monotonic() + 5
    while count(ch, queue) == 5:  # publish again until the entry has expired
        assert time.monotonic() < deadline
        send("4")
    assert time.monotonic() - remembered >= 0.15
    conn.close()


def test_kombu_publishing_to_a_dedup_exchange(amqp_broker: RunningBroker) -> None:
    url = amqp_broker.url.replace("amqp://", "pyamqp://")
    exchange = kombu.Exchange(fresh("kx"), type="fanout", arguments=DEDUP)
    queue = kombu.Queue(fresh("kq"), exchange)
    with kombu.Connection(url) as conn:
        with conn.Producer() as producer:
            for n in (1, 1, 2):
                producer.publish({"n": n}, exchange=exchange, headers={"x-deduplication-header": n}, declare=[queue])
        with conn.SimpleQueue(queue) as simple:
            assert [simple.get(timeout=5).payload for _ in range(2)] == [{"n": 1}, {"n": 2}]
            with pytest.raises(simple.Empty):
                simple.get(timeout=0.2)


def test_the_deduplication_plugins_exchange_type(amqp_broker: RunningBroker) -> None:
    """The rabbitmq-message-deduplication plugin's exchange type: fanout routing, x-cache-size
    required (a number, or a numeric string), duplicates of x-deduplication-header dropped."""
    conn, ch = channel(amqp_broker.url)
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
        ch.exchange_declare(fresh("px"), "x-message-deduplication")
    assert info.value.reply_code == 406
    assert "'x-cache-size' must be an integer greater than 0" in info.value.reply_text
    ch = conn.channel()
    ch.confirm_delivery()
    exchange, queue = fresh("px"), fresh("pq")
    ch.exchange_declare(exchange, "x-message-deduplication", arguments={"x-cache-size": "10", "x-cache-ttl": 60_000})
    ch.queue_declare(queue)
    ch.queue_bind(queue, exchange, "any-key")
    for key in ("a", "b", "a"):
        ch.basic_publish(exchange, "another-key", key.encode(), keyed(key))
    assert count(ch, queue) == 2
    conn.close()


def test_bad_arguments_are_refused(amqp_broker: RunningBroker) -> None:
    conn, ch = channel(amqp_broker.url)
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
        ch.queue_declare(fresh("q"), arguments={**DEDUP, "x-cache-size": "big"})
    assert info.value.reply_code == 406 and "x-cache-size" in info.value.reply_text
    ch = conn.channel()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
        ch.exchange_declare(fresh("x"), "direct", arguments={"x-message-deduplication": "yes"})
    assert info.value.reply_code == 406
    conn.close()


def test_a_durable_cache_survives_a_restart(amqp_broker_factory: Callable[..., EmbeddedBroker], tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    broker = amqp_broker_factory(data_dir=data, management=False)
    assert broker.running is not None
    conn, ch = channel(broker.running.url)
    ch.exchange_declare("dur-dx", "fanout", durable=True, arguments=DEDUP)
    disk = {"x-cache-size": 5, "x-cache-persistence": "disk"}
    ch.exchange_declare("dur-px", "x-message-deduplication", durable=True, arguments=disk)
    ch.queue_declare("dur-q", durable=True, arguments=DEDUP)
    ch.queue_declare("dur-bound", durable=True)
    ch.queue_bind("dur-bound", "dur-dx", "")
    ch.queue_bind("dur-bound", "dur-px", "")
    ch.basic_publish("dur-dx", "", b"x", keyed("a"))
    ch.basic_publish("dur-px", "", b"p", keyed("p"))
    ch.basic_publish("", "dur-q", b"y", keyed("b"))
    conn.close()
    broker.stop()
    again = amqp_broker_factory(data_dir=data, management=False)
    assert again.running is not None
    conn, ch = channel(again.running.url)
    ch.basic_publish("dur-dx", "", b"x", keyed("a"))
    ch.basic_publish("dur-px", "", b"p", keyed("p"))
    ch.basic_publish("", "dur-q", b"y", keyed("b"))
    ch.basic_publish("", "dur-q", b"z", keyed("c"))
    assert count(ch, "dur-bound") == 0  # the transient messages died with the node; their keys did not
    assert count(ch, "dur-q") == 1
    conn.close()


def test_a_confirmed_key_survives_kill_9(fresh_server: ServerProcess) -> None:
    server = fresh_server.start()
    conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", server.port, heartbeat=0))
    ch = conn.channel()
    ch.confirm_delivery()
    ch.queue_declare("crash-q", durable=True, arguments=DEDUP)
    ch.basic_publish("", "crash-q", b"once", pika.BasicProperties(delivery_mode=2, message_id="order-9"))
    server.kill()
    server.start()
    conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", server.port, heartbeat=0))
    ch = conn.channel()
    ch.confirm_delivery()
    ch.basic_publish("", "crash-q", b"retry", pika.BasicProperties(delivery_mode=2, message_id="order-9"))
    assert count(ch, "crash-q") == 1
    assert ch.basic_get("crash-q", auto_ack=True)[2] == b"once"
    conn.close()
