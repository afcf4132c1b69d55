"""A lean AMQP 0-9-1 client connection as an asyncio Protocol.

Only what a load generator needs.  ``data_received`` walks frames in place
with ``struct.unpack_from`` and handles the three hot cases inline:
basic.deliver (count, maybe ack), content body (maybe read a latency
timestamp) and publisher confirms.  Everything else goes through a slow path
that resolves futures for synchronous methods (``rpc``).
"""

from __future__ import annotations

import asyncio
import collections
import ssl
import struct
import time
from array import array
from typing import Any, Protocol, cast

from . import __version__
from . import codec as c
from . import fields as f
from .uri import AmqpUri

_FRAME_HDR = c.FRAME_HDR.unpack_from
_METHOD_KEY = c.METHOD_KEY.unpack_from
_U64 = c.U64.unpack_from
_ACK = c.ACK_FRAME.pack
_DELIVER = c.BASIC_DELIVER
_CONFIRM_ACK = c.BASIC_ACK
_CONFIRM_NACK = c.BASIC_NACK
_METHOD, _HEADER, _BODY = c.FRAME_METHOD, c.FRAME_HEADER, c.FRAME_BODY
_END = c.FRAME_END

# Latency samples kept per connection; beyond this they are dropped (and
# counted) rather than letting a long unthrottled run eat the machine.
MAX_LATENCY_SAMPLES = 5_000_000

ACK_NONE, ACK_EACH, ACK_MULTIPLE = 0, 1, 2


class AmqpError(Exception):
    """The broker refused or closed something."""

    def __init__(self, text: str, code: int = 0) -> None:
        super().__init__(f"{code} {text}" if code else text)
        self.code = code
        self.text = text


class ConnectionClosed(AmqpError):
    pass


class ChannelClosed(AmqpError):
    pass


class ConfirmListener(Protocol):
    def on_confirm(self, tag: int, multiple: bool, nack: bool) -> None: ...


CLIENT_PROPERTIES: dict[str, Any] = {
    "product": "warren-perf",
    "version": __version__,
    "platform": "Python",
    "capabilities": {
        "publisher_confirms": True,
        "consumer_cancel_notify": True,
        "connection.blocked": True,
        "basic.nack": True,
        "authentication_failure_close": True,
    },
}


class AmqpConnection(asyncio.Protocol):
    def __init__(self, uri: AmqpUri, name: str = "warren-perf") -> None:
        self.uri = uri
        self.name = name
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self._pending = b""  # bytes of an incomplete frame from the last read
        # Per channel, the synchronous replies we are waiting for, in order.
        self._waiters: dict[
            int,
            collections.deque[tuple[frozenset[int], asyncio.Future[tuple[int, bytes]]]],
        ] = collections.defaultdict(collections.deque)
        self.closed: asyncio.Future[None] = self.loop.create_future()
        self.error: BaseException | None = None
        self._paused = False
        self._resumed: asyncio.Future[None] | None = None
        self._heartbeat_handle: asyncio.TimerHandle | None = None
        self.server_properties: dict[str, Any] = {}
        self.frame_max = uri.frame_max
        self.channel_max = uri.channel_max
        self.heartbeat = uri.heartbeat
        self.blocked = False
        self.blocked_count = 0
        self.channel_errors: list[str] = []
        self.cancelled_consumers: list[str] = []
        self.returned = 0
        # Consumer fast-path state, see enable_consumer().
        self.delivered = 0
        self._ack_mode = ACK_NONE
        self._ack_every = 1
        self._unacked = 0
        self._measure_latency = False
        self._want_timestamp = False
        self.latencies = array("q")
        self.latency_dropped = 0
        # Publisher-confirm listener, see enable_confirms().
        self._confirms: ConfirmListener | None = None
        # The broker speaks first (connection.start), so listen before connecting.
        self._start = self._expect(0, c.CONNECTION_START)

    # -- asyncio.Protocol ---------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but quack alike.
        self.transport = cast(asyncio.Transport, transport)
        # Large enough that a publisher writing 128 KiB batches is not paused
        # after every write, small enough to bound the tool's memory.
        self.transport.set_write_buffer_limits(high=1 << 20, low=1 << 18)
        self.transport.write(c.PROTOCOL_HEADER)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.error is None:
            self.error = ConnectionClosed(f"connection lost: {exc}" if exc else "connection closed by peer")
        self._fail_waiters(self.error)
        if self._heartbeat_handle is not None:
            self._heartbeat_handle.cancel()
        if self._resumed is not None and not self._resumed.done():
            self._resumed.set_result(None)
        if not self.closed.done():
            self.closed.set_result(None)

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        if self._resumed is not None and not self._resumed.done():
            self._resumed.set_result(None)

    def data_received(self, data: bytes) -> None:
        buf = self._pending + data if self._pending else data
        n = len(buf)
        off = 0
        delivered = 0
        acks: list[bytes] | None = None
        confirms = self._confirms
        now = 0
        while n - off >= 8:
            ftype, ch, size = _FRAME_HDR(buf, off)
            end = off + size + 8
            if end > n:
                break
            if buf[end - 1] != _END:
                self._protocol_error("frame end marker missing")
                return
            if ftype == _BODY:
                if self._want_timestamp:
                    self._want_timestamp = False
                    if size >= 8:
                        if not now:
                            now = time.monotonic_ns()
                        if len(self.latencies) < MAX_LATENCY_SAMPLES:
                            self.latencies.append(now - _U64(buf, off + 7)[0])
                        else:
                            self.latency_dropped += 1
            elif ftype == _METHOD:
                key = _METHOD_KEY(buf, off + 7)[0]
                if key == _DELIVER:
                    delivered += 1
                    if self._ack_mode:
                        # deliver args: consumer-tag shortstr, then delivery-tag.
                        tag = _U64(buf, off + 12 + buf[off + 11])[0]
                        if self._ack_mode == ACK_EACH:
                            if acks is None:
                                acks = []
                            acks.append(_ACK(1, ch, 13, c.BASIC_ACK, tag, 0, _END))
                        else:
                            self._unacked += 1
                            if self._unacked >= self._ack_every:
                                self._unacked = 0
                                if acks is None:
                                    acks = []
                                acks.append(_ACK(1, ch, 13, c.BASIC_ACK, tag, 1, _END))
                elif (key in (_CONFIRM_ACK, _CONFIRM_NACK)) and confirms is not None:
                    tag = _U64(buf, off + 11)[0]
                    confirms.on_confirm(tag, bool(buf[off + 19] & 1), key == _CONFIRM_NACK)
                else:
                    self._on_method(ch, key, bytes(buf[off + 11 : end - 1]))
            elif ftype == _HEADER:
                self._want_timestamp = self._measure_latency
            off = end
        self._pending = bytes(buf[off:]) if off < n else b""
        if delivered:
            self.delivered += delivered
            if acks is not None and self.transport is not None:
                self.transport.write(b"".join(acks))
        if not off and n >= 8 and buf[:4] == b"AMQP":
            self._protocol_error("broker rejected the protocol header")

    # -- slow path ----------------------------------------------------------

    def _on_method(self, ch: int, key: int, args: bytes) -> None:
        if key == c.CONNECTION_CLOSE:
            code, text = _close_reason(args)
            self._write(c.connection_close_ok())
            self.error = ConnectionClosed(text, code)
            self._fail_waiters(self.error)
            if self.transport is not None:
                self.transport.close()
            return
        if key == c.CHANNEL_CLOSE:
            code, text = _close_reason(args)
            self._write(c.channel_close_ok(ch))
            error = ChannelClosed(text, code)
            self.channel_errors.append(str(error))
            for _, fut in self._waiters.pop(ch, ()):
                if not fut.done():
                    fut.set_exception(error)
            return
        if key == c.CONNECTION_BLOCKED:
            self.blocked = True
            self.blocked_count += 1
            return
        if key == c.CONNECTION_UNBLOCKED:
            self.blocked = False
            return
        if key == c.CHANNEL_FLOW:
            self._write(c.channel_flow_ok(ch, bool(args[0] & 1)))
            return
        if key == c.BASIC_CANCEL:
            tag, _ = f.read_shortstr(args, 0)
            self.cancelled_consumers.append(tag)
            return
        if key == c.BASIC_RETURN:
            self.returned += 1
            return
        waiters = self._waiters.get(ch)
        if waiters:
            for i, (keys, fut) in enumerate(waiters):
                if key in keys:
                    del waiters[i]
                    if not fut.done():
                        fut.set_result((key, args))
                    return

    def _expect(self, ch: int, *keys: int) -> asyncio.Future[tuple[int, bytes]]:
        fut: asyncio.Future[tuple[int, bytes]] = self.loop.create_future()
        if self.error is not None:
            fut.set_exception(self.error)
        else:
            self._waiters[ch].append((frozenset(keys), fut))
        return fut

    def _fail_waiters(self, error: BaseException) -> None:
        for waiters in self._waiters.values():
            for _, fut in waiters:
                if not fut.done():
                    fut.set_exception(error)
        self._waiters.clear()

    def _protocol_error(self, text: str) -> None:
        self.error = ConnectionClosed(text)
        self._fail_waiters(self.error)
        if self.transport is not None:
            self.transport.abort()

    def _write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    # -- public API ----------------------------------------------------------

    def write(self, data: bytes) -> None:
        """Write frames; callers doing bulk writes should ``await drain()``."""
        if self.error is not None:
            raise self.error
        assert self.transport is not None
        self.transport.write(data)

    @property
    def paused(self) -> bool:
        return self._paused

    async def drain(self) -> None:
        """Wait until the transport's buffer is below its low-water mark."""
        while self._paused:
            if self.error is not None:
                raise self.error
            if self._resumed is None or self._resumed.done():
                self._resumed = self.loop.create_future()
            await self._resumed
        if self.error is not None:
            raise self.error

    async def rpc(self, ch: int, frame: bytes, *reply_keys: int) -> tuple[int, bytes]:
        fut = self._expect(ch, *reply_keys)
        self.write(frame)
        return await fut

    async def handshake(self) -> None:
        _, start = await self._start
        self.server_properties, _ = f.read_table(start, 2)
        tune_fut = self._expect(0, c.CONNECTION_TUNE)
        props = dict(CLIENT_PROPERTIES, connection_name=self.name)
        self.write(c.connection_start_ok(self.uri.username, self.uri.password, props))
        _, tune = await tune_fut
        channel_max, frame_max, heartbeat = struct.unpack_from(">HIH", tune, 0)
        self.channel_max = _negotiate(channel_max, self.uri.channel_max)
        self.frame_max = _negotiate(frame_max, self.uri.frame_max)
        # Heartbeat: 0 from us means "none", whatever the server proposes.
        self.heartbeat = min(heartbeat, self.uri.heartbeat) if self.uri.heartbeat else 0
        self.write(c.connection_tune_ok(self.channel_max, self.frame_max, self.heartbeat))
        await self.rpc(0, c.connection_open(self.uri.vhost), c.CONNECTION_OPEN_OK)
        if self.heartbeat:
            self._schedule_heartbeat()

    def _schedule_heartbeat(self) -> None:
        def beat() -> None:
            self._write(c.heartbeat_frame())
            self._schedule_heartbeat()

        self._heartbeat_handle = self.loop.call_later(self.heartbeat / 2, beat)

    async def close(self, timeout: float = 5.0) -> None:
        """Close politely; abort if the broker does not answer in time."""
        if self.transport is None or self.closed.done():
            return
        if self.error is None:
            try:
                fut = self._expect(0, c.CONNECTION_CLOSE_OK)
                self.write(c.connection_close())
                await asyncio.wait_for(fut, timeout)
            except (TimeoutError, AmqpError, OSError):
                pass
        if self.transport is not None:
            self.transport.close()
        try:
            await asyncio.wait_for(asyncio.shield(self.closed), timeout)
        except TimeoutError:
            self.transport.abort()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def set_confirm_listener(self, listener: ConfirmListener) -> None:
        """Route publisher confirms (basic.ack/nack from the broker) to ``listener``."""
        self._confirms = listener

    def enable_consumer(self, *, ack_mode: int, ack_every: int = 1, measure_latency: bool = False) -> None:
        """Configure the delivery fast path before the first basic.consume."""
        self._ack_mode = ack_mode
        self._ack_every = max(1, ack_every)
        self._measure_latency = measure_latency


def _negotiate(server: int, client: int) -> int:
    # 0 means "no limit" on either side.
    if server == 0:
        return client
    if client == 0:
        return server
    return min(server, client)


def _close_reason(args: bytes) -> tuple[int, str]:
    (code,) = struct.unpack_from(">H", args, 0)
    text, _ = f.read_shortstr(args, 2)
    return code, text


def _ssl_context(uri: AmqpUri) -> ssl.SSLContext | None:
    if not uri.tls:
        return None
    ctx = ssl.create_default_context()
    if not uri.verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


async def connect(uri: AmqpUri, name: str = "warren-perf", timeout: float | None = None) -> AmqpConnection:
    """Open a TCP (or TLS) connection and run the AMQP handshake."""
    loop = asyncio.get_running_loop()
    limit = uri.connection_timeout if timeout is None else timeout
    ctx = _ssl_context(uri)
    server_hostname = (uri.server_name or uri.host) if ctx is not None else None

    async def _open() -> AmqpConnection:
        _, proto = await loop.create_connection(
            lambda: AmqpConnection(uri, name),
            uri.host,
            uri.port,
            ssl=ctx,
            server_hostname=server_hostname,
        )
        try:
            await proto.handshake()
        except BaseException:
            proto.abort()
            raise
        return proto

    try:
        return await asyncio.wait_for(_open(), limit)
    except TimeoutError:
        raise TimeoutError(f"no AMQP connection within {limit:g}s") from None


def broker_description(props: dict[str, Any]) -> str:
    product = props.get("product", "unknown broker")
    version = props.get("version", "")
    described = f"{product} {version}".strip()
    own = props.get("warrenmq_version")
    if own:
        # WarrenMQ announces RabbitMQ's product and version (clients choose semantics by
        # them); its own version has a key of its own.
        return f"WarrenMQ {own} (as {described})"
    return described
