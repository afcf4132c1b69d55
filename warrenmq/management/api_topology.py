"""Exchanges, queues and bindings; publishing to an exchange, getting from a queue, purging.

A missing object (or vhost) in the URL is RabbitMQ's 404 "Object Not Found"; an operation
that names a missing object in its body or refers to one indirectly gets ``not_found`` with
the AMQP explanation.  The default exchange is ``amq.default`` in URLs.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from aiohttp import web

from warrenmq import admin
from warrenmq.management import queue_list, render, sort_values
from warrenmq.management.auth import principal, require_vhost
from warrenmq.management.context import context
from warrenmq.management.http import (
    bad_request,
    body_json,
    created_or_updated,
    flag,
    integer,
    no_content,
    not_found,
    object_not_found,
    reply,
    reply_list,
    reply_listing,
    require_keys,
)

REPLY_NAMES = {
    311: "CONTENT_TOO_LARGE",
    312: "NO_ROUTE",
    320: "CONNECTION_FORCED",
    403: "ACCESS_REFUSED",
    404: "NOT_FOUND",
    405: "RESOURCE_LOCKED",
    406: "PRECONDITION_FAILED",
    530: "NOT_ALLOWED",
    540: "NOT_IMPLEMENTED",
    541: "INTERNAL_ERROR",
}


BINDING_SORT = ("vhost", "source", "destination", "destination_type", "routing_key", "properties_key")


def _name(info: admin.ExchangeInfo) -> str:
    return info.name


def _exchange_name(name: str) -> str:
    return "" if name == "amq.default" else name


def _vhost(request: web.Request, write: bool = False) -> str:
    """The URL's vhost, checked: the user may use it, and it exists."""
    vhost = request.match_info["vhost"]
    require_vhost(request, vhost, write)
    try:
        context(request).admin.vhost(vhost)
    except admin.NotFound:
        # A declaration names the missing vhost; anything else is a missing resource.
        raise (not_found("vhost_not_found") if request.method == "PUT" else object_not_found()) from None
    return vhost


def _visible_vhosts(request: web.Request) -> list[str] | None:
    p = principal(request)
    return None if p.is_monitor else sorted(p.vhosts)


def _arguments(body: dict[str, Any]) -> dict[str, Any]:
    args = body.get("arguments") or {}
    if not isinstance(args, dict):
        raise bad_request("arguments must be a JSON object")
    return args


# -- exchanges ----------------------------------------------------------------------------------


async def list_exchanges(request: web.Request) -> web.Response:
    ctx = context(request)
    if "vhost" in request.match_info:
        infos = ctx.admin.exchanges(_vhost(request))
    else:
        visible = _visible_vhosts(request)
        infos = [x for x in ctx.admin.exchanges() if visible is None or x.vhost in visible]
    return reply_listing(
        infos,
        request,
        lambda xs: [render.exchange_json(x, ctx.rates) for x in xs],
        sort_values.exchange_columns(ctx.rates),
        _name,
    )


def _exchange(request: web.Request) -> admin.ExchangeInfo:
    vhost = _vhost(request)
    try:
        return context(request).admin.exchange(vhost, _exchange_name(request.match_info["name"]))
    except admin.NotFound:
        raise object_not_found() from None


async def get_exchange(request: web.Request) -> web.Response:
    ctx = context(request)
    return reply(render.exchange_json(_exchange(request), ctx.rates), request)


async def put_exchange(request: web.Request) -> web.Response:
    vhost = _vhost(request, write=True)
    body = await body_json(request)
    created = await context(request).admin.declare_exchange_async(
        vhost,
        _exchange_name(request.match_info["name"]),
        str(body.get("type") or "direct"),
        flag(body.get("durable")),
        flag(body.get("auto_delete")),
        flag(body.get("internal")),
        _arguments(body),
        principal(request).name,
    )
    return created_or_updated(created)


async def delete_exchange(request: web.Request) -> web.Response:
    info = _exchange(request)
    if_unused = request.query.get("if-unused") == "true"
    await context(request).admin.delete_exchange_async(info.vhost, info.name, if_unused, principal(request).name)
    return no_content()


async def exchange_bindings(request: web.Request) -> web.Response:
    info = _exchange(request)
    side = request.match_info["side"]
    items = [
        render.binding_json(b)
        for b in context(request).admin.bindings(info.vhost)
        if (b.source if side == "source" else b.destination) == info.name
        and (side == "source" or b.destination_type == "exchange")
    ]
    return reply(items, request)


async def publish(request: web.Request) -> web.Response:
    vhost = _vhost(request, write=True)
    exchange = _exchange_name(request.match_info["name"])
    body = await body_json(request)
    routing_key, properties, payload, encoding = require_keys(
        body, ["routing_key", "properties", "payload", "payload_encoding"]
    )
    if not isinstance(payload, str):
        raise bad_request("payload_not_string")
    if encoding == "string":
        data = payload.encode()
    elif encoding == "base64":
        try:
            data = base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError):
            raise bad_request("not_base64") from None
    else:
        raise bad_request(f'{{unsupported_encoding,<<"{encoding}">>}}')
    try:
        routed = context(request).admin.publish(
            vhost, exchange, str(routing_key), data, properties, principal(request).name
        )
    except admin.AdminError as exc:
        # As RabbitMQ: the publishing channel's close reason, "<code> <NAME> - <text>".
        if not exc.code and isinstance(exc, admin.BadRequest) and "queue limits" in exc.reason:
            raise bad_request(f"rejected {exc.reason}") from None
        if not exc.code:
            raise
        raise bad_request(f"{exc.code} {REPLY_NAMES.get(exc.code, 'ERROR')} - {exc.reason}") from None
    return reply({"routed": routed}, request)


# -- queues -------------------------------------------------------------------------------------


async def list_queues(request: web.Request) -> web.Response:
    if "vhost" in request.match_info:
        return queue_list.reply_queues(request, _vhost(request), None)
    return queue_list.reply_queues(request, None, _visible_vhosts(request))


def _queue(request: web.Request) -> admin.QueueInfo:
    vhost = _vhost(request)
    try:
        return context(request).admin.queue(vhost, request.match_info["name"])
    except admin.NotFound:
        raise object_not_found() from None


async def get_queue(request: web.Request) -> web.Response:
    ctx = context(request)
    info = _queue(request)
    consumers = [
        render.consumer_json(c, ctx.node_name) for c in ctx.admin.consumers(info.vhost) if c.queue == info.name
    ]
    return reply(render.queue_json(info, ctx.rates, ctx.node_name, consumers), request)


async def put_queue(request: web.Request) -> web.Response:
    vhost = _vhost(request, write=True)
    body = await body_json(request)
    created = await context(request).admin.declare_queue_async(
        vhost,
        request.match_info["name"],
        flag(body.get("durable")),
        flag(body.get("auto_delete")),
        _arguments(body),
        principal(request).name,
    )
    return created_or_updated(created)


async def delete_queue(request: web.Request) -> web.Response:
    info = _queue(request)
    await context(request).admin.delete_queue_async(
        info.vhost,
        info.name,
        request.query.get("if-unused") == "true",
        request.query.get("if-empty") == "true",
        principal(request).name,
    )
    return no_content()


async def purge(request: web.Request) -> web.Response:
    info = _queue(request)
    await context(request).admin.purge_queue_async(info.vhost, info.name, principal(request).name)
    return no_content()


async def get_messages(request: web.Request) -> web.Response:
    vhost = _vhost(request, write=True)
    name = request.match_info["name"]
    body = await body_json(request)
    ackmode, count_value, encoding = require_keys(body, ["ackmode", "count", "encoding"])
    count = integer(count_value)
    if encoding not in ("auto", "base64"):
        raise bad_request("Unsupported encoding. Please use auto or base64.")
    truncate = integer(body["truncate"]) if body.get("truncate") is not None else None
    try:
        messages = await context(request).admin.get_messages_async(
            vhost, name, count, str(ackmode), principal(request).name
        )
    except admin.NotFound as exc:
        raise not_found(f"NOT_FOUND - {exc.reason}") from None
    return reply([render.message_json(m, encoding, truncate) for m in messages], request)


PEEK_MAX = 1000  # messages one peek may show (paged-out ones are read from disk)


async def peek(request: web.Request) -> web.Response:
    """WarrenMQ's own: the first ``count`` ready messages, left in place (no ack mode, nothing
    redelivered).  ``encoding`` (auto, base64) and ``truncate`` as for ``/get``."""
    vhost = _vhost(request)
    name = request.match_info["name"]
    query = request.query
    count = integer(query.get("count", "1"))
    if count < 0 or count > PEEK_MAX:
        raise bad_request(f"count must be between 0 and {PEEK_MAX}")
    encoding = query.get("encoding", "auto")
    if encoding not in ("auto", "base64"):
        raise bad_request("Unsupported encoding. Please use auto or base64.")
    truncate = integer(query["truncate"]) if "truncate" in query else None
    try:
        messages = context(request).admin.peek_messages(vhost, name, count, principal(request).name)
    except admin.NotFound:
        raise object_not_found() from None
    return reply([render.message_json(m, encoding, truncate) for m in messages], request)


async def queue_bindings(request: web.Request) -> web.Response:
    info = _queue(request)
    items = [
        render.binding_json(b)
        for b in context(request).admin.bindings(info.vhost)
        if b.destination == info.name and b.destination_type == "queue"
    ]
    return reply(items, request)


# -- bindings -----------------------------------------------------------------------------------


def _kind(dtype: str) -> str:
    if dtype == "q":
        return "queue"
    if dtype == "e":
        return "exchange"
    raise object_not_found()


async def list_bindings(request: web.Request) -> web.Response:
    ctx = context(request)
    if "vhost" in request.match_info:
        infos = ctx.admin.bindings(_vhost(request))
    else:
        visible = _visible_vhosts(request)
        infos = [b for b in ctx.admin.bindings() if visible is None or b.vhost in visible]
    items = [render.binding_json(b) for b in infos]
    return reply_list(items, request, BINDING_SORT)


def _between(request: web.Request) -> tuple[str, str, str, str, list[admin.BindingInfo]]:
    vhost = _vhost(request)
    source = _exchange_name(request.match_info["source"])
    kind = _kind(request.match_info["dtype"])
    destination = request.match_info["destination"]
    if kind == "exchange":
        destination = _exchange_name(destination)
    found = [
        b
        for b in context(request).admin.bindings(vhost)
        if b.source == source and b.destination == destination and b.destination_type == kind
    ]
    return vhost, source, kind, destination, found


async def bindings_between(request: web.Request) -> web.Response:
    vhost, source, kind, destination, found = _between(request)
    ctx = context(request)
    try:
        ctx.admin.exchange(vhost, source)
        if kind == "queue":
            ctx.admin.queue(vhost, destination)
        else:
            ctx.admin.exchange(vhost, destination)
    except admin.NotFound:
        raise object_not_found() from None
    return reply([render.binding_json(b) for b in found], request)


async def add_binding(request: web.Request) -> web.Response:
    vhost, source, kind, destination, _found = _between(request)
    require_vhost(request, vhost, write=True)
    body = await body_json(request)
    routing_key = str(body.get("routing_key") or "")
    arguments = _arguments(body)
    await context(request).admin.bind_async(
        vhost, source, kind, destination, routing_key, arguments, principal(request).name
    )
    location = render.properties_key(routing_key, arguments)
    return web.Response(status=201, headers={"Location": f"{request.match_info['destination']}/{location}"})


def _binding(request: web.Request) -> admin.BindingInfo:
    _vhost_name, _source, _kind_name, _destination, found = _between(request)
    props = request.match_info["props"]
    for b in found:
        if render.properties_key(b.routing_key, b.arguments) == props:
            return b
    raise object_not_found()


async def get_binding(request: web.Request) -> web.Response:
    return reply(render.binding_json(_binding(request)), request)


async def delete_binding(request: web.Request) -> web.Response:
    b = _binding(request)
    require_vhost(request, b.vhost, write=True)
    try:
        await context(request).admin.unbind_async(
            b.vhost, b.source, b.destination_type, b.destination, b.routing_key, b.arguments, principal(request).name
        )
    except admin.NotFound:
        raise object_not_found() from None
    return no_content()


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/api/exchanges", list_exchanges)
    router.add_get("/api/exchanges/{vhost}", list_exchanges)
    router.add_get("/api/exchanges/{vhost}/{name}", get_exchange)
    router.add_put("/api/exchanges/{vhost}/{name}", put_exchange)
    router.add_delete("/api/exchanges/{vhost}/{name}", delete_exchange)
    router.add_post("/api/exchanges/{vhost}/{name}/publish", publish)
    router.add_get("/api/exchanges/{vhost}/{name}/bindings/{side:source|destination}", exchange_bindings)
    router.add_get("/api/queues", list_queues)
    router.add_get("/api/queues/{vhost}", list_queues)
    router.add_get("/api/queues/{vhost}/{name}", get_queue)
    router.add_put("/api/queues/{vhost}/{name}", put_queue)
    router.add_delete("/api/queues/{vhost}/{name}", delete_queue)
    router.add_get("/api/queues/{vhost}/{name}/bindings", queue_bindings)
    router.add_delete("/api/queues/{vhost}/{name}/contents", purge)
    router.add_post("/api/queues/{vhost}/{name}/get", get_messages)
    router.add_get("/api/queues/{vhost}/{name}/peek", peek)
    router.add_get("/api/bindings", list_bindings)
    router.add_get("/api/bindings/{vhost}", list_bindings)
    router.add_get("/api/bindings/{vhost}/e/{source}/{dtype}/{destination}", bindings_between)
    router.add_post("/api/bindings/{vhost}/e/{source}/{dtype}/{destination}", add_binding)
    router.add_get("/api/bindings/{vhost}/e/{source}/{dtype}/{destination}/{props}", get_binding)
    router.add_delete("/api/bindings/{vhost}/e/{source}/{dtype}/{destination}/{props}", delete_binding)
