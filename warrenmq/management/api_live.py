"""Connections, channels and consumers.

As RabbitMQ: monitors and administrators see everyone's; other users see their own
connections and channels, and the consumers of the vhosts they may use.  Closing another
user's connection takes an administrator.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from warrenmq import admin
from warrenmq.management import render, sort_values
from warrenmq.management.auth import Principal, principal, require_vhost
from warrenmq.management.context import context
from warrenmq.management.http import (
    no_content,
    not_authorised,
    object_not_found,
    reply,
    reply_list,
    reply_listing,
)

CLOSE_REASON = "Closed via management plugin"


def _visible(p: Principal, user: str) -> bool:
    return p.is_monitor or user == p.name


def _connections(request: web.Request, vhost: str | None = None) -> web.Response:
    ctx = context(request)
    p = principal(request)
    infos = [c for c in ctx.admin.connections(vhost) if _visible(p, c.user)]
    return reply_listing(
        infos,
        request,
        lambda cs: [render.connection_json(c, ctx.rates, ctx.node_name) for c in cs],
        sort_values.connection_columns(ctx.rates, ctx.node_name),
        lambda c: c.name,
    )


def _channels(request: web.Request, vhost: str | None = None, connection: str | None = None) -> list[dict[str, Any]]:
    ctx = context(request)
    p = principal(request)
    return [
        render.channel_json(ch, ctx.rates, ctx.node_name)
        for ch in ctx.admin.channels(vhost, connection)
        if _visible(p, ch.user)
    ]


async def list_connections(request: web.Request) -> web.Response:
    return _connections(request)


async def vhost_connections(request: web.Request) -> web.Response:
    vhost = request.match_info["vhost"]
    require_vhost(request, vhost)
    return _connections(request, _existing_vhost(request, vhost))


def _connection(request: web.Request) -> admin.ConnectionInfo:
    try:
        info = context(request).admin.connection(request.match_info["name"])
    except admin.NotFound:
        raise object_not_found() from None
    return info


async def get_connection(request: web.Request) -> web.Response:
    info = _connection(request)
    p = principal(request)
    if not _visible(p, info.user):
        raise not_authorised("User not authorised to access object")
    ctx = context(request)
    return reply(render.connection_json(info, ctx.rates, ctx.node_name), request)


async def delete_connection(request: web.Request) -> web.Response:
    info = _connection(request)
    p = principal(request)
    if not (p.is_admin or info.user == p.name):
        raise not_authorised("User not authorised to access object")
    reason = request.headers.get("X-Reason", CLOSE_REASON)
    try:
        context(request).admin.close_connection(info.name, reason)
    except admin.NotFound:
        raise object_not_found() from None
    return no_content()


async def connection_channels(request: web.Request) -> web.Response:
    info = _connection(request)
    if not _visible(principal(request), info.user):
        raise not_authorised("User not authorised to access object")
    return reply_list(_channels(request, connection=info.name), request)


async def list_channels(request: web.Request) -> web.Response:
    return reply_list(_channels(request), request)


async def vhost_channels(request: web.Request) -> web.Response:
    vhost = request.match_info["vhost"]
    require_vhost(request, vhost)
    return reply_list(_channels(request, _existing_vhost(request, vhost)), request)


async def get_channel(request: web.Request) -> web.Response:
    ctx = context(request)
    try:
        info = ctx.admin.channel(request.match_info["name"])
    except admin.NotFound:
        raise object_not_found() from None
    if not _visible(principal(request), info.user):
        raise not_authorised("User not authorised to access object")
    return reply(render.channel_json(info, ctx.rates, ctx.node_name), request)


async def list_consumers(request: web.Request) -> web.Response:
    ctx = context(request)
    p = principal(request)
    vhost = request.match_info.get("vhost")
    if vhost is not None:
        require_vhost(request, vhost)
        _existing_vhost(request, vhost)
    items = [render.consumer_json(c, ctx.node_name) for c in ctx.admin.consumers(vhost) if p.sees_vhost(c.vhost)]
    return reply_list(items, request, ("queue.vhost", "queue.name", "consumer_tag"))


def _existing_vhost(request: web.Request, vhost: str) -> str:
    try:
        context(request).admin.vhost(vhost)
    except admin.NotFound:
        raise object_not_found() from None
    return vhost


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/api/connections", list_connections)
    router.add_get("/api/connections/{name}", get_connection)
    router.add_delete("/api/connections/{name}", delete_connection)
    router.add_get("/api/connections/{name}/channels", connection_channels)
    router.add_get("/api/vhosts/{vhost}/connections", vhost_connections)
    router.add_get("/api/channels", list_channels)
    router.add_get("/api/channels/{name}", get_channel)
    router.add_get("/api/vhosts/{vhost}/channels", vhost_channels)
    router.add_get("/api/consumers", list_consumers)
    router.add_get("/api/consumers/{vhost}", list_consumers)
