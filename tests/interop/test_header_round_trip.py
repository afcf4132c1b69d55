"""Any headers table that pika, aio-pika (pamqp), py-amqp and amqpstorm can all encode is taken
by WarrenMQ and comes back equal to each of the four.

Hypothesis draws tables of what every one of these clients encodes and decodes back to the same
Python value: ints of every width to 64 bits (each client picks its own type letters: pamqp
b/s/u/I/i/l, pika I/l, py-amqp I/L), text, booleans, None, decimals, and tables and arrays of
those.  (Floats, bytes and datetimes are left out: pika cannot encode a float, pamqp writes one
as 32 bits, py-amqp writes bytes as text, and the clients disagree on time zones.)  Each drawn
table is published once by each client, with confirms, to a fanout exchange whose four queues
each client then empties.
"""

from __future__ import annotations

import asyncio
import decimal
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import aio_pika
import amqp
import amqpstorm
import pika
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.server import ServerProcess

CLIENTS = ("pika", "aio-pika", "py-amqp", "amqpstorm")

_SCALARS = st.one_of(
    st.integers(-(2**63), 2**63 - 1),
    st.sampled_from([-(2**63), -(2**31) - 1, -(2**31), -129, 127, 255, 65535, 2**31, 2**32 - 1, 2**40, 2**63 - 1]),
    st.text(max_size=16),
    st.booleans(),
    st.none(),
    st.builds(lambda n, scale: decimal.Decimal(n).scaleb(-scale), st.integers(-(2**31), 2**31 - 1), st.integers(0, 9)),
)
_KEYS = st.text(min_size=1, max_size=12)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_KEYS, inner, max_size=4),
    max_leaves=12,
)
TABLES = st.dictionaries(_KEYS, _VALUES, min_size=1, max_size=6)

Publish = Callable[[str, dict[str, Any], bytes], None]
Get = Callable[[str], tuple[bytes, Any]]


async def _aio_open(port: int) -> tuple[aio_pika.abc.AbstractConnection, aio_pika.abc.AbstractChannel]:
    connection = await aio_pika.connect(f"amqp://guest:guest@127.0.0.1:{port}/")
    return connection, await connection.channel()  # with publisher confirms


class Clients:
    """One connection of each client; ``publish[client]`` and ``get[client]`` in sync style."""

    def __init__(self, port: int) -> None:
        self.loop = asyncio.new_event_loop()
        self.pika = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", port))
        self.pika_channel = self.pika.channel()
        self.pika_channel.confirm_delivery()
        self.py_amqp = amqp.Connection(f"127.0.0.1:{port}", confirm_publish=True)
        self.py_amqp.connect()
        self.py_amqp_channel = self.py_amqp.channel()
        self.aio, self.aio_channel = self.loop.run_until_complete(_aio_open(port))
        self.storm = amqpstorm.Connection("127.0.0.1", "guest", "guest", port=port)
        self.storm_channel = self.storm.channel()
        self.storm_channel.confirm_deliveries()
        self.publish: dict[str, Publish] = {
            "pika": self._pika_publish,
            "aio-pika": self._aio_publish,
            "py-amqp": self._py_amqp_publish,
            "amqpstorm": self._storm_publish,
        }
        self.get: dict[str, Get] = {
            "pika": self._pika_get,
            "aio-pika": self._aio_get,
            "py-amqp": self._py_amqp_get,
            "amqpstorm": self._storm_get,
        }

    def close(self) -> None:
        self.pika.close()
        self.py_amqp.close()
        self.loop.run_until_complete(self.aio.close())
        self.loop.close()
        self.storm.close()

    def _pika_publish(self, exchange: str, headers: dict[str, Any], body: bytes) -> None:
        self.pika_channel.basic_publish(exchange, "", body, pika.BasicProperties(headers=headers))

    def _pika_get(self, queue: str) -> tuple[bytes, Any]:
        method, properties, body = self.pika_channel.basic_get(queue, auto_ack=True)
        assert method is not None, f"pika: nothing in {queue}"
        return body, properties.headers

    def _aio_publish(self, exchange: str, headers: dict[str, Any], body: bytes) -> None:
        async def publish() -> None:
            target = await self.aio_channel.get_exchange(exchange, ensure=False)
            await target.publish(aio_pika.Message(body, headers=headers), routing_key="")

        self.loop.run_until_complete(publish())

    def _aio_get(self, queue: str) -> tuple[bytes, Any]:
        async def get() -> tuple[bytes, Any]:
            source = await self.aio_channel.get_queue(queue, ensure=False)
            message = await source.get(no_ack=True, fail=True)
            return message.body, message.headers

        return self.loop.run_until_complete(get())

    def _py_amqp_publish(self, exchange: str, headers: dict[str, Any], body: bytes) -> None:
        self.py_amqp_channel.basic_publish(amqp.Message(body, application_headers=headers), exchange=exchange)

    def _py_amqp_get(self, queue: str) -> tuple[bytes, Any]:
        message = self.py_amqp_channel.basic_get(queue, no_ack=True)
        assert message is not None, f"py-amqp: nothing in {queue}"
        body = message.body  # text when the publisher named a content encoding (amqpstorm does)
        return body.encode() if isinstance(body, str) else body, message.headers

    def _storm_publish(self, exchange: str, headers: dict[str, Any], body: bytes) -> None:
        message = amqpstorm.Message.create(self.storm_channel, body, properties={"headers": headers})
        assert message.publish("", exchange=exchange) is True

    def _storm_get(self, queue: str) -> tuple[bytes, Any]:
        message = self.storm_channel.basic.get(queue, no_ack=True)
        assert message is not None, f"amqpstorm: nothing in {queue}"
        body = message.body
        return body.encode() if isinstance(body, str) else body, message.properties["headers"]


@pytest.fixture(scope="module")
def clients(server: ServerProcess) -> Iterator[Clients]:
    opened = Clients(server.port)
    yield opened
    opened.close()


@pytest.fixture(scope="module")
def fanout(server: ServerProcess) -> Iterator[tuple[str, dict[str, str]]]:
    """A fanout exchange and a queue on it for each client: (exchange, {client: queue})."""
    exchange = f"rt-{uuid.uuid4().hex[:8]}"
    queues = {client: f"{exchange}-{client}" for client in CLIENTS}
    with pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", server.port)) as conn:
        channel = conn.channel()
        channel.exchange_declare(exchange, "fanout")
        for queue in queues.values():
            channel.queue_declare(queue)
            channel.queue_bind(queue, exchange)
        yield exchange, queues
        for queue in queues.values():
            channel.queue_delete(queue)
        channel.exchange_delete(exchange)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(headers=TABLES)
def test_every_client_gets_back_what_any_client_published(
    clients: Clients, fanout: tuple[str, dict[str, str]], headers: dict[str, Any]
) -> None:
    exchange, queues = fanout
    for publisher in CLIENTS:
        clients.publish[publisher](exchange, headers, publisher.encode())
    for consumer in CLIENTS:
        got = dict(clients.get[consumer](queues[consumer]) for _ in CLIENTS)
        for publisher in CLIENTS:
            assert got[publisher.encode()] == headers, f"published by {publisher}, read by {consumer}"
