"""Configuration: a TOML file, WARREN_* environment variables and command-line flags, with that
precedence reversed (flags win), and an error naming the setting when one is wrong.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pika
import pytest

from tests.fuzz.raw import RawClient
from tests.server import ServerProcess
from warrenmq.config import ConfigError, Settings, load, parse_bytes


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "warren.toml"
    path.write_text(text)
    return str(path)


# -- precedence ----------------------------------------------------------------------------------


def test_defaults_are_rabbitmq_defaults() -> None:
    s = load({}, environ={})
    assert (s.port, s.tls_port, s.frame_max, s.channel_max, s.heartbeat) == (5672, 5671, 131072, 2047, 60)
    assert (s.max_message_size, s.handshake_timeout, s.disk_free_limit) == (134217728, 10.0, 50_000_000)
    assert s.loopback_users == ["guest"] and s.memory_high_watermark == 0.4


def test_file_then_environment_then_command_line(tmp_path: Path) -> None:
    config = write(tmp_path, "port = 1111\nframe_max = 8192\nheartbeat = 5\nchannel_max = 7\n")
    environ = {"WARREN_FRAME_MAX": "16384", "WARREN_HEARTBEAT": "6"}
    s = load({"config_file": config, "heartbeat": "7"}, environ=environ)
    assert s.port == 1111  # the file
    assert s.channel_max == 7  # the file
    assert s.frame_max == 16384  # the environment over the file
    assert s.heartbeat == 7  # the command line over both
    assert s.config_file == config


def test_config_file_from_the_environment(tmp_path: Path) -> None:
    config = write(tmp_path, "port = 2222\n")
    assert load({}, environ={"WARREN_CONFIG_FILE": config}).port == 2222


def test_sections_name_settings_by_prefix(tmp_path: Path) -> None:
    """``[tls] cert = ...`` is ``tls_cert``; dashes are underscores."""
    config = write(
        tmp_path,
        '[tls]\ncert = "/c.pem"\nkey = "/k.pem"\nverify-peer = true\nport = 0\n\n[management]\nport = 15000\n',
    )
    s = load({"config_file": config}, environ={})
    assert (s.tls_cert, s.tls_key, s.tls_verify_peer, s.tls_port) == ("/c.pem", "/k.pem", True, 0)
    assert s.management_port == 15000


def test_value_types(tmp_path: Path) -> None:
    config = write(tmp_path, 'loopback_users = ["guest", "admin"]\nfsync = false\nhandshake_timeout = 2.5\n')
    s = load({"config_file": config}, environ={"WARREN_TLS_VERIFY_PEER": "yes"})
    assert s.loopback_users == ["guest", "admin"] and s.fsync is False and s.handshake_timeout == 2.5
    assert s.tls_verify_peer is True
    assert load({"loopback_users": ""}, environ={}).loopback_users == []
    assert load({"loopback_users": "a, b"}, environ={}).loopback_users == ["a", "b"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1000", 1000),
        ("50MB", 50_000_000),
        ("2GB", 2_000_000_000),
        ("512k", 524288),
        ("1GiB", 1 << 30),
        ("3 M", 3 << 20),
    ],
)
def test_sizes_take_rabbitmq_units(text: str, expected: int) -> None:
    assert parse_bytes(text) == expected
    assert load({"disk_free_limit": text}, environ={}).disk_free_limit == expected


# -- errors name the setting ------------------------------------------------------------------------------


def test_unknown_key_in_the_file_is_named(tmp_path: Path) -> None:
    config = write(tmp_path, "prot = 5672\n")
    with pytest.raises(ConfigError) as info:
        load({"config_file": config}, environ={})
    assert str(info.value) == f"{config}: unknown setting 'prot'"


def test_unknown_key_in_a_section_is_named(tmp_path: Path) -> None:
    config = write(tmp_path, "[tls]\ncertificate = 'x'\n")
    with pytest.raises(ConfigError, match="unknown setting 'tls_certificate'"):
        load({"config_file": config}, environ={})


@pytest.mark.parametrize(
    ("values", "environ", "message"),
    [
        ({"port": "abc"}, {}, "command line: bad value 'abc' for setting 'port'"),
        ({}, {"WARREN_HEARTBEAT": "soon"}, "environment: bad value 'soon' for setting 'heartbeat'"),
        ({}, {"WARREN_FSYNC": "maybe"}, "environment: bad value 'maybe' for setting 'fsync'"),
        ({"disk_free_limit": "5 parsecs"}, {}, "command line: bad value '5 parsecs' for setting 'disk_free_limit'"),
        ({"port": "70000"}, {}, "command line: bad value 70000 for setting 'port': not a port number"),
        ({"frame_max": "100"}, {}, "command line: bad value 100 for setting 'frame_max': below 4096"),
        ({"channel_max": "-1"}, {}, "command line: bad value -1 for setting 'channel_max': negative"),
        ({"log_level": "loud"}, {}, "command line: bad value 'loud' for setting 'log_level'"),
    ],
)
def test_bad_values_are_named(values: dict[str, str], environ: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load(values, environ=environ)
    assert str(info.value) == message


def test_bad_value_in_the_file_is_named(tmp_path: Path) -> None:
    config = write(tmp_path, 'heartbeat = "often"\n')
    with pytest.raises(ConfigError) as info:
        load({"config_file": config}, environ={})
    assert str(info.value) == f"{config}: bad value 'often' for setting 'heartbeat'"


def test_float_for_an_integer_is_refused(tmp_path: Path) -> None:
    config = write(tmp_path, "channel_max = 10.5\n")
    with pytest.raises(ConfigError, match=r"bad value 10\.5 for setting 'channel_max'"):
        load({"config_file": config}, environ={})


def test_toml_syntax_error_names_the_file(tmp_path: Path) -> None:
    config = write(tmp_path, "port = = 1\n")
    with pytest.raises(ConfigError) as info:
        load({"config_file": config}, environ={})
    assert str(info.value).startswith(f"{config}: ")


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"cannot read config file .*nope\.toml"):
        load({"config_file": str(tmp_path / "nope.toml")}, environ={})


def test_every_setting_is_a_flag_and_an_environment_variable() -> None:
    help_text = subprocess.run(
        [sys.executable, "-m", "warrenmq.server.main", "--help"], capture_output=True, text=True, check=True
    ).stdout
    for name in Settings.field_names():
        if name != "config_file":
            assert "--" + name.replace("_", "-") in help_text, name


# -- the real server -----------------------------------------------------------------------------------------


def _server_error(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    done = subprocess.run(
        [sys.executable, "-m", "warrenmq.server.main", "--no-persistence", "--port", "0", *args],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, **(env or {})},
    )
    return done.returncode, done.stderr


def test_server_refuses_to_start_on_a_bad_key(tmp_path: Path) -> None:
    config = write(tmp_path, "[tls]\nkey_file = 'x'\n")
    code, stderr = _server_error("--config", config)
    assert code == 2
    assert stderr.strip() == f"warren-server: {config}: unknown setting 'tls_key_file'"


def test_server_refuses_to_start_on_a_bad_environment_value() -> None:
    code, stderr = _server_error(env={"WARREN_MAX_CONNECTIONS": "lots"})
    assert code == 2
    assert stderr.strip() == "warren-server: environment: bad value 'lots' for setting 'max_connections'"


def test_server_uses_file_environment_and_flags(tmp_path: Path) -> None:
    """frame_max from the file, channel_max from the environment over the file, heartbeat from the
    command line over both: the connection.tune the server sends shows each."""
    config = write(tmp_path, "frame_max = 8192\nchannel_max = 11\nheartbeat = 3\n")
    server = ServerProcess(None, "--config", config, "--heartbeat", "9", env={"WARREN_CHANNEL_MAX": "12"}).start()
    try:
        with RawClient(server.port) as raw:
            tune = raw.start()
            assert (tune.frame_max, tune.channel_max, tune.heartbeat) == (8192, 12, 9)
        with pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", server.port)) as conn:
            assert conn.channel().is_open
    finally:
        server.stop()
    assert "Traceback" not in server.log
