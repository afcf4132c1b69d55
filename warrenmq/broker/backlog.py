"""The ready messages of a queue, in delivery order.

``Fifo`` is a deque (append/popleft stay C calls on the hot path) plus the one operation a
deque lacks: putting requeued messages back at their original positions.  ``Prioritised``
keeps one Fifo per priority and offers the same operations.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator

from warrenmq.broker.message import Message


def _merge(a: list[Message], b: list[Message]) -> list[Message]:
    """Merge two lists already sorted by seq."""
    out: list[Message] = []
    i = j = 0
    while i < len(a) and j < len(b):
        if a[i].seq <= b[j].seq:
            out.append(a[i])
            i += 1
        else:
            out.append(b[j])
            j += 1
    out.extend(a[i:])
    out.extend(b[j:])
    return out


class Fifo(deque[Message]):
    __slots__ = ()

    def requeue(self, messages: list[Message]) -> None:
        """Insert messages (sorted by seq) back where they were.

        Requeued messages are older than anything never delivered, so only the front of the
        deque (earlier requeues) can interleave with them.
        """
        if not messages:
            return
        last = messages[-1].seq
        front: list[Message] = []
        while self and self[0].seq < last:
            front.append(self.popleft())
        merged = _merge(front, messages) if front else messages
        self.extendleft(reversed(merged))

    def peek(self) -> Message | None:
        return self[0] if self else None

    def head_deadline(self) -> float | None:
        """The expiry deadline of the next message (0.0: none; None: empty)."""
        return self[0].expires_at if self else None

    def take_in_memory(self) -> list[Message]:
        out = list(self)
        self.clear()
        return out

    def drop_tail(self) -> int:
        return 0  # nothing is paged out

    @property
    def paged(self) -> int:
        return 0


class Prioritised:
    """Highest priority first, FIFO within a priority (x-max-priority queues)."""

    __slots__ = ("_count", "_levels", "max_priority")

    def __init__(self, max_priority: int) -> None:
        self.max_priority = max_priority
        self._levels = [Fifo() for _ in range(max_priority + 1)]
        self._count = 0

    def _level(self, message: Message) -> Fifo:
        priority = message.priority
        return self._levels[priority if priority <= self.max_priority else self.max_priority]

    def append(self, message: Message) -> None:
        self._level(message).append(message)
        self._count += 1

    def appendleft(self, message: Message) -> None:
        self._level(message).appendleft(message)
        self._count += 1

    def popleft(self) -> Message:
        for level in reversed(self._levels):
            if level:
                self._count -= 1
                return level.popleft()
        raise IndexError("pop from an empty backlog")

    def pop(self) -> Message:
        """The message that would be delivered last (lowest priority, newest)."""
        for level in self._levels:
            if level:
                self._count -= 1
                return level.pop()
        raise IndexError("pop from an empty backlog")

    def peek(self) -> Message | None:
        for level in reversed(self._levels):
            if level:
                return level[0]
        return None

    def head_deadline(self) -> float | None:
        head = self.peek()
        return None if head is None else head.expires_at

    def requeue(self, messages: list[Message]) -> None:
        by_level: dict[int, list[Message]] = {}
        for message in messages:
            by_level.setdefault(min(message.priority, self.max_priority), []).append(message)
        for priority, group in by_level.items():
            self._levels[priority].requeue(group)
        self._count += len(messages)

    def clear(self) -> None:
        for level in self._levels:
            level.clear()
        self._count = 0

    def take_in_memory(self) -> list[Message]:
        out = list(self)
        self.clear()
        return out

    def drop_tail(self) -> int:
        return 0

    @property
    def paged(self) -> int:
        return 0

    def __len__(self) -> int:
        return self._count

    def __bool__(self) -> bool:
        return self._count > 0

    def __iter__(self) -> Iterator[Message]:
        for level in reversed(self._levels):
            yield from level

    def extend(self, messages: Iterable[Message]) -> None:
        for message in messages:
            self.append(message)


Backlog = Fifo | Prioritised
