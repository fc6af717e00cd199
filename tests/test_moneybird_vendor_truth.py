"""Moneybird as its OpenAPI spec, changelog and help centre say it behaves (issue 13), against the sandbox fake.

Each test names the source of the behaviour it depends on; the fake's docstring says how it models it.
"""
from __future__ import annotations

import json
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
import responses

from connectors.base import Identifiers, Outcome, Record, RecordRef
from connectors.http import VendorAuthError
from connectors.moneybird import MoneybirdConnector
from vergeet import pipeline
from vergeet.ledger import Ledger
from vergeet.rules import parse_rules
from vergeet.sandbox.fake_moneybird import WRITABLE_FIELDS, MoneybirdFake
from vergeet.sandbox.population import generate
from vergeet.sandbox.server import FakeServer

TODAY = date(2026, 6, 1)
RULES_TEXT = (Path(__file__).resolve().parents[1] / "retention_rules.toml").read_text()
#: the shipped rules with the option a business may switch on (off by default): what an invoice does not need goes
#: after the year while the invoice keeps the contact
NARROW_RULES = parse_rules(RULES_TEXT.replace("# while_retained = ", "while_retained = "), "retention_rules.toml")
WHILE_RETAINED = list(NARROW_RULES.rule("moneybird-contact-1y").while_retained.fields)
CHANGING = ("PATCH", "DELETE", "POST", "PUT")


class Versions:
    """A `Known` that remembers ids and versions only (what an incremental read asks)."""

    def __init__(self, records: list[Record] = ()):
        self.versions = {record.ref: record.version for record in records}

    def __contains__(self, ref: object) -> bool:
        return ref in self.versions

    def version(self, ref: RecordRef) -> str | None:
        return self.versions.get(ref)

    def changed(self, records):
        return [r for r in records if self.versions.get(r.ref) != r.version]

    def due(self, now: datetime) -> datetime | None:
        return None


@pytest.fixture(scope="module")
def population():
    return generate(120, seed=13, today=TODAY)


def serve(fake: MoneybirdFake):
    return FakeServer(fake)


def connect(server: FakeServer, fake: MoneybirdFake, **overrides) -> MoneybirdConnector:
    options = {"base_url": f"{server.url}/api/v2", "administration_id": fake.administration_id,
               "token": fake.token, "backoff_factor": 0, "rate": None}
    return MoneybirdConnector(**{**options, **overrides})


@pytest.fixture
def sandbox(population):
    fake = MoneybirdFake(population)
    with serve(fake) as server:
        yield fake, connect(server, fake)


def patched_bodies(fake: MoneybirdFake, contact_id: str) -> list[dict]:
    return [json.loads(r.body)["contact"] for r in fake.requests
            if r.method == "PATCH" and r.path.endswith(f"/contacts/{contact_id}.json")]


def invoiced_person(fake, population):
    return next(p for p in population.people
                if p.moneybird and p.moneybird.phone and any(d.kind == "invoice" for d in p.moneybird.documents))


# -- 1. anonymising writes only what the PATCH accepts, and reads back -------------------------------------
def test_anonymise_writes_only_patchable_fields_and_every_planned_field_is_gone(population, sandbox):
    """SPEC PATCH /contacts/{id} schema (no `email`, no `attention`; CL-2016-03-10); HC-76023 (e-mail delivery needs
    an address); SPEC `sepa_active` (when true, every SEPA field is required)."""
    fake, mb = sandbox
    contact_id = fake.contact_ids[invoiced_person(fake, population).key]
    fake.set_fields(contact_id, sepa_active=True, sepa_iban="NL91ABNA0417164300", sepa_iban_account_name="A. Klant",
                    sepa_bic="ABNANL2A", sepa_mandate_id="MB-1", sepa_mandate_date="2020-01-01",
                    bank_account="NL91ABNA0417164300")
    assert fake.contacts[contact_id]["delivery_method"] == "Email"

    result = mb.anonymise(RecordRef("moneybird", "contact", contact_id), WHILE_RETAINED)

    assert result.outcome is Outcome.DONE, result.detail
    stored = fake.contacts[contact_id]
    for name in ("phone", "email", "send_invoices_to_email", "send_estimates_to_email", "bank_account",
                 "sepa_iban", "sepa_iban_account_name", "sepa_bic"):
        assert not stored[name], name
    assert stored["delivery_method"] == "Manual" and stored["sepa_active"] is False
    assert stored["notes"] == []
    bodies = patched_bodies(fake, contact_id)
    assert bodies and all(set(body) <= WRITABLE_FIELDS for body in bodies)  # never `email` or `attention`
    last_patch = max(i for i, r in enumerate(fake.requests) if r.method == "PATCH")
    assert any(r.method == "GET" and r.path.endswith(f"/contacts/{contact_id}.json")
               for r in fake.requests[last_patch:])  # read back after the write
    assert "Manual" in result.detail and "SEPA" in result.detail
    assert "@" not in result.detail and "NL91" not in result.detail


@responses.activate
def test_a_field_moneybird_keeps_after_the_write_is_reported_not_done():
    """A read after the write is what tells a field written from one Moneybird did not take."""
    api = "https://moneybird.test/api/v2/1"
    before = {"id": "7", "firstname": "Anna", "lastname": "Jansen", "company_name": "", "phone": "0612345678",
              "email": "anna@example.nl", "send_invoices_to_email": "anna@example.nl", "send_estimates_to_email": "",
              "delivery_method": "Email", "sepa_active": False, "contact_people": [], "notes": [], "archived": False,
              "version": 1}
    after = {**before, "phone": "", "send_invoices_to_email": "", "delivery_method": "Manual", "version": 2}
    responses.get(f"{api}/contacts/7.json", json=before)
    responses.patch(f"{api}/contacts/7.json", json=after)
    responses.get(f"{api}/contacts/7.json", json=after)  # `email` still there, unlike every spec example
    mb = MoneybirdConnector(base_url="https://moneybird.test/api/v2", administration_id="1", token="t", rate=None,
                            retries=0)

    result = mb.anonymise(RecordRef("moneybird", "contact", "7"), ["phone", "email", "send_invoices_to_email"])

    assert result.outcome is Outcome.NOT_SUPPORTED
    assert "email" in result.detail and "Moneybird" in result.detail
    assert "anna" not in result.detail.lower()
    assert [c.request.method for c in responses.calls] == ["GET", "PATCH", "GET"]


def test_anonymising_an_anonymised_contact_sends_no_changing_request(population, sandbox):
    fake, mb = sandbox
    contact_id = fake.contact_ids[invoiced_person(fake, population).key]
    ref = RecordRef("moneybird", "contact", contact_id)
    assert mb.anonymise(ref, WHILE_RETAINED).outcome is Outcome.DONE
    version = fake.contacts[contact_id]["version"]
    before = len(fake.requests)

    again = mb.anonymise(ref, WHILE_RETAINED)

    assert again.outcome is Outcome.DONE
    assert [r.method for r in fake.requests[before:]] == ["GET"]
    assert fake.contacts[contact_id]["version"] == version


def test_a_contact_read_this_run_is_not_read_again_before_the_write_and_a_stale_one_is_caught(sandbox):
    """The night's read already holds the contact; the read back still happens, and shows what changed since."""
    fake, mb = sandbox
    contact_id, _, _ = company_with_people(fake)
    list(mb.records())
    late_note = fake.add_note(contact_id, "Nieuw nummer: 06-99887766")  # added after the read
    before = len(fake.requests)

    result = mb.anonymise(RecordRef("moneybird", "contact", contact_id), WHILE_RETAINED)

    calls = [(r.method, r.path.rsplit("/", 2)[-2]) for r in fake.requests[before:]]
    assert result.outcome is Outcome.DONE, result.detail
    assert calls[0][0] == "PATCH"  # no read before the first write
    assert calls.count(("GET", "contacts")) == 2  # read back, and once more after the second round
    assert ("DELETE", "notes") in calls and fake.contacts[contact_id]["notes"] == []
    assert any(r.path.endswith(f"/notes/{late_note}.json") for r in fake.requests[before:])


# -- 2. several addresses in one send_*_email field ---------------------------------------------------------
def test_each_comma_separated_address_is_an_identifier(population, sandbox):
    """SPEC: send_invoices_to_email / send_estimates_to_email "one or more valid email addresses, separated by a
    comma"."""
    fake, mb = sandbox
    contact_id = fake.contact_ids[next(p for p in population.people if p.moneybird).key]
    fake.set_fields(contact_id, send_invoices_to_email="jan@bakker.nl, boekhouding@bakker.nl",
                    send_estimates_to_email="offertes@bakker.nl,jan@bakker.nl")

    [record] = [r for r in mb.records() if r.record_id == contact_id]
    found = [r.record_id for r in mb.search(Identifiers(emails=("Boekhouding@Bakker.nl",)))
             if r.record_type == "contact"]

    assert {"jan@bakker.nl", "boekhouding@bakker.nl", "offertes@bakker.nl"} <= set(record.emails)
    assert not any("," in email for email in record.emails)
    assert found == [contact_id]


# -- 3. contact people and notes ------------------------------------------------------------------------------
def company_with_people(fake: MoneybirdFake) -> tuple[str, str, str]:
    contact_id = fake.add_contact(company_name="Smit Advies", send_invoices_to_email="info@smitadvies.nl",
                                  phone="035-6221100", address1="Kerkstraat 1")
    person_id = fake.add_contact_person(contact_id, firstname="Piet", lastname="Smit", email="piet@smitadvies.nl",
                                        phone="06-11223344")
    note_id = fake.add_note(contact_id, "Piet belt liever: 06 55 66 77 88, of mail piet.prive@gmail.com")
    return contact_id, person_id, note_id


def test_contact_people_and_notes_are_read_and_searched(sandbox):
    """SPEC contact_response: `contact_people` (firstname, lastname, phone, email) and `notes`; GET /contacts/filter
    `query` covers contact people, GET /contacts `query` does not."""
    fake, mb = sandbox
    contact_id, _, _ = company_with_people(fake)

    [record] = [r for r in mb.records() if r.record_id == contact_id]
    by_person = [r.record_id for r in mb.search(Identifiers(emails=("piet@smitadvies.nl",)))
                 if r.record_type == "contact"]

    assert {"info@smitadvies.nl", "piet@smitadvies.nl", "piet.prive@gmail.com"} <= set(record.emails)
    assert {"035-6221100", "06-11223344", "06 55 66 77 88"} <= set(record.phones)
    assert record.fields["contact_people"][0]["lastname"] == "Smit"  # reported with the contact
    assert by_person == [contact_id]


def test_anonymising_a_contact_scrubs_its_people_and_deletes_its_notes(sandbox):
    """SPEC: a contact person needs a name (422 example), so only its phone and e-mail are blanked; a note can only
    be deleted (the notes resource has POST and DELETE only)."""
    fake, mb = sandbox
    contact_id, person_id, note_id = company_with_people(fake)

    result = mb.anonymise(RecordRef("moneybird", "contact", contact_id), WHILE_RETAINED)

    assert result.outcome is Outcome.DONE, result.detail
    contact = fake.contacts[contact_id]
    [person] = [p for p in contact["contact_people"] if p["id"] == person_id]
    assert (person["firstname"], person["lastname"], person["phone"] or "", person["email"] or "") == \
        ("Piet", "Smit", "", "")
    assert contact["notes"] == []
    assert any(r.method == "DELETE" and r.path.endswith(f"/notes/{note_id}.json") for r in fake.requests)
    [record] = [r for r in mb.records() if r.record_id == contact_id]
    assert record.emails == () and record.phones == ()


def test_a_note_moneybird_will_not_let_the_token_delete_is_a_task_for_a_human(population):
    """SPEC DELETE /contacts/{contact_id}/notes/{id}: 400 "User has no permissions to notes for Contact"."""
    fake = MoneybirdFake(population, notes_allowed=False)
    with serve(fake) as server:
        contact_id, _, _ = company_with_people(fake)
        result = connect(server, fake).anonymise(RecordRef("moneybird", "contact", contact_id), WHILE_RETAINED)

    assert result.outcome is Outcome.NOT_SUPPORTED
    assert "note" in result.detail and "permission" in result.detail.lower()
    assert fake.contacts[contact_id]["phone"] == ""  # the rest was still done


# -- 4. archived contacts and contacts Moneybird keeps --------------------------------------------------------
def test_archived_contacts_stay_in_the_nightly_read(population, sandbox):
    """SPEC: `include_archived` on GET /contacts/synchronization and GET /contacts/{id}; the fake leaves archived
    contacts out without it."""
    fake, mb = sandbox
    full = mb.changes(None, Versions())
    contact_id = fake.contact_ids[next(p for p in population.people if p.moneybird).key]
    fake.archive(contact_id)

    night = mb.changes({}, Versions(full.records))

    [contacts] = [listing for listing in night.listings if listing.record_type == "contact"]
    assert contact_id in contacts.ids
    assert [r.record_id for r in night.records if r.record_type == "contact"] == [contact_id]  # its new version


@pytest.mark.parametrize("kept_contacts", ["archive", "refuse"])
def test_a_contact_documents_refer_to_is_kept_and_reported_with_why_and_where(population, kept_contacts):
    """CL-2016-07-28 (422 when the contact is used in the bookkeeping); CL-2026-11-10 (`x-kept-as` on 204) and
    CONCREXIT (archived, then 400 "Contact can not be archived")."""
    fake = MoneybirdFake(population, kept_contacts=kept_contacts)
    with serve(fake) as server:
        mb = connect(server, fake)
        contact_id = fake.contact_ids[invoiced_person(fake, population).key]
        ref = RecordRef("moneybird", "contact", contact_id)
        first, second = mb.delete(ref), mb.delete(ref)

    for result in (first, second):
        assert result.outcome is Outcome.NOT_SUPPORTED
        assert "invoices or quotes" in result.detail and "Moneybird" in result.detail
    assert contact_id in fake.contacts
    assert fake.contacts[contact_id]["archived"] is (kept_contacts == "archive")


# -- 5. invoice deletion follows Moneybird's rules --------------------------------------------------------------
def test_an_old_sent_invoice_that_is_not_the_newest_is_a_manual_task_with_moneybirds_reason(sandbox):
    """HC-207248: sent invoices can only be deleted newest first."""
    fake, mb = sandbox
    invoices = sorted(fake.documents["sales_invoices"].values(), key=lambda i: (i["created_at"], int(i["id"])))
    oldest, newest = invoices[0], invoices[-1]

    refused = mb.delete(RecordRef("moneybird", "sales_invoice", oldest["id"]))
    deleted = mb.delete(RecordRef("moneybird", "sales_invoice", newest["id"]))

    assert refused.outcome is Outcome.NOT_SUPPORTED
    assert "most recently created sent invoice" in refused.detail  # Moneybird's own rule, repeated
    assert oldest["id"] in fake.documents["sales_invoices"]
    assert deleted.outcome is Outcome.DONE and newest["id"] not in fake.documents["sales_invoices"]


def test_an_invoice_in_a_locked_period_names_the_lock(population):
    """SPEC DELETE /sales_invoices/{id}: not in a locked bookkeeping period."""
    fake = MoneybirdFake(population, period_locked_until=TODAY)
    with serve(fake) as server:
        newest = max(fake.documents["sales_invoices"].values(), key=lambda i: (i["created_at"], int(i["id"])))
        result = connect(server, fake).delete(RecordRef("moneybird", "sales_invoice", newest["id"]))

    assert result.outcome is Outcome.NOT_SUPPORTED
    assert "locked bookkeeping period" in result.detail
    assert newest["id"] in fake.documents["sales_invoices"]


# -- 6. scopes ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("scopes", "missing"), [({"sales_invoices"}, "estimates"), ({"estimates"}, "sales_invoices")])
def test_a_token_without_a_needed_scope_fails_at_once_naming_it(population, scopes, missing):
    """SPEC `security`: sales invoices need `sales_invoices`, estimates `estimates` (CL-2026-06-17)."""
    fake = MoneybirdFake(population, token_scopes=scopes)
    with serve(fake) as server:
        with pytest.raises(VendorAuthError) as raised:
            connect(server, fake).changes(None, Versions())

    assert f"`{missing}`" in str(raised.value) and "scope" in str(raised.value)
    assert len(fake.requests) <= 3  # the version lists come first: nothing is read in bulk before it fails


# -- 7. phone search ------------------------------------------------------------------------------------------
def test_phone_search_does_not_page_through_postcodes_and_ibans(population, sandbox):
    """SPEC GET /contacts/filter `query` also searches zipcodes and IBANs: a query of a number's last four digits
    finds every contact in a postcode that starts with them."""
    fake, mb = sandbox
    person = next(p for p in population.people if p.moneybird and p.moneybird.phone and p.phone.startswith("+316"))
    tail = person.phone[-4:]
    for number in range(150):
        fake.add_contact(lastname=f"Buur{number}", zipcode=f"{tail} AB", bank_account=f"NL91ABNA00000{tail}",
                         send_invoices_to_email=f"buur{number}@example.nl")
    before = len(fake.requests)

    found = [r.record_id for r in mb.search(Identifiers(phones=(person.phone,))) if r.record_type == "contact"]

    searches = [r for r in fake.requests[before:] if r.path.endswith(("/contacts.json", "/contacts/filter.json"))]
    assert found == [fake.contact_ids[person.key]]
    assert len(searches) == 1


# -- 8. paging ------------------------------------------------------------------------------------------------
def test_no_page_past_an_exact_hundred_without_a_link_header(population):
    """SPEC GET /sales_invoices 400 "page does not have a valid value"; no `Link` on these lists."""
    fake = MoneybirdFake(generate(5, seed=1, today=TODAY))
    contact_id = next(iter(fake.contacts))
    existing = sum(d["contact_id"] == contact_id for d in fake.documents["sales_invoices"].values())
    for number in range(100 - existing):
        fake.add_invoice(contact_id, TODAY - timedelta(days=number + 1))
    with serve(fake) as server:
        mb = connect(server, fake)
        records = list(mb.records())
        found = list(mb.search(Identifiers(emails=(fake.contacts[contact_id]["send_estimates_to_email"],))))

    assert sum(r.record_type == "sales_invoice" and r.links[0].target.record_id == contact_id for r in found) == 100
    assert len([r for r in records if r.record_type == "sales_invoice"]) == len(fake.documents["sales_invoices"])
    assert fake.count(status=400) == 0
    assert all("link" not in r.headers for r in fake.requests)


def test_the_fake_refuses_a_page_past_the_last_and_sends_no_link(sandbox):
    fake, mb = sandbox
    import requests
    url = f"{mb.http.base_url}/sales_invoices.json"
    auth = {"Authorization": f"Bearer {fake.token}"}
    period = {"filter": "period:20000101..20991231,state:all", "per_page": "100"}
    total = len(fake.documents["sales_invoices"])
    last = -(-total // 100)

    ok = requests.get(url, params={**period, "page": str(last)}, headers=auth)
    past = requests.get(url, params={**period, "page": str(last + 1)}, headers=auth)
    too_many = requests.get(url, params={**period, "page": "1", "per_page": "101"}, headers=auth)

    assert ok.status_code == 200 and "link" not in ok.headers
    assert (past.status_code, past.json()) == (400, {"error": "page does not have a valid value"})
    assert (too_many.status_code, too_many.json()) == (400, {"error": "per_page does not have a valid value"})


# -- a second purge right after the first changes nothing ------------------------------------------------------
def test_a_second_purge_right_after_the_first_sends_no_changing_request(tmp_path):
    """Moneybird alone: anonymised contacts are not patched again, kept contacts and refused invoices not deleted
    again (the ledger hands a NOT_SUPPORTED action over once; the fake keeps versions honest)."""
    fake = MoneybirdFake(generate(60, seed=17, today=TODAY))
    with serve(fake) as server, Ledger("sqlite://", b"pepper") as ledger:
        connectors = {"moneybird": connect(server, fake)}

        def purge() -> list[str]:
            before = len(fake.requests)
            view = pipeline.identity_view(pipeline.sync_all(connectors, ledger), NARROW_RULES)
            plan = pipeline.make_plan(view, NARROW_RULES, TODAY, ledger)
            pipeline.execute(ledger, pipeline.store_plan(ledger, plan), connectors)
            return [f"{r.method} {r.path}" for r in fake.requests[before:] if r.method in CHANGING
                    and not r.path.endswith("/synchronization.json")]

        first = purge()
        second = purge()

    assert any(call.startswith("PATCH") for call in first) and any(call.startswith("DELETE") for call in first)
    assert fake.count(status=400) + fake.count(status=422) > 0 or any(
        c["archived"] for c in fake.contacts.values())  # Moneybird kept something the plan wanted gone
    assert second == []


def test_an_archived_contact_does_not_drop_out_of_the_cache_between_full_reads(population):
    """The audit's flapping: a sync listing without `include_archived` made the cache drop archived contacts."""
    fake = MoneybirdFake(population)
    with serve(fake) as server, Ledger("sqlite://", b"pepper") as cached, Ledger("sqlite://", b"pepper") as fresh:
        mb = connect(server, fake)
        pipeline.sync(mb, cached)
        contact_id = fake.contact_ids[next(p for p in population.people if p.moneybird).key]
        fake.archive(contact_id)

        night = pipeline.sync(mb, cached)
        full = pipeline.sync(mb, fresh)

    assert not night.full and f"moneybird/contact/{contact_id}" in night.summaries
    assert night.summaries == full.summaries
