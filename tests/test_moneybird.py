"""Moneybird connector: exact requests against `responses`, then whole flows against the sandbox fake."""
from __future__ import annotations

import time
from datetime import date, datetime, timezone

import pytest
import requests
import responses
from responses import matchers

from connectors.base import Identifiers, Link, Outcome, RecordRef
from connectors.http import VendorAuthError, VendorBadResponse, VendorUnavailable
from connectors.moneybird import ALL_PERIODS, RECORD_FIELDS, MoneybirdConnector, phone_query
from vergeet.sandbox.fake_moneybird import MoneybirdFake
from vergeet.sandbox.population import generate, phone_formats
from vergeet.sandbox.server import FakeServer

BASE = "https://moneybird.test/api/v2"
ADMIN = "123"
TOKEN = "test-token"
API = f"{BASE}/{ADMIN}"
ALL_DOCUMENTS = f"period:{ALL_PERIODS},state:all"
TODAY = date(2026, 6, 1)


def connector(**overrides) -> MoneybirdConnector:
    options = {"base_url": BASE, "administration_id": ADMIN, "token": TOKEN, "rate": None, "retries": 2,
               "backoff_factor": 0}
    return MoneybirdConnector(**{**options, **overrides})


def contact(contact_id: str = "1", **fields) -> dict:
    return {"id": contact_id, "firstname": "Anna", "lastname": "de Jong", "company_name": "",
            "email": "anna@example.nl", "send_invoices_to_email": "anna@example.nl", "send_estimates_to_email": "", "phone": "06-12345678",
            "sepa_active": False, "sepa_mandate_date": None, "archived": False,
            "created_at": "2020-01-04T19:04:31.743Z", "updated_at": "2021-02-05T10:00:00.000Z", **fields}


def invoice(invoice_id: str = "10", contact_id: str = "1", **fields) -> dict:
    return {"id": invoice_id, "contact_id": contact_id, "contact": contact(contact_id), "invoice_id": "F2019-00001",
            "state": "paid", "invoice_date": "2019-03-01", "paid_at": "2019-03-08",
            "created_at": "2019-03-01T09:00:00.000Z", "updated_at": "2019-03-08T09:00:00.000Z", **fields}


def estimate(estimate_id: str = "20", contact_id: str = "1", **fields) -> dict:
    return {"id": estimate_id, "contact_id": contact_id, "contact": contact(contact_id), "estimate_id": "OFF2018-1",
            "state": "accepted", "estimate_date": "2018-05-01", "accepted_at": "2018-05-06", "rejected_at": None,
            "created_at": "2018-05-01T09:00:00.000Z", "updated_at": "2018-05-06T09:00:00.000Z", **fields}


def list_params(**params) -> list:
    return [matchers.query_param_matcher({"page": "1", "per_page": "100", **params}),
            matchers.header_matcher({"Authorization": f"Bearer {TOKEN}"})]


def mock_documents(rsps, *, invoices=(), estimates=(), contact_id: str | None = None) -> None:
    document_filter = ALL_DOCUMENTS + (f",contact_id:{contact_id}" if contact_id else "")
    rsps.get(f"{API}/sales_invoices.json", json=list(invoices), match=list_params(filter=document_filter))
    rsps.get(f"{API}/estimates.json", json=list(estimates), match=list_params(filter=document_filter))


def mock_bulk(rsps, *, contacts=(), invoices=(), estimates=()) -> None:
    """The full read: per resource its id + version list, then its records by id (POST synchronization)."""
    for resource, rows, params in (("contacts", contacts, {"include_archived": "true"}),
                                   ("sales_invoices", invoices, {"filter": ALL_DOCUMENTS}),
                                   ("estimates", estimates, {"filter": ALL_DOCUMENTS})):
        rsps.get(f"{API}/{resource}/synchronization.json", json=[{"id": r["id"], "version": 1} for r in rows],
                 match=[matchers.query_param_matcher(params),
                        matchers.header_matcher({"Authorization": f"Bearer {TOKEN}"})])
        if rows:
            rsps.post(f"{API}/{resource}/synchronization.json", json=list(rows),
                      match=[matchers.json_params_matcher({"ids": [r["id"] for r in rows]})])


# -- exact requests (responses) -------------------------------------------------------------
@responses.activate
def test_records_reads_every_type_in_bulk_with_the_documented_requests():
    unpaid = invoice("11", state="late", paid_at=None, invoice_date="2025-12-01")
    mock_bulk(responses, contacts=[contact(sepa_active=True, sepa_mandate_date="2020-02-01")],
              invoices=[invoice(), unpaid], estimates=[estimate()])

    records = {(r.record_type, r.record_id): r for r in connector().records()}

    # one id list and one POST per 100 records per type, never a request per contact; the id lists come first
    assert [c.request.method for c in responses.calls] == ["GET", "GET", "GET", "POST", "POST", "POST"]
    person = records[("contact", "1")]
    assert person.emails == ("anna@example.nl",) and person.phones == ("06-12345678",)
    assert (person.first_name, person.last_name) == ("Anna", "de Jong")
    assert person.running_contract  # an active SEPA mandate
    assert person.last_activity_at == datetime(2020, 2, 1, tzinfo=timezone.utc)
    assert person.created_at == datetime(2020, 1, 4, 19, 4, 31, 743000, tzinfo=timezone.utc)
    paid, late = records[("sales_invoice", "10")], records[("sales_invoice", "11")]
    assert paid.links == (Link("contact", RecordRef("moneybird", "contact", "1")),)
    assert paid.document_date == date(2019, 3, 1) and not paid.running_contract
    assert paid.last_activity_at == datetime(2019, 3, 8, tzinfo=timezone.utc)
    assert paid.emails == ("anna@example.nl",)  # the invoice's own contact copy
    assert late.running_contract and late.last_activity_at is None
    quote = records[("estimate", "20")]
    assert quote.document_date == date(2018, 5, 1) and not quote.running_contract
    assert quote.last_activity_at == datetime(2018, 5, 6, tzinfo=timezone.utc)


@responses.activate
def test_records_since_keeps_only_records_updated_after_it():
    mock_bulk(responses, contacts=[contact("1"), contact("2", updated_at="2026-05-01T00:00:00Z")],
              invoices=[invoice()])

    changed = list(connector().records(since=datetime(2026, 1, 1, tzinfo=timezone.utc)))

    assert [(r.record_type, r.record_id) for r in changed] == [("contact", "2")]


@responses.activate
def test_search_hits_page_until_the_link_header_has_no_next():
    def page(number: int, links: str, size: int = 100) -> None:
        rows = [contact(f"{number}{i:03d}", lastname="Jansen") for i in range(size)]
        responses.get(f"{API}/contacts/filter.json", json=rows, headers={"Link": links},
                      match=[matchers.query_param_matcher({"page": str(number), "per_page": "100",
                                                           "query": "Anna Jansen", "include_archived": "true"})])

    page(1, f'<{API}/contacts/filter.json?page=2>; rel="next"')
    page(2, f'<{API}/contacts/filter.json?page=3>; rel="next", <{API}/contacts/filter.json?page=1>; rel="prev"')
    page(3, f'<{API}/contacts/filter.json?page=2>; rel="prev"')  # full, but Moneybird says there is no next page
    responses.get(f"{API}/sales_invoices.json", json=[])
    responses.get(f"{API}/estimates.json", json=[])

    contacts = [r for r in connector().search(Identifiers(names=("Anna Jansen",))) if r.record_type == "contact"]

    assert len({r.record_id for r in contacts}) == 300
    assert len([c for c in responses.calls if "/contacts/filter.json" in c.request.url]) == 3


@responses.activate
def test_a_400_on_the_page_after_a_full_page_of_hits_ends_the_list():
    rows = [contact(str(i), lastname="Jansen") for i in range(100)]
    responses.get(f"{API}/contacts/filter.json", json=rows, match=[matchers.query_param_matcher(
        {"page": "1", "per_page": "100", "query": "Anna Jansen", "include_archived": "true"})])
    responses.get(f"{API}/contacts/filter.json", status=400, json={"error": "page does not have a valid value"})
    responses.get(f"{API}/sales_invoices.json", json=[])
    responses.get(f"{API}/estimates.json", json=[])

    contacts = [r for r in connector().search(Identifiers(names=("Anna Jansen",))) if r.record_type == "contact"]

    assert len(contacts) == 100


@responses.activate
def test_a_429_then_success_is_retried():
    responses.get(f"{API}/contacts/synchronization.json", body='"Retry later"', status=429,
                  headers={"Retry-After": "0"})
    mock_bulk(responses, contacts=[contact()])

    assert [r.record_id for r in connector().records()] == ["1"]
    assert [call.response.status_code for call in responses.calls[:2]] == [429, 200]


def test_retry_after_is_read_as_the_epoch_second_moneybird_sends():
    # `responses` retries without sleeping, so the session's retry policy is asked directly.
    policy = connector().http.session.get_adapter(API).max_retries

    assert 25 <= policy.parse_retry_after(str(int(time.time()) + 30)) <= 30  # not decades
    assert policy.parse_retry_after(str(int(time.time()) - 5)) == 0
    assert policy.parse_retry_after("1") == 1


@responses.activate
def test_server_errors_until_retries_run_out_raise_unavailable_without_personal_data():
    responses.get(f"{API}/contacts/filter.json", json={"error": "boom"}, status=503)

    with pytest.raises(VendorUnavailable) as raised:
        list(connector(retries=2).search(Identifiers(emails=("anna.de.jong@example.nl",))))

    message = str(raised.value)
    assert "moneybird" in message and "GET" in message and "/contacts/filter.json" in message and "503" in message
    assert "anna" not in message.lower() and "example.nl" not in message
    assert len(responses.calls) == 3  # first try + 2 retries


@responses.activate
def test_malformed_json_is_a_bad_response():
    responses.get(f"{API}/contacts/synchronization.json", body="<html>maintenance</html>",
                  content_type="text/html")

    with pytest.raises(VendorBadResponse):
        list(connector().records())


@responses.activate
def test_wrong_token_is_an_auth_error():
    responses.get(f"{API}/contacts/synchronization.json", json={"error": "Authorization required"}, status=401)

    with pytest.raises(VendorAuthError):
        list(connector().records())


@responses.activate
@pytest.mark.parametrize(("record_type", "resource"), [("contact", "contacts"), ("sales_invoice", "sales_invoices"),
                                                        ("estimate", "estimates")])
def test_delete_sends_delete_to_the_record_and_reports_done(record_type, resource):
    responses.delete(f"{API}/{resource}/42.json", status=204, match=list_params()[1:])

    result = connector().delete(RecordRef("moneybird", record_type, "42"))

    assert result.outcome is Outcome.DONE
    assert responses.calls[0].request.method == "DELETE"


@responses.activate
def test_delete_of_a_missing_record_is_already_gone():
    responses.delete(f"{API}/contacts/42.json", status=404, json={"error": "record not found"})

    assert connector().delete(RecordRef("moneybird", "contact", "42")).outcome is Outcome.ALREADY_GONE


@responses.activate
def test_delete_of_a_contact_kept_as_archived_is_not_supported():
    responses.delete(f"{API}/contacts/42.json", status=204, headers={"x-kept-as": "archived"})

    result = connector().delete(RecordRef("moneybird", "contact", "42"))

    assert result.outcome is Outcome.NOT_SUPPORTED
    assert "archived" in result.detail and "by hand in Moneybird" in result.detail  # what, and where


@responses.activate
def test_delete_of_an_invoice_moneybird_refuses_is_not_supported():
    responses.delete(f"{API}/sales_invoices/42.json", status=400, json={"error": "Sales invoice cannot be deleted"})

    result = connector().delete(RecordRef("moneybird", "sales_invoice", "42"))

    assert result.outcome is Outcome.NOT_SUPPORTED
    assert "HTTP 400" in result.detail and "locked bookkeeping period" in result.detail
    assert 'Moneybird says "Sales invoice cannot be deleted"' in result.detail


@responses.activate
def test_a_refusal_message_that_could_name_a_person_is_not_repeated():
    responses.delete(f"{API}/sales_invoices/42.json", status=400,
                     json={"error": "Invoice for Anna de Jong cannot be deleted", "symbolic": {"id": "locked"}})

    result = connector().delete(RecordRef("moneybird", "sales_invoice", "42"))

    assert result.outcome is Outcome.NOT_SUPPORTED
    assert "Anna" not in result.detail and 'Moneybird says "id: locked"' in result.detail


@responses.activate
def test_anonymise_reads_patches_what_the_schema_accepts_and_reads_back():
    before = contact("42", delivery_method="Email", contact_people=[], notes=[])
    after = {**before, "phone": "", "email": "", "send_invoices_to_email": "", "lastname": "Geanonimiseerd",
             "delivery_method": "Manual"}
    read = matchers.query_param_matcher({"include_archived": "true"})
    responses.get(f"{API}/contacts/42.json", json=before, match=[read])
    responses.patch(f"{API}/contacts/42.json", json=after, match=[matchers.json_params_matcher(
        {"contact": {"phone": "", "send_invoices_to_email": "", "lastname": "Geanonimiseerd",
                     "delivery_method": "Manual"}})])  # `email` is not writable: it shows the invoice address
    responses.get(f"{API}/contacts/42.json", json=after, match=[read])

    result = connector().anonymise(RecordRef("moneybird", "contact", "42"), ["phone", "email", "lastname"])

    assert result.outcome is Outcome.DONE
    assert [c.request.method for c in responses.calls] == ["GET", "PATCH", "GET"]
    assert responses.calls[1].request.headers["Authorization"] == f"Bearer {TOKEN}"


@responses.activate
def test_anonymise_cannot_touch_a_documents_contact_copy():
    result = connector().anonymise(RecordRef("moneybird", "sales_invoice", "10"), ["email"])

    assert result.outcome is Outcome.NOT_SUPPORTED
    assert not responses.calls
    with pytest.raises(ValueError):
        connector().anonymise(RecordRef("moneybird", "contact", "42"), ["credit_card_number"])


@responses.activate
def test_search_queries_each_identifier_and_keeps_only_true_matches():
    contacts_url = f"{API}/contacts/filter.json"
    near_miss = contact("2", email="xanna@example.nl", send_invoices_to_email="")
    responses.get(contacts_url, json=[contact("1"), near_miss],
                  match=list_params(query="Anna@Example.nl", include_archived="true"))
    responses.get(contacts_url, json=[contact("1"), contact("3", phone="0612785634")],
                  match=list_params(query="12 34 56 78", include_archived="true"))
    responses.get(contacts_url, json=[contact("4", firstname="Anna", lastname="de Jong-Bakker")],
                  match=list_params(query="anna de jong", include_archived="true"))
    mock_documents(responses, invoices=[invoice()], estimates=[estimate()], contact_id="1")

    found = list(connector().search(Identifiers(emails=(" Anna@Example.nl ",), phones=("+31 6 1234 5678",),
                                                names=(" anna  de jong",))))

    assert [(r.record_type, r.record_id) for r in found] == [("contact", "1"), ("sales_invoice", "10"),
                                                           ("estimate", "20")]
    assert len(responses.calls) == 5  # 1 per e-mail, phone and name, 2 per contact found


@responses.activate
def test_a_phone_that_is_no_number_sends_no_query():
    assert list(connector().search(Identifiers(phones=("n/a", "12")))) == []
    assert not responses.calls


def test_one_phone_query_hits_every_notation_of_the_number():
    assert (phone_query("+31612345678"), phone_query("+31351234567")) == ("12 34 56 78", "35 23 45 67")
    for number, more in (("+31612345678", ["06-1234 5678"]), ("+31351234567", ["035 123 45 67"]),
                         ("+31667764738", [])):  # 066: a destination code of its own, written as any 06 number
        query = phone_query(number)
        for notation in [*phone_formats(number), *more]:
            assert all(term in notation for term in query.split()), (number, notation)
    assert phone_query("12") is None


def test_record_fields_cover_the_fields_the_rules_anonymise():
    assert {"phone", "email", "sepa_iban", "sepa_iban_account_name", "sepa_bic"} <= RECORD_FIELDS["contact"]
    assert RECORD_FIELDS["sales_invoice"] == RECORD_FIELDS["estimate"] == frozenset()


# -- against the sandbox fake ---------------------------------------------------------------
@pytest.fixture(scope="module")
def population():
    return generate(250, seed=11, today=TODAY)


@pytest.fixture
def sandbox(population):
    fake = MoneybirdFake(population)
    with FakeServer(fake) as server:
        yield fake, server, sandbox_connector(server, fake)


def sandbox_connector(server: FakeServer, fake: MoneybirdFake, **overrides) -> MoneybirdConnector:
    options = {"base_url": f"{server.url}/api/v2", "administration_id": fake.administration_id,
               "token": fake.token, "backoff_factor": 0}
    return MoneybirdConnector(**{**options, **overrides})


def moneybird_people(population):
    return [person for person in population.people if person.moneybird is not None]


def test_full_read_yields_the_whole_population_with_links_and_dates(population, sandbox):
    fake, _, mb = sandbox
    records = list(mb.records())

    contacts = {r.record_id: r for r in records if r.record_type == "contact"}
    documents = {r.fields.get("invoice_id") or r.fields.get("estimate_id"): r
                 for r in records if r.record_type != "contact"}
    people = moneybird_people(population)
    assert len(contacts) == len(people) > 100  # more than one page
    assert len(documents) == sum(len(p.moneybird.documents) for p in people) > 200
    for person in people:
        contact_id = fake.contact_ids[person.key]
        assert person.moneybird.email in contacts[contact_id].emails
        for document in person.moneybird.documents:
            record = documents[document.number]
            assert record.record_type == ("sales_invoice" if document.kind == "invoice" else "estimate")
            assert record.links == (Link("contact", RecordRef("moneybird", "contact", contact_id)),)
            assert record.document_date == document.date
            assert record.running_contract == (document.state in ("open", "late"))
    assert min(r.document_date for r in documents.values()) < date(TODAY.year - 5, 1, 1)  # not just this_year
    assert fake.count("GET") == fake.count("GET", status=200) < 10


def test_the_fakes_invoice_list_defaults_to_this_year_like_moneybird(sandbox):
    fake, server, _ = sandbox
    answer = requests.get(f"{server.url}/api/v2/{fake.administration_id}/sales_invoices.json",
                          headers={"Authorization": f"Bearer {fake.token}"})

    years = {invoice["invoice_date"][:4] for invoice in answer.json()}
    assert years == {str(TODAY.year)}
    assert len(fake.documents["sales_invoices"]) > len(answer.json())


def test_search_finds_a_person_by_email_in_another_case_and_phone_in_another_format(population, sandbox):
    fake, _, mb = sandbox
    person = next(p for p in moneybird_people(population)
                  if p.moneybird.phone and p.moneybird.documents and p.moneybird.phone != p.phone)
    contact_id = fake.contact_ids[person.key]

    by_email = list(mb.search(Identifiers(emails=(person.email.upper(),))))
    by_phone = list(mb.search(Identifiers(phones=(person.phone,))))

    for found in (by_email, by_phone):
        assert [r.record_id for r in found if r.record_type == "contact"] == [contact_id]
        assert len([r for r in found if r.record_type != "contact"]) == len(person.moneybird.documents)


def test_delete_removes_a_contact_without_documents_and_archives_one_with(population, sandbox):
    fake, _, mb = sandbox
    people = moneybird_people(population)
    bare = fake.contact_ids[next(p for p in people if not p.moneybird.documents).key]
    invoiced = fake.contact_ids[next(p for p in people if p.moneybird.documents).key]

    assert mb.delete(RecordRef("moneybird", "contact", bare)).outcome is Outcome.DONE
    kept = mb.delete(RecordRef("moneybird", "contact", invoiced))

    assert kept.outcome is Outcome.NOT_SUPPORTED
    contacts = {r.record_id: r for r in mb.records() if r.record_type == "contact"}
    assert bare not in contacts
    assert contacts[invoiced].fields["archived"] is True
    assert mb.delete(RecordRef("moneybird", "contact", bare)).outcome is Outcome.ALREADY_GONE


def test_invoices_in_a_locked_period_cannot_be_deleted(population):
    fake = MoneybirdFake(population, period_locked_until=TODAY)
    invoice_id = next(iter(fake.documents["sales_invoices"]))
    with FakeServer(fake) as server:
        result = sandbox_connector(server, fake).delete(RecordRef("moneybird", "sales_invoice", invoice_id))

    assert result.outcome is Outcome.NOT_SUPPORTED
    assert invoice_id in fake.documents["sales_invoices"]


def test_anonymise_through_the_fake_changes_version_and_keeps_history(population, sandbox):
    fake, server, mb = sandbox
    person = next(p for p in moneybird_people(population) if p.moneybird.phone)
    contact_id = fake.contact_ids[person.key]
    sync_url = f"{server.url}/api/v2/{fake.administration_id}/contacts/synchronization.json"
    auth = {"Authorization": f"Bearer {fake.token}"}
    before = requests.get(sync_url, headers=auth).json()

    result = mb.anonymise(RecordRef("moneybird", "contact", contact_id), ["phone", "email", "send_invoices_to_email"])

    assert result.outcome is Outcome.DONE and "event history" in result.detail
    after = requests.post(sync_url, json={"ids": [contact_id]}, headers=auth).json()
    assert [c["id"] for c in after] == [contact_id]
    assert (after[0]["phone"], after[0]["email"], after[0]["send_invoices_to_email"]) == ("", "", "")
    old_version = next(entry["version"] for entry in before if entry["id"] == contact_id)
    assert after[0]["version"] != old_version
    assert after[0]["events"][-1]["data"]["changes"]["phone"] == [person.moneybird.phone, ""]


def test_wrong_token_against_the_fake_is_an_auth_error(sandbox):
    fake, server, _ = sandbox

    with pytest.raises(VendorAuthError):
        list(sandbox_connector(server, fake, token="wrong").records())
    answer = requests.get(f"{server.url}/api/v2/{fake.administration_id}/contacts.json",
                          headers={"Authorization": "Bearer wrong"})
    assert (answer.status_code, answer.json()) == (401, {"error": "Authorization required"})


def test_the_fakes_429_is_absorbed_by_retries_when_the_client_does_not_pace():
    fake = MoneybirdFake(generate(12, seed=3, today=TODAY), rate_calls=2, rate_period=1)
    with FakeServer(fake) as server:
        records = list(sandbox_connector(server, fake, rate=None).records())

    assert len([r for r in records if r.record_type == "contact"]) == len(fake.contacts)
    assert fake.count(status=429) >= 1
    assert fake.count(status=200) == 6  # three id lists, three POSTs
