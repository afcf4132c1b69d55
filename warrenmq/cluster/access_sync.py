"""Vhosts, users, permissions and policies shared through etcd.

These change through the management API and warrenctl (NodeAdmin), which change the local
model and say so (``definitions_changed``).  The sync compares the model with what etcd
holds (``known``, kept current by the watch) and writes the difference; the watch applies
other nodes' changes to the model and to ``known`` in one go, so a comparison never sees
one without the other.  Records are entries of RabbitMQ's definitions format.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from warrenmq import definitions
from warrenmq.broker.policies import Policy
from warrenmq.broker.users import HASHING_SHA256, Permission, User
from warrenmq.cluster import keys as records
from warrenmq.cluster.etcd import Change, EtcdUnavailable

if TYPE_CHECKING:
    from warrenmq.cluster.cluster import Cluster

log = logging.getLogger("warrenmq.cluster.access")

ACCESS_KINDS = frozenset({"vhost", "user", "permission", "topic-permission", "policy"})


class AccessSync:
    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.keys = cluster.keys
        self.known: dict[bytes, bytes] = {}
        self._scheduled = False
        self._running: asyncio.Task[None] | None = None
        self._again = False
        self.failure: str | None = None  # why the last sync did not reach etcd (None: it did)
        self._idle = asyncio.Event()
        self._idle.set()

    # -- model -> etcd --------------------------------------------------------------------

    def desired(self) -> dict[bytes, bytes]:
        broker = self.cluster.node.broker
        keys = self.keys
        doc = definitions.access(broker)
        out: dict[bytes, bytes] = {}
        for entry in doc["vhosts"]:
            out[keys.vhost(entry["name"])] = records.dump(entry)
        for entry in doc["users"]:
            out[keys.user(entry["name"])] = records.dump(entry)
        for entry in doc["permissions"]:
            out[keys.permission(entry["vhost"], entry["user"])] = records.dump(entry)
        for entry in doc["topic_permissions"]:
            out[keys.topic_permission(entry["vhost"], entry["user"], entry["exchange"])] = records.dump(entry)
        for entry in definitions.policies(list(broker.vhosts.values())):
            out[keys.policy(entry["vhost"], entry["name"])] = records.dump(entry)
        return out

    def schedule(self) -> None:
        if self._scheduled:
            return
        self._scheduled = True
        self._idle.clear()
        self.cluster.loop.call_soon(self._start)

    def _start(self) -> None:
        self._scheduled = False
        if self._running is not None and not self._running.done():
            self._again = True
            return
        self._running = self.cluster.spawn(self._sync())

    async def _sync(self) -> None:
        try:
            while True:
                self._again = False
                desired = self.desired()
                puts = [(k, v) for k, v in desired.items() if self.known.get(k) != v]
                deletes = [k for k in self.known if k not in desired]
                revision = 0
                for key, value in puts:
                    revision = max(revision, await self.cluster.etcd.put(key, value))
                for key in deletes:
                    revision = max(revision, await self.cluster.etcd.delete(key))
                for key in deletes:
                    if key.startswith(self.keys.vhost("")):
                        revision = max(revision, await self._drop_vhost_records(self.keys.parse(key)[-1]))
                if revision:
                    await self.cluster.metadata.wait_applied(revision)
                if not self._again:
                    self.failure = None
                    return
        except EtcdUnavailable as exc:
            self.failure = f"etcd unreachable ({exc})"
            log.error("definitions not written to etcd (%s): they differ from the cluster's until it is back", exc)
        finally:
            if not self._scheduled:
                self._idle.set()

    async def _drop_vhost_records(self, vhost: str) -> int:
        """A deleted vhost takes its exchanges, queues and bindings along."""
        revision = 0
        for kind in ("exchange", "queue", "binding", "policy", "permission"):
            prefix = self.keys.root + f"defs/{kind}/".encode() + records.quote_part(vhost) + b"/"

            async def op(client: Any, prefix: bytes = prefix) -> int:
                result = await client.delete_prefix(prefix)
                return int(result.header.revision)

            revision = max(revision, await self.cluster.etcd.call(op))
        return revision

    async def settled(self) -> None:
        """Wait until what the model changed is in etcd (management API requests); if it
        could not be written, ``failure`` says why."""
        await self._idle.wait()

    # -- etcd -> model --------------------------------------------------------------------

    def apply(self, kind: str, parts: list[str], change: Change) -> None:
        if change.value is None:
            self.known.pop(change.key, None)
        else:
            self.known[change.key] = change.value
        node = self.cluster.node
        broker = node.broker
        users = broker.users
        value = records.load(change.value) if change.value is not None else None
        if kind == "vhost":
            name = parts[0]
            if value is None:
                vhost = broker.vhosts.get(name)
                if vhost is not None:
                    for conn in list(node.connections):
                        if conn.vhost is vhost:
                            conn.close(320, f"vhost '{name}' is deleted")
                    broker.delete_vhost(name)
            else:
                vhost = broker.add_vhost(name)
                vhost.description = str(value.get("description", "") or "")
                tags = value.get("tags", [])
                vhost.tags = tags.split(",") if isinstance(tags, str) else list(tags or [])
                vhost.limits = dict(value.get("limits") or {})
        elif kind == "user":
            name = parts[0]
            if value is None:
                users.users.pop(name, None)
                for key in [k for k in users.permissions if k[0] == name]:
                    del users.permissions[key]
            else:
                tags = value.get("tags", [])
                if isinstance(tags, str):
                    tags = [t for t in tags.split(",") if t]
                users.users[name] = User(
                    name, value.get("password_hash", ""), list(tags), value.get("hashing_algorithm", HASHING_SHA256)
                )
        elif kind == "permission":
            vhost_name, user = parts
            if value is None:
                users.permissions.pop((user, vhost_name), None)
            else:
                users.permissions[(user, vhost_name)] = Permission(
                    user, vhost_name, value.get("configure", ""), value.get("write", ""), value.get("read", "")
                )
        elif kind == "topic-permission":
            vhost_name, user, exchange = parts
            if value is None:
                users.topic_permissions.pop((user, vhost_name, exchange), None)
            else:
                users.topic_permissions[(user, vhost_name, exchange)] = (
                    value.get("write", ".*"),
                    value.get("read", ".*"),
                )
        elif kind == "policy":
            vhost_name, name = parts
            vhost = broker.vhosts.get(vhost_name)
            if vhost is not None:
                if value is None:
                    if name in vhost.policies:
                        vhost.clear_policy(name)
                else:
                    vhost.set_policy(Policy.from_json(value))
        node.access.changed()
