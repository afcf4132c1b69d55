"""Direct exchange: a destination gets the messages whose routing key equals its binding key."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from warrenmq.broker.exchanges.base import Binding, CountedDestinations, Destination, Exchange

if TYPE_CHECKING:
    from warrenmq.broker.message import Message

_NOWHERE: list[Destination] = []


class DirectExchange(Exchange):
    TYPE = "direct"

    def _init_index(self) -> None:
        self._routes: dict[str, CountedDestinations] = {}

    def route(self, routing_key: str, message: Message) -> Sequence[Destination]:
        found = self._routes.get(routing_key)
        return found.items if found is not None else _NOWHERE

    def _index(self, binding: Binding) -> None:
        found = self._routes.get(binding.routing_key)
        if found is None:
            found = self._routes[binding.routing_key] = CountedDestinations()
        found.add(binding.destination)

    def _unindex(self, binding: Binding) -> None:
        found = self._routes.get(binding.routing_key)
        if found is not None:
            found.remove(binding.destination)
            if not found:
                del self._routes[binding.routing_key]
