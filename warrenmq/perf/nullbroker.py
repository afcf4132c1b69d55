"""A null AMQP broker: it answers the set-up methods, discards what is
published and streams deliveries to consumers as fast as TCP takes them.

It measures warren-perf's own ceiling (any rate the tool reaches against it
is a rate the tool can drive) and lets the tool be tested end to end without
a real broker:

    python -m warrenmq.perf.nullbroker --port 5699 &    # --port 0 picks a free one and prints it
    warren-perf --uri amqp://guest:guest@127.0.0.1:5699/%2F --scenario transient-16b

Deliveries ignore prefetch and acks; confirms are sent for every publish.
"""

from __future__ import annotations

import argparse
import asyncio
import struct
from collections.abc import Callable

from . import codec as c
from . import fields as f

DELIVERY_BATCH = 1024
FRAME_MAX = 131072
BATCHES_PER_TURN = 8  # then yield, so the loop still reads (acks, close)


def _method(ch: int, key: int, args: bytes = b"") -> bytes:
    return c.method_frame(ch, key, args)


def _delivery(ch: int, consumer_tag: bytes, body_size: int) -> bytes:
    args = f.shortstr(consumer_tag) + c.U64.pack(1) + b"\x00" + f.shortstr("") + f.shortstr("null")
    header = struct.pack(">HHQH", 60, 0, body_size, 0)
    return (
        _method(ch, c.BASIC_DELIVER, args)
        + c.FRAME_HDR.pack(c.FRAME_HEADER, ch, len(header))
        + header
        + c.FRAME_END_BYTE
        + c.body_frames(ch, bytes(body_size), FRAME_MAX)
    )


def _ok_replies() -> dict[int, Callable[[int, bytes], bytes]]:
    zero_count = struct.pack(">I", 0)
    return {
        c.CONNECTION_OPEN: lambda ch, _: _method(ch, c.CONNECTION_OPEN_OK, f.shortstr("")),
        c.CHANNEL_OPEN: lambda ch, _: _method(ch, c.CHANNEL_OPEN_OK, f.longstr("")),
        c.CHANNEL_CLOSE: lambda ch, _: _method(ch, c.CHANNEL_CLOSE_OK),
        c.EXCHANGE_DECLARE: lambda ch, _: _method(ch, c.EXCHANGE_DECLARE_OK),
        c.EXCHANGE_DELETE: lambda ch, _: _method(ch, c.EXCHANGE_DELETE_OK),
        c.QUEUE_DECLARE: lambda ch, a: _method(
            ch, c.QUEUE_DECLARE_OK, f.shortstr(f.read_shortstr(a, 2)[0]) + struct.pack(">II", 0, 0)
        ),
        c.QUEUE_BIND: lambda ch, _: _method(ch, c.QUEUE_BIND_OK),
        c.QUEUE_PURGE: lambda ch, _: _method(ch, c.QUEUE_PURGE_OK, zero_count),
        c.QUEUE_DELETE: lambda ch, _: _method(ch, c.QUEUE_DELETE_OK, zero_count),
        c.BASIC_QOS: lambda ch, _: _method(ch, c.BASIC_QOS_OK),
        c.CONFIRM_SELECT: lambda ch, _: _method(ch, c.CONFIRM_SELECT_OK),
    }


class NullBrokerConnection(asyncio.Protocol):
    def __init__(self, body_size: int) -> None:
        self.body_size = body_size
        self.transport: asyncio.Transport | None = None
        self.pending = b""
        self.header_seen = False
        self.replies = _ok_replies()
        self.confirming: set[int] = set()
        self.published: dict[int, int] = {}
        self.stream: bytes | None = None
        self.paused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        self._pump()

    def _write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def data_received(self, data: bytes) -> None:
        buf = self.pending + data if self.pending else data
        if not self.header_seen:
            if len(buf) < 8:
                self.pending = buf
                return
            self.header_seen = True
            buf = buf[8:]
            props = f.table({"product": "warren-perf null broker", "version": "0"})
            self._write(_method(0, c.CONNECTION_START, b"\x00\x09" + props + f.longstr("PLAIN") + f.longstr("en_US")))
        n, off = len(buf), 0
        confirms: dict[int, int] = {}
        while n - off >= 8:
            ftype, ch, size = c.FRAME_HDR.unpack_from(buf, off)
            end = off + size + 8
            if end > n:
                break
            if ftype == c.FRAME_METHOD:
                key = c.METHOD_KEY.unpack_from(buf, off + 7)[0]
                if key == c.BASIC_PUBLISH:
                    if ch in self.confirming:
                        confirms[ch] = self.published[ch] = self.published.get(ch, 0) + 1
                elif key != c.BASIC_ACK:
                    self._on_method(ch, key, bytes(buf[off + 11 : end - 1]))
            off = end
        self.pending = bytes(buf[off:])
        for ch, tag in confirms.items():
            self._write(c.method_frame(ch, c.BASIC_ACK, struct.pack(">QB", tag, 1)))

    def _on_method(self, ch: int, key: int, args: bytes) -> None:
        if key == c.CONNECTION_START_OK:
            self._write(_method(0, c.CONNECTION_TUNE, struct.pack(">HIH", 2047, FRAME_MAX, 0)))
        elif key == c.CONNECTION_CLOSE:
            self._write(c.connection_close_ok())
            if self.transport is not None:
                self.transport.close()
        elif key == c.CONFIRM_SELECT:
            self.confirming.add(ch)
            self._write(self.replies[key](ch, args))
        elif key == c.BASIC_CONSUME:
            _, off = f.read_shortstr(args, 2)
            tag, _ = f.read_shortstr(args, off)
            self._write(_method(ch, c.BASIC_CONSUME_OK, f.shortstr(tag)))
            self.stream = _delivery(ch, tag.encode(), self.body_size) * DELIVERY_BATCH
            self._pump()
        elif key in self.replies:
            self._write(self.replies[key](ch, args))

    def _pump(self) -> None:
        """Write delivery batches until TCP pushes back; resume_writing restarts it."""
        if self.stream is None or self.transport is None:
            return
        for _ in range(BATCHES_PER_TURN):
            if self.paused or self.transport.is_closing():
                return
            self.transport.write(self.stream)
        asyncio.get_running_loop().call_soon(self._pump)


async def serve(host: str, port: int, body_size: int, ready: Callable[[int], None] | None = None) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: NullBrokerConnection(body_size), host, port)
    if ready is not None:
        ready(server.sockets[0].getsockname()[1])
    async with server:
        await server.serve_forever()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="default 0: a free port, printed on stdout")
    p.add_argument("--size", type=int, default=16, help="body size of streamed deliveries")
    args = p.parse_args(argv)
    from .worker import use_uvloop

    use_uvloop()
    asyncio.run(serve(args.host, args.port, args.size, ready=lambda port: print(port, flush=True)))


if __name__ == "__main__":
    main()
