"""Stream queues over AMQP 0-9-1 with pika, as RabbitMQ 3.10.8 has them: declaring, offsets
of every kind, many consumers at their own offsets, credit, retention, and what streams
refuse (codes and texts measured there).  These tests pass against RabbitMQ 3.10.8 too
(point the ``port`` fixture at it); restarts are in test_streams_restart.py.

Where WarrenMQ is finer than RabbitMQ: ``last`` is the last message (RabbitMQ: the first of
the last chunk, a batch written together), timestamps are per message in milliseconds
(RabbitMQ: per chunk), and queue.declare-ok counts the stream at once (RabbitMQ: with a few
seconds' lag).  The tests publish one confirmed message at a time, so that on RabbitMQ too
every message is its own chunk.
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Iterator
from typing import Any

import pika
import pika.exceptions
import pytest

from tests.interop.ext_support import Scratch, connect, wait_until

STREAM = {"x-queue-type": "stream"}


class Streams(Scratch):
    def stream(self, name: str, **arguments: Any) -> str:
        args = {key.replace("_", "-"): value for key, value in arguments.items()}
        self.queues.append(name)
        self.ch.queue_declare(name, durable=True, arguments={**STREAM, **args})
        return name

    def consumer(self, queue: str, offset: Any = None, prefetch: int = 1000, ack: bool = True) -> Consumer:
        return Consumer(self, queue, offset, prefetch, ack)


class Consumer:
    """A stream consumer on a channel of its own: (x-stream-offset, body) of each delivery."""

    def __init__(self, s: Streams, queue: str, offset: Any, prefetch: int, ack: bool) -> None:
        self.s = s
        self.ch = s.channel()
        self.ch.basic_qos(prefetch_count=prefetch)
        self.got: list[tuple[int, bytes]] = []
        self.tags: list[int] = []
        self.ack = ack
        arguments = None if offset is None else {"x-stream-offset": offset}
        self.tag = self.ch.basic_consume(queue, self._on, arguments=arguments)

    def _on(self, ch: Any, method: Any, props: Any, body: bytes) -> None:
        self.got.append((props.headers["x-stream-offset"], body))
        self.tags.append(method.delivery_tag)
        assert not method.redelivered
        if self.ack:
            ch.basic_ack(method.delivery_tag)

    def wait(self, count: int, timeout: float = 5.0) -> list[tuple[int, bytes]]:
        wait_until(lambda: len(self.got) >= count, timeout, f"{count} deliveries", conn=self.s.conn)
        return self.got

    def settle(self) -> list[tuple[int, bytes]]:
        """What arrived once a round trip on the connection shows nothing more is on its way."""
        for _ in range(3):
            self.s.conn.channel().close()
            self.s.conn.process_data_events(0.05)
        return self.got

    def bodies(self) -> list[bytes]:
        return [body for _, body in self.got]


@pytest.fixture
def s(port: int) -> Iterator[Streams]:
    with Streams(port) as scratch:
        yield scratch


def error_of(s: Streams, call: Any, kind: type[Exception] = pika.exceptions.ChannelClosedByBroker) -> tuple[int, str]:
    with pytest.raises(kind) as exc:
        call(s.channel())
    return exc.value.args[0], exc.value.args[1]


def numbered(n: int, start: int = 0) -> list[bytes]:
    return [b"m%d" % i for i in range(start, start + n)]


# -- declaring ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("flags", "prop"),
    [({"durable": False}, "non-durable"), ({"durable": True, "exclusive": True}, "exclusive-owner"),
     ({"durable": True, "auto_delete": True}, "auto-delete")],
)  # fmt: skip
def test_streams_are_durable_and_shared(s: Streams, name: str, flags: dict[str, bool], prop: str) -> None:
    assert error_of(s, lambda ch: ch.queue_declare(name, arguments=STREAM, **flags)) == (
        406,
        f"PRECONDITION_FAILED - invalid property '{prop}' for queue '{name}' in vhost '/'",
    )


CLASSIC_ONLY = [{"x-max-length": 10}, {"x-message-ttl": 10}, {"x-dead-letter-exchange": "x"}, {"x-expires": 1000},
                {"x-single-active-consumer": True}, {"x-max-priority": 5}]  # fmt: skip


@pytest.mark.parametrize("argument", CLASSIC_ONLY)
def test_classic_arguments_are_refused(s: Streams, name: str, argument: dict[str, Any]) -> None:
    (key,) = argument
    assert error_of(s, lambda ch: ch.queue_declare(name, durable=True, arguments={**STREAM, **argument})) == (
        406,
        f"PRECONDITION_FAILED - invalid arg '{key}' for queue '{name}' in vhost '/' of queue type rabbit_stream_queue",
    )


@pytest.mark.parametrize(
    ("value", "reason"),
    [("10x", "invalid_max_age"), ("0D", "invalid_max_age"), ("5", "invalid_max_age"),
     (10, "{unacceptable_type,signedint}")],
)  # fmt: skip
def test_x_max_age_is_checked(s: Streams, name: str, value: Any, reason: str) -> None:
    assert error_of(s, lambda ch: ch.queue_declare(name, durable=True, arguments={**STREAM, "x-max-age": value})) == (
        406,
        f"PRECONDITION_FAILED - invalid arg 'x-max-age' for queue '{name}' in vhost '/': {reason}",
    )


def test_an_x_max_age_rabbitmq_cannot_parse_closes_the_connection(s: Streams, name: str) -> None:
    call = lambda ch: ch.queue_declare(name, durable=True, arguments={**STREAM, "x-max-age": "abc"})  # noqa: E731
    assert error_of(s, call, pika.exceptions.ConnectionClosedByBroker) == (541, "INTERNAL_ERROR")


def test_redeclaring_compares_the_stream_arguments(s: Streams, name: str) -> None:
    queue = s.stream(name, x_max_age="1h", x_stream_max_segment_size_bytes=1000)
    same = {**STREAM, "x-max-age": "1h", "x-stream-max-segment-size-bytes": 1000}
    s.ch.queue_declare(queue, durable=True, arguments=same)
    assert error_of(s, lambda ch: ch.queue_declare(queue, durable=True, arguments={**STREAM, "x-max-age": "2h"})) == (
        406,
        f"PRECONDITION_FAILED - inequivalent arg 'x-max-age' for queue '{queue}' in vhost '/': "
        "received '2h' but current is '1h'",
    )


# -- offsets -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("offset", "expected"),
    [("first", list(range(6))), ("last", [5]), ("next", []), (0, list(range(6))), (2, [2, 3, 4, 5]),
     (-1, list(range(6))), ("1h", list(range(6))), ("1D", list(range(6)))],
)  # fmt: skip
def test_consumers_start_at_their_offset(s: Streams, name: str, offset: Any, expected: list[int]) -> None:
    queue = s.stream(name)
    s.send(queue, *numbered(6))
    consumer = s.consumer(queue, offset)
    consumer.wait(len(expected))
    assert consumer.settle() == [(i, b"m%d" % i) for i in expected]
    s.send(queue, b"after")  # and every consumer goes on with what comes next
    assert consumer.wait(len(expected) + 1)[-1] == (6, b"after")


def test_without_an_offset_a_consumer_starts_at_the_next_message(s: Streams, name: str) -> None:
    queue = s.stream(name)
    s.send(queue, b"old")
    consumer = s.consumer(queue)
    s.send(queue, b"new")
    assert consumer.wait(1) == [(1, b"new")]


def test_an_offset_beyond_the_end_waits_for_that_offset(s: Streams, name: str) -> None:
    queue = s.stream(name)
    s.send(queue, *numbered(5))
    consumer = s.consumer(queue, 7)
    s.send(queue, *numbered(5, 5))
    assert consumer.wait(3) == [(7, b"m7"), (8, b"m8"), (9, b"m9")]


def test_a_timestamp_starts_at_the_first_message_published_at_or_after_it(s: Streams, name: str) -> None:
    queue = s.stream(name)
    s.send(queue, *numbered(3))
    time.sleep(1.1)  # AMQP timestamps are whole seconds: the second batch needs a later one
    since = int(time.time())
    s.send(queue, *numbered(3, 3))
    consumer = s.consumer(queue, datetime.datetime.fromtimestamp(since, datetime.UTC))
    consumer.wait(3)
    assert consumer.settle() == [(3, b"m3"), (4, b"m4"), (5, b"m5")]
    assert s.consumer(queue, datetime.datetime.fromtimestamp(since + 3600, datetime.UTC)).settle() == []


def test_an_interval_starts_that_long_ago(s: Streams, name: str) -> None:
    queue = s.stream(name)
    s.send(queue, b"old")
    time.sleep(2.5)  # the interval's clock: the old message must be older than it
    s.send(queue, b"recent")
    consumer = s.consumer(queue, "2s")
    consumer.wait(1)
    assert consumer.settle() == [(1, b"recent")]


@pytest.mark.parametrize("offset", ["1x", "5", "0s", "1ms"])
def test_malformed_offsets_are_refused(s: Streams, name: str, offset: str) -> None:
    queue = s.stream(name)

    def consume(ch: Any) -> None:
        ch.basic_qos(prefetch_count=10)
        ch.basic_consume(queue, lambda *a: None, arguments={"x-stream-offset": offset})

    assert error_of(s, consume) == (
        406,
        f"PRECONDITION_FAILED - invalid arg 'x-stream-offset' for queue '{queue}' in vhost '/': "
        f'{{invalid_stream_offset_arg,{{longstr,<<"{offset}">>}}}}',
    )


@pytest.mark.parametrize("offset", ["foo", "-5s", True])
def test_offsets_rabbitmq_crashes_on_close_the_connection(s: Streams, name: str, offset: Any) -> None:
    queue = s.stream(name)

    def consume(ch: Any) -> None:
        ch.basic_qos(prefetch_count=10)
        ch.basic_consume(queue, lambda *a: None, arguments={"x-stream-offset": offset})

    assert error_of(s, consume, pika.exceptions.ConnectionClosedByBroker) == (541, "INTERNAL_ERROR")


# -- consumers ---------------------------------------------------------------------------


def test_many_consumers_read_the_same_messages_each_at_its_own_offset(s: Streams, name: str) -> None:
    queue = s.stream(name)
    s.send(queue, *numbered(10))
    consumers = [s.consumer(queue, "first"), s.consumer(queue, 4), s.consumer(queue, "next")]
    s.send(queue, *numbered(10, 10))
    assert consumers[0].wait(20) == [(i, b"m%d" % i) for i in range(20)]
    assert consumers[1].wait(16) == [(i, b"m%d" % i) for i in range(4, 20)]
    assert consumers[2].wait(10) == [(i, b"m%d" % i) for i in range(10, 20)]
    assert s.consumer(queue, "first").wait(20)[:3] == [(0, b"m0"), (1, b"m1"), (2, b"m2")]  # nothing was consumed away


def test_the_prefetch_is_a_consumers_credit_and_an_ack_gives_it_back(s: Streams, name: str) -> None:
    queue = s.stream(name)
    s.send(queue, *numbered(10))
    consumer = s.consumer(queue, "first", prefetch=3, ack=False)
    assert consumer.wait(3) == [(0, b"m0"), (1, b"m1"), (2, b"m2")]
    assert len(consumer.settle()) == 3
    consumer.ch.basic_ack(consumer.tags[1], multiple=True)  # two back
    assert consumer.wait(5)[3:] == [(3, b"m3"), (4, b"m4")]
    assert len(consumer.settle()) == 5


def test_deliveries_keep_the_published_properties_and_gain_the_offset(s: Streams, name: str) -> None:
    queue = s.stream(name)
    s.publish("", queue, b"x", content_type="text/plain", message_id="id-1", headers={"h": 1}, delivery_mode=2)
    got: list[Any] = []
    ch = s.channel()
    ch.basic_qos(prefetch_count=10)
    ch.basic_consume(queue, lambda c, m, p, b: got.append((m, p, b)), arguments={"x-stream-offset": "first"})
    wait_until(lambda: got, conn=s.conn)
    method, props, body = got[0]
    assert (method.routing_key, method.exchange, method.redelivered, body) == (queue, "", False, b"x")
    assert (props.content_type, props.message_id, props.delivery_mode) == ("text/plain", "id-1", 2)
    assert props.headers == {"h": 1, "x-stream-offset": 0}


def test_a_cancelled_consumer_may_still_ack_what_it_got(s: Streams, name: str) -> None:
    queue = s.stream(name)
    s.send(queue, *numbered(3))
    consumer = s.consumer(queue, "first", ack=False)
    consumer.wait(3)
    consumer.ch.basic_cancel(consumer.tag)
    consumer.ch.basic_ack(consumer.tags[-1], multiple=True)
    consumer.ch.basic_qos(prefetch_count=5)  # a round trip: the channel is still open
    assert consumer.ch.is_open


def test_deleting_a_stream_cancels_its_consumers(s: Streams, name: str) -> None:
    queue = s.stream(name)
    consumer = s.consumer(queue, "first")
    cancelled: list[Any] = []
    consumer.ch.add_on_cancel_callback(cancelled.append)
    s.ch.queue_delete(queue)
    wait_until(lambda: cancelled, conn=s.conn)


def test_queue_declare_ok_counts_the_messages_of_the_stream(s: Streams, name: str) -> None:
    queue = s.stream(name)
    s.send(queue, *numbered(7))
    s.consumer(queue, "first").wait(7)
    # RabbitMQ counts with a few seconds' lag; WarrenMQ at once.
    wait_until(lambda: s.ready(queue) == 7, 15.0, "a count of 7")


# -- what streams refuse -------------------------------------------------------------------


def test_basic_get_closes_the_connection(s: Streams, name: str) -> None:
    queue = s.stream(name)
    assert error_of(s, lambda ch: ch.basic_get(queue), pika.exceptions.ConnectionClosedByBroker) == (
        540,
        f"NOT_IMPLEMENTED - basic.get not supported by stream queues queue '{queue}' in vhost '/'",
    )


def test_purge_closes_the_connection(s: Streams, name: str) -> None:
    queue = s.stream(name)
    assert error_of(s, lambda ch: ch.queue_purge(queue), pika.exceptions.ConnectionClosedByBroker) == (
        540,
        f"NOT_IMPLEMENTED - queue.purge not supported by stream queues queue '{queue}' in vhost '/'",
    )


def test_automatic_acknowledgement_closes_the_connection(s: Streams, name: str) -> None:
    queue = s.stream(name)

    def consume(ch: Any) -> None:
        ch.basic_qos(prefetch_count=10)
        ch.basic_consume(queue, lambda *a: None, auto_ack=True)

    assert error_of(s, consume, pika.exceptions.ConnectionClosedByBroker) == (
        540,
        f"NOT_IMPLEMENTED - automatic acknowledgement not supported by stream queues queue '{queue}' in vhost '/'",
    )


@pytest.mark.parametrize("qos", [None, {"prefetch_count": 0}, {"prefetch_count": 10, "global_qos": True}])
def test_a_consumer_needs_a_prefetch(s: Streams, name: str, qos: dict[str, Any] | None) -> None:
    queue = s.stream(name)

    def consume(ch: Any) -> None:
        if qos is not None:
            ch.basic_qos(**qos)
        ch.basic_consume(queue, lambda *a: None)

    assert error_of(s, consume) == (
        406,
        f"PRECONDITION_FAILED - consumer prefetch count is not set for 'queue '{queue}' in vhost '/''",
    )


def test_consumer_priorities_are_refused(s: Streams, name: str) -> None:
    queue = s.stream(name)

    def consume(ch: Any) -> None:
        ch.basic_qos(prefetch_count=10)
        ch.basic_consume(queue, lambda *a: None, arguments={"x-priority": 1})

    assert error_of(s, consume) == (
        406,
        f"PRECONDITION_FAILED - invalid arg 'x-priority' for queue '{queue}' in vhost '/' "
        "of queue type rabbit_stream_queue",
    )


@pytest.mark.parametrize("how", ["reject", "nack", "nack-requeue"])
def test_reject_and_nack_close_the_connection(port: int, name: str, how: str) -> None:
    with Streams(port) as s:
        queue = s.stream(name)
        s.send(queue, b"m")
        consumer = s.consumer(queue, "first", ack=False)
        consumer.wait(1)
        with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as exc:
            if how == "reject":
                consumer.ch.basic_reject(consumer.tags[0], requeue=False)
            else:
                consumer.ch.basic_nack(consumer.tags[0], requeue=how == "nack-requeue")
            consumer.settle()
        assert (exc.value.reply_code, exc.value.reply_text) == (
            540,
            "NOT_IMPLEMENTED - basic.nack and basic.reject not supported by stream queues "
            f"queue '{queue}' in vhost '/'",
        )


def test_exclusive_is_ignored(s: Streams, name: str) -> None:
    queue = s.stream(name)
    s.send(queue, b"m")
    first = s.channel()
    first.basic_qos(prefetch_count=10)
    first.basic_consume(queue, lambda *a: None, exclusive=True)
    assert s.consumer(queue, "first").wait(1) == [(0, b"m")]


# -- retention -----------------------------------------------------------------------------


def test_retention_by_size_drops_the_oldest_segments(s: Streams, name: str) -> None:
    queue = s.stream(name, x_max_length_bytes=2000, x_stream_max_segment_size_bytes=500)
    bodies = [b"%03d" % i + b"." * 97 for i in range(100)]
    s.send(queue, *bodies)
    consumer = s.consumer(queue, "first")
    consumer.wait(1)
    got = consumer.settle()
    assert 3 <= len(got) <= 25  # about 2000 bytes of 100-byte messages, in whole segments
    assert got[-1][1] == bodies[-1]
    assert [body for _, body in got] == bodies[-len(got) :]
    assert got[0][0] > 0 and [o for o, _ in got] == sorted(o for o, _ in got)


def test_retention_by_age_drops_segments_older_than_it(s: Streams, name: str) -> None:
    queue = s.stream(name, x_max_age="1s", x_stream_max_segment_size_bytes=500)
    old = [b"old%02d" % i + b"." * 95 for i in range(20)]
    s.send(queue, *old)
    time.sleep(2.5)  # retention's clock: these must be older than x-max-age
    new = [b"new%02d" % i + b"." * 95 for i in range(20)]
    s.send(queue, *new)
    consumer = s.consumer(queue, "first")
    consumer.wait(20)
    assert consumer.settle()[-20:] == [(o, b) for (o, b) in consumer.got[-20:]]
    assert consumer.bodies() == new


def test_a_connection_per_consumer(port: int, name: str) -> None:
    """Consumers on other connections each read on at their own pace."""
    with Streams(port) as s:
        queue = s.stream(name)
        s.send(queue, *numbered(50))
        others = [Streams(port) for _ in range(3)]
        try:
            consumers = [o.consumer(queue, "first", prefetch=7) for o in others]
            for consumer in consumers:
                assert [b for _, b in consumer.wait(50)] == numbered(50)
        finally:
            for other in others:
                other.close()


def test_streams_do_not_change_classic_queues(port: int, name: str) -> None:
    """A message routed to a classic queue and a stream: the classic copy has no offset."""
    with Streams(port) as s:
        exchange = s.exchange(f"{name}-x", "fanout")
        stream = s.stream(f"{name}-s")
        classic = s.queue(f"{name}-c")
        s.bind(stream, exchange)
        s.bind(classic, exchange)
        s.publish(exchange, "", b"both", headers={"h": 1})
        _method, props, body = s.wait_for(classic)[0]
        assert (body, props.headers) == (b"both", {"h": 1})
        assert s.consumer(stream, "first").wait(1) == [(0, b"both")]
    with connect(port) as conn:
        assert conn.is_open
