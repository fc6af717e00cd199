"""API calls per nightly run (issue 9, item 3a): a cold run, then a night with 1 % of the records changed.

Runs the nightly purge (applying) twice against the sandbox with 10,000 synthetic people: a cold run on an
empty ledger, then, after changing the given share of every system's records (a third new, a third changed,
a third deleted, as `add_person`/`change`/`remove` on the fakes), a second night. The fakes and the clients
run at a high rate: this counts calls, not time. Prints, per system, the calls each night made (reads and
actions) and, for the second night, the minimum needed and the ratio to it.

The minimum is the night's changed pages plus its actions. Changed records: those new, changed or deleted
since the last read, whoever changed them (the churn, and the previous night's own anonymisations); found
by comparing the fakes' state. Changed pages: per change feed the vendor offers, the pages that hold them:
- Moneybird: per resource (contacts, sales invoices, estimates) its id + version list and a POST per 100
  changed records; and, while acting, per contact anonymised a read of it before its writes (its delivery
  method, SEPA state, contact people and notes decide them, a plan holds only the record's id, and these nights
  start their connectors afresh; `vergeet purge` reuses what it read) and one after them (issue 13: what
  Moneybird still shows is reported, not assumed gone). Those reads count in "made" too;
- Mailblue: every list row, 100 a page (GET /contactLists has no documented filter, and an unsubscription need
  not move the contact's udate, so the rows are read whole), the contacts updated since (filters[updated_after])
  or whose rows changed (by id), 100 a page, and the contacts archived since (the contact archive, 100 a page);
- Mollie: the pages of payments and customers (newest first, 250 a page) that hold a new or changed one, all
  pages of subscriptions (/v2/subscriptions has no sort parameter and no documented order, so no cheaper read
  is correct), plus a mandates listing per customer with a new mandate;
- Google Calendar: the sync-token pages (2,500 a page; deletions come as tombstones), plus for every new
  recurring series, and every series whose start, end or recurrence changed, one events.instances page
  (Google's own expansion of its rule, exceptions and cancellations is what dates a series: a local parse of
  the rule is what went wrong, issue 12; a series changed only in title or guests, as an anonymisation changes
  it, keeps the dates it had), and for a series whose exception (a moved or cancelled instance) changed, its
  instances too (the feed does not say what changed in the exception), with its events.get besides when the
  series itself is not in the feed. Series that are no appointment (birthdays) need neither. A night on which
  a cached `valid_until` has passed also lists what ended since (one page), with a get and an instances page
  per series in it; the churn below, a few seconds after the cold run, lets none pass.
Actions: the DELETE, PATCH and PUT calls the plan made (a Calendar delete is two: the scrub of what Google's
trash would keep, then the delete). The Calendar's token exchange is not counted.
After the incremental night it also counts the records in which its cache differs from a full read: what
the vendors' feeds do not show (Mailblue's purges and restores, Mollie's changes beyond its newest pages) and the
weekly reconciliation catches.

    .venv/bin/python benchmarks/api_calls.py               # incremental nights (after issue 9)
    .venv/bin/python benchmarks/api_calls.py --full        # every night a full read (before)
    .venv/bin/python benchmarks/api_calls.py --people 2000 --share 0.05
"""
from __future__ import annotations

import argparse
import json
import math
import random
import re
import sys
import tempfile
import time
from collections import Counter
from datetime import date
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vergeet import pipeline  # noqa: E402
from vergeet.config import load_config  # noqa: E402
from vergeet.connect import build_connectors, open_ledger  # noqa: E402
from vergeet.rules import load_rules  # noqa: E402
from vergeet.sandbox import Sandbox  # noqa: E402
from vergeet.sandbox.population import generate, newcomer  # noqa: E402

SYSTEMS = ("moneybird", "mailblue", "mollie", "google_calendar")
FAST = {system: (1_000_000, 1.0) for system in SYSTEMS}
PRESENCE = {"moneybird": "moneybird", "mailblue": "mailblue", "mollie": "mollie", "google_calendar": "calendar"}
ACTIONS = ("DELETE", "PATCH", "PUT")


class Feed(NamedTuple):
    """One change feed: the record types and kinds of change it carries on its pages, its page size, the calls
    it costs besides those pages, whether it costs a page when nothing changed, whether its pages are a
    fixed list (Mollie's, newest first) rather than of the changed records alone, and whether it must be read
    whole (a list in no documented order)."""

    record_types: tuple[str, ...]
    page: int
    fixed: int = 0
    empty_page: bool = True
    kinds: tuple[str, ...] = ("new", "changed")
    listed: bool = False
    whole: bool = False


FEEDS = {  # Moneybird shows deletions in its id lists, Calendar as tombstones, Mailblue in its archive; Mollie not
    "moneybird": [Feed((record_type,), 100, fixed=1, empty_page=False)
                  for record_type in ("contact", "sales_invoice", "estimate")],
    # Mailblue: the list rows whole (no documented filter on GET /contactLists; a list status change need not move
    # the contact's udate), the contacts updated since or whose rows changed, and the contacts archived since.
    "mailblue": [Feed(("contact_list",), 100, whole=True), Feed(("contact",), 100),
                 Feed(("archived_contact",), 100, kinds=("new",))],
    # Mollie's /v2/subscriptions (list-all-subscriptions) has no `sort` and no documented order: a page of it
    # says nothing about where the newest are, so the cheapest correct read of its changes is the whole list.
    "mollie": [Feed(("subscription",), 250, whole=True)]
              + [Feed((record_type,), 250, listed=True) for record_type in ("payment", "customer")],
    "google_calendar": [Feed(("event",), 2500, kinds=("new", "changed", "removed"))],
}


def churn(sandbox: Sandbox, share: float, seed: int) -> None:
    """Change `share` of every system's records: a third each new, changed and deleted."""
    rng = random.Random(seed)
    for system, fake in sandbox.fakes.items():
        for number in range(max(1, round(share * sum(map(len, state(fake).values())) / 3))):
            fake.add_person(newcomer(f"N{seed}x{number}", [PRESENCE[system]], seed=rng.random(),
                                     today=sandbox.population.today))
            fake.change(rng.randrange(10**9))
            fake.remove(rng.randrange(10**9))


def state(fake) -> dict[str, dict[str, str]]:
    """Per record type, every live record's id with a fingerprint of its content."""
    if fake.name == "moneybird":
        return {"contact": {i: str(c["version"]) for i, c in fake.contacts.items()},
                **{resource[:-1]: {i: str(d["version"]) for i, d in documents.items()}
                   for resource, documents in fake.documents.items()}}
    if fake.name == "mailblue":
        return {"contact": {i: json.dumps([c, fake.memberships[i]], sort_keys=True) for i, c in fake.contacts.items()},
                "archived_contact": {i: json.dumps(c, sort_keys=True) for i, c in fake.archive.items()}}
    if fake.name == "mollie":
        return {kind: {i: json.dumps(item, sort_keys=True) for i, item in store.items()}
                for kind, store in (("customer", fake.customers), ("payment", fake.payments),
                                    ("subscription", fake.subscriptions), ("mandate", fake.mandates))}
    return {"event": {i: str(s.seq) for i, s in fake.events.items() if s.payload.get("status") != "cancelled"}}


def listed_order(fake) -> dict[str, dict[str, int]]:
    """Mollie's lists: per record type, each record's position (customers and payments newest first; the
    subscriptions in the order the fake serves them, which only their number matters for)."""
    stores = {"customer": fake.customers, "payment": fake.payments}
    order = {kind: {item["id"]: position for position, item in enumerate(fake._newest_first(store.values()))}
             for kind, store in stores.items()}
    return order | {"subscription": {item["id"]: position
                                     for position, item in enumerate(fake._by_id(fake.subscriptions.values()))}}


def differences(before: dict[str, dict[str, str]], after: dict[str, dict[str, str]]) -> dict[tuple, set[str]]:
    """(kind of change, record type) -> the ids."""
    found: dict[tuple, set[str]] = {}
    for record_type in before.keys() | after.keys():
        old, new = before.get(record_type, {}), after.get(record_type, {})
        found["new", record_type] = new.keys() - old.keys()
        found["removed", record_type] = old.keys() - new.keys()
        found["changed", record_type] = {i for i in new.keys() & old.keys() if new[i] != old[i]}
    return {change: ids for change, ids in found.items() if ids}


def series_timing(fake) -> dict[str, str]:
    """Google Calendar: per event, what its instances follow from (start, end, recurrence)."""
    return {event_id: json.dumps([stored.payload.get(k) for k in ("start", "end", "recurrence")], sort_keys=True)
            for event_id, stored in fake.events.items()}


def series_reads(fake, touched: dict[tuple, set[str]], timing_before: dict[str, str]) -> int:
    """Google Calendar: the calls beyond the sync pages that date the series a night touched (module docstring)."""
    events = {event_id: stored.payload for event_id, stored in fake.events.items()}
    timing = series_timing(fake)

    def touched_ids(*kinds: str) -> set[str]:
        return {i for (kind, record_type), ids in touched.items() if record_type == "event" and kind in kinds
                for i in ids}

    masters = {i for i in touched_ids("new", "changed")
               if "recurrence" in events[i] and events[i].get("eventType", "default") == "default"
               and timing_before.get(i) != timing[i]}
    parents = {events[i]["recurringEventId"] for i in touched_ids("new", "changed", "removed")
               if events[i].get("recurringEventId")} - masters
    # a series deleted with its exceptions is a tombstone in the feed: nothing left to date
    parents = {i for i in parents if events.get(i, {}).get("status") != "cancelled"}
    # a parent in the feed itself needs no get, only its instances
    in_feed = parents & touched_ids("new", "changed")
    return len(masters) + len(in_feed) + 2 * len(parents - in_feed)


def minimum_reads(system: str, touched: dict[tuple, set[str]], order: dict[str, dict[str, int]],
                  new_mandates: int) -> int:
    """The changed pages of a night, per the module docstring."""
    pages = new_mandates
    for feed in FEEDS[system]:
        items = [(record_type, i) for (kind, record_type), ids in touched.items()
                 if record_type in feed.record_types and kind in feed.kinds for i in ids]
        if feed.whole:
            holding = sum(math.ceil(len(order[record_type]) / feed.page) for record_type in feed.record_types)
        elif feed.listed:
            holding = len({order[record_type][i] // feed.page for record_type, i in items})
        else:
            holding = math.ceil(len(items) / feed.page)
        pages += feed.fixed + (holding or int(feed.empty_page))
    return pages


def calls(sandbox: Sandbox) -> dict[str, Counter]:
    """Per system, requests so far: reads and actions (the Calendar's token exchange left out)."""
    return {system: Counter("actions" if r.method in ACTIONS else "reads" for r in fake.requests if r.path != "/token")
            for system, fake in sandbox.fakes.items()}


MONEYBIRD_CONTACT = re.compile(r".*/contacts/\d+\.json")


def moneybird_act_reads(fake, since: int) -> tuple[int, int]:
    """Moneybird's reads while acting since request `since`: those made, and those needed (module docstring)."""
    acting = fake.requests[since:]
    anonymised = {r.path for r in acting if r.method == "PATCH" and MONEYBIRD_CONTACT.fullmatch(r.path)}
    return sum(r.method not in ACTIONS for r in acting), 2 * len(anonymised)


def read(config, full: bool) -> dict:
    """A night's reading: every system whole (`full`), or synced into the ledger's cache."""
    connectors = build_connectors(config)
    if full:
        return pipeline.pull_all(connectors)
    with open_ledger(config) as ledger:
        return pipeline.sync_all(connectors, ledger, config.sync)


def act(config, rules, records: dict) -> int:
    """A night's plan, applied; returns its number of actions."""
    connectors = build_connectors(config)
    with open_ledger(config) as ledger:
        plan = pipeline.make_plan(pipeline.identity_view(records, rules), rules, date.today(), ledger)
        pipeline.execute(ledger, pipeline.store_plan(ledger, plan), connectors)
    return len(plan.actions)


def stale_records(config, snapshots: dict) -> dict[str, int]:
    """Per system, records the incremental cache holds differently from a full read of the same data."""
    with open_ledger(config) as ledger:
        full = pipeline.sync_all(build_connectors(config), ledger, config.sync, full=True)
    return {system: sum(1 for key in snapshot.summaries.keys() | full[system].summaries.keys()
                        if snapshot.summaries.get(key) != full[system].summaries.get(key))
            for system, snapshot in snapshots.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--people", type=int, default=10_000)
    parser.add_argument("--share", type=float, default=0.01, help="share of each system's records changed")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--full", action="store_true", help="read every system whole every night (before)")
    args = parser.parse_args()

    rules = load_rules()
    population = generate(args.people, seed=args.seed, today=date.today())
    mode = "full reads every night (before)" if args.full else "incremental nights (after)"
    print(f"API calls: {args.people:,} people (seed {args.seed}), {args.share:.1%} of each system's records "
          f"changed before night 2; {mode}")
    with Sandbox(population, rates=FAST) as sandbox:
        config = load_config(str(sandbox.write_config(Path(tempfile.mkdtemp(prefix="vergeet-calls-")),
                                                      client_rates=FAST)))
        started = time.monotonic()
        seen = {system: state(fake) for system, fake in sandbox.fakes.items()}
        timing_seen = series_timing(sandbox.fakes["google_calendar"])
        cold_actions = act(config, rules, read(config, args.full))
        cold = calls(sandbox)
        cold_time = time.monotonic() - started
        churn(sandbox, args.share, args.seed)
        touched = {system: differences(seen[system], state(fake)) for system, fake in sandbox.fakes.items()}
        mollie = sandbox.fakes["mollie"]
        new_mandates = len({mollie.owner[mandate] for mandate in mollie.mandates.keys() - seen["mollie"]["mandate"]})
        order = listed_order(mollie)
        order["contact_list"] = {row["id"]: position for position, row in enumerate(  # Mailblue's rows, whole
            row for rows in sandbox.fakes["mailblue"].memberships.values() for row in rows)}
        calendar_series = series_reads(sandbox.fakes["google_calendar"], touched["google_calendar"], timing_seen)
        started = time.monotonic()
        records = read(config, args.full)
        night_read = time.monotonic() - started
        night_reads = calls(sandbox)
        stale = None if args.full else stale_records(config, records)  # its calls are not the night's
        checked = calls(sandbox)
        moneybird_acting = len(sandbox.fakes["moneybird"].requests)
        started = time.monotonic()
        night_actions = act(config, rules, records)
        night_time = night_read + time.monotonic() - started
        total = calls(sandbox)
    print(f"cold run: {cold_actions} actions in {cold_time:.1f} s; night 2: {night_actions} actions in "
          f"{night_time:.1f} s")
    print(f"{'system':<16}{'cold reads':>11}{'actions':>9}  {'night reads':>12}{'actions':>9}{'made':>7}"
          f"{'minimum':>9}{'ratio':>9}")
    made_total = minimum_total = 0
    for system in SYSTEMS:
        reads = night_reads[system]["reads"] - cold[system]["reads"]
        actions = total[system]["actions"] - checked[system]["actions"]
        minimum = minimum_reads(system, touched[system], order, new_mandates if system == "mollie" else 0) + actions
        minimum += calendar_series if system == "google_calendar" else 0
        if system == "moneybird":
            made_reads, needed_reads = moneybird_act_reads(sandbox.fakes["moneybird"], moneybird_acting)
            reads, minimum = reads + made_reads, minimum + needed_reads
        made_total += reads + actions
        minimum_total += minimum
        print(f"{system:<16}{cold[system]['reads']:>11}{cold[system]['actions']:>9}  {reads:>12}{actions:>9}"
              f"{reads + actions:>7}{minimum:>9}{(reads + actions) / minimum:>8.2f}x")
    print(f"{'total':<16}{sum(c['reads'] for c in cold.values()):>11}{sum(c['actions'] for c in cold.values()):>9}"
          f"  {'':>12}{'':>9}{made_total:>7}{minimum_total:>9}{made_total / minimum_total:>8.2f}x")
    print("changed since the cold run read (the churn and the cold run's own actions): " + "; ".join(
        f"{system} " + ", ".join(f"{len(ids)} {kind} {record_type}"
                                 for (kind, record_type), ids in sorted(changes.items()))
        for system, changes in touched.items()))
    if stale is not None:
        print("records the incremental cache has differently from a full read, left to the weekly reconciliation: "
              + ", ".join(f"{system} {n}" for system, n in stale.items()))


if __name__ == "__main__":
    main()
