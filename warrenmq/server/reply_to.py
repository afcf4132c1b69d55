"""Direct reply-to: RPC replies delivered straight to the requesting channel, no queue.

A client consumes (no-ack) from the pseudo-queue ``amq.rabbitmq.reply-to`` and publishes its
requests with ``reply_to: amq.rabbitmq.reply-to``; the server rewrites that to
``amq.rabbitmq.reply-to.<token>``, and a reply published to the default exchange with that
routing key is delivered to the channel's reply consumer.  A reply for a channel that is
gone is unroutable.

In a cluster the token starts with the node's name (base64): a reply published on another
node is forwarded to the one holding the channel.
"""

from __future__ import annotations

import base64
import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from warrenmq.broker.consumer import Consumer

PSEUDO_QUEUE = "amq.rabbitmq.reply-to"
PREFIX = PSEUDO_QUEUE + "."


def node_tag(node: str) -> str:
    return base64.urlsafe_b64encode(node.encode()).decode().rstrip("=")


def node_of(address: str) -> str | None:
    """The node a cluster's reply address belongs to (None: not a cluster's address)."""
    tag, dot, _ = address[len(PREFIX) :].partition(".")
    if not dot:
        return None
    try:
        return base64.urlsafe_b64decode(tag + "=" * (-len(tag) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        return None


class ReplyRegistry:
    def __init__(self, node: str = "") -> None:
        self._consumers: dict[str, Consumer] = {}
        self._prefix = node_tag(node) + "." if node else ""

    def register(self, consumer: Consumer) -> str:
        token = self._prefix + base64.urlsafe_b64encode(os.urandom(18)).decode()
        self._consumers[token] = consumer
        return PREFIX + token

    def unregister(self, address: str) -> None:
        self._consumers.pop(address[len(PREFIX) :], None)

    def lookup(self, routing_key: str) -> Consumer | None:
        if not routing_key.startswith(PREFIX):
            return None
        return self._consumers.get(routing_key[len(PREFIX) :])
