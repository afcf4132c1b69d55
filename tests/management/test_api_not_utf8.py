"""Bytes that are not UTF-8 where RabbitMQ takes any bytes (a table key, a long string, a
property's short string) are shown by the management API as RabbitMQ 3.10.8 shows them
(checked with the same frames): a key or short string with U+FFFD for each bad byte, a long
string as "Not UTF-8, base64 is: ...", in queue details, got messages and definitions alike.
The server takes them; the API must not fail on them.
"""

from __future__ import annotations

import struct

import pika.spec

from tests.fuzz.raw import RawClient, frame, method_payload
from tests.management.conftest import Api, q
from tests.server import ServerProcess


def _table(*entries: bytes) -> bytes:
    body = b"".join(entries)
    return struct.pack(">I", len(body)) + body


def test_keys_and_strings_that_are_not_utf8(api: Api, vhost: str, mgmt_server: ServerProcess) -> None:
    arguments = _table(b"\x02\xffkS\x00\x00\x00\x01\xfe")  # {<<255,"k">>: longstr <<254>>}
    properties = b"\x02\xff\xfe" + _table(b"\x02\xc3(S\x00\x00\x00\x01\xff")  # content-type, headers
    with RawClient(mgmt_server.port) as raw:
        raw.handshake(vhost=vhost)
        raw.open_channel()
        declare = method_payload(pika.spec.Queue.Declare(queue="box"))[:-4] + arguments
        publish = method_payload(pika.spec.Basic.Publish(exchange="", routing_key="box"))
        header = struct.pack(">HHQH", 60, 0, 1, 0xA000) + properties
        raw.send(frame(1, 1, declare) + frame(1, 1, publish) + frame(2, 1, header) + frame(3, 1, b"x"))
        raw.expect(pika.spec.Queue.DeclareOk, 1)
        raw.send_method(1, pika.spec.Basic.Qos(prefetch_count=1))
        raw.expect(pika.spec.Basic.QosOk, 1)  # the publish before it was taken

    box = api.ok(f"/api/queues/{q(vhost)}/box")
    assert box["arguments"] == {"\ufffdk": "Not UTF-8, base64 is: /g=="}
    got = api.post(f"/api/queues/{q(vhost)}/box/get", {"count": 1, "ackmode": "ack_requeue_true", "encoding": "auto"})
    assert got.status == 200, got.text
    assert got.json[0]["properties"] == {
        "content_type": "\ufffd\ufffd",
        "headers": {"\ufffd(": "Not UTF-8, base64 is: /w=="},
    }
    exported = api.ok(f"/api/definitions/{q(vhost)}")["queues"]
    assert [queue["arguments"] for queue in exported] == [{"\ufffdk": "Not UTF-8, base64 is: /g=="}]
    assert "Traceback" not in mgmt_server.log
