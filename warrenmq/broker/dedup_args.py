"""The arguments of WarrenMQ's extensions on queues and exchanges, checked at declaration.

Deduplication follows LavinMQ's arguments (``x-message-deduplication``, ``x-cache-size``,
``x-cache-ttl``, ``x-deduplication-header``); the cache size defaults to LavinMQ's 128.
"""

from __future__ import annotations

from dataclasses import dataclass

from warrenmq.amqp.values import INTEGER_TAGS, TYPE_NAMES, FieldTable, TypedValue

DEFAULT_CACHE_SIZE = 128
DEFAULT_DEDUP_HEADER = "x-deduplication-header"
MAX_MS = 4_294_967_295


@dataclass(frozen=True, slots=True)
class DedupSettings:
    cache_size: int = DEFAULT_CACHE_SIZE
    ttl: int | None = None  # ms an entry is remembered; None: until evicted
    header: str = DEFAULT_DEDUP_HEADER


def extension_arg_error(key: str, item: TypedValue) -> str | None:
    """What is wrong with one of the extension arguments (None: nothing)."""
    tag, value = item
    if key == "x-message-deduplication":
        return None if tag == "t" else f"expected boolean, got {TYPE_NAMES[tag]}"
    if key == "x-deduplication-header":
        return None if tag == "S" else f"expected string, got {TYPE_NAMES[tag]}"
    if tag not in INTEGER_TAGS:
        return f"expected integer, got {TYPE_NAMES[tag]}"
    if value < 0 or value > MAX_MS:
        return f"value out of range: {value}"
    if key == "x-cache-size" and value == 0:
        return "value out of range: 0"
    return None


def dedup_settings(args: FieldTable) -> DedupSettings | None:
    """The deduplication an object's (already checked) arguments ask for, or None."""
    enabled = args.get("x-message-deduplication")
    if enabled is None or enabled != ("t", True):
        return None
    size = args.get("x-cache-size")
    ttl = args.get("x-cache-ttl")
    header = args.get("x-deduplication-header")
    return DedupSettings(
        cache_size=int(size[1]) if size is not None else DEFAULT_CACHE_SIZE,
        ttl=int(ttl[1]) if ttl is not None and ttl[1] > 0 else None,
        header=str(header[1]) if header is not None else DEFAULT_DEDUP_HEADER,
    )


def check_extension_args(args: FieldTable, keys: tuple[str, ...] = ()) -> tuple[str, str] | None:
    """The first (key, error) among ``keys`` of ``args``."""
    for key in keys:
        item = args.get(key)
        if item is not None:
            error = extension_arg_error(key, item)
            if error is not None:
                return key, error
    return None
