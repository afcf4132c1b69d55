"""The ``x-delayed-message`` exchange, with the rabbitmq-delayed-message-exchange plugin's wire
conventions: it routes like its ``x-delayed-type`` (direct, fanout, topic, headers), and a
message with an ``x-delay`` header of 1 to 2^32-1 milliseconds (an integer, or a string or
float the plugin also reads) is routed only once that delay has passed.  A message without
the header, or with a delay out of that range, is routed at once.  On delivery ``x-delay``
holds minus the delay, as the plugin sets it (so that routing it again does not delay it).

At publish time a delayed message is routed to the exchange's own holder (the DelayQueue),
which counts as a route: a confirm then means the message is held (on disk, for a persistent
message on a durable exchange), and the message is never returned as unroutable at publish
time.  When due it is routed as a fresh publish through the exchange, alternate exchange and
exchange-to-exchange bindings included; the plugin documents that mandatory is not supported
(nobody could be sent a basic.return by then), so an unroutable message is dropped unless an
alternate exchange takes it.  The plugin's quirks that its maintainers call bugs are not
copied: it returns every mandatory delayed message with 312 NO_ROUTE at publish time, and
also sends it to the alternate exchange at once (issues #7 and #36 of the plugin).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast

from warrenmq.amqp.errors import PreconditionFailed
from warrenmq.amqp.frames import decode_properties, replace_properties
from warrenmq.amqp.values import FieldTable, TypedValue
from warrenmq.broker.delay import DelayQueue, now_ms
from warrenmq.broker.exchanges.base import Binding, Destination, Exchange
from warrenmq.broker.exchanges.direct import DirectExchange
from warrenmq.broker.exchanges.fanout import FanoutExchange
from warrenmq.broker.exchanges.headers import HeadersExchange
from warrenmq.broker.exchanges.topic import TopicExchange
from warrenmq.broker.message import Message

if TYPE_CHECKING:
    from warrenmq.broker.vhost import VHost

ROUTING_TYPES: dict[str, type[Exchange]] = {
    "direct": DirectExchange,
    "fanout": FanoutExchange,
    "topic": TopicExchange,
    "headers": HeadersExchange,
}
log = logging.getLogger("warrenmq.delayed")
MAX_DELAY = 4_294_967_295  # ms: Erlang's longest timer, the plugin's limit
# The plugin's words, typos included (its string literals are joined without spaces).
INVALID_TYPE = "Invalid argument, 'x-delayed-type' must bean existing exchnage type"
_HEADERS_FLAG = 0x20  # in the high byte of the property flags
_INTEGER_TAGS = frozenset("bBsuIilL")


def delay_of(item: TypedValue | None) -> int | None:
    """The delay an ``x-delay`` value asks for, read as the plugin reads it; None: no delay."""
    if item is None:
        return None
    tag, value = item
    delay: int | None = None
    if tag in _INTEGER_TAGS and not isinstance(value, bool):
        delay = int(value)
    elif tag in ("S", "x", "s"):
        try:
            delay = int(value.decode() if isinstance(value, bytes) else value)
        except ValueError:
            return None
    elif tag in ("f", "d", "D"):
        number = float(value)
        delay = math.trunc(number) if math.isfinite(number) else None
    if delay is None or not 0 < delay <= MAX_DELAY:
        return None
    return delay


class _Holder:
    """Where a delayed message is routed at publish time: it goes into the DelayQueue."""

    __slots__ = ("congested", "durable", "exchange", "name")
    gate = None  # a confirm waits for nothing but the store (Queue.gate)

    def __init__(self, exchange: DelayedExchange) -> None:
        self.exchange = exchange
        self.name = exchange.name  # what dead-letter cycle checks read
        self.durable = exchange.durable
        self.congested = False  # never holds a publisher back

    def publish(self, message: Message) -> bool:
        return self.exchange.hold(message)


class DelayedExchange(Exchange):
    TYPE = "x-delayed-message"

    def __init__(
        self,
        name: str,
        vhost: str,
        durable: bool = False,
        auto_delete: bool = False,
        internal: bool = False,
        arguments: FieldTable | None = None,
    ) -> None:
        arguments = arguments if arguments is not None else FieldTable()
        item = arguments.get("x-delayed-type")
        inner = ROUTING_TYPES.get(str(item[1])) if item is not None and item[0] == "S" else None
        if inner is None:
            raise PreconditionFailed(INVALID_TYPE)
        self.inner = inner(name, vhost, durable, auto_delete, internal, arguments)
        super().__init__(name, vhost, durable, auto_delete, internal, arguments)
        # The holder quacks like a queue where routing results are used (publish, name, congested).
        self._holder = cast("Sequence[Destination]", (_Holder(self),))
        self._vhost: VHost | None = None
        self.delays: DelayQueue | None = None
        # (message seq, due, its properties): routing decides, the holder holds.
        self._decided: tuple[int, int, Any] = (-1, 0, None)

    @property
    def messages_delayed(self) -> int:
        return len(self.delays) if self.delays is not None else 0

    # -- the life of the exchange -------------------------------------------------------------

    def attach(self, vhost: VHost) -> None:
        super().attach(vhost)
        self._vhost = vhost
        assert vhost.scheduler is not None, "a delayed exchange needs a scheduler"
        storage = vhost.storage.delay_store(self) if vhost.storage is not None else None
        self.delays = DelayQueue(vhost.scheduler, self._release, storage)
        found = storage.recovered() if storage is not None else None
        if found is not None:
            self.delays.restore(*found)
            log.info(
                "recovered %d delayed messages of exchange '%s' in vhost '%s'", len(self.delays), self.name, vhost.name
            )

    def detach(self) -> None:
        super().detach()
        if self.delays is not None:
            self.delays.clear()

    # -- routing ------------------------------------------------------------------------------

    def route(self, routing_key: str, message: Message) -> Sequence[Destination]:
        header = message.header
        if len(header) > 13 and header[12] & _HEADERS_FLAG and b"x-delay" in header:
            if self._decided[0] == message.seq:
                return self._holder  # the same publish, routed again for another CC key
            properties = decode_properties(header)
            headers = properties.headers
            delay = delay_of(headers.get("x-delay")) if headers else None
            if delay is not None:
                self._decided = (message.seq, now_ms() + delay, properties)
                return self._holder
        return self.inner.route(routing_key, message)

    def hold(self, message: Message) -> bool:
        seq, due, properties = self._decided
        if seq != message.seq or self.delays is None:
            return False
        # As the plugin: once delayed, x-delay says minus the delay, so that it routes at once.
        headers = FieldTable(properties.headers or {})
        delay = delay_of(headers.get("x-delay")) or 0
        headers["x-delay"] = ("I", -delay) if delay < 2**31 else ("l", -delay)
        properties.headers = headers
        message.header = replace_properties(message.header, properties)
        self.delays.hold(message, due)
        return True

    def _release(self, held: Message) -> None:
        """A message fell due: route it through this exchange as a new publish would be."""
        vhost = self._vhost
        if vhost is None or self.deleted:
            return
        message = Message(
            vhost.dead_letterer.next_seq(),
            held.exchange,
            held.routing_key,
            held.route_raw,
            held.header,
            held.body,
            held.persistent,
            held.priority,
            held.expiration,
        )
        if held.blind_copies:
            message.bcc = held.blind_copies
        keys = _routing_keys(message)
        stats = self.stats
        counted = stats.publish_in, stats.publish_out  # counted when it was published
        queues: Any = vhost.route_keys(self, message, keys) if len(keys) > 1 else vhost.route(self, message)
        stats.publish_in, stats.publish_out = counted
        for i, queue in enumerate(queues):
            queue.publish(message if i == 0 else message.copy())

    # -- bindings: the routing type's index ------------------------------------------------------

    def _index(self, binding: Binding) -> None:
        self.inner._index(binding)

    def _unindex(self, binding: Binding) -> None:
        self.inner._unindex(binding)


def _routing_keys(message: Message) -> list[str]:
    """The routing key, and the CC and BCC keys a message was published with."""
    keys = [message.routing_key]
    if b"CC" in message.header:
        from warrenmq.broker.dead_letter import sender_routes

        headers = decode_properties(message.header).headers
        cc, _bcc = sender_routes(headers if isinstance(headers, FieldTable) else None)
        keys += cc
    keys += message.blind_copies
    return keys
