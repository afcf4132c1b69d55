"""Load drivers for the fault tests: confirming publishers and acking consumers that fail over.

    history = History()
    with Load(cluster.amqp_urls, queue, history, names=[n.name for n in cluster.nodes]) as load:
        ...                                   # kill or pause nodes; history.mark("kill node2")
        load.stop_publishers()
        assert load.wait_settled(30)          # every confirmed message acked
    history.check().assert_ok()

Each publisher and consumer is a thread with its own pika BlockingConnection.  Publishers
send one persistent message at a time in confirm mode, with ``mandatory`` so that an
unroutable message comes back rather than vanishing, and record every outcome; consumers use
manual acks with a prefetch and record every delivery and ack.  Whatever breaks (connection
refused, reset, closed by the broker, a channel error, a node that stops answering) the thread
records it and moves on to the next node; new messages get new ids, nothing is republished.

A frozen node (SIGSTOP) keeps its sockets open and pika notices only after its heartbeat
check (heartbeat + 5 s, twice), so a watchdog gives up a connection that received no byte for
``silence`` seconds although the broker sends heartbeats every half second - as a client
with a timeout would.
"""

from __future__ import annotations

import secrets
import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import pika
import pika.exceptions
from pika.adapters.blocking_connection import BlockingChannel
from pika.adapters.utils.connection_workflow import AMQPConnectorException

from tests.cluster.history import History

QUORUM = {"x-queue-type": "quorum"}
# What a broken connection or channel raises; anything else is a bug in the driver or test.
EXPECTED = (pika.exceptions.AMQPError, AMQPConnectorException, OSError, EOFError)


@dataclass(frozen=True)
class LoadOptions:
    publishers: int = 2
    consumers: int = 2
    prefetch: int = 50
    persistent: bool = True
    body_size: int = 0  # pad bodies to this many bytes (the id is the start of the body)
    rate: float | None = None  # per publisher, messages per second; None = as fast as confirms come
    heartbeat: int = 1  # asked of the broker: it then sends something every half second
    silence: float = 3.0  # no byte from a node for this long: the connection is given up
    connect_timeout: float = 3.0  # TCP connect, and the whole AMQP handshake
    retry_delay: float = 0.2  # after a failure, before trying the next node
    publisher_nodes: Sequence[int] = ()  # node index each publisher starts at (default: spread)
    consumer_nodes: Sequence[int] = ()  # likewise for consumers (default: spread, shifted by one)


@dataclass(frozen=True)
class Endpoint:
    name: str
    url: str
    params: pika.ConnectionParameters


def endpoints(urls: Sequence[str], names: Sequence[str] | None, options: LoadOptions) -> list[Endpoint]:
    result = []
    for i, url in enumerate(urls):
        params = pika.URLParameters(url)
        params.heartbeat = options.heartbeat
        params.socket_timeout = options.connect_timeout
        params.stack_timeout = options.connect_timeout
        params.blocked_connection_timeout = 30
        params.connection_attempts = 1
        params.retry_delay = 0
        name = names[i] if names else f"{params.host}:{params.port}"
        result.append(Endpoint(name, url, params))
    return result


class Watchdog:
    """Gives up connections that have received nothing for ``silence`` seconds.

    pika has no public way to abort a connection from another thread; shutting its socket
    down makes the owning thread's pika call fail with StreamLostError, as a reset would.
    """

    def __init__(self, silence: float, stop: threading.Event) -> None:
        self.silence = silence
        self.stop = stop
        self._lock = threading.Lock()
        self._watched: dict[int, tuple[pika.BlockingConnection, int, float]] = {}
        self.aborted = 0
        self._thread = threading.Thread(target=self._run, name="load-watchdog", daemon=True)
        self._thread.start()

    def watch(self, conn: pika.BlockingConnection) -> None:
        with self._lock:
            self._watched[id(conn)] = (conn, _bytes_received(conn), time.monotonic())

    def forget(self, conn: pika.BlockingConnection) -> None:
        with self._lock:
            self._watched.pop(id(conn), None)

    def _run(self) -> None:
        # A watchdog timer: a look four times per silence period.
        while not self.stop.wait(self.silence / 4):
            now = time.monotonic()
            with self._lock:
                for key, (conn, seen, since) in list(self._watched.items()):
                    received = _bytes_received(conn)
                    if received != seen:
                        self._watched[key] = (conn, received, now)
                    elif now - since > self.silence:
                        del self._watched[key]
                        self.aborted += 1
                        _abort(conn)

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)


def _bytes_received(conn: pika.BlockingConnection) -> int:
    return int(getattr(conn._impl, "bytes_received", 0))


def _abort(conn: pika.BlockingConnection) -> None:
    # pika 1.x keeps the socket at _impl._transport._sock; a closed socket object has fd -1,
    # so this can never hit a reused descriptor.
    sock = getattr(getattr(conn._impl, "_transport", None), "_sock", None)
    if isinstance(sock, socket.socket):
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


class _Client(threading.Thread):
    """One publisher or consumer: connect, work until something breaks, next node, again."""

    def __init__(self, load: Load, name: str, first: int, stop: threading.Event) -> None:
        super().__init__(name=f"load-{name}", daemon=True)
        self.load = load
        self.client = name
        self.index = first % len(load.endpoints)
        self.stop_event = stop
        self.conn: pika.BlockingConnection | None = None
        self.node = ""
        self.successes = 0  # confirms (publisher) or acks (consumer), for wait_running()

    def run(self) -> None:
        load = self.load
        while not self.stop_event.is_set():
            endpoint = load.endpoints[self.index]
            self.node = endpoint.name
            try:
                self.conn = pika.BlockingConnection(endpoint.params)
            except Exception as exc:  # pika's handshake timeouts are not AMQPErrors: any failure here is one
                load.history.disconnected(self.client, self.node, f"connect: {_why(exc)}")
            else:
                load.watchdog.watch(self.conn)
                load.history.connected(self.client, self.node)
                try:
                    self.work(self.conn, self.conn.channel())
                except EXPECTED as exc:
                    load.history.disconnected(self.client, self.node, _why(exc))
                except Exception as exc:
                    load.history.disconnected(self.client, self.node, _why(exc))
                    load.unexpected.append(f"{self.client} via {self.node}: {_why(exc)}")
                finally:
                    self._close()
            if self.stop_event.is_set():
                break
            self.index = (self.index + 1) % len(load.endpoints)
            self.stop_event.wait(load.options.retry_delay)

    def work(self, conn: pika.BlockingConnection, channel: BlockingChannel) -> None:
        raise NotImplementedError

    def _close(self) -> None:
        conn, self.conn = self.conn, None
        if conn is None:
            return
        try:
            if conn.is_open:
                conn.close()  # still watched: a close to a frozen node is aborted, not waited on
        except Exception:  # whatever state it is in, it is given up
            pass
        finally:
            self.load.watchdog.forget(conn)


class _Publisher(_Client):
    def __init__(self, load: Load, name: str, first: int, stop: threading.Event) -> None:
        super().__init__(load, name, first, stop)
        self.seq = 0  # ids continue across reconnections: a message is never sent twice

    def work(self, conn: pika.BlockingConnection, channel: BlockingChannel) -> None:
        load, history, queue = self.load, self.load.history, self.load.queue
        options = load.options
        channel.confirm_delivery()
        delivery_mode = 2 if options.persistent else 1
        next_at = time.monotonic()
        while not self.stop_event.is_set():
            msg_id = f"{load.run_id}-{self.client}-{self.seq}"
            self.seq += 1
            body = msg_id.encode().ljust(options.body_size, b".")
            props = pika.BasicProperties(message_id=msg_id, delivery_mode=delivery_mode)
            history.publish(msg_id, self.client, self.node, queue)
            try:
                channel.basic_publish("", queue, body, props, mandatory=True)
            except pika.exceptions.UnroutableError:
                history.returned(msg_id, self.client, self.node, queue)
            except pika.exceptions.NackError:
                history.nack(msg_id, self.client, self.node, queue)
            except BaseException as exc:
                history.unknown(msg_id, self.client, self.node, queue, reason=_why(exc))
                raise
            else:
                history.confirm(msg_id, self.client, self.node, queue)
                self.successes += 1
            if options.rate:
                next_at = max(next_at + 1.0 / options.rate, time.monotonic() - 1.0)
                self.stop_event.wait(next_at - time.monotonic())


class _Consumer(_Client):
    def work(self, conn: pika.BlockingConnection, channel: BlockingChannel) -> None:
        load, history, queue = self.load, self.load.history, self.load.queue
        cancelled = threading.Event()

        def on_message(ch: BlockingChannel, method: Any, props: pika.BasicProperties, body: bytes) -> None:
            msg_id = props.message_id or body.split(b".")[0].decode(errors="replace")
            history.deliver(msg_id, self.client, self.node, bool(method.redelivered), queue)
            ch.basic_ack(method.delivery_tag)
            self.successes += 1
            history.ack(msg_id, self.client, self.node, queue)

        channel.basic_qos(prefetch_count=load.options.prefetch)
        # A consumer the broker cancels (its queue moved or went) would otherwise sit idle.
        channel.add_on_cancel_callback(lambda _frame: cancelled.set())
        channel.basic_consume(queue, on_message)
        while not self.stop_event.is_set():
            conn.process_data_events(time_limit=0.1)
            if cancelled.is_set():
                raise pika.exceptions.ConsumerCancelled("cancelled by the broker")


def _why(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:300]


class Load:
    """K publishers and M consumers on one queue, over the given nodes, until stopped."""

    def __init__(
        self,
        urls: Sequence[str],
        queue: str,
        history: History,
        names: Sequence[str] | None = None,
        options: LoadOptions | None = None,
        **overrides: Any,
    ) -> None:
        if not urls:
            raise ValueError("no node to connect to")
        self.options = replace(options or LoadOptions(), **overrides)
        self.endpoints = endpoints(urls, names, self.options)
        self.queue = queue
        self.history = history
        self.run_id = secrets.token_hex(3)  # ids stay unique across runs on the same queue
        self.unexpected: list[str] = []
        self.stop_publishing = threading.Event()
        self.stop_consuming = threading.Event()
        self._stop_watchdog = threading.Event()
        self.watchdog = Watchdog(self.options.silence, self._stop_watchdog)
        n = len(self.endpoints)
        o = self.options
        p_nodes = o.publisher_nodes or range(n)
        c_nodes = o.consumer_nodes or [i + 1 for i in range(n)]
        self.publishers: list[_Client] = [
            _Publisher(self, f"p{i}", p_nodes[i % len(p_nodes)], self.stop_publishing) for i in range(o.publishers)
        ]
        self.consumers: list[_Client] = [
            _Consumer(self, f"c{i}", c_nodes[i % len(c_nodes)], self.stop_consuming) for i in range(o.consumers)
        ]

    def start(self) -> Load:
        for client in self.consumers + self.publishers:
            client.start()
        return self

    def wait_running(self, timeout: float = 30.0) -> bool:
        """Until every publisher has had a confirm and every consumer has acked a message."""
        clients = self.publishers + self.consumers
        return self.history.wait_for(lambda: all(c.successes for c in clients), timeout)

    def stop_publishers(self, timeout: float = 30.0) -> list[str]:
        """Stop publishing (each publisher finishes the message it waits on); the ones still stuck."""
        self.stop_publishing.set()
        return _join(self.publishers, timeout)

    def wait_settled(self, timeout: float = 30.0) -> bool:
        """Until every confirmed message has been acked by a consumer."""
        return self.history.wait_settled(timeout)

    def stop(self, timeout: float = 30.0) -> list[str]:
        """Stop everything; returns the names of threads that did not stop in time."""
        self.stop_publishing.set()
        self.stop_consuming.set()
        stuck = _join(self.publishers + self.consumers, timeout)
        self._stop_watchdog.set()
        self.watchdog.join(5)
        return stuck

    def __enter__(self) -> Load:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _join(threads: Sequence[threading.Thread], timeout: float) -> list[str]:
    deadline = time.monotonic() + timeout
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    return [t.name for t in threads if t.is_alive()]


def declare_queue(
    urls: Sequence[str], queue: str, arguments: dict[str, Any] | None = None, timeout: float = 30.0
) -> None:
    """Declare a durable queue through the first node that takes it, retrying until ``timeout``."""
    deadline = time.monotonic() + timeout
    errors: list[str] = []
    while time.monotonic() < deadline:
        for url in urls:
            params = pika.URLParameters(url)
            params.socket_timeout = params.stack_timeout = 3
            params.connection_attempts = 1
            try:
                conn = pika.BlockingConnection(params)
                try:
                    conn.channel().queue_declare(queue, durable=True, arguments=arguments)
                    return
                finally:
                    if conn.is_open:
                        conn.close()
            except EXPECTED as exc:
                errors.append(f"{url}: {_why(exc)}")
        time.sleep(0.2)  # a retry back-off: every node refused, ask again shortly
    raise TimeoutError(f"could not declare {queue} in {timeout:g}s: {errors[-3:]}")


def run_load(
    urls: Sequence[str],
    queue: str,
    history: History,
    duration: float,
    stop: threading.Event | None = None,
    names: Sequence[str] | None = None,
    settle_timeout: float = 60.0,
    **options: Any,
) -> Load:
    """Run the load for ``duration`` seconds (or until ``stop`` is set), let the consumers
    take every confirmed message (up to ``settle_timeout``), then stop it; check the history after."""
    load = Load(urls, queue, history, names, **options).start()
    try:
        (stop or threading.Event()).wait(duration)
        load.stop_publishers()
        load.wait_settled(settle_timeout)
    finally:
        load.stop()
    return load
