"""Synchronous AMQP methods (request, then wait for the -ok) on one channel."""

from __future__ import annotations

import struct
from typing import Any

from . import codec as c
from . import fields as f
from .connection import AmqpConnection, ConfirmListener


async def channel_open(conn: AmqpConnection, ch: int) -> None:
    await conn.rpc(ch, c.channel_open(ch), c.CHANNEL_OPEN_OK)


async def exchange_declare(conn: AmqpConnection, ch: int, name: str, kind: str, *, durable: bool = False) -> None:
    await conn.rpc(
        ch,
        c.exchange_declare(ch, name, kind, durable=durable),
        c.EXCHANGE_DECLARE_OK,
    )


async def exchange_delete(conn: AmqpConnection, ch: int, name: str) -> None:
    await conn.rpc(ch, c.exchange_delete(ch, name), c.EXCHANGE_DELETE_OK)


async def queue_declare(
    conn: AmqpConnection,
    ch: int,
    name: str,
    *,
    durable: bool = False,
    passive: bool = False,
    arguments: dict[str, Any] | None = None,
) -> tuple[str, int, int]:
    """Declare a queue; returns (name, message count, consumer count)."""
    frame = c.queue_declare(ch, name, durable=durable, passive=passive, arguments=arguments)
    _, args = await conn.rpc(ch, frame, c.QUEUE_DECLARE_OK)
    qname, off = f.read_shortstr(args, 0)
    messages, consumers = struct.unpack_from(">II", args, off)
    return qname, messages, consumers


async def queue_bind(conn: AmqpConnection, ch: int, queue: str, exchange: str, routing_key: str = "") -> None:
    await conn.rpc(ch, c.queue_bind(ch, queue, exchange, routing_key), c.QUEUE_BIND_OK)


async def queue_purge(conn: AmqpConnection, ch: int, queue: str) -> int:
    _, args = await conn.rpc(ch, c.queue_purge(ch, queue), c.QUEUE_PURGE_OK)
    return int(struct.unpack_from(">I", args, 0)[0])


async def queue_delete(conn: AmqpConnection, ch: int, queue: str) -> int:
    _, args = await conn.rpc(ch, c.queue_delete(ch, queue), c.QUEUE_DELETE_OK)
    return int(struct.unpack_from(">I", args, 0)[0])


async def basic_qos(conn: AmqpConnection, ch: int, prefetch_count: int) -> None:
    await conn.rpc(ch, c.basic_qos(ch, prefetch_count), c.BASIC_QOS_OK)


async def basic_consume(
    conn: AmqpConnection,
    ch: int,
    queue: str,
    consumer_tag: str,
    *,
    no_ack: bool,
    arguments: dict[str, Any] | None = None,
) -> None:
    await conn.rpc(
        ch,
        c.basic_consume(ch, queue, consumer_tag, no_ack=no_ack, arguments=arguments),
        c.BASIC_CONSUME_OK,
    )


async def confirm_select(conn: AmqpConnection, ch: int, listener: ConfirmListener) -> None:
    conn.set_confirm_listener(listener)
    await conn.rpc(ch, c.confirm_select(ch), c.CONFIRM_SELECT_OK)
