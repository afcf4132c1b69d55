"""Delivery acknowledgement timeouts (RabbitMQ's ``consumer_timeout``), with no work per message.

Theory of operation.  A channel's delivery tags grow with every delivery and get-ok, and its
``unacked`` dict keeps them in tag order, so the oldest unsettled delivery is its first key.
While the channel holds deliveries that a timeout applies to, a ticker samples (time, next
delivery tag) every ``step``; a delivery with tag t happened before the first sample whose
next tag is above t, so it is at least ``now - that sample's time`` old.  Nothing is stamped on
the delivery path: a delivery times out between its timeout and its timeout plus two steps
after it was sent, never before (RabbitMQ 3.x also checks on a channel tick).

The timeout of a delivery: the consumer's ``x-consumer-timeout`` argument, else the queue's
(its argument and ``consumer-timeout`` policy, the smaller wins), else the node's
``consumer_timeout``; 0 means none.  On expiry, as RabbitMQ 3.x, the channel is closed with
406 PRECONDITION_FAILED (its unacknowledged messages are requeued); with
``consumer_timeout_action = "cancel"``, as RabbitMQ 4.x, the consumer is cancelled with
basic.cancel and the timed-out messages are requeued, the channel staying open (a client
without the ``consumer_cancel_notify`` capability gets the channel closed).  A late ack or
nack of a requeued delivery is then ignored rather than failing as an unknown tag.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from warrenmq.amqp import spec
from warrenmq.amqp.errors import PreconditionFailed

if TYPE_CHECKING:
    from warrenmq.broker.consumer import Consumer
    from warrenmq.broker.message import Message
    from warrenmq.broker.queue import Queue
    from warrenmq.server.channel import Channel

_MIN_STEP = 0.005
_MAX_STEP = 1.0
_SCAN_LIMIT = 1000  # deliveries looked at per tick beyond the youngest timeout (bounded work)


def timeout_text(channel: int, timeout: int) -> str:
    """RabbitMQ 3.x's words (rabbit_channel), so that clients and log checks recognise it."""
    return (
        f"delivery acknowledgement on channel {channel} timed out. Timeout value used: {timeout} ms. "
        "This timeout value can be configured, see consumers doc guide to learn more"
    )


def consumer_timeout(consumer: Consumer | None) -> int | None:
    """The consumer's own ``x-consumer-timeout`` (ms), if it gave one."""
    if consumer is None:
        return None
    value = consumer.arguments.get("x-consumer-timeout")
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


class AckTimeouts:
    """The acknowledgement timeouts of one channel: a ticker while deliveries are subject to one."""

    def __init__(self, channel: Any) -> None:
        self.channel: Channel = channel
        self.node_default = channel.node.settings.consumer_timeout
        self.cancel_mode = channel.node.settings.consumer_timeout_action == "cancel"
        self.queues: dict[int, Queue] = {}  # queues this channel took deliveries from (timeouts)
        self.samples: list[tuple[float, int]] = []  # (loop time, next delivery tag)
        self.forgiven: set[int] = set()  # tags requeued on timeout: a late ack is ignored
        self._timer: Any = None

    # -- what applies ---------------------------------------------------------------------

    def queue_timeout(self, queue: Queue) -> int:
        timeout = queue.settings.consumer_timeout
        return self.node_default if timeout is None else timeout

    def timeout_of(self, message: Message) -> int:
        own = consumer_timeout(message.consumer)
        if own is not None:
            return own
        queue = message.queue
        return self.queue_timeout(queue) if queue is not None else 0

    def shortest(self) -> int:
        """The shortest timeout among the channel's queues and consumers (0: none)."""
        found = [self.queue_timeout(q) for q in self.queues.values() if not q.deleted]
        found += [t for c in self.channel.consumers.values() if (t := consumer_timeout(c)) is not None]
        positive = [t for t in found if t > 0]
        return min(positive) if positive else 0

    def watch(self, queue: Queue, consumer: Consumer | None = None) -> None:
        """The channel takes deliveries from ``queue`` (a consumer, or a basic.get)."""
        if id(queue) not in self.queues:
            self.queues[id(queue)] = queue
        self.changed()

    def changed(self) -> None:
        """A timeout may now apply (or no longer): tick when one does."""
        if self._timer is None and self.shortest() > 0:
            self._arm(self.shortest())

    # -- the ticker -----------------------------------------------------------------------

    def _arm(self, shortest: int) -> None:
        step = min(max(shortest / 20000.0, _MIN_STEP), _MAX_STEP)
        self._timer = self.channel.conn.loop.call_later(step, self._tick)

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _tick(self) -> None:
        self._timer = None
        channel = self.channel
        if channel.state != 0:
            return
        shortest = self.shortest()
        unacked = channel.unacked
        if shortest <= 0 or (not unacked and not channel.consumers):
            self.samples.clear()
            return  # nothing to time: a consume or get starts the ticker again
        now = channel.conn.loop.time()
        samples = self.samples
        if not samples or samples[-1][1] != channel.next_tag:
            samples.append((now, channel.next_tag))
        if unacked:
            expired = self._expired(now, shortest)
            if expired:
                self._expire(expired)
                if channel.state != 0:
                    return
        self._arm(shortest)

    def _expired(self, now: float, shortest: int) -> list[tuple[int, Message, int]]:
        unacked = self.channel.unacked
        samples = self.samples
        first = next(iter(unacked))
        drop = 0
        while drop < len(samples) - 1 and samples[drop][1] <= first:
            drop += 1
        del samples[:drop]  # no unsettled delivery is that old any more
        out: list[tuple[int, Message, int]] = []
        k = 0
        for looked, (tag, message) in enumerate(unacked.items(), 1):
            while samples[k][1] <= tag:
                k += 1
            age = (now - samples[k][0]) * 1000.0
            if age < shortest:
                break  # every later delivery is younger still
            timeout = self.timeout_of(message)
            if timeout > 0 and age >= timeout:
                out.append((tag, message, timeout))
            if looked >= _SCAN_LIMIT:
                break
        return out

    # -- expiry -----------------------------------------------------------------------------

    def _expire(self, expired: list[tuple[int, Message, int]]) -> None:
        channel = self.channel
        if not self.cancel_mode or not channel.conn.capabilities.get("consumer_cancel_notify"):
            error = PreconditionFailed(timeout_text(channel.number, expired[0][2]))
            channel.fail(error)
            return
        by_queue: dict[int, tuple[Queue, list[Message]]] = {}
        cancelled: dict[str, Consumer] = {}
        for tag, message, _timeout in expired:
            holder: Consumer | None = message.consumer
            if holder is not None and channel.consumers.get(holder.tag) is holder:
                cancelled[holder.tag] = holder
            del channel.unacked[tag]
            self.forgiven.add(tag)
            queue = message.queue
            assert queue is not None
            by_queue.setdefault(id(queue), (queue, []))[1].append(message)
        for consumer_tag, consumer in cancelled.items():
            # As RabbitMQ 4.x: the consumer is cancelled first, so the requeued messages go to
            # another consumer rather than straight back to the one that sat on them.
            del channel.consumers[consumer_tag]
            if consumer.queue is not None:
                consumer.queue.remove_consumer(consumer)
            channel.send(spec.BasicCancel(consumer_tag, True))
        for queue, messages in by_queue.values():
            queue.requeue(messages)
        if not channel.active:
            channel.update_active()

    def forgive(self, tag: int) -> bool:
        """A settlement of ``tag``, which is not unacknowledged: True when it is a delivery that
        timed out and was requeued (to be ignored), False when it is an unknown tag."""
        if tag in self.forgiven:
            self.forgiven.discard(tag)
            return True
        return False
