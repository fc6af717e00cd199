"""WooCommerce REST API v3 connector: the web shop's customers and orders.

Vendor facts this module relies on (WC: the `woocommerce/woocommerce` repository, plugins/woocommerce/includes/
rest-api/Controllers; DOCS: developer.woocommerce.com/docs/apis/rest-api and woocommerce.github.io/
woocommerce-rest-api-docs):
- The API lives at `{shop}/wp-json/wc/v3/` (needs WordPress permalinks other than "Plain", DOCS getting started).
  Over HTTPS the consumer key and secret go as HTTP Basic user and password (DOCS authentication: "When your
  site uses HTTPS, use HTTP Basic Authentication"); over plain HTTP WooCommerce wants OAuth 1.0a signatures, so
  vergeet speaks to a shop over HTTPS only (the config refuses http:// except to 127.0.0.1). A key acts as the
  WordPress user it was made for, with Read, Write or Read/Write permission (DOCS). Refusals are 401 with
  `woocommerce_rest_authentication_error` (a wrong key, or a key without write permission) or
  `woocommerce_rest_cannot_view` (no credentials arrived: some hosts drop the Authorization header).
- Error bodies are WordPress's `{"code", "message", "data": {"status"}}`; only the code (a fixed identifier) is
  kept: a message may quote what was sent.
- Lists (WC_REST_CRUD_Controller::get_items, WC_REST_Customers_V1_Controller::get_items) page with `page` and
  `per_page` (1..100, default 10; a value out of range is a 400 `rest_invalid_param`) and say `X-WP-Total` and
  `X-WP-TotalPages` in headers. A listing without `X-WP-TotalPages` does not prove it is complete and fails the read.
  Both are read `orderby=id&order=asc`, so an order placed during the read lands on the last page, not between two.
- Customers (WordPress users) are listed with `role` (default `customer`; only customers and subscribers may be
  deleted through the API, WC_REST_Customers_V1_Controller::delete_item_permissions_check) and have no
  changed-since filter. v3 customers carry no last order (v1 did): an order points at its customer by
  `customer_id`, 0 for a guest, whose order alone holds the person (its `billing` and `shipping`).
- Orders take `status` (`any`, the default, leaves the trash out; `trash` lists it), `modified_after` with
  `dates_are_gmt` (WC_REST_CRUD_Controller::prepare_objects_query), `customer`, `search`. Dates come twice:
  `date_created` in the shop's time zone and `date_created_gmt`; the `_gmt` ones are read (UTC without offset).
- `DELETE orders/{id}` without `force` moves the order to the trash (status `trash`, restorable; a second one is
  410 `woocommerce_rest_already_trashed`); `force=true` deletes it and answers 200 with the order as it was
  (WC_REST_CRUD_Controller::delete_item). An unknown id is 404 `woocommerce_rest_shop_order_invalid_id`.
- `DELETE customers/{id}` needs `force=true` ("Required to be true, as resource does not support trashing";
  without it 501 `woocommerce_rest_trash_not_supported`) and answers 200 with the customer; `reassign` would hand
  the user's WordPress posts to another user (a customer writes none: not sent). An unknown id is 404. WooCommerce
  does not refuse a customer with orders: it deletes the user and sets `customer_id` to 0 on its orders
  (wc-user-functions.php `wc_reset_order_customer_id_on_deleted_user`), which stay as guest orders with their
  billing copy of the person.
- `PUT customers/{id}` takes `first_name`, `last_name`, `email`, `billing` and `shipping` objects; an e-mail
  another user has is 400 `woocommerce_rest_customer_invalid_email` (V1 update_item).
- Rate limits: the REST API v3 documents none; WooCommerce runs on the shop's own WordPress, where only the Store
  API has an optional limiter (25 requests per 10 s, off by default: DOCS store-api/rate-limiting), and hosts may
  add their own. So the pace is conservative by default (`DEFAULT_RATE`, 2 a second: every call starts WordPress
  on what is often shared hosting) and the config may set it faster or slower; a host's 429 with `Retry-After` is
  honoured by `connectors.http`.

Choices:
- A customer is dated by its orders: each order links to its customer (`customer_id`) and carries the billing
  e-mail, so the person's last contact is the newest order; the customer record's own moment is its registration
  (`date_created`). `date_modified` is not contact: WooCommerce changes it on every checkout and on every edit by
  the shop, vergeet's own included.
- An order is a fiscal document dated by `date_created` (`document_date`): the sale happened then, every order
  has it, and `date_paid` is empty for an order not (yet) paid; its last activity is the newest of created, paid
  and completed. It is a running contract while `pending`, `on-hold` or `processing` (not yet paid or delivered).
  A `checkout-draft` (a cart the block checkout keeps before the person places the order) dates nobody.
- Trashed orders are read too (they still hold the person) and deleted with `force=true` like the others.
- Search reads every customer and order (kept `FRESH_SECONDS`, so the rounds of one request read them once) and
  matches them here after normalisation: the orders' `search` is a substring match on the address as typed and
  the customers' covers no phone, so a number written another way would be missed. Each customer found brings its
  orders, each order its customer.
- The nightly read lists every customer (no changed-since filter exists) and only the orders modified since the
  last read; deleted orders are seen on the next full read (`[sync] full_every_days`).
"""
from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

import requests
from requests.auth import HTTPBasicAuth

from connectors.base import (ActionResult, Changes, FieldChange, Identifiers, Known, Link, Listing, Outcome, Record,
                             RecordRef)
from connectors.http import (DIGITS, LastErrorCode, Page, PayloadError, RateLimiter, VendorAuthError,
                             VendorBadResponse, VendorNotFound, VendorRejected, VendorSession, payload_id,
                             vendor_payloads)
from connectors.matching import email_key, name_key, phone_key

SYSTEM = "woocommerce"
API_PATH = "/wp-json/wc/v3"
#: no documented limit (see above): 2 requests a second unless the config says otherwise
DEFAULT_RATE = (2, 1.0)
RETRY_BUDGET = 15.0
PAGE_SIZE = 100
FRESH_SECONDS = 900.0
#: an order modified in the same second as the newest one read last time is read again
CURSOR_OVERLAP = timedelta(seconds=1)
CUSTOMER, ORDER = "customer", "order"
RESOURCES = {CUSTOMER: "customers", ORDER: "orders"}
RECORD_FIELDS: dict[str, frozenset[str]] = {CUSTOMER: frozenset(), ORDER: frozenset()}
RUNNING_STATUSES = frozenset({"pending", "on-hold", "processing"})
NOT_PLACED = frozenset({"checkout-draft"})
ORDER_LISTINGS = ("any", "trash")  # `any` leaves the trash out
ADDRESSES = ("billing", "shipping")
_CODE = re.compile(r"[a-z][a-z0-9_]{0,80}")
KEY_HELP = ("check consumer_key and consumer_secret (WooCommerce, Settings, Advanced, REST API) and that the key has "
            "Read/Write permission; a host that drops the Authorization header answers woocommerce_rest_cannot_view")
#: what a person's correction writes on a customer, per correctable field
CORRECTIONS: dict[str, tuple[str, ...]] = {
    "name": ("first_name", "last_name", "billing.first_name", "billing.last_name"),
    "email": ("email", "billing.email"), "phone": ("billing.phone",), "address.street": ("billing.address_1",),
    "address.postcode": ("billing.postcode",), "address.city": ("billing.city",)}


def error_code(response: requests.Response) -> str | None:
    """WooCommerce's `code` in an error answer, when it is one of its identifiers (the message beside it may quote
    what was sent: never kept)."""
    with contextlib.suppress(ValueError):
        body = response.json()
        code = body.get("code") if isinstance(body, dict) else None
        if isinstance(code, str) and _CODE.fullmatch(code):
            return code
    return None


def api_base_url(shop_url: str) -> str:
    """The REST API v3 root of a shop given by its own address (or by that root already)."""
    url = shop_url.strip().rstrip("/")
    return url if url.endswith(API_PATH) else url + API_PATH


class _TotalPages:
    """WordPress paging: `page` up to `X-WP-TotalPages`."""

    def first(self, params: dict[str, Any]) -> dict[str, Any]:
        return {**params, "per_page": PAGE_SIZE, "page": 1}

    def next(self, page: Page, params: dict[str, Any]) -> dict[str, Any] | None:
        pages = page.response.headers.get("X-WP-TotalPages", "")
        if not pages.isdigit():
            raise PayloadError("a listing without X-WP-TotalPages")
        return {**params, "page": params["page"] + 1} if params["page"] < int(pages) else None


@vendor_payloads
class WooCommerceConnector:
    """Reads, finds, corrects and deletes a WooCommerce shop's customers and orders."""

    system = SYSTEM

    def __init__(self, *, base_url: str, consumer_key: str, consumer_secret: str,
                 rate: tuple[int, float] | None = DEFAULT_RATE, retries: int = 5, backoff_factor: float = 0.5,
                 retry_budget: float = RETRY_BUDGET):
        self.http = VendorSession(SYSTEM, api_base_url(base_url), HTTPBasicAuth(consumer_key, consumer_secret),
                                  limiter=RateLimiter(*rate) if rate else None, retries=retries,
                                  backoff_factor=backoff_factor, retry_budget=retry_budget)
        self._errors = LastErrorCode(self.http, error_code)
        self._read_at: tuple[float, list[Record]] | None = None

    # -- the wire -----------------------------------------------------------------------------------------
    @property
    def _code(self) -> str | None:
        return self._errors.code

    def _key_refused(self, exc: VendorAuthError) -> VendorAuthError:
        return VendorAuthError(SYSTEM, exc.method, exc.path, exc.status,
                               f"WooCommerce refused the key ({self._code or 'no code'}); {KEY_HELP}")

    def _call(self, method: str, path: str, **options: Any) -> Any:
        """One request's JSON; a refused key says what to check."""
        try:
            return self.http.json(method, path, **options)
        except VendorAuthError as exc:
            raise self._key_refused(exc) from None

    def _rows(self, resource: str, params: Mapping[str, Any] | None = None) -> Iterator[dict[str, Any]]:
        """Every row of a listing, page by page, oldest id first."""
        try:
            for page in self.http.paginate(resource, _TotalPages(), items=lambda body: body,
                                           params={"orderby": "id", "order": "asc", **(params or {})}):
                yield from page.items
        except VendorAuthError as exc:
            raise self._key_refused(exc) from None

    def _orders(self, modified_after: datetime | None = None) -> list[dict[str, Any]]:
        since = {} if modified_after is None else {
            "modified_after": modified_after.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S"),
            "dates_are_gmt": "true"}
        return [row for status in ORDER_LISTINGS for row in self._rows("orders", {"status": status, **since})]

    def _customers(self) -> list[dict[str, Any]]:
        return list(self._rows("customers", {"role": "customer"}))

    # -- reading ------------------------------------------------------------------------------------------
    def records(self, since: datetime | None = None) -> Iterator[Record]:
        """Every customer and order (trashed ones too); with `since`, those changed after it."""
        for record in self._read():
            if since is None or record.updated_at is None or record.updated_at > since:
                yield record

    def _read(self) -> list[Record]:
        records = [*map(customer_record, self._customers()), *map(order_record, self._orders())]
        self._read_at = (time.monotonic(), records)
        return records

    def changes(self, cursor: Mapping[str, Any] | None, known: Known) -> Changes:
        """Without a cursor a full read; else every customer (listed whole: deletions follow) and the orders
        modified since the newest one the last read saw."""
        if cursor is None or not isinstance(cursor.get("orders_modified"), str):
            records = self._read()
            return Changes(records, cursor=_cursor(records, None), full=True)
        previous = _timestamp(cursor["orders_modified"])
        customers = list(map(customer_record, self._customers()))
        orders = list(map(order_record, self._orders(previous - CURSOR_OVERLAP)))
        return Changes(known.changed([*customers, *orders]), cursor=_cursor(orders, previous),
                       listings=[Listing(CUSTOMER, frozenset(r.record_id for r in customers))])

    def search(self, identifiers: Identifiers) -> Iterator[Record]:
        """Customers and orders holding a searched e-mail, phone or name, each customer with its orders and each
        order with its customer (see the module docstring: a full read, matched here)."""
        emails = {email_key(e) for e in identifiers.emails} - {""}
        phones = {phone_key(p) for p in identifiers.phones} - {None}
        names = {name_key(n) for n in identifiers.names} - {""}
        cached = self._read_at
        records = cached[1] if cached and time.monotonic() - cached[0] <= FRESH_SECONDS else self._read()
        hits = {record.ref for record in records
                if emails & {email_key(e) for e in record.emails} or phones & {phone_key(p) for p in record.phones}
                or names & _names(record)}
        hits |= {link.target for record in records if record.ref in hits for link in record.links}
        for record in records:
            if record.ref in hits or any(link.target in hits for link in record.links):
                yield record

    def read(self, ref: RecordRef, parent: RecordRef | None = None) -> Record | None:
        """One customer (`GET customers/{id}`) or order (`GET orders/{id}`, trashed too); None when gone."""
        path = _record_path(ref)
        try:
            row = self._call("GET", path)
        except VendorNotFound:
            return None
        record = (customer_record if ref.record_type == CUSTOMER else order_record)(row)
        if record.record_id != ref.record_id:
            raise VendorBadResponse(SYSTEM, "GET", f"/{RESOURCES[ref.record_type]}/{{id}}", 200,
                                    "WooCommerce answered with another record")
        return record

    # -- acting -------------------------------------------------------------------------------------------
    def delete(self, ref: RecordRef) -> ActionResult:
        """Delete a customer or an order for good (`force=true`: never the trash), then read it back."""
        path = _record_path(ref)
        self._read_at = None
        try:
            answer = self._call("DELETE", path, params={"force": "true"})
        except VendorNotFound:
            return ActionResult(Outcome.ALREADY_GONE, f"{ref} was not found ({self._code or 'HTTP 404'})")
        if payload_id(answer, DIGITS) != ref.record_id:
            raise VendorBadResponse(SYSTEM, "DELETE", f"/{RESOURCES[ref.record_type]}/{{id}}", 200,
                                    "answered without the deleted record; nothing is recorded as deleted")
        after = self.read(ref)
        if after is not None and after.fields.get("status") == "trash":
            return ActionResult(Outcome.NOT_SUPPORTED, f"WooCommerce moved {ref} to the trash instead of deleting "
                                                       "it; delete it for good in WooCommerce (Orders, Trash)")
        if after is not None:
            raise VendorBadResponse(SYSTEM, "GET", f"/{RESOURCES[ref.record_type]}/{{id}}", 200,
                                    "WooCommerce confirmed the delete but still has the record")
        if ref.record_type == CUSTOMER:
            return ActionResult(Outcome.DONE, "deleted (force=true); read back: gone. Its orders stay, as guest "
                                              "orders (customer_id 0) with their own billing copy, under their rule")
        return ActionResult(Outcome.DONE, "deleted for good (force=true, not the trash); read back: gone")

    def anonymise(self, ref: RecordRef, fields: Sequence[str]) -> ActionResult:
        """Not offered: a customer goes whole (delete), an order is a fiscal document kept whole or deleted."""
        return ActionResult(Outcome.NOT_SUPPORTED, f"vergeet deletes {ref} whole instead of anonymising it")

    def plan_correction(self, record: Record, new: Mapping[str, str]) -> list[FieldChange]:
        """A customer's account and billing fields change; an order keeps the address it was placed with."""
        changes = []
        for name, value in new.items():
            targets = tuple(t for t in CORRECTIONS.get(name, ()) if record.record_type == CUSTOMER
                            or t.startswith("billing."))
            values = [_at(record.fields, target) for target in targets]
            held = " ".join(v for v in values[:2] if v) if name == "name" else next((v for v in values if v), "")
            if held:
                changes.append(FieldChange(record.ref, name, targets[0], held, value,
                                           refused="issued_document" if record.record_type == ORDER else None))
        return changes

    def correct(self, changes: Sequence[FieldChange]) -> ActionResult:
        """`PUT customers/{id}` with the new values where they differ; read from the answer that they took."""
        wanted = [change for change in changes if change.refused is None]
        if not wanted:
            return ActionResult(Outcome.DONE, "nothing to change")
        ref = wanted[0].ref
        current = self.read(ref)
        if current is None:
            return ActionResult(Outcome.ALREADY_GONE, f"{ref} was not found")
        body: dict[str, Any] = {}
        written = []
        for change in wanted:
            for target, value in _values(change.field, change.new or ""):
                if _at(current.fields, target) != value:
                    head, _, tail = target.partition(".")
                    if tail:
                        body.setdefault(head, {})[tail] = value
                    else:
                        body[head] = value
                    written.append(target)
        if not body:
            return ActionResult(Outcome.DONE, f"{ref} already shows the new values; nothing written")
        try:
            answer = self._call("PUT", _record_path(ref), json=body)
        except VendorNotFound:
            return ActionResult(Outcome.ALREADY_GONE, f"{ref} was not found")
        except VendorRejected as exc:
            return ActionResult(Outcome.NOT_SUPPORTED, f"WooCommerce refused the change of {ref} (HTTP {exc.status}, "
                                                       f"{self._code or 'no code'}); change it by hand in "
                                                       "WordPress (Users, the customer)")
        left = [target for change in wanted for target, value in _values(change.field, change.new or "")
                if _at(answer, target) != value]
        if left:
            return ActionResult(Outcome.NOT_SUPPORTED, f"WooCommerce still shows the old {', '.join(left)} on {ref}")
        return ActionResult(Outcome.DONE, f"{len(written)} field(s) of {ref} written ({', '.join(written)}); the "
                                          "answer shows them")


# -- payload -> Record ------------------------------------------------------------------------------------------
def customer_record(row: dict[str, Any]) -> Record:
    """A registered customer: the account's e-mail and name, and the addresses and phones of billing and shipping."""
    emails, phones, first, last = _person(row, account=True)
    created = _timestamp(row.get("date_created_gmt"))
    return Record(SYSTEM, CUSTOMER, payload_id(row, DIGITS), emails=emails, phones=phones, first_name=first,
                  last_name=last, fields=row, created_at=created, updated_at=_timestamp(row.get("date_modified_gmt")))


def order_record(row: dict[str, Any]) -> Record:
    """An order, a fiscal document dated by its creation; linked to its customer unless placed as a guest."""
    emails, phones, first, last = _person(row, account=False)
    created = _timestamp(row.get("date_created_gmt"))
    moments = [m for m in map(_timestamp, (row.get(f) for f in ("date_created_gmt", "date_paid_gmt",
                                                                 "date_completed_gmt"))) if m]
    customer = row.get("customer_id")
    links = (Link("customer", RecordRef(SYSTEM, CUSTOMER, payload_id(row, DIGITS, "customer_id"))),) \
        if customer not in (0, "0", None) else ()
    status = row.get("status")
    return Record(SYSTEM, ORDER, payload_id(row, DIGITS), emails=emails, phones=phones, first_name=first,
                  last_name=last, fields=row, created_at=created, updated_at=_timestamp(row.get("date_modified_gmt")),
                  last_activity_at=max(moments, default=None), document_date=created.date() if created else None,
                  running_contract=status in RUNNING_STATUSES, links=links, counts_as_contact=status not in NOT_PLACED)


def _person(row: dict[str, Any], *, account: bool) -> tuple[tuple[str, ...], tuple[str, ...], str | None, str | None]:
    """E-mails, phones and the name of a customer (`account`: its own fields first) or an order (billing first)."""
    parts = [row.get(a) if isinstance(row.get(a), dict) else {} for a in ADDRESSES]
    people = ([row] if account else []) + parts
    emails = _present(p.get("email") for p in people)
    phones = _present(p.get("phone") for p in parts)
    named = next((p for p in people if _text(p.get("first_name")) or _text(p.get("last_name"))), {})
    return emails, phones, _text(named.get("first_name")) or None, _text(named.get("last_name")) or None


def _present(values: Any) -> tuple[str, ...]:
    return tuple(dict.fromkeys(v for v in values if isinstance(v, str) and v.strip()))


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def _names(record: Record) -> set[str]:
    found = {name_key(record.name)}
    found |= {name_key(f"{_text(part.get('first_name'))} {_text(part.get('last_name'))}")
              for part in (record.fields.get(a) for a in ADDRESSES) if isinstance(part, dict)}
    return found - {""}


def _at(payload: Any, path: str) -> str | None:
    """The text at a dotted path ("billing.phone") of a payload."""
    for key in path.split("."):
        payload = payload.get(key) if isinstance(payload, dict) else None
    return payload if isinstance(payload, str) else None


def _values(field: str, new: str) -> list[tuple[str, str]]:
    """The vendor fields a correction of `field` writes, with their new values (a name split at its first space)."""
    targets = CORRECTIONS[field]
    if field == "name":
        first, _, last = new.strip().partition(" ")
        return list(zip(targets, (first, last, first, last)))
    return [(target, new) for target in targets]


def _timestamp(value: Any) -> datetime | None:
    """A `_gmt` timestamp (UTC, written without an offset) as an aware datetime."""
    if not isinstance(value, str) or not value:
        return None
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)).astimezone(timezone.utc)


def _cursor(records: Sequence[Record], previous: datetime | None) -> dict[str, Any]:
    """Where the next read of orders starts: the newest modification seen (never earlier than the last cursor)."""
    moments = [r.updated_at for r in records if r.record_type == ORDER and r.updated_at] + \
        ([previous] if previous else [])
    return {"orders_modified": max(moments).isoformat()} if moments else {}


def _record_path(ref: RecordRef) -> str:
    """Where a record lives; an id that is no number came from a malformed answer and never becomes a path."""
    resource = RESOURCES.get(ref.record_type) if ref.system == SYSTEM else None
    if resource is None:
        raise ValueError(f"not a WooCommerce record: {ref}")
    if DIGITS.fullmatch(ref.record_id) is None:
        raise VendorBadResponse(SYSTEM, "-", f"/{resource}", None, "a record id that is not WooCommerce's (a number) "
                                                                  "came from a malformed answer; nothing was sent")
    return f"{resource}/{ref.record_id}"


# -- what a person reads ----------------------------------------------------------------------------------------
_ADDRESS_LABELS = {
    "first_name": ("voornaam", "first name"), "last_name": ("achternaam", "last name"),
    "company": ("bedrijfsnaam", "company"), "address_1": ("adres", "address"),
    "address_2": ("adres (vervolg)", "address (continued)"), "postcode": ("postcode", "postcode"),
    "city": ("plaats", "city"), "state": ("provincie", "state"), "country": ("land", "country"),
    "email": ("e-mailadres", "e-mail address"), "phone": ("telefoonnummer", "phone number"),
}
FIELD_LABELS: dict[str, tuple[str, str]] = {
    "email": ("E-mailadres", "E-mail address"), "first_name": ("Voornaam", "First name"),
    "last_name": ("Achternaam", "Last name"), "username": ("Gebruikersnaam", "Username"),
    "date_created": ("Aangemaakt", "Created"), "number": ("Bestelnummer", "Order number"),
    "status": ("Stand", "Status"), "total": ("Totaal", "Total"), "currency": ("Valuta", "Currency"),
    "date_paid": ("Betaald op", "Paid on"), "date_completed": ("Afgerond op", "Completed on"),
    "payment_method_title": ("Betaalwijze", "Payment method"), "customer_note": ("Opmerking bij de bestelling",
                                                                                "Note with the order"),
    "customer_ip_address": ("IP-adres", "IP address"),
    "line_items[].name": ("Regel {n}: product", "Line {n}: product"),
    "line_items[].quantity": ("Regel {n}: aantal", "Line {n}: quantity"),
    "line_items[].total": ("Regel {n}: bedrag", "Line {n}: amount"),
    **{f"{part}.{key}": (f"{title}: {nl}", f"{title_en}: {en}")
       for part, title, title_en in (("billing", "Factuuradres", "Billing"), ("shipping", "Verzendadres", "Shipping"))
       for key, (nl, en) in _ADDRESS_LABELS.items()},
}
VALUE_LABELS: dict[str, dict[str, tuple[str, str]]] = {
    "status": {"pending": ("wacht op betaling", "pending payment"), "processing": ("in behandeling", "processing"),
               "on-hold": ("in de wacht", "on hold"), "completed": ("afgerond", "completed"),
               "cancelled": ("geannuleerd", "cancelled"), "refunded": ("terugbetaald", "refunded"),
               "failed": ("mislukt", "failed"), "trash": ("in de prullenbak", "in the trash"),
               "checkout-draft": ("concept bij het afrekenen", "checkout draft")},
}
