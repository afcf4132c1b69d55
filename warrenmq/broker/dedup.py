"""Message deduplication, as LavinMQ (and the rabbitmq-message-deduplication plugin) offer it.

An exchange or queue declared with ``x-message-deduplication: true`` remembers the key of
each message it takes: the value of the header named by ``x-deduplication-header`` (by
default the header ``x-deduplication-header``), or else the message-id property.  A message
whose key it remembers is a duplicate and is dropped: an exchange routes it nowhere (it is
neither returned nor sent to the alternate exchange), a queue does not enqueue it; either way
the publisher's confirm is an ack.  At most ``x-cache-size`` keys are remembered (the oldest
is forgotten first, as LavinMQ), each for ``x-cache-ttl`` ms (or the message's own
``x-cache-ttl`` header), or until forgotten.  A message without a key is never a duplicate.

The cache of a durable object is journaled (written and fsynced with the message store's
group commit, so a confirm covers the entry) and replayed on restart; the journal is
rewritten once it holds twice the cache's entries.
"""

from __future__ import annotations

import math
import struct
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from warrenmq.amqp.frames import decode_properties
from warrenmq.amqp.values import INTEGER_TAGS

if TYPE_CHECKING:
    from warrenmq.broker.dedup_args import DedupSettings
    from warrenmq.broker.message import Message

_ENTRY = struct.Struct(">d")  # expiry (epoch seconds; inf: never), then the key's bytes


class DedupJournal(Protocol):
    def read(self) -> list[bytes]: ...

    def append(self, payload: bytes) -> None: ...

    def rewrite(self, payloads: list[bytes]) -> None: ...

    def delete(self) -> None: ...


def message_key(message: Message, header: str) -> tuple[str | None, int | None]:
    """(deduplication key, per-message cache TTL in ms) of a message."""
    properties = decode_properties(message.header)
    headers = properties.headers
    key: str | None = None
    ttl: int | None = None
    if headers:
        item = headers.get(header)
        if item is not None and item[0] != "V":
            value = item[1]
            key = value.decode(errors="replace") if isinstance(value, (bytes, bytearray)) else str(value)
        ttl_item = headers.get("x-cache-ttl")
        if ttl_item is not None and ttl_item[0] in INTEGER_TAGS and ttl_item[1] >= 0:
            ttl = int(ttl_item[1])
    if key is None and properties.message_id is not None:
        key = str(properties.message_id)
    return key, ttl


class DedupCache:
    def __init__(
        self,
        settings: DedupSettings,
        journal: DedupJournal | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self._journal = journal
        self._clock = clock
        self._entries: OrderedDict[str, float] = OrderedDict()  # key -> expiry (epoch s)
        self._journaled = 0
        self._last = (-1, False)  # (message seq, verdict): one publish routed for several keys
        if journal is not None:
            self._replay(journal)

    def __len__(self) -> int:
        return len(self._entries)

    def duplicate(self, message: Message) -> bool:
        """True when ``message`` is a duplicate (drop it); else its key is remembered now."""
        if self._last[0] == message.seq:
            return self._last[1]
        verdict = self._check(message)
        self._last = (message.seq, verdict)
        return verdict

    def _check(self, message: Message) -> bool:
        key, ttl = message_key(message, self.settings.header)
        if key is None:
            return False
        now = self._clock()
        entries = self._entries
        expires = entries.get(key)
        if expires is not None:
            if expires > now:
                return True
            del entries[key]
        ttl = ttl if ttl is not None else self.settings.ttl
        expires = now + ttl / 1000.0 if ttl else math.inf
        self._remember(key, expires)
        if self._journal is not None:
            self._journal.append(_ENTRY.pack(expires) + key.encode())
            self._journaled += 1
            if self._journaled > 2 * self.settings.cache_size + 64:
                self._compact()
        return False

    def _remember(self, key: str, expires: float) -> None:
        entries = self._entries
        entries.pop(key, None)
        while len(entries) >= self.settings.cache_size:
            entries.popitem(last=False)  # the oldest goes first
        entries[key] = expires

    def _replay(self, journal: DedupJournal) -> None:
        now = self._clock()
        records = journal.read()
        for payload in records:
            if len(payload) < _ENTRY.size:
                continue
            expires = _ENTRY.unpack_from(payload)[0]
            key = payload[_ENTRY.size :].decode(errors="replace")
            if expires > now:
                self._remember(key, expires)
            else:
                self._entries.pop(key, None)
        self._journaled = len(records)
        if self._journaled > len(self._entries) + 64:
            self._compact()

    def _compact(self) -> None:
        assert self._journal is not None
        self._journal.rewrite([_ENTRY.pack(e) + k.encode() for k, e in self._entries.items()])
        self._journaled = len(self._entries)

    def forget(self) -> None:
        """The object is gone: its cache and journal with it."""
        self._entries.clear()
        if self._journal is not None:
            self._journal.delete()


class _Dropped:
    """Where an exchange routes a duplicate: nowhere, yet not unroutable (no return, no
    alternate exchange), and the publisher's confirm is an ack."""

    __slots__ = ()
    name = ""
    durable = False
    congested = False
    gate = None  # a confirm waits for nothing (Queue.gate)

    def publish(self, message: Message) -> bool:
        return True


DROPPED: tuple[Any, ...] = (_Dropped(),)
