"""The identity index (issue 14): every identifier vergeet has seen on a record, hashed in the ledger, so `find` and
`erase` reach a record that lost the searched identifier (anonymised) and a phone number in any spelling."""
from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa
from dateutil.relativedelta import relativedelta

from connectors import SYSTEMS
from connectors.base import RecordRef
from vergeet import erasure, pipeline
from vergeet.access import classify, find_person
from test_erasure import execute_approved
from vergeet.cli import run_purge
from vergeet.config import load_config
from vergeet.connect import build_connectors, open_ledger
from vergeet.ledger import Ledger
from vergeet.rules import load_rules
from vergeet.sandbox import Sandbox
from vergeet.sandbox.population import (Appointment, CalendarPresence, MailbluePresence, MolliePresence, Payment,
                                        Person, Population, generate)

TODAY = date.today()
RULES = load_rules(Path(__file__).resolve().parents[1] / "retention_rules.toml")
FAST = {system: (1000, 1.0) for system in SYSTEMS}
YEAR_AGO = TODAY - relativedelta(years=1)


def at(day: date) -> datetime:
    return datetime.combine(day, time(11, 0), tzinfo=timezone.utc)


def person(key, first, last, email, phone=None, **presences) -> Person:
    return Person(key=key, first_name=first, last_name=last, email=email, phone=phone, street="Kerkstraat 1",
                  zipcode="1211 AB", city="Hilversum", **presences)


HANNA = person("old_appointment", "Hanna", "Prins", "hanna@example.nl",
               calendar=CalendarPresence("hanna@example.nl", None, at(YEAR_AGO - timedelta(days=10)),
                                         appointments=[Appointment(at(YEAR_AGO - timedelta(days=3)), 60,
                                                                   "Intake Hanna")]))
SANNE = person("other_spelling", "Sanne", "Wit", "sanne.wit@example.nl", "+31623456789",
               mailblue=MailbluePresence("sanne.wit@example.nl", "+31 6 2345 6789", at(TODAY - timedelta(days=30)),
                                         subscribed=True, status_changed_at=at(TODAY - timedelta(days=30))))
TIM = person("payer", "Tim", "Groot", "tim@example.nl",
             mollie=MolliePresence("tim@example.nl", None, at(TODAY - timedelta(days=60)),
                                   payments=[Payment(at(TODAY - timedelta(days=50)), "paid", "85.00", "Sessie"),
                                             Payment(at(TODAY - timedelta(days=20)), "paid", "85.00", "Sessie")]))


def population() -> Population:
    return Population(seed=3, today=TODAY, people=[HANNA, SANNE, TIM, *generate(15, seed=3, today=TODAY).people])


@pytest.fixture
def sandbox(tmp_path):
    with Sandbox(population(), rates=FAST) as running:
        running.config = load_config(str(running.write_config(tmp_path, client_rates=FAST, retries=1)))
        running.ledger_path = tmp_path / "ledger.db"
        yield running


def keys(found) -> set[tuple[str, str]]:
    return {(r.system, r.record_type) for r in found.records()}


def requests_made(sandbox) -> int:
    return sum(len(fake.requests) for fake in sandbox.fakes.values())


def test_read_by_id_gives_what_the_listing_gives(sandbox):
    connectors = build_connectors(sandbox.config)
    for system, records in pipeline.pull_all(connectors).items():
        by_type: dict[str, list] = {}
        for record in records:
            by_type.setdefault(record.record_type, []).append(record)
        assert by_type, system
        for record_type, listed in by_type.items():
            for record in listed[:3]:
                parent = next((link.target for link in record.links if link.relation == "customer"), None)
                read = connectors[system].read(record.ref, parent)
                assert read is not None, (system, record_type)
                same = ("emails", "phones", "first_name", "last_name", "created_at", "document_date", "links",
                        "consent", "shared", "left_alone")
                if not (system == "mollie" and record_type == "customer"):  # customers: own facts only, as `changes`
                    same += ("last_activity_at", "running_contract")
                assert {f: getattr(read, f) for f in same} == {f: getattr(record, f) for f in same}, \
                    (system, record_type)
    gone = {"moneybird": RecordRef("moneybird", "contact", "999999999"),
            "mailblue": RecordRef("mailblue", "contact", "999999"),
            "mollie": RecordRef("mollie", "payment", "tr_doesnotexist"),
            "google_calendar": RecordRef("google_calendar", "event", f"{connectors['google_calendar'].calendar_ids[0]}"
                                                                     "/doesnotexist")}
    for system, ref in gone.items():
        assert connectors[system].read(ref) is None, system


def test_find_by_the_former_email_lists_the_appointment_the_purge_anonymised(sandbox):
    config = sandbox.config
    assert run_purge(config, RULES, apply=True, day=TODAY, force=True, show=0) == 0
    scrubbed = [e.payload for e in sandbox.fakes["google_calendar"].events.values()
                if e.payload.get("status") != "cancelled" and e.payload.get("eventType", "default") == "default"
                and not [a for a in e.payload.get("attendees", []) if not a.get("self")]]
    assert scrubbed and not any("hanna" in str(e).casefold() for e in scrubbed)  # the purge anonymised it
    connectors = build_connectors(config)
    asked = classify(["Hanna@Example.nl"])
    without_index = find_person(connectors, asked, RULES)
    assert ("google_calendar", "event") not in keys(without_index)  # the vendor's search cannot find it any more
    with open_ledger(config) as ledger:
        found = find_person(connectors, asked, RULES, ledger=ledger)
    events = [r for r in found.records() if r.system == "google_calendar"]
    assert len(events) == 1 and "hanna" not in str(events[0].fields).casefold()  # listed, as it is now
    assert str(events[0].ref) in found.former

    # erasure finds it the same way; verifying does not count the anonymised event as still found
    with open_ledger(config) as ledger:
        request = erasure.register(ledger, asked, RULES, received=TODAY, verified_by="test", scope=["all"])
        plan = erasure.plan_erasure(connectors, asked, RULES, ledger, request, as_of=TODAY, systems=None)
        assert plan.plan.records_per_system.get("google_calendar") == 1  # the erasure sees the event too
        summary = None if plan.empty else execute_approved(ledger, plan, connectors)
        assert erasure.verify(connectors, plan, RULES, ledger=ledger) == []
        certificate = erasure.certificate(ledger, plan, RULES, summary, [], "completed", lang="en")
    # the certificate says the appointment was made unrecognisable by the earlier purge, and when
    [event] = [e for e in certificate["erased"] if e["system"] == "google_calendar"]
    assert (event["action"], event["outcome"]) == ("anonymise", "done") and event["at"].startswith(str(TODAY))


def test_a_phone_in_another_spelling_finds_the_records(sandbox):
    connectors = build_connectors(sandbox.config)
    asked = classify(["0623456789"])
    without_index = find_person(connectors, asked, RULES)
    with open_ledger(sandbox.config) as ledger:
        pipeline.sync_all(connectors, ledger)
        before = requests_made(sandbox)
        found = find_person(connectors, asked, RULES, ledger=ledger)
        calls = requests_made(sandbox) - before
    assert ("mailblue", "contact") not in keys(without_index)  # the vendor's search misses "+31 6 2345 6789"
    assert keys(found) == {("mailblue", "contact")}
    assert [r.first_name for r in found.records()] == ["Sanne"]
    assert calls < 60, calls


def test_a_customer_found_through_the_index_brings_its_payments(sandbox):
    connectors = build_connectors(sandbox.config)
    with open_ledger(sandbox.config) as ledger:
        pipeline.sync_all(connectors, ledger)
    mollie = sandbox.fakes["mollie"]
    customer = next(c for c in mollie.customers.values() if c["email"] == "tim@example.nl")
    customer["email"] = "tim.groot@elders.nl"  # changed at Mollie after vergeet saw it
    asked = classify(["tim@example.nl"])
    with open_ledger(sandbox.config) as ledger:
        found = find_person(connectors, asked, RULES, ledger=ledger)
    payments = [r for r in found.records() if r.record_type == "payment"]
    assert ("mollie", "customer") in keys(found) and len(payments) == 2
    assert all(not r.emails for r in payments)  # found through their customer, not by an e-mail of their own
    # and the new address, found on the customer, is searched and indexed like any other
    assert "tim.groot@elders.nl" in found.searched.emails


def test_the_ledger_file_holds_no_plaintext_identifier_and_the_index_is_filled(sandbox):
    config = sandbox.config
    assert run_purge(config, RULES, apply=True, day=TODAY, force=True, show=0) == 0
    connectors = build_connectors(config)
    with open_ledger(config) as ledger:
        for asked in (["hanna@example.nl"], ["0623456789"], ["tim@example.nl"]):
            find_person(connectors, classify(asked, ["Hanna Prins"]), RULES, ledger=ledger)
    engine = sa.create_engine(f"sqlite:///{sandbox.ledger_path}")
    with engine.connect() as conn:
        rows = conn.execute(sa.text("select hash, system, record_type, record_id from identity_index")).all()
    engine.dispose()
    assert len(rows) > 50 and {row.system for row in rows} == set(SYSTEMS)
    assert all(len(row.hash) == 64 for row in rows)
    stored = sandbox.ledger_path.read_bytes().decode("utf-8", "replace").casefold()
    for p in sandbox.population.people:
        assert p.email.casefold() not in stored
        assert p.name.casefold() not in stored
        if p.phone:
            for variant in (p.phone, "0" + p.phone[3:], p.phone[3:]):
                assert variant not in stored


def test_an_existing_ledger_gets_the_index_table_and_keeps_its_data(tmp_path):
    url = f"sqlite:///{tmp_path / 'old.db'}"
    with Ledger(url, b"pepper") as ledger:
        request = ledger.register_request("access", [ledger.hash_identifier("email", "a@b.nl")], received=TODAY)
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("drop table identity_index"))  # as a ledger written before the index
    engine.dispose()
    with Ledger(url, b"pepper") as ledger:
        assert ledger.get_request(request)["kind"] == "access"
        h = ledger.hash_identifier("email", "a@b.nl")
        first = datetime(2024, 1, 1, tzinfo=timezone.utc)
        ledger.index_identifiers([(h, "mailblue/contact/7")], seen_at=first)
        ledger.index_identifiers([(h, "mailblue/contact/7"), (h, "moneybird/contact/9")])
        assert ledger.indexed_records([h]) == {h: {"mailblue/contact/7", "moneybird/contact/9"}}
        with pytest.raises(ValueError, match="plaintext"):
            ledger.index_identifiers([("a@b.nl", "mailblue/contact/7")])
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        seen = conn.execute(sa.text("select first_seen, last_seen from identity_index "
                                    "where record_id = '7'")).one()
    engine.dispose()
    assert str(seen.first_seen).startswith("2024-01-01") and not str(seen.last_seen).startswith("2024")


def test_the_access_report_says_an_appointment_was_made_unrecognisable_and_when(sandbox):
    assert run_purge(sandbox.config, RULES, apply=True, day=TODAY, force=True, show=0) == 0
    from vergeet.access import access_report, decision_context, render_html

    asked = classify(["Hanna@Example.nl"])
    with open_ledger(sandbox.config) as ledger:
        found = find_person(build_connectors(sandbox.config), asked, RULES, ledger=ledger)
        report = access_report(found, RULES, subject=asked, as_of=TODAY, lang="nl",
                               context=decision_context(ledger, TODAY))
    [event] = [r for r in report["records"] if r["system"] == "google_calendar"]
    assert event["retention"]["done_before"]["action"] == "anonymise"
    assert event["retention"]["why"].startswith("op ") and "onherkenbaar gemaakt" in event["retention"]["why"]
    assert "onherkenbaar gemaakt" in render_html(report)
