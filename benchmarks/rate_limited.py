"""Wall time of a nightly run against rate-limited vendors vs the bound their limits set (issue 9, item 3b).

Runs one cold applying nightly purge (read, plan, apply: the heaviest night) against the sandbox with every
fake enforcing its vendor's published limit: Moneybird 150 requests per 5 minutes, Mailblue 5 per second,
Google Calendar 600 per minute, and for Mollie, which publishes no number, the fake's stand-in of 25 per
second (the Mollie client is configured to that; the other clients keep their defaults, the vendors' limits).
Prints per system the calls made, the 429s received and the bound, then the run's wall time against the
largest bound: the systems run concurrently, so the slowest vendor sets the pace.

The bound per system is the earliest its last call may be sent under a sliding window of `limit` calls per
`window` seconds: floor((calls - 1) / limit) * window. That is calls / allowed rate for a vendor used at its
full rate (Mailblue here), but unlike calls / rate it credits the burst a window allows: Moneybird's 150 per
5 minutes would otherwise say a run of 127 calls needs 254 s, while the limit lets them all go at once. The
population (150 people) is chosen so that Moneybird's calls stay within one window: a 151st call would have
to wait five minutes, and the bound, and this script, would take at least that. calls / rate is printed too.

    .venv/bin/python benchmarks/rate_limited.py            # incremental sync, concurrent execution (after)
    .venv/bin/python benchmarks/rate_limited.py --full     # full reads through pull_all (before: sequential)
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vergeet import pipeline  # noqa: E402
from vergeet.config import load_config  # noqa: E402
from vergeet.connect import build_connectors, open_ledger  # noqa: E402
from vergeet.rules import load_rules  # noqa: E402
from vergeet.sandbox import Sandbox  # noqa: E402
from vergeet.sandbox.population import generate  # noqa: E402

MOLLIE_STAND_IN = (25, 1.0)  # what the Mollie fake enforces; Mollie publishes no limit


def nightly_run(config, rules, full: bool) -> int:
    """One applying nightly run, as `vergeet purge --apply --force` makes it; returns its number of actions."""
    connectors = build_connectors(config)
    with open_ledger(config) as ledger:
        records = pipeline.pull_all(connectors) if full else pipeline.sync_all(connectors, ledger, config.sync)
        plan = pipeline.make_plan(pipeline.identity_view(records, rules), rules, date.today(), ledger)
        pipeline.execute(ledger, pipeline.store_plan(ledger, plan), connectors)
    return len(plan.actions)


def window_bound(calls: int, limit: int, window: float) -> float:
    """The earliest the last of `calls` may be sent when at most `limit` go in any `window` seconds."""
    return (calls - 1) // limit * window if calls else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--people", type=int, default=150)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--full", action="store_true", help="read through pull_all, as before incremental sync")
    args = parser.parse_args()

    rules = load_rules()
    population = generate(args.people, seed=args.seed, today=date.today())
    with Sandbox(population) as sandbox:
        path = sandbox.write_config(Path(tempfile.mkdtemp(prefix="vergeet-paced-")),
                                    client_rates={"mollie": MOLLIE_STAND_IN})
        config = load_config(str(path))
        started = time.monotonic()
        actions = nightly_run(config, rules, args.full)
        wall = time.monotonic() - started
        fakes = sandbox.fakes
    mode = "full reads, pull_all (before)" if args.full else "incremental sync (after)"
    print(f"Rate-limited run: {args.people} people (seed {args.seed}), cold night applying {actions} actions; {mode}")
    print(f"{'system':<16}{'limit':>16}{'calls':>7}{'429s':>6}{'bound':>9}{'calls/rate':>12}")
    bounds = {}
    for system, fake in fakes.items():
        calls, limit, window = fake.count(), fake.rate_calls, fake.rate_period
        bounds[system] = window_bound(calls, limit, window)
        print(f"{system:<16}{f'{limit}/{window:g} s':>16}{calls:>7}{fake.count(status=429):>6}"
              f"{bounds[system]:>8.1f}s{calls * window / limit:>11.1f}s")
    slowest = max(bounds, key=bounds.get)
    print(f"wall time {wall:.1f} s; bound {bounds[slowest]:.1f} s ({slowest}); ratio {wall / bounds[slowest]:.2f}x")


if __name__ == "__main__":
    main()
