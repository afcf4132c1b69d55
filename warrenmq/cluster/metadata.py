"""etcd's records, loaded once and then followed: every change goes to the part it concerns.

``wait_applied(revision)`` resolves once the watch has applied everything up to a revision:
a node that wrote a change answers its client only then, so the answer and every later
request on this node see the change.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from warrenmq.cluster.access_sync import ACCESS_KINDS
from warrenmq.cluster.etcd import Change

if TYPE_CHECKING:
    from warrenmq.cluster.cluster import Cluster

log = logging.getLogger("warrenmq.cluster.metadata")

# The order a snapshot is applied in: what a record refers to comes before it.
_LOAD_ORDER = {
    "nodes": 0,
    "members": 1,
    "vhost": 2,
    "user": 3,
    "permission": 4,
    "topic-permission": 5,
    "policy": 6,
    "exchange": 7,
    "queue": 8,
    "leader": 9,
    "binding": 10,
    "candidate": 11,
}


class Metadata:
    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.keys = cluster.keys
        self.applied = 0
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._watch: asyncio.Task[None] | None = None

    def _kind(self, parts: list[str]) -> str:
        return parts[1] if parts[0] == "defs" and len(parts) > 1 else parts[0]

    async def load(self) -> None:
        """Apply everything etcd holds, then follow its changes."""
        revision, items = await self.cluster.etcd.get_prefix(self.keys.root)
        changes = []
        for item in items:
            parts = self.keys.parse(item.key)
            if parts[0] in ("incarnation",):
                continue
            changes.append(
                (_LOAD_ORDER.get(self._kind(parts), 99), Change(item.key, item.value, item.mod_revision, item.lease))
            )
        changes.sort(key=lambda c: c[0])
        for _, change in changes:
            self.dispatch(change)
        self.applied = revision
        self._watch = self.cluster.etcd.watch(self.keys.root, revision + 1, self.on_change)

    def on_change(self, change: Change) -> None:
        self.dispatch(change)
        if change.revision > self.applied:
            self.applied = change.revision
            if self._waiters:
                # Later in this loop turn: the other events of the same revision come first.
                self.cluster.loop.call_soon(self._wake)

    def dispatch(self, change: Change) -> None:
        parts = self.keys.parse(change.key)
        top = parts[0]
        try:
            if top == "defs" and len(parts) > 2:
                kind = parts[1]
                if kind in ACCESS_KINDS:
                    self.cluster.access.apply(kind, parts[2:], change)
                else:
                    self.cluster.topology.apply(kind, parts[2:], change)
            elif top == "leader" and len(parts) == 3:
                self.cluster.topology.apply_leader(parts[1], parts[2], change)
            elif top == "nodes" and len(parts) == 2:
                self.cluster.node_changed(parts[1], change)
            elif top == "members" and len(parts) == 2:
                self.cluster.member_changed(parts[1], change)
            elif top == "candidate" and len(parts) == 4:
                self.cluster.elections.on_bid(parts[1], parts[2], parts[3], change)
        except Exception:  # one record this node cannot apply must not stop the others
            log.exception("could not apply etcd change of %r", change.key)

    def _wake(self) -> None:
        applied = self.applied
        keep = []
        for revision, future in self._waiters:
            if revision <= applied:
                if not future.done():
                    future.set_result(None)
            else:
                keep.append((revision, future))
        self._waiters = keep

    async def wait_applied(self, revision: int) -> None:
        if revision <= self.applied:
            return
        future: asyncio.Future[None] = self.cluster.loop.create_future()
        self._waiters.append((revision, future))
        await future

    def stop(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
