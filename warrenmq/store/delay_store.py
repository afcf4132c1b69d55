"""A delayed exchange's view of the file store (the broker model's ``DelayStorage``).

A persistent message held by a durable delayed exchange is one record of kind 3 in the
segments (with its due time), owned by the exchange's store id exactly as a queue owns its
messages: the record keeps its segment alive until ``settle`` acknowledges it, and recovery
hands the exchange its records back.  Anything else a delayed exchange holds beyond its
memory limit is written as a page-out copy, never recovered.
"""

from __future__ import annotations

from array import array
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from warrenmq.broker.message import Message
    from warrenmq.store.base import RecoveredQueue
    from warrenmq.store.file_store import FileQueueStore, FileStore, Staged


class FileDelayStore:
    def __init__(self, store: FileStore, handle: FileQueueStore | None, recovered: RecoveredQueue | None) -> None:
        self._store = store
        self._handle = handle
        self.durable = handle is not None
        self._recovered = recovered

    def recovered(self) -> tuple[array[int], array[int], array[int], array[int]] | None:
        """(seqs, locations, body sizes, due times) of the records found at recovery, once."""
        found, self._recovered = self._recovered, None
        if found is None or not len(found):
            return None
        return found.seqs, found.locations, found.sizes, found.dues

    def hold(self, message: Message, due: int) -> None:
        assert self._handle is not None
        self._store.append_delayed(self._handle, message, due)

    def settle(self, message: Message) -> None:
        if self._handle is not None:
            self._handle.ack(message)

    def stage(self, owner: Staged) -> None:
        self._store.stage(owner)

    def page_out(self, messages: list[Message]) -> None:
        self._store.page_out(messages)

    def release_paged(self, location: int) -> None:
        self._store.release_paged_at(location)

    def read(self, location: int) -> Message | None:
        """The message at ``location``, its place on disk kept (for ``settle``)."""
        return self._store.read_message(location)

    def delete(self) -> None:
        if self._handle is not None:
            self._handle.delete()
