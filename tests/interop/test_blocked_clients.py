"""Resource alarms as client libraries see them: pika's, aio-pika's and py-amqp's notifications,
a blocked connection that stays connected past its heartbeat timeout, and the client-side
timeouts that close a blocked connection.

Each scenario was run against RabbitMQ 3.10.8 (alarm set with ``rabbitmqctl
set_vm_memory_high_watermark absolute 60MB``) with the same results: pika's callbacks get
"low on memory" and the unblocking; pika's ``blocked_connection_timeout`` raises
ConnectionBlockedTimeout and RabbitMQ drops the connection within about a heartbeat interval;
aio-pika (10.2.1: no blocked callbacks; aiormq logs "was blocked by: 'low on memory'" and
"was unblocked") times out a publish with ``timeout=``, and its ``close()`` of a blocked
connection returns after aiormq's own 2 s wait for close-ok, the server dropping it soon after.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import aio_pika
import amqp
import pika
import pika.exceptions
import pytest

from tests.interop.alarm_support import Alarms, alarm_server, eventually
from tests.server import ServerProcess


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    proc = alarm_server(tmp_path / "data")
    yield proc
    proc.kill()


@pytest.fixture
def alarms(server: ServerProcess) -> Alarms:
    return Alarms(server)


def test_pika_callbacks_and_a_long_block(server: ServerProcess, alarms: Alarms, name: str) -> None:
    """Heartbeat 1 s, blocked for 4 s: still connected (pika checks the server's heartbeats
    too), told "low on memory" then unblocked, and the message that blocked it is delivered."""
    conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", server.port, heartbeat=1))
    events: list[str] = []
    conn.add_on_connection_blocked_callback(lambda _c, frame: events.append(frame.method.reason))
    conn.add_on_connection_unblocked_callback(lambda *_: events.append("unblocked"))
    channel = conn.channel()
    channel.queue_declare(name, auto_delete=True)
    alarms.memory(True)
    channel.basic_publish("", name, b"held")  # no confirms: it returns once written
    deadline = time.monotonic() + 10
    while not events and time.monotonic() < deadline:
        conn.process_data_events(time_limit=0.05)
    assert events == ["low on memory"]
    blocked_at = time.monotonic()
    while time.monotonic() - blocked_at < 4:
        conn.process_data_events(time_limit=0.1)
    assert conn.is_open
    assert "missed heartbeats" not in server.log
    alarms.memory(False)
    while len(events) < 2 and time.monotonic() < blocked_at + 15:
        conn.process_data_events(time_limit=0.05)
    assert events == ["low on memory", "unblocked"]
    method, _props, body = channel.basic_get(name, auto_ack=True)
    assert method is not None and body == b"held"
    conn.close()


def test_pika_blocked_connection_timeout_still_closes(server: ServerProcess, alarms: Alarms, name: str) -> None:
    """The server keeps a blocked connection alive; pika's own timeout still gives up on it,
    and the server lets go of it once its socket is gone."""
    alarms.memory(True)
    params = pika.ConnectionParameters("127.0.0.1", server.port, heartbeat=1, blocked_connection_timeout=0.5)
    conn = pika.BlockingConnection(params)
    client_port = conn._impl._transport._sock.getsockname()[1]
    conn.channel().basic_publish("", name, b"x")
    with pytest.raises(pika.exceptions.ConnectionBlockedTimeout):
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            conn.process_data_events(time_limit=0.05)
    assert eventually(lambda: client_port not in alarms.connections(), timeout=5)


def test_aio_pika_blocked_publish_waits_then_is_confirmed(
    server: ServerProcess, alarms: Alarms, name: str, caplog: pytest.LogCaptureFixture
) -> None:
    """aio-pika has no blocked callbacks: aiormq logs the notifications (with the reason).  A
    confirmed publish made under the alarm waits, the connection outliving its heartbeat
    timeout, and is confirmed once the alarm clears."""
    caplog.set_level(logging.WARNING, logger="aiormq.connection")

    def logged(text: str) -> bool:
        return any(text in record.getMessage() for record in caplog.records)

    async def scenario() -> bytes:
        conn = await aio_pika.connect(f"amqp://guest:guest@127.0.0.1:{server.port}/", heartbeat=1)
        channel = await conn.channel()  # publisher confirms on
        queue = await channel.declare_queue(name, auto_delete=True)
        await asyncio.to_thread(alarms.memory, True)
        publish = asyncio.ensure_future(channel.default_exchange.publish(aio_pika.Message(b"held"), name))
        deadline = time.monotonic() + 10
        while not logged("was blocked by: 'low on memory'") and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        assert logged("was blocked by: 'low on memory'")
        await asyncio.sleep(4)  # twice its heartbeat timeout
        assert not publish.done() and not conn.is_closed
        await asyncio.to_thread(alarms.memory, False)
        await asyncio.wait_for(publish, 10)  # confirmed
        assert logged("was unblocked")
        message = await queue.get(no_ack=True, timeout=5)
        await conn.close()
        return message.body

    assert asyncio.run(asyncio.wait_for(scenario(), 30)) == b"held"
    assert "missed heartbeats" not in server.log


def test_aio_pika_timeouts_and_close_of_a_blocked_connection(server: ServerProcess, alarms: Alarms, name: str) -> None:
    """A publish with a timeout fails with TimeoutError while blocked; close() from the client
    side still returns, and the server lets the connection go."""

    async def scenario() -> None:
        conn = await aio_pika.connect(f"amqp://guest:guest@127.0.0.1:{server.port}/", heartbeat=1)
        channel = await conn.channel()
        await channel.declare_queue(name, auto_delete=True)
        await asyncio.to_thread(alarms.memory, True)
        with pytest.raises(asyncio.TimeoutError):
            await channel.default_exchange.publish(aio_pika.Message(b"x"), name, timeout=1)
        ports = await asyncio.to_thread(lambda: set(alarms.connections()))
        assert len(ports) == 1
        started = time.monotonic()
        await asyncio.wait_for(conn.close(), 10)
        assert time.monotonic() - started < 5
        assert await asyncio.to_thread(eventually, lambda: not alarms.connections(), 5)

    asyncio.run(asyncio.wait_for(scenario(), 30))


def test_py_amqp_callbacks(server: ServerProcess, alarms: Alarms, name: str) -> None:
    """py-amqp announces the capability; its callbacks are called (without the reason, which
    py-amqp drops)."""
    blocked: list[str] = []
    unblocked: list[bool] = []
    connection = amqp.Connection(
        f"127.0.0.1:{server.port}", on_blocked=blocked.append, on_unblocked=lambda: unblocked.append(True)
    )
    connection.connect()

    def drain_until(condition: list[object]) -> None:
        deadline = time.monotonic() + 5
        while not condition:
            assert time.monotonic() < deadline
            try:
                connection.drain_events(timeout=0.1)
            except TimeoutError:
                pass

    try:
        channel = connection.channel()
        channel.queue_declare(name, auto_delete=True)
        alarms.memory(True)
        channel.basic_publish(amqp.Message("x"), routing_key=name)
        drain_until(blocked)  # type: ignore[arg-type]
        assert blocked == ["connection blocked, see broker logs"]
        alarms.memory(False)
        drain_until(unblocked)  # type: ignore[arg-type]
    finally:
        connection.collect()
