"""A queue led by another node, as this node's model holds it.

Routing reaches it like any queue (exchanges and bindings are the same on every node);
``publish`` sends the message to its leader over the link, and a publisher confirm waits
for the leader's answer (``track``).  Consumers are registered at the leader and served
through the link; acks, rejects and requeues of their deliveries go back the same way.
What needs an answer from the leader (basic.get, counts, purge, delete, consume, cancel)
is asked by the cluster layer (cluster.py) through ``link``; this class keeps what the
local channels see synchronously.

When the leader changes (a quorum queue's takeover) the local consumers are registered at
the new leader without the clients knowing; when a classic queue's node goes down they are
cancelled (consumer_cancel_notify), as RabbitMQ does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from warrenmq.broker.consumer import Consumer
from warrenmq.broker.message import Message
from warrenmq.broker.queue import Queue
from warrenmq.cluster import wire

if TYPE_CHECKING:
    from warrenmq.cluster.peer_link import ConfirmTarget, PeerLink

# While a quorum queue has no leader (a takeover under way) publishes to it wait, held here,
# instead of being refused: at most this many, for at most this long.
HOLD_LIMIT = 10_000
HOLD_TIMEOUT = 30.0


class RemoteQueue(Queue):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.gate = self  # a publisher confirm waits for the leader's answer (``track``)
        self.key = wire.queue_key(self.vhost, self.name)
        self.leader: str | None = None  # the node leading it, when known
        self.link: PeerLink | None = None  # the link to the leader, while it is up
        self.members: list[str] = []
        self.local_consumers: list[Consumer] = []
        self._last_token = 0
        self.held: list[tuple[Message, list[tuple[ConfirmTarget, int]]]] = []
        self._hold_timer: Any = None
        # Counts as the leader last reported them (management API).
        self.remote_ready = 0
        self.remote_unacked = 0
        self.remote_consumers = 0
        self.remote_ready_bytes = 0
        self.remote_stats: dict[str, int] = {}

    # -- what the model and channels ask -------------------------------------------------

    @property
    def message_count(self) -> int:
        return self.remote_ready

    @property
    def available(self) -> bool:
        return self.link is not None and self.link.up

    def consumers(self) -> list[Consumer]:
        return list(self.local_consumers)

    def publish(self, message: Message) -> bool:
        link = self.link
        if link is None or not link.up:
            if not self.is_quorum or len(self.held) >= HOLD_LIMIT or self.deleted:
                return False  # its node is down: refused (a confirm-mode publisher gets a nack)
            return self._hold(message)
        message.queue = self
        self._last_token = link.publish(self.key, message)
        self.stats.publish += 1
        if link.congested:
            self.congested = True
            link.throttled.add(self)
        return True

    def track(self, target: ConfirmTarget, seq: int) -> None:
        """The publisher confirm of the message just published waits for the leader."""
        if self._last_token < 0:
            target.confirm_hold(seq)
            self.held[-1][1].append((target, seq))
        elif self.link is not None and self._last_token:
            self.link.track(self._last_token, target, seq)

    def _hold(self, message: Message) -> bool:
        message.queue = self
        self.held.append((message, []))
        self._last_token = -1
        self.stats.publish += 1
        self.congested = True  # the channel holds its publisher back meanwhile
        if self._hold_timer is None and self.scheduler is not None:
            self._hold_timer = self.scheduler.call_later(HOLD_TIMEOUT, self.drop_held)
        return True

    def flush_held(self) -> None:
        """A leader is there (again): what waited goes to it."""
        link = self.link
        if not self.held or link is None or not link.up:
            return
        held, self.held = self.held, []
        for message, waiters in held:
            token = link.publish(self.key, message)
            for target, seq in waiters:
                link.pending.setdefault(token, []).append((target, seq))
        self._stop_holding()

    def take_held(self) -> list[tuple[Message, list[tuple[ConfirmTarget, int]]]]:
        """This node leads the queue now: what waited is its to take."""
        held, self.held = self.held, []
        self._stop_holding()
        return held

    def drop_held(self) -> None:
        """No leader came in time (or the queue went): the held publishes are refused."""
        held, self.held = self.held, []
        for _, waiters in held:
            for target, seq in waiters:
                target.confirm_release(seq, False)
        self._stop_holding()

    def _stop_holding(self) -> None:
        if self._hold_timer is not None:
            self._hold_timer.cancel()
            self._hold_timer = None
        self.relieve()

    def relieve(self) -> None:
        self.congested = False
        self._relieve()

    # -- consumers -----------------------------------------------------------------------

    def add_consumer(self, consumer: Consumer) -> None:
        """A consumer registered at the leader (cluster.py did the asking)."""
        self.local_consumers.append(consumer)
        self.consumer_count = len(self.local_consumers)
        self.had_consumers = True

    def forget_consumer(self, consumer: Consumer) -> None:
        if consumer in self.local_consumers:
            self.local_consumers.remove(consumer)
            self.consumer_count = len(self.local_consumers)

    def remove_consumer(self, consumer: Consumer) -> None:
        """basic.cancel or the channel closing: cancel it at the leader too."""
        self.forget_consumer(consumer)
        self._cancel_at_leader(consumer)

    def _cancel_at_leader(self, consumer: Consumer) -> None:
        link = self.link
        if link is None:
            return
        if not link.up:
            link.forget(consumer)
            return
        cancelled = link.cancel(consumer)
        if cancelled is not None:
            cancelled.add_done_callback(_ignore)

    def dispatch(self) -> None:
        pass  # the leader dispatches

    # -- settlement of remote deliveries ------------------------------------------------

    def _settle(self, kind: int, message: Message) -> None:
        link = self.link
        if link is not None and link.up and message.offset == link.session:
            link.settle(kind, message.seq)
        # else: delivered in an earlier session; the leader requeued it when that ended

    def ack(self, message: Message) -> None:
        self.stats.ack += 1
        self._settle(wire.SETTLE_ACK, message)

    def reject(self, message: Message, requeue: bool) -> None:
        self._settle(wire.SETTLE_REQUEUE if requeue else wire.SETTLE_REJECT, message)

    def requeue(self, messages: list[Message]) -> None:
        for message in messages:
            self._settle(wire.SETTLE_REQUEUE, message)

    # -- housekeeping the leader does ----------------------------------------------------

    def arm_idle_expiry(self) -> None:
        pass

    def arm_expiry(self) -> None:
        pass

    def touch(self) -> None:
        pass

    def replace_settings(self, settings: Any) -> None:
        self.settings = settings

    def purge(self) -> int:
        return 0  # asked of the leader by cluster.py

    def delete(self) -> int:
        """Gone from the cluster: local consumers are cancelled (consumer_cancel_notify)."""
        self.deleted = True
        self.drop_held()
        self.cancel_local_consumers()
        return self.remote_ready

    def cancel_local_consumers(self) -> None:
        consumers, self.local_consumers = self.local_consumers, []
        self.consumer_count = 0
        for consumer in consumers:
            self._cancel_at_leader(consumer)
            consumer.target.consumer_cancelled(consumer)
        self._relieve()

    def __repr__(self) -> str:
        return f"<RemoteQueue {self.vhost}/{self.name} leader={self.leader}>"


def _ignore(future: Any) -> None:
    if not future.cancelled():
        future.exception()  # retrieved: a cancel of a consumer on a lost link needs nothing
