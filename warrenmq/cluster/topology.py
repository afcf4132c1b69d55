"""Exchanges, queues and bindings of the cluster: written to etcd, applied from its watch.

Theory of operation.  etcd holds the truth; every node's broker model follows it.  A client's
declare is checked against the local model first (same errors, same texts), then written to
etcd (a transaction that creates the record only if it is absent), and answered only once
this node's watch has applied that revision: the reply sees what every node will see.

Applying a queue record *places* the queue on this node: a queue this node leads is a plain
broker ``Queue`` (classic: its home node; quorum: the member holding the ``leader`` key);
any other is a ``RemoteQueue`` that forwards to its leader.  A quorum queue's members that
do not lead it also keep a ``Replica``.  When a leader key changes, the local stand-in is
swapped (bindings and consumers moved over; see ``_become_leader`` / ``_step_down``).

Queues that die with their node (exclusive, non-durable) are written under that node's
lease: etcd deletes them when the node is gone, and every node drops them.  A queue that
goes away locally on its leader (auto-delete, x-expires, its exclusive connection closing)
is deleted from etcd by that leader.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from warrenmq.amqp.errors import NotFound, PreconditionFailed
from warrenmq.amqp.values import FieldTable
from warrenmq.broker.exchanges import Exchange
from warrenmq.broker.queue import Queue
from warrenmq.broker.queue_args import queue_display, validate_declare
from warrenmq.broker.stream import Stream
from warrenmq.broker.vhost import VHost
from warrenmq.cluster import keys as records
from warrenmq.cluster import wire
from warrenmq.cluster.etcd import Change
from warrenmq.cluster.remote_queue import RemoteQueue
from warrenmq.cluster.replication import EntryLog, LeaderLog, Replica

if TYPE_CHECKING:
    from warrenmq.cluster.cluster import Cluster

log = logging.getLogger("warrenmq.cluster.topology")

DEFAULT_GROUP_SIZE = 3


@dataclass
class QueueRecord:
    vhost: str
    name: str
    durable: bool
    exclusive: bool
    auto_delete: bool
    arguments: FieldTable
    type: str
    home: str  # the node a classic queue lives on; a quorum queue's first leader
    members: list[str] = field(default_factory=list)
    owner: str = ""  # "<node>/<connection id>" of an exclusive queue
    lease: int = 0
    revision: int = 0

    @property
    def key(self) -> bytes:
        return wire.queue_key(self.vhost, self.name)

    def dump(self) -> dict[str, Any]:
        return {
            "vhost": self.vhost,
            "name": self.name,
            "durable": self.durable,
            "exclusive": self.exclusive,
            "auto_delete": self.auto_delete,
            "arguments": records.table_text(self.arguments),
            "type": self.type,
            "home": self.home,
            "members": self.members,
            "owner": self.owner,
            "lease": self.lease,
        }

    @classmethod
    def load(cls, record: dict[str, Any], revision: int) -> QueueRecord:
        return cls(
            str(record["vhost"]),
            str(record["name"]),
            bool(record.get("durable")),
            bool(record.get("exclusive")),
            bool(record.get("auto_delete")),
            records.table_from(record.get("arguments")),
            str(record.get("type", "classic")),
            str(record.get("home", "")),
            [str(m) for m in record.get("members") or []],
            str(record.get("owner", "")),
            int(record.get("lease", 0)),
            revision,
        )


@dataclass
class LeaderRecord:
    node: str
    term: int
    epoch: int  # the etcd revision the term began at


class RemoteOwner:
    """The exclusive owner of a queue whose connection is on another node: never this one's."""

    def __init__(self, owner: str) -> None:
        self.name = owner


class Topology:
    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.keys = cluster.keys
        self.queues: dict[bytes, QueueRecord] = {}
        self.leaders: dict[bytes, LeaderRecord] = {}
        self.exchanges: dict[tuple[str, str], int] = {}  # (vhost, name) -> mod revision
        self.bindings: dict[bytes, dict[str, Any]] = {}  # etcd key -> binding record
        self._leader_logs: dict[bytes, LeaderLog] = {}  # prepared for a Queue being created here
        self._promoting: set[bytes] = set()
        self.ready = False  # placing waits until the whole of etcd is loaded (leaders included)

    @property
    def me(self) -> str:
        return self.cluster.node_name

    # -- applying etcd's records -----------------------------------------------------------

    def apply(self, kind: str, parts: list[str], change: Change) -> None:
        value = change.value
        if kind == "exchange":
            vhost, name = parts
            if value is None:
                self._exchange_deleted(vhost, name)
            else:
                self._exchange_put(records.load(value), change.revision)
        elif kind == "queue":
            vhost, name = parts
            key = wire.queue_key(vhost, name)
            if value is None:
                self._queue_deleted(key)
            else:
                self.queues[key] = QueueRecord.load(records.load(value), change.revision)
                self.place(key)
        elif kind == "binding":
            if value is None:
                self._binding_deleted(change.key)
            else:
                self._binding_put(change.key, records.load(value))

    def apply_leader(self, vhost: str, name: str, change: Change) -> None:
        key = wire.queue_key(vhost, name)
        if change.value is None:
            self.leaders.pop(key, None)
        else:
            record = records.load(change.value)
            self.leaders[key] = LeaderRecord(str(record["node"]), int(record.get("term", 1)), change.revision)
        if key in self.queues:
            self.place(key)

    def _vhost(self, name: str) -> VHost:
        broker = self.cluster.node.broker
        vhost = broker.vhosts.get(name)
        if vhost is None:
            vhost = broker.add_vhost(name)
        return vhost

    def _exchange_put(self, record: dict[str, Any], revision: int) -> None:
        vhost = self._vhost(str(record["vhost"]))
        name = str(record["name"])
        self.exchanges[(vhost.name, name)] = revision
        existing = vhost.exchanges.get(name)
        if existing is not None:
            if record.get("type") != existing.TYPE:
                log.warning("exchange '%s' in vhost '%s' was redefined in etcd; replaced", name, vhost.name)
                vhost.delete_exchange(name)
            else:
                return
        try:
            exchange = vhost.declare_exchange(
                name,
                str(record.get("type", "direct")),
                durable=bool(record.get("durable", True)),
                auto_delete=bool(record.get("auto_delete", False)),
                internal=bool(record.get("internal", False)),
                arguments=records.table_from(record.get("arguments")),
            )
        except Exception as exc:  # an etcd record this node cannot take: say so, go on
            log.error("exchange '%s' in vhost '%s' not applied: %s", name, vhost.name, exc)
            return
        self.cluster.node.exchange_declared(vhost, exchange)

    def _exchange_deleted(self, vhost_name: str, name: str) -> None:
        self.exchanges.pop((vhost_name, name), None)
        vhost = self.cluster.node.broker.vhosts.get(vhost_name)
        if vhost is not None and name in vhost.exchanges:
            try:
                vhost.delete_exchange(name)
            except Exception as exc:  # a system exchange: etcd never holds one
                log.error("exchange '%s' not deleted: %s", name, exc)

    def _destination(self, vhost: VHost, record: dict[str, Any]) -> Any:
        if record.get("destination_type") == "exchange":
            return vhost.exchanges.get(str(record["destination"]))
        return vhost.queues.get(str(record["destination"]))

    def _binding_put(self, key: bytes, record: dict[str, Any]) -> None:
        self.bindings[key] = record
        vhost = self.cluster.node.broker.vhosts.get(str(record["vhost"]))
        if vhost is None:
            return
        destination = self._destination(vhost, record)
        source = str(record["source"])
        if destination is None or source not in vhost.exchanges:
            return  # its ends come later (or went): bound when the queue is placed
        arguments = records.table_from(record.get("arguments"))
        if not vhost.has_binding(destination, source, str(record["routing_key"]), arguments):
            vhost.bind(destination, source, str(record["routing_key"]), arguments)

    def _binding_deleted(self, key: bytes) -> None:
        record = self.bindings.pop(key, None)
        if record is None:
            return
        vhost = self.cluster.node.broker.vhosts.get(str(record["vhost"]))
        if vhost is None:
            return
        destination = self._destination(vhost, record)
        if destination is not None:
            vhost.unbind(
                destination,
                str(record["source"]),
                str(record["routing_key"]),
                records.table_from(record.get("arguments")),
            )

    def _bind_pending(self, vhost: VHost, queue: Queue) -> None:
        """Bindings to a queue whose record came after them (or that was just placed)."""
        for record in self.bindings.values():
            if (
                record.get("vhost") == vhost.name
                and record.get("destination_type", "queue") == "queue"
                and record.get("destination") == queue.name
            ):
                source = str(record["source"])
                arguments = records.table_from(record.get("arguments"))
                if source in vhost.exchanges and not vhost.has_binding(
                    queue, source, str(record["routing_key"]), arguments
                ):
                    vhost.bind(queue, source, str(record["routing_key"]), arguments)

    def _queue_deleted(self, key: bytes) -> None:
        record = self.queues.pop(key, None)
        self.leaders.pop(key, None)
        self.cluster.elections.cancel(key)
        replica = self.cluster.replication.replicas.pop(key, None)
        if replica is not None:
            replica.log.handle.delete()
        if record is None:
            return
        vhost = self.cluster.node.broker.vhosts.get(record.vhost)
        queue = vhost.queues.get(record.name) if vhost is not None else None
        if vhost is not None and queue is not None:
            vhost.remove_queue(queue)

    # -- placement --------------------------------------------------------------------------

    def leader_of(self, key: bytes) -> str | None:
        record = self.queues.get(key)
        if record is None:
            return None
        if record.type == "quorum":
            leader = self.leaders.get(key)
            return leader.node if leader is not None else None
        return record.home

    def place(self, key: bytes) -> None:
        """Make this node's stand-in for the queue match its record and leader."""
        record = self.queues.get(key)
        if record is None or key in self._promoting or not self.ready:
            return
        vhost = self._vhost(record.vhost)
        current = vhost.queues.get(record.name)
        leader = self.leader_of(key)
        quorum = record.type == "quorum"
        if leader == self.me and not self.cluster.membership.frozen:
            if current is None or isinstance(current, RemoteQueue):
                if quorum:
                    self._become_leader(record, vhost, current)
                else:
                    self._create_local(record, vhost, current)
            elif quorum:
                log_ = current.store
                epoch = self.leaders[key].epoch
                if isinstance(log_, LeaderLog) and log_.epoch != epoch:
                    self._step_down(record, vhost, current)  # our own old term: start afresh
                    self.place(key)
            return
        if current is not None and not isinstance(current, RemoteQueue):
            if quorum:
                self._step_down(record, vhost, current)
                current = vhost.queues.get(record.name)
            else:
                return  # a classic queue led here stays (its home does not move)
        if current is None:
            current = self._new_remote(record, vhost)
        assert isinstance(current, RemoteQueue)
        current.members = list(record.members)
        self.cluster.attach_remote(current, leader)
        if quorum:
            if self.me in record.members:
                self._ensure_replica(record)
            if leader is None or not self.cluster.is_live(leader):
                self.cluster.elections.consider(key)

    def _settings(self, record: QueueRecord) -> Any:
        return validate_declare(
            record.arguments, record.name, record.vhost, record.durable, record.exclusive, record.auto_delete
        )

    def _new_remote(self, record: QueueRecord, vhost: VHost) -> RemoteQueue:
        owner = RemoteOwner(record.owner) if record.exclusive else None
        queue = RemoteQueue(
            record.name,
            record.vhost,
            durable=record.durable,
            exclusive_owner=owner,
            auto_delete=record.auto_delete,
            arguments=record.arguments,
            settings=self._settings(record),
            scheduler=vhost.scheduler,
        )
        vhost.add_queue(queue, stored=False)
        self._bind_pending(vhost, queue)
        return queue

    def _owner(self, record: QueueRecord) -> object | None:
        if not record.exclusive:
            return None
        node, _, conn_id = record.owner.partition("/")
        if node != self.me:
            return RemoteOwner(record.owner)
        return self.cluster.connections.get(conn_id)

    def _create_local(self, record: QueueRecord, vhost: VHost, current: Queue | None) -> None:
        """A classic queue whose home is this node."""
        owner = self._owner(record)
        if record.exclusive and owner is None:
            self.cluster.spawn(self.delete_record(record))  # its connection is gone already
            return
        queue_class = Stream if record.type == "stream" else Queue
        queue = queue_class(
            record.name,
            record.vhost,
            durable=record.durable,
            exclusive_owner=owner,
            auto_delete=record.auto_delete,
            arguments=record.arguments,
            settings=self._settings(record),
            scheduler=vhost.scheduler,
            backlog_factory=vhost.backlog_factory,
        )
        if current is not None:
            vhost.replace_queue(current, queue)
        else:
            vhost.add_queue(queue)
            self._bind_pending(vhost, queue)
        if record.durable:
            found = self.cluster.take_recovered(record.vhost, record.name)
            if found is not None and len(found):
                self.cluster.node.restore_queue(queue, found)
        self.cluster.node.queue_declared(vhost, queue)

    # -- quorum leadership --------------------------------------------------------------------

    def _ensure_replica(self, record: QueueRecord) -> Replica:
        replication = self.cluster.replication
        key = record.key
        replica = replication.replicas.get(key)
        if replica is None:
            handle = self.cluster.store_handle(record.vhost, record.name)
            found = self.cluster.take_recovered(record.vhost, record.name)
            replica = replication.replicas[key] = Replica(
                self.cluster, key, EntryLog.recovered(self.cluster, handle, found)
            )
            leader = self.leader_of(key)
            session = self.cluster.session_of(leader) if leader else None
            if session is not None:
                replica.ask_sync(session)
        return replica

    def _become_leader(self, record: QueueRecord, vhost: VHost, current: Queue | None) -> None:
        """This node leads the quorum queue now: from its replica (a takeover), its recovered
        data (a restart) or nothing (a new queue).  Written entries only: wait for the store."""
        key = record.key
        replication = self.cluster.replication
        replica = replication.replicas.pop(key, None)
        if replica is not None:
            entry_log = replica.log
        else:
            handle = self.cluster.store_handle(record.vhost, record.name)
            entry_log = EntryLog.recovered(self.cluster, handle, self.cluster.take_recovered(record.vhost, record.name))
        takeover = bool(entry_log.entries)
        if entry_log.unwritten:
            self._promoting.add(key)

            class Ready:
                def on_synced(_, generation: int) -> None:
                    entry_log.compact()
                    if entry_log.unwritten:
                        self.cluster.node.store.wait_for_sync(Ready())
                        return
                    self._promoting.discard(key)
                    if self.queues.get(key) is record and self.leader_of(key) == self.me:
                        self._lead(record, vhost, vhost.queues.get(record.name), entry_log, takeover)
                    else:
                        replication.replicas[key] = replica or Replica(self.cluster, key, entry_log)
                        self.place(key)

            self.cluster.node.store.wait_for_sync(Ready())
            return
        self._lead(record, vhost, current, entry_log, takeover)

    def _lead(
        self, record: QueueRecord, vhost: VHost, current: Queue | None, entry_log: EntryLog, takeover: bool
    ) -> None:
        key = record.key
        leader = self.leaders[key]
        leader_log = LeaderLog(self.cluster, key, leader.epoch, record.members, entry_log)
        self._leader_logs[key] = leader_log
        queue = Queue(
            record.name,
            record.vhost,
            durable=True,
            auto_delete=record.auto_delete,
            arguments=record.arguments,
            settings=self._settings(record),
            scheduler=vhost.scheduler,
            backlog_factory=vhost.backlog_factory,
        )
        consumers = current.consumers() if isinstance(current, RemoteQueue) else []
        held = current.take_held() if isinstance(current, RemoteQueue) else []
        if isinstance(current, RemoteQueue):
            self.cluster.detach_remote(current)
        try:
            if current is not None:
                vhost.replace_queue(current, queue)
            else:
                vhost.add_queue(queue)
                self._bind_pending(vhost, queue)
        finally:
            self._leader_logs.pop(key, None)
        queue.gate = leader_log
        found = entry_log.arrays(redelivered=takeover)
        backlog = queue.backlog
        if len(found) and hasattr(backlog, "restore"):
            backlog.restore(found.seqs, found.locations, found.sizes, found.returns)
            queue.ready_bytes += sum(found.sizes)
        elif len(found):
            self.cluster.node.restore_queue(queue, found)
        in_memory = entry_log.in_memory(redelivered=takeover)
        if in_memory:
            queue.restore(in_memory)
        self.cluster.replication.leaders[key] = leader_log
        for node in leader_log.followers:
            link = self.cluster.links.get(node)
            if link is not None and link.up:
                leader_log.follower_up(node, link)
        for consumer in consumers:
            consumer.queue = queue
            queue.add_consumer(consumer)
        if held:
            self._publish_held(queue, leader_log, held)
        queue.dispatch()
        log.info(
            "leading quorum queue '%s' in vhost '%s' (term %d, %d messages)",
            record.name,
            record.vhost,
            leader.term,
            queue.message_count,
        )

    def _publish_held(self, queue: Queue, leader_log: LeaderLog, held: list[Any]) -> None:
        """Publishes that waited for a leader while there was none: this node leads now.  Each
        confirm waits for a majority (the gate) and for this node's next fsync."""
        synced = _ReleaseOnSync()
        for message, waiters in held:
            message.queue = None
            taken = queue.publish(message)
            for target, seq in waiters:
                if not taken:
                    target.confirm_release(seq, False)
                    continue
                leader_log.track(target, seq)
                synced.waiters.append((target, seq))
        if synced.waiters:
            self.cluster.node.store.wait_for_sync(synced)

    def prepared_leader_log(self, queue: Queue) -> LeaderLog | None:
        return self._leader_logs.get(wire.queue_key(queue.vhost, queue.name))

    def _step_down(self, record: QueueRecord, vhost: VHost, queue: Queue) -> None:
        """Another node leads it now (or ours may be gone): keep the data as a replica."""
        key = record.key
        leader_log = queue.store
        consumers = queue.detach()
        remote = RemoteQueue(
            record.name,
            record.vhost,
            durable=True,
            auto_delete=record.auto_delete,
            arguments=record.arguments,
            settings=self._settings(record),
            scheduler=vhost.scheduler,
        )
        remote.members = list(record.members)
        vhost.replace_queue(queue, remote, stored=False)
        if isinstance(leader_log, LeaderLog):
            leader_log.active = False
            leader_log.fail_waiters()
            self.cluster.replication.leaders.pop(key, None)
            self.cluster.replication.replicas[key] = Replica(self.cluster, key, leader_log.log)
        for consumer in consumers:
            consumer.queue = remote
            remote.add_consumer(consumer)
        log.warning("stepped down as leader of quorum queue '%s' in vhost '%s'", record.name, record.vhost)

    def step_down_all(self) -> None:
        """Our lease may be gone: lead no quorum queue until etcd says we do."""
        for record in list(self.queues.values()):
            if record.type != "quorum":
                continue
            vhost = self.cluster.node.broker.vhosts.get(record.vhost)
            queue = vhost.queues.get(record.name) if vhost is not None else None
            if vhost is not None and queue is not None and not isinstance(queue, RemoteQueue):
                self._step_down(record, vhost, queue)

    def replace_all(self) -> None:
        for key in list(self.queues):
            self.place(key)

    # -- writing ----------------------------------------------------------------------------

    def _load(self) -> dict[str, int]:
        """Queues led per live node (for the balanced locator)."""
        counts = {node: 0 for node in self.cluster.live_nodes()}
        for key in self.queues:
            leader = self.leader_of(key)
            if leader in counts:
                counts[leader] += 1
        return counts

    def _balanced(self, count: int, first: str | None = None) -> list[str]:
        load = self._load()
        order = sorted(load, key=lambda n: (load[n], n))
        if first is not None:
            order = [first, *(n for n in order if n != first)]
        return order[:count]

    async def create_queue(
        self,
        vhost: str,
        name: str,
        durable: bool,
        exclusive: bool,
        auto_delete: bool,
        arguments: FieldTable,
        queue_type: str,
        owner: str,
    ) -> int:
        """Write a new queue's record; the revision it was written at (0: it existed)."""
        locator_item = arguments.get("x-queue-leader-locator")
        locator = (
            str(locator_item[1])
            if locator_item is not None
            else ("balanced" if queue_type == "quorum" else "client-local")
        )
        lease = 0
        members: list[str] = []
        if exclusive or not durable:
            home = self.me  # lives and dies with this node (or connection)
            lease = self.cluster.membership.lease
        elif queue_type == "quorum":
            size_item = arguments.get("x-quorum-initial-group-size")
            size = int(size_item[1]) if size_item is not None else DEFAULT_GROUP_SIZE
            first = self.me if locator == "client-local" else self._balanced(1)[0]
            # As RabbitMQ: running nodes first (the least loaded), then members that are down
            # (they catch up when they return), up to the group size.
            running = self._balanced(size, first)
            down = sorted(m for m in self.cluster.members if m not in running and not self.cluster.is_live(m))
            members = (running + down)[: max(1, size)]
            home = first
        else:
            home = self.me if locator == "client-local" else self._balanced(1)[0]
        record = QueueRecord(
            vhost, name, durable, exclusive, auto_delete, arguments, queue_type, home, members, owner, lease
        )
        qkey = self.keys.queue(vhost, name)
        leader_key = self.keys.leader(vhost, name)
        value = records.dump(record.dump())

        def build(c: Any) -> tuple[list[Any], list[Any], list[Any]]:
            success = [c.transactions.put(qkey, value, lease or None)]
            if queue_type == "quorum":
                success.append(c.transactions.put(leader_key, records.dump({"node": home, "term": 1})))
            return [c.transactions.create(qkey) == 0], success, []

        ok, revision = await self.cluster.etcd.txn(build)
        return revision if ok else 0

    async def delete_record(self, record: QueueRecord) -> int:
        """Delete a queue's record (if it is still the one we know), its leader key and the
        bindings to it."""
        qkey = self.keys.queue(record.vhost, record.name)
        bound = [
            key
            for key, b in self.bindings.items()
            if b.get("vhost") == record.vhost
            and b.get("destination_type", "queue") == "queue"
            and b.get("destination") == record.name
        ]

        def build(c: Any) -> tuple[list[Any], list[Any], list[Any]]:
            success = [c.transactions.delete(qkey), c.transactions.delete(self.keys.leader(record.vhost, record.name))]
            success.extend(c.transactions.delete(k) for k in bound)
            return [c.transactions.mod(qkey) == record.revision], success, []

        ok, revision = await self.cluster.etcd.txn(build)
        return revision if ok else 0

    def queue_removed(self, queue: Queue) -> None:
        """The model removed a queue (auto-delete, x-expires, exclusive owner gone, a delete
        handled here): its leader deletes it from etcd too."""
        if isinstance(queue, RemoteQueue):
            return
        record = self.queues.get(wire.queue_key(queue.vhost, queue.name))
        if record is None or self.leader_of(record.key) != self.me:
            return
        self.cluster.spawn(self.delete_record(record))

    def delete_led_queue(
        self, vhost_name: str, name: str, if_unused: bool, if_empty: bool
    ) -> asyncio.Future[tuple[int, int]]:
        """queue.delete of a queue led here: checked, deleted from etcd, then locally (the
        watch).  Resolves to (ready messages, revision)."""
        loop = self.cluster.loop
        future: asyncio.Future[tuple[int, int]] = loop.create_future()
        record = self.queues.get(wire.queue_key(vhost_name, name))
        vhost = self.cluster.node.broker.vhosts.get(vhost_name)
        queue = vhost.queues.get(name) if vhost is not None else None
        if record is None or queue is None or isinstance(queue, RemoteQueue):
            future.set_exception(NotFound(f"no {queue_display(name, vhost_name)}"))
            return future
        display = queue_display(name, vhost_name)
        if if_unused and queue.consumer_count:
            future.set_exception(PreconditionFailed(f"{display} in use"))
            return future
        if if_empty and queue.message_count:
            future.set_exception(PreconditionFailed(f"{display} not empty"))
            return future
        count = queue.message_count

        async def delete() -> tuple[int, int]:
            revision = await self.delete_record(record)
            return count, revision

        task = self.cluster.spawn(delete())
        task.add_done_callback(lambda t: _chain(t, future))
        return future

    async def create_exchange(
        self, vhost: str, name: str, type_: str, durable: bool, auto_delete: bool, internal: bool, arguments: FieldTable
    ) -> int:
        key = self.keys.exchange(vhost, name)
        value = records.dump(
            {
                "vhost": vhost,
                "name": name,
                "type": type_,
                "durable": durable,
                "auto_delete": auto_delete,
                "internal": internal,
                "arguments": records.table_text(arguments),
            }
        )
        ok, revision = await self.cluster.etcd.txn(
            lambda c: ([c.transactions.create(key) == 0], [c.transactions.put(key, value)], [])
        )
        return revision if ok else 0

    async def delete_exchange(self, vhost: str, exchange: Exchange) -> int:
        key = self.keys.exchange(vhost, exchange.name)
        bound = [
            k
            for k, b in self.bindings.items()
            if b.get("vhost") == vhost
            and (
                b.get("source") == exchange.name
                or (b.get("destination_type") == "exchange" and b.get("destination") == exchange.name)
            )
        ]

        def build(c: Any) -> tuple[list[Any], list[Any], list[Any]]:
            return [], [c.transactions.delete(key), *(c.transactions.delete(k) for k in bound)], []

        _, revision = await self.cluster.etcd.txn(build)
        return revision

    def _binding_key(
        self, vhost: str, source: str, kind: str, destination: str, routing_key: str, arguments: FieldTable
    ) -> bytes:
        return self.keys.binding(vhost, source, kind, destination, routing_key, arguments)

    async def bind(
        self, vhost: str, source: str, kind: str, destination: str, routing_key: str, arguments: FieldTable
    ) -> int:
        key = self._binding_key(vhost, source, kind, destination, routing_key, arguments)
        value = records.dump(
            {
                "vhost": vhost,
                "source": source,
                "destination": destination,
                "destination_type": kind,
                "routing_key": routing_key,
                "arguments": records.table_text(arguments),
            }
        )
        lease = 0
        if kind == "queue":
            record = self.queues.get(wire.queue_key(vhost, destination))
            if record is not None:
                lease = record.lease  # a binding to a queue that dies with its node dies too
        return await self.cluster.etcd.put(key, value, lease)

    async def unbind(
        self, vhost: str, source: str, kind: str, destination: str, routing_key: str, arguments: FieldTable
    ) -> int:
        key = self._binding_key(vhost, source, kind, destination, routing_key, arguments)
        return await self.cluster.etcd.delete(key)

    async def delete_unused_exchange(self, vhost: str, name: str) -> None:
        """An auto-delete exchange lost its last binding here: delete its record, unless it
        changed meanwhile."""
        revision = self.exchanges.get((vhost, name))
        if revision is None:
            return
        key = self.keys.exchange(vhost, name)
        await self.cluster.etcd.txn(lambda c: ([c.transactions.mod(key) == revision], [c.transactions.delete(key)], []))


class _ReleaseOnSync:
    """Confirms that wait for the store's next fsync (a SyncWaiter)."""

    def __init__(self) -> None:
        self.waiters: list[tuple[Any, int]] = []

    def on_synced(self, generation: int) -> None:
        for target, seq in self.waiters:
            target.confirm_release(seq, True)


def _chain(task: asyncio.Future[Any], future: asyncio.Future[Any]) -> None:
    if future.done():
        return
    if task.cancelled():
        future.cancel()
    elif task.exception() is not None:
        future.set_exception(task.exception())  # type: ignore[arg-type]
    else:
        future.set_result(task.result())
