"""Direct reply-to: RPC replies delivered straight to the requesting channel, no queue.

A client consumes (no-ack) from the pseudo-queue ``amq.rabbitmq.reply-to`` and publishes its
requests with ``reply_to: amq.rabbitmq.reply-to``; the server rewrites that to
``amq.rabbitmq.reply-to.<token>``, and a reply published to the default exchange with that
routing key is delivered to the channel's reply consumer.  A reply for a channel that is
gone is unroutable.
"""

from __future__ import annotations

import base64
import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from warrenmq.broker.consumer import Consumer

PSEUDO_QUEUE = "amq.rabbitmq.reply-to"
PREFIX = PSEUDO_QUEUE + "."


class ReplyRegistry:
    def __init__(self) -> None:
        self._consumers: dict[str, Consumer] = {}

    def register(self, consumer: Consumer) -> str:
        token = base64.urlsafe_b64encode(os.urandom(18)).decode()
        self._consumers[token] = consumer
        return PREFIX + token

    def unregister(self, address: str) -> None:
        self._consumers.pop(address[len(PREFIX) :], None)

    def lookup(self, routing_key: str) -> Consumer | None:
        if not routing_key.startswith(PREFIX):
            return None
        return self._consumers.get(routing_key[len(PREFIX) :])
