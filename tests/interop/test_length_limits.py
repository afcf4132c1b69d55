"""Length limits: x-max-length, x-max-length-bytes and x-overflow (drop-head, reject-publish,
reject-publish-dlx), as RabbitMQ 3.10.8 applies them (checked with the same code).

Only ready messages count (unacknowledged ones do not).  drop-head enforces the limit after
the message is enqueued: a consumer waiting for it still gets it from a queue limited to 0,
a message larger than the byte limit empties the queue (itself included), and a requeue past
the limit drops the head.  reject-publish refuses before enqueueing: a confirming publisher
gets basic.nack (with the requeue bit set, as RabbitMQ sends it).
"""

from __future__ import annotations

from collections.abc import Iterator

import pika
import pika.exceptions
import pytest

from tests.fuzz.raw import RawClient
from tests.interop.ext_support import Scratch, wait_until


@pytest.fixture
def s(port: int) -> Iterator[Scratch]:
    with Scratch(port) as scratch:
        yield scratch


def refused(s: Scratch, queue: str, body: bytes) -> bool:
    """Publish with confirms; True when the broker nacked it."""
    try:
        s.publish("", queue, body)
    except pika.exceptions.NackError:
        return True
    return False


# -- drop-head ---------------------------------------------------------------------------------


def test_max_length_drops_the_oldest(s: Scratch, name: str) -> None:
    dlq = s.queue(f"{name}-dlq")
    queue = s.queue(name, x_max_length=3, x_dead_letter_exchange="", x_dead_letter_routing_key=dlq)
    s.send(queue, b"1", b"2", b"3", b"4", b"5")
    assert s.ready(queue) == 3
    assert s.bodies(queue) == [b"3", b"4", b"5"]
    dropped = s.wait_for(dlq, 2)
    assert [body for _, _, body in dropped] == [b"1", b"2"]
    assert {props.headers["x-death"][0]["reason"] for _, props, _ in dropped} == {"maxlen"}


def test_max_length_bytes_counts_body_bytes(s: Scratch, name: str) -> None:
    queue = s.queue(name, x_max_length_bytes=10)
    s.send(queue, b"12345", b"67890")  # exactly 10: both fit
    assert s.ready(queue) == 2
    s.send(queue, b"abc")
    assert s.bodies(queue) == [b"67890", b"abc"]
    s.send(queue, b"12345", b"123456")
    assert s.bodies(queue) == [b"123456"]


def test_a_message_larger_than_the_byte_limit_empties_the_queue(s: Scratch, name: str) -> None:
    dlq = s.queue(f"{name}-dlq")
    queue = s.queue(name, x_max_length_bytes=10, x_dead_letter_exchange="", x_dead_letter_routing_key=dlq)
    s.send(queue, b"12345", b"x" * 11)
    assert s.ready(queue) == 0
    assert [body for _, _, body in s.wait_for(dlq, 2)] == [b"12345", b"x" * 11]


def test_unacknowledged_messages_do_not_count(s: Scratch, name: str) -> None:
    queue = s.queue(name, x_max_length=1)
    s.send(queue, b"1")
    ch = s.channel()
    method, _, _ = ch.basic_get(queue)
    s.send(queue, b"2")
    assert s.ready(queue) == 1
    ch.basic_ack(method.delivery_tag)
    assert s.bodies(queue) == [b"2"]


def test_max_length_zero_still_feeds_a_waiting_consumer(s: Scratch, name: str) -> None:
    queue = s.queue(name, x_max_length=0)
    s.send(queue, b"dropped")
    assert s.ready(queue) == 0
    received: list[bytes] = []
    ch = s.channel()
    ch.basic_consume(queue, lambda c, m, p, b: received.append(b), auto_ack=True)
    s.send(queue, b"direct")
    wait_until(lambda: received, conn=s.conn, what="the delivery")
    assert received == [b"direct"]


def test_a_requeue_past_the_limit_drops_the_head(s: Scratch, name: str) -> None:
    """RabbitMQ applies drop-head after a requeue: the requeued message, back at the head, goes."""
    dlq = s.queue(f"{name}-dlq")
    queue = s.queue(name, x_max_length=2, x_dead_letter_exchange="", x_dead_letter_routing_key=dlq)
    s.send(queue, b"1", b"2")
    ch = s.channel()
    method, _, _ = ch.basic_get(queue)
    s.send(queue, b"3")
    ch.basic_nack(method.delivery_tag, requeue=True)
    [(_, props, body)] = s.wait_for(dlq)
    assert body == b"1" and props.headers["x-death"][0]["reason"] == "maxlen"
    assert [(m.redelivered, b) for m, _, b in s.drain(queue)] == [(False, b"2"), (False, b"3")]


def test_priority_queue_drops_its_head_the_highest_priority(s: Scratch, name: str) -> None:
    """drop-head drops the message that would be delivered next (RabbitMQ 3.10.8)."""
    queue = s.queue(name, x_max_priority=5, x_max_length=2)
    for body, priority in ((b"p1", 1), (b"p5", 5), (b"p3", 3)):
        s.publish("", queue, body, priority=priority)
    assert s.bodies(queue) == [b"p3", b"p1"]


# -- reject-publish ----------------------------------------------------------------------------


def test_reject_publish_nacks_when_full(s: Scratch, name: str) -> None:
    queue = s.queue(name, x_max_length=2, x_overflow="reject-publish")
    assert not refused(s, queue, b"1")
    assert not refused(s, queue, b"2")
    assert refused(s, queue, b"3")
    assert s.bodies(queue) == [b"1", b"2"]
    assert not refused(s, queue, b"4")  # room again


def test_reject_publish_counts_bytes(s: Scratch, name: str) -> None:
    queue = s.queue(name, x_max_length_bytes=4, x_overflow="reject-publish")
    assert not refused(s, queue, b"abc")
    assert refused(s, queue, b"de")
    assert not refused(s, queue, b"d")
    assert not refused(s, queue, b"")  # an empty body adds no bytes


def test_reject_publish_without_confirms_drops_silently(s: Scratch, name: str) -> None:
    queue = s.queue(name, x_max_length=1, x_overflow="reject-publish")
    ch = s.channel()
    ch.basic_publish("", queue, b"1")
    ch.basic_publish("", queue, b"2")
    ch.queue_declare(queue, passive=True)  # a round trip on the publishing channel
    assert ch.is_open
    assert s.bodies(queue) == [b"1"]


def test_reject_publish_dlx_nacks_and_dead_letters(s: Scratch, name: str) -> None:
    dlq = s.queue(f"{name}-dlq")
    queue = s.queue(
        name, x_max_length=1, x_overflow="reject-publish-dlx", x_dead_letter_exchange="", x_dead_letter_routing_key=dlq
    )
    assert not refused(s, queue, b"kept")
    assert refused(s, queue, b"refused")
    [(_, props, body)] = s.wait_for(dlq)
    assert body == b"refused"
    [death] = props.headers["x-death"]
    assert (death["reason"], death["queue"], death["routing-keys"]) == ("maxlen", queue, [queue])
    assert s.bodies(queue) == [b"kept"]


def test_reject_publish_plain_does_not_dead_letter(s: Scratch, name: str) -> None:
    dlq = s.queue(f"{name}-dlq")
    queue = s.queue(
        name, x_max_length=1, x_overflow="reject-publish", x_dead_letter_exchange="", x_dead_letter_routing_key=dlq
    )
    s.send(queue, b"kept")
    assert refused(s, queue, b"refused")
    assert s.ready(dlq) == 0


def test_one_full_queue_nacks_but_the_others_get_the_message(s: Scratch, name: str) -> None:
    fanout = s.exchange(f"{name}-x", "fanout")
    full = s.queue(f"{name}-full", x_max_length=0, x_overflow="reject-publish")
    open_ = s.queue(f"{name}-open")
    s.bind(full, fanout)
    s.bind(open_, fanout)
    with pytest.raises(pika.exceptions.NackError):
        s.publish(fanout, "", b"m")
    assert s.bodies(open_) == [b"m"]
    assert s.ready(full) == 0


def test_overflow_nack_frames_as_rabbitmq_sends_them(port: int, s: Scratch, name: str) -> None:
    """RabbitMQ 3.10.8: basic.nack{requeue=true}; later nacks may be coalesced (multiple)."""
    queue = s.queue(name, x_max_length=1, x_overflow="reject-publish")
    client = RawClient(port)
    try:
        client.handshake()
        client.send_method(1, pika.spec.Channel.Open())
        client.expect(pika.spec.Channel.OpenOk, 1)
        client.send_method(1, pika.spec.Confirm.Select())
        client.expect(pika.spec.Confirm.SelectOk, 1)
        for body in (b"1", b"2"):
            client.send_method(1, pika.spec.Basic.Publish(routing_key=queue))
            client.send(pika.frame.Header(1, len(body), pika.BasicProperties()).marshal())
            client.send(pika.frame.Body(1, body).marshal())
        # (RabbitMQ may send the nack before the ack: they come from different processes.)
        replies = sorted((client.read_method()[1] for _ in range(2)), key=lambda m: m.delivery_tag)
        ack, nack = replies
        assert isinstance(ack, pika.spec.Basic.Ack) and (ack.delivery_tag, ack.multiple) == (1, False)
        assert isinstance(nack, pika.spec.Basic.Nack)
        assert (nack.delivery_tag, nack.multiple, nack.requeue) == (2, False, True)
    finally:
        client.close()
