"""Consumer priorities (x-priority) and consumer cancel notifications, as RabbitMQ 3.10.8.

Messages go to the highest-priority consumers that can take them (round-robin among equals);
lower-priority consumers get messages only while every higher one is blocked by its
prefetch.  When a queue goes away under a consumer, a client that announced
``consumer_cancel_notify`` (pika does) receives basic.cancel.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import pika.exceptions
import pytest

from tests.interop.ext_support import Scratch, wait_until


@pytest.fixture
def s(port: int) -> Iterator[Scratch]:
    with Scratch(port) as scratch:
        yield scratch


class Recorder:
    """Consumers on their own channels, recording (consumer, body) and optionally holding."""

    def __init__(self, s: Scratch, queue: str) -> None:
        self.s = s
        self.queue = queue
        self.got: list[tuple[str, bytes]] = []
        self.held: dict[str, list[tuple[Any, int]]] = {}

    def consume(self, label: str, priority: int | None = None, prefetch: int = 0, ack: bool = True) -> Any:
        ch = self.s.channel()
        if prefetch:
            ch.basic_qos(prefetch_count=prefetch)
        self.held[label] = []

        def on_message(channel: Any, method: Any, props: Any, body: bytes) -> None:
            self.got.append((label, body))
            if ack:
                channel.basic_ack(method.delivery_tag)
            else:
                self.held[label].append((channel, method.delivery_tag))

        arguments = None if priority is None else {"x-priority": priority}
        ch.basic_consume(self.queue, on_message, arguments=arguments, consumer_tag=label)
        return ch

    def wait(self, count: int) -> list[tuple[str, bytes]]:
        wait_until(lambda: len(self.got) >= count, conn=self.s.conn, what=f"{count} deliveries")
        return self.got

    def release(self, label: str) -> None:
        for channel, tag in self.held[label]:
            channel.basic_ack(tag)
        self.held[label] = []


def test_the_highest_priority_consumer_takes_everything_it_can(s: Scratch, name: str) -> None:
    queue = s.queue(name)
    r = Recorder(s, queue)
    r.consume("low", priority=1)
    r.consume("high", priority=10)
    r.consume("default")
    s.send(queue, *[str(i).encode() for i in range(20)])
    assert {label for label, _ in r.wait(20)} == {"high"}


def test_lower_priorities_get_messages_while_higher_ones_are_full(s: Scratch, name: str) -> None:
    queue = s.queue(name)
    r = Recorder(s, queue)
    r.consume("high", priority=5, prefetch=2, ack=False)
    r.consume("low", priority=-5)
    s.send(queue, *[str(i).encode() for i in range(6)])
    got = r.wait(6)
    assert got[:2] == [("high", b"0"), ("high", b"1")]
    assert Counter(label for label, _ in got) == {"high": 2, "low": 4}
    r.release("high")
    s.send(queue, b"after")
    assert r.wait(7)[-1] == ("high", b"after")


def test_negative_priorities_rank_below_the_default(s: Scratch, name: str) -> None:
    queue = s.queue(name)
    r = Recorder(s, queue)
    r.consume("negative", priority=-1)
    r.consume("default")
    s.send(queue, b"1", b"2", b"3")
    assert {label for label, _ in r.wait(3)} == {"default"}


def test_equal_priorities_share_round_robin(s: Scratch, name: str) -> None:
    queue = s.queue(name)
    r = Recorder(s, queue)
    for label in ("a", "b", "c"):
        r.consume(label, priority=3)
    r.consume("low", priority=1)
    s.send(queue, *[str(i).encode() for i in range(9)])
    assert Counter(label for label, _ in r.wait(9)) == {"a": 3, "b": 3, "c": 3}


def test_cancelling_the_high_priority_consumer_lets_the_others_in(s: Scratch, name: str) -> None:
    queue = s.queue(name)
    r = Recorder(s, queue)
    high = r.consume("high", priority=2)
    r.consume("low")
    s.send(queue, b"1")
    r.wait(1)
    high.basic_cancel("high")
    s.send(queue, b"2")
    assert r.wait(2) == [("high", b"1"), ("low", b"2")]


@pytest.mark.parametrize(("value", "type_name"), [("high", "longstr"), (True, "bool")])
def test_x_priority_must_be_an_integer(s: Scratch, name: str, value: Any, type_name: str) -> None:
    queue = s.queue(name)
    ch = s.channel()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as exc:
        ch.basic_consume(queue, lambda *a: None, arguments={"x-priority": value})
    assert exc.value.reply_code == 406
    assert exc.value.reply_text == (
        f"PRECONDITION_FAILED - invalid arg 'x-priority' for queue '{queue}' in vhost '/': "
        f'"expected integer, got {type_name}"'
    )


def test_a_deleted_queue_cancels_its_consumers(s: Scratch, name: str) -> None:
    """basic.cancel from the server (consumer_cancel_notify): pika calls on_cancel."""
    queue = s.queue(name)
    cancelled: list[str] = []
    ch = s.channel()
    ch.add_on_cancel_callback(lambda frame: cancelled.append(frame.method.consumer_tag))
    ch.basic_consume(queue, lambda *a: None, consumer_tag="watcher")
    s.ch.queue_delete(queue)
    wait_until(lambda: cancelled, conn=s.conn, what="basic.cancel")
    assert cancelled == ["watcher"]
    assert ch.is_open
    assert ch.consumer_tags == []


def test_every_consumer_of_a_deleted_queue_is_told(s: Scratch, name: str) -> None:
    """Several consumers on several channels are all told when their queue goes."""
    queue = s.queue(name)
    cancelled: list[str] = []
    for tag in ("one", "two", "three"):
        ch = s.channel()
        ch.add_on_cancel_callback(lambda frame: cancelled.append(frame.method.consumer_tag))
        ch.basic_consume(queue, lambda *a: None, consumer_tag=tag)
    other = s.channel()
    other.queue_delete(queue)
    wait_until(lambda: len(cancelled) == 3, conn=s.conn, what="three basic.cancel")
    assert sorted(cancelled) == ["one", "three", "two"]
