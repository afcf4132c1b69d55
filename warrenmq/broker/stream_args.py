"""Stream arguments: x-max-age and the segment size at declare time, x-stream-offset at
consume time, parsed and refused as RabbitMQ 3.10.8 does.

Durations ("30m", "7D") are digits and one unit: Y(ear, 365 days), M(onth, 30 days),
D(ay), h, m, s, more than zero.  RabbitMQ's parser crashes (541 INTERNAL_ERROR, the
connection closes) on a string that does not start with a digit, and refuses any other
malformed one with 406; both are reproduced, codes and texts measured against 3.10.8.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from warrenmq.amqp.errors import ParserCrash, PreconditionFailed
from warrenmq.amqp.frames import erlang_binary
from warrenmq.amqp.values import INTEGER_TAGS, TYPE_NAMES, TypedValue

UNIT_MS = {
    "Y": 365 * 86_400_000,
    "M": 30 * 86_400_000,
    "D": 86_400_000,
    "h": 3_600_000,
    "m": 60_000,
    "s": 1_000,
}
_DURATION = re.compile(r"([0-9]+)([YMDhms])")
DEFAULT_SEGMENT_SIZE = 500_000_000  # bytes: RabbitMQ's default x-stream-max-segment-size-bytes


def duration_ms(text: str | bytes) -> int | None:
    """Milliseconds of a duration such as "30m"; None when RabbitMQ refuses it (406).
    Raises ParserCrash where RabbitMQ's parser crashes (no leading digit)."""
    if isinstance(text, bytes):
        text = text.decode("latin-1")
    if not text[:1].isdigit() or not text[:1].isascii():
        raise ParserCrash("unparsable duration")
    match = _DURATION.fullmatch(text)
    if match is None:
        return None
    value = int(match.group(1)) * UNIT_MS[match.group(2)]
    return value or None


def max_age_error(item: TypedValue) -> str | None:
    """Why x-max-age is refused (None: it is fine), as RabbitMQ words it."""
    tag, value = item
    if tag != "S":
        return "{unacceptable_type," + TYPE_NAMES[tag] + "}"
    return None if duration_ms(value) is not None else "invalid_max_age"


@dataclass(frozen=True, slots=True)
class Retention:
    """What a stream keeps: at most ``max_bytes`` and messages younger than ``max_age_ms``
    (None: no limit), in segments of about ``segment_size`` bytes."""

    max_bytes: int | None = None
    max_age_ms: int | None = None
    segment_size: int = DEFAULT_SEGMENT_SIZE


def retention_from_arguments(arguments: dict[str, Any]) -> Retention:
    """From already validated (typed) queue arguments."""

    def get(key: str) -> Any:
        item = arguments.get(key)
        if isinstance(item, tuple):
            return item[1]
        return item

    age = get("x-max-age")
    size = get("x-stream-max-segment-size-bytes")
    return Retention(
        max_bytes=get("x-max-length-bytes"),
        max_age_ms=duration_ms(age) if age is not None else None,
        segment_size=DEFAULT_SEGMENT_SIZE if size is None else int(size),
    )


# -- x-stream-offset ---------------------------------------------------------------------

FIRST, LAST, NEXT, OFFSET, TIMESTAMP = "first", "last", "next", "offset", "timestamp"
_NAMED = {"first": FIRST, "last": LAST, "next": NEXT}


@dataclass(frozen=True, slots=True)
class StartAt:
    """Where a stream consumer starts: a named place, an offset, or the first message
    published at or after ``value`` (ms since the epoch)."""

    kind: str
    value: int = 0


def start_at(item: TypedValue | None, display: str, now_ms: int) -> StartAt:
    """x-stream-offset as RabbitMQ 3.10.8 reads it (absent: next)."""
    if item is None:
        return StartAt(NEXT)
    tag, value = item
    if tag in INTEGER_TAGS:
        return StartAt(OFFSET, max(0, int(value)))  # a negative offset starts at the first
    if tag == "T":
        return StartAt(TIMESTAMP, int(value) * 1000)  # AMQP timestamps are seconds
    if tag == "S":
        raw = value if isinstance(value, bytes) else value.encode()
        named = _NAMED.get(raw.decode("latin-1"))
        if named is not None:
            return StartAt(named)
        interval = duration_ms(raw)
        if interval is None:
            raise PreconditionFailed(
                f"invalid arg 'x-stream-offset' for {display}: "
                f"{{invalid_stream_offset_arg,{{longstr,{erlang_binary(raw)}}}}}"
            )
        return StartAt(TIMESTAMP, now_ms - interval)
    if tag == "x":
        named = _NAMED.get(bytes(value).decode("latin-1"))
        if named is not None:
            return StartAt(named)
    # Booleans, decimals, tables, other binaries: RabbitMQ crashes on them.
    raise ParserCrash("unparsable x-stream-offset")
