"""A stream's log on disk: its own segment files of records, written by the store's group
commit, read back by each consumer through a cursor, trimmed by dropping whole segments.

Layout: ``streams/<queue id>/<first offset>.seg`` and ``.idx`` (stream_segment.py).
Appends wait in memory until the end of the event-loop turn, when the store calls
``flush``: the group is written with one write per segment and the file joins the store's
fsync, so a publisher confirm means the record is on disk, exactly as for queues.  When the
segment being written passes the stream's segment size a new one starts, and retention
(x-max-length-bytes, x-max-age) then drops old segments whole.

A cursor holds a buffer of bytes read from one segment and where in it the next record
starts; a reader going on from where it stopped parses on from there, and reads more
(one ``pread`` of about its credit's worth) only when the buffer runs out.
"""

from __future__ import annotations

import bisect
import logging
import os
import shutil
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from warrenmq.broker.stream_args import Retention
from warrenmq.broker.stream_log import Record, segments_to_drop
from warrenmq.store import stream_records as sr
from warrenmq.store.records import MAGIC
from warrenmq.store.stream_segment import Segment

log = logging.getLogger("warrenmq.store")

MIN_READ = 64 * 1024
MAX_READ = 1024 * 1024
_U32 = sr._U32


class StoreHooks(Protocol):
    """What a stream log needs from the store that owns it."""

    def stage_stream(self, stream_log: FileStreamLog) -> None:
        """Call ``flush`` at the end of this loop turn."""
        ...

    def close_later(self, fd: int) -> None:
        """Close ``fd`` once the store's fsyncs no longer use it."""
        ...

    def forget_stream(self, stream_log: FileStreamLog) -> None: ...


class Cursor:
    """A reader's place: ``buffer`` holds bytes of ``segment`` from ``file_pos``; the record
    at ``buffer[at]`` has offset ``next``."""

    __slots__ = ("at", "buffer", "file_pos", "next", "segment")

    def __init__(self) -> None:
        self.segment: Segment | None = None
        self.buffer = b""
        self.at = 0
        self.file_pos = 0
        self.next = -1


class FileStreamLog:
    def __init__(
        self,
        directory: Path,
        hooks: StoreHooks,
        retention: Retention | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.directory = directory
        self.hooks = hooks
        self.retention = retention or Retention()
        self.clock = clock
        self.first = 0
        self.end = 0
        self.written = 0
        self.size = 0
        self._segments: list[Segment] = []
        self._firsts: list[int] = []  # each segment's first offset, for bisect
        self._write_fd = -1
        # Appended, not yet written: the records, where new segments start in them (buffer
        # position, first offset, newest timestamp before it), and their index entries
        # (offset, buffer position, timestamp); the size the segment being filled will
        # have, and the position of its last index entry.
        self._buf = bytearray()
        self._rolls: list[tuple[int, int, int]] = []
        self._new_index: list[tuple[int, int, int]] = []
        self._next_size = 0
        self._next_indexed = 0
        self._last_stamp = 0
        self._staged = False
        self.deleted = False
        self.stats = {"cut_bytes": 0}
        self.queue_id = 0  # the store's bookkeeping
        self.key: tuple[str, str] = ("", "")

    # -- opening ------------------------------------------------------------------------

    def open(self) -> FileStreamLog:
        """Recover the segments already in the directory (creating it if need be)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        firsts = sorted(int(p.stem) for p in self.directory.glob("*.seg"))
        for first in firsts:
            segment = Segment(self.directory, first)
            self.stats["cut_bytes"] += segment.recover()
            if segment.size == 0 and first != firsts[-1]:
                segment.remove()  # an empty segment that is not the last: nothing to keep
                continue
            self._segments.append(segment)
            self._firsts.append(first)
        for temp in self.directory.glob("*.idx.tmp"):
            temp.unlink()
        if self._segments:
            self.first = self._segments[0].first
            last = self._segments[-1]
            self.end = self.written = last.end
            self.size = sum(s.size for s in self._segments)
            self._last_stamp = max(s.newest for s in self._segments)
            self._write_fd = os.open(last.path, os.O_WRONLY | os.O_APPEND)
            self._next_size = last.size
            self._next_indexed = last.positions[-1] if last.positions else 0
        return self

    def set_retention(self, retention: Retention) -> None:
        self.retention = retention

    # -- appending ------------------------------------------------------------------------

    def append(self, route: bytes, header: bytes, body: bytes) -> None:
        """Encode the record into the buffer the next flush writes.  Where the segment
        rolls over and which records get index entries is decided here, on the sizes the
        segments will have once written."""
        stamp = int(self.clock() * 1000)
        if stamp < self._last_stamp:
            stamp = self._last_stamp  # a clock stepping back must not unsort the log
        offset = self.end
        record = sr.encode(offset, stamp, route, header, body)
        length = len(record)
        size = self._next_size
        buf = self._buf
        if size and size + length > self.retention.segment_size:
            self._rolls.append((len(buf), offset, self._last_stamp))  # a new segment from here
            size = 0
        if size == 0 or size - self._next_indexed >= sr.INDEX_BYTES:
            self._new_index.append((offset, len(buf), stamp))
            self._next_indexed = size
        buf += record
        self._next_size = size + length
        self._last_stamp = stamp
        self.end = offset + 1
        self.size += length
        if not self._staged:
            self._staged = True
            self.hooks.stage_stream(self)

    def flush(self, dirty: set[int]) -> bool:
        """Write the buffer (the store calls this at the end of the loop turn), one write
        per segment; the file joins ``dirty`` for the group's fsync.  A failed write keeps
        what it did not write for the store's retry (OSError)."""
        self._staged = False
        buf = self._buf
        if not buf or self.deleted:
            return False
        rolls = self._rolls
        index = self._new_index
        done = 0  # bytes of the buffer written
        parts = 0  # roll points passed
        entries = 0  # index entries placed
        try:
            while True:
                segment = self._active()
                stop = rolls[parts][0] if parts < len(rolls) else len(buf)
                base = segment.size - done  # buffer position -> segment position
                view = memoryview(buf)
                try:
                    self._write(segment, view[done:stop])
                finally:
                    view.release()  # the buffer is resized below
                while entries < len(index) and index[entries][1] < stop:
                    offset, at, stamp = index[entries]
                    segment.add_index(offset, base + at, stamp)
                    entries += 1
                segment.write_index()
                if parts < len(rolls):
                    _at, next_first, newest = rolls[parts]
                    segment.end = self.written = next_first
                    segment.newest = newest
                    done = stop
                    parts += 1
                    self._roll()
                    continue
                segment.end = self.written = self.end
                segment.newest = self._last_stamp
                done = stop
                break
        finally:
            if done == len(buf):
                buf.clear()
                rolls.clear()
                index.clear()
            else:  # keep what is left, positions shifted to the buffer's new start
                del buf[:done]
                self._rolls = [(at - done, first, newest) for at, first, newest in rolls[parts:]]
                self._new_index = [(offset, at - done, stamp) for offset, at, stamp in index[entries:]]
                self._staged = True  # the store keeps this log staged for its retry
        dirty.add(self._write_fd)
        if parts:
            self._apply_retention()
        return True

    def _active(self) -> Segment:
        if not self._segments:
            self._start_segment(self.written)  # the first record waiting to be written
        return self._segments[-1]

    def _start_segment(self, first: int) -> None:
        segment = Segment(self.directory, first)
        self._write_fd = os.open(segment.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self._segments.append(segment)
        self._firsts.append(first)

    def _write(self, segment: Segment, data: memoryview) -> None:
        fd = self._write_fd
        start = segment.size
        try:
            with data:
                written = os.write(fd, data)
                while written < len(data):  # short write: finish it
                    written += os.write(fd, data[written:])
                length = len(data)
        except OSError:
            os.ftruncate(fd, start)  # never leave half a group behind
            raise
        segment.size = start + length

    def _roll(self) -> None:
        """The active segment is full: a new one starts at the next offset to write."""
        old = self._segments[-1]
        if old.index_fd >= 0:
            os.close(old.index_fd)
            old.index_fd = -1
        self.hooks.close_later(self._write_fd)  # fsynced with the group, then closed
        self._start_segment(old.end)

    def _apply_retention(self) -> None:
        segments = self._segments
        drop = segments_to_drop([(s.size, s.newest) for s in segments], self.retention, int(self.clock() * 1000))
        if not drop:
            return
        for segment in segments[:drop]:
            self.size -= segment.size
            segment.remove()
        del segments[:drop]
        del self._firsts[:drop]
        self.first = segments[0].first

    # -- reading --------------------------------------------------------------------------

    def cursor(self) -> Cursor:
        return Cursor()

    def release(self, cursor: Cursor) -> None:
        cursor.buffer = b""
        cursor.segment = None

    def read(self, cursor: Cursor, offset: int, limit: int) -> list[Record]:
        if offset < self.first:
            offset = self.first
        stop = self.written
        out: list[Record] = []
        if offset >= stop or limit <= 0:
            return out
        if cursor.next != offset or cursor.segment is None or cursor.segment.deleted:
            self._seek(cursor, offset)
        append = out.append
        unpack = sr.HEAD.unpack_from
        unpack_u32 = _U32.unpack_from
        crc32 = zlib.crc32
        while len(out) < limit:
            assert cursor.segment is not None
            segment_size = cursor.segment.size
            buf = cursor.buffer
            view = memoryview(buf)
            at = cursor.at
            end = len(buf)
            while at + 29 <= end:
                magic, size, crc, _kind, record_offset, _stamp, route_size = unpack(buf, at)
                record_end = at + 10 + size
                damaged = magic != MAGIC
                if not damaged and record_end > end:
                    if cursor.file_pos + record_end <= segment_size:
                        break  # not whole in the buffer: read on from here
                    damaged = True  # it would run past the segment's end
                if damaged or crc32(view[at + 10 : record_end]) != crc:
                    at = self._skip_damage(cursor, at)
                    if at < 0:
                        at = end
                        break
                    continue
                if record_offset >= stop:
                    cursor.at = at
                    cursor.next = record_offset
                    return out
                header_at = at + 29 + route_size
                body_at = header_at + 4 + unpack_u32(buf, header_at)[0]
                if record_offset >= offset:
                    append(
                        (record_offset, buf[at + 29 : header_at], buf[header_at + 4 : body_at], buf[body_at:record_end])
                    )
                    at = record_end
                    if len(out) >= limit:
                        break
                else:
                    at = record_end  # before the offset asked for (a seek lands on an index entry)
            cursor.at = at
            cursor.next = out[-1][0] + 1 if out else offset
            if len(out) >= limit or not self._refill(cursor, limit - len(out)):
                break
        return out

    def _seek(self, cursor: Cursor, offset: int) -> None:
        """Point the cursor at the index entry at or before ``offset`` (read then skips on)."""
        i = max(bisect.bisect_right(self._firsts, offset) - 1, 0)
        segment = self._segments[i]
        if offset >= segment.end and i + 1 < len(self._segments):
            segment = self._segments[i + 1]  # a gap (records lost to a crash): the next segment
        k = bisect.bisect_right(segment.offsets, offset) - 1
        cursor.segment = segment
        cursor.file_pos = segment.positions[k] if k >= 0 else 0
        cursor.buffer = b""
        cursor.at = 0
        cursor.next = offset

    def _refill(self, cursor: Cursor, wanted: int) -> bool:
        """Read the next bytes for the cursor (the next segment once one is done); False
        when there is nothing written to read yet."""
        segment = cursor.segment
        assert segment is not None
        position = cursor.file_pos + cursor.at
        rest = cursor.buffer[cursor.at :]
        if segment.deleted:
            return False
        if position >= segment.size:
            i = bisect.bisect_right(self._firsts, segment.first)
            if i >= len(self._segments) or segment is self._segments[-1]:
                return False
            segment = cursor.segment = self._segments[i]
            position = 0
            rest = b""
        average = self.size // max(self.end - self.first, 1) + 1
        amount = min(max(wanted * average, MIN_READ), MAX_READ)
        if len(rest) >= 10:
            amount = max(amount, sr.record_length(rest, 0))  # a record larger than a read
        amount = min(amount, segment.size - position)
        if amount <= 0:
            return False
        cursor.buffer = os.pread(segment.reader(), amount, position)
        cursor.file_pos = position
        cursor.at = 0
        return bool(cursor.buffer)

    def _skip_damage(self, cursor: Cursor, at: int) -> int:
        """A damaged record at ``buffer[at]``: where to go on in the buffer, at the next valid
        record or at a candidate that is not whole in it (read on from there); -1 when
        nothing of the segment is left to try."""
        segment = cursor.segment
        assert segment is not None
        log.error("%s: damaged record at position %d skipped", segment.path.name, cursor.file_pos + at)
        buf = cursor.buffer
        found = buf.find(MAGIC, at + 1)
        while found != -1:
            if (
                sr.valid_at(buf, found)
                or found + sr.HEAD_SIZE > len(buf)
                or found + sr.record_length(buf, found) > len(buf)
            ):
                return found
            found = buf.find(MAGIC, found + 1)
        if cursor.file_pos + len(buf) >= segment.size:
            cursor.at = len(buf)
            return -1
        return len(buf) - 1  # its last byte may begin the next record's magic

    def offset_at(self, timestamp_ms: int) -> int:
        """The first offset stamped at or after ``timestamp_ms`` (``end`` if none)."""
        for segment in self._segments:
            if segment.end == segment.first or segment.newest < timestamp_ms:
                continue  # all of it is older
            k = bisect.bisect_left(segment.stamps, timestamp_ms)
            if k == 0:
                return segment.first  # its first record is already recent enough
            # Index entry k-1 is older and entry k (if any) is not: the answer lies between
            # them, found by reading that stretch (at most INDEX_BYTES and one record).
            start = segment.positions[k - 1]
            stop = segment.positions[k] if k < len(segment.positions) else segment.size
            data = os.pread(segment.reader(), stop - start, start)
            for _at, offset, stamp, _length in sr.scan(data):
                if stamp >= timestamp_ms:
                    return offset
            return segment.offsets[k] if k < len(segment.offsets) else segment.end
        for _at, offset, stamp, _length in sr.scan(bytes(self._buf)):
            if stamp >= timestamp_ms:
                return offset
        return self.end

    # -- closing ------------------------------------------------------------------------

    def close(self) -> None:
        """Shutdown: the store has flushed; fsync the segment being written, close all."""
        if self._write_fd >= 0:
            try:
                os.fsync(self._write_fd)
            finally:
                os.close(self._write_fd)
                self._write_fd = -1
        for segment in self._segments:
            segment.close_files()

    def delete(self) -> None:
        self.deleted = True
        self._buf.clear()
        if self._write_fd >= 0:
            self.hooks.close_later(self._write_fd)
            self._write_fd = -1
        for segment in self._segments:
            segment.deleted = True
            segment.close_files()
        self._segments.clear()
        self._firsts.clear()
        shutil.rmtree(self.directory, ignore_errors=True)
        self.size = 0
        self.hooks.forget_stream(self)
