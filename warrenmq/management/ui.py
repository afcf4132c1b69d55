"""The web UI: one static page and its script, working over the HTTP API from the browser.

The page asks for a user name and password and sends them as HTTP basic auth with every API
request; it serves nothing the API does not.
"""

from __future__ import annotations

from importlib import resources

from aiohttp import web

_FILES = {"index.html": "text/html", "app.js": "text/javascript"}


def _read(name: str) -> bytes:
    return resources.files("warrenmq.management").joinpath("static", name).read_bytes()


async def page(request: web.Request) -> web.Response:
    name = request.match_info.get("file") or "index.html"
    content_type = _FILES.get(name)
    if content_type is None:
        raise web.HTTPNotFound()
    return web.Response(
        body=_read(name),
        content_type=content_type,
        charset="utf-8",
        headers={"cache-control": "no-cache"},
    )


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/", page)
    router.add_get("/{file:index\\.html|app\\.js}", page)
