"""`vergeet demo` and `vergeet sandbox`: vergeet without vendor accounts.

`demo` runs the nightly purge end to end against the sandbox, in under a minute.

Starts the fakes of every system vergeet connects to (seven: the four vendors of the first
user, the mailbox, WooCommerce and Zoom) on loopback with a synthetic population, writes
a config and a ledger in a work folder, and runs the real command-line purge:
a dry run that shows the plan, an apply that the circuit breaker first
refuses (a first run clears years of backlog), the apply forced, and a last
run that finds nothing left to do.

`sandbox` starts the same fakes and leaves them running, with a config
beside them, so every command in the README can be tried by hand.
"""
from __future__ import annotations

import tempfile
import threading
import time
from datetime import date
from pathlib import Path

from rich.rule import Rule

from vergeet.cli import out, run_purge
from vergeet.config import load_config
from vergeet.rules import load_rules
from vergeet.errors import BadInput
from vergeet.plan_text import choose_language
from vergeet.sandbox import SANDBOX_MARK, Sandbox
from vergeet.sandbox.population import generate


def _step(title: str) -> None:
    out.print()
    out.print(Rule(f"[bold]{title}[/]"))


_DEMO = {
    "nl": {"sandbox": "Sandbox: nagemaakte Moneybird, Mailblue, Mollie, Google Calendar, Zoom, WooCommerce en een "
                      "mailbox (IMAP) op 127.0.0.1 met {people} verzonnen mensen (seed {seed}); elke leverancier "
                      "houdt zich aan de limiet van de echte.",
           "1": "1. Proefdraai: wat de bewaarregels vandaag vragen (er verandert niets)",
           "2": "2. Uitvoeren: eerst kijkt de noodrem naar het plan",
           "tripped": "Een eerste run ruimt jaren achterstand op, dus de noodrem slaat aan. Plan hierboven bekeken? "
                      "Voer het dan toch uit, zoals `vergeet purge --apply --force` doet:",
           "3": "3. Uitvoeren, met --force", "4": "4. De volgende nacht: er is niets meer te doen",
           "calls": "Verzoeken aan de leveranciers: {calls}.",
           "where": "Het grootboek (alleen record-id's en versleutelde vingerafdrukken) staat in {ledger}; de "
                    "configuratie in {config}.",
           "done": "Demo klaar in {seconds:.0f} s."},
    "en": {"sandbox": "Sandbox: Moneybird, Mailblue, Mollie, Google Calendar, Zoom and WooCommerce fakes and a "
                      "mailbox (IMAP) on 127.0.0.1 with {people} synthetic people (seed {seed}), each enforcing its "
                      "vendor's rate limit.",
           "1": "1. Dry run: what the retention rules demand today (nothing is changed)",
           "2": "2. Apply: the circuit breaker checks the plan first",
           "tripped": "A first run clears years of backlog, so the breaker trips. Reviewed the plan above? "
                      "Then force it, as `vergeet purge --apply --force` would:",
           "3": "3. Apply, forced", "4": "4. The next night: nothing is left to do",
           "calls": "Vendor requests made: {calls}.",
           "where": "The ledger (record ids and keyed hashes only) is {ledger}; the config is {config}.",
           "done": "Demo finished in {seconds:.0f} s."},
}


def run_demo(*, people: int = 60, seed: int = 7, workdir: str | None = None, lang: str | None = None) -> int:
    """Run the demo in `lang` (default: the locale's); returns the exit code of the last purge."""
    started = time.monotonic()
    today = date.today()
    lang = choose_language(lang)
    words = _DEMO[lang]
    directory = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="vergeet-demo-"))
    population = generate(people, seed=seed, today=today)
    with Sandbox(population) as sandbox:
        config = load_config(str(sandbox.write_config(directory)))
        rules = load_rules()
        out.print(words["sandbox"].format(people=people, seed=seed), highlight=False)

        _step(words["1"])
        run_purge(config, rules, apply=False, day=today, show=3, lang=lang)

        _step(words["2"])
        if run_purge(config, rules, apply=True, day=today, show=0, lang=lang) != 0:
            out.print(words["tripped"])
            _step(words["3"])
            run_purge(config, rules, apply=True, day=today, force=True, show=0, lang=lang)

        _step(words["4"])
        code = run_purge(config, rules, apply=False, day=today, show=0, lang=lang)
        calls = sandbox.request_count()
    out.print()
    out.print(words["calls"].format(calls=", ".join(f"{s} {n}" for s, n in calls.items())), highlight=False)
    out.print(words["where"].format(ledger=directory / "ledger.db", config=directory / "vergeet.toml"),
              highlight=False)
    out.print(words["done"].format(seconds=time.monotonic() - started))
    return code


def run_sandbox(directory: Path, *, people: int = 60, seed: int = 7, stop: threading.Event | None = None) -> int:
    """Serve the vendor fakes on 127.0.0.1 with a config in `directory` until Ctrl-C (or `stop`).

    Each start is a fresh sandbox: the fakes begin from the synthetic population again, so a ledger left by an
    earlier sandbox in `directory` is removed with it. A folder holding anything else's config is refused.
    """
    config_path, ledger = directory / "vergeet.toml", directory / "ledger.db"
    if config_path.exists() and not config_path.read_text(encoding="utf-8").startswith(SANDBOX_MARK):
        raise BadInput(f"--dir: {config_path} is not a sandbox config; give an empty or new folder")
    ledger.unlink(missing_ok=True)
    population = generate(people, seed=seed, today=date.today())
    examples = [p for p in population.people if p.moneybird and p.mailblue][:2]
    with Sandbox(population) as sandbox:
        path = sandbox.write_config(directory.resolve())
        out.print(f"Sandbox running: Moneybird, Mailblue, Mollie, Google Calendar, Zoom and WooCommerce fakes on "
                  f"127.0.0.1 with {people} synthetic people (seed {seed}). Config: {path}", highlight=False, soft_wrap=True)
        out.print("Try, in another terminal:", highlight=False)
        for command in ("rules show", "purge", *(f"find {p.email} --format html" for p in examples),
                        f"erase {examples[0].email}", "requests list", "purge --apply --force"):
            out.print(f"  vergeet --config {path} {command}", highlight=False, soft_wrap=True)
        out.print("Stop with Ctrl-C.", highlight=False)
        try:
            (stop or threading.Event()).wait()
        except KeyboardInterrupt:
            pass
    out.print("Sandbox stopped.")
    return 0
