"""Streams across restarts and crashes: every confirmed message, its offset and its
timestamp come back, and a consumer from ``first`` reads it all again.  Each test runs its
own server on its own data directory."""

from __future__ import annotations

import datetime
import time
from typing import Any

import pika

from tests.interop.ext_support import wait_until
from tests.server import ServerProcess

STREAM = {"x-queue-type": "stream"}


def connect(server: ServerProcess) -> pika.BlockingConnection:
    return pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", server.port, heartbeat=0))


def publish(server: ServerProcess, queue: str, bodies: list[bytes]) -> None:
    with connect(server) as conn:
        ch = conn.channel()
        ch.confirm_delivery()
        for body in bodies:
            ch.basic_publish("", queue, body)


def read(server: ServerProcess, queue: str, offset: Any, count: int) -> list[tuple[int, bytes]]:
    """``count`` deliveries from ``offset`` on, then a check that no more follow."""
    with connect(server) as conn:
        ch = conn.channel()
        ch.basic_qos(prefetch_count=500)
        got: list[tuple[int, bytes]] = []

        def on(c: Any, method: Any, props: Any, body: bytes) -> None:
            got.append((props.headers["x-stream-offset"], body))
            c.basic_ack(method.delivery_tag)

        ch.basic_consume(queue, on, arguments={"x-stream-offset": offset})
        wait_until(lambda: len(got) >= count, 20.0, f"{count} deliveries", conn=conn)
        conn.channel().close()  # a round trip: what was due has arrived
        conn.process_data_events(0.05)
        return got


def numbered(n: int, start: int = 0) -> list[bytes]:
    return [b"message %06d" % i + b"." * 50 for i in range(start, start + n)]


def test_a_stream_survives_a_restart_with_its_offsets_and_timestamps(fresh_server: ServerProcess) -> None:
    server = fresh_server.start()
    with connect(server) as conn:
        conn.channel().queue_declare(
            "events", durable=True, arguments={**STREAM, "x-stream-max-segment-size-bytes": 20_000}
        )
    publish(server, "events", numbered(1500))
    time.sleep(1.1)  # AMQP timestamps are whole seconds: the second batch needs a later one
    since = int(time.time())
    publish(server, "events", numbered(500, 1500))
    assert server.stop() == 0
    assert len(list((fresh_server.data_dir / "streams").glob("*/*.seg"))) > 5  # several segments
    server.start()
    assert read(server, "events", "first", 2000) == list(enumerate(numbered(2000)))
    when = datetime.datetime.fromtimestamp(since, datetime.UTC)
    assert read(server, "events", when, 500) == list(enumerate(numbered(500, 1500), 1500))
    publish(server, "events", [b"after the restart"])
    assert read(server, "events", "last", 1) == [(2000, b"after the restart")]
    with connect(server) as conn:
        ok = conn.channel().queue_declare(
            "events", durable=True, arguments={**STREAM, "x-stream-max-segment-size-bytes": 20_000}
        )
        assert ok.method.message_count == 2001


def test_confirmed_messages_survive_a_crash(fresh_server: ServerProcess) -> None:
    server = fresh_server.start()
    with connect(server) as conn:
        conn.channel().queue_declare("log", durable=True, arguments=STREAM)
    publish(server, "log", numbered(3000))  # each confirmed: on disk
    server.kill()
    server.start()
    got = read(server, "log", "first", 3000)
    assert got == list(enumerate(numbered(3000)))


def test_messages_the_broker_took_survive_a_crash_of_the_process_without_confirms(
    fresh_server: ServerProcess,
) -> None:
    """Stream appends nobody waits for are fsynced a moment later, but they reach the OS in
    the loop turn that took them: killing the process loses none of them."""
    server = fresh_server.start()
    with connect(server) as conn:
        ch = conn.channel()
        ch.queue_declare("unconfirmed", durable=True, arguments=STREAM)
        for body in numbered(2000):
            ch.basic_publish("", "unconfirmed", body)
        # A round trip on the same channel: every publish before it has been taken.
        assert ch.queue_declare("unconfirmed", passive=True).method.message_count == 2000
    server.kill()
    server.start()
    assert read(server, "unconfirmed", "first", 2000) == list(enumerate(numbered(2000)))


def test_retention_settings_survive_a_restart(fresh_server: ServerProcess) -> None:
    server = fresh_server.start()
    arguments = {**STREAM, "x-max-length-bytes": 3000, "x-stream-max-segment-size-bytes": 1000}
    with connect(server) as conn:
        conn.channel().queue_declare("capped", durable=True, arguments=arguments)
    assert server.stop() == 0
    server.start()
    publish(server, "capped", numbered(200))
    got = read(server, "capped", "first", 1)
    assert 10 < len(got) < 100 and got[-1] == (199, numbered(1, 199)[0])


def test_a_deleted_stream_leaves_nothing_on_disk(fresh_server: ServerProcess) -> None:
    server = fresh_server.start()
    with connect(server) as conn:
        ch = conn.channel()
        ch.queue_declare("gone", durable=True, arguments=STREAM)
    publish(server, "gone", numbered(10))
    streams = fresh_server.data_dir / "streams"
    assert list(streams.glob("*/*.seg"))
    with connect(server) as conn:
        conn.channel().queue_delete("gone")
    assert not list(streams.iterdir())
    assert server.stop() == 0
    server.start()
    with connect(server) as conn:
        ch = conn.channel()
        ch.queue_declare("gone", durable=True, arguments=STREAM)  # a new, empty stream
        assert ch.queue_declare("gone", passive=True).method.message_count == 0
