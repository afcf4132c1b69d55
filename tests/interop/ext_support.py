"""What the tests of RabbitMQ's extensions share (TTL, dead-lettering, length limits,
priorities, consumers, policies): a scratch area that deletes what a test declared, and
waiting by polling with a deadline, never by sleeping and hoping.

The tests use only public client APIs (pika), so the same files run unchanged against
RabbitMQ itself: point the ``port`` (and ``server.management_port``) fixtures at it.
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Callable
from typing import Any, TypeVar

import pika
import pika.exceptions

T = TypeVar("T")


def connect(port: int, **params: Any) -> pika.BlockingConnection:
    return pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", port, heartbeat=0, **params))


def wait_until(condition: Callable[[], T], timeout: float = 5.0, what: str = "condition", conn: Any = None) -> T:
    """Poll ``condition()`` until it is truthy and return its value; fail after ``timeout``.

    With ``conn`` (a BlockingConnection) the connection keeps serving its consumers and
    heartbeats between polls.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out after {timeout}s waiting for {what}"
        if conn is not None:
            conn.process_data_events(0.01)
        else:
            time.sleep(0.01)


class Scratch:
    """A connection with a confirming channel, and the queues and exchanges a test declares
    through it, deleted afterwards (from a fresh connection: the test may break this one)."""

    def __init__(self, port: int, vhost: str = "/") -> None:
        self.port = port
        self.vhost = vhost
        self.conn = connect(port, virtual_host=vhost)
        self.ch = self.conn.channel()
        self.ch.confirm_delivery()
        self.queues: list[str] = []
        self.exchanges: list[str] = []

    def __enter__(self) -> Scratch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self.conn.is_open:
            self.conn.close()
        if not self.queues and not self.exchanges:
            return
        with connect(self.port, virtual_host=self.vhost) as conn:
            ch = conn.channel()
            for queue in self.queues:
                ch.queue_delete(queue)
            for exchange in self.exchanges:
                ch.exchange_delete(exchange)

    def channel(self) -> Any:
        return self.conn.channel()

    def queue(self, name: str, durable: bool = False, **arguments: Any) -> str:
        """Declare a queue with these x-arguments (``x_message_ttl=100`` is ``x-message-ttl``)."""
        args = {key.replace("_", "-"): value for key, value in arguments.items()}
        self.queues.append(name)
        self.ch.queue_declare(name, durable=durable, arguments=args or None)
        return name

    def quorum(self, name: str, **arguments: Any) -> str:
        return self.queue(name, durable=True, x_queue_type="quorum", **arguments)

    def exchange(self, name: str, kind: str = "direct", **arguments: Any) -> str:
        self.exchanges.append(name)
        self.ch.exchange_declare(name, kind, arguments=arguments or None)
        return name

    def bind(self, queue: str, exchange: str, key: str = "") -> None:
        self.ch.queue_bind(queue, exchange, key)

    def publish(self, exchange: str, key: str, body: bytes, mandatory: bool = False, **properties: Any) -> None:
        """Publish and wait for the confirm (so the message is in its queues)."""
        self.ch.basic_publish(exchange, key, body, pika.BasicProperties(**properties), mandatory=mandatory)

    def send(self, queue: str, *bodies: bytes, **properties: Any) -> None:
        """Publish each body to ``queue`` through the default exchange."""
        for body in bodies:
            self.publish("", queue, body, **properties)

    def ready(self, queue: str) -> int:
        """Ready messages, as a passive queue.declare reports them."""
        return int(self.ch.queue_declare(queue, passive=True).method.message_count)

    def exists(self, queue: str) -> bool:
        """Whether the queue exists, asked with a queue.bind: a passive queue.declare would
        count as a use of the queue and restart its x-expires countdown (RabbitMQ too)."""
        channel = self.conn.channel()
        try:
            channel.queue_bind(queue, "amq.direct", "scratch-exists-probe")
        except pika.exceptions.ChannelClosedByBroker as exc:
            assert exc.reply_code == 404, exc
            return False
        channel.close()
        return True

    def get(self, queue: str, ack: bool = True) -> tuple[Any, Any, bytes] | None:
        method, properties, body = self.ch.basic_get(queue, auto_ack=ack)
        return None if method is None else (method, properties, body)

    def drain(self, queue: str) -> list[tuple[Any, Any, bytes]]:
        """Every ready message (auto-ack), in delivery order."""
        out = []
        while (got := self.get(queue)) is not None:
            out.append(got)
        return out

    def bodies(self, queue: str) -> list[bytes]:
        return [body for _, _, body in self.drain(queue)]

    def wait_for(self, queue: str, count: int = 1, timeout: float = 5.0) -> list[tuple[Any, Any, bytes]]:
        """Take ``count`` messages from ``queue`` (auto-ack) as they arrive."""
        taken: list[tuple[Any, Any, bytes]] = []

        def more() -> bool:
            while len(taken) < count and (got := self.get(queue)) is not None:
                taken.append(got)
            return len(taken) >= count

        wait_until(more, timeout, f"{count} message(s) in {queue}")
        return taken


def is_recent(value: Any, slack: float = 120.0) -> bool:
    """An AMQP timestamp (pika: an aware datetime) within ``slack`` seconds of now."""
    if not isinstance(value, datetime.datetime):
        return False
    return abs(value.timestamp() - time.time()) < slack
