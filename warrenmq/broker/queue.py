"""A queue: ready messages, consumers, dispatch and settlement.

Theory of operation.  ``publish`` appends a message (or hands it straight to a consumer when
nothing is waiting); ``dispatch`` moves ready messages to consumers with credit, round-robin
within the highest consumer priority that has credit.  A delivered message is either settled
at once (no-ack) or held by its consumer until ``ack``/``reject``/``requeue``.  Requeued
messages go back to their original positions, flagged redelivered.

Expiry is checked at the head only (as RabbitMQ does): per-queue TTL keeps the queue sorted
by deadline, and a per-message expiration is honoured when the message reaches the head, so
no operation scans the queue.  One timer, for the head's deadline, drives expiry while no
consumer pulls.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from warrenmq.broker.backlog import Fifo, Prioritised
from warrenmq.broker.consumer import Consumer
from warrenmq.broker.message import Message
from warrenmq.broker.paging import PagedFifo
from warrenmq.broker.queue_args import QueueSettings

if TYPE_CHECKING:
    from warrenmq.broker.stats import QueueStats


class Timer(Protocol):
    def cancel(self) -> None: ...


class Scheduler(Protocol):
    """Time and timers for the broker model (an asyncio loop fits)."""

    def time(self) -> float: ...

    def call_later(self, delay: float, callback: Callable[[], None]) -> Timer: ...


class Throttled(Protocol):
    """A publisher held back while a queue it feeds is congested."""

    def unthrottle(self) -> None: ...


class QueueStore(Protocol):
    """A durable queue's handle on the message store."""

    def append(self, message: Message) -> None: ...

    def ack(self, message: Message) -> None: ...

    def delivered(self, message: Message) -> None: ...

    def purge(self) -> None: ...

    def delete(self) -> None: ...


DeadLetter = Callable[[Message, str], None]
CONGESTED = 2000  # ready messages, with consumers present, past which publishers are throttled
Backlog = Fifo | Prioritised | PagedFifo


class Queue:
    def __init__(
        self,
        name: str,
        vhost: str,
        durable: bool = False,
        exclusive_owner: object | None = None,
        auto_delete: bool = False,
        arguments: dict[str, Any] | None = None,
        settings: QueueSettings | None = None,
        scheduler: Scheduler | None = None,
        stats: QueueStats | None = None,
        backlog_factory: Callable[[Queue], Backlog] | None = None,
    ) -> None:
        from warrenmq.broker.stats import QueueStats

        self.name = name
        self.vhost = vhost
        self.durable = durable
        self.exclusive_owner = exclusive_owner
        self.auto_delete = auto_delete
        self.arguments: dict[str, Any] = arguments or {}
        self.settings = settings or QueueSettings()
        self.base_settings = self.settings  # from the arguments; policies add to it
        self.policy: str | None = None
        self.scheduler = scheduler
        self.stats = stats or QueueStats()
        self.store: QueueStore | None = None
        self.dead_letter: DeadLetter | None = None  # set by the vhost when a DLX applies
        self.on_unused: Callable[[Queue], None] | None = None  # auto-delete hook
        self.on_expired: Callable[[Queue], None] | None = None  # x-expires hook
        max_priority = self.settings.max_priority
        self._ready: Backlog
        if max_priority:
            self._ready = Prioritised(max_priority)
        elif backlog_factory is not None:
            self._ready = backlog_factory(self)
        else:
            self._ready = Fifo()
        self.ready_bytes = 0
        self.unacked = 0
        self._groups: list[deque[Consumer]] = []  # consumers by priority, highest first
        self.consumer_count = 0
        self.had_consumers = False
        self.deleted = False
        self._expiry_timer: Timer | None = None
        self._expiry_deadline = 0.0
        self._idle_timer: Timer | None = None
        self.last_used = scheduler.time() if scheduler else 0.0
        self.single_active: Consumer | None = None
        self.congested = False  # consumers wait on the broker while a backlog builds
        self.throttled: set[Throttled] = set()  # publishers held back until it drains

    # -- information ---------------------------------------------------------------------

    @property
    def message_count(self) -> int:
        """Ready messages (what queue.declare-ok and basic.get-ok report)."""
        return len(self._ready)

    @property
    def exclusive(self) -> bool:
        return self.exclusive_owner is not None

    @property
    def is_quorum(self) -> bool:
        return self.settings.queue_type == "quorum"

    def consumers(self) -> list[Consumer]:
        return [c for group in self._groups for c in group]

    def ready_messages(self) -> list[Message]:
        return list(self._ready)

    def __repr__(self) -> str:
        return f"<Queue {self.vhost}/{self.name} ready={len(self._ready)} unacked={self.unacked}>"

    # -- publishing ---------------------------------------------------------------------

    def publish(self, message: Message) -> bool:
        """Enqueue (or deliver) a message routed here.

        False when the queue refuses it (x-overflow reject-publish on a full queue): the
        publisher then gets a nack.  A message dropped by drop-head still counts as taken.
        """
        message.queue = self
        settings = self.settings
        if settings.limited:
            verdict = self._make_room(message)
            if verdict is not _ACCEPT:
                return verdict is _DROPPED
        if (settings.message_ttl is not None or message.expiration is not None) and not self._set_deadline(message):
            return True  # TTL 0 and nobody to take it now: expired on arrival
        if self.store is not None and message.persistent:
            self.store.append(message)
            message.stored = True
        self.stats.publish += 1
        ready = self._ready
        if self._groups:
            if not ready:
                consumer = self._next_consumer()
                if consumer is not None:
                    self._deliver(consumer, message)
                    return True
                ready.append(message)
                self.ready_bytes += len(message.body)
            else:
                # Older messages wait: queue behind them, then let consumers with credit take.
                ready.append(message)
                self.ready_bytes += len(message.body)
                self.dispatch()
                if len(ready) > CONGESTED:
                    self.congested = True
        else:
            ready.append(message)
            self.ready_bytes += len(message.body)
        if message.expires_at:
            self._arm_expiry()
        return True

    def _set_deadline(self, message: Message) -> bool:
        """Give the message its expiry deadline; False when it expires on arrival."""
        ttl = self.settings.message_ttl
        expiration = message.expiration
        if expiration is not None:
            try:
                per_message = int(expiration)
            except ValueError:
                per_message = -1
            if per_message >= 0:
                ttl = per_message if ttl is None else min(ttl, per_message)
        if ttl is None:
            return True
        if ttl == 0:
            # RabbitMQ: TTL 0 means "deliver now or never".
            if not self._ready and self._has_ready_consumer():
                return True
            message.queue = self
            self._expire(message)
            return False
        assert self.scheduler is not None
        message.expires_at = self.scheduler.time() + ttl / 1000.0
        return True

    def _make_room(self, message: Message) -> object:
        """Apply x-max-length / x-max-length-bytes before enqueueing."""
        settings = self.settings
        max_len = settings.max_length
        max_bytes = settings.max_length_bytes
        size = len(message.body)
        drop_head = settings.overflow == "drop-head"
        too_big = max_bytes is not None and size > max_bytes
        if max_len == 0 or too_big:
            # Nothing could make room for it.
            if not drop_head:
                return self._refuse(message)
            self._discard(message, "maxlen")
            return _DROPPED
        while (max_len is not None and len(self._ready) >= max_len) or (
            max_bytes is not None and self._ready and self.ready_bytes + size > max_bytes
        ):
            if not drop_head:
                return self._refuse(message)
            self._discard(self._pop_ready(), "maxlen")
        return _ACCEPT

    def _refuse(self, message: Message) -> object:
        if self.settings.overflow == "reject-publish-dlx" and self.dead_letter is not None:
            self.dead_letter(message, "maxlen")
        return _REFUSED

    # -- consumers ----------------------------------------------------------------------

    def add_consumer(self, consumer: Consumer) -> None:
        for group in self._groups:
            if group[0].priority == consumer.priority:
                group.append(consumer)
                break
        else:
            self._groups.append(deque([consumer]))
            self._groups.sort(key=lambda g: -g[0].priority)
        self.consumer_count += 1
        self.had_consumers = True
        self.touch()
        if self.settings.single_active and self.single_active is None:
            self.single_active = consumer
        self.dispatch()

    def remove_consumer(self, consumer: Consumer) -> None:
        for group in self._groups:
            if consumer in group:
                group.remove(consumer)
                if not group:
                    self._groups.remove(group)
                self.consumer_count -= 1
                break
        else:
            return
        self.touch()
        if self.single_active is consumer:
            self.single_active = self._first_consumer()
        if self.consumer_count == 0:
            if self.congested:
                self._relieve()
            if self.on_unused is not None:
                self.on_unused(self)
            self.arm_idle_expiry()
        else:
            self.dispatch()

    def _first_consumer(self) -> Consumer | None:
        # Single active consumer fails over to the longest-registered remaining consumer.
        candidates = self.consumers()
        return candidates[0] if candidates else None

    def _next_consumer(self) -> Consumer | None:
        """The next consumer with credit, round-robin within the highest priority."""
        active = self.single_active
        if active is not None:
            if (active.prefetch == 0 or active.unacked < active.prefetch) and active.target.active:
                return active
            return None
        for group in self._groups:
            for _ in range(len(group)):
                c = group[0]
                group.rotate(-1)
                if (c.prefetch == 0 or c.unacked < c.prefetch) and c.target.active:
                    return c
        return None

    def _has_ready_consumer(self) -> bool:
        candidates = [self.single_active] if self.single_active is not None else self.consumers()
        return any(c.has_credit() for c in candidates)

    def dispatch(self) -> None:
        """Deliver ready messages to consumers with credit, as far as credit allows."""
        ready = self._ready
        if self.congested and (len(ready) < CONGESTED // 2 or not self._groups):
            self._relieve()
        if not ready or not self._groups:
            return
        now = self.scheduler.time() if self.scheduler is not None else 0.0
        while ready:
            consumer = self._next_consumer()
            if consumer is None:
                return
            message = ready.popleft()
            self.ready_bytes -= len(message.body)
            if message.expires_at and message.expires_at <= now:
                self._expire(message)
                continue
            self._deliver(consumer, message)

    def _relieve(self) -> None:
        """The backlog drained: publishers held back for this queue may go on."""
        self.congested = False
        waiting, self.throttled = self.throttled, set()
        for publisher in waiting:
            publisher.unthrottle()

    def _deliver(self, consumer: Consumer, message: Message) -> None:
        consumer.delivered += 1
        if consumer.no_ack:
            self.stats.deliver_no_ack += 1
            if message.stored:
                assert self.store is not None
                self.store.ack(message)
        else:
            self.stats.deliver += 1
            message.consumer = consumer
            consumer.unacked += 1
            self.unacked += 1
            if message.stored:
                assert self.store is not None
                self.store.delivered(message)
        if message.returns:
            self.stats.redeliver += 1
        consumer.target.deliver(consumer, message)

    # -- basic.get ----------------------------------------------------------------------

    def get(self, no_ack: bool) -> Message | None:
        self.touch()
        ready = self._ready
        now = self.scheduler.time() if self.scheduler is not None else 0.0
        while ready:
            message = ready.popleft()
            self.ready_bytes -= len(message.body)
            if message.expires_at and message.expires_at <= now:
                self._expire(message)
                continue
            if no_ack:
                self.stats.get_no_ack += 1
                if message.stored:
                    assert self.store is not None
                    self.store.ack(message)
            else:
                self.stats.get += 1
                self.unacked += 1
                if message.stored:
                    assert self.store is not None
                    self.store.delivered(message)
            if message.returns:
                self.stats.redeliver += 1
            return message
        return None

    # -- settlement ---------------------------------------------------------------------

    def _release(self, message: Message) -> None:
        consumer = message.consumer
        if consumer is not None:
            consumer.unacked -= 1
            message.consumer = None
        self.unacked -= 1

    def ack(self, message: Message) -> None:
        if self.deleted:
            return
        self._release(message)
        self.stats.ack += 1
        if message.stored:
            assert self.store is not None
            self.store.ack(message)

    def reject(self, message: Message, requeue: bool) -> None:
        """basic.reject / basic.nack of one delivered message."""
        if self.deleted:
            return
        if requeue:
            self.requeue([message])
            return
        self._release(message)
        self._discard(message, "rejected")

    def requeue(self, messages: list[Message]) -> None:
        """Return delivered messages to their original positions, flagged redelivered."""
        if self.deleted:
            return
        kept: list[Message] = []
        limit = self.settings.delivery_limit
        for message in messages:
            self._release(message)
            message.returns += 1
            if limit is not None and message.returns > limit:
                self._discard(message, "delivery_limit")
                continue
            kept.append(message)
            self.ready_bytes += len(message.body)
        if not kept:
            return
        if len(kept) > 1:
            kept.sort(key=_seq)
        self._ready.requeue(kept)
        self._arm_expiry()
        self.dispatch()

    def _discard(self, message: Message, reason: str) -> None:
        """A message leaves the queue without being acknowledged by a consumer."""
        if message.stored:
            assert self.store is not None
            self.store.ack(message)
            message.stored = False
        if self.dead_letter is not None:
            self.dead_letter(message, reason)

    # -- expiry -------------------------------------------------------------------------

    def _expire(self, message: Message) -> None:
        self.stats.expired += 1
        self._discard(message, "expired")

    def _arm_expiry(self) -> None:
        if self.scheduler is None:
            return
        head = self._ready.peek()
        if head is None or not head.expires_at:
            return
        deadline = head.expires_at
        if self._expiry_timer is not None:
            if self._expiry_deadline <= deadline:
                return
            self._expiry_timer.cancel()
        self._expiry_deadline = deadline
        delay = max(0.0, deadline - self.scheduler.time())
        self._expiry_timer = self.scheduler.call_later(delay, self._on_expiry_timer)

    def _on_expiry_timer(self) -> None:
        self._expiry_timer = None
        self.expire_head()
        self._arm_expiry()

    def expire_head(self, budget: int = 10_000) -> int:
        """Drop expired messages at the head; at most ``budget`` per call keeps the loop live."""
        if self.scheduler is None:
            return 0
        now = self.scheduler.time()
        ready = self._ready
        count = 0
        while ready and count < budget:
            head = ready.peek()
            assert head is not None
            if not head.expires_at or head.expires_at > now:
                break
            ready.popleft()
            self.ready_bytes -= len(head.body)
            self._expire(head)
            count += 1
        if count >= budget and self.scheduler is not None:
            self.scheduler.call_later(0, self._on_expiry_timer)
        return count

    # -- housekeeping -------------------------------------------------------------------

    def touch(self) -> None:
        if self.scheduler is not None:
            self.last_used = self.scheduler.time()

    def arm_idle_expiry(self) -> None:
        """x-expires: delete the queue once unused (no consumers, no get, no redeclare) that long."""
        expires = self.settings.expires
        if expires is None or self.scheduler is None or self.consumer_count or self.deleted:
            return
        if self._idle_timer is not None:
            self._idle_timer.cancel()
        delay = max(0.0, self.last_used + expires / 1000.0 - self.scheduler.time())
        self._idle_timer = self.scheduler.call_later(delay, self._on_idle_timer)

    def _on_idle_timer(self) -> None:
        self._idle_timer = None
        expires = self.settings.expires
        if expires is None or self.consumer_count or self.deleted or self.scheduler is None:
            return
        if self.scheduler.time() - self.last_used >= expires / 1000.0 - 0.001:
            if self.on_expired is not None:
                self.on_expired(self)
        else:
            self.arm_idle_expiry()

    def _pop_ready(self) -> Message:
        message = self._ready.popleft()
        self.ready_bytes -= len(message.body)
        return message

    def purge(self) -> int:
        """Drop every ready message; returns how many."""
        ready = self._ready
        count = len(ready)
        for message in ready.take_in_memory():
            if message.stored and self.store is not None:
                self.store.ack(message)
        ready.drop_tail()  # paged messages are released by the pager
        self.ready_bytes = 0
        if self.congested:
            self._relieve()
        return count

    def restore(self, messages: list[Message]) -> None:
        """Put recovered messages (in the store, in order) into the queue."""
        for message in messages:
            message.queue = self
            message.stored = True
            self._ready.append(message)
            self.ready_bytes += len(message.body)

    @property
    def backlog(self) -> Backlog:
        return self._ready

    @property
    def paged_count(self) -> int:
        return self._ready.paged

    def delete(self) -> int:
        """Mark deleted, cancel consumers, drop messages.  Returns the ready count."""
        count = len(self._ready)
        self.deleted = True
        for timer in (self._expiry_timer, self._idle_timer):
            if timer is not None:
                timer.cancel()
        consumers = self.consumers()
        self._groups = []
        self.consumer_count = 0
        self.single_active = None
        for consumer in consumers:
            consumer.target.consumer_cancelled(consumer)
        self._relieve()
        if self.store is not None:
            self.store.delete()  # first: then releasing paged entries writes no acks
        self._ready.clear()
        self.ready_bytes = 0
        return count

    def replace_settings(self, settings: QueueSettings) -> None:
        """Policies changed: new limits and TTLs apply from now on (and to the backlog)."""
        if settings == self.settings:
            return
        expires_changed = settings.expires != self.settings.expires
        self.settings = settings
        if expires_changed:
            self.arm_idle_expiry()
        if settings.limited and self._ready:
            while (settings.max_length is not None and len(self._ready) > settings.max_length) or (
                settings.max_length_bytes is not None and self.ready_bytes > settings.max_length_bytes
            ):
                self._discard(self._pop_ready(), "maxlen")


_ACCEPT = object()
_DROPPED = object()
_REFUSED = object()


def _seq(message: Message) -> int:
    return message.seq
