"""Quorum queues: the leader's entries replicated to the queue's members, confirms by majority.

Theory of operation.  A quorum queue led here is a plain broker ``Queue`` whose store handle
is a ``LeaderLog``: the queue calls it for every message it takes (quorum queues keep every
message, as RabbitMQ's do) and every message that leaves it, and the log numbers the
message (its *entry id*), writes it to the local store and streams it to the members
(REPL_APPEND with a stream index; removals as REPL_SETTLE).  A member (``Replica``) writes
what it receives to its own store and, once fsynced, acknowledges the stream index
(REPL_ACK).  A publisher confirm waits for the local fsync (as for any persistent message)
and, through the log's gate, for as many members' acks as make a majority with the leader.

Entry ids are ``1 << 63 | epoch << 32 | counter`` where the epoch is the etcd revision at
which this leader's term began: unique in the cluster, so a member's store can hold the
entries of many queues and leaders.

A member that joins (after a restart, a broken link, or a new leader) gets REPL_SYNC: the
leader's live entry ids in order and the stream index they reach.  It drops what it holds
beyond them, asks for what it lacks (REPL_FETCH) and acknowledges only once it has it all.
A member acknowledges nothing from a leader of an older epoch, and the leader counts no ack
of another epoch.  Settlements a member misses cost a redelivery, never a loss: a member
that takes over marks every message it holds redelivered.
"""

from __future__ import annotations

import logging
from collections import deque
from typing import TYPE_CHECKING, Any

from warrenmq.broker.message import Message
from warrenmq.cluster import wire
from warrenmq.cluster.peer_link import ConfirmTarget, PeerLink, split_route
from warrenmq.store.base import RecoveredQueue

if TYPE_CHECKING:
    from warrenmq.cluster.cluster import Cluster
    from warrenmq.cluster.serving import PeerSession

log = logging.getLogger("warrenmq.cluster.replication")

ENTRY_FLAG = 1 << 63
_COUNTER = (1 << 32) - 1

Entry = Message | tuple[int, int, int] | None  # in memory; (location, size, returns) once written; None: fetching


def entry_id(epoch: int, counter: int) -> int:
    return ENTRY_FLAG | (epoch & 0x7FFF_FFFF) << 32 | (counter & _COUNTER)


def location_of(message: Message) -> int:
    return message.segment << 40 | message.offset


class EntryLog:
    """One member's live entries of a quorum queue, in queue order, with where they are."""

    def __init__(self, cluster: Cluster, handle: Any) -> None:
        self.cluster = cluster
        self.handle = handle  # the store's handle for the queue's name
        self.entries: dict[int, Entry] = {}
        self.unwritten: list[Message] = []

    @classmethod
    def recovered(cls, cluster: Cluster, handle: Any, found: RecoveredQueue | None) -> EntryLog:
        entry_log = cls(cluster, handle)
        if found is not None:
            entries = entry_log.entries
            for seq, location, size, returns in zip(
                found.seqs, found.locations, found.sizes, found.returns, strict=True
            ):
                entries[seq] = (location, size, returns)
        return entry_log

    def add(self, message: Message) -> None:
        self.entries[message.seq] = message
        self.unwritten.append(message)

    def compact(self) -> None:
        """Written messages leave memory: only where they are is kept."""
        keep = []
        entries = self.entries
        for message in self.unwritten:
            if entries.get(message.seq) is not message:
                continue
            if message.segment >= 0:
                entries[message.seq] = (location_of(message), len(message.body), message.returns)
            else:
                keep.append(message)
        self.unwritten = keep

    def drop(self, seq: int) -> None:
        """Remove an entry and its store record."""
        entry = self.entries.pop(seq, None)
        if isinstance(entry, Message):
            self.handle.ack(entry)
        elif entry is not None:
            store = self.cluster.node.store
            ack_location = getattr(store, "ack_location", None)
            if ack_location is not None:
                ack_location(self.handle, seq, entry[0])

    def content(self, seq: int) -> tuple[int, bytes, bytes, bytes] | None:
        """(returns, route, header, body) of a live entry."""
        entry = self.entries.get(seq)
        if isinstance(entry, Message):
            return entry.returns, entry.route_raw, entry.header, entry.body
        if entry is None:
            return None
        read_at = getattr(self.cluster.node.store, "read_at", None)
        record = read_at(entry[0]) if read_at is not None else None
        if record is None:
            return None
        return entry[2], record.route, record.header, record.body

    def max_id(self) -> int:
        return max(self.entries, default=0)

    def arrays(self, redelivered: bool) -> RecoveredQueue:
        """The written entries as the pager restores them (every one flagged redelivered on a
        takeover: the old leader may have delivered any of them)."""
        found = RecoveredQueue()
        bump = 1 if redelivered else 0
        for seq, entry in self.entries.items():
            if isinstance(entry, tuple):
                found.seqs.append(seq)
                found.locations.append(entry[0])
                found.sizes.append(entry[1])
                found.returns.append(min(entry[2] + bump, 0xFFFF))
        return found

    def in_memory(self, redelivered: bool) -> list[Message]:
        """Entries not written (a store without disk): as messages."""
        out = []
        for entry in self.entries.values():
            if isinstance(entry, Message):
                if redelivered:
                    entry.returns += 1
                out.append(entry)
        return out


class _Follower:
    __slots__ = ("acked", "link", "synced")

    def __init__(self) -> None:
        self.acked = 0  # stream index it has on disk
        self.synced = False  # REPL_SYNC sent on the current link
        self.link: PeerLink | None = None


class LeaderLog:
    """The store handle of a quorum queue led here (the broker model's QueueStore)."""

    def __init__(self, cluster: Cluster, key: bytes, epoch: int, members: list[str], entry_log: EntryLog) -> None:
        self.cluster = cluster
        self.key = key
        self.epoch = epoch
        self.members = members
        self.log = entry_log
        self.handle = entry_log.handle
        prefix = ENTRY_FLAG | (epoch & 0x7FFF_FFFF) << 32
        self.counter = max((s & _COUNTER for s in entry_log.entries if s & ~_COUNTER == prefix), default=0)
        self.stream = 0
        me = cluster.node_name
        self.followers = {m: _Follower() for m in members if m != me}
        self.majority = len(members) // 2 + 1
        self.waiting: deque[tuple[int, ConfirmTarget, int]] = deque()
        self._settled: list[int] = []
        self._settle_scheduled = False
        self.active = True

    # -- QueueStore ------------------------------------------------------------------------

    def append(self, message: Message) -> None:
        self.counter += 1
        seq = message.seq = entry_id(self.epoch, self.counter)
        self.handle.append(message)
        self.log.add(message)
        self.stream += 1
        if self.followers:
            frame = wire.repl_append(
                self.key, self.epoch, self.stream, seq, message.returns, message.route_raw, message.header, message.body
            )
            for follower in self.followers.values():
                if follower.synced and follower.link is not None:
                    follower.link.send_pieces(frame)
        self.cluster.replication.compact_later(self.log)

    def ack(self, message: Message) -> None:
        self.handle.ack(message)
        if self.log.entries.pop(message.seq, None) is not None:
            self._settle(message.seq)

    def released(self, seq: int, location: int) -> None:
        """A paged entry left the queue unread (purge, expiry)."""
        self.log.drop(seq)
        self._settle(seq)

    def delivered(self, message: Message) -> None:
        self.handle.delivered(message)

    def purge(self) -> None:
        pass  # each purged message comes through ack/released

    def delete(self) -> None:
        self.active = False
        self.handle.delete()
        self.fail_waiters()
        self.cluster.replication.leaders.pop(self.key, None)

    def _settle(self, seq: int) -> None:
        if not self.followers:
            return
        self._settled.append(seq)
        if not self._settle_scheduled:
            self._settle_scheduled = True
            self.cluster.loop.call_soon(self._send_settles)

    def _send_settles(self) -> None:
        self._settle_scheduled = False
        ids, self._settled = self._settled, []
        if not ids or not self.active:
            return
        frame = wire.repl_ids(wire.REPL_SETTLE, self.key, self.epoch, ids)
        for follower in self.followers.values():
            if follower.synced and follower.link is not None:
                follower.link.send_pieces(frame)

    # -- the confirm gate --------------------------------------------------------------------

    def track(self, target: ConfirmTarget, token: int) -> None:
        """A confirm of the entry just appended waits for a majority of members."""
        if self.majority <= 1:
            return
        target.confirm_hold(token)
        self.waiting.append((self.stream, target, token))

    def on_ack(self, node: str, epoch: int, index: int) -> None:
        follower = self.followers.get(node)
        if follower is None or epoch != self.epoch or not follower.synced:
            return
        if index > follower.acked:
            follower.acked = index
            self._release()

    def _release(self) -> None:
        need = self.majority - 1
        acked = sorted((f.acked for f in self.followers.values()), reverse=True)
        if len(acked) < need:
            return
        threshold = acked[need - 1]
        waiting = self.waiting
        while waiting and waiting[0][0] <= threshold:
            _, target, token = waiting.popleft()
            target.confirm_release(token, True)

    def fail_waiters(self) -> None:
        waiting, self.waiting = self.waiting, deque()
        for _, target, token in waiting:
            target.confirm_release(token, False)

    # -- members joining -------------------------------------------------------------------

    def follower_up(self, node: str, link: PeerLink) -> None:
        follower = self.followers.get(node)
        if follower is None or not self.active:
            return
        follower.link = link
        follower.synced = True
        follower.acked = 0  # counts again once it has caught up with this sync
        ids = [self.stream, *self.log.entries]
        link.send_pieces(wire.repl_ids(wire.REPL_SYNC, self.key, self.epoch, ids))

    def follower_down(self, node: str) -> None:
        follower = self.followers.get(node)
        if follower is not None:
            follower.synced = False
            follower.link = None

    def on_fetch(self, node: str, ids: list[int]) -> None:
        follower = self.followers.get(node)
        if follower is None or follower.link is None:
            return
        if not ids:  # a member that did not know the queue yet asks to be synced
            self.follower_up(node, follower.link)
            return
        for seq in ids:
            content = self.log.content(seq)
            if content is None:
                continue  # gone meanwhile: its settle follows
            returns, route, header, body = content
            follower.link.send_pieces(wire.repl_append(self.key, self.epoch, 0, seq, returns, route, header, body))


class Replica:
    """A member's copy of a quorum queue led elsewhere."""

    def __init__(self, cluster: Cluster, key: bytes, entry_log: EntryLog) -> None:
        self.cluster = cluster
        self.key = key
        self.log = entry_log
        self.epoch = 0
        self.received = 0  # stream index of the last append taken
        self.acked = 0
        self.missing: set[int] = set()
        self.session: PeerSession | None = None
        self._unsynced: deque[tuple[int, int]] = deque()  # (stream index, store generation)

    def _take(self, session: PeerSession, epoch: int) -> bool:
        if epoch < self.epoch:
            return False  # an older leader's: fenced
        if epoch > self.epoch or self.session is not session:
            self.epoch = epoch
            self.session = session
        return True

    def on_append(
        self,
        session: PeerSession,
        epoch: int,
        index: int,
        entry: int,
        returns: int,
        content: tuple[bytes, bytes, bytes],
    ) -> None:
        if not self._take(session, epoch):
            return
        route, header, body = content
        exchange, routing_key = split_route(route)
        message = Message(entry, exchange, routing_key, route, header, body, True)
        message.returns = returns
        message.stored = True
        entries = self.log.entries
        if index == 0:  # a fetched entry: it fills its place
            if entry not in self.missing:
                return
            self.missing.discard(entry)
        elif entry in entries:
            return
        else:
            self.received = index
        self.log.handle.append(message)
        self.log.add(message)
        store = self.cluster.node.store
        self._unsynced.append((self.received, store.generation))
        store.wait_for_sync(self)

    def on_settle(self, session: PeerSession, epoch: int, ids: list[int]) -> None:
        if not self._take(session, epoch):
            return
        for seq in ids:
            self.missing.discard(seq)
            self.log.drop(seq)

    def on_sync(self, session: PeerSession, epoch: int, ids: list[int]) -> None:
        if not ids or not self._take(session, epoch):
            return
        stream, live = ids[0], ids[1:]
        old = self.log.entries
        new: dict[int, Entry] = {}
        for seq in live:
            new[seq] = old.pop(seq, None)
        self.log.entries = old
        for seq in list(old):
            self.log.drop(seq)  # the leader has no such entry: it is not ours either
        self.log.entries = new
        self.missing = {seq for seq, entry in new.items() if entry is None}
        self.received = stream
        self.acked = 0
        store = self.cluster.node.store
        self._unsynced.append((stream, store.generation))
        if self.missing:
            session.send_pieces(wire.repl_ids(wire.REPL_FETCH, self.key, epoch, sorted(self.missing)))
        store.wait_for_sync(self)

    def on_synced(self, generation: int) -> None:
        self.log.compact()
        unsynced = self._unsynced
        index = -1
        while unsynced and unsynced[0][1] <= generation:
            index = unsynced.popleft()[0]
        if unsynced:
            self.cluster.node.store.wait_for_sync(self)
        if index > self.acked and not self.missing and self.session is not None:
            self.acked = index
            self.session.send_pieces(wire.repl_ack(self.key, self.epoch, index))

    def ask_sync(self, session: PeerSession) -> None:
        session.send_pieces(wire.repl_ids(wire.REPL_FETCH, self.key, self.epoch, []))


class Replication:
    """The quorum queues this node leads or holds a copy of."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.leaders: dict[bytes, LeaderLog] = {}
        self.replicas: dict[bytes, Replica] = {}
        self._compact: set[EntryLog] = set()
        self._compact_waiter = _CompactWaiter(self)

    def compact_later(self, entry_log: EntryLog) -> None:
        if entry_log not in self._compact:
            self._compact.add(entry_log)
            self.cluster.node.store.wait_for_sync(self._compact_waiter)

    def _compact_now(self) -> None:
        logs, self._compact = self._compact, set()
        for entry_log in logs:
            entry_log.compact()
            if entry_log.unwritten:
                self.compact_later(entry_log)

    # -- frames ----------------------------------------------------------------------------

    def on_follower_frame(self, session: PeerSession, kind: int, payload: bytes) -> None:
        """REPL_APPEND / SETTLE / SYNC from a leader, on its session to this member."""
        if kind == wire.REPL_APPEND:
            key, epoch, index, entry, returns, route, header, body = wire.decode_repl_append(payload)
            replica = self.replicas.get(key)
            if replica is not None:
                replica.on_append(session, epoch, index, entry, returns, (route, header, body))
            return
        key, epoch, ids = wire.decode_repl_ids(payload)
        replica = self.replicas.get(key)
        if replica is None:
            return  # not (yet) a member here: the leader syncs it when it asks
        if kind == wire.REPL_SETTLE:
            replica.on_settle(session, epoch, ids)
        else:
            replica.on_sync(session, epoch, ids)

    def on_leader_frame(self, node: str, kind: int, payload: bytes) -> None:
        """REPL_ACK / REPL_FETCH from a member, on this node's link to it."""
        if kind == wire.REPL_ACK:
            key, epoch, index = wire.decode_repl_ack(payload)
            leader = self.leaders.get(key)
            if leader is not None:
                leader.on_ack(node, epoch, index)
        else:
            key, epoch, ids = wire.decode_repl_ids(payload)
            leader = self.leaders.get(key)
            if leader is not None:
                leader.on_fetch(node, ids)

    def link_up(self, link: PeerLink) -> None:
        for leader in self.leaders.values():
            leader.follower_up(link.node, link)

    def link_down(self, link: PeerLink) -> None:
        for leader in self.leaders.values():
            leader.follower_down(link.node)

    def session_opened(self, session: PeerSession) -> None:
        """A node dialled us: ask it to sync the queues it leads that we hold copies of."""
        for replica in self.replicas.values():
            if self.cluster.topology.leader_of(replica.key) == session.peer:
                replica.ask_sync(session)


class _CompactWaiter:
    def __init__(self, replication: Replication) -> None:
        self.replication = replication

    def on_synced(self, generation: int) -> None:
        self.replication._compact_now()
