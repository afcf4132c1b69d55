"""A queue backlog that keeps only its head in memory (like RabbitMQ's classic v2 queues).

Theory of operation.  Messages are appended to an in-memory ``head`` while the queue is short
and memory allows.  Past that, new messages go to ``staging`` and, at the end of the event
loop turn, to the ``tail``: the pager (the message store) writes their content to disk if it
is not there already, and the tail keeps only a compact record per message in parallel
arrays (about 30 bytes: sequence, disk location, size, returns, deadline).  Order is kept
because nothing joins the head while the tail is not empty, except requeued messages, which
are older than everything in the tail.  When the head runs dry the next batch is read back
from disk in one read per segment run.

Memory is bounded by the per-queue head limit and the node-wide ``MemoryBudget``.
"""

from __future__ import annotations

import bisect
from array import array
from collections import deque
from collections.abc import Iterator
from itertools import islice
from typing import Protocol

from warrenmq.broker.backlog import Fifo
from warrenmq.broker.message import Message

PAGE_IN_BATCH = 1024
# What a message in memory costs beyond its body (the Message object, its header and route
# bytes, the deque slot), so that a budget in bytes also bounds backlogs of tiny messages.
MESSAGE_OVERHEAD = 300


class MemoryBudget:
    """Bytes of message bodies kept in queue heads, node-wide."""

    __slots__ = ("limit", "used")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0

    @property
    def exceeded(self) -> bool:
        return self.used > self.limit


class TailEntries:
    """Parallel arrays of paged-out messages, consumed from ``start``."""

    __slots__ = ("deadlines", "locations", "persistent", "returns", "seqs", "sizes", "start")

    def __init__(self) -> None:
        self.seqs = array("Q")
        self.locations = array("Q")  # segment << 40 | offset
        self.sizes = array("I")
        self.returns = array("H")
        self.deadlines = array("d")
        self.persistent = bytearray()  # 1: the queue's durable record; 0: a page-out copy
        self.start = 0

    def __len__(self) -> int:
        return len(self.seqs) - self.start

    def add(self, seq: int, location: int, size: int, returns: int, deadline: float, persistent: bool) -> None:
        self.seqs.append(seq)
        self.locations.append(location)
        self.sizes.append(size)
        self.returns.append(min(returns, 65535))
        self.deadlines.append(deadline)
        self.persistent.append(1 if persistent else 0)

    def advance(self, n: int) -> None:
        self.start += n
        if self.start > 4096 and self.start * 2 > len(self.seqs):
            # Compact so that consumed entries do not pin memory.
            s = self.start
            self.seqs = self.seqs[s:]
            self.locations = self.locations[s:]
            self.sizes = self.sizes[s:]
            self.returns = self.returns[s:]
            self.deadlines = self.deadlines[s:]
            self.persistent = self.persistent[s:]
            self.start = 0

    def clear(self) -> None:
        self.__init__()  # type: ignore[misc]


class Pager(Protocol):
    """What a paged backlog needs from the store."""

    def stage(self, backlog: PagedFifo) -> None:
        """Call ``backlog.flush_staging()`` at the end of this loop turn."""

    def page_out(self, messages: list[Message]) -> None:
        """Write the content of messages not in the store; set their segment and offset."""

    def page_in(self, tail: TailEntries, count: int, queue: object) -> list[Message]:
        """Read ``count`` entries from ``tail.start`` back as messages (releasing page-out copies)."""

    def release(self, tail: TailEntries, start: int, stop: int, queue: object) -> None:
        """Entries leave the queue unread (purge, delete, drop-head)."""

    def written_age(self, segment: int) -> float:
        """Seconds between the last write of a recovered segment and the recovery (0: none)."""

    def read_message(self, location: int) -> Message | None:
        """A copy of the message at ``location``, nothing released (peeking)."""


def location(segment: int, offset: int) -> int:
    return (segment << 40) | offset


class PagedFifo:
    """Fifo interface (append/popleft/peek/requeue/clear/len) over head + staging + tail."""

    __slots__ = ("_recovered_at", "_staged", "budget", "head", "head_limit", "owner", "pager", "staging", "tail")

    def __init__(self, pager: Pager, budget: MemoryBudget, head_limit: int, owner: object) -> None:
        self.head = Fifo()
        self.staging: deque[Message] = deque()
        self.tail = TailEntries()
        self.pager = pager
        self.budget = budget
        self.head_limit = head_limit
        self.owner = owner  # the queue (store handle lookups)
        self._staged = False
        self._recovered_at = 0.0  # when messages were recovered from disk (0: never)

    # -- the Fifo interface ---------------------------------------------------------------

    def append(self, message: Message) -> None:
        tail = self.tail
        if (
            self.staging
            or len(tail.seqs) > tail.start
            or (len(self.head) >= self.head_limit or (self.budget.used > self.budget.limit and len(self.head) >= 64))
        ):
            self.staging.append(message)
            if not self._staged:
                self._staged = True
                self.pager.stage(self)
            return
        self.head.append(message)
        self.budget.used += len(message.body) + MESSAGE_OVERHEAD

    def popleft(self) -> Message:
        head = self.head
        if not head:
            self._refill()
        message = head.popleft()
        self.budget.used -= len(message.body) + MESSAGE_OVERHEAD
        return message

    def peek(self) -> Message | None:
        if not self.head:
            self._refill()
        return self.head[0] if self.head else None

    def head_deadline(self) -> float | None:
        """The next message's expiry deadline without reading it back from disk."""
        if self.head:
            return self.head[0].expires_at
        tail = self.tail
        if len(tail):
            return tail.deadlines[tail.start]
        return self.staging[0].expires_at if self.staging else None

    def appendleft(self, message: Message) -> None:
        self.head.appendleft(message)
        self.budget.used += len(message.body) + MESSAGE_OVERHEAD

    def requeue(self, messages: list[Message]) -> None:
        # Requeued messages were delivered from the head: older than anything in the tail.
        self.head.requeue(messages)
        self.budget.used += sum(len(m.body) for m in messages) + MESSAGE_OVERHEAD * len(messages)

    def __len__(self) -> int:
        tail = self.tail
        return len(self.head) + len(self.staging) + len(tail.seqs) - tail.start

    def __bool__(self) -> bool:
        # Asked on every publish: no nested Python calls.
        return bool(self.head or self.staging or len(self.tail.seqs) > self.tail.start)

    def __iter__(self) -> Iterator[Message]:
        """The messages in memory (the head and staging); paged ones are not read back."""
        yield from self.head
        yield from self.staging

    @property
    def paged(self) -> int:
        return len(self.tail) + len(self.staging)

    def first(self, count: int) -> list[Message]:
        """The next ``count`` messages in delivery order, without taking them: the head, then
        the paged tail (copies read from disk), then staging."""
        out = list(islice(self.head, count))
        tail = self.tail
        index = tail.start
        while len(out) < count and index < len(tail.seqs):
            message = self.pager.read_message(tail.locations[index])
            if message is not None:
                message.returns = tail.returns[index]
                out.append(message)
            index += 1
        out.extend(islice(self.staging, max(0, count - len(out))))
        return out

    def clear(self) -> None:
        self.budget.used -= sum(len(m.body) for m in self.head) + MESSAGE_OVERHEAD * len(self.head)
        self.head.clear()
        self.staging.clear()
        tail = self.tail
        if len(tail):
            self.pager.release(tail, tail.start, len(tail.seqs), self.owner)
        tail.clear()

    def take_in_memory(self) -> list[Message]:
        """Remove and return the head and staging (for purge: each needs settling)."""
        out = list(self.head)
        out.extend(self.staging)
        self.budget.used -= sum(len(m.body) for m in self.head) + MESSAGE_OVERHEAD * len(self.head)
        self.head.clear()
        self.staging.clear()
        return out

    def drop_tail(self) -> int:
        """Release every paged entry unread; returns how many."""
        tail = self.tail
        count = len(tail)
        if count:
            self.pager.release(tail, tail.start, len(tail.seqs), self.owner)
        tail.clear()
        return count

    def drop_expired(self, now: float, budget: int) -> tuple[int, int]:
        """Expired entries at the front of the tail leave unread (expiry with nothing to
        dead-letter need not read them back).  Only while the head is empty: then the tail's
        front is the queue's.  Returns (messages, body bytes) dropped."""
        if self.head:
            return 0, 0
        tail = self.tail
        deadlines = tail.deadlines
        start = stop = tail.start
        end = min(len(deadlines), start + budget)
        while stop < end and 0.0 < deadlines[stop] <= now:
            stop += 1
        if stop == start:
            return 0, 0
        size = sum(tail.sizes[start:stop])
        self.pager.release(tail, start, stop, self.owner)
        tail.advance(stop - start)
        return stop - start, size

    # -- paging -------------------------------------------------------------------------

    def _refill(self) -> None:
        tail = self.tail
        if len(tail):
            count = min(PAGE_IN_BATCH, len(tail))
            messages = self.pager.page_in(tail, count, self.owner)
            tail.advance(count)
            recovered_at = self._recovered_at
            for message in messages:
                if recovered_at and message.expiration is not None and not message.expires_at:
                    # Recovered from disk: its per-message TTL counts from when it was written.
                    written_at = recovered_at - self.pager.written_age(message.segment)
                    message.expires_at = _recovered_deadline(self.owner, message.expiration, written_at)
                self.head.append(message)
                self.budget.used += len(message.body) + MESSAGE_OVERHEAD
        elif self.staging:
            # Not yet written: the newest messages are still here in memory.
            while self.staging and len(self.head) < PAGE_IN_BATCH:
                message = self.staging.popleft()
                self.head.append(message)
                self.budget.used += len(message.body) + MESSAGE_OVERHEAD

    def flush_staging(self) -> None:
        """End of the loop turn: staged messages go to disk and leave memory."""
        self._staged = False
        staging = self.staging
        if not staging:
            return
        messages = list(staging)
        # If writing fails (a full disk) this raises and the messages stay staged, in memory.
        self.pager.page_out([m for m in messages if m.segment < 0])
        staging.clear()
        tail = self.tail
        for m in messages:
            tail.add(m.seq, location(m.segment, m.offset), len(m.body), m.returns, m.expires_at, m.stored)

    def restore(self, seqs: array[int], locations: array[int], sizes: array[int], returns: array[int]) -> None:
        """Recovered durable messages: straight into the tail, nothing read."""
        tail = self.tail
        tail.seqs.extend(seqs)
        tail.locations.extend(locations)
        tail.sizes.extend(sizes)
        tail.returns.extend(returns)
        n = len(seqs)
        # Expiry deadlines are not on disk: a recovered message's TTL counts from when its
        # segment was last written (the queue's TTL now; a per-message one when it is read back).
        owner = self.owner
        scheduler = getattr(owner, "scheduler", None)
        if scheduler is not None:
            self._recovered_at = scheduler.time()
        deadline = _recovered_deadline(owner, None, self._recovered_at)
        if deadline:
            # Recovered locations ascend (segment by segment, in append order): one run of
            # equal deadlines per segment.  Past deadlines stay non-zero (0.0: never expires).
            i = 0
            while i < n:
                segment = locations[i] >> 40
                j = bisect.bisect_left(locations, (segment + 1) << 40, i)
                value = max(deadline - self.pager.written_age(segment), 1e-9)
                tail.deadlines.extend(array("d", [value]) * (j - i))
                i = j
        else:
            tail.deadlines.extend(array("d", [0.0]) * n)
        tail.persistent.extend(b"\x01" * n)
        if deadline and scheduler is not None:
            scheduler.call_later(0, owner.arm_expiry)  # type: ignore[attr-defined]

    def tail_bytes(self) -> int:
        tail = self.tail
        return sum(tail.sizes[tail.start :])


def _recovered_deadline(owner: object, expiration: str | None, recovered_at: float) -> float:
    """The expiry deadline of a message recovered at ``recovered_at`` (0.0: none)."""
    deadline = getattr(owner, "recovered_deadline", None)
    return deadline(expiration, recovered_at) if deadline is not None and recovered_at else 0.0
