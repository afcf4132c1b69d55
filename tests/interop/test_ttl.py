"""TTL: per-queue message TTL (x-message-ttl), per-message expiration, queue expiry (x-expires).

Pinned to RabbitMQ 3.10.8 (the same code was run against it): an expired message is never
delivered, is dead-lettered as ``expired`` when the queue has a dead-letter exchange, and is
only looked at when it reaches the head of the queue (no scan: a short-lived message behind a
long-lived one waits, still counted, until it is at the head).  Waiting is by polling with a
deadline; where a test needs "enough time has passed", a sibling message with the same TTL
that must have expired by then is the clock.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import pika
import pytest

from tests.interop.ext_support import Scratch, connect, is_recent, wait_until
from tests.server import ServerProcess


@pytest.fixture
def s(port: int) -> Iterator[Scratch]:
    with Scratch(port) as scratch:
        yield scratch


def with_dlq(s: Scratch, name: str, **arguments: object) -> tuple[str, str]:
    """A queue whose dead letters go (through the default exchange) to ``<name>-dlq``."""
    dlq = s.queue(f"{name}-dlq")
    queue = s.queue(name, x_dead_letter_exchange="", x_dead_letter_routing_key=dlq, **arguments)
    return queue, dlq


# -- per-queue TTL ---------------------------------------------------------------------------


def test_queue_ttl_expires_messages(s: Scratch, name: str) -> None:
    queue = s.queue(name, x_message_ttl=50)
    s.send(queue, b"1", b"2", b"3")
    wait_until(lambda: s.ready(queue) == 0, what="the messages to expire")
    assert s.get(queue) is None


def test_expired_messages_are_never_delivered_to_a_late_consumer(s: Scratch, name: str) -> None:
    queue, dlq = with_dlq(s, name, x_message_ttl=50)
    s.send(queue, b"old")
    s.wait_for(dlq)  # it expired
    s.send(queue, b"new")
    ch = s.channel()
    _, _, body = next(ch.consume(queue, auto_ack=True, inactivity_timeout=5))
    assert body == b"new"
    ch.cancel()


def test_expired_message_is_dead_lettered_as_expired(s: Scratch, name: str) -> None:
    queue, dlq = with_dlq(s, name, x_message_ttl=20)
    s.publish("", queue, b"late", headers={"app": "kept"}, content_type="text/plain")
    [(method, props, body)] = s.wait_for(dlq)
    assert body == b"late"
    assert (method.exchange, method.routing_key) == ("", dlq)  # the dead-letter routing key
    assert props.content_type == "text/plain"
    death = props.headers["x-death"]
    assert len(death) == 1 and is_recent(death[0].pop("time"))
    assert death == [{"count": 1, "reason": "expired", "queue": queue, "exchange": "", "routing-keys": [queue]}]
    assert props.headers["app"] == "kept"


def test_ttl_zero_delivers_to_a_waiting_consumer_or_expires_at_once(s: Scratch, name: str) -> None:
    """x-message-ttl 0: 'deliver now or never' (RabbitMQ)."""
    queue, dlq = with_dlq(s, name, x_message_ttl=0)
    s.send(queue, b"nobody-waits")
    [(_, props, body)] = s.wait_for(dlq)
    assert body == b"nobody-waits" and props.headers["x-death"][0]["reason"] == "expired"
    ch = s.channel()
    received: list[bytes] = []
    ch.basic_consume(queue, lambda c, m, p, b: received.append(b), auto_ack=True)
    s.send(queue, b"taken")
    wait_until(lambda: received, conn=s.conn, what="the delivery")
    assert received == [b"taken"]
    assert s.ready(dlq) == 0


# -- per-message TTL -------------------------------------------------------------------------


def test_per_message_expiration(s: Scratch, name: str) -> None:
    queue = s.queue(name)
    s.publish("", queue, b"short", expiration="20")
    s.publish("", queue, b"forever")
    wait_until(lambda: s.ready(queue) == 1, what="the short-lived message to expire")
    assert s.bodies(queue) == [b"forever"]


def test_expiration_dead_letter_keeps_it_as_original_expiration(s: Scratch, name: str) -> None:
    """The expiration property is removed and recorded in x-death as original-expiration."""
    queue, dlq = with_dlq(s, name)
    s.publish("", queue, b"m", expiration="10")
    [(_, props, _)] = s.wait_for(dlq)
    assert props.expiration is None
    death = props.headers["x-death"][0]
    assert death["original-expiration"] == "10"
    assert death["reason"] == "expired"


@pytest.mark.parametrize(("queue_ttl", "message_ttl"), [(60_000, "10"), (10, "60000")])
def test_the_lower_of_queue_and_message_ttl_applies(s: Scratch, name: str, queue_ttl: int, message_ttl: str) -> None:
    queue, dlq = with_dlq(s, name, x_message_ttl=queue_ttl)
    s.publish("", queue, b"m", expiration=message_ttl)
    s.wait_for(dlq)
    assert s.ready(queue) == 0


def test_expired_message_behind_a_live_one_waits_for_the_head(s: Scratch, name: str) -> None:
    """RabbitMQ only expires messages at the head: a short-lived message behind one without a
    TTL stays (and is counted) until it reaches the head, then it is dead-lettered instead of
    delivered."""
    queue, dlq = with_dlq(s, name)
    clock = s.queue(f"{name}-clock")
    s.publish("", queue, b"no-ttl")
    s.publish("", queue, b"short", expiration="20")
    s.publish("", clock, b"tick", expiration="20")
    wait_until(lambda: s.ready(clock) == 0, what="the clock message to expire")
    assert s.ready(queue) == 2  # "short" is due, but not at the head
    assert s.ready(dlq) == 0
    got = s.get(queue)
    assert got is not None and got[2] == b"no-ttl"
    assert s.get(queue) is None  # "short" reached the head expired
    [(_, props, body)] = s.wait_for(dlq)
    assert body == b"short" and props.headers["x-death"][0]["reason"] == "expired"


def test_requeued_message_keeps_its_expiry(s: Scratch, name: str) -> None:
    """A message held unacknowledged past its TTL expires when it is requeued."""
    queue, dlq = with_dlq(s, name, x_message_ttl=100)
    clock = s.queue(f"{name}-clock", x_message_ttl=100)
    s.send(queue, b"held")
    ch = s.channel()
    method, _, _ = ch.basic_get(queue)
    s.send(clock, b"tick")
    wait_until(lambda: s.ready(clock) == 0, what="the clock message to expire")
    ch.basic_nack(method.delivery_tag, requeue=True)
    [(_, props, body)] = s.wait_for(dlq)
    assert body == b"held" and props.headers["x-death"][0]["reason"] == "expired"
    assert s.get(queue) is None


def test_messages_expire_in_order_while_a_consumer_is_busy(s: Scratch, name: str) -> None:
    """With a consumer holding its one unacked message, the rest expire at the head in turn."""
    queue, dlq = with_dlq(s, name, x_message_ttl=30)
    ch = s.channel()
    ch.basic_qos(prefetch_count=1)
    held: list[int] = []
    ch.basic_consume(queue, lambda c, m, p, b: held.append(m.delivery_tag))
    s.send(queue, b"1", b"2", b"3", b"4")
    wait_until(lambda: s.ready(dlq) == 3, conn=s.conn, what="three dead letters")
    assert [body for _, _, body in s.drain(dlq)] == [b"2", b"3", b"4"]
    assert len(held) == 1
    ch.basic_ack(held[0])


@pytest.mark.parametrize("dead_letter", [False, True])
def test_a_backlog_larger_than_memory_expires(s: Scratch, name: str, dead_letter: bool) -> None:
    """Ten thousand messages, most of them paged out to disk (the session's server keeps
    4,096 per queue in memory): all expire, dead-lettered in order when a DLX is set."""
    if dead_letter:
        queue, dlq = with_dlq(s, name, x_message_ttl=300)
    else:
        queue, dlq = s.queue(name, x_message_ttl=300), ""
    ch = s.channel()
    for i in range(10_000):
        ch.basic_publish("", queue, b"%d" % i)
    wait_until(lambda: s.ready(queue) == 0, timeout=10, what="ten thousand messages to expire")
    if dead_letter:
        wait_until(lambda: s.ready(dlq) == 10_000, timeout=10, what="ten thousand dead letters")
        bodies = []
        for _, _, body in ch.consume(dlq, auto_ack=True, inactivity_timeout=5):
            bodies.append(body)
            if len(bodies) == 10_000:
                break
        ch.cancel()
        assert bodies == [b"%d" % i for i in range(10_000)]


# -- queue expiry ----------------------------------------------------------------------------


def test_unused_queue_expires(s: Scratch, name: str) -> None:
    """x-expires: the queue is deleted once unused that long, messages and all."""
    queue = s.queue(name, x_expires=100)
    s.send(queue, b"lost with the queue")
    wait_until(lambda: not s.exists(queue), what="the queue to expire")


def test_queue_with_a_consumer_does_not_expire(s: Scratch, name: str) -> None:
    queue = s.queue(name, x_expires=100)
    clock = s.queue(f"{name}-clock", x_expires=100)
    ch = s.channel()
    tag = ch.basic_consume(queue, lambda *a: None)
    wait_until(lambda: not s.exists(clock), what="the clock queue to expire")
    assert s.exists(queue)
    ch.basic_cancel(tag)  # unused from now on
    wait_until(lambda: not s.exists(queue), what="the queue to expire after its consumer went")


def test_basic_get_and_redeclare_keep_a_queue_alive(s: Scratch, name: str) -> None:
    """Each basic.get or redeclaration restarts the x-expires countdown (RabbitMQ: 'unused'
    means no consumers, no basic.get, no redeclaration)."""
    queue = s.queue(name, x_expires=600)
    clock = s.queue(f"{name}-clock", x_expires=600)
    for i in range(12):  # ~1.2 s in all, 0.1 s between uses
        if i % 2:
            s.get(queue)
        else:
            s.ch.queue_declare(queue, arguments={"x-expires": 600})
        s.conn.sleep(0.1)
    assert not s.exists(clock)
    assert s.exists(queue)


# -- durability --------------------------------------------------------------------------------


TTL_ACROSS_RESTART = 2500  # ms


def test_ttl_still_applies_after_a_restart(fresh_server: ServerProcess) -> None:
    """Persistent messages with a TTL in a durable queue still expire after a restart (the
    deadlines are not on disk; a recovered message's TTL counts from when its segment was
    last written, here just before the restart).  The TTL must outlast the restart: 300 ms did
    not on a loaded 2-core machine, where stopping and starting the server took up to 1.1 s."""
    server = fresh_server.start()
    with connect(server.port) as conn:
        ch = conn.channel()
        ch.confirm_delivery()
        ch.queue_declare("dlq", durable=True)
        dead_letter = {"x-dead-letter-exchange": "", "x-dead-letter-routing-key": "dlq"}
        ch.queue_declare("ttl-q", durable=True, arguments={"x-message-ttl": TTL_ACROSS_RESTART, **dead_letter})
        ch.queue_declare("exp-q", durable=True, arguments=dead_letter)
        persistent = pika.BasicProperties(delivery_mode=2)
        ch.basic_publish("", "ttl-q", b"queue-ttl", persistent)
        ch.basic_publish(
            "", "exp-q", b"message-ttl", pika.BasicProperties(delivery_mode=2, expiration=str(TTL_ACROSS_RESTART))
        )
    assert server.stop() == 0
    server.start()
    with connect(server.port) as conn:
        ch = conn.channel()
        assert ch.queue_declare("ttl-q", passive=True).method.message_count == 1
        wait_until(lambda: ch.queue_declare("ttl-q", passive=True).method.message_count == 0, what="expiry")
        _, _, body = ch.basic_get("dlq", auto_ack=True)
        assert body == b"queue-ttl"
        # A clock message with the same TTL, published after the restart, expiring means the
        # recovered one is due: it is dead-lettered when it reaches the head (here: a get).
        ch.queue_declare("clock", arguments={"x-message-ttl": TTL_ACROSS_RESTART})
        ch.basic_publish("", "clock", b"tick")
        wait_until(lambda: ch.queue_declare("clock", passive=True).method.message_count == 0, what="the clock")
        assert ch.basic_get("exp-q", auto_ack=True)[0] is None
        _, props, body = ch.basic_get("dlq", auto_ack=True)
        assert body == b"message-ttl" and props.headers["x-death"][0]["original-expiration"] == str(TTL_ACROSS_RESTART)


def test_time_the_node_was_down_counts_towards_ttl(fresh_server: ServerProcess) -> None:
    """As RabbitMQ, a message's TTL keeps running while the node is down: messages written an
    hour before the restart (their segment files dated back an hour here) with a TTL of a
    minute are dead on recovery, whether the queue's TTL or their own, in a paged queue or a
    priority queue (kept in memory); a message without a TTL stays."""
    server = fresh_server.start()
    dead_letter = {"x-dead-letter-exchange": "", "x-dead-letter-routing-key": "dlq"}
    persistent = pika.BasicProperties(delivery_mode=2)
    with connect(server.port) as conn:
        ch = conn.channel()
        ch.confirm_delivery()
        ch.queue_declare("dlq", durable=True)
        ch.queue_declare("ttl-q", durable=True, arguments={"x-message-ttl": 60_000, **dead_letter})
        ch.queue_declare("exp-q", durable=True, arguments=dead_letter)
        prio_args = {"x-max-priority": 5, "x-message-ttl": 60_000, **dead_letter}
        ch.queue_declare("prio-q", durable=True, arguments=prio_args)
        ch.basic_publish("", "ttl-q", b"queue-ttl", persistent)
        ch.basic_publish("", "exp-q", b"message-ttl", pika.BasicProperties(delivery_mode=2, expiration="60000"))
        ch.basic_publish("", "exp-q", b"no-ttl", persistent)
        ch.basic_publish("", "prio-q", b"priority", persistent)
    assert server.stop() == 0
    an_hour_ago = time.time() - 3600
    assert server.data_dir is not None
    segments = list(server.data_dir.rglob("*.seg"))
    assert segments
    for segment in segments:
        os.utime(segment, (an_hour_ago, an_hour_ago))
    server.start()
    with connect(server.port) as conn:
        ch = conn.channel()
        for queue in ("ttl-q", "prio-q"):
            wait_until(lambda q=queue: ch.queue_declare(q, passive=True).method.message_count == 0, what=queue)
        _, _, body = ch.basic_get("exp-q", auto_ack=True)  # the expired head goes on the way
        assert body == b"no-ttl"
        dead = set()
        while (got := ch.basic_get("dlq", auto_ack=True))[0] is not None:
            dead.add(got[2])
        assert dead == {b"queue-ttl", b"message-ttl", b"priority"}
