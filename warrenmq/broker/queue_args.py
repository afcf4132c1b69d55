"""Queue arguments: validation as RabbitMQ does it, and the settings a queue runs with.

Arguments arrive as a typed FieldTable so that errors can name the field type the way
RabbitMQ does (``{unacceptable_type,longstr}``).  Each queue type accepts its own set of
arguments; an argument known to another type is refused ("invalid arg ... of queue type").
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field, replace
from typing import Any

from warrenmq.amqp.errors import PreconditionFailed
from warrenmq.amqp.values import INTEGER_TAGS, TYPE_NAMES, FieldTable, TypedValue
from warrenmq.broker.dedup_args import DedupSettings, dedup_settings, extension_arg_error
from warrenmq.broker.stream_args import max_age_error

MAX_EXPIRY = 4_294_967_295  # ms; RabbitMQ's limit for TTLs and expiries
MAX_PRIORITY = 255
QUORUM_DEFAULT_DELIVERY_LIMIT = 20  # RabbitMQ 4.x default for quorum queues

QUEUE_TYPES = ("classic", "quorum")
KNOWN_TYPES = ("classic", "quorum", "stream")
OVERFLOW_MODES = ("drop-head", "reject-publish", "reject-publish-dlx")

# In the order RabbitMQ compares them when a queue is redeclared (it reports the first
# difference in this order).
CLASSIC_ARGS = (
    "x-expires",
    "x-message-ttl",
    "x-dead-letter-exchange",
    "x-dead-letter-routing-key",
    "x-max-length",
    "x-max-length-bytes",
    "x-max-priority",
    "x-overflow",
    "x-queue-mode",
    "x-queue-version",
    "x-single-active-consumer",
    "x-queue-type",
    "x-queue-master-locator",
)
QUORUM_ARGS = (
    "x-dead-letter-exchange",
    "x-dead-letter-routing-key",
    "x-dead-letter-strategy",
    "x-expires",
    "x-max-length",
    "x-max-length-bytes",
    "x-max-in-memory-length",
    "x-max-in-memory-bytes",
    "x-overflow",
    "x-single-active-consumer",
    "x-queue-type",
    "x-quorum-initial-group-size",
    "x-delivery-limit",
    "x-message-ttl",
    "x-queue-leader-locator",
)
STREAM_ARGS = (
    "x-queue-type",
    "x-max-length-bytes",
    "x-max-age",
    "x-stream-max-segment-size-bytes",
    "x-stream-filter-size-bytes",
    "x-initial-cluster-size",
    "x-queue-leader-locator",
)
# WarrenMQ's own arguments (both queue types): acknowledgement timeout (RabbitMQ 3.12+'s name),
# delayed requeue, and LavinMQ's deduplication arguments.  Not compared on redeclaration.
EXTENSION_ARGS = (
    "x-consumer-timeout",
    "x-delay-on-requeue",
    "x-message-deduplication",
    "x-cache-size",
    "x-cache-ttl",
    "x-deduplication-header",
)
ALL_ARGS = frozenset(CLASSIC_ARGS) | frozenset(QUORUM_ARGS) | frozenset(STREAM_ARGS)
TYPE_ARGS = {"classic": CLASSIC_ARGS, "quorum": QUORUM_ARGS, "stream": STREAM_ARGS}
TYPE_MODULES = {"classic": "rabbit_classic_queue", "quorum": "rabbit_quorum_queue", "stream": "rabbit_stream_queue"}


@dataclass(frozen=True, slots=True)
class QueueSettings:
    """What a queue runs with: its arguments merged with any policy."""

    queue_type: str = "classic"
    message_ttl: int | None = None
    expires: int | None = None
    max_length: int | None = None
    max_length_bytes: int | None = None
    overflow: str = "drop-head"
    dead_letter_exchange: str | None = None
    dead_letter_routing_key: str | None = None
    max_priority: int = 0
    single_active: bool = False
    delivery_limit: int | None = None
    consumer_timeout: int | None = None  # ms; 0 = none (opted out); None = the node's setting
    delay_on_requeue: int = 0  # ms a requeued message waits before it is ready again
    dedup: DedupSettings | None = None
    # Derived, a plain slot because publish reads it for every message.
    limited: bool = field(init=False, repr=False, compare=False, default=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "limited", self.max_length is not None or self.max_length_bytes is not None)

    def with_changes(self, **changes: Any) -> QueueSettings:
        return replace(self, **changes)


def queue_display(name: str, vhost: str) -> str:
    return f"queue '{name}' in vhost '{vhost}'"


def erl(value: Any) -> str:
    """Format a value as Erlang's ~p would, for the terms that appear in error texts."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value + '"'
    if isinstance(value, tuple):
        return "{" + ",".join(erl(v) if not isinstance(v, _Atom) else str(v) for v in value) + "}"
    return str(value)


class _Atom(str):
    """An Erlang atom inside an error term (printed bare)."""


def _invalid(key: str, display: str, error: str) -> PreconditionFailed:
    return PreconditionFailed(f"invalid arg '{key}' for {display}: {error}")


def _int_error(item: TypedValue) -> str | None:
    tag = item[0]
    if tag in INTEGER_TAGS:
        return None
    return erl(f"expected integer, got {TYPE_NAMES[tag]}")


def _check_non_neg(item: TypedValue) -> str | None:
    error = _int_error(item)
    if error is None and item[1] < 0:
        return erl((_Atom("value_negative"), item[1]))
    return error


def _check_expiry(value: int) -> str | None:
    if value < 0:
        return erl((_Atom("value_negative"), value))
    if value > MAX_EXPIRY:
        return erl((_Atom("value_too_large"), value))
    return None


def _check_string(item: TypedValue) -> str | None:
    if item[0] == "S":
        return None
    return erl((_Atom("unacceptable_type"), _Atom(TYPE_NAMES[item[0]])))


def _check(key: str, item: TypedValue, args: FieldTable) -> str | None:
    tag, value = item
    if key == "x-expires":
        error = _int_error(item)
        if error is None:
            if value == 0:
                return erl((_Atom("value_zero"), 0))
            return _check_expiry(value)
        return error
    if key == "x-message-ttl":
        error = _int_error(item)
        return error if error is not None else _check_expiry(value)
    if key in (
        "x-max-length",
        "x-max-length-bytes",
        "x-max-in-memory-length",
        "x-max-in-memory-bytes",
        "x-stream-max-segment-size-bytes",
    ):
        return _check_non_neg(item)
    if key == "x-max-age":
        return max_age_error(item)
    if key == "x-delivery-limit":
        return None  # not validated by RabbitMQ: see settings_from_arguments
    if key == "x-max-priority":
        error = _check_non_neg(item)
        if error is None and value > MAX_PRIORITY:
            return erl((_Atom("max_value_exceeded"), value))
        return error
    if key == "x-dead-letter-exchange":
        return _check_string(item)
    if key == "x-dead-letter-routing-key":
        error = _check_string(item)
        if error is None and "x-dead-letter-exchange" not in args:
            return "routing_key_but_no_dlx_defined"
        return error
    if key == "x-overflow":
        if tag != "S":
            return erl((_Atom("unacceptable_type"), _Atom(TYPE_NAMES[tag])))
        return None if value in OVERFLOW_MODES else "invalid_overflow"
    if key == "x-single-active-consumer":
        if tag != "t":
            return erl((_Atom("unacceptable_type"), _Atom(TYPE_NAMES[tag])))
        return None
    if key == "x-queue-mode":
        if tag != "S":
            return erl((_Atom("unacceptable_type"), _Atom(TYPE_NAMES[tag])))
        return None if value in ("default", "lazy") else erl(f"unsupported queue mode '{value}'")
    if key == "x-queue-version":
        error = _check_non_neg(item)
        if error is None and value not in (1, 2):
            return erl(f"unsupported queue version '{value}'")
        return error
    if key in ("x-quorum-initial-group-size", "x-initial-cluster-size"):
        error = _check_non_neg(item)
        if error is None and value == 0:
            return erl((_Atom("value_zero"), 0))
        return error
    return None


def queue_type_of(args: FieldTable, display: str) -> str:
    item = args.get("x-queue-type")
    if item is None:
        return "classic"
    tag, value = item
    if tag != "S":
        raise _invalid("x-queue-type", display, erl((_Atom("unacceptable_type"), _Atom(TYPE_NAMES[tag]))))
    if value not in KNOWN_TYPES:
        raise _invalid("x-queue-type", display, erl(f"unsupported queue type '{value}'"))
    return str(value)


def validate_declare(
    args: FieldTable, name: str, vhost: str, durable: bool, exclusive: bool, auto_delete: bool
) -> QueueSettings:
    """Check queue.declare arguments and properties; return the settings they give."""
    display = queue_display(name, vhost)
    queue_type = queue_type_of(args, display)
    own = TYPE_ARGS[queue_type]
    for key, item in args.items():
        if key in own:
            error = _check(key, item, args)
            if error is not None:
                raise _invalid(key, display, error)
        elif key in ALL_ARGS:
            raise PreconditionFailed(f"invalid arg '{key}' for {display} of queue type {TYPE_MODULES[queue_type]}")
        elif key in EXTENSION_ARGS:
            error = extension_arg_error(key, item)
            if error is not None:
                raise _invalid(key, display, erl(error))
    if queue_type in ("quorum", "stream"):
        if auto_delete:
            raise PreconditionFailed(f"invalid property 'auto-delete' for {display}")
        if exclusive:
            raise PreconditionFailed(f"invalid property 'exclusive-owner' for {display}")
        if not durable:
            raise PreconditionFailed(f"invalid property 'non-durable' for {display}")
    return settings_from_arguments(args, queue_type)


def settings_from_arguments(args: FieldTable, queue_type: str = "classic") -> QueueSettings:
    """Settings from already-validated arguments."""

    def get(key: str) -> Any:
        item = args.get(key)
        return None if item is None else item[1]

    delivery_limit = _delivery_limit(args.get("x-delivery-limit"))
    return QueueSettings(
        queue_type=queue_type,
        message_ttl=get("x-message-ttl"),
        expires=get("x-expires"),
        max_length=get("x-max-length"),
        max_length_bytes=get("x-max-length-bytes"),
        overflow=get("x-overflow") or "drop-head",
        dead_letter_exchange=get("x-dead-letter-exchange"),
        dead_letter_routing_key=get("x-dead-letter-routing-key"),
        max_priority=get("x-max-priority") or 0 if queue_type == "classic" else 0,
        single_active=bool(get("x-single-active-consumer")),
        delivery_limit=delivery_limit if queue_type == "quorum" else None,
        consumer_timeout=get("x-consumer-timeout"),
        delay_on_requeue=get("x-delay-on-requeue") or 0,
        dedup=dedup_settings(args),
    )


def _delivery_limit(item: TypedValue | None) -> int | None:
    """A quorum queue's x-delivery-limit: RabbitMQ 4.x's default of 20 when absent, no limit
    when negative (4.x) or not an integer (RabbitMQ accepts any value there and a non-integer
    one never limits anything)."""
    if item is None:
        return QUORUM_DEFAULT_DELIVERY_LIMIT
    tag, value = item
    if tag not in INTEGER_TAGS or value < 0:
        return None
    return int(value)


def _type_class(tag: str) -> str:
    if tag in INTEGER_TAGS:
        return "int"
    if tag in ("f", "d"):
        return "float"
    return tag


def _val(item: TypedValue | None) -> str:
    if item is None:
        return "none"
    tag, value = item
    return f"the value '{_plain(value)}' of type '{TYPE_NAMES[tag]}'"


def _plain(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    return str(value)


def assert_equivalent_args(current: FieldTable, new: FieldTable, keys: Collection[str], display: str) -> None:
    """RabbitMQ's redeclare check over the arguments a queue type knows, in its order."""
    for key in keys:
        old_item = current.get(key)
        new_item = new.get(key)
        if old_item == new_item:
            continue
        if old_item is not None and new_item is not None:
            if _type_class(old_item[0]) == _type_class(new_item[0]) and old_item[1] == new_item[1]:
                continue
            received, existing = f"'{_plain(new_item[1])}'", f"'{_plain(old_item[1])}'"
        else:
            if key == "x-queue-type" and (old_item or new_item) == ("S", "classic"):
                continue
            received, existing = _val(new_item), _val(old_item)
        raise PreconditionFailed(
            f"inequivalent arg '{key}' for {display}: received {received} but current is {existing}"
        )


def assert_equivalent_field(current: Any, new: Any, key: str, display: str) -> None:
    if current != new:
        raise PreconditionFailed(
            f"inequivalent arg '{key}' for {display}: received '{_plain(new)}' but current is '{_plain(current)}'"
        )
