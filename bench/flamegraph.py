#!/usr/bin/env python3
"""Profile a broker (or warren-perf itself) with py-spy while a scenario runs.

    # flame graph of the WarrenMQ server during transient-16b
    python bench/flamegraph.py --uri amqp://guest:guest@127.0.0.1:5672/%2F --pid auto

    # flame graph of warren-perf's own processes (is the tool ever the limit?)
    python bench/flamegraph.py --target tool --uri ...

The broker is sampled from outside (``py-spy record --pid``, needs ptrace
rights: root, or kernel.yama.ptrace_scope=0); py-spy stops and writes its
output when the scenario ends.  Output defaults to profile/ (git-ignored).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from warrenmq.perf.brokerproc import start_broker, stop_broker  # noqa: E402 - after the path set-up above
from warrenmq.perf.options import resolve_broker_pid  # noqa: E402
from warrenmq.perf.scenarios import SCENARIOS  # noqa: E402


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--uri", default="amqp://guest:guest@127.0.0.1:5672/%2F")
    p.add_argument("--pid", default="auto", help="broker PID, or 'auto' (found by the URI's port)")
    p.add_argument("--start-broker", metavar="CMD", help="start the broker with this command (stopped at the end)")
    p.add_argument("--target", choices=["broker", "tool"], default="broker")
    p.add_argument("--scenario", choices=list(SCENARIOS), default="transient-16b")
    p.add_argument("--duration", type=float, default=10.0, help="seconds for time-based scenarios")
    p.add_argument("--format", choices=["flamegraph", "speedscope", "raw"], default="flamegraph")
    p.add_argument("--rate", type=int, default=100, help="py-spy samples per second")
    p.add_argument("--native", action="store_true", help="include native (C) frames")
    p.add_argument("--out", type=Path, help="output file (default profile/<target>-<scenario>-<time>.<ext>)")
    return p.parse_args(argv)


def py_spy() -> str:
    found = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(found).exists():
        raise SystemExit("py-spy not found: pip install py-spy")
    return found


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    broker = start_broker(args.start_broker, args.uri) if args.start_broker else None
    try:
        if broker is not None and args.pid == "auto":
            args.pid = str(broker.pid)
        return profile(args)
    finally:
        if broker is not None:
            stop_broker(broker)


def profile(args: argparse.Namespace) -> int:
    ext = {"flamegraph": "svg", "speedscope": "json", "raw": "txt"}[args.format]
    out = args.out or ROOT / "profile" / f"{args.target}-{args.scenario}-{time.strftime('%Y%m%d-%H%M%S')}.{ext}"
    out.parent.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    perf = [sys.executable, "-m", "warrenmq.perf", "--scenario", args.scenario, "--uri", args.uri]
    if not {"backlog", "idle_connections"} & set(SCENARIOS[args.scenario].options):
        perf += ["--duration", str(args.duration)]
    spy = [py_spy(), "record", "--subprocesses", "--rate", str(args.rate), "--format", args.format, "-o", str(out)]
    if args.native:
        spy.append("--native")

    if args.target == "tool":
        code = subprocess.call([*spy, "--", *perf], env=env)
    else:
        pid = resolve_broker_pid(args.uri) if args.pid == "auto" else int(args.pid)
        perf += ["--broker-pid", str(pid)]
        recorder = subprocess.Popen([*spy, "--pid", str(pid)])
        try:
            code = subprocess.call(perf, env=env)
        finally:
            # py-spy writes its output when interrupted, like Ctrl-C.
            recorder.send_signal(signal.SIGINT)
            try:
                recorder.wait(timeout=60)
            except subprocess.TimeoutExpired:
                recorder.kill()
                recorder.wait(timeout=10)
    print(f"profile written to {out}" if out.exists() else "py-spy wrote no profile", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
