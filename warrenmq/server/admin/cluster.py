"""ClusterAdmin: NodeAdmin on a cluster node (its writes: cluster_ops.py).

- every queue of the cluster is listed: one led by another node is a ``RemoteQueue`` whose
  counts are those its leader reported last (every 2 s), and whose state is "down" while its
  leader is out of reach; ``node`` is a queue's leader, and a quorum queue has its members;
- vhosts, users, permissions, policies and limits change in this node's model as on a single
  node and reach etcd through the access sync, which ``settled()`` waits for; they are refused
  up front while etcd is known to be out of reach;
- ``cluster()`` lists the members as etcd knows them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from warrenmq import admin
from warrenmq.cluster import wire
from warrenmq.cluster.remote_queue import RemoteQueue
from warrenmq.server.admin import NodeAdmin
from warrenmq.server.admin.base import MESSAGE_OVERHEAD, QUEUE_STATS
from warrenmq.server.admin.cluster_ops import ClusterOps

if TYPE_CHECKING:
    from warrenmq.broker.queue import Queue
    from warrenmq.broker.vhost import VHost

F = TypeVar("F", bound=Callable[..., Any])


def _changes_definitions(method: F) -> F:
    """A change of vhosts, users, permissions, policies or limits: refused up front while etcd is
    out of reach (the model would otherwise differ from the cluster's until it is back)."""

    def guarded(self: ClusterAdmin, *args: Any, **kwargs: Any) -> Any:
        self._writable()
        return method(self, *args, **kwargs)

    guarded.__name__ = method.__name__
    guarded.__doc__ = method.__doc__
    return guarded  # type: ignore[return-value]


class ClusterAdmin(ClusterOps):
    """``warrenmq.admin.Admin`` over a cluster node."""

    # -- the cluster ------------------------------------------------------------------------

    def cluster(self) -> admin.ClusterInfo:
        c = self.c
        members = []
        for name in sorted(c.members | set(c.nodes) | {c.node_name}):
            info = c.nodes.get(name)
            if info is None:
                members.append(admin.ClusterMember(name, False))
                continue
            members.append(
                admin.ClusterMember(
                    name,
                    True,
                    info.link_host,
                    info.amqp_port,
                    info.management_port,
                    info.link_port,
                    info.started,
                    info.incarnation,
                )
            )
        membership = c.membership
        return admin.ClusterInfo(c.address.name, c.node_name, members, membership.etcd_down_since, membership.frozen)

    def node(self) -> admin.NodeInfo:
        info = super().node()
        if self.c.me.link_port:
            info.listeners.append(admin.Listener("clustering", self.n.settings.host or "::", self.c.me.link_port))
        return info

    async def settled(self) -> None:
        access = self.c.access
        access.schedule()  # also for changes the model made without saying so (policies)
        await self._wait(access.settled())
        if access.failure is not None:
            raise admin.Unavailable(
                f"the change is made on node {self.c.node_name} but is not in the cluster: {access.failure}"
            )
        await self._everywhere()

    # -- queues led elsewhere ------------------------------------------------------------------

    def _queue_counts(self, q: Queue) -> tuple[int, int, int, dict[str, int]]:
        if not isinstance(q, RemoteQueue):
            return super()._queue_counts(q)
        stats = q.remote_stats
        counters = {key: int(stats.get(key, 0)) for key in QUEUE_STATS}
        return q.remote_ready, q.remote_unacked, q.remote_consumers, counters

    def _queue_info(self, vhost: VHost, q: Queue, unacked_bytes: dict[int, int]) -> admin.QueueInfo:
        info = super()._queue_info(vhost, q, unacked_bytes)
        topology = self.c.topology
        key = wire.queue_key(vhost.name, q.name)
        record = topology.queues.get(key)
        leader = topology.leader_of(key)
        if isinstance(q, RemoteQueue):
            ready, unacked, consumers, counters = self._queue_counts(q)
            counters["deliver_get"] = (
                counters["deliver"] + counters["deliver_no_ack"] + counters["get"] + counters["get_no_ack"]
            )
            info.messages_ready = ready
            info.messages_unacknowledged = unacked
            info.messages_paged_out = 0
            info.message_bytes_ready = q.remote_ready_bytes
            info.message_bytes_unacknowledged = 0  # the leader does not report it
            info.consumers = consumers
            info.active_consumers = min(consumers, 1) if q.settings.single_active else consumers
            info.memory = 2048 + (ready + unacked) * MESSAGE_OVERHEAD + q.remote_ready_bytes
            info.idle_since = None if consumers else self._epoch(q.last_used)
            info.message_stats = counters
            info.state = "running" if q.available else "down"
            info.node = leader or (record.home if record is not None else "")
        else:
            info.node = self.c.node_name
        if q.is_quorum:
            members = list(record.members) if record is not None else []
            info.leader = leader or ""
            info.members = members
            info.online = [m for m in members if self.c.is_live(m)]
        return info

    # -- vhosts, users, permissions, policies, definitions ----------------------------------------

    add_vhost = _changes_definitions(NodeAdmin.add_vhost)
    delete_vhost = _changes_definitions(NodeAdmin.delete_vhost)
    put_user = _changes_definitions(NodeAdmin.put_user)
    delete_user = _changes_definitions(NodeAdmin.delete_user)
    set_permissions = _changes_definitions(NodeAdmin.set_permissions)
    clear_permissions = _changes_definitions(NodeAdmin.clear_permissions)
    set_topic_permissions = _changes_definitions(NodeAdmin.set_topic_permissions)
    clear_topic_permissions = _changes_definitions(NodeAdmin.clear_topic_permissions)
    set_vhost_limit = _changes_definitions(NodeAdmin.set_vhost_limit)
    clear_vhost_limit = _changes_definitions(NodeAdmin.clear_vhost_limit)
    set_policy = _changes_definitions(NodeAdmin.set_policy)
    clear_policy = _changes_definitions(NodeAdmin.clear_policy)
    import_definitions = _changes_definitions(NodeAdmin.import_definitions)

    async def import_definitions_async(self, doc: dict[str, Any], vhost: str | None = None) -> None:
        """The access part through the model (and the sync), then exchanges, queues and bindings
        through etcd, each once what it refers to is there; existing objects are kept."""
        if not isinstance(doc, dict):
            raise admin.BadRequest("definitions must be a JSON object")
        topology_kinds = ("exchanges", "queues", "bindings")
        self.import_definitions({k: v for k, v in doc.items() if k not in topology_kinds}, vhost)

        def target(entry: dict[str, Any]) -> str:
            return vhost if vhost is not None else str(entry.get("vhost", "/"))

        try:
            for kind in topology_kinds:
                for entry in doc.get(kind) or []:
                    if target(entry) not in self.broker.vhosts:
                        self.add_vhost(target(entry))
            await self.settled()  # the vhosts and policies first
            for entry in doc.get("exchanges") or []:
                await self._import_exchange(target(entry), entry)
            for entry in doc.get("queues") or []:
                await self._import_queue(target(entry), entry)
            for entry in doc.get("bindings") or []:
                await self._import_binding(target(entry), entry)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise admin.BadRequest(f"invalid definitions: {exc}") from None

    async def _import_exchange(self, vhost: str, entry: dict[str, Any]) -> None:
        if entry["name"] in self._vhost(vhost).exchanges:
            return
        await self.declare_exchange_async(
            vhost,
            entry["name"],
            entry.get("type", "direct"),
            bool(entry.get("durable", True)),
            bool(entry.get("auto_delete", False)),
            bool(entry.get("internal", False)),
            entry.get("arguments") or {},
        )

    async def _import_queue(self, vhost: str, entry: dict[str, Any]) -> None:
        if entry["name"] in self._vhost(vhost).queues:
            return
        await self.declare_queue_async(
            vhost,
            entry["name"],
            bool(entry.get("durable", True)),
            bool(entry.get("auto_delete", False)),
            entry.get("arguments") or {},
        )

    async def _import_binding(self, vhost: str, entry: dict[str, Any]) -> None:
        v = self._vhost(vhost)
        kind = entry.get("destination_type", "queue")
        found = v.exchanges if kind == "exchange" else v.queues
        if entry["source"] not in v.exchanges or entry["destination"] not in found:
            return  # as on a single node: a binding to something missing is left out
        routing_key, arguments = entry.get("routing_key", ""), entry.get("arguments") or {}
        await self.bind_async(vhost, entry["source"], kind, entry["destination"], routing_key, arguments)
