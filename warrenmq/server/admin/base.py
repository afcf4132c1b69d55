"""The shared part of NodeAdmin: the node, lookups, permission checks and conversions."""

from __future__ import annotations

import base64
import datetime
import decimal
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from warrenmq import admin
from warrenmq.amqp.errors import AMQPError
from warrenmq.amqp.values import FieldTable, untype
from warrenmq.broker.users import User

if TYPE_CHECKING:
    from warrenmq.broker.queue import Queue
    from warrenmq.broker.vhost import VHost
    from warrenmq.server.channel import Channel
    from warrenmq.server.connection import Connection
    from warrenmq.server.node import Node

QUEUE_STATS = ("publish", "deliver", "deliver_no_ack", "get", "get_no_ack", "ack", "redeliver")
ALARM_RESOURCES = {"memory": "memory", "disk": "disk space", "fd": "file descriptors"}
MESSAGE_OVERHEAD = 120  # rough bytes of bookkeeping per message held in memory


def plain(value: Any) -> Any:
    """A field-table value as JSON can carry it, and as RabbitMQ 3.10.8's management API shows
    it: a binary that is not UTF-8 as "Not UTF-8, base64 is: ..." (keys and short strings that
    are not UTF-8: see management/http.py's dumps)."""
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], str) and len(value[0]) == 1:
        value = untype(value)  # a TypedValue
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, bytes):
        try:
            return value.decode()
        except UnicodeDecodeError:
            return "Not UTF-8, base64 is: " + base64.b64encode(value).decode()
    if isinstance(value, datetime.datetime):
        return int(value.timestamp())
    if isinstance(value, decimal.Decimal):
        return float(value)
    return value


def to_table(arguments: dict[str, Any] | None) -> FieldTable:
    try:
        return FieldTable.of(arguments or {})
    except ValueError as exc:
        raise admin.BadRequest(str(exc)) from None


@contextmanager
def amqp_errors() -> Iterator[None]:
    """Broker errors (AMQP reply codes) as admin errors."""
    try:
        yield
    except AMQPError as exc:
        cls: type[admin.AdminError]
        if exc.reply_code == 404:
            cls = admin.NotFound
        elif exc.reply_code in (403, 530):
            cls = admin.AccessRefused
        else:
            cls = admin.BadRequest
        raise cls(exc.explanation, exc.reply_code) from None


def user_info(user: User) -> admin.UserInfo:
    return admin.UserInfo(user.name, user.password_hash, user.hashing_algorithm, list(user.tags), {})


class AdminBase:
    """State and helpers every part of NodeAdmin uses."""

    def __init__(self, node: Node) -> None:
        self.n = node
        self.broker = node.broker
        # Counters of queues gone, per vhost, so that totals do not go backwards.
        self._retired: dict[str, dict[str, int]] = {}
        self._hooked: weakref.WeakSet[VHost] = weakref.WeakSet()

    def _vhost(self, name: str) -> VHost:
        vhost = self.broker.vhosts.get(name)
        if vhost is None:
            raise admin.NotFound(f"no vhost '{name}'")
        self._hook(vhost)
        return vhost

    def _vhosts(self, name: str | None) -> list[VHost]:
        if name is not None:
            return [self._vhost(name)]
        vhosts = list(self.broker.vhosts.values())
        for vhost in vhosts:
            self._hook(vhost)
        return vhosts

    def _hook(self, vhost: VHost) -> None:
        """Keep the counters of deleted queues (VHost.queue_removed is meant for this)."""
        if vhost in self._hooked:
            return
        self._hooked.add(vhost)
        retired = self._retired.setdefault(vhost.name, dict.fromkeys(QUEUE_STATS, 0))

        def removed(queue: Queue) -> None:
            stats = queue.stats
            for key in QUEUE_STATS:
                retired[key] += getattr(stats, key, 0)

        vhost.queue_removed.append(removed)

    def _check(self, as_user: str | None, vhost: str, permission: str, kind: str, name: str) -> None:
        """The AMQP permission check: configure, write or read on a queue or exchange."""
        if as_user is None:
            return
        granted = self.broker.users.permission(as_user, vhost)
        resource_name = name if name or kind != "exchange" else "amq.default"
        allowed = granted is not None and getattr(granted, f"can_{permission}")(resource_name)
        if not allowed:
            raise admin.AccessRefused(f"access to {kind} '{name}' in vhost '{vhost}' refused for user '{as_user}'", 403)

    def _check_vhost_access(self, as_user: str | None, vhost: str) -> None:
        if as_user is not None and self.broker.users.permission(as_user, vhost) is None:
            raise admin.AccessRefused(f"access to vhost '{vhost}' refused for user '{as_user}'", 530)

    def _open_connections(self) -> list[Connection]:
        return [c for c in self.n.connections if c.vhost is not None and c.user is not None]

    def _epoch(self, loop_time: float) -> float:
        return time.time() - (self.n.loop.time() - loop_time)

    def _all_channels(self) -> Iterator[Channel]:
        for conn in self._open_connections():
            yield from list(conn.channels.values())

    def _queue_counts(self, q: Queue) -> tuple[int, int, int, dict[str, int]]:
        """A queue's ready and unacknowledged messages, its consumers and its counters
        (QUEUE_STATS); a cluster node has those of queues led elsewhere from their leader."""
        s = q.stats
        return q.message_count, q.unacked, q.consumer_count, {key: getattr(s, key, 0) for key in QUEUE_STATS}

    def _vhost_info(self, v: VHost) -> admin.VHostInfo:
        retired = self._retired.get(v.name, {})
        stats = dict.fromkeys(QUEUE_STATS, 0)
        ready = unacked = 0
        for q in v.queues.values():
            q_ready, q_unacked, _, counters = self._queue_counts(q)
            ready += q_ready
            unacked += q_unacked
            for key in QUEUE_STATS:
                stats[key] += counters[key]
        for key, value in retired.items():
            stats[key] = stats.get(key, 0) + value
        stats["deliver_get"] = stats["deliver"] + stats["deliver_no_ack"] + stats["get"] + stats["get_no_ack"]
        # Messages published into the vhost: what its exchanges received from publishers.
        stats["publish"] = sum(x.stats.publish_in for x in v.exchanges.values())
        recv = send = 0
        for conn in self._open_connections():
            if conn.vhost is v:
                recv += conn.recv_oct
                send += conn.send_oct
        return admin.VHostInfo(
            name=v.name,
            description=v.description,
            tags=list(v.tags),
            limits=dict(v.limits),
            messages_ready=ready,
            messages_unacknowledged=unacked,
            recv_oct=recv,
            send_oct=send,
            message_stats=stats,
        )
