"""POST /api/queues/{vhost}/{name}/actions: operations on a queue's messages.

RabbitMQ's endpoint takes ``{"action": "sync"}`` for mirrored queues (there are none here);
WarrenMQ adds ``{"action": "move", "destination": "<queue>", "count": N}``, what RabbitMQ's UI
does with a shovel: the ready messages at the head of the queue (at most ``count``, by
default those ready when asked) go to the back of another queue of the same vhost, and the
answer is ``{"moved": n}``.  A large move runs in batches, letting the broker's other
connections in between.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from warrenmq import admin
from warrenmq.management.auth import principal, require_vhost
from warrenmq.management.context import context
from warrenmq.management.http import bad_request, body_json, integer, object_not_found, reply

BATCH = 1000


async def queue_action(request: web.Request) -> web.Response:
    vhost, name = request.match_info["vhost"], request.match_info["name"]
    require_vhost(request, vhost, write=True)
    api = context(request).admin
    try:
        ready = api.queue(vhost, name).messages_ready
    except admin.NotFound:
        raise object_not_found() from None
    body = await body_json(request)
    action = body.get("action")
    if action != "move":
        raise bad_request(f"unknown action {action!r}; WarrenMQ's queues take 'move'")
    destination = body.get("destination")
    if not isinstance(destination, str) or not destination:
        raise bad_request("a move needs a destination queue")
    wanted = ready if body.get("count") is None else integer(body["count"])
    as_user = principal(request).name
    moved = 0
    while True:  # at least once: a missing destination is an error even with nothing to move
        batch = min(BATCH, wanted - moved)
        done = api.move_messages(vhost, name, destination, batch, as_user)
        moved += done
        if done < batch or moved >= wanted:
            break
        await asyncio.sleep(0)
    return reply({"moved": moved}, request)


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_post("/api/queues/{vhost}/{name}/actions", queue_action)
