"""NodeAdmin's exchanges, queues and bindings."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from warrenmq import admin
from warrenmq.broker.exchanges import DelayedExchange, Exchange
from warrenmq.server.admin.base import MESSAGE_OVERHEAD, QUEUE_STATS, AdminBase, amqp_errors, plain, to_table

if TYPE_CHECKING:
    from warrenmq.broker.queue import Queue
    from warrenmq.broker.vhost import VHost


class TopologyOps(AdminBase):
    """Exchanges, queues and bindings: snapshots, declarations and deletions."""

    def _exchange_info(self, vhost: VHost, x: Exchange) -> admin.ExchangeInfo:
        return admin.ExchangeInfo(
            name=x.name,
            vhost=vhost.name,
            type=x.TYPE,
            durable=x.durable,
            auto_delete=x.auto_delete,
            internal=x.internal,
            arguments=plain(x.arguments),
            policy=x.policy,
            message_stats=x.stats.as_dict(),
            messages_delayed=x.messages_delayed if isinstance(x, DelayedExchange) else None,
        )

    def exchanges(self, vhost: str | None = None) -> list[admin.ExchangeInfo]:
        return [self._exchange_info(v, x) for v in self._vhosts(vhost) for x in list(v.exchanges.values())]

    def exchange(self, vhost: str, name: str) -> admin.ExchangeInfo:
        v = self._vhost(vhost)
        x = v.exchanges.get(name)
        if x is None:
            raise admin.NotFound(f"no exchange '{name}' in vhost '{vhost}'", 404)
        return self._exchange_info(v, x)

    def declare_exchange(
        self,
        vhost: str,
        name: str,
        type_: str,
        durable: bool,
        auto_delete: bool,
        internal: bool,
        arguments: dict[str, Any],
        as_user: str | None = None,
    ) -> bool:
        v = self._vhost(vhost)
        self._check_vhost_access(as_user, vhost)
        self._check(as_user, vhost, "configure", "exchange", name)
        created = name not in v.exchanges
        with amqp_errors():
            exchange = v.declare_exchange(name, type_, durable, auto_delete, internal, to_table(arguments))
        self.n.exchange_declared(v, exchange)
        return created

    def delete_exchange(self, vhost: str, name: str, if_unused: bool = False, as_user: str | None = None) -> None:
        v = self._vhost(vhost)
        self._check_vhost_access(as_user, vhost)
        if name not in v.exchanges:
            raise admin.NotFound(f"no exchange '{name}' in vhost '{vhost}'", 404)
        self._check(as_user, vhost, "configure", "exchange", name)
        with amqp_errors():
            v.delete_exchange(name, if_unused)

    def _unacked_bytes(self) -> dict[int, int]:
        out: dict[int, int] = {}
        for ch in self._all_channels():
            for message in ch.unacked.values():
                queue = message.queue
                if queue is not None:
                    out[id(queue)] = out.get(id(queue), 0) + len(message.body)
        return out

    def _queue_info(self, vhost: VHost, q: Queue, unacked_bytes: dict[int, int]) -> admin.QueueInfo:
        stats = q.stats
        counters = {key: getattr(stats, key, 0) for key in QUEUE_STATS}
        counters["deliver_get"] = (
            counters["deliver"] + counters["deliver_no_ack"] + counters["get"] + counters["get_no_ack"]
        )
        owner = q.exclusive_owner
        policy = vhost.policies.get(q.policy) if q.policy else None
        consumers = q.consumers()
        exclusive_tag = next((c.tag for c in consumers if c.exclusive), None)
        single_active = q.single_active
        ready = q.message_count
        paged = getattr(q, "paged_count", 0)
        in_memory = ready - paged + q.unacked
        idle = q.consumer_count == 0
        return admin.QueueInfo(
            name=q.name,
            vhost=vhost.name,
            type=q.settings.queue_type,
            durable=q.durable,
            auto_delete=q.auto_delete,
            exclusive=owner is not None,
            owner=getattr(owner, "name", None) if owner is not None else None,
            arguments=plain(q.arguments),
            policy=q.policy,
            effective_policy_definition=dict(policy.definition) if policy is not None else {},
            state="running",
            messages_ready=ready,
            messages_unacknowledged=q.unacked,
            messages_paged_out=paged,
            message_bytes_ready=q.ready_bytes,
            message_bytes_unacknowledged=unacked_bytes.get(id(q), 0),
            consumers=q.consumer_count,
            active_consumers=(1 if single_active is not None else 0) if q.settings.single_active else q.consumer_count,
            exclusive_consumer_tag=exclusive_tag,
            single_active_consumer_tag=single_active.tag if single_active is not None else None,
            memory=2048 + in_memory * MESSAGE_OVERHEAD + q.ready_bytes,
            idle_since=self._epoch(q.last_used) if idle else None,
            message_stats=counters,
            node=self.n.node_name,
            leader=self.n.node_name if q.is_quorum else "",
            members=[self.n.node_name] if q.is_quorum else [],
            online=[self.n.node_name] if q.is_quorum else [],
            messages_delayed=q.messages_delayed,
        )

    def queues(self, vhost: str | None = None) -> list[admin.QueueInfo]:
        unacked = self._unacked_bytes()
        return [self._queue_info(v, q, unacked) for v in self._vhosts(vhost) for q in list(v.queues.values())]

    def queue_names(self, vhost: str | None = None) -> list[tuple[str, str]]:
        return [(v.name, name) for v in self._vhosts(vhost) for name in list(v.queues)]

    def queues_named(self, names: list[tuple[str, str]]) -> list[admin.QueueInfo]:
        unacked = self._unacked_bytes()
        out = []
        for vhost, name in names:
            v = self.broker.vhosts.get(vhost)
            q = v.queues.get(name) if v is not None else None
            if v is not None and q is not None:
                out.append(self._queue_info(v, q, unacked))
        return out

    def queue(self, vhost: str, name: str) -> admin.QueueInfo:
        v = self._vhost(vhost)
        q = v.queues.get(name)
        if q is None:
            raise admin.NotFound(f"no queue '{name}' in vhost '{vhost}'", 404)
        return self._queue_info(v, q, self._unacked_bytes())

    def declare_queue(
        self,
        vhost: str,
        name: str,
        durable: bool,
        auto_delete: bool,
        arguments: dict[str, Any],
        as_user: str | None = None,
    ) -> bool:
        v = self._vhost(vhost)
        if len(name.encode()) > 255:
            raise admin.BadRequest(f"queue name '{name}' is too long")
        self._check_vhost_access(as_user, vhost)
        self._check(as_user, vhost, "configure", "queue", name)
        created = name not in v.queues
        with amqp_errors():
            self.n.check_queue_limit(v, name)
            queue = v.declare_queue(name, durable, False, auto_delete, to_table(arguments))
        self.n.queue_declared(v, queue)
        return created

    def delete_queue(
        self, vhost: str, name: str, if_unused: bool = False, if_empty: bool = False, as_user: str | None = None
    ) -> int:
        v = self._vhost(vhost)
        self._check_vhost_access(as_user, vhost)
        if name not in v.queues:
            raise admin.NotFound(f"no queue '{name}' in vhost '{vhost}'", 404)
        self._check(as_user, vhost, "configure", "queue", name)
        with amqp_errors():
            return v.delete_queue(name, if_unused, if_empty)

    def purge_queue(self, vhost: str, name: str, as_user: str | None = None) -> int:
        v = self._vhost(vhost)
        self._check_vhost_access(as_user, vhost)
        if name not in v.queues:
            raise admin.NotFound(f"no queue '{name}' in vhost '{vhost}'", 404)
        self._check(as_user, vhost, "read", "queue", name)
        with amqp_errors():
            return v.purge_queue(name)

    def bindings(self, vhost: str | None = None) -> list[admin.BindingInfo]:
        out = []
        for v in self._vhosts(vhost):
            for q in list(v.queues.values()):
                out.append(admin.BindingInfo("", v.name, q.name, "queue", q.name, {}))
            for b in list(v.bindings()):
                destination = b.destination
                kind = "exchange" if isinstance(destination, Exchange) else "queue"
                out.append(
                    admin.BindingInfo(b.source.name, v.name, destination.name, kind, b.routing_key, plain(b.arguments))
                )
        return out

    def _destination(self, v: VHost, destination_type: str, name: str) -> Any:
        if destination_type in ("e", "exchange"):
            x = v.exchanges.get(name)
            if x is None:
                raise admin.NotFound(f"no exchange '{name}' in vhost '{v.name}'", 404)
            return x
        q = v.queues.get(name)
        if q is None:
            raise admin.NotFound(f"no queue '{name}' in vhost '{v.name}'", 404)
        return q

    def _binding_checks(
        self, v: VHost, source: str, destination_type: str, destination: str, as_user: str | None
    ) -> Any:
        self._check_vhost_access(as_user, v.name)
        if source and source not in v.exchanges:
            raise admin.NotFound(f"no exchange '{source}' in vhost '{v.name}'", 404)
        target = self._destination(v, destination_type, destination)
        kind = "exchange" if isinstance(target, Exchange) else "queue"
        self._check(as_user, v.name, "write", kind, destination)
        self._check(as_user, v.name, "read", "exchange", source)
        return target

    def bind(
        self,
        vhost: str,
        source: str,
        destination_type: str,
        destination: str,
        routing_key: str,
        arguments: dict[str, Any],
        as_user: str | None = None,
    ) -> None:
        v = self._vhost(vhost)
        target = self._binding_checks(v, source, destination_type, destination, as_user)
        with amqp_errors():
            if getattr(target, "exclusive_owner", None) is not None:
                v.queue(target.name)  # raises RESOURCE_LOCKED, as for another connection
            v.bind(target, source, routing_key, to_table(arguments))

    def unbind(
        self,
        vhost: str,
        source: str,
        destination_type: str,
        destination: str,
        routing_key: str,
        arguments: dict[str, Any],
        as_user: str | None = None,
    ) -> None:
        v = self._vhost(vhost)
        target = self._binding_checks(v, source, destination_type, destination, as_user)
        with amqp_errors():
            v.unbind(target, source, routing_key, to_table(arguments))
