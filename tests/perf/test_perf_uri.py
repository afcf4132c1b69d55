"""AMQP URI parsing (https://www.rabbitmq.com/uri-spec.html)."""

from __future__ import annotations

import pytest

from warrenmq.perf.uri import DEFAULT_URI, AmqpUri, parse_uri


def test_default_uri() -> None:
    u = parse_uri(DEFAULT_URI)
    assert (u.scheme, u.host, u.port, u.username, u.password, u.vhost) == (
        "amqp",
        "127.0.0.1",
        5672,
        "guest",
        "guest",
        "/",
    )
    assert not u.tls


def test_defaults_when_parts_are_missing() -> None:
    assert parse_uri("amqp://") == AmqpUri()
    u = parse_uri("amqp://broker")
    assert (u.host, u.port, u.username, u.password, u.vhost) == ("broker", 5672, "guest", "guest", "/")


def test_amqps_default_port_and_tls() -> None:
    u = parse_uri("amqps://u:p@secure.example")
    assert u.tls and u.port == 5671 and u.verify


def test_explicit_port_and_ipv6_host() -> None:
    u = parse_uri("amqp://u:p@[::1]:5682/v")
    assert (u.host, u.port, u.vhost) == ("::1", 5682, "v")


@pytest.mark.parametrize(
    ("path", "vhost"),
    [("/%2F", "/"), ("/", "/"), ("", "/"), ("/dev", "dev"), ("/a%2Fb", "a/b"), ("/with%20space", "with space")],
)
def test_vhost_percent_decoding(path: str, vhost: str) -> None:
    assert parse_uri(f"amqp://h{path}").vhost == vhost


def test_plus_in_vhost_is_not_a_space() -> None:
    assert parse_uri("amqp://h/a+b").vhost == "a+b"


def test_credentials_are_percent_decoded() -> None:
    u = parse_uri("amqp://us%40er:p%3Ass%2Fw@h/")
    assert (u.username, u.password) == ("us@er", "p:ss/w")


def test_empty_password() -> None:
    u = parse_uri("amqp://user:@h/")
    assert (u.username, u.password) == ("user", "")


def test_query_parameters() -> None:
    u = parse_uri("amqps://h/?heartbeat=10&frame_max=4096&channel_max=5&connection_timeout=2500&verify=verify_none")
    assert (u.heartbeat, u.frame_max, u.channel_max, u.connection_timeout) == (10, 4096, 5, 2.5)
    assert not u.verify


def test_heartbeats_are_off_by_default() -> None:
    assert parse_uri("amqp://h").heartbeat == 0


@pytest.mark.parametrize(
    "bad",
    ["http://h/", "amqp://h:notaport/", "amqp://h/a/b", "amqp://h/?heartbeat=soon"],
)
def test_bad_uris(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_uri(bad)


def test_redacted_hides_the_password() -> None:
    text = parse_uri("amqp://user:secret@h:1234/%2F").redacted()
    assert "secret" not in text and text == "amqp://user:***@h:1234/%2F"


def test_redact_passwords_in_a_command_line() -> None:
    from warrenmq.perf.uri import redact_passwords

    line = "warren-perf --uri amqp://u:s3cret@h:1/%2F --x amqps://v:p@h2/ amqp://h3/"
    assert redact_passwords(line) == "warren-perf --uri amqp://u:***@h:1/%2F --x amqps://v:***@h2/ amqp://h3/"
