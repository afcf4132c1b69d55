"""Headers exchange: match message headers against binding arguments.

``x-match`` is ``all`` (default), ``any``, ``all-with-x`` or ``any-with-x``.  Binding keys
starting with ``x-`` are ignored unless the mode ends in ``-with-x``.  A void binding value
asks only for the header's presence.

Values compare as RabbitMQ 3.10's ``==`` compares the Erlang terms its parser makes (checked
against RabbitMQ 3.10.8; 3.13 moved to ``=:=``, where 1.0 is not 1):

* every integer width, timestamps and both float widths are numbers compared by value
  (a short 1, a long 1, timestamp 1 and double 1.0 are equal; a float 0.1 is not the
  double 0.1, as its 32-bit value differs);
* long strings and byte arrays are both binaries: equal when their bytes are;
* a decimal is its ``{scale, value}`` pair: 1.0 (scale 1) is not 1 (scale 0);
* booleans are atoms: ``true`` is not 1;
* nested tables and arrays compare item by item, in order, type letters included.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from warrenmq.amqp.errors import PreconditionFailed
from warrenmq.amqp.values import INTEGER_TAGS, FieldTable, TypedValue
from warrenmq.broker.exchanges.base import Binding, Destination, Exchange

if TYPE_CHECKING:
    from warrenmq.broker.message import Message

MATCH_MODES = ("all", "any", "all-with-x", "any-with-x")


_NUMBER_TAGS = INTEGER_TAGS | frozenset("Tfd")


def term(item: TypedValue) -> Any:
    """A Python value equal to another exactly when RabbitMQ 3.10's ``==`` finds the two
    Erlang terms equal (Python's 1 == 1.0 as Erlang's; bool is kept apart from numbers)."""
    tag, value = item
    if tag in _NUMBER_TAGS:
        return ("num", value)
    if tag in ("S", "x"):
        return ("bin", value.encode() if isinstance(value, str) else bytes(value))
    if tag == "D":
        return ("dec", value.as_tuple())
    if tag == "F":
        return ("table", tuple((k, v[0], term(v)) for k, v in value.items()))
    if tag == "A":
        return ("array", tuple((v[0], term(v)) for v in value))
    return (tag, value)


def validate_binding_arguments(arguments: FieldTable) -> None:
    item = arguments.get("x-match")
    if item is None:
        return
    tag, value = item
    if tag != "S":
        from warrenmq.amqp.values import TYPE_NAMES

        raise PreconditionFailed(f"Invalid x-match field type {TYPE_NAMES[tag]} (value {value}); expected longstr")
    if value not in MATCH_MODES:
        raise PreconditionFailed(
            f'Invalid x-match field value <<"{value}">>; expected all, any, all-with-x, or any-with-x'
        )


class _Rule:
    __slots__ = ("any", "binding", "pattern")

    def __init__(self, binding: Binding) -> None:
        args = binding.arguments
        mode = args.value("x-match", "all")
        if mode not in MATCH_MODES:
            mode = "all"
        with_x = mode.endswith("-with-x")
        self.binding = binding
        self.any = mode.startswith("any")
        # (key, None) asks for presence (void); otherwise the term to compare.
        self.pattern: list[tuple[str, Any]] = []
        for key, item in args.items():
            if key == "x-match" or (key.startswith("x-") and not with_x):
                continue
            self.pattern.append((key, None if item[0] == "V" else term(item)))

    def matches(self, headers: dict[str, Any]) -> bool:
        if self.any:
            for key, expected in self.pattern:
                if key in headers and (expected is None or headers[key] == expected):
                    return True
            return False
        for key, expected in self.pattern:
            if key not in headers or (expected is not None and headers[key] != expected):
                return False
        return True


class HeadersExchange(Exchange):
    TYPE = "headers"

    def _init_index(self) -> None:
        self._rules: list[_Rule] = []

    def route(self, routing_key: str, message: Message) -> Sequence[Destination]:
        if not self._rules:
            return ()
        raw = message.properties.headers or {}
        headers = {k: term(v) for k, v in raw.items()}
        found: list[Destination] = []
        seen: set[int] = set()
        for rule in self._rules:
            destination = rule.binding.destination
            if id(destination) not in seen and rule.matches(headers):
                seen.add(id(destination))
                found.append(destination)
        return found

    def _index(self, binding: Binding) -> None:
        self._rules.append(_Rule(binding))

    def _unindex(self, binding: Binding) -> None:
        self._rules = [r for r in self._rules if r.binding is not binding]
