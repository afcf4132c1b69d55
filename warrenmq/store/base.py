"""The storage interface: what the node needs from persistence, and no more.

A store keeps durable definitions and the persistent messages of durable queues.  Writes
are grouped: everything appended during one event-loop turn is written together and made
durable by one fsync; ``generation`` names the group being filled, and ``wait_for_sync``
asks for ``on_synced(generation)`` once a group is durable (publisher confirms and tx
commits wait on it).
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from warrenmq.broker.delay import DelayStorage
    from warrenmq.broker.queue import Queue, QueueStore
    from warrenmq.broker.stream_log import StreamLog
    from warrenmq.store.journal import Journal


class SyncWaiter(Protocol):
    def on_synced(self, generation: int) -> None: ...


@dataclass
class RecoveredQueue:
    """Where the messages of one durable queue are, in queue order (nothing read yet)."""

    seqs: array[int] = field(default_factory=lambda: array("Q"))
    locations: array[int] = field(default_factory=lambda: array("Q"))  # segment << 40 | offset
    sizes: array[int] = field(default_factory=lambda: array("I"))
    returns: array[int] = field(default_factory=lambda: array("H"))
    dues: array[int] = field(default_factory=lambda: array("q"))  # a delayed exchange's: epoch ms

    def __len__(self) -> int:
        return len(self.seqs)


@dataclass
class Recovery:
    definitions: dict[str, Any] | None
    queues: dict[int, RecoveredQueue]  # by store queue id
    max_seq: int = 0
    dropped_records: int = 0
    truncated_bytes: int = 0
    seconds: float = 0.0


class MessageStore(Protocol):
    generation: int

    def open(self) -> Recovery: ...

    def queue_store(self, queue: Queue) -> QueueStore: ...

    def queue_id(self, queue: Queue) -> int | None: ...

    def exchange_id(self, vhost: str, name: str) -> int | None: ...

    def journal(self, kind: str, *key: str) -> Journal | None: ...

    def delay_store(self, vhost: str, name: str, durable: bool) -> DelayStorage | None: ...
    def stream_log(self, queue: Queue) -> StreamLog: ...

    def save_definitions(self, definitions: dict[str, Any]) -> None: ...

    def has_pending(self) -> bool: ...

    def wait_for_sync(self, waiter: SyncWaiter) -> None: ...

    def close(self) -> None: ...
