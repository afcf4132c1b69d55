"""Transactions: tx.select, tx.commit and tx.rollback over publishes and acks/nacks/rejects.

RabbitMQ's semantics, checked against RabbitMQ 3.10.8 with this same code: publishes and
settlements of a transactional channel take effect at tx.commit, in order, and are dropped by
tx.rollback (a rolled-back ack leaves its message unacknowledged: it is redelivered only when
the channel closes); errors that a publish or an ack would raise (missing exchange, unknown
delivery tag) are raised at once, not at commit; the basic.return of a mandatory unroutable
message comes at commit, just before commit-ok.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import aio_pika
import amqp
import amqp.exceptions
import amqpstorm
import pika
import pika.exceptions
import pika.spec
import pytest

from tests.interop.test_raw_protocol import Raw


@pytest.fixture
def queue(conn: pika.BlockingConnection, name: str) -> Iterator[str]:
    conn.channel().queue_declare(name)
    yield name
    if conn.is_open:
        conn.channel().queue_delete(name)


def ready(conn: pika.BlockingConnection, queue: str) -> int:
    return conn.channel().queue_declare(queue, passive=True).method.message_count


def fill(conn: pika.BlockingConnection, queue: str, *bodies: bytes) -> None:
    channel = conn.channel()
    channel.confirm_delivery()
    for body in bodies:
        channel.basic_publish("", queue, body)
    channel.close()


def drain(conn: pika.BlockingConnection, queue: str) -> list[tuple[bytes, bool]]:
    """(body, redelivered) of every ready message, in order."""
    channel = conn.channel()
    got = []
    while True:
        method, _, body = channel.basic_get(queue, auto_ack=True)
        if method is None:
            channel.close()
            return got
        got.append((body, method.redelivered))


# -- publishes ----------------------------------------------------------------------------------


def test_publishes_take_effect_at_commit(conn: pika.BlockingConnection, queue: str) -> None:
    """pika: nothing reaches the queue before tx.commit; a rollback drops what was published
    since the last commit; the channel stays transactional across commits."""
    channel = conn.channel()
    channel.tx_select()
    channel.tx_select()  # a second tx.select is fine (RabbitMQ 3.10.8)
    for body in (b"1", b"2", b"3"):
        channel.basic_publish("", queue, body)
    assert ready(conn, queue) == 0
    channel.tx_commit()
    assert ready(conn, queue) == 3
    channel.basic_publish("", queue, b"rolled back")
    channel.tx_rollback()
    channel.basic_publish("", queue, b"4")
    channel.tx_commit()
    assert [body for body, _ in drain(conn, queue)] == [b"1", b"2", b"3", b"4"]


def test_uncommitted_publishes_die_with_their_channel(conn: pika.BlockingConnection, queue: str) -> None:
    channel = conn.channel()
    channel.tx_select()
    channel.basic_publish("", queue, b"never")
    channel.close()
    assert ready(conn, queue) == 0


def test_consumer_sees_transactional_messages_after_commit(port: int, name: str) -> None:
    """aio-pika's transaction context: a consumer of the queue gets the messages only once
    the transaction commits, all of them, in order."""

    async def main() -> list[bytes]:
        connection = await aio_pika.connect(f"amqp://guest:guest@127.0.0.1:{port}/")
        async with connection:
            consumer_channel = await connection.channel()
            queue = await consumer_channel.declare_queue(name, exclusive=True)
            received: asyncio.Queue[bytes] = asyncio.Queue()

            async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
                await received.put(message.body)

            await queue.consume(on_message, no_ack=True)
            channel = await connection.channel(publisher_confirms=False)
            async with channel.transaction():
                for i in range(5):
                    await channel.default_exchange.publish(aio_pika.Message(b"%d" % i), name)
                # A round trip on the consumer's channel: still nothing delivered.
                await consumer_channel.declare_queue(name, passive=True)
                assert received.empty()
            return [await asyncio.wait_for(received.get(), 5) for _ in range(5)]

    assert asyncio.run(main()) == [b"0", b"1", b"2", b"3", b"4"]


def test_mandatory_return_comes_at_commit_before_commit_ok(port: int, name: str) -> None:
    """A mandatory unroutable publish in a transaction is returned when the transaction
    commits: basic.return 312 NO_ROUTE immediately before tx.commit-ok (RabbitMQ 3.10.8);
    nothing before; a rolled-back one is never returned."""
    raw = Raw(port).connect()
    try:
        raw.call(1, pika.spec.Tx.Select(), pika.spec.Tx.SelectOk)
        raw.publish(1, "", name + "-nowhere", b"rolled back", mandatory=True)
        raw.call(1, pika.spec.Tx.Rollback(), pika.spec.Tx.RollbackOk)
        raw.publish(1, "", name + "-nowhere", b"returned", mandatory=True)
        raw.call(1, pika.spec.Queue.Declare(queue="", exclusive=True), pika.spec.Queue.DeclareOk)
        raw.send_method(1, pika.spec.Tx.Commit())
        returned = raw.expect(pika.spec.Basic.Return, 1)
        assert (returned.reply_code, returned.reply_text, returned.routing_key) == (312, "NO_ROUTE", name + "-nowhere")
        assert raw.read_content(1)[1] == b"returned"
        raw.expect(pika.spec.Tx.CommitOk, 1)
    finally:
        raw.close()


def test_persistent_publishes_committed_to_a_durable_queue(port: int, name: str) -> None:
    """commit-ok of persistent messages for a durable queue: then they are all there."""
    conn = amqp.Connection(f"127.0.0.1:{port}")
    conn.connect()
    try:
        channel = conn.channel()
        channel.queue_declare(name, durable=True, auto_delete=False)
        channel.tx_select()
        for i in range(20):
            channel.basic_publish(amqp.Message(f"m{i}", delivery_mode=2), routing_key=name)
        channel.tx_commit()
        _, count, _ = channel.queue_declare(name, passive=True)
        assert count == 20
        channel.queue_delete(name)
    finally:
        conn.close()


# -- settlements ----------------------------------------------------------------------------------


def test_acks_take_effect_at_commit_and_rollback_leaves_them_unacked(port: int, name: str) -> None:
    """py-amqp: acks (and a requeueing reject) in a transaction change nothing until commit;
    rolled back, the messages stay unacknowledged, and come back redelivered, in their
    original order, only when the channel closes (RabbitMQ 3.10.8)."""
    conn = amqp.Connection(f"127.0.0.1:{port}")
    conn.connect()
    try:
        setup = conn.channel()
        setup.queue_declare(name, auto_delete=False)
        setup.confirm_select()
        for i in range(4):
            setup.basic_publish(amqp.Message(f"m{i}"), routing_key=name)

        channel = conn.channel()
        channel.tx_select()
        messages = [channel.basic_get(name) for _ in range(4)]
        assert [m.delivery_tag for m in messages] == [1, 2, 3, 4]
        channel.basic_ack(1)
        channel.basic_reject(2, requeue=True)
        assert setup.queue_declare(name, passive=True)[1] == 0  # nothing settled yet
        channel.tx_rollback()
        assert setup.queue_declare(name, passive=True)[1] == 0  # still all unacked

        channel.basic_ack(1)
        channel.basic_ack(3, multiple=True)  # 2 and 3
        channel.tx_commit()
        channel.close()  # message 4, never acked, comes back
        got = setup.basic_get(name, no_ack=True)
        assert (got.body, got.delivery_info["redelivered"]) == ("m3", True)
        assert setup.basic_get(name, no_ack=True) is None
        setup.queue_delete(name)
    finally:
        conn.close()


def test_nack_and_reject_take_effect_at_commit(port: int, name: str) -> None:
    """amqpstorm: a requeueing nack and a discarding reject inside a transaction apply at
    commit; the requeued message returns to its place at the head, redelivered."""
    connection = amqpstorm.Connection("127.0.0.1", "guest", "guest", port=port)
    try:
        channel = connection.channel()
        channel.queue.declare(name)
        channel.confirm_deliveries()
        for i in range(3):
            amqpstorm.Message.create(channel, f"m{i}").publish(name)
        worker = connection.channel()
        worker.tx.select()
        first = worker.basic.get(name)
        second = worker.basic.get(name)
        assert (first.body, second.body) == ("m0", "m1")
        worker.basic.nack(first.delivery_tag, requeue=True)
        worker.basic.reject(second.delivery_tag, requeue=False)
        assert channel.queue.declare(name, passive=True)["message_count"] == 1
        worker.tx.commit()
        assert channel.queue.declare(name, passive=True)["message_count"] == 2
        again = worker.basic.get(name, no_ack=True)
        assert (again.body, again.redelivered) == ("m0", True)
        last = worker.basic.get(name, no_ack=True)
        assert (last.body, last.redelivered) == ("m2", False)
        assert worker.basic.get(name, no_ack=True) is None
        worker.tx.commit()
        channel.queue.delete(name)
    finally:
        connection.close()


def test_publish_and_ack_commit_together(conn: pika.BlockingConnection, queue: str, name: str) -> None:
    """A consume-transform-publish step: the ack of the input and the publish of the output
    commit together."""
    output = name + "-out"
    fill(conn, queue, b"in")
    channel = conn.channel()
    channel.queue_declare(output, auto_delete=True)
    channel.tx_select()
    method, _, body = channel.basic_get(queue)
    channel.basic_publish("", output, body.upper())
    channel.basic_ack(method.delivery_tag)
    assert ready(conn, output) == 0
    channel.tx_commit()
    assert ready(conn, output) == 1
    assert drain(conn, queue) == []
    assert drain(conn, output) == [(b"IN", False)]
    channel.queue_delete(output)


# -- errors ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "method, method_sig", [("tx_commit", (90, 20)), ("tx_rollback", (90, 30))], ids=["commit", "rollback"]
)
def test_commit_or_rollback_without_select_is_406(port: int, method: str, method_sig: tuple) -> None:
    """tx.commit / tx.rollback on a channel that is not transactional: channel.close 406
    "channel is not transactional" (RabbitMQ 3.10.8); the other channels go on."""
    conn = amqp.Connection(f"127.0.0.1:{port}")
    conn.connect()
    try:
        other = conn.channel()
        other.tx_select()
        channel = conn.channel()
        with pytest.raises(amqp.exceptions.PreconditionFailed) as error:
            getattr(channel, method)()
        assert error.value.reply_text == "PRECONDITION_FAILED - channel is not transactional"
        assert error.value.method_sig == method_sig
        other.tx_commit()
        assert conn.connected
    finally:
        conn.close()


def test_publish_to_missing_exchange_fails_at_publish_not_commit(port: int, name: str) -> None:
    """404 NOT_FOUND for basic.publish (60, 40) comes as soon as the message is complete, not
    at commit (RabbitMQ 3.10.8); the connection's other channel goes on."""
    conn = amqp.Connection(f"127.0.0.1:{port}")
    conn.connect()
    try:
        channel = conn.channel()
        channel.tx_select()
        channel.basic_publish(amqp.Message("x"), exchange=name + "-missing", routing_key="k")
        with pytest.raises(amqp.exceptions.NotFound) as error:
            channel.queue_declare("", exclusive=True)  # the next round trip sees the close
        assert error.value.reply_text == f"NOT_FOUND - no exchange '{name}-missing' in vhost '/'"
        assert error.value.method_sig == (60, 40)
        assert conn.channel().queue_declare("", exclusive=True).queue
    finally:
        conn.close()


def test_unknown_delivery_tag_fails_at_once_in_a_transaction(port: int, name: str) -> None:
    """basic.ack of an unknown tag on a transactional channel: 406 at once, not at commit
    (RabbitMQ 3.10.8)."""
    raw = Raw(port).connect()
    try:
        raw.call(1, pika.spec.Tx.Select(), pika.spec.Tx.SelectOk)
        raw.send_method(1, pika.spec.Basic.Ack(7))
        close = raw.channel_close(1)
        assert (close.reply_code, close.reply_text) == (406, "PRECONDITION_FAILED - unknown delivery tag 7")
        assert (close.class_id, close.method_id) == (60, 80)
    finally:
        raw.close()


def test_a_tag_settled_in_a_transaction_cannot_be_settled_again(port: int, name: str) -> None:
    """An ack inside a transaction takes its tag at once: acking it again before commit is
    406 unknown delivery tag (60, 80); after a rollback the tag is unacked again and can be
    acked (RabbitMQ 3.10.8)."""
    raw = Raw(port).connect(channels=(1, 2))
    try:
        raw.call(1, pika.spec.Queue.Declare(queue=name, exclusive=True), pika.spec.Queue.DeclareOk)
        raw.publish(2, "", name, b"1")
        raw.publish(2, "", name, b"2")
        raw.call(2, pika.spec.Basic.Qos(), pika.spec.Basic.QosOk)
        raw.call(1, pika.spec.Tx.Select(), pika.spec.Tx.SelectOk)
        assert [raw.get(1, name, no_ack=False)[0].delivery_tag for _ in range(2)] == [1, 2]  # type: ignore[index]
        raw.send_method(1, pika.spec.Basic.Ack(2, multiple=True))
        raw.call(1, pika.spec.Tx.Rollback(), pika.spec.Tx.RollbackOk)
        raw.send_method(1, pika.spec.Basic.Reject(1, requeue=True))
        raw.send_method(1, pika.spec.Basic.Ack(2))
        raw.call(1, pika.spec.Tx.Commit(), pika.spec.Tx.CommitOk)
        again = raw.get(1, name, no_ack=False)
        assert again is not None and (again[0].delivery_tag, again[0].redelivered, again[2]) == (3, True, b"1")
        raw.send_method(1, pika.spec.Basic.Ack(3))
        raw.send_method(1, pika.spec.Basic.Nack(3))
        close = raw.channel_close(1)
        assert (close.reply_code, close.reply_text) == (406, "PRECONDITION_FAILED - unknown delivery tag 3")
        assert (close.class_id, close.method_id) == (60, 120)
        # The uncommitted ack died with the channel: message 1 is back (RabbitMQ's queue
        # learns of the closed channel asynchronously: wait for it).
        deadline = time.monotonic() + 5
        while (back := raw.get(2, name)) is None:
            assert time.monotonic() < deadline, "message 1 did not come back"
        assert (back[0].redelivered, back[2]) == (True, b"1")
    finally:
        raw.close()
