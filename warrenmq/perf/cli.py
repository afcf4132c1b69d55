"""``warren-perf`` entry point."""

from __future__ import annotations

import shlex
import sys
from collections.abc import Sequence

from .options import config_from_args
from .report import render_table
from .runner import execute
from .scenarios import SCENARIOS
from .uri import redact_passwords


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if "--list-scenarios" in args:
        for s in SCENARIOS.values():
            pid = "  (needs --broker-pid)" if s.needs_broker_pid else ""
            print(f"{s.name:<24} {s.description}{pid}")
        return 0
    cfg, _ = config_from_args(args)
    if cfg.scenario and not cfg.json:
        scenario = SCENARIOS[cfg.scenario]
        if scenario.needs_broker_pid and cfg.broker_pid is None:
            print(
                f"note: {cfg.scenario} reports broker memory only with --broker-pid",
                file=sys.stderr,
            )
    command = redact_passwords(shlex.join(["warren-perf", *args]))
    try:
        report = execute(cfg, command=command)
    except KeyboardInterrupt:
        # execute() has already stopped the workers and deleted the queues.
        print("interrupted", file=sys.stderr)
        return 130
    print(report.to_json() if cfg.json else render_table(report))
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
