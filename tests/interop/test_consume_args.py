"""Consumer arguments by queue type, as RabbitMQ 3.10.8 checks them: an argument another
queue type knows is refused with 406, one no type knows is ignored (texts measured there)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pika.exceptions
import pytest

from tests.interop.ext_support import Scratch, wait_until


@pytest.fixture
def s(port: int) -> Iterator[Scratch]:
    with Scratch(port) as scratch:
        yield scratch


def consume_error(s: Scratch, queue: str, arguments: dict[str, Any]) -> tuple[int, str]:
    ch = s.channel()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as exc:
        ch.basic_consume(queue, lambda *a: None, arguments=arguments)
    return exc.value.reply_code, exc.value.reply_text


@pytest.mark.parametrize("offset", ["next", 5])
def test_a_classic_queue_refuses_x_stream_offset(s: Scratch, name: str, offset: Any) -> None:
    queue = s.queue(name)
    assert consume_error(s, queue, {"x-stream-offset": offset}) == (
        406,
        f"PRECONDITION_FAILED - invalid arg 'x-stream-offset' for queue '{queue}' in vhost '/' "
        "of queue type rabbit_classic_queue",
    )


def test_a_quorum_queue_refuses_x_cancel_on_ha_failover(s: Scratch, name: str) -> None:
    queue = s.quorum(name)
    assert consume_error(s, queue, {"x-cancel-on-ha-failover": True}) == (
        406,
        f"PRECONDITION_FAILED - invalid arg 'x-cancel-on-ha-failover' for queue '{queue}' in vhost '/' "
        "of queue type rabbit_quorum_queue",
    )


def test_unknown_consumer_arguments_are_ignored(s: Scratch, name: str) -> None:
    queue = s.queue(name)
    s.send(queue, b"m")
    got: list[bytes] = []
    ch = s.channel()
    ch.basic_consume(queue, lambda c, m, p, b: got.append(b), auto_ack=True, arguments={"x-foo": 1, "x-priority": 2})
    wait_until(lambda: got, what="the delivery", conn=s.conn)
    assert got == [b"m"]
