"""The aiohttp application: one middleware for authentication and errors, and the routes.

Handlers live by subject in api_*.py; each registers its routes with ``add_routes``.  Every
``/api/`` request is authenticated first (HTTP basic auth, the broker's users); the web UI
(``/``) and the Prometheus metrics (``/metrics``, unauthenticated as RabbitMQ's prometheus
plugin) are outside ``/api/``.  Errors leave as RabbitMQ's JSON error bodies.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from warrenmq import admin
from warrenmq.management import api_access, api_actions, api_health, api_live, api_node, api_topology, metrics, ui
from warrenmq.management.auth import authenticate
from warrenmq.management.context import CONTEXT, Context
from warrenmq.management.http import HTTPError, bad_request, not_authorised, not_found, object_not_found

log = logging.getLogger("warrenmq.management")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def api_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    ctx = request.app[CONTEXT]
    try:
        if request.path.startswith("/api/") and request.method != "OPTIONS":
            request["principal"] = authenticate(request, ctx.admin)
            ctx.rates.start()
        return await handler(request)
    except HTTPError as exc:
        return exc.response()
    except admin.NotFound as exc:
        return not_found(exc.reason).response()
    except admin.AccessRefused:
        return not_authorised("Access refused.").response()
    except admin.BadRequest as exc:
        return bad_request(exc.reason).response()
    except admin.Unavailable as exc:
        return HTTPError(503, "service_unavailable", exc.reason).response()
    except web.HTTPNotFound:
        return object_not_found().response()
    except web.HTTPMethodNotAllowed as exc:
        error = HTTPError(405, "Method Not Allowed", f"{request.method} not allowed")
        response = error.response()
        response.headers["allow"] = ", ".join(sorted(exc.allowed_methods))
        return response
    except web.HTTPException:
        raise
    except Exception as exc:
        log.exception("management API request %s %s failed", request.method, request.path)
        return HTTPError(500, "internal_server_error", f"{type(exc).__name__}: {exc}").response()


def build_app(ctx: Context) -> web.Application:
    app = web.Application(middlewares=[api_middleware], client_max_size=64 * 1024 * 1024)
    app[CONTEXT] = ctx
    for module in (api_node, api_health, api_live, api_topology, api_actions, api_access, metrics, ui):
        module.add_routes(app.router)
    _accept_trailing_slashes(app.router)
    return app


def _accept_trailing_slashes(router: web.UrlDispatcher) -> None:
    """As RabbitMQ's router (cowboy ignores a trailing slash): /api/queues/ is /api/queues.
    Tools and client libraries call both (amqpstorm: /api/healthchecks/node/)."""
    for resource in list(router.resources()):
        path = resource.canonical
        if path.startswith("/api/") and not path.endswith("/"):
            for route in resource:
                router.add_route(route.method, path + "/", route.handler)
