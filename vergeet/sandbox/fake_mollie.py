"""A loopback fake of Mollie API v2, seeded from the synthetic population.

Faithful where the connector depends on it (shapes from the SDK's own test
fixtures, /work/shared/vendor-fixtures/mollie): HAL lists with `count`,
`_embedded` and `_links` whose hrefs point at the fake's own base URL (the
SDK follows `next.href` verbatim), cursor paging with `from` (inclusive) and
`limit` (1..250, default 50), newest first; `customerId` on payments; error
bodies `{"status", "title", "detail", "_links": {"documentation"}}`; 401 on a
wrong key, 404 for unknown ids, 422 for invalid input, 429 with Retry-After
over the rate. DELETE of a customer answers 204, invalidates its mandates and
cancels its subscriptions; its payments stay (Mollie keeps them). PATCH of a
customer (name, email, locale, metadata) and of a payment (description,
metadata) is kept in memory, so later reads see it.

Derived from the population where it has no field of its own: a person with a
valid mandate or an active subscription, or with three or more payments (an
old direct-debit customer), has a mandate; its oldest payment is the `first`
payment and later ones are `recurring` on that mandate. That mandate is
`valid` when the person has a valid mandate or an active subscription, else
`invalid` with a `canceled` subscription next to it.
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
#: Mollie's own wording where it differs from the HTTP reason phrase / the gatekeeper's message.
TITLES = {401: "Unauthorized Request"}
DETAILS = {401: "Missing authentication, or failed to authenticate",
           429: "You have sent too many requests in a given amount of time. Please retry later."}
_ALPHABET = string.ascii_letters + string.digits


def _token(prefix: str, *parts: str) -> str:
    """A stable Mollie-like id (`cst_` + 10 base62 characters) for the given parts."""
    number = int.from_bytes(hashlib.sha256("|".join((prefix, *parts)).encode()).digest()[:8], "big")
    chars = []
    for _ in range(10):
        number, digit = divmod(number, len(_ALPHABET))
        chars.append(_ALPHABET[digit])
    return prefix + "".join(chars)


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
        self.owner: dict[str, str] = {}  # mandate/subscription id -> customer id (Mollie shows it as a link only)
        self.customer_ids: dict[str, str] = {}  # person key -> customer id
        self._recurring: set[str] = set()  # customers with a mandate (and maybe a subscription)
        self._paying: set[str] = set()  # customers with payments
        for person in population.people:
            if person.mollie is not None:
                self.add_person(person)
        super().__init__(token=api_key, rate_calls=rate_calls, rate_period=rate_period)
        self.app.add_exception_handler(HTTPException, self._routing_error)

    # -- seeding and changing ----------------------------------------------------------------------------------

    def add_person(self, person: Person) -> list[str]:
        """A customer with its payments (and mandate, subscription) for a person with a Mollie presence."""
        before = {kind: len(items) for kind, items in self._stores().items()}
        self._seed(person)
        return [kind for kind, items in self._stores().items() for _ in range(len(items) - before[kind])]

    def change(self, pick: int) -> str:
        """A customer's new e-mail, a payment turning paid (or open again), a subscription cancelled or resumed."""
        items = [(kind, item) for kind, store in self._stores().items() if kind != "mandate"
                 for item in store.values()]
        kind, item = items[pick % len(items)]
        if kind == "customer":
            item["email"] = f"changed{pick}@example.nl"
        elif kind == "payment":
            paid = item["status"] == "paid"
            item["status"] = "open" if paid else "paid"
            item.pop("paidAt", None)
            if not paid:
                item["paidAt"] = _iso(datetime.now(timezone.utc))
        else:
            item["status"] = "canceled" if item["status"] == "active" else "active"
        return kind

    def remove(self, pick: int) -> str:
        """Delete the customer `pick` lands on (its mandates and subscriptions end, its payments stay)."""
        self._delete_customer(sorted(self.customers)[pick % len(self.customers)])
        return "customer"

    def _stores(self) -> dict[str, dict[str, dict[str, Any]]]:
        return {"customer": self.customers, "payment": self.payments, "mandate": self.mandates,
                "subscription": self.subscriptions}

    def _seed(self, person: Person) -> None:
        presence = person.mollie
        assert presence is not None
        customer_id = _token("cst_", person.key)
        self.customer_ids[person.key] = customer_id
        self.customers[customer_id] = {
            "resource": "customer", "id": customer_id, "mode": "test", "name": person.name, "email": presence.email,
            "locale": "nl_NL", "metadata": None, "createdAt": _iso(presence.created_at)}
        payments = sorted(presence.payments, key=lambda p: p.created_at)
        has_mandate = presence.mandate_valid or presence.subscription_active or len(payments) >= 3
        mandate_id = _token("mdt_", person.key) if has_mandate else None
        iban = _iban(person.key)
        for number, payment in enumerate(payments):
            sequence = "oneoff" if mandate_id is None else ("first" if number == 0 else "recurring")
            payment_id = _token("tr_", person.key, str(number))
            record: dict[str, Any] = {
                "resource": "payment", "id": payment_id, "mode": "test", "createdAt": _iso(payment.created_at),
                "amount": {"value": payment.amount, "currency": "EUR"}, "description": payment.description,
                "method": "directdebit" if sequence == "recurring" else "ideal",
                "metadata": {"order_id": payment_id[3:]}, "status": payment.status, "isCancelable": False,
                "profileId": "pfl_sandbox001", "customerId": customer_id, "sequenceType": sequence,
                "redirectUrl": None if sequence == "recurring" else "https://coaching.example.nl/betaald",
                "webhookUrl": "https://coaching.example.nl/mollie/webhook",
                "details": ({"consumerName": person.name, "consumerAccount": iban, "consumerBic": "INGBNL2A"}
                            if payment.status == "paid" else None)}
            moment = _iso(payment.created_at + timedelta(minutes=2))
            record["paidAt" if payment.status == "paid" else "failedAt"] = moment
            if sequence != "oneoff":
                record["mandateId"] = mandate_id
            self.payments[payment_id] = record
            self._paying.add(customer_id)
        if mandate_id is None:
            return
        valid = presence.mandate_valid or presence.subscription_active
        first = payments[0]
        self.mandates[mandate_id] = {
            "resource": "mandate", "id": mandate_id, "mode": "test", "status": "valid" if valid else "invalid",
            "method": "directdebit",
            "details": {"consumerName": person.name, "consumerAccount": iban, "consumerBic": "INGBNL2A"},
            "mandateReference": None, "signatureDate": first.created_at.date().isoformat(),
            "createdAt": _iso(first.created_at)}
        self.owner[mandate_id] = customer_id
        self._recurring.add(customer_id)
        if presence.subscription_active or not valid:
            subscription_id = _token("sub_", person.key)
            self.subscriptions[subscription_id] = {
                "resource": "subscription", "id": subscription_id, "mode": "test", "createdAt": _iso(first.created_at),
                "status": "active" if presence.subscription_active else "canceled",
                "amount": {"value": first.amount, "currency": "EUR"}, "times": None, "interval": "1 month",
                "startDate": first.created_at.date().isoformat(), "description": "Coaching maandelijks",
                "method": "directdebit", "mandateId": mandate_id, "webhookUrl": None, "metadata": None}
            if not presence.subscription_active:
                self.subscriptions[subscription_id]["canceledAt"] = _iso(payments[-1].created_at)
            self.owner[subscription_id] = customer_id

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
        customer_url = f"{base}/customers/{payment['customerId']}"
        links = {"self": _href(f"{base}/payments/{payment['id']}"), "customer": _href(customer_url)}
        if payment.get("mandateId"):
            links["mandate"] = _href(f"{customer_url}/mandates/{payment['mandateId']}")
        links["documentation"] = _href(f"{DOCS}/payments-api/get-payment", "text/html")
        return {**payment, "_links": links}

    def _owned(self, kind: str, doc: str) -> Callable[[dict[str, Any], str], dict[str, Any]]:
        """Renderer for mandates/subscriptions: self and customer links under their customer."""

        def render(item: dict[str, Any], base: str) -> dict[str, Any]:
            customer_url = f"{base}/customers/{self.owner[item['id']]}"
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

    # -- routes ------------------------------------------------------------------------------------------------

    def routes(self) -> list[Route]:
        return [
            Route("/v2/customers", self.list_customers, methods=["GET"]),
            Route("/v2/customers/{id}", self.one_customer, methods=["GET", "PATCH", "DELETE"]),
            Route("/v2/customers/{id}/payments", self.customer_payments, methods=["GET"]),
            Route("/v2/customers/{id}/mandates", self.customer_mandates, methods=["GET"]),
            Route("/v2/customers/{id}/subscriptions", self.customer_subscriptions, methods=["GET"]),
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
        return self._listing(request, "subscriptions", "subscriptions",
                             self._newest_first(self.subscriptions.values()),
                             self._owned("subscriptions", "subscriptions-api/get-subscription"))

    def _known_customer(self, request: Request) -> tuple[str, Response | None]:
        customer_id = request.path_params["id"]
        if customer_id not in self.customers:
            return customer_id, self.error(404, f"No customer exists with token {customer_id}.")
        return customer_id, None

    async def customer_payments(self, request: Request) -> Response:
        customer_id, missing = self._known_customer(request)
        return missing or self._listing(
            request, f"customers/{customer_id}/payments", "payments",
            self._newest_first(p for p in self.payments.values() if p["customerId"] == customer_id), self._payment)

    async def customer_mandates(self, request: Request) -> Response:
        customer_id, missing = self._known_customer(request)
        return missing or self._listing(
            request, f"customers/{customer_id}/mandates", "mandates",
            self._newest_first(m for m in self.mandates.values() if self.owner[m["id"]] == customer_id),
            self._owned("mandates", "mandates-api/get-mandate"))

    async def customer_subscriptions(self, request: Request) -> Response:
        customer_id, missing = self._known_customer(request)
        return missing or self._listing(
            request, f"customers/{customer_id}/subscriptions", "subscriptions",
            self._newest_first(s for s in self.subscriptions.values() if self.owner[s["id"]] == customer_id),
            self._owned("subscriptions", "subscriptions-api/get-subscription"))

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
            invalid = await self._patch(request, self.payments[payment_id], PAYMENT_FIELDS)
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
        """Mollie cancels the customer's mandates and subscriptions; payments keep their customerId."""
        del self.customers[customer_id]
        now = _iso(datetime.now(timezone.utc))
        for item_id, owner in self.owner.items():
            if owner != customer_id:
                continue
            if item_id in self.mandates:
                self.mandates[item_id]["status"] = "invalid"
            elif self.subscriptions[item_id]["status"] != "canceled":
                self.subscriptions[item_id] |= {"status": "canceled", "canceledAt": now}
