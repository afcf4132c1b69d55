"""Alternate exchanges (the ``alternate-exchange`` argument, or policy key): what an exchange
cannot route goes to its alternate, as RabbitMQ 3.10.8 does it (checked with the same code).

A message routed through an alternate exchange counts as routed (no basic.return for a
mandatory publish) and keeps the exchange and routing key it was published with.  Alternates
chain, every exchange on the way (exchange-to-exchange bindings included) may use its own,
and a cycle of alternates ends: the message is unroutable.
"""

from __future__ import annotations

from collections.abc import Iterator

import pika
import pika.exceptions
import pytest

from tests.interop.ext_support import Scratch, wait_until


@pytest.fixture
def s(port: int) -> Iterator[Scratch]:
    with Scratch(port) as scratch:
        yield scratch


class Returns:
    """Mandatory publishes on their own channel, collecting basic.return."""

    def __init__(self, s: Scratch) -> None:
        self.s = s
        self.ch = s.channel()
        self.returned: list[tuple[int, str, str, bytes]] = []
        self.ch.add_on_return_callback(
            lambda c, m, p, b: self.returned.append((m.reply_code, m.exchange, m.routing_key, b))
        )

    def publish(self, exchange: str, key: str, body: bytes) -> None:
        self.ch.basic_publish(exchange, key, body, pika.BasicProperties(), mandatory=True)
        # A round trip on the same channel: a basic.return would have arrived before its reply.
        self.ch.queue_declare("", exclusive=True, auto_delete=True)
        self.s.conn.process_data_events(0)


def test_unroutable_messages_go_to_the_alternate(s: Scratch, name: str) -> None:
    ae = s.exchange(f"{name}-ae", "fanout")
    unrouted = s.queue(f"{name}-unrouted")
    s.bind(unrouted, ae)
    main = s.exchange(f"{name}-main", "direct", **{"alternate-exchange": ae})
    routed = s.queue(f"{name}-routed")
    s.bind(routed, main, "known")
    r = Returns(s)
    r.publish(main, "known", b"routed")
    r.publish(main, "unknown", b"alternate")
    assert r.returned == []  # routed through the alternate counts as routed
    assert s.bodies(routed) == [b"routed"]
    [(method, _, body)] = s.drain(unrouted)
    assert (method.exchange, method.routing_key, body) == (main, "unknown", b"alternate")


def test_a_missing_alternate_leaves_the_message_unroutable(s: Scratch, name: str) -> None:
    main = s.exchange(f"{name}-main", "direct", **{"alternate-exchange": f"{name}-missing"})
    r = Returns(s)
    r.publish(main, "k", b"lost")
    assert r.returned == [(312, main, "k", b"lost")]


def test_an_alternate_that_routes_nowhere_returns_the_message(s: Scratch, name: str) -> None:
    ae = s.exchange(f"{name}-ae", "direct")
    main = s.exchange(f"{name}-main", "direct", **{"alternate-exchange": ae})
    r = Returns(s)
    r.publish(main, "k", b"m")
    assert r.returned == [(312, main, "k", b"m")]


def test_alternates_chain(s: Scratch, name: str) -> None:
    last = s.exchange(f"{name}-last", "fanout")
    middle = s.exchange(f"{name}-middle", "direct", **{"alternate-exchange": last})
    main = s.exchange(f"{name}-main", "topic", **{"alternate-exchange": middle})
    queue = s.queue(f"{name}-q")
    s.bind(queue, last)
    s.publish(main, "a.b", b"m")
    [(method, _, _)] = s.drain(queue)
    assert (method.exchange, method.routing_key) == (main, "a.b")


def test_a_cycle_of_alternates_ends_unroutable(s: Scratch, name: str) -> None:
    one, two = f"{name}-1", f"{name}-2"
    s.exchange(one, "direct", **{"alternate-exchange": two})
    s.exchange(two, "direct", **{"alternate-exchange": one})
    r = Returns(s)
    r.publish(one, "k", b"m")
    assert r.returned == [(312, one, "k", b"m")]


def test_an_exchange_bound_to_an_exchange_uses_its_own_alternate(s: Scratch, name: str) -> None:
    """Every exchange the message visits applies its alternate when it routes nowhere."""
    ae = s.exchange(f"{name}-ae", "fanout")
    inner = s.exchange(f"{name}-inner", "direct", **{"alternate-exchange": ae})
    outer = s.exchange(f"{name}-outer", "fanout")
    s.ch.exchange_bind(inner, outer)
    queue = s.queue(f"{name}-q")
    s.bind(queue, ae)
    s.publish(outer, "k", b"m")
    assert s.bodies(queue) == [b"m"]


def test_no_alternate_when_the_message_is_routed(s: Scratch, name: str) -> None:
    ae = s.exchange(f"{name}-ae", "fanout")
    unrouted = s.queue(f"{name}-unrouted")
    s.bind(unrouted, ae)
    main = s.exchange(f"{name}-main", "fanout", **{"alternate-exchange": ae})
    routed = s.queue(f"{name}-routed")
    s.bind(routed, main)
    s.publish(main, "", b"m")
    assert (s.ready(routed), s.ready(unrouted)) == (1, 0)


def test_a_publish_through_an_alternate_is_confirmed(s: Scratch, name: str) -> None:
    ae = s.exchange(f"{name}-ae", "fanout")
    queue = s.queue(f"{name}-q", durable=True)
    s.bind(queue, ae)
    main = s.exchange(f"{name}-main", "direct", **{"alternate-exchange": ae})
    s.publish(main, "k", b"persistent", delivery_mode=2)  # confirmed, or this raises
    [(_, props, _)] = s.drain(queue)
    assert props.delivery_mode == 2


def test_alternate_exchange_argument_must_be_a_string(s: Scratch, name: str) -> None:
    ch = s.channel()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as exc:
        ch.exchange_declare(name, "direct", arguments={"alternate-exchange": 5})
    assert exc.value.reply_code == 406
    assert exc.value.reply_text == (
        f"PRECONDITION_FAILED - invalid type 'signedint' for arg 'alternate-exchange' in exchange '{name}' in vhost '/'"
    )


def test_redeclaring_with_another_alternate_is_refused(s: Scratch, name: str) -> None:
    main = s.exchange(name, "direct")
    ch = s.channel()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as exc:
        ch.exchange_declare(main, "direct", arguments={"alternate-exchange": "x"})
    assert exc.value.reply_code == 406
    assert exc.value.reply_text == (
        f"PRECONDITION_FAILED - inequivalent arg 'alternate-exchange' for exchange '{main}' in vhost '/': "
        "received the value 'x' of type 'longstr' but current is none"
    )


def test_messages_to_a_deleted_alternate_are_unroutable(s: Scratch, name: str) -> None:
    ae = s.exchange(f"{name}-ae", "fanout")
    queue = s.queue(f"{name}-q")
    s.bind(queue, ae)
    main = s.exchange(f"{name}-main", "direct", **{"alternate-exchange": ae})
    s.ch.exchange_delete(ae)
    r = Returns(s)
    r.publish(main, "k", b"m")
    assert r.returned == [(312, main, "k", b"m")]
    assert s.ready(queue) == 0


def test_alternate_exchange_with_a_consumer(s: Scratch, name: str) -> None:
    """As an application sets it up: unrouted orders are collected by a consumer."""
    ae = s.exchange(f"{name}-unrouted", "fanout")
    collector = s.queue(f"{name}-collector")
    s.bind(collector, ae)
    orders = s.exchange(f"{name}-orders", "topic", **{"alternate-exchange": ae})
    eu = s.queue(f"{name}-eu")
    s.bind(eu, orders, "eu.#")
    got: list[tuple[str, bytes]] = []
    ch = s.channel()
    ch.basic_consume(collector, lambda c, m, p, b: got.append((m.routing_key, b)), auto_ack=True)
    for key in ("eu.fr", "us.ca", "eu.de.berlin", "apac"):
        s.publish(orders, key, key.encode())
    wait_until(lambda: len(got) == 2, conn=s.conn, what="two unrouted orders")
    assert got == [("us.ca", b"us.ca"), ("apac", b"apac")]
    assert s.bodies(eu) == [b"eu.fr", b"eu.de.berlin"]
