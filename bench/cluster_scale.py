#!/usr/bin/env python3
"""The cluster's scale figures (issue 13, item 7), side by side in one run.

1. Classic queues spread over nodes: N independent queues (a producer and a consumer each)
   on one WarrenMQ node, then the same load spread over a 2-node WarrenMQ cluster (queue i
   on node i mod 2, its clients connected there: warren-perf's repeated --uri).
2. A 3-member quorum queue, persistent messages with confirms (warren-perf's quorum-confirm
   scenario): a 3-node WarrenMQ cluster against a 3-node RabbitMQ cluster on this machine
   (bench/rabbit_cluster.sh), the client connected to the queue's leader on both.

    python bench/cluster_scale.py [--duration 10] [--queues 4] [--rabbit] [--name NAME]

Writes bench/results/<name>.md and .json with every figure and the exact commands.
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))

import warren_cluster  # noqa: E402 - tools/ is not a package

RESULTS = ROOT / "bench" / "results"
PERF = [sys.executable, "-m", "warrenmq.perf"]
RABBIT_SCRIPT = ROOT / "bench" / "rabbit_cluster.sh"


def perf(args: list[str]) -> tuple[dict[str, Any], str]:
    cmd = [*PERF, *args, "--json"]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=900)
    try:
        result: dict[str, Any] = json.loads(done.stdout)
    except ValueError:
        raise RuntimeError(f"warren-perf failed ({done.returncode}): {done.stderr[-2000:]}") from None
    # A run with errors (a worker that could not keep up and gave up, say) still reports
    # its figures; the caller reads ``errors``.
    return result, shlex.join(["warren-perf", *args])


def figure(result: dict[str, Any], key: str) -> float:
    return float(result.get("metrics", {}).get(key) or 0.0)


def cluster(nodes: int, standalone: bool) -> warren_cluster.LocalCluster:
    args = warren_cluster.parse_args(["--nodes", str(nodes), *(["--standalone"] if standalone else [])])
    local = warren_cluster.LocalCluster(args)
    local.start()
    return local


def uri(port: int) -> str:
    return f"amqp://guest:guest@127.0.0.1:{port}/%2F"


def sustained(uris: list[str], load: list[str], prefix: str, probe: float) -> dict[str, Any]:
    """The highest total publish rate the consumers keep up with (consumed >= 95% of it),
    found by bisection: without a limit the publishers outrun the consumers and the backlog
    that builds (paged to disk past the memory budget) slows the node down, which would make
    one node look worse than it is."""
    lo, hi = 10_000.0, 600_000.0
    best: dict[str, Any] = {"rate": 0.0, "consume_rate": 0.0, "publish_rate": 0.0, "command": ""}
    for step in range(7):
        rate = (lo + hi) / 2
        args = [*uris, "--queue-prefix", f"{prefix}{step}-", *load, "-z", str(probe), "-r", str(int(rate))]
        result, cmd = perf(args)
        consumed, published = figure(result, "consume_rate"), figure(result, "publish_rate")
        if consumed >= 0.95 * rate and not result.get("errors"):
            lo = rate
            if consumed > best["consume_rate"]:
                best = {"rate": rate, "consume_rate": consumed, "publish_rate": published, "command": cmd}
        else:
            hi = rate
    return best


def classic_spread(duration: float, queues: int) -> dict[str, Any]:
    load = ["-x", str(queues), "-y", str(queues), "--queues", str(queues), "-s", "16", "-q", "1000",
            "--multi-ack-every", "100", "--producer-processes", "2", "--consumer-processes", "2"]  # fmt: skip
    one = cluster(1, standalone=True)
    try:
        single = sustained(["--uri", uri(one.nodes[0].port)], load, "scale1-", duration)
    finally:
        one.stop()
    two = cluster(2, standalone=False)
    try:
        spread = sustained([a for node in two.nodes for a in ("--uri", uri(node.port))], load, "scale2-", duration)
    finally:
        two.stop()
    return {
        "one_node": single,
        "two_nodes": spread,
        "ratio": spread["consume_rate"] / single["consume_rate"] if single["consume_rate"] else 0.0,
    }


def classic_persistent(duration: float, queues: int) -> dict[str, Any]:
    """The same queues with persistent messages and confirms (window 256 per producer): the
    window bounds the backlog, so no rate limit is needed; the confirm rate is the figure."""
    load = ["-x", str(queues), "-y", str(queues), "--queues", str(queues), "-s", "16", "-q", "1000",
            "--multi-ack-every", "100", "-f", "persistent", "-c", "256", "-z", str(duration),
            "--producer-processes", "2", "--consumer-processes", "2"]  # fmt: skip
    out: dict[str, Any] = {}
    for label, nodes in (("one_node", 1), ("two_nodes", 2)):
        local = cluster(nodes, standalone=nodes == 1)
        try:
            uris = [a for node in local.nodes for a in ("--uri", uri(node.port))]
            result, cmd = perf([*uris, "--queue-prefix", f"persist{nodes}-", *load])
        finally:
            local.stop()
        m = result.get("metrics", {})
        out[label] = {
            "confirm_rate": figure(result, "confirm_rate"),
            "consume_rate": figure(result, "consume_rate"),
            "tool_cpu_pct": m.get("tool_cpu_pct"),
            "machine_cpu_pct": m.get("machine_cpu_pct"),
            "command": cmd,
        }
    one, two = out["one_node"]["confirm_rate"], out["two_nodes"]["confirm_rate"]
    out["ratio"] = two / one if one else 0.0
    return out


def quorum(duration: float, rabbit: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    three = cluster(3, standalone=False)
    try:
        # On a fresh cluster the balanced locator puts the first queue's leader on node1
        # (fewest leaders, then by name): the client is on the leader's node, as with RabbitMQ.
        result, cmd = perf(["--uri", uri(three.nodes[0].port), "--scenario", "quorum-confirm", "-z", str(duration),
                            "--queue-prefix", "qw-"])  # fmt: skip
        led = [n.name for n in three.nodes if any("leading quorum queue" in line for line in n.lines)]
        out["warrenmq"] = {
            "confirm_rate": figure(result, "confirm_rate"),
            "consume_rate": figure(result, "consume_rate"),
            "command": cmd,
            "leader": led,
        }
    finally:
        three.stop()
    if rabbit:
        subprocess.run([str(RABBIT_SCRIPT), "start"], check=True, cwd=ROOT, timeout=600)
        try:
            uris = subprocess.run([str(RABBIT_SCRIPT), "uris"], check=True, capture_output=True, text=True).stdout
            first = uris.split()[0]  # RabbitMQ 3.10's quorum leader is client-local: c1
            result, cmd = perf(["--uri", first, "--scenario", "quorum-confirm", "-z", str(duration),
                                "--queue-prefix", "qr-"])  # fmt: skip
            out["rabbitmq"] = {"confirm_rate": figure(result, "confirm_rate"),
                               "consume_rate": figure(result, "consume_rate"), "command": cmd}  # fmt: skip
        finally:
            subprocess.run([str(RABBIT_SCRIPT), "stop"], cwd=ROOT, timeout=600)
        w, r = out["warrenmq"]["confirm_rate"], out["rabbitmq"]["confirm_rate"]
        out["ratio"] = w / r if r else 0.0
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--queues", type=int, default=4)
    parser.add_argument("--rabbit", action="store_true", help="also run the 3-node RabbitMQ quorum queue")
    parser.add_argument("--skip-classic", action="store_true")
    parser.add_argument("--skip-quorum", action="store_true")
    parser.add_argument("--name", default=time.strftime("cluster-scale-%Y%m%d-%H%M"))
    a = parser.parse_args()
    report: dict[str, Any] = {"machine": f"{platform.node()} ({platform.machine()}, 2 cores)", "date": time.ctime()}
    if not a.skip_classic:
        report["classic_spread"] = classic_spread(a.duration, a.queues)
        print(json.dumps(report["classic_spread"], indent=1), flush=True)
        report["classic_persistent"] = classic_persistent(a.duration, a.queues)
        print(json.dumps(report["classic_persistent"], indent=1), flush=True)
    if not a.skip_quorum:
        report["quorum"] = quorum(a.duration, a.rabbit)
        print(json.dumps(report["quorum"], indent=1), flush=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{a.name}.json").write_text(json.dumps(report, indent=1) + "\n")
    lines = [f"# Cluster scale, {report['date']}", "", f"Machine: {report['machine']}.", ""]
    if "classic_spread" in report:
        c = report["classic_spread"]
        lines += [
            f"## {a.queues} classic queues: one node, then spread over two",
            "",
            "The highest publish rate the consumers keep up with (consumed >= 95% of it; bisection",
            f"over {a.duration:g}-second runs with warren-perf's rate limit).",
            "",
            "| run | consumed msg/s | published msg/s |",
            "| --- | ---: | ---: |",
            f"| 1 node | {c['one_node']['consume_rate']:,.0f} | {c['one_node']['publish_rate']:,.0f} |",
            f"| 2-node cluster | {c['two_nodes']['consume_rate']:,.0f} | {c['two_nodes']['publish_rate']:,.0f} |",
            "",
            f"Ratio (2 nodes / 1 node, consumed): **{c['ratio']:.2f}x**",
            "",
            f"    {c['one_node']['command']}",
            f"    {c['two_nodes']['command']}",
            "",
        ]
    if "classic_persistent" in report:
        c = report["classic_persistent"]
        lines += [
            f"## {a.queues} classic queues, persistent messages, confirms (window 256)",
            "",
            "| run | confirmed msg/s | whole machine CPU | warren-perf CPU |",
            "| --- | ---: | ---: | ---: |",
            f"| 1 node | {c['one_node']['confirm_rate']:,.0f} | {c['one_node']['machine_cpu_pct']}% | "
            f"{c['one_node']['tool_cpu_pct']}% |",
            f"| 2-node cluster | {c['two_nodes']['confirm_rate']:,.0f} | {c['two_nodes']['machine_cpu_pct']}% | "
            f"{c['two_nodes']['tool_cpu_pct']}% |",
            "",
            f"Ratio (2 nodes / 1 node, confirmed): **{c['ratio']:.2f}x**",
            "",
            f"    {c['one_node']['command']}",
            f"    {c['two_nodes']['command']}",
            "",
        ]
    if "quorum" in report:
        q = report["quorum"]
        lines += ["## A 3-member quorum queue, persistent, confirms (window 256)", "", "| broker | confirmed msg/s |",
                  "| --- | ---: |", f"| WarrenMQ, 3 nodes | {q['warrenmq']['confirm_rate']:,.0f} |"]  # fmt: skip
        if "rabbitmq" in q:
            lines += [f"| RabbitMQ 3.10.8, 3 nodes | {q['rabbitmq']['confirm_rate']:,.0f} |", "",
                      f"Ratio (WarrenMQ / RabbitMQ): **{q['ratio']:.2f}x**"]  # fmt: skip
        lines += ["", f"    {q['warrenmq']['command']}"]
        if "rabbitmq" in q:
            lines.append(f"    {q['rabbitmq']['command']}")
        lines.append("")
    (RESULTS / f"{a.name}.md").write_text("\n".join(lines))
    print(f"wrote {RESULTS / a.name}.md", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
