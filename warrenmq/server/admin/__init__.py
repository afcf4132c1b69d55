"""NodeAdmin: the management interface (warrenmq/admin.py) implemented over a running node.

This is the one place where management reaches broker and server internals.  Reads build
snapshots from the objects' plain counters (nothing is tracked per message for management);
writes go through the broker model's own methods, so that they persist and apply policies
exactly as AMQP operations do.  Operations "as" a user check that user's permissions the
way the AMQP channel does; broker errors become ``AdminError``s carrying RabbitMQ's text.

Its parts, by concern: base.py (lookups, permission checks, conversions), node.py, live.py
(connections, channels, consumers), topology.py (exchanges, queues, bindings), messages.py
(publish, get), moving.py (messages from queue to queue) and access.py (vhosts, users,
permissions, policies, definitions).
"""

from __future__ import annotations

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


__all__ = ["ALIVENESS_QUEUE", "NodeAdmin", "plain"]
