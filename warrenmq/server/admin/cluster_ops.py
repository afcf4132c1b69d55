"""The operations of a cluster node that go through etcd or through another node.

The checks are the single node's (same errors, same order); what differs is what differs for
an AMQP channel (server/cluster_channel.py):

- exchanges, queues and bindings are declared and deleted by writing to etcd, and the answer
  waits until this node has applied the revision written (``Cluster.write``);
- purge, get and delete of a queue led by another node (a ``RemoteQueue``) are asked of its
  leader over the link;
- while etcd is known to be out of reach nothing is written (503), and while the node cannot
  be sure of its membership (frozen) no message moves either.
"""

from __future__ import annotations

import asyncio
import datetime
from collections.abc import Awaitable, Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

from warrenmq import admin
from warrenmq.amqp.errors import AMQPError
from warrenmq.broker.exchanges import Exchange
from warrenmq.broker.queue_args import validate_declare
from warrenmq.cluster.remote_queue import RemoteQueue
from warrenmq.server.admin import ALIVENESS_QUEUE, NodeAdmin
from warrenmq.server.admin.base import amqp_errors, to_table
from warrenmq.server.admin.messages import got_message

if TYPE_CHECKING:
    from warrenmq.broker.queue import Queue
    from warrenmq.broker.vhost import VHost
    from warrenmq.cluster.cluster import Cluster
    from warrenmq.server.node import Node

T = TypeVar("T")

# How long a request waits for etcd or another node; an etcd call gives up after 2 x 3 s.
WAIT_TIMEOUT = 10.0
# How long a change waits for the other running nodes to have applied it too.
EVERYWHERE_TIMEOUT = 2.0


def _retrieve(future: asyncio.Future[Any]) -> None:
    """An answer nobody waits for any more (the request timed out) is dropped quietly."""
    if not future.cancelled():
        future.exception()


class ClusterOps(NodeAdmin):
    """NodeAdmin's writes, purge and get on a cluster node."""

    def __init__(self, node: Node) -> None:
        super().__init__(node)
        assert node.cluster is not None
        self.c: Cluster = node.cluster

    def _serving(self) -> None:
        """Messages move only while this node is sure of its membership (as for AMQP input)."""
        if not self.c.topology.ready:  # the API listens before the node has joined
            raise admin.Unavailable(f"node {self.c.node_name} has not joined its cluster yet")
        if not self.c.check():
            raise admin.Unavailable(
                f"node {self.c.node_name} cannot be sure it is still a cluster member (etcd out of reach): "
                "it serves nothing until etcd answers"
            )

    def _writable(self) -> None:
        """Definitions change only through etcd."""
        self._serving()
        down_since = self.c.membership.etcd_down_since
        if down_since is not None:
            since = datetime.datetime.fromtimestamp(down_since, datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
            raise admin.Unavailable(
                f"etcd is out of reach of node {self.c.node_name} since {since}: "
                "definitions cannot change until it is back"
            )

    async def _wait(self, future: Awaitable[T]) -> T:
        """The answer of a write to etcd or of a request to another node, as admin errors."""
        task = asyncio.ensure_future(future)
        task.add_done_callback(_retrieve)
        try:
            return await asyncio.wait_for(asyncio.shield(task), WAIT_TIMEOUT)
        except TimeoutError:
            raise admin.Unavailable(f"no answer from the cluster within {WAIT_TIMEOUT:g} s") from None
        except AMQPError as exc:
            if exc.reply_code == 541:  # etcd unreachable, or a broken reply from another node
                raise admin.Unavailable(exc.explanation) from None
            with amqp_errors():
                raise

    async def _everywhere(self) -> None:
        """Answer a change once every running node has it (a queue declared here can be used on
        any node right after the reply), unless one does not say so within EVERYWHERE_TIMEOUT."""
        await self.c.applied_everywhere(self.c.metadata.applied, EVERYWHERE_TIMEOUT)

    async def _write(self, write: Coroutine[Any, Any, int]) -> int:
        """A definitions write to etcd, answered once applied here and on the running nodes
        (``Cluster.write`` waits for both)."""
        return int(await self._wait(self.c.write(write)))

    # -- exchanges, queues and bindings: through etcd ---------------------------------------------

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
        v = self._vhost(vhost)
        if name == "" or name in v.exchanges:  # refused, or an equivalence check: nothing to write
            return self.declare_exchange(vhost, name, type_, durable, auto_delete, internal, arguments, as_user)
        self._check_vhost_access(as_user, vhost)
        self._check(as_user, vhost, "configure", "exchange", name)
        args = to_table(arguments)
        with amqp_errors():
            v.check_new_exchange(name, type_, args)
        self._writable()
        topology = self.c.topology
        revision = await self._write(topology.create_exchange(vhost, name, type_, durable, auto_delete, internal, args))
        if name not in v.exchanges:
            raise admin.Unavailable(f"exchange '{name}' in vhost '{vhost}' was deleted meanwhile")
        with amqp_errors():  # another node's declaration may have come first: it must be equivalent
            exchange = v.declare_exchange(name, type_, durable, auto_delete, internal, args)
        self.n.exchange_declared(v, exchange)
        return bool(revision)

    async def delete_exchange_async(
        self, vhost: str, name: str, if_unused: bool = False, as_user: str | None = None
    ) -> None:
        v = self._vhost(vhost)
        self._check_vhost_access(as_user, vhost)
        if name not in v.exchanges:
            raise admin.NotFound(f"no exchange '{name}' in vhost '{vhost}'", 404)
        self._check(as_user, vhost, "configure", "exchange", name)
        with amqp_errors():
            exchange = v.check_delete_exchange(name, if_unused)
        if exchange is None:
            return
        self._writable()
        await self._write(self.c.topology.delete_exchange(vhost, exchange))

    async def declare_queue_async(
        self,
        vhost: str,
        name: str,
        durable: bool,
        auto_delete: bool,
        arguments: dict[str, Any],
        as_user: str | None = None,
    ) -> bool:
        v = self._vhost(vhost)
        if name in v.queues or name.startswith("amq.") or len(name.encode()) > 255:
            # an equivalence check, or refused: nothing to write
            return self.declare_queue(vhost, name, durable, auto_delete, arguments, as_user)
        self._check_vhost_access(as_user, vhost)
        self._check(as_user, vhost, "configure", "queue", name)
        args = to_table(arguments)
        with amqp_errors():
            self.n.check_queue_limit(v, name)
            settings = validate_declare(args, name, vhost, durable, False, auto_delete)
        self._writable()
        topology = self.c.topology
        revision = await self._write(
            topology.create_queue(vhost, name, durable, False, auto_delete, args, settings.queue_type, "")
        )
        if name not in v.queues:
            raise admin.Unavailable(f"queue '{name}' in vhost '{vhost}' could not be declared")
        with amqp_errors():  # another node's declaration may have come first: it must be equivalent
            queue = v.declare_queue(name, durable, False, auto_delete, args)
        self.n.queue_declared(v, queue)
        return bool(revision)

    def _existing_queue(self, vhost: str, name: str, permission: str, as_user: str | None) -> Queue:
        v = self._vhost(vhost)
        self._check_vhost_access(as_user, vhost)
        if name not in v.queues:
            raise admin.NotFound(f"no queue '{name}' in vhost '{vhost}'", 404)
        self._check(as_user, vhost, permission, "queue", name)
        with amqp_errors():
            return v.queue(name)  # another connection's exclusive queue: 405, as on a single node

    async def delete_queue_async(
        self, vhost: str, name: str, if_unused: bool = False, if_empty: bool = False, as_user: str | None = None
    ) -> int:
        queue = self._existing_queue(vhost, name, "configure", as_user)
        self._writable()
        return int(await self._wait(self.c.delete_queue(queue, if_unused, if_empty)))  # applied everywhere

    async def purge_queue_async(self, vhost: str, name: str, as_user: str | None = None) -> int:
        queue = self._existing_queue(vhost, name, "read", as_user)
        self._serving()
        if not isinstance(queue, RemoteQueue):
            return self.purge_queue(vhost, name, as_user)
        return int(await self._wait(self.c.purge(queue)))

    def _binding_target(
        self, v: VHost, source: str, destination_type: str, destination: str, as_user: str | None
    ) -> Any:
        target = self._binding_checks(v, source, destination_type, destination, as_user)
        if source == "" or (isinstance(target, Exchange) and target.name == ""):
            raise admin.AccessRefused("operation not permitted on the default exchange", 403)
        return target

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
        v = self._vhost(vhost)
        target = self._binding_target(v, source, destination_type, destination, as_user)
        args = to_table(arguments)
        with amqp_errors():
            if getattr(target, "exclusive_owner", None) is not None:
                v.queue(target.name)  # raises RESOURCE_LOCKED, as for another connection
            v.check_bind(source, args)
        if v.has_binding(target, source, routing_key, args):
            return
        self._writable()
        kind = "exchange" if isinstance(target, Exchange) else "queue"
        await self._write(self.c.topology.bind(vhost, source, kind, target.name, routing_key, args))

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
        v = self._vhost(vhost)
        target = self._binding_target(v, source, destination_type, destination, as_user)
        args = to_table(arguments)
        if not v.has_binding(target, source, routing_key, args):
            return
        self._writable()
        exchange = v.exchanges.get(source)
        auto_delete = exchange is not None and exchange.auto_delete
        kind = "exchange" if isinstance(target, Exchange) else "queue"
        topology = self.c.topology
        await self._write(topology.unbind(vhost, source, kind, target.name, routing_key, args))
        if auto_delete and source not in v.exchanges:
            # Its last binding went: as on the AMQP path, the exchange goes from etcd too.
            self.c.spawn(topology.delete_unused_exchange(vhost, source))

    # -- messages --------------------------------------------------------------------------------

    def publish(
        self,
        vhost: str,
        exchange: str,
        routing_key: str,
        payload: bytes,
        properties: dict[str, Any],
        as_user: str | None = None,
    ) -> bool:
        self._serving()
        return super().publish(vhost, exchange, routing_key, payload, properties, as_user)

    async def get_messages_async(
        self, vhost: str, queue: str, count: int, ackmode: str, as_user: str | None = None
    ) -> list[admin.GotMessage]:
        v = self._vhost(vhost)
        if ackmode not in admin.ACK_MODES:
            raise admin.BadRequest(f"unsupported ackmode '{ackmode}'")
        self._check_vhost_access(as_user, vhost)
        self._check(as_user, vhost, "read", "queue", queue)
        with amqp_errors():
            q = v.queue(queue)
        self._serving()
        if not isinstance(q, RemoteQueue):
            return self.get_messages(vhost, queue, count, ackmode, as_user)
        no_ack = ackmode == "ack_requeue_false"
        taken = []
        out: list[admin.GotMessage] = []
        try:
            for _ in range(max(0, count)):
                got = await self._wait(self.c.get(q, no_ack))
                if got is None:
                    break
                message, left = got
                if not no_ack:
                    taken.append(message)
                out.append(got_message(message, q.is_quorum, left))
        finally:
            # As on a single node: settled once all are taken (a requeued one would come back).
            if ackmode == "reject_requeue_false":
                for message in taken:
                    q.reject(message, False)
            elif taken:
                q.requeue(taken)
        return out

    async def aliveness_test_async(self, vhost: str, as_user: str | None = None) -> None:
        self._vhost(vhost)
        await self.declare_queue_async(vhost, ALIVENESS_QUEUE, False, False, {}, as_user)
        self.publish(vhost, "", ALIVENESS_QUEUE, b"test_message", {}, as_user)
        if not await self.get_messages_async(vhost, ALIVENESS_QUEUE, 1, "ack_requeue_false", as_user):
            raise admin.BadRequest("aliveness-test queue is empty")
