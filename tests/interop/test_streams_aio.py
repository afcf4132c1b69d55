"""Stream queues with aio-pika: offsets of every kind, consumers at their own pace,
retention, and a restart, as RabbitMQ 3.10.8 has them (the session-server tests pass against
it too)."""

from __future__ import annotations

import asyncio
import datetime
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aio_pika
import aio_pika.abc
import pytest

from tests.server import ServerProcess

STREAM = {"x-queue-type": "stream"}


def run(scenario: Callable[[], Awaitable[Any]], timeout: float = 30.0) -> Any:
    return asyncio.run(asyncio.wait_for(scenario(), timeout))


class Reader:
    """A stream consumer on its own channel: (x-stream-offset, body) of each delivery."""

    def __init__(self) -> None:
        self.got: list[tuple[int, bytes]] = []
        self.arrived = asyncio.Event()

    @classmethod
    async def start(
        cls, connection: aio_pika.abc.AbstractConnection, queue: str, offset: Any, prefetch: int = 100
    ) -> Reader:
        reader = cls()
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=prefetch)
        declared = await channel.get_queue(queue, ensure=False)
        await declared.consume(reader._on, arguments={"x-stream-offset": offset})
        return reader

    async def _on(self, message: aio_pika.abc.AbstractIncomingMessage) -> None:
        assert message.headers is not None
        self.got.append((int(message.headers["x-stream-offset"]), message.body))  # type: ignore[call-overload]
        await message.ack()
        self.arrived.set()

    async def wait(self, count: int, timeout: float = 5.0) -> list[tuple[int, bytes]]:
        return await self.until(lambda got: len(got) >= count, timeout)

    async def until(
        self, condition: Callable[[list[tuple[int, bytes]]], bool], timeout: float = 5.0
    ) -> list[tuple[int, bytes]]:
        async def reached() -> None:
            while not (self.got and condition(self.got)):
                self.arrived.clear()
                await self.arrived.wait()

        await asyncio.wait_for(reached(), timeout)
        return self.got


async def publish(connection: aio_pika.abc.AbstractConnection, queue: str, bodies: list[bytes]) -> None:
    channel = await connection.channel(publisher_confirms=True)
    for body in bodies:
        await channel.default_exchange.publish(aio_pika.Message(body), routing_key=queue)  # confirmed
    await channel.close()


async def declare(connection: aio_pika.abc.AbstractConnection, queue: str, **arguments: Any) -> None:
    channel = await connection.channel()
    await channel.declare_queue(queue, durable=True, arguments={**STREAM, **arguments})
    await channel.close()


async def delete(connection: aio_pika.abc.AbstractConnection, queue: str) -> None:
    channel = await connection.channel()
    await channel.queue_delete(queue)
    await channel.close()


def numbered(n: int, start: int = 0) -> list[bytes]:
    return [b"m%d" % i for i in range(start, start + n)]


@pytest.mark.parametrize(
    ("offset", "expected"),
    [("first", list(range(5))), ("last", [4]), ("next", []), (3, [3, 4]), ("1h", list(range(5)))],
)
def test_offsets(port: int, name: str, offset: Any, expected: list[int]) -> None:
    async def scenario() -> list[tuple[int, bytes]]:
        connection = await aio_pika.connect(f"amqp://guest:guest@127.0.0.1:{port}/")
        async with connection:
            await declare(connection, name)
            try:
                await publish(connection, name, numbered(5))
                reader = await Reader.start(connection, name, offset)
                await publish(connection, name, [b"m5"])
                return await reader.wait(len(expected) + 1)
            finally:
                await delete(connection, name)

    assert run(scenario) == [(i, b"m%d" % i) for i in [*expected, 5]]


def test_a_timestamp_offset(port: int, name: str) -> None:
    async def scenario() -> list[tuple[int, bytes]]:
        connection = await aio_pika.connect(f"amqp://guest:guest@127.0.0.1:{port}/")
        async with connection:
            await declare(connection, name)
            try:
                await publish(connection, name, numbered(3))
                await asyncio.sleep(1.1)  # AMQP timestamps are whole seconds
                since = int(time.time())
                await publish(connection, name, numbered(2, 3))
                reader = await Reader.start(connection, name, datetime.datetime.fromtimestamp(since, datetime.UTC))
                return await reader.wait(2)
            finally:
                await delete(connection, name)

    assert run(scenario) == [(3, b"m3"), (4, b"m4")]


def test_consumers_at_their_own_pace(port: int, name: str) -> None:
    """A consumer with a prefetch of 1 and one of 50 both read everything, in order."""

    async def scenario() -> tuple[list[tuple[int, bytes]], list[tuple[int, bytes]]]:
        connection = await aio_pika.connect(f"amqp://guest:guest@127.0.0.1:{port}/")
        async with connection:
            await declare(connection, name)
            try:
                slow = await Reader.start(connection, name, "first", prefetch=1)
                fast = await Reader.start(connection, name, "first", prefetch=50)
                await publish(connection, name, numbered(200))
                return await slow.wait(200), await fast.wait(200)
            finally:
                await delete(connection, name)

    slow, fast = run(scenario)
    assert slow == fast == list(enumerate(numbered(200)))


def test_retention_by_size(port: int, name: str) -> None:
    async def scenario() -> list[tuple[int, bytes]]:
        connection = await aio_pika.connect(f"amqp://guest:guest@127.0.0.1:{port}/")
        async with connection:
            await declare(connection, name, **{"x-max-length-bytes": 2000, "x-stream-max-segment-size-bytes": 500})
            try:
                await publish(connection, name, [b"%03d" % i + b"." * 97 for i in range(100)])
                reader = await Reader.start(connection, name, "first")
                await publish(connection, name, [b"last one"])
                await reader.until(lambda got: got[-1][1] == b"last one")
                return reader.got
            finally:
                await delete(connection, name)

    got = run(scenario)
    assert 3 <= len(got) <= 26
    assert got[-2][1] == b"099" + b"." * 97 and got[-1][1] == b"last one"
    assert got[0][0] > 0


def test_a_restart_keeps_the_stream(fresh_server: ServerProcess) -> None:
    server = fresh_server.start()
    url = f"amqp://guest:guest@127.0.0.1:{server.port}/"

    async def before() -> None:
        connection = await aio_pika.connect(url)
        async with connection:
            await declare(connection, "aio-stream", **{"x-stream-max-segment-size-bytes": 2000})
            await publish(connection, "aio-stream", numbered(300))

    async def after() -> list[tuple[int, bytes]]:
        connection = await aio_pika.connect(url)
        async with connection:
            reader = await Reader.start(connection, "aio-stream", "first", prefetch=20)
            return await reader.wait(300)

    run(before)
    assert server.stop() == 0
    server.start()
    url = f"amqp://guest:guest@127.0.0.1:{server.port}/"
    assert run(after) == list(enumerate(numbered(300)))
