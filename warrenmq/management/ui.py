"""The web UI: static files (HTML, CSS, ES modules, an SVG logo) that work over the HTTP API.

Nothing is built or fetched from elsewhere: the files in static/ are what the browser runs.
The page asks for a user name and password and sends them as HTTP basic auth with every API
request, so the UI's users and their tags are the API's; it serves nothing the API does not.
"""

from __future__ import annotations

import re
from importlib import resources

from aiohttp import web

TYPES = {
    "html": "text/html",
    "js": "text/javascript",
    "css": "text/css",
    "svg": "image/svg+xml",
    "png": "image/png",
}
# A file of static/ or of a folder in it: lower-case names, no "..", a known extension.
PATH = r"(?:[a-z0-9_-]+/)*[a-z0-9_-]+\.(?:html|js|css|svg|png)"
_CHECK = re.compile(PATH)


def _read(name: str) -> bytes | None:
    node = resources.files("warrenmq.management").joinpath("static")
    for part in name.split("/"):
        node = node.joinpath(part)
    return node.read_bytes() if node.is_file() else None


async def page(request: web.Request) -> web.Response:
    name = request.match_info.get("file") or "index.html"
    body = _read(name) if _CHECK.fullmatch(name) else None
    if body is None:
        raise web.HTTPNotFound()
    extension = name.rsplit(".", 1)[1]
    return web.Response(
        body=body,
        content_type=TYPES[extension],
        charset="utf-8" if extension != "png" else None,
        headers={"cache-control": "no-cache"},
    )


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/", page)
    router.add_get("/{file:" + PATH + "}", page)
