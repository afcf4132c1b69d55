"""Vhosts, users, permissions and policies.

Users and permissions are for administrators only; vhosts are listed to everyone who may
use them; policies may be changed by administrators and by policymakers in their vhosts.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from warrenmq import admin
from warrenmq.management import render
from warrenmq.management.auth import principal, require_admin, require_policymaker, require_vhost
from warrenmq.management.context import context
from warrenmq.management.http import (
    bad_request,
    body_json,
    created_or_updated,
    dumps,
    integer,
    no_content,
    not_found,
    object_not_found,
    reply,
    reply_list,
    require_keys,
    tag_list,
)


async def _settled(request: web.Request) -> None:
    """A change is answered once the cluster has it: a user created through one node can log
    in on another right after the reply (at once on a single node)."""
    await context(request).admin.settled()


# -- vhosts ------------------------------------------------------------------------------------


async def list_vhosts(request: web.Request) -> web.Response:
    ctx = context(request)
    p = principal(request)
    cluster = ctx.admin.cluster()
    items = [
        render.vhost_json(v, ctx.rates, ctx.node_name, cluster) for v in ctx.admin.vhosts() if p.sees_vhost(v.name)
    ]
    return reply_list(items, request, ("name",))


async def get_vhost(request: web.Request) -> web.Response:
    name = request.match_info["vhost"]
    require_vhost(request, name)
    ctx = context(request)
    try:
        info = ctx.admin.vhost(name)
    except admin.NotFound:
        raise object_not_found() from None
    return reply(render.vhost_json(info, ctx.rates, ctx.node_name, ctx.admin.cluster()), request)


async def put_vhost(request: web.Request) -> web.Response:
    p = require_admin(request)
    body = await body_json(request)
    description = str(body["description"]) if body.get("description") is not None else None
    tags = tag_list(body["tags"]) if body.get("tags") is not None else None
    created = context(request).admin.add_vhost(request.match_info["vhost"], description, tags, p.name)
    await _settled(request)
    return created_or_updated(created)


async def delete_vhost(request: web.Request) -> web.Response:
    require_admin(request)
    try:
        context(request).admin.delete_vhost(request.match_info["vhost"])
    except admin.NotFound:
        raise object_not_found() from None
    await _settled(request)
    return no_content()


async def vhost_permissions(request: web.Request) -> web.Response:
    require_admin(request)
    name = request.match_info["vhost"]
    ctx = context(request)
    try:
        ctx.admin.vhost(name)
    except admin.NotFound:
        raise object_not_found() from None
    items = [_vhost_first(render.permission_json(x)) for x in ctx.admin.permissions(vhost=name)]
    return reply_list(items, request, ("vhost", "user"))


async def vhost_topic_permissions(request: web.Request) -> web.Response:
    require_admin(request)
    name = request.match_info["vhost"]
    items = [render.topic_permission_json(x) for x in context(request).admin.topic_permissions(vhost=name)]
    return reply_list(items, request, ("vhost", "user"))


def _vhost_first(item: dict[str, Any]) -> dict[str, Any]:
    """RabbitMQ lists a vhost's permissions with the vhost first."""
    return {"vhost": item["vhost"], **{k: v for k, v in item.items() if k != "vhost"}}


# -- users -------------------------------------------------------------------------------------


async def list_users(request: web.Request) -> web.Response:
    require_admin(request)
    items = [render.user_json(u) for u in context(request).admin.users()]
    return reply_list(items, request, ("name",))


async def users_without_permissions(request: web.Request) -> web.Response:
    require_admin(request)
    ctx = context(request)
    with_permissions = {p.user for p in ctx.admin.permissions()}
    items = [render.user_json(u) for u in ctx.admin.users() if u.name not in with_permissions]
    return reply_list(items, request, ("name",))


def _user(request: web.Request) -> admin.UserInfo:
    try:
        return context(request).admin.user(request.match_info["user"])
    except admin.NotFound:
        raise object_not_found() from None


async def get_user(request: web.Request) -> web.Response:
    require_admin(request)
    return reply(render.user_json(_user(request)), request)


async def put_user(request: web.Request) -> web.Response:
    require_admin(request)
    body = await body_json(request)
    if body.get("tags") is None and body.get("administrator") is None:
        raise bad_request("tags_not_present")
    if body.get("tags") is not None:
        tags = tag_list(body["tags"])
    else:
        tags = ["administrator"] if str(body["administrator"]).lower() == "true" else []
    password = body.get("password")
    password_hash = body.get("password_hash")
    if password is not None and password_hash is not None:
        raise bad_request("both_password_and_password_hash_are_provided")
    created = context(request).admin.put_user(
        request.match_info["user"],
        tags,
        password=str(password) if password is not None else None,
        password_hash=str(password_hash) if password_hash is not None else None,
        hashing_algorithm=body.get("hashing_algorithm"),
    )
    await _settled(request)
    return created_or_updated(created)


async def delete_user(request: web.Request) -> web.Response:
    require_admin(request)
    try:
        context(request).admin.delete_user(request.match_info["user"])
    except admin.NotFound:
        raise object_not_found() from None
    await _settled(request)
    return no_content()


async def bulk_delete_users(request: web.Request) -> web.Response:
    require_admin(request)
    body = await body_json(request)
    (names,) = require_keys(body, ["users"])
    for name in names if isinstance(names, list) else []:
        try:
            context(request).admin.delete_user(str(name))
        except admin.NotFound:
            pass
    await _settled(request)
    return no_content()


async def user_permissions(request: web.Request) -> web.Response:
    require_admin(request)
    user = _user(request)
    items = [render.permission_json(x) for x in context(request).admin.permissions(user=user.name)]
    return reply_list(items, request, ("vhost", "user"))


async def user_topic_permissions(request: web.Request) -> web.Response:
    require_admin(request)
    user = _user(request)
    items = [render.topic_permission_json(x) for x in context(request).admin.topic_permissions(user=user.name)]
    return reply_list(items, request, ("vhost", "user"))


# -- permissions -------------------------------------------------------------------------------


async def list_permissions(request: web.Request) -> web.Response:
    require_admin(request)
    items = [render.permission_json(x) for x in context(request).admin.permissions()]
    return reply_list(items, request, ("vhost", "user"))


async def list_topic_permissions(request: web.Request) -> web.Response:
    require_admin(request)
    items = [render.topic_permission_json(x) for x in context(request).admin.topic_permissions()]
    return reply_list(items, request, ("vhost", "user"))


def _permission(request: web.Request) -> admin.PermissionInfo:
    found = context(request).admin.permissions(vhost=request.match_info["vhost"], user=request.match_info["user"])
    if not found:
        raise object_not_found()
    return found[0]


async def get_permission(request: web.Request) -> web.Response:
    require_admin(request)
    return reply(render.permission_json(_permission(request)), request)


def _existing_vhost_and_user(request: web.Request) -> tuple[str, str]:
    """The vhost and user a permission PUT names (admin only); 400 unless both exist."""
    require_admin(request)
    ctx = context(request)
    vhost, user = request.match_info["vhost"], request.match_info["user"]
    try:
        ctx.admin.user(user)
        ctx.admin.vhost(vhost)
    except admin.NotFound:
        raise bad_request("vhost_or_user_not_found") from None
    return vhost, user


async def put_permission(request: web.Request) -> web.Response:
    ctx = context(request)
    vhost, user = _existing_vhost_and_user(request)
    body = await body_json(request)
    configure, write, read = require_keys(body, ["configure", "write", "read"])
    created = ctx.admin.set_permissions(user, vhost, str(configure), str(write), str(read))
    await _settled(request)
    return created_or_updated(created)


async def delete_permission(request: web.Request) -> web.Response:
    require_admin(request)
    p = _permission(request)
    context(request).admin.clear_permissions(p.user, p.vhost)
    await _settled(request)
    return no_content()


# -- policies ----------------------------------------------------------------------------------


async def list_policies(request: web.Request) -> web.Response:
    ctx = context(request)
    p = principal(request)
    vhost = request.match_info.get("vhost")
    if vhost is not None:
        require_vhost(request, vhost)
        try:
            ctx.admin.vhost(vhost)
        except admin.NotFound:
            raise object_not_found() from None
    items = [render.policy_json(x) for x in ctx.admin.policies(vhost) if p.uses_vhost(x.vhost) or p.is_monitor]
    return reply_list(items, request)


def _policy(request: web.Request) -> admin.PolicyInfo:
    vhost, name = request.match_info["vhost"], request.match_info["name"]
    try:
        found = [x for x in context(request).admin.policies(vhost) if x.name == name]
    except admin.NotFound:
        raise object_not_found() from None
    if not found:
        raise object_not_found()
    return found[0]


async def get_policy(request: web.Request) -> web.Response:
    require_policymaker(request, request.match_info["vhost"])
    return reply(render.policy_json(_policy(request)), request)


async def put_policy(request: web.Request) -> web.Response:
    vhost = request.match_info["vhost"]
    require_policymaker(request, vhost)
    ctx = context(request)
    try:
        ctx.admin.vhost(vhost)
    except admin.NotFound:
        raise object_not_found() from None
    body = await body_json(request)
    pattern, definition = require_keys(body, ["pattern", "definition"])
    if not isinstance(definition, dict):
        raise bad_request("Validation failed\n\ndefinition must be a JSON object\n")
    priority = integer(body["priority"]) if body.get("priority") is not None else 0
    apply_to = str(body.get("apply-to") or "all")
    if apply_to not in ("all", "queues", "exchanges", "classic_queues", "quorum_queues", "streams"):
        raise bad_request(
            f"Validation failed\n\napply-to '{apply_to}' unrecognised; should be 'queues', 'exchanges' or 'all'\n"
        )
    created = ctx.admin.set_policy(vhost, request.match_info["name"], str(pattern), definition, priority, apply_to)
    await _settled(request)
    return created_or_updated(created)


async def delete_policy(request: web.Request) -> web.Response:
    require_policymaker(request, request.match_info["vhost"])
    policy = _policy(request)
    context(request).admin.clear_policy(policy.vhost, policy.name)
    await _settled(request)
    return no_content()


# -- what WarrenMQ does not have: empty, as a RabbitMQ node without them --------------------------


async def empty_list(request: web.Request) -> web.Response:
    return reply([], request)


async def vhost_limits(request: web.Request) -> web.Response:
    ctx = context(request)
    p = principal(request)
    vhost = request.match_info.get("vhost")
    items = [
        {"vhost": v.name, "value": v.limits}
        for v in ctx.admin.vhosts()
        if v.limits and (vhost is None or v.name == vhost) and p.sees_vhost(v.name)
    ]
    return reply(items, request)


async def put_vhost_limit(request: web.Request) -> web.Response:
    """PUT /api/vhost-limits/{vhost}/{name} {"value": N}, as RabbitMQ (204 whether new or not)."""
    require_admin(request)
    vhost, name = request.match_info["vhost"], request.match_info["name"]
    ctx = context(request)
    try:
        ctx.admin.vhost(vhost)
    except admin.NotFound:
        raise not_found("vhost_not_found") from None
    body = await body_json(request)
    if "value" not in body:
        raise bad_request("[{key_missing,value}]")
    value = body["value"]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value):
        shown = f'<<"{value}">>' if isinstance(value, str) else dumps(value)
        raise bad_request(f"Validation failed\n\n{name} should be a number, actually was {shown}\n")
    try:
        ctx.admin.set_vhost_limit(vhost, name, int(value))
    except admin.BadRequest as exc:
        raise bad_request(exc.reason) from None
    await _settled(request)
    return no_content()


async def delete_vhost_limit(request: web.Request) -> web.Response:
    require_admin(request)
    vhost, name = request.match_info["vhost"], request.match_info["name"]
    try:
        context(request).admin.clear_vhost_limit(vhost, name)
    except admin.NotFound:
        raise not_found("vhost_not_found") from None
    await _settled(request)
    return no_content()


async def get_topic_permissions(request: web.Request) -> web.Response:
    require_admin(request)
    vhost, user = request.match_info["vhost"], request.match_info["user"]
    items = [render.topic_permission_json(x) for x in context(request).admin.topic_permissions(vhost, user)]
    if not items:
        raise object_not_found()
    return reply_list(items, request, ("vhost", "user"))


async def put_topic_permissions(request: web.Request) -> web.Response:
    ctx = context(request)
    vhost, user = _existing_vhost_and_user(request)
    body = await body_json(request)
    exchange, write, read = require_keys(body, ["exchange", "write", "read"])
    try:
        created = ctx.admin.set_topic_permissions(user, vhost, str(exchange), str(write), str(read))
    except admin.BadRequest as exc:
        raise bad_request(exc.reason) from None
    await _settled(request)
    return created_or_updated(created)


async def delete_topic_permissions(request: web.Request) -> web.Response:
    require_admin(request)
    vhost, user = request.match_info["vhost"], request.match_info["user"]
    try:
        context(request).admin.clear_topic_permissions(user, vhost, request.match_info.get("exchange"))
    except admin.NotFound:
        raise object_not_found() from None
    await _settled(request)
    return no_content()


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/api/vhosts", list_vhosts)
    router.add_get("/api/vhosts/{vhost}", get_vhost)
    router.add_put("/api/vhosts/{vhost}", put_vhost)
    router.add_delete("/api/vhosts/{vhost}", delete_vhost)
    router.add_get("/api/vhosts/{vhost}/permissions", vhost_permissions)
    router.add_get("/api/vhosts/{vhost}/topic-permissions", vhost_topic_permissions)
    router.add_get("/api/users", list_users)
    router.add_get("/api/users/without-permissions", users_without_permissions)
    router.add_post("/api/users/bulk-delete", bulk_delete_users)
    router.add_get("/api/users/{user}", get_user)
    router.add_put("/api/users/{user}", put_user)
    router.add_delete("/api/users/{user}", delete_user)
    router.add_get("/api/users/{user}/permissions", user_permissions)
    router.add_get("/api/users/{user}/topic-permissions", user_topic_permissions)
    router.add_get("/api/permissions", list_permissions)
    router.add_get("/api/permissions/{vhost}/{user}", get_permission)
    router.add_put("/api/permissions/{vhost}/{user}", put_permission)
    router.add_delete("/api/permissions/{vhost}/{user}", delete_permission)
    router.add_get("/api/topic-permissions", list_topic_permissions)
    router.add_get("/api/policies", list_policies)
    router.add_get("/api/policies/{vhost}", list_policies)
    router.add_get("/api/policies/{vhost}/{name}", get_policy)
    router.add_put("/api/policies/{vhost}/{name}", put_policy)
    router.add_delete("/api/policies/{vhost}/{name}", delete_policy)
    for path in (
        "/api/operator-policies",
        "/api/operator-policies/{vhost}",
        "/api/parameters",
        "/api/parameters/{component}",
        "/api/parameters/{component}/{vhost}",
        "/api/global-parameters",
        "/api/feature-flags",
    ):
        router.add_get(path, empty_list)
    router.add_get("/api/vhost-limits", vhost_limits)
    router.add_get("/api/vhost-limits/{vhost}", vhost_limits)
    router.add_put("/api/vhost-limits/{vhost}/{name}", put_vhost_limit)
    router.add_delete("/api/vhost-limits/{vhost}/{name}", delete_vhost_limit)
    router.add_get("/api/topic-permissions/{vhost}/{user}", get_topic_permissions)
    router.add_put("/api/topic-permissions/{vhost}/{user}", put_topic_permissions)
    router.add_delete("/api/topic-permissions/{vhost}/{user}", delete_topic_permissions)
    router.add_delete("/api/topic-permissions/{vhost}/{user}/{exchange}", delete_topic_permissions)
