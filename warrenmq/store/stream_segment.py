"""One segment file of a stream, with its sparse index, and its recovery.

A segment holds the records of consecutive offsets from ``first`` (its file name) to
``end``; ``size`` bytes of it are written.  The index keeps one (offset, position,
timestamp) entry per INDEX_BYTES of records, in memory as three arrays and on disk in the
``.idx`` file beside it, so that finding an offset or a time reads at most that much of the
segment and a stream of ten million messages costs a few hundred kilobytes of RAM.
"""

from __future__ import annotations

import logging
import os
from array import array
from pathlib import Path

from warrenmq.store import stream_records as sr

log = logging.getLogger("warrenmq.store")

_SCAN_CHUNK = 4 * 1024 * 1024


def segment_name(first: int) -> str:
    return f"{first:020d}"


class Segment:
    __slots__ = (
        "deleted",
        "end",
        "first",
        "index_fd",
        "indexed_upto",
        "newest",
        "offsets",
        "path",
        "positions",
        "read_fd",
        "size",
        "stamps",
    )

    def __init__(self, directory: Path, first: int) -> None:
        self.first = first
        self.end = first  # the offset after its last record
        self.size = 0  # bytes written
        self.newest = 0  # timestamp (ms) of its last record
        self.path = directory / (segment_name(first) + ".seg")
        self.offsets = array("Q")
        self.positions = array("Q")
        self.stamps = array("q")
        self.indexed_upto = 0  # entries already in the .idx file
        self.index_fd = -1
        self.read_fd = -1
        self.deleted = False

    @property
    def index_path(self) -> Path:
        return self.path.with_suffix(".idx")

    def add_index(self, offset: int, position: int, stamp: int) -> None:
        self.offsets.append(offset)
        self.positions.append(position)
        self.stamps.append(stamp)

    def index_due(self, position: int) -> bool:
        """Whether the record written at ``position`` gets an index entry."""
        return not self.positions or position - self.positions[-1] >= sr.INDEX_BYTES

    def write_index(self) -> None:
        """Append the entries the .idx file does not have yet (not fsynced: see recovery)."""
        count = len(self.offsets)
        if self.indexed_upto == count:
            return
        if self.index_fd < 0:
            self.index_fd = os.open(self.index_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        data = b"".join(
            sr.INDEX_ENTRY.pack(self.offsets[i], self.positions[i], self.stamps[i])
            for i in range(self.indexed_upto, count)
        )
        os.write(self.index_fd, data)
        self.indexed_upto = count

    def reader(self) -> int:
        if self.read_fd < 0:
            self.read_fd = os.open(self.path, os.O_RDONLY)
        return self.read_fd

    def close_files(self) -> None:
        for fd in (self.index_fd, self.read_fd):
            if fd >= 0:
                os.close(fd)
        self.index_fd = self.read_fd = -1

    def remove(self) -> None:
        self.deleted = True
        self.close_files()
        for path in (self.path, self.index_path):
            try:
                path.unlink()
            except FileNotFoundError:
                pass

    # -- recovery -----------------------------------------------------------------------

    def recover(self) -> int:
        """Load the index, check it against the file, and scan what it does not cover:
        the segment's end offset, newest timestamp and size come from that scan.  A torn
        or damaged tail is cut off.  Returns the bytes cut off."""
        size = self.path.stat().st_size
        entries = self._load_index(size)
        fd = os.open(self.path, os.O_RDONLY)
        try:
            while True:
                start = entries[-1][1] if entries else 0
                good_end, last, added = self._scan_tail(fd, start, size)
                if (added and added[0][1] == start) or not entries:
                    break
                entries.pop()  # the entry points at no valid record: scan from the one before
        finally:
            os.close(fd)
        for offset, position, stamp in entries:
            self.add_index(offset, position, stamp)
        for offset, position, stamp in added:
            if position > (entries[-1][1] if entries else -1) and self.index_due(position):
                self.add_index(offset, position, stamp)
        if last is not None:
            self.end = last[0] + 1
            self.newest = last[1]
        self.size = good_end
        cut = size - good_end
        if cut:
            log.warning("%s: %d bytes at the tail are not whole records (torn write); cut off", self.path.name, cut)
            os.truncate(self.path, good_end)
        self._rewrite_index()
        return cut

    def _load_index(self, size: int) -> list[tuple[int, int, int]]:
        try:
            data = self.index_path.read_bytes()
        except FileNotFoundError:
            return []
        entries: list[tuple[int, int, int]] = []
        usable = len(data) - len(data) % sr.INDEX_ENTRY.size
        for at in range(0, usable, sr.INDEX_ENTRY.size):
            offset, position, stamp = sr.INDEX_ENTRY.unpack_from(data, at)
            if position >= size or offset < self.first or (entries and (offset, position) <= entries[-1][:2]):
                break  # beyond what the segment holds, or not ascending: the rest is not trusted
            entries.append((offset, position, stamp))
        return entries

    def _scan_tail(
        self, fd: int, start: int, size: int
    ) -> tuple[int, tuple[int, int] | None, list[tuple[int, int, int]]]:
        """Records from ``start``: (end of the last good one, (offset, stamp) of the last,
        (offset, position, stamp) of each).  Damage followed by valid records is skipped
        (and logged); what follows the last valid record is a torn tail."""
        good_end = start
        last: tuple[int, int] | None = None
        found: list[tuple[int, int, int]] = []
        position = start
        while position < size:
            data = os.pread(fd, _SCAN_CHUNK, position)
            consumed = 0
            for at, offset, stamp, length in sr.scan(data):
                found.append((offset, position + at, stamp))
                last = (offset, stamp)
                consumed = at + length
            if consumed:
                position += consumed
                good_end = position
                continue
            if len(data) >= sr.HEAD_SIZE:
                need = sr.record_length(data, 0)
                if len(data) < need <= size - position:  # one record larger than a chunk
                    whole = os.pread(fd, need, position)
                    if sr.valid_at(whole, 0):
                        _m, _s, _c, _k, offset, stamp, _r = sr.HEAD.unpack_from(whole, 0)
                        found.append((offset, position, stamp))
                        last = (offset, stamp)
                        position += need
                        good_end = position
                        continue
            after = _next_valid(fd, position, size)
            if after < 0:
                break  # nothing valid follows: a torn tail
            log.warning("%s: damaged record at position %d skipped", self.path.name, position)
            position = after
        return good_end, last, found

    def _rewrite_index(self) -> None:
        data = b"".join(
            sr.INDEX_ENTRY.pack(o, p, s) for o, p, s in zip(self.offsets, self.positions, self.stamps, strict=True)
        )
        tmp = self.index_path.with_suffix(".idx.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, self.index_path)
        self.indexed_upto = len(self.offsets)


def _next_valid(fd: int, position: int, size: int) -> int:
    """The position of the first valid record after ``position`` (-1: none), read in chunks
    that overlap so that a record across a chunk boundary is found in the next one."""
    overlap = 1024 * 1024
    at = position + 1
    while at < size:
        data = os.pread(fd, _SCAN_CHUNK + overlap, at)
        found = sr.find_next_valid(data, -1)
        if found >= 0:
            return at + found
        if at + len(data) >= size:
            return -1
        at += _SCAN_CHUNK
    return -1
