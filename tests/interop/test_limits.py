"""Limits and overload: each limit refused with RabbitMQ's code and text, and a node that stays up
(and bounded) when clients stall, do not read, or come in great numbers.

Texts are RabbitMQ's: 3.10.8 observed (tests/../research catalogue) or, for the node connection
limit and the consumers-per-channel limit that 3.10 does not have, rabbit_reader.erl /
rabbit_channel.erl of 3.13.7.  The vhost limits were checked against RabbitMQ 3.10.8 through its
management API (/api/vhost-limits) with the same requests.
"""

from __future__ import annotations

import os
import re
import resource
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pika
import pika.exceptions
import pika.spec
import pytest

from tests.fuzz.harness import Harness
from tests.fuzz.raw import Closed, RawClient, frame, header_payload, method_payload
from tests.management.conftest import Api, q, wait_for
from tests.server import ServerProcess


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rss(server: ServerProcess) -> int:
    assert server.proc is not None
    with open(f"/proc/{server.proc.pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def connect(port: int, **kw: Any) -> pika.BlockingConnection:
    return pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", port, connection_attempts=1, **kw))


@pytest.fixture(scope="module")
def limited() -> Iterator[ServerProcess]:
    """A server with small limits of every kind, and its management API."""
    proc = ServerProcess(
        None,
        "--management-port",
        str(free_port()),
        "--max-connections",
        "6",
        "--channel-max",
        "4",
        "--frame-max",
        "8192",
        "--max-message-size",
        "10000",
        "--consumers-per-channel",
        "2",
        "--handshake-timeout",
        "0.5",
    ).start()
    yield proc
    assert proc.stop() == 0, proc.log
    assert "Traceback" not in proc.log, proc.log


# -- connection count --------------------------------------------------------------------------


def test_node_connection_limit_is_530(limited: ServerProcess) -> None:
    """connection.open beyond --max-connections: 530 NOT_ALLOWED (10,40), RabbitMQ 3.13's text
    ("connection refused: node connection limit (N) is reached"); room again once one closes."""
    open_now = len(Api(limited.management_port).ok("/api/connections"))
    held: list[RawClient] = []

    def opened() -> bool:
        raw = RawClient(limited.port)
        try:
            raw.handshake()
        except (AssertionError, Closed):
            raw.close()
            return False
        held.append(raw)
        return True

    try:
        for _ in range(6 - open_now):
            assert opened()
        extra = RawClient(limited.port)
        held.append(extra)
        extra.start()
        extra.send_method(0, pika.spec.Connection.TuneOk(4, 8192, 0))
        extra.send_method(0, pika.spec.Connection.Open("/"))
        assert extra.expect_connection_close() == (
            530,
            "NOT_ALLOWED - connection refused: node connection limit (6) is reached",
            10,
            40,
        )
        held.pop().close()
        held.pop().close()
        wait_for(opened, what="a connection once there is room")
    finally:
        for raw in held:
            raw.close()


# -- channels, frames, messages, consumers -----------------------------------------------------


def test_channel_max_setting_is_offered_and_enforced(limited: ServerProcess) -> None:
    """--channel-max 4: tune offers 4; a fifth open channel is 530 NOT_ALLOWED (0,0)."""
    with RawClient(limited.port) as raw:
        tune = raw.handshake()
        assert tune.channel_max == 4
        for number in (1, 2, 3, 4):
            raw.open_channel(number)
        raw.send_method(5, pika.spec.Channel.Open())
        assert raw.expect_connection_close() == (
            530,
            "NOT_ALLOWED - number of channels opened (4) has reached the negotiated channel_max (4)",
            0,
            0,
        )


@pytest.mark.parametrize(
    "tune_ok",
    [(5, 8192, 0), (0, 8192, 0), (4, 8193, 0), (4, 0, 0), (4, 4095, 0)],
    ids=["channel-max-above", "channel-max-unlimited", "frame-max-above", "frame-max-unlimited", "frame-max-below-min"],
)
def test_tune_ok_beyond_the_limits_is_a_silent_close(limited: ServerProcess, tune_ok: tuple[int, int, int]) -> None:
    """As RabbitMQ 3.10.8 (checked): a tune-ok out of range gets no frame at all, just a close."""
    with RawClient(limited.port) as raw:
        raw.start()
        raw.send_method(0, pika.spec.Connection.TuneOk(*tune_ok))
        raw.send_method(0, pika.spec.Connection.Open("/"))
        assert raw.read_until_closed() == b""


def test_frame_max_setting_is_offered_and_enforced(limited: ServerProcess) -> None:
    """--frame-max 8192: a frame announcing a payload over 8192 is 501 FRAME_ERROR (RabbitMQ
    allows the 8 bytes of framing as slack and quotes frame_max - 8)."""
    with RawClient(limited.port) as raw:
        tune = raw.handshake()
        assert tune.frame_max == 8192
        raw.open_channel()
        raw.send(frame(3, 1, b"")[:3] + (8193).to_bytes(4, "big"))
        assert raw.expect_connection_close() == (
            501,
            "FRAME_ERROR - type 3, all octets = <<>>: {frame_too_large,8193,8184}",
            0,
            0,
        )


def test_message_size_limit_is_406(limited: ServerProcess) -> None:
    """--max-message-size: a bigger body is 406 PRECONDITION_FAILED (60,40) closing the channel;
    one of exactly the limit is taken."""
    name = f"p7-size-{uuid.uuid4().hex[:8]}"
    with connect(limited.port) as conn:
        ch = conn.channel()
        ch.queue_declare(name, auto_delete=True)
        ch.basic_publish("", name, b"x" * 10000)
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
            ch.basic_publish("", name, b"x" * 10001)
            ch.queue_declare(name, passive=True)
        assert (info.value.reply_code, info.value.reply_text) == (
            406,
            "PRECONDITION_FAILED - message size 10001 is larger than configured max size 10000",
        )
        assert conn.channel().queue_declare(name, passive=True).method.message_count == 1


def test_consumers_per_channel_limit_is_530(limited: ServerProcess) -> None:
    """--consumers-per-channel 2 (RabbitMQ's consumer_max_per_channel): a third consumer on a
    channel is a connection error 530 NOT_ALLOWED."""
    name = f"p7-cons-{uuid.uuid4().hex[:8]}"
    conn = connect(limited.port)
    ch = conn.channel()
    ch.queue_declare(name, auto_delete=False)
    ch.basic_consume(name, lambda *a: None)
    ch.basic_consume(name, lambda *a: None)
    conn.channel().basic_consume(name, lambda *a: None)  # another channel has its own count
    with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as info:
        ch.basic_consume(name, lambda *a: None)
    assert info.value.reply_code == 530
    with connect(limited.port) as other:
        other.channel().queue_delete(name)


def test_consumers_per_channel_limit_text(limited: ServerProcess) -> None:
    name = f"p7-cons-{uuid.uuid4().hex[:8]}"
    conn = connect(limited.port)
    ch = conn.channel()
    ch.queue_declare(name, auto_delete=True)
    ch.basic_consume(name, lambda *a: None)
    ch.basic_consume(name, lambda *a: None)
    with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as info:
        ch.basic_consume(name, lambda *a: None)
    assert info.value.reply_text == "NOT_ALLOWED - reached maximum (2) of consumers per channel"


# -- handshake timeout ---------------------------------------------------------------------------


@pytest.mark.parametrize("stall", ["nothing", "half-header", "after-header", "after-start-ok", "after-tune-ok"])
def test_handshake_timeout_drops_stalled_clients(limited: ServerProcess, stall: str) -> None:
    """A client that sends nothing, or stops anywhere before connection.open, is dropped after
    the handshake timeout (0.5 s here, RabbitMQ's default is 10 s) without a frame."""
    with RawClient(limited.port, timeout=5) as raw:
        started = time.monotonic()
        if stall == "half-header":
            raw.send(b"AMQP")
        elif stall != "nothing":
            raw.send(b"AMQP\x00\x00\x09\x01")
            raw.expect(pika.spec.Connection.Start)
            if stall in ("after-start-ok", "after-tune-ok"):
                raw.send_method(0, pika.spec.Connection.StartOk({}, "PLAIN", b"\x00guest\x00guest", "en_US"))
                raw.expect(pika.spec.Connection.Tune)
            if stall == "after-tune-ok":
                raw.send_method(0, pika.spec.Connection.TuneOk(4, 8192, 0))
        assert raw.read_until_closed(timeout=5) == b""
        assert 0.4 < time.monotonic() - started < 4


def test_opened_connection_is_not_timed_out(limited: ServerProcess) -> None:
    with RawClient(limited.port) as raw:
        raw.handshake()
        raw.sock.settimeout(1.0)
        with pytest.raises(TimeoutError):
            raw.sock.recv(1)  # nothing comes and nothing closes in twice the handshake timeout


# -- vhost limits through the management API -----------------------------------------------------


@pytest.fixture
def vhost(limited: ServerProcess) -> Iterator[tuple[Api, str]]:
    api = Api(limited.management_port)
    name = f"p7-lim-{uuid.uuid4().hex[:8]}"
    assert api.put(f"/api/vhosts/{q(name)}").status == 201
    yield api, name
    api.delete(f"/api/vhosts/{q(name)}")


def test_vhost_limits_api(vhost: tuple[Api, str]) -> None:
    """PUT/GET/DELETE /api/vhost-limits as RabbitMQ 3.10.8 answers them (checked)."""
    api, name = vhost
    path = f"/api/vhost-limits/{q(name)}"
    assert api.put(f"{path}/max-connections", {"value": 2}).status == 204
    assert api.put(f"{path}/max-queues", {"value": 1}).status == 204
    assert api.ok(path) == [{"vhost": name, "value": {"max-connections": 2, "max-queues": 1}}]
    assert {"vhost": name, "value": {"max-connections": 2, "max-queues": 1}} in api.ok("/api/vhost-limits")
    reply = api.put(f"{path}/max-foo", {"value": 1})
    assert (reply.status, reply.json) == (
        400,
        {"error": "bad_request", "reason": 'Validation failed\n\nUnrecognised terms [{<<"max-foo">>,1}] in limits\n'},
    )
    reply = api.put(f"{path}/max-queues", {"value": "x"})
    assert (reply.status, reply.json["reason"]) == (
        400,
        'Validation failed\n\nmax-queues should be a number, actually was <<"x">>\n',
    )
    reply = api.put(f"{path}/max-queues", {})
    assert (reply.status, reply.json["reason"]) == (400, "[{key_missing,value}]")
    reply = api.put(f"/api/vhost-limits/p7-no-such-vhost-{uuid.uuid4().hex[:6]}/max-queues", {"value": 1})
    assert (reply.status, reply.json) == (404, {"error": "not_found", "reason": "vhost_not_found"})
    assert api.delete(f"{path}/max-connections").status == 204
    assert api.delete(f"{path}/max-connections").status == 204
    assert api.ok(path) == [{"vhost": name, "value": {"max-queues": 1}}]
    assert api.delete(f"{path}/max-queues").status == 204
    assert api.ok(path) == []


def test_vhost_max_connections(limited: ServerProcess, vhost: tuple[Api, str]) -> None:
    """Beyond the vhost's max-connections: 530 NOT_ALLOWED (10,40) at connection.open; 0 allows
    none; -1 (or no limit) any."""
    api, name = vhost
    assert api.put(f"/api/vhost-limits/{q(name)}/max-connections", {"value": 1}).status == 204
    with RawClient(limited.port) as first, RawClient(limited.port) as second:
        first.handshake(vhost=name)
        second.start()
        second.send_method(0, pika.spec.Connection.TuneOk(4, 8192, 0))
        second.send_method(0, pika.spec.Connection.Open(name))
        assert second.expect_connection_close() == (
            530,
            f"NOT_ALLOWED - access to vhost '{name}' refused for user 'guest': connection limit (1) is reached",
            10,
            40,
        )
    assert api.put(f"/api/vhost-limits/{q(name)}/max-connections", {"value": 0}).status == 204
    with pytest.raises(pika.exceptions.ProbableAccessDeniedError) as info:
        connect(limited.port, virtual_host=name)
    assert "connection limit (0) is reached" in str(info.value)
    assert api.put(f"/api/vhost-limits/{q(name)}/max-connections", {"value": -1}).status == 204
    connect(limited.port, virtual_host=name).close()


def test_vhost_max_queues(limited: ServerProcess, vhost: tuple[Api, str]) -> None:
    """Beyond the vhost's max-queues: 406 PRECONDITION_FAILED (50,10) for a new queue; an
    existing one may still be redeclared; -1 lifts the limit."""
    api, name = vhost
    assert api.put(f"/api/vhost-limits/{q(name)}/max-queues", {"value": 1}).status == 204
    with connect(limited.port, virtual_host=name) as conn:
        ch = conn.channel()
        ch.queue_declare("p7-q1")
        ch.queue_declare("p7-q1")
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
            ch.queue_declare("p7-q2")
        assert (info.value.reply_code, info.value.reply_text) == (
            406,
            f"PRECONDITION_FAILED - cannot declare queue 'p7-q2': queue limit in vhost '{name}' (1) is reached",
        )
        assert api.put(f"/api/vhost-limits/{q(name)}/max-queues", {"value": -1}).status == 204
        conn.channel().queue_declare("p7-q2")


def test_vhost_max_queues_names_the_server_named_queue(limited: ServerProcess, vhost: tuple[Api, str]) -> None:
    api, name = vhost
    assert api.put(f"/api/vhost-limits/{q(name)}/max-queues", {"value": 0}).status == 204
    with connect(limited.port, virtual_host=name) as conn:
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
            conn.channel().queue_declare("", exclusive=True)
        pattern = r"PRECONDITION_FAILED - cannot declare queue 'amq\.gen-[\w-]{22}': queue limit in vhost '.*'"
        assert re.fullmatch(pattern + r" \(0\) is reached", info.value.reply_text), info.value.reply_text


# -- a consumer that does not read -----------------------------------------------------------------


def test_consumer_that_does_not_read_cannot_make_the_broker_buffer(tmp_path: Path) -> None:
    """A no-ack consumer that never reads its socket while a publisher sends 256 MB to its queue:
    deliveries to it pause once its socket buffer is full, so the messages stay in the queue (paged
    to disk) instead of piling up in the broker's memory, and other clients keep working."""
    server = ServerProcess(tmp_path / "data", "--queue-memory-budget", str(16 << 20), "--fsync", "false").start()
    try:
        name = f"p7-stall-{uuid.uuid4().hex[:8]}"
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        sock.connect(("127.0.0.1", server.port))
        stalled = RawClient(server.port, sock=sock)
        stalled.handshake()
        stalled.open_channel()
        stalled.send_method(1, pika.spec.Queue.Declare(queue=name))
        stalled.expect(pika.spec.Queue.DeclareOk, 1)
        stalled.send_method(1, pika.spec.Basic.Consume(queue=name, no_ack=True))
        stalled.expect(pika.spec.Basic.ConsumeOk, 1)
        baseline = rss(server)
        body = b"s" * (64 * 1024)
        count = 4096
        with connect(server.port) as publisher:
            ch = publisher.channel()
            for _ in range(count):
                ch.basic_publish("", name, body)
            with connect(server.port) as other:  # another client is served meanwhile
                och = other.channel()
                och.queue_declare("", exclusive=True)
                ready = ch.queue_declare(name, passive=True).method.message_count
        grown = rss(server) - baseline
        assert ready > count - 1000, f"only {ready} of {count} messages left in the queue"
        assert grown < 160 * 1024 * 1024, f"RSS grew by {grown >> 20} MiB"
        stalled.close()
    finally:
        server.stop()
    assert "Traceback" not in server.log


# -- in process: where the broker stops reading a client -----------------------------------------


def test_a_client_that_does_not_read_its_replies_is_not_read() -> None:
    """Replies a client asks for but does not read (get-oks here) pile up in the socket's buffer;
    once several MiB wait, the broker stops reading that client, until the buffer drains."""
    harness = Harness()
    try:
        conn, transport = harness.opened()
        conn.data_received(frame(1, 1, method_payload(pika.spec.Queue.Declare(queue="p7-reads"))))
        publish = method_payload(pika.spec.Basic.Publish(exchange="", routing_key="p7-reads"))
        body = b"r" * 65536
        conn.data_received((frame(1, 1, publish) + frame(2, 1, header_payload(len(body))) + frame(3, 1, body)) * 300)
        harness.run()
        get = frame(1, 1, method_payload(pika.spec.Basic.Get(queue="p7-reads", no_ack=True)))
        conn.pause_writing()  # the transport's high-water mark was passed: the client does not read
        sent = 0
        while transport.reading and sent < 300:
            conn.data_received(get)
            harness.run()
            transport.unsent = len(transport.written)  # nothing of it left the machine
            sent += 1
        assert not transport.reading, "still reading a client that has 19 MiB waiting for it"
        assert len(transport.written) < 16 * 1024 * 1024
        transport.unsent = 0
        conn.resume_writing()  # it read everything
        assert transport.reading
    finally:
        harness.close()


# -- many connections: the file descriptor limit -----------------------------------------------


def test_fd_soft_limit_is_raised_to_the_hard_limit(tmp_path: Path) -> None:
    """Started with a soft RLIMIT_NOFILE of 1024, the node raises it to the hard limit and holds
    1,500 connections at once."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 2000:
        pytest.skip(f"hard limit {hard} too low")

    def lower() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (1024, hard))

    server = ServerProcess(None)
    cmd = [sys.executable, "-m", "warrenmq.server.main", "--port", "0", "--no-persistence", "--management-port", "0"]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, preexec_fn=lower)
    server.proc = proc
    server._reader = threading.Thread(target=server._read, daemon=True)
    server._reader.start()
    try:
        assert server._ready.wait(20), server.log
        limits = Path(f"/proc/{proc.pid}/limits").read_text()
        soft = int(re.search(r"Max open files\s+(\d+)", limits).group(1))  # type: ignore[union-attr]
        assert soft > 1024 and (hard == resource.RLIM_INFINITY or soft == hard), limits
        assert re.search(r"file descriptor limit: \d+", server.log)
        socks = _open_many(server.port, 1500)
        try:
            assert len(socks) == 1500
        finally:
            for s in socks:
                s.close()
    finally:
        server.stop()
    assert "Traceback" not in server.log


def _open_many(port: int, n: int) -> list[socket.socket]:
    """n connections through connection.open-ok, pipelined (every handshake sent at once)."""
    from tests.fuzz.raw import AMQP_0_9_1

    start_ok = frame(1, 0, method_payload(pika.spec.Connection.StartOk({}, "PLAIN", b"\x00guest\x00guest", "en_US")))
    tune_ok = frame(1, 0, method_payload(pika.spec.Connection.TuneOk(2047, 131072, 0)))
    open_ = frame(1, 0, method_payload(pika.spec.Connection.Open("/")))
    socks = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.sendall(AMQP_0_9_1 + start_ok + tune_ok + open_)
        socks.append(s)
    open_ok = frame(1, 0, method_payload(pika.spec.Connection.OpenOk()))
    for s in socks:
        data = b""
        while not data.endswith(open_ok):
            chunk = s.recv(65536)
            assert chunk, f"connection {len(socks)} closed: {data!r}"
            data += chunk
    return socks


# -- resource alarms: free disk space ----------------------------------------------------------------


def _free(path: Path) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def test_disk_alarm_blocks_publishers_until_space_is_freed(tmp_path: Path) -> None:
    """--disk-free-limit just below the free space; a file taking 3 GB of it raises the disk alarm.
    As RabbitMQ 3.10.8: no one is told when the alarm is raised, not even a connection that has
    published; a connection is blocked by its next publish (connection.blocked "low on disk", its
    socket no longer read), and that publish is not taken until the alarm clears; consumers keep
    draining.  Deleting the file clears the alarm: connection.unblocked to the blocked one, the
    held publish is taken, and publishing goes on."""
    data = tmp_path / "data"
    data.mkdir()
    margin = 1 << 30
    if _free(data) < 4 * margin:
        pytest.skip("needs 4 GB of free disk")
    server = ServerProcess(data, "--disk-free-limit", str(_free(data) - margin), "--fsync", "false").start()
    filler = tmp_path / "filler"
    events: dict[str, list[tuple[str, str]]] = {"early": [], "late": []}

    def publisher(key: str) -> tuple[pika.BlockingConnection, Any]:
        conn = connect(server.port, heartbeat=0)
        conn.add_on_connection_blocked_callback(lambda _c, m: events[key].append(("blocked", m.method.reason)))
        conn.add_on_connection_unblocked_callback(lambda _c, m: events[key].append(("unblocked", "")))
        return conn, conn.channel()

    try:
        name = f"p7-disk-{uuid.uuid4().hex[:8]}"
        early, early_ch = publisher("early")
        late, late_ch = publisher("late")  # no confirms: its publish returns once written
        early_ch.confirm_delivery()
        early_ch.queue_declare(name, durable=True)
        early_ch.basic_publish("", name, b"before")  # confirmed
        with open(filler, "wb") as f:
            os.posix_fallocate(f.fileno(), 0, 3 * margin)
        assert server.wait_for_log("free disk space alarm set", timeout=10), server.log
        deadline = time.monotonic() + 0.5
        while time.monotonic() < deadline:
            early.process_data_events(0.05)
        assert events["early"] == []  # not told: it has not published since
        late_ch.basic_publish("", name, b"during")
        _process_until(late, lambda: events["late"], "connection.blocked")
        assert events["late"] == [("blocked", "low on disk")]
        with connect(server.port) as consumer:  # consumers are not blocked
            cch = consumer.channel()
            assert cch.basic_get(name, auto_ack=True)[2] == b"before"
            assert cch.basic_get(name, auto_ack=True)[0] is None  # "during" waits with its publisher
        filler.unlink()
        assert server.wait_for_log("free disk space alarm cleared", timeout=10), server.log
        _process_until(late, lambda: len(events["late"]) > 1, "connection.unblocked")
        assert events["late"][1] == ("unblocked", "")
        early_ch.basic_publish("", name, b"after")  # confirmed
        assert events["early"] == []
        with connect(server.port) as consumer:
            cch = consumer.channel()
            assert [cch.basic_get(name, auto_ack=True)[2] for _ in range(2)] == [b"during", b"after"]
        early.close()
        late.close()
    finally:
        if filler.exists():
            filler.unlink()
        server.stop()
    assert "Traceback" not in server.log


def _process_until(conn: pika.BlockingConnection, condition: Callable[[], Any], what: str) -> None:
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline, f"no {what}"
        conn.process_data_events(0.05)


def test_disk_free_limit_from_a_toml_file(tmp_path: Path) -> None:
    """The same limit given in the configuration file, with a unit as RabbitMQ writes it."""
    data = tmp_path / "data"
    data.mkdir()
    config = tmp_path / "warren.toml"
    config.write_text('disk_free_limit = "1000000TB"\n')
    server = ServerProcess(data, "--config", str(config)).start()
    try:
        assert server.wait_for_log("free disk space alarm set", timeout=10), server.log
    finally:
        server.stop()
    shutil.rmtree(data, ignore_errors=True)
