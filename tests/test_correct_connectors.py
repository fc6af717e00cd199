"""Rectification through each connector (issue 20): `plan_correction` says what changes and what a record keeps,
and why; `correct` writes with the vendor's own update call in the documented shape, sends nothing when the
record already shows the new values, turns a vendor's refusal into a clear outcome, and checks the vendor's answer.
All against the sandbox fakes."""
from __future__ import annotations

import json
from datetime import date, datetime, timedelta, timezone

import pytest
import requests
from googleapiclient.errors import HttpError

from connectors.base import FieldChange, Identifiers, Outcome
from connectors.http import VendorBadResponse
from connectors.google_calendar import GoogleCalendarConnector
from connectors.mailblue import MailblueConnector
from connectors.mollie import MollieConnector
from connectors.moneybird import MoneybirdConnector
from vergeet.sandbox.fake_calendar import CalendarFake
from vergeet.sandbox.fake_mailblue import MailblueFake
from vergeet.sandbox.fake_mollie import MollieFake
from vergeet.sandbox.fake_moneybird import MoneybirdFake
from vergeet.sandbox.population import (Document, MailbluePresence, MolliePresence, MoneybirdPresence, Payment, Person,
                                        Population)
from vergeet.sandbox.server import FakeServer

TODAY = date(2026, 6, 1)
SINCE = datetime(2024, 3, 1, 10, tzinfo=timezone.utc)
NEW = {"name": "Anna Bakker", "email": "anna.bakker@example.org", "phone": "+31 6 87654321",
       "address.street": "Kade 9", "address.postcode": "3512 AB", "address.city": "Utrecht"}


def person(key: str = "p1", **presences) -> Person:
    return Person(key, "Anna", "de Jong", "anna@example.nl", "+31612345678", "Dorpsstraat 1", "1234 AB",
                  "Amersfoort", **presences)


def bodies(fake, method: str, path_contains: str) -> list[dict]:
    """The bodies of the requests the fake served (not those it answered 429, to be sent again)."""
    return [json.loads(r.body) for r in fake.requests
            if r.method == method and path_contains in r.path and r.status != 429]


def by_field(changes: list[FieldChange]) -> dict[str, FieldChange]:
    assert len({c.field for c in changes}) == len(changes), "one change per field"
    return {c.field: c for c in changes}


# -- Moneybird ------------------------------------------------------------------------------------------------
@pytest.fixture
def moneybird():
    anna = person(moneybird=MoneybirdPresence("anna@example.nl", "06-12345678", SINCE, documents=[
        Document("F2025-001", "invoice", date(2025, 5, 1), "paid", "120.00"),
        Document("O2025-001", "estimate", date(2025, 4, 1), "accepted", "120.00")]))
    fake = MoneybirdFake(Population(1, TODAY, [anna]))
    with FakeServer(fake) as server:
        yield fake, MoneybirdConnector(base_url=f"{server.url}/api/v2", administration_id=fake.administration_id,
                                       token=fake.token, backoff_factor=0)


def moneybird_records(mb: MoneybirdConnector):
    return {r.record_type if r.fields.get("state") != "draft" else "draft": r for r in mb.records()}


def test_moneybird_plan_corrects_the_contact_and_refuses_issued_documents_by_law(moneybird):
    fake, mb = moneybird
    records = moneybird_records(mb)

    contact = by_field(mb.plan_correction(records["contact"], NEW))
    assert {f: (c.vendor_field, c.current, c.refused) for f, c in contact.items()} == {
        "name": ("firstname, lastname", "Anna de Jong", None),
        "email": ("send_invoices_to_email, send_estimates_to_email", "anna@example.nl", None),
        "phone": ("phone", "06-12345678", None),
        "address.street": ("address1", "Dorpsstraat 1", None),
        "address.postcode": ("zipcode", "1234 AB", None),
        "address.city": ("city", "Amersfoort", None)}
    for issued, reason in (("sales_invoice", "issued_document"), ("estimate", "sent_quote")):  # no law for quotes
        kept = by_field(mb.plan_correction(records[issued], NEW))
        assert set(kept) == set(NEW)
        assert {c.refused for c in kept.values()} == {reason}
        assert kept["address.city"].vendor_field == "contact.city"
        assert kept["address.city"].current == "Amersfoort"
    assert fake.count("PATCH") == 0


def test_moneybird_correct_patches_writable_attributes_only_and_a_rerun_sends_nothing(moneybird):
    fake, mb = moneybird
    record = moneybird_records(mb)["contact"]
    changes = mb.plan_correction(record, NEW)

    result = mb.correct(changes)
    assert result.outcome is Outcome.DONE
    assert bodies(fake, "PATCH", "/contacts/") == [{"contact": {  # the first name stays: not sent
        "lastname": "Bakker", "send_invoices_to_email": NEW["email"],
        "send_estimates_to_email": NEW["email"], "phone": NEW["phone"], "address1": "Kade 9",
        "zipcode": "3512 AB", "city": "Utrecht"}}]
    stored = fake.contacts[record.record_id]
    assert (stored["email"], stored["lastname"], stored["city"]) == (NEW["email"], "Bakker", "Utrecht")
    assert not any(value in result.detail for value in NEW.values())

    again = mb.correct(changes)
    assert again.outcome is Outcome.DONE and "nothing sent" in again.detail
    assert fake.count("PATCH") == 1
    read_back = by_field(mb.plan_correction(mb.read(record.ref), NEW))
    assert {f: c.current for f, c in read_back.items()} == {**NEW, "email": NEW["email"]}


def test_moneybird_a_draft_takes_the_corrected_contact_and_an_issued_invoice_is_left_alone(moneybird):
    fake, mb = moneybird
    contact_id = next(iter(fake.contacts))
    draft_id = fake.add_draft(contact_id, TODAY)
    records = moneybird_records(mb)
    draft = by_field(mb.plan_correction(records["draft"], {"address.city": "Utrecht"}))
    assert draft["address.city"].refused is None

    early = mb.correct(list(draft.values()))  # the contact is not corrected yet: the draft cannot show it
    assert early.outcome is Outcome.NOT_SUPPORTED and "correct that contact first" in early.detail

    assert mb.correct(mb.plan_correction(records["contact"], {"address.city": "Utrecht"})).outcome is Outcome.DONE
    done = mb.correct(list(draft.values()))
    assert done.outcome is Outcome.DONE
    assert bodies(fake, "PATCH", f"/sales_invoices/{draft_id}") == [{"sales_invoice": {"update_contact": True}}] * 2
    assert fake.documents["sales_invoices"][draft_id]["contact"]["city"] == "Utrecht"
    issued = next(i for i in fake.documents["sales_invoices"].values() if i["state"] == "paid")
    assert issued["contact"]["city"] == "Amersfoort"
    assert mb.correct(list(draft.values())).outcome is Outcome.DONE
    assert fake.count("PATCH", f"/sales_invoices/{draft_id}") == 2


def test_moneybird_refusal_gone_and_an_answer_without_the_new_values(moneybird):
    fake, mb = moneybird
    record = moneybird_records(mb)["contact"]
    name = [c for c in mb.plan_correction(record, {"name": "Anna Bakker"})]

    refused = mb.correct([FieldChange(record.ref, "email", "send_invoices_to_email", "anna@example.nl",
                                      "not-an-address")])
    assert refused.outcome is Outcome.NOT_SUPPORTED and "HTTP 422" in refused.detail
    assert "not-an-address" not in refused.detail

    fake.inject("missing_id", method="PATCH")
    with pytest.raises(VendorBadResponse) as error:
        mb.correct(name)
    assert "\n" not in str(error.value) and "Bakker" not in str(error.value)

    del fake.contacts[record.record_id]
    assert mb.correct(name).outcome is Outcome.ALREADY_GONE


# -- Mailblue ------------------------------------------------------------------------------------------------
@pytest.fixture
def mailblue():
    anna = person(mailblue=MailbluePresence("Anna@Example.nl", "06-12345678", SINCE))
    bert = Person("p2", "Bert", "Smit", "bert@example.nl", None, mailblue=MailbluePresence("bert@example.nl", None,
                                                                                           SINCE))
    fake = MailblueFake(Population(1, TODAY, [anna, bert]))
    with FakeServer(fake) as server:
        yield fake, server, MailblueConnector(base_url=f"{server.url}/api/3", token=fake.token, rate=None,
                                              backoff_factor=0)


def test_mailblue_plan_correct_puts_the_contact_and_a_rerun_sends_nothing(mailblue):
    fake, _, mb = mailblue
    record = mb.read(next(r.ref for r in mb.records() if r.first_name == "Anna"))
    changes = by_field(mb.plan_correction(record, NEW))
    assert {f: (c.vendor_field, c.current, c.refused) for f, c in changes.items()} == {
        "name": ("firstName, lastName", "Anna de Jong", None), "email": ("email", "Anna@Example.nl", None),
        "phone": ("phone", "06-12345678", None)}  # a Mailblue contact holds no address

    result = mb.correct(list(changes.values()))
    assert result.outcome is Outcome.DONE
    assert bodies(fake, "PUT", f"/contacts/{record.record_id}") == [{"contact": {
        "lastName": "Bakker", "email": NEW["email"], "phone": NEW["phone"]}}]
    assert fake.contacts[record.record_id]["email"] == NEW["email"]
    assert mb.correct(list(changes.values())).outcome is Outcome.DONE
    assert fake.count("PUT", status=200) == 1
    read_back = by_field(mb.plan_correction(mb.read(record.ref), NEW))
    assert {f: c.current for f, c in read_back.items()} == {f: NEW[f] for f in ("name", "email", "phone")}


def test_mailblue_a_duplicate_address_is_a_refusal_not_a_crash_and_nothing_changes(mailblue):
    fake, _, mb = mailblue
    record = mb.read(next(r.ref for r in mb.records() if r.first_name == "Anna"))
    taken = mb.plan_correction(record, {"email": "BERT@example.nl", "phone": "+31 6 87654321"})

    result = mb.correct(taken)
    assert result.outcome is Outcome.NOT_SUPPORTED
    assert result.detail.startswith("duplicate_email:") and "bert" not in result.detail.lower()
    assert (fake.contacts[record.record_id]["email"], fake.contacts[record.record_id]["phone"]) == \
        ("Anna@Example.nl", "06-12345678")
    invalid = mb.correct(mb.plan_correction(record, {"email": "anna.example.nl"}))
    assert invalid.outcome is Outcome.NOT_SUPPORTED and "email_invalid" in invalid.detail


def test_mailblue_archived_contacts_are_read_only_gone_is_gone_and_the_answer_is_checked(mailblue):
    fake, server, mb = mailblue
    record = mb.read(next(r.ref for r in mb.records() if r.first_name == "Anna"))
    changes = mb.plan_correction(record, {"name": "Anna Bakker"})

    # the fake takes only the documented shape: a body without "contact" changes nothing
    flat = requests.put(f"{server.url}/api/3/contacts/{record.record_id}", json={"lastName": "Bakker"},
                        headers={"Api-Token": fake.token}, timeout=5)
    assert flat.status_code == 200 and fake.contacts[record.record_id]["lastName"] == "de Jong"
    fake.inject("wrong_shape", method="PUT")
    with pytest.raises(VendorBadResponse):
        mb.correct(changes)

    fake.archive_contact(record.record_id)
    archived = next(r for r in mb.search(Identifiers(emails=("anna@example.nl",)))
                    if r.record_type == "archived_contact")
    assert {c.refused for c in mb.plan_correction(archived, NEW)} == {"vendor_read_only"}
    assert mb.correct(changes).outcome is Outcome.ALREADY_GONE


# -- Mollie --------------------------------------------------------------------------------------------------
@pytest.fixture
def mollie():
    anna = person(mollie=MolliePresence("anna@example.nl", None, SINCE, payments=[
        Payment(SINCE + timedelta(days=1), "paid", "120.00", "Factuur 1")]))
    fake = MollieFake(Population(1, TODAY, [anna]))
    with FakeServer(fake) as server:
        yield fake, MollieConnector(base_url=f"{server.url}/v2", api_key=fake.token, rate=None, backoff_factor=0)


def test_mollie_customer_is_patched_and_the_account_holder_is_read_only(mollie):
    fake, mo = mollie
    records = {r.record_type: r for r in mo.records()}
    customer = by_field(mo.plan_correction(records["customer"], NEW))
    assert {f: (c.vendor_field, c.current, c.refused) for f, c in customer.items()} == {
        "name": ("name", "Anna de Jong", None), "email": ("email", "anna@example.nl", None)}
    paid = by_field(mo.plan_correction(records["payment"], NEW))
    assert {f: (c.vendor_field, c.refused) for f, c in paid.items()} == {
        "name": ("details.consumerName", "vendor_read_only")}

    assert mo.correct(list(customer.values())).outcome is Outcome.DONE
    assert bodies(fake, "PATCH", "/v2/customers/") == [{"name": NEW["name"], "email": NEW["email"]}]
    assert mo.correct(list(customer.values())).outcome is Outcome.DONE
    assert fake.count("PATCH") == 1
    assert mo.correct(list(paid.values())).outcome is Outcome.NOT_SUPPORTED
    assert fake.count("PATCH") == 1
    read_back = by_field(mo.plan_correction(mo.read(records["customer"].ref), NEW))
    assert {f: c.current for f, c in read_back.items()} == {"name": NEW["name"], "email": NEW["email"]}


def test_mollie_payment_addresses_are_patched_whole_while_open_and_refused_once_finalized(mollie):
    fake, mo = mollie
    open_id = fake.add_customer_less_payment(created_at=SINCE, status="open", email="anna@example.nl",
                                             given_name="Anna", family_name="de Jong")
    paid_id = fake.add_customer_less_payment(created_at=SINCE, status="paid", email="anna@example.nl",
                                             given_name="Anna", family_name="de Jong", card_holder="A DE JONG")
    open_payment = next(r for r in mo.records() if r.record_id == open_id)
    changes = by_field(mo.plan_correction(open_payment, {"name": "Anna Bakker", "email": NEW["email"]}))
    assert {f: (c.vendor_field, c.refused) for f, c in changes.items()} == {
        "name": ("billingAddress.givenName, billingAddress.familyName", None),
        "email": ("billingAddress.email", None)}

    assert mo.correct(list(changes.values())).outcome is Outcome.DONE
    assert bodies(fake, "PATCH", open_id) == [{"billingAddress": {
        "givenName": "Anna", "familyName": "Bakker", "email": NEW["email"], "country": "NL"}}]
    assert mo.correct(list(changes.values())).outcome is Outcome.DONE and fake.count("PATCH", open_id) == 1

    paid = next(r for r in mo.records() if r.record_id == paid_id)
    planned = by_field(mo.plan_correction(paid, {"name": "Anna Bakker", "email": NEW["email"]}))
    assert planned["name"].refused == "vendor_read_only" and planned["email"].refused is None
    refused = mo.correct(list(planned.values()))
    assert refused.outcome is Outcome.NOT_SUPPORTED and "HTTP 422" in refused.detail
    assert NEW["email"] not in refused.detail
    assert fake.payments[paid_id]["billingAddress"]["email"] == "anna@example.nl"


def test_mollie_gone_and_an_answer_without_the_new_values(mollie):
    fake, mo = mollie
    customer = next(r for r in mo.records() if r.record_type == "customer")
    changes = mo.plan_correction(customer, {"email": NEW["email"]})
    fake.inject("wrong_shape", method="PATCH")
    with pytest.raises(VendorBadResponse):
        mo.correct(changes)
    fake.clear_faults()
    mo.delete(customer.ref)
    assert mo.correct(changes).outcome is Outcome.ALREADY_GONE


# -- Google Calendar -----------------------------------------------------------------------------------------
NOW = datetime(2026, 6, 1, 12, tzinfo=timezone.utc)
OWNER = "info@jessworks.nl"


@pytest.fixture
def calendar(tmp_path):
    """The fake and a connector whose clock a test may move (`cal.now[0]`)."""
    fake = CalendarFake(Population(1, TODAY, []), owner_email=OWNER)
    now = [NOW]
    with FakeServer(fake) as server:
        path = tmp_path / "service-account.json"
        path.write_text(json.dumps(fake.service_account_info(server.url + "/token")))
        yield fake, GoogleCalendarConnector(api_endpoint=server.url + "/calendar/v3/", credentials_file=str(path),
                                            calendar_ids=(OWNER,), own_emails=(OWNER,), retries=1, backoff_factor=0,
                                            clock=lambda: now[0]), now


def calendar_records(cal: GoogleCalendarConnector) -> dict[str, object]:
    return {r.fields["summary"]: r for r in cal.records()}


def test_calendar_plan_refuses_past_foreign_and_google_made_events(calendar):
    fake, cal, _ = calendar
    anna = ("Anna@Example.nl", "Anna de Jong")
    fake.add_event(anna, NOW + timedelta(days=3), NOW + timedelta(days=3, hours=1), summary="Coming")
    fake.add_event(anna, NOW - timedelta(days=3), NOW - timedelta(days=3) + timedelta(hours=1), summary="Held")
    fake.add_invitation("anna@example.nl", "Anna de Jong", NOW + timedelta(days=5), summary="Hers")
    records = calendar_records(cal)

    coming = by_field(cal.plan_correction(records["Coming"], NEW))
    assert {f: (c.vendor_field, c.current, c.refused) for f, c in coming.items()} == {
        "email": ("attendees[].email", "Anna@Example.nl", None),
        "name": ("attendees[].displayName", "Anna de Jong", None)}  # an attendee holds no phone or address
    assert {c.refused for c in cal.plan_correction(records["Held"], NEW)} == {"past_event"}
    assert {c.refused for c in cal.plan_correction(records["Hers"], NEW)} == {"not_organiser"}
    assert fake.count("PATCH") == 0


def test_calendar_correct_patches_the_guest_list_without_mailing_and_a_rerun_sends_nothing(calendar):
    fake, cal, _ = calendar
    other = {"email": "bert@example.nl", "displayName": "Bert", "responseStatus": "needsAction"}
    event_id = fake.add_event(("anna@example.nl", "Anna de Jong"), NOW + timedelta(days=3),
                              NOW + timedelta(days=3, hours=1), summary="Group")
    fake.events[event_id].payload["attendees"].append(other)
    record = calendar_records(cal)["Group"]
    narrowed = type(record)(**{**record.__dict__, "emails": ("anna@example.nl",)})
    changes = cal.plan_correction(narrowed, {"email": NEW["email"], "name": "Anna Bakker"})

    assert cal.correct(changes).outcome is Outcome.DONE
    [request] = [r for r in fake.requests if r.method == "PATCH"]
    assert "sendUpdates=none" in request.query
    attendees = json.loads(request.body)["attendees"]
    assert json.loads(request.body).keys() == {"attendees"}
    assert [(a["email"], a.get("displayName")) for a in attendees] == [
        (NEW["email"], "Anna Bakker"), (OWNER, None), ("bert@example.nl", "Bert")]
    assert fake.notified == []
    assert cal.correct(changes).outcome is Outcome.DONE
    assert fake.count("PATCH") == 1
    read_back = cal.read(record.ref)
    assert NEW["email"] in read_back.emails and "anna@example.nl" not in read_back.emails


def test_calendar_refusals_when_it_is_too_late_or_not_ours_and_a_guest_twice(calendar):
    fake, cal, now = calendar
    event_id = fake.add_event(("anna@example.nl", "Anna"), NOW + timedelta(days=3), NOW + timedelta(days=3, hours=1),
                              summary="Coming")
    changes = cal.plan_correction(calendar_records(cal)["Coming"], {"email": NEW["email"]})

    fake.events[event_id].payload["attendees"].append({"email": NEW["email"]})
    twice = cal.correct(changes)
    assert twice.outcome is Outcome.NOT_SUPPORTED and "both on the guest list" in twice.detail
    fake.events[event_id].payload["attendees"].pop()

    fake.events[event_id].payload["organizer"] = {"email": "anna@example.nl"}  # the copy of someone else's event
    foreign = cal.correct(changes)
    assert foreign.outcome is Outcome.NOT_SUPPORTED and foreign.detail.startswith("not_organiser")
    assert fake.count("PATCH") == 0
    fake.events[event_id].payload["organizer"] = {"email": OWNER, "self": True}

    fake.inject("wrong_shape", method="PATCH")
    with pytest.raises(VendorBadResponse):
        cal.correct(changes)
    # the fake takes a guest list only in the documented shape: every entry with a valid e-mail address
    with pytest.raises(HttpError) as bad:
        cal._events.patch(calendarId=OWNER, eventId=event_id, body={"attendees": [{"displayName": "Anna"}]}).execute()
    assert bad.value.status_code == 400
    patches = fake.count("PATCH")
    now[0] = NOW + timedelta(days=4)
    assert cal.correct(changes).detail.startswith("past_event")
    assert fake.count("PATCH") == patches
    fake.remove(0)
    assert cal.correct(changes).outcome is Outcome.ALREADY_GONE
