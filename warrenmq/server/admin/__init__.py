"""NodeAdmin: the management interface (warrenmq/admin.py) implemented over a running node.

This is the one place where management reaches broker and server internals.  Reads build
snapshots from the objects' plain counters (nothing is tracked per message for management);
writes go through the broker model's own methods, so that they persist and apply policies
exactly as AMQP operations do.  Operations "as" a user check that user's permissions the
way the AMQP channel does; broker errors become ``AdminError``s carrying RabbitMQ's text.

Its parts, by concern: base.py (lookups, permission checks, conversions), node.py, live.py
(connections, channels, consumers), topology.py (exchanges, queues, bindings), messages.py
(publish, get), moving.py (messages from queue to queue) and access.py (vhosts, users,
permissions, policies, definitions).  A cluster node's is ClusterAdmin (cluster.py): changes
go through etcd, queues led elsewhere answer through their leader.
"""

from __future__ import annotations

from typing import Any

from warrenmq import admin
from warrenmq.server.admin.access import AccessOps
from warrenmq.server.admin.base import plain
from warrenmq.server.admin.live import LiveViews
from warrenmq.server.admin.messages import MessageOps
from warrenmq.server.admin.moving import MoveOps
from warrenmq.server.admin.node import NodeViews
from warrenmq.server.admin.topology import TopologyOps

ALIVENESS_QUEUE = "aliveness-test"


class NodeAdmin(NodeViews, LiveViews, TopologyOps, MessageOps, MoveOps, AccessOps):
    """``warrenmq.admin.Admin`` over a Node."""

    def aliveness_test(self, vhost: str, as_user: str | None = None) -> None:
        """As RabbitMQ: declare 'aliveness-test', publish a message to it and get it back."""
        self._vhost(vhost)
        self.declare_queue(vhost, ALIVENESS_QUEUE, False, False, {}, as_user)
        self.publish(vhost, "", ALIVENESS_QUEUE, b"test_message", {}, as_user)
        if not self.get_messages(vhost, ALIVENESS_QUEUE, 1, "ack_requeue_false", as_user):
            raise admin.BadRequest("aliveness-test queue is empty")

    # -- the cluster-mode interface on a single node: nothing to wait for ----------------------

    def cluster(self) -> admin.ClusterInfo | None:
        return None

    async def settled(self) -> None:
        pass

    async def declare_exchange_async(
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
        return self.declare_exchange(vhost, name, type_, durable, auto_delete, internal, arguments, as_user)

    async def delete_exchange_async(
        self, vhost: str, name: str, if_unused: bool = False, as_user: str | None = None
    ) -> None:
        self.delete_exchange(vhost, name, if_unused, as_user)

    async def declare_queue_async(
        self,
        vhost: str,
        name: str,
        durable: bool,
        auto_delete: bool,
        arguments: dict[str, Any],
        as_user: str | None = None,
    ) -> bool:
        return self.declare_queue(vhost, name, durable, auto_delete, arguments, as_user)

    async def delete_queue_async(
        self, vhost: str, name: str, if_unused: bool = False, if_empty: bool = False, as_user: str | None = None
    ) -> int:
        return self.delete_queue(vhost, name, if_unused, if_empty, as_user)

    async def purge_queue_async(self, vhost: str, name: str, as_user: str | None = None) -> int:
        return self.purge_queue(vhost, name, as_user)

    async def bind_async(
        self,
        vhost: str,
        source: str,
        destination_type: str,
        destination: str,
        routing_key: str,
        arguments: dict[str, Any],
        as_user: str | None = None,
    ) -> None:
        self.bind(vhost, source, destination_type, destination, routing_key, arguments, as_user)

    async def unbind_async(
        self,
        vhost: str,
        source: str,
        destination_type: str,
        destination: str,
        routing_key: str,
        arguments: dict[str, Any],
        as_user: str | None = None,
    ) -> None:
        self.unbind(vhost, source, destination_type, destination, routing_key, arguments, as_user)

    async def get_messages_async(
        self, vhost: str, queue: str, count: int, ackmode: str, as_user: str | None = None
    ) -> list[admin.GotMessage]:
        return self.get_messages(vhost, queue, count, ackmode, as_user)

    async def aliveness_test_async(self, vhost: str, as_user: str | None = None) -> None:
        self.aliveness_test(vhost, as_user)

    async def import_definitions_async(self, doc: dict[str, Any], vhost: str | None = None) -> None:
        self.import_definitions(doc, vhost)


__all__ = ["ALIVENESS_QUEUE", "NodeAdmin", "plain"]
