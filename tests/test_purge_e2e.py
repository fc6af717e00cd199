"""The nightly purge end to end: real connectors against the sandbox fakes, through the CLI code path."""
from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path

import pandas as pd
import pytest
from dateutil.relativedelta import relativedelta

from connectors import SYSTEMS
from vergeet import pipeline
from vergeet.cli import run_purge
from vergeet.config import load_config
from vergeet.connect import build_connectors, open_ledger
from vergeet.identity import normalise_emails
from vergeet.rules import load_rules
from vergeet.sandbox import Sandbox
from vergeet.sandbox.fake_imap import comparable_id
from vergeet.sandbox.population import (Appointment, CalendarPresence, Document, MailbluePresence,
                                        MolliePresence, MoneybirdPresence, Payment, Person, Population, generate)

TODAY = date.today()
RULES = load_rules(Path(__file__).resolve().parents[1] / "retention_rules.toml")
YEAR_AGO = TODAY - relativedelta(years=1)
SEVEN_YEARS_AGO = TODAY - relativedelta(years=7)
DAY = timedelta(days=1)
MUTATING = ("DELETE", "PATCH", "PUT")
#: tests that are not about pacing run the fakes and the clients at a high rate
FAST = {system: (1000, 1.0) for system in SYSTEMS}


def at(day: date) -> datetime:
    return datetime.combine(day, time(11, 0), tzinfo=timezone.utc)


def person(key, first, last, email, phone=None, **presences) -> Person:
    return Person(key=key, first_name=first, last_name=last, email=email, phone=phone, street="Kerkstraat 1",
                  zipcode="1211 AB", city="Hilversum", **presences)


def scenario_population() -> Population:
    """One person per rule and boundary of the privacy statement."""
    people = [
        person("old_contact", "Anna", "de Vries", "anna@example.nl", "+31611111111",
               moneybird=MoneybirdPresence("anna@example.nl", "06-11111111", at(YEAR_AGO - DAY))),
        person("recent_contact", "Bram", "Bakker", "bram@example.nl", "+31622222222",
               moneybird=MoneybirdPresence("bram@example.nl", "06-22222222", at(YEAR_AGO + DAY))),
        person("invoice_keeper", "Carla", "Smit", "carla@example.nl", "+31633333333",
               moneybird=MoneybirdPresence("carla@example.nl", "+31 6 3333 3333", at(TODAY - relativedelta(years=8)),
                                           documents=[Document("F1", "invoice", SEVEN_YEARS_AGO + DAY, "paid",
                                                               "120.00")])),
        person("old_invoice", "Daan", "Mulder", "daan@example.nl", "+31644444444",
               moneybird=MoneybirdPresence("daan@example.nl", None, at(TODAY - relativedelta(years=9)),
                                           documents=[Document("F2", "invoice", SEVEN_YEARS_AGO - DAY, "paid",
                                                               "85.00")])),
        person("unsubscribed", "Eva", "Bos", "eva@example.nl",
               mailblue=MailbluePresence("Eva@Example.nl", None, at(TODAY - timedelta(days=400)), subscribed=False,
                                         status_changed_at=at(TODAY - timedelta(days=3)))),
        person("subscriber", "Finn", "Vos", "finn@example.nl",
               mailblue=MailbluePresence("finn@example.nl", None, at(TODAY - relativedelta(years=5)),
                                         subscribed=True, status_changed_at=at(TODAY - relativedelta(years=5)))),
        person("old_payer", "Gijs", "Kok", "gijs@example.nl",
               mollie=MolliePresence("GIJS@example.nl", None, at(TODAY - relativedelta(years=3)),
                                     payments=[Payment(at(YEAR_AGO - DAY), "paid", "85.00", "Coaching")])),
        person("old_appointment", "Hanna", "Prins", "hanna@example.nl",
               calendar=CalendarPresence("hanna@example.nl", None, at(YEAR_AGO - timedelta(days=10)),
                                         appointments=[Appointment(at(YEAR_AGO - DAY), 60, "Intake Hanna")])),
        # The same person in all four systems under other spellings: purged everywhere ...
        person("everywhere_old", "Iris", "Jansen", "iris.jansen@example.nl", "+31655555555",
               moneybird=MoneybirdPresence(" Iris.Jansen@Example.NL", "0031655555555", at(TODAY - relativedelta(years=3))),
               mailblue=MailbluePresence("IRIS.JANSEN@example.nl", None, at(TODAY - relativedelta(years=3)),
                                         subscribed=False, status_changed_at=at(TODAY - relativedelta(years=2))),
               mollie=MolliePresence("iris.jansen@EXAMPLE.nl", None, at(TODAY - relativedelta(years=3)),
                                     payments=[Payment(at(TODAY - relativedelta(years=2)), "paid", "120.00", "Sessie")]),
               calendar=CalendarPresence("Iris.Jansen@example.nl", None, at(TODAY - relativedelta(years=3)),
                                         appointments=[Appointment(at(TODAY - relativedelta(years=2)), 60,
                                                                   "Coaching Iris")])),
        # ... and one with an appointment planned in ten days (a running contract): kept everywhere.
        person("everywhere_recent", "Joost", "Visser", "joost@example.nl", "+31666666666",
               moneybird=MoneybirdPresence("JOOST@example.nl", "+31 6 6666 6666", at(TODAY - relativedelta(years=3))),
               mailblue=MailbluePresence("Joost@example.nl", None, at(TODAY - relativedelta(years=3)),
                                         subscribed=False, status_changed_at=at(TODAY - relativedelta(years=2))),
               mollie=MolliePresence("joost@example.nl ", None, at(TODAY - relativedelta(years=3)),
                                     payments=[Payment(at(TODAY - relativedelta(years=2)), "paid", "120.00", "Sessie")]),
               calendar=CalendarPresence("joost@EXAMPLE.nl", None, at(TODAY - relativedelta(years=3)),
                                         appointments=[Appointment(at(TODAY + timedelta(days=10)), 60,
                                                                   "Coaching Joost")])),
        # Namesakes with different e-mails: never merged.
        person("namesake_old", "Jan", "Jansen", "jan.jansen@example.nl",
               moneybird=MoneybirdPresence("jan.jansen@example.nl", None, at(TODAY - relativedelta(years=2)))),
        person("namesake_recent", "Jan", "Jansen", "jjansen@other.nl",
               moneybird=MoneybirdPresence("jjansen@other.nl", None, at(TODAY - timedelta(days=10)))),
    ]
    return Population(seed=0, today=TODAY, people=people)


def present(sandbox: Sandbox, config_path: Path) -> dict[str, set[tuple[str, str]]]:
    """Per person key: the (system, record_type) records the fakes still hold that carry their e-mail."""
    records = pipeline.pull_all(build_connectors(load_config(str(config_path))))
    by_email = {p.email: p.key for p in sandbox.population.people}
    found: dict[str, set[tuple[str, str]]] = {}
    for system_records in records.values():
        for record in system_records:
            for email in normalise_emails(pd.Series(record.emails, dtype="string")).dropna():
                if email in by_email:
                    found.setdefault(by_email[email], set()).add((record.system, record.record_type))
    return found


@pytest.fixture(scope="module")
def purged(tmp_path_factory):
    """The scenario population, purged once for real; yields what is left and the requests made."""
    with Sandbox(scenario_population()) as sandbox:
        path = sandbox.write_config(tmp_path_factory.mktemp("scenario"))
        config = load_config(str(path))
        before = present(sandbox, path)
        assert run_purge(config, RULES, apply=True, day=TODAY, force=True, show=0) == 0
        after = present(sandbox, path)
        calendar = {key: stored.payload for key, stored in sandbox.fakes["google_calendar"].events.items()
                    if stored.payload.get("status") != "cancelled"}
        yield {"before": before, "after": after, "calendar": calendar, "sandbox": sandbox, "config": config}


@pytest.mark.parametrize("key, gone, kept", [
    ("old_contact", {("moneybird", "contact")}, set()),
    ("recent_contact", set(), {("moneybird", "contact")}),
    # Moneybird deletes sent invoices newest first only: the 7-year-old one, and the contact it refers to, are
    # handed to the owner (test_a_7_year_old_invoice_moneybird_will_not_delete_is_handed_to_the_owner_once)
    ("old_invoice", set(), {("moneybird", "contact"), ("moneybird", "sales_invoice")}),
    ("unsubscribed", {("mailblue", "contact")}, set()),
    ("subscriber", set(), {("mailblue", "contact")}),
    ("old_payer", {("mollie", "customer")}, set()),
    ("everywhere_old", {("moneybird", "contact"), ("mailblue", "contact"), ("mollie", "customer")}, set()),
    ("everywhere_recent", set(), {("moneybird", "contact"), ("mailblue", "contact"), ("mollie", "customer"),
                                  ("google_calendar", "event")}),
    ("namesake_old", {("moneybird", "contact")}, set()),
    ("namesake_recent", set(), {("moneybird", "contact")}),
])
def test_scenario_end_to_end(purged, key, gone, kept):
    assert gone | kept <= purged["before"][key]
    left = purged["after"].get(key, set())
    assert not (gone & left), f"{key}: still present: {gone & left}"
    assert kept <= left, f"{key}: wrongly removed: {kept - left}"


def test_a_7_year_old_invoice_moneybird_will_not_delete_is_handed_to_the_owner_once(purged):
    with open_ledger(purged["config"]) as ledger:
        handed = {key: detail for (key, action), (_, detail) in ledger.handed_over().items() if action == "delete"}
    invoices = [key for key in handed if key.startswith("moneybird/sales_invoice/")]
    assert len(invoices) == 1 and handed[invoices[0]]  # with Moneybird's reason
    assert "Daan" not in handed[invoices[0]] and "daan@" not in handed[invoices[0]]


def test_an_invoice_younger_than_7_years_keeps_its_contact_whole(purged):
    # "Je gegevens blijven in ieder geval tot die tijd aanwezig in mijn facturatiesysteem"
    assert {("moneybird", "sales_invoice"), ("moneybird", "contact")} <= purged["after"]["invoice_keeper"]
    connector = build_connectors(purged["config"])["moneybird"]
    contacts = [r for r in connector.records() if r.record_type == "contact" and r.last_name == "Smit"]
    assert len(contacts) == 1 and contacts[0].emails != () and contacts[0].phones != ()
    moneybird = purged["sandbox"].fakes["moneybird"]
    assert not [r for r in moneybird.requests if r.method == "PATCH"]  # nothing of it was anonymised


def test_payments_stay_with_mollie(purged):
    payments = purged["sandbox"].fakes["mollie"].payments
    assert len(payments) == 3  # old_payer, everywhere_old, everywhere_recent: none deleted


def test_old_appointments_are_scrubbed_not_deleted(purged):
    events = purged["calendar"]
    appointments = [e for e in events.values() if e.get("eventType", "default") == "default"]
    scrubbed = [e for e in appointments if not [a for a in e.get("attendees", []) if not a.get("self")]]
    assert len(scrubbed) == 2  # old_appointment and everywhere_old; the fake's birthday event is no appointment
    assert all("Hanna" not in e.get("summary", "") and "Iris" not in e.get("summary", "") for e in scrubbed)
    assert all("start" in e and "end" in e for e in scrubbed)
    assert not purged["sandbox"].fakes["google_calendar"].notified  # nobody was e-mailed


def test_second_run_has_nothing_left_to_do(purged):
    config = purged["config"]
    with open_ledger(config) as ledger:
        records = pipeline.pull_all(build_connectors(config))
        plan = pipeline.make_plan(pipeline.identity_view(records, RULES), RULES, TODAY, ledger)
    assert plan.actions.empty


def test_cli_output_masks_identifiers(purged, capsys):
    run_purge(purged["config"], RULES, apply=False, day=TODAY + relativedelta(years=3), show=None)
    shown = capsys.readouterr().out
    assert re.search(r"\w\*\*\*@\w\*\*\*\.nl", shown)  # a dry run reads in full and shows masked identifiers
    for p in purged["sandbox"].population.people:
        assert p.email not in shown and (p.phone is None or p.phone not in shown)


def _mutations(sandbox: Sandbox) -> list[tuple[str, str, str]]:
    return sorted((system, r.method, r.path) for system, fake in sandbox.fakes.items()
                  for r in fake.requests if r.method in MUTATING and r.path != "/token")


def _state(sandbox: Sandbox, config_path: Path) -> set[tuple]:
    records = pipeline.pull_all(build_connectors(load_config(str(config_path))))
    return {(r.system, r.record_type, comparable_id(r.system, r.record_id), r.emails, r.phones, r.last_name)
            for rs in records.values() for r in rs}


class Killed(BaseException):
    """Stands in for the process being killed (not an Exception, so nothing catches it)."""


def test_a_killed_run_resumes_without_repeating_or_losing_an_action(tmp_path):
    population = generate(40, seed=11, today=TODAY)
    with Sandbox(population, rates=FAST) as reference:
        path = reference.write_config(tmp_path / "reference", client_rates=FAST)
        assert run_purge(load_config(str(path)), RULES, apply=True, day=TODAY, force=True, show=0) == 0
        expected_state, expected_calls = _state(reference, path), _mutations(reference)
    assert len(expected_calls) > 20

    with Sandbox(population, rates=FAST) as sandbox:
        path = sandbox.write_config(tmp_path / "killed", client_rates=FAST)
        config = load_config(str(path))
        connectors = build_connectors(config)
        budget = {"left": 15}

        def kill_after_budget(_action):
            budget["left"] -= 1
            if budget["left"] == 0:
                raise Killed

        with open_ledger(config) as ledger:
            records = pipeline.pull_all(connectors)
            plan = pipeline.make_plan(pipeline.identity_view(records, RULES), RULES, TODAY, ledger)
            run_id = pipeline.store_plan(ledger, plan)
            with pytest.raises(Killed):
                pipeline.execute(ledger, run_id, connectors, progress=kill_after_budget)
            # systems run in parallel: each of the others may finish the action it had under way
            assert 15 <= len(ledger.actions(run_id, ("done",))) < 15 + len(connectors)
            assert ledger.get_run(run_id)["status"] == "running"
        assert run_purge(config, RULES, apply=True, day=TODAY, force=True, show=0) == 0
        with open_ledger(config) as ledger:
            assert ledger.get_run(run_id)["status"] == "succeeded"
            assert not ledger.pending_actions(run_id)
        assert _state(sandbox, path) == expected_state
        assert _mutations(sandbox) == expected_calls  # nothing repeated, nothing lost


def test_circuit_breaker_stops_a_runaway_plan(tmp_path, capsys):
    population = generate(40, seed=11, today=TODAY)
    with Sandbox(population) as sandbox:
        config = load_config(str(sandbox.write_config(tmp_path)))
        assert run_purge(config, RULES, apply=True, day=TODAY + relativedelta(years=12), show=0) == 1
        assert _mutations(sandbox) == []
        said = " ".join(capsys.readouterr().err.split())
        assert "Refused: the plan deletes more than 20% of the records of" in said and "--force" in said
        assert re.search(r"Moneybird \(\d+ of \d+\)", said)  # on the numbers the plan showed
        with open_ledger(config) as ledger:
            assert ledger.list_runs() == []


def test_a_vendor_failing_leaves_failed_actions_for_the_next_run(tmp_path):
    population = generate(30, seed=5, today=TODAY)
    with Sandbox(population, rates=FAST) as sandbox:
        config = load_config(str(sandbox.write_config(tmp_path, retries=1, client_rates=FAST)))
        sandbox.fakes["mollie"].fail_next(1000, 500, method="DELETE")
        first = run_purge(config, RULES, apply=True, day=TODAY, force=True, show=0)
        deleted_elsewhere = sandbox.fakes["moneybird"].count("DELETE")
        sandbox.fakes["mollie"].faults.clear()
        second = run_purge(config, RULES, apply=True, day=TODAY, force=True, show=0)
        with open_ledger(config) as ledger:
            statuses = [run["status"] for run in sorted(ledger.list_runs(), key=lambda r: r["id"])]
        customers_left = len(sandbox.fakes["mollie"].customers)
    assert (first, second) == (1, 0)
    assert statuses == ["failed", "succeeded"]
    assert deleted_elsewhere > 0  # one failing vendor does not stop the others
    assert customers_left < len([p for p in population.people if p.mollie])


def test_a_second_apply_right_after_the_first_sends_no_changing_request(tmp_path):
    population = generate(60, seed=3, today=TODAY)
    with Sandbox(population, rates=FAST) as sandbox:
        config = load_config(str(sandbox.write_config(tmp_path, client_rates=FAST)))
        assert run_purge(config, RULES, apply=True, day=TODAY, force=True, show=0) == 0
        first = _mutations(sandbox)
        assert {system for system, _, _ in first} == set(SYSTEMS) - {"mailbox"}  # the mailbox is IMAP: no HTTP fake
        assert run_purge(config, RULES, apply=True, day=TODAY, force=True, show=0) == 0
        assert _mutations(sandbox) == first
