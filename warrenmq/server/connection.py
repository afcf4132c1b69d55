"""One client connection: an asyncio Protocol around the frame reader.

Theory of operation.  ``data_received`` feeds the FrameReader and dispatches each complete
frame: channel 0 to the connection state machine (handshake, close, heartbeats), other
channels to their Channel.  Everything the connection sends goes into ``out`` and is written
with one ``transport.write`` per event-loop turn (``_flush``), however many channels and
queues added to it.

States: header -> start-ok -> tune-ok -> open -> opened -> closing -> closed.  A hard error
sends connection.close and then ignores everything but close/close-ok; a soft error closes
only its channel.  As RabbitMQ: an error before tune-ok (a bad frame, a method out of order,
an unknown mechanism, a tune-ok out of range) closes the socket without a word; a refused
login says so only to clients with the authentication_failure_close capability; from
connection.open on, errors are connection.close frames.

The socket's write buffer is the back-pressure signal: when it is full, the connection's
channels stop taking deliveries until it drains; if what the client asked for (replies,
returns, get-oks) still piles up past a hard limit, its socket is not read until it drains,
so a client that does not read cannot make the broker buffer without bound.

Under a resource alarm a connection is blocked by the next content it sends (blocking.py):
that frame and the rest of the read are held, the socket is not read and the heartbeat
monitor is paused (the client's heartbeats wait in the socket) until the alarm clears.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import struct
import traceback
from typing import TYPE_CHECKING, Any

from warrenmq.amqp import spec
from warrenmq.amqp.errors import (
    AccessRefusedConnection,
    AMQPError,
    ChannelErrorConnection,
    CommandInvalid,
    ConnectionForced,
    FrameError,
    InternalError,
    NotAllowed,
    ParserCrash,
    ReaderCrash,
    SyntaxErrorAMQP,
    UnexpectedFrame,
)
from warrenmq.amqp.frames import (
    ACKS,
    HEARTBEAT_FRAME,
    PROTOCOL_HEADER,
    PUBLISH,
    Frame,
    FrameReader,
    ack_payload,
    decode_method,
    erlang_binary,
    frame_error_text,
    method_frame,
)
from warrenmq.amqp.values import FieldTable, MalformedTable, read_table
from warrenmq.server.blocking import first_content
from warrenmq.server.channel import Channel
from warrenmq.server.publishing import PublishingMixin

if TYPE_CHECKING:
    from warrenmq.broker.users import User
    from warrenmq.broker.vhost import VHost
    from warrenmq.server.node import Node

log = logging.getLogger("warrenmq.connection")

_HEADER, _START_OK, _SECURE_OK, _TUNE_OK, _OPEN, _OPENED, _CLOSING, _CLOSED = range(8)
_CLOSE_OK_TIMEOUT = 3.0
_CLIENT_CLOSE_LINGER = 30.0  # s: how long a socket may stay open after close-ok (RabbitMQ: the same)
_WRITE_HIGH = 1024 * 1024
_WRITE_LOW = 256 * 1024
_WRITE_HARD = 8 * 1024 * 1024  # bytes unsent to a client after which its socket is not read
_LEGACY_0_9_HEADER = b"AMQP\x01\x01\x00\x09"  # pre-0-9-1 clients; RabbitMQ speaks 0-9 to them
_YIELD_AFTER = 32 * 1024  # bytes read in one go after which a connection lets the others run
_STOP_YIELD, _STOP_THROTTLE, _STOP_ALARM, _STOP_OUTPUT, _STOP_WAIT, _STOP_FROZEN = 1, 2, 4, 8, 16, 32
_THROTTLE_MAX = 0.05  # seconds a throttled publisher waits at most: never a deadlock, and a slow
# consumer (rather than a busy broker) slows its publishers only a little


_UNPARSABLE = (IndexError, struct.error, UnicodeDecodeError, OverflowError, ValueError)


def _where(exc: BaseException) -> str:
    """``file:line in function: Type: message`` of where ``exc`` was raised."""
    frames = traceback.extract_tb(exc.__traceback__)
    at = f"{os.path.basename(frames[-1].filename)}:{frames[-1].lineno} in {frames[-1].name}: " if frames else ""
    return f"{at}{type(exc).__name__}: {exc}"


class Connection(asyncio.Protocol):
    def __init__(self, node: Node, tls: bool = False) -> None:
        self.node = node
        self.loop = node.loop
        self.settings = node.settings
        self.tls = tls
        self.transport: asyncio.Transport | None = None
        self.state = _HEADER
        self.reader = FrameReader(spec.FRAME_MIN_SIZE)
        self.out: list[bytes] = []
        self.out_size = 0  # body bytes in ``out`` (deliveries flush early past a burst size)
        self.flush_pending = False
        self.confirm_channels: list[PublishingMixin] = []  # channels with confirms to send
        self.channels: dict[int, Channel] = {}
        self.frame_max = self.settings.frame_max
        self.channel_max = self.settings.channel_max
        self.heartbeat = 0
        self.user: User | None = None
        self.vhost: VHost | None = None
        self.client_properties: dict[str, Any] = {}
        self.capabilities: dict[str, Any] = {}
        self.peer: tuple[str, int] = ("", 0)
        self.local: tuple[str, int] = ("", 0)
        self.paused = False  # socket write buffer full
        self.blocked = False  # blocked by a resource alarm: not read until it clears
        self.alarm_pending = False  # an alarm is in force: block at the next publish
        self._held: list[Frame] = []  # frames read but not dispatched when it was blocked
        self.name = ""
        self.connected_at = 0.0
        self.auth_mechanism = ""
        self.peer_cert_cn = ""  # TLS: the common name of the client's verified certificate
        self.recv_oct = self.send_oct = self.recv_cnt = self.send_cnt = 0
        self._header_buf = b""
        self._read_stops = 0  # why reading is paused: _STOP_* bits; read again when none is left
        self._throttle_timer: asyncio.TimerHandle | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._closed_by_client = False  # close-ok sent for the client's connection.close
        self._last_recv = 0.0
        self._sent_since_tick = False
        self._close_reason: str | None = None
        # Cluster mode: input waits while a method waits for another node or for etcd
        # (``wait_for``), and while the node is frozen (``freeze``).
        self.waiting = False
        self._held_frames: list[Frame] = []
        self._frozen_data: list[bytes] = []
        self.cluster_id = ""  # this connection's id in the cluster (exclusive queues name it)

    # -- asyncio.Protocol ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's transports are not subclasses
        transport.set_write_buffer_limits(high=_WRITE_HIGH, low=_WRITE_LOW)  # type: ignore[attr-defined]
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass
        peer = transport.get_extra_info("peername") or ("", 0)
        local = transport.get_extra_info("sockname") or ("", 0)
        self.peer = (_unmapped(str(peer[0])), int(peer[1]))
        self.local = (_unmapped(str(local[0])), int(local[1]))
        self.name = f"{_host(self.peer[0])}:{self.peer[1]} -> {_host(self.local[0])}:{self.local[1]}"
        self.connected_at = self.loop.time()
        self._last_recv = self.connected_at
        if self.tls:
            self.peer_cert_cn = _common_name(transport.get_extra_info("peercert"))
        self._timer = self.loop.call_later(self.settings.handshake_timeout, self._handshake_timeout)
        self.node.connection_opened(self)

    def data_received(self, data: bytes) -> None:
        gate = self.node.input_gate
        if gate is not None and (self._frozen_data or not gate()):
            self._frozen_data.append(data)
            self.stop_reading(_STOP_FROZEN)
            return
        self._last_recv = self.loop.time()
        self.recv_oct += len(data)
        node = self.node
        node.unsampled += len(data)
        if node.unsampled > node.sample_every:
            node.sample_resources()
        if len(data) >= _YIELD_AFTER and not self._read_stops & _STOP_YIELD:
            # A big read (a publisher in full flow): let every other connection have its turn
            # before reading more, so that consumers' acks and deliveries are not starved.
            self.stop_reading(_STOP_YIELD)
            self.loop.call_soon(self.resume_reading, _STOP_YIELD)
        if self.state == _HEADER:
            data = self._read_protocol_header(data)
            if not data:
                return
        try:
            frames = self.reader.feed(data, publishes=self.state == _OPENED)
            self.recv_cnt += len(frames)
            if self.waiting:
                self._held_frames.extend(frames)  # a method waits for the cluster: after it
                return
            if self.alarm_pending or self._held:
                frames = self._admit(frames)
            self._run(frames)
        except Exception as exc:
            self._input_failed(exc)

    def _run(self, frames: list[Frame]) -> None:
        """Dispatch complete frames (the hot path: keep it lean); stop, keeping the rest, when
        a method waits for another node or etcd (cluster mode)."""
        channels = self.channels
        payload: bytes
        codes: list[int]
        for frame in frames:
            if frame[0] == PUBLISH:
                # A whole publish: one call, as long as nothing about it is unusual.
                _, number, method, header, body = frame  # type: ignore[misc]
                channel = channels.get(number)
                if self.state == _OPENED and channel is not None and channel.publish_whole(method, header, body):
                    continue
                self._dispatch(1, number, method)
                self._dispatch(2, number, header)
                self._dispatch(3, number, body)
                continue
            if frame[0] == ACKS:
                # A run of basic.acks on one channel, settled together.
                _, number, codes = frame  # type: ignore[misc,assignment]
                channel = channels.get(number)
                if self.state == _OPENED and channel is not None:
                    channel.on_acks(codes)
                else:
                    for code in codes:
                        self._dispatch(1, number, ack_payload(code))
                continue
            ftype, number, payload = frame  # type: ignore[misc,assignment]
            channel = channels.get(number)
            if channel is not None and ftype == 1 and self.state == _OPENED:
                channel.on_method(payload)  # the common case: acks, consumes, declares
            else:
                self._dispatch(ftype, number, payload)
            if self.waiting:  # only a method (not a whole publish, not acks) waits
                self._hold_after(frames, frame)
                return

    def _hold_after(self, frames: list[Frame], frame: Frame) -> None:
        """A method waits: the frames after it wait too, before any held already."""
        at = next(i for i, f in enumerate(frames) if f is frame)
        self._held_frames = frames[at + 1 :] + self._held_frames

    def _input_failed(self, exc: Exception) -> None:
        if isinstance(exc, AMQPError):
            self.fail(exc)
        elif isinstance(exc, _UNPARSABLE):
            # Client bytes that a decoder did not expect (a truncated property, a timestamp no
            # calendar holds...).  RabbitMQ's parser crashes on such input and closes with a
            # bare 541 INTERNAL_ERROR; so does this, logging where, without a traceback.
            log.warning("closing connection %s: input that did not decode: %s", self.name, _where(exc))
            self.fail(ParserCrash("unparsable input"))
        else:  # a bug: keep the node up, tell the client, log once
            log.error("internal error on connection %s", self.name, exc_info=exc)
            self.fail(InternalError(f"internal error: {type(exc).__name__}"))

    # -- waiting (cluster mode) ---------------------------------------------------------

    def wait_for(self, future: Any, then: Any) -> None:
        """A method's answer needs ``future`` (another node, etcd): hold every later frame
        until it resolves and ``then(future)`` has run, so that the client sees its answers
        in order.  ``then`` raises AMQP errors as a handler would."""
        self.waiting = True
        self.stop_reading(_STOP_WAIT)
        future.add_done_callback(lambda f: self._resume_after(f, then))

    def _resume_after(self, future: Any, then: Any) -> None:
        self.waiting = False
        if self.state == _CLOSED:
            return
        try:
            then(future)
            held, self._held_frames = self._held_frames, []
            if held and self.state < _CLOSED:
                if self.alarm_pending or self._held:
                    held = self._admit(held)
                self._run(held)
        except Exception as exc:
            self._input_failed(exc)
        if not self.waiting:
            self.resume_reading(_STOP_WAIT)
            self.schedule_flush()

    def freeze(self, frozen: bool) -> None:
        """The node is fenced (or no longer): read nothing more (or what arrived meanwhile)."""
        if frozen:
            self.stop_reading(_STOP_FROZEN)
            return
        data = b"".join(self._frozen_data)
        self._frozen_data = []
        self._last_recv = self.loop.time()  # the pause was the node's, not the client's
        if data and self.state != _CLOSED:
            self.data_received(data)
        self.resume_reading(_STOP_FROZEN)

    def _dispatch(self, ftype: int, number: int, payload: bytes) -> None:
        """One frame, by channel and type."""
        if self.state >= _CLOSING:
            self._while_closing(ftype, number, payload)
            return
        if number == 0:
            self._on_channel_zero(ftype, payload)
            return
        channel = self.channels.get(number)
        if channel is None:
            self._on_unopened_channel(ftype, number, payload)
        elif ftype == 1:
            channel.on_method(payload)
        elif ftype == 2:
            channel.on_header(payload)
        elif ftype == 3:
            channel.on_body(payload)
        elif ftype == 8 and not payload:
            raise UnexpectedFrame(_octets(8, payload))  # RabbitMQ's 505: not on a channel
        else:
            raise FrameError(frame_error_text(ftype, payload, "unknown_frame"))

    # -- reading flow control -----------------------------------------------------------

    def stop_reading(self, reason: int) -> None:
        if not self._read_stops and self.transport is not None and self.state != _CLOSED:
            self.transport.pause_reading()
        self._read_stops |= reason

    def resume_reading(self, reason: int) -> None:
        if not self._read_stops & reason:
            return
        self._read_stops &= ~reason
        if not self._read_stops and self.transport is not None and self.state != _CLOSED:
            self.transport.resume_reading()

    @property
    def throttled(self) -> bool:
        return bool(self._read_stops & _STOP_THROTTLE)

    def throttle(self) -> None:
        """A queue this connection publishes to is backing up while its consumers wait for
        the broker (credit flow, as RabbitMQ's): stop reading until it drains, or a moment."""
        if self._read_stops & _STOP_THROTTLE:
            return
        self.stop_reading(_STOP_THROTTLE)
        self._throttle_timer = self.loop.call_later(_THROTTLE_MAX, self.unthrottle)

    def unthrottle(self) -> None:
        if self._throttle_timer is not None:
            self._throttle_timer.cancel()
            self._throttle_timer = None
        self.resume_reading(_STOP_THROTTLE)

    def connection_lost(self, exc: Exception | None) -> None:
        self.state = _CLOSED
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.out.clear()
        self._held = []
        for channel in list(self.channels.values()):
            channel.release()
        self.channels.clear()
        if self.vhost is not None:
            self.vhost.owner_closed(self)
        if self.cluster_id and self.node.cluster is not None:
            self.node.cluster.connection_closed(self.cluster_id)
        self.node.connection_closed(self)

    def pause_writing(self) -> None:
        self.paused = True
        for channel in self.channels.values():
            channel.update_active()

    def resume_writing(self) -> None:
        self.paused = False
        self.resume_reading(_STOP_OUTPUT)
        for channel in self.channels.values():
            channel.update_active()

    # -- output -------------------------------------------------------------------------

    def send(self, data: bytes) -> None:
        self.out.append(data)
        if not self.flush_pending:
            self.flush_pending = True
            self.loop.call_soon(self.flush)

    def send_method(self, channel: int, method: spec.Method) -> None:
        self.send(method_frame(channel, method))

    def schedule_flush(self) -> None:
        if not self.flush_pending:
            self.flush_pending = True
            self.loop.call_soon(self.flush)

    def flush(self) -> None:
        if self.confirm_channels:
            channels, self.confirm_channels = self.confirm_channels, []
            for channel in channels:
                channel.emit_confirms()
        self.flush_pending = False
        self.out_size = 0
        out = self.out
        if not out or self.transport is None or self.state == _CLOSED:
            out.clear()
            return
        data = b"".join(out) if len(out) > 1 else out[0]
        out.clear()
        self.send_oct += len(data)
        self.send_cnt += 1
        self._sent_since_tick = True
        self.transport.write(data)
        if self.paused and self.transport.get_write_buffer_size() > _WRITE_HARD:
            # The client asks (gets, publishes with returns or confirms...) but does not read
            # the answers: hear no more from it until it has read them.
            self.stop_reading(_STOP_OUTPUT)

    # -- handshake ----------------------------------------------------------------------

    def _read_protocol_header(self, data: bytes) -> bytes:
        buf = self._header_buf + data
        if len(buf) < 8:
            if PROTOCOL_HEADER.startswith(buf):
                self._header_buf = buf
                return b""
            return self._bad_header()
        if buf[:8] != PROTOCOL_HEADER and buf[:8] != _LEGACY_0_9_HEADER:
            return self._bad_header()
        self._header_buf = b""
        self.state = _START_OK
        mechanisms = b"PLAIN AMQPLAIN EXTERNAL" if self.peer_cert_cn else b"PLAIN AMQPLAIN"
        self.send_method(0, spec.ConnectionStart(0, 9, self.node.server_properties(), mechanisms, b"en_US"))
        return buf[8:]

    def _bad_header(self) -> bytes:
        # The spec: answer with the header we do speak, then close.
        assert self.transport is not None
        self.transport.write(PROTOCOL_HEADER)
        self.state = _CLOSED
        self.transport.close()
        return b""

    def _handshake_timeout(self) -> None:
        self._timer = None
        if self.state < _OPENED and self.transport is not None:
            log.info("closing connection %s: handshake timeout", self.name)
            self.transport.abort()

    def _on_channel_zero(self, ftype: int, payload: bytes) -> None:
        if ftype == 8 and not payload:
            return  # heartbeat: _last_recv already noted it
        if ftype == 2 or ftype == 3:
            raise UnexpectedFrame(_octets(ftype, payload))  # RabbitMQ's 505: content on channel 0
        if ftype != 1:
            raise FrameError(frame_error_text(ftype, payload, "unknown_frame"))
        try:
            method = decode_method(payload)
        except MalformedTable as exc:  # (client properties) RabbitMQ's reader crashes: no word
            raise ReaderCrash(
                f"the arguments of a connection method do not parse: {exc}"
                " (offsets from the start of the frame payload)"
            ) from None
        state = self.state
        if state == _OPENED:
            if isinstance(method, spec.ConnectionClose):
                self._client_close(method)
            elif isinstance(method, spec.ConnectionCloseOk):
                self._terminate()
            elif isinstance(method, spec.ConnectionUpdateSecret):
                self.send_method(0, spec.ConnectionUpdateSecretOk())
            elif isinstance(method, (spec.ConnectionBlocked, spec.ConnectionUnblocked)):
                pass
            else:
                raise ChannelErrorConnection(  # RabbitMQ's code and text
                    "unexpected method in connection state running", method.INDEX >> 16, method.INDEX & 0xFFFF
                )
            return
        if isinstance(method, spec.ConnectionClose) and state > _START_OK:
            self._client_close(method)
        elif state == _START_OK and isinstance(method, spec.ConnectionStartOk):
            self._on_start_ok(method)
        elif state == _TUNE_OK and isinstance(method, spec.ConnectionTuneOk):
            self._on_tune_ok(method)
        elif state == _OPEN and isinstance(method, spec.ConnectionOpen):
            self._on_open(method)
        else:
            raise CommandInvalid(f"unexpected method {method.NAME} during the handshake", *_ids(method))

    def _on_start_ok(self, method: spec.ConnectionStartOk) -> None:
        self.client_properties = (
            method.client_properties.plain()
            if isinstance(method.client_properties, FieldTable)
            else dict(method.client_properties)
        )
        caps = self.client_properties.get("capabilities")
        self.capabilities = caps if isinstance(caps, dict) else {}
        mechanism = method.mechanism
        response = method.response if isinstance(method.response, bytes) else method.response.encode()
        self.auth_mechanism = mechanism
        users = self.node.broker.users
        if mechanism == "PLAIN":
            # "\0user\0password"; as RabbitMQ 3.10, an authorisation identity is refused.
            parts = response.split(b"\x00")
            if len(parts) != 3 or parts[0]:
                raise SyntaxErrorAMQP("PLAIN response is not \\0user\\0password")
            username, password = parts[1].decode(errors="replace"), parts[2].decode(errors="replace")
            user = users.authenticate(username, password)
        elif mechanism == "AMQPLAIN":
            table = _amqplain(response)
            if "LOGIN" not in table or "PASSWORD" not in table:
                raise SyntaxErrorAMQP("AMQPLAIN auth info is missing LOGIN or PASSWORD field")
            username, password = _text(table["LOGIN"]), _text(table["PASSWORD"])
            user = users.authenticate(username, password)
        elif mechanism == "EXTERNAL" and self.peer_cert_cn:
            # The user named by the verified client certificate's CN; no password.
            username = self.peer_cert_cn
            user = users.users.get(username)
        else:
            raise CommandInvalid(f"unknown authentication mechanism '{mechanism}'")
        if user is None:
            return self._refuse_login(mechanism, username, "invalid credentials")
        if user.name in self.settings.loopback_users and not self.node.is_loopback(self.peer[0]):
            return self._refuse_login(mechanism, username, "can only connect via localhost")
        self.user = user
        self.state = _TUNE_OK
        self.send_method(
            0, spec.ConnectionTune(self.settings.channel_max, self.settings.frame_max, self.settings.heartbeat)
        )

    def _refuse_login(self, mechanism: str, username: str, why: str) -> None:
        log.warning("login refused for user '%s' (connection %s): %s", username, self.name, why)
        if self.capabilities.get("authentication_failure_close"):
            self._send_close(
                AccessRefusedConnection(
                    f"Login was refused using authentication mechanism {mechanism}. For details see the broker logfile."
                )
            )
        else:
            self._abort()

    def _on_tune_ok(self, method: spec.ConnectionTuneOk) -> None:
        # RabbitMQ's rules (validate_negotiated_integer_value): 0 is "no limit", which is
        # more than a server limit allows; a failure is a silent close.
        frame_max = _negotiated("frame_max", method.frame_max, spec.FRAME_MIN_SIZE, self.settings.frame_max)
        channel_max = _negotiated("channel_max", method.channel_max, 0, self.settings.channel_max)
        self.frame_max = frame_max
        self.reader.frame_max = frame_max
        self.channel_max = channel_max or 0xFFFF
        self.heartbeat = method.heartbeat
        self.state = _OPEN

    def _on_open(self, method: spec.ConnectionOpen) -> None:
        assert self.user is not None
        # RabbitMQ's order: node limit, vhost (exists? its connection limit), vhost access.
        self.node.check_node_connection_limit()
        vhost = self.node.broker.vhosts.get(method.virtual_host)
        if vhost is None:
            raise NotAllowed(f"vhost {method.virtual_host} not found", 10, 40)
        self.node.check_vhost_connection_limit(self, vhost)
        self.node.access.check_vhost(self, vhost)
        self.vhost = vhost
        self.state = _OPENED
        if self.node.cluster is not None:
            self.cluster_id = self.node.cluster.connection_id(self)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.heartbeat:
            self._timer = self.loop.call_later(self.heartbeat / 2, self._heartbeat_tick)
        self.send_method(0, spec.ConnectionOpenOk(""))
        if self.node.alarms:
            self.set_blocked(True)

    # -- heartbeats ---------------------------------------------------------------------

    def _heartbeat_tick(self) -> None:
        # Every half interval, as RabbitMQ: a heartbeat when nothing else went out since the
        # last tick, so that an idle client hears from the server at least once an interval.
        self._timer = None
        if self.state != _OPENED:
            return
        now = self.loop.time()
        # Not while blocked by an alarm: the client's heartbeats are in the socket we do not
        # read (RabbitMQ pauses its monitor too); unblocking gives a fresh deadline.
        if now - self._last_recv > 2 * self.heartbeat and not self.blocked:
            log.warning("missed heartbeats from client %s, timeout: %ds", self.name, self.heartbeat)
            assert self.transport is not None
            self.transport.abort()
            return
        if not self._sent_since_tick and not self.out:
            # Written directly: a heartbeat is not traffic, or it would suppress the next one.
            assert self.transport is not None
            self.transport.write(HEARTBEAT_FRAME)
        self._sent_since_tick = False
        self._timer = self.loop.call_later(self.heartbeat / 2, self._heartbeat_tick)

    # -- channels -----------------------------------------------------------------------

    def _on_unopened_channel(self, ftype: int, number: int, payload: bytes) -> None:
        if self.state != _OPENED:
            raise UnexpectedFrame(_octets(ftype, payload))  # RabbitMQ's 505 before connection.open
        if ftype != 1:
            raise UnexpectedFrame("expected method frame, got non method frame instead")
        method = decode_method(payload)
        if not isinstance(method, spec.ChannelOpen):
            # RabbitMQ's text, naming the method that came instead.
            raise ChannelErrorConnection("expected 'channel.open'", method.INDEX >> 16, method.INDEX & 0xFFFF)
        if len(self.channels) >= self.channel_max:
            # As RabbitMQ: channel_max limits how many channels are open, whatever their numbers.
            raise NotAllowed(
                f"number of channels opened ({len(self.channels)}) has reached the negotiated "
                f"channel_max ({self.channel_max})"
            )
        self.channels[number] = self.node.channel_class(self, number)
        self.send_method(number, spec.ChannelOpenOk(b""))

    def channel_closed(self, number: int) -> None:
        self.channels.pop(number, None)

    # -- closing ------------------------------------------------------------------------

    def fail(self, error: AMQPError) -> None:
        """A connection error: send connection.close and wait for close-ok (before tune-ok, or
        for an error RabbitMQ meets by crashing its reader: close the socket without a word)."""
        if self.state >= _CLOSING:
            return
        if not error.hard:
            error = InternalError(error.explanation, error.class_id, error.method_id)
        self._close_reason = error.reply_text
        quiet = self.state < _OPEN or error.silent  # closed without a word, as RabbitMQ
        if error.detail:
            # The client's bytes did not parse: say what and where, to tell a client bug from ours.
            how = "without a word" if quiet else error.reply_text
            log.warning("closing connection %s (%s): %s", self.name, how, error.detail)
        elif quiet:
            log.info("closing connection %s during the handshake: %s", self.name, error.reply_text)
        else:
            log.info("closing connection %s: %s", self.name, error.reply_text)
        if quiet:
            self._abort()
            return
        self._send_close(error)

    def close(self, code: int, text: str) -> None:
        """Server-initiated close (shutdown, management): e.g. 320 CONNECTION_FORCED."""
        error = ConnectionForced(text) if code == 320 else InternalError(text)
        error.reply_code = code
        if self.state == _OPENED:
            self._send_close(error)
        elif self._closed_by_client:
            self._terminate()  # it said goodbye already: no need to wait for its socket
        elif self.transport is not None and self.state < _CLOSING:
            self.transport.close()

    def _abort(self) -> None:
        """Drop the connection without a word (RST, as RabbitMQ's listener lingers 0)."""
        self.state = _CLOSED
        self.out.clear()
        if self.transport is not None:
            self.transport.abort()

    def _send_close(self, error: AMQPError) -> None:
        self.state = _CLOSING
        for channel in list(self.channels.values()):
            channel.release()
        self.channels.clear()
        self.send_method(0, spec.ConnectionClose(error.reply_code, error.reply_text, error.class_id, error.method_id))
        self.flush()
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self.loop.call_later(_CLOSE_OK_TIMEOUT, self._terminate)

    def _client_close(self, method: spec.ConnectionClose) -> None:
        self.state = _CLOSING
        for channel in list(self.channels.values()):
            channel.release()
        self.channels.clear()
        self.send_method(0, spec.ConnectionCloseOk())
        self.flush()
        # As RabbitMQ, the client closes the socket, not the server: a client that still reads
        # after close-ok (amqpstorm does) would take the server's close for an error.  One
        # that keeps it open loses it after its heartbeat interval, or 30 s.
        self._closed_by_client = True
        if self._timer is not None:
            self._timer.cancel()
        linger = min(self.heartbeat, _CLIENT_CLOSE_LINGER) if self.heartbeat else _CLIENT_CLOSE_LINGER
        self._timer = self.loop.call_later(linger, self._terminate)

    def _while_closing(self, ftype: int, number: int, payload: bytes) -> None:
        if number != 0 or ftype != 1:
            return
        try:
            method = decode_method(payload)
        except AMQPError:
            return
        if isinstance(method, spec.ConnectionCloseOk):
            self._terminate()
        elif isinstance(method, spec.ConnectionClose):
            self.send_method(0, spec.ConnectionCloseOk())
            self.flush()
            self._terminate()

    def _terminate(self) -> None:
        if self.transport is not None and self.state != _CLOSED:
            self.flush()
            self.state = _CLOSED
            self.transport.close()

    # -- flow control -------------------------------------------------------------------

    def set_blocked(self, blocked: bool) -> None:
        """Resource alarm raised or cleared.  As RabbitMQ 3.10.8: while an alarm is in force
        a connection is blocked when it next sends content (blocking.py), whether or not it
        published before; connections that only consume keep flowing."""
        if blocked:
            self.alarm_pending = True
            return
        self.alarm_pending = False
        if not self.blocked:
            return
        self.blocked = False
        self._last_recv = self.loop.time()  # the heartbeat monitor resumes with a fresh deadline
        if self.capabilities.get("connection.blocked") and self.state == _OPENED:
            self.send_method(0, spec.ConnectionUnblocked())
        # What was read but held goes first, then the socket (each connection in its turn).
        self.loop.call_soon(self._release_held)

    def _admit(self, frames: list[Frame]) -> list[Frame]:
        """Under an alarm: the frames to dispatch now.  From the first content frame on,
        the frames are held and the connection is blocked."""
        if self._held or self.blocked:
            self._held += frames  # after those held already: frames keep their order
            return []
        if not self.alarm_pending or self.state != _OPENED:
            return frames
        at = first_content(frames, self.channels)
        if at < 0:
            return frames
        self._held = frames[at:]
        self._block()
        return frames[:at]

    def _block(self) -> None:
        self.blocked = True
        self.stop_reading(_STOP_ALARM)
        if self.capabilities.get("connection.blocked"):
            # The reason of the alarms in force now ("low on disk & memory" when both are).
            self.send_method(0, spec.ConnectionBlocked(self.node.alarm_reason()))

    def _release_held(self) -> None:
        if self.state == _CLOSED:
            return
        held, self._held = self._held, []
        try:
            self._run(self._admit(held))
        except Exception as exc:
            self._input_failed(exc)
        if not self.blocked:
            self.resume_reading(_STOP_ALARM)

    # -- information --------------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        return self.state == _OPENED

    @property
    def state_name(self) -> str:
        return {_OPENED: "running", _CLOSING: "closing", _CLOSED: "closed"}.get(self.state, "starting")


def _unmapped(address: str) -> str:
    """IPv4 clients of a dual-stack listener appear as ::ffff:a.b.c.d; show a.b.c.d."""
    return address[7:] if address.startswith("::ffff:") and "." in address else address


def _host(address: str) -> str:
    return f"[{address}]" if ":" in address else address


def _amqplain(response: bytes) -> dict[str, Any]:
    """AMQPLAIN's response is a field table without its length prefix."""
    table, _ = read_table(struct.pack(">I", len(response)) + response, 0, len(response) + 4)
    return table.plain()


def _text(value: Any) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def _octets(ftype: int, payload: bytes) -> str:
    """RabbitMQ's description of a frame in its UNEXPECTED_FRAME texts."""
    if len(payload) <= 16:
        return f"type {ftype}, all octets = {erlang_binary(payload)}"
    return f"type {ftype}, first 16 octets = {erlang_binary(payload[:16])}"


def _ids(method: spec.Method) -> tuple[int, int]:
    return method.INDEX >> 16, method.INDEX & 0xFFFF


def _negotiated(field: str, value: int, minimum: int, maximum: int) -> int:
    """A tune-ok value, checked as RabbitMQ checks it (a NotAllowed before connection.open
    closes the connection silently, logging the reason)."""
    if value and value < minimum:
        raise NotAllowed(f"negotiated {field} = {value} is lower than the minimum allowed value ({minimum})", 10, 31)
    if maximum and (value == 0 or value > maximum):
        shown = f"{value} (no limit)" if value == 0 else str(value)
        raise NotAllowed(f"negotiated {field} = {shown} is higher than the maximum allowed value ({maximum})", 10, 31)
    return value


def _common_name(cert: Any) -> str:
    """The CN of a peer certificate as ``ssl`` decodes it (``{'subject': ((('commonName',
    'alice'),), ...)}``); "" when there is none."""
    if not isinstance(cert, dict):
        return ""
    for rdn in cert.get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                return str(value)
    return ""


__all__ = ["Connection", "SyntaxErrorAMQP"]
