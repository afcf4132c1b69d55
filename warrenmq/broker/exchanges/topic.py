"""Topic exchange: binding keys are patterns with ``*`` (one word) and ``#`` (any words)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from warrenmq.broker.exchanges.base import Binding, Destination, Exchange
from warrenmq.broker.topic import TopicTrie

if TYPE_CHECKING:
    from warrenmq.broker.message import Message


class TopicExchange(Exchange):
    TYPE = "topic"

    def _init_index(self) -> None:
        self._trie: TopicTrie[Destination] = TopicTrie()

    def route(self, routing_key: str, message: Message) -> Sequence[Destination]:
        return self._trie.match(routing_key)

    def _index(self, binding: Binding) -> None:
        self._trie.add(binding.routing_key, binding.destination)

    def _unindex(self, binding: Binding) -> None:
        self._trie.remove(binding.routing_key, binding.destination)
