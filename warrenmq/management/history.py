"""RabbitMQ's sample series: ``?msg_rates_age=600&msg_rates_incr=5`` adds ``samples`` (with
``avg`` and ``avg_rate``) to each ``message_stats`` counter's details, ``lengths_age`` and
``lengths_incr`` to the ``queue_totals`` ones, as RabbitMQ's /api/overview does::

    "publish_details": {"rate": 12.0, "samples": [{"sample": 240, "timestamp": 1700000005000},
                        {"sample": 180, "timestamp": 1700000000000}], "avg_rate": 12.0, "avg": 210.0}

Samples are newest first, cumulative (a rate is the difference of two over their time apart);
they come from the rates sampler's short history (rates.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from warrenmq.management.rates import Key, Rates

SECTIONS = (("msg_rates", "message_stats"), ("lengths", "queue_totals"))


def add_samples(data: dict[str, Any], rates: Rates, query: Mapping[str, str], keys: list[Key]) -> None:
    """Fill in the series asked for, of the counters summed over ``keys``."""
    for prefix, section in SECTIONS:
        window = _window(query, prefix)
        counters = data.get(section)
        if window is None or not isinstance(counters, dict):
            continue
        age, incr = window
        for name in [k for k in counters if not k.endswith("_details")]:
            details = counters.setdefault(f"{name}_details", {"rate": 0.0})
            details.update(series(rates.samples(keys, name, age, incr)))


def series(samples: list[tuple[int, int]]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "samples": [{"sample": value, "timestamp": at} for at, value in samples],
        "avg": sum(value for _at, value in samples) / len(samples) if samples else 0.0,
        "avg_rate": 0.0,
    }
    if len(samples) > 1:
        (newest_at, newest), (oldest_at, oldest) = samples[0], samples[-1]
        out["avg_rate"] = round((newest - oldest) * 1000 / (newest_at - oldest_at), 1) if newest_at > oldest_at else 0.0
    return out


def _window(query: Mapping[str, str], prefix: str) -> tuple[float, float] | None:
    try:
        age = float(query[f"{prefix}_age"])
        incr = float(query[f"{prefix}_incr"])
    except (KeyError, ValueError):
        return None
    return (age, incr) if age > 0 and incr > 0 else None
