"""basic.consume arguments by queue type, as RabbitMQ 3.10.8 checks them.

Each queue type accepts its own consumer arguments; one that another type knows is refused
with 406 ("invalid arg 'x-stream-offset' for queue 'q' in vhost '/' of queue type
rabbit_classic_queue"), one that no type knows is ignored (measured against 3.10.8).
"""

from __future__ import annotations

from collections.abc import Iterable

from warrenmq.amqp.errors import PreconditionFailed
from warrenmq.broker.queue_args import TYPE_MODULES

CONSUME_ARGS: dict[str, tuple[str, ...]] = {
    "classic": ("x-priority", "x-cancel-on-ha-failover"),
    "quorum": ("x-priority",),
    "stream": ("x-stream-offset",),
}
KNOWN_CONSUME_ARGS = frozenset(key for keys in CONSUME_ARGS.values() for key in keys)


def check_foreign_arguments(queue_type: str, keys: Iterable[str], display: str) -> None:
    """Refuse a consumer argument that belongs to another queue type."""
    own = CONSUME_ARGS.get(queue_type, ())
    for key in keys:
        if key in KNOWN_CONSUME_ARGS and key not in own:
            raise PreconditionFailed(f"invalid arg '{key}' for {display} of queue type {TYPE_MODULES[queue_type]}")
