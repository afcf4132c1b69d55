"""Command-line options and scenario merging."""

from __future__ import annotations

import pytest

from warrenmq.perf.config import ConfigError, PerfConfig
from warrenmq.perf.options import config_from_args, merge
from warrenmq.perf.scenarios import SCENARIOS


def parse(*argv: str) -> PerfConfig:
    cfg, _ = config_from_args(list(argv))
    return cfg


def test_defaults_follow_perftest() -> None:
    cfg = parse()
    assert (cfg.producers, cfg.consumers, cfg.size, cfg.auto_ack, cfg.qos) == (1, 1, 12, False, 0)
    assert cfg.confirm is None and not cfg.persistent and cfg.mode == "throughput"


def test_short_options() -> None:
    cfg = parse("-x", "2", "-y", "3", "-s", "100", "-a", "-q", "50", "-c", "64", "-z", "5", "-f", "persistent")
    assert (cfg.producers, cfg.consumers, cfg.size, cfg.auto_ack, cfg.qos) == (2, 3, 100, True, 50)
    assert (cfg.confirm, cfg.duration, cfg.persistent) == (64, 5.0, True)


def test_long_options() -> None:
    cfg = parse(
        "--uri",
        "amqp://a:b@127.0.0.1:5682/%2F",
        "--producers",
        "4",
        "--consumers",
        "4",
        "--multi-ack-every",
        "10",
        "--qos",
        "100",
        "--queues",
        "8",
        "--rate",
        "500",
        "--duration",
        "2",
        "--broker-pid",
        "1",
        "--json",
    )
    assert cfg.uri.endswith("5682/%2F")
    assert (cfg.multi_ack_every, cfg.queues, cfg.rate, cfg.broker_pid, cfg.json) == (10, 8, 500.0, 1, True)
    assert cfg.timestamps and cfg.queue_count == 8


def test_modes() -> None:
    assert parse("--backlog", "1000").mode == "backlog"
    assert parse("--idle-connections", "10").mode == "idle"
    assert parse("--fanout", "10").queue_count == 10


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_every_scenario_parses(name: str) -> None:
    cfg = parse("--scenario", name)
    assert cfg.scenario == name
    for key, value in SCENARIOS[name].options.items():
        assert getattr(cfg, key) == value


def test_explicit_options_beat_the_scenario() -> None:
    cfg = parse("--scenario", "transient-1k", "-s", "2048", "-z", "3")
    assert (cfg.size, cfg.duration, cfg.auto_ack) == (2048, 3.0, True)


def test_smoke_shrinks_a_scenario_but_options_still_win() -> None:
    assert parse("--scenario", "backlog-1m", "--smoke").backlog == SCENARIOS["backlog-1m"].smoke["backlog"]
    assert parse("--scenario", "backlog-1m", "--smoke", "--backlog", "7").backlog == 7


def test_scenario_values() -> None:
    assert parse("--scenario", "fanout-10").fanout == 10
    cfg = parse("--scenario", "persistent-confirm")
    assert cfg.persistent and cfg.confirm == 256
    cfg = parse("--scenario", "manual-ack-1000-multi")
    assert (cfg.qos, cfg.multi_ack_every, cfg.auto_ack) == (1000, 100, False)


@pytest.mark.parametrize(
    "argv",
    [
        ["-f", "sticky"],
        ["--scenario", "nope"],
        ["-x", "notanumber"],
        ["--broker-pid", "abc"],
    ],
)
def test_usage_errors_exit_2(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        parse(*argv)
    assert exc.value.code == 2


@pytest.mark.parametrize(
    "given",
    [
        {"rate": 100.0, "size": 4},  # no room for a timestamp
        {"fanout": 3, "queues": 2},
        {"confirm": 0},
        {"qos": 10, "multi_ack_every": 20},  # would never ack: deadlock
        {"producers": 0, "consumers": 0},
        {"backlog": 0},
        {"uri": "http://nope"},
        {"broker_pid": "auto", "uri": "amqp://remote.example:5672"},
    ],
)
def test_invalid_combinations(given: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        merge(given)


def test_processes_default_to_cpus() -> None:
    cfg = PerfConfig()
    assert cfg.processes_for(0, None) == 0
    assert cfg.processes_for(1, None) == 1
    assert cfg.processes_for(10, 3) == 3


def test_help_text_renders() -> None:
    """argparse expands % in help strings: the default URI's %2F must be escaped."""
    from warrenmq.perf.options import build_parser

    assert "%2F" in build_parser().format_help()


def test_several_uris_spread_the_queues() -> None:
    a, b = "amqp://guest:guest@127.0.0.1:5691/%2F", "amqp://guest:guest@127.0.0.1:5692/%2F"
    cfg = parse("--uri", a, "--uri", b, "--queues", "4", "-x", "2", "-y", "4")
    assert cfg.uri == a and cfg.broker_uris == [a, b]
    assert parse("--uri", a).uris == [] and parse("--uri", a).broker_uris == [a]


def test_quorum_queue_option_and_scenarios() -> None:
    cfg = parse("--quorum-queue")
    assert cfg.quorum and cfg.persistent
    cfg = parse("--scenario", "quorum-spread", "--uri", "amqp://h1/%2F", "--uri", "amqp://h2/%2F", "--uri", "amqp://h3/")
    assert (cfg.queues, cfg.producers, cfg.consumers, cfg.confirm, cfg.quorum) == (6, 6, 6, 256, True)
    assert len(cfg.broker_uris) == 3
    assert not SCENARIOS["quorum-spread"].in_bench and SCENARIOS["transient-16b"].in_bench


@pytest.mark.parametrize(
    "given",
    [
        {"fanout": 2},
        {"idle_connections": 10},
        {"queues": 1},  # a broker without a queue
        {"queues": 2, "producers": 1},  # a broker without a producer
        {"queues": 2, "producers": 2, "consumers": 1},
    ],
)
def test_several_uris_need_work_for_every_broker(given: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        merge({"uri": ["amqp://h1/%2F", "amqp://h2/%2F"], **given})


def test_queue_and_consumer_arguments_as_perftest_takes_them() -> None:
    queue_args = "x-queue-type=stream,x-max-length-bytes=1000"
    cfg = parse("--queue-args", queue_args, "-ca", "x-stream-offset=first", "-q", "10")
    assert cfg.queue_args == {"x-queue-type": "stream", "x-max-length-bytes": 1000}
    assert cfg.consumer_args == {"x-stream-offset": "first"}
    assert cfg.queue_type == "stream"


def test_a_stream_consumer_needs_manual_acks_and_a_prefetch() -> None:
    with pytest.raises(ConfigError, match="manual acks and a --qos"):
        merge({"queue_args": {"x-queue-type": "stream"}, "auto_ack": True, "qos": 10})
    with pytest.raises(ConfigError, match="manual acks and a --qos"):
        merge({"queue_args": {"x-queue-type": "stream"}})
    assert merge({"scenario": "stream"}).queue_type == "stream"
    with pytest.raises(ConfigError, match="x-stream-offset=first"):
        merge({"queue_args": {"x-queue-type": "stream"}, "qos": 10, "backlog": 100})
    assert merge({"scenario": "stream-read-1m"}).mode == "backlog"
