"""x-queue-type: classic and quorum queues, unknown types refused; quorum queues' delivery
count, delivery limit (poison messages dead-lettered with reason ``delivery_limit``) and
requeue to the back.

Pinned to RabbitMQ 3.10.8 (the same code was run against it), except where WarrenMQ follows
RabbitMQ 4.x as the issue asks: a quorum queue without x-delivery-limit has the limit 20 (3.x
had none), and a negative limit means no limit (3.10 treats -1 like 0).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pika.exceptions
import pytest

from tests.interop.ext_support import Scratch, is_recent, wait_until


@pytest.fixture
def s(port: int) -> Iterator[Scratch]:
    with Scratch(port) as scratch:
        yield scratch


def declare_error(s: Scratch, name: str, **kw: Any) -> tuple[int, str]:
    ch = s.channel()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as exc:
        ch.queue_declare(name, **kw)
    return exc.value.reply_code, exc.value.reply_text


def bounce(s: Scratch, queue: str, times: int) -> list[tuple[bool, Any]]:
    """basic.get and reject(requeue) ``times`` times: (redelivered, x-delivery-count) each."""
    ch = s.channel()
    seen = []
    for _ in range(times):
        method, props, _ = ch.basic_get(queue)
        if method is None:
            break
        seen.append((method.redelivered, (props.headers or {}).get("x-delivery-count")))
        ch.basic_reject(method.delivery_tag, requeue=True)
    ch.close()
    return seen


# -- types -------------------------------------------------------------------------------------


def test_classic_is_the_default_type(s: Scratch, name: str) -> None:
    queue = s.queue(name)
    s.ch.queue_declare(queue, arguments={"x-queue-type": "classic"})  # equivalent to none
    explicit = s.queue(f"{name}-explicit", x_queue_type="classic")
    s.ch.queue_declare(explicit)  # and the other way round


def test_quorum_queue_is_accepted_durable(s: Scratch, name: str) -> None:
    queue = s.quorum(name)
    s.send(queue, b"m")
    assert s.bodies(queue) == [b"m"]


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("foo", "\"unsupported queue type 'foo'\""),
        ("Quorum", "\"unsupported queue type 'Quorum'\""),
        (1, "{unacceptable_type,signedint}"),
    ],
)
def test_unknown_queue_types_are_refused(s: Scratch, name: str, value: Any, reason: str) -> None:
    code, text = declare_error(s, name, durable=True, arguments={"x-queue-type": value})
    assert code == 406
    assert text == f"PRECONDITION_FAILED - invalid arg 'x-queue-type' for queue '{name}' in vhost '/': {reason}"
    assert not s.exists(name)


@pytest.mark.parametrize(
    ("flags", "prop"),
    [
        ({"durable": False}, "non-durable"),
        ({"durable": True, "exclusive": True}, "exclusive-owner"),
        ({"durable": True, "auto_delete": True}, "auto-delete"),
    ],
)
def test_quorum_queues_must_be_durable_and_shared(s: Scratch, name: str, flags: dict[str, bool], prop: str) -> None:
    code, text = declare_error(s, name, arguments={"x-queue-type": "quorum"}, **flags)
    assert (code, text) == (406, f"PRECONDITION_FAILED - invalid property '{prop}' for queue '{name}' in vhost '/'")


def test_delivery_limit_is_a_quorum_queue_argument(s: Scratch, name: str) -> None:
    code, text = declare_error(s, name, arguments={"x-delivery-limit": 5})
    assert (code, text) == (
        406,
        f"PRECONDITION_FAILED - invalid arg 'x-delivery-limit' for queue '{name}' in vhost '/' "
        "of queue type rabbit_classic_queue",
    )


# -- delivery count and limit ------------------------------------------------------------------


def test_x_delivery_count_counts_returns(s: Scratch, name: str) -> None:
    queue = s.quorum(name, x_delivery_limit=10)
    s.publish("", queue, b"m", headers={"app": "kept"})
    seen = bounce(s, queue, 4)
    assert [r for r, _ in seen] == [False, True, True, True]
    assert [c for _, c in seen] == [0, 1, 2, 3]  # basic.get-ok always carries it (3.10.8)
    method, props, _ = s.get(queue)  # type: ignore[misc]
    assert method.redelivered and props.headers == {"app": "kept", "x-delivery-count": 4}


def test_basic_get_carries_x_delivery_count_zero_the_first_time(s: Scratch, name: str) -> None:
    """RabbitMQ 3.10.8 adds x-delivery-count to every basic.get-ok of a quorum queue, 0 the
    first time (a consumer's first delivery has none: see the consumer test below)."""
    queue = s.quorum(name)
    s.send(queue, b"m")
    method, props, _ = s.get(queue)  # type: ignore[misc]
    assert not method.redelivered and props.headers == {"x-delivery-count": 0}


def test_delivery_limit_drops_a_poison_message(s: Scratch, name: str) -> None:
    """x-delivery-limit 2: returned a third time, the message is gone (RabbitMQ 3.10.8)."""
    queue = s.quorum(name, x_delivery_limit=2)
    s.send(queue, b"poison")
    seen = bounce(s, queue, 5)
    assert [r for r, _ in seen] == [False, True, True]
    assert s.get(queue) is None


def test_poison_messages_are_dead_lettered_with_reason_delivery_limit(s: Scratch, name: str) -> None:
    dlq = s.queue(f"{name}-dlq")
    queue = s.quorum(name, x_delivery_limit=1, x_dead_letter_exchange="", x_dead_letter_routing_key=dlq)
    s.publish("", queue, b"poison", headers={"a": 1})
    assert len(bounce(s, queue, 3)) == 2
    [(method, props, body)] = s.wait_for(dlq)
    assert body == b"poison" and method.routing_key == dlq
    [death] = props.headers["x-death"]
    assert is_recent(death.pop("time"))
    assert death == {"count": 1, "reason": "delivery_limit", "queue": queue, "exchange": "", "routing-keys": [queue]}
    assert props.headers["x-first-death-reason"] == "delivery_limit"
    assert props.headers["a"] == 1


def test_the_default_delivery_limit_is_20(s: Scratch, name: str) -> None:
    """RabbitMQ 4.x's default for quorum queues (3.x had none)."""
    dlq = s.queue(f"{name}-dlq")
    queue = s.quorum(name, x_dead_letter_exchange="", x_dead_letter_routing_key=dlq)
    s.send(queue, b"poison")
    seen = bounce(s, queue, 30)
    assert len(seen) == 21 and seen[-1] == (True, 20)
    [(_, props, _)] = s.wait_for(dlq)
    assert props.headers["x-death"][0]["reason"] == "delivery_limit"


def test_a_consumer_nacking_a_poison_message_ends_with_the_limit(s: Scratch, name: str) -> None:
    dlq = s.queue(f"{name}-dlq")
    queue = s.quorum(name, x_delivery_limit=3, x_dead_letter_exchange="", x_dead_letter_routing_key=dlq)
    counts: list[Any] = []
    ch = s.channel()

    def on_message(channel: Any, method: Any, props: Any, body: bytes) -> None:
        counts.append((props.headers or {}).get("x-delivery-count"))
        channel.basic_nack(method.delivery_tag, requeue=True)

    ch.basic_consume(queue, on_message)
    s.send(queue, b"poison")
    wait_until(lambda: s.ready(dlq) == 1, conn=s.conn, what="the dead letter")
    assert counts == [None, 1, 2, 3]  # a first delivery to a consumer carries no header


@pytest.mark.parametrize("value", [-1, "5"])
def test_a_negative_or_non_integer_delivery_limit_means_no_limit(s: Scratch, name: str, value: Any) -> None:
    """RabbitMQ accepts any x-delivery-limit; a string never limits (3.10.8), nor does a
    negative number (4.x; 3.10 drops after one return)."""
    queue = s.quorum(name, x_delivery_limit=value)
    s.send(queue, b"m")
    assert len(bounce(s, queue, 25)) == 25
    assert s.ready(queue) == 1


# -- requeue order -----------------------------------------------------------------------------


def test_get_and_reject_cycles_through_a_quorum_queue(s: Scratch, name: str) -> None:
    """RabbitMQ 3.10.8: each rejected head goes to the back (1, 2, 3, 4); a classic queue
    puts it back in front."""
    quorum = s.quorum(name)
    classic = s.queue(f"{name}-classic")
    for queue in (quorum, classic):
        s.send(queue, b"1", b"2", b"3")
    ch = s.channel()
    order: dict[str, list[bytes]] = {quorum: [], classic: []}
    for queue in (quorum, classic):
        for _ in range(4):
            method, _, body = ch.basic_get(queue)
            order[queue].append(body)
            ch.basic_reject(method.delivery_tag, requeue=True)
    assert order[quorum] == [b"1", b"2", b"3", b"1"]
    assert order[classic] == [b"1", b"1", b"1", b"1"]


def test_returned_messages_queue_behind_waiting_ones(s: Scratch, name: str) -> None:
    """prefetch 3: got 1, 2, 3; cancel; nack 2 -> the queue holds 4, 5, 2 (RabbitMQ 3.10.8)."""
    queue = s.quorum(name)
    s.send(queue, b"1", b"2", b"3", b"4", b"5")
    ch = s.channel()
    ch.basic_qos(prefetch_count=3)
    tags: dict[bytes, int] = {}
    ch.basic_consume(queue, lambda c, m, p, b: tags.__setitem__(b, m.delivery_tag), consumer_tag="c")
    wait_until(lambda: len(tags) == 3, conn=s.conn, what="three deliveries")
    ch.basic_cancel("c")
    ch.basic_nack(tags[b"2"], requeue=True)
    assert [(m.redelivered, b) for m, _, b in s.drain(queue)] == [(False, b"4"), (False, b"5"), (True, b"2")]


def test_returns_queue_in_return_order(s: Scratch, name: str) -> None:
    """Cancel, nack 4 then nack 2: the queue holds 4, 2 (return order, not publish order)."""
    queue = s.quorum(name)
    s.send(queue, b"1", b"2", b"3", b"4", b"5")
    ch = s.channel()
    tags: dict[bytes, int] = {}
    ch.basic_consume(queue, lambda c, m, p, b: tags.__setitem__(b, m.delivery_tag), consumer_tag="c")
    wait_until(lambda: len(tags) == 5, conn=s.conn, what="five deliveries")
    ch.basic_cancel("c")
    ch.basic_nack(tags[b"4"], requeue=True)
    ch.basic_nack(tags[b"2"], requeue=True)
    assert [b for _, _, b in s.drain(queue)] == [b"4", b"2"]


def test_a_closed_channel_returns_its_messages_in_order(s: Scratch, name: str) -> None:
    """5 delivered, 3 acked, channel closed: 1, 2, 4, 5 come back in order, each counted once."""
    queue = s.quorum(name)
    s.send(queue, b"1", b"2", b"3", b"4", b"5")
    ch = s.channel()
    tags: dict[bytes, int] = {}
    ch.basic_consume(queue, lambda c, m, p, b: tags.__setitem__(b, m.delivery_tag))
    wait_until(lambda: len(tags) == 5, conn=s.conn, what="five deliveries")
    ch.basic_ack(tags[b"3"])
    ch.close()
    got = [(m.redelivered, p.headers, b) for m, p, b in s.drain(queue)]
    assert got == [(True, {"x-delivery-count": 1}, body) for body in (b"1", b"2", b"4", b"5")]
