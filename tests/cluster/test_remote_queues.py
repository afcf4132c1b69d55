"""A queue led by another node behaves as on a single node: prefetch, acks, requeues and
redelivery, basic.get, cancel-notify, exclusivity.  And a classic queue's node going down
cancels its consumers elsewhere, as RabbitMQ does, and loses nothing."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any, TypeAlias

import pika
import pytest

from tests.cluster.harness import Cluster, wait_until

Conn: TypeAlias = pika.BlockingConnection


def connect(url: str) -> Conn:
    return pika.BlockingConnection(pika.URLParameters(url))


def pump(conn: Conn, until: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not until():
        assert time.monotonic() < deadline, "timed out"
        conn.process_data_events(0.05)


@pytest.fixture
def name() -> str:
    return f"rq-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def two(shared_cluster: Cluster) -> Iterator[tuple[Conn, Conn]]:
    """A connection to node1 (where queues are declared: they live there) and one to node2."""
    home, away = connect(shared_cluster.amqp_urls[0]), connect(shared_cluster.amqp_urls[1])
    yield home, away
    for conn in (home, away):
        if conn.is_open:
            conn.close()


def test_prefetch_acks_requeue_and_redelivery_through_the_link(two: tuple[Conn, Conn], name: str) -> None:
    home, away = two
    home.channel().queue_declare(name, durable=True)
    publisher = home.channel()
    publisher.confirm_delivery()
    for i in range(10):
        publisher.basic_publish("", name, b"%d" % i)
    ch = away.channel()
    ch.basic_qos(prefetch_count=3)
    got: list[tuple[bytes, bool, int]] = []
    ch.basic_consume(name, lambda c, m, p, b: got.append((b, m.redelivered, m.delivery_tag)))
    pump(away, lambda: len(got) == 3)
    away.process_data_events(0.3)
    assert len(got) == 3  # prefetch holds at the leader: no fourth delivery unacked
    ch.basic_nack(got[0][2], requeue=True)  # back to the queue, first in line
    ch.basic_ack(got[1][2])
    pump(away, lambda: len(got) >= 5)
    assert (b"0", True) in [(b, r) for b, r, _ in got[3:]]  # redelivered, flagged
    acked = 2  # got[0] went back, got[1] was acked
    deadline = time.monotonic() + 10
    while len({b for b, _, _ in got}) < 10 or acked < len(got):
        assert time.monotonic() < deadline, f"stuck with {got}"
        for _, _, tag in got[acked:]:
            ch.basic_ack(tag)
        acked = len(got)
        away.process_data_events(0.05)
    away.process_data_events(0.3)
    assert home.channel().queue_declare(name, passive=True).method.message_count == 0


def test_basic_get_ack_and_requeue_through_the_link(two: tuple[Conn, Conn], name: str) -> None:
    home, away = two
    home.channel().queue_declare(name)
    for body in (b"a", b"b"):
        home.channel().basic_publish("", name, body)
    ch = away.channel()
    wait_until(lambda: ch.queue_declare(name, passive=True).method.message_count == 2, 5, "both there")
    method, _, body = ch.basic_get(name)
    assert body == b"a" and method.message_count == 1 and not method.redelivered
    ch.basic_reject(method.delivery_tag, requeue=True)
    method, _, body = ch.basic_get(name, auto_ack=True)
    assert body == b"a" and method.redelivered
    method, _, body = ch.basic_get(name)
    assert body == b"b"
    ch.basic_ack(method.delivery_tag)
    assert ch.basic_get(name) == (None, None, None)


def test_cancel_notify_when_the_queue_is_deleted_on_another_node(two: tuple[Conn, Conn], name: str) -> None:
    home, away = two
    home.channel().queue_declare(name)
    ch = away.channel()
    cancelled: list[str] = []
    ch.add_on_cancel_callback(lambda frame: cancelled.append(frame.method.consumer_tag))
    tag = ch.basic_consume(name, lambda *a: None)
    home.channel().queue_delete(name)
    pump(away, lambda: cancelled == [tag])


def test_an_exclusive_queue_is_its_connection_s_alone_cluster_wide(two: tuple[Conn, Conn], name: str) -> None:
    home, away = two
    home.channel().queue_declare(name, exclusive=True)
    ch = away.channel()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as refused:
        ch.basic_consume(name, lambda *a: None)
    assert refused.value.reply_code == 405
    home.close()  # its connection gone, the queue goes everywhere
    wait_until(lambda: _answer(away, name) == 404, 5, "the queue gone")


def _answer(conn: Conn, name: str) -> int:
    """queue.declare(passive)'s answer on a fresh channel: 200, or the channel error's code
    (405 for another connection's exclusive queue, 404 once it is gone)."""
    try:
        conn.channel().queue_declare(name, passive=True)
    except pika.exceptions.ChannelClosedByBroker as exc:
        return int(exc.reply_code)
    return 200


def test_a_classic_queue_whose_node_dies_cancels_its_consumers_and_keeps_its_messages(cluster: Cluster) -> None:
    node2 = cluster.node("node2")
    with connect(node2.url()) as there:
        ch = there.channel()
        ch.queue_declare("lives-on-2", durable=True)
        ch.confirm_delivery()
        for i in range(5):
            ch.basic_publish("", "lives-on-2", b"%d" % i, pika.BasicProperties(delivery_mode=2))
    here = connect(cluster.amqp_urls[0])
    try:
        ch = here.channel()
        cancelled: list[str] = []
        ch.add_on_cancel_callback(lambda frame: cancelled.append(frame.method.consumer_tag))
        ch.basic_qos(prefetch_count=1)
        tag = ch.basic_consume("lives-on-2", lambda *a: None)
        pump(here, lambda: True)
        node2.kill()
        pump(here, lambda: cancelled == [tag], timeout=15)  # as RabbitMQ: its node is down
        assert _answer(here, "lives-on-2") == 404  # "home node ... is down or inaccessible"
        node2.restart()
        wait_until(lambda: _answer(here, "lives-on-2") == 200, 20, "the queue back")
        ch = here.channel()
        assert ch.queue_declare("lives-on-2", passive=True).method.message_count == 5
        bodies = [ch.basic_get("lives-on-2", auto_ack=True)[2] for _ in range(5)]
        assert bodies == [b"0", b"1", b"2", b"3", b"4"]
    finally:
        here.close()


def test_a_stream_lives_on_its_node_and_takes_publishes_from_any(two: tuple[Conn, Conn], name: str) -> None:
    """Streams are not replicated: one is read on the node that holds it (the declaring one);
    publishes from another node reach it, and consuming elsewhere is refused with a 406 that
    names the node."""
    home, away = two
    home.channel().queue_declare(name, durable=True, arguments={"x-queue-type": "stream"})
    publisher = away.channel()
    publisher.confirm_delivery()
    for i in range(5):
        publisher.basic_publish("", name, b"%d" % i)
    ch = home.channel()
    ch.basic_qos(prefetch_count=10)
    got: list[tuple[bytes, int]] = []

    def take(c: Any, method: Any, props: Any, body: bytes) -> None:
        got.append((body, props.headers["x-stream-offset"]))
        c.basic_ack(method.delivery_tag)

    ch.basic_consume(name, take, arguments={"x-stream-offset": "first"})
    pump(home, lambda: len(got) == 5)
    assert [b for b, _ in got] == [b"0", b"1", b"2", b"3", b"4"]
    elsewhere = away.channel()
    elsewhere.basic_qos(prefetch_count=10)
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as refused:
        elsewhere.basic_consume(name, lambda *a: None, arguments={"x-stream-offset": "first"})
    assert refused.value.reply_code == 406 and "consume from it on that node" in refused.value.reply_text
