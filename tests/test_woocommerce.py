"""The WooCommerce connector against the WooCommerce fake: paging, dating, identifiers, guest orders, deletes with
force, refusals, the nightly read, corrections, and the sandbox end to end (purge, access, erasure)."""
from __future__ import annotations

import json
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from urllib.parse import parse_qs

import pytest
import requests
from dateutil.relativedelta import relativedelta
from starlette.responses import JSONResponse
from typer.testing import CliRunner

from connectors import woocommerce
from connectors.base import FieldChange, Identifiers, Outcome, RecordRef
from connectors.http import VendorAuthError, VendorBadResponse, VendorRejected, VendorUnavailable
from connectors.woocommerce import CUSTOMER, ORDER, WooCommerceConnector, api_base_url
from vergeet.cli import app, run_purge
from vergeet.config import load_config, parse_config
from vergeet.errors import BadInput
from vergeet.rules import load_rules
from vergeet.sandbox import Sandbox
from vergeet.sandbox.fake_woocommerce import PREFIX, WooCommerceFake
from vergeet.sandbox.population import Person, Population, ShopOrder, WooCommercePresence
from vergeet.sandbox.server import FakeServer

TODAY = date.today()
RULES = load_rules(Path(__file__).resolve().parents[1] / "retention_rules.toml")


def at(day: date, hour: int = 10) -> datetime:
    return datetime.combine(day, time(hour), tzinfo=timezone.utc)


def shopper(key: str, first: str, last: str, email: str, *orders: ShopOrder, registered: bool = True,
            phone: str | None = None, since: date | None = None) -> Person:
    return Person(key=key, first_name=first, last_name=last, email=email.strip().lower(), phone=phone,
                  street="Kerkstraat 1", zipcode="1211 AB", city="Hilversum",
                  woocommerce=WooCommercePresence(email, phone, at(since or TODAY - relativedelta(years=9)),
                                                  registered=registered, orders=list(orders)))


def order(day: date, status: str = "completed", shipped: bool = False) -> ShopOrder:
    return ShopOrder(at(day), status, "E-book Rust in je hoofd", "19.95", shipped)


def population(*people: Person) -> Population:
    return Population(7, TODAY, list(people))


@pytest.fixture
def served():
    fake = WooCommerceFake(population())
    with FakeServer(fake) as server:
        yield fake, server


def connector(server: FakeServer, fake: WooCommerceFake, **options) -> WooCommerceConnector:
    options = {"rate": None, "backoff_factor": 0.01, "retries": 1} | options
    return WooCommerceConnector(base_url=server.url, consumer_key=fake.consumer_key,
                                consumer_secret=fake.consumer_secret, **options)


def queries(fake: WooCommerceFake, resource: str) -> list[dict[str, str]]:
    return [{k: v[0] for k, v in parse_qs(r.query).items()} for r in fake.requests
            if r.path == f"{PREFIX}/{resource}" and r.method == "GET"]


def seeded(fake: WooCommerceFake, *people: Person) -> None:
    for person in people:
        fake.population.people.append(person)
        fake.add_person(person)


# -- reading --------------------------------------------------------------------------------------------------
def test_every_page_is_read_a_hundred_at_a_time_up_to_x_wp_totalpages(served):
    fake, server = served
    seeded(fake, shopper("p1", "Anna", "Bakker", "anna@example.nl",
                         *(order(TODAY - timedelta(days=n)) for n in range(230))))
    records = list(connector(server, fake).records())
    assert sorted(int(r.record_id) for r in records if r.record_type == ORDER) == sorted(fake.orders)
    asked = queries(fake, "orders")
    assert [(q["status"], q["page"], q["per_page"], q["orderby"], q["order"]) for q in asked] == [
        ("any", "1", "100", "id", "asc"), ("any", "2", "100", "id", "asc"), ("any", "3", "100", "id", "asc"),
        ("trash", "1", "100", "id", "asc")]
    assert [q["role"] for q in queries(fake, "customers")] == ["customer"]  # the administrator is not read


def test_a_listing_without_x_wp_totalpages_fails_the_read_instead_of_passing_for_complete(served, monkeypatch):
    fake, server = served
    seeded(fake, shopper("p1", "Anna", "Bakker", "anna@example.nl", order(TODAY)))
    page = WooCommerceFake._page

    def without_header(self, request, rows, orderby):
        response = page(self, request, rows, orderby)
        del response.headers["X-WP-TotalPages"]
        return response

    monkeypatch.setattr(WooCommerceFake, "_page", without_header)
    with pytest.raises(VendorBadResponse) as caught:
        list(connector(server, fake).records())
    assert "\n" not in str(caught.value) and "woocommerce: GET /customers" in str(caught.value)


def test_the_fake_refuses_the_request_shapes_woocommerce_refuses(served, monkeypatch):
    fake, server = served
    seeded(fake, shopper("p1", "Anna", "Bakker", "anna@example.nl", order(TODAY)))
    monkeypatch.setattr(woocommerce, "PAGE_SIZE", 101)
    with pytest.raises(VendorRejected) as caught:
        list(connector(server, fake).records())
    assert caught.value.status == 400 and "\n" not in str(caught.value)
    auth = (fake.consumer_key, fake.consumer_secret)
    base = server.url + PREFIX
    bad = requests.get(f"{base}/orders", params={"status": "open"}, auth=auth, timeout=5)
    assert bad.status_code == 400 and bad.json()["code"] == "rest_invalid_param"
    one = next(iter(fake.orders))
    trashed = requests.delete(f"{base}/orders/{one}", auth=auth, timeout=5)  # no force: to the trash
    assert trashed.status_code == 200 and fake.orders[one]["status"] == "trash"
    again = requests.delete(f"{base}/orders/{one}", auth=auth, timeout=5)
    assert again.status_code == 410 and again.json()["code"] == "woocommerce_rest_already_trashed"
    refused = requests.delete(f"{base}/customers/2", auth=auth, timeout=5)
    assert refused.status_code == 501 and refused.json() == {
        "code": "woocommerce_rest_trash_not_supported", "message": "Customers do not support trashing.",
        "data": {"status": 501}}
    admin = requests.delete(f"{base}/customers/1", params={"force": "true"}, auth=auth, timeout=5)
    assert admin.status_code == 403 and 1 in fake.users


def test_an_order_is_a_document_of_its_creation_day_and_running_while_not_paid_or_delivered(served):
    fake, server = served
    created = TODAY - relativedelta(years=2)
    seeded(fake, shopper("p1", "Anna", "Bakker", "anna@example.nl", order(created), order(TODAY, "on-hold"),
                         order(TODAY, "processing"), order(TODAY, "pending"), order(TODAY, "cancelled"),
                         order(TODAY, "checkout-draft")))
    fake.orders[100]["date_paid_gmt"] = (at(created) + timedelta(days=3)).strftime("%Y-%m-%dT%H:%M:%S")
    records = {r.record_id: r for r in connector(server, fake).records() if r.record_type == ORDER}
    first = records["100"]
    assert first.document_date == created and first.created_at == at(created)
    assert first.last_activity_at == at(created) + timedelta(days=3)  # paid later: the newest moment
    by_status = {r.fields["status"]: r for r in records.values()}
    assert {s for s, r in by_status.items() if r.running_contract} == {"on-hold", "processing", "pending"}
    assert [s for s, r in by_status.items() if not r.counts_as_contact] == ["checkout-draft"]


def test_identifiers_come_from_the_account_billing_and_shipping_and_a_guest_order_carries_its_person(served):
    fake, server = served
    anna = shopper("p1", "Anna", "Bakker", " Anna@Example.nl ", order(TODAY, shipped=True), phone="06-12345678")
    bram = shopper("p2", "Bram", "de Vries", "bram@example.nl", order(TODAY), registered=False, phone="0351234567")
    seeded(fake, anna, bram)
    fake.users[2]["billing"]["email"] = "anna.facturen@example.nl"
    fake.users[2]["shipping"]["phone"] = "+31 35 765 4321"
    records = {str(r.ref): r for r in connector(server, fake).records()}
    customer = records["woocommerce/customer/2"]
    assert customer.emails == ("Anna@Example.nl", "anna.facturen@example.nl")
    assert customer.phones == ("06-12345678", "+31 35 765 4321") and customer.name == "Anna Bakker"
    assert customer.created_at == at(TODAY - relativedelta(years=9)) and customer.last_activity_at is None
    annas, brams = (r for r in records.values() if r.record_type == ORDER)
    assert [str(link.target) for link in annas.links] == ["woocommerce/customer/2"]
    assert brams.fields["customer_id"] == 0 and brams.links == ()
    assert brams.emails == ("bram@example.nl",) and brams.phones == ("0351234567",) and brams.name == "Bram de Vries"


def test_search_matches_any_notation_and_brings_a_customers_orders_and_an_orders_customer(served):
    fake, server = served
    anna = shopper("p1", "Anna", "Bakker", "anna@example.nl", order(TODAY), phone="06-12345678")
    bram = shopper("p2", "Bram", "de Vries", "bram@example.nl", order(TODAY), registered=False, phone="0351234567")
    seeded(fake, anna, bram, shopper("p3", "Eva", "Bos", "eva@example.nl", order(TODAY)))
    fake.orders[100]["billing"]["email"] = "anna.werk@example.nl"  # Anna's order, under another address
    client = connector(server, fake)
    by_phone = {str(r.ref) for r in client.search(Identifiers(phones=("+31 6 1234 5678",)))}
    assert by_phone == {"woocommerce/customer/2", "woocommerce/order/100"}
    by_order = {str(r.ref) for r in client.search(Identifiers(emails=("ANNA.WERK@example.nl",)))}
    assert by_order == {"woocommerce/customer/2", "woocommerce/order/100"}
    guest = {str(r.ref) for r in client.search(Identifiers(phones=("+31351234567",), names=("bram de vries",)))}
    assert guest == {"woocommerce/order/101"}
    reads = fake.count("GET")
    assert {str(r.ref) for r in client.search(Identifiers(names=("Eva Bos",)))} == {"woocommerce/customer/3",
                                                                                     "woocommerce/order/102"}
    assert fake.count("GET") == reads  # the rounds of one request read the shop once


# -- acting ---------------------------------------------------------------------------------------------------
def test_a_delete_is_forced_past_the_trash_read_back_and_a_second_one_finds_it_gone(served):
    fake, server = served
    seeded(fake, shopper("p1", "Anna", "Bakker", "anna@example.nl", order(TODAY - relativedelta(years=8)),
                         order(TODAY)))
    client = connector(server, fake)
    done = client.delete(RecordRef("woocommerce", ORDER, "100"))
    assert done.outcome is Outcome.DONE and 100 not in fake.orders
    assert [r.query for r in fake.requests if r.method == "DELETE"] == ["force=true"]
    assert client.delete(RecordRef("woocommerce", ORDER, "100")).outcome is Outcome.ALREADY_GONE
    gone = client.delete(RecordRef("woocommerce", CUSTOMER, "2"))
    assert gone.outcome is Outcome.DONE and 2 not in fake.users
    assert fake.orders[101]["customer_id"] == 0  # WooCommerce keeps the order, as a guest order
    assert client.delete(RecordRef("woocommerce", CUSTOMER, "2")).outcome is Outcome.ALREADY_GONE


class TrashingShop(WooCommerceFake):
    """A shop where a plugin turns every delete of an order into a move to the trash."""

    async def order(self, request):
        if request.method != "DELETE":
            return await super().order(request)
        row = self.orders[int(request.path_params["id"])]
        row["status"] = "trash"
        return JSONResponse(row)


def test_a_delete_woocommerce_only_trashes_is_handed_to_the_owner():
    fake = TrashingShop(population(shopper("p1", "Anna", "Bakker", "anna@example.nl", order(TODAY))))
    with FakeServer(fake) as server:
        result = connector(server, fake).delete(RecordRef("woocommerce", ORDER, "100"))
    assert result.outcome is Outcome.NOT_SUPPORTED and "trash" in result.detail and 100 in fake.orders


@pytest.mark.parametrize("fault", ["html", "missing_id", "wrong_id", "truncated_json"])
def test_an_answer_that_does_not_prove_the_delete_is_never_counted_as_done(served, fault):
    fake, server = served
    seeded(fake, shopper("p1", "Anna", "Bakker", "anna@example.nl", order(TODAY)))
    fake.inject(fault, method="DELETE")
    with pytest.raises(VendorBadResponse) as caught:
        connector(server, fake).delete(RecordRef("woocommerce", ORDER, "100"))
    assert "\n" not in str(caught.value) and str(caught.value).startswith("woocommerce: ")


def test_a_wrong_key_is_one_line_naming_what_to_check_never_the_secret(served):
    fake, server = served
    client = WooCommerceConnector(base_url=server.url, consumer_key=fake.consumer_key,
                                  consumer_secret="cs_wrong-secret", rate=None)
    with pytest.raises(VendorAuthError) as caught:
        list(client.records())
    message = str(caught.value)
    assert "\n" not in message and "cs_wrong-secret" not in message and fake.consumer_key not in message
    assert "woocommerce_rest_authentication_error" in message and "Read/Write" in message
    read_only = WooCommerceFake(population(shopper("p1", "Anna", "Bakker", "anna@example.nl", order(TODAY))),
                                write=False)
    with FakeServer(read_only) as other:
        with pytest.raises(VendorAuthError):
            connector(other, read_only).delete(RecordRef("woocommerce", ORDER, "100"))
        assert 100 in read_only.orders


def test_a_shop_that_keeps_failing_is_one_error_line_after_the_retries(served):
    fake, server = served
    fake.fail_next(5, 503)
    with pytest.raises(VendorUnavailable) as caught:
        list(connector(server, fake, retries=2).records())
    assert "\n" not in str(caught.value) and fake.count(status=503) == 3


def test_the_night_after_a_full_read_asks_only_orders_modified_since_and_sees_a_trashed_one(served):
    fake, server = served
    seeded(fake, shopper("p1", "Anna", "Bakker", "anna@example.nl", order(TODAY - timedelta(days=40)),
                         order(TODAY - timedelta(days=20))))
    client = connector(server, fake)

    class Seen:
        """What the last run saw, by the fields of each record."""

        def __init__(self, records=()):
            self.fields = {r.ref: r.fields for r in records}

        def changed(self, records):
            return [r for r in records if self.fields.get(r.ref) != r.fields]

    first = client.changes(None, Seen())
    assert first.full and {r.record_id for r in first.records} == {"2", "100", "101"}
    newest = max(datetime.fromisoformat(o["date_modified_gmt"]) for o in fake.orders.values())
    assert datetime.fromisoformat(first.cursor["orders_modified"]) == newest.replace(tzinfo=timezone.utc)
    fake.requests.clear()
    fake.remove(0)  # the owner trashes order 100 in the admin
    night = client.changes(first.cursor, Seen(first.records))
    asked = queries(fake, "orders")
    since = (newest - timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%S")  # a second's overlap, no more
    assert [(q["status"], q["modified_after"], q["dates_are_gmt"]) for q in asked] == [("any", since, "true"),
                                                                                       ("trash", since, "true")]
    assert [(r.record_id, r.fields["status"]) for r in night.records if r.record_type == ORDER] == [("100", "trash")]
    assert [(listing.record_type, set(listing.ids)) for listing in night.listings] == [(CUSTOMER, {"2"})]


def test_a_customer_is_corrected_with_put_and_an_order_keeps_the_address_it_was_placed_with(served):
    fake, server = served
    seeded(fake, shopper("p1", "Anna", "Bakker", "anna@example.nl", order(TODAY), phone="06-12345678"))
    client = connector(server, fake)
    records = {r.record_type: r for r in client.records()}
    changes = client.plan_correction(records[CUSTOMER], {"phone": "06-87654321", "name": "Anna de Wit"})
    assert [(c.field, c.current, c.refused) for c in changes] == [("phone", "06-12345678", None),
                                                                  ("name", "Anna Bakker", None)]
    assert client.correct(changes).outcome is Outcome.DONE
    user = fake.users[2]
    assert (user["billing"]["phone"], user["first_name"], user["last_name"], user["billing"]["last_name"]) == (
        "06-87654321", "Anna", "de Wit", "de Wit")
    puts = fake.count("PUT")
    again = client.plan_correction(client.read(records[CUSTOMER].ref), {"phone": "06-87654321"})
    assert client.correct(again).outcome is Outcome.DONE and fake.count("PUT") == puts  # nothing left to write
    kept = client.plan_correction(records[ORDER], {"phone": "06-87654321"})
    assert [c.refused for c in kept] == ["issued_document"]
    taken = FieldChange(records[CUSTOMER].ref, "email", "email", "anna@example.nl", "eva@example.nl")
    fake.users[3] = dict(fake.users[2], id=3, email="eva@example.nl")
    refused = client.correct([taken])
    assert refused.outcome is Outcome.NOT_SUPPORTED and "woocommerce_rest_customer_invalid_email" in refused.detail


# -- configuration --------------------------------------------------------------------------------------------
def config_text(table: str) -> str:
    return f'[store]\nurl = "sqlite://"\n[connectors.woocommerce]\n{table}'


def test_the_config_takes_the_shops_https_address_and_any_pace(tmp_path):
    config = parse_config(config_text('base_url = "https://shop.example.nl/"\nconsumer_key = "env:WC_KEY"\n'
                                      'consumer_secret = "env:WC_SECRET"\nrate = { calls = 20, period_seconds = 1 }\n'),
                          str(tmp_path / "vergeet.toml"))
    assert config.connectors.woocommerce.rate.calls == 20  # no vendor limit to stay under: faster is allowed
    assert api_base_url(config.connectors.woocommerce.base_url) == "https://shop.example.nl/wp-json/wc/v3"
    assert api_base_url("https://shop.example.nl/wp-json/wc/v3/") == "https://shop.example.nl/wp-json/wc/v3"
    with pytest.raises(BadInput) as caught:
        parse_config(config_text('base_url = "http://shop.example.nl"\nconsumer_key = "k"\nconsumer_secret = "s"\n'),
                     str(tmp_path / "vergeet.toml"))
    assert "connectors.woocommerce.base_url" in str(caught.value)


# -- the sandbox, end to end ----------------------------------------------------------------------------------
def test_the_sandbox_purge_access_and_erasure_cover_the_shop(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # where `erase` writes its certificates
    old = shopper("old", "Henk", "Smit", "henk.smit@example.nl", order(TODAY - relativedelta(years=8)),
                  order(TODAY - relativedelta(years=7, days=10)))
    lapsed = shopper("lapsed", "Iris", "Kok", "iris.kok@example.nl", order(TODAY - relativedelta(years=3)))
    guest = shopper("guest", "Kees", "Prins", "kees@example.nl", order(TODAY - relativedelta(years=7, months=2)),
                    order(TODAY - relativedelta(months=2)), registered=False)
    active = shopper("active", "Noor", "Visser", "noor@example.nl", order(TODAY - relativedelta(years=4)),
                     order(TODAY - timedelta(days=3), "processing"), phone="06-11223344")
    fresh = shopper("fresh", "Tess", "Bos", "tess@example.nl", since=TODAY - relativedelta(months=1))
    with Sandbox(population(old, lapsed, guest, active, fresh)) as sandbox:
        fake: WooCommerceFake = sandbox.fakes["woocommerce"]  # type: ignore[assignment]
        path = sandbox.write_config(tmp_path)
        assert "[connectors.woocommerce]" in path.read_text()
        ids = {key: [o["id"] for o in fake.orders.values() if o["billing"]["email"] == p.woocommerce.email]
               for key, p in (("old", old), ("lapsed", lapsed), ("guest", guest), ("active", active))}
        users = {u["email"]: u["id"] for u in fake.users.values()}

        found = CliRunner().invoke(app, ["--config", str(path), "find", "06 11 22 33 44", "--test", "--format", "json"])
        assert found.exit_code == 0, found.output
        report = json.loads(found.stdout)
        shop = sorted((r["record_type"], r["record_id"]) for r in report["records"] if r["system"] == "woocommerce")
        assert shop == sorted([("customer", str(users["noor@example.nl"])),
                               *(("order", str(i)) for i in ids["active"])])
        systems = {s["system"]: s["status"] for s in report["systems"]}
        assert systems["woocommerce"] == "searched"
        assert "WooCommerce" not in {s["name"] for s in report["systems"] if s["status"] == "checked_by_hand"}

        assert run_purge(load_config(str(path)), RULES, apply=True, day=TODAY, force=True, show=0) == 0
        # orders past 7 years go, whoever placed them; Henk's account (no order within 7 years) goes, Iris's
        # stays for her 3-year-old order, Noor's for hers (and a running one)
        assert set(fake.orders) == {*ids["lapsed"], ids["guest"][1], *ids["active"]}
        assert set(fake.users) == {1, users["iris.kok@example.nl"], users["noor@example.nl"], users["tess@example.nl"]}
        assert run_purge(load_config(str(path)), RULES, apply=True, day=TODAY, show=0) == 0
        deletes = fake.count("DELETE")

        erased = CliRunner().invoke(app, ["--config", str(path), "erase", "noor@example.nl", "--approve",
                                          "--verified-by", "ID gezien"], catch_exceptions=False)
        assert erased.exit_code == 0, erased.output
        assert "WooCommerce customer" in erased.output and "WooCommerce:" not in erased.output  # kept, not a task
        # the orders are fiscal documents younger than 7 years: the law keeps them, and with them the account
        assert set(ids["active"]) <= set(fake.orders) and users["noor@example.nl"] in fake.users
        assert fake.count("DELETE") == deletes
        erased = CliRunner().invoke(app, ["--config", str(path), "erase", "tess@example.nl", "--approve",
                                          "--verified-by", "ID gezien"], catch_exceptions=False)
        assert erased.exit_code == 0, erased.output
        assert users["tess@example.nl"] not in fake.users and fake.count("DELETE") == deletes + 1
