"""Stream logs: the same tests against the file log (warrenmq/store/stream_file.py) and the
memory log (warrenmq/broker/stream_log.py), then what only the file log does: recovery, torn
tails, damage, the index."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from warrenmq.broker.stream_args import Retention
from warrenmq.broker.stream_log import MemoryStreamLog, StreamLog, record_size, segments_to_drop
from warrenmq.store import stream_records as sr
from warrenmq.store.stream_file import FileStreamLog

ROUTE = b"\x00\x01q"


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


class Hooks:
    """The store's side, for a log on its own: flushes on demand, closes what it is given."""

    def __init__(self) -> None:
        self.staged: list[FileStreamLog] = []
        self.closing: list[int] = []
        self.forgotten: list[FileStreamLog] = []

    def stage_stream(self, stream_log: FileStreamLog) -> None:
        self.staged.append(stream_log)

    def close_later(self, fd: int) -> None:
        self.closing.append(fd)

    def forget_stream(self, stream_log: FileStreamLog) -> None:
        self.forgotten.append(stream_log)

    def flush(self) -> None:
        while self.staged:
            self.staged.pop().flush(set())
        while self.closing:
            os.close(self.closing.pop())


class Harness:
    def __init__(self, kind: str, tmp_path: Path) -> None:
        self.kind = kind
        self.directory = tmp_path / "s"
        self.clock = Clock()
        self.hooks = Hooks()
        self.log = self.open(Retention())

    def open(self, retention: Retention) -> Any:
        if self.kind == "memory":
            return MemoryStreamLog(retention, self.clock)
        return FileStreamLog(self.directory, self.hooks, retention, self.clock).open()

    def append(self, *bodies: bytes) -> None:
        for body in bodies:
            self.log.append(ROUTE, b"header", body)

    def flush(self) -> None:
        self.hooks.flush()

    def bodies(self, offset: int = 0, limit: int = 1_000_000, cursor: Any = None) -> list[bytes]:
        cursor = cursor if cursor is not None else self.log.cursor()
        return [body for _, _, _, body in read_all(self.log, cursor, offset, limit)]


def read_all(log: StreamLog, cursor: Any, offset: int, limit: int) -> list[tuple[int, bytes, bytes, bytes]]:
    out = []
    while len(out) < limit:
        batch = log.read(cursor, offset, min(100, limit - len(out)))
        if not batch:
            break
        out.extend(batch)
        offset = batch[-1][0] + 1
    return out


@pytest.fixture(params=["file", "memory"])
def h(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Harness]:
    harness = Harness(request.param, tmp_path)
    yield harness
    if harness.kind == "file" and not harness.log.deleted:
        harness.flush()
        harness.log.close()


def bodies_n(n: int, start: int = 0) -> list[bytes]:
    return [b"m%05d" % i for i in range(start, start + n)]


# -- both logs -------------------------------------------------------------------------


def test_offsets_count_from_zero_and_reads_return_everything_in_order(h: Harness) -> None:
    h.append(*bodies_n(500))
    assert h.log.end == 500
    h.flush()
    assert h.log.written == 500
    records = read_all(h.log, h.log.cursor(), 0, 10_000)
    assert [r[0] for r in records] == list(range(500))
    assert [r[3] for r in records] == bodies_n(500)
    assert {r[1] for r in records} == {ROUTE} and {r[2] for r in records} == {b"header"}


def test_a_read_starts_anywhere_and_goes_on_where_it_stopped(h: Harness) -> None:
    h.append(*bodies_n(3000))
    h.flush()
    cursor = h.log.cursor()
    first = h.log.read(cursor, 1234, 10)
    assert [r[0] for r in first] == list(range(1234, 1244))
    assert [r[0] for r in h.log.read(cursor, 1244, 5)] == list(range(1244, 1249))
    assert [r[0] for r in h.log.read(cursor, 17, 3)] == [17, 18, 19]  # back again: a fresh seek


def test_nothing_unwritten_is_read(h: Harness) -> None:
    h.append(*bodies_n(3))
    h.flush()
    h.append(b"late")
    assert h.log.end == 4
    assert [b for b in h.bodies()] == (bodies_n(3) if h.kind == "file" else [*bodies_n(3), b"late"])


def test_offset_at_finds_the_first_message_at_or_after_a_time(h: Harness) -> None:
    for second in range(10):
        h.clock.now = 1_000_000.0 + second
        h.append(*bodies_n(300, second * 300))
        h.flush()
    assert h.log.offset_at(0) == 0
    assert h.log.offset_at(1_000_000_000 + 4_000) == 1200
    assert h.log.offset_at(1_000_000_000 + 4_001) == 1500
    assert h.log.offset_at(1_000_000_000 + 9_000) == 2700
    assert h.log.offset_at(1_000_000_000 + 9_001) == 3000  # none: the end


def test_a_clock_stepping_back_keeps_the_log_sorted_by_time(h: Harness) -> None:
    h.append(b"a")
    h.clock.now -= 10
    h.append(b"b")
    h.flush()
    assert h.log.offset_at(int(h.clock.now * 1000)) == 0


def test_retention_by_size_drops_whole_old_segments(h: Harness) -> None:
    size = record_size(ROUTE, b"header", b"m00000")
    h.log.set_retention(Retention(max_bytes=10 * size, segment_size=4 * size))
    for body in bodies_n(100):
        h.append(body)
        h.flush()  # one group per message: segments roll at their size
    assert h.log.end == 100
    assert h.log.first % 4 == 0 and 100 - 12 <= h.log.first <= 100 - 4  # whole segments of 4
    assert h.log.size <= 10 * size + 4 * size
    assert h.bodies() == bodies_n(100 - h.log.first, h.log.first)


def test_retention_by_age_drops_segments_whose_newest_message_is_too_old(h: Harness) -> None:
    size = record_size(ROUTE, b"header", b"m00000")
    h.log.set_retention(Retention(max_age_ms=1000, segment_size=4 * size))
    h.append(*bodies_n(20))
    h.flush()
    h.clock.now += 5
    h.append(*bodies_n(20, 20))
    h.flush()
    assert h.log.first == 20
    assert h.bodies() == bodies_n(20, 20)


def test_a_reader_behind_retention_goes_on_from_the_oldest_kept(h: Harness) -> None:
    size = record_size(ROUTE, b"header", b"m00000")
    h.log.set_retention(Retention(max_bytes=8 * size, segment_size=4 * size))
    h.append(*bodies_n(8))
    h.flush()
    cursor = h.log.cursor()
    assert [r[0] for r in h.log.read(cursor, 0, 2)] == [0, 1]
    for body in bodies_n(40, 8):
        h.append(body)
        h.flush()
    first = h.log.first
    assert first > 2
    assert h.log.read(cursor, 2, 1)[0][0] == first


def test_delete_removes_everything(h: Harness) -> None:
    h.append(*bodies_n(10))
    h.flush()
    h.log.delete()
    assert h.log.size == 0
    if h.kind == "file":
        assert not h.directory.exists()
        assert h.hooks.forgotten == [h.log]


def test_segments_to_drop_never_drops_the_last() -> None:
    rule = Retention(max_bytes=0, max_age_ms=0)
    assert segments_to_drop([(10, 0), (10, 0), (10, 0)], rule, 1_000) == 2
    assert segments_to_drop([(10, 0)], rule, 1_000) == 0
    assert segments_to_drop([(10, 5_000), (10, 9_000)], Retention(max_age_ms=2_000), 8_000) == 1


# -- the file log only -------------------------------------------------------------------


@pytest.fixture
def f(tmp_path: Path) -> Iterator[Harness]:
    harness = Harness("file", tmp_path)
    yield harness
    if not harness.log.deleted:
        harness.flush()
        harness.log.close()


def reopen(f: Harness, retention: Retention | None = None) -> Any:
    f.flush()
    f.log.close()
    f.log = f.open(retention or Retention())
    return f.log


def test_a_reopened_log_has_every_offset_and_timestamp(f: Harness) -> None:
    f.log.set_retention(Retention(segment_size=100_000))
    for second in range(4):
        f.clock.now = 1_000_000.0 + second
        f.append(*bodies_n(5000, second * 5000))
        f.flush()
    segments = len(list(f.directory.glob("*.seg")))
    assert segments > 2
    log = reopen(f, Retention(segment_size=100_000))
    assert (log.first, log.end, log.written) == (0, 20_000, 20_000)
    assert f.bodies() == bodies_n(20_000)
    assert log.offset_at(1_000_000_000 + 2_000) == 10_000
    f.append(b"after")
    f.flush()
    assert f.bodies(20_000) == [b"after"]


def test_the_index_stays_sparse(f: Harness) -> None:
    body = b"x" * 100
    f.append(*[body] * 20_000)
    f.flush()
    (segment,) = f.log._segments
    assert segment.size > 2_000_000
    assert len(segment.offsets) <= segment.size // sr.INDEX_BYTES + 1
    assert (f.directory / "00000000000000000000.idx").stat().st_size == len(segment.offsets) * sr.INDEX_ENTRY.size


def test_a_torn_tail_is_cut_off(f: Harness) -> None:
    f.append(*bodies_n(100))
    f.flush()
    path = next(f.directory.glob("*.seg"))
    with open(path, "ab") as out:
        out.write(sr.encode(100, 0, ROUTE, b"header", b"torn")[:-3])
    log = reopen(f)
    assert log.end == 100
    assert f.bodies() == bodies_n(100)
    assert log.stats["cut_bytes"] > 0


def test_a_lost_index_is_rebuilt(f: Harness) -> None:
    f.append(*[b"y" * 1000] * 500)
    f.flush()
    (f.directory / "00000000000000000000.idx").unlink()
    log = reopen(f)
    assert log.end == 500
    assert len(log._segments[0].offsets) > 1
    assert [r[0] for r in log.read(log.cursor(), 400, 2)] == [400, 401]


def test_an_index_ahead_of_the_data_is_trimmed(f: Harness) -> None:
    f.append(*[b"z" * 1000] * 300)
    f.flush()
    path = next(f.directory.glob("*.seg"))
    os.truncate(path, path.stat().st_size // 2)  # the data lost its second half, the index did not
    log = reopen(f)
    assert 100 < log.end < 200
    assert [r[0] for r in read_all(log, log.cursor(), 0, 1000)] == list(range(log.end))


def test_a_damaged_record_is_skipped_by_readers_and_recovery(f: Harness) -> None:
    f.append(*bodies_n(50))
    f.flush()
    path = next(f.directory.glob("*.seg"))
    data = bytearray(path.read_bytes())
    record = len(sr.encode(0, 0, ROUTE, b"header", b"m00000"))
    data[10 * record + 35] ^= 0xFF  # inside the body of offset 10
    path.write_bytes(bytes(data))
    log = reopen(f)
    assert log.end == 50
    read = read_all(log, log.cursor(), 0, 100)
    assert [r[0] for r in read] == [i for i in range(50) if i != 10]


def test_large_records_and_small_reads(f: Harness) -> None:
    big = os.urandom(3 * 1024 * 1024)
    f.append(b"a", big, b"b")
    f.flush()
    assert f.bodies() == [b"a", big, b"b"]
    log = reopen(f)
    assert [r[3] for r in read_all(log, log.cursor(), 1, 10)] == [big, b"b"]


def test_a_failed_write_keeps_the_records_pending(f: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    f.append(b"a")
    f.flush()
    f.append(b"b", b"c")
    real_write: Callable[[int, bytes], int] = os.write

    def full(fd: int, data: bytes) -> int:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "write", full)
    with pytest.raises(OSError):
        f.log.flush(set())
    monkeypatch.setattr(os, "write", real_write)
    assert f.log.written == 1
    f.log.flush(set())
    assert f.bodies() == [b"a", b"b", b"c"]
