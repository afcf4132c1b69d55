"""A store that keeps nothing: for nodes started without persistence and for tests.

Syncs complete on the next loop turn, so confirm and tx code paths behave as with disk.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from warrenmq.broker.stream_log import MemoryStreamLog
from warrenmq.store.base import Recovery, SyncWaiter

if TYPE_CHECKING:
    from warrenmq.broker.message import Message
    from warrenmq.broker.queue import Queue


class NullQueueStore:
    """A queue's store handle where nothing is stored."""

    __slots__ = ()

    def append(self, message: Message) -> None:
        pass

    def ack(self, message: Message) -> None:
        pass

    def delivered(self, message: Message) -> None:
        pass

    def purge(self) -> None:
        pass

    def delete(self) -> None:
        pass

    def journal(self, kind: str) -> None:
        return None  # nothing is kept


class MemoryStore:
    def __init__(self, call_soon: Callable[[Callable[[], None]], Any]) -> None:
        self.generation = 0
        self._call_soon = call_soon
        self._waiters: set[SyncWaiter] = set()
        self._scheduled = False

    def open(self) -> Recovery:
        return Recovery(definitions=None, queues={})

    def queue_store(self, queue: Queue) -> NullQueueStore:
        return NullQueueStore()

    def queue_id(self, queue: Queue) -> int | None:
        return None

    def exchange_id(self, vhost: str, name: str) -> int | None:
        return None

    def journal(self, kind: str, *key: str) -> None:
        return None

    def delay_store(self, vhost: str, name: str, durable: bool) -> None:
        return None  # a delayed exchange then keeps its messages in memory

    def stream_log(self, queue: Queue) -> MemoryStreamLog:
        return MemoryStreamLog()  # a node without persistence keeps streams in memory

    def save_definitions(self, definitions: dict[str, Any]) -> None:
        pass

    def has_pending(self) -> bool:
        return False

    def wait_for_sync(self, waiter: SyncWaiter) -> None:
        self._waiters.add(waiter)
        if not self._scheduled:
            self._scheduled = True
            self._call_soon(self._synced)

    def _synced(self) -> None:
        self._scheduled = False
        generation = self.generation
        self.generation += 1
        waiters, self._waiters = self._waiters, set()
        for waiter in waiters:
            waiter.on_synced(generation)

    def load(self, message: Message) -> None:
        pass

    def close(self) -> None:
        pass
