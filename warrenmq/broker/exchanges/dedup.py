"""The ``x-message-deduplication`` exchange type of the rabbitmq-message-deduplication plugin:
it routes like a fanout exchange and drops duplicates (keyed by the ``x-deduplication-header``
header, or the message-id), with the plugin's arguments: ``x-cache-size`` (required, an
integer above 0, or such a number as a string), ``x-cache-ttl`` (ms) and
``x-cache-persistence`` (``memory``, the default, or ``disk``: then a durable exchange's cache
survives a restart).

A duplicate is dropped as with the ``x-message-deduplication`` argument on any exchange
(broker/dedup.py): confirmed, neither returned nor sent to an alternate exchange, where the
plugin's exchange would return it to a mandatory publisher as unroutable.
"""

from __future__ import annotations

from warrenmq.amqp.errors import PreconditionFailed
from warrenmq.amqp.values import INTEGER_TAGS, FieldTable, TypedValue
from warrenmq.broker.dedup_args import DedupSettings
from warrenmq.broker.exchanges.fanout import FanoutExchange

# The plugin's words.
BAD_SIZE = "Missing or invalid argument, 'x-cache-size' must be an integer greater than 0"
BAD_TTL = "Invalid argument, 'x-cache-ttl' must be an integer greater than 0"
BAD_PERSISTENCE = "Invalid argument, 'x-cache-persistence' must be either 'disk' or 'memory'"


def _positive(item: TypedValue | None) -> int | None:
    """An integer above 0, given as one or as a numeric string; None otherwise."""
    if item is None:
        return None
    tag, value = item
    if tag in INTEGER_TAGS and not isinstance(value, bool):
        number = int(value)
    elif tag in ("S", "x"):
        try:
            number = int(value.decode() if isinstance(value, bytes) else value)
        except ValueError:
            return None
    else:
        return None
    return number if number > 0 else None


class DeduplicationExchange(FanoutExchange):
    TYPE = "x-message-deduplication"

    def _check_arguments(self, arguments: FieldTable) -> None:
        if _positive(arguments.get("x-cache-size")) is None:
            raise PreconditionFailed(BAD_SIZE)
        if arguments.get("x-cache-ttl") is not None and _positive(arguments.get("x-cache-ttl")) is None:
            raise PreconditionFailed(BAD_TTL)
        persistence = arguments.get("x-cache-persistence")
        if persistence is not None and persistence not in (("S", "disk"), ("S", "memory")):
            raise PreconditionFailed(BAD_PERSISTENCE)

    def _dedup_settings(self) -> DedupSettings | None:
        size = _positive(self.arguments.get("x-cache-size"))
        assert size is not None
        return DedupSettings(cache_size=size, ttl=_positive(self.arguments.get("x-cache-ttl")))

    def _dedup_persists(self) -> bool:
        return self.durable and self.arguments.get("x-cache-persistence") == ("S", "disk")
