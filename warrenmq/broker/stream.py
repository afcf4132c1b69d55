"""A stream queue (``x-queue-type: stream``): an append-only log read by each consumer at
its own offset, as RabbitMQ's stream queues over AMQP 0-9-1.

Theory of operation.  ``publish`` stamps the message's content header with its offset
(``x-stream-offset``, once, so the stored bytes are what every consumer gets) and appends it
to the log.  The newest messages also stay in memory (the *tail*: every message the store
has not written yet, and a bounded number more), so consumers that keep up are served
without reading anything back.  A consumer that is behind reads from the log through its
own cursor, in batches no larger than its credit (prefetch minus unacknowledged), so one
reading a long stream from the start holds at most a prefetch's worth of messages.

Nothing is removed by consuming: an ack only gives the consumer its credit back, and
retention (size, age) drops whole segments of the log.  What streams refuse (basic.get,
purge, reject/nack, auto-ack consumers...) is refused with RabbitMQ 3.10.8's codes and texts.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from warrenmq.amqp.errors import NotImplementedAMQP
from warrenmq.amqp.header_splice import add_long_header
from warrenmq.broker.message import Message
from warrenmq.broker.queue import Queue
from warrenmq.broker.queue_args import QueueSettings, queue_display
from warrenmq.broker.stream_args import FIRST, LAST, NEXT, TIMESTAMP, StartAt, retention_from_arguments
from warrenmq.broker.stream_log import MemoryStreamLog, Record, StreamLog

if TYPE_CHECKING:
    from warrenmq.broker.consumer import Consumer
    from warrenmq.broker.queue import Scheduler
    from warrenmq.broker.stats import QueueStats

OFFSET_HEADER = "x-stream-offset"
TAIL_MESSAGES = 16_384  # written messages kept in memory for consumers that keep up
TAIL_BYTES = 8 * 1024 * 1024
READ_BATCH = 1024  # most records read back per call, whatever the credit
KEEPING_UP = 65_536  # messages behind the end within which a consumer holds publishers back
# A consumer that keeps up but is this many messages behind holds publishers back a moment
# (a classic queue's 2,000 made the publisher stop and go more often here: 5-10% slower).
CONGESTED = 8_000


class _Reader:
    """A consumer's place in the stream; ``unread``: records read back but not delivered
    (its channel stopped taking deliveries mid-batch), from ``unread[0]``."""

    __slots__ = ("consumer", "cursor", "next", "unread")

    def __init__(self, consumer: Consumer, next_offset: int, cursor: Any) -> None:
        self.consumer = consumer
        self.next = next_offset
        self.cursor = cursor
        self.unread: list[Record] = []


class Stream(Queue):
    def __init__(
        self,
        name: str,
        vhost: str,
        durable: bool = True,
        exclusive_owner: object | None = None,
        auto_delete: bool = False,
        arguments: dict[str, Any] | None = None,
        settings: QueueSettings | None = None,
        scheduler: Scheduler | None = None,
        stats: QueueStats | None = None,
        backlog_factory: Any = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        # A stream has no backlog of its own to page: the log is on disk already.
        super().__init__(name, vhost, durable, exclusive_owner, auto_delete, arguments, settings, scheduler, stats)
        self.clock = clock
        self.retention = retention_from_arguments(self.arguments)
        self.log: StreamLog = MemoryStreamLog(self.retention, clock)
        self._readers: list[_Reader] = []
        self._tail: list[tuple[str, str, bytes, bytes, bytes]] = []  # exchange, key, route, header, body
        self._tail_base = 0  # the offset of _tail[0]
        self._tail_bytes = 0
        self._route_cache: tuple[bytes, str, str] = (b"\x00\x00", "", "")

    def attach_log(self, log: StreamLog) -> None:
        """Use the store's log (a new one, or the one recovered for this stream)."""
        log.set_retention(self.retention)
        self.log = log
        self._tail = []
        self._tail_base = log.end
        self._tail_bytes = 0

    # -- information ---------------------------------------------------------------------

    @property
    def message_count(self) -> int:
        """Messages in the stream (RabbitMQ reports the same, with some lag)."""
        return self.log.end - self.log.first

    @property
    def ready_bytes(self) -> int:
        return self.log.size

    @ready_bytes.setter
    def ready_bytes(self, value: int) -> None:
        pass  # the log's size says it

    @property
    def display(self) -> str:
        return queue_display(self.name, self.vhost)

    # -- publishing ----------------------------------------------------------------------

    def publish(self, message: Message) -> bool:
        log = self.log
        offset = log.end
        route = message.route_raw
        body = message.body
        header = add_long_header(message.header, OFFSET_HEADER, offset)
        log.append(route, header, body)
        message.queue = self
        message.stored = True  # a confirm waits for the store to write the log
        self.stats.publish += 1
        entry = (message.exchange, message.routing_key, route, header, body)
        tail = self._tail
        tail.append(entry)
        self._tail_bytes += len(body)
        if len(tail) > 2 * TAIL_MESSAGES or self._tail_bytes > TAIL_BYTES:
            self._trim_tail()
        readers = self._readers
        if not readers:
            return True
        if len(readers) == 1:
            # One consumer keeping up (the common case): straight to it, no dispatch round.
            reader = readers[0]
            consumer = reader.consumer
            if reader.next == offset and consumer.unacked < consumer.prefetch and consumer.target.active:
                reader.next = offset + 1
                delivery = Message(offset, message.exchange, message.routing_key, route, header, body)
                delivery.queue = self
                delivery.consumer = consumer
                consumer.unacked += 1
                consumer.delivered += 1
                self.stats.deliver += 1
                consumer.target.deliver(consumer, delivery)
                return True
        self.dispatch()
        if not self.congested and self._backed_up(CONGESTED):
            self.congested = True  # the publishing channel holds its publisher back a moment
        return True

    def _backed_up(self, limit: int) -> bool:
        """Whether a consumer that keeps up (less than KEEPING_UP behind) is more than
        ``limit`` behind: as for a classic queue's backlog, publishers then wait a moment
        for it, so that one event loop shares its time between them.  A consumer reading
        the stream's history holds no one back until it is close to the end."""
        end = self.log.end
        for reader in self._readers:  # noqa: SIM110 - asked per publish: a loop, not a generator
            if limit < end - reader.next <= KEEPING_UP:
                return True
        return False

    def _trim_tail(self) -> None:
        """Forget the oldest tail messages the log can give back (never unwritten ones)."""
        tail = self._tail
        droppable = min(self.log.written - self._tail_base, len(tail))
        size = self._tail_bytes
        cut = 0
        while cut < droppable and (len(tail) - cut > TAIL_MESSAGES or size > TAIL_BYTES):
            size -= len(tail[cut][4])
            cut += 1
        if cut:
            del tail[:cut]
            self._tail_base += cut
            self._tail_bytes = size

    # -- consumers -----------------------------------------------------------------------

    def subscribe(self, consumer: Consumer, start: StartAt) -> None:
        """A new consumer, starting where ``start`` says."""
        self._readers.append(_Reader(consumer, self.start_offset(start), self.log.cursor()))
        self.add_consumer(consumer)

    def start_offset(self, start: StartAt) -> int:
        log = self.log
        kind = start.kind
        if kind == FIRST:
            return log.first
        if kind == NEXT:
            return log.end
        if kind == LAST:
            return max(log.first, log.end - 1)  # the last message (RabbitMQ: the last chunk's first)
        if kind == TIMESTAMP:
            return log.offset_at(start.value)
        return start.value

    def remove_consumer(self, consumer: Consumer) -> None:
        for i, reader in enumerate(self._readers):
            if reader.consumer is consumer:
                del self._readers[i]
                self.log.release(reader.cursor)
                break
        super().remove_consumer(consumer)

    def dispatch(self) -> None:
        for reader in self._readers:
            consumer = reader.consumer
            if consumer.unacked < consumer.prefetch and consumer.target.active and reader.next < self.log.end:
                self._feed(reader)
        if self.congested and not self._backed_up(CONGESTED // 2):
            self._relieve()

    def _feed(self, reader: _Reader) -> None:
        """Deliver to one consumer as far as its credit goes: from the log while it is
        behind the tail, then from the tail."""
        consumer = reader.consumer
        target = consumer.target
        log = self.log
        while True:
            credit = consumer.prefetch - consumer.unacked
            position = reader.next
            if credit <= 0 or not target.active or position >= log.end:
                return
            if position < log.first:
                position = reader.next = log.first  # retention went past it: on from the oldest kept
            base = self._tail_base
            if position >= base:
                # From memory, inlined: this is the path of every consumer that keeps up.
                tail = self._tail
                deliver = target.deliver
                stop = min(len(tail), position - base + credit)
                offset = position
                for i in range(position - base, stop):
                    exchange, routing_key, route, header, body = tail[i]
                    message = Message(offset, exchange, routing_key, route, header, body)
                    message.queue = self
                    message.consumer = consumer
                    consumer.unacked += 1
                    offset += 1
                    reader.next = offset
                    deliver(consumer, message)
                    if not target.active:
                        break
                delivered = offset - position
                consumer.delivered += delivered
                self.stats.deliver += delivered
                if not target.active:
                    return
                continue
            batch = reader.unread
            if not batch or batch[0][0] != position:
                # Kept when a batch was cut short, so that the cursor, already past it,
                # need not seek back (a seek re-reads up to an index interval).
                batch = log.read(reader.cursor, position, min(credit, READ_BATCH, base - position))
                if not batch:
                    return  # nothing readable (damage skipped, or a gap): try again later
            for i, (offset, route, header, body) in enumerate(batch):
                reader.next = offset + 1
                exchange, routing_key = self._route(route)
                self._deliver_one(consumer, offset, exchange, routing_key, route, header, body)
                if not target.active or consumer.unacked >= consumer.prefetch:
                    reader.unread = batch[i + 1 :]
                    break
            else:
                reader.unread = []
            if not target.active:
                return

    def _route(self, route: bytes) -> tuple[str, str]:
        """Exchange and routing key of a record read back (consecutive records mostly share them)."""
        cached = self._route_cache
        if cached[0] == route:
            return cached[1], cached[2]
        n = route[0]
        exchange = route[1 : 1 + n].decode()
        routing_key = route[2 + n : 2 + n + route[1 + n]].decode()
        self._route_cache = (route, exchange, routing_key)
        return exchange, routing_key

    def _deliver_one(
        self, consumer: Consumer, offset: int, exchange: str, routing_key: str, route: bytes, header: bytes, body: bytes
    ) -> None:
        message = Message(offset, exchange, routing_key, route, header, body)
        message.queue = self
        message.consumer = consumer
        consumer.unacked += 1
        consumer.delivered += 1
        self.stats.deliver += 1
        consumer.target.deliver(consumer, message)

    # -- settlement: credit only -----------------------------------------------------------

    def ack(self, message: Message) -> None:
        consumer = message.consumer
        if consumer is not None:
            consumer.unacked -= 1
            message.consumer = None
        self.stats.ack += 1

    def requeue(self, messages: list[Message]) -> None:
        """Unacknowledged deliveries of a closed channel: nothing goes back, the credit does."""
        for message in messages:
            consumer = message.consumer
            if consumer is not None:
                consumer.unacked -= 1
                message.consumer = None
        self.dispatch()

    def reject(self, message: Message, requeue: bool) -> None:
        raise NotImplementedAMQP(f"basic.nack and basic.reject not supported by stream queues {self.display}")

    # -- what streams refuse ----------------------------------------------------------------

    def get(self, no_ack: bool) -> Message | None:
        raise NotImplementedAMQP(f"basic.get not supported by stream queues {self.display}")

    def purge(self) -> int:
        raise NotImplementedAMQP(f"queue.purge not supported by stream queues {self.display}")

    # -- housekeeping -------------------------------------------------------------------

    def replace_settings(self, settings: QueueSettings) -> None:
        self.settings = settings  # policies: nothing of a classic queue's applies

    def delete(self) -> int:
        super().delete()
        for reader in self._readers:
            self.log.release(reader.cursor)
        self._readers = []
        self._tail = []
        self._tail_bytes = 0
        self.log.delete()
        return 0
