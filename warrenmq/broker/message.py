"""A message as the broker holds it: wire bytes plus the few fields routing needs.

A message is kept exactly as it arrived: ``route_raw`` is the exchange and routing key as
encoded short strings (ready to splice into basic.deliver / get-ok / return), ``header`` is
the content header payload (class, weight, body size, property flags and properties) and
``body`` the body bytes.  Nothing is re-encoded on the way out.

A Message object belongs to one queue; routing to several queues makes shallow copies that
share the bytes, so that per-queue state (position, returns, expiry, unacked owner) needs no
second object.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from warrenmq.amqp import spec
from warrenmq.amqp.frames import decode_properties
from warrenmq.amqp.values import encode_shortstr

if TYPE_CHECKING:
    from warrenmq.broker.queue import Queue


def encode_route(exchange: str, routing_key: str) -> bytes:
    return encode_shortstr(exchange) + encode_shortstr(routing_key)


class Message:
    __slots__ = (
        "bcc",
        "body",
        "consumer",
        "exchange",
        "expiration",
        "expires_at",
        "header",
        "offset",
        "persistent",
        "priority",
        "queue",
        "returns",
        "route_raw",
        "routing_key",
        "segment",
        "seq",
        "stored",
    )

    bcc: tuple[str, ...]  # set only for a message published with BCC keys (see blind_copies)

    def __init__(
        self,
        seq: int,
        exchange: str,
        routing_key: str,
        route_raw: bytes,
        header: bytes,
        body: bytes,
        persistent: bool = False,
        priority: int = 0,
        expiration: str | None = None,
    ) -> None:
        self.seq = seq  # node-wide publish order; a queue's order and the store's message id
        self.exchange = exchange
        self.routing_key = routing_key
        self.route_raw = route_raw
        self.header = header
        self.body = body
        self.persistent = persistent
        self.priority = priority
        self.expiration = expiration  # the per-message TTL as published (ms, as text)
        self.expires_at = 0.0  # monotonic deadline in this queue; 0 = never
        self.returns = 0  # times handed back to the queue after a delivery
        self.queue: Queue | None = None
        self.consumer: Any = None  # the consumer holding it unacknowledged, if any
        self.stored = False  # in the message store for its queue
        self.segment = -1  # the store's segment holding it (-1: not written yet)
        self.offset = 0  # where in that segment

    def copy(self) -> Message:
        """A copy for another queue: same bytes, fresh per-queue state."""
        other = Message.__new__(Message)
        other.seq = self.seq
        other.exchange = self.exchange
        other.routing_key = self.routing_key
        other.route_raw = self.route_raw
        other.header = self.header
        other.body = self.body
        other.persistent = self.persistent
        other.priority = self.priority
        other.expiration = self.expiration
        other.expires_at = 0.0
        other.returns = 0
        other.queue = None
        other.consumer = None
        other.stored = False
        other.segment = -1
        other.offset = 0
        bcc = self.blind_copies
        if bcc:
            other.bcc = bcc
        return other

    @property
    def blind_copies(self) -> tuple[str, ...]:
        """The BCC routing keys it was published with (they route its dead letters too).  The
        slot is set only for such a message: the common one pays no store for it."""
        return getattr(self, "bcc", ())

    @property
    def redelivered(self) -> bool:
        return self.returns > 0

    @property
    def body_size(self) -> int:
        return len(self.body)

    @property
    def properties(self) -> spec.BasicProperties:
        return decode_properties(self.header)

    def __repr__(self) -> str:
        return f"<Message seq={self.seq} {self.exchange!r}/{self.routing_key!r} {len(self.body)}B>"
