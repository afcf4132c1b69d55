"""HTTP plumbing shared by the API handlers: JSON replies and errors as RabbitMQ shapes them,
request bodies, flags, the ``columns`` parameter, and lists (sorted and paged by listing.py).

RabbitMQ's error body is ``{"error": <type>, "reason": <text>}``: ``bad_request`` (400),
``not_authorised`` (401, a known user refused), ``not_authorized`` (401, login failed),
``not_found`` (404, from an operation) and ``Object Not Found`` (404, a missing resource).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from aiohttp import web

from warrenmq.management import listing

JSON_TYPE = "application/json"
REALM = 'Basic realm="RabbitMQ Management"'


class HTTPError(Exception):
    """An error reply: status, RabbitMQ's error type and reason."""

    def __init__(self, status: int, error: str, reason: Any, headers: dict[str, str] | None = None) -> None:
        super().__init__(f"{status} {error}: {reason}")
        self.status = status
        self.error = error
        self.reason = reason
        self.headers = headers or {}

    def response(self) -> web.Response:
        headers = {"cache-control": "no-cache", **self.headers}
        if not self.error:  # a challenge: no body, as RabbitMQ (cowboy) answers without credentials
            return web.Response(status=self.status, headers=headers)
        body = dumps({"error": self.error, "reason": self.reason})
        return web.Response(status=self.status, text=body, content_type=JSON_TYPE, headers=headers)


def bad_request(reason: Any) -> HTTPError:
    return HTTPError(400, "bad_request", reason)


def not_authorised(reason: str) -> HTTPError:
    return HTTPError(401, "not_authorised", reason)


def login_failed(reason: str = "Login failed") -> HTTPError:
    return HTTPError(401, "not_authorized", reason, {"www-authenticate": REALM})


def not_found(reason: str) -> HTTPError:
    return HTTPError(404, "not_found", reason)


def object_not_found() -> HTTPError:
    return HTTPError(404, "Object Not Found", "Not Found")


def dumps(value: Any) -> str:
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    if not text.isascii():
        # A table key or property string that came as bytes that are not UTF-8 is kept with
        # surrogateescape; shown, as RabbitMQ shows it, with a U+FFFD for each bad byte.
        text = text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return text


def reply(value: Any, request: web.Request | None = None, status: int = 200) -> web.Response:
    if request is not None and isinstance(value, (list, dict)):
        value = select_columns(value, request)
    return web.Response(status=status, text=dumps(value), content_type=JSON_TYPE, headers={"cache-control": "no-cache"})


def no_content() -> web.Response:
    return web.Response(status=204)


def created_or_updated(created: bool) -> web.Response:
    """cowboy_rest's answers to a PUT: 201 for a new resource, 204 for an existing one."""
    return web.Response(status=201 if created else 204)


async def body_json(request: web.Request) -> dict[str, Any]:
    """The request body as RabbitMQ decodes it: empty/null means {}, anything else must be an object."""
    raw = await request.read()
    text = raw.decode("utf-8", errors="replace").strip()
    if text in ("", "null", "undefined"):
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        raise bad_request("not_json") from None
    if isinstance(value, str):
        raise bad_request(
            "invalid payload: the request body JSON-decoded to a string. Is the input doubly-JSON-encoded?"
        )
    if not isinstance(value, dict):
        return {}
    return value


def require_keys(body: dict[str, Any], keys: list[str]) -> list[Any]:
    missing = [k for k in keys if body.get(k) is None]
    if missing:
        raise bad_request("[" + ",".join(f"{{key_missing,{k}}}" for k in missing) + "]")
    return [body[k] for k in keys]


def flag(value: Any, default: bool = False) -> bool:
    """A boolean as RabbitMQ's API accepts it (true/false, "true"/"false")."""
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise bad_request(f"{value!r} is not a boolean")


def integer(value: Any) -> int:
    if isinstance(value, bool):
        raise bad_request(["not_integer", value])
    try:
        return int(value)
    except (TypeError, ValueError):
        raise bad_request(["not_integer", value]) from None


def tag_list(value: Any) -> list[str]:
    """Tags as a list or as RabbitMQ's comma-separated string."""
    if value is None:
        return []
    if isinstance(value, list):
        return [str(t).strip() for t in value if str(t).strip()]
    return [t.strip() for t in str(value).split(",") if t.strip()]


# -- columns and lists -----------------------------------------------------------------------


def _columns(request: web.Request) -> list[list[str]] | None:
    text = request.query.get("columns")
    if not text:
        return None
    return [c.split(".") for c in text.split(",") if c]


def _extract(item: Any, columns: list[list[str]]) -> Any:
    if not isinstance(item, dict):
        return item
    out: dict[str, Any] = {}
    for key, value in item.items():
        wanted = [c for c in columns if c[0] == key]
        if not wanted:
            continue
        if any(len(c) == 1 for c in wanted):
            out[key] = value
        else:
            out[key] = _extract(value, [c[1:] for c in wanted])
    return out


def select_columns(value: Any, request: web.Request) -> Any:
    columns = _columns(request)
    if columns is None:
        return value
    if isinstance(value, list):
        return [_extract(v, columns) for v in value]
    if isinstance(value, dict) and "items" in value and "page" in value:
        return {**value, "items": [_extract(v, columns) for v in value["items"]]}
    return _extract(value, columns)


T = TypeVar("T")


def reply_list(
    items: list[dict[str, Any]], request: web.Request, default_sort: tuple[str, ...] = ("vhost", "name")
) -> web.Response:
    """Rendered JSON objects, sorted, filtered and paged as the query asks."""
    return reply_listing(items, request, list, listing.json_column, listing.json_name, default_sort)


def reply_listing(
    items: Sequence[T],
    request: web.Request,
    render: Callable[[Sequence[T]], list[dict[str, Any]]],
    column: listing.Column[T],
    name: Callable[[T], str],
    default_sort: tuple[str, ...] = ("vhost", "name"),
) -> web.Response:
    """Items (snapshots), sorted by ``column`` and filtered by ``name``; only what is answered
    is rendered (``render`` takes the list)."""
    try:
        selected = listing.select(
            items, request.query, render=render, column=column, name=name, default_sort=default_sort
        )
    except listing.ListError as exc:
        raise HTTPError(400, exc.error, exc.reason) from None
    return reply(selected, request)

