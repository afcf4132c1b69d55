"""Dead-lettering: x-dead-letter-exchange / x-dead-letter-routing-key, the reasons, the
``x-death`` history and RabbitMQ's cycle rule.

Checked against RabbitMQ 3.10.8 with the same code.  WarrenMQ follows RabbitMQ 3.13 where they
differ: 3.13 adds ``x-last-death-{reason,queue,exchange}`` headers, and keeps ``x-death``
ordered by recency (the entry that just changed first, the others as they were), which is
3.13's documented order; 3.10 reverses the older entries when it updates one.  Where the
difference shows, the test says so.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pika
import pytest

from tests.interop.ext_support import Scratch, is_recent, wait_until


@pytest.fixture
def s(port: int) -> Iterator[Scratch]:
    with Scratch(port) as scratch:
        yield scratch


def deaths(props: Any) -> list[dict[str, Any]]:
    """The x-death entries without their ``time`` (checked to be a recent timestamp)."""
    out = []
    for entry in props.headers["x-death"]:
        entry = dict(entry)
        assert is_recent(entry.pop("time")), entry
        out.append(entry)
    return out


def first_death(props: Any) -> dict[str, str]:
    return {k: v for k, v in props.headers.items() if k.startswith("x-first-death-")}


def last_death(props: Any) -> dict[str, str]:
    """RabbitMQ 3.13's x-last-death-* headers (3.10 has none)."""
    return {k: v for k, v in props.headers.items() if k.startswith("x-last-death-")}


def reject_next(ch: Any, queue: str, requeue: bool = False) -> bytes:
    method, _, body = ch.basic_get(queue)
    assert method is not None, f"nothing in {queue}"
    ch.basic_reject(method.delivery_tag, requeue=requeue)
    return body


# -- reasons ---------------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["reject", "nack", "nack-multiple"])
def test_rejected_messages_are_dead_lettered(s: Scratch, name: str, how: str) -> None:
    dlx = s.exchange(f"{name}-dlx", "fanout")
    dlq = s.queue(f"{name}-dlq")
    s.bind(dlq, dlx)
    queue = s.queue(name, x_dead_letter_exchange=dlx)
    s.send(queue, b"1", b"2")
    ch = s.channel()
    tags = [ch.basic_get(queue)[0].delivery_tag for _ in range(2)]
    if how == "reject":
        for tag in tags:
            ch.basic_reject(tag, requeue=False)
    elif how == "nack":
        for tag in tags:
            ch.basic_nack(tag, multiple=False, requeue=False)
    else:
        ch.basic_nack(tags[-1], multiple=True, requeue=False)
    got = s.wait_for(dlq, 2)
    assert [body for _, _, body in got] == [b"1", b"2"]
    for method, props, _ in got:
        # Delivered from the DLX with the original routing key (no x-dead-letter-routing-key).
        assert (method.exchange, method.routing_key) == (dlx, queue)
        assert deaths(props) == [
            {"count": 1, "reason": "rejected", "queue": queue, "exchange": "", "routing-keys": [queue]}
        ]
        assert first_death(props) == {
            "x-first-death-reason": "rejected",
            "x-first-death-queue": queue,
            "x-first-death-exchange": "",
        }
    for _, props, _ in got:
        assert last_death(props) == {
            "x-last-death-reason": "rejected",
            "x-last-death-queue": queue,
            "x-last-death-exchange": "",
        }


def test_requeued_and_acked_messages_are_not_dead_lettered(s: Scratch, name: str) -> None:
    dlq = s.queue(f"{name}-dlq")
    queue = s.queue(name, x_dead_letter_exchange="", x_dead_letter_routing_key=dlq)
    s.send(queue, b"1", b"2")
    ch = s.channel()
    reject_next(ch, queue, requeue=True)
    method, _, _ = ch.basic_get(queue)
    ch.basic_ack(method.delivery_tag)
    assert s.bodies(queue) == [b"2"]
    assert s.ready(dlq) == 0


def test_purged_and_deleted_queues_do_not_dead_letter(s: Scratch, name: str) -> None:
    dlq = s.queue(f"{name}-dlq")
    queue = s.queue(name, x_dead_letter_exchange="", x_dead_letter_routing_key=dlq)
    other = s.queue(f"{name}-2", x_dead_letter_exchange="", x_dead_letter_routing_key=dlq)
    s.send(queue, b"purged")
    s.send(other, b"deleted")
    assert s.ch.queue_purge(queue).method.message_count == 1
    assert s.ch.queue_delete(other).method.message_count == 1
    assert s.ready(dlq) == 0


def test_maxlen_dead_letters_the_dropped_head(s: Scratch, name: str) -> None:
    dlq = s.queue(f"{name}-dlq")
    queue = s.queue(name, x_max_length=1, x_dead_letter_exchange="", x_dead_letter_routing_key=dlq)
    s.send(queue, b"old", b"new")
    [(method, props, body)] = s.wait_for(dlq)
    assert body == b"old" and method.routing_key == dlq
    assert deaths(props)[0]["reason"] == "maxlen"
    assert s.bodies(queue) == [b"new"]


def test_dead_letter_routing_key_replaces_the_routing_key(s: Scratch, name: str) -> None:
    dlx = s.exchange(f"{name}-dlx", "direct")
    parked = s.queue(f"{name}-parked")
    s.bind(parked, dlx, "parked")
    work_x = s.exchange(f"{name}-work", "topic")
    queue = s.queue(name, x_dead_letter_exchange=dlx, x_dead_letter_routing_key="parked")
    s.bind(queue, work_x, "orders.*")
    s.publish(work_x, "orders.new", b"order", headers={"id": 7}, message_id="m-1", priority=3, delivery_mode=2)
    reject_next(s.channel(), queue)
    [(method, props, _)] = s.wait_for(parked)
    assert (method.exchange, method.routing_key) == (dlx, "parked")
    # The message is otherwise as published.
    assert (props.message_id, props.priority, props.delivery_mode, props.headers["id"]) == ("m-1", 3, 2, 7)
    assert deaths(props) == [
        {"count": 1, "reason": "rejected", "queue": queue, "exchange": work_x, "routing-keys": ["orders.new"]}
    ]
    assert props.headers["x-first-death-exchange"] == work_x


def test_missing_dead_letter_exchange_drops_the_message(s: Scratch, name: str) -> None:
    """A DLX that does not exist is no error (RabbitMQ accepts it at declare): the message goes."""
    queue = s.queue(name, x_dead_letter_exchange=f"{name}-missing")
    s.send(queue, b"gone")
    reject_next(s.channel(), queue)
    assert s.ready(queue) == 0


def cc_bcc_dead_letter(s: Scratch, name: str) -> dict[str, str]:
    """A message published with CC and BCC keys, rejected into a direct DLX (no dead-letter
    routing key) bound to one queue per key."""
    dlx = s.exchange(f"{name}-dlx", "direct")
    by_key = {key: s.queue(f"{name}-{key}") for key in ("main", "cc", "bcc")}
    for key, q in by_key.items():
        s.bind(q, dlx, key)
    source = s.exchange(f"{name}-src", "direct")
    queue = s.queue(name, x_dead_letter_exchange=dlx)
    s.bind(queue, source, "main")
    s.publish(source, "main", b"m", headers={"CC": ["cc"], "BCC": ["bcc"]})
    reject_next(s.channel(), queue)
    return by_key


def test_cc_routing_keys_are_recorded_and_followed(s: Scratch, name: str) -> None:
    """Sender-selected routing: the CC keys are in x-death's routing-keys and route the dead
    letter too; BCC was removed at publish and is not in the history."""
    by_key = cc_bcc_dead_letter(s, name)
    [(_, props, _)] = s.wait_for(by_key["main"])
    assert deaths(props)[0]["routing-keys"] == ["main", "cc"]
    assert props.headers["CC"] == ["cc"] and "BCC" not in props.headers
    s.wait_for(by_key["cc"])


def test_bcc_routing_keys_route_the_dead_letter_too(s: Scratch, name: str) -> None:
    """RabbitMQ (3.10 and 3.13) routes a dead letter with all the message's routing keys, BCC
    included, though BCC is neither in its headers nor in its history."""
    by_key = cc_bcc_dead_letter(s, name)
    s.wait_for(by_key["main"])
    [(_, props, _)] = s.wait_for(by_key["bcc"], timeout=1)
    assert "BCC" not in props.headers


# -- x-death history -------------------------------------------------------------------------


def test_a_repeated_death_increments_its_entry(s: Scratch, name: str) -> None:
    """One entry per (queue, reason): a client republishing a dead letter to the same queue,
    where it dies again for the same reason, gets count 2 (RabbitMQ 3.10.8 probe p16)."""
    dlq = s.queue(f"{name}-dlq")
    queue = s.queue(name, x_dead_letter_exchange="", x_dead_letter_routing_key=dlq)
    s.send(queue, b"m")
    ch = s.channel()
    reject_next(ch, queue)
    [(_, props, body)] = s.wait_for(dlq)
    first_time = props.headers["x-death"][0]["time"]
    s.publish("", queue, body, headers=props.headers)
    reject_next(ch, queue)
    [(_, props, _)] = s.wait_for(dlq)
    [entry] = props.headers["x-death"]
    assert entry["count"] == 2 and entry["time"] == first_time  # time is the first death's


def test_full_x_death_after_two_rejections_and_one_expiry_through_two_queues(s: Scratch, name: str) -> None:
    """A message rejected in a work queue, expired in a delay queue (back to the work queue),
    then rejected again: the whole header, as RabbitMQ builds it.

    The changed entry comes first (both 3.10 and 3.13 put it there); its ``time``, exchange
    and routing keys stay those of its first death, only ``count`` grows.  The entry from the
    delay queue records the exchange and key the message had there (the work queue's DLX and
    dead-letter routing key).  x-last-death-exchange is the exchange the message came through
    last, the default exchange (RabbitMQ 3.13; 3.10 has no x-last-death-* headers).
    """
    work_x = s.exchange(f"{name}-work-x", "direct")
    retry_x = s.exchange(f"{name}-retry-x", "direct")
    work = s.queue(f"{name}-work", x_dead_letter_exchange=retry_x, x_dead_letter_routing_key="retry")
    delay = s.queue(f"{name}-delay", x_message_ttl=100, x_dead_letter_exchange="", x_dead_letter_routing_key=work)
    s.bind(work, work_x, "task")
    s.bind(delay, retry_x, "retry")
    s.publish(work_x, "task", b"job", headers={"app": 1}, expiration="60000")

    seen: list[tuple[Any, Any]] = []
    final: list[tuple[Any, Any]] = []
    ch = s.channel()

    def on_work(channel: Any, method: Any, props: Any, body: bytes) -> None:
        seen.append((method, props))
        if len(seen) == 2:
            # Now watch the delay queue: the next dead letter is taken before it can expire.
            channel.basic_consume(delay, lambda c, m, p, b: final.append((m, p)), auto_ack=True)
        channel.basic_reject(method.delivery_tag, requeue=False)

    ch.basic_consume(work, on_work)
    wait_until(lambda: final, conn=s.conn, what="the second dead letter")

    # The redelivery to the work queue, after one rejection and one expiry.
    method, props = seen[1]
    assert (method.exchange, method.routing_key) == ("", work)
    assert props.expiration is None
    assert deaths(props) == [
        {"count": 1, "reason": "expired", "queue": delay, "exchange": retry_x, "routing-keys": ["retry"]},
        {
            "original-expiration": "60000",
            "count": 1,
            "reason": "rejected",
            "queue": work,
            "exchange": work_x,
            "routing-keys": ["task"],
        },
    ]
    assert first_death(props) == {
        "x-first-death-reason": "rejected",
        "x-first-death-queue": work,
        "x-first-death-exchange": work_x,
    }

    # After the second rejection.
    method, props = final[0]
    assert (method.exchange, method.routing_key) == (retry_x, "retry")
    header = props.headers["x-death"]
    assert header[0]["time"] == seen[1][1].headers["x-death"][1]["time"]  # the first rejection's
    assert deaths(props) == [
        {
            "original-expiration": "60000",
            "count": 2,
            "reason": "rejected",
            "queue": work,
            "exchange": work_x,
            "routing-keys": ["task"],
        },
        {"count": 1, "reason": "expired", "queue": delay, "exchange": retry_x, "routing-keys": ["retry"]},
    ]
    assert props.headers["app"] == 1
    assert first_death(props) == {
        "x-first-death-reason": "rejected",
        "x-first-death-queue": work,
        "x-first-death-exchange": work_x,
    }
    assert last_death(seen[1][1]) == {
        "x-last-death-reason": "expired",
        "x-last-death-queue": delay,
        "x-last-death-exchange": retry_x,
    }
    assert last_death(props) == {
        "x-last-death-reason": "rejected",
        "x-last-death-queue": work,
        "x-last-death-exchange": "",
    }


def test_x_death_field_types(s: Scratch, name: str) -> None:
    """count is a long (l), time a timestamp (T), the rest long strings and an array."""
    dlq = s.queue(f"{name}-dlq")
    queue = s.queue(name, x_dead_letter_exchange="", x_dead_letter_routing_key=dlq)
    s.send(queue, b"m")
    reject_next(s.channel(), queue)
    [(_, props, _)] = s.wait_for(dlq)
    [entry] = props.headers["x-death"]
    assert type(entry["count"]).__name__ == "long"  # pika's type for a field of type l
    assert is_recent(entry["time"])
    assert isinstance(entry["routing-keys"], list)


# -- cycles ------------------------------------------------------------------------------------


def test_automatic_cycle_drops_the_message(s: Scratch, name: str) -> None:
    """A message expiring back into a queue it already died in, with no rejection in between,
    is dropped there (RabbitMQ's cycle rule) but still reaches the other queues."""
    dlx = s.exchange(f"{name}-dlx", "fanout")
    observer = s.queue(f"{name}-observer")
    queue = s.queue(name, x_dead_letter_exchange=dlx)
    s.bind(queue, dlx)
    s.bind(observer, dlx)
    s.publish("", queue, b"m", expiration="10")
    [(_, props, _)] = s.wait_for(observer)
    assert deaths(props)[0]["reason"] == "expired"
    # The copy routed back to the queue itself was dropped (no TTL left: it would stay).
    assert s.ready(queue) == 0


def test_automatic_cycle_through_two_queues_is_dropped(s: Scratch, name: str) -> None:
    a, b = f"{name}-a", f"{name}-b"
    s.queue(a, x_dead_letter_exchange="", x_dead_letter_routing_key=b)
    s.queue(b, x_message_ttl=10, x_dead_letter_exchange="", x_dead_letter_routing_key=a)
    clock = s.queue(f"{name}-clock", x_message_ttl=10)
    s.publish("", a, b"m", expiration="10")
    wait_until(lambda: s.ready(a) == 0 and s.ready(b) == 0, what="the message to leave a and b")
    s.send(clock, b"tick")
    wait_until(lambda: s.ready(clock) == 0, what="the clock")
    assert (s.ready(a), s.ready(b)) == (0, 0)  # dropped on its way back to a


def test_a_rejection_breaks_the_cycle(s: Scratch, name: str) -> None:
    """A queue dead-lettering to itself: a rejected message comes back, with its history."""
    queue = s.queue(name, x_dead_letter_exchange="", x_dead_letter_routing_key=name)
    s.send(queue, b"m")
    ch = s.channel()
    reject_next(ch, queue)
    reject_next(ch, queue)
    [(_, props, _)] = s.wait_for(queue)
    assert deaths(props) == [
        {"count": 2, "reason": "rejected", "queue": queue, "exchange": "", "routing-keys": [queue]}
    ]


def test_persistent_dead_letters_stay_persistent(s: Scratch, name: str) -> None:
    dlq = s.queue(f"{name}-dlq", durable=True)
    queue = s.queue(name, durable=True, x_dead_letter_exchange="", x_dead_letter_routing_key=dlq)
    s.ch.basic_publish("", queue, b"p", pika.BasicProperties(delivery_mode=2))
    reject_next(s.channel(), queue)
    [(_, props, _)] = s.wait_for(dlq)
    assert props.delivery_mode == 2
