#!/usr/bin/env python3
"""Run the standard warren-perf scenarios against WarrenMQ and (optionally) RabbitMQ.

Brokers alternate per scenario (W then R, next scenario R then W) so both see
the same machine state.  Writes ``<name>.md`` and ``<name>.json`` to
bench/results/: per scenario the headline figures, WarrenMQ/RabbitMQ ratios
(with which direction is better), broker CPU and RSS, the tool's own CPU, and
the exact command of every run.

Examples:
    # WarrenMQ started by this script on port 5673, RabbitMQ already running on 5682
    python bench/compare.py \\
        --start-warren "warren-server --port 5673 --data-dir /tmp/wd --management-port -1" \\
        --warren-uri amqp://guest:guest@127.0.0.1:5673/%2F \\
        --rabbit-uri amqp://guest:guest@127.0.0.1:5682/%2F --rabbit-pid auto

    # pipeline check in a few seconds, no assertions on speed
    python bench/compare.py --smoke --warren-uri ... [--rabbit-uri ...]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from warrenmq.perf import __version__  # noqa: E402 - after the path set-up above
from warrenmq.perf.brokerproc import start_broker, stop_broker  # noqa: E402
from warrenmq.perf.options import resolve_broker_pid  # noqa: E402
from warrenmq.perf.report import human_bytes  # noqa: E402
from warrenmq.perf.scenarios import SCENARIOS, Headline  # noqa: E402
from warrenmq.perf.uri import redact_passwords  # noqa: E402

SMOKE_SCENARIOS = ["transient-16b", "latency-1000", "queued-memory"]
# Scenarios measured over a duration (the others run to a message or connection count).
TIMED = {name for name, s in SCENARIOS.items() if not {"backlog", "idle_connections"} & set(s.options)}
RESULTS = ROOT / "bench" / "results"


@dataclass
class Broker:
    label: str
    uri: str
    pid: int | None
    process: subprocess.Popen[bytes] | None = None
    product: str = ""


@dataclass
class Run:
    scenario: str
    broker: str
    command: str
    returncode: int
    seconds: float
    report: dict[str, Any] = field(default_factory=dict)
    error: str = ""

    @property
    def metrics(self) -> dict[str, Any]:
        return dict(self.report.get("metrics", {}))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--warren-uri", default="amqp://guest:guest@127.0.0.1:5672/%2F")
    p.add_argument("--warren-pid", default="auto", help="PID of the WarrenMQ server, or 'auto' (found by port)")
    p.add_argument("--start-warren", metavar="CMD", help="start WarrenMQ with this command (stopped at the end)")
    p.add_argument("--rabbit-uri", help="also run every scenario against this RabbitMQ")
    p.add_argument("--rabbit-pid", default="auto", help="PID of beam.smp (pgrep -f beam.smp), or 'auto'")
    p.add_argument(
        "--scenarios",
        help=f"comma-separated (default: all but the quorum ones; smoke: {','.join(SMOKE_SCENARIOS)})",
    )
    p.add_argument("--skip", default="", help="comma-separated scenarios to leave out")
    p.add_argument("--smoke", action="store_true", help="pipeline check: shrunk scenarios, no speed expectations")
    p.add_argument("--duration", type=float, help="seconds for the time-based scenarios (default: theirs, 10)")
    p.add_argument("--out-dir", type=Path, default=RESULTS)
    p.add_argument("--name", help="file name stem (default: compare-<time> or smoke-<time>)")
    p.add_argument("--run-timeout", type=float, default=1800.0, help="seconds before one run is given up")
    return p.parse_args(argv)


def resolve_pid(value: str, uri: str) -> int | None:
    if value == "none":
        return None
    if value == "auto":
        return resolve_broker_pid(uri)
    return int(value)


def redact(text: str) -> str:
    """Hide passwords, except RabbitMQ's well-known guest one (keeps commands runnable)."""
    return text if ":guest@" in text else redact_passwords(text)


def perf_args(scenario: str, broker: Broker, args: argparse.Namespace) -> list[str]:
    argv = ["--scenario", scenario, "--uri", broker.uri, "--json"]
    if broker.pid is not None:
        argv += ["--broker-pid", str(broker.pid)]
    if args.smoke:
        argv.append("--smoke")
    if args.duration and scenario in TIMED:
        argv += ["--duration", str(args.duration)]
    return argv


def run_one(scenario: str, broker: Broker, args: argparse.Namespace) -> Run:
    argv = perf_args(scenario, broker, args)
    shown = ["warren-perf", *[redact(a) for a in argv]]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    started = time.monotonic()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "warrenmq.perf", *argv],
            capture_output=True,
            text=True,
            env=env,
            timeout=args.run_timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return Run(scenario, broker.label, shlex.join(shown), -1, args.run_timeout, error="timed out")
    run = Run(scenario, broker.label, shlex.join(shown), done.returncode, round(time.monotonic() - started, 1))
    try:
        run.report = json.loads(done.stdout)
    except json.JSONDecodeError:
        run.error = (done.stderr or done.stdout).strip()[-2000:] or f"exit code {done.returncode}"
        return run
    if run.report.get("errors"):
        run.error = "; ".join(run.report["errors"])[:2000]
    if run.report.get("broker") and not broker.product:
        broker.product = run.report["broker"]
    return run


def fmt(value: Any, metric: str) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if metric.endswith("_bytes") or metric.startswith("bytes_per"):
        return human_bytes(value)
    if metric.endswith("_ms"):
        return f"{value:,.3f} ms"
    if isinstance(value, float):
        return f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.2f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def _pct(value: Any) -> str:
    return f"{value:.1f}" if isinstance(value, (int, float)) else "-"


def ratio(w: Any, r: Any) -> float | None:
    if isinstance(w, bool) or isinstance(r, bool) or not isinstance(w, (int, float)) or not isinstance(r, (int, float)):
        return None
    # A ratio of noise (a zero or negative RSS delta) would only mislead.
    return round(w / r, 3) if w > 0 and r > 0 else None


def verdict(h: Headline, w: Any, r: Any) -> str:
    q = ratio(w, r)
    if q is None:
        return ""
    if abs(q - 1) < 0.02:
        return "even"
    warren_better = q > 1 if h.better == "higher" else q < 1
    return "WarrenMQ" if warren_better else "RabbitMQ"


def build_markdown(meta: dict[str, Any], runs: list[Run], scenarios: list[str], brokers: list[Broker]) -> str:
    by = {(r.scenario, r.broker): r for r in runs}
    both = len(brokers) == 2
    lines = [f"# warren-perf comparison{' (smoke: pipeline check only)' if meta['smoke'] else ''}", ""]
    lines += [f"- date: {meta['date']}", f"- machine: {meta['machine']}", f"- warren-perf {meta['version']}"]
    lines += [f"- {b.label}: {b.product or '?'} at `{redact(b.uri)}` (pid {b.pid})" for b in brokers]
    lines += [f"- produced by: `{meta['command']}`", ""]
    lines += ["## Headline figures", ""]
    if both:
        lines += ["Ratio = WarrenMQ / RabbitMQ; *better* says which direction wins for that figure.", ""]
        lines += [
            "| scenario | figure | better | WarrenMQ | RabbitMQ | ratio W/R | ahead |",
            "|---|---|---|---:|---:|---:|---|",
        ]
    else:
        lines += ["| scenario | figure | better | WarrenMQ |", "|---|---|---|---:|"]
    for name in scenarios:
        for h in SCENARIOS[name].headlines:
            w = by.get((name, "WarrenMQ"))
            wv = w.metrics.get(h.metric) if w else None
            row = [name, h.label, f"{h.better} is better", fmt(wv, h.metric)]
            if both:
                r = by.get((name, "RabbitMQ"))
                rv = r.metrics.get(h.metric) if r else None
                q = ratio(wv, rv)
                row += [fmt(rv, h.metric), f"{q:.2f}x" if q is not None else "-", verdict(h, wv, rv)]
            lines.append("| " + " | ".join(row) + " |")
    lines += ["", "## Resources (during the measured phase)", ""]
    lines += [
        "| scenario | broker | broker CPU % | broker peak RSS | warren-perf CPU % | run s | errors |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for name in scenarios:
        for b in brokers:
            run = by.get((name, b.label))
            if run is None:
                continue
            m = run.metrics
            cells = [
                name,
                b.label,
                _pct(m.get("broker_cpu_pct")),
                fmt(m.get("broker_rss_peak_bytes"), "broker_rss_peak_bytes"),
                _pct(m.get("tool_cpu_pct")),
                f"{run.seconds:.1f}",
                run.error.replace("|", "/").replace("\n", " ")[:200] or "",
            ]
            lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "CPU: 100% = one core; RSS summed over the broker's process tree.", "", "## Commands", ""]
    lines += [f"- {r.scenario} / {r.broker}: `{r.command}`" for r in runs]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.scenarios:
        scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    else:
        scenarios = SMOKE_SCENARIOS if args.smoke else [n for n, s in SCENARIOS.items() if s.in_bench]
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    unknown = [s for s in [*scenarios, *skip] if s not in SCENARIOS]
    if unknown:
        print(f"unknown scenario(s): {', '.join(unknown)}", file=sys.stderr)
        return 2
    scenarios = [s for s in scenarios if s not in skip]

    warren_process = start_broker(args.start_warren, args.warren_uri) if args.start_warren else None
    try:
        warren_pid = warren_process.pid if warren_process and args.warren_pid == "auto" else None
        warren = Broker("WarrenMQ", args.warren_uri, warren_pid or resolve_pid(args.warren_pid, args.warren_uri))
        brokers = [warren]
        if args.rabbit_uri:
            brokers.append(Broker("RabbitMQ", args.rabbit_uri, resolve_pid(args.rabbit_pid, args.rabbit_uri)))
        runs: list[Run] = []
        for i, name in enumerate(scenarios):
            # Alternate who goes first, so neither always inherits the other's mess.
            for broker in brokers if i % 2 == 0 else brokers[::-1]:
                print(f"{name:<24} {broker.label:<9} ...", end=" ", flush=True, file=sys.stderr)
                run = run_one(name, broker, args)
                runs.append(run)
                status = "ok" if not run.error else f"ERROR: {run.error.splitlines()[0][:120]}"
                print(f"{run.seconds:6.1f}s {status}", file=sys.stderr)
    finally:
        if warren_process is not None:
            stop_broker(warren_process)

    stamp = time.strftime("%Y%m%d-%H%M%S")
    name = args.name or f"{'smoke' if args.smoke else 'compare'}-{stamp}"
    meta = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "machine": f"{platform.node()} {os.cpu_count()} cpus, {platform.machine()}, Python {platform.python_version()}",
        "version": __version__,
        "smoke": args.smoke,
        "command": shlex.join(["python", "bench/compare.py", *[redact(a) for a in (argv or sys.argv[1:])]]),
    }
    args.out_dir.mkdir(parents=True, exist_ok=True)
    md = build_markdown(meta, runs, scenarios, brokers)
    (args.out_dir / f"{name}.md").write_text(md)
    document = {
        "meta": meta,
        "brokers": [{"label": b.label, "uri": redact(b.uri), "pid": b.pid, "product": b.product} for b in brokers],
        "runs": [r.__dict__ for r in runs],
    }
    (args.out_dir / f"{name}.json").write_text(json.dumps(document, indent=2) + "\n")
    print(md)
    print(f"wrote {args.out_dir / name}.md and .json", file=sys.stderr)
    return 1 if any(r.error for r in runs) else 0


if __name__ == "__main__":
    sys.exit(main())
