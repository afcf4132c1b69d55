"""Exchange types.  ``EXCHANGE_TYPES`` maps the AMQP type name to its class."""

from __future__ import annotations

from warrenmq.broker.exchanges.base import Binding, Destination, Exchange
from warrenmq.broker.exchanges.dedup import DeduplicationExchange
from warrenmq.broker.exchanges.default import DefaultExchange
from warrenmq.broker.exchanges.delayed import DelayedExchange
from warrenmq.broker.exchanges.direct import DirectExchange
from warrenmq.broker.exchanges.fanout import FanoutExchange
from warrenmq.broker.exchanges.headers import HeadersExchange
from warrenmq.broker.exchanges.topic import TopicExchange

EXCHANGE_TYPES: dict[str, type[Exchange]] = {
    "direct": DirectExchange,
    "fanout": FanoutExchange,
    "topic": TopicExchange,
    "headers": HeadersExchange,
    "x-delayed-message": DelayedExchange,
    "x-message-deduplication": DeduplicationExchange,
}

__all__ = [
    "EXCHANGE_TYPES",
    "Binding",
    "DeduplicationExchange",
    "DefaultExchange",
    "DelayedExchange",
    "Destination",
    "DirectExchange",
    "Exchange",
    "FanoutExchange",
    "HeadersExchange",
    "TopicExchange",
]
