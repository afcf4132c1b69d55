"""``warren-server``: run a WarrenMQ node.

Every setting (see warrenmq/config.py) is a flag (``--frame-max 131072``), an environment
variable (``WARREN_FRAME_MAX``) and a key of the TOML file given by ``--config``.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import gc
import logging
import signal
import sys
from typing import Any

from warrenmq import __version__
from warrenmq.config import ConfigError, Settings, load

log = logging.getLogger("warrenmq")

_HELP = {
    "host": "interface to listen on (default: all interfaces)",
    "port": "AMQP port (default 5672; 0 picks a free port and logs it)",
    "data_dir": "directory for definitions and messages (default ./warren-data)",
    "log_level": "debug, info, warning or error (default info)",
    "management_port": "management HTTP API port (default 15672; 0 disables)",
    "config_file": "TOML configuration file",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="warren-server",
        description="WarrenMQ: an AMQP 0-9-1 broker compatible with RabbitMQ.",
    )
    parser.add_argument("--version", action="version", version=f"warren-server {__version__}")
    parser.add_argument("--config", dest="config_file", help=_HELP["config_file"])
    defaults = Settings()
    for f in dataclasses.fields(Settings):
        if f.name == "config_file":
            continue
        flag = "--" + f.name.replace("_", "-")
        current = getattr(defaults, f.name)
        kind = "a list, comma-separated" if isinstance(current, list) else type(current).__name__
        help_text = _HELP.get(f.name, f"{f.name} ({kind}; default {current!r})")
        parser.add_argument(flag, dest=f.name, default=None, help=help_text)
    parser.add_argument("--no-persistence", action="store_true", help="keep nothing on disk (for tests)")
    return parser


def configure_logging(level: str) -> None:
    logging.basicConfig(
        stream=sys.stderr,
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s [%(levelname)s] %(name)s: %(message)s",
    )


async def serve(settings: Settings, persistence: bool = True) -> int:
    from warrenmq.server.node import Node

    loop = asyncio.get_running_loop()
    limit = raise_fd_limit()
    if limit:
        log.info("file descriptor limit: %d", limit)
    node = Node(settings, loop)
    try:
        await node.start_all(persistence=persistence)
    except (OSError, RuntimeError) as exc:
        log.error("cannot start: %s", exc)
        return 1
    tune_gc()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("shutting down")
    await node.stop()
    return 0


def raise_fd_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit (each connection is a descriptor; the
    usual soft limit of 1024 would cap the node near a thousand clients).  The new soft
    limit, or 0 where there is none to raise."""
    try:
        import resource
    except ImportError:  # not POSIX
        return 0
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard
    if hard == resource.RLIM_INFINITY:
        target = 1 << 20  # Linux refuses "infinity" for NOFILE; its nr_open is 1M by default
    if soft != resource.RLIM_INFINITY and soft < target:
        for candidate in (target, 65536, 4096):
            if soft < candidate <= target:
                try:
                    resource.setrlimit(resource.RLIMIT_NOFILE, (candidate, hard))
                    soft = candidate
                    break
                except (ValueError, OSError):
                    continue
    return int(soft)


def tune_gc() -> None:
    """Queued messages are many small objects without reference cycles; the collector's
    default thresholds would rescan them all, over and over, while a backlog builds.
    Collect rarely, and never rescan what existed at startup."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 50, 1000)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    values: dict[str, Any] = {k: v for k, v in vars(args).items() if k != "no_persistence"}
    try:
        settings = load(values)
    except ConfigError as exc:
        print(f"warren-server: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level)
    coro = serve(settings, persistence=not args.no_persistence)
    try:
        if settings.use_uvloop:
            try:
                import uvloop
            except ImportError:
                pass
            else:
                return uvloop.run(coro)
        return asyncio.run(coro)
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
