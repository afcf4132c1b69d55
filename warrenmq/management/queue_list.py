"""GET /api/queues: the list of queues, fast enough for a UI that pages through 10,000.

A page in name order (the default, or ``sort=name``/``vhost``) is chosen from the queues'
names alone and only its queues are snapshotted and rendered.  Any other order needs every
queue's value: every queue is snapshotted, sorted on the snapshots (sort_values.py) and only
the page rendered.  Without ``page``, every queue is rendered, as before.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence

from aiohttp import web

from warrenmq import admin
from warrenmq.management import listing, render, sort_values
from warrenmq.management.context import context
from warrenmq.management.http import reply_listing


def reply_queues(request: web.Request, vhost: str | None, visible: list[str] | None) -> web.Response:
    """The queues of ``vhost`` (None: every vhost), of the ``visible`` vhosts only (None: all)."""
    ctx = context(request)

    def rendered(infos: Sequence[admin.QueueInfo]) -> list[dict[str, object]]:
        return [render.queue_json(q, ctx.rates, ctx.node_name) for q in infos]

    if listing.by_name_only(request.query):
        names = ctx.admin.queue_names(vhost)
        if visible is not None:
            names = [n for n in names if n[0] in visible]
        return reply_listing(
            names,
            request,
            lambda page: rendered(ctx.admin.queues_named(list(page))),
            _vhost_or_name,
            lambda n: n[1],
        )
    infos = ctx.admin.queues(vhost)
    if visible is not None:
        infos = [q for q in infos if q.vhost in visible]
    return reply_listing(infos, request, rendered, sort_values.queue_columns(ctx.rates, ctx.node_name), _name)


def _vhost_or_name(key: str) -> Callable[[tuple[str, str]], str]:
    return operator.itemgetter(0 if key == "vhost" else 1)


def _name(q: admin.QueueInfo) -> str:
    return q.name
