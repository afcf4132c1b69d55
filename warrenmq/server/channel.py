"""An AMQP channel: method dispatch, the exchange/queue class methods, and closing.

Publishing (content assembly, routing, confirms, transactions) lives in ``publishing.py``
and consuming (consumers, deliveries, acks, QoS, get) in ``consuming.py``; Channel combines
them.  Errors raised by handlers carry their reply code; a soft one closes this channel
only.  The hot methods (basic.publish, basic.ack) skip the generic decoder.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from warrenmq.amqp import spec
from warrenmq.amqp.errors import (
    AccessRefused,
    AMQPError,
    ChannelErrorConnection,
    CommandInvalid,
    FrameError,
    NotFound,
    NotImplementedAMQP,
    PreconditionFailed,
    ReaderCrash,
    SyntaxErrorAMQP,
)
from warrenmq.amqp.frames import ack_payload, erlang_binary, frame_error_text
from warrenmq.amqp.values import FieldTable, MalformedTable
from warrenmq.broker.queue import Queue
from warrenmq.broker.vhost import server_generated_name
from warrenmq.server import reply_to
from warrenmq.server.consuming import ConsumingMixin
from warrenmq.server.publishing import PublishingMixin

if TYPE_CHECKING:
    from warrenmq.server.connection import Connection

log = logging.getLogger("warrenmq.channel")

_METHOD_INDEX = struct.Struct(">I")
_PUBLISH = spec.BasicPublish.INDEX
_ACK = spec.BasicAck.INDEX

_OPEN, _CLOSING, _CLOSED = range(3)


class Channel(PublishingMixin, ConsumingMixin):
    def __init__(self, connection: Connection, number: int) -> None:
        self.conn = connection
        self.number = number
        self.node = connection.node
        vhost = connection.vhost
        assert vhost is not None
        self.vhost = vhost
        self.state = _OPEN
        self.last_queue = ""  # "the last queue declared on this channel" (empty names)
        self._handlers: dict[int, Callable[[Any], None]] = {
            spec.ChannelClose.INDEX: self._channel_close,
            spec.ChannelCloseOk.INDEX: self._channel_close_ok,
            spec.ChannelFlow.INDEX: self._channel_flow,
            spec.ChannelOpen.INDEX: self._channel_open_again,
            spec.AccessRequest.INDEX: self._access_request,
            spec.ExchangeDeclare.INDEX: self._exchange_declare,
            spec.ExchangeDelete.INDEX: self._exchange_delete,
            spec.ExchangeBind.INDEX: self._exchange_bind,
            spec.ExchangeUnbind.INDEX: self._exchange_unbind,
            spec.QueueDeclare.INDEX: self._queue_declare,
            spec.QueueBind.INDEX: self._queue_bind,
            spec.QueueUnbind.INDEX: self._queue_unbind,
            spec.QueuePurge.INDEX: self._queue_purge,
            spec.QueueDelete.INDEX: self._queue_delete,
            spec.ConfirmSelect.INDEX: self._confirm_select,
            spec.TxSelect.INDEX: self._tx_select,
            spec.TxCommit.INDEX: self._tx_commit,
            spec.TxRollback.INDEX: self._tx_rollback_settles,
            spec.BasicQos.INDEX: self._basic_qos,
            spec.BasicConsume.INDEX: self._basic_consume,
            spec.BasicCancel.INDEX: self._basic_cancel,
            spec.BasicGet.INDEX: self._basic_get,
            spec.BasicAck.INDEX: self._basic_ack,
            spec.BasicReject.INDEX: self._basic_reject,
            spec.BasicNack.INDEX: self._basic_nack,
            spec.BasicRecover.INDEX: self._basic_recover,
            spec.BasicRecoverAsync.INDEX: self._basic_recover_async,
        }
        self.init_publishing()
        self.init_consuming()

    # -- frames from the connection -------------------------------------------------------

    def on_method(self, payload: bytes) -> None:
        if self.state != _OPEN:
            self._while_closing(payload)
            return
        if self.expecting_content:
            self._unexpected_content_frame()
        if len(payload) < 4:
            raise FrameError(frame_error_text(1, payload, "unknown_frame"))  # RabbitMQ's 501
        index = _METHOD_INDEX.unpack_from(payload, 0)[0]
        try:
            if index == _PUBLISH:
                self.start_publish(payload)
                return
            if index == _ACK:
                self.ack_frame(payload)
                return
            cls = spec.METHODS.get(index)
            if cls is None:
                raise CommandInvalid(f"unknown method class {index >> 16}, method {index & 0xFFFF}")
            try:
                method = cls.decode(payload, 4, len(payload))
            except MalformedTable as exc:
                # As RabbitMQ: the method's fields must fit the frame (else 501; a table is the
                # last argument of every channel method that has one), then a table that does
                # not parse crashes the reader: the socket closes without a word.
                if exc.stop != len(payload):
                    raise FrameError(f"cannot decode {erlang_binary(payload[4:])}") from None
                raise ReaderCrash(
                    f"the arguments of {cls.NAME} on channel {self.number} do not parse: {exc}"
                    " (offsets from the start of the frame payload)"
                ) from None
            except SyntaxErrorAMQP:
                # RabbitMQ's 501 for arguments that do not decode, quoting them.
                raise FrameError(f"cannot decode {erlang_binary(payload[4:])}") from None
            handler = self._handlers.get(index)
            if handler is None:
                raise CommandInvalid("unimplemented method")  # RabbitMQ's text for server-only methods
            handler(method)
        except AMQPError as exc:
            if not exc.class_id:
                exc.class_id, exc.method_id = index >> 16, index & 0xFFFF
            if exc.hard:
                raise
            self.fail(exc)

    def on_acks(self, codes: list[int]) -> None:
        """Consecutive basic.acks (``FrameReader``'s ACKS event): settled as a batch in the
        common case, else one by one exactly as ``on_method`` takes them."""
        if self.state != _OPEN or self.expecting_content or self.tx:
            for code in codes:
                self.on_method(ack_payload(code))
                if self.state != _OPEN:
                    return  # an error closed the channel: what follows is ignored
            return
        try:
            self.ack_run(codes)
        except AMQPError as exc:
            if not exc.class_id:
                exc.class_id, exc.method_id = 60, 80
            if exc.hard:
                raise
            self.fail(exc)

    def on_header(self, payload: bytes) -> None:
        if self.state != _OPEN:
            return
        try:
            self.content_header(payload)
        except AMQPError as exc:
            if exc.hard:
                raise
            self.fail(exc)

    def on_body(self, payload: bytes) -> None:
        if self.state != _OPEN:
            return
        try:
            self.content_body(payload)
        except AMQPError as exc:
            if exc.hard:
                raise
            self.fail(exc)

    def send(self, method: spec.Method) -> None:
        self.conn.send_method(self.number, method)

    # -- closing ------------------------------------------------------------------------

    def fail(self, error: AMQPError) -> None:
        """A channel error: release everything, send channel.close, await close-ok."""
        if self.state != _OPEN:
            return
        log.debug("closing channel %d of %s: %s", self.number, self.conn.name, error.reply_text)
        self.release()
        self.state = _CLOSING
        self.send(spec.ChannelClose(error.reply_code, error.reply_text, error.class_id, error.method_id))

    def release(self) -> None:
        """Give back what the channel holds: consumers first, then unacked messages."""
        if self.state == _CLOSED:
            return
        self.release_publishing()
        self.release_consuming()

    def _while_closing(self, payload: bytes) -> None:
        if len(payload) < 4:
            return
        index = _METHOD_INDEX.unpack_from(payload, 0)[0]
        if index == spec.ChannelCloseOk.INDEX:
            self.state = _CLOSED
            self.conn.channel_closed(self.number)
        elif index == spec.ChannelClose.INDEX:
            # The client's close crossed ours: answer it, and still wait for the close-ok it
            # owes ours (as RabbitMQ; finishing now made that close-ok a frame on a channel
            # not open, a connection error).
            self.send(spec.ChannelCloseOk())
        elif index == spec.ChannelOpen.INDEX:
            raise ChannelErrorConnection("second 'channel.open' seen", 20, 10)  # as RabbitMQ 3.10.8

    def _channel_close(self, method: spec.ChannelClose) -> None:
        self.release()
        self.state = _CLOSED
        self.send(spec.ChannelCloseOk())
        self.conn.channel_closed(self.number)

    def _channel_close_ok(self, method: spec.ChannelCloseOk) -> None:
        raise ChannelErrorConnection("unexpected channel.close-ok on an open channel")

    def _channel_open_again(self, method: spec.ChannelOpen) -> None:
        raise ChannelErrorConnection("second 'channel.open' seen")

    def _channel_flow(self, method: spec.ChannelFlow) -> None:
        if not method.active:
            raise NotImplementedAMQP("active=false")  # as RabbitMQ 3.x: clients may not pause deliveries
        self.flow_active = method.active
        self.update_active()
        self.send(spec.ChannelFlowOk(method.active))

    def _tx_rollback_settles(self, method: spec.TxRollback) -> None:
        """tx.rollback drops the publishes (publishing part) and gives the messages of the
        uncommitted acks/nacks/rejects back to the unacked set (consuming part)."""
        self._tx_rollback(method)
        self.restore_tx_settles()

    def _access_request(self, method: spec.AccessRequest) -> None:
        self.send(spec.AccessRequestOk(1))

    # -- permissions ----------------------------------------------------------------------

    def check_configure(self, kind: str, name: str) -> None:
        self.node.access.check(self.conn, "configure", kind, name)

    def check_write(self, kind: str, name: str) -> None:
        self.node.access.check(self.conn, "write", kind, name)

    def check_read(self, kind: str, name: str) -> None:
        self.node.access.check(self.conn, "read", kind, name)

    # -- exchange class -----------------------------------------------------------------

    def _check_exchange_declare(self, m: spec.ExchangeDeclare) -> None:
        """The permissions exchange.declare needs (not passive)."""
        self.check_configure("exchange", m.exchange)
        alternate = _table(m.arguments).get("alternate-exchange")
        if alternate is not None and alternate[0] == "S" and m.exchange not in self.vhost.exchanges:
            # As RabbitMQ: creating an exchange with an alternate exchange needs read on it
            # and write on the alternate (messages would otherwise reach it unchecked).
            self.check_read("exchange", m.exchange)
            self.check_write("exchange", str(alternate[1]))

    def _exchange_declare(self, m: spec.ExchangeDeclare) -> None:
        if not m.passive:
            self._check_exchange_declare(m)
        exchange = self.vhost.declare_exchange(
            m.exchange, m.type, m.durable, m.auto_delete, m.internal, _table(m.arguments), passive=m.passive
        )
        if not m.passive:
            self.node.exchange_declared(self.vhost, exchange)
        if not m.nowait:
            self.send(spec.ExchangeDeclareOk())

    def _exchange_delete(self, m: spec.ExchangeDelete) -> None:
        self.check_configure("exchange", m.exchange)
        self.vhost.delete_exchange(m.exchange, m.if_unused)
        if not m.nowait:
            self.send(spec.ExchangeDeleteOk())

    def _exchange_bind(self, m: spec.ExchangeBind) -> None:
        if not m.destination or not m.source:
            self._default_exchange_refused()
        self.check_write("exchange", m.destination)
        self.check_read("exchange", m.source)
        source = self.vhost.exchange(m.source)  # as RabbitMQ, a missing source is named first
        self._check_topic_read(source, m.routing_key)
        destination = self.vhost.exchange(m.destination)
        self._bind(m, destination, m.source, _table(m.arguments), spec.ExchangeBindOk())

    def _exchange_unbind(self, m: spec.ExchangeUnbind) -> None:
        if not m.destination or not m.source:
            self._default_exchange_refused()
        self.check_write("exchange", m.destination)
        self.check_read("exchange", m.source)
        source = self.vhost.exchanges.get(m.source)
        if source is not None:
            self._check_topic_read(source, m.routing_key)
        destination = self.vhost.exchanges.get(m.destination)
        self._unbind(m, destination, m.source, _table(m.arguments), spec.ExchangeUnbindOk())

    def _bind(self, m: Any, destination: Any, source: str, args: FieldTable, ok: spec.Method) -> None:
        """Make a binding the checks allowed (a cluster node's channel writes it to etcd)."""
        self.vhost.bind(destination, source, m.routing_key, args)
        if not getattr(m, "nowait", False):
            self.send(ok)

    def _unbind(self, m: Any, destination: Any, source: str, args: FieldTable, ok: spec.Method) -> None:
        """Remove a binding (a missing destination or binding is fine, as in RabbitMQ)."""
        if destination is not None:
            self.vhost.unbind(destination, source, m.routing_key, args)
        if not getattr(m, "nowait", False):
            self.send(ok)

    def _check_topic_read(self, source: Any, routing_key: str) -> None:
        """Topic permissions: binding to a topic exchange reads its binding key."""
        if source.TYPE == "topic" and self.node.broker.users.topic_permissions:
            self.node.access.check_topic(self.conn, "read", source.name, routing_key)

    @staticmethod
    def _default_exchange_refused() -> Any:
        raise AccessRefused("operation not permitted on the default exchange")

    # -- queue class --------------------------------------------------------------------

    def _queue_name(self, name: str) -> str:
        """An empty queue name means the last queue declared on this channel."""
        if name:
            return name
        if not self.last_queue:
            raise NotFound("no previously declared queue")
        return self.last_queue

    def _queue_declare(self, m: spec.QueueDeclare) -> None:
        args = _table(m.arguments)
        if m.queue.startswith(reply_to.PSEUDO_QUEUE):
            # As RabbitMQ: every declare of the direct reply-to pseudo-queue is passive; it
            # exists (and so does a live reply address) with, by definition, one consumer.
            if m.queue != reply_to.PSEUDO_QUEUE and self.node.replies.lookup(m.queue) is None:
                raise NotFound(f"no queue '{m.queue}' in vhost '{self.vhost.name}'")
            if not m.nowait:
                self.send(spec.QueueDeclareOk(m.queue, 0, 1))
            return
        if m.passive:
            name = self._queue_name(m.queue)
            queue = self.vhost.declare_queue(name, passive=True, owner=self.conn)
        else:
            name = self._check_queue_declare(m, args)
            queue = self.vhost.declare_queue(
                name, m.durable, m.exclusive, m.auto_delete, args, owner=self.conn, server_named=not m.queue
            )
            self.node.queue_declared(self.vhost, queue)
        self.last_queue = queue.name
        if not m.nowait:
            self.send(spec.QueueDeclareOk(queue.name, queue.message_count, queue.consumer_count))

    def _check_queue_declare(self, m: spec.QueueDeclare, args: FieldTable) -> str:
        """queue.declare's permission and limit checks (not passive); the queue's name."""
        # As RabbitMQ: a server-named queue is checked under the name it gets.
        name = m.queue or server_generated_name("amq.gen-")
        self.check_configure("queue", name)
        self.node.check_queue_limit(self.vhost, name)
        dlx = args.get("x-dead-letter-exchange")
        if dlx is not None and dlx[0] == "S" and name not in self.vhost.queues:
            # Dead-lettering publishes on the declarer's behalf: read on the queue,
            # write on the dead-letter exchange.
            self.check_read("queue", name)
            self.check_write("exchange", str(dlx[1]))
        return name

    def _queue_bind(self, m: spec.QueueBind) -> None:
        # RabbitMQ's order: permissions on the names first, then existence (the exchange
        # named before the queue).
        name = self._queue_name(m.queue)
        self.check_write("queue", name)
        if not m.exchange:
            self._default_exchange_refused()
        self.check_read("exchange", m.exchange)
        source = self.vhost.exchange(m.exchange)
        queue = self.vhost.queue(name, self.conn)
        self._check_topic_read(source, m.routing_key)
        self._bind(m, queue, m.exchange, _table(m.arguments), spec.QueueBindOk())

    def _queue_unbind(self, m: spec.QueueUnbind) -> None:
        name = self._queue_name(m.queue)
        self.check_write("queue", name)
        self.check_read("exchange", m.exchange)
        source = self.vhost.exchanges.get(m.exchange) if m.exchange else None
        if source is not None:
            self._check_topic_read(source, m.routing_key)
        queue = self.vhost.queues.get(name)
        arguments = _table(m.arguments)
        if queue is not None:  # as RabbitMQ: unbinding a missing queue is fine
            if queue.exclusive_owner not in (None, self.conn) and self.vhost.has_binding(
                queue, m.exchange, m.routing_key, arguments
            ):
                # RabbitMQ 3.10.8 checks another connection's exclusive queue only when the
                # binding exists: removing it is 405, removing a missing one is unbind-ok.
                self.vhost.queue(name, self.conn)
        elif not m.exchange:
            self._default_exchange_refused()
        self._unbind(m, queue, m.exchange, arguments, spec.QueueUnbindOk())

    def _queue_purge(self, m: spec.QueuePurge) -> None:
        name = self._queue_name(m.queue)
        self.check_read("queue", name)
        count = self.vhost.purge_queue(name, self.conn)
        if not m.nowait:
            self.send(spec.QueuePurgeOk(count))

    def _queue_delete(self, m: spec.QueueDelete) -> None:
        name = self._queue_name(m.queue)
        self.check_configure("queue", name)
        self.hold_cancels()
        try:
            count = self.vhost.delete_queue(name, m.if_unused, m.if_empty, self.conn)
            if not m.nowait:
                self.send(spec.QueueDeleteOk(count))
        finally:
            self.release_cancels()

    # -- helpers ------------------------------------------------------------------------

    def lookup_queue(self, name: str) -> Queue:
        return self.vhost.queue(self._queue_name(name), self.conn)

    def not_implemented(self, what: str) -> None:
        raise NotImplementedAMQP(what)

    def precondition(self, text: str) -> None:
        raise PreconditionFailed(text)


def _table(table: Any) -> FieldTable:
    return table if isinstance(table, FieldTable) else FieldTable.of(table)
