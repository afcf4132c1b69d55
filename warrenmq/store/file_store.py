"""The embedded message store: append-only segment files with group commit.

Theory of operation.  Appends made during one event-loop turn are held in memory and, at
the end of the turn (``_commit``), written with ``os.writev`` to the current segment; one
fsync in a worker thread then makes the whole group durable, and everything that arrived
while it ran is covered by the next one.  A message published and acknowledged within the
same turn is never written at all.  Acknowledgements and "delivered" marks go to the ack
file of the message's segment without an fsync of their own: losing the last few after a
crash only means a redelivery, flagged redelivered.

Each segment counts its live (queue, message) references; a segment whose count reaches
zero is deleted with its ack file.  Recovery reads every segment once (checksums detect torn
or damaged records), drops what the ack files settled, and hands each durable queue its
messages in order.
"""

from __future__ import annotations

import concurrent.futures
import errno
import fcntl
import hashlib
import json
import logging
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from warrenmq.amqp.frames import peek_delivery
from warrenmq.broker.message import Message
from warrenmq.broker.paging import TailEntries
from warrenmq.store import records
from warrenmq.store.base import RecoveredQueue, Recovery, SyncWaiter
from warrenmq.store.journal import Journal
from warrenmq.store.stream_file import FileStreamLog

if TYPE_CHECKING:
    from warrenmq.broker.queue import Queue
    from warrenmq.store.delay_store import FileDelayStore

log = logging.getLogger("warrenmq.store")

_IOV_MAX = 1000
STREAM_SYNC_DELAY = 0.2  # s: stream writes nobody waits for are fsynced this long after
_OFFSET_MASK = (1 << 40) - 1


class StoreLocked(RuntimeError):
    pass


class Scheduler(Protocol):
    """The event loop's calls the store uses (an asyncio loop fits)."""

    def call_soon(self, callback: Callable[..., Any], *args: Any) -> Any: ...

    def call_soon_threadsafe(self, callback: Callable[..., Any], *args: Any) -> Any: ...

    def call_later(self, delay: float, callback: Callable[..., Any], *args: Any) -> Any: ...


class Staged(Protocol):
    """What waits for the end of a commit to learn where its messages went (paged backlogs,
    delayed exchanges)."""

    def flush_staging(self) -> None: ...


class Segment:
    __slots__ = ("ack_fd", "ack_path", "live", "number", "path", "size")

    def __init__(self, number: int, directory: Path) -> None:
        self.number = number
        self.path = directory / f"{number:08d}.seg"
        self.ack_path = directory / f"{number:08d}.ack"
        self.live = 0
        self.size = 0
        self.ack_fd = -1


class FileQueueStore:
    """A durable queue's handle: which of its messages live in which segment."""

    __slots__ = ("counts", "deleted", "key", "queue_id", "store")

    def __init__(self, store: FileStore, queue_id: int, key: tuple[str, ...]) -> None:
        self.store = store
        self.queue_id = queue_id
        self.key = key
        self.counts: dict[int, int] = {}
        self.deleted = False

    def append(self, message: Message) -> None:
        self.store.append(self, message)

    def ack(self, message: Message) -> None:
        self.store.ack(self, message)

    def delivered(self, message: Message) -> None:
        self.store.mark_delivered(self, message)

    def purge(self) -> None:
        pass  # the queue acknowledges each purged message

    def journal(self, kind: str) -> Journal:
        """A small durable file of this queue's (a deduplication cache)."""
        return self.store.journal(kind, *self.key)

    def delete(self) -> None:
        self.store.drop_queue(self)


class FileStore:
    def __init__(
        self,
        directory: str | Path,
        loop: Scheduler,
        segment_size: int = 64 * 1024 * 1024,
        fsync: bool = True,
    ) -> None:
        self.directory = Path(directory)
        self.messages_dir = self.directory / "msgs"
        self.definitions_path = self.directory / "definitions.json"
        self._loop = loop
        self._call_soon = loop.call_soon
        self._call_soon_threadsafe = loop.call_soon_threadsafe
        self.segment_size = segment_size
        self.fsync_enabled = fsync
        self.generation = 0  # the group being filled
        self.synced = -1  # the last group known durable
        self._written = -1  # the last group written (not yet necessarily synced)
        self._lock_fd = -1
        self._segments: dict[int, Segment] = {}
        self._current: Segment | None = None
        self._fd = -1
        self._pending: list[list[Any]] = []  # [seq, [(handle, message), ...]]
        self._pending_by_seq: dict[int, list[Any]] = {}
        self._acks: dict[int, list[bytes]] = {}
        self._late_marks: list[tuple[FileQueueStore, Message]] = []  # delivered before written
        self._staged: list[Staged] = []
        self._streams: dict[int, FileStreamLog] = {}  # by queue id
        self._staged_streams: list[FileStreamLog] = []  # with appends to write this turn
        self._read_fds: dict[int, int] = {}
        self._commit_scheduled = False
        self._retry_pending = False
        self._syncing = False
        self._dirty_fds: set[int] = set()
        self._closing_fds: list[int] = []
        self._waiters: set[SyncWaiter] = set()
        self._lazy_sync: Any = None  # the timer of a deferred fsync of stream writes
        self._closed = False
        self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="warren-fsync")
        self._journals: dict[str, Journal] = {}
        self._journals_dirty: list[Journal] = []
        # Store ids: a queue's key is (vhost, name), a delayed exchange's (vhost, name, "x").
        self._queue_ids: dict[tuple[str, ...], int] = {}
        self._pending_delayed: list[tuple[FileQueueStore, Message, int]] = []  # (handle, message, due)
        self._handles: dict[int, FileQueueStore] = {}
        self.next_queue_id = 1
        self._recovered_counts: dict[int, dict[int, int]] = {}
        self._recovered_delayed: dict[int, RecoveredQueue] = {}  # by delayed exchange id
        self._segment_ages: dict[int, float] = {}  # s since each segment was last written, at recovery
        self.on_disk_full: Callable[[bool], None] | None = None
        self.disk_full = False
        self.stats = {"dropped_records": 0, "truncated_bytes": 0}

    # -- opening ------------------------------------------------------------------------

    def lock(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / ".lock"
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            owner = os.pread(fd, 32, 0).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise StoreLocked(
                f"data directory {self.directory} is in use by another WarrenMQ server (pid {owner})"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._lock_fd = fd

    def open(self) -> Recovery:
        started = time.perf_counter()
        self.lock()
        self.messages_dir.mkdir(exist_ok=True)
        definitions = self._read_definitions()
        if definitions is not None:
            ids = definitions.get("warren", {})
            self.next_queue_id = int(ids.get("next_queue_id", 1))
            for entry in definitions.get("queues", []):
                if "warren_id" in entry:
                    self._queue_ids[(entry["vhost"], entry["name"])] = int(entry["warren_id"])
            for entry in definitions.get("exchanges", []):
                if "warren_id" in entry:
                    self._queue_ids[(entry["vhost"], entry["name"], "x")] = int(entry["warren_id"])
        known = set(self._queue_ids.values())
        self._remove_orphan_streams(known)
        recovered: dict[int, RecoveredQueue] = {qid: RecoveredQueue() for qid in known}
        numbers = sorted(int(p.stem) for p in self.messages_dir.glob("*.seg"))
        max_seq = 0
        dropped = truncated = 0
        now = time.time()
        for number in numbers:
            segment = Segment(number, self.messages_dir)
            self._segments[number] = segment
            # Read before recovery may cut a torn tail (which would touch it).
            self._segment_ages[number] = max(0.0, now - segment.path.stat().st_mtime)
            found_seq, d, t = self._recover_segment(segment, known, recovered, last=number == numbers[-1])
            max_seq = max(max_seq, found_seq)
            dropped += d
            truncated += t
        for number in numbers[:-1]:
            segment = self._segments[number]
            if segment.live == 0:
                self._delete_segment(segment)
        exchange_ids = {qid for key, qid in self._queue_ids.items() if len(key) == 3}
        self._recovered_delayed = {qid: recovered.pop(qid) for qid in exchange_ids if qid in recovered}
        self._open_current(numbers[-1] if numbers else 1)
        self.stats = {"dropped_records": dropped, "truncated_bytes": truncated}
        return Recovery(
            definitions=definitions,
            queues=recovered,
            max_seq=max_seq,
            dropped_records=dropped,
            truncated_bytes=truncated,
            seconds=time.perf_counter() - started,
        )

    def _recover_segment(
        self, segment: Segment, known: set[int], recovered: dict[int, RecoveredQueue], last: bool
    ) -> tuple[int, int, int]:
        settled: set[int] = set()  # (message id << 32 | queue id) acknowledged
        delivered: set[int] = set()
        dropped = truncated = 0
        if segment.ack_path.exists():
            data = segment.ack_path.read_bytes()
            entries, damaged = records.scan_acks(data)
            if damaged:
                log.warning("%s: %d damaged ack records skipped", segment.ack_path.name, damaged)
                dropped += damaged
            if len(data) % records.ACK_SIZE:
                os.truncate(segment.ack_path, len(data) - len(data) % records.ACK_SIZE)
            for qid, msg_id, is_delivery in entries:
                (delivered if is_delivery else settled).add(msg_id << 32 | qid)
        data = segment.path.read_bytes()
        index, result = records.scan_index(data)
        del data
        for offset, what in result.corrupt:
            log.warning("%s: damaged record at offset %d skipped (%s)", segment.path.name, offset, what)
            dropped += 1
        if result.torn_tail:
            log.warning(
                "%s: %d bytes at the tail are not a whole record (torn write); cut off",
                segment.path.name,
                result.torn_tail,
            )
            os.truncate(segment.path, result.good_end)
            truncated += result.torn_tail
        segment.size = result.good_end
        max_seq = 0
        base = segment.number << 40
        number = segment.number
        live = 0
        for offset, kind, msg_id, queue_ids, size, due in index:
            if msg_id > max_seq:
                max_seq = msg_id
            if kind == records.KIND_PAGED:
                continue  # a page-out copy: nothing to recover
            for qid in queue_ids:
                key = msg_id << 32 | qid
                if qid not in known or key in settled:
                    continue
                entry = recovered[qid]
                entry.seqs.append(msg_id)
                entry.locations.append(base | offset)
                entry.sizes.append(size)
                entry.returns.append(1 if key in delivered else 0)
                if kind == records.KIND_DELAYED:
                    entry.dues.append(due)
                live += 1
                counts = self._recovered_counts.setdefault(qid, {})
                counts[number] = counts.get(number, 0) + 1
        segment.live = live
        return max_seq, dropped, truncated

    def _open_current(self, number: int) -> None:
        segment = self._segments.get(number)
        if segment is None:
            segment = self._segments[number] = Segment(number, self.messages_dir)
        self._current = segment
        self._fd = os.open(segment.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        segment.size = os.fstat(self._fd).st_size

    def _read_definitions(self) -> dict[str, Any] | None:
        try:
            text = self.definitions_path.read_text()
        except FileNotFoundError:
            return None
        try:
            data: dict[str, Any] = json.loads(text)
        except json.JSONDecodeError as exc:
            backup = self.definitions_path.with_suffix(".json.bad")
            os.replace(self.definitions_path, backup)
            log.error("definitions file unreadable (%s); moved aside to %s", exc, backup.name)
            return None
        return data

    # -- definitions --------------------------------------------------------------------

    def queue_id(self, queue: Queue) -> int | None:
        return self._queue_ids.get((queue.vhost, queue.name))

    def queue_id_for(self, vhost: str, name: str) -> int | None:
        return self._queue_ids.get((vhost, name))

    def queue_names(self) -> dict[int, tuple[str, str]]:
        """Every queue id the store knows, with its queue's vhost and name."""
        return {qid: (key[0], key[1]) for key, qid in self._queue_ids.items() if len(key) == 2}

    def exchange_id(self, vhost: str, name: str) -> int | None:
        """The store id of a durable delayed exchange (it holds messages), if it has one."""
        return self._queue_ids.get((vhost, name, "x"))

    def delay_store(self, vhost: str, name: str, durable: bool) -> FileDelayStore:
        """A delayed exchange's view of the store: recoverable records when it is durable,
        page-out copies either way.  A recovered exchange finds its messages in ``recovered``."""
        from warrenmq.store.delay_store import FileDelayStore

        if not durable:
            return FileDelayStore(self, None, None)
        handle = self._handle((vhost, name, "x"))
        recovered = self._recovered_delayed.pop(handle.queue_id, None)
        return FileDelayStore(self, handle, recovered)

    def queue_store(self, queue: Queue) -> FileQueueStore:
        """The handle of a durable queue: its recovered id, or a new one."""
        return self._handle((queue.vhost, queue.name))

    def handle(self, vhost: str, name: str) -> FileQueueStore:
        """The handle of the durable queue ``vhost``/``name`` (a quorum queue's replica on a
        member that does not lead it is stored under its name too)."""
        return self._handle((vhost, name))

    def _handle(self, key: tuple[str, ...]) -> FileQueueStore:
        queue_id = self._queue_ids.get(key)
        if queue_id is None:
            queue_id = self.next_queue_id
            self.next_queue_id += 1
            self._queue_ids[key] = queue_id
        handle = FileQueueStore(self, queue_id, key)
        handle.counts = self._recovered_counts.pop(queue_id, {})
        self._handles[queue_id] = handle
        return handle

    def save_definitions(self, definitions: dict[str, Any]) -> None:
        """Write the definitions atomically and durably (temp file, fsync, rename)."""
        definitions = dict(definitions)
        definitions["warren"] = {"next_queue_id": self.next_queue_id}
        tmp = self.definitions_path.with_suffix(".json.tmp")
        data = json.dumps(definitions, indent=1, sort_keys=True).encode()
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, data)
            if self.fsync_enabled:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.definitions_path)
        if self.fsync_enabled:
            dir_fd = os.open(self.directory, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)

    # -- the hot path -------------------------------------------------------------------

    def append(self, handle: FileQueueStore, message: Message) -> None:
        seq = message.seq
        entry = self._pending_by_seq.get(seq)
        if entry is None:
            entry = [seq, [(handle, message)]]
            self._pending.append(entry)
            self._pending_by_seq[seq] = entry
            if not self._commit_scheduled:
                self._commit_scheduled = True
                self._call_soon(self._commit)
        else:
            entry[1].append((handle, message))  # the same message routed to another durable queue

    def append_delayed(self, handle: FileQueueStore, message: Message, due: int) -> None:
        """A persistent message a durable delayed exchange holds until ``due`` (epoch ms)."""
        self._pending_delayed.append((handle, message, due))
        if not self._commit_scheduled:
            self._commit_scheduled = True
            self._call_soon(self._commit)

    def ack(self, handle: FileQueueStore, message: Message) -> None:
        number = message.segment
        if number < 0:
            # Still in this turn's group: it need never be written for this queue.
            entry = self._pending_by_seq.get(message.seq)
            if entry is not None:
                entry[1] = [pair for pair in entry[1] if pair[1] is not message]
            elif self._pending_delayed:
                self._pending_delayed = [item for item in self._pending_delayed if item[1] is not message]
            return
        segment = self._segments.get(number)
        if segment is not None:
            self._ack_at(handle, message.seq, segment)

    def _ack_at(self, handle: FileQueueStore, seq: int, segment: Segment) -> None:
        if handle.deleted:
            return
        number = segment.number
        segment.live -= 1
        counts = handle.counts
        counts[number] = counts.get(number, 1) - 1
        if segment.live == 0 and segment is not self._current:
            self._acks.pop(number, None)
            self._delete_segment(segment)
            return
        pending = self._acks.get(number)
        if pending is None:
            pending = self._acks[number] = []
            if not self._commit_scheduled:
                self._commit_scheduled = True
                self._call_soon(self._commit)
        pending.append(records.encode_ack(handle.queue_id, seq))

    def ack_location(self, handle: FileQueueStore, seq: int, location: int) -> None:
        """Acknowledge a written message known only by its id and location."""
        segment = self._segments.get(location >> 40)
        if segment is not None:
            self._ack_at(handle, seq, segment)

    def read_at(self, location: int) -> records.MessageRecord | None:
        """The record written at ``location`` (segment << 40 | offset), read back."""
        number = location >> 40
        if number not in self._segments:
            return None
        fd = self._read_fd(number)
        offset = location & _OFFSET_MASK
        prefix = os.pread(fd, records.RECORD_PREFIX.size, offset)
        if len(prefix) < records.RECORD_PREFIX.size:
            return None
        _magic, size, _crc = records.RECORD_PREFIX.unpack(prefix)
        data = os.pread(fd, records.RECORD_PREFIX.size + size, offset)
        return records.read_record_at(data, 0)

    def mark_delivered(self, handle: FileQueueStore, message: Message) -> None:
        number = message.segment
        if number < 0:
            # Delivered before it was written (a consumer was waiting): mark it once it is, so
            # that a restart still flags it redelivered (unless it is acked first, and never written).
            self._late_marks.append((handle, message))
            return
        pending = self._acks.get(number)
        if pending is None:
            pending = self._acks[number] = []
            if not self._commit_scheduled:
                self._commit_scheduled = True
                self._call_soon(self._commit)
        pending.append(records.encode_ack(handle.queue_id, message.seq, delivered=True))

    def _mark_late(self) -> None:
        marks, self._late_marks = self._late_marks, []
        for handle, message in marks:
            if message.segment >= 0 and message.stored and not handle.deleted:
                self.mark_delivered(handle, message)

    def drop_queue(self, handle: FileQueueStore) -> None:
        """A durable queue was deleted: its messages no longer keep segments alive."""
        handle.deleted = True
        for entry in self._pending:
            entry[1] = [pair for pair in entry[1] if pair[0] is not handle]
        self._pending_delayed = [item for item in self._pending_delayed if item[0] is not handle]
        for number, count in handle.counts.items():
            segment = self._segments.get(number)
            if segment is None:
                continue
            segment.live -= count
            if segment.live <= 0 and segment is not self._current:
                self._acks.pop(number, None)
                self._delete_segment(segment)
        handle.counts.clear()
        self._handles.pop(handle.queue_id, None)
        if self._queue_ids.get(handle.key) == handle.queue_id:
            del self._queue_ids[handle.key]

    # -- group commit -------------------------------------------------------------------

    def _commit(self) -> None:
        self._commit_scheduled = False
        try:
            wrote = self._write_messages()
            if self._late_marks:
                self._mark_late()
            while self._staged:
                backlog = self._staged[-1]
                backlog.flush_staging()  # raises on a full disk: it stays staged for the retry
                self._staged.pop()
            streams_wrote = False
            while self._staged_streams:
                # As the backlogs: a log whose write fails stays staged for the retry.
                streams_wrote = self._staged_streams[-1].flush(self._dirty_fds) or streams_wrote
                self._staged_streams.pop()
            self._write_acks()
            self._write_journals()
        except OSError as exc:
            self._write_failed(exc)
            return
        if self.disk_full:
            self.disk_full = False
            if self.on_disk_full is not None:
                self.on_disk_full(False)
        generation = self.generation
        self.generation += 1
        self._written = generation
        if streams_wrote and not wrote and not self._waiters:
            # Stream appends no confirm or commit waits for: written to the OS already (a
            # crash of this process loses none of them), fsynced within STREAM_SYNC_DELAY
            # or as soon as someone waits, instead of an fsync per loop turn.
            if not self._syncing and self._lazy_sync is None:
                self._lazy_sync = self._loop.call_later(STREAM_SYNC_DELAY, self._sync_streams)
            return
        wrote = wrote or streams_wrote
        if not wrote and not self._syncing and self.synced < generation:
            # Nothing new to make durable: the group is as durable as the last one.
            if self._dirty_fds:
                self._start_sync()
            else:
                self._finish_sync(generation)
            return
        if not self._syncing:
            self._start_sync()

    def _write_messages(self) -> bool:
        pending = self._pending
        if not pending and not self._pending_delayed:
            return False
        assert self._current is not None
        pieces: list[bytes] = []
        placed: list[tuple[FileQueueStore, Message, int]] = []
        segment = self._current
        number = segment.number
        offset = segment.size
        for _seq, pairs in pending:
            if not pairs:
                continue
            message = pairs[0][1]
            record = records.encode_message(
                message.seq, [h.queue_id for h, _ in pairs], message.route_raw, message.header, message.body
            )
            pieces.extend(record)
            for handle, copy in pairs:
                placed.append((handle, copy, offset))
            offset += len(record[0]) + len(record[1]) + len(record[2]) + len(record[3])
        for handle, message, due in self._pending_delayed:
            record = records.encode_message(
                message.seq,
                [handle.queue_id],
                message.route_raw,
                message.header,
                message.body,
                records.KIND_DELAYED,
                due,
            )
            pieces.extend(record)
            placed.append((handle, message, offset))
            offset += len(record[0]) + len(record[1]) + len(record[2]) + len(record[3])
        if pieces:
            # On failure (a full disk) this raises with nothing written and everything still
            # pending: no message is confirmed that is not on disk.
            self._writev(pieces)
            for handle, copy, at in placed:
                copy.segment = number
                copy.offset = at
                counts = handle.counts
                counts[number] = counts.get(number, 0) + 1
            segment.size = offset
            segment.live += len(placed)
            self._dirty_fds.add(self._fd)
        self._pending = []
        self._pending_by_seq = {}
        self._pending_delayed = []
        if segment.size >= self.segment_size:
            self._roll_over()
        return bool(pieces)

    def _writev(self, pieces: list[bytes]) -> None:
        fd = self._fd
        assert self._current is not None
        start = self._current.size
        try:
            for i in range(0, len(pieces), _IOV_MAX):
                batch = pieces[i : i + _IOV_MAX]
                total = sum(len(p) for p in batch)
                written = os.writev(fd, batch)
                while written < total:  # short write: finish it
                    joined = b"".join(batch)[written:]
                    written += os.write(fd, joined)
        except OSError:
            os.ftruncate(fd, start)  # never leave half a group behind
            raise

    def _write_acks(self) -> None:
        acks = self._acks
        for number in list(acks):
            segment = self._segments.get(number)
            if segment is not None:
                if segment.ack_fd < 0:
                    segment.ack_fd = os.open(segment.ack_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
                data = b"".join(acks[number])
                written = os.write(segment.ack_fd, data)
                if written != len(data):  # short write: keep the rest, whole records only
                    keep = written - written % records.ACK_SIZE
                    os.ftruncate(segment.ack_fd, os.fstat(segment.ack_fd).st_size - (written - keep))
                    acks[number] = [data[keep:]]
                    raise OSError(28, "short write to an ack file")
            del acks[number]

    def _write_journals(self) -> None:
        while self._journals_dirty:
            fd = self._journals_dirty[-1].flush()  # raises on a full disk: it stays dirty
            self._journals_dirty.pop()
            if fd >= 0:
                self._dirty_fds.add(fd)

    def journal(self, kind: str, *key: str) -> Journal:
        """The journal of a durable object (``kind``: what it keeps; ``key``: whose), in
        ``<data dir>/<kind>/``; its appends are written and fsynced with the group."""
        name = hashlib.sha1("\0".join(key).encode()).hexdigest()[:20]
        path = self.directory / kind / f"{name}.log"
        journal = self._journals.get(str(path))
        if journal is None:
            journal = self._journals[str(path)] = Journal(path, self._journal_appended, self.fsync_enabled)
        return journal

    def _journal_appended(self, journal: Journal) -> None:
        self._journals_dirty.append(journal)
        if not self._commit_scheduled:
            self._commit_scheduled = True
            self._call_soon(self._commit)

    def _write_failed(self, exc: OSError) -> None:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            if not self.disk_full:
                log.error("disk full: publishing blocked until space is freed")
                self.disk_full = True
                if self.on_disk_full is not None:
                    self.on_disk_full(True)
        else:
            log.error("message store write failed: %s; retrying", exc)
        # Keep everything pending (nothing is confirmed) and try again shortly.
        if not self._retry_pending:
            self._retry_pending = True
            self._loop.call_later(1.0, self._retry_commit)

    def _retry_commit(self) -> None:
        self._retry_pending = False
        if not self._commit_scheduled:
            self._commit_scheduled = True
            self._commit()

    def _roll_over(self) -> None:
        assert self._current is not None
        old = self._current
        self._closing_fds.append(self._fd)
        self._open_current(old.number + 1)
        if old.live == 0:
            self._delete_segment(old)

    def _start_sync(self) -> None:
        if self._closed:
            return  # close() fsyncs what is left itself
        self._syncing = True
        generation = self._written
        fds = list(self._dirty_fds)
        self._dirty_fds.clear()
        closing, self._closing_fds = self._closing_fds, []
        future = self._executor.submit(_fsync_all, fds if self.fsync_enabled else [], closing)
        future.add_done_callback(lambda f: self._call_soon_threadsafe(self._sync_done, generation, f))

    def _sync_done(self, generation: int, future: concurrent.futures.Future[None]) -> None:
        self._syncing = False
        error = future.exception()
        if error is not None:
            log.error("fsync failed: %s; confirms held back, retrying", error)
            self._dirty_fds.add(self._fd)
            self._loop.call_later(1.0, self._start_sync_if_needed)
            return
        self._finish_sync(generation)
        if self._written > generation:
            self._start_sync()

    def _sync_streams(self) -> None:
        self._lazy_sync = None
        if not self._syncing and self._dirty_fds:
            self._start_sync()

    def _start_sync_if_needed(self) -> None:
        if not self._syncing:
            self._start_sync()

    def _finish_sync(self, generation: int) -> None:
        if generation > self.synced:
            self.synced = generation
        waiters, self._waiters = self._waiters, set()
        for waiter in waiters:
            waiter.on_synced(self.synced)

    def has_pending(self) -> bool:
        return bool(self._pending or self._pending_delayed) or self._syncing or self._written > self.synced

    def wait_for_sync(self, waiter: SyncWaiter) -> None:
        self._waiters.add(waiter)
        if not self._commit_scheduled and not self._syncing:
            self._commit_scheduled = True
            self._call_soon(self._commit)

    # -- paging -------------------------------------------------------------------------

    def stage(self, backlog: Staged) -> None:
        """Call ``backlog.flush_staging()`` when this turn's group is written (its messages
        then have their places on disk)."""
        self._staged.append(backlog)
        if not self._commit_scheduled:
            self._commit_scheduled = True
            self._call_soon(self._commit)

    def page_out(self, messages: list[Message]) -> None:
        """Write copies of messages that are not in the store, so that they can leave memory.

        These records are never recovered; they live until read back or released.
        """
        if not messages:
            return
        assert self._current is not None
        segment = self._current
        number = segment.number
        offset = segment.size
        pieces: list[bytes] = []
        for message in messages:
            record = records.encode_message(
                message.seq, [], message.route_raw, message.header, message.body, records.KIND_PAGED
            )
            pieces.extend(record)
            message.segment = number
            message.offset = offset
            offset += len(record[0]) + len(record[1]) + len(record[2]) + len(record[3])
        self._writev(pieces)
        segment.size = offset
        segment.live += len(messages)
        if segment.size >= self.segment_size:
            self._roll_over()

    def read_record(self, location: int) -> records.MessageRecord | None:
        """The record at ``location`` (segment << 40 | offset), read with two preads; None
        when it is gone or damaged.  Nothing is released: peeking and delayed delivery."""
        number = location >> 40
        if number not in self._segments:
            return None
        offset = location & _OFFSET_MASK
        fd = self._read_fd(number)
        prefix = os.pread(fd, records.RECORD_PREFIX.size, offset)
        if len(prefix) < records.RECORD_PREFIX.size:
            return None
        _magic, size, _crc = records.RECORD_PREFIX.unpack(prefix)
        data = os.pread(fd, records.RECORD_PREFIX.size + size, offset)
        return records.read_record_at(data, 0)

    def read_message(self, location: int) -> Message | None:
        """The message recorded at ``location``, rebuilt with its place on disk (its
        per-queue state left fresh); None when unreadable.  Nothing is released."""
        record = self.read_record(location)
        if record is None:
            return None
        exchange, routing_key = _split_route(record.route)
        mode, priority, expiration = peek_delivery(record.header)
        message = Message(record.msg_id, exchange, routing_key, record.route, record.header, record.body, mode == 2)
        message.priority, message.expiration = priority, expiration
        message.segment = location >> 40
        message.offset = location & _OFFSET_MASK
        return message

    def release_paged_at(self, location: int) -> None:
        """A page-out copy is no longer needed."""
        segment = self._segments.get(location >> 40)
        if segment is not None:
            self._release_paged(segment)

    def _read_fd(self, number: int) -> int:
        fd = self._read_fds.get(number)
        if fd is None:
            segment = self._segments[number]
            fd = self._read_fds[number] = os.open(segment.path, os.O_RDONLY)
        return fd

    def written_age(self, segment: int) -> float:
        """How long before the recovery ``segment`` was last written (0: unknown, or newer).
        Expiry deadlines are not stored; a recovered message's TTL counts from this, so that
        the time the node was down counts too, as in RabbitMQ (at worst it expires late, as
        if published when its segment was last written, never early)."""
        return self._segment_ages.get(segment, 0.0)

    def page_in(self, tail: TailEntries, count: int, queue: object) -> list[Message]:
        """Read ``count`` tail entries back, one read per run of entries in one segment."""
        start = tail.start
        stop = start + count
        out: list[Message] = []
        locations = tail.locations
        i = start
        while i < stop:
            number = locations[i] >> 40
            j = i
            while j + 1 < stop and locations[j + 1] >> 40 == number:
                j += 1
            first = locations[i] & _OFFSET_MASK
            last = locations[j] & _OFFSET_MASK
            fd = self._read_fd(number)
            prefix = os.pread(fd, records.RECORD_PREFIX.size, last)
            _magic, size, _crc = records.RECORD_PREFIX.unpack(prefix)
            data = os.pread(fd, last - first + records.RECORD_PREFIX.size + size, first)
            segment = self._segments[number]
            for k in range(i, j + 1):
                offset = locations[k] & _OFFSET_MASK
                record = records.read_record_at(data, offset - first)
                if record is None:
                    log.error("%s: unreadable record at offset %d; message dropped", segment.path.name, offset)
                    self._release_entry(tail, k, queue)
                    continue
                exchange, routing_key = _split_route(record.route)
                persistent = tail.persistent[k] == 1
                message = Message(record.msg_id, exchange, routing_key, record.route, record.header, record.body, False)
                mode, message.priority, message.expiration = peek_delivery(record.header)
                message.persistent = mode == 2
                message.returns = tail.returns[k]
                message.expires_at = tail.deadlines[k]
                message.queue = queue  # type: ignore[assignment]
                if persistent:
                    message.stored = True
                    message.segment = number
                    message.offset = offset
                else:
                    self._release_paged(segment)
                out.append(message)
            i = j + 1
        return out

    def release(self, tail: TailEntries, start: int, stop: int, queue: object) -> None:
        for k in range(start, stop):
            self._release_entry(tail, k, queue)

    def _release_entry(self, tail: TailEntries, k: int, queue: object) -> None:
        number = tail.locations[k] >> 40
        segment = self._segments.get(number)
        if segment is None:
            return
        if tail.persistent[k]:
            handle = getattr(queue, "store", None)
            if isinstance(handle, FileQueueStore):
                self._ack_at(handle, tail.seqs[k], segment)
            elif handle is not None and hasattr(handle, "released"):
                handle.released(tail.seqs[k], tail.locations[k])  # a wrapped handle (a quorum leader's)
        else:
            self._release_paged(segment)

    def _release_paged(self, segment: Segment) -> None:
        segment.live -= 1
        if segment.live == 0 and segment is not self._current:
            self._acks.pop(segment.number, None)
            self._delete_segment(segment)

    # -- streams --------------------------------------------------------------------------

    def stream_log(self, queue: Queue) -> FileStreamLog:
        """The log of a stream queue: its own segment files under ``streams/<queue id>``,
        recovered if they are there (docs/storage.md says why a stream has its own)."""
        key = (queue.vhost, queue.name)
        queue_id = self._queue_ids.get(key)
        if queue_id is None:
            queue_id = self.next_queue_id
            self.next_queue_id += 1
            self._queue_ids[key] = queue_id
        stream = FileStreamLog(self.directory / "streams" / str(queue_id), self).open()
        stream.queue_id = queue_id
        stream.key = key
        self._streams[queue_id] = stream
        return stream

    def stage_stream(self, stream_log: FileStreamLog) -> None:
        self._staged_streams.append(stream_log)
        if not self._commit_scheduled:
            self._commit_scheduled = True
            self._call_soon(self._commit)

    def close_later(self, fd: int) -> None:
        """A stream's file it no longer writes: fsynced with the next group, then closed
        (by the fsync thread, so that no fsync in flight sees the number reused)."""
        self._closing_fds.append(fd)
        self._dirty_fds.discard(fd)

    def forget_stream(self, stream_log: FileStreamLog) -> None:
        """A deleted stream: its id is free of it."""
        self._streams.pop(stream_log.queue_id, None)
        if self._queue_ids.get(stream_log.key) == stream_log.queue_id:
            del self._queue_ids[stream_log.key]

    def _remove_orphan_streams(self, known: set[int]) -> None:
        """Stream directories no queue in the definitions owns (a crash between creating a
        stream and saving the definitions): their ids may be handed out again."""
        root = self.directory / "streams"
        if not root.is_dir():
            return
        for path in root.iterdir():
            if not path.name.isdigit() or int(path.name) not in known:
                log.warning("removing %s: no stream queue owns it", path)
                shutil.rmtree(path, ignore_errors=True)

    # -- housekeeping -------------------------------------------------------------------

    def _delete_segment(self, segment: Segment) -> None:
        if segment.ack_fd >= 0:
            os.close(segment.ack_fd)
            segment.ack_fd = -1
        read_fd = self._read_fds.pop(segment.number, None)
        if read_fd is not None:
            os.close(read_fd)
        for path in (segment.path, segment.ack_path):
            try:
                path.unlink()
            except FileNotFoundError:
                pass
        self._segments.pop(segment.number, None)

    def segment_count(self) -> int:
        return len(self._segments)

    def disk_usage(self) -> int:
        total = 0
        for segment in self._segments.values():
            total += segment.size
        return total + sum(stream.size for stream in self._streams.values())

    def close(self) -> None:
        """Write what is pending, fsync everything, release the lock."""
        if self._commit_scheduled or self._pending or self._acks or self._journals_dirty or self._staged_streams:
            try:
                self._write_messages()
                for stream in self._staged_streams:
                    stream.flush(self._dirty_fds)
                self._staged_streams.clear()
                self._write_acks()
                self._write_journals()
            except OSError as exc:
                log.error("could not write pending messages at shutdown: %s", exc)
        if self._lazy_sync is not None:
            self._lazy_sync.cancel()  # close fsyncs everything itself
            self._lazy_sync = None
        self._closed = True
        self._executor.shutdown(wait=True)
        for stream in self._streams.values():
            try:
                stream.close()
            except OSError as exc:
                log.error("could not close stream %s: %s", stream.directory, exc)
        fds = [self._fd, *self._closing_fds] + [s.ack_fd for s in self._segments.values() if s.ack_fd >= 0]
        fds += [j.fd for j in self._journals.values() if j.fd >= 0]
        for fd in fds:
            if fd >= 0:
                try:
                    if self.fsync_enabled:
                        os.fsync(fd)
                    os.close(fd)
                except OSError:
                    pass
        self._fd = -1
        for segment in self._segments.values():
            segment.ack_fd = -1
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1


def _fsync_all(fds: list[int], closing: list[int]) -> None:
    for fd in fds:
        os.fsync(fd)
    for fd in closing:
        os.fsync(fd)
        os.close(fd)


def _seq(message: Message) -> int:
    return message.seq


def _split_route(route: bytes) -> tuple[str, str]:
    n = route[0]
    exchange = route[1 : 1 + n].decode()
    m = route[1 + n]
    return exchange, route[2 + n : 2 + n + m].decode()
