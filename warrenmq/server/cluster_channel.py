"""A channel of a cluster node: definitions go through etcd, remote queues through the link.

The checks are the single node's (same errors, same texts, same order); what differs is
where a change is made and where an answer comes from:

- a new exchange, queue or binding (or its removal) is written to etcd, and the reply is
  sent once this node's model has applied that revision (``cluster.write``);
- a queue led by another node (a ``RemoteQueue``) answers basic.get, counts, purge and
  delete through the link, and registers consumers at its leader before consume-ok.

While such an answer is awaited, the connection holds the frames that follow (``after``):
the client sees every reply in the order it asked.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from warrenmq.amqp import spec
from warrenmq.amqp.errors import AMQPError, InternalError, NotFound, NotImplementedAMQP, PreconditionFailed
from warrenmq.amqp.values import FieldTable
from warrenmq.broker.consumer import Consumer
from warrenmq.broker.exchanges import Exchange
from warrenmq.broker.queue import Queue
from warrenmq.broker.queue_args import queue_display, validate_declare
from warrenmq.cluster.cluster import Cluster
from warrenmq.cluster.remote_queue import RemoteQueue
from warrenmq.server import reply_to
from warrenmq.server.channel import Channel


def _stream_elsewhere(queue: RemoteQueue) -> AMQPError:
    """Streams are not replicated: they are read on the node that holds them."""
    return PreconditionFailed(
        f"queue '{queue.name}' in vhost '{queue.vhost}' is a stream held by node {queue.leader}: "
        "consume from it on that node"
    )


def _table(table: Any) -> FieldTable:
    return table if isinstance(table, FieldTable) else FieldTable.of(table)


class ClusterChannel(Channel):
    @property
    def cluster(self) -> Cluster:
        cluster = self.node.cluster
        assert cluster is not None
        return cluster

    def after(self, future: Any, index: int, then: Callable[[Any], None]) -> None:
        """Run ``then(result)`` when ``future`` resolves, input held meanwhile; errors close
        the channel (or the connection) as the method's own would."""

        def resume(f: Any) -> None:
            if self.state != 0:
                return
            try:
                if f.cancelled():
                    raise InternalError("the operation was cancelled")
                exc = f.exception()
                if exc is not None:
                    raise exc
                then(f.result())
            except AMQPError as error:
                if not error.class_id:
                    error.class_id, error.method_id = index >> 16, index & 0xFFFF
                if error.hard:
                    raise
                self.fail(error)

        self.conn.wait_for(future, resume)

    # -- exchanges ----------------------------------------------------------------------

    def _exchange_declare(self, m: spec.ExchangeDeclare) -> None:
        if m.passive or m.exchange == "" or m.exchange in self.vhost.exchanges:
            super()._exchange_declare(m)
            return
        self._check_exchange_declare(m)
        args = _table(m.arguments)
        self.vhost.check_new_exchange(m.exchange, m.type, args)
        write = self.cluster.write(
            self.cluster.topology.create_exchange(
                self.vhost.name, m.exchange, m.type, m.durable, m.auto_delete, m.internal, args
            )
        )
        self.after(write, m.INDEX, lambda _: super(ClusterChannel, self)._exchange_declare(m))

    def _exchange_delete(self, m: spec.ExchangeDelete) -> None:
        self.check_configure("exchange", m.exchange)
        exchange = self.vhost.check_delete_exchange(m.exchange, m.if_unused)
        if exchange is None:
            if not m.nowait:
                self.send(spec.ExchangeDeleteOk())
            return
        write = self.cluster.write(self.cluster.topology.delete_exchange(self.vhost.name, exchange))
        self.after(write, m.INDEX, lambda _: None if m.nowait else self.send(spec.ExchangeDeleteOk()))

    def _bind(self, m: Any, destination: Any, source: str, args: FieldTable, ok: spec.Method) -> None:
        self.vhost.check_bind(source, args)
        nowait = getattr(m, "nowait", False)
        if self.vhost.has_binding(destination, source, m.routing_key, args):
            if not nowait:
                self.send(ok)
            return
        kind = "exchange" if isinstance(destination, Exchange) else "queue"
        write = self.cluster.write(
            self.cluster.topology.bind(self.vhost.name, source, kind, destination.name, m.routing_key, args)
        )
        self.after(write, m.INDEX, lambda _: None if nowait else self.send(ok))

    def _unbind(self, m: Any, destination: Any, source: str, args: FieldTable, ok: spec.Method) -> None:
        nowait = getattr(m, "nowait", False)
        if destination is None or not self.vhost.has_binding(destination, source, m.routing_key, args):
            if not nowait:
                self.send(ok)
            return
        exchange = self.vhost.exchanges.get(source)
        auto_delete = exchange is not None and exchange.auto_delete
        kind = "exchange" if isinstance(destination, Exchange) else "queue"
        write = self.cluster.write(
            self.cluster.topology.unbind(self.vhost.name, source, kind, destination.name, m.routing_key, args)
        )

        def done(_: Any) -> None:
            if auto_delete and source not in self.vhost.exchanges:
                self.cluster.spawn(self.cluster.topology.delete_unused_exchange(self.vhost.name, source))
            if not nowait:
                self.send(ok)

        self.after(write, m.INDEX, done)

    # -- queues -------------------------------------------------------------------------

    def _queue_declare(self, m: spec.QueueDeclare) -> None:
        args = _table(m.arguments)
        if m.queue.startswith(reply_to.PSEUDO_QUEUE):
            super()._queue_declare(m)
            return
        if m.passive:
            name = self._queue_name(m.queue)
            queue = self.vhost.declare_queue(name, passive=True, owner=self.conn)
            self._declare_ok(m, queue)
            return
        name = self._check_queue_declare(m, args)
        if name in self.vhost.queues:
            queue = self.vhost.declare_queue(
                name, m.durable, m.exclusive, m.auto_delete, args, owner=self.conn, server_named=not m.queue
            )
            self.node.queue_declared(self.vhost, queue)
            self._declare_ok(m, queue)
            return
        if name.startswith("amq.") and m.queue:
            self.vhost.declare_queue(name, m.durable, m.exclusive, m.auto_delete, args, owner=self.conn)  # 403
        settings = validate_declare(args, name, self.vhost.name, m.durable, m.exclusive, m.auto_delete)
        cluster = self.cluster
        owner = f"{cluster.node_name}/{self.conn.cluster_id}" if m.exclusive else ""
        write = cluster.write(
            cluster.topology.create_queue(
                self.vhost.name, name, m.durable, m.exclusive, m.auto_delete, args, settings.queue_type, owner
            )
        )

        def created(_: Any) -> None:
            if name not in self.vhost.queues:
                raise NotFound(f"queue '{name}' in vhost '{self.vhost.name}' could not be declared")
            queue = self.vhost.declare_queue(
                name, m.durable, m.exclusive, m.auto_delete, args, owner=self.conn, server_named=not m.queue
            )
            self.node.queue_declared(self.vhost, queue)
            self._declare_ok(m, queue)

        self.after(write, m.INDEX, created)

    def _declare_ok(self, m: spec.QueueDeclare, queue: Queue) -> None:
        self.last_queue = queue.name
        if isinstance(queue, RemoteQueue):
            query = self.cluster.query(queue, touch=True)

            def counted(counts: tuple[int, int]) -> None:
                if not m.nowait:
                    self.send(spec.QueueDeclareOk(queue.name, counts[0], counts[1]))

            self.after(query, m.INDEX, counted)
        elif not m.nowait:
            self.send(spec.QueueDeclareOk(queue.name, queue.message_count, queue.consumer_count))

    def _queue_purge(self, m: spec.QueuePurge) -> None:
        name = self._queue_name(m.queue)
        self.check_read("queue", name)
        queue = self.vhost.queue(name, self.conn)
        if not isinstance(queue, RemoteQueue):
            super()._queue_purge(m)
            return
        self.after(
            self.cluster.purge(queue),
            m.INDEX,
            lambda count: None if m.nowait else self.send(spec.QueuePurgeOk(count)),
        )

    def _queue_delete(self, m: spec.QueueDelete) -> None:
        name = self._queue_name(m.queue)
        self.check_configure("queue", name)
        queue = self.vhost.queues.get(name)
        if queue is None:
            if not m.nowait:
                self.send(spec.QueueDeleteOk(0))
            return
        self.vhost.queue(name, self.conn)  # another connection's exclusive queue: 405
        self.hold_cancels()
        deleted = self.cluster.delete_queue(queue, m.if_unused, m.if_empty)

        def done(count: int) -> None:
            if not m.nowait:
                self.send(spec.QueueDeleteOk(count))
            self.release_cancels()

        self.after(deleted, m.INDEX, done)
        deleted.add_done_callback(lambda _: self.release_cancels())  # runs after done, or after an error

    # -- consuming ----------------------------------------------------------------------

    def _start_consumer(self, consumer: Consumer, queue: Queue, nowait: bool) -> None:
        if not isinstance(queue, RemoteQueue):
            super()._start_consumer(consumer, queue, nowait)
            return
        if queue.settings.queue_type == "stream":
            self.consumers.pop(consumer.tag, None)
            raise _stream_elsewhere(queue)
        registered = self.cluster.consume(queue, consumer)

        def done(_: Any) -> None:
            if not nowait:
                self.send(spec.BasicConsumeOk(consumer.tag))
            self._watch_acks(queue, consumer)

        def undo(f: Any) -> None:
            if f.cancelled() or f.exception() is not None:
                self.consumers.pop(consumer.tag, None)

        registered.add_done_callback(undo)
        self.after(registered, spec.BasicConsume.INDEX, done)

    def _basic_cancel(self, m: spec.BasicCancel) -> None:
        consumer = self.consumers.get(m.consumer_tag)
        if consumer is None or not isinstance(consumer.queue, RemoteQueue):
            super()._basic_cancel(m)
            return
        del self.consumers[m.consumer_tag]
        self.after(
            self.cluster.cancel(consumer.queue, consumer),
            m.INDEX,
            lambda _: None if m.nowait else self.send(spec.BasicCancelOk(m.consumer_tag)),
        )

    def _basic_get(self, m: spec.BasicGet) -> None:
        name = self._queue_name(m.queue)
        self.check_read("queue", name)
        queue = self.lookup_queue(name)
        if not isinstance(queue, RemoteQueue):
            super()._basic_get(m)
            return
        if queue.settings.queue_type == "stream":  # refused wherever it is, as by the stream itself
            display = queue_display(queue.name, queue.vhost)
            raise NotImplementedAMQP(f"basic.get not supported by stream queues {display}")

        def got(result: Any) -> None:
            if result is None:
                self.send(spec.BasicGetEmpty(""))
                return
            message, count = result
            if m.no_ack:
                queue.stats.get_no_ack += 1
            else:
                queue.stats.get += 1
            self._get_ok(queue, message, count, m.no_ack)

        self.after(self.cluster.get(queue, m.no_ack), m.INDEX, got)


