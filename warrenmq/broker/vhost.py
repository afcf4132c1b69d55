"""A virtual host: its exchanges, queues and bindings, and routing between them.

Every check here follows RabbitMQ's order and wording, because clients and their tests read
reply codes and texts.  ``owner`` is whatever identifies a connection (exclusive queues
belong to one); the model never looks inside it.
"""

from __future__ import annotations

import base64
import itertools
import os
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from warrenmq.amqp.errors import AccessRefused, CommandInvalid, NotFound, PreconditionFailed, ResourceLocked
from warrenmq.amqp.values import TYPE_NAMES, FieldTable
from warrenmq.broker.dead_letter import DeadLetterer
from warrenmq.broker.dedup import DedupJournal
from warrenmq.broker.delay import DelayStorage
from warrenmq.broker.exchanges import EXCHANGE_TYPES, Binding, DefaultExchange, Destination, Exchange
from warrenmq.broker.exchanges.base import freeze
from warrenmq.broker.exchanges.headers import HeadersExchange, validate_binding_arguments
from warrenmq.broker.message import Message
from warrenmq.broker.policies import Policy, effective_settings, policy_for_exchange, policy_for_queue
from warrenmq.broker.queue import Backlog, Queue, QueueStore, Scheduler
from warrenmq.broker.queue_args import (
    TYPE_ARGS,
    assert_equivalent_args,
    assert_equivalent_field,
    queue_display,
    validate_declare,
)
from warrenmq.broker.stream import Stream
from warrenmq.broker.stream_log import StreamLog

STANDARD_EXCHANGES = (
    ("amq.direct", "direct"),
    ("amq.fanout", "fanout"),
    ("amq.topic", "topic"),
    ("amq.headers", "headers"),
    ("amq.match", "headers"),
    ("amq.rabbitmq.trace", "topic"),  # internal; RabbitMQ's firehose target (never fed here)
)


# RabbitMQ names an unknown exchange type "invalid" when the name happens to be an atom its
# Erlang VM already holds, else "unknown" (rabbit_exchange:check_type).  The names of that
# first kind a client is likely to try, as probed on RabbitMQ 3.10.8; any other is unknown.
_ERLANG_ATOMS = frozenset(
    {
        "",
        "Direct",
        "a",
        "all",
        "amqp",
        "any",
        "bar",
        "basic",
        "binary",
        "classic",
        "default",
        "dummy",
        "error",
        "exchange",
        "false",
        "foo",
        "global",
        "header",
        "invalid",
        "list",
        "local",
        "match",
        "none",
        "ok",
        "queue",
        "quorum",
        "rabbit",
        "stream",
        "string",
        "system",
        "test",
        "true",
        "type",
        "undefined",
        "unknown",
        "x",
    }
)


class Storage(Protocol):
    """What a vhost needs from persistence (the node provides it)."""

    def queue_store(self, queue: Queue) -> QueueStore: ...

    def stream_log(self, queue: Queue) -> StreamLog: ...

    def definitions_changed(self) -> None: ...

    def delay_store(self, exchange: Exchange) -> DelayStorage | None: ...

    def journal(self, kind: str, *key: str) -> DedupJournal | None: ...


def server_generated_name(prefix: str) -> str:
    """RabbitMQ's ``amq.gen-<22 url-safe base64 chars>`` shape."""
    return prefix + base64.urlsafe_b64encode(os.urandom(16)).rstrip(b"=").decode()


def exchange_display(name: str, vhost: str) -> str:
    return f"exchange '{name}' in vhost '{vhost}'"


class VHost:
    def __init__(
        self,
        name: str,
        scheduler: Scheduler | None = None,
        storage: Storage | None = None,
        next_seq: Callable[[], int] | None = None,
    ) -> None:
        self.name = name
        self.scheduler = scheduler
        self.storage = storage
        self.queues: dict[str, Queue] = {}
        self.default_exchange = DefaultExchange(name, self.queues)
        self.exchanges: dict[str, Exchange] = {"": self.default_exchange}
        self.description = ""
        self.tags: list[str] = []
        self.limits: dict[str, int] = {}
        counter = itertools.count(1)
        self.dead_letterer = DeadLetterer(self, next_seq or (lambda: next(counter)))
        self.queue_removed: list[Callable[[Queue], None]] = []  # e.g. metrics
        self.policies: dict[str, Policy] = {}
        self.backlog_factory: Callable[[Queue], Backlog] | None = None  # paging, when a store pages
        for name_, type_ in STANDARD_EXCHANGES:
            internal = name_ == "amq.rabbitmq.trace"
            self.exchanges[name_] = EXCHANGE_TYPES[type_](name_, name, durable=True, internal=internal)

    # -- lookups ------------------------------------------------------------------------

    def exchange(self, name: str) -> Exchange:
        exchange = self.exchanges.get(name)
        if exchange is None:
            raise NotFound(f"no {exchange_display(name, self.name)}")
        return exchange

    def queue(self, name: str, owner: object | None = None) -> Queue:
        """The queue by name, refusing a queue exclusive to another connection."""
        queue = self.queues.get(name)
        if queue is None:
            raise NotFound(f"no {queue_display(name, self.name)}")
        if queue.exclusive_owner is not None and queue.exclusive_owner is not owner:
            raise self._locked(queue)
        return queue

    def _locked(self, queue: Queue) -> ResourceLocked:
        return ResourceLocked(
            f"cannot obtain exclusive access to locked {queue_display(queue.name, self.name)}. It could be "
            "originally declared on another connection or the exclusive property value does not match that "
            "of the original declaration."
        )

    # -- exchanges ----------------------------------------------------------------------

    def declare_exchange(
        self,
        name: str,
        type_: str,
        durable: bool = False,
        auto_delete: bool = False,
        internal: bool = False,
        arguments: FieldTable | None = None,
        passive: bool = False,
    ) -> Exchange:
        if name == "":  # even a passive declare, as RabbitMQ
            raise AccessRefused("operation not permitted on the default exchange")
        if passive:
            return self.exchange(name)
        cls = self._exchange_type(type_)
        existing = self.exchanges.get(name)
        arguments = arguments if arguments is not None else FieldTable()
        if existing is not None:
            display = exchange_display(name, self.name)
            assert_equivalent_field(existing.TYPE, type_, "type", display)
            assert_equivalent_field(existing.durable, durable, "durable", display)
            assert_equivalent_field(existing.auto_delete, auto_delete, "auto_delete", display)
            assert_equivalent_field(existing.internal, internal, "internal", display)
            assert_equivalent_args(existing.arguments, arguments, frozenset({"alternate-exchange"}), display)
            return existing
        self.check_new_exchange(name, type_, arguments)
        exchange = cls(
            name, self.name, durable=durable, auto_delete=auto_delete, internal=internal, arguments=arguments
        )
        self.exchanges[name] = exchange
        exchange.attach(self)
        if self.policies:
            self._apply_exchange_policy(exchange)
        if durable:
            self._changed()
        return exchange

    @staticmethod
    def _exchange_type(type_: str) -> type[Exchange]:
        cls = EXCHANGE_TYPES.get(type_)
        if cls is None:
            adjective = "invalid" if type_ in _ERLANG_ATOMS else "unknown"
            raise CommandInvalid(f"{adjective} exchange type '{type_}'")
        return cls

    def check_new_exchange(self, name: str, type_: str, arguments: FieldTable) -> None:
        """The checks declaring a new exchange passes, in RabbitMQ's order, creating nothing."""
        self._exchange_type(type_)
        if name.startswith("amq."):
            raise AccessRefused(f"exchange name '{name}' contains reserved prefix 'amq.*'")
        alternate = arguments.get("alternate-exchange")
        if alternate is not None and alternate[0] != "S":
            raise PreconditionFailed(
                f"invalid type '{TYPE_NAMES[alternate[0]]}' for arg 'alternate-exchange' in "
                f"{exchange_display(name, self.name)}"
            )

    def check_delete_exchange(self, name: str, if_unused: bool = False) -> Exchange | None:
        """exchange.delete's checks; the exchange (None: nothing to delete), deleting nothing."""
        if name == "":
            raise AccessRefused("operation not permitted on the default exchange")
        exchange = self.exchanges.get(name)
        if exchange is None:
            return None
        if name.startswith("amq.") and any(name == n for n, _ in STANDARD_EXCHANGES):
            raise AccessRefused(f"deletion of system {exchange_display(name, self.name)} not allowed")
        if if_unused and exchange.has_bindings():
            raise PreconditionFailed(f"{exchange_display(name, self.name)} in use")
        return exchange

    def delete_exchange(self, name: str, if_unused: bool = False) -> None:
        exchange = self.check_delete_exchange(name, if_unused)
        if exchange is not None:  # a missing one is fine: idempotent, as RabbitMQ
            self._remove_exchange(exchange)

    def _remove_exchange(self, exchange: Exchange) -> None:
        del self.exchanges[exchange.name]
        exchange.deleted = True
        exchange.detach()
        for binding in list(exchange.bindings.values()):
            exchange.remove_binding(binding.destination, binding.routing_key, binding.arguments)
            if isinstance(binding.destination, Exchange):
                self._maybe_auto_delete(binding.destination)
        # Bindings where it is the destination go with it.
        for source in list(self.exchanges.values()):
            if source.exchange_bindings and source.remove_bindings_to(exchange):
                self._maybe_auto_delete(source)
        if exchange.durable:
            self._changed()

    def _maybe_auto_delete(self, exchange: Exchange) -> None:
        # An auto-delete exchange goes when its last binding (as source) goes.
        if exchange.auto_delete and not exchange.bindings and not exchange.deleted and exchange.name in self.exchanges:
            self._remove_exchange(exchange)

    # -- queues -------------------------------------------------------------------------

    def declare_queue(
        self,
        name: str,
        durable: bool = False,
        exclusive: bool = False,
        auto_delete: bool = False,
        arguments: FieldTable | None = None,
        passive: bool = False,
        owner: object | None = None,
        server_named: bool = False,
    ) -> Queue:
        """queue.declare; returns the (new or existing) queue.  ``server_named``: the name is
        one this server generated (amq.gen-...), so the reserved prefix is no error."""
        if passive:
            queue = self.queue(name, owner)
            queue.touch()
            return queue
        arguments = arguments if arguments is not None else FieldTable()
        if not name:
            name = server_generated_name("amq.gen-")
        elif name.startswith("amq.") and name not in self.queues and not server_named:
            raise AccessRefused(f"queue name '{name}' contains reserved prefix 'amq.*'")
        display = queue_display(name, self.name)
        declared_owner = owner if exclusive else None
        existing = self.queues.get(name)
        if existing is not None:
            if existing.exclusive_owner is not declared_owner:
                raise self._locked(existing)
            assert_equivalent_field(existing.durable, durable, "durable", display)
            assert_equivalent_field(existing.auto_delete, auto_delete, "auto_delete", display)
            existing_args = FieldTable.of(existing.arguments)
            assert_equivalent_args(existing_args, arguments, TYPE_ARGS[existing.settings.queue_type], display)
            existing.touch()
            return existing
        # Only a new queue's arguments are validated: RabbitMQ compares a redeclaration with
        # the existing queue and reports the first difference instead.
        settings = validate_declare(arguments, name, self.name, durable, exclusive, auto_delete)
        queue_class = Stream if settings.queue_type == "stream" else Queue
        queue = queue_class(
            name,
            self.name,
            durable=durable,
            exclusive_owner=declared_owner,
            auto_delete=auto_delete,
            arguments=arguments,
            settings=settings,
            scheduler=self.scheduler,
            backlog_factory=self.backlog_factory,
        )
        self.add_queue(queue)
        return queue

    def add_queue(self, queue: Queue, stored: bool = True) -> None:
        """Register a queue (declared or recovered) and wire its hooks.  ``stored``: a durable
        queue gets its store handle (not a queue whose messages live elsewhere)."""
        self.queues[queue.name] = queue
        queue.on_unused = self._queue_unused
        queue.on_expired = self._queue_expired
        self._apply_queue_policy(queue)
        queue.arm_idle_expiry()
        if queue.durable and self.storage is not None:
            if stored and isinstance(queue, Stream):
                queue.attach_log(self.storage.stream_log(queue))
            elif stored:
                queue.store = self.storage.queue_store(queue)
            self._changed()

    def replace_queue(self, old: Queue, new: Queue, stored: bool = True) -> None:
        """Put ``new`` in the place of ``old`` (same name), with its bindings: in cluster mode
        a queue's local stand-in changes when its leadership moves to or from this node."""
        bound = [(b.source, b.routing_key, b.arguments) for b in self.bindings_to(old)]
        for exchange in self.exchanges.values():
            if exchange is not self.default_exchange:
                exchange.remove_bindings_to(old)
        self.add_queue(new, stored)
        for source, routing_key, arguments in bound:
            source.add_binding(Binding(source, new, routing_key, arguments))

    def _queue_expired(self, queue: Queue) -> None:
        if not queue.deleted:
            self.remove_queue(queue)

    def _queue_unused(self, queue: Queue) -> None:
        if queue.auto_delete and queue.had_consumers and not queue.deleted:
            self.remove_queue(queue)

    def delete_queue(
        self, name: str, if_unused: bool = False, if_empty: bool = False, owner: object | None = None
    ) -> int:
        queue = self.queues.get(name)
        if queue is None:
            return 0  # idempotent, as RabbitMQ
        if queue.exclusive_owner is not None and queue.exclusive_owner is not owner:
            raise self._locked(queue)
        display = queue_display(name, self.name)
        if if_unused and queue.consumer_count:
            raise PreconditionFailed(f"{display} in use")
        if if_empty and queue.message_count:
            raise PreconditionFailed(f"{display} not empty")
        return self.remove_queue(queue)

    def remove_queue(self, queue: Queue) -> int:
        """Delete a queue and its bindings; returns its ready message count."""
        if self.queues.get(queue.name) is not queue:
            return 0
        del self.queues[queue.name]
        for exchange in list(self.exchanges.values()):
            if exchange is not self.default_exchange and exchange.remove_bindings_to(queue):
                self._maybe_auto_delete(exchange)
        count = queue.delete()
        for hook in self.queue_removed:
            hook(queue)
        if queue.durable:
            self._changed()
        return count

    def purge_queue(self, name: str, owner: object | None = None) -> int:
        return self.queue(name, owner).purge()

    # -- bindings -----------------------------------------------------------------------

    def bind(
        self, destination: Destination, source_name: str, routing_key: str, arguments: FieldTable | None = None
    ) -> None:
        if source_name == "" or (isinstance(destination, Exchange) and destination.name == ""):
            raise AccessRefused("operation not permitted on the default exchange")
        arguments = arguments if arguments is not None else FieldTable()
        source = self.check_bind(source_name, arguments)
        added = source.add_binding(Binding(source, destination, routing_key, arguments))
        if added and source.durable and destination.durable:
            self._changed()

    def check_bind(self, source_name: str, arguments: FieldTable) -> Exchange:
        """The source of a new binding, once its arguments pass (binding nothing)."""
        source = self.exchange(source_name)
        if isinstance(source, HeadersExchange):
            validate_binding_arguments(arguments)
        return source

    def unbind(
        self, destination: Destination, source_name: str, routing_key: str, arguments: FieldTable | None = None
    ) -> None:
        if source_name == "" or (isinstance(destination, Exchange) and destination.name == ""):
            raise AccessRefused("operation not permitted on the default exchange")
        source = self.exchanges.get(source_name)
        if source is None:
            return  # as RabbitMQ: unbinding from a missing exchange is fine
        binding = source.remove_binding(destination, routing_key, arguments if arguments is not None else FieldTable())
        if binding is None:
            return  # unbinding what is not bound is fine, as in RabbitMQ
        if source.durable and destination.durable:
            self._changed()
        self._maybe_auto_delete(source)

    def bindings(self) -> Iterable[Binding]:
        for exchange in self.exchanges.values():
            yield from exchange.bindings.values()

    def bindings_to(self, destination: Destination) -> list[Binding]:
        return [b for b in self.bindings() if b.destination is destination]

    def has_binding(self, destination: Destination, source_name: str, routing_key: str, arguments: FieldTable) -> bool:
        source = self.exchanges.get(source_name)
        if source is None:
            return False
        return (id(destination), routing_key, freeze(arguments)) in source.bindings

    # -- routing ------------------------------------------------------------------------

    def route(self, exchange: Exchange, message: Message) -> list[Queue] | tuple[Queue, ...]:
        """The queues a message published to ``exchange`` reaches, each once."""
        exchange.stats.publish_in += 1
        found = exchange.route(message.routing_key, message)
        # routes_to_queues_only, inlined: this runs once per published message.
        if not exchange.exchange_bindings and exchange.alternate is None and exchange.policy_alternate is None:
            if found:
                exchange.stats.publish_out += 1
            return found  # type: ignore[return-value]
        return self._route_slow(exchange, message, found)

    def route_keys(self, exchange: Exchange, message: Message, keys: list[str]) -> list[Queue]:
        """Routing with several routing keys (CC/BCC): the union, each queue once."""
        out: list[Queue] = []
        seen: set[int] = set()
        original = message.routing_key
        for key in keys:
            message.routing_key = key
            for queue in self.route(exchange, message):
                if id(queue) not in seen:
                    seen.add(id(queue))
                    out.append(queue)
        message.routing_key = original
        return out

    def _route_slow(self, exchange: Exchange, message: Message, first: Any) -> list[Queue]:
        """Exchange-to-exchange bindings and alternate exchanges, visiting each exchange once."""
        queues: list[Queue] = []
        seen_queues: set[int] = set()
        visited: set[int] = {id(exchange)}
        pending: list[tuple[Exchange, Any]] = [(exchange, first)]
        while pending:
            current, destinations = pending.pop()
            reached = False
            for destination in destinations:
                if isinstance(destination, Exchange):
                    if id(destination) not in visited and not destination.deleted:
                        visited.add(id(destination))
                        destination.stats.publish_in += 1
                        pending.append((destination, destination.route(message.routing_key, message)))
                    reached = True
                elif id(destination) not in seen_queues:
                    seen_queues.add(id(destination))
                    queues.append(destination)
                    reached = True
            if not destinations and current.alternate_exchange is not None:
                alternate = self.exchanges.get(current.alternate_exchange)
                if alternate is not None and id(alternate) not in visited:
                    visited.add(id(alternate))
                    alternate.stats.publish_in += 1
                    pending.append((alternate, alternate.route(message.routing_key, message)))
            if reached:
                current.stats.publish_out += 1
        return queues

    # -- policies -----------------------------------------------------------------------

    def set_policy(self, policy: Policy) -> None:
        self.policies[policy.name] = policy
        self._reapply_policies()

    def clear_policy(self, name: str) -> None:
        if self.policies.pop(name, None) is None:
            raise NotFound(f"policy '{name}' not found in vhost '{self.name}'")
        self._reapply_policies()

    def _reapply_policies(self) -> None:
        for queue in self.queues.values():
            self._apply_queue_policy(queue)
        for exchange in self.exchanges.values():
            if exchange.name:
                self._apply_exchange_policy(exchange)
        self._changed()

    def _apply_queue_policy(self, queue: Queue) -> None:
        policy = policy_for_queue(list(self.policies.values()), queue.name, queue.base_settings.queue_type)
        queue.policy = policy.name if policy is not None else None
        settings = effective_settings(queue.base_settings, policy, queue.arguments)
        # The dead-letter exchange first, as RabbitMQ: messages a new length limit drops
        # are dead-lettered under the new policy.
        queue.dead_letter = self.dead_letterer.for_queue(queue, settings)
        queue.replace_settings(settings)

    def _apply_exchange_policy(self, exchange: Exchange) -> None:
        policy = policy_for_exchange(list(self.policies.values()), exchange.name)
        exchange.policy = policy.name if policy is not None else None
        exchange.policy_alternate = policy.definition.get("alternate-exchange") if policy is not None else None

    # -- connection lifecycle -------------------------------------------------------------

    def owner_closed(self, owner: object) -> None:
        """A connection went: its exclusive queues go with it."""
        for queue in [q for q in self.queues.values() if q.exclusive_owner is owner]:
            self.remove_queue(queue)

    def _changed(self) -> None:
        if self.storage is not None:
            self.storage.definitions_changed()
