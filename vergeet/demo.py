"""`vergeet demo`: the nightly purge end to end against the sandbox, in under a minute.

Starts the four vendor fakes on loopback with a synthetic population, writes
a config and a ledger in a work folder, and runs the real command-line purge:
a dry run that shows the plan, an apply that the circuit breaker first
refuses (a first run clears years of backlog), the apply forced, and a last
run that finds nothing left to do.
"""
from __future__ import annotations

import tempfile
import time
from datetime import date
from pathlib import Path

from rich.rule import Rule

from vergeet.cli import out, run_purge
from vergeet.config import load_config
from vergeet.rules import load_rules
from vergeet.sandbox import Sandbox
from vergeet.sandbox.population import generate


def _step(title: str) -> None:
    out.print()
    out.print(Rule(f"[bold]{title}[/]"))


def run_demo(*, people: int = 60, seed: int = 7, workdir: str | None = None) -> int:
    """Run the demo; returns the exit code of the last purge."""
    started = time.monotonic()
    today = date.today()
    directory = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="vergeet-demo-"))
    population = generate(people, seed=seed, today=today)
    with Sandbox(population) as sandbox:
        config = load_config(str(sandbox.write_config(directory)))
        rules = load_rules()
        out.print(f"Sandbox: Moneybird, Mailblue, Mollie and Google Calendar fakes on 127.0.0.1 with {people} "
                  f"synthetic people (seed {seed}), each enforcing its vendor's rate limit.", highlight=False)

        _step("1. Dry run: what the retention rules demand today (nothing is changed)")
        run_purge(config, rules, apply=False, day=today, show=12)

        _step("2. Apply: the circuit breaker checks the plan first")
        if run_purge(config, rules, apply=True, day=today, show=0) != 0:
            out.print("A first run clears years of backlog, so the breaker trips. Reviewed the plan above? "
                      "Then force it, as `vergeet purge --apply --force` would:")
            _step("3. Apply, forced")
            run_purge(config, rules, apply=True, day=today, force=True, show=0)

        _step("4. The next night: nothing is left to do")
        code = run_purge(config, rules, apply=False, day=today, show=0)
        calls = sandbox.request_count()
    out.print()
    out.print(f"Vendor requests made: {', '.join(f'{s} {n}' for s, n in calls.items())}.", highlight=False)
    out.print(f"The ledger (record ids and keyed hashes only) is {directory / 'ledger.db'}; "
              f"the config is {directory / 'vergeet.toml'}.", highlight=False)
    out.print(f"Demo finished in {time.monotonic() - started:.0f} s.")
    return code
