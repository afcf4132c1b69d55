"""Small statistics helpers: latency percentiles and rates."""

from __future__ import annotations

from array import array
from collections.abc import Sequence

NS_PER_MS = 1_000_000


def percentile(sorted_values: Sequence[int], q: float) -> int:
    """Nearest-rank percentile of an ascending sequence (q in 0..100)."""
    if not sorted_values:
        raise ValueError("no values")
    rank = max(1, -(-len(sorted_values) * q // 100))  # ceil without floats drifting
    return sorted_values[min(len(sorted_values), int(rank)) - 1]


def latency_summary(latencies_ns: array[int]) -> dict[str, float | int | None]:
    """p50/p99/p99.9/max/mean in milliseconds, or Nones when there are no samples."""
    keys = (
        "latency_min_ms",
        "latency_p50_ms",
        "latency_p99_ms",
        "latency_p999_ms",
        "latency_max_ms",
        "latency_mean_ms",
    )
    if not latencies_ns:
        return {**dict.fromkeys(keys), "latency_samples": 0}
    ordered = sorted(latencies_ns)
    ms = [
        ordered[0],
        percentile(ordered, 50),
        percentile(ordered, 99),
        percentile(ordered, 99.9),
        ordered[-1],
        sum(ordered) / len(ordered),
    ]
    summary: dict[str, float | int | None] = {k: round(v / NS_PER_MS, 4) for k, v in zip(keys, ms, strict=True)}
    summary["latency_samples"] = len(ordered)
    return summary


def rate(count: int, seconds: float) -> float:
    return round(count / seconds, 1) if seconds > 0 else 0.0
