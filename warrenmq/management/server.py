"""Starting and stopping the management HTTP listener in the broker's own event loop.

The node (the composition root) builds its Admin implementation and hands it to ``serve``,
which knows nothing but the Admin interface: this package imports nothing from the server.
"""

from __future__ import annotations

import logging
import socket
import ssl

from aiohttp import web

from warrenmq import admin
from warrenmq.listen import listen_socket
from warrenmq.management.app import build_app
from warrenmq.management.context import Context
from warrenmq.management.rates import Rates

log = logging.getLogger("warrenmq.management")


class ManagementServer:
    """A running management listener."""

    def __init__(self, runner: web.AppRunner, ctx: Context, host: str, port: int) -> None:
        self.runner = runner
        self.rates = ctx.rates
        self.ctx = ctx
        self.host = host
        self.port = port

    async def stop(self) -> None:
        await self.rates.stop()
        await self.runner.cleanup()
        await self.ctx.peers.close()


async def serve(
    api: admin.Admin,
    host: str,
    port: int | None,
    rates_interval: float = 5.0,
    tls_port: int | None = None,
    ssl_context: ssl.SSLContext | None = None,
) -> ManagementServer:
    """HTTP on ``port`` (None: none), HTTPS on ``tls_port`` with ``ssl_context`` (if given)."""
    rates = Rates(api, rates_interval)
    ctx = Context(api, rates, api.node().name)
    runner = web.AppRunner(build_app(ctx), access_log=None, handle_signals=False)
    await runner.setup()
    shown, first = host, 0
    listeners: list[tuple[str, int | None, ssl.SSLContext | None]] = [("http", port, None)]
    if ssl_context is not None and tls_port is not None:
        listeners.append(("https", tls_port, ssl_context))
    for protocol, number, context in listeners:
        if number is None:
            continue
        sock = listen_socket(host, number, backlog=128)
        await web.SockSite(runner, sock, ssl_context=context).start()
        bound = sock.getsockname()[1]
        shown = host or ("::" if sock.family == socket.AF_INET6 else "0.0.0.0")
        ctx.http_listeners.append(admin.Listener(protocol, shown, bound))
        what = "management API" if protocol == "http" else "management API (HTTPS)"
        log.info("%s listening on %s:%d", what, f"[{shown}]" if ":" in shown else shown, bound)
        first = first or bound
    return ManagementServer(runner, ctx, shown, first)
