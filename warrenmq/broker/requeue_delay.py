"""Delayed requeue (``x-delay-on-requeue``): a message a consumer hands back waits that long
before it is ready again, so that a failing consumer retries with a back-off instead of at
once.  The delay is the queue's, so the waiting batches are in due order: one deque, one timer.

A waiting message stays the queue's (and in its store, if persistent); it is neither ready
nor unacknowledged.  After a restart it is simply ready (the wait is not stored).
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from warrenmq.broker.message import Message
    from warrenmq.broker.queue import Queue, Timer


class RequeueDelay:
    __slots__ = ("count", "queue", "timer", "waiting")

    def __init__(self, queue: Queue) -> None:
        self.queue = queue
        self.waiting: deque[tuple[float, list[Message]]] = deque()
        self.timer: Timer | None = None
        self.count = 0

    def hold(self, messages: list[Message], delay_ms: int) -> None:
        scheduler = self.queue.scheduler
        assert scheduler is not None
        self.waiting.append((scheduler.time() + delay_ms / 1000.0, messages))
        self.count += len(messages)
        if self.timer is None:
            self.timer = scheduler.call_later(delay_ms / 1000.0, self._on_timer)

    def _on_timer(self) -> None:
        self.timer = None
        queue = self.queue
        scheduler = queue.scheduler
        if queue.deleted or scheduler is None:
            return
        now = scheduler.time()
        while self.waiting and self.waiting[0][0] <= now:
            _due, messages = self.waiting.popleft()
            self.count -= len(messages)
            queue.requeue_now(messages)
        if self.waiting:
            self.timer = scheduler.call_later(max(0.0, self.waiting[0][0] - now), self._on_timer)

    def take_all(self) -> list[Message]:
        """Every waiting message, removed (purge, delete)."""
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        out = [message for _due, messages in self.waiting for message in messages]
        self.waiting.clear()
        self.count = 0
        return out
