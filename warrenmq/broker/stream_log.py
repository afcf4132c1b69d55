"""What a stream needs from storage (``StreamLog``), the retention rule every log applies,
and the log kept in memory (a node without persistence, and the model's own tests).

A log is a sequence of records, one per message, numbered by consecutive offsets from 0 and
grouped into segments; retention drops whole segments from the old end, never the one being
written.  A reader keeps a cursor (the log's own bookmark) so that reading on from where it
stopped costs no search.
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from warrenmq.broker.stream_args import Retention

# Each record's bytes besides route, header and body, as the file log stores them (framing,
# offset, timestamp, field lengths): both logs count sizes alike, so retention agrees.
RECORD_OVERHEAD = 33

Record = tuple[int, bytes, bytes, bytes]  # offset, route, content header, body


def record_size(route: bytes, header: bytes, body: bytes) -> int:
    return RECORD_OVERHEAD + len(route) + len(header) + len(body)


def segments_to_drop(segments: Sequence[tuple[int, int]], retention: Retention, now_ms: int) -> int:
    """How many of the oldest segments ((size, newest timestamp) each) retention drops: while
    the log is over ``max_bytes`` or a segment's newest message is older than ``max_age``.
    The last segment, still written to, always stays."""
    max_bytes = retention.max_bytes
    max_age = retention.max_age_ms
    if max_bytes is None and max_age is None:
        return 0
    total = sum(size for size, _ in segments)
    dropped = 0
    for size, newest in segments[:-1]:
        if (max_bytes is not None and total > max_bytes) or (max_age is not None and newest < now_ms - max_age):
            total -= size
            dropped += 1
        else:
            break
    return dropped


class StreamLog(Protocol):
    """A stream's messages.  ``first``: the oldest offset kept; ``end``: the next offset to
    append; ``written``: offsets below it can be read back (newer ones are only in the
    stream's memory until the store writes them); ``size``: bytes kept."""

    first: int
    end: int
    size: int

    @property
    def written(self) -> int: ...

    def append(self, route: bytes, header: bytes, body: bytes) -> None: ...

    def set_retention(self, retention: Retention) -> None: ...

    def cursor(self) -> Any:
        """A reader's bookmark, for ``read``."""
        ...

    def read(self, cursor: Any, offset: int, limit: int) -> list[Record]:
        """Up to ``limit`` records from ``offset`` on (at least ``first``), below ``written``."""
        ...

    def offset_at(self, timestamp_ms: int) -> int:
        """The first offset appended at or after the time (``end`` if none)."""
        ...

    def release(self, cursor: Any) -> None:
        """The reader is gone (whatever its cursor holds open is let go)."""
        ...

    def delete(self) -> None:
        """The stream was deleted: its records go."""
        ...


class MemoryStreamLog:
    """Every record in a list, in segments by size for retention."""

    def __init__(self, retention: Retention | None = None, clock: Callable[[], float] = time.time) -> None:
        self.retention = retention or Retention()
        self.clock = clock
        self.first = 0
        self.end = 0
        self.size = 0
        self._records: list[tuple[bytes, bytes, bytes]] = []  # from offset ``first``
        self._stamps: list[int] = []  # append time (ms) of each, never decreasing
        self._segments: list[list[int]] = [[0, 0, 0]]  # [first offset, size, newest timestamp]

    @property
    def written(self) -> int:
        return self.end  # nothing waits to be written

    def set_retention(self, retention: Retention) -> None:
        self.retention = retention

    def append(self, route: bytes, header: bytes, body: bytes) -> None:
        size = record_size(route, header, body)
        stamp = int(self.clock() * 1000)
        if self._stamps and stamp < self._stamps[-1]:
            stamp = self._stamps[-1]  # a clock stepping back must not unsort the log
        segment = self._segments[-1]
        if segment[1] and segment[1] + size > self.retention.segment_size:
            segment = [self.end, 0, 0]
            self._segments.append(segment)
            self._apply_retention(stamp)
        self._records.append((route, header, body))
        self._stamps.append(stamp)
        segment[1] += size
        segment[2] = stamp
        self.size += size
        self.end += 1

    def _apply_retention(self, now_ms: int) -> None:
        segments = self._segments
        drop = segments_to_drop([(s[1], s[2]) for s in segments], self.retention, now_ms)
        if not drop:
            return
        new_first = segments[drop][0]
        cut = new_first - self.first
        del self._records[:cut]
        del self._stamps[:cut]
        self.size -= sum(s[1] for s in segments[:drop])
        del segments[:drop]
        self.first = new_first

    def cursor(self) -> None:
        return None

    def read(self, cursor: Any, offset: int, limit: int) -> list[Record]:
        start = max(offset, self.first) - self.first
        stop = min(start + limit, len(self._records))
        first = self.first
        records = self._records
        return [(first + i, *records[i]) for i in range(start, stop)]

    def offset_at(self, timestamp_ms: int) -> int:
        return self.first + bisect.bisect_left(self._stamps, timestamp_ms)

    def release(self, cursor: Any) -> None:
        pass

    def delete(self) -> None:
        self._records.clear()
        self._stamps.clear()
        self.size = 0
