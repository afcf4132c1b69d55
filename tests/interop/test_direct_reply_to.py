"""Direct reply-to: RPC replies straight to the requesting channel through the pseudo-queue
``amq.rabbitmq.reply-to``, as RabbitMQ 3.10.8 does it (probes p15*, rerun with this code).

The requester consumes the pseudo-queue with no-ack and publishes its request with
``reply_to: amq.rabbitmq.reply-to``; the server rewrites that to
``amq.rabbitmq.reply-to.<token>``, and a reply published to the default exchange with that
routing key reaches the requester's channel.  The pseudo-queue is not a route: a mandatory
reply is delivered and also returned 312 NO_ROUTE.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pika
import pika.exceptions
import pytest

from tests.interop.ext_support import Scratch, connect, wait_until

REPLY_TO = "amq.rabbitmq.reply-to"


@pytest.fixture
def s(port: int) -> Iterator[Scratch]:
    with Scratch(port) as scratch:
        yield scratch


class Server:
    """An RPC server on its own connection: answers each request with its body upper-cased."""

    def __init__(self, port: int, queue: str, mandatory: bool = False) -> None:
        self.conn = connect(port)
        self.ch = self.conn.channel()
        self.ch.queue_declare(queue, auto_delete=True)
        self.requests: list[Any] = []
        self.returned: list[Any] = []
        self.mandatory = mandatory
        self.ch.add_on_return_callback(lambda c, m, p, b: self.returned.append(m))
        self.ch.basic_consume(queue, self.on_request, auto_ack=True)

    def on_request(self, ch: Any, method: Any, props: Any, body: bytes) -> None:
        self.requests.append(props)
        reply = pika.BasicProperties(correlation_id=props.correlation_id, content_type="text/plain")
        ch.basic_publish("", props.reply_to, body.upper(), reply, mandatory=self.mandatory)

    def serve(self, until: Any) -> None:
        wait_until(until, conn=self.conn, what="the RPC server's work")

    def close(self) -> None:
        self.conn.close()


@pytest.fixture
def rpc(port: int, name: str) -> Iterator[Server]:
    server = Server(port, name)
    yield server
    server.close()


def call(s: Scratch, ch: Any, queue: str, body: bytes, replies: list[Any], rpc: Server) -> Any:
    """One request; returns (deliver method, properties, body) of the reply."""
    correlation = uuid.uuid4().hex
    before, served = len(replies), len(rpc.requests)
    ch.basic_publish("", queue, body, pika.BasicProperties(reply_to=REPLY_TO, correlation_id=correlation))
    rpc.serve(lambda: len(rpc.requests) > served)
    wait_until(lambda: len(replies) > before, conn=s.conn, what="the reply")
    method, props, reply = replies[-1]
    assert props.correlation_id == correlation
    return method, props, reply


def reply_consumer(ch: Any) -> list[Any]:
    replies: list[Any] = []
    ch.basic_consume(REPLY_TO, lambda c, m, p, b: replies.append((m, p, b)), auto_ack=True)
    return replies


def test_rpc_round_trip(s: Scratch, rpc: Server, name: str) -> None:
    ch = s.channel()
    replies = reply_consumer(ch)
    method, props, body = call(s, ch, name, b"ping", replies, rpc)
    assert body == b"PING"
    address = rpc.requests[0].reply_to
    assert address.startswith(REPLY_TO + ".") and len(address) > len(REPLY_TO) + 1
    assert (method.exchange, method.routing_key) == ("", address)
    assert props.content_type == "text/plain"


def test_several_requests_share_one_address_per_channel(s: Scratch, rpc: Server, name: str) -> None:
    ch = s.channel()
    replies = reply_consumer(ch)
    for word in (b"a", b"b", b"c"):
        assert call(s, ch, name, word, replies, rpc)[2] == word.upper()
    assert len({props.reply_to for props in rpc.requests}) == 1


def test_each_channel_gets_its_own_replies(s: Scratch, rpc: Server, name: str) -> None:
    first, second = s.channel(), s.channel()
    first_replies, second_replies = reply_consumer(first), reply_consumer(second)
    call(s, first, name, b"one", first_replies, rpc)
    call(s, second, name, b"two", second_replies, rpc)
    assert [b for _, _, b in first_replies] == [b"ONE"]
    assert [b for _, _, b in second_replies] == [b"TWO"]
    assert rpc.requests[0].reply_to != rpc.requests[1].reply_to


def test_a_mandatory_reply_is_delivered_and_returned(s: Scratch, port: int, name: str) -> None:
    """RabbitMQ 3.10.8: the pseudo-queue does not count as a route."""
    server = Server(port, name, mandatory=True)
    try:
        ch = s.channel()
        replies = reply_consumer(ch)
        assert call(s, ch, name, b"x", replies, server)[2] == b"X"
        server.serve(lambda: server.returned)
        assert (server.returned[0].reply_code, server.returned[0].reply_text) == (312, "NO_ROUTE")
    finally:
        server.close()


def test_the_reply_consumer_must_be_no_ack(s: Scratch) -> None:
    ch = s.channel()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as exc:
        ch.basic_consume(REPLY_TO, lambda *a: None, auto_ack=False)
    assert (exc.value.reply_code, exc.value.reply_text) == (
        406,
        "PRECONDITION_FAILED - reply consumer cannot acknowledge",
    )


def test_one_reply_consumer_per_channel(s: Scratch) -> None:
    ch = s.channel()
    reply_consumer(ch)
    other = s.channel()
    reply_consumer(other)  # another channel: fine
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as exc:
        ch.basic_consume(REPLY_TO, lambda *a: None, auto_ack=True)
    assert (exc.value.reply_code, exc.value.reply_text) == (406, "PRECONDITION_FAILED - reply consumer already set")


def test_a_request_needs_a_reply_consumer(s: Scratch, name: str) -> None:
    queue = s.queue(name)
    ch = s.channel()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as exc:
        ch.basic_publish("", queue, b"q", pika.BasicProperties(reply_to=REPLY_TO))
        ch.queue_declare(queue, passive=True)  # the error arrives asynchronously
    assert (exc.value.reply_code, exc.value.reply_text) == (
        406,
        "PRECONDITION_FAILED - fast reply consumer does not exist",
    )
    # Only the exact name is checked.
    s.publish("", queue, b"q", reply_to=REPLY_TO + ".foo")
    assert s.ready(queue) == 1


def test_after_cancelling_the_reply_consumer_requests_are_refused(s: Scratch, name: str) -> None:
    queue = s.queue(name)
    ch = s.channel()
    tag = ch.basic_consume(REPLY_TO, lambda *a: None, auto_ack=True)
    ch.basic_cancel(tag)
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as exc:
        ch.basic_publish("", queue, b"q", pika.BasicProperties(reply_to=REPLY_TO))
        ch.queue_declare(queue, passive=True)
    assert exc.value.reply_text == "PRECONDITION_FAILED - fast reply consumer does not exist"


def test_the_pseudo_queue_and_a_live_address_can_be_declared(s: Scratch, rpc: Server, name: str) -> None:
    ok = s.ch.queue_declare(REPLY_TO).method
    assert (ok.queue, ok.message_count, ok.consumer_count) == (REPLY_TO, 0, 1)
    ch = s.channel()
    replies = reply_consumer(ch)
    call(s, ch, name, b"x", replies, rpc)
    address = rpc.requests[0].reply_to
    ok = s.ch.queue_declare(address, passive=True).method
    assert (ok.message_count, ok.consumer_count) == (0, 1)


def test_replies_to_unknown_or_gone_addresses_are_unroutable(s: Scratch, port: int, rpc: Server, name: str) -> None:
    requester = connect(port)
    ch = requester.channel()
    replies = reply_consumer(ch)
    ch.basic_publish("", name, b"x", pika.BasicProperties(reply_to=REPLY_TO))
    rpc.serve(lambda: rpc.requests)
    wait_until(lambda: replies, conn=requester, what="the reply")
    address = rpc.requests[0].reply_to
    requester.close()
    returned: list[str] = []
    out = s.channel()
    out.add_on_return_callback(lambda c, m, p, b: returned.append(m.routing_key))
    for key in (address, REPLY_TO + ".garbage", REPLY_TO):
        out.basic_publish("", key, b"late", mandatory=True)
    out.queue_declare("", exclusive=True)  # a round trip: the returns came before its reply
    s.conn.process_data_events(0)
    assert returned == [address, REPLY_TO + ".garbage", REPLY_TO]


def test_a_reply_through_another_exchange_is_not_delivered(s: Scratch, rpc: Server, name: str) -> None:
    ch = s.channel()
    replies = reply_consumer(ch)
    call(s, ch, name, b"x", replies, rpc)
    address = rpc.requests[0].reply_to
    returned: list[Any] = []
    out = s.channel()
    out.add_on_return_callback(lambda c, m, p, b: returned.append(m))
    out.basic_publish("amq.direct", address, b"wrong way", mandatory=True)
    out.queue_declare("", exclusive=True)
    s.conn.process_data_events(0.05)
    assert len(returned) == 1 and len(replies) == 1


def test_a_confirmed_reply(s: Scratch, rpc: Server, name: str) -> None:
    """A reply published on a confirming channel is acked (and delivered)."""
    ch = s.channel()
    replies = reply_consumer(ch)
    call(s, ch, name, b"x", replies, rpc)
    s.publish("", rpc.requests[0].reply_to, b"confirmed")  # raises unless acked
    wait_until(lambda: len(replies) == 2, conn=s.conn, what="the confirmed reply")
    assert replies[1][2] == b"confirmed"


def test_reply_deliveries_do_not_use_up_delivery_tags(s: Scratch, rpc: Server, name: str) -> None:
    """RabbitMQ 3.10.8 does not number reply deliveries: they carry the channel's next tag,
    which the next basic.get then uses."""
    queue = s.queue(f"{name}-q")
    s.send(queue, b"1", b"2")
    ch = s.channel()
    replies = reply_consumer(ch)
    assert ch.basic_get(queue)[0].delivery_tag == 1
    for word in (b"a", b"b", b"c"):
        call(s, ch, name, word, replies, rpc)
    assert [m.delivery_tag for m, _, _ in replies] == [2, 2, 2]
    assert ch.basic_get(queue)[0].delivery_tag == 2
