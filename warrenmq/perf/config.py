"""The run configuration: one flat, validated, picklable dataclass."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from typing import Any

from .uri import DEFAULT_URI


class ConfigError(ValueError):
    """Options that cannot work together."""


@dataclass
class PerfConfig:
    uri: str = DEFAULT_URI  # the first broker (reports, --broker-pid auto)
    # Several brokers (cluster nodes or separate servers): queue i lives on uris[i % k] and its
    # producers and consumers connect there.  Empty = just ``uri``.
    uris: list[str] = field(default_factory=list)
    producers: int = 1
    consumers: int = 1
    size: int = 12  # PerfTest's default message size
    auto_ack: bool = False
    qos: int = 0  # prefetch count; 0 = unlimited
    multi_ack_every: int = 0  # 0 or 1 = ack each message
    persistent: bool = False
    mandatory: bool = False
    confirm: int | None = None  # outstanding-confirm window
    fanout: int = 0  # >0: a fanout exchange to this many queues
    queues: int = 1
    quorum: bool = False  # x-queue-type: quorum (durable queues, persistent messages)
    rate: float | None = None  # msg/s over all producers
    latency: bool = False  # embed timestamps even without --rate
    duration: float = 10.0
    backlog: int | None = None
    drain: bool = True  # backlog: also consume the backlog
    drain_timeout: float = 30.0
    idle_connections: int | None = None
    hold: float = 2.0  # idle: seconds to hold the connections open
    settle_timeout: float = 10.0  # max seconds to wait for broker RSS to settle
    connect_concurrency: int = 100
    connect_timeout: float = 10.0
    max_failures: int = 100  # idle: stop opening after this many failures
    fd_guard: bool = True  # idle: stay below the broker's fd limit (with broker_pid)
    broker_pid: int | None = None
    json: bool = False
    progress: bool = False
    scenario: str | None = None
    queue_prefix: str = "perf-"
    producer_processes: int | None = None
    consumer_processes: int | None = None
    interval: float = 1.0
    queue_args: dict[str, Any] = field(default_factory=dict)  # x-queue-type=stream, ...
    consumer_args: dict[str, Any] = field(default_factory=dict)  # x-stream-offset=first, ...
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def mode(self) -> str:
        if self.idle_connections is not None:
            return "idle"
        if self.backlog is not None:
            return "backlog"
        return "throughput"

    @property
    def broker_uris(self) -> list[str]:
        return self.uris or [self.uri]

    @property
    def queue_count(self) -> int:
        return self.fanout if self.fanout else self.queues

    @property
    def queue_type(self) -> str:
        return str(self.queue_args.get("x-queue-type", "classic"))

    @property
    def timestamps(self) -> bool:
        return self.rate is not None or self.latency

    @property
    def ack_every(self) -> int:
        return max(1, self.multi_ack_every)

    def processes_for(self, workers: int, requested: int | None) -> int:
        if workers <= 0:
            return 0
        cpus = os.cpu_count() or 1
        return max(1, min(workers, requested if requested else cpus))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def validate(self) -> PerfConfig:
        positive = {
            "size": self.size >= 0,
            "producers": self.producers >= 0,
            "consumers": self.consumers >= 0,
            "queues": self.queues >= 1,
            "fanout": self.fanout >= 0,
            "qos": 0 <= self.qos <= 65535,
            "multi-ack-every": self.multi_ack_every >= 0,
            "duration": self.duration > 0,
            "interval": self.interval > 0,
            "connect-concurrency": self.connect_concurrency >= 1,
        }
        for name, ok in positive.items():
            if not ok:
                raise ConfigError(f"--{name} is out of range")
        if self.confirm is not None and self.confirm < 1:
            raise ConfigError("--confirm needs a window of at least 1")
        if self.rate is not None and self.rate <= 0:
            raise ConfigError("--rate must be positive")
        if self.timestamps and self.size < 8:
            raise ConfigError("latency timestamps need --size of at least 8 bytes")
        if self.fanout and self.queues != 1:
            raise ConfigError("--fanout and --queues cannot be combined")
        if self.backlog is not None and self.backlog < 1:
            raise ConfigError("--backlog needs at least 1 message")
        if self.idle_connections is not None and self.idle_connections < 1:
            raise ConfigError("--idle-connections needs at least 1")
        if self.backlog is not None and self.idle_connections is not None:
            raise ConfigError("--backlog and --idle-connections are separate modes")
        if self.mode != "idle" and self.producers == 0 and self.consumers == 0:
            raise ConfigError("nothing to do: no producers and no consumers")
        if self.mode == "backlog" and self.producers == 0:
            raise ConfigError("--backlog needs at least one producer")
        brokers = len(self.broker_uris)
        if brokers > 1:
            # Every broker gets queues, and every queue's workers connect to its broker.
            if self.fanout:
                raise ConfigError("--fanout works with one --uri")
            if self.mode == "idle":
                raise ConfigError("--idle-connections works with one --uri")
            if self.queues < brokers:
                raise ConfigError(f"{brokers} URIs need --queues {brokers} or more (a queue per broker at least)")
            for role, count in (("producers", self.producers), ("consumers", self.consumers)):
                if 0 < count < brokers:
                    raise ConfigError(f"{brokers} URIs need --{role} 0 or at least {brokers}")
        if self.broker_pid is not None and self.broker_pid <= 0:
            raise ConfigError("--broker-pid must be a process id")
        if self.queue_type == "stream" and (self.auto_ack or not self.qos):
            raise ConfigError("a stream consumer needs manual acks and a --qos (as RabbitMQ requires)")
        reads_backlog = self.mode == "backlog" and self.drain and self.consumers > 0
        from_next = self.consumer_args.get("x-stream-offset", "next") == "next"
        if self.queue_type == "stream" and reads_backlog and from_next:
            raise ConfigError("reading a stream's backlog needs --consumer-args x-stream-offset=first")
        if not self.auto_ack and self.qos and self.multi_ack_every > self.qos:
            # The broker would stop delivering before we ever acked.
            raise ConfigError("--multi-ack-every must not exceed --qos")
        return self
