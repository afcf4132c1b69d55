"""A queue: ready messages, consumers, dispatch and settlement.

Theory of operation.  ``publish`` appends a message (or hands it straight to a consumer when
nothing is waiting); ``dispatch`` moves ready messages to consumers with credit, round-robin
within the highest consumer priority that has credit (or to the single active consumer,
which hands over to the next one once a cancelled one holds nothing).  A delivered message
is either settled at once (no-ack) or held by its consumer until ``ack``/``reject``/
``requeue``.  Requeued messages go back to their original positions, flagged redelivered;
in a quorum queue they go to the back, as RabbitMQ's.  Length limits follow RabbitMQ:
reject-publish refuses before enqueueing, drop-head trims the head after it.

Expiry is checked at the head only (as RabbitMQ does): per-queue TTL keeps the queue sorted
by deadline, and a per-message expiration is honoured when the message reaches the head, so
no operation scans the queue.  One timer, for the head's deadline, drives expiry while no
consumer pulls; each run does at most EXPIRY_SLICE seconds of work, and paged-out messages
with nothing to dead-letter them to are dropped without being read back.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from itertools import islice
from typing import TYPE_CHECKING, Any, Protocol

from warrenmq.broker.backlog import Fifo, Prioritised
from warrenmq.broker.consumer import Consumer
from warrenmq.broker.dedup import DedupCache, DedupJournal
from warrenmq.broker.message import Message
from warrenmq.broker.paging import PagedFifo
from warrenmq.broker.queue_args import QueueSettings
from warrenmq.broker.requeue_delay import RequeueDelay

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

    def journal(self, kind: str) -> DedupJournal | None: ...


DeadLetter = Callable[[Message, str], None]
CONGESTED = 2000  # ready messages, with consumers present, past which publishers are throttled
# Expiry work per event-loop turn: at most this many messages and about this many seconds
# (bench/ttl_expiry.py measures the longest pause while a million messages expire).
EXPIRY_BATCH = 10_000
EXPIRY_SLICE = 0.002
_SKIP, _STOP = 1, 2  # Queue._past_deadline: the expired message is gone; go on, or stop
Backlog = Fifo | Prioritised | PagedFifo


class Queue:
    # Cluster mode: a confirm of a message taken here waits for ``gate.track(publisher, seq)``
    # too (a quorum queue's majority of members, a remote queue's leader); None: no wait.
    gate: Any = None

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
        self._sac_retiring = False  # the active consumer was cancelled but holds messages
        self.congested = False  # consumers wait on the broker while a backlog builds
        self.throttled: set[Throttled] = set()  # publishers held back until it drains
        # Quorum queues keep every message, as RabbitMQ's do, whatever its delivery mode.
        self.persist_all = self.settings.queue_type == "quorum"
        self.requeue_delay: RequeueDelay | None = None  # x-delay-on-requeue's waiting messages
        self._dedup: DedupCache | None = None  # made at the first publish (a journal replayed)
        if self.settings.dedup is not None:
            # An instance attribute: queues without deduplication publish without the check.
            self.publish = self._publish_deduplicated  # type: ignore[method-assign]

    # -- information ---------------------------------------------------------------------

    @property
    def message_count(self) -> int:
        """Ready messages (what queue.declare-ok and basic.get-ok report)."""
        return len(self._ready)

    @property
    def messages_delayed(self) -> int:
        """Requeued messages waiting out x-delay-on-requeue."""
        return self.requeue_delay.count if self.requeue_delay is not None else 0

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

    def peek(self, count: int) -> list[Message]:
        """The first ``count`` ready messages in delivery order, nothing taken, redelivered or
        reordered (paged-out ones are read as copies)."""
        ready = self._ready
        if isinstance(ready, PagedFifo):
            return ready.first(count)
        return list(islice(ready, count))

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
        if settings.limited and settings.overflow != "drop-head" and self._would_overflow(message):
            return self._refuse(message)
        if (settings.message_ttl is not None or message.expiration is not None) and not self._set_deadline(message):
            return True  # TTL 0 and nobody to take it now: expired on arrival
        if self.store is not None and (message.persistent or self.persist_all):
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
        if settings.limited:
            self._drop_head()
        if message.expires_at:
            self._arm_expiry()
        return True

    def _publish_deduplicated(self, message: Message) -> bool:
        """x-message-deduplication: a duplicate is taken (the publisher gets an ack) and dropped."""
        cache = self._dedup
        if cache is None:
            assert self.settings.dedup is not None
            journal = self.store.journal("dedup") if self.store is not None else None
            cache = self._dedup = DedupCache(self.settings.dedup, journal)
        if cache.duplicate(message):
            return True
        return Queue.publish(self, message)

    def _set_deadline(self, message: Message) -> bool:
        """Give the message its expiry deadline; False when it expires on arrival."""
        ttl = self._ttl(message.expiration)
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

    def _would_overflow(self, message: Message) -> bool:
        """reject-publish(-dlx): would this message take the queue past a limit?  (Only ready
        messages count, as in RabbitMQ; the check comes before any direct delivery.)"""
        settings = self.settings
        max_len = settings.max_length
        max_bytes = settings.max_length_bytes
        if self.is_quorum:
            # A quorum queue refuses only once it is over its limit (RabbitMQ's rabbit_fifo
            # checks the state before the enqueue): it takes one message past the limit.
            return (max_len is not None and len(self._ready) > max_len) or (
                max_bytes is not None and self.ready_bytes > max_bytes
            )
        return (max_len is not None and len(self._ready) + 1 > max_len) or (
            max_bytes is not None and self.ready_bytes + len(message.body) > max_bytes
        )

    def _refuse(self, message: Message) -> bool:
        if self.settings.overflow == "reject-publish-dlx" and self.dead_letter is not None:
            self.dead_letter(message, "maxlen")
        return False

    def _drop_head(self) -> None:
        """drop-head: while over x-max-length / x-max-length-bytes, the head goes (maxlen).

        As RabbitMQ, the limits are enforced after the message is enqueued (a consumer waiting
        for it takes it even from a queue limited to 0 messages), so a message larger than the
        byte limit empties the queue, itself included.
        """
        settings = self.settings
        if settings.overflow != "drop-head":
            return
        max_len = settings.max_length
        max_bytes = settings.max_length_bytes
        ready = self._ready
        while ready and (
            (max_len is not None and len(ready) > max_len) or (max_bytes is not None and self.ready_bytes > max_bytes)
        ):
            self._discard(self._pop_ready(), "maxlen")

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
            if consumer.unacked:
                # As RabbitMQ: the next consumer becomes active once the messages this one
                # still holds are settled (acked, or requeued in front of the rest).
                self._sac_retiring = True
            else:
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
            if self._sac_retiring:
                active = self._sac_handover()
                if active is None:
                    return None
            if (active.prefetch == 0 or active.unacked < active.prefetch) and active.target.active:
                return active
            return None
        groups = self._groups
        if len(groups) == 1 and len(groups[0]) == 1:
            c = groups[0][0]  # a single consumer (the common case): nothing to rotate
            return c if (c.prefetch == 0 or c.unacked < c.prefetch) and c.target.active else None
        for group in groups:
            for _ in range(len(group)):
                c = group[0]
                group.rotate(-1)
                if (c.prefetch == 0 or c.unacked < c.prefetch) and c.target.active:
                    return c
        return None

    def _sac_handover(self) -> Consumer | None:
        """The cancelled single active consumer retires once it holds nothing: the next
        consumer, if any, becomes active (None while it still holds messages)."""
        retiring = self.single_active
        if retiring is not None and retiring.unacked:
            return None
        self._sac_retiring = False
        self.single_active = self._first_consumer()
        return self.single_active

    def _has_ready_consumer(self) -> bool:
        if self.settings.single_active:
            active = self._sac_handover() if self._sac_retiring else self.single_active
            return active is not None and active.has_credit()
        return any(c.has_credit() for c in self.consumers())

    def dispatch(self) -> None:
        """Deliver ready messages to consumers with credit, as far as credit allows."""
        ready = self._ready
        if self.congested and (len(ready) < CONGESTED // 2 or not self._groups):
            self._relieve()
        groups = self._groups
        if not ready or not groups:
            return
        if self.single_active is None and len(groups) == 1 and len(groups[0]) == 1:
            # One consumer (the common case): its credit is checked here, without the
            # round-robin of _next_consumer.
            consumer = groups[0][0]
            target = consumer.target
            prefetch = consumer.prefetch
            if not target.active or (prefetch and consumer.unacked >= prefetch):
                return  # asked on every publish while it waits for acks: before any len()
            for _ in range(len(ready)):  # bounded: a paged backlog's truthiness is a Python call
                message = ready.popleft()
                self.ready_bytes -= len(message.body)
                if message.expires_at and (verdict := self._past_deadline(message)):
                    if verdict == _STOP:
                        return
                    continue
                self._deliver(consumer, message)
                if not target.active or (prefetch and consumer.unacked >= prefetch):
                    return
            return
        for _ in range(len(ready)):
            next_consumer = self._next_consumer()
            if next_consumer is None:
                return
            message = ready.popleft()
            self.ready_bytes -= len(message.body)
            if message.expires_at and (verdict := self._past_deadline(message)):
                if verdict == _STOP:
                    return
                continue
            self._deliver(next_consumer, message)

    def _now(self) -> float:
        return self.scheduler.time() if self.scheduler is not None else 0.0

    def _past_deadline(self, message: Message) -> int:
        """A message with a deadline, taken off the head to be delivered: 0 while it is live;
        else it expires here, with what else is due at the head, and the answer is _SKIP, or
        _STOP when more expired ones wait than one loop turn's worth (the timer goes on)."""
        now = self._now()
        if message.expires_at > now:
            return 0
        self._expire(message)
        return _STOP if self._expire_more(now) else _SKIP

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
        """basic.get: the next live message (expired ones at the head are dropped on the way).

        Behind more expired messages than one loop turn's worth it answers empty and leaves
        the rest to the expiry timer, rather than stall every connection.
        """
        self.touch()
        ready = self._ready
        now = self._now()
        while ready:
            message = ready.popleft()
            self.ready_bytes -= len(message.body)
            if message.expires_at and message.expires_at <= now:
                self._expire(message)
                if self._expire_more(now):
                    return None
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
            if ready and self._expiry_timer is None:
                self._arm_expiry()  # a new head, perhaps with a deadline (head-only expiry)
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
        consumer = message.consumer  # _release, inlined: this runs once per acknowledged message
        if consumer is not None:
            consumer.unacked -= 1
            message.consumer = None
        self.unacked -= 1
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
        """Return delivered messages, flagged redelivered: to their original positions in a
        classic queue, to the back (in the order given) in a quorum queue, as RabbitMQ.  With
        x-delay-on-requeue they are ready again only after that delay."""
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
        delay = self.settings.delay_on_requeue
        if kept and delay and self.scheduler is not None:
            if self.requeue_delay is None:
                self.requeue_delay = RequeueDelay(self)
            self.requeue_delay.hold(kept, delay)
            kept = []
        if not kept:
            self.dispatch()  # a retiring single active consumer may hand over now
            return
        self.requeue_now(kept)

    def requeue_now(self, kept: list[Message]) -> None:
        """Requeued messages become ready again."""
        for message in kept:
            self.ready_bytes += len(message.body)
        ready = self._ready
        if self.is_quorum:
            for message in kept:
                ready.append(message)
        else:
            if len(kept) > 1:
                kept.sort(key=_seq)
            ready.requeue(kept)
        if self.settings.limited:
            self._drop_head()  # RabbitMQ applies drop-head to requeued messages too
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

    def _expire_more(self, now: float) -> bool:
        """An expired message came off the head: expire what else is due there, within one
        loop turn's budget.  True when some is left (for the expiry timer, armed here)."""
        self.expire_head()
        deadline = self._ready.head_deadline()
        if deadline and deadline <= now:
            self._arm_expiry()
            return True
        return False

    def arm_expiry(self) -> None:
        """Expire what is due at the head now and time the next expiry (after a recovery)."""
        if not self.deleted:
            self.expire_head()
            self._arm_expiry()

    def _arm_expiry(self) -> None:
        if self.scheduler is None:
            return
        deadline = self._ready.head_deadline()
        if not deadline:
            return
        if self._expiry_timer is not None:
            if self._expiry_deadline <= deadline:
                return
            self._expiry_timer.cancel()
        self._expiry_deadline = deadline
        delay = max(0.0, deadline - self.scheduler.time())
        self._expiry_timer = self.scheduler.call_later(delay, self._on_expiry_timer)

    def _on_expiry_timer(self) -> None:
        self._expiry_timer = None
        if self.deleted or self.scheduler is None:
            return
        self.expire_head()
        self._arm_expiry()  # for the next deadline, or the next loop turn if the budget ran out
        if self._groups and self._ready:
            deadline = self._ready.head_deadline()
            if not deadline or deadline > self.scheduler.time():
                self.dispatch()  # a dispatch that stopped at its expiry budget goes on

    def expire_head(self, budget: int = EXPIRY_BATCH) -> int:
        """Drop expired messages at the head: at most ``budget`` of them and EXPIRY_SLICE
        seconds per call, so that other connections get the loop in between."""
        scheduler = self.scheduler
        if scheduler is None:
            return 0
        now = scheduler.time()
        ready = self._ready
        count = 0
        # Paged-out messages with nothing to dead-letter them to expire unread.
        drop_unread = ready.drop_expired if isinstance(ready, PagedFifo) and self.dead_letter is None else None
        while ready and count < budget:
            if drop_unread is not None:
                dropped, size = drop_unread(now, min(budget - count, 1024))
                if dropped:
                    self.ready_bytes -= size
                    self.stats.expired += dropped
                    count += dropped
                    if scheduler.time() - now > EXPIRY_SLICE:
                        break
                    continue
            deadline = ready.head_deadline()
            if not deadline or deadline > now:
                break
            head = ready.popleft()
            self.ready_bytes -= len(head.body)
            self._expire(head)
            count += 1
            if not count & 127 and scheduler.time() - now > EXPIRY_SLICE:
                break
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
        waiting = self.requeue_delay.take_all() if self.requeue_delay is not None else []
        count += len(waiting)
        for message in [*ready.take_in_memory(), *waiting]:
            if message.stored and self.store is not None:
                self.store.ack(message)
        ready.drop_tail()  # paged messages are released by the pager
        self.ready_bytes = 0
        if self.congested:
            self._relieve()
        return count

    def restore(self, messages: list[Message], written_age: Callable[[int], float] | None = None) -> None:
        """Put recovered messages (in the store, in order) into the queue.  ``written_age``:
        how long before now a message's segment was last written (its TTL counts from then)."""
        now = self._now()
        for message in messages:
            message.queue = self
            message.stored = True
            if now and (message.expiration is not None or self.settings.message_ttl is not None):
                written_at = now - written_age(message.segment) if written_age is not None else now
                deadline = self.recovered_deadline(message.expiration, written_at)
                if deadline:
                    message.expires_at = max(deadline, 1e-9)  # due already: still not "never"
            self._ready.append(message)
            self.ready_bytes += len(message.body)
        self._arm_expiry()

    def recovered_deadline(self, expiration: str | None, recovered_at: float) -> float:
        """Expiry deadlines are not kept on disk: a recovered message gets its TTL (the
        queue's, or its own if lower) from ``recovered_at`` (when it was written, as far as the
        store knows).  0.0: it does not expire."""
        ttl = self._ttl(expiration)
        if ttl is None:
            return 0.0
        return recovered_at + ttl / 1000.0

    def _ttl(self, expiration: str | None) -> int | None:
        """A message's TTL in ms here: the queue's, or its own expiration if lower (None: it
        does not expire).  An expiration that is not a number (only in old stored data:
        publishing refuses them) is ignored."""
        ttl = self.settings.message_ttl
        if expiration is not None:
            try:
                per_message = int(expiration)
            except ValueError:
                per_message = -1
            if per_message >= 0:
                ttl = per_message if ttl is None else min(ttl, per_message)
        return ttl

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
        if self.requeue_delay is not None:
            self.requeue_delay.take_all()  # the store forgets them with the queue
        if self._dedup is not None:
            self._dedup.forget()
        elif self.settings.dedup is not None and self.store is not None:
            journal = self.store.journal("dedup")  # a recovered queue deleted before any publish
            if journal is not None:
                journal.delete()
        consumers = self.consumers()
        self._groups = []
        self.consumer_count = 0
        self.single_active = None
        self._sac_retiring = False
        for consumer in consumers:
            consumer.target.consumer_cancelled(consumer)
        self._relieve()
        if self.store is not None:
            self.store.delete()  # first: then releasing paged entries writes no acks
        self._ready.clear()
        self.ready_bytes = 0
        return count

    def detach(self) -> list[Consumer]:
        """Stop serving, dropping nothing: a replicated queue whose leadership moved to another
        node (its messages stay in the store as that node's replica).  Its consumers are
        returned without being told; acks of what it delivered are ignored from now on."""
        self.deleted = True
        for timer in (self._expiry_timer, self._idle_timer):
            if timer is not None:
                timer.cancel()
        consumers = self.consumers()
        self._groups = []
        self.consumer_count = 0
        self.single_active = None
        self._sac_retiring = False
        self._relieve()
        ready = self._ready
        if isinstance(ready, PagedFifo):
            ready.take_in_memory()  # gives the memory budget back; the tail is left unreleased
        self._ready = Fifo()
        self.ready_bytes = 0
        return consumers

    def replace_settings(self, settings: QueueSettings) -> None:
        """Policies changed: new limits and TTLs apply from now on (and to the backlog).

        As RabbitMQ: a lower length limit drops from the head at once (drop-head only), a
        message TTL applies to messages published from now on, and x-expires restarts.
        """
        if settings == self.settings:
            return
        expires_changed = settings.expires != self.settings.expires
        timeout_changed = settings.consumer_timeout != self.settings.consumer_timeout
        self.settings = settings
        if expires_changed:
            self.arm_idle_expiry()
        if timeout_changed:
            for target in {id(c.target): c.target for c in self.consumers()}.values():
                target.queue_settings_changed(self)
        if settings.limited and self._ready:
            self._drop_head()


def _seq(message: Message) -> int:
    return message.seq
