"""The publishing half of a channel: content assembly, routing, returns, confirms, tx.

Hot path: ``start_publish`` reads the exchange and routing key straight from the method
frame (keeping their encoded bytes for the deliveries), ``content_header``/``content_body``
collect the content without copying a single-frame body, and ``_route`` hands the message to
its queues.  Confirms are gathered and sent once per connection flush, as one
``basic.ack(multiple)`` where possible.
"""

from __future__ import annotations

import bisect
import re
import struct
from collections import deque
from typing import Any

from warrenmq.amqp import spec
from warrenmq.amqp.errors import (
    AccessRefused,
    AMQPError,
    FrameError,
    NotFound,
    NotImplementedAMQP,
    PreconditionFailed,
    UnexpectedFrame,
)
from warrenmq.amqp.frames import (
    FLAG_USER_ID,
    decode_properties,
    erlang_binary,
    erlang_wrapped,
    frame_error_text,
    peek_delivery,
    replace_properties,
)
from warrenmq.amqp.values import FieldTable
from warrenmq.broker.dead_letter import sender_routes
from warrenmq.broker.message import Message
from warrenmq.server import reply_to
from warrenmq.server.channel_base import ChannelBase

_CONTENT_HEADER = struct.Struct(">HHQ")
_RETURN_PREFIX = spec.BasicReturn(312, "NO_ROUTE").encode()[:-2]  # up to the exchange/key strings
_HEADER, _BODY = 1, 2
_EXPECTED_HEADER = "expected content header for class 60, got non content header frame instead"
_EXPECTED_METHOD = "expected method frame, got non method frame instead"

_MAX_EXPIRATION = 315_360_000_000  # ms (ten years): RabbitMQ 3.10.8 refuses more (measured)
_INTEGER_PREFIX = re.compile(r"[+-]?[0-9]+")  # what Erlang's string:to_integer reads

PublishArgs = tuple[str, str, bytes, int]  # exchange, routing key, both encoded, bits


def expiration_problem(expiration: str) -> str | None:
    """Why RabbitMQ refuses a per-message expiration, in its words (None: it is fine).  It
    reads an integer as Erlang's string:to_integer does: optional sign, decimal digits."""
    match = _INTEGER_PREFIX.match(expiration)
    if match is None:
        return "no_integer"
    if match.end() != len(expiration):
        return '{leftover_string,"' + expiration[match.end() :].replace("\\", "\\\\").replace('"', '\\"') + '"}'
    value = int(match.group())
    if value < 0:
        return f"{{value_negative,{value}}}"
    if value > _MAX_EXPIRATION:
        return f"{{value_too_large,{value}}}"
    return None


def publish_args(payload: bytes) -> PublishArgs | None:
    """basic.publish's arguments from its method payload; None when they do not decode."""
    try:
        n = payload[6]
        key_at = 7 + n
        m = payload[key_at]
        end = key_at + 1 + m
        bits = payload[end]
        exchange = payload[7:key_at].decode()
        routing_key = payload[key_at + 1 : end].decode()
    except (IndexError, UnicodeDecodeError):
        return None
    if end + 1 != len(payload):
        return None
    return exchange, routing_key, payload[6:end], bits


class PublishingMixin(ChannelBase):
    """Channel's publishing part."""

    def init_publishing(self) -> None:
        self.expecting_content = False
        self._stage = 0
        self._pub_method: PublishArgs = ("", "", b"", 0)  # of the publish awaiting content
        self._last_method = b""  # the last whole publish's method payload, and its arguments
        self._last_args: PublishArgs = ("", "", b"", 0)
        self._pub_header = b""
        self._pub_parts: list[bytes] = []
        self._pub_remaining = 0
        self._sequence = self.node.broker.sequence
        self._max_size = self.node.settings.max_message_size
        self._extra_keys: list[str] = []  # CC/BCC routing keys of the message being routed
        self._write_allowed: set[str] = set()
        self._last_target: Any = None
        self._write_version = -1
        # Publisher confirms.
        self.confirm = False
        self.pub_seq = 0
        self.acked_upto = 0
        self.unconfirmed: deque[tuple[int, int]] = deque()  # (seq, store generation)
        self.nacks: deque[int] = deque()
        self.confirm_pending: dict[int, int] = {}  # seq -> answers awaited from other nodes (cluster)
        self.confirm_dirty = False
        # Transactions.
        self.tx = False
        self.tx_publishes: list[tuple[Message, bool]] = []
        self.tx_settles: list[tuple[str, int, bool, bool]] = []
        self.tx_commit_waiting: deque[int] = deque()
        self.published = 0

    # -- content assembly ----------------------------------------------------------------

    def publish_whole(self, payload: bytes, header: bytes, body: bytes) -> bool:
        """A publish whose method, header and single body frame arrived together: one call
        instead of three.  False when it is not that simple case (the caller then takes the
        frame-by-frame path, which also produces every error)."""
        if self.state != 0 or self._stage or len(header) < 14:
            return False
        if payload == self._last_method:
            args = self._last_args  # a publisher sends to the same place again and again
        else:
            parsed = publish_args(payload)
            if parsed is None or parsed[3] & 2:
                return False
            args = self._last_args = parsed
            self._last_method = payload
        class_id, weight, size = _CONTENT_HEADER.unpack_from(header, 0)
        if class_id != 60 or weight or size != len(body) or not size or size > self._max_size:
            return False
        try:
            self._complete(args, header, body)
        except AMQPError as exc:
            if exc.hard:
                raise  # as on the frame-by-frame path: connection errors keep their own ids
            if not exc.class_id:
                exc.class_id, exc.method_id = 60, 40
            self.fail(exc)
        return True

    def start_publish(self, payload: bytes) -> None:
        args = publish_args(payload)
        if args is None:
            raise FrameError(f"cannot decode {erlang_binary(payload[4:])}", 60, 40)  # RabbitMQ's 501
        if args[3] & 2:
            raise NotImplementedAMQP("immediate=true", 60, 40)
        self._pub_method = args
        self.expecting_content = True
        self._stage = _HEADER

    # The content assembly errors are RabbitMQ 3.10.8's codes, texts and method ids.

    def content_header(self, payload: bytes) -> None:
        if len(payload) < 14:
            raise FrameError(frame_error_text(2, payload, "unknown_frame"))
        if self._stage != _HEADER:
            self._unexpected_content_frame()
        class_id, weight, size = _CONTENT_HEADER.unpack_from(payload, 0)
        if class_id != 60 or weight:
            if weight:
                raise UnexpectedFrame(_EXPECTED_HEADER, 60, 40)
            raise UnexpectedFrame(f"expected content header for class 60, got one for class {class_id} instead", 60, 40)
        self._pub_header = payload
        if size == 0:
            self._stage = 0
            self.expecting_content = False
            self._complete(self._pub_method, payload, b"")
            return
        if size > self._max_size:
            self._stage = 0
            self.expecting_content = False
            raise PreconditionFailed(f"message size {size} is larger than configured max size {self._max_size}", 60, 40)
        self._pub_remaining = size
        self._stage = _BODY

    def content_body(self, payload: bytes) -> None:
        if self._stage != _BODY:
            if self._stage == _HEADER:
                raise UnexpectedFrame(_EXPECTED_HEADER, 60, 40)
            raise UnexpectedFrame(_EXPECTED_METHOD)
        remaining = self._pub_remaining - len(payload)
        if remaining > 0:
            self._pub_remaining = remaining
            self._pub_parts.append(payload)
            return
        if remaining < 0:
            # As RabbitMQ: more body than the header announced never completes the message;
            # the channel's next frame that is not a body frame is the error.
            self._pub_remaining = remaining
            self._pub_parts = []
            return
        self._stage = 0
        self.expecting_content = False
        parts = self._pub_parts
        if parts:
            parts.append(payload)
            payload = b"".join(parts)
            self._pub_parts = []
        self._complete(self._pub_method, self._pub_header, payload)

    def _unexpected_content_frame(self) -> Any:
        """A frame that is not the content frame this channel awaits (or no content was due)."""
        if self._stage == _HEADER:
            raise UnexpectedFrame(_EXPECTED_HEADER, 60, 40)
        if self._stage == _BODY:
            raise UnexpectedFrame("expected content body, got non content body frame instead", 60, 40)
        raise UnexpectedFrame(_EXPECTED_METHOD)

    def _complete(self, args: PublishArgs, header: bytes, body: bytes) -> None:
        flags = header[12]  # the high byte of the property flags
        if flags or header[13]:
            # Properties: the whole list is checked (541 when it does not parse), then the
            # values RabbitMQ refuses with a 406, in its order.
            mode, priority, expiration = peek_delivery(header)
            if header[13] & FLAG_USER_ID:
                self._check_user_id(header)
            if expiration is not None:
                problem = expiration_problem(expiration)
                if problem:
                    raise PreconditionFailed(erlang_wrapped(f"invalid expiration '{expiration}': ", problem), 60, 40)
            if mode != 1 and mode != 2:
                raise PreconditionFailed(f"invalid message: {{delivery_mode_unknown,{mode}}}", 60, 40)
        else:
            mode, priority, expiration = 1, 0, None
        exchange, routing_key, route, bits = args
        message = Message(
            next(self._sequence),
            exchange,
            routing_key,
            route,
            header,
            body,
            mode == 2,
            priority,
            expiration,
        )
        self.published += 1
        if flags & 0x20 and b"CC" in header:  # a headers table that may hold CC/BCC
            self._sender_selected(message)
        if flags & 0x02 and b"amq.rabbitmq.reply-to" in header:
            self._set_reply_address(message)
        if self.tx:
            self._publish_target(message.exchange)  # errors surface now, not at commit
            self.tx_publishes.append((message, bool(bits & 1)))
            return
        self._route(message, bool(bits & 1))

    def _sender_selected(self, message: Message) -> None:
        """CC/BCC headers add routing keys; BCC is removed from what consumers see."""
        properties = decode_properties(message.header)
        cc, bcc = sender_routes(properties.headers if isinstance(properties.headers, FieldTable) else None)
        if not cc and not bcc:
            return
        self._extra_keys = [message.routing_key, *cc, *bcc]
        if bcc and properties.headers is not None:
            properties.headers.pop("BCC", None)
            message.header = replace_properties(message.header, properties)
            message.bcc = tuple(bcc)

    def _set_reply_address(self, message: Message) -> None:
        """reply_to: amq.rabbitmq.reply-to becomes this channel's reply address."""
        properties = decode_properties(message.header)
        if properties.reply_to != reply_to.PSEUDO_QUEUE:
            return
        if not self.reply_address:
            raise PreconditionFailed("fast reply consumer does not exist", 60, 40)
        properties.reply_to = self.reply_address
        message.header = replace_properties(message.header, properties)

    def _check_user_id(self, header: bytes) -> None:
        user_id = decode_properties(header).user_id
        assert self.conn.user is not None
        if user_id is not None and user_id != self.conn.user.name:
            raise PreconditionFailed(
                f"user_id property set to '{user_id}' but authenticated user was '{self.conn.user.name}'", 60, 40
            )

    # -- routing ------------------------------------------------------------------------

    def _publish_target(self, name: str) -> Any:
        # The exchange this channel last published to, while nothing changed: the common case.
        access = self.node.access
        cached = self._last_target
        if cached is not None and cached.name == name and not cached.deleted and self._write_version == access.version:
            return cached
        if self._write_version != access.version:
            self._write_allowed.clear()
            self._write_version = access.version
        if name not in self._write_allowed:
            try:  # as RabbitMQ: the write permission on the name before the exchange's existence
                self.check_write("exchange", name)
            except AMQPError as exc:
                exc.class_id, exc.method_id = 60, 40
                raise
            self._write_allowed.add(name)
        vhost = self.vhost
        exchange = vhost.exchanges.get(name)
        if exchange is None:
            raise NotFound(f"no exchange '{name}' in vhost '{vhost.name}'", 60, 40)
        if exchange.internal:
            raise AccessRefused(f"cannot publish to internal exchange '{name}' in vhost '{vhost.name}'", 60, 40)
        self._last_target = exchange
        return exchange

    def _route(self, message: Message, mandatory: bool) -> bool:
        """Route to queues; True when the store took the message (a confirm must wait)."""
        exchange = self._publish_target(message.exchange)
        if exchange.TYPE == "topic" and self.node.broker.users.topic_permissions:
            try:
                self.node.access.check_topic(self.conn, "write", exchange.name, message.routing_key)
            except AMQPError as exc:
                exc.class_id, exc.method_id = 60, 40
                raise
        if self._extra_keys:
            queues: Any = self.vhost.route_keys(exchange, message, self._extra_keys)
            self._extra_keys = []
        else:
            queues = self.vhost.route(exchange, message)
        if not queues and not message.exchange and message.routing_key.startswith(reply_to.PREFIX):
            return self._reply(message, mandatory)
        stored = refused = False
        gates: list[Any] | None = None
        if queues:
            first = True
            for queue in queues:
                if first:
                    copy = message
                    first = False
                else:
                    copy = message.copy()
                if not queue.publish(copy):
                    refused = True
                elif copy.stored:
                    stored = True
                if queue.congested:
                    self._hold_back(queue)
                if queue.gate is not None:  # cluster mode: another node has a say in the confirm
                    if gates is None:
                        gates = [queue.gate]
                    else:
                        gates.append(queue.gate)
        elif mandatory:
            self._return(message)
        if self.confirm:
            seq = self.pub_seq = self.pub_seq + 1
            if refused:
                self.nacks.append(seq)
            else:
                if stored:
                    store = self.node.store
                    self.unconfirmed.append((seq, store.generation))
                    store.wait_for_sync(self)
                if gates is not None:
                    for gate in gates:
                        gate.track(self, seq)
            if not self.confirm_dirty:
                self.confirm_dirty = True
                conn = self.conn
                conn.confirm_channels.append(self)
                conn.schedule_flush()
        return stored

    def _hold_back(self, queue: Any) -> None:
        """Credit flow: stop reading this publisher until the congested queue drains.
        Never for a connection that consumes from it (its acks must keep flowing)."""
        conn = self.conn
        if conn.throttled or any(c.target.conn is conn for c in queue.consumers()):
            return
        # Throttled again after its time-out ran out while the backlog is still there: the
        # queue's set keeps it once, the connection stops reading once more.
        queue.throttled.add(conn)
        conn.throttle()

    def _reply(self, message: Message, mandatory: bool) -> bool:
        """A reply to a direct reply-to address: straight to the requesting channel."""
        consumer = self.node.replies.lookup(message.routing_key)
        if consumer is not None:
            consumer.target.deliver(consumer, message)
        elif self.node.cluster is not None:
            self.node.cluster.forward_reply(message)
        if mandatory:
            # As RabbitMQ 3.10.8: the pseudo-queue is not a route, so a mandatory reply is
            # delivered *and* returned 312 NO_ROUTE.
            self._return(message)
        if self.confirm:
            self.pub_seq += 1
            if not self.confirm_dirty:
                self.confirm_dirty = True
                self.conn.confirm_channels.append(self)
                self.conn.schedule_flush()
        return False

    def _return(self, message: Message) -> None:
        """basic.return 312 NO_ROUTE with the content as published."""
        payload = _RETURN_PREFIX + message.route_raw
        self.write_content(payload, message.header, message.body)

    # -- confirms -----------------------------------------------------------------------

    def _confirm_select(self, m: spec.ConfirmSelect) -> None:
        if self.tx:
            raise PreconditionFailed("cannot switch from tx to confirm mode")
        self.confirm = True
        if not m.nowait:
            self.send(spec.ConfirmSelectOk())

    def on_synced(self, generation: int) -> None:
        """The store made everything up to ``generation`` durable."""
        unconfirmed = self.unconfirmed
        while unconfirmed and unconfirmed[0][1] <= generation:
            unconfirmed.popleft()
        waiting = self.tx_commit_waiting
        while waiting and waiting[0] <= generation:
            waiting.popleft()
            self.send(spec.TxCommitOk())
        if unconfirmed or waiting:
            self.node.store.wait_for_sync(self)  # the rest is in a later group
        if self.confirm and not self.confirm_dirty:
            self.confirm_dirty = True
            self.conn.confirm_channels.append(self)
            self.conn.schedule_flush()

    def confirm_hold(self, seq: int) -> None:
        """Cluster mode: the confirm of ``seq`` also waits for another node's answer."""
        self.confirm_pending[seq] = self.confirm_pending.get(seq, 0) + 1

    def confirm_release(self, seq: int, ok: bool) -> None:
        pending = self.confirm_pending
        count = pending.get(seq)
        if count is None:
            return
        if not ok:
            del pending[seq]
            bisect.insort(self.nacks, seq)
        elif count <= 1:
            del pending[seq]
        else:
            pending[seq] = count - 1
        if self.confirm and not self.confirm_dirty:
            self.confirm_dirty = True
            self.conn.confirm_channels.append(self)
            self.conn.schedule_flush()

    def emit_confirms(self) -> None:
        """Send what can be confirmed now: acks up to the first message still unsettled."""
        self.confirm_dirty = False
        if self.state != 0:
            return
        limit = self.unconfirmed[0][0] - 1 if self.unconfirmed else self.pub_seq
        if self.confirm_pending:
            limit = min(limit, next(iter(self.confirm_pending)) - 1)
        nacks = self.nacks
        send = self.send
        while True:
            upto = limit
            if nacks and nacks[0] <= limit:
                upto = nacks[0] - 1
            if upto > self.acked_upto:
                send(spec.BasicAck(upto, upto - self.acked_upto > 1))
                self.acked_upto = upto
            if nacks and nacks[0] == self.acked_upto + 1 and nacks[0] <= limit:
                nacks.popleft()
                self.acked_upto += 1
                send(spec.BasicNack(self.acked_upto, False, True))  # RabbitMQ sets the requeue bit
                continue
            break

    # -- transactions -------------------------------------------------------------------

    def _tx_select(self, m: spec.TxSelect) -> None:
        if self.confirm:
            raise PreconditionFailed("cannot switch from confirm to tx mode")
        self.tx = True
        self.send(spec.TxSelectOk())

    def _tx_commit(self, m: spec.TxCommit) -> None:
        if not self.tx:
            raise PreconditionFailed("channel is not transactional")
        publishes, self.tx_publishes = self.tx_publishes, []
        settles, self.tx_settles = self.tx_settles, []
        stored = False
        for message, mandatory in publishes:
            stored = self._route(message, mandatory) or stored
        for kind, tag, multiple, requeue in settles:
            self.settle(kind, tag, multiple, requeue)
        if stored or self.tx_commit_waiting:
            # commit-ok only once the committed messages are on disk (and in order).
            store = self.node.store
            self.tx_commit_waiting.append(store.generation)
            store.wait_for_sync(self)
        else:
            self.send(spec.TxCommitOk())

    def _tx_rollback(self, m: spec.TxRollback) -> None:
        if not self.tx:
            raise PreconditionFailed("channel is not transactional")
        self.tx_publishes = []
        self.tx_settles = []
        self.send(spec.TxRollbackOk())

    def release_publishing(self) -> None:
        self.expecting_content = False
        self._stage = 0
        self._pub_parts = []
        self.tx_publishes = []
        self.tx_settles = []
        self.unconfirmed.clear()
        self.nacks.clear()
        self.confirm_pending.clear()
