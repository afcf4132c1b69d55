"""Taking over a quorum queue whose leader is gone: the member with the longest log wins.

When a quorum queue's leader is not a live node (its lease expired), every live member bids
``candidate/<vhost>/<queue>/<node>`` (under its own lease) with the highest entry id it
holds.  Once a majority of the members (the queue's group, not the live nodes) has bid, the
best bid — highest entry id, then name — writes itself as the leader in a transaction that
compares the leader key with the one that died: one node wins, once, and the term goes up.
A member's highest live entry id is a sound measure of how far its log goes: ids grow along
the stream, entries only leave it when settled, and a confirm needed a majority to hold the
entry, so every majority of bidders includes one that holds every confirmed, unsettled one.

A bidder that dies drops out (its bid goes with its lease); the others look again.  If no
majority can bid the queue waits, as RabbitMQ's quorum queues do without a quorum.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from warrenmq.cluster import keys as records
from warrenmq.cluster.etcd import Change, EtcdUnavailable

if TYPE_CHECKING:
    from warrenmq.cluster.cluster import Cluster

log = logging.getLogger("warrenmq.cluster.election")

_RETRY = 0.5  # s between looks while a takeover waits (bids also wake it)


class Elections:
    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.bids: dict[bytes, dict[str, dict[str, Any]]] = {}  # queue key -> node -> bid
        self._running: dict[bytes, asyncio.Task[None]] = {}
        self._wake: dict[bytes, asyncio.Event] = {}

    def consider(self, key: bytes) -> None:
        """The queue's leader is not live: take part in choosing the next one."""
        if key in self._running or self.cluster.membership.frozen:
            return
        record = self.cluster.topology.queues.get(key)
        if record is None or self.cluster.node_name not in record.members:
            return
        self._wake[key] = asyncio.Event()
        self._running[key] = self.cluster.spawn(self._run(key))

    def cancel(self, key: bytes) -> None:
        task = self._running.pop(key, None)
        if task is not None:
            task.cancel()
        self._wake.pop(key, None)
        self.bids.pop(key, None)

    def cancel_all(self) -> None:
        for key in list(self._running):
            self.cancel(key)

    def on_bid(self, vhost: str, name: str, node: str, change: Change) -> None:
        from warrenmq.cluster import wire

        key = wire.queue_key(vhost, name)
        bids = self.bids.setdefault(key, {})
        if change.value is None:
            bids.pop(node, None)
        else:
            bids[node] = records.load(change.value)
        wake = self._wake.get(key)
        if wake is not None:
            wake.set()

    async def _run(self, key: bytes) -> None:
        cluster = self.cluster
        topology = cluster.topology
        record = topology.queues[key]
        me = cluster.node_name
        bid_key = cluster.keys.candidate(record.vhost, record.name, me)
        try:
            while True:
                leader = topology.leaders.get(key)
                if leader is not None and cluster.is_live(leader.node):
                    return  # someone leads it
                dead_epoch = leader.epoch if leader is not None else 0
                replica = cluster.replication.replicas.get(key)
                held = replica.log.max_id() if replica is not None else 0
                mine = {"node": me, "epoch": dead_epoch, "max": held}
                if self.bids.get(key, {}).get(me) != mine:
                    await cluster.etcd.put(bid_key, records.dump(mine), cluster.membership.lease)
                live = {
                    n: b
                    for n, b in self.bids.get(key, {}).items()
                    if b.get("epoch") == dead_epoch and n in record.members and cluster.is_live(n)
                }
                live[me] = mine
                if len(live) >= len(record.members) // 2 + 1:
                    best = max(live.values(), key=lambda b: (int(b.get("max", 0)), str(b.get("node"))))
                    if best.get("node") == me:
                        await self._claim(record, leader.term if leader is not None else 0, dead_epoch)
                wake = self._wake.get(key)
                if wake is None:
                    return
                wake.clear()
                try:
                    await asyncio.wait_for(wake.wait(), _RETRY)
                except TimeoutError:
                    pass
        except EtcdUnavailable as exc:
            log.warning("takeover of '%s' waits for etcd: %s", record.name, exc)
            await asyncio.sleep(_RETRY)
            self._running.pop(key, None)
            self.consider(key)
            return
        finally:
            if self._running.get(key) is asyncio.current_task():
                self._running.pop(key, None)
                self._wake.pop(key, None)
            try:
                await cluster.etcd.delete(bid_key)
            except EtcdUnavailable:
                pass  # it goes with our lease

    async def _claim(self, record: Any, term: int, dead_epoch: int) -> None:
        cluster = self.cluster
        leader_key = cluster.keys.leader(record.vhost, record.name)
        value = records.dump({"node": cluster.node_name, "term": term + 1})

        def build(c: Any) -> tuple[list[Any], list[Any], list[Any]]:
            compare = [c.transactions.mod(leader_key) == dead_epoch]
            return compare, [c.transactions.put(leader_key, value)], []

        ok, revision = await cluster.etcd.txn(build)
        if ok:
            log.warning(
                "took over quorum queue '%s' in vhost '%s' (term %d, revision %d)",
                record.name,
                record.vhost,
                term + 1,
                revision,
            )
