"""A channel's dealings with stream queues: consumers and what streams refuse.

RabbitMQ 3.10.8's rules (codes and texts measured there): a stream consumer needs a
per-consumer prefetch (406 without one) and manual acknowledgements (540, closing the
connection); x-stream-offset is checked before anything else, and exclusive is ignored.
basic.reject and basic.nack of a stream's delivery close the connection with 540, and
basic.recover with 541.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from warrenmq.amqp import spec
from warrenmq.amqp.errors import NotImplementedAMQP, ParserCrash, PreconditionFailed
from warrenmq.amqp.values import FieldTable, encode_shortstr
from warrenmq.broker.consume_args import check_foreign_arguments
from warrenmq.broker.consumer import Consumer
from warrenmq.broker.stream import Stream
from warrenmq.broker.stream_args import start_at

if TYPE_CHECKING:
    from collections.abc import Iterable

    from warrenmq.broker.message import Message
    from warrenmq.server.consuming import ConsumingMixin

_DELIVER_ID = b"\x00\x3c\x00\x3c"


def consume_stream(channel: ConsumingMixin, m: spec.BasicConsume, stream: Stream, tag: str, args: FieldTable) -> None:
    display = stream.display
    start = start_at(args.get("x-stream-offset"), display, int(time.time() * 1000))
    check_foreign_arguments("stream", args, display)
    prefetch = channel.prefetch_count
    if not prefetch:
        raise PreconditionFailed(f"consumer prefetch count is not set for '{display}'")
    if m.no_ack:
        raise NotImplementedAMQP(f"automatic acknowledgement not supported by stream queues {display}")
    consumer = Consumer(tag, stream, channel, prefetch=prefetch, arguments=args.plain())
    consumer.cookie = _DELIVER_ID + encode_shortstr(tag)
    channel.consumers[tag] = consumer
    if not m.nowait:
        channel.send(spec.BasicConsumeOk(tag))  # before the first delivery
    stream.subscribe(consumer, start)


def refuse_stream_settlement(messages: Iterable[Message]) -> None:
    """basic.reject / basic.nack of a stream's delivery: 540, as RabbitMQ."""
    for message in messages:
        queue = message.queue
        if isinstance(queue, Stream):
            raise NotImplementedAMQP(f"basic.nack and basic.reject not supported by stream queues {queue.display}")


def refuse_stream_recover(messages: Iterable[Message]) -> None:
    """basic.recover holding a stream's delivery: RabbitMQ 3.10.8 crashes (541)."""
    if any(isinstance(message.queue, Stream) for message in messages):
        raise ParserCrash("basic.recover with stream deliveries")
