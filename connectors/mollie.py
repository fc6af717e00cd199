"""Mollie API v2 through the official SDK (mollie-api-python 4.0).

Record types: `customer`, `payment`, `mandate`, `subscription`.

What the SDK does not do, this module adds around every HTTP call the SDK
makes (`_PacedClient.perform_http_call`, so paging through `get_next()` is
covered too): a client-side `RateLimiter`, retries with exponential backoff on
429 (honouring `Retry-After`), 5xx and connection errors (tenacity), and the
typed errors of `connectors.http`. mollie-api-python 4.0.0 has no 429
handling, and its urllib3 `Retry` covers connect errors only and is mounted for
https:// only (mollie/api/client.py `_setup_retry`), so it is switched off.
SDK exceptions never leave this module: their messages can quote response
bodies, which hold personal data.

Vendor facts (checked against mollie-api-python 4.0.0 and Mollie's OpenAPI
spec, github mollie/openapi `specs.yaml`, cited by operationId/component):
- Lists are cursor-paginated HAL (`_embedded`, `count`, `_links.next.href`),
  at most 250 a page (docs.mollie.com/overview/pagination). The SDK follows
  `next.href` verbatim. list-customers, list-payments, list-mandates and
  list-customer-subscriptions take `sort`, default descending (newest first).
  list-all-subscriptions (`GET /v2/subscriptions`) takes no `sort` and
  documents no order: nothing here relies on its order.
- `GET /v2/customers` takes `from`, `limit`, `sort` (and `testmode`) only, and
  `GET /v2/payments` no filter either: there is no e-mail, name or phone
  search, so `search` scans both lists.
- `GET /v2/payments` and `GET /v2/subscriptions` list across all customers;
  mandates exist only per customer (list-mandates,
  `/v2/customers/{id}/mandates`). Mandates and subscriptions carry
  `customerId` (mandate-response, entity-subscription).
- Payments need no customer (payment links, payments an invoicing system
  creates): the payer is then in `billingAddress` (payment-address:
  givenName, familyName, email, phone) and `details` (payment-details:
  consumerName, consumerAccount, cardHolder).
- Payment timestamps (entity-payment-response): `paidAt`, `authorizedAt`,
  `canceledAt`, `expiredAt`, `failedAt`, each omitted until it happens.
  Status (payment-status): open, pending, authorized, paid, canceled,
  expired, failed. Only a paid or authorized payment was made by the person.
- A mandate is no contract: cancelling a subscription leaves the customer's
  mandates as they are (cancel-subscription), and card mandates come from any
  first payment (create-mandate). Running = a subscription pending, active or
  suspended (subscription-status), or a payment open, pending or authorized.
- `DELETE /v2/customers/{id}` answers 204 and cancels the customer's mandates
  and subscriptions (delete-customer); its payments stay and keep changing
  status (a pending direct debit still settles). Only that 204 proves a delete.
  `PATCH` answers the updated object (update-customer, update-payment): an
  anonymisation is proven by the answer showing the placeholders, and starts
  with a read, so a repeat (after a crash) sends nothing when they are there.
- Ids are a type prefix and base62 characters (`cst_8wmqcHMN4U`, every spec
  example); a 404/410 is "gone" only for an id of that shape.
- A correction (rectification) PATCHes a customer's `name` and `email` (update-customer) and a payment's
  `billingAddress`/`shippingAddress` (update-payment takes both, whole), after a read, only what differs, and
  checks the answer. The account or card holder in `details` (payment, mandate) is in no update body. Whether
  a finalized payment still takes its addresses is not documented: a 422 is reported as NOT_SUPPORTED.
- There is no way to delete a payment: `DELETE /v2/payments/{id}` *cancels*
  one (SDK resources/payments.py). `PATCH /v2/payments/{id}` may change
  `description` and `metadata` (update-payment).
- Rate limits are dynamic, per endpoint, "measured in requests per second"
  with burst capacity; no number is published (reference/rate-limiting).
- No list has a changed-since filter and customers carry no `updatedAt`, so
  the incremental read (`changes`) reads the newest pages of payments and
  customers, and all subscriptions (see there).

Assumed (unverified, safe side chosen):
- Whether a deleted customer answers 404 or 410: undocumented (delete-customer
  and get-customer list 404; get-profile answers 410 for a deleted profile).
  Both are "gone": a delete or anonymisation is ALREADY_GONE, and a customer
  whose mandates cannot be listed for that reason has none.
- Whether 429 carries `Retry-After` (the spec's 429 response names no
  header): honoured when present, else backoff.
- Whether a *paid* payment's description/metadata may still be patched: a 422
  is reported as NOT_SUPPORTED rather than raised.
- That Mollie accepts the anonymisation placeholders in `PLACEHOLDERS`.
- That customers and payments of one API key belong to one website profile
  (list-customers takes no profileId, payments do; audit M19).
"""
from __future__ import annotations

import email.utils
import functools
import re
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlsplit

import requests
from dateutil.parser import isoparse
from mollie.api.client import Client
from mollie.api.error import RequestError, RequestSetupError
from mollie.api.objects.customer import Customer
from mollie.api.objects.list import PaginationList
from tenacity import RetryCallState, Retrying, retry_if_exception, retry_if_result, wait_exponential

from connectors.base import (ActionResult, Changes, FieldChange, Identifiers, Known, Link, Listing, Outcome, Record,
                             RecordRef)
from connectors.matching import email_key, name_key, phone_key
from connectors.http import (
    RETRY_STATUSES, RateLimiter, VendorBadResponse, VendorError, VendorNotFound, VendorRejected, VendorUnavailable,
    budget_stop, error_for_status, note_call, payload_id, vendor_payloads,
)

SYSTEM = "mollie"

#: Fields `anonymise` can overwrite, per record type (the only ones Mollie's API lets us update).
RECORD_FIELDS: dict[str, frozenset[str]] = {
    "customer": frozenset({"name", "email", "metadata"}),
    "payment": frozenset({"description", "metadata"}),
    "mandate": frozenset(),
    "subscription": frozenset(),
}

#: Mollie publishes no fixed limit; 5 requests a second stays well inside any "requests per second" budget.
DEFAULT_RATE: tuple[int, float] = (5, 1.0)
PAGE_LIMIT = 250  # Mollie's maximum page size
TIMEOUT = (5.0, 30.0)  # connect, read
BACKOFF_MAX = 60.0
RETRY_AFTER_MAX = 120.0  # a Retry-After beyond this is treated as this
#: seconds one SDK call may spend on retries (Mollie's limits are per second: a 429 asks for little)
RETRY_BUDGET = 15.0

#: Non-personal values Mollie accepts in place of personal data (example.com is reserved, RFC 2606).
PLACEHOLDERS: dict[str, Any] = {
    "name": "Anonymised",
    "email": "anonymised@example.com",
    "metadata": {"anonymised": True},
    "description": "Anonymised",
}

#: correctable field -> the customer field (entity-customer: one `name`) and the payment-address parts
#: (payment-address) it is written to
CUSTOMER_CORRECTED = {"name": "name", "email": "email"}
ADDRESS_CORRECTED = {"name": ("givenName", "familyName"), "email": ("email",), "phone": ("phone",),
                     "address.street": ("streetAndNumber",), "address.postcode": ("postalCode",),
                     "address.city": ("city",)}
PAYMENT_ADDRESSES = ("billingAddress", "shippingAddress")
#: payment-details / mandate details: the account or card holder as the bank or card scheme gave it; no update
#: call takes them (update-payment's body has no `details`; mandates have no update at all)
HOLDER_NAMES = ("consumerName", "cardHolder")

ID_PREFIXES = {"customer": "cst_", "payment": "tr_", "mandate": "mdt_", "subscription": "sub_"}
ID_SHAPES = {record_type: re.compile(f"{prefix}[A-Za-z0-9]{{1,64}}") for record_type, prefix in ID_PREFIXES.items()}
#: subscription-status values of an agreement that has not ended (pending: not started; suspended: its mandate failed)
RUNNING_SUBSCRIPTION = frozenset({"active", "pending", "suspended"})
#: payment-status values of a payment that can still be paid
OPEN_PAYMENT = frozenset({"open", "pending", "authorized"})
#: when the person made a payment (entity-payment-response: each is omitted until it happens)
MADE_AT = ("paidAt", "authorizedAt")
MANDATE_SEQUENCE_TYPES = frozenset({"first", "recurring"})  # payments that create or use a mandate
#: mandates are listed per customer only: one whose customer is gone cannot be read any more
OWNED = {"mandate": "customer"}

#: What a human must do where Mollie's API cannot erase (no personal data in these texts).
RETAINED_BY_MOLLIE = {
    "customer": "Mollie's API cannot overwrite these customer fields; change them in the Mollie dashboard.",
    "payment": "Mollie's API cannot delete payments, and vergeet changes no payer, address or bank details on them; "
               "Mollie retains payment records as an independent controller under its own legal obligation. Report "
               "the payment as retained by Mollie; ask Mollie support for anything beyond that.",
    "mandate": "Mollie's API can only revoke a mandate, not erase its account holder or IBAN; delete the customer "
               "(Mollie cancels its mandates) and ask Mollie support for erasure beyond that.",
    "subscription": "Mollie's API can only cancel a subscription, not erase it; delete the customer (Mollie cancels "
                    "its subscriptions) and ask Mollie support for erasure beyond that.",
}


def _sdk_endpoint(base_url: str) -> str:
    """The SDK appends `/v2` itself, so the configured `.../v2` base loses it."""
    base = base_url.strip().rstrip("/")
    return base[: -len("/v2")] if base.endswith("/v2") else base


def _retry_after(response: requests.Response) -> float | None:
    """Seconds a `Retry-After` header asks for (delta-seconds or an HTTP date), or None."""
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())


def _wait_retry_after_or(backoff: Callable[[RetryCallState], float]) -> Callable[[RetryCallState], float]:
    """A tenacity wait: the vendor's `Retry-After` when it sent one, else `backoff`."""

    def wait(state: RetryCallState) -> float:
        outcome = state.outcome
        if outcome is not None and not outcome.failed:
            asked = _retry_after(outcome.result())
            if asked is not None:
                return min(asked, RETRY_AFTER_MAX)
        return backoff(state)

    return wait


def _is_transient(error: BaseException) -> bool:
    """Connection and timeout errors (the SDK wraps them in `RequestError`), not setup errors."""
    return isinstance(error, RequestError) and not isinstance(error, RequestSetupError)


def _last_outcome(state: RetryCallState) -> Any:
    """When retries run out: the last response (or the last error, re-raised)."""
    return state.outcome.result()  # type: ignore[union-attr]


class _PacedClient(Client):
    """The SDK client with each HTTP call paced, retried and mapped to `connectors.http` errors."""

    def __init__(self, endpoint: str, api_key: str, limiter: RateLimiter | None, retries: int,
                 backoff_factor: float, retry_budget: float):
        super().__init__(api_endpoint=endpoint, timeout=TIMEOUT, retry=0)
        try:
            self.set_api_key(api_key)
        except RequestSetupError:
            raise ValueError("a Mollie API key starts with 'live_' or 'test_'") from None  # the SDK quotes the key
        self.limiter = limiter
        self.retries, self.retry_budget = retries, retry_budget
        self.backoff = wait_exponential(multiplier=backoff_factor, max=BACKOFF_MAX)

    def _retrying(self) -> Retrying:
        return Retrying(
            stop=budget_stop(self.retries, self.retry_budget),
            wait=_wait_retry_after_or(self.backoff),
            retry=retry_if_result(lambda response: response.status_code in RETRY_STATUSES)
            | retry_if_exception(_is_transient),
            retry_error_callback=_last_outcome,
        )

    def _error_path(self, path: str) -> str:
        """The URL path without query string: queries are never put into errors."""
        url = path if path.startswith(("http://", "https://")) else f"{self.api_endpoint}/{self.api_version}/{path}"
        return urlsplit(url).path

    def _paced(self, send: Callable[[], requests.Response]) -> requests.Response:
        if self.limiter is None:
            return send()
        with self.limiter.slot():
            return send()

    def perform_http_call(self, http_method: str, path: str, data: dict[str, Any] | None = None,
                          params: dict[str, Any] | None = None, idempotency_key: str = "") -> requests.Response:
        """One SDK call: retried (same idempotency key) until 2xx or out of retries; raises `VendorError`s."""
        where = self._error_path(path)
        note_call(http_method, where)
        send = functools.partial(super().perform_http_call, http_method, path, data, params, idempotency_key)
        try:
            response = self._retrying()(self._paced, send)
        except RequestSetupError:
            raise
        except RequestError as exc:
            raise VendorUnavailable(SYSTEM, http_method, where, None,
                                    "cannot reach Mollie after all retries; try again later") from exc
        if not 200 <= response.status_code < 300:
            raise error_for_status(SYSTEM, http_method, where, response.status_code)
        if response.status_code != 204:
            try:
                body = response.json()
            except ValueError:
                raise VendorBadResponse(SYSTEM, http_method, where, response.status_code,
                                        "response is not valid JSON") from None
            if not isinstance(body, dict):  # every Mollie answer is one HAL object (lists embed theirs)
                raise VendorBadResponse(SYSTEM, http_method, where, response.status_code,
                                        "response does not have the expected shape")
        return response


# -- from Mollie objects to records --------------------------------------------------------------------------------

def _timestamp(value: str | None) -> datetime | None:
    if not value:
        return None
    parsed = isoparse(value)
    return parsed.replace(tzinfo=timezone.utc) if parsed.tzinfo is None else parsed.astimezone(timezone.utc)


def _split_name(name: str | None) -> tuple[str | None, str | None]:
    """Mollie keeps one name; the first word is taken as first name ("Anna de Jong" -> "Anna", "de Jong")."""
    parts = (name or "").split(maxsplit=1)
    return (parts[0] if parts else None), (parts[1] if len(parts) > 1 else None)


def _present(*values: str | None) -> tuple[str, ...]:
    return tuple(v for v in values if v)


def _fields(obj: dict[str, Any]) -> dict[str, Any]:
    """The vendor's own fields for the access report, without hypermedia links."""
    return {k: v for k, v in obj.items() if k != "_links"}


def _href(obj: dict[str, Any], relation: str) -> str | None:
    link = (obj.get("_links") or {}).get(relation)
    return link.get("href") if isinstance(link, dict) else None


def _customer_id(obj: dict[str, Any]) -> str | None:
    """A payment's or subscription's customer: `customerId`, else the last segment of `_links.customer`."""
    href = _href(obj, "customer")
    return obj.get("customerId") or (urlsplit(href).path.rstrip("/").rsplit("/", 1)[-1] if href else None)


def _made_at(payment: dict[str, Any]) -> datetime | None:
    """When the person made the payment: paid, else authorized; None for one never made (open, pending,
    canceled, expired, failed): such a payment is no contact with the person."""
    for stamp in MADE_AT:
        if moment := _timestamp(payment.get(stamp)):
            return moment
    return None


def _id(obj: dict[str, Any], record_type: str) -> str:
    return payload_id(obj, ID_SHAPES[record_type])


def _is_gone(error: VendorError) -> bool:
    """A customer that no longer exists: 404, or 410, which Mollie answers for other deleted entities (get-profile)
    and may answer for a deleted customer (undocumented)."""
    return isinstance(error, VendorNotFound) or (isinstance(error, VendorRejected) and error.status == 410)


def _shown(obj: Any, field: str) -> Any:
    """A field of a Mollie object as it answered it (a blank description or no metadata read as missing)."""
    value = obj.get(field) if isinstance(obj, dict) else None
    return value if value not in ("", {}) else None


def _link(relation: str, record_type: str, record_id: str | None) -> tuple[Link, ...]:
    return (Link(relation, RecordRef(SYSTEM, record_type, record_id)),) if record_id else ()


@dataclass
class _Evidence:
    """What a customer's payments and subscriptions say about it (its mandates say nothing: see `_mandate_record`)."""

    last_payment_at: datetime | None = None
    running: bool = False
    may_have_mandate: bool = False

    def payment(self, payment: dict[str, Any]) -> None:
        made = _made_at(payment)
        if made and (self.last_payment_at is None or made > self.last_payment_at):
            self.last_payment_at = made
        self.running |= payment.get("status") in OPEN_PAYMENT
        if payment.get("sequenceType") in MANDATE_SEQUENCE_TYPES or payment.get("mandateId"):
            self.may_have_mandate = True

    def subscription(self, subscription: dict[str, Any]) -> None:
        self.may_have_mandate = True
        self.running |= subscription.get("status") in RUNNING_SUBSCRIPTION


def _customer_record(customer: dict[str, Any], evidence: _Evidence) -> Record:
    """last_activity_at = the latest payment it made; running_contract = a running subscription or an open
    payment."""
    first, last = _split_name(customer.get("name"))
    return Record(SYSTEM, "customer", _id(customer, "customer"), emails=_present(customer.get("email")), first_name=first,
                  last_name=last, fields=_fields(customer), created_at=_timestamp(customer.get("createdAt")),
                  last_activity_at=evidence.last_payment_at, running_contract=evidence.running)


def _payer_name(payment: dict[str, Any]) -> tuple[str | None, str | None]:
    """The payer's first and last name: the billing address's, else the account or card holder's."""
    billing = payment.get("billingAddress") or {}
    if billing.get("givenName") or billing.get("familyName"):
        return billing.get("givenName"), billing.get("familyName")
    details = payment.get("details") or {}
    return _split_name(details.get("consumerName") or details.get("cardHolder"))


def _payment_record(payment: dict[str, Any]) -> Record:
    """A financial record, dated by when the person made it (paid or authorized).

    last_activity_at = paidAt (else authorizedAt); a payment never made (canceled, expired, failed, or still
    open/pending) has none and does not count as contact. document_date = the date it was made, else its
    created date (the payment's own date for the 7-year rule). Open, pending and authorized payments run.
    """
    billing = payment.get("billingAddress") or {}
    shipping = payment.get("shippingAddress") or {}
    first, last = _payer_name(payment)
    created = _timestamp(payment.get("createdAt"))
    made = _made_at(payment)
    dated = made or created
    return Record(
        SYSTEM, "payment", _id(payment, "payment"),
        emails=_present(billing.get("email"), shipping.get("email")),
        phones=_present(billing.get("phone"), shipping.get("phone")),
        first_name=first, last_name=last,
        fields=_fields(payment), created_at=created, last_activity_at=made,
        document_date=dated.date() if dated else None,
        running_contract=payment.get("status") in OPEN_PAYMENT, counts_as_contact=made is not None,
        links=(_link("customer", "customer", _customer_id(payment))
               + _link("mandate", "mandate", payment.get("mandateId"))
               + _link("subscription", "subscription", payment.get("subscriptionId"))))


def _mandate_record(mandate: dict[str, Any], customer_id: str) -> Record:
    """A mandate is a permission to charge, no contract: it stays valid after its subscription is cancelled
    (cancel-subscription) and card/PayPal mandates come from any first payment (create-mandate)."""
    details = mandate.get("details") or {}
    first, last = _split_name(details.get("consumerName") or details.get("cardHolder"))
    created = _timestamp(mandate.get("createdAt"))
    return Record(SYSTEM, "mandate", _id(mandate, "mandate"), first_name=first, last_name=last, fields=_fields(mandate),
                  created_at=created, last_activity_at=created,
                  links=_link("customer", "customer", mandate.get("customerId") or customer_id))


def _subscription_record(subscription: dict[str, Any]) -> Record:
    created = _timestamp(subscription.get("createdAt"))
    return Record(SYSTEM, "subscription", _id(subscription, "subscription"), fields=_fields(subscription), created_at=created,
                  last_activity_at=created, running_contract=subscription.get("status") in RUNNING_SUBSCRIPTION,
                  links=_link("customer", "customer", _customer_id(subscription)))


def _customers_with_new_mandates(records: Sequence[Record], known: Known) -> set[str]:
    """Customers of payments or subscriptions that start a mandate or name one the cache does not know."""
    customers = set()
    for record in records:
        mandate_id = record.fields.get("mandateId")
        starts = record.fields.get("sequenceType") == "first"
        if starts or (mandate_id and RecordRef(SYSTEM, "mandate", mandate_id) not in known):
            customers.update(link.target.record_id for link in record.links if link.relation == "customer")
    return customers


@dataclass(frozen=True)
class _Wanted:
    """The searched identifiers, normalised as payments' payer details are compared with them."""

    emails: frozenset[str]
    names: frozenset[str]
    phones: frozenset[str]

    @classmethod
    def of(cls, identifiers: Identifiers) -> _Wanted:
        return cls(frozenset(map(email_key, identifiers.emails)) - {""},
                   frozenset(map(name_key, identifiers.names)) - {""},
                   frozenset(filter(None, map(phone_key, identifiers.phones))))

    def __bool__(self) -> bool:
        return bool(self.emails or self.names or self.phones)

    def customer(self, customer: dict[str, Any]) -> bool:
        return email_key(customer.get("email")) in self.emails or name_key(customer.get("name")) in self.names

    def payer(self, payment: dict[str, Any]) -> bool:
        """The payer of a payment: billing/shipping e-mail, phone or full name, the account or card holder."""
        addresses = [payment.get("billingAddress") or {}, payment.get("shippingAddress") or {}]
        details = payment.get("details") or {}
        if any(email_key(a.get("email")) in self.emails for a in addresses):
            return True
        names = [" ".join(filter(None, (a.get("givenName"), a.get("familyName")))) for a in addresses]
        names += [details.get("consumerName"), details.get("cardHolder")]
        if any(name_key(name) in self.names for name in names):
            return True
        return bool(self.phones) and any(phone_key(a.get("phone")) in self.phones for a in addresses if a.get("phone"))


# -- the connector --------------------------------------------------------------------------------------------------

@vendor_payloads
class MollieConnector:
    """Customers, payments, mandates and subscriptions in one Mollie account (API key = one website profile)."""

    system = SYSTEM

    def __init__(self, *, base_url: str = "https://api.mollie.com/v2", api_key: str,
                 rate: tuple[int, float] | None = DEFAULT_RATE, retries: int = 5, backoff_factor: float = 0.5,
                 retry_budget: float = RETRY_BUDGET):
        limiter = RateLimiter(*rate) if rate is not None else None
        self.client = _PacedClient(_sdk_endpoint(base_url), api_key, limiter, retries, backoff_factor, retry_budget)

    # -- reading -----------------------------------------------------------------------------------------------

    def _pages(self, first_page: Callable[[], PaginationList], where: str) -> Iterator[tuple[list[Any], bool]]:
        """The pages of a cursor listing with whether another follows, along `_links.next.href` (loop-guarded)."""
        fetch = first_page
        seen: set[str] = set()
        while True:
            try:
                page = fetch()
                items = list(page)
            except (KeyError, TypeError, ValueError, AttributeError):
                raise VendorBadResponse(SYSTEM, "GET", where, 200,
                                        "response does not have the expected shape") from None
            href = _href(page, "next")
            yield items, href is not None
            if href is None:
                return
            if href in seen:
                raise VendorBadResponse(SYSTEM, "GET", where, 200, "pagination returned the same page twice")
            seen.add(href)
            fetch = page.get_next

    def _each(self, first_page: Callable[[], PaginationList], where: str) -> Iterator[Any]:
        """Every item of a cursor listing."""
        for items, _ in self._pages(first_page, where):
            yield from items

    def _customers(self) -> Iterator[Customer]:
        return self._each(lambda: self.client.customers.list(limit=PAGE_LIMIT), "/v2/customers")

    def _mandates(self, customer: Customer) -> Iterator[Any]:
        return self._each(lambda: customer.mandates.list(limit=PAGE_LIMIT), f"/v2/customers/{customer.id}/mandates")

    def _mandates_if_there(self, customer: Customer) -> list[Any]:
        """A customer's mandates; none when the customer is gone (404/410: deleted since it was listed, or a
        payment names a customer deleted earlier, by vergeet itself for one)."""
        try:
            return list(self._mandates(customer))
        except (VendorNotFound, VendorRejected) as exc:
            if _is_gone(exc):
                return []
            raise

    def _subscriptions(self) -> list[Any]:
        """Every subscription (/v2/subscriptions: no sort parameter and no documented order, so always whole)."""
        return list(self._each(lambda: self.client.subscriptions.list(limit=PAGE_LIMIT), "/v2/subscriptions"))

    def _payments(self) -> Iterator[Any]:
        return self._each(lambda: self.client.payments.list(limit=PAGE_LIMIT), "/v2/payments")

    def records(self, since: datetime | None = None) -> Iterator[Record]:
        """All customers, payments, mandates and subscriptions.

        Mollie has no changed-since filter for customers (which carry no
        updatedAt either), so `since` is ignored: everything is returned, a
        superset of what changed. Cost: pages of /v2/subscriptions,
        /v2/payments and /v2/customers (250 a page), plus one mandates call
        per customer that can have a mandate (a first/recurring payment, a
        payment with a mandate, or a subscription); mandates exist only per
        customer. A mandate created through the API for a customer with none
        of those is not seen here (`search` does fetch it). A customer gone
        between its listing and its mandates call has no mandates.
        """
        return self._read_all(evidence_on_customers=True)

    def _read_all(self, *, evidence_on_customers: bool) -> Iterator[Record]:
        evidence: defaultdict[str, _Evidence] = defaultdict(_Evidence)
        subscriptions = self._subscriptions()
        for subscription in subscriptions:
            if customer_id := _customer_id(subscription):
                evidence[customer_id].subscription(subscription)
        for payment in self._payments():
            if customer_id := _customer_id(payment):
                evidence[customer_id].payment(payment)
            yield _payment_record(payment)
        for customer in self._customers():
            found = evidence[customer.id]
            if found.may_have_mandate:
                for mandate in self._mandates_if_there(customer):
                    yield _mandate_record(mandate, customer.id)
            yield _customer_record(customer, found if evidence_on_customers else _Evidence())
        yield from map(_subscription_record, subscriptions)

    def changes(self, cursor: Mapping[str, Any] | None, known: Known) -> Changes:
        """A full read without a cursor; else all subscriptions and the newest pages of payments and customers.

        No Mollie list has a changed-since filter, and customers carry no updatedAt. /v2/payments and
        /v2/customers are newest first (their `sort` defaults to descending), so they are read until a page
        holds only known, unchanged records: that finds every new record, and changes and deletions within the
        pages read. It misses, until the next full read, changes to records older than those pages: a payment
        that turns paid long after its creation, a customer edited, a mandate revoked, and deletions among them.
        /v2/subscriptions has no `sort` and no documented order (list-all-subscriptions), so no page of it can
        be taken to hold the newest: it is read whole every night (a small business has few subscriptions; 250
        a page), which sees every new, changed and missing subscription. Mandates are read for the customers
        whose new or changed payments or subscriptions name a mandate the cache does not know, or start one (a
        `first` payment); a customer that is gone (404/410, e.g. erased while a direct debit was pending) has
        none, and the night goes on.

        Here, in both reads, a customer carries only its own facts: its payments, mandates and subscriptions are
        records linked to it, and the identity view takes the latest activity and any running contract across
        them, so an unchanged customer stays unchanged when only its payments change.
        """
        if cursor is None:
            return Changes(list(self._read_all(evidence_on_customers=False)), cursor={}, full=True, owned=OWNED)
        subscriptions = [_subscription_record(item) for item in self._subscriptions()]
        records: list[Record] = known.changed(subscriptions)
        listings = [Listing("subscription", frozenset(record.record_id for record in subscriptions))]
        for record_type, first_page, where, to_record in self._lists():
            changed, listing = self._newest_changes(record_type, first_page, where, to_record, known)
            records += changed
            listings.append(listing)
        for customer_id in sorted(_customers_with_new_mandates(records, known)):
            customer = Customer({"resource": "customer", "id": customer_id}, self.client)
            records += [_mandate_record(mandate, customer_id) for mandate in self._mandates_if_there(customer)]
        return Changes(records, cursor={}, listings=listings, owned=OWNED)

    def _lists(self) -> tuple[tuple[str, Callable[[], PaginationList], str, Callable[[Any], Record]], ...]:
        """The newest-first lists an incremental read pages through, with how their items become records."""
        return (("payment", lambda: self.client.payments.list(limit=PAGE_LIMIT), "/v2/payments", _payment_record),
                ("customer", lambda: self.client.customers.list(limit=PAGE_LIMIT), "/v2/customers",
                 lambda customer: _customer_record(customer, _Evidence())))

    def _newest_changes(self, record_type: str, first_page: Callable[[], PaginationList], where: str,
                        to_record: Callable[[Any], Record], known: Known) -> tuple[list[Record], Listing]:
        """Pages until one holds only known, unchanged records: the changed records, and the ids the pages span."""
        changed: list[Record] = []
        seen: set[str] = set()
        oldest: datetime | None = None
        for items, more in self._pages(first_page, where):
            records = [to_record(item) for item in items]
            seen.update(record.record_id for record in records)
            oldest = min((r.created_at for r in records if r.created_at), default=oldest)
            fresh = known.changed(records)
            changed += fresh
            if not fresh:
                break
        # what the pages span: back to the oldest record read, or everything when the last page was read
        return changed, Listing(record_type, frozenset(seen), created_after=oldest if more else None)

    def search(self, identifiers: Identifiers) -> Iterator[Record]:
        """Customers matching an e-mail or full name, with their payments, mandates and subscriptions; and
        payments of no matched customer whose payer matches.

        No Mollie list has an e-mail, name or phone filter, so one paged
        listing of all customers and one of all payments (250 a page), both
        shared by all identifiers, are matched here. Customers on normalised
        e-mail and full name (they have no phone); payments on the payer:
        `billingAddress`/`shippingAddress` e-mail, phone (E.164) and given +
        family name, `details.consumerName` and `details.cardHolder`. That
        finds payments made without a customer (payment links, payments the
        invoicing system created) and those of a customer deleted since.
        Then three listings per matched customer (payments, mandates,
        subscriptions). A search by phone alone lists no customers.
        """
        wanted = _Wanted.of(identifiers)
        if not wanted:
            return
        matched = [c for c in self._customers() if wanted.customer(c)] if wanted.emails or wanted.names else []
        ids = {customer.id for customer in matched}
        payers = [p for p in self._payments() if _customer_id(p) not in ids and wanted.payer(p)]
        for customer in matched:
            yield from self._customer_with_relations(customer)
        yield from map(_payment_record, payers)

    def _customer_with_relations(self, customer: Customer) -> Iterator[Record]:
        evidence = _Evidence()
        where = f"/v2/customers/{customer.id}"
        for payment in self._each(lambda: customer.payments.list(limit=PAGE_LIMIT), f"{where}/payments"):
            evidence.payment(payment)
            yield _payment_record(payment)
        for subscription in self._each(lambda: customer.subscriptions.list(limit=PAGE_LIMIT), f"{where}/subscriptions"):
            evidence.subscription(subscription)
            yield _subscription_record(subscription)
        for mandate in self._mandates(customer):
            yield _mandate_record(mandate, customer.id)
        yield _customer_record(customer, evidence)

    def read(self, ref: RecordRef, parent: RecordRef | None = None) -> Record | None:
        """One record by its id, as a listing gives it (get-customer, get-payment; a mandate or subscription under
        its customer, `parent`: get-mandate, get-subscription); None when Mollie has it no more (404/410).

        A customer comes with its own facts only (as in `changes`): its payments, mandates and subscriptions are
        records linked to it. A mandate or subscription without its customer cannot be addressed: ValueError.
        """
        record_type = self._checked(ref)
        try:
            if record_type == "customer":
                return _customer_record(self.client.customers.get(ref.record_id), _Evidence())
            if record_type == "payment":
                return _payment_record(self.client.payments.get(ref.record_id))
            if parent is None or parent.record_type != "customer":
                raise ValueError(f"a Mollie {record_type} is read under its customer; none given for {ref}")
            customer = Customer({"resource": "customer", "id": parent.record_id}, self.client)
            if record_type == "mandate":
                return _mandate_record(customer.mandates.get(ref.record_id), parent.record_id)
            return _subscription_record(customer.subscriptions.get(ref.record_id))
        except (VendorNotFound, VendorRejected) as exc:
            if _is_gone(exc):
                return None
            raise

    # -- actions -----------------------------------------------------------------------------------------------

    @staticmethod
    def _checked(ref: RecordRef) -> str:
        """The record type of a Mollie ref, after checking system, type and id shape."""
        shape = ID_SHAPES.get(ref.record_type)
        if ref.system != SYSTEM or shape is None or not shape.fullmatch(ref.record_id):
            raise ValueError(f"{ref} is not a Mollie customer, payment, mandate or subscription")
        return ref.record_type

    def delete(self, ref: RecordRef) -> ActionResult:
        """Delete a customer (Mollie cancels its mandates and subscriptions; its payments stay).

        Payments, mandates and subscriptions cannot be erased through the API:
        NOT_SUPPORTED without any HTTP call (DELETE on a payment would cancel it).
        """
        if self._checked(ref) != "customer":
            return ActionResult(Outcome.NOT_SUPPORTED, RETAINED_BY_MOLLIE[ref.record_type])
        path = f"customers/{ref.record_id}"
        try:
            response = self.client.perform_http_call("DELETE", path)
        except (VendorNotFound, VendorRejected) as exc:
            if not _is_gone(exc):
                raise
            return ActionResult(Outcome.ALREADY_GONE, f"customer not at Mollie (HTTP {exc.status})")
        if response.status_code != 204:
            raise VendorBadResponse(SYSTEM, "DELETE", self.client._error_path(path), response.status_code,
                                    "answered without 204, which alone confirms a delete; nothing is recorded as "
                                    "deleted")
        return ActionResult(Outcome.DONE, "customer deleted; Mollie cancelled its mandates and subscriptions and "
                                          "keeps its payments")

    def anonymise(self, ref: RecordRef, fields: Sequence[str]) -> ActionResult:
        """Overwrite named fields with `PLACEHOLDERS` via PATCH (customer: name/email/metadata; payment:
        description/metadata). Any other field is NOT_SUPPORTED, after the updatable ones are done."""
        record_type = self._checked(ref)
        wanted = set(fields)
        updatable = wanted & RECORD_FIELDS[record_type]
        rest = wanted - updatable
        written: list[str] = []
        if updatable:
            resource = self.client.customers if record_type == "customer" else self.client.payments
            try:
                held = resource.get(ref.record_id)
                change = {field: PLACEHOLDERS[field] for field in sorted(updatable)
                          if _shown(held, field) != PLACEHOLDERS[field]}
                answer = resource.update(ref.record_id, change) if change else None
            except VendorNotFound:
                return ActionResult(Outcome.ALREADY_GONE, f"{record_type} not found at Mollie")
            except VendorRejected as exc:
                if _is_gone(exc):
                    return ActionResult(Outcome.ALREADY_GONE, f"{record_type} deleted at Mollie (HTTP 410)")
                if record_type != "payment" or exc.status != 422:
                    raise
                return ActionResult(Outcome.NOT_SUPPORTED, f"Mollie refused to update payment {ref.record_id} "
                                                           f"(HTTP 422, probably finalized). "
                                                           + RETAINED_BY_MOLLIE["payment"])
            if answer is not None and (_id(answer, record_type) != ref.record_id
                                       or any(_shown(answer, field) != value for field, value in change.items())):
                raise VendorBadResponse(SYSTEM, "PATCH", self.client._error_path(f"{resource.get_resource_path()}/"
                                                                                 f"{ref.record_id}"), 200,
                                        "the answer does not show the overwritten fields; nothing is recorded as done")
            written = sorted(change)
        if rest:
            return ActionResult(Outcome.NOT_SUPPORTED, f"not overwritten: {', '.join(sorted(rest))}. "
                                                       + RETAINED_BY_MOLLIE[record_type])
        if updatable and not written:
            return ActionResult(Outcome.DONE, f"{', '.join(sorted(updatable))} already overwritten; nothing sent")
        return ActionResult(Outcome.DONE, f"overwrote {', '.join(written)}")

    # -- rectification ------------------------------------------------------------------------------------------

    def plan_correction(self, record: Record, new: Mapping[str, str]) -> list[FieldChange]:
        """A customer's `name` and `email` (update-customer); a payment's billing and shipping address parts
        (update-payment takes `billingAddress` and `shippingAddress`); the account or card holder's name in a
        payment's or mandate's `details` is "vendor_read_only" (no update call takes it), and so is a payment's name
        when the holder's name is there, the bank's record of who paid."""
        record_type = self._checked(record.ref)
        changes = []
        for name, value in new.items():
            held = _correctable(record_type, record.fields, name)
            if held is not None:
                changes.append(FieldChange(record.ref, name, *held[:2], value, held[2]))
        return changes

    def correct(self, changes: Sequence[FieldChange]) -> ActionResult:
        """Read the customer or payment, PATCH what does not show the new values yet (a payment address whole,
        with the corrected parts), and check the answer shows them. A payment Mollie no longer lets change
        answers 422 (update-payment: "a property that can no longer be updated"): NOT_SUPPORTED, nothing changed.
        Requests: a read (`read`), and a PATCH unless nothing differs."""
        refs = {change.ref for change in changes}
        if len(refs) != 1:
            raise ValueError("correct() takes the changes of one record")
        ref = refs.pop()
        record_type = self._checked(ref)
        wanted = [change for change in changes if change.refused is None and change.new is not None]
        if record_type not in ("customer", "payment") or not wanted:
            return ActionResult(Outcome.NOT_SUPPORTED, f"{record_type} {ref.record_id} keeps every value asked for: "
                                                       + RETAINED_BY_MOLLIE[record_type])
        record = self.read(ref)
        if record is None:
            return ActionResult(Outcome.ALREADY_GONE, f"{record_type} {ref.record_id} not at Mollie")
        resource = self.client.customers if record_type == "customer" else self.client.payments
        body = _corrected(record_type, record.fields, wanted)
        if not body:
            return ActionResult(Outcome.DONE, f"{record_type} {ref.record_id} already shows "
                                              f"{', '.join(sorted(c.field for c in wanted))}; nothing sent")
        try:
            answer = resource.update(ref.record_id, body)
        except (VendorNotFound, VendorRejected) as exc:
            if _is_gone(exc):
                return ActionResult(Outcome.ALREADY_GONE, f"{record_type} {ref.record_id} not at Mollie "
                                                          f"(HTTP {exc.status})")
            if exc.status != 422:
                raise
            return ActionResult(Outcome.NOT_SUPPORTED, f"Mollie refused to change {', '.join(sorted(body))} of "
                                                       f"{record_type} {ref.record_id} (HTTP 422: no longer "
                                                       f"updatable); nothing was changed. "
                                                       + RETAINED_BY_MOLLIE[record_type])
        if answer.get("id") != ref.record_id or _corrected(record_type, answer, wanted):
            raise VendorBadResponse(SYSTEM, "PATCH", self.client._error_path(f"{resource.get_resource_path()}/"
                                                                             f"{ref.record_id}"), 200,
                                    "the answer does not show the corrected fields; nothing is recorded as done")
        return ActionResult(Outcome.DONE, f"{record_type} {ref.record_id}: corrected {', '.join(sorted(body))} "
                                          "(answer checked)")


def _correctable(record_type: str, fields: Mapping[str, Any], name: str
                 ) -> tuple[str, str, str | None] | None:
    """(vendor field, current value, refusal) of one correctable field a record holds; None when it holds none."""
    if record_type == "customer":
        value = _text(fields.get(CUSTOMER_CORRECTED.get(name, "")))
        return (CUSTOMER_CORRECTED[name], value, None) if value else None
    details = fields.get("details") or {}
    holder = next(((f"details.{key}", _text(details.get(key))) for key in HOLDER_NAMES if _text(details.get(key))),
                  None)
    if name == "name" and holder:
        return (*holder, "vendor_read_only")
    if record_type != "payment" or name not in ADDRESS_CORRECTED:
        return None
    paths, values = [], []
    for address in PAYMENT_ADDRESSES:
        parts = [_text((fields.get(address) or {}).get(part)) for part in ADDRESS_CORRECTED[name]]
        if any(parts):
            paths += [f"{address}.{part}" for part in ADDRESS_CORRECTED[name]]
            values.append(" ".join(part for part in parts if part))
    return (", ".join(paths), ", ".join(dict.fromkeys(values)), None) if paths else None


def _corrected(record_type: str, held: Any, wanted: Sequence[FieldChange]) -> dict[str, Any]:
    """The PATCH body that makes `held` show the new values: customer fields, or payment addresses whole with the
    corrected parts (a name split at its first space into given and family name); {} when it shows them."""
    if record_type == "customer":
        return {CUSTOMER_CORRECTED[c.field]: c.new for c in wanted
                if not _same(c.field, _text(_shown(held, CUSTOMER_CORRECTED[c.field])), c.new)}
    body: dict[str, Any] = {}
    for change in wanted:
        parts = change.new.split(maxsplit=1) if change.field == "name" else [change.new]
        values = dict(zip(ADDRESS_CORRECTED[change.field], parts if len(parts) == len(ADDRESS_CORRECTED[change.field])
                          else ["", change.new]))
        for path in change.vendor_field.split(", "):
            address, part = path.split(".")
            current = body.get(address) or dict(held.get(address) or {})
            if not _same(change.field, _text(current.get(part)), values[part]):
                body[address] = {**current, part: values[part]}
    return body


def _same(name: str, held: str, new: str) -> bool:
    return held.casefold() == new.casefold() if name == "email" else held == new


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


# -- what a person reads ---------------------------------------------------------------------

#: labels (nl, en) of the fields a person's record shows in the access report (paths as `vergeet.access` walks
#: the record). Fields not named here (ids, mode, profile, `_links`, webhook and redirect URLs) stay out of the
#: HTML; the JSON export keeps them all.
FIELD_LABELS: dict[str, tuple[str, str]] = {
    "name": ("Naam", "Name"), "email": ("E-mailadres", "E-mail address"), "locale": ("Taal", "Language"),
    "metadata": ("Extra gegevens", "Extra data"),
    "createdAt": ("Aangemaakt", "Created"), "description": ("Omschrijving", "Description"),
    "amount.value": ("Bedrag", "Amount"), "amount.currency": ("Valuta", "Currency"),
    "method": ("Betaalmethode", "Payment method"), "status": ("Stand", "Status"),
    "sequenceType": ("Soort betaling", "Kind of payment"), "paidAt": ("Betaald op", "Paid on"),
    "canceledAt": ("Geannuleerd op", "Cancelled on"), "interval": ("Elke", "Every"),
    "times": ("Aantal keer", "Number of times"), "startDate": ("Begindatum", "Start date"),
    "signatureDate": ("Getekend op", "Signed on"), "mandateReference": ("Kenmerk machtiging", "Mandate reference"),
    "details.consumerName": ("Naam rekeninghouder", "Account holder's name"),
    "details.consumerAccount": ("Rekeningnummer", "Account number"), "details.consumerBic": ("BIC", "BIC"),
    "details.cardHolder": ("Naam kaarthouder", "Cardholder's name"),
    "details.cardNumber": ("Laatste cijfers van de kaart", "Last digits of the card"),
    "details.cardLabel": ("Soort kaart", "Card type"),
    "billingAddress.givenName": ("Factuuradres: voornaam", "Billing address: first name"),
    "billingAddress.familyName": ("Factuuradres: achternaam", "Billing address: last name"),
    "billingAddress.email": ("Factuuradres: e-mailadres", "Billing address: e-mail address"),
    "billingAddress.streetAndNumber": ("Factuuradres: straat", "Billing address: street"),
    "billingAddress.postalCode": ("Factuuradres: postcode", "Billing address: postcode"),
    "billingAddress.city": ("Factuuradres: plaats", "Billing address: city"),
    "billingAddress.country": ("Factuuradres: land", "Billing address: country"),
    "metadata.order_id": ("Bestelnummer", "Order number"),
}
#: vendor codes in words (nl, en)
VALUE_LABELS: dict[str, dict[str, tuple[str, str]]] = {
    "status": {"open": ("open", "open"), "pending": ("in behandeling", "pending"),
               "authorized": ("goedgekeurd", "authorised"), "paid": ("betaald", "paid"),
               "canceled": ("geannuleerd", "cancelled"), "expired": ("verlopen", "expired"),
               "failed": ("mislukt", "failed"), "valid": ("geldig", "valid"), "invalid": ("ongeldig", "invalid"),
               "active": ("actief", "active"), "suspended": ("opgeschort", "suspended"),
               "completed": ("afgerond", "completed")},
    "method": {"ideal": ("iDEAL", "iDEAL"), "directdebit": ("automatische incasso", "direct debit"),
               "creditcard": ("creditcard", "credit card"), "banktransfer": ("overboeking", "bank transfer"),
               "bancontact": ("Bancontact", "Bancontact"), "paypal": ("PayPal", "PayPal")},
    "sequenceType": {"oneoff": ("eenmalig", "one-off"), "first": ("eerste van een reeks", "first of a series"),
                     "recurring": ("terugkerend", "recurring")},
    "locale": {"nl_NL": ("Nederlands", "Dutch"), "nl_BE": ("Nederlands (België)", "Dutch (Belgium)"),
               "en_US": ("Engels", "English"), "en_GB": ("Engels", "English"), "de_DE": ("Duits", "German")},
    "interval": {"1 month": ("maand", "month"), "1 week": ("week", "week"), "1 year": ("jaar", "year"),
                 "3 months": ("3 maanden", "3 months"), "12 months": ("jaar", "year")},
}


def web_link(record: Record) -> str | None:
    """The record in the Mollie dashboard, where Mollie gives the link (`_links.dashboard`, mollie/openapi)."""
    return ((record.fields.get("_links") or {}).get("dashboard") or {}).get("href")
