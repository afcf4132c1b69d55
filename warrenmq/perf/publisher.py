"""The publishing loop: pre-encoded frames written in large batches.

Three shapes, chosen once per run:
* flat out, no timestamps: one pre-built batch written again and again;
* timestamps without a rate: a batch re-encoded per write with one time stamp;
* rate-limited: messages stamped one by one as their slot comes due.
Backpressure is TCP's: ``drain()`` waits while the transport is paused.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from . import codec as c
from . import operations as ops
from .connection import AmqpConnection

BATCH_BYTES = 128 * 1024
MAX_BATCH_MESSAGES = 4096


@dataclass(frozen=True)
class PublishTarget:
    exchange: str
    routing_key: str


class ConfirmTracker:
    """Counts publisher confirms; acks may be single or multiple, and out of order."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.low = 0  # every tag <= low is confirmed
        self.singles: set[int] = set()  # confirmed tags above low
        self.nacked = 0
        self.want_confirmed = 0  # wake the publisher once confirmed reaches this
        self.waiter: asyncio.Future[None] | None = None

    @property
    def confirmed(self) -> int:
        return self.low + len(self.singles)

    def on_confirm(self, tag: int, multiple: bool, nack: bool) -> None:
        before = self.confirmed
        if multiple:
            if tag > self.low:
                if self.singles:
                    self.singles = {t for t in self.singles if t > tag}
                self.low = tag
        elif tag == self.low + 1:
            self.low = tag
            while self.low + 1 in self.singles:
                self.low += 1
                self.singles.discard(self.low)
        elif tag > self.low:
            self.singles.add(tag)
        if nack:
            self.nacked += self.confirmed - before
        if self.waiter is not None and self.confirmed >= self.want_confirmed and not self.waiter.done():
            self.waiter.set_result(None)

    async def wait_for(self, count: int, conn: AmqpConnection, timeout: float | None = None) -> None:
        """Wait until at least ``count`` messages are confirmed."""
        while self.confirmed < count:
            if conn.error is not None:
                raise conn.error
            self.want_confirmed = count
            self.waiter = self.loop.create_future()
            waiters = {self.waiter, conn.closed}
            done, _ = await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            if not done:
                raise TimeoutError(f"{count - self.confirmed} confirms outstanding")


class Publisher:
    def __init__(
        self,
        conn: AmqpConnection,
        channel: int,
        targets: list[PublishTarget],
        size: int,
        *,
        persistent: bool = False,
        mandatory: bool = False,
        confirm_window: int | None = None,
        rate: float | None = None,
        timestamps: bool = False,
        limit: int | None = None,
    ) -> None:
        if not targets:
            raise ValueError("a publisher needs at least one target")
        self.conn = conn
        self.channel = channel
        self.targets = targets
        self.size = size
        self.persistent = persistent
        self.mandatory = mandatory
        self.window = confirm_window
        self.rate = rate
        self.timestamps = timestamps or rate is not None
        self.limit = limit
        self.published = 0
        self.stopping = False
        self.confirms: ConfirmTracker | None = None
        self._wakeup: asyncio.Future[None] | None = None
        if self.timestamps and size < 8:
            raise ValueError("timestamps need a message size of at least 8 bytes")
        # One message per target, then the parts for stamping: head + ts + tail.
        body = bytes(size)
        self._messages = [self._encode(t, body) for t in targets]
        self._heads: list[bytes] = []
        self._tails: list[bytes] = []
        if self.timestamps:
            for msg in self._messages:
                prefix_len = len(msg) - len(c.body_frames(channel, body, conn.frame_max))
                head_len = prefix_len + 7  # + first body frame's header
                self._heads.append(msg[:head_len])
                self._tails.append(msg[head_len + 8 :])
        self._round = b"".join(self._messages)
        self.rounds_per_batch = max(1, min(BATCH_BYTES // len(self._round), MAX_BATCH_MESSAGES // len(targets)))
        self._batch = self._round * self.rounds_per_batch

    def _encode(self, target: PublishTarget, body: bytes) -> bytes:
        return c.publish_message(
            self.channel,
            target.exchange,
            target.routing_key,
            body,
            self.conn.frame_max,
            persistent=self.persistent,
            mandatory=self.mandatory,
        )

    async def setup(self) -> None:
        if self.window is not None:
            self.confirms = ConfirmTracker(self.conn.loop)
            await ops.confirm_select(self.conn, self.channel, self.confirms)

    def stop(self) -> None:
        self.stopping = True
        if self._wakeup is not None and not self._wakeup.done():
            self._wakeup.set_result(None)

    async def run(self) -> None:
        if self.rate is not None:
            await self._run_rate(self.rate)
        else:
            await self._run_flat_out()

    def _stamped(self, count: int, start: int) -> bytes:
        """``count`` messages starting at target ``start``, stamped now."""
        ts = c.U64.pack(time.monotonic_ns())
        heads, tails, n = self._heads, self._tails, len(self.targets)
        return b"".join([heads[(start + i) % n] + ts + tails[(start + i) % n] for i in range(count)])

    def _room(self, wanted: int) -> int:
        """How many more messages may go now (limit and confirm window)."""
        if self.limit is not None:
            wanted = min(wanted, self.limit - self.published)
        if self.confirms is not None and self.window is not None:
            wanted = min(wanted, self.window - (self.published - self.confirms.confirmed))
        return wanted

    async def _wait_window(self) -> None:
        assert self.confirms is not None and self.window is not None
        await self.confirms.wait_for(self.published - self.window + 1, self.conn)

    async def _run_flat_out(self) -> None:
        conn = self.conn
        n_targets = len(self.targets)
        batch_messages = self.rounds_per_batch * n_targets
        while not self.stopping:
            room = self._room(batch_messages)
            if room <= 0:
                if self.limit is not None and self.published >= self.limit:
                    return
                await self._wait_window()
                continue
            start = self.published % n_targets
            if self.timestamps:
                conn.write(self._stamped(room, start))
            elif room == batch_messages and start == 0:
                conn.write(self._batch)
            else:
                conn.write(b"".join(self._messages[(start + i) % n_targets] for i in range(room)))
            self.published += room
            if conn.paused:
                await conn.drain()
            else:
                # Let the loop read confirms, blocked notices and closes.
                await asyncio.sleep(0)

    async def _run_rate(self, rate: float) -> None:
        loop = asyncio.get_running_loop()
        conn = self.conn
        n_targets = len(self.targets)
        started = loop.time()
        # Never burst more than ~10 ms worth after a stall, to keep the rate honest.
        max_burst = max(1, int(rate / 100))
        while not self.stopping:
            due = int((loop.time() - started) * rate) - self.published
            if due <= 0:
                delay = (self.published + 1) / rate - (loop.time() - started)
                self._wakeup = loop.create_future()
                # uvloop's timers count whole milliseconds: a shorter delay would wake at once,
                # spinning the loop (a third of a core at 1,000 msg/s, enough to disturb the
                # broker being measured).  A message late by under 1 ms is sent with the next;
                # latency is measured from its time stamp, taken as it is written.
                loop.call_later(max(_TIMER_RESOLUTION, delay), _resolve, self._wakeup)
                await self._wakeup
                continue
            room = self._room(min(due, max_burst))
            if room <= 0:
                if self.limit is not None and self.published >= self.limit:
                    return
                await self._wait_window()
                continue
            conn.write(self._stamped(room, self.published % n_targets))
            self.published += room
            if conn.paused:
                await conn.drain()

    async def finish(self, timeout: float) -> None:
        """Wait for confirms of everything published (if confirming)."""
        if self.confirms is not None:
            await self.confirms.wait_for(self.published, self.conn, timeout)


_TIMER_RESOLUTION = 0.001


def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)
