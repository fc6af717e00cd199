"""A loopback fake of Mollie API v2, seeded from the synthetic population.

Faithful where the connector depends on it (shapes from the SDK's own test
fixtures, /work/shared/vendor-fixtures/mollie, and from Mollie's OpenAPI spec,
github mollie/openapi `specs.yaml`, cited below by operationId or component):
HAL lists with `count`, `_embedded` and `_links` whose hrefs point at the
fake's own base URL (the SDK follows `next.href` verbatim), cursor paging with
`from` (inclusive) and `limit` (1..250, default 50); error bodies `{"status",
"title", "detail", "_links": {"documentation"}}`; 401 on a wrong key, 422 for
invalid input, 429 with Retry-After over the rate (the spec's
`429-rate-limit` response names no header: the connector's fallback backoff is
tested with `responses`, not here). PATCH of a customer (name, email, locale,
metadata) and of a payment (description, metadata) is kept in memory, so later
reads see it. update-payment also takes `billingAddress` and `shippingAddress`
(payment-address objects, which replace the payment's); its 422 is "a property
that can no longer be updated", the spec's example a finalized payment's
redirectUrl. ASSUMED: the addresses are such properties too, so a finalized
payment (paid, expired, canceled, failed) answers 422 with `field` naming the
address, the case a connector must take as a refusal; an unfinished one takes
them. A payment's `details` (the account or card holder) are in no update body.

Orders: customers and payments newest first (list-customers, list-payments
take `sort`, default descending). `/v2/subscriptions` in id order: the spec's
list-all-subscriptions takes no `sort` and documents no order (unlike
list-customer-subscriptions, which does), so the fake serves an order that is
deliberately not newest first.

Deleted customers (delete-customer: 204, and Mollie cancels the customer's
mandates and subscriptions): the fake invalidates the mandates and cancels the
subscriptions; the payments stay, keep their `customerId` and can still change
status (`change`, `settle`). ASSUMED: every call on a deleted customer
(GET/PATCH/DELETE, and its payments, mandates and subscriptions) answers 410
Gone, an id the fake never had 404. The spec documents only 404 for
delete-customer and get-customer; 410 is what Mollie answers for another
deleted entity (get-profile), so a connector must take both as "gone".

Mandates and subscriptions carry `customerId` (required in `mandate-response`
and `entity-subscription`). Payment timestamps follow `entity-payment-response`:
`paidAt` only on paid payments, `expiredAt`/`canceledAt`/`failedAt` only on
payments that ended that way, none on open or pending ones.

Derived from the population where it has no field of its own, from stable
hashes of the person key (never from the population's random generator):
- a person with a valid mandate or an active subscription, or with three or
  more payments (an old direct-debit customer), has a mandate; its oldest
  payment is the `first` payment and later ones are `recurring` on that
  mandate. The mandate stays `valid` also next to a `canceled` subscription
  (an ex-subscriber: cancel-subscription leaves the customer's mandates as they
  are), so a valid mandate is no evidence of a running contract;
- a one-off payment the population calls failed is, by hash, `expired` (an
  abandoned iDEAL checkout or payment link), `canceled` or `failed`;
- some one-off payments are by card (`details.cardHolder`, payment-details);
- a person without a mandate pays, by hash, their later payments through a
  payment link or the invoicing system: payments without `customerId`, the
  payer in `billingAddress` (payment-address).
`add_payment`, `settle`, `add_subscription` and `add_customer_less_payment`
make the situations tests need on top of that; `change` makes only the changes
Mollie allows (a paid payment is never open again, a cancelled subscription
never active again).

Not modelled: `sort` and `testmode` (ignored; every list keeps its order),
organisation access tokens and several website profiles (one API key, one
profile; audit M19), `billingEmail` in an update-payment body is ignored
(audit F-M5), 429 always carries Retry-After (F-M6), mandates
revoked at the bank, refunds beyond `amountRefunded`, chargebacks.
"""
from __future__ import annotations

import hashlib
import re
import string
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from http import HTTPStatus
from typing import Any
from urllib.parse import urlencode

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from vergeet.sandbox.population import Person, Population
from vergeet.sandbox.server import FakeVendor

DEFAULT_LIMIT = 50
MAX_LIMIT = 250
HAL = "application/hal+json"
ERROR_DOCS = "https://docs.mollie.com/guides/handling-errors"
DOCS = "https://docs.mollie.com/reference/v2"
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
CUSTOMER_FIELDS = ("name", "email", "locale", "metadata")
PAYMENT_FIELDS = ("description", "metadata")
PAYMENT_ADDRESSES = ("billingAddress", "shippingAddress")  # update-payment: payment-address objects
#: Mollie's own wording where it differs from the HTTP reason phrase / the gatekeeper's message.
TITLES = {401: "Unauthorized Request"}
DETAILS = {401: "Missing authentication, or failed to authenticate",
           429: "You have sent too many requests in a given amount of time. Please retry later."}
_ALPHABET = string.ascii_letters + string.digits
#: payment-status: the statuses a payment can still leave (open, pending, authorized) and those it ended in
UNFINISHED = frozenset({"open", "pending", "authorized"})
#: the timestamp a payment that ended gets (entity-payment-response: each omitted until it happens)
ENDED_AT = {"paid": "paidAt", "expired": "expiredAt", "canceled": "canceledAt", "failed": "failedAt",
            "authorized": "authorizedAt"}
#: how long after creation a seeded payment ended that way (the fake's choice; Mollie documents no fixed times)
ENDED_AFTER = {"paid": timedelta(minutes=2), "expired": timedelta(minutes=15), "canceled": timedelta(minutes=3),
               "failed": timedelta(minutes=2), "authorized": timedelta(minutes=2)}
#: subscription-status: an agreement not (yet) ended
RUNNING_SUBSCRIPTION = frozenset({"pending", "active", "suspended"})


def _token(prefix: str, *parts: str) -> str:
    """A stable Mollie-like id (`cst_` + 10 base62 characters) for the given parts."""
    number = int.from_bytes(hashlib.sha256("|".join((prefix, *parts)).encode()).digest()[:8], "big")
    chars = []
    for _ in range(10):
        number, digit = divmod(number, len(_ALPHABET))
        chars.append(_ALPHABET[digit])
    return prefix + "".join(chars)


def _share(*parts: str) -> float:
    """A stable number in [0, 1) for the given parts: how the fake picks Mollie-only shapes per person."""
    return int.from_bytes(hashlib.sha256("|".join(("share", *parts)).encode()).digest()[:8], "big") / 2**64


def _iban(key: str) -> str:
    """A Dutch IBAN with valid check digits, stable per person key."""
    account = str(int(hashlib.sha256(key.encode()).hexdigest(), 16))[:10]
    bban = "INGB" + account
    numeric = "".join(str(int(c, 36)) for c in bban + "NL00")
    return f"NL{98 - int(numeric) % 97:02d}{bban}"


def _iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat()


def _href(url: str, kind: str = HAL) -> dict[str, str]:
    return {"href": url, "type": kind}


def _unpaid_one_off(key: str, number: int) -> str:
    """What a one-off payment the population calls failed was at Mollie: mostly a checkout left to expire."""
    pick = _share(key, str(number), "unpaid")
    return "expired" if pick < 0.5 else "canceled" if pick < 0.75 else "failed"


def _ended(record: dict[str, Any], status: str, moment: datetime) -> None:
    """Set a payment's status and the one timestamp that status carries (none for open/pending)."""
    for stamp in ENDED_AT.values():
        if stamp != "authorizedAt" or status != "paid":  # a captured authorization keeps its authorizedAt
            record.pop(stamp, None)
    record["status"] = status
    if status in ENDED_AT:
        record[ENDED_AT[status]] = _iso(moment)
    record["isCancelable"] = status == "open"


class MollieFake(FakeVendor):
    """Mollie API v2 customers, payments, mandates and subscriptions for one website profile."""

    name = "mollie"
    #: Mollie publishes no fixed limit ("requests per second" with burst); a stand-in that lets tests provoke 429.
    rate_calls = 25
    rate_period = 1.0

    def __init__(self, population: Population, *, api_key: str = "test_sandboxmolliekey",
                 rate_calls: int | None = None, rate_period: float | None = None):
        self.population = population
        self.customers: dict[str, dict[str, Any]] = {}
        self.payments: dict[str, dict[str, Any]] = {}
        self.mandates: dict[str, dict[str, Any]] = {}
        self.subscriptions: dict[str, dict[str, Any]] = {}
        self.customer_ids: dict[str, str] = {}  # person key -> customer id
        self.deleted: set[str] = set()  # customers deleted here: 410 from then on
        self._recurring: set[str] = set()  # customers with a mandate (and maybe a subscription)
        self._paying: set[str] = set()  # customers with payments
        self._people: dict[str, Person] = {}  # customer id -> person, for the payer details of added payments
        for person in population.people:
            if person.mollie is not None:
                self.add_person(person)
        super().__init__(token=api_key, rate_calls=rate_calls, rate_period=rate_period)
        self.app.add_exception_handler(HTTPException, self._routing_error)

    @property
    def owner(self) -> dict[str, str]:
        """Mandate/subscription id -> its customer id."""
        return {item_id: item["customerId"] for store in (self.mandates, self.subscriptions)
                for item_id, item in store.items()}

    # -- seeding and changing ----------------------------------------------------------------------------------

    def add_person(self, person: Person) -> list[str]:
        """A customer with its payments (and mandate, subscription) for a person with a Mollie presence."""
        before = {kind: len(items) for kind, items in self._stores().items()}
        self._seed(person)
        return [kind for kind, items in self._stores().items() for _ in range(len(items) - before[kind])]

    def change(self, pick: int) -> str:
        """A change Mollie allows between two nights, on the record `pick` lands on among those that can change.

        A customer's new e-mail; an open, pending or authorized payment turning paid; a paid payment refunded
        (it stays `paid`, payment-response `amountRefunded`); a running subscription cancelled. Payments of a
        deleted customer change like any other (they stay at Mollie). Expired, cancelled and failed payments and
        ended subscriptions are final and are not picked.
        """
        items = [("customer", item) for item in self.customers.values()]
        items += [("payment", item) for item in self.payments.values()
                  if item["status"] in UNFINISHED or (item["status"] == "paid" and "amountRefunded" not in item)]
        items += [("subscription", item) for item in self.subscriptions.values()
                  if item["status"] in RUNNING_SUBSCRIPTION]
        kind, item = items[pick % len(items)]
        now = datetime.now(timezone.utc)
        if kind == "customer":
            item["email"] = f"changed{pick}@example.nl"
        elif kind == "payment" and item["status"] == "paid":
            item["amountRefunded"] = dict(item["amount"])
            item["amountRemaining"] = {"value": "0.00", "currency": item["amount"]["currency"]}
        elif kind == "payment":
            self.settle(item["id"], "paid", now)
        else:
            item |= {"status": "canceled", "canceledAt": _iso(now)}
        return kind

    def settle(self, payment_id: str, status: str, at: datetime | None = None) -> None:
        """A payment that was open, pending or authorized ends as `status` (paid, failed, expired, canceled)."""
        payment = self.payments[payment_id]
        assert payment["status"] in UNFINISHED, f"{payment_id} is {payment['status']}: Mollie never changes that"
        _ended(payment, status, at or datetime.now(timezone.utc))
        if status == "paid" and payment.get("details") is None:
            payment["details"] = self._details(payment)

    def remove(self, pick: int) -> str:
        """Delete the customer `pick` lands on (its mandates and subscriptions end, its payments stay)."""
        self._delete_customer(sorted(self.customers)[pick % len(self.customers)])
        return "customer"

    def add_payment(self, customer_id: str, *, status: str, created_at: datetime, sequence: str = "oneoff",
                    method: str | None = None, ended_at: datetime | None = None) -> str:
        """A payment of a customer the fake holds (or held), as Mollie shows it in `status`.

        `recurring`/`first` payments use the customer's mandate; one without gets a `valid` mandate from its
        first payment (its oldest, else this one). A status that ended gets its timestamp at `ended_at`
        (default: shortly after creation).
        """
        theirs = [p for p in self.payments.values() if p.get("customerId") == customer_id]
        payment_id = _token("tr_", customer_id, "added", str(len(theirs)))
        mandate_id = None
        if sequence != "oneoff":
            mandate_id = next((m["id"] for m in self.mandates.values() if m["customerId"] == customer_id), None)
            if mandate_id is None:
                first = min([datetime.fromisoformat(p["createdAt"]) for p in theirs] + [created_at])
                mandate_id = self._add_mandate(customer_id, first)
        record = self._payment_body(payment_id, customer_id, created_at, "120.00", "Coaching", sequence,
                                    method or ("directdebit" if sequence == "recurring" else "ideal"), mandate_id)
        _ended(record, status, ended_at or created_at + ENDED_AFTER.get(status, timedelta()))
        if status == "paid":
            record["details"] = self._details(record)
        self.payments[payment_id] = record
        self._paying.add(customer_id)
        return payment_id

    def add_customer_less_payment(self, *, created_at: datetime, status: str = "paid", email: str | None = None,
                                  given_name: str | None = None, family_name: str | None = None,
                                  card_holder: str | None = None, consumer_name: str | None = None) -> str:
        """A payment made without a customer (a payment link, or one the invoicing system created): the payer is
        known only from `billingAddress` (what is given of e-mail and names) and, once paid, the method's
        `details` (`cardHolder` for a card, `consumerName` for a bank payment)."""
        payment_id = _token("tr_", "link", str(given_name), str(family_name), str(email), str(card_holder),
                            str(consumer_name), _iso(created_at))
        method = "creditcard" if card_holder else "ideal"
        record = self._payment_body(payment_id, None, created_at, "120.00", "Factuur", "oneoff", method, None)
        billing = {"givenName": given_name, "familyName": family_name, "email": email}
        if any(billing.values()):
            record["billingAddress"] = {k: v for k, v in billing.items() if v} | {"country": "NL"}
        _ended(record, status, created_at + ENDED_AFTER.get(status, timedelta()))
        if status == "paid":
            record["details"] = ({"cardHolder": card_holder, "cardNumber": "6787", "cardLabel": "Mastercard"}
                                 if card_holder else
                                 {"consumerName": consumer_name or " ".join(filter(None, (given_name, family_name))),
                                  "consumerAccount": _iban(payment_id), "consumerBic": "INGBNL2A"})
        self.payments[payment_id] = record
        return payment_id

    def add_subscription(self, customer_id: str, *, status: str = "active", created_at: datetime | None = None,
                         subscription_id: str | None = None) -> str:
        """A subscription for a customer, on its mandate (a `valid` one is created when it has none)."""
        created_at = created_at or datetime.now(timezone.utc)
        mandate_id = next((m["id"] for m in self.mandates.values() if m["customerId"] == customer_id), None)
        if mandate_id is None:
            mandate_id = self._add_mandate(customer_id, created_at)
        number = sum(1 for s in self.subscriptions.values() if s["customerId"] == customer_id)
        subscription_id = subscription_id or _token("sub_", customer_id, "added", str(number))
        self.subscriptions[subscription_id] = self._subscription_body(
            subscription_id, customer_id, mandate_id, created_at, "120.00", status)
        if status == "canceled":
            self.subscriptions[subscription_id]["canceledAt"] = _iso(created_at)
        return subscription_id

    def _stores(self) -> dict[str, dict[str, dict[str, Any]]]:
        return {"customer": self.customers, "payment": self.payments, "mandate": self.mandates,
                "subscription": self.subscriptions}

    def _payment_body(self, payment_id: str, customer_id: str | None, created_at: datetime, amount: str,
                      description: str, sequence: str, method: str, mandate_id: str | None) -> dict[str, Any]:
        record: dict[str, Any] = {
            "resource": "payment", "id": payment_id, "mode": "test", "createdAt": _iso(created_at),
            "amount": {"value": amount, "currency": "EUR"}, "description": description, "method": method,
            "metadata": {"order_id": payment_id[3:]}, "status": "open", "isCancelable": True,
            "profileId": "pfl_sandbox001", "sequenceType": sequence,
            "redirectUrl": None if sequence == "recurring" else "https://coaching.example.nl/betaald",
            "webhookUrl": "https://coaching.example.nl/mollie/webhook", "details": None}
        if customer_id is not None:
            record["customerId"] = customer_id
        if mandate_id is not None:
            record["mandateId"] = mandate_id
        return record

    def _details(self, payment: dict[str, Any]) -> dict[str, Any] | None:
        """payment-details of a paid payment: the account holder (bank methods) or the card holder (cards)."""
        person = self._people.get(payment.get("customerId") or "")
        if person is None:
            return None
        if payment["method"] == "creditcard":
            return {"cardHolder": person.name, "cardNumber": _iban(person.key)[-4:], "cardLabel": "Visa"}
        return {"consumerName": person.name, "consumerAccount": _iban(person.key), "consumerBic": "INGBNL2A"}

    def _add_mandate(self, customer_id: str, created_at: datetime) -> str:
        person = self._people.get(customer_id)
        mandate_id = _token("mdt_", customer_id, "added")
        self.mandates[mandate_id] = {
            "resource": "mandate", "id": mandate_id, "mode": "test", "status": "valid", "method": "directdebit",
            "details": {"consumerName": person.name if person else "Onbekend",
                        "consumerAccount": _iban(person.key if person else customer_id), "consumerBic": "INGBNL2A"},
            "mandateReference": None, "signatureDate": created_at.date().isoformat(),
            "createdAt": _iso(created_at), "customerId": customer_id}
        self._recurring.add(customer_id)
        return mandate_id

    @staticmethod
    def _subscription_body(subscription_id: str, customer_id: str, mandate_id: str, created_at: datetime,
                           amount: str, status: str) -> dict[str, Any]:
        return {"resource": "subscription", "id": subscription_id, "mode": "test", "createdAt": _iso(created_at),
                "status": status, "amount": {"value": amount, "currency": "EUR"}, "times": None,
                "interval": "1 month", "startDate": created_at.date().isoformat(),
                "description": "Coaching maandelijks", "method": "directdebit", "mandateId": mandate_id,
                "webhookUrl": None, "metadata": None, "customerId": customer_id}

    def _seed(self, person: Person) -> None:
        presence = person.mollie
        assert presence is not None
        customer_id = _token("cst_", person.key)
        self.customer_ids[person.key] = customer_id
        self._people[customer_id] = person
        self.customers[customer_id] = {
            "resource": "customer", "id": customer_id, "mode": "test", "name": person.name, "email": presence.email,
            "locale": "nl_NL", "metadata": None, "createdAt": _iso(presence.created_at)}
        payments = sorted(presence.payments, key=lambda p: p.created_at)
        has_mandate = presence.mandate_valid or presence.subscription_active or len(payments) >= 3
        mandate_id = _token("mdt_", person.key) if has_mandate else None
        # an ex-subscriber: three or more payments on a mandate, no running subscription any more
        subscription_id = (_token("sub_", person.key)
                           if presence.subscription_active or (has_mandate and not presence.mandate_valid) else None)
        links_payer = mandate_id is None and _share(person.key, "payment link") < 1 / 3
        for number, payment in enumerate(payments):
            sequence = "oneoff" if mandate_id is None else ("first" if number == 0 else "recurring")
            method = "directdebit" if sequence == "recurring" else (
                "creditcard" if sequence == "oneoff" and _share(person.key, str(number), "card") < 0.25 else "ideal")
            customer_less = links_payer and number > 0  # a later invoice paid through a link: no customer
            status = payment.status
            if status == "failed" and sequence == "oneoff":
                status = _unpaid_one_off(person.key, number)
            payment_id = _token("tr_", person.key, str(number))
            record = self._payment_body(payment_id, None if customer_less else customer_id, payment.created_at,
                                        payment.amount, payment.description, sequence, method,
                                        mandate_id if sequence != "oneoff" else None)
            if sequence == "recurring" and subscription_id is not None:
                record["subscriptionId"] = subscription_id
            if customer_less:
                record["billingAddress"] = {"givenName": person.first_name, "familyName": person.last_name,
                                            "email": (presence.email or person.email).strip(), "country": "NL"}
            _ended(record, status, payment.created_at + ENDED_AFTER[status])
            if status == "paid":
                record["details"] = self._details({**record, "customerId": customer_id})
            self.payments[payment_id] = record
            if not customer_less:
                self._paying.add(customer_id)
        if mandate_id is None:
            return
        first = payments[0]
        # cancel-subscription: cancelling has no effect on the customer's mandates, so an ex-subscriber's stays valid
        self.mandates[mandate_id] = {
            "resource": "mandate", "id": mandate_id, "mode": "test", "status": "valid", "method": "directdebit",
            "details": {"consumerName": person.name, "consumerAccount": _iban(person.key), "consumerBic": "INGBNL2A"},
            "mandateReference": None, "signatureDate": first.created_at.date().isoformat(),
            "createdAt": _iso(first.created_at), "customerId": customer_id}
        self._recurring.add(customer_id)
        if subscription_id is not None:
            self.subscriptions[subscription_id] = self._subscription_body(
                subscription_id, customer_id, mandate_id, first.created_at, first.amount,
                "active" if presence.subscription_active else "canceled")
            if not presence.subscription_active:
                self.subscriptions[subscription_id]["canceledAt"] = _iso(payments[-1].created_at)

    # -- shapes ------------------------------------------------------------------------------------------------

    @staticmethod
    def _base(request: Request) -> str:
        return f"{str(request.base_url).rstrip('/')}/v2"

    def _customer(self, customer: dict[str, Any], base: str) -> dict[str, Any]:
        url = f"{base}/customers/{customer['id']}"
        links = {"self": _href(url)}
        if customer["id"] in self._recurring:
            links |= {"mandates": _href(f"{url}/mandates"), "subscriptions": _href(f"{url}/subscriptions")}
        if customer["id"] in self._paying:
            links["payments"] = _href(f"{url}/payments")
        links["documentation"] = _href(f"{DOCS}/customers-api/get-customer", "text/html")
        return {**customer, "_links": links}

    def _payment(self, payment: dict[str, Any], base: str) -> dict[str, Any]:
        links = {"self": _href(f"{base}/payments/{payment['id']}")}
        if payment.get("customerId"):
            customer_url = f"{base}/customers/{payment['customerId']}"
            links["customer"] = _href(customer_url)
            if payment.get("mandateId"):
                links["mandate"] = _href(f"{customer_url}/mandates/{payment['mandateId']}")
        links["documentation"] = _href(f"{DOCS}/payments-api/get-payment", "text/html")
        return {**payment, "_links": links}

    def _owned(self, kind: str, doc: str) -> Callable[[dict[str, Any], str], dict[str, Any]]:
        """Renderer for mandates/subscriptions: self and customer links under their customer."""

        def render(item: dict[str, Any], base: str) -> dict[str, Any]:
            customer_url = f"{base}/customers/{item['customerId']}"
            return {**item, "_links": {"self": _href(f"{customer_url}/{kind}/{item['id']}"),
                                       "customer": _href(customer_url),
                                       "documentation": _href(f"{DOCS}/{doc}", "text/html")}}

        return render

    def _json(self, body: Any, status: int = 200) -> JSONResponse:
        return JSONResponse(body, status_code=status, media_type=HAL)

    def error(self, status: int, message: str, *, field: str | None = None) -> Response:
        """Mollie's error body (see customer_doesnotexist.json)."""
        body: dict[str, Any] = {"status": status, "title": TITLES.get(status, HTTPStatus(status).phrase),
                                "detail": DETAILS.get(status, message)}
        if field:
            body["field"] = field
        body["_links"] = {"documentation": _href(ERROR_DOCS, "text/html")}
        return self._json(body, status)

    async def _routing_error(self, request: Request, exc: HTTPException) -> Response:
        return self.error(exc.status_code, "The requested resource or method does not exist.")

    def _listing(self, request: Request, path: str, name: str, items: list[dict[str, Any]],
                 render: Callable[[dict[str, Any], str], dict[str, Any]]) -> Response:
        """One page of a cursor-paginated HAL list; `items` newest first."""
        query = request.query_params
        raw_limit = query.get("limit", str(DEFAULT_LIMIT))
        limit = int(raw_limit) if raw_limit.isdigit() else 0
        if not 1 <= limit <= MAX_LIMIT:
            return self.error(400, f"The limit must be between 1 and {MAX_LIMIT}.", field="limit")
        ids = [item["id"] for item in items]
        start = 0
        if "from" in query:
            if query["from"] not in ids:
                return self.error(400, "The 'from' parameter does not refer to an existing object.", field="from")
            start = ids.index(query["from"])
        base = self._base(request)
        url = f"{base}/{path}"
        page = items[start:start + limit]

        def at(index: int) -> dict[str, str]:
            return _href(f"{url}?{urlencode({'from': ids[index], 'limit': limit})}")

        links = {"self": _href(f"{url}?{urlencode(dict(query))}" if query else url),
                 "previous": at(max(0, start - limit)) if start else None,
                 "next": at(start + limit) if start + limit < len(items) else None,
                 "documentation": _href(f"{DOCS}/{path.split('/')[-1]}-api/list-{path.split('/')[-1]}",
                                        "text/html")}
        return self._json({"count": len(page), "_embedded": {name: [render(i, base) for i in page]},
                           "_links": links})

    @staticmethod
    def _newest_first(items: Any) -> list[dict[str, Any]]:
        return sorted(items, key=lambda item: (item["createdAt"], item["id"]), reverse=True)

    @staticmethod
    def _by_id(items: Any) -> list[dict[str, Any]]:
        """list-all-subscriptions: no `sort` parameter and no documented order; id order is not newest first."""
        return sorted(items, key=lambda item: item["id"])

    # -- routes ------------------------------------------------------------------------------------------------

    def routes(self) -> list[Route]:
        return [
            Route("/v2/customers", self.list_customers, methods=["GET"]),
            Route("/v2/customers/{id}", self.one_customer, methods=["GET", "PATCH", "DELETE"]),
            Route("/v2/customers/{id}/payments", self.customer_payments, methods=["GET"]),
            Route("/v2/customers/{id}/mandates", self.customer_mandates, methods=["GET"]),
            Route("/v2/customers/{id}/subscriptions", self.customer_subscriptions, methods=["GET"]),
            Route("/v2/customers/{id}/mandates/{item_id}", self.customer_mandate, methods=["GET"]),
            Route("/v2/customers/{id}/subscriptions/{item_id}", self.customer_subscription, methods=["GET"]),
            Route("/v2/payments", self.list_payments, methods=["GET"]),
            Route("/v2/payments/{id}", self.one_payment, methods=["GET", "PATCH"]),
            Route("/v2/subscriptions", self.list_subscriptions, methods=["GET"]),
        ]

    def authorised(self, request: Request) -> bool:
        return request.headers.get("authorization") == f"Bearer {self.token}"

    async def list_customers(self, request: Request) -> Response:
        return self._listing(request, "customers", "customers", self._newest_first(self.customers.values()),
                             self._customer)

    async def list_payments(self, request: Request) -> Response:
        return self._listing(request, "payments", "payments", self._newest_first(self.payments.values()),
                             self._payment)

    async def list_subscriptions(self, request: Request) -> Response:
        return self._listing(request, "subscriptions", "subscriptions", self._by_id(self.subscriptions.values()),
                             self._owned("subscriptions", "subscriptions-api/get-subscription"))

    def _known_customer(self, request: Request) -> tuple[str, Response | None]:
        """404 for an id never held; ASSUMED 410 for a deleted customer (see the module docstring)."""
        customer_id = request.path_params["id"]
        if customer_id in self.deleted:
            return customer_id, self.error(410, f"The customer {customer_id} was deleted.")
        if customer_id not in self.customers:
            return customer_id, self.error(404, f"No customer exists with token {customer_id}.")
        return customer_id, None

    async def customer_payments(self, request: Request) -> Response:
        customer_id, missing = self._known_customer(request)
        return missing or self._listing(
            request, f"customers/{customer_id}/payments", "payments",
            self._newest_first(p for p in self.payments.values() if p.get("customerId") == customer_id), self._payment)

    async def customer_mandates(self, request: Request) -> Response:
        customer_id, missing = self._known_customer(request)
        return missing or self._listing(
            request, f"customers/{customer_id}/mandates", "mandates",
            self._newest_first(m for m in self.mandates.values() if m["customerId"] == customer_id),
            self._owned("mandates", "mandates-api/get-mandate"))

    async def customer_subscriptions(self, request: Request) -> Response:
        customer_id, missing = self._known_customer(request)
        return missing or self._listing(
            request, f"customers/{customer_id}/subscriptions", "subscriptions",
            self._newest_first(s for s in self.subscriptions.values() if s["customerId"] == customer_id),
            self._owned("subscriptions", "subscriptions-api/get-subscription"))

    async def customer_mandate(self, request: Request) -> Response:
        """get-mandate (`GET /v2/customers/{customerId}/mandates/{mandateId}`): 404 when the customer has no such
        mandate (mandates-api/get-mandate documents 404); a deleted customer's as every call on it (410, ASSUMED)."""
        return self._owned_item(request, self.mandates, "mandates", "mandates-api/get-mandate", "mandate")

    async def customer_subscription(self, request: Request) -> Response:
        """get-subscription (`GET /v2/customers/{customerId}/subscriptions/{subscriptionId}`): 404 when the customer
        has no such subscription (subscriptions-api/get-subscription documents 404)."""
        return self._owned_item(request, self.subscriptions, "subscriptions", "subscriptions-api/get-subscription",
                                "subscription")

    def _owned_item(self, request: Request, items: dict[str, dict[str, Any]], kind: str, doc: str,
                    noun: str) -> Response:
        customer_id, missing = self._known_customer(request)
        if missing:
            return missing
        item = items.get(request.path_params["item_id"])
        if item is None or item["customerId"] != customer_id:
            return self.error(404, f"No {noun} exists with token {request.path_params['item_id']}.")
        return self._json(self._owned(kind, doc)(item, self._base(request)))

    async def one_customer(self, request: Request) -> Response:
        customer_id, missing = self._known_customer(request)
        if missing:
            return missing
        if request.method == "DELETE":
            self._delete_customer(customer_id)
            return Response(status_code=204)
        if request.method == "PATCH":
            invalid = await self._patch(request, self.customers[customer_id], CUSTOMER_FIELDS)
            if invalid:
                return invalid
        return self._json(self._customer(self.customers[customer_id], self._base(request)))

    async def one_payment(self, request: Request) -> Response:
        payment_id = request.path_params["id"]
        if payment_id not in self.payments:
            return self.error(404, f"No payment exists with token {payment_id}.")
        if request.method == "PATCH":
            payment = self.payments[payment_id]
            try:
                body = await request.json()
            except ValueError:
                body = None  # `_patch` answers it
            for address in PAYMENT_ADDRESSES:
                if isinstance(body, dict) and address in body:
                    if not isinstance(body[address], dict):
                        return self.error(422, f"The {address} must be an object.", field=address)
                    if payment["status"] not in UNFINISHED:
                        return self.error(422, f"The {address} cannot be updated when the payment is finalized",
                                          field=address)
            invalid = await self._patch(request, payment, PAYMENT_FIELDS + PAYMENT_ADDRESSES)
            if invalid:
                return invalid
        return self._json(self._payment(self.payments[payment_id], self._base(request)))

    async def _patch(self, request: Request, target: dict[str, Any], allowed: tuple[str, ...]) -> Response | None:
        """Apply the allowed fields of a JSON body (others are ignored); a Mollie error response if invalid."""
        try:
            body = await request.json()
        except ValueError:
            return self.error(400, "The request body is not valid JSON.")
        if not isinstance(body, dict):
            return self.error(400, "The request body must be a JSON object.")
        if "email" in body and "email" in allowed and not EMAIL.match(str(body["email"])):
            return self.error(422, "The email address is invalid.", field="email")
        target.update({key: body[key] for key in allowed if key in body})
        return None

    def _delete_customer(self, customer_id: str) -> None:
        """delete-customer: Mollie cancels the customer's mandates and subscriptions; payments keep their
        customerId (and keep changing status: a pending direct debit still settles)."""
        del self.customers[customer_id]
        self.deleted.add(customer_id)
        now = _iso(datetime.now(timezone.utc))
        for mandate in self.mandates.values():
            if mandate["customerId"] == customer_id:
                mandate["status"] = "invalid"
        for subscription in self.subscriptions.values():
            if subscription["customerId"] == customer_id and subscription["status"] in RUNNING_SUBSCRIPTION:
                subscription |= {"status": "canceled", "canceledAt": now}
