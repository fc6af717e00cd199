"""Moneybird API v2 connector: contacts (with their contact people and notes), sales invoices and estimates.

Vendor facts this module relies on. SPEC is Moneybird's OpenAPI spec (github.com/moneybird/openapi
`openapi.json`, info.version v2-20260821-37a2205df2), CL-<date> its changelog (`changelog/<date>.md` there, or
developer.moneybird.com/changelog/<date>), HC-<n> helpcenter.moneybird.nl article n:
- Paths `{base}/{administration_id}/{resource}.json`, `Authorization: Bearer <token>` (SPEC `servers`,
  `securitySchemes`).
- Scopes (SPEC `security` per operation, CL-2026-06-17): contacts, contact people and notes take a token with any
  of `sales_invoices`, `estimates`, `documents`, `bank` or `settings`; sales invoices need `sales_invoices`,
  estimates `estimates`. A 403 is reported with the scope the resource needs.
- Reading in bulk: `GET {resource}/synchronization.json` lists every id with its version (documents take the
  list's `filter`, CL-2015-10-19; contacts take `include_archived`, SPEC), and `POST {resource}/
  synchronization.json {"ids": [...]}` answers at most 100 records whole (SPEC). The full read and the nightly
  read both go this way (version lists first, so a missing scope fails before anything is read in bulk); no list
  is paged through for them.
- Lists page with `page`/`per_page`, at most 100 a page (SPEC `components.parameters.per_page`). SPEC declares
  a `Link` header only on downloads and reports, and `GET /sales_invoices` answers 400 "page does not have a
  valid value" for a page out of range. So a page is asked only when the previous one was full and either a
  `Link` header says there is a next one, or (documents) the synchronization list with the same filter says
  there are more, or (a contact search, whose `query` that list does not take) by asking: a 400 on a page after
  a full one is the end of the list (ASSUMED: the spec documents that 400 for sales invoices only).
- `GET /contacts/filter` takes `query` over names, contact people, e-mail, phone, customer id, tax number,
  chamber of commerce, IBAN and address (SPEC), unlike `GET /contacts`, whose `query` leaves contact people
  out. Neither searches notes or `send_estimates_to_email`: those are found through the nightly read.
- Sales invoices and estimates take `filter=key:value,...` with `period`, `state` and `contact_id`; the
  period defaults to `this_year`, so every list here passes an explicit `YYYYMMDD..YYYYMMDD` period and
  `state:all` (SPEC `GET /sales_invoices` filter description).
- 150 requests per 5 minutes per token, not raisable (HC-208028). A 429 carries `Retry-After` as the epoch
  second the window resets (SPEC `429_too_many_requests`), which `connectors.http` honours.
- A contact's `send_invoices_to_email` and `send_estimates_to_email` may each hold several addresses separated
  by commas (SPEC PATCH schema); each is an identifier. Its `contact_people` (firstname, lastname, phone,
  email) and `notes` (free text) come with the contact (SPEC `base_contact_response`); their addresses and
  phone numbers are the contact's identifiers too, and the whole payload is what an access report shows.
- PATCH `contacts/{id}` takes `{"contact": {...}}` with the attributes of its schema; "" removes an optional
  one; a contact keeps a company name or a first or last name (SPEC 422 example). `email` and `attention` are
  not writable since CL-2016-03-10: `email` shows `send_invoices_to_email` and `attention`
  `send_invoices_to_attention` in every spec example, so they are removed through those. An e-mail address is
  needed while invoices go by e-mail (HC-76023): blanking the invoice address sets the delivery method from
  `Email` to `Manual`. With `sepa_active` every SEPA field is required, and `direct_debit` requires them
  (SPEC): blanking SEPA details switches both off. The contact's `events` keep old and new values of every
  change, which the API cannot erase.
- Anonymising starts from the contact as this connector read it minutes before (a nightly run reads, then
  acts) or a GET, and ends with a GET: what Moneybird still shows of what was to go is reported as a task for a
  human (NOT_SUPPORTED, with where), not as done; a contact with nothing left to remove is not written again.
- Correcting (rectification) PATCHes the same way, only the attributes that do not show the new value yet, and
  checks the answer. An e-mail address is corrected in `send_invoices_to_email`/`send_estimates_to_email` (the
  field's addresses all become the new one); contact people and notes are not corrected. A sent invoice or quote
  keeps the details it was issued to (art. 35a Wet OB 1968); a draft takes its contact's current ones through
  PATCH `sales_invoices/{id}` or `estimates/{id}` `{"<kind>": {"update_contact": true}}` (SPEC).
- Contact people: PATCH and DELETE `contacts/{contact_id}/contact_people/{id}`; a contact person needs a name
  (SPEC 422 example), so its phone and e-mail are blanked, and it is deleted when the names go. Notes: the API
  has only POST and DELETE `contacts/{contact_id}/notes/{id}` (a note cannot be edited), and DELETE may answer
  400 when the user has no permission to notes (SPEC example).
- `DELETE contacts/{id}` answers 204 or 404 (SPEC): only a 204 proves a delete (a 200 with a page from a proxy
  in front of the API proves nothing), and only a 404 on an id of Moneybird's shape (a string of digits, SPEC
  `id` examples) proves a record gone: an id of another type came from a malformed payload and is no record; Moneybird does not delete a contact its bookkeeping uses:
  422 (CL-2016-07-28), or it archives it and answers 204 with `x-kept-as` (CL-2026-11-10), and a repeat then
  400 "Contact can not be archived" (CONCREXIT, svthalia/concrexit). `DELETE sales_invoices/{id}` needs no
  pending payments and no locked bookkeeping period (SPEC), and a sent invoice is deletable only newest first
  (HC-207248); a refusal is a 400. `DELETE estimates/{id}` answers 204 or 404 (SPEC).

Assumed, not documented (the safe choice is taken): that `query` matches each whitespace-separated term as a
case-insensitive substring (a phone is searched with terms every common notation of it contains; with word or
prefix matching only some notations would be found, and the identity index must find the others); that the
`contact` embedded in an invoice or estimate is the copy issued with the document; what `x-kept-as` holds (any
value is reported as "kept"); that an archived contact needs `include_archived=true` on the single GET too;
that Moneybird's refusal messages name rules, not people (one is repeated only when it has no digits, no `@`
and no capitalised word but Moneybird's own nouns).
"""
from __future__ import annotations

import functools
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from typing import Any

import phonenumbers
import requests

from connectors.base import (ActionResult, Changes, FieldChange, Identifiers, Known, Link, Listing, Outcome, Record,
                             RecordRef)
from connectors.matching import DEFAULT_REGION, email_key, name_key, parse_phone, phone_key
from connectors.http import (DIGITS, BearerAuth, RateLimiter, VendorAuthError, VendorBadResponse, VendorNotFound,
                             VendorRejected, VendorSession, payload_id, vendor_payloads)

SYSTEM = "moneybird"
DEFAULT_BASE_URL = "https://moneybird.com/api/v2"
DEFAULT_RATE = (150, 300.0)
PAGE_SIZE = 100
SYNC_BATCH = 100  # ids per synchronization POST (SPEC: "Returns a maximum of 100")
FRESH_SECONDS = 900.0  # a contact read this recently is where an anonymisation starts, without reading it again
#: seconds one call may spend on retries: a 429 asking to wait until Moneybird's 5-minute window resets beyond it
#: ends the call (the client-side pacing keeps such 429s for a token shared with another client)
RETRY_BUDGET = 30.0
ALL_PERIODS = "20000101..20991231"

CONTACT_EMAIL_FIELDS = ("email", "send_invoices_to_email", "send_estimates_to_email")
ANONYMISED = "Geanonimiseerd"
# Fields that must stay non-blank for Moneybird to accept the contact; every other field is blanked.
NAME_PLACEHOLDERS = {"lastname": ANONYMISED, "company_name": ANONYMISED}
REFUSAL_STATUSES = frozenset({400, 422})
#: read-only attributes and the writable ones they show (CL-2016-03-10; every SPEC example)
SHOWN_THROUGH = {"email": ("send_invoices_to_email",),
                 "attention": ("send_invoices_to_attention", "send_estimates_to_attention")}
SEPA_DETAILS = frozenset({"sepa_iban", "sepa_iban_account_name", "sepa_bic"})
PERSON_NAME_FIELDS = frozenset({"firstname", "lastname"})
#: the token scopes vergeet needs (README); contacts accept either
NEEDED_SCOPES = ("sales_invoices", "estimates")
CONTACT_SCOPES = "one of `sales_invoices`, `estimates`, `documents`, `bank` or `settings`"
EDIT_CONTACT = "in Moneybird: Contacten, open the contact, Bewerken"

RECORD_FIELDS: dict[str, frozenset[str]] = {
    # `email` and `attention` are read-only and go through the send_invoices_to_* fields they show; `phone` and
    # the e-mail fields also reach the contact's contact people, names delete them; `notes` deletes its notes.
    "contact": frozenset({
        "company_name", "attention", "firstname", "lastname", "address1", "address2", "zipcode", "city",
        "phone", "email", "send_invoices_to_attention", "send_invoices_to_email",
        "send_estimates_to_attention", "send_estimates_to_email", "tax_number", "chamber_of_commerce",
        "bank_account", "sepa_iban", "sepa_iban_account_name", "sepa_bic", "notes",
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
    refusal: str  # what Moneybird's rules are and what a human can do, when it refuses to delete one


SALES_INVOICE = DocumentType(
    "sales_invoice", "sales_invoices", "invoice_date",
    running_states=frozenset({"open", "pending_payment", "reminded", "late"}),
    activity_fields=("paid_at",),
    refusal="Moneybird deletes a sent invoice only when no invoice was created after it, it has no pending "
            "payments and it is not in a locked bookkeeping period (API docs; help centre article 207248). Its "
            "screens follow the same rules (Verkoop, Facturen): keep it, or delete it there once they allow it; "
            "the contact copy on it stays with it")
ESTIMATE = DocumentType(
    "estimate", "estimates", "estimate_date",
    running_states=frozenset({"open"}),
    activity_fields=("accepted_at", "rejected_at"),
    refusal="delete it by hand in Moneybird (Verkoop, Offertes)")
DOCUMENT_TYPES = (SALES_INVOICE, ESTIMATE)
RESOURCES = {"contact": "contacts", **{kind.record_type: kind.resource for kind in DOCUMENT_TYPES}}
SCOPES = {"sales_invoices": "`sales_invoices`", "estimates": "`estimates`"}
#: correctable field -> the contact attributes it is written to (PATCH schema; `email` shows the invoice address and
#: is not writable, CL-2016-03-10); a field a record does not hold is not added to it
CORRECTED_THROUGH = {"name": ("firstname", "lastname"), "email": ("send_invoices_to_email", "send_estimates_to_email"),
                     "phone": ("phone",), "address.street": ("address1",), "address.postcode": ("zipcode",),
                     "address.city": ("city",)}
DRAFT = "draft"
CONTACT_KEPT = ("invoices or quotes still refer to it, and Moneybird does not delete a contact its bookkeeping "
                "uses. The contact can be deleted by hand in Moneybird (Contacten, the contact, Verwijderen) once "
                "they are gone")


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


@vendor_payloads
class MoneybirdConnector:
    """Reads, finds, deletes and anonymises Moneybird contacts, sales invoices and estimates."""

    system = SYSTEM

    def __init__(self, *, base_url: str = DEFAULT_BASE_URL, administration_id: str, token: str,
                 rate: tuple[int, float] | None = DEFAULT_RATE, retries: int = 5, backoff_factor: float = 0.5,
                 retry_budget: float = RETRY_BUDGET):
        self.http = VendorSession(SYSTEM, f"{base_url.rstrip('/')}/{administration_id}", BearerAuth(token),
                                  limiter=RateLimiter(*rate) if rate else None,
                                  retries=retries, backoff_factor=backoff_factor, retry_budget=retry_budget)
        self._last = threading.local()  # Moneybird's rule text of the last refusal, per thread
        self._seen: dict[str, tuple[float, dict[str, Any]]] = {}  # contact id -> (when read, payload)
        self.http.session.hooks["response"].append(self._keep_refusal)

    # -- the wire ---------------------------------------------------------------------
    def _keep_refusal(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        if response.status_code in REFUSAL_STATUSES:
            self._last.refusal = moneybird_rule(response)

    def _call(self, method: str, path: str, **options: Any) -> requests.Response:
        """One request; a 403 names the scope the resource needs, a 400/422 leaves Moneybird's rule in `_refusal`."""
        self._last.refusal = None
        try:
            return self.http.request(method, path, **options)
        except VendorAuthError as exc:
            if exc.status != 403:
                raise
            resource = exc.path.strip("/").split("/")[0].split(".")[0]
            raise VendorAuthError(SYSTEM, exc.method, exc.path, 403,
                                  f"the token lacks the scope {SCOPES.get(resource, CONTACT_SCOPES)} Moneybird "
                                  f"requires here; make a token with the scopes "
                                  f"{' and '.join(f'`{s}`' for s in NEEDED_SCOPES)} (see README)") from None

    def _json(self, method: str, path: str, **options: Any) -> Any:
        return self.http.decode(method, self._call(method, path, **options))

    @property
    def _refusal(self) -> str | None:
        return getattr(self._last, "refusal", None)

    def _refused(self, exc: VendorRejected) -> str:
        """How Moneybird refused the last call: its status, and its rule where it states one."""
        return f"HTTP {exc.status}" + (f": Moneybird says \"{self._refusal}\"" if self._refusal else "")

    # -- reading ----------------------------------------------------------------------
    def records(self, since: datetime | None = None) -> Iterator[Record]:
        """Every contact (archived ones too), sales invoice and estimate, in bulk.

        With `since`, only records updated after it are yielded, from a full read: `changes` is the
        incremental read.
        """
        records, _ = self._read(None)
        for record in records:
            if since is None or record.updated_at is None or record.updated_at > since:
                yield record

    def changes(self, cursor: Mapping[str, Any] | None, known: Known) -> Changes:
        """A full read without a cursor; else only the new and changed records, both through synchronization.

        Per resource one GET lists every id with its version; the records asked for come whole in POSTs of at
        most 100 ids. Requests: 3 + one per 100 records read. The id lists show deletions too.
        """
        if cursor is None:
            return Changes(self._read(None)[0], cursor={}, full=True)
        records, listings = self._read(known)
        return Changes(records, cursor={}, listings=listings)

    def _read(self, known: Known | None) -> tuple[list[Record], list[Listing]]:
        """Records whose version `known` does not have (all without it), and every resource's id list.

        The three version lists come first: a token that lacks a scope fails before anything is read in bulk.
        """
        versions = [(feed, self._versions(feed.resource, feed.params)) for feed in FEEDS]
        records: list[Record] = []
        for feed, listed in versions:
            stale = [record_id for record_id, version in listed.items()
                     if known is None or known.version(RecordRef(SYSTEM, feed.record_type, record_id)) != version]
            rows = list(self._synchronised(feed.resource, stale))
            if feed.record_type == "contact":
                self._remember(rows)
            records += map(feed.record, rows)
        return records, [Listing(feed.record_type, frozenset(listed)) for feed, listed in versions]

    def _versions(self, resource: str, params: Mapping[str, str]) -> dict[str, str]:
        rows = self._json("GET", f"{resource}/synchronization.json", params=params)
        try:
            return {payload_id(row, DIGITS): str(row["version"]) for row in rows}
        except (KeyError, TypeError):
            raise VendorBadResponse(SYSTEM, "GET", f"/{resource}/synchronization.json", 200,
                                    "response does not have the expected shape") from None

    def _synchronised(self, resource: str, ids: Sequence[str]) -> Iterator[dict[str, Any]]:
        for start in range(0, len(ids), SYNC_BATCH):
            rows = self._json("POST", f"{resource}/synchronization.json",
                              json={"ids": list(ids[start:start + SYNC_BATCH])})
            if not isinstance(rows, list):
                raise VendorBadResponse(SYSTEM, "POST", f"/{resource}/synchronization.json", 200,
                                        "response does not have the expected shape")
            yield from rows

    def _pages(self, path: str, params: Mapping[str, str], *,
               count: Callable[[], int] | None = None) -> Iterator[dict[str, Any]]:
        """The rows of a list, page by page, never asking for a page past the last (see the module docstring).

        `count` tells how many rows the list has, asked only when a full page came without a `Link` header;
        without it a 400 on a page after a full one ends the list.
        """
        page, total, previous = 1, None, None
        while True:
            try:
                response = self._call("GET", path, params={**params, "page": page, "per_page": PAGE_SIZE})
            except VendorRejected as exc:
                if exc.status == 400 and page > 1 and count is None:
                    return
                raise
            rows = self.http.decode("GET", response)
            if not isinstance(rows, list):
                raise VendorBadResponse(SYSTEM, "GET", f"/{path}", response.status_code,
                                        "response does not have the expected shape")
            ids = [row.get("id") if isinstance(row, dict) else row for row in rows]
            if rows and ids == previous:
                raise VendorBadResponse(SYSTEM, "GET", f"/{path}", response.status_code,
                                        "pagination returned the same page twice")
            previous = ids
            yield from rows
            if len(rows) < PAGE_SIZE:
                return
            if "link" in response.headers:
                if "next" not in response.links:
                    return
            elif count is not None:
                total = count() if total is None else total
                if page * PAGE_SIZE >= total:
                    return
            page += 1

    def _contact(self, contact_id: str) -> dict[str, Any]:
        contact = self._json("GET", f"contacts/{contact_id}.json", params={"include_archived": "true"})
        if not isinstance(contact, dict) or payload_id(contact, DIGITS) != contact_id:
            raise VendorBadResponse(SYSTEM, "GET", f"/contacts/{contact_id}.json", 200,
                                    "response does not have the expected shape")
        return contact

    def search(self, identifiers: Identifiers) -> Iterator[Record]:
        """Contacts matching an e-mail, phone or name (also through their contact people), with their documents.

        Requests: one `query` per e-mail, phone and name (and further pages of hits), plus a list of sales
        invoices and one of estimates per contact found. Hits are kept only when they match after normalisation.
        """
        for contact in self._matching_contacts(identifiers).values():
            yield contact_record(contact)
            for kind in DOCUMENT_TYPES:
                for document in self._documents(kind, contact_id=payload_id(contact, DIGITS)):
                    yield document_record(kind, document)

    def _matching_contacts(self, identifiers: Identifiers) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        for query, matches in contact_queries(identifiers):
            for contact in self._pages("contacts/filter.json", {"query": query, "include_archived": "true"}):
                if matches(contact):
                    found[payload_id(contact, DIGITS)] = contact
        self._remember(found.values())
        return found

    def _documents(self, kind: DocumentType, contact_id: str) -> Iterator[dict[str, Any]]:
        params = _document_filter(contact_id)
        yield from self._pages(f"{kind.resource}.json", params,
                               count=lambda: len(self._versions(kind.resource, params)))

    def read(self, ref: RecordRef, parent: RecordRef | None = None) -> Record | None:
        """One contact (`GET contacts/{id}.json` with `include_archived`, as the listing reads archived ones too),
        sales invoice (`GET sales_invoices/{id}.json`) or estimate (`GET estimates/{id}.json`), as the listing
        gives it; None when Moneybird has it no more (404). One request."""
        path = _record_path(ref)
        try:
            if ref.record_type == "contact":
                contact = self._contact(ref.record_id)
                self._remember([contact])
                return contact_record(contact)
            document = self._json("GET", path)
        except VendorNotFound:
            return None
        if not isinstance(document, dict):
            raise VendorBadResponse(SYSTEM, "GET", f"/{path}", 200, "response does not have the expected shape")
        kind = next(kind for kind in DOCUMENT_TYPES if kind.record_type == ref.record_type)
        return document_record(kind, document)

    # -- acting -----------------------------------------------------------------------
    def delete(self, ref: RecordRef) -> ActionResult:
        """Delete a contact, sales invoice or estimate; what Moneybird refuses or keeps is NOT_SUPPORTED."""
        if ref.record_type == "contact":
            self._seen.pop(ref.record_id, None)
        try:
            response = self._call("DELETE", _record_path(ref))
        except VendorNotFound:  # on an id of Moneybird's shape (`_record_path`): that record is not there
            return ActionResult(Outcome.ALREADY_GONE, f"{ref} was not found")
        except VendorRejected as exc:
            if exc.status not in REFUSAL_STATUSES:
                raise
            if ref.record_type == "contact":
                return ActionResult(Outcome.NOT_SUPPORTED, f"Moneybird keeps {ref} ({self._refused(exc)}): "
                                                           f"{CONTACT_KEPT}")
            kind = SALES_INVOICE if ref.record_type == SALES_INVOICE.record_type else ESTIMATE
            return ActionResult(Outcome.NOT_SUPPORTED,
                                f"Moneybird refused to delete {ref} ({self._refused(exc)}). {kind.refusal}")
        if response.status_code != 204:
            raise VendorBadResponse(SYSTEM, "DELETE", f"/{RESOURCES[ref.record_type]}", response.status_code,
                                    "answered without 204, which alone confirms a delete; nothing is recorded "
                                    "as deleted")
        kept_as = response.headers.get("x-kept-as")
        if kept_as:
            kept = kept_as if re.fullmatch(r"[a-z_]{1,30}", kept_as) else "something else"
            return ActionResult(Outcome.NOT_SUPPORTED, f"Moneybird kept {ref} as {kept} instead of deleting it: "
                                                       f"{CONTACT_KEPT}")
        return ActionResult(Outcome.DONE)

    def anonymise(self, ref: RecordRef, fields: Sequence[str]) -> ActionResult:
        """Remove contact fields, then read the contact back and report whatever Moneybird still shows.

        Starts from the contact as Moneybird has it (its delivery method, SEPA state, contact people and notes
        decide the writes, and a contact with nothing left to remove is not written again): as this connector
        read it in the last `FRESH_SECONDS`, else a GET. PATCHes the fields that still hold a value
        ("Geanonimiseerd" for `lastname` and `company_name`, which Moneybird needs; "" for the rest), scrubs or
        deletes its contact people, deletes its notes, and GETs it again; when what it started from was read
        earlier and the read-back shows more to remove, it plans once more from the read-back. Requests: a read
        (unless fresh), 1 PATCH, one per contact person and note touched, a read back. Documents cannot be
        anonymised: their contact copy is read-only.
        """
        if ref.record_type != "contact":
            return ActionResult(Outcome.NOT_SUPPORTED,
                                f"Moneybird's API cannot change the contact copy on {ref}; "
                                "it stays until the document itself may be deleted")
        unknown = set(fields) - RECORD_FIELDS["contact"]
        if unknown:
            raise ValueError(f"not anonymisable in a Moneybird contact: {', '.join(sorted(unknown))}")
        _record_path(ref)
        read_before = self._fresh(ref.record_id)
        try:
            contact = read_before if read_before is not None else self._contact(ref.record_id)
        except VendorNotFound:
            return ActionResult(Outcome.ALREADY_GONE, f"{ref} was not found")
        done: list[Scrub] = []
        problems: list[str] = []
        left: list[str] = []
        for _ in range(2 if read_before is not None else 1):
            scrub = Scrub.plan(contact, fields)
            if scrub.nothing_to_do:
                break
            refused = self._write(ref, scrub, problems)
            if refused is not None:
                return refused
            done.append(scrub)
            try:
                contact = self._contact(ref.record_id)
            except VendorNotFound:
                return ActionResult(Outcome.ALREADY_GONE, f"{ref} was not found when read back")
            left = scrub.left_on(contact)
            if not left or problems:
                break
        if not done:
            return ActionResult(Outcome.DONE, f"nothing left to remove on {ref}: {', '.join(scrub.wanted)} "
                                              "already empty")
        summary = "; then ".join(scrub.summary(ref) for scrub in done)
        if left or problems:
            return ActionResult(Outcome.NOT_SUPPORTED,
                                f"{summary}, but read back Moneybird still shows "
                                f"{', '.join(left) or 'what it refused to remove'}"
                                + (f"; refused: {'; '.join(problems)}" if problems else "")
                                + f". Remove it by hand {EDIT_CONTACT} (notes under Notities)"
                                + ("; `email` and `attention` are not writable through the API (changelog "
                                   "2016-03-10)" if set(left) & set(SHOWN_THROUGH) else ""))
        return ActionResult(Outcome.DONE, f"{summary}; read back: none left. Moneybird keeps the earlier values "
                                          "in the contact's event history, which its API cannot erase")

    def _write(self, ref: RecordRef, scrub: Scrub, problems: list[str]) -> ActionResult | None:
        """The writes of one scrub; an ActionResult when the contact is gone or Moneybird refuses the PATCH."""
        self._seen.pop(ref.record_id, None)
        if scrub.contact:
            try:
                answer = self._json("PATCH", _record_path(ref), json={"contact": scrub.contact})
                if not isinstance(answer, dict) or payload_id(answer, DIGITS) != ref.record_id:
                    raise VendorBadResponse(SYSTEM, "PATCH", f"/{RESOURCES['contact']}", 200,
                                            "answered without the contact (SPEC: the updated contact); nothing is "
                                            "recorded as done")
            except VendorNotFound:
                return ActionResult(Outcome.ALREADY_GONE, f"{ref} was not found")
            except VendorRejected as exc:
                if exc.status not in REFUSAL_STATUSES:
                    raise
                return ActionResult(Outcome.NOT_SUPPORTED,
                                    f"Moneybird refused to change {', '.join(sorted(scrub.contact))} on {ref} "
                                    f"({self._refused(exc)}); change them by hand {EDIT_CONTACT}")
        parts = [(f"contact person {person_id}", f"contacts/{ref.record_id}/contact_people/{person_id}.json", change)
                 for person_id, change in scrub.people]
        parts += [(f"note {note_id}", f"contacts/{ref.record_id}/notes/{note_id}.json", None)
                  for note_id in scrub.notes]
        for what, path, change in parts:
            try:
                if change is None:
                    self._call("DELETE", path)
                else:
                    self._call("PATCH", path, json={"contact_person": change})
            except VendorNotFound:
                pass
            except VendorRejected as exc:
                if exc.status not in REFUSAL_STATUSES:
                    raise
                problems.append(f"{what} ({self._refused(exc)})")
        return None

    def _remember(self, contacts: Iterable[dict[str, Any]]) -> None:
        now = time.monotonic()
        self._seen.update((payload_id(contact, DIGITS), (now, contact)) for contact in contacts)

    def _fresh(self, contact_id: str) -> dict[str, Any] | None:
        """The contact as this connector read it within `FRESH_SECONDS`, if it did."""
        seen = self._seen.get(contact_id)
        return seen[1] if seen and time.monotonic() - seen[0] <= FRESH_SECONDS else None

    # -- rectification ------------------------------------------------------------------
    def plan_correction(self, record: Record, new: Mapping[str, str]) -> list[FieldChange]:
        """The contact attributes that hold each field (`CORRECTED_THROUGH`; an e-mail field's addresses all go
        for the new one); on a document, its contact copy's.

        A sent invoice keeps the name and address it was issued to: an invoice must show them as they were at the
        time of supply (art. 35a lid 1 sub c Wet op de omzetbelasting 1968; a correction goes by credit note), so
        everything on it is refused as "issued_document". A sent quote is no invoice and no law fixes it, but it
        records the offer as it was made, to whom it was then addressed: it keeps its details too ("sent_quote";
        SPEC PATCH `estimates/{id}` would take `update_contact` in any state). A draft is no issued document: it
        takes its contact's current details (SPEC PATCH `sales_invoices/{id}` and `estimates/{id}`,
        `update_contact`).
        """
        if record.record_type not in RESOURCES:
            raise ValueError(f"not a Moneybird record: {record.ref}")
        contact = record.fields if record.record_type == "contact" else record.fields.get("contact") or {}
        prefix = "" if record.record_type == "contact" else "contact."
        refused = None if record.record_type == "contact" or record.fields.get("state") == DRAFT \
            else "sent_quote" if record.record_type == "estimate" else "issued_document"
        changes = []
        for name, value in new.items():
            held = _held(contact, name)
            if held is not None:
                changes.append(FieldChange(record.ref, name, ", ".join(prefix + attribute for attribute in held[1]),
                                           held[0], value, refused))
        return changes

    def correct(self, changes: Sequence[FieldChange]) -> ActionResult:
        """PATCH a contact's attributes (only those that do not show the new value yet), or have a draft take its
        contact's current details (`update_contact`); then check the answer shows the new values.

        Requests: a read (`read`), and a PATCH unless the record already shows them. A draft whose contact does
        not show the new values yet is NOT_SUPPORTED (its contact is corrected first; then run again). Moneybird
        keeps the old values in the contact's event history, which its API cannot erase.
        """
        ref, wanted = _one_record(changes)
        if not wanted:
            return ActionResult(Outcome.NOT_SUPPORTED, f"{ref} keeps every value asked for "
                                                       f"({', '.join(sorted({c.refused or '' for c in changes}))})")
        record = self.read(ref)
        if record is None:
            return ActionResult(Outcome.ALREADY_GONE, f"{ref} was not found")
        draft = ref.record_type != "contact"
        if draft and record.fields.get("state") != DRAFT:
            return ActionResult(Outcome.NOT_SUPPORTED, f"{ref} was sent after the plan was made and keeps the "
                                                       "details it was sent to")
        held = (record.fields.get("contact") or {}) if draft else record.fields
        body = {name: value for name, value in wanted.items() if not _shows(held, name, value)}
        if not body:
            return ActionResult(Outcome.DONE, f"{ref} already shows {', '.join(sorted(wanted))}; nothing sent")
        self._seen.pop(ref.record_id, None)
        path = _record_path(ref)
        try:
            answer = self._json("PATCH", path, json={ref.record_type: {"update_contact": True}} if draft
                                else {"contact": body})
        except VendorNotFound:
            return ActionResult(Outcome.ALREADY_GONE, f"{ref} was not found")
        except VendorRejected as exc:
            if exc.status not in REFUSAL_STATUSES:
                raise
            return ActionResult(Outcome.NOT_SUPPORTED, f"Moneybird refused to correct {', '.join(sorted(body))} on "
                                                       f"{ref} ({self._refused(exc)}); change them by hand "
                                                       f"{EDIT_CONTACT}")
        if not isinstance(answer, dict) or str(answer.get("id")) != ref.record_id:
            raise VendorBadResponse(SYSTEM, "PATCH", f"/{RESOURCES[ref.record_type]}", 200,
                                    "answered without the record; nothing is recorded as done")
        left = sorted(name for name, value in body.items()
                      if not _shows((answer.get("contact") or {}) if draft else answer, name, value))
        if left and draft:
            return ActionResult(Outcome.NOT_SUPPORTED,
                                f"{ref} took the details of contact {record.fields.get('contact_id')}, which does not "
                                f"show the new {', '.join(left)} yet: correct that contact first, then run again")
        if left:
            raise VendorBadResponse(SYSTEM, "PATCH", f"/{RESOURCES['contact']}", 200,
                                    "the answer does not show the corrected attributes; nothing is recorded as done")
        return ActionResult(Outcome.DONE, f"{ref}: corrected {', '.join(sorted(body))}"
                                          + (" (update_contact" if draft else " (") + "; answer checked); Moneybird "
                                          "keeps earlier values in the contact's event history")


@dataclass
class Scrub:
    """The writes that remove `wanted` from one contact as Moneybird has it, and the check that they took."""

    wanted: tuple[str, ...]
    contact: dict[str, Any]  # the PATCH body
    people: list[tuple[str, dict[str, str] | None]]  # contact person id -> its PATCH body, or None: delete it
    notes: list[str]
    side: list[str]  # what else had to change for Moneybird to accept the blanks

    @classmethod
    def plan(cls, contact: dict[str, Any], fields: Sequence[str]) -> Scrub:
        wanted = tuple(dict.fromkeys(fields))
        targets: dict[str, str] = {}
        for name in wanted:
            for target in SHOWN_THROUGH.get(name, () if name == "notes" else (name,)):
                targets[target] = NAME_PLACEHOLDERS.get(target, "")
        body = {name: value for name, value in targets.items() if _text(contact.get(name)) != value}
        side = []
        if (body.get("send_invoices_to_email") == "" and contact.get("delivery_method") == "Email"):
            body["delivery_method"] = "Manual"
            side.append("delivery method set to Manual (Moneybird sends by e-mail only to an address)")
        if SEPA_DETAILS & set(body):
            switched = [name for name in ("sepa_active", "direct_debit") if _true(contact.get(name))]
            body.update({name: False for name in switched})
            if switched:
                side.append(f"SEPA switched off ({', '.join(switched)}: Moneybird requires the SEPA details with it)")
        people: list[tuple[str, dict[str, str] | None]] = []
        for person in contact.get("contact_people") or []:
            if PERSON_NAME_FIELDS & set(wanted):
                people.append((payload_id(person, DIGITS), None))
                continue
            change = {name: "" for name in _person_fields(wanted) if _text(person.get(name))}
            if change:
                people.append((payload_id(person, DIGITS), change))
        notes = [payload_id(note, DIGITS) for note in contact.get("notes") or []] if "notes" in wanted else []
        return cls(wanted, body, people, notes, side)

    @property
    def nothing_to_do(self) -> bool:
        return not (self.contact or self.people or self.notes)

    def left_on(self, contact: dict[str, Any]) -> list[str]:
        """The names of what still holds a value that was to go (field names, contact_people, notes)."""
        left = [name for name in self.wanted if name != "notes"
                and _text(contact.get(name)) not in ("", NAME_PLACEHOLDERS.get(name, ""))]
        person_fields = _person_fields(self.wanted)
        names_go = bool(PERSON_NAME_FIELDS & set(self.wanted))
        for person in contact.get("contact_people") or []:
            named = {_text(person.get(name)) for name in PERSON_NAME_FIELDS} - {"", ANONYMISED}
            if (names_go and named) or any(_text(person.get(name)) for name in person_fields):
                left.append("contact_people")
                break
        if "notes" in self.wanted and contact.get("notes"):
            left.append("notes")
        return left

    def summary(self, ref: RecordRef) -> str:
        deleted = sum(change is None for _, change in self.people)
        parts = [f"{len(self.contact)} field(s) of {ref} written ({', '.join(sorted(self.contact))})"
                 if self.contact else f"no field of {ref} to write", *self.side]
        if self.people:
            parts.append(f"{len(self.people) - deleted} contact person(s) scrubbed, {deleted} deleted")
        if self.notes:
            parts.append(f"{len(self.notes)} note(s) deleted")
        return "; ".join(parts)


def _person_fields(wanted: Iterable[str]) -> list[str]:
    """A contact person's fields that go with these contact fields."""
    wanted = set(wanted)
    return (["phone"] if "phone" in wanted else []) + (["email"] if wanted & set(CONTACT_EMAIL_FIELDS) else [])


def _held(contact: Mapping[str, Any], name: str) -> tuple[str, tuple[str, ...]] | None:
    """What a contact holds of a correctable field, as one value, and the attributes holding it; None if nothing."""
    if name == "email":
        attributes = tuple(a for a in CORRECTED_THROUGH[name] if _addresses(contact.get(a)))
        addresses = dict.fromkeys(part for a in attributes for part in _addresses(contact.get(a)) if part)
        return (", ".join(addresses), attributes) if addresses else None
    attributes = tuple(a for a in CORRECTED_THROUGH[name] if _text(contact.get(a)))
    return (" ".join(_text(contact.get(a)) for a in attributes), CORRECTED_THROUGH[name]) if attributes else None


def _one_record(changes: Sequence[FieldChange]) -> tuple[RecordRef, dict[str, str]]:
    """The record the changes are of, and the contact attributes they set (a name split at its first space into
    first and last name, as one name is everywhere here); refused changes set nothing."""
    refs = {change.ref for change in changes}
    if len(refs) != 1:
        raise ValueError("correct() takes the changes of one record")
    wanted: dict[str, str] = {}
    for change in changes:
        if change.refused is not None or change.new is None:
            continue
        attributes = [a.removeprefix("contact.") for a in change.vendor_field.split(", ")]
        if change.field == "name":
            parts = change.new.split(maxsplit=1)
            wanted |= dict(zip(("firstname", "lastname"), parts if len(parts) == 2 else ["", change.new]))
        else:
            wanted |= {attribute: change.new for attribute in attributes}
    return refs.pop(), wanted


def _shows(contact: Mapping[str, Any], attribute: str, value: str) -> bool:
    """Whether a contact (or a document's contact copy) holds `value` in `attribute` (an address ignoring case)."""
    held = _text(contact.get(attribute))
    return held.casefold() == value.casefold() if attribute in CONTACT_EMAIL_FIELDS else held == value


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ("" if value is None else str(value))


def _true(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.strip().lower() == "true")


# -- Moneybird's own words ------------------------------------------------------------------
_RULE_WORDS = frozenset({"Contact", "Contacts", "Moneybird", "SalesInvoice", "Sales", "Invoice", "Invoices",
                         "Estimate", "Estimates", "User", "Note", "Notes", "Period", "IBAN", "SEPA", "BIC", "API",
                         "Ids", "Entity", "An", "A", "The"})
_CODE = re.compile(r"[a-z][a-z_]{0,40}")


def moneybird_rule(response: requests.Response) -> str | None:
    """What a 400/422 body says, when it names a rule and cannot name a person (see the module docstring)."""
    try:
        body = response.json()
    except ValueError:
        return None
    if not isinstance(body, dict):
        return None
    said: list[str] = []
    error = body.get("error")
    if isinstance(error, str) and _is_rule_text(error):
        said.append(error.strip())
    elif isinstance(error, dict):
        for name, messages in error.items():
            for message in messages if isinstance(messages, list) else [messages]:
                if isinstance(name, str) and _CODE.fullmatch(name) and isinstance(message, str) \
                        and _is_rule_text(message):
                    said.append(f"{name} {message.strip()}")
    symbolic = body.get("symbolic")
    if isinstance(symbolic, dict):
        said += [f"{name}: {code}" for name, code in symbolic.items()
                 if isinstance(name, str) and isinstance(code, str) and _CODE.fullmatch(name) and _CODE.fullmatch(code)]
    return "; ".join(said)[:300] or None


def _is_rule_text(text: str) -> bool:
    if len(text) > 160 or "@" in text or re.search(r"\d", text):
        return False
    words = re.findall(r"[^\W\d_]+", text)
    return all(index == 0 or word[0].islower() or word in _RULE_WORDS for index, word in enumerate(words))


# -- payload -> Record ------------------------------------------------------------------
def contact_record(contact: dict[str, Any]) -> Record:
    """A contact. Its only person-side moment Moneybird shows is the signing of a SEPA mandate."""
    return Record(SYSTEM, "contact", payload_id(contact, DIGITS), **_person(contact), fields=contact,
                  created_at=_timestamp(contact.get("created_at")), updated_at=_timestamp(contact.get("updated_at")),
                  last_activity_at=_timestamp(contact.get("sepa_mandate_date")),
                  running_contract=bool(contact.get("sepa_active") or contact.get("moneybird_payments_mandate")),
                  version=_version(contact))


def document_record(kind: DocumentType, document: dict[str, Any]) -> Record:
    """An invoice or estimate, with the person data of its contact copy and a link to the contact."""
    moments = [moment for moment in map(_timestamp, (document.get(f) for f in kind.activity_fields)) if moment]
    contact_id = document.get("contact_id")
    links = (Link("contact", RecordRef(SYSTEM, "contact", payload_id(document, DIGITS, "contact_id"))),) \
        if contact_id else ()
    copy = dict(document.get("contact") or {})
    if isinstance(document.get("contact_person"), dict):
        copy["contact_people"] = [*(copy.get("contact_people") or []), document["contact_person"]]
    return Record(SYSTEM, kind.record_type, payload_id(document, DIGITS), **_person(copy),
                  fields=document, created_at=_timestamp(document.get("created_at")),
                  updated_at=_timestamp(document.get("updated_at")), last_activity_at=max(moments, default=None),
                  document_date=_date(document.get(kind.date_field)),
                  running_contract=document.get("state") in kind.running_states, links=links,
                  version=_version(document))


FEEDS = (Feed("contact", "contacts", contact_record, {"include_archived": "true"}),
         *(Feed(kind.record_type, kind.resource, functools.partial(document_record, kind), _document_filter())
           for kind in DOCUMENT_TYPES))


def _person(contact: dict[str, Any]) -> dict[str, Any]:
    emails, phones = contact_identifiers(contact)
    return {"emails": emails, "phones": phones,
            "first_name": contact.get("firstname") or None, "last_name": contact.get("lastname") or None}


_EMAIL_IN_TEXT = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")


def contact_identifiers(contact: dict[str, Any]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Every e-mail address and phone number on a contact, as the vendor has them, each once.

    The `send_*_email` fields may hold several addresses separated by commas; contact people carry their own;
    notes are free text, searched for addresses and for phone numbers (region NL).
    """
    emails = [part for name in CONTACT_EMAIL_FIELDS for part in _addresses(contact.get(name))]
    phones = [contact.get("phone")]
    for person in contact.get("contact_people") or []:
        if isinstance(person, dict):
            emails += _addresses(person.get("email"))
            phones.append(person.get("phone"))
    for note in contact.get("notes") or []:
        text = note.get("note") if isinstance(note, dict) else None
        if isinstance(text, str) and text.strip():
            emails += _EMAIL_IN_TEXT.findall(text)
            phones += [match.raw_string for match in phonenumbers.PhoneNumberMatcher(text, DEFAULT_REGION)]
    return _present(emails), _present(phones)


def _addresses(value: Any) -> list[str]:
    """The addresses in one e-mail field: as Moneybird has it, or each of several separated by commas."""
    if not isinstance(value, str):
        return []
    return [part.strip() for part in value.split(",")] if "," in value else [value]


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


def _record_path(ref: RecordRef) -> str:
    """The path of a record; an id not of Moneybird's shape is refused before it becomes one."""
    if ref.system != SYSTEM or ref.record_type not in RESOURCES:
        raise ValueError(f"not a Moneybird record: {ref}")
    if not DIGITS.fullmatch(ref.record_id):
        raise VendorBadResponse(SYSTEM, "-", f"/{RESOURCES[ref.record_type]}", None,
                                "a record id that is not Moneybird's (a string of digits) came from a malformed "
                                "answer; nothing was sent")
    return f"{RESOURCES[ref.record_type]}/{ref.record_id}.json"


# -- search -----------------------------------------------------------------------------
Matcher = Callable[[dict[str, Any]], bool]


def contact_queries(identifiers: Identifiers) -> Iterator[tuple[str, Matcher]]:
    """The `query` values to send, each with the check a hit must pass to count."""
    for email in identifiers.emails:
        wanted = email_key(email)
        if wanted:
            yield email.strip(), lambda contact, wanted=wanted: wanted in _contact_emails(contact)
    for phone in identifiers.phones:
        wanted = phone_key(phone)
        query = phone_query(phone) if wanted else None
        if query:
            yield query, lambda contact, wanted=wanted: wanted in _contact_phones(contact)
    for name in identifiers.names:
        wanted = name_key(name)
        if wanted:
            yield " ".join(name.split()), lambda contact, wanted=wanted: wanted in _contact_names(contact)


def phone_query(phone: str) -> str | None:
    """One query that every common notation of the number satisfies, term by term, and little else does.

    Moneybird keeps a number as typed and searches zipcodes, IBANs and customer ids with the same `query`, so
    a bare tail of digits ("5678") finds every contact in the postcode that starts with it. The terms here are
    the area code (two digits or more) and digit pairs of the subscriber number that stay together in it written
    whole, split in two, and in pairs (06-12345678, +31 6 1234 5678, 06 12 34 56 78; 035-1234567,
    +31 35 123 4567, 035 123 45 67): "12 34 56 78", "35 23 45 67". A contact must hold all of them to be a hit.
    """
    number = parse_phone(phone)
    if number is None:
        return None
    national = str(number.national_number)
    area = phonenumbers.length_of_national_destination_code(number)
    if number.country_code == 31 and national.startswith("6"):
        area = 1  # every 06 number is written 06 + eight digits, the 066 range (a destination code of its own) too
    head, subscriber = national[:area], national[area:]
    if len(subscriber) < 4:
        return None
    pairs = _pairs_every_notation_keeps(subscriber)
    if len(pairs) < 2:
        return subscriber if len(subscriber) >= 5 else None
    return " ".join(([head] if len(head) >= 2 else []) + [subscriber[i:i + 2] for i in pairs])


def _pairs_every_notation_keeps(digits: str) -> list[int]:
    """Start positions of non-overlapping digit pairs that lie inside one group in every common grouping."""
    size = len(digits)
    in_pairs = [3] + [2] * ((size - 3) // 2) if size % 2 else [2] * (size // 2)  # 3-2-2 for an odd count
    groupings = [[size], [size // 2, size - size // 2], in_pairs]  # whole; in two (4-4, 3-4, 3-3); in pairs
    kept = set(range(size - 1))
    for grouping in groupings:
        inside, start = set(), 0
        for length in grouping:
            inside |= set(range(start, start + length - 1))
            start += length
        kept &= inside
    chosen: list[int] = []
    for position in sorted(kept, reverse=True):
        if all(abs(position - other) >= 2 for other in chosen):
            chosen.append(position)
    return sorted(chosen)


def _contact_emails(contact: dict[str, Any]) -> set[str]:
    return set(map(email_key, contact_identifiers(contact)[0])) - {""}


def _contact_phones(contact: dict[str, Any]) -> set[str]:
    return set(map(phone_key, contact_identifiers(contact)[1])) - {None}


def _contact_names(contact: dict[str, Any]) -> set[str]:
    people = [contact, *(p for p in contact.get("contact_people") or [] if isinstance(p, dict))]
    full = {name_key(f"{p.get('firstname') or ''} {p.get('lastname') or ''}") for p in people}
    return (full | {name_key(contact.get("company_name"))}) - {""}


# -- what a person reads ---------------------------------------------------------------------

#: labels (nl, en) of the fields a person's record shows in the access report; a flat path as
#: `vergeet.access` walks the record ("contact.firstname", "notes[].note"), `[]` standing for a list position
#: and `{n}` in a label for that position counted from 1. Fields not named here (ids, versions, URLs of the
#: API, tax bookkeeping, internal flags) stay out of the HTML; the JSON export keeps them all.
_PERSON_LABELS: dict[str, tuple[str, str]] = {
    "company_name": ("Bedrijfsnaam", "Company name"), "firstname": ("Voornaam", "First name"),
    "lastname": ("Achternaam", "Last name"), "attention": ("Ter attentie van", "For the attention of"),
    "address1": ("Adres", "Address"), "address2": ("Adres (vervolg)", "Address (continued)"),
    "zipcode": ("Postcode", "Postcode"), "city": ("Plaats", "City"), "country": ("Land", "Country"),
    "phone": ("Telefoonnummer", "Phone number"), "email": ("E-mailadres", "E-mail address"),
    "send_invoices_to_email": ("E-mailadres voor facturen", "E-mail address for invoices"),
    "send_invoices_to_attention": ("Facturen ter attentie van", "Invoices for the attention of"),
    "send_estimates_to_email": ("E-mailadres voor offertes", "E-mail address for quotes"),
    "send_estimates_to_attention": ("Offertes ter attentie van", "Quotes for the attention of"),
    "delivery_method": ("Verzendwijze", "Delivery method"),
    "chamber_of_commerce": ("KvK-nummer", "Chamber of Commerce number"), "tax_number": ("Btw-nummer", "VAT number"),
    "bank_account": ("Bankrekening", "Bank account"), "sepa_iban": ("IBAN", "IBAN"),
    "sepa_iban_account_name": ("Naam rekeninghouder", "Account holder's name"), "sepa_bic": ("BIC", "BIC"),
    "sepa_mandate_id": ("Kenmerk incassomachtiging", "Direct debit mandate reference"),
    "sepa_mandate_date": ("Datum incassomachtiging", "Direct debit mandate date"),
    "direct_debit": ("Automatische incasso", "Direct debit"),
    "created_at": ("Aangemaakt", "Created"),
}
FIELD_LABELS: dict[str, tuple[str, str]] = {
    **_PERSON_LABELS,
    "notes": ("Notities", "Notes"),
    **{f"contact.{key}": (f"Klant: {nl[0].lower()}{nl[1:]}", f"Customer: {en[0].lower()}{en[1:]}")
       for key, (nl, en) in _PERSON_LABELS.items() if key not in ("direct_debit", "created_at")},
    "contact_people[].firstname": ("Contactpersoon {n}: voornaam", "Contact person {n}: first name"),
    "contact_people[].lastname": ("Contactpersoon {n}: achternaam", "Contact person {n}: last name"),
    "contact_people[].email": ("Contactpersoon {n}: e-mailadres", "Contact person {n}: e-mail address"),
    "contact_people[].phone": ("Contactpersoon {n}: telefoonnummer", "Contact person {n}: phone number"),
    "contact_people[].department": ("Contactpersoon {n}: afdeling", "Contact person {n}: department"),
    "notes[].note": ("Notitie {n}", "Note {n}"), "notes[].created_at": ("Notitie {n}: datum", "Note {n}: date"),
    "custom_fields[].value": ("Extra veld {n}", "Extra field {n}"),
    "invoice_id": ("Factuurnummer", "Invoice number"), "estimate_id": ("Offertenummer", "Quote number"),
    "invoice_date": ("Factuurdatum", "Invoice date"), "estimate_date": ("Offertedatum", "Quote date"),
    "due_date": ("Vervaldatum", "Due date"), "due_date_estimate": ("Geldig tot", "Valid until"),
    "state": ("Stand", "Status"), "reference": ("Omschrijving", "Reference"),
    "sent_at": ("Verstuurd op", "Sent on"), "paid_at": ("Betaald op", "Paid on"),
    "accepted_at": ("Geaccepteerd op", "Accepted on"), "rejected_at": ("Afgewezen op", "Rejected on"),
    "details[].description": ("Regel {n}: omschrijving", "Line {n}: description"),
    "details[].amount": ("Regel {n}: aantal", "Line {n}: quantity"),
    "details[].price": ("Regel {n}: prijs", "Line {n}: price"),
    "total_price_excl_tax": ("Totaal zonder btw", "Total excluding VAT"),
    "total_price_incl_tax": ("Totaal met btw", "Total including VAT"), "currency": ("Valuta", "Currency"),
    "total_paid": ("Betaald", "Paid"), "total_unpaid": ("Nog te betalen", "Still to pay"),
    "payments[].payment_date": ("Betaling {n}: datum", "Payment {n}: date"),
    "payments[].price": ("Betaling {n}: bedrag", "Payment {n}: amount"),
    "payment_reference": ("Betalingskenmerk", "Payment reference"),
    "pre_text": ("Tekst boven de regels", "Text above the lines"),
    "post_text": ("Tekst onder de regels", "Text below the lines"),
}
#: vendor codes in words (nl, en), per field as in `FIELD_LABELS`
VALUE_LABELS: dict[str, dict[str, tuple[str, str]]] = {
    "state": {"draft": ("concept", "draft"), "open": ("openstaand", "open"), "scheduled": ("ingepland", "scheduled"),
              "pending_payment": ("betaling in behandeling", "payment pending"),
              "reminded": ("herinnering verstuurd", "reminder sent"), "late": ("te laat", "overdue"),
              "uncollectible": ("oninbaar", "uncollectible"), "paid": ("betaald", "paid"),
              "accepted": ("geaccepteerd", "accepted"), "rejected": ("afgewezen", "rejected"),
              "billed": ("gefactureerd", "invoiced"), "archived": ("gearchiveerd", "archived")},
    "delivery_method": {"Email": ("e-mail", "e-mail"), "Post": ("post", "post"), "Manual": ("handmatig", "by hand"),
                        "Simplerinvoicing": ("e-factuur (Peppol)", "e-invoice (Peppol)"),
                        "Peppol": ("e-factuur (Peppol)", "e-invoice (Peppol)")},
}
