"""Listening sockets, shared by the AMQP listeners and the management API."""

from __future__ import annotations

import socket


def listen_socket(host: str, port: int, backlog: int = 4096) -> socket.socket:
    """One listening socket; for all interfaces (``host`` empty) a dual-stack IPv6 one, so that
    port 0 gives one port for IPv4 and IPv6 alike, falling back to IPv4 where IPv6 is missing."""
    if host:
        family = socket.AF_INET6 if ":" in host else 0
        infos = socket.getaddrinfo(host, port, family, socket.SOCK_STREAM)
        family, _, _, _, address = infos[0]
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    else:
        try:
            sock = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("::", port))
        except OSError:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("0.0.0.0", port))
    sock.listen(backlog)
    sock.setblocking(False)
    return sock
