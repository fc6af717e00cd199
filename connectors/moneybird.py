"""Moneybird API v2 connector: contacts, sales invoices and estimates (quotes).

Vendor facts this module relies on, with where they were confirmed:
- Paths `{base}/{administration_id}/{resource}.json`, `Authorization: Bearer <token>`
  (developer.moneybird.com/introduction).
- Lists page with `page`/`per_page`, at most 100 per page (OpenAPI spec github.com/moneybird/openapi,
  `components.parameters.per_page`), with a `Link` header carrying `next`/`prev` (changelog 2016-10-26).
- `GET contacts.json` takes `query` (searched in company_name, attention, firstname, lastname, address1/2,
  zipcode, city, country, email, phone, customer_id, tax_number, chamber_of_commerce, bank_account) and
  `include_archived`.
- Sales invoices and estimates take `filter=key:value,...` with `period`, `state` and `contact_id`; the
  period defaults to `this_year`, so every list here passes an explicit all-covering period and `state:all`.
- `GET {resource}/synchronization.json` lists every id with its version (contacts, sales invoices, estimates;
  documents take the list's `filter`, changelog 2015-10-19); `POST {resource}/synchronization.json` with
  `{"ids": [...]}` answers those records in full (dotnet SDK ContactListOptions, fixture
  getSynchronizationContacts.json). At most 100 ids per POST is assumed (unverified; the safe size).
- 150 requests per 5 minutes per token, not raisable (helpcenter.moneybird.nl article 208028). A 429 carries
  `Retry-After` as the epoch second the window resets (OpenAPI spec), which `connectors.http` honours.
- `DELETE contacts/{id}` answers 204; since 2026-11-10 a 204 may carry `x-kept-as` when Moneybird kept the
  contact instead of deleting it (changelog 2026-11-10). `DELETE sales_invoices/{id}` answers 400 when the
  invoice has pending payments or lies in a locked bookkeeping period; `DELETE estimates/{id}` answers 204.
- `PATCH contacts/{id}` takes `{"contact": {...}}`; a contact needs a company name or a first/last name
  (OpenAPI 422 example). The contact's `events` keep the old and new values of every change.

Assumed, not documented (the safe choice is taken): `query` matches case-insensitive substrings per
whitespace-separated term; that the custom period 20000101..20991231 is accepted whole; that the `contact`
embedded in an invoice or estimate is the copy issued with the document; what `x-kept-as` holds (any value
is reported as "not deleted").
"""
from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from typing import Any

import phonenumbers

from connectors.base import ActionResult, Changes, Identifiers, Known, Link, Listing, Outcome, Record, RecordRef
from connectors.http import (BearerAuth, PageNumberPaginator, RateLimiter, VendorBadResponse, VendorNotFound,
                             VendorRejected, VendorSession)

SYSTEM = "moneybird"
DEFAULT_BASE_URL = "https://moneybird.com/api/v2"
DEFAULT_RATE = (150, 300.0)
PAGE_SIZE = 100
SYNC_BATCH = 100  # ids per synchronization POST
ALL_PERIODS = "20000101..20991231"
DEFAULT_PHONE_REGION = "NL"

CONTACT_EMAIL_FIELDS = ("email", "send_invoices_to_email", "send_estimates_to_email")
ANONYMISED = "Geanonimiseerd"
# Fields that must stay non-blank for Moneybird to accept the contact; every other field is blanked.
NAME_PLACEHOLDERS = {"lastname": ANONYMISED, "company_name": ANONYMISED}
REFUSAL_STATUSES = frozenset({400, 422})

RECORD_FIELDS: dict[str, frozenset[str]] = {
    "contact": frozenset({
        "company_name", "attention", "firstname", "lastname", "address1", "address2", "zipcode", "city",
        "phone", "email", "send_invoices_to_attention", "send_invoices_to_email",
        "send_estimates_to_attention", "send_estimates_to_email", "tax_number", "chamber_of_commerce",
        "bank_account", "sepa_iban", "sepa_iban_account_name", "sepa_bic",
    }),
    # The contact copy on an issued document cannot be changed through the API.
    "sales_invoice": frozenset(),
    "estimate": frozenset(),
}


@dataclass(frozen=True)
class DocumentType:
    """How one kind of Moneybird document is listed and what dates it."""

    record_type: str
    resource: str
    date_field: str
    running_states: frozenset[str]
    activity_fields: tuple[str, ...]  # moments the person acted on the document
    refusal: str  # why Moneybird may refuse to delete one, for the human who must act


SALES_INVOICE = DocumentType(
    "sales_invoice", "sales_invoices", "invoice_date",
    running_states=frozenset({"open", "pending_payment", "reminded", "late"}),
    activity_fields=("paid_at",),
    refusal="it has pending payments or lies in a locked bookkeeping period; settle, credit or unlock it in Moneybird")
ESTIMATE = DocumentType(
    "estimate", "estimates", "estimate_date",
    running_states=frozenset({"open"}),
    activity_fields=("accepted_at", "rejected_at"),
    refusal="remove it by hand in Moneybird")
DOCUMENT_TYPES = (SALES_INVOICE, ESTIMATE)
RESOURCES = {"contact": "contacts", **{kind.record_type: kind.resource for kind in DOCUMENT_TYPES}}
REFUSALS = {"contact": "remove it by hand in Moneybird or anonymise its fields",
            **{kind.record_type: kind.refusal for kind in DOCUMENT_TYPES}}


@dataclass(frozen=True)
class Feed:
    """One resource as its synchronization endpoints serve it."""

    record_type: str
    resource: str
    record: Callable[[dict[str, Any]], Record]
    params: Mapping[str, str] = field(default_factory=dict)


def _document_filter(contact_id: str | None = None) -> dict[str, str]:
    """Every document (the period defaults to this year), optionally of one contact."""
    terms = {"period": ALL_PERIODS, "state": "all", "contact_id": contact_id}
    return {"filter": ",".join(f"{key}:{value}" for key, value in terms.items() if value is not None)}


class MoneybirdConnector:
    """Reads, finds, deletes and anonymises Moneybird contacts, sales invoices and estimates."""

    system = SYSTEM

    def __init__(self, *, base_url: str = DEFAULT_BASE_URL, administration_id: str, token: str,
                 rate: tuple[int, float] | None = DEFAULT_RATE, retries: int = 5, backoff_factor: float = 0.5):
        self.http = VendorSession(SYSTEM, f"{base_url.rstrip('/')}/{administration_id}", BearerAuth(token),
                                  limiter=RateLimiter(*rate) if rate else None,
                                  retries=retries, backoff_factor=backoff_factor)
        self.paginator = PageNumberPaginator(size=PAGE_SIZE)

    # -- reading ----------------------------------------------------------------------
    def records(self, since: datetime | None = None) -> Iterator[Record]:
        """Every contact (archived ones too), sales invoice and estimate, in bulk.

        With `since`, only records updated after it are yielded, from a full read: `changes` is the
        incremental read.
        """
        for record in self._all_records():
            if since is None or record.updated_at is None or record.updated_at > since:
                yield record

    def _all_records(self) -> Iterator[Record]:
        for contact in self._contacts({"include_archived": "true"}):
            yield contact_record(contact)
        for kind in DOCUMENT_TYPES:
            for document in self._documents(kind):
                yield document_record(kind, document)

    def changes(self, cursor: Mapping[str, Any] | None, known: Known) -> Changes:
        """A full read without a cursor; else through Moneybird's synchronization endpoints.

        Per resource one GET lists every id with its version; the new and changed ones come whole in POSTs of
        at most 100 ids. Requests: 3 + one per 100 changed records. The id lists show deletions too.
        """
        if cursor is None:
            return Changes(list(self._all_records()), cursor={}, full=True)
        records: list[Record] = []
        listings = []
        for feed in FEEDS:
            versions = self._versions(feed)
            stale = [record_id for record_id, version in versions.items()
                     if known.version(RecordRef(SYSTEM, feed.record_type, record_id)) != version]
            records += map(feed.record, self._synchronised(feed, stale))
            listings.append(Listing(feed.record_type, frozenset(versions)))
        return Changes(records, cursor={}, listings=listings)

    def _versions(self, feed: Feed) -> dict[str, str]:
        rows = self.http.json("GET", f"{feed.resource}/synchronization.json", params=feed.params)
        try:
            return {str(row["id"]): str(row["version"]) for row in rows}
        except (KeyError, TypeError):
            raise VendorBadResponse(SYSTEM, "GET", f"/{feed.resource}/synchronization.json", 200,
                                    "response does not have the expected shape") from None

    def _synchronised(self, feed: Feed, ids: Sequence[str]) -> Iterator[dict[str, Any]]:
        for start in range(0, len(ids), SYNC_BATCH):
            rows = self.http.json("POST", f"{feed.resource}/synchronization.json",
                                  json={"ids": list(ids[start:start + SYNC_BATCH])})
            if not isinstance(rows, list):
                raise VendorBadResponse(SYSTEM, "POST", f"/{feed.resource}/synchronization.json", 200,
                                        "response does not have the expected shape")
            yield from rows

    def search(self, identifiers: Identifiers) -> Iterator[Record]:
        """Contacts matching an e-mail, phone or name, with their sales invoices and estimates.

        Requests: one `query` per e-mail and name, two per phone, plus two document lists per contact found
        (and further pages of hits). Hits are kept only when they match after normalisation.
        """
        for contact in self._matching_contacts(identifiers).values():
            yield contact_record(contact)
            for kind in DOCUMENT_TYPES:
                for document in self._documents(kind, contact_id=str(contact["id"])):
                    yield document_record(kind, document)

    def _matching_contacts(self, identifiers: Identifiers) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        for query, matches in contact_queries(identifiers):
            for contact in self._contacts({"query": query, "include_archived": "true"}):
                if matches(contact):
                    found[str(contact["id"])] = contact
        return found

    def _contacts(self, params: dict[str, str]) -> Iterator[dict[str, Any]]:
        for page in self.http.paginate("contacts.json", self.paginator, items=_rows, params=params):
            yield from page.items

    def _documents(self, kind: DocumentType, contact_id: str | None = None) -> Iterator[dict[str, Any]]:
        for page in self.http.paginate(f"{kind.resource}.json", self.paginator, items=_rows,
                                       params=_document_filter(contact_id)):
            yield from page.items

    # -- acting -----------------------------------------------------------------------
    def delete(self, ref: RecordRef) -> ActionResult:
        """Delete a contact, sales invoice or estimate; a refusal or a contact kept as archived is NOT_SUPPORTED."""
        try:
            response = self.http.request("DELETE", _record_path(ref))
        except VendorNotFound:
            return ActionResult(Outcome.ALREADY_GONE, f"{ref} was not found")
        except VendorRejected as exc:
            if exc.status not in REFUSAL_STATUSES:
                raise
            return ActionResult(Outcome.NOT_SUPPORTED,
                                f"Moneybird refused to delete {ref} (HTTP {exc.status}): {REFUSALS[ref.record_type]}")
        kept_as = response.headers.get("x-kept-as")
        if kept_as:
            return ActionResult(Outcome.NOT_SUPPORTED,
                                f"Moneybird kept {ref} as {kept_as} instead of deleting it; anonymise its fields, "
                                "and delete it by hand once no invoice or quote refers to it")
        return ActionResult(Outcome.DONE)

    def anonymise(self, ref: RecordRef, fields: Sequence[str]) -> ActionResult:
        """Overwrite contact fields through `PATCH contacts/{id}`.

        Placeholders: "Geanonimiseerd" for `lastname` and `company_name` (Moneybird rejects a contact
        without any name), an empty string for every other field. Documents cannot be anonymised: their
        contact copy is read-only in the API.
        """
        if ref.record_type != "contact":
            return ActionResult(Outcome.NOT_SUPPORTED,
                                f"Moneybird's API cannot change the contact copy on {ref}; "
                                "it stays until the document itself may be deleted")
        unknown = set(fields) - RECORD_FIELDS["contact"]
        if unknown:
            raise ValueError(f"not anonymisable in a Moneybird contact: {', '.join(sorted(unknown))}")
        body = {"contact": {name: NAME_PLACEHOLDERS.get(name, "") for name in fields}}
        try:
            self.http.json("PATCH", _record_path(ref), json=body)
        except VendorNotFound:
            return ActionResult(Outcome.ALREADY_GONE, f"{ref} was not found")
        return ActionResult(Outcome.DONE,
                            f"{len(body['contact'])} field(s) of {ref} overwritten; Moneybird keeps the earlier "
                            "values in the contact's event history, which its API cannot erase")


# -- payload -> Record ------------------------------------------------------------------
def contact_record(contact: dict[str, Any]) -> Record:
    """A contact. Its only person-side moment Moneybird shows is the signing of a SEPA mandate."""
    return Record(SYSTEM, "contact", str(contact["id"]), **_person(contact), fields=contact,
                  created_at=_timestamp(contact.get("created_at")), updated_at=_timestamp(contact.get("updated_at")),
                  last_activity_at=_timestamp(contact.get("sepa_mandate_date")),
                  running_contract=bool(contact.get("sepa_active") or contact.get("moneybird_payments_mandate")),
                  version=_version(contact))


def document_record(kind: DocumentType, document: dict[str, Any]) -> Record:
    """An invoice or estimate, with the person data of its contact copy and a link to the contact."""
    moments = [moment for moment in map(_timestamp, (document.get(f) for f in kind.activity_fields)) if moment]
    contact_id = document.get("contact_id")
    links = (Link("contact", RecordRef(SYSTEM, "contact", str(contact_id))),) if contact_id else ()
    return Record(SYSTEM, kind.record_type, str(document["id"]), **_person(document.get("contact") or {}),
                  fields=document, created_at=_timestamp(document.get("created_at")),
                  updated_at=_timestamp(document.get("updated_at")), last_activity_at=max(moments, default=None),
                  document_date=_date(document.get(kind.date_field)),
                  running_contract=document.get("state") in kind.running_states, links=links,
                  version=_version(document))


FEEDS = (Feed("contact", "contacts", contact_record),
         *(Feed(kind.record_type, kind.resource, functools.partial(document_record, kind), _document_filter())
           for kind in DOCUMENT_TYPES))


def _person(contact: dict[str, Any]) -> dict[str, Any]:
    return {"emails": _present(contact.get(name) for name in CONTACT_EMAIL_FIELDS),
            "phones": _present([contact.get("phone")]),
            "first_name": contact.get("firstname") or None, "last_name": contact.get("lastname") or None}


def _present(values: Iterable[Any]) -> tuple[str, ...]:
    """Non-blank values as the vendor has them, each once."""
    return tuple(dict.fromkeys(value for value in values if isinstance(value, str) and value.strip()))


def _timestamp(value: Any) -> datetime | None:
    """An ISO timestamp or date (read as midnight UTC) in UTC."""
    if not value:
        return None
    parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)).astimezone(timezone.utc)


def _date(value: Any) -> date | None:
    return date.fromisoformat(str(value)[:10]) if value else None


def _version(payload: dict[str, Any]) -> str | None:
    return None if payload.get("version") is None else str(payload["version"])


def _rows(body: Any) -> Any:
    return body


def _record_path(ref: RecordRef) -> str:
    if ref.system != SYSTEM or ref.record_type not in RESOURCES:
        raise ValueError(f"not a Moneybird record: {ref}")
    return f"{RESOURCES[ref.record_type]}/{ref.record_id}.json"


# -- search -----------------------------------------------------------------------------
Matcher = Callable[[dict[str, Any]], bool]


def contact_queries(identifiers: Identifiers) -> Iterator[tuple[str, Matcher]]:
    """The `query` values to send, each with the check a hit must pass to count."""
    for email in identifiers.emails:
        wanted = normalise_email(email)
        if wanted:
            yield email.strip(), lambda contact, wanted=wanted: wanted in _contact_emails(contact)
    for phone in identifiers.phones:
        wanted = normalise_phone(phone)
        for query in phone_queries(phone) if wanted else ():
            yield query, lambda contact, wanted=wanted: normalise_phone(contact.get("phone")) == wanted
    for name in identifiers.names:
        wanted = _normalise_name(name)
        if wanted:
            yield " ".join(name.split()), lambda contact, wanted=wanted: wanted in _contact_names(contact)


def phone_queries(phone: str) -> tuple[str, ...]:
    """Substrings that every common notation of the number contains, since Moneybird keeps it as typed.

    The last four digits stay together in 06-12345678, +31 6 1234 5678, 0031612345678, (06) 12345678 and
    035-1234567; only the pairwise notation 06 12 34 56 78 splits them, which the last three pairs catch.
    """
    digits = re.sub(r"\D", "", phone)
    if len(digits) < 6:
        return ()
    tail = digits[-6:]
    return digits[-4:], f"{tail[:2]} {tail[2:4]} {tail[4:]}"


def normalise_email(email: Any) -> str:
    return email.strip().casefold() if isinstance(email, str) else ""


def normalise_phone(phone: Any) -> str | None:
    """E.164 for comparison (default region NL); None when it is not a phone number."""
    if not isinstance(phone, str) or not phone.strip():
        return None
    try:
        number = phonenumbers.parse(phone, DEFAULT_PHONE_REGION)
    except phonenumbers.NumberParseException:
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _normalise_name(name: Any) -> str:
    return " ".join(name.split()).casefold() if isinstance(name, str) else ""


def _contact_emails(contact: dict[str, Any]) -> set[str]:
    return {normalise_email(contact.get(name)) for name in CONTACT_EMAIL_FIELDS} - {""}


def _contact_names(contact: dict[str, Any]) -> set[str]:
    full = f"{contact.get('firstname') or ''} {contact.get('lastname') or ''}"
    return {_normalise_name(full), _normalise_name(contact.get("company_name"))} - {""}
