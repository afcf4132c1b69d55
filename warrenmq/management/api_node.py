"""The node as a whole: overview, nodes, whoami, definitions."""

from __future__ import annotations

import json
import math

from aiohttp import web

from warrenmq import admin
from warrenmq.config import parse_bytes
from warrenmq.management import history, peers, render
from warrenmq.management.auth import principal, require_admin, require_monitor
from warrenmq.management.context import Context, context
from warrenmq.management.http import (
    HTTPError,
    bad_request,
    body_json,
    no_content,
    object_not_found,
    reply,
)
from warrenmq.management.rates import Key


async def overview(request: web.Request) -> web.Response:
    ctx = context(request)
    p = principal(request)
    data = render.overview_json(ctx.admin.overview(), ctx.rates, ctx.http_listeners, p.is_monitor)
    cluster = ctx.admin.cluster()
    if cluster is not None:
        data["cluster_name"] = cluster.name
        if p.is_monitor:  # the other members' listeners, as etcd knows them
            for member in cluster.members:
                if member.name != cluster.node and member.running:
                    data["listeners"].extend(peers.member_listeners(member))
    if not p.is_monitor:
        # A plain management user sees the totals of its own vhosts only.
        totals = {"channels": 0, "connections": 0, "consumers": 0, "exchanges": 0, "queues": 0}
        queues = [q for q in ctx.admin.queues() if q.vhost in p.vhosts]
        totals["queues"] = len(queues)
        totals["consumers"] = sum(q.consumers for q in queues)
        totals["exchanges"] = sum(1 for x in ctx.admin.exchanges() if x.vhost in p.vhosts)
        own = [c for c in ctx.admin.connections() if c.user == p.name]
        totals["connections"] = len(own)
        totals["channels"] = sum(c.channels for c in own)
        data["object_totals"] = totals
        ready = sum(q.messages_ready for q in queues)
        unacked = sum(q.messages_unacknowledged for q in queues)
        data["queue_totals"].update(messages=ready + unacked, messages_ready=ready, messages_unacknowledged=unacked)
    keys: list[Key] = [("overview",)] if p.is_monitor else [("vhost", v) for v in sorted(p.vhosts)]
    history.add_samples(data, ctx.rates, request.query, keys)
    return reply(data, request)


def cluster_name_of(ctx: Context) -> str:
    """A cluster's own name; a single node's is its node name, as RabbitMQ's default."""
    cluster = ctx.admin.cluster()
    return cluster.name if cluster is not None else ctx.node_name


async def cluster_name(request: web.Request) -> web.Response:
    return reply({"name": cluster_name_of(context(request))}, request)


async def nodes(request: web.Request) -> web.Response:
    """Every member of the cluster, ``running`` as etcd says (a single node: itself)."""
    require_monitor(request)
    ctx = context(request)
    local = render.node_json(ctx.admin.node(), ctx.rates, ctx.http_listeners)
    cluster = ctx.admin.cluster()
    if cluster is None:
        return reply([local], request)
    return reply(await peers.nodes_json(ctx.peers, cluster, local, _authorization(request)), request)


async def node(request: web.Request) -> web.Response:
    require_monitor(request)
    ctx = context(request)
    info = ctx.admin.node()
    name = request.match_info["node"]
    cluster = ctx.admin.cluster()
    if name != info.name:
        member = next((m for m in cluster.members if m.name == name), None) if cluster is not None else None
        if member is None:
            raise object_not_found()
        return reply(await ctx.peers.node_json(member, _authorization(request)), request)
    return reply(render.node_json(info, ctx.rates, ctx.http_listeners), request)


def _authorization(request: web.Request) -> str:
    """The caller's credentials, for asking another node on its behalf."""
    return request.headers.get("Authorization", "")


async def set_memory_high_watermark(request: web.Request) -> web.Response:
    """``{"fraction": 0.4}`` or ``{"absolute": "60MB"}``: rabbitmqctl set_vm_memory_high_watermark
    (a WarrenMQ extension: RabbitMQ's HTTP API has no such endpoint; warrenctl uses it)."""
    require_admin(request)
    ctx = _this_node(request)
    body = await body_json(request)
    if body.get("absolute") is not None:
        ctx.admin.set_memory_high_watermark(absolute=_bytes(body["absolute"]))
    else:
        fraction = _fraction(body.get("fraction"))
        if not 0.0 <= fraction <= 1.0:
            raise bad_request("The threshold should be a fraction between 0.0 and 1.0")
        ctx.admin.set_memory_high_watermark(fraction=fraction)
    return no_content()


async def set_disk_free_limit(request: web.Request) -> web.Response:
    """``{"limit": "50MB"}`` or ``{"mem_relative": 1.5}``: rabbitmqctl set_disk_free_limit
    (a WarrenMQ extension, as above)."""
    require_admin(request)
    ctx = _this_node(request)
    body = await body_json(request)
    if body.get("mem_relative") is not None:
        ctx.admin.set_disk_free_limit(mem_relative=_fraction(body["mem_relative"]))
    else:
        ctx.admin.set_disk_free_limit(limit=_bytes(body.get("limit")))
    return no_content()


def _this_node(request: web.Request) -> Context:
    ctx = context(request)
    if request.match_info["node"] != ctx.node_name:
        raise object_not_found()
    return ctx


def _bytes(value: object) -> int:
    """An amount of bytes: a number, or a string with RabbitMQ's units ("60MB", "1GiB")."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    try:
        return parse_bytes(str(value))
    except ValueError:
        raise bad_request(f"not an amount of bytes: {value!r}") from None


def _fraction(value: object) -> float:
    if isinstance(value, bool):
        raise bad_request(f"not a number: {value!r}")
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise bad_request(f"not a number: {value!r}") from None
    if not math.isfinite(number) or number < 0:
        raise bad_request(f"not a positive number: {value!r}")
    return number


async def extensions(request: web.Request) -> web.Response:
    return reply([], request)


async def whoami(request: web.Request) -> web.Response:
    p = principal(request)
    return reply({"name": p.name, "tags": p.tags}, request)


async def export_definitions(request: web.Request) -> web.Response:
    require_admin(request)
    vhost = request.match_info.get("vhost")
    try:
        doc = context(request).admin.export_definitions(vhost)
    except admin.NotFound:
        raise bad_request("vhost_not_found") from None
    response = reply(doc, request)
    download = request.query.get("download")
    if download:
        response.headers["Content-Disposition"] = f"attachment; filename={download}"
    return response


async def import_definitions(request: web.Request) -> web.Response:
    require_admin(request)
    vhost = request.match_info.get("vhost")
    if request.content_type.startswith("multipart/"):
        doc = await _uploaded_file(request)
    else:
        doc = await body_json(request)
    try:
        await context(request).admin.import_definitions_async(doc, vhost)
    except admin.NotFound:
        raise bad_request("vhost_not_found") from None
    return no_content()


async def _uploaded_file(request: web.Request) -> dict[str, object]:
    """The web UI's upload form: the definitions are the ``file`` part."""
    reader = await request.multipart()
    async for part in reader:
        if getattr(part, "name", None) == "file":
            raw = await part.read()  # type: ignore[union-attr]
            try:
                doc = json.loads(raw)
            except ValueError:
                raise bad_request("not_json") from None
            if not isinstance(doc, dict):
                raise bad_request("not_json")
            return doc
    raise HTTPError(400, "bad_request", "no definitions file uploaded")


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/api/overview", overview)
    router.add_get("/api/cluster-name", cluster_name)
    router.add_get("/api/nodes", nodes)
    router.add_get("/api/nodes/{node}", node)
    router.add_put("/api/nodes/{node}/memory-high-watermark", set_memory_high_watermark)
    router.add_put("/api/nodes/{node}/disk-free-limit", set_disk_free_limit)
    router.add_get("/api/extensions", extensions)
    router.add_get("/api/whoami", whoami)
    for path in ("/api/definitions", "/api/all-configuration", "/api/definitions/{vhost}"):
        router.add_get(path, export_definitions)
        router.add_post(path, import_definitions)
