"""The messages a delayed exchange holds until they are due.

Theory of operation.  Every pending message has a slot in parallel arrays (sequence, place on
disk, body size, kind) and one key in a binary heap: ``due_ms << SLOT_BITS | slot``, a single
int, so that a pending message costs about 70 bytes of RAM however large it is.  Bodies are
kept in memory only while they must be (not yet written) or are due soon; a persistent
message of a durable exchange is a recoverable record on disk (written with the publisher's
group commit, so its confirm means it is on disk), anything else beyond ``memory_limit`` goes
to disk as a page-out copy.  One timer, for the heap's head, releases what is due, at most
RELEASE_BATCH messages per run, reading each body back with one pread when it is not in
memory; the release routes the message like a new publish.  A run stops after RELEASE_SLICE
seconds (the rest follows on the next loop turn), so that a burst of messages due together
does not stall the other connections.

Due times are wall-clock epoch milliseconds (they are stored, and survive a restart: what
fell due while the node was down is released at once, as the plugin does); the timers are
the scheduler's.
"""

from __future__ import annotations

import heapq
import logging
import time
from array import array
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from warrenmq.broker.message import Message

if TYPE_CHECKING:
    from warrenmq.broker.queue import Scheduler, Timer

log = logging.getLogger("warrenmq.delay")

SLOT_BITS = 26  # up to 64 million pending messages per exchange
_SLOT_MASK = (1 << SLOT_BITS) - 1
RELEASE_BATCH = 2000
RELEASE_SLICE = 0.005
NEAR_MS = 2000  # a body due this soon stays in memory after it is written
_MEMORY, _RECORD, _PAGED = 0, 1, 2  # where a pending body is: RAM only, durable record, page-out copy


class DelayStorage(Protocol):
    """What a delayed exchange needs from the message store (store/delay_store.py)."""

    durable: bool  # holds recoverable records

    def recovered(self) -> tuple[array[int], array[int], array[int], array[int]] | None: ...

    def hold(self, message: Message, due: int) -> None: ...

    def settle(self, message: Message) -> None: ...

    def stage(self, owner: Any) -> None: ...

    def page_out(self, messages: list[Message]) -> None: ...

    def release_paged(self, location: int) -> None: ...

    def read(self, location: int) -> Message | None: ...

    def delete(self) -> None: ...


def now_ms() -> int:
    return int(time.time() * 1000)


class DelayQueue:
    def __init__(
        self,
        scheduler: Scheduler,
        release: Callable[[Message], None],
        storage: DelayStorage | None = None,
        memory_limit: int = 10_000,
    ) -> None:
        self._scheduler = scheduler
        self._release = release
        self._storage = storage
        self.memory_limit = memory_limit
        self._heap: list[int] = []
        self._seqs = array("Q")
        self._dues = array("q")
        self._locations = array("Q")
        self._sizes = array("I")
        self._kinds = bytearray()
        self._free: list[int] = []
        self._messages: dict[int, Message] = {}  # slot -> body in memory
        self._staging: list[int] = []  # slots written in this turn's group
        self._timer: Timer | None = None
        self._timer_due = 0
        self.bytes = 0  # body bytes pending

    def __len__(self) -> int:
        return len(self._heap)

    # -- holding ----------------------------------------------------------------------------

    def hold(self, message: Message, due: int) -> None:
        """Keep ``message`` until ``due`` (epoch ms).  A persistent message of a durable
        exchange is written as a recoverable record: ``message.stored`` tells the publisher's
        confirm to wait for it."""
        storage = self._storage
        kind = _MEMORY
        if storage is not None and storage.durable and message.persistent:
            storage.hold(message, due)
            message.stored = True
            kind = _RECORD
        slot = self._alloc(message.seq, due, len(message.body), kind)
        self._messages[slot] = message
        if storage is not None:
            if not self._staging:
                storage.stage(self)
            self._staging.append(slot)
        heapq.heappush(self._heap, due << SLOT_BITS | slot)
        self._arm(due)

    def _alloc(self, seq: int, due: int, size: int, kind: int) -> int:
        self.bytes += size
        if self._free:
            slot = self._free.pop()
            self._seqs[slot] = seq
            self._dues[slot] = due
            self._locations[slot] = 0
            self._sizes[slot] = size
            self._kinds[slot] = kind
            return slot
        slot = len(self._seqs)
        if slot > _SLOT_MASK:
            raise OverflowError("too many delayed messages in one exchange")
        self._seqs.append(seq)
        self._dues.append(due)
        self._locations.append(0)
        self._sizes.append(size)
        self._kinds.append(kind)
        return slot

    def flush_staging(self) -> None:
        """The store wrote this turn's group: written bodies leave memory (unless due soon),
        and transient ones beyond the memory limit are paged out."""
        staging, self._staging = self._staging, []
        storage = self._storage
        if storage is None:
            return
        messages = self._messages
        near = now_ms() + NEAR_MS
        to_page: list[tuple[int, Message]] = []
        for slot in staging:
            message = messages.get(slot)
            if message is None:
                continue  # released already
            if self._kinds[slot] == _RECORD:
                if message.segment < 0:
                    continue  # not written after all (its record was settled in the same turn)
                self._locations[slot] = message.segment << 40 | message.offset
                if self._dues[slot] > near or len(messages) > self.memory_limit:
                    del messages[slot]
            elif len(messages) > self.memory_limit:
                to_page.append((slot, message))
        if to_page:
            storage.page_out([m for _, m in to_page])  # raises on a full disk: they stay in memory
            for slot, message in to_page:
                self._locations[slot] = message.segment << 40 | message.offset
                self._kinds[slot] = _PAGED
                del messages[slot]

    def restore(self, seqs: array[int], locations: array[int], sizes: array[int], dues: array[int]) -> None:
        """Recovered records: into the heap, nothing read."""
        start = len(self._seqs)
        count = len(seqs)
        self._seqs.extend(seqs)
        self._dues.extend(dues)
        self._locations.extend(locations)
        self._sizes.extend(sizes)
        self._kinds.extend(bytes([_RECORD]) * count)
        self.bytes += sum(sizes)
        self._heap.extend(due << SLOT_BITS | (start + i) for i, due in enumerate(dues))
        heapq.heapify(self._heap)
        if self._heap:
            self._arm(self._heap[0] >> SLOT_BITS)

    # -- releasing --------------------------------------------------------------------------

    def _arm(self, due: int) -> None:
        if self._timer is not None:
            if self._timer_due <= due:
                return
            self._timer.cancel()
        self._timer_due = due
        self._timer = self._scheduler.call_later(max(0.0, (due - now_ms()) / 1000.0), self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        heap = self._heap
        now = now_ms()
        started = time.perf_counter()
        released = 0
        while heap and heap[0] >> SLOT_BITS <= now and released < RELEASE_BATCH:
            if released & 63 == 63 and time.perf_counter() - started > RELEASE_SLICE:
                break
            slot = heapq.heappop(heap) & _SLOT_MASK
            released += 1
            message = self._take(slot)
            self._free.append(slot)
            if message is None:
                continue
            try:
                self._release(message)
            except Exception:
                log.exception("delayed message %d could not be routed; dropped", message.seq)
            if self._kinds[slot] == _RECORD and self._storage is not None:
                self._storage.settle(message)
        if heap:
            self._arm(heap[0] >> SLOT_BITS)

    def _take(self, slot: int) -> Message | None:
        """The message of a slot leaving the heap: from memory, or read back from disk."""
        self.bytes -= self._sizes[slot]
        message = self._messages.pop(slot, None)
        if message is not None:
            return message
        storage = self._storage
        kind = self._kinds[slot]
        location = self._locations[slot]
        if storage is None or kind == _MEMORY:
            return None
        message = storage.read(location)
        if kind == _PAGED:
            storage.release_paged(location)
            if message is not None:
                message.segment = -1  # its copy is released: nothing on disk to settle
        if message is None:
            log.error("delayed message %d unreadable at %x; dropped", self._seqs[slot], location)
        return message

    def clear(self) -> None:
        """The exchange is gone: its pending messages with it."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        storage = self._storage
        if storage is not None:
            storage.delete()  # durable records no longer keep their segments
            for key in self._heap:
                slot = key & _SLOT_MASK
                if self._kinds[slot] == _PAGED and slot not in self._messages:
                    storage.release_paged(self._locations[slot])
        self._heap = []
        self._messages.clear()
        self._staging = []
        self._free = []
        self._seqs, self._dues, self._locations = array("Q"), array("q"), array("Q")
        self._sizes, self._kinds = array("I"), bytearray()
        self.bytes = 0

    def next_due(self) -> int | None:
        return self._heap[0] >> SLOT_BITS if self._heap else None
