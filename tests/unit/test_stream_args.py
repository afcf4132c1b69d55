"""Stream arguments (warrenmq/broker/stream_args.py) and the x-stream-offset header splice
(warrenmq/amqp/header_splice.py).  The refusals are RabbitMQ 3.10.8's, measured there."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from warrenmq.amqp import spec
from warrenmq.amqp.errors import ParserCrash, PreconditionFailed
from warrenmq.amqp.frames import content_header, decode_properties
from warrenmq.amqp.header_splice import add_long_header
from warrenmq.amqp.values import FieldTable
from warrenmq.broker.stream_args import (
    FIRST,
    LAST,
    NEXT,
    OFFSET,
    TIMESTAMP,
    StartAt,
    duration_ms,
    max_age_error,
    retention_from_arguments,
    start_at,
)

DISPLAY = "queue 's' in vhost '/'"
NOW = 1_700_000_000_000


@pytest.mark.parametrize(
    ("text", "ms"),
    [("1s", 1000), ("01s", 1000), ("30m", 1_800_000), ("2h", 7_200_000), ("1D", 86_400_000),
     ("1M", 30 * 86_400_000), ("1Y", 365 * 86_400_000)],
)  # fmt: skip
def test_durations(text: str, ms: int) -> None:
    assert duration_ms(text) == ms


@pytest.mark.parametrize("text", ["5", "0s", "1ms", "1S", "1h30m", "1.5h", "1x", "1y", "1d", "1H", "1h "])
def test_durations_refused(text: str) -> None:
    assert duration_ms(text) is None


@pytest.mark.parametrize("text", ["", "abc", "-1s", " 1s", "FIRST"])
def test_durations_rabbitmq_crashes_on(text: str) -> None:
    with pytest.raises(ParserCrash):
        duration_ms(text)


@pytest.mark.parametrize(
    ("item", "error"),
    [(("S", "1h"), None), (("S", "0D"), "invalid_max_age"), (("S", "10x"), "invalid_max_age"),
     (("I", 10), "{unacceptable_type,signedint}"), (("x", b"1h"), "{unacceptable_type,binary}")],
)  # fmt: skip
def test_max_age(item: tuple[str, Any], error: str | None) -> None:
    assert max_age_error(item) == error


def test_retention_from_arguments() -> None:
    args = FieldTable({"x-max-age": ("S", "2h"), "x-max-length-bytes": ("l", 10_000)})
    retention = retention_from_arguments(args)
    assert (retention.max_age_ms, retention.max_bytes, retention.segment_size) == (7_200_000, 10_000, 500_000_000)
    assert retention_from_arguments(FieldTable({"x-stream-max-segment-size-bytes": ("I", 500)})).segment_size == 500


@pytest.mark.parametrize(
    ("item", "start"),
    [(None, StartAt(NEXT)), (("S", "first"), StartAt(FIRST)), (("S", "last"), StartAt(LAST)),
     (("S", "next"), StartAt(NEXT)), (("x", b"first"), StartAt(FIRST)), (("l", 7), StartAt(OFFSET, 7)),
     (("b", -1), StartAt(OFFSET, 0)), (("T", 1_600_000_000), StartAt(TIMESTAMP, 1_600_000_000_000)),
     (("S", "30m"), StartAt(TIMESTAMP, NOW - 1_800_000))],
)  # fmt: skip
def test_start_at(item: tuple[str, Any] | None, start: StartAt) -> None:
    assert start_at(item, DISPLAY, NOW) == start


def test_start_at_refused_with_rabbitmqs_text() -> None:
    with pytest.raises(PreconditionFailed) as exc:
        start_at(("S", "1x"), DISPLAY, NOW)
    assert exc.value.reply_text == (
        "PRECONDITION_FAILED - invalid arg 'x-stream-offset' for queue 's' in vhost '/': "
        '{invalid_stream_offset_arg,{longstr,<<"1x">>}}'
    )


@pytest.mark.parametrize("item", [("S", "foo"), ("S", "-5s"), ("t", True), ("x", b"1s"), ("F", FieldTable())])
def test_start_at_rabbitmq_crashes_on(item: tuple[str, Any]) -> None:
    with pytest.raises(ParserCrash):
        start_at(item, DISPLAY, NOW)


# -- the header splice -----------------------------------------------------------------

_text = st.text(max_size=20)
_properties = st.builds(
    spec.BasicProperties,
    content_type=st.none() | _text,
    content_encoding=st.none() | _text,
    headers=st.none() | st.dictionaries(st.text(min_size=1, max_size=10), st.integers(-(2**31), 2**31 - 1), max_size=4),
    delivery_mode=st.none() | st.sampled_from([1, 2]),
    message_id=st.none() | _text,
)


@given(_properties, st.integers(0, 2**62))
def test_the_splice_adds_the_offset_and_keeps_every_property(properties: spec.BasicProperties, offset: int) -> None:
    header = content_header(properties, 11)
    spliced = decode_properties(add_long_header(header, "x-stream-offset", offset))
    before = decode_properties(header)
    expected = dict(FieldTable.of(before.headers).plain()) if before.headers else {}
    expected["x-stream-offset"] = offset
    assert dict(FieldTable.of(spliced.headers).plain()) == expected
    assert list(FieldTable.of(spliced.headers))[-1] == "x-stream-offset"  # after the publisher's own, as RabbitMQ
    assert FieldTable.of(spliced.headers)["x-stream-offset"][0] == "l"  # a long, as RabbitMQ sends it
    for field in ("content_type", "content_encoding", "delivery_mode", "message_id"):
        assert getattr(spliced, field) == getattr(before, field)
    assert add_long_header(header, "x-stream-offset", offset)[:12] == header[:12]  # class, weight, body size


def test_a_published_x_stream_offset_is_replaced() -> None:
    header = content_header(spec.BasicProperties(headers={"x-stream-offset": "mine", "a": 1}), 0)
    spliced = decode_properties(add_long_header(header, "x-stream-offset", 42))
    assert FieldTable.of(spliced.headers)["x-stream-offset"] == ("l", 42)
    assert FieldTable.of(spliced.headers)["a"][1] == 1
