"""Fanout exchange: every bound destination gets every message."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from warrenmq.broker.exchanges.base import Binding, CountedDestinations, Destination, Exchange

if TYPE_CHECKING:
    from warrenmq.broker.message import Message


class FanoutExchange(Exchange):
    TYPE = "fanout"

    def _init_index(self) -> None:
        self._all = CountedDestinations()

    def route(self, routing_key: str, message: Message) -> Sequence[Destination]:
        return self._all.items

    def _index(self, binding: Binding) -> None:
        self._all.add(binding.destination)

    def _unindex(self, binding: Binding) -> None:
        self._all.remove(binding.destination)
