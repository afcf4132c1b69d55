"""What every exchange has: identity, flags, bindings, counters and the routing contract.

A type implements ``route`` (routing key and message in, destinations out) and keeps its own
index of bindings through ``_index``/``_unindex``.  ``route`` may return an internal list:
callers must not change it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Union

from warrenmq.amqp.errors import PreconditionFailed
from warrenmq.amqp.values import FieldTable
from warrenmq.broker.dedup import DROPPED, DedupCache
from warrenmq.broker.dedup_args import DedupSettings, check_extension_args, dedup_settings
from warrenmq.broker.stats import ExchangeStats

if TYPE_CHECKING:
    from warrenmq.broker.message import Message
    from warrenmq.broker.queue import Queue
    from warrenmq.broker.vhost import VHost

Destination = Union["Queue", "Exchange"]
DEDUP_ARGS = ("x-message-deduplication", "x-cache-size", "x-cache-ttl", "x-deduplication-header")


def freeze(value: Any) -> Any:
    """A hashable form of a typed table value (for binding identity)."""
    if isinstance(value, dict):
        return tuple(sorted((k, freeze(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return tuple(freeze(v) for v in value)
    return value


class Binding:
    __slots__ = ("args_key", "arguments", "destination", "routing_key", "source")

    def __init__(self, source: Exchange, destination: Destination, routing_key: str, arguments: FieldTable) -> None:
        self.source = source
        self.destination = destination
        self.routing_key = routing_key
        self.arguments = arguments
        self.args_key = freeze(arguments)

    @property
    def identity(self) -> tuple[int, str, Any]:
        return (id(self.destination), self.routing_key, self.args_key)

    @property
    def destination_kind(self) -> str:
        return "exchange" if isinstance(self.destination, Exchange) else "queue"

    def __repr__(self) -> str:
        return f"<Binding {self.source.name!r} -> {self.destination.name!r} key={self.routing_key!r}>"


class Exchange:
    TYPE: ClassVar[str] = ""

    def __init__(
        self,
        name: str,
        vhost: str,
        durable: bool = False,
        auto_delete: bool = False,
        internal: bool = False,
        arguments: FieldTable | None = None,
    ) -> None:
        self.name = name
        self.vhost = vhost
        self.durable = durable
        self.auto_delete = auto_delete
        self.internal = internal
        self.arguments = arguments if arguments is not None else FieldTable()
        self.bindings: dict[tuple[int, str, Any], Binding] = {}
        self.exchange_bindings = 0  # bindings whose destination is an exchange
        self.alternate: str | None = self.arguments.value("alternate-exchange")
        self.policy_alternate: str | None = None
        self.policy: str | None = None
        self.stats = ExchangeStats()
        self.deleted = False
        self.dedup: DedupCache | None = None
        self._check_arguments(self.arguments)
        self._init_index()

    def _init_index(self) -> None:
        """Set up the type's own binding index."""

    def _check_arguments(self, arguments: FieldTable) -> None:
        """Refuse arguments the exchange cannot work with (406)."""
        problem = check_extension_args(arguments, DEDUP_ARGS)
        if problem is not None:
            key, error = problem
            raise PreconditionFailed(f"invalid arg '{key}' for exchange '{self.name}' in vhost '{self.vhost}': {error}")

    def _dedup_settings(self) -> DedupSettings | None:
        """The deduplication the exchange does (None: none)."""
        return dedup_settings(self.arguments)

    def _dedup_persists(self) -> bool:
        """Whether its deduplication cache survives a restart."""
        return self.durable

    def attach(self, vhost: VHost) -> None:
        """The exchange was declared (or recovered) in ``vhost``: deduplication, if its
        arguments ask for it, and a type that holds messages (the delayed exchange) take
        their scheduler and storage here."""
        settings = self._dedup_settings()
        if settings is not None:
            storage = vhost.storage
            persists = storage is not None and self._dedup_persists()
            journal = storage.journal("dedup", "exchange", vhost.name, self.name) if storage and persists else None
            self.dedup = DedupCache(settings, journal)
            # An instance attribute: exchanges without deduplication route without the check.
            self.route = self._route_deduplicated  # type: ignore[method-assign]

    def detach(self) -> None:
        """The exchange was deleted: what it holds goes with it."""
        if self.dedup is not None:
            self.dedup.forget()

    def _route_deduplicated(self, routing_key: str, message: Message) -> Sequence[Destination]:
        assert self.dedup is not None
        if self.dedup.duplicate(message):
            return DROPPED
        return type(self).route(self, routing_key, message)

    @property
    def alternate_exchange(self) -> str | None:
        # The argument wins over a policy, as in RabbitMQ.
        return self.alternate if self.alternate is not None else self.policy_alternate

    @property
    def routes_to_queues_only(self) -> bool:
        """True when routing needs no exchange-to-exchange walk and no alternate exchange."""
        return self.exchange_bindings == 0 and self.alternate_exchange is None

    def add_binding(self, binding: Binding) -> bool:
        """Add; False when an identical binding already exists."""
        key = binding.identity
        if key in self.bindings:
            return False
        self.bindings[key] = binding
        if isinstance(binding.destination, Exchange):
            self.exchange_bindings += 1
        self._index(binding)
        return True

    def remove_binding(self, destination: Destination, routing_key: str, arguments: FieldTable) -> Binding | None:
        binding = self.bindings.pop((id(destination), routing_key, freeze(arguments)), None)
        if binding is not None:
            self._forget(binding)
        return binding

    def remove_bindings_to(self, destination: Destination) -> list[Binding]:
        gone = [b for b in self.bindings.values() if b.destination is destination]
        for binding in gone:
            del self.bindings[binding.identity]
            self._forget(binding)
        return gone

    def _forget(self, binding: Binding) -> None:
        if isinstance(binding.destination, Exchange):
            self.exchange_bindings -= 1
        self._unindex(binding)

    def has_bindings(self) -> bool:
        return bool(self.bindings)

    def route(self, routing_key: str, message: Message) -> Sequence[Destination]:
        raise NotImplementedError

    def _index(self, binding: Binding) -> None:
        raise NotImplementedError

    def _unindex(self, binding: Binding) -> None:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.vhost}/{self.name}>"


class CountedDestinations:
    """A list of distinct destinations with a count per destination.

    The same destination may be bound several times (e.g. with different arguments) but must
    receive a message once; the list is what routing returns, so it stays duplicate-free.
    """

    __slots__ = ("_counts", "items")

    def __init__(self) -> None:
        self.items: list[Destination] = []
        self._counts: dict[int, int] = {}

    def add(self, destination: Destination) -> None:
        key = id(destination)
        count = self._counts.get(key, 0)
        if count == 0:
            self.items.append(destination)
        self._counts[key] = count + 1

    def remove(self, destination: Destination) -> None:
        key = id(destination)
        count = self._counts.get(key, 0)
        if count <= 1:
            self._counts.pop(key, None)
            if count == 1:
                self.items.remove(destination)
        else:
            self._counts[key] = count - 1

    def __bool__(self) -> bool:
        return bool(self.items)
