"""Mollie as the real API behaves (issue 12), against the sandbox fake that now models it.

Each test names the audit row it checks (/work/shared/audits/mollie-calendar.md) and the Mollie OpenAPI
operation or component (github mollie/openapi `specs.yaml`) the behaviour comes from.
"""
from __future__ import annotations

import math
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path

import pytest
import requests
import responses
from dateutil.relativedelta import relativedelta
from responses import matchers

from connectors import mollie as mollie_connector
from connectors.base import Identifiers, Outcome, Record, RecordRef
from connectors.mollie import MollieConnector
from vergeet import access, erasure, pipeline
from vergeet.decide import decide
from vergeet.ledger import Ledger
from vergeet.rules import load_rules
from vergeet.sandbox import SANDBOX_PEPPER
from vergeet.sandbox.fake_mollie import MollieFake
from vergeet.sandbox.population import MolliePresence, Payment, Person, Population, generate
from vergeet.sandbox.server import FakeServer

ROOT = Path(__file__).resolve().parents[1]
RULES = load_rules(ROOT / "retention_rules.toml")
TODAY = date.today()
NOW = datetime.now(timezone.utc)
KEY = "test_sandboxmolliekey"


def ago(**delta: int) -> datetime:
    """A moment in the past, at noon UTC (away from any day boundary the rules count in)."""
    return datetime.combine(TODAY - relativedelta(**delta), time(12), tzinfo=timezone.utc)


def mollie_person(key: str, first: str, last: str, payments: list[datetime], *, mandate_valid: bool = False,
                  subscription_active: bool = False) -> Person:
    email = f"{first}.{last}@example.nl".lower().replace(" ", "")
    return Person(key=key, first_name=first, last_name=last, email=email, phone=None, mollie=MolliePresence(
        email, None, payments[0] - timedelta(days=1),
        payments=[Payment(moment, "paid", "85.00", "Coaching") for moment in payments],
        mandate_valid=mandate_valid, subscription_active=subscription_active))


@pytest.fixture
def people() -> list[Person]:
    return [
        # an ex-subscriber: monthly direct debits that ended 14 months ago, subscription cancelled, mandate valid
        mollie_person("ex", "Sanne", "Kok", [ago(months=16), ago(months=15), ago(months=14)]),
        # a one-click card customer: a valid mandate from its first payment, no subscription, two years quiet
        mollie_person("card", "Roel", "Smits", [ago(years=2)], mandate_valid=True),
        # a subscriber whose subscription still runs, although the last payment was long ago
        mollie_person("running", "Femke", "Prins", [ago(years=3), ago(years=2)], subscription_active=True),
        # paid once, two years ago; later only a payment link left to expire and failed debits
        mollie_person("lapsed", "Henk", "Vos", [ago(years=2)]),
    ]


@pytest.fixture
def sandbox(people):
    fake = MollieFake(Population(seed=0, today=TODAY, people=people), rate_calls=10_000)
    with FakeServer(fake) as server:
        yield fake, MollieConnector(base_url=f"{server.url}/v2", api_key=KEY, rate=None, backoff_factor=0)


def by_id(records: list[Record]) -> dict[str, Record]:
    return {record.record_id: record for record in records}


def plan_of(records: dict[str, list[Record]]):
    return decide(pipeline.identity_view(records, RULES), RULES, TODAY)


def acted_on(plan) -> dict[str, str]:
    return dict(zip(plan.actions["key"], plan.actions["action"]))


# -- 1. a valid mandate is not a running contract (M13, F-M1; spec cancel-subscription, create-mandate) -----------

def test_a_valid_mandate_is_no_running_contract_only_a_running_subscription_or_open_payment_is(sandbox):
    fake, mollie = sandbox
    ids = fake.customer_ids
    open_payment = fake.add_payment(ids["lapsed"], status="open", created_at=NOW - timedelta(hours=1))
    records = by_id(list(mollie.records()))

    [ex_mandate] = [m for m in fake.mandates.values() if m["customerId"] == ids["ex"]]
    [ex_subscription] = [s for s in fake.subscriptions.values() if s["customerId"] == ids["ex"]]
    assert (ex_mandate["status"], ex_subscription["status"]) == ("valid", "canceled")
    assert not records[ids["ex"]].running_contract
    assert not records[ids["card"]].running_contract
    assert not any(r.running_contract for r in records.values() if r.record_type == "mandate")
    assert records[ids["running"]].running_contract  # its subscription is active
    assert records[ids["lapsed"]].running_contract and records[open_payment].running_contract  # an open payment


def test_an_ex_subscriber_quiet_for_a_year_goes_in_mollie_and_everywhere_else(sandbox, people):
    fake, mollie = sandbox
    ex = people[0]
    others = [
        Record("moneybird", "contact", "mb1", emails=(f" {ex.email.upper()}",), first_name="Sanne", last_name="Kok",
               created_at=ago(years=3)),
        Record("google_calendar", "event", "ev1", emails=(ex.email,), created_at=ago(months=15),
               last_activity_at=ago(months=14)),
        # the active subscriber's calendar event of the same age stays: a running subscription is a contract
        Record("google_calendar", "event", "ev2", emails=(people[2].email,), created_at=ago(months=15),
               last_activity_at=ago(months=14)),
    ]

    plan = plan_of({"mollie": list(mollie.records()), "others": others})

    acted = acted_on(plan)
    assert acted[f"mollie/customer/{fake.customer_ids['ex']}"] == "delete"
    assert acted["moneybird/contact/mb1"] == "delete"
    assert acted["google_calendar/event/ev1"] == "anonymise"
    assert acted[f"mollie/customer/{fake.customer_ids['card']}"] == "delete"
    assert "google_calendar/event/ev2" not in acted
    assert f"mollie/customer/{fake.customer_ids['running']}" not in acted


# -- 2. only payments the person made date them (M12; spec entity-payment-response paidAt/authorizedAt) -----------

def test_payments_never_made_do_not_date_the_customer_and_paid_at_does(sandbox):
    fake, mollie = sandbox
    lapsed = fake.customer_ids["lapsed"]
    expired = fake.add_payment(lapsed, status="expired", created_at=ago(months=1))  # a payment link nobody paid
    canceled = fake.add_payment(lapsed, status="canceled", created_at=ago(months=2))
    failed = fake.add_payment(lapsed, status="failed", created_at=ago(months=3), sequence="recurring")
    # a direct debit created 13 months ago and paid 11 months ago dates the card customer by its paidAt
    debit = fake.add_payment(fake.customer_ids["card"], status="paid", created_at=ago(months=13),
                             ended_at=ago(months=11), sequence="recurring")

    records = by_id(list(mollie.records()))

    [paid] = [p for p in fake.payments.values() if p.get("customerId") == lapsed and p["status"] == "paid"]
    assert records[lapsed].last_activity_at == datetime.fromisoformat(paid["paidAt"])
    for payment_id in (expired, canceled, failed):
        record = records[payment_id]
        assert "paidAt" not in fake.payments[payment_id]
        assert record.last_activity_at is None and record.counts_as_contact is False
        assert record.document_date == datetime.fromisoformat(fake.payments[payment_id]["createdAt"]).date()
    assert records[debit].last_activity_at == ago(months=11) and records[debit].document_date == ago(months=11).date()
    assert records[fake.customer_ids["card"]].last_activity_at == ago(months=11)
    acted = acted_on(plan_of({"mollie": list(records.values())}))
    assert acted[f"mollie/customer/{lapsed}"] == "delete"  # the unpaid payments of the last months count for nothing
    assert f"mollie/customer/{fake.customer_ids['card']}" not in acted  # paid 11 months ago


@responses.activate
def test_an_authorized_payment_dates_by_authorized_at_and_runs_an_expired_one_neither():
    api = "https://api.mollie.com/v2"
    payments = [
        {"resource": "payment", "id": "tr_auth", "status": "authorized", "createdAt": "2025-03-01T10:00:00+00:00",
         "authorizedAt": "2025-03-02T10:00:00+00:00", "customerId": "cst_a", "sequenceType": "oneoff",
         "method": "klarna", "_links": {}},
        {"resource": "payment", "id": "tr_exp", "status": "expired", "createdAt": "2025-04-01T10:00:00+00:00",
         "expiredAt": "2025-04-01T10:15:00+00:00", "customerId": "cst_a", "sequenceType": "oneoff", "_links": {}},
    ]
    for path, name, items in (("subscriptions", "subscriptions", []), ("payments", "payments", payments),
                              ("customers", "customers", [{"resource": "customer", "id": "cst_a",
                                                           "email": "a@example.nl", "name": "A B",
                                                           "createdAt": "2024-01-01T10:00:00+00:00"}])):
        responses.get(f"{api}/{path}", match=[matchers.query_param_matcher({"limit": "250"})],
                      json={"count": len(items), "_embedded": {name: items}, "_links": {"next": None}})

    records = by_id(list(MollieConnector(api_key="test_x", base_url=api, rate=None).records()))

    assert records["tr_auth"].last_activity_at == datetime(2025, 3, 2, 10, tzinfo=timezone.utc)
    assert records["tr_auth"].running_contract and records["tr_auth"].counts_as_contact
    assert records["tr_auth"].document_date == date(2025, 3, 2)
    assert not records["tr_exp"].running_contract and not records["tr_exp"].counts_as_contact
    assert records["tr_exp"].document_date == date(2025, 4, 1)
    customer = records["cst_a"]
    assert customer.last_activity_at == datetime(2025, 3, 2, 10, tzinfo=timezone.utc) and customer.running_contract


# -- 3. the night after an erasure (M6, F-M4) -------------------------------------------------------------------

def test_a_pending_debit_of_an_erased_customer_that_settles_does_not_fail_the_night(sandbox):
    fake, mollie = sandbox
    customer = fake.customer_ids["running"]
    pending = fake.add_payment(customer, status="pending", created_at=NOW - timedelta(days=1), sequence="recurring")
    cached = Ledger("sqlite://", SANDBOX_PEPPER.encode())
    pipeline.sync(mollie, cached)  # the first night reads everything
    ref = RecordRef("mollie", "customer", customer)
    assert mollie.delete(ref).outcome is Outcome.DONE  # erased: Mollie cancels its mandate and subscription
    cached.update_cached_records("mollie", {}, [str(ref)])  # as mark_outcome does with a delete's outcome
    assert not pipeline.sync(mollie, cached).full  # the next night: nothing new
    fake.settle(pending, "paid")  # days later the bank settles the debit
    before = len(fake.requests)

    snapshot = pipeline.sync(mollie, cached)

    assert not snapshot.full
    assert snapshot.summaries[f"mollie/payment/{pending}"]["activity"] == fake.payments[pending]["paidAt"]
    gone = [r for r in fake.requests[before:] if r.path == f"/v2/customers/{customer}/mandates"]
    assert [r.status for r in gone] == [410]  # asked, and read as "no mandates"
    assert snapshot.summaries == pipeline.sync(mollie, Ledger("sqlite://", SANDBOX_PEPPER.encode())).summaries


def test_a_new_payment_naming_a_customer_mollie_never_had_is_read_as_it_is(sandbox):
    fake, mollie = sandbox
    cached = Ledger("sqlite://", SANDBOX_PEPPER.encode())
    pipeline.sync(mollie, cached)
    stray = fake.add_payment("cst_neverheld1", status="paid", created_at=NOW, sequence="first")

    snapshot = pipeline.sync(mollie, cached)

    assert f"mollie/payment/{stray}" in snapshot.summaries
    assert fake.requests[-1].path == "/v2/customers/cst_neverheld1/mandates" and fake.requests[-1].status == 404


# -- 4. 404 and 410 on a customer are both "already gone" (M8; spec delete-customer, get-profile 410) ------------

def test_a_deleted_customer_answers_410_and_a_customer_never_held_404_both_already_gone(sandbox):
    fake, mollie = sandbox
    ref = RecordRef("mollie", "customer", fake.customer_ids["ex"])
    assert mollie.delete(ref).outcome is Outcome.DONE

    assert mollie.delete(ref).outcome is Outcome.ALREADY_GONE
    assert mollie.anonymise(ref, ["name", "email"]).outcome is Outcome.ALREADY_GONE
    never = RecordRef("mollie", "customer", "cst_neverheld1")
    assert mollie.delete(never).outcome is Outcome.ALREADY_GONE
    assert mollie.anonymise(never, ["email"]).outcome is Outcome.ALREADY_GONE
    statuses = [(r.method, r.path.endswith("neverheld1"), r.status) for r in fake.requests]
    assert statuses == [("DELETE", False, 204), ("DELETE", False, 410), ("GET", False, 410),  # read before a patch
                        ("DELETE", True, 404), ("GET", True, 404)]


# -- 5. /v2/subscriptions has no documented order (M5, F-M3; spec list-all-subscriptions) ------------------------

def test_the_fake_serves_all_subscriptions_in_an_order_that_is_not_newest_first(sandbox):
    fake, mollie = sandbox
    fake.add_subscription(fake.customer_ids["lapsed"], created_at=NOW)
    served = requests.get(f"{mollie.client.api_endpoint}/v2/subscriptions", params={"limit": 250},
                          headers={"Authorization": f"Bearer {KEY}"}, timeout=5).json()["_embedded"]["subscriptions"]
    assert [s["id"] for s in served] == sorted(fake.subscriptions)
    newest_first = sorted(served, key=lambda s: s["createdAt"], reverse=True)
    assert served != newest_first
    assert all(s["customerId"] == fake.owner[s["id"]] for s in served)  # F-M2


def test_an_incremental_night_sees_every_subscription_whatever_the_lists_order(monkeypatch):
    monkeypatch.setattr(mollie_connector, "PAGE_LIMIT", 5)
    fake = MollieFake(generate(200, seed=4, today=TODAY), rate_calls=10_000)
    with FakeServer(fake) as server:
        mollie = MollieConnector(base_url=f"{server.url}/v2", api_key=KEY, rate=None, backoff_factor=0)
        cached = Ledger("sqlite://", SANDBOX_PEPPER.encode())
        pipeline.sync(mollie, cached)
        # a subscription created now whose id the list serves last, beyond the first page
        customer = next(c for c in sorted(fake.customers) if not any(
            s["customerId"] == c for s in fake.subscriptions.values()))
        new = fake.add_subscription(customer, created_at=NOW, subscription_id="sub_zzzzzzzzzz")
        assert sorted(fake.subscriptions).index(new) >= 5
        before = len(fake.requests)

        snapshot = pipeline.sync(mollie, cached)

        subscriptions = {key for key in snapshot.summaries if key.startswith("mollie/subscription/")}
        assert subscriptions == {f"mollie/subscription/{s}" for s in fake.subscriptions}  # none dropped, new one in
        assert snapshot.summaries[f"mollie/subscription/{new}"]["running"]
        assert ["customer", f"mollie/customer/{customer}"] in snapshot.summaries[f"mollie/subscription/{new}"]["links"]
        paths = [r.path for r in fake.requests[before:]]
        assert paths.count("/v2/subscriptions") == math.ceil(len(fake.subscriptions) / 5)  # the list, whole
        assert snapshot.summaries == pipeline.sync(mollie, Ledger("sqlite://", SANDBOX_PEPPER.encode())).summaries


# -- 6. payments without a customer are found (M16, M20; spec payment-address, payment-details) ------------------

def test_search_finds_payments_without_a_customer_by_billing_email_and_payer_names(sandbox, people):
    fake, mollie = sandbox
    henk = people[3]
    link = fake.add_customer_less_payment(given_name="Henk", family_name="Vos", email=henk.email.upper(),
                                          created_at=ago(months=2))
    card = fake.add_customer_less_payment(card_holder="HENK VOS", created_at=ago(months=3))
    bank = fake.add_customer_less_payment(consumer_name="Henk  Vos", created_at=ago(months=4))
    other = fake.add_customer_less_payment(given_name="Henk", family_name="Vis", email="henk@vis.example",
                                           created_at=ago(months=2))
    fake.requests.clear()

    found = by_id(list(mollie.search(Identifiers(emails=(f" {henk.email} ",), names=("henk vos",)))))

    assert {link, card, bank} <= set(found) and other not in found
    assert found[link].emails == (henk.email.upper(),) and found[link].links == ()
    assert (found[card].first_name, found[card].last_name) == ("HENK", "VOS")  # details.cardHolder as a name
    customer = fake.customer_ids["lapsed"]
    assert set(found) == {customer, link, card, bank} | {
        p for p, v in fake.payments.items() if v.get("customerId") == customer}
    pages = math.ceil(len(fake.customers) / 250) + math.ceil(len(fake.payments) / 250)
    assert len(fake.requests) == pages + 3  # the two scans once, shared; then three lists for the one customer


def test_search_by_a_billing_phone_scans_only_the_payments_once():
    with responses.RequestsMock() as rsps:
        api = "https://api.mollie.com/v2"
        payment = {"resource": "payment", "id": "tr_phone", "status": "paid", "createdAt": "2025-03-01T10:00:00Z",
                   "paidAt": "2025-03-01T10:02:00Z", "billingAddress": {"phone": "+31612345678"}, "_links": {}}
        other = {**payment, "id": "tr_other", "billingAddress": {"phone": "+31687654321"}}
        rsps.get(f"{api}/payments", match=[matchers.query_param_matcher({"limit": "250"})],
                 json={"count": 2, "_embedded": {"payments": [payment, other]}, "_links": {"next": None}})
        found = list(MollieConnector(api_key="test_x", base_url=api, rate=None).search(
            Identifiers(phones=("06-12345678", "+31 6 1234 5678"))))
        assert [r.record_id for r in found] == ["tr_phone"] and found[0].phones == ("+31612345678",)
        assert len(rsps.calls) == 1  # customers have no phone: only the payments are scanned


def test_the_access_report_lists_the_customer_less_payments_of_the_person(sandbox, people):
    fake, mollie = sandbox
    henk = people[3]
    link = fake.add_customer_less_payment(given_name="Henk", family_name="Vos", email=henk.email,
                                          created_at=ago(days=9))

    found = access.find_person({"mollie": mollie}, Identifiers(emails=(henk.email,)), RULES)
    report = access.access_report(found, RULES, subject=Identifiers(emails=(henk.email,)), as_of=TODAY)

    listed = {(r["record_type"], r["record_id"]) for r in report["records"]}
    assert ("payment", link) in listed and ("customer", fake.customer_ids["lapsed"]) in listed


def test_an_erasure_plan_deletes_the_customer_and_reports_its_customer_less_payment_as_kept_by_mollie(sandbox, people):
    fake, mollie = sandbox
    henk = people[3]
    link = fake.add_customer_less_payment(given_name="Henk", family_name="Vos", email=henk.email,
                                          created_at=ago(days=9))
    ledger = Ledger("sqlite://", SANDBOX_PEPPER.encode())
    asked = Identifiers(emails=(henk.email,))
    request = erasure.register(ledger, asked, RULES, received=TODAY, verified_by="ID gezien", scope=["all"])

    plan = erasure.plan_erasure({"mollie": mollie}, asked, RULES, ledger, request, as_of=TODAY, systems=None).plan

    assert acted_on(plan) == {f"mollie/customer/{fake.customer_ids['lapsed']}": "delete"}
    kept = plan.kept.set_index("key")
    assert kept.loc[f"mollie/payment/{link}", "retained_by"] == "mollie"


# -- 7. the fake models what the spec says --------------------------------------------------------------------

def test_the_seeded_fake_has_ex_subscribers_with_valid_mandates_and_payments_mollie_would_show():
    fake = MollieFake(generate(900, seed=11, today=date(2026, 3, 1)))
    cancelled = [s for s in fake.subscriptions.values() if s["status"] == "canceled"]
    assert cancelled and all(fake.mandates[s["mandateId"]]["status"] == "valid" for s in cancelled)  # F-M1
    assert all(m["customerId"] in fake.customers for m in fake.mandates.values())  # F-M2
    assert all(s["customerId"] in fake.customers for s in fake.subscriptions.values())
    customer_less = [p for p in fake.payments.values() if "customerId" not in p]
    assert customer_less and all(p["billingAddress"]["email"] and p["billingAddress"]["familyName"]
                                 for p in customer_less)
    for status, stamp in (("expired", "expiredAt"), ("canceled", "canceledAt"), ("failed", "failedAt")):
        ended = [p for p in fake.payments.values() if p["status"] == status]
        assert ended and all(stamp in p and "paidAt" not in p and not p["details"] for p in ended), status
    assert all("paidAt" in p for p in fake.payments.values() if p["status"] == "paid")
    assert any((p["details"] or {}).get("cardHolder") for p in fake.payments.values())


def test_a_deleted_customers_payments_keep_changing(sandbox):
    fake, mollie = sandbox
    customer = fake.customer_ids["ex"]
    assert mollie.delete(RecordRef("mollie", "customer", customer)).outcome is Outcome.DONE
    theirs = [p for p in fake.payments.values() if p.get("customerId") == customer]
    assert theirs and all(fake.mandates[p["mandateId"]]["status"] == "invalid" for p in theirs if "mandateId" in p)
    for pick in range(1000):
        if any("amountRefunded" in p for p in theirs):
            break
        fake.change(pick)
    assert any("amountRefunded" in p for p in theirs)  # change() lands on them: a refund after the erasure
    records = by_id(list(mollie.records()))
    assert all(p["id"] in records for p in theirs) and customer not in records
