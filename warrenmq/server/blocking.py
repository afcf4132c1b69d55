"""Where a resource alarm stops a connection's input, as RabbitMQ 3.10.8 does it.

While an alarm is in force every connection is "blocking": it is read as usual until it sends
content (a publish's header or body frame) on an open channel.  That frame blocks it: the
frame and everything after it wait unread, with the rest of the socket, until the alarm
clears.  So a connection that only consumes is never blocked, and once the alarm is raised a
connection takes in at most the bytes of one socket read (already split into frames) and a
partial frame in the frame reader — no message is accepted from it until the alarm clears.

Only the frame lists of connections read while an alarm is in force pass through here: the
hot path pays one flag test per socket read.
"""

from __future__ import annotations

from collections.abc import Container, Sequence
from typing import Any

from warrenmq.amqp.frames import PUBLISH

_CONTENT = (PUBLISH, 2, 3)  # a whole publish, a content header, a body frame


def first_content(frames: Sequence[tuple[Any, ...]], channels: Container[int]) -> int:
    """The index of the first frame that carries content on one of ``channels`` (a whole
    publish, a content header or a body frame), or -1.  Content on channel 0 or on a channel
    that is not open is not a publish: it is left for the connection to refuse."""
    for i, frame in enumerate(frames):
        if frame[0] in _CONTENT and frame[1] in channels:
            return i
    return -1
