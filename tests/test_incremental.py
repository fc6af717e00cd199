"""Incremental nightly sync: the cache in the ledger, each vendor's change feed, and the plan they lead to.

The property that matters: a night read incrementally plans exactly what a full read of the same vendor data
plans. The fakes change between nights the way a business changes them (`add_person`, `change`, `remove`).
"""
from __future__ import annotations

import math
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors import SYSTEMS as CONNECTED
from connectors import mollie as mollie_connector
from connectors.google_calendar import GoogleCalendarConnector
from vergeet import pipeline
from vergeet.cli import run_purge
from vergeet.config import load_config, parse_config
from vergeet.connect import build_connectors
from vergeet.errors import BadInput
from vergeet.ledger import Ledger
from vergeet.rules import load_rules
from vergeet.sandbox import SANDBOX_PEPPER, Sandbox
from vergeet.sandbox.population import generate, newcomer, phone_formats
from vergeet.sync import sync_system

TODAY = date.today()
NOW = datetime.now(timezone.utc)
RULES = load_rules(Path(__file__).resolve().parents[1] / "retention_rules.toml")
#: the systems whose fakes change between nights, and the name of a newcomer's presence in each
PRESENCE = {"moneybird": "moneybird", "mailblue": "mailblue", "mollie": "mollie", "google_calendar": "calendar",
            "zoom": "zoom", "woocommerce": "woocommerce"}
SYSTEMS = tuple(PRESENCE)
FAST = {system: (10_000, 1.0) for system in CONNECTED}


def connectors_at(sandbox: Sandbox, directory: Path, clock=lambda: NOW) -> dict:
    """The configured connectors, the Calendar's on a fixed clock (its events' dates depend on "now")."""
    config = load_config(str(sandbox.write_config(directory, client_rates=FAST)))
    built = build_connectors(config)
    calendar = config.connectors.google_calendar
    built["google_calendar"] = GoogleCalendarConnector(
        api_endpoint=calendar.api_endpoint, calendar_ids=(calendar.calendar_id,), own_emails=calendar.own_emails,
        credentials_file=str(config.relative_path(calendar.credentials_file)), rate=FAST["google_calendar"],
        clock=clock)
    return built


def ledger() -> Ledger:
    return Ledger("sqlite://", SANDBOX_PEPPER.encode())


def night(connectors: dict, store: Ledger, *, full: bool = False):
    """One night's sync, view and plan."""
    view = pipeline.identity_view(pipeline.sync_all(connectors, store, full=full), RULES)
    return view, pipeline.make_plan(view, RULES, TODAY, store)


def outcome(view, plan) -> tuple:
    """What a night decided, without its person numbers (they follow record order): people as sets of record
    keys, actions, and kept records with their reasons."""
    people = {frozenset(keys) for keys in view.mentions.groupby("person")["key"].agg(frozenset)}
    actions = sorted(zip(plan.actions["key"], plan.actions["action"], plan.actions["fields"].map(tuple),
                         plan.actions["rule_id"], plan.actions["reason"]))
    kept = sorted(zip(plan.kept["key"], plan.kept["rule_id"], plan.kept["exceptions"],
                      plan.kept["retained_until"].astype(str)))
    return people, actions, kept, plan.records_per_system, plan.unidentified


def change(sandbox: Sandbox, system: str, kind: str, pick: int, number: int) -> None:
    fake = sandbox.fakes[system]
    if kind == "new":
        fake.add_person(newcomer(f"N{number}", [PRESENCE[system]], seed=pick, today=TODAY))
    elif kind == "change":
        fake.change(pick)
    else:
        fake.remove(pick)


#: Zoom lists no changes: nights read the last two months (connectors/zoom.py `changes`), so a recording changed
#: or trashed in an older month is seen by the next full read only; a new one is seen the same night
KINDS = {system: ("new",) if system == "zoom" else ("new", "change", "remove") for system in SYSTEMS}
changes = st.lists(st.sampled_from(SYSTEMS).flatmap(lambda system: st.tuples(
    st.just(system), st.sampled_from(KINDS[system]), st.integers(0, 10_000))), min_size=1, max_size=8)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(night_changes=changes)
def test_an_incremental_night_plans_what_a_full_read_plans(tmp_path_factory, night_changes):
    """Every change a vendor's feed shows is seen. Mailblue lists no deletions, but a contact deleted there
    lands in its contact archive, which the nightly read lists (with an Admin's token, as the sandbox's): the
    contact is reported gone and its archived copy comes in."""
    with Sandbox(generate(30, seed=5, today=TODAY), rates=FAST) as sandbox:
        connectors = connectors_at(sandbox, tmp_path_factory.mktemp("night"))
        cached = ledger()
        night(connectors, cached)
        for number, (system, kind, pick) in enumerate(night_changes):
            change(sandbox, system, kind, pick, number)
        expected = outcome(*night(connectors, ledger()))

        assert outcome(*night(connectors, cached)) == expected
        assert outcome(*night(connectors, cached, full=True)) == outcome(*night(connectors, ledger()))


def test_a_sync_token_google_no_longer_accepts_falls_back_to_a_full_read(tmp_path):
    with Sandbox(generate(20, seed=2, today=TODAY), rates=FAST) as sandbox:
        connectors = connectors_at(sandbox, tmp_path)
        calendar = sandbox.fakes["google_calendar"]
        cached = ledger()
        pipeline.sync_all(connectors, cached)
        calendar.expire_sync_tokens()
        calendar.remove(3)
        calendar.add_person(newcomer("N1", ["calendar"], seed=1, today=TODAY))
        lists = lambda: [r for r in calendar.requests if r.method == "GET" and r.path.endswith("/events")]
        listed = len(lists())

        snapshot = pipeline.sync(connectors["google_calendar"], cached)

        assert snapshot.full
        assert [r.status for r in lists()[-2:]] == [410, 200]  # the token refused, then one full page
        assert len(lists()) == listed + 2  # (and an instances call per series, if the population has any)
        assert snapshot.summaries == pipeline.sync(connectors["google_calendar"], ledger()).summaries
        assert not pipeline.sync(connectors["google_calendar"], cached).full  # the new token works again


def test_a_moneybird_night_costs_three_version_lists_and_a_post_per_changed_resource(tmp_path):
    with Sandbox(generate(200, seed=4, today=TODAY), rates=FAST) as sandbox:
        connectors = connectors_at(sandbox, tmp_path)
        moneybird = sandbox.fakes["moneybird"]
        cached = ledger()
        pipeline.sync(connectors["moneybird"], cached)
        for pick in (1, 2, 3):
            moneybird.change(pick)  # contacts: the first records picked are contacts
        moneybird.add_person(newcomer("N1", ["moneybird"], seed=1, today=TODAY))  # a contact and an invoice
        moneybird.remove(10**6)  # shows as an id missing from its list
        before = len(moneybird.requests)

        snapshot = pipeline.sync(connectors["moneybird"], cached)

        calls = [(r.method, r.path.split("/")[-2]) for r in moneybird.requests[before:]]
        assert sorted(calls) == sorted([("GET", "contacts"), ("POST", "contacts"), ("GET", "sales_invoices"),
                                        ("POST", "sales_invoices"), ("GET", "estimates")])
        assert snapshot.read == 5 and not snapshot.full  # three changed contacts, the newcomer's contact and invoice
        assert snapshot.summaries == pipeline.sync(connectors["moneybird"], ledger()).summaries


def test_mollie_reads_its_newest_pages_until_one_holds_nothing_new_and_misses_older_changes(tmp_path, monkeypatch):
    """Payments and customers (newest first): the newest pages. Subscriptions (no documented order): all."""
    monkeypatch.setattr(mollie_connector, "PAGE_LIMIT", 5)
    with Sandbox(generate(60, seed=6, today=TODAY), rates=FAST) as sandbox:
        connector = connectors_at(sandbox, tmp_path)["mollie"]
        mollie = sandbox.fakes["mollie"]
        cached = ledger()
        pipeline.sync(connector, cached)
        mollie.add_person(newcomer("N1", ["mollie"], seed=1, today=TODAY))
        oldest = min(mollie.payments.values(), key=lambda p: p["createdAt"])
        oldest["status"] = "open"  # an old payment changes: beyond the pages read
        before = len(mollie.requests)

        snapshot = pipeline.sync(connector, cached)

        paths = [r.path for r in mollie.requests[before:]]
        assert paths.count("/v2/payments") == 2 and paths.count("/v2/customers") == 2  # a new page, a known one
        # /v2/subscriptions has no documented order: read whole every night
        assert paths.count("/v2/subscriptions") == math.ceil(len(mollie.subscriptions) / 5)
        new_customer = f"mollie/customer/{mollie.customer_ids['N1']}"
        assert new_customer in snapshot.summaries
        assert not snapshot.summaries[f"mollie/payment/{oldest['id']}"].get("running")
        assert snapshot.summaries != pipeline.sync(connector, ledger()).summaries  # until reconciled
        assert pipeline.sync(connector, cached, full=True).summaries == pipeline.sync(connector, ledger()).summaries


def test_an_appointment_that_has_ended_since_is_read_again(tmp_path):
    later = {"now": NOW}
    with Sandbox(generate(20, seed=8, today=TODAY), rates=FAST) as sandbox:
        connectors = connectors_at(sandbox, tmp_path, clock=lambda: later["now"])
        sandbox.fakes["google_calendar"].add_person(newcomer("N1", ["calendar"], seed=1, today=TODAY))
        cached = ledger()
        first = pipeline.sync(connectors["google_calendar"], cached)
        [upcoming] = [s for s in first.summaries.values() if s.get("running")]
        later["now"] = NOW + timedelta(days=9)  # the appointment next week is over

        snapshot = pipeline.sync(connectors["google_calendar"], cached)

        assert not snapshot.full and snapshot.read >= 1
        assert snapshot.summaries == pipeline.sync(connectors["google_calendar"], ledger()).summaries
        assert not any(s.get("running") for s in snapshot.summaries.values())
        assert upcoming["valid_until"] < later["now"].isoformat()


def test_a_full_read_is_due_every_full_every_days(tmp_path):
    with Sandbox(generate(10, seed=9, today=TODAY), rates=FAST) as sandbox:
        moneybird = connectors_at(sandbox, tmp_path)["moneybird"]
        cached = ledger()
        reads = [sync_system(moneybird, cached, full_every=timedelta(days=7), now=NOW + timedelta(days=day)).full
                 for day in (0, 1, 6, 7, 8)]
    assert reads == [True, False, False, True, False]


def test_the_ledger_holds_no_plaintext_personal_data(tmp_path):
    population = generate(40, seed=10, today=TODAY)
    with Sandbox(population, rates=FAST) as sandbox:
        config = load_config(str(sandbox.write_config(tmp_path, client_rates=FAST)))
        assert run_purge(config, RULES, apply=True, day=TODAY, force=True, show=0) == 0
        assert run_purge(config, RULES, apply=False, day=TODAY, show=0) == 0
    stored = (tmp_path / "ledger.db").read_bytes().decode("utf-8", "replace").casefold()
    assert '"emails"' in stored  # the cache is there, with hashes
    for person in population.people:
        assert person.email.casefold() not in stored
        assert person.name.casefold() not in stored and f'"{person.last_name.casefold()}"' not in stored
        for variant in phone_formats(person.phone) if person.phone else ():
            assert variant.casefold() not in stored


@pytest.mark.parametrize("value", ["0", "91", '"weekly"'])
def test_full_every_days_is_validated(value):
    assert parse_config("", "v.toml").sync.full_every_days == 7
    with pytest.raises(BadInput, match="v.toml: sync.full_every_days:"):
        parse_config(f"[sync]\nfull_every_days = {value}\n", "v.toml")
