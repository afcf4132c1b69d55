"""Settling deliveries: basic.ack / nack / reject (multiple, requeue), basic.recover, and the
406 for a delivery tag the channel does not hold.

A requeued message goes back to its original position with redelivered=true; one rejected
without requeue is dropped (or dead-lettered when its queue says so); tag 0 with multiple
means "everything outstanding"; any unknown tag closes the channel with 406 PRECONDITION_FAILED
naming the tag and the method, and the channel's other unacknowledged messages go back to
their queues while other channels carry on.  Checked against RabbitMQ 3.10.8 with this same
code.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import aio_pika
import amqp
import amqp.exceptions
import amqpstorm
import kombu
import pika
import pika.spec
import pytest

from tests.interop.pika_client import connect
from tests.interop.test_raw_protocol import Raw, frame, method_payload, publish_frames


@pytest.fixture
def raw(port: int, name: str) -> Iterator[Raw]:
    """Channels 1 and 2 open, queue ``name`` declared (exclusive to this connection)."""
    client = Raw(port).connect(channels=(1, 2))
    client.call(1, pika.spec.Queue.Declare(queue=name, exclusive=True), pika.spec.Queue.DeclareOk)
    yield client
    client.close()


def fill(raw: Raw, queue: str, count: int, channel: int = 1) -> None:
    """Publish "1".."count" on ``channel`` and wait for a round trip there: a get or consume
    on the same channel then sees them (RabbitMQ 3.10.8 orders them per channel)."""
    raw.send(b"".join(publish_frames(channel, "", queue, b"%d" % i) for i in range(1, count + 1)))
    raw.call(channel, pika.spec.Basic.Qos(), pika.spec.Basic.QosOk)


def deliveries(raw: Raw, channel: int, count: int) -> list[tuple[int, bool, bytes]]:
    """(delivery tag, redelivered, body) of the next ``count`` deliveries on ``channel``."""
    out = []
    for _ in range(count):
        deliver = raw.expect(pika.spec.Basic.Deliver, channel)
        out.append((deliver.delivery_tag, deliver.redelivered, raw.read_content(channel)[1]))
    return out


def ready(raw: Raw, queue: str, channel: int = 1) -> int:
    return raw.call(
        channel, pika.spec.Queue.Declare(queue=queue, passive=True), pika.spec.Queue.DeclareOk
    ).message_count


def drain(raw: Raw, queue: str, channel: int = 1) -> list[tuple[bytes, bool]]:
    out = []
    while (got := raw.get(channel, queue)) is not None:
        out.append((got[2], got[0].redelivered))
    return out


# -- unknown delivery tags --------------------------------------------------------------------------

ACK, REJECT, NACK = (60, 80), (60, 90), (60, 120)
UNKNOWN_TAGS: dict[str, tuple[list[Any], int, tuple[int, int]]] = {
    # case: (methods sent after tags 1..3 were delivered, unknown tag, method ids)
    "ack-99": ([pika.spec.Basic.Ack(99)], 99, ACK),
    "ack-twice": ([pika.spec.Basic.Ack(2), pika.spec.Basic.Ack(2)], 2, ACK),
    "ack-0-single": ([pika.spec.Basic.Ack(0)], 0, ACK),
    "ack-multiple-beyond": ([pika.spec.Basic.Ack(99, multiple=True)], 99, ACK),
    "ack-multiple-backwards": ([pika.spec.Basic.Ack(3, multiple=True), pika.spec.Basic.Ack(2, multiple=True)], 2, ACK),
    "reject-99": ([pika.spec.Basic.Reject(99)], 99, REJECT),
    "reject-twice": ([pika.spec.Basic.Reject(1, requeue=False), pika.spec.Basic.Reject(1)], 1, REJECT),
    "reject-0": ([pika.spec.Basic.Reject(0)], 0, REJECT),
    "nack-99": ([pika.spec.Basic.Nack(99)], 99, NACK),
    "nack-99-multiple": ([pika.spec.Basic.Nack(99, multiple=True)], 99, NACK),
    "nack-0-single": ([pika.spec.Basic.Nack(0, multiple=False)], 0, NACK),
    "nack-after-ack": ([pika.spec.Basic.Ack(1), pika.spec.Basic.Nack(1, requeue=True)], 1, NACK),
}


@pytest.mark.parametrize("one_write", [False, True], ids=["apart", "one-write"])
@pytest.mark.parametrize("case", list(UNKNOWN_TAGS))
def test_unknown_delivery_tag_is_406(raw: Raw, name: str, case: str, one_write: bool) -> None:
    """channel.close 406 "PRECONDITION_FAILED - unknown delivery tag N" naming the method
    (RabbitMQ 3.10.8).  The channel's unacked messages go back to the queue; a consumer on
    the connection's other channel keeps its own unacked message and goes on receiving.
    The same whether the methods arrive in separate reads or together (the server then
    settles a run of acks as one batch)."""
    methods, tag, method_sig = UNKNOWN_TAGS[case]
    other = name + "-other"
    raw.call(2, pika.spec.Queue.Declare(queue=other, exclusive=True), pika.spec.Queue.DeclareOk)
    raw.call(2, pika.spec.Basic.Consume(queue=other, consumer_tag="bystander"), pika.spec.Basic.ConsumeOk)
    raw.publish(1, "", other, b"held")
    assert deliveries(raw, 2, 1)[0][2] == b"held"
    fill(raw, name, 3, channel=1)
    raw.call(1, pika.spec.Basic.Consume(queue=name, consumer_tag="c"), pika.spec.Basic.ConsumeOk)
    assert [d[0] for d in deliveries(raw, 1, 3)] == [1, 2, 3]
    if one_write:
        raw.send(b"".join(frame(1, 1, method_payload(method)) for method in methods))
    else:
        for method in methods:
            raw.send_method(1, method)
    close = raw.channel_close(1)
    assert (close.reply_code, close.reply_text) == (406, f"PRECONDITION_FAILED - unknown delivery tag {tag}")
    assert (close.class_id, close.method_id) == method_sig
    # The closed channel's messages are back (settled ones stay settled), the bystander goes on.
    remaining = {b"1", b"2", b"3"}
    if case in ("ack-twice", "nack-after-ack", "reject-twice"):
        remaining -= {b"2"} if case == "ack-twice" else {b"1"}
    if case == "ack-multiple-backwards":
        remaining = set()
    raw.publish(2, "", other, b"more")
    assert deliveries(raw, 2, 1) == [(2, False, b"more")]
    back: set[bytes] = set()
    deadline = time.monotonic() + 5  # RabbitMQ's queue hears of the closed channel asynchronously
    while back != remaining:
        assert time.monotonic() < deadline, (back, remaining)
        back |= {body for body, _ in drain(raw, name, channel=2)}
    raw.send_method(2, pika.spec.Basic.Ack(2, multiple=True))
    assert ready(raw, other, channel=2) == 0


def test_a_run_of_acks_in_one_write(raw: Raw, name: str) -> None:
    """Single and multiple acks sent together settle exactly what they name, in order; an
    unknown tag in the run closes the channel after the acks before it took effect, and
    the rest of the run is ignored (what was not settled goes back to the queue)."""
    fill(raw, name, 10)
    raw.call(1, pika.spec.Basic.Consume(queue=name, consumer_tag="c"), pika.spec.Basic.ConsumeOk)
    assert [d[0] for d in deliveries(raw, 1, 10)] == list(range(1, 11))
    acks = [pika.spec.Basic.Ack(2), pika.spec.Basic.Ack(4, multiple=True), pika.spec.Basic.Ack(6)]
    acks += [pika.spec.Basic.Ack(42), pika.spec.Basic.Ack(8)]
    raw.send(b"".join(frame(1, 1, method_payload(ack)) for ack in acks))
    close = raw.channel_close(1)
    assert (close.reply_code, close.reply_text, close.class_id, close.method_id) == (
        406,
        "PRECONDITION_FAILED - unknown delivery tag 42",
        60,
        80,
    )
    assert sorted(body for body, redelivered in drain(raw, name, channel=2) if redelivered) == sorted(
        [b"5", b"7", b"8", b"9", b"10"]
    )


def test_a_run_of_acks_on_a_transactional_channel_waits_for_commit(raw: Raw, name: str) -> None:
    fill(raw, name, 4)
    raw.call(1, pika.spec.Tx.Select(), pika.spec.Tx.SelectOk)
    raw.call(1, pika.spec.Basic.Consume(queue=name, consumer_tag="c"), pika.spec.Basic.ConsumeOk)
    assert [d[0] for d in deliveries(raw, 1, 4)] == [1, 2, 3, 4]
    raw.send(b"".join(frame(1, 1, method_payload(pika.spec.Basic.Ack(tag))) for tag in (1, 2, 3)))
    raw.call(1, pika.spec.Tx.Rollback(), pika.spec.Tx.RollbackOk)
    raw.send(b"".join(frame(1, 1, method_payload(pika.spec.Basic.Ack(tag))) for tag in (1, 3)))
    raw.call(1, pika.spec.Tx.Commit(), pika.spec.Tx.CommitOk)
    raw.call(1, pika.spec.Basic.Cancel("c"), pika.spec.Basic.CancelOk)
    raw.call(1, pika.spec.Basic.Recover(requeue=True), pika.spec.Basic.RecoverOk)
    assert sorted(body for body, _ in drain(raw, name, channel=2)) == [b"2", b"4"]


def test_ack_of_a_no_ack_delivery_is_406(raw: Raw, name: str) -> None:
    raw.call(1, pika.spec.Basic.Consume(queue=name, no_ack=True), pika.spec.Basic.ConsumeOk)
    raw.publish(2, "", name, b"1")
    assert deliveries(raw, 1, 1)[0][0] == 1
    raw.send_method(1, pika.spec.Basic.Ack(1))
    close = raw.channel_close(1)
    assert (close.reply_code, close.reply_text, close.method_id) == (
        406,
        "PRECONDITION_FAILED - unknown delivery tag 1",
        80,
    )


# -- multiple and tag 0 -----------------------------------------------------------------------------


def test_tag_0_multiple(raw: Raw, name: str) -> None:
    """ack(0, multiple) with nothing outstanding is fine; nack(0, multiple, requeue=false)
    drops everything outstanding (RabbitMQ 3.10.8)."""
    raw.send_method(1, pika.spec.Basic.Ack(0, multiple=True))
    fill(raw, name, 4)
    for _ in range(4):
        assert raw.get(1, name, no_ack=False) is not None
    raw.send_method(1, pika.spec.Basic.Nack(0, multiple=True, requeue=False))
    raw.call(1, pika.spec.Basic.Qos(), pika.spec.Basic.QosOk)
    assert ready(raw, name) == 0
    assert raw.get(1, name) is None


def test_nack_multiple_requeue_redelivers_at_once(raw: Raw, name: str) -> None:
    """nack(tag 2, multiple, requeue) with tags 1..3 outstanding: messages 1 and 2 come
    straight back to the same consumer as tags 4 and 5, redelivered (RabbitMQ 3.10.8)."""
    fill(raw, name, 3)
    raw.call(1, pika.spec.Basic.Consume(queue=name, consumer_tag="c"), pika.spec.Basic.ConsumeOk)
    assert deliveries(raw, 1, 3) == [(1, False, b"1"), (2, False, b"2"), (3, False, b"3")]
    raw.send_method(1, pika.spec.Basic.Nack(2, multiple=True, requeue=True))
    assert deliveries(raw, 1, 2) == [(4, True, b"1"), (5, True, b"2")]
    raw.send_method(1, pika.spec.Basic.Ack(5, multiple=True))
    raw.call(1, pika.spec.Basic.Cancel(consumer_tag="c"), pika.spec.Basic.CancelOk)
    assert ready(raw, name) == 0


def test_requeued_messages_return_to_their_original_positions(raw: Raw, name: str) -> None:
    """Without a consumer, messages requeued out of order (4, then 2) are back in publish
    order at the head, redelivered; the others keep their flag (RabbitMQ 3.10.8, classic)."""
    fill(raw, name, 5)
    tags = [raw.get(1, name, no_ack=False)[0].delivery_tag for _ in range(4)]  # type: ignore[index]
    raw.send_method(1, pika.spec.Basic.Reject(tags[3], requeue=True))
    raw.send_method(1, pika.spec.Basic.Nack(tags[1], requeue=True))
    raw.send_method(1, pika.spec.Basic.Ack(tags[0]))
    raw.call(1, pika.spec.Basic.Qos(), pika.spec.Basic.QosOk)
    assert drain(raw, name) == [(b"2", True), (b"4", True), (b"5", False)]
    raw.send_method(1, pika.spec.Basic.Ack(tags[2]))
    raw.call(1, pika.spec.Basic.Qos(), pika.spec.Basic.QosOk)


def test_reject_without_requeue_dead_letters(raw: Raw, name: str) -> None:
    """A queue with a dead-letter exchange: reject/nack without requeue sends the message
    there, with x-death reason "rejected" (RabbitMQ 3.10.8)."""
    dlq = name + "-dlq"
    raw.call(2, pika.spec.Queue.Declare(queue=dlq, exclusive=True), pika.spec.Queue.DeclareOk)
    arguments = {"x-dead-letter-exchange": "", "x-dead-letter-routing-key": dlq}
    source = name + "-src"
    raw.call(2, pika.spec.Queue.Declare(queue=source, exclusive=True, arguments=arguments), pika.spec.Queue.DeclareOk)
    fill(raw, source, 2)
    first = raw.get(1, source, no_ack=False)
    second = raw.get(1, source, no_ack=False)
    assert first is not None and second is not None
    raw.send_method(1, pika.spec.Basic.Reject(first[0].delivery_tag, requeue=False))
    raw.send_method(1, pika.spec.Basic.Nack(second[0].delivery_tag, requeue=False))
    raw.call(1, pika.spec.Basic.Qos(), pika.spec.Basic.QosOk)
    dead = []
    deadline = time.monotonic() + 5
    while len(dead) < 2:
        assert time.monotonic() < deadline, dead
        got = raw.get(2, dlq)
        if got is not None:
            dead.append(got)
    assert [(d[0].routing_key, d[2]) for d in dead] == [(dlq, b"1"), (dlq, b"2")]
    headers = pika.spec.BasicProperties()
    headers.decode(dead[0][1][12:])
    assert (
        headers.headers["x-death"][0]["reason"] == b"rejected" or headers.headers["x-death"][0]["reason"] == "rejected"
    )
    assert ready(raw, source) == 0


# -- basic.recover ----------------------------------------------------------------------------------


def test_recover_requeues_every_unacked_message(raw: Raw, name: str) -> None:
    """basic.recover(requeue=true) with nothing outstanding: recover-ok; with unacked gets:
    recover-ok, and they are ready again, redelivered, in order (RabbitMQ 3.10.8)."""
    raw.call(1, pika.spec.Basic.Recover(requeue=True), pika.spec.Basic.RecoverOk)
    fill(raw, name, 3)
    for _ in range(2):
        assert raw.get(1, name, no_ack=False) is not None
    raw.call(1, pika.spec.Basic.Recover(requeue=True), pika.spec.Basic.RecoverOk)
    assert drain(raw, name) == [(b"1", True), (b"2", True), (b"3", False)]


def test_recover_async_requeues_without_a_reply(raw: Raw, name: str) -> None:
    fill(raw, name, 1)
    assert raw.get(1, name, no_ack=False) is not None
    raw.send_method(1, pika.spec.Basic.RecoverAsync(requeue=True))
    got = raw.get(1, name)  # get-ok is the next frame: recover-async has no reply
    assert got is not None and (got[0].delivery_tag, got[0].redelivered, got[2]) == (2, True, b"1")


@pytest.mark.parametrize(
    "method, method_sig",
    [(pika.spec.Basic.Recover(requeue=False), (60, 110)), (pika.spec.Basic.RecoverAsync(requeue=False), (60, 100))],
    ids=["recover", "recover-async"],
)
def test_recover_without_requeue_is_not_implemented(port: int, method: Any, method_sig: tuple[int, int]) -> None:
    """requeue=false: connection.close 540 NOT_IMPLEMENTED - requeue=false (RabbitMQ 3.10.8)."""
    client = Raw(port).connect()
    try:
        client.send_method(1, method)
        close = client.connection_close()
        assert (close.reply_code, close.reply_text) == (540, "NOT_IMPLEMENTED - requeue=false")
        assert (close.class_id, close.method_id) == method_sig
    finally:
        client.close()


# -- client libraries ---------------------------------------------------------------------------------


def test_pika_nack_and_reject(port: int, name: str) -> None:
    with connect(port) as conn:
        channel = conn.channel()
        channel.queue_declare(name, exclusive=True)
        channel.confirm_delivery()
        for body in (b"a", b"b", b"c"):
            channel.basic_publish("", name, body)
        got = [channel.basic_get(name) for _ in range(3)]
        channel.basic_nack(got[1][0].delivery_tag, multiple=True, requeue=True)  # a, b back
        channel.basic_reject(got[2][0].delivery_tag, requeue=False)  # c dropped
        again = [channel.basic_get(name, auto_ack=True) for _ in range(3)]
        assert [(r[2], r[0].redelivered) for r in again[:2]] == [(b"a", True), (b"b", True)]
        assert again[2] == (None, None, None)


def test_py_amqp_reject_recover(port: int, name: str) -> None:
    conn = amqp.Connection(f"127.0.0.1:{port}")
    conn.connect()
    try:
        channel = conn.channel()
        channel.queue_declare(name, exclusive=True)
        channel.confirm_select()
        for i in range(3):
            channel.basic_publish(amqp.Message(f"m{i}"), routing_key=name)
        received: list[amqp.Message] = []
        channel.basic_consume(name, callback=received.append)
        while len(received) < 3:
            conn.drain_events(timeout=5)
        channel.basic_reject(received[0].delivery_tag, requeue=False)
        channel.basic_reject(received[1].delivery_tag, requeue=True)
        while len(received) < 4:
            conn.drain_events(timeout=5)
        assert (received[3].body, received[3].delivery_info["redelivered"]) == ("m1", True)
        channel.basic_recover(requeue=True)  # m2 and m1 (again) come back
        while len(received) < 6:
            conn.drain_events(timeout=5)
        assert sorted(m.body for m in received[4:]) == ["m1", "m2"]
        assert all(m.delivery_info["redelivered"] for m in received[4:])
        channel.basic_ack(0, multiple=True)
        with pytest.raises(amqp.exceptions.PreconditionFailed) as error:
            channel.basic_ack(1)
            channel.queue_declare(name, passive=True)
        assert error.value.reply_text == "PRECONDITION_FAILED - unknown delivery tag 1"
        assert error.value.method_sig == (60, 80)
    finally:
        conn.close()


def test_amqpstorm_nack_multiple(port: int, name: str) -> None:
    connection = amqpstorm.Connection("127.0.0.1", "guest", "guest", port=port)
    try:
        channel = connection.channel()
        channel.queue.declare(name, exclusive=True)
        channel.confirm_deliveries()
        for i in range(4):
            amqpstorm.Message.create(channel, f"m{i}").publish(name)
        tags = [channel.basic.get(name).delivery_tag for _ in range(4)]
        channel.basic.nack(tags[2], multiple=True, requeue=False)  # m0..m2 dropped
        channel.basic.reject(tags[3], requeue=True)
        message = channel.basic.get(name, no_ack=True)
        assert (message.body, message.redelivered) == ("m3", True)
        assert channel.basic.get(name) is None
    finally:
        connection.close()


def test_aio_pika_nack_and_reject(port: int, name: str) -> None:
    async def main() -> list[tuple[bytes, bool]]:
        connection = await aio_pika.connect(f"amqp://guest:guest@127.0.0.1:{port}/")
        async with connection:
            channel = await connection.channel()
            await channel.set_qos(prefetch_count=10)
            queue = await channel.declare_queue(name, exclusive=True)
            for i in range(3):
                await channel.default_exchange.publish(aio_pika.Message(b"m%d" % i), name)
            seen: list[tuple[bytes, bool]] = []
            async with queue.iterator() as messages:
                async for message in messages:
                    seen.append((message.body, message.redelivered))
                    if message.body == b"m0" and not message.redelivered:
                        await message.nack(requeue=True)
                    elif message.body == b"m1":
                        await message.reject(requeue=False)
                    else:
                        await message.ack()
                    if len(seen) == 4:
                        break
            return seen

    seen = asyncio.run(main())
    assert sorted(seen) == [(b"m0", False), (b"m0", True), (b"m1", False), (b"m2", False)]


def test_kombu_reject_and_requeue(port: int, name: str) -> None:
    with kombu.Connection(f"amqp://guest:guest@127.0.0.1:{port}//") as conn:
        queue = kombu.Queue(name, routing_key=name, exclusive=True)
        bound = queue(conn.channel())
        bound.declare()
        producer = conn.Producer(conn.default_channel)
        for i in range(2):
            producer.publish({"n": i}, routing_key=name)
        deadline = time.monotonic() + 5
        while (first := bound.get()) is None:
            assert time.monotonic() < deadline
        first.requeue()
        again = bound.get()
        assert again.payload == {"n": 0} and again.delivery_info["redelivered"]
        again.reject()
        while (second := bound.get()) is None:
            assert time.monotonic() < deadline
        assert second.payload == {"n": 1}
        second.ack()
        assert bound.get() is None
