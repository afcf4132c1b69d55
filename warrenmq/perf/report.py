"""The result of a run, as JSON for machines and a table for people."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

# metric -> (label, unit); the order is the table's order.
METRICS: dict[str, tuple[str, str]] = {
    "duration_s": ("measured for", "s"),
    "publish_rate": ("publish rate", "msg/s"),
    "confirm_rate": ("confirm rate", "msg/s"),
    "consume_rate": ("consume rate", "msg/s"),
    "published": ("published (window)", "msg"),
    "consumed": ("consumed (window)", "msg"),
    "published_total": ("published (total)", "msg"),
    "confirmed_total": ("confirmed (total)", "msg"),
    "nacked_total": ("nacked (total)", "msg"),
    "returned_total": ("returned (total)", "msg"),
    "consumed_total": ("consumed (total)", "msg"),
    "expected_deliveries": ("expected deliveries", "msg"),
    "drained": ("all delivered", ""),
    "latency_samples": ("latency samples", ""),
    "latency_min_ms": ("latency min", "ms"),
    "latency_p50_ms": ("latency p50", "ms"),
    "latency_p99_ms": ("latency p99", "ms"),
    "latency_p999_ms": ("latency p99.9", "ms"),
    "latency_max_ms": ("latency max", "ms"),
    "latency_mean_ms": ("latency mean", "ms"),
    "backlog_messages": ("backlog", "msg"),
    "backlog_publish_s": ("backlog publish time", "s"),
    "backlog_publish_rate": ("backlog publish rate", "msg/s"),
    "drain_s": ("drain time", "s"),
    "drain_rate": ("drain rate", "msg/s"),
    "bytes_per_message": ("broker memory per queued msg", "B"),
    "connections_requested": ("connections requested", ""),
    "broker_fd_limit": ("broker fd limit", ""),
    "broker_fds_before": ("broker fds in use before", ""),
    "connections_capped_at": ("connections capped at (fd guard)", ""),
    "connections_opened": ("connections opened", ""),
    "connections_failed": ("connections failed", ""),
    "connections_skipped": ("connections not tried", ""),
    "connections_lost": ("connections lost while held", ""),
    "connect_s": ("time to open", "s"),
    "connect_rate": ("connections opened/s", "1/s"),
    "bytes_per_connection": ("broker memory per connection", "B"),
    "broker_cpu_pct": ("broker CPU (100% = 1 core)", "%"),
    "broker_rss_before_bytes": ("broker RSS before", "B"),
    "broker_rss_after_bytes": ("broker RSS after", "B"),
    "broker_rss_peak_bytes": ("broker RSS peak", "B"),
    "drain_rss_peak_bytes": ("broker RSS peak while draining", "B"),
    "tool_cpu_pct": ("warren-perf CPU (100% = 1 core)", "%"),
    "drain_broker_cpu_pct": ("broker CPU while draining", "%"),
    "drain_tool_cpu_pct": ("warren-perf CPU while draining", "%"),
    "tool_busiest_cpu_pct": ("busiest warren-perf process CPU", "%"),
    "tool_processes": ("warren-perf processes", ""),
    "machine_cpu_pct": ("whole machine CPU", "%"),
    "other_cpu_pct": ("rest of machine CPU (kernel, others)", "%"),
    "blocked": ("connection.blocked received", ""),
}


@dataclass
class Report:
    mode: str
    scenario: str | None
    broker: str
    uri: str
    command: str
    config: dict[str, Any]
    metrics: dict[str, Any] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # worth knowing, not a failure
    timeline: list[dict[str, float]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=False)


def _format(value: Any, unit: str) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if unit == "B" and isinstance(value, (int, float)):
        return human_bytes(value)
    if isinstance(value, float) and unit == "%":
        text = f"{value:,.1f}"
    elif isinstance(value, float):
        text = f"{value:,.3f}" if abs(value) < 100 else f"{value:,.0f}"
    elif isinstance(value, int):
        text = f"{value:,}"
    else:
        text = str(value)
    return f"{text} {unit}".rstrip() if unit not in ("", "B") else text


def human_bytes(value: float) -> str:
    sign = "-" if value < 0 else ""
    v = abs(float(value))
    for unit in ("B", "KiB", "MiB", "GiB"):
        if v < 1024 or unit == "GiB":
            return f"{sign}{v:,.0f} {unit}" if unit == "B" else f"{sign}{v:,.1f} {unit}"
        v /= 1024
    return f"{sign}{v:,.1f} GiB"  # unreachable, keeps type checkers calm


def render_table(report: Report) -> str:
    title = f"warren-perf {report.scenario or report.mode} against {report.broker or 'broker'} ({report.uri})"
    rows = [
        (label, _format(report.metrics[key], unit))
        for key, (label, unit) in METRICS.items()
        if report.metrics.get(key) is not None
    ]
    width = max((len(label) for label, _ in rows), default=10)
    lines = [title, "-" * len(title)]
    lines += [f"{label:<{width}}  {value}" for label, value in rows]
    if report.notes:
        lines.append("notes:")
        lines += [f"  {n}" for n in report.notes]
    if report.errors:
        lines.append("errors:")
        lines += [f"  {e}" for e in report.errors]
    return "\n".join(lines)
