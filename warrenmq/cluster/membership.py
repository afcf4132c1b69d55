"""This node's membership: a lease in etcd, kept alive, and what follows when it may be gone.

Theory of operation.  A node registers ``nodes/<name>`` under a lease of ``lease_ttl``
seconds and renews it every third of that.  Other nodes take the key's disappearance (etcd
expiring the lease) as the node's death, and only then take over what it led.

The node fences itself first: it knows when it last sent a renewal that etcd accepted, so
it knows the earliest moment etcd may expire the lease (``deadline``).  Past it, the node
is *frozen*: it reads nothing from clients or other nodes (nothing is published, acked,
delivered or confirmed) until a renewal tells it the lease is still alive (etcd was only
slow, or restarted: thawed, nothing lost) or gone (another node may have taken over: every
quorum queue it led steps down, and it joins again under a new lease).  A paused process
(SIGSTOP, a long GC) wakes up past its deadline and freezes before it handles any input.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from warrenmq.cluster import keys as records
from warrenmq.cluster.etcd import Etcd, EtcdUnavailable
from warrenmq.cluster.keys import Keys

log = logging.getLogger("warrenmq.cluster")

_SAFETY = 0.25  # s taken off the deadline: etcd's clock and ours need not tick alike


@dataclass
class NodeInfo:
    name: str
    link_host: str
    link_port: int
    amqp_port: int
    management_port: int
    incarnation: int
    started: float

    def record(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "link": [self.link_host, self.link_port],
            "amqp_port": self.amqp_port,
            "management_port": self.management_port,
            "incarnation": self.incarnation,
            "started": self.started,
        }

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> NodeInfo:
        host, port = record.get("link") or ["", 0]
        return cls(
            str(record["name"]),
            str(host),
            int(port),
            int(record.get("amqp_port", 0)),
            int(record.get("management_port", 0)),
            int(record.get("incarnation", 0)),
            float(record.get("started", 0.0)),
        )


class Membership:
    def __init__(
        self,
        etcd: Etcd,
        keys: Keys,
        me: NodeInfo,
        lease_ttl: int,
        loop: asyncio.AbstractEventLoop,
        on_freeze: Callable[[bool], None],
        on_lease_lost: Callable[[], Any],
    ) -> None:
        self.etcd = etcd
        self.keys = keys
        self.me = me
        self.lease_ttl = lease_ttl
        self.loop = loop
        self.on_freeze = on_freeze  # True: stop all input; False: go on
        self.on_lease_lost = on_lease_lost  # a coroutine function: step down, then we rejoin
        self.lease = 0
        self.deadline = 0.0  # loop time after which etcd may have expired our lease
        self.frozen = False
        self.etcd_down_since: float | None = None  # wall clock, for the health check
        self._task: asyncio.Task[None] | None = None
        self._deadline_timer: asyncio.TimerHandle | None = None

    # -- joining --------------------------------------------------------------------------

    async def join(self) -> None:
        """Take an incarnation number, a lease, and register under it."""
        self.me.incarnation = await self._next_incarnation()
        await self._register()
        await self.etcd.put(self.keys.member(self.me.name), records.dump({"name": self.me.name}))
        self._task = asyncio.ensure_future(self._keepalive())
        self._task.add_done_callback(self._keepalive_ended)

    async def _next_incarnation(self) -> int:
        key = self.keys.incarnation
        while True:
            current = await self.etcd.get(key)
            value = int(current.value) if current is not None else 0
            revision = current.mod_revision if current is not None else 0

            def build(c: Any, revision: int = revision, value: int = value) -> tuple[list[Any], list[Any], list[Any]]:
                return [c.transactions.mod(key) == revision], [c.transactions.put(key, str(value + 1).encode())], []

            ok, _ = await self.etcd.txn(build)
            if ok:
                return value + 1

    async def _register(self) -> None:
        sent = self.loop.time()
        self.lease, ttl = await self.etcd.grant(self.lease_ttl)
        self._renewed(sent, ttl)  # before the others hear of us (and dial us)
        await self.etcd.put(self.keys.node(self.me.name), records.dump(self.me.record()), lease=self.lease)

    def _renewed(self, sent: float, ttl: int) -> None:
        self.deadline = sent + ttl - _SAFETY
        if self._deadline_timer is not None:
            self._deadline_timer.cancel()
        self._deadline_timer = self.loop.call_at(self.deadline, self.check)
        self.etcd_down_since = None
        if self.frozen:
            log.warning("etcd lease renewed: node %s goes on", self.me.name)
            self.frozen = False
            self.on_freeze(False)

    # -- keeping the lease ------------------------------------------------------------------

    def check(self) -> bool:
        """Is the lease surely still ours?  If not, freeze now (called on every input)."""
        if self.loop.time() < self.deadline:
            return True
        if not self.frozen:
            log.warning(
                "node %s cannot be sure its etcd lease is alive (last renewed more than %d s ago): "
                "frozen until etcd answers",
                self.me.name,
                self.lease_ttl,
            )
            self.frozen = True
            self.on_freeze(True)
        return False

    def _keepalive_ended(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            # Never expected: without renewals the node would freeze for good.  Start again.
            log.error("etcd lease renewal failed: %r; restarting it", task.exception())
            self._task = asyncio.ensure_future(self._keepalive())
            self._task.add_done_callback(self._keepalive_ended)

    async def _keepalive(self) -> None:
        interval = self.lease_ttl / 3.0
        while True:
            sent = self.loop.time()
            try:
                ttl = await self.etcd.keepalive(self.lease)
            except EtcdUnavailable as exc:
                if self.etcd_down_since is None:
                    self.etcd_down_since = time.time()
                    log.error("etcd unreachable (%s): definitions cannot change until it is back", exc)
                self.check()
                await asyncio.sleep(min(interval, 0.25))
                continue
            if ttl <= 0:
                await self._lost()
            else:
                self._renewed(sent, ttl)
            await asyncio.sleep(max(0.0, interval - (self.loop.time() - sent)))

    async def _lost(self) -> None:
        log.error("node %s lost its etcd lease: stepping down and joining again", self.me.name)
        if not self.frozen:
            self.frozen = True
            self.on_freeze(True)
        await self.on_lease_lost()
        while True:
            try:
                await self._register()
                return
            except EtcdUnavailable:
                await asyncio.sleep(0.25)

    async def leave(self) -> None:
        if self._task is not None:
            self._task.cancel()
        if self._deadline_timer is not None:
            self._deadline_timer.cancel()
        if self.lease:
            try:
                await self.etcd.revoke(self.lease)
            except EtcdUnavailable:
                pass
