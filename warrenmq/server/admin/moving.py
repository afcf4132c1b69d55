"""NodeAdmin's move: ready messages from one queue to another, as a shovel would move them.

Each message is taken from the source as an unacknowledged get, published to the destination
(a copy with the same bytes and properties, persisted there when it is persistent and the
destination durable) and only then acknowledged in the source: a crash in between leaves it in
both queues, never in neither.  A destination that refuses a message (x-overflow
reject-publish) stops the move and the message goes back to the source's head.
"""

from __future__ import annotations

from warrenmq import admin
from warrenmq.server.admin.base import AdminBase, amqp_errors


class MoveOps(AdminBase):
    def move_messages(self, vhost: str, queue: str, destination: str, count: int, as_user: str | None = None) -> int:
        v = self._vhost(vhost)
        self._check_vhost_access(as_user, vhost)
        self._check(as_user, vhost, "read", "queue", queue)
        self._check(as_user, vhost, "write", "queue", destination)
        with amqp_errors():
            source = v.queue(queue)
            target = v.queue(destination)
        if source is target:
            raise admin.BadRequest("the destination is the queue itself")
        moved = 0
        while moved < count:
            with amqp_errors():  # a stream refuses gets: 400, as its purge
                message = source.get(False)
            if message is None:
                break
            if not target.publish(message.copy()):
                source.requeue([message])
                break
            source.ack(message)
            moved += 1
        return moved
