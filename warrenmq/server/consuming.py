"""The consuming half of a channel: consumers, deliveries, acks, QoS and basic.get.

``deliver`` is the hot path out: it writes basic.deliver, the content header and the body
as a handful of pieces into the connection's output list (frame headers are packed together
with the previous frame's end byte), and records the message under its delivery tag unless
the consumer is no-ack.  Delivery tags count per channel from 1, shared with basic.get.
"""

from __future__ import annotations

import base64
import os
import struct
from collections import deque

from warrenmq.amqp import spec
from warrenmq.amqp.errors import (
    AccessRefused,
    FrameError,
    NotAllowed,
    NotImplementedAMQP,
    PreconditionFailed,
)
from warrenmq.amqp.frames import FRAME_HEADER, body_frames, decode_properties, erlang_binary, replace_properties
from warrenmq.amqp.values import INTEGER_TAGS, TYPE_NAMES, FieldTable, encode_shortstr
from warrenmq.broker.consume_args import check_foreign_arguments
from warrenmq.broker.consumer import Consumer
from warrenmq.broker.message import Message
from warrenmq.broker.queue import Queue
from warrenmq.broker.queue_args import queue_display
from warrenmq.broker.stream import Stream
from warrenmq.server import reply_to
from warrenmq.server.ack_timeouts import AckTimeouts, consumer_timeout
from warrenmq.server.channel_base import ChannelBase
from warrenmq.server.stream_consuming import consume_stream, refuse_stream_recover, refuse_stream_settlement

_END_AND_HEADER = struct.Struct(">BBHI")  # previous frame's end byte + next frame header
_TAG_REDELIVERED = struct.Struct(">QB")
_ACK_ARGS = struct.Struct(">QB")
_MESSAGE_COUNT = struct.Struct(">I")
_DELIVER_ID = b"\x00\x3c\x00\x3c"
_GET_OK_ID = b"\x00\x3c\x00\x47"
_END = b"\xce"
_BURST = 256 * 1024  # body bytes gathered for a connection before writing them out


def generated_tag() -> str:
    return "amq.ctag-" + base64.urlsafe_b64encode(os.urandom(16)).rstrip(b"=").decode()


def with_delivery_count(header: bytes, count: int) -> bytes:
    """The content header with ``x-delivery-count`` set, as RabbitMQ's quorum queues tell a
    consumer how often a redelivered message was returned."""
    properties = decode_properties(header)
    headers = FieldTable(properties.headers or {})
    headers["x-delivery-count"] = ("l", count)
    properties.headers = headers
    return replace_properties(header, properties)


class ConsumingMixin(ChannelBase):
    """Channel's consuming part."""

    def init_consuming(self) -> None:
        self.consumers: dict[str, Consumer] = {}
        self.unacked: dict[int, Message] = {}
        self.next_tag = 1
        self.prefetch_count = 0  # for consumers created from now on (global=false)
        self.global_prefetch = 0  # shared by the channel's consumers (global=true)
        self.flow_active = True
        self.active = True
        self.delivered = 0
        self.acked = 0
        self._body_chunk = self.conn.frame_max - 8
        self.reply_address = ""  # amq.rabbitmq.reply-to.<token> while a reply consumer exists
        self.held_cancels: list[str] | None = None  # see hold_cancels
        self.tx_taken: deque[list[tuple[int, Message]]] = deque()  # one entry per tx_settles entry
        self.ack_timeouts: AckTimeouts | None = None  # only once a delivery timeout applies

    # -- flow of deliveries ---------------------------------------------------------------

    def update_active(self) -> None:
        active = (
            self.flow_active
            and not self.conn.paused
            and (self.global_prefetch == 0 or len(self.unacked) < self.global_prefetch)
        )
        was = self.active
        self.active = active
        if active and not was:
            for queue in {id(c.queue): c.queue for c in self.consumers.values() if c.queue is not None}.values():
                queue.dispatch()

    def deliver(self, consumer: Consumer, message: Message) -> None:
        tag = self.next_tag
        if not consumer.no_ack:
            self.next_tag = tag + 1
            self.unacked[tag] = message
            if self.global_prefetch and len(self.unacked) >= self.global_prefetch:
                self.active = False
        elif consumer.queue is not None:
            self.next_tag = tag + 1
        # else a direct reply-to delivery: as RabbitMQ 3.10.8, it carries the channel's next
        # tag without using it up (the next delivery or get-ok gets the same one).
        self.delivered += 1
        prefix = consumer.cookie  # basic.deliver's method id and consumer tag, encoded once
        route = message.route_raw
        header = message.header
        if message.returns and consumer.queue is not None and consumer.queue.is_quorum:
            header = with_delivery_count(header, message.returns)
        body = message.body
        number = self.number
        conn = self.conn
        size = len(body)
        if 0 < size <= self._body_chunk:
            conn.out.extend(
                (
                    FRAME_HEADER.pack(1, number, len(prefix) + 9 + len(route)),
                    prefix,
                    _TAG_REDELIVERED.pack(tag, message.returns > 0),
                    route,
                    _END_AND_HEADER.pack(0xCE, 2, number, len(header)),
                    header,
                    _END_AND_HEADER.pack(0xCE, 3, number, size),
                    body,
                    _END,
                )
            )
        else:
            conn.out.extend(
                (
                    FRAME_HEADER.pack(1, number, len(prefix) + 9 + len(route)),
                    prefix,
                    _TAG_REDELIVERED.pack(tag, message.returns > 0),
                    route,
                    _END_AND_HEADER.pack(0xCE, 2, number, len(header)),
                    header,
                    _END,
                )
            )
            if size:
                conn.out.extend(body_frames(number, body, conn.frame_max))
        # Write out in bounded bursts: the socket's back-pressure (pause_writing) then stops
        # the dispatch loop mid-way instead of after the whole backlog sits in memory.
        conn.out_size += size
        if conn.out_size > _BURST:
            conn.flush()
        elif not conn.flush_pending:
            conn.flush_pending = True
            conn.loop.call_soon(conn.flush)

    def write_content(self, method_payload: bytes, header: bytes, body: bytes) -> None:
        """A content-bearing method (get-ok, return) with its header and body frames."""
        number = self.number
        conn = self.conn
        conn.out.extend(
            (
                FRAME_HEADER.pack(1, number, len(method_payload)),
                method_payload,
                _END_AND_HEADER.pack(0xCE, 2, number, len(header)),
                header,
                _END,
            )
        )
        if body:
            conn.out.extend(body_frames(number, body, conn.frame_max))
        conn.schedule_flush()

    def consumer_cancelled(self, consumer: Consumer) -> None:
        """The queue went away (or dropped us): tell the client if it wants to know."""
        if self.consumers.pop(consumer.tag, None) is None:
            return
        if self.conn.capabilities.get("consumer_cancel_notify"):
            if self.held_cancels is not None:
                self.held_cancels.append(consumer.tag)
            else:
                self.send(spec.BasicCancel(consumer.tag, True))

    def hold_cancels(self) -> None:
        """This channel deletes a queue: as RabbitMQ, its own consumers of it hear basic.cancel
        after queue.delete-ok (py-amqp raised ConsumerCancelled from queue_delete otherwise)."""
        self.held_cancels = []

    def release_cancels(self) -> None:
        held, self.held_cancels = self.held_cancels, None
        for tag in held or ():
            self.send(spec.BasicCancel(tag, True))

    def queue_settings_changed(self, queue: Queue) -> None:
        """A policy changed the queue's settings: a delivery timeout may apply now."""
        self._watch_acks(queue)

    def _watch_acks(self, queue: Queue, consumer: Consumer | None = None) -> None:
        """Deliveries from ``queue`` (to ``consumer``, or by basic.get) are about to be taken:
        time their acknowledgements when a timeout applies (nothing to do otherwise)."""
        timeouts = self.ack_timeouts
        if timeouts is None:
            if consumer is not None and consumer.no_ack:
                return
            settings = self.node.settings
            if not (settings.consumer_timeout or queue.settings.consumer_timeout or consumer_timeout(consumer)):
                return
            timeouts = self.ack_timeouts = AckTimeouts(self)
        timeouts.watch(queue, consumer)

    # -- basic.qos / consume / cancel -----------------------------------------------------

    def _basic_qos(self, m: spec.BasicQos) -> None:
        if m.prefetch_size != 0:
            raise NotImplementedAMQP(f"prefetch_size!=0 ({m.prefetch_size})")
        if m.global_:
            self.global_prefetch = m.prefetch_count
            self.update_active()
        else:
            self.prefetch_count = m.prefetch_count
            if self.global_prefetch:
                # As RabbitMQ 3.x: a per-consumer basic.qos lifts the channel's shared limit.
                self.global_prefetch = 0
                self.update_active()
        self.send(spec.BasicQosOk())

    def _basic_consume(self, m: spec.BasicConsume) -> None:
        if m.queue == reply_to.PSEUDO_QUEUE:
            self._consume_replies(m)
            return
        limit = self.node.settings.consumers_per_channel
        if limit and len(self.consumers) >= limit:
            raise NotAllowed(f"reached maximum ({limit}) of consumers per channel")
        name = self._queue_name(m.queue)
        self.check_read("queue", name)  # as RabbitMQ: the name's permission before its existence
        queue = self.lookup_queue(name)
        tag = m.consumer_tag or generated_tag()
        if tag in self.consumers:
            raise NotAllowed(f"attempt to reuse consumer tag '{tag}'")
        args = m.arguments if isinstance(m.arguments, FieldTable) else FieldTable.of(m.arguments)
        if isinstance(queue, Stream):
            consume_stream(self, m, queue, tag, args)
            return
        if self.global_prefetch and queue.is_quorum:
            raise NotImplementedAMQP(f"{queue_display(queue.name, self.vhost.name)} does not support global qos")
        priority = self._consumer_priority(args, queue)
        display = queue_display(queue.name, self.vhost.name)
        check_foreign_arguments(queue.settings.queue_type, args, display)
        existing = queue.consumers()
        if existing and (m.exclusive or any(c.exclusive for c in existing)):
            raise AccessRefused(f"{display} in exclusive use")
        consumer = Consumer(
            tag,
            queue,
            self,
            no_ack=m.no_ack,
            exclusive=m.exclusive,
            prefetch=self.prefetch_count,
            priority=priority,
            arguments=args.plain(),
        )
        consumer.cookie = _DELIVER_ID + encode_shortstr(tag)
        self.consumers[tag] = consumer
        self._start_consumer(consumer, queue, m.nowait)

    def _start_consumer(self, consumer: Consumer, queue: Queue, nowait: bool) -> None:
        if not nowait:
            # consume-ok goes out before the first delivery.
            self.send(spec.BasicConsumeOk(consumer.tag))
        self._watch_acks(queue, consumer)
        queue.add_consumer(consumer)

    def _consume_replies(self, m: spec.BasicConsume) -> None:
        """A consumer of the direct reply-to pseudo-queue (no-ack only, one per channel)."""
        if not m.no_ack:
            raise PreconditionFailed("reply consumer cannot acknowledge")
        if self.reply_address:
            raise PreconditionFailed("reply consumer already set")
        tag = m.consumer_tag or generated_tag()
        if tag in self.consumers:
            raise NotAllowed(f"attempt to reuse consumer tag '{tag}'")
        consumer = Consumer(tag, None, self, no_ack=True)
        consumer.cookie = _DELIVER_ID + encode_shortstr(tag)
        self.consumers[tag] = consumer
        self.reply_address = self.node.replies.register(consumer)
        if not m.nowait:
            self.send(spec.BasicConsumeOk(tag))

    def _consumer_priority(self, args: FieldTable, queue: Queue) -> int:
        item = args.get("x-priority")
        if item is None:
            return 0
        if item[0] not in INTEGER_TAGS:
            raise PreconditionFailed(
                f"invalid arg 'x-priority' for {queue_display(queue.name, self.vhost.name)}: "
                f'"expected integer, got {TYPE_NAMES[item[0]]}"'
            )
        return int(item[1])

    def _basic_cancel(self, m: spec.BasicCancel) -> None:
        consumer = self.consumers.pop(m.consumer_tag, None)
        if not m.nowait:
            self.send(spec.BasicCancelOk(m.consumer_tag))
        if consumer is not None:
            self._drop_consumer(consumer)

    def _drop_consumer(self, consumer: Consumer) -> None:
        if consumer.queue is not None:
            consumer.queue.remove_consumer(consumer)
        elif self.reply_address:
            self.node.replies.unregister(self.reply_address)
            self.reply_address = ""

    # -- basic.get ----------------------------------------------------------------------

    def _basic_get(self, m: spec.BasicGet) -> None:
        name = self._queue_name(m.queue)
        self.check_read("queue", name)
        queue = self.lookup_queue(name)
        message = queue.get(m.no_ack)
        if message is None:
            self.send(spec.BasicGetEmpty(""))
            return
        self._get_ok(queue, message, queue.message_count, m.no_ack)

    def _get_ok(self, queue: Queue, message: Message, count: int, no_ack: bool) -> None:
        tag = self.next_tag
        self.next_tag = tag + 1
        if not no_ack:
            self.unacked[tag] = message
            self._watch_acks(queue)
        payload = (
            _GET_OK_ID
            + _TAG_REDELIVERED.pack(tag, message.returns > 0)
            + message.route_raw
            + _MESSAGE_COUNT.pack(count)
        )
        header = message.header
        if queue.is_quorum:  # RabbitMQ 3.10.8: every get-ok of a quorum queue says it, 0 too
            header = with_delivery_count(header, message.returns)
        self.write_content(payload, header, message.body)

    # -- settlement ---------------------------------------------------------------------

    def ack_frame(self, payload: bytes) -> None:
        """A basic.ack that did not come in an ACKS run (the frame reader's batch, see
        ack_run): decoded here without the generic decoder, settled as any ack."""
        if len(payload) != 13:
            raise FrameError(f"cannot decode {erlang_binary(payload[4:])}", 60, 80)  # RabbitMQ's 501
        tag, bits = _ACK_ARGS.unpack_from(payload, 4)
        self.settle_or_defer("ack", tag, bool(bits & 1), False)

    def ack_run(self, codes: list[int]) -> None:
        """Acks in a row (delivery tags; ``~tag`` for multiple), then one dispatch per queue
        instead of one per ack.  Raises at the first unknown tag (the channel then closes)."""
        unacked = self.unacked
        queue = None
        others: list[Queue] = []
        settled = 0
        for code in codes:
            if code < 0:
                self.settle("ack", ~code, True, False)
                continue
            message = unacked.pop(code, None)
            if message is None:
                if self.ack_timeouts is not None and self.ack_timeouts.forgive(code):
                    continue  # requeued when its acknowledgement timed out
                self.acked += settled
                raise PreconditionFailed(f"unknown delivery tag {code}", 60, 80)
            if message.queue is not queue:
                if queue is not None and queue not in others:
                    others.append(queue)
                queue = message.queue
            assert queue is not None
            queue.ack(message)
            settled += 1
        self.acked += settled
        if not self.active:
            self.update_active()
        for other in others:
            if other is not queue:
                other.dispatch()
        if queue is not None:
            queue.dispatch()

    def _basic_ack(self, m: spec.BasicAck) -> None:
        self.settle_or_defer("ack", m.delivery_tag, m.multiple, False)

    def _basic_reject(self, m: spec.BasicReject) -> None:
        refuse_stream_settlement(self.unacked[t] for t in self._tags(m.delivery_tag, False))
        self.settle_or_defer("reject", m.delivery_tag, False, m.requeue)

    def _basic_nack(self, m: spec.BasicNack) -> None:
        refuse_stream_settlement(self.unacked[t] for t in self._tags(m.delivery_tag, m.multiple))
        self.settle_or_defer("reject", m.delivery_tag, m.multiple, m.requeue)

    def settle_or_defer(self, kind: str, tag: int, multiple: bool, requeue: bool) -> None:
        if self.tx:
            # As RabbitMQ: the tags leave the unacked set now (an unknown or repeated tag fails
            # now), the settlement itself waits for tx.commit; tx.rollback gives them back.
            unacked = self.unacked
            self.tx_taken.append([(t, unacked.pop(t)) for t in self._tags(tag, multiple)])
            self.tx_settles.append((kind, tag, multiple, requeue))
            return
        self.settle(kind, tag, multiple, requeue)

    def _tags(self, tag: int, multiple: bool) -> list[int]:
        """The unacked delivery tags a settlement covers.  The error names no method: the
        channel fills in the one being handled (ack, reject or nack)."""
        unacked = self.unacked
        if multiple:
            if tag == 0:
                tags = list(unacked)
            else:
                if tag not in unacked and not self._forgiven(tag):
                    raise PreconditionFailed(f"unknown delivery tag {tag}")
                tags = []
                for t in unacked:
                    if t > tag:
                        break
                    tags.append(t)
        else:
            if tag not in unacked:
                if self._forgiven(tag):
                    return []
                raise PreconditionFailed(f"unknown delivery tag {tag}")
            tags = [tag]
        return tags

    def _forgiven(self, tag: int) -> bool:
        """A settlement of a delivery requeued on its acknowledgement timeout: ignored."""
        return self.ack_timeouts is not None and self.ack_timeouts.forgive(tag)

    def restore_tx_settles(self) -> None:
        """tx.rollback (or the channel closing): the settlements not committed are undone;
        their messages are unacknowledged again, in delivery-tag order."""
        taken = self.tx_taken
        if not taken:
            return
        unacked = self.unacked
        items = sorted([*unacked.items(), *(pair for pairs in taken for pair in pairs)])
        taken.clear()
        unacked.clear()
        unacked.update(items)

    def settle(self, kind: str, tag: int, multiple: bool, requeue: bool) -> None:
        """Settle now; on a transactional channel (at tx.commit) apply the next settlement
        that ``settle_or_defer`` took."""
        if self.tx and self.tx_taken:
            messages = [message for _, message in self.tx_taken.popleft()]
        else:
            unacked = self.unacked
            messages = [unacked.pop(t) for t in self._tags(tag, multiple)]
        self._apply(kind, requeue, messages)

    def _apply(self, kind: str, requeue: bool, messages: list[Message]) -> None:
        if not messages:
            return
        queues: dict[int, Queue] = {}
        if kind == "ack":
            for message in messages:
                queue = message.queue
                assert queue is not None
                queue.ack(message)
                queues[id(queue)] = queue
            self.acked += len(messages)
        elif requeue:
            by_queue: dict[int, list[Message]] = {}
            for message in messages:
                queue = message.queue
                assert queue is not None
                queues[id(queue)] = queue
                by_queue.setdefault(id(queue), []).append(message)
            for key, group in by_queue.items():
                queues[key].requeue(group)
        else:
            for message in messages:
                queue = message.queue
                assert queue is not None
                queue.reject(message, False)
                queues[id(queue)] = queue
        if not self.active:
            self.update_active()
        for queue in queues.values():
            queue.dispatch()

    def _basic_recover(self, m: spec.BasicRecover) -> None:
        if not m.requeue:
            raise NotImplementedAMQP("requeue=false")
        refuse_stream_recover(self.unacked.values())
        self._requeue_all()
        self.send(spec.BasicRecoverOk())

    def _basic_recover_async(self, m: spec.BasicRecoverAsync) -> None:
        if not m.requeue:
            raise NotImplementedAMQP("requeue=false")
        refuse_stream_recover(self.unacked.values())
        self._requeue_all()

    def _requeue_all(self) -> None:
        if not self.unacked:
            return
        unacked = self.unacked
        self._apply("reject", True, [unacked.pop(t) for t in self._tags(0, True)])

    def release_consuming(self) -> None:
        if self.ack_timeouts is not None:
            self.ack_timeouts.stop()
        self.restore_tx_settles()
        consumers = list(self.consumers.values())
        self.consumers.clear()
        for consumer in consumers:
            self._drop_consumer(consumer)
        unacked = self.unacked
        if unacked:
            by_queue: dict[int, tuple[Queue, list[Message]]] = {}
            for message in unacked.values():
                queue = message.queue
                assert queue is not None
                entry = by_queue.get(id(queue))
                if entry is None:
                    by_queue[id(queue)] = (queue, [message])
                else:
                    entry[1].append(message)
            unacked.clear()
            for queue, group in by_queue.values():
                queue.requeue(group)
        self.active = False
