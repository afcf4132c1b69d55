"""first_content (warrenmq/server/blocking.py): where an alarm stops a connection's input, on
the frame lists the FrameReader really produces."""

from __future__ import annotations

import struct

from warrenmq.amqp.frames import Frame, FrameReader
from warrenmq.server.blocking import first_content


def frame(kind: int, channel: int, payload: bytes) -> bytes:
    return struct.pack(">BHI", kind, channel, len(payload)) + payload + b"\xce"


PUBLISH_METHOD = b"\x00\x3c\x00\x28" + b"\x00\x00" + b"\x00" + b"\x01q" + b"\x00"  # basic.publish "" "q"
HEADER = struct.pack(">HHQ", 60, 0, 3) + b"\x00\x00"
DECLARE = b"\x00\x32\x00\x0a\x00\x00\x01q\x00\x00\x00\x00\x00"  # queue.declare "q"
HEARTBEAT = frame(8, 0, b"")


def frames(data: bytes) -> list[Frame]:
    return FrameReader(131072).feed(data, publishes=True)


def test_a_whole_publish_is_content() -> None:
    publish = frame(1, 1, PUBLISH_METHOD) + frame(2, 1, HEADER) + frame(3, 1, b"abc")
    read = frames(frame(1, 1, DECLARE) + HEARTBEAT + publish)
    assert len(read) == 3  # declare, heartbeat, the publish as one event
    assert first_content(read, {1}) == 2


def test_a_publish_method_alone_is_not_content_its_header_is() -> None:
    assert first_content(frames(frame(1, 1, PUBLISH_METHOD)), {1}) == -1
    assert first_content(frames(frame(1, 1, DECLARE) + frame(2, 1, HEADER) + frame(3, 1, b"abc")), {1}) == 1
    assert first_content(frames(frame(3, 1, b"abc") + frame(1, 1, DECLARE)), {1}) == 0


def test_content_on_channel_zero_or_a_closed_channel_is_left_to_be_refused() -> None:
    assert first_content(frames(frame(2, 0, HEADER)), {1}) == -1
    assert first_content(frames(frame(2, 5, HEADER) + frame(2, 1, HEADER)), {1}) == 1
    whole = frames(frame(1, 7, PUBLISH_METHOD) + frame(2, 7, HEADER) + frame(3, 7, b"abc"))
    assert first_content(whole, {1}) == -1
