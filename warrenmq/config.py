"""Settings: defaults as RabbitMQ's, overridden by a TOML file, environment and command line.

Every setting has one name used everywhere: ``frame_max`` in the TOML file, ``--frame-max``
on the command line, ``WARREN_FRAME_MAX`` in the environment.  Precedence: command line,
then environment, then file, then default.  An unknown key or a bad value is an error that
names the key.
"""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class ConfigError(ValueError):
    pass


# Settings that are amounts of bytes accept RabbitMQ's units: "50MB", "2GiB", "512k".
BYTE_SETTINGS = frozenset(
    {
        "max_message_size",
        "memory_high_watermark_absolute",
        "disk_free_limit",
        "queue_memory_budget",
        "store_segment_size",
    }
)
_UNITS = {
    "": 1,
    "k": 1024,
    "K": 1024,
    "kiB": 1024,
    "KiB": 1024,
    "M": 1024**2,
    "MiB": 1024**2,
    "G": 1024**3,
    "GiB": 1024**3,
    "TiB": 1024**4,
    "kB": 1000,
    "KB": 1000,
    "MB": 1000**2,
    "GB": 1000**3,
    "TB": 1000**4,
}
_SIZE = re.compile(r"\s*(\d+)\s*([A-Za-z]*)\s*")


def parse_bytes(text: str) -> int:
    found = _SIZE.fullmatch(text)
    if found is None or found.group(2) not in _UNITS:
        raise ValueError(text)
    return int(found.group(1)) * _UNITS[found.group(2)]


@dataclass
class Settings:
    host: str = ""  # all interfaces, as RabbitMQ
    port: int = 5672
    data_dir: str = "./warren-data"
    log_level: str = "info"
    management_host: str = ""
    management_port: int = 15672
    # AMQP negotiation, RabbitMQ's defaults.
    frame_max: int = 131072
    channel_max: int = 2047
    heartbeat: int = 60
    max_message_size: int = 134217728
    handshake_timeout: float = 10.0
    # Delivery acknowledgement timeout (RabbitMQ's consumer_timeout, ms; 0 = off) and what
    # happens on expiry: "close" the channel with 406 (RabbitMQ 3.x) or "cancel" the consumer
    # with basic.cancel and requeue what timed out (RabbitMQ 4.x).
    consumer_timeout: int = 0
    consumer_timeout_action: str = "close"
    # Default user and vhost created on first start.
    default_user: str = "guest"
    default_pass: str = "guest"
    default_vhost: str = "/"
    loopback_users: list[str] = field(default_factory=lambda: ["guest"])
    # Limits.
    max_connections: int = 0  # 0 = unlimited
    consumers_per_channel: int = 0
    # Resource alarms: RabbitMQ's vm_memory_high_watermark is relative (0.4 of RAM).
    memory_high_watermark: float = 0.4
    memory_high_watermark_absolute: int = 0
    disk_free_limit: int = 50_000_000
    # Memory budget for message bodies kept in RAM across all queues (0 = 1/4 of the
    # memory high watermark); beyond it, queues page messages to disk.
    queue_memory_budget: int = 0
    queue_head_limit: int = 20000  # messages a queue keeps in memory before paging
    # Storage.
    store_segment_size: int = 64 * 1024 * 1024
    fsync: bool = True
    # TLS.
    tls_port: int = 5671
    tls_cert: str = ""
    tls_key: str = ""
    tls_ca: str = ""
    tls_verify_peer: bool = False
    tls_fail_if_no_peer_cert: bool = False
    management_tls_port: int = 0
    # Cluster mode (warrenmq/cluster): off unless ``cluster`` names an etcd endpoint.
    cluster: str = ""  # etcd://HOST:PORT[,HOST:PORT...]/CLUSTER_NAME
    node_name: str = ""  # this node's name in the cluster (default: rabbit@<host>)
    cluster_port: int = -1  # the node-to-node link; -1: the AMQP port + 20000 (as RabbitMQ's 25672)
    cluster_advertise: str = ""  # the address other nodes reach this one's link at
    cluster_lease_ttl: int = 3  # s: a node that stops renewing its etcd lease this long is gone
    # Listener knobs.
    use_uvloop: bool = True
    config_file: str = ""

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    def apply(self, values: dict[str, Any], source: str) -> None:
        """Set values from a source (file, env, argv), converting and checking types."""
        fields = {f.name: f for f in dataclasses.fields(self)}
        for key, raw in values.items():
            name = key.replace("-", "_")
            if name not in fields:
                raise ConfigError(f"{source}: unknown setting {key!r}")
            setattr(self, name, _convert(name, raw, getattr(self, name), source))
        self.check(source)

    def check(self, source: str) -> None:
        """Values that have the right type but cannot work."""
        for name in ("port", "tls_port", "management_port", "management_tls_port"):
            value = getattr(self, name)
            if not 0 <= value <= 65535:
                raise ConfigError(f"{source}: bad value {value!r} for setting {name!r}: not a port number")
        for name in ("frame_max", "channel_max", "heartbeat"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{source}: bad value {getattr(self, name)!r} for setting {name!r}: negative")
        if self.frame_max and self.frame_max < 4096:
            raise ConfigError(f"{source}: bad value {self.frame_max!r} for setting 'frame_max': below 4096")
        if self.channel_max > 65535:
            raise ConfigError(f"{source}: bad value {self.channel_max!r} for setting 'channel_max': above 65535")
        if not -1 <= self.cluster_port <= 65535:
            raise ConfigError(
                f"{source}: bad value {self.cluster_port!r} for setting 'cluster_port': not a port number"
            )
        if self.cluster_lease_ttl < 2:
            raise ConfigError(
                f"{source}: bad value {self.cluster_lease_ttl!r} for setting 'cluster_lease_ttl': below 2"
            )
        if self.consumer_timeout < 0:
            raise ConfigError(f"{source}: bad value {self.consumer_timeout!r} for setting 'consumer_timeout': negative")
        if self.consumer_timeout_action not in ("close", "cancel"):
            raise ConfigError(
                f"{source}: bad value {self.consumer_timeout_action!r} for setting 'consumer_timeout_action': "
                "use close or cancel"
            )
        if self.log_level.lower() not in ("debug", "info", "warning", "error"):
            raise ConfigError(f"{source}: bad value {self.log_level!r} for setting 'log_level'")


def _convert(name: str, raw: Any, current: Any, source: str) -> Any:
    try:
        if isinstance(current, bool):
            if isinstance(raw, bool):
                return raw
            text = str(raw).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off"):
                return False
            raise ValueError(raw)
        if isinstance(current, int):
            if isinstance(raw, (bool, float)):
                raise ValueError(raw)
            if isinstance(raw, str) and name in BYTE_SETTINGS:
                return parse_bytes(raw)
            return int(raw)
        if isinstance(current, float):
            return float(raw)
        if isinstance(current, list):
            if isinstance(raw, str):
                return [p for p in (s.strip() for s in raw.split(",")) if p]
            return [str(v) for v in raw]
        return str(raw)
    except (TypeError, ValueError):
        raise ConfigError(f"{source}: bad value {raw!r} for setting {name!r}") from None


def load(argv_values: dict[str, Any], environ: dict[str, str] | None = None) -> Settings:
    """Build settings: defaults < file < environment < command line."""
    environ = dict(os.environ) if environ is None else environ
    settings = Settings()
    config_file = argv_values.get("config_file") or environ.get("WARREN_CONFIG_FILE", "")
    if config_file:
        path = Path(config_file)
        try:
            data = tomllib.loads(path.read_text())
        except OSError as exc:
            raise ConfigError(f"cannot read config file {config_file}: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{config_file}: {exc}") from None
        settings.apply(_flatten(data), str(path))
        settings.config_file = config_file
    env_values = {
        name: environ[f"WARREN_{name.upper()}"]
        for name in Settings.field_names()
        if f"WARREN_{name.upper()}" in environ and name != "config_file"
    }
    settings.apply(env_values, "environment")
    settings.apply({k: v for k, v in argv_values.items() if v is not None and k != "config_file"}, "command line")
    return settings


def _flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Allow TOML sections: ``[tls] cert = ...`` is ``tls_cert``."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}".replace("-", "_")
        if isinstance(value, dict):
            out.update(_flatten(value, name + "_"))
        else:
            out[name] = value
    return out
