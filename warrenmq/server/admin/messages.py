"""NodeAdmin's publish and get: messages in and out of queues as RabbitMQ's HTTP API moves them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from warrenmq import admin
from warrenmq.amqp import spec
from warrenmq.amqp.errors import AMQPError
from warrenmq.amqp.frames import content_header, decode_properties, peek_delivery
from warrenmq.amqp.values import FieldTable
from warrenmq.broker.message import Message, encode_route
from warrenmq.server.admin.base import AdminBase, amqp_errors, plain, to_table

if TYPE_CHECKING:
    pass


_PROPERTY_NAMES = (
    "content_type",
    "content_encoding",
    "headers",
    "delivery_mode",
    "priority",
    "correlation_id",
    "reply_to",
    "expiration",
    "message_id",
    "timestamp",
    "type",
    "user_id",
    "app_id",
    "cluster_id",
)
_INT_PROPERTIES = {"delivery_mode", "priority", "timestamp"}


class MessageOps(AdminBase):
    """Publishing to an exchange and getting from a queue."""

    def publish(
        self,
        vhost: str,
        exchange: str,
        routing_key: str,
        payload: bytes,
        properties: dict[str, Any],
        as_user: str | None = None,
    ) -> bool:
        v = self._vhost(vhost)
        self._check_vhost_access(as_user, vhost)
        x = v.exchanges.get(exchange)
        if x is None:
            raise admin.NotFound(f"no exchange '{exchange}' in vhost '{vhost}'", 404)
        if x.internal:
            raise admin.AccessRefused(f"cannot publish to internal exchange '{exchange}' in vhost '{vhost}'", 403)
        self._check(as_user, vhost, "write", "exchange", exchange)
        props = _basic_properties(properties)
        if as_user is not None and props.user_id is not None and props.user_id != as_user:
            raise admin.BadRequest(
                f"user_id property set to '{props.user_id}' but authenticated user was '{as_user}'", 406
            )
        header = content_header(props, len(payload))
        mode, priority, expiration = peek_delivery(header)
        message = Message(
            self.broker.next_seq(),
            exchange,
            routing_key,
            encode_route(exchange, routing_key),
            header,
            payload,
            mode == 2,
            priority,
            expiration,
        )
        with amqp_errors():
            queues = list(v.route(x, message))
        refused = False
        for i, queue in enumerate(queues):
            if not queue.publish(message if i == 0 else message.copy()):
                refused = True
        if refused:
            raise admin.BadRequest("Unable to publish message. Check queue limits.", 0)
        return bool(queues)

    def get_messages(
        self, vhost: str, queue: str, count: int, ackmode: str, as_user: str | None = None
    ) -> list[admin.GotMessage]:
        v = self._vhost(vhost)
        if ackmode not in admin.ACK_MODES:
            raise admin.BadRequest(f"unsupported ackmode '{ackmode}'")
        self._check_vhost_access(as_user, vhost)
        self._check(as_user, vhost, "read", "queue", queue)
        with amqp_errors():
            q = v.queue(queue)
        no_ack = ackmode == "ack_requeue_false"
        taken: list[Message] = []
        out: list[admin.GotMessage] = []
        for _ in range(max(0, count)):
            try:
                message = q.get(no_ack)
            except AMQPError as exc:
                # As RabbitMQ's API: the code the AMQP get failed with, then its text (a stream).
                raise admin.BadRequest(f"{exc.reply_code} {exc.explanation}") from None
            if message is None:
                break
            if not no_ack:
                taken.append(message)
            out.append(got_message(message, q.is_quorum, q.message_count))
        # As RabbitMQ's HTTP API: settle only once all are taken (a requeued message would
        # otherwise come straight back).
        if ackmode == "reject_requeue_false":
            for message in taken:
                q.reject(message, False)
        elif taken:
            q.requeue(taken)
        return out

    def peek_messages(self, vhost: str, queue: str, count: int, as_user: str | None = None) -> list[admin.GotMessage]:
        v = self._vhost(vhost)
        self._check_vhost_access(as_user, vhost)
        self._check(as_user, vhost, "read", "queue", queue)
        with amqp_errors():
            q = v.queue(queue)
        return [got_message(message, q.is_quorum, q.message_count) for message in q.peek(max(0, count))]


def got_message(message: Message, quorum: bool, left: int) -> admin.GotMessage:
    """A message taken from a queue as the HTTP API shows it (``left``: ready ones after it)."""
    props = decode_properties(message.header)
    if message.returns and quorum:
        headers = FieldTable(props.headers or {})
        headers["x-delivery-count"] = ("l", message.returns)
        props.headers = headers
    return admin.GotMessage(
        payload=bytes(message.body),
        redelivered=message.returns > 0,
        exchange=message.exchange,
        routing_key=message.routing_key,
        message_count=left,
        properties=_properties_json(props),
    )


def _basic_properties(properties: dict[str, Any]) -> spec.BasicProperties:
    """BasicProperties from the HTTP API's JSON (as rabbit_mgmt_format:to_basic_properties)."""
    if not isinstance(properties, dict):
        raise admin.BadRequest("properties must be a JSON object")
    values: dict[str, Any] = {}
    for key, value in properties.items():
        if key not in _PROPERTY_NAMES:
            raise admin.BadRequest(f"unknown property '{key}'")
        if value is None:
            continue
        if key == "headers":
            if not isinstance(value, dict):
                raise admin.BadRequest("headers must be a JSON object")
            values[key] = to_table(value)
        elif key in _INT_PROPERTIES:
            try:
                values[key] = int(value)
            except (TypeError, ValueError):
                raise admin.BadRequest(f"{key} must be an integer") from None
        else:
            values[key] = str(value)
    return spec.BasicProperties(**values)


def _properties_json(props: spec.BasicProperties) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in _PROPERTY_NAMES:
        value = getattr(props, key)
        if value is not None:
            out[key] = plain(value)
    return out
