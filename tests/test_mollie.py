"""Tests for connectors.mollie (HTTP faked with `responses`) and the Mollie sandbox fake."""
from __future__ import annotations

import json
import math
import time
from datetime import date, datetime, timezone

import pytest
import responses
from responses import matchers

from connectors.base import Identifiers, Outcome, RecordRef
from connectors.http import VendorAuthError, VendorBadResponse, VendorUnavailable
from connectors.mollie import PLACEHOLDERS, MollieConnector
from vergeet.sandbox.fake_mollie import MollieFake
from vergeet.sandbox.population import generate
from vergeet.sandbox.server import FakeServer

API = "https://api.mollie.com/v2"
KEY = "test_dHar4XY7LxsDOtmnkVtjNVWXLSlXsM"
EMAIL = "Anna.deJong@Example.nl"


def connector(**kwargs) -> MollieConnector:
    return MollieConnector(base_url=API, api_key=KEY, rate=None, backoff_factor=0, **kwargs)


def customer(customer_id: str, email: str = EMAIL, name: str = "Anna de Jong") -> dict:
    return {"resource": "customer", "id": customer_id, "mode": "test", "name": name, "email": email,
            "locale": "nl_NL", "metadata": None, "createdAt": "2024-04-06T13:23:21.0Z",
            "_links": {"self": {"href": f"{API}/customers/{customer_id}", "type": "application/hal+json"}}}


def payment(payment_id: str, customer_id: str | None, created: str, *, paid: str | None = None,
            sequence: str = "oneoff", status: str = "paid") -> dict:
    body = {"resource": "payment", "id": payment_id, "mode": "test", "createdAt": created, "status": status,
            "amount": {"value": "85.00", "currency": "EUR"}, "description": "Coaching", "sequenceType": sequence,
            "details": {"consumerName": "A. de Jong", "consumerAccount": "NL55INGB0000000000"},
            "_links": {"self": {"href": f"{API}/payments/{payment_id}", "type": "application/hal+json"}}}
    if customer_id:
        body["customerId"] = customer_id
    if paid:
        body["paidAt"] = paid
    return body


def subscription(subscription_id: str, customer_id: str, status: str) -> dict:
    return {"resource": "subscription", "id": subscription_id, "mode": "test", "status": status,
            "createdAt": "2025-01-01T10:00:00+00:00", "interval": "1 month",
            "_links": {"customer": {"href": f"{API}/customers/{customer_id}", "type": "application/hal+json"}}}


def mandate(mandate_id: str, status: str) -> dict:
    return {"resource": "mandate", "id": mandate_id, "status": status, "method": "directdebit",
            "details": {"consumerName": "Anna de Jong", "consumerAccount": "NL55INGB0000000000"},
            "createdAt": "2025-01-01T10:00:00+00:00"}


def page(name: str, items: list[dict], next_href: str | None = None) -> dict:
    return {"count": len(items), "_embedded": {name: items},
            "_links": {"self": {"href": "ignored"}, "previous": None,
                       "next": {"href": next_href, "type": "application/hal+json"} if next_href else None}}


def listing(rsps: responses.RequestsMock, path: str, name: str, items: list[dict], **query: str) -> None:
    rsps.get(f"{API}/{path}", json=page(name, items),
             match=[matchers.query_param_matcher({"limit": "250", **query})])


# -- request shapes ------------------------------------------------------------------------------------------------

@responses.activate
def test_records_requests_bulk_lists_with_limit_250_and_the_bearer_key():
    listing(responses, "subscriptions", "subscriptions", [])
    listing(responses, "payments", "payments", [
        payment("tr_new", "cst_anna", "2025-03-02T10:00:00+00:00", paid="2025-03-03T09:00:00+00:00"),
        payment("tr_old", "cst_anna", "2024-05-01T10:00:00+00:00", status="failed"),
        payment("tr_anon", None, "2024-01-01T10:00:00+00:00")])
    listing(responses, "customers", "customers", [customer("cst_anna")])

    records = {r.record_id: r for r in connector().records()}

    assert [c.request.url for c in responses.calls] == [
        f"{API}/subscriptions?limit=250", f"{API}/payments?limit=250", f"{API}/customers?limit=250"]
    assert all(c.request.headers["Authorization"] == f"Bearer {KEY}" for c in responses.calls)
    anna = records["cst_anna"]
    assert (anna.emails, anna.first_name, anna.last_name) == ((EMAIL,), "Anna", "de Jong")
    assert anna.last_activity_at == datetime(2025, 3, 3, 9, tzinfo=timezone.utc)  # when she paid
    assert anna.running_contract is False and "_links" not in anna.fields
    new = records["tr_new"]
    assert new.document_date == date(2025, 3, 3)  # paid date
    assert [(link.relation, link.target) for link in new.links] == [
        ("customer", RecordRef("mollie", "customer", "cst_anna"))]
    assert records["tr_old"].document_date == date(2024, 5, 1)  # never paid: created date
    assert records["tr_old"].last_activity_at is None and not records["tr_old"].counts_as_contact
    assert records["tr_anon"].links == ()


@responses.activate
def test_listing_follows_next_hrefs_over_several_pages():
    pages = [[customer(f"cst_{n}{i}", f"klant.{n}{i}@example.nl", f"Klant {n}{i}") for i in range(2)] for n in "abc"]
    pages[0][1] = customer("cst_a1", "Nobody@Example.nl", "Someone Else")
    pages[2][1] = customer("cst_c1", "another@example.nl", "Anna de Jong")
    hrefs = [f"{API}/customers?from=cst_b0&limit=250", f"{API}/customers?from=cst_c0&limit=250"]
    responses.get(f"{API}/customers", json=page("customers", pages[0], hrefs[0]),
                  match=[matchers.query_param_matcher({"limit": "250"})])
    responses.get(f"{API}/customers", json=page("customers", pages[1], hrefs[1]),
                  match=[matchers.query_param_matcher({"from": "cst_b0", "limit": "250"})])
    responses.get(f"{API}/customers", json=page("customers", pages[2]),
                  match=[matchers.query_param_matcher({"from": "cst_c0", "limit": "250"})])
    for matched in ("cst_a1", "cst_c1"):
        for relation in ("payments", "subscriptions", "mandates"):
            listing(responses, f"customers/{matched}/{relation}", relation, [])
    listing(responses, "payments", "payments", [payment("tr_c1", "cst_c1", "2025-01-01T10:00:00+00:00")])

    found = list(connector().search(Identifiers(names=("anna  DE jong",), emails=(" NOBODY@example.nl",))))

    assert [c.request.url for c in responses.calls[:4]] == [f"{API}/customers?limit=250", *hrefs,
                                                             f"{API}/payments?limit=250"]
    assert [r.record_id for r in found] == ["cst_a1", "cst_c1"]  # tr_c1 is a matched customer's: listed there
    assert len(responses.calls) == 4 + 2 * 3  # two shared listings, then three lists per matched customer


@responses.activate
def test_a_next_href_that_repeats_is_a_bad_response():
    loop = f"{API}/customers?from=cst_a&limit=250"
    responses.get(f"{API}/customers", json=page("customers", [customer("cst_a")], loop))
    with pytest.raises(VendorBadResponse, match="same page twice"):
        list(connector().search(Identifiers(emails=(EMAIL,))))


# -- retries and errors --------------------------------------------------------------------------------------------

@responses.activate
def test_429_is_retried_after_the_retry_after_the_vendor_asked_for(monkeypatch):
    slept: list[float] = []
    monkeypatch.setattr(time, "sleep", slept.append)
    responses.get(f"{API}/customers", status=429, headers={"Retry-After": "3"},
                  json={"status": 429, "title": "Too Many Requests", "detail": "slow down", "_links": {}})
    responses.get(f"{API}/customers", json=page("customers", [customer("cst_anna")]))
    listing(responses, "payments", "payments", [])
    listing(responses, "customers/cst_anna/payments", "payments", [])
    listing(responses, "customers/cst_anna/subscriptions", "subscriptions", [])
    listing(responses, "customers/cst_anna/mandates", "mandates", [])

    found = list(connector().search(Identifiers(emails=(" anna.dejong@example.NL ",))))

    assert [r.record_id for r in found] == ["cst_anna"]
    assert slept == [3.0]
    assert [c.response.status_code for c in responses.calls[:2]] == [429, 200]


@responses.activate
def test_5xx_until_retries_run_out_is_vendor_unavailable_without_personal_data():
    responses.get(f"{API}/customers", status=503, body=f"<html>down; last user {EMAIL}</html>")
    with pytest.raises(VendorUnavailable) as caught:
        list(connector(retries=2).search(Identifiers(emails=(EMAIL,))))
    error = caught.value
    assert (error.vendor, error.method, error.path, error.status) == ("mollie", "GET", "/v2/customers", 503)
    assert len(responses.calls) == 3
    assert EMAIL.lower() not in str(error).lower() and "?" not in str(error)


@responses.activate
def test_a_body_that_is_not_json_is_a_bad_response():
    responses.get(f"{API}/subscriptions", body="<html>maintenance</html>", content_type="text/html")
    with pytest.raises(VendorBadResponse) as caught:
        list(connector().records())
    assert caught.value.path == "/v2/subscriptions"


@responses.activate
def test_json_of_the_wrong_shape_is_a_bad_response():
    responses.get(f"{API}/subscriptions", json={"count": 1, "items": []})
    with pytest.raises(VendorBadResponse, match="expected shape"):
        list(connector().records())


def test_a_key_the_sdk_rejects_is_not_echoed():
    with pytest.raises(ValueError) as caught:
        MollieConnector(api_key="secret-key-without-prefix")
    assert "secret-key" not in str(caught.value)


# -- running contracts ---------------------------------------------------------------------------------------------

@responses.activate
def test_a_running_subscription_or_an_open_payment_is_a_running_contract_a_valid_mandate_is_not():
    listing(responses, "subscriptions", "subscriptions", [subscription("sub_1", "cst_sub", "active"),
                                                          subscription("sub_2", "cst_mdt", "canceled")])
    listing(responses, "payments", "payments", [
        payment("tr_1", "cst_mdt", "2025-02-01T10:00:00+00:00", sequence="first", paid="2025-02-01T10:01:00+00:00"),
        payment("tr_2", "cst_old", "2025-02-01T10:00:00+00:00", sequence="first", paid="2025-02-01T10:01:00+00:00"),
        payment("tr_3", "cst_none", "2025-02-01T10:00:00+00:00"),
        payment("tr_4", "cst_open", "2025-02-01T10:00:00+00:00", status="open")])
    listing(responses, "customers", "customers", [customer(c) for c in ("cst_sub", "cst_mdt", "cst_old", "cst_none",
                                                                        "cst_open")])
    listing(responses, "customers/cst_sub/mandates", "mandates", [])
    listing(responses, "customers/cst_mdt/mandates", "mandates", [mandate("mdt_1", "valid")])
    listing(responses, "customers/cst_old/mandates", "mandates", [mandate("mdt_2", "invalid")])

    records = {r.record_id: r for r in connector().records()}

    assert {cid: records[cid].running_contract for cid in ("cst_sub", "cst_mdt", "cst_old", "cst_none", "cst_open")} \
        == {"cst_sub": True, "cst_mdt": False, "cst_old": False, "cst_none": False, "cst_open": True}
    assert not records["mdt_1"].running_contract and records["mdt_1"].last_name == "de Jong"
    assert records["tr_4"].running_contract and not records["sub_2"].running_contract
    assert records["sub_1"].links[0].target.record_id == "cst_sub"
    assert not any("cst_none/mandates" in c.request.url for c in responses.calls)  # oneoff payer: no mandates call


# -- actions -------------------------------------------------------------------------------------------------------

@responses.activate
def test_delete_customer_and_404_is_already_gone():
    responses.delete(f"{API}/customers/cst_here", status=204)
    responses.delete(f"{API}/customers/cst_gone", status=404, json={
        "status": 404, "title": "Not Found", "detail": "No customer exists with token cst_gone.",
        "_links": {"documentation": {"href": "https://docs.mollie.com/guides/handling-errors", "type": "text/html"}}})
    mollie = connector()
    assert mollie.delete(RecordRef("mollie", "customer", "cst_here")).outcome is Outcome.DONE
    assert mollie.delete(RecordRef("mollie", "customer", "cst_gone")).outcome is Outcome.ALREADY_GONE
    assert [c.request.method for c in responses.calls] == ["DELETE", "DELETE"]


def test_delete_of_a_payment_makes_no_http_call():
    with responses.RequestsMock() as rsps:  # any request would fail: nothing is registered
        result = connector().delete(RecordRef("mollie", "payment", "tr_7UhSN1zuXS"))
        assert len(rsps.calls) == 0
    assert result.outcome is Outcome.NOT_SUPPORTED
    assert "retains payment records" in result.detail and "legal obligation" in result.detail


@responses.activate
def test_anonymise_customer_patches_placeholders():
    responses.get(f"{API}/customers/cst_anna", json=customer("cst_anna", "anna@example.nl", "Anna de Jong"))
    responses.patch(f"{API}/customers/cst_anna", json=customer("cst_anna", "anonymised@example.com", "Anonymised"))
    result = connector().anonymise(RecordRef("mollie", "customer", "cst_anna"), ["email", "name"])
    assert result.outcome is Outcome.DONE
    request = responses.calls[1].request
    assert json.loads(request.body) == {"email": PLACEHOLDERS["email"], "name": PLACEHOLDERS["name"]}
    assert request.headers["Idempotency-Key"] and request.headers["Authorization"] == f"Bearer {KEY}"


@responses.activate
def test_a_repeated_anonymisation_reads_the_customer_and_sends_nothing():
    responses.get(f"{API}/customers/cst_anna", json=customer("cst_anna", "anonymised@example.com", "Anonymised"))
    result = connector().anonymise(RecordRef("mollie", "customer", "cst_anna"), ["email", "name"])
    assert result.outcome is Outcome.DONE and "nothing sent" in result.detail
    assert [c.request.method for c in responses.calls] == ["GET"]


@responses.activate
def test_a_patch_whose_answer_does_not_show_the_placeholders_fails():
    responses.get(f"{API}/customers/cst_anna", json=customer("cst_anna", "anna@example.nl", "Anna de Jong"))
    responses.patch(f"{API}/customers/cst_anna", json=customer("cst_anna", "anna@example.nl", "Anna de Jong"))
    with pytest.raises(VendorBadResponse, match="mollie: PATCH /v2/customers/cst_anna"):
        connector().anonymise(RecordRef("mollie", "customer", "cst_anna"), ["email", "name"])


@responses.activate
def test_a_delete_answered_200_instead_of_204_is_no_delete():
    responses.delete(f"{API}/customers/cst_anna", json={"resource": "customer", "id": "cst_anna"})
    with pytest.raises(VendorBadResponse, match="204"):
        connector().delete(RecordRef("mollie", "customer", "cst_anna"))


@responses.activate
def test_anonymise_payment_only_updates_what_the_api_allows():
    responses.get(f"{API}/payments/tr_1", json=payment("tr_1", None, "2025-01-01T10:00:00+00:00"))
    responses.patch(f"{API}/payments/tr_1", json={**payment("tr_1", None, "2025-01-01T10:00:00+00:00"),
                                                  "description": PLACEHOLDERS["description"]})
    result = connector().anonymise(RecordRef("mollie", "payment", "tr_1"), ["description", "billingAddress"])
    assert json.loads(responses.calls[1].request.body) == {"description": PLACEHOLDERS["description"]}
    assert result.outcome is Outcome.NOT_SUPPORTED and "billingAddress" in result.detail


@responses.activate
def test_anonymise_payment_mollie_refuses_is_not_supported():
    responses.get(f"{API}/payments/tr_1", json=payment("tr_1", None, "2025-01-01T10:00:00+00:00"))
    responses.patch(f"{API}/payments/tr_1", status=422, json={
        "status": 422, "title": "Unprocessable Entity", "detail": "The payment cannot be updated", "_links": {}})
    result = connector().anonymise(RecordRef("mollie", "payment", "tr_1"), ["metadata"])
    assert result.outcome is Outcome.NOT_SUPPORTED and "tr_1" in result.detail


# -- against the sandbox fake --------------------------------------------------------------------------------------

@pytest.fixture
def population():
    return generate(900, seed=11, today=date(2026, 3, 1))


@pytest.fixture
def sandbox(population):
    fake = MollieFake(population, rate_calls=10_000)
    with FakeServer(fake) as server:
        yield fake, server.url


def sandbox_connector(url: str, api_key: str = "test_sandboxmolliekey", **kwargs) -> MollieConnector:
    return MollieConnector(base_url=f"{url}/v2", api_key=api_key, rate=None, backoff_factor=0, **kwargs)


def test_full_read_matches_the_population_in_a_bounded_number_of_requests(population, sandbox):
    fake, url = sandbox
    mollie = sandbox_connector(url)
    records = list(mollie.records())
    customers = {r.record_id: r for r in records if r.record_type == "customer"}
    people = [p for p in population.people if p.mollie]

    assert len(customers) > 250  # more than one page
    assert set(customers) == {fake.customer_ids[p.key] for p in people}
    for person in people:
        customer_id = fake.customer_ids[person.key]
        record = customers[customer_id]
        assert record.emails == (person.mollie.email,)
        assert record.running_contract == person.mollie.subscription_active  # a valid mandate alone is no contract
        paid = [datetime.fromisoformat(p["paidAt"]) for p in fake.payments.values()
                if p.get("customerId") == customer_id and p["status"] == "paid"]
        assert record.last_activity_at == max(paid, default=None)
    payments = [r for r in records if r.record_type == "payment"]
    assert len(payments) == sum(len(p.mollie.payments) for p in people)
    assert all(r.document_date for r in payments)
    assert all(r.links[0].relation == "customer" for r in payments if "customerId" in r.fields)
    assert any(r.emails and not r.links for r in payments)  # paid without a customer: the billing address
    assert {r.record_id for r in records if r.record_type == "mandate"} == set(fake.mandates)
    pages = sum(math.ceil(len(items) / 250) for items in (fake.customers, fake.payments, fake.subscriptions))
    assert fake.count() == pages + len(fake.mandates)  # one mandates call per customer that has one


def test_search_by_email_finds_the_customer_and_its_relations(population, sandbox):
    fake, url = sandbox
    mollie = sandbox_connector(url)
    person = next(p for p in population.people if p.mollie and p.mollie.subscription_active)
    customer_id = fake.customer_ids[person.key]

    found = list(mollie.search(Identifiers(emails=(f"  {person.email.upper()} ",))))

    by_type = {t: {r.record_id for r in found if r.record_type == t} for t in ("customer", "payment", "mandate")}
    assert by_type["customer"] == {customer_id}
    assert by_type["payment"] == {k for k, v in fake.payments.items() if v.get("customerId") == customer_id}
    assert len(by_type["mandate"]) == 1
    assert any(r.record_type == "subscription" and r.running_contract for r in found)
    assert fake.count() == math.ceil(len(fake.customers) / 250) + math.ceil(len(fake.payments) / 250) + 3


def test_deleted_customer_is_gone_but_its_payments_stay(population, sandbox):
    fake, url = sandbox
    mollie = sandbox_connector(url)
    person = next(p for p in population.people if p.mollie and p.mollie.subscription_active)
    ref = RecordRef("mollie", "customer", fake.customer_ids[person.key])

    assert mollie.delete(ref).outcome is Outcome.DONE
    assert mollie.delete(ref).outcome is Outcome.ALREADY_GONE

    records = list(mollie.records())
    assert ref.record_id not in {r.record_id for r in records if r.record_type == "customer"}
    kept = [r for r in records if r.record_type == "payment" and r.links and r.links[0].target == ref]
    assert len(kept) == len(person.mollie.payments)
    subscriptions = [r for r in records if r.record_type == "subscription" and r.links[0].target == ref]
    assert subscriptions and not any(r.running_contract for r in subscriptions)
    assert fake.count("GET", f"/customers/{ref.record_id}/") == 0  # no mandates call for a deleted customer


def test_anonymised_customer_reads_back_with_placeholders(population, sandbox):
    fake, url = sandbox
    mollie = sandbox_connector(url)
    person = next(p for p in population.people if p.mollie)
    ref = RecordRef("mollie", "customer", fake.customer_ids[person.key])
    assert mollie.anonymise(ref, ["name", "email", "metadata"]).outcome is Outcome.DONE
    assert fake.customers[ref.record_id]["email"] == PLACEHOLDERS["email"]
    found = list(mollie.search(Identifiers(emails=(person.email,))))
    assert not [r for r in found if r.record_type == "customer"]
    assert all(r.record_type == "payment" and not r.links for r in found)  # only payments made without a customer


def test_wrong_key_is_an_auth_error(sandbox):
    fake, url = sandbox
    with pytest.raises(VendorAuthError) as caught:
        list(sandbox_connector(url, api_key="test_wrongkey").records())
    assert (caught.value.status, caught.value.path) == (401, "/v2/subscriptions")
    assert fake.count(status=401) == 1  # an auth error is not retried


def test_over_the_fakes_rate_the_connector_waits_for_retry_after_and_succeeds():
    small = generate(30, seed=5, today=date(2026, 3, 1))
    fake = MollieFake(small, rate_calls=2, rate_period=0.5)
    with FakeServer(fake) as server:
        records = list(sandbox_connector(server.url, retries=3).records())
    assert fake.count(status=429) >= 1
    assert fake.requests[-1].status == 200
    assert len([r for r in records if r.record_type == "customer"]) == len(fake.customers)
