"""RabbitMQ's list query parameters: sorting, filtering by name and pagination.

``sort`` (a dotted key, ``""``: as listed), ``sort_reverse``, and with ``page``: ``page_size``
(default 100, at most 500), ``name`` (a case-insensitive substring, or with ``use_regex=true``
a regular expression).  A paged answer is RabbitMQ's ``{"filtered_count", "item_count",
"items", "page", "page_count", "page_size", "total_count"}``.

The items can be anything: the caller says how to read an item's name and its value under a
sort key, and how to render it.  Lists of snapshots are sorted and filtered on the snapshots
and only the page is rendered: at 10,000 queues, rendering every queue's JSON to keep 100 of
them cost ten times what the page itself costs.  Pure: no HTTP here, errors are ``ListError``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 500

T = TypeVar("T")
# How to read a sort key from an item: the key in, a reader of that key's value out.
Column = Callable[[str], Callable[[T], Any]]


class ListError(Exception):
    """Invalid list parameters: RabbitMQ's error type and reason (a 400)."""

    def __init__(self, error: str, reason: str) -> None:
        super().__init__(reason)
        self.error = error
        self.reason = reason


def dotted(item: Any, key: str) -> Any:
    """The value at a dotted key of a JSON object; 0 where a part is missing (as RabbitMQ sorts)."""
    for part in key.split("."):
        if not isinstance(item, dict):
            return 0
        item = item.get(part, 0)
    return item


def json_column(key: str) -> Callable[[dict[str, Any]], Any]:
    """A rendered JSON object's column."""
    return lambda item: dotted(item, key)


def sort_key(value: Any) -> tuple[int, Any]:
    """Numbers before strings before the rest, as Erlang orders terms; None as 0."""
    kind = type(value)
    if kind is str:
        return (2, value)
    if kind is int or kind is float:
        return (0, value)
    if value is None:
        return (0, 0)
    if isinstance(value, bool):
        return (2, str(value).lower())
    if isinstance(value, (int, float)):
        return (0, value)
    if isinstance(value, str):
        return (2, value)
    return (3, json.dumps(value, sort_keys=True))


def sort(items: Sequence[T], query: Mapping[str, str], default: tuple[str, ...], column: Column[T]) -> list[T]:
    wanted = query.get("sort")
    if wanted == "":
        return list(items)
    keys = [wanted, *default] if wanted else list(default)
    getters = [column(key) for key in keys]
    if len(getters) == 2:
        first, second = getters
        ordered = sorted(items, key=lambda it: (sort_key(first(it)), sort_key(second(it))))
    elif len(getters) == 3:
        first, second, third = getters
        ordered = sorted(items, key=lambda it: (sort_key(first(it)), sort_key(second(it)), sort_key(third(it))))
    else:
        ordered = sorted(items, key=lambda it: [sort_key(get(it)) for get in getters])
    if query.get("sort_reverse", "").lower() == "true":
        ordered.reverse()
    return ordered


def _matcher(query: Mapping[str, str]) -> Callable[[str], bool] | None:
    name = query.get("name")
    if not name:
        return None
    if query.get("use_regex", "").lower() == "true":
        try:
            regex = re.compile(name, re.IGNORECASE)
        except re.error:
            raise ListError("bad_request", "invalid regular expression") from None
        return lambda text: regex.search(text) is not None
    lowered = name.lower()
    return lambda text: lowered in text.lower()


def _page_numbers(query: Mapping[str, str]) -> tuple[int, int] | None:
    page_text = query.get("page")
    if page_text is None:
        return None
    try:
        page = int(page_text)
        page_size = int(query.get("page_size", DEFAULT_PAGE_SIZE))
    except ValueError:
        raise ListError("bad_request", "Pagination parameters are invalid") from None
    if page < 1 or page_size < 1 or page_size > MAX_PAGE_SIZE:
        raise ListError(
            "invalid_pagination_parameters",
            f"Invalid pagination parameters: page number {page}, page size {page_size}",
        )
    return page, page_size


def select(
    items: Sequence[T],
    query: Mapping[str, str],
    *,
    render: Callable[[Sequence[T]], list[dict[str, Any]]],
    column: Column[T],
    name: Callable[[T], str],
    default_sort: tuple[str, ...] = ("vhost", "name"),
) -> list[dict[str, Any]] | dict[str, Any]:
    """The list, or with ``page`` the page, as the API answers it (``render`` renders a list,
    ``column`` reads a sort key's value, ``name`` what ``name=`` filters on)."""
    numbers = _page_numbers(query)
    if numbers is None:
        return render(sort(items, query, default_sort, column))
    page, page_size = numbers
    matches = _matcher(query)
    filtered = items if matches is None else [item for item in items if matches(name(item))]
    start = (page - 1) * page_size
    if start > len(filtered) and filtered:
        raise ListError(
            "page_out_of_range",
            f"Page out of range, page: {page} page size: {page_size}, len: {len(filtered)}",
        )
    ordered = sort(filtered, query, default_sort, column)
    chunk = render(ordered[start : start + page_size])
    return {
        "filtered_count": len(filtered),
        "item_count": len(chunk),
        "items": chunk,
        "page": page,
        "page_count": (len(filtered) + page_size - 1) // page_size,
        "page_size": page_size,
        "total_count": len(items),
    }


def by_name_only(query: Mapping[str, str]) -> bool:
    """A page whose order and filter need nothing but vhost and name: chosen from names alone."""
    return "page" in query and query.get("sort") in (None, "name", "vhost")


def json_name(item: dict[str, Any]) -> str:
    return str(item.get("name", ""))
