"""AMQP URI parsing (https://www.rabbitmq.com/uri-spec.html), without pika."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import parse_qs, unquote, urlsplit

DEFAULT_URI = "amqp://guest:guest@127.0.0.1:5672/%2F"
DEFAULT_PORTS = {"amqp": 5672, "amqps": 5671}
DEFAULT_FRAME_MAX = 131072
DEFAULT_CHANNEL_MAX = 2047


@dataclass(frozen=True)
class AmqpUri:
    scheme: str = "amqp"
    host: str = "127.0.0.1"
    port: int = 5672
    username: str = "guest"
    password: str = "guest"
    vhost: str = "/"
    # 0 = ask the broker not to send heartbeats: a benchmark must not be
    # disconnected because a busy worker process missed one.
    heartbeat: int = 0
    frame_max: int = DEFAULT_FRAME_MAX
    channel_max: int = DEFAULT_CHANNEL_MAX
    connection_timeout: float = 30.0
    verify: bool = True
    server_name: str | None = None

    @property
    def tls(self) -> bool:
        return self.scheme == "amqps"

    def redacted(self) -> str:
        """The URI for reports: everything but the password."""
        from urllib.parse import quote

        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{quote(self.username, safe='')}:***@{host}:{self.port}/{quote(self.vhost, safe='')}"


_PASSWORD_IN_URI = re.compile(r"(amqps?://[^:/@\s]*:)([^@\s]*)@")


def redact_passwords(text: str) -> str:
    """Hide the password of every AMQP URI in ``text`` (e.g. a command line)."""
    return _PASSWORD_IN_URI.sub(lambda m: m.group(1) + ("***" if m.group(2) else "") + "@", text)


def _query_int(query: dict[str, list[str]], name: str, default: int) -> int:
    values = query.get(name)
    if not values:
        return default
    try:
        return int(values[-1])
    except ValueError:
        raise ValueError(f"URI query parameter {name}={values[-1]!r} is not an integer") from None


def parse_uri(uri: str) -> AmqpUri:
    """Parse an ``amqp://`` or ``amqps://`` URI.

    User name, password and vhost are percent-decoded, so ``%2F`` is the
    default vhost ``/``.  A missing or empty vhost also means ``/`` (as pika
    does; the URI spec's empty-name vhost is never what a benchmark wants).
    Supported query parameters: ``heartbeat``, ``frame_max``, ``channel_max``,
    ``connection_timeout`` (milliseconds, as in the spec), ``verify``
    (``verify_none`` disables TLS certificate checks) and
    ``server_name_indication``.
    """
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise ValueError(f"unsupported URI scheme {parts.scheme!r} (use amqp:// or amqps://)")
    try:
        port = parts.port or DEFAULT_PORTS[scheme]
    except ValueError:
        raise ValueError(f"bad port in URI {uri!r}") from None
    host = parts.hostname or "127.0.0.1"
    username = unquote(parts.username) if parts.username is not None else "guest"
    password = unquote(parts.password) if parts.password is not None else "guest"
    path = parts.path.removeprefix("/")
    if "/" in path:
        raise ValueError(f"vhost in {uri!r} has an unescaped '/': write it as %2F")
    vhost = unquote(path) if path else "/"
    query = parse_qs(parts.query)
    verify_values = query.get("verify", [])
    return AmqpUri(
        scheme=scheme,
        host=host,
        port=port,
        username=username,
        password=password,
        vhost=vhost,
        heartbeat=_query_int(query, "heartbeat", 0),
        frame_max=_query_int(query, "frame_max", DEFAULT_FRAME_MAX),
        channel_max=_query_int(query, "channel_max", DEFAULT_CHANNEL_MAX),
        connection_timeout=_query_int(query, "connection_timeout", 30000) / 1000.0,
        verify=not (verify_values and verify_values[-1] == "verify_none"),
        server_name=query["server_name_indication"][-1] if "server_name_indication" in query else None,
    )
