"""The default exchange: every queue is reachable by its name; nothing may be bound to it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from warrenmq.broker.exchanges.base import Binding, Destination, Exchange

if TYPE_CHECKING:
    from warrenmq.broker.message import Message
    from warrenmq.broker.queue import Queue


class DefaultExchange(Exchange):
    TYPE = "direct"

    def __init__(self, vhost: str, queues: dict[str, Queue]) -> None:
        self._queues = queues
        super().__init__("", vhost, durable=True)

    def _init_index(self) -> None:
        pass

    def route(self, routing_key: str, message: Message) -> Sequence[Destination]:
        queue = self._queues.get(routing_key)
        return (queue,) if queue is not None else ()

    def _index(self, binding: Binding) -> None:
        raise AssertionError("the default exchange takes no bindings")

    def _unindex(self, binding: Binding) -> None:
        raise AssertionError("the default exchange takes no bindings")
