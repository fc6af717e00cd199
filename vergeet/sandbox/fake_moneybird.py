"""A loopback fake of the Moneybird API v2, seeded from a `Population`.

Serves, under `/api/v2/{administration_id}/`: contacts (list with `query`, `include_archived` and paging;
`contacts/filter` with `query`; one; PATCH; DELETE; archive; synchronization GET and POST; contact people GET,
PATCH and DELETE; notes DELETE), sales invoices and estimates (list with `filter=period:...,state:...,
contact_id:...`; synchronization GET with the same filter, and POST; one; PATCH with `update_contact`; DELETE). Payloads follow the shapes
of Moneybird's own examples: documents embed a copy of their contact, errors are `{"error": ..., "symbolic":
{...}}`, and a 429 answers "Retry later" with `Retry-After` and `RateLimit-Reset` as the epoch second the window
resets.

Sources, cited below as SPEC (github.com/moneybird/openapi `openapi.json`, info.version v2-20260821-37a2205df2:
the operation by method and path, or a component), CL-<date> (that repository's `changelog/<date>.md`),
HC-<n> (helpcenter.moneybird.nl article n) and CONCREXIT (svthalia/concrexit, a production Moneybird client).
What each behaviour rests on:

- Scopes (SPEC `security` per operation, CL-2026-06-17): contacts, contact people and notes accept a token with
  any of `estimates`, `sales_invoices`, `documents`, `bank` or `settings`; sales invoices need `sales_invoices`,
  estimates `estimates`. A token without the scope gets 403 (ASSUMED body: the spec's `403_forbidden` is a bare
  `symbolic_error`). A wrong token gets 401 "Authorization required".
- Paging (SPEC `components.parameters.per_page`, `GET /sales_invoices` 400 examples): `per_page` above 100 is a
  400 "per_page does not have a valid value"; a page past the last one is a 400 "page does not have a valid
  value". The spec shows that example only for sales invoices; the fake answers it on every list (ASSUMED).
  No `Link` header: SPEC declares `components.headers.link` only on downloads and reports, not on these lists
  (CL-2016-10-26 promised one everywhere; `link_headers=True` emits it to model that reading).
- `query` on `GET /contacts` searches the fields its description lists (not contact people, not
  `send_estimates_to_email`); `GET /contacts/filter` with `query` also searches contact people (SPEC). ASSUMED:
  each whitespace-separated term must occur, case-insensitively, as a substring of one of those fields.
- Archived contacts (SPEC: `include_archived` on the contacts list, filter, synchronization GET and the single
  GET): left out unless `include_archived=true` (ASSUMED: the default is undocumented; a parameter like this one
  means "not by default"). The synchronization POST answers whatever ids it is given.
- PATCH contact (SPEC `PATCH /contacts/{id}` request schema): only the attributes of that schema are written.
  `email` and `attention` are not among them (CL-2016-03-10): they show the invoice address and attention line,
  as in every spec example (`email` == `send_invoices_to_email` in all 162). `bank_account` shows the SEPA IBAN
  when one is set (SPEC `base_contact_response.bank_account`, example "ReturnsSepaIbanAsBankAccount"). Any other
  attribute outside the schema is ignored without an error (ASSUMED: the spec says `unevaluatedProperties:
  false` but documents no error for it), except `is_trusted`, which is a 400 (SPEC 400 example). 422 with
  `{"error": {field: [...]}, "details": ...}` when: no company name, first or last name is left (SPEC 422
  example); the delivery method is `Email` and `send_invoices_to_email` is blank (HC-76023: an address is needed
  when invoices go by e-mail; that the API enforces it is ASSUMED); `sepa_active` is true without every SEPA
  field ("When true, all other SEPA fields are required", SPEC); `direct_debit` is true without SEPA
  ("Requires SEPA fields", SPEC); a `send_*_email` that is not comma-separated addresses ("one or more valid
  email addresses, separated by a comma", SPEC); a `delivery_method` outside Email/Simplerinvoicing/Peppol/
  Manual/Post (SPEC). A PATCH that leaves a company contact with a first or last name also keeps that name as
  a contact person (SPEC examples "CreatesAContactPersonWhenCompanyNameFirstnameAndLastnameExistTogether" and
  "UpdateAContact", whose answers carry the contact's name in `contact_people`).
- Contact people (SPEC `/contacts/{contact_id}/contact_people/{id}`): GET, PATCH (firstname, lastname, phone,
  email, department; 422 when no name would be left, SPEC 422 example), DELETE (204, 404). Notes (SPEC
  `/contacts/{contact_id}/notes/{id}`): only POST and DELETE exist, so a note cannot be edited; DELETE answers 204,
  or 400 "User has no permissions to notes for Contact" (SPEC 400 example; `notes_allowed=False`).
- DELETE contact (SPEC: 204, 404): a contact that documents refer to is not deleted. `kept_contacts="archive"`
  (default): Moneybird archives it and answers 204 with `x-kept-as` (CL-2026-11-10 added the header; its value
  `archived` is ASSUMED), and a DELETE of such a contact already archived answers 400 "Contact can not be
  archived" (CONCREXIT, and the same text as SPEC's archive 400 example). `kept_contacts="refuse"`: 422
  (CL-2016-07-28: "Deleting can fail when a contact is still used within the bookkeeping"; body ASSUMED).
  `PATCH /contacts/{id}/archive` answers 204, or 400 "Contact can not be archived" when already archived (SPEC).
- DELETE sales invoice (SPEC: "Requires that the sales invoice has no pending payments and is not in a locked
  bookkeeping period"; 204/400/404) and HC-207248 (sent invoices can only be deleted in the order they were
  added, newest first): 400 when the invoice has a pending payment, lies in the locked period
  (`period_locked_until`), or is a sent invoice with a later sent invoice after it (`newest_first=True`). The
  message texts and `symbolic` codes are ASSUMED (Moneybird documents none). DELETE estimate: 204/404 (SPEC).
- Versions: every change to a contact, one of its contact people or notes, or its archiving gives it a new
  `updated_at` and a higher `version` (ASSUMED for contact people and notes: the contact's synchronization
  version is the only way an incremental reader can see them change). A PATCH that changes nothing leaves both.
- 429 as described above (SPEC `429_too_many_requests`, CL-2020-03-03).

Derived from the population where it has no field of its own, from stable hashes of the person key (never from
the population's random generator): a company contact has a contact person with the person's name (as
Moneybird makes one, see above), and every other such person also with the person's e-mail address and phone
in another notation; one in four contacts with a phone has a note holding that phone in another notation;
one in five has a second address (the person's own, as typed elsewhere) in `send_invoices_to_email`.
`add_contact_person`, `add_note`, `add_contact`, `set_fields` and `archive` make other situations for tests.

PATCH records the old and new values in the contact's `events`, as Moneybird does (SPEC examples).
"""
from __future__ import annotations

import copy
import hashlib
import itertools
import math
import re
import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from vergeet.sandbox.population import Document, Person, Population, phone_formats
from vergeet.sandbox.server import FakeVendor

PREFIX = "/api/v2/{administration_id}"
MAX_PER_PAGE = 100
SYNC_BATCH = 100
#: GET /contacts `query` (SPEC description of that operation)
SEARCHED_FIELDS = ("company_name", "attention", "firstname", "lastname", "address1", "address2", "zipcode", "city",
                   "country", "email", "phone", "customer_id", "tax_number", "chamber_of_commerce", "bank_account")
#: GET /contacts/filter `query`: name, contact people, email, phone, customer id, tax number, chamber of commerce,
#: IBAN and address fields (SPEC)
FILTER_SEARCHED_FIELDS = ("company_name", "firstname", "lastname", "email", "phone", "customer_id", "tax_number",
                          "chamber_of_commerce", "bank_account", "sepa_iban", "address1", "address2", "zipcode",
                          "city")
CONTACT_PERSON_SEARCHED = ("firstname", "lastname", "email", "phone")
#: SPEC PATCH /contacts/{id} request schema
WRITABLE_FIELDS = frozenset({
    "company_name", "address1", "address2", "zipcode", "city", "country", "phone", "delivery_method", "email_ubl",
    "customer_id", "tax_number", "firstname", "lastname", "chamber_of_commerce", "bank_account",
    "send_invoices_to_attention", "send_invoices_to_email", "send_estimates_to_attention", "send_estimates_to_email",
    "sepa_active", "sepa_iban", "sepa_iban_account_name", "sepa_bic", "sepa_mandate_id", "sepa_mandate_date",
    "sepa_sequence_type", "invoice_workflow_id", "estimate_workflow_id", "si_identifier_type", "si_identifier",
    "direct_debit", "custom_fields_attributes"})
#: SPEC PATCH /contacts/{contact_id}/contact_people/{id} request schema
CONTACT_PERSON_WRITABLE = frozenset({"firstname", "lastname", "phone", "email", "department"})
SEPA_FIELDS = ("sepa_iban", "sepa_iban_account_name", "sepa_bic", "sepa_mandate_id", "sepa_mandate_date")
DELIVERY_METHODS = ("Email", "Simplerinvoicing", "Peppol", "Manual", "Post")
NAME_FIELDS = ("company_name", "firstname", "lastname")
#: SPEC `security`: contacts and their parts accept any of these scopes
CONTACT_SCOPES = frozenset({"estimates", "sales_invoices", "documents", "bank", "settings"})
ALL_SCOPES = CONTACT_SCOPES | {"time_entries"}
VAT = Decimal("1.21")
DRAFT_STATE = "draft"  # a document not yet sent: no number, no `sent_at` (SPEC `invoice_id`: "null while ... a draft")
_EMAIL = re.compile(r"^[^@\s,]+@[^@\s,]+\.[^@\s,]+$")


@dataclass(frozen=True)
class _DocumentKind:
    resource: str
    date_field: str
    number_field: str
    record_type: str
    scope: str


INVOICES = _DocumentKind("sales_invoices", "invoice_date", "invoice_id", "sales_invoice", "sales_invoices")
ESTIMATES = _DocumentKind("estimates", "estimate_date", "estimate_id", "estimate", "estimates")


class BadRequest(Exception):
    """A request Moneybird would answer with 400."""


class Unprocessable(Exception):
    """A request Moneybird would answer with 422: `errors` maps a field to its messages."""

    def __init__(self, errors: dict[str, list[str]]):
        self.errors = errors
        super().__init__(", ".join(errors))


class MoneybirdFake(FakeVendor):
    """In-memory Moneybird administration: contacts from people with `person.moneybird`, their documents."""

    name = "moneybird"
    rate_calls = 150
    rate_period = 300.0

    def __init__(self, population: Population, *, token: str = "sandbox-moneybird-token",
                 administration_id: str = "123456789", rate_calls: int | None = None,
                 rate_period: float | None = None, period_locked_until: date | None = None,
                 token_scopes: frozenset[str] | set[str] | None = None, kept_contacts: str = "archive",
                 newest_first: bool = True, notes_allowed: bool = True, link_headers: bool = False):
        if kept_contacts not in ("archive", "refuse"):
            raise ValueError("kept_contacts is 'archive' or 'refuse'")
        self.population = population
        self.administration_id = administration_id
        self.period_locked_until = period_locked_until
        self.token_scopes = frozenset(ALL_SCOPES if token_scopes is None else token_scopes)
        self.kept_contacts = kept_contacts
        self.newest_first = newest_first
        self.notes_allowed = notes_allowed
        self.link_headers = link_headers
        self._ids = itertools.count(481_221_007_490_679_865, 1_048_577)
        self.contacts: dict[str, dict[str, Any]] = {}
        self.documents: dict[str, dict[str, dict[str, Any]]] = {INVOICES.resource: {}, ESTIMATES.resource: {}}
        #: person key -> contact id, for tests and the demo
        self.contact_ids: dict[str, str] = {}
        for person in population.people:
            if person.moneybird is not None:
                self.add_person(person)
        super().__init__(token=token, rate_calls=rate_calls, rate_period=rate_period)

    # -- seeding and changing ------------------------------------------------------------
    def add_person(self, person: Person) -> list[str]:
        """A contact with its documents for a person with a Moneybird presence; the record types added."""
        contact = self._contact_payload(person, customer_id=str(len(self.contacts) + 1))
        self.contacts[contact["id"]] = contact
        self.contact_ids[person.key] = contact["id"]
        added = ["contact"]
        for document in person.moneybird.documents:
            kind = INVOICES if document.kind == "invoice" else ESTIMATES
            build = self._invoice_payload if kind is INVOICES else self._estimate_payload
            payload = build(document, contact)
            self.documents[kind.resource][payload["id"]] = payload
            added.append(kind.record_type)
        return added

    def change(self, pick: int) -> str:
        """Change the record `pick` lands on (a contact's e-mail or phone, a document's state); its record type."""
        records = [("contact", contact) for contact in self.contacts.values()]
        records += [(kind.record_type, document) for kind in (INVOICES, ESTIMATES)
                    for document in self.documents[kind.resource].values()]
        record_type, record = records[pick % len(records)]
        if record_type != "contact":
            record["state"] = "paid" if record["state"] == "open" else "open"
        elif pick % 2:
            record["send_invoices_to_email"] = f"changed{pick}@example.nl"
            _mirror(record)
        else:
            record["phone"] = f"06-{pick % 10**8:08d}"
        _touch(record)
        return record_type

    def remove(self, pick: int) -> str:
        """Delete the document or document-less contact `pick` lands on, as a user would; its record type."""
        referred = {document["contact_id"] for documents in self.documents.values() for document in documents.values()}
        candidates = [(kind.record_type, self.documents[kind.resource], document_id)
                      for kind in (INVOICES, ESTIMATES) for document_id in self.documents[kind.resource]]
        candidates += [("contact", self.contacts, contact_id) for contact_id in self.contacts
                       if contact_id not in referred]
        record_type, store, record_id = candidates[pick % len(candidates)]
        del store[record_id]
        return record_type

    # -- situations for tests --------------------------------------------------------------
    def add_contact_person(self, contact_id: str, *, firstname: str | None, lastname: str | None,
                           email: str | None = None, phone: str | None = None) -> str:
        """A contact person on a contact, as a user adds one; its id."""
        contact = self.contacts[contact_id]
        person = self._contact_person(contact_id, firstname, lastname, email, phone, datetime.now(timezone.utc))
        contact["contact_people"].append(person)
        _touch(contact)
        return person["id"]

    def add_note(self, contact_id: str, text: str, *, todo: bool = False) -> str:
        """A note on a contact, as a user types one; its id."""
        contact = self.contacts[contact_id]
        note = self._note(contact_id, text, datetime.now(timezone.utc), todo=todo)
        contact["notes"].append(note)
        _touch(contact)
        return note["id"]

    def add_contact(self, **fields: Any) -> str:
        """A contact with no documents: a bare one with `fields` over it (not validated); its id."""
        contact_id = self._next_id()
        now = datetime.now(timezone.utc)
        contact = self._blank_contact(contact_id, str(len(self.contacts) + 1), now)
        contact.update(fields)
        _mirror(contact)
        self.contacts[contact_id] = contact
        return contact_id

    def add_invoice(self, contact_id: str, day: date, state: str = "paid", amount: str = "120.00") -> str:
        """A sent invoice of a contact dated `day`; its id."""
        number = f"F{day.year}-T{len(self.documents[INVOICES.resource]) + 1:05d}"
        invoice = self._invoice_payload(Document(number, "invoice", day, state, amount), self.contacts[contact_id])
        self.documents[INVOICES.resource][invoice["id"]] = invoice
        return invoice["id"]

    def set_fields(self, contact_id: str, **fields: Any) -> None:
        """Overwrite a contact's fields as a user would in Moneybird (not validated), as a change."""
        contact = self.contacts[contact_id]
        contact.update(fields)
        _mirror(contact)
        _touch(contact)

    def archive(self, contact_id: str) -> None:
        """Archive a contact as a user would in Moneybird."""
        contact = self.contacts[contact_id]
        contact["archived"] = True
        _touch(contact)

    # -- payloads -------------------------------------------------------------------------
    def _next_id(self) -> str:
        return str(next(self._ids))

    def _blank_contact(self, contact_id: str, customer_id: str, created: datetime) -> dict[str, Any]:
        return {
            "id": contact_id, "administration_id": self.administration_id,
            "company_name": "", "firstname": "", "lastname": "", "address1": "", "address2": "", "zipcode": "",
            "city": "", "country": "NL", "phone": "", "delivery_method": "Email", "customer_id": customer_id,
            "tax_number": "", "chamber_of_commerce": "", "bank_account": "", "is_trusted": False,
            "max_transfer_amount": None, "attention": "", "email": "", "email_ubl": True,
            "send_invoices_to_attention": "", "send_invoices_to_email": "",
            "send_estimates_to_attention": "", "send_estimates_to_email": "", "direct_debit": False,
            "sepa_active": False, "sepa_iban": "", "sepa_iban_account_name": "", "sepa_bic": "",
            "sepa_mandate_id": "", "sepa_mandate_date": None, "sepa_sequence_type": "RCUR",
            "credit_card_number": "", "credit_card_reference": "", "credit_card_type": None,
            "tax_number_validated_at": None, "tax_number_valid": None, "invoice_workflow_id": None,
            "estimate_workflow_id": None, "si_identifier": "", "si_identifier_type": None,
            "moneybird_payments_mandate": False,
            "created_at": _iso(created), "updated_at": _iso(created), "version": int(created.timestamp()),
            "sales_invoices_url": f"https://moneybird.com/{self.administration_id}/sales_invoices/{contact_id}/all",
            "notes": [], "custom_fields": [], "contact_people": [], "archived": False,
            "events": [self._event("contact_created", created)],
        }

    def _contact_payload(self, person: Person, customer_id: str) -> dict[str, Any]:
        presence = person.moneybird
        contact = self._blank_contact(self._next_id(), customer_id, presence.created_at)
        email = presence.email or ""
        shape = hashlib.sha256(f"moneybird:{person.key}".encode()).digest()
        contact.update({
            "company_name": person.company or "", "firstname": person.first_name, "lastname": person.last_name,
            "address1": person.street, "zipcode": person.zipcode, "city": person.city, "phone": presence.phone or "",
            "send_invoices_to_email": f"{email.strip()}, {person.email}" if email and shape[0] % 5 == 0 else email,
            "send_estimates_to_email": email,
        })
        _mirror(contact)
        notations = phone_formats(person.phone) if person.phone else []
        if person.company:  # Moneybird keeps a company contact's name as a contact person too
            with_details = shape[1] % 2 == 0
            contact["contact_people"].append(self._contact_person(
                contact["id"], person.first_name, person.last_name, person.email if with_details else None,
                notations[shape[2] % len(notations)] if with_details and notations else None, presence.created_at))
        if presence.phone and notations and shape[3] % 4 == 0:
            contact["notes"].append(self._note(
                contact["id"], f"Liever bellen dan mailen: {notations[shape[4] % len(notations)]}",
                presence.created_at))
        return contact

    def _contact_person(self, contact_id: str, firstname: str | None, lastname: str | None, email: str | None,
                        phone: str | None, at: datetime) -> dict[str, Any]:
        return {"id": self._next_id(), "contact_id": contact_id, "administration_id": self.administration_id,
                "firstname": firstname, "lastname": lastname, "phone": phone, "email": email, "department": None,
                "created_at": _iso(at), "updated_at": _iso(at), "version": int(at.timestamp())}

    def _note(self, contact_id: str, text: str, at: datetime, *, todo: bool = False) -> dict[str, Any]:
        return {"id": self._next_id(), "administration_id": self.administration_id, "entity_id": contact_id,
                "entity_type": "Contact", "user_id": "17731481239735", "assignee_id": None, "todo": todo,
                "note": text, "completed_at": None, "completed_by_id": None, "todo_type": None, "data": {},
                "created_at": _iso(at), "updated_at": _iso(at)}

    def _event(self, action: str, at: datetime, data: dict[str, Any] | None = None) -> dict[str, Any]:
        return {"administration_id": self.administration_id, "user_id": "17731481239735", "action": action,
                "link_entity_id": None, "link_entity_type": None, "data": data or {},
                "created_at": _iso(at), "updated_at": _iso(at)}

    def _document_base(self, document: Document, contact: dict[str, Any], kind: _DocumentKind) -> dict[str, Any]:
        """What invoices and estimates share: ids, the embedded contact copy, amounts, one detail row."""
        created = datetime.combine(document.date, datetime.min.time(), tzinfo=timezone.utc) + timedelta(hours=9)
        incl = Decimal(document.amount)
        excl = (incl / VAT).quantize(Decimal("0.01"))
        document_id = self._next_id()
        return {
            "id": document_id, "administration_id": self.administration_id, "contact_id": contact["id"],
            "contact": {key: copy.deepcopy(value) for key, value in contact.items() if key != "events"},
            "contact_person_id": None, "contact_person": None, kind.number_field: document.number,
            "workflow_id": "481220994833319054", "document_style_id": "481220995099657368",
            "identity_id": "481220994169570410", "draft_id": None, "state": document.state,
            kind.date_field: document.date.isoformat(), "due_date": (document.date + timedelta(days=14)).isoformat(),
            "reference": "Coaching", "language": "nl", "currency": "EUR", "discount": "0.0",
            "sent_at": document.date.isoformat(), "created_at": _iso(created), "updated_at": _iso(created),
            "version": int(created.timestamp()),
            "details": [{"id": self._next_id(), "administration_id": self.administration_id,
                         "tax_rate_id": "481220994540766345", "ledger_account_id": "481220994360411257",
                         "project_id": None, "product_id": None, "amount": "1 x", "amount_decimal": "1.0",
                         "description": "Coaching", "price": str(excl), "period": None, "row_order": 1,
                         "total_price_excl_tax_with_discount": str(excl),
                         "total_price_excl_tax_with_discount_base": str(excl), "tax_report_reference": ["NL/1a"],
                         "mandatory_tax_text": None, "created_at": _iso(created), "updated_at": _iso(created)}],
            "prices_are_incl_tax": False, "total_price_excl_tax": str(excl), "total_price_excl_tax_base": str(excl),
            "total_price_incl_tax": str(incl), "total_price_incl_tax_base": str(incl), "total_discount": "0.0",
            "url": f"https://moneybird.com/{self.administration_id}/external/{document_id}/{kind.resource}",
            "custom_fields": [], "notes": [], "attachments": [],
            "tax_totals": [{"tax_rate_id": "481220994540766345", "taxable_amount": str(excl),
                            "taxable_amount_base": str(excl), "tax_amount": str(incl - excl),
                            "tax_amount_base": str(incl - excl)}],
        }

    def _invoice_payload(self, document: Document, contact: dict[str, Any]) -> dict[str, Any]:
        invoice = self._document_base(document, contact, INVOICES)
        paid = document.state == "paid"
        paid_on = min(document.date + timedelta(days=7), self.population.today) if paid else None
        total = invoice["total_price_incl_tax"]
        invoice.update({
            "recurring_sales_invoice_id": None, "subscription_id": None,
            "payment_conditions": "We verzoeken u vriendelijk het bovenstaande bedrag van {document.total_price} "
                                  "voor {document.due_date} te voldoen.",
            "payment_reference": f"RF{invoice['id'][-12:]}", "short_payment_reference": f"RF{invoice['id'][-6:]}",
            "original_sales_invoice_id": None, "paused": False,
            "paid_at": paid_on.isoformat() if paid_on else None,
            "public_view_code": invoice["id"][-6:], "public_view_code_expires_at": None,
            "payments": [{"id": self._next_id(), "administration_id": self.administration_id,
                          "invoice_type": "SalesInvoice", "invoice_id": invoice["id"], "price": total,
                          "price_base": total, "payment_date": paid_on.isoformat()}] if paid_on else [],
            "total_paid": total if paid else "0.0", "total_unpaid": "0.0" if paid else total,
            "total_unpaid_base": "0.0" if paid else total, "marked_dubious_on": None,
            "marked_uncollectible_on": None, "reminder_count": 1 if document.state == "late" else 0,
            "next_reminder": None if paid else invoice["due_date"], "original_estimate_id": None,
            "payment_url": f"{invoice['url']}/pay_invoice",
            "events": [self._event("sales_invoice_created", _at(document.date)),
                       self._event("sales_invoice_send_email", _at(document.date))],
            "time_entries": [],
        })
        return invoice

    def _estimate_payload(self, document: Document, contact: dict[str, Any]) -> dict[str, Any]:
        estimate = self._document_base(document, contact, ESTIMATES)
        answered = (document.date + timedelta(days=5)).isoformat()
        estimate.update({
            "estimate_sequence_id": document.number[-4:], "original_estimate_id": None, "exchange_rate": "1.0",
            "show_tax": True, "sign_online": True,
            "accepted_at": answered if document.state == "accepted" else None,
            "rejected_at": answered if document.state == "rejected" else None, "archived_at": None,
            "public_view_code": estimate["id"][-6:], "public_view_code_expires_at": None,
            "pre_text": "", "post_text": "",
            "events": [self._event("estimate_created", _at(document.date)),
                       self._event("estimate_send_email", _at(document.date))],
        })
        return estimate

    # -- the vendor's way of answering --------------------------------------------------
    def routes(self) -> list[Route]:
        contact_routes = [
            ("/contacts.json", self._list_contacts, "GET"),
            ("/contacts/filter.json", self._filter_contacts, "GET"),
            ("/contacts/synchronization.json", self._contact_versions, "GET"),
            ("/contacts/synchronization.json", self._by_ids(lambda: self.contacts), "POST"),
            ("/contacts/{contact_id}/contact_people/{id}.json", self._get_contact_person, "GET"),
            ("/contacts/{contact_id}/contact_people/{id}.json", self._patch_contact_person, "PATCH"),
            ("/contacts/{contact_id}/contact_people/{id}.json", self._delete_contact_person, "DELETE"),
            ("/contacts/{contact_id}/notes/{id}.json", self._delete_note, "DELETE"),
            ("/contacts/{id}/archive.json", self._archive_contact, "PATCH"),
            ("/contacts/{id}.json", self._get_contact, "GET"),
            ("/contacts/{id}.json", self._patch_contact, "PATCH"),
            ("/contacts/{id}.json", self._delete_contact, "DELETE"),
        ]
        routes = [self._route(path, handler, method, CONTACT_SCOPES) for path, handler, method in contact_routes]
        for kind in (INVOICES, ESTIMATES):
            scopes = frozenset({kind.scope})
            routes += [
                self._route(f"/{kind.resource}.json", self._document_lister(kind), "GET", scopes),
                self._route(f"/{kind.resource}/synchronization.json", self._document_versions(kind), "GET", scopes),
                self._route(f"/{kind.resource}/synchronization.json",
                            self._by_ids(lambda kind=kind: self.documents[kind.resource]), "POST", scopes),
                self._route(f"/{kind.resource}/{{id}}.json", self._document_getter(kind), "GET", scopes),
                self._route(f"/{kind.resource}/{{id}}.json", self._document_patcher(kind), "PATCH", scopes),
                self._route(f"/{kind.resource}/{{id}}.json", self._document_deleter(kind), "DELETE", scopes)]
        return routes

    def _route(self, path: str, handler, method: str, scopes: frozenset[str]) -> Route:
        async def endpoint(request: Request) -> Response:
            if request.path_params["administration_id"] != self.administration_id:
                return self.error(404, "record not found")
            if not scopes & self.token_scopes:
                return self.error(403, "Forbidden")
            try:
                return await handler(request)
            except BadRequest as exc:
                return self.error(400, str(exc))
            except Unprocessable as exc:
                return JSONResponse({"error": exc.errors,
                                     "details": {name: [{"error": message} for message in messages]
                                                 for name, messages in exc.errors.items()}}, status_code=422)

        return Route(PREFIX + path, endpoint, methods=[method])

    def authorised(self, request: Request) -> bool:
        return request.headers.get("authorization") == f"Bearer {self.token}"

    def error(self, status: int, message: str, symbolic: dict[str, str] | None = None) -> Response:
        if status == 401:
            return JSONResponse({"error": "Authorization required"}, status_code=401)
        if status == 404:
            return JSONResponse({"error": "record not found", "symbolic": {"id": "not_found"}}, status_code=404)
        body: dict[str, Any] = {"error": message}
        if symbolic:
            body["symbolic"] = symbolic
        return JSONResponse(body, status_code=status)

    def rate_limited(self, wait: float) -> Response:
        reset = str(math.ceil(time.time() + wait))
        return JSONResponse("Retry later", status_code=429, headers={
            "RateLimit-Limit": str(self.rate_calls), "RateLimit-Remaining": "0",
            "RateLimit-Reset": reset, "Retry-After": reset})

    # -- contacts ---------------------------------------------------------------------
    def _visible(self, request: Request) -> list[dict[str, Any]]:
        return [contact for contact in self.contacts.values() if _include_archived(request) or not contact["archived"]]

    async def _list_contacts(self, request: Request) -> Response:
        terms = request.query_params.get("query", "").casefold().split()
        rows = [contact for contact in self._visible(request) if _matches_query(contact, terms, SEARCHED_FIELDS)]
        return self._page(request, rows)

    async def _filter_contacts(self, request: Request) -> Response:
        if request.query_params.get("filter"):
            raise BadRequest("filter is not modelled by the sandbox")
        terms = request.query_params.get("query", "").casefold().split()
        rows = [contact for contact in self._visible(request)
                if _matches_query(contact, terms, FILTER_SEARCHED_FIELDS, with_people=True)]
        return self._page(request, rows)

    async def _contact_versions(self, request: Request) -> Response:
        return _versions(self._visible(request))

    def _by_ids(self, records):
        """POST .../synchronization.json: the records with the given ids (at most 100), whole."""
        async def by_ids(request: Request) -> Response:
            body = await _json_body(request)
            ids = body.get("ids") if isinstance(body, dict) else None
            if not isinstance(ids, list):
                return self.error(400, "Ids is required", {"ids": "required"})
            stored = records()
            return JSONResponse([stored[record_id] for record_id in map(str, ids[:SYNC_BATCH]) if record_id in stored])

        return by_ids

    def _contact(self, request: Request, key: str = "id") -> dict[str, Any] | None:
        contact = self.contacts.get(request.path_params[key])
        if contact is None or (contact["archived"] and key == "id" and request.method == "GET"
                               and not _include_archived(request)):
            return None
        return contact

    async def _get_contact(self, request: Request) -> Response:
        contact = self._contact(request)
        return JSONResponse(contact) if contact else self.error(404, "record not found")

    async def _patch_contact(self, request: Request) -> Response:
        contact = self._contact(request)
        if contact is None:
            return self.error(404, "record not found")
        body = await _json_body(request)
        changes = body.get("contact") if isinstance(body, dict) else None
        if not isinstance(changes, dict):
            raise BadRequest("contact is required")
        if "is_trusted" in changes:
            return self.error(400, "An contact can only be trusted during the approval of a payment.",
                              {"is_trusted": "permission"})
        written = {name: value for name, value in changes.items() if name in WRITABLE_FIELDS}
        updated = {**contact, **written}
        _mirror(updated)
        _validate_contact(updated)
        diff = {name: [contact[name], updated[name]] for name in updated
                if name not in ("events", "contact_people") and contact.get(name) != updated[name]}
        if not diff:
            return JSONResponse(contact)
        now = datetime.now(timezone.utc)
        contact.update({name: updated[name] for name in diff})
        names = (contact.get("firstname") or None, contact.get("lastname") or None)
        if (contact.get("company_name") or "").strip() and any(names) and not any(
                (person["firstname"] or None, person["lastname"] or None) == names
                for person in contact["contact_people"]):
            contact["contact_people"].append(self._contact_person(contact["id"], *names, None, None, now))
        _touch(contact)
        contact["events"].append(self._event("contact_changed", now, {"changes": diff}))
        return JSONResponse(contact)

    async def _archive_contact(self, request: Request) -> Response:
        contact = self._contact(request)
        if contact is None:
            return self.error(404, "record not found")
        if contact["archived"]:
            return self.error(400, "Contact can not be archived", {"id": "can_not_be_archived"})
        contact["archived"] = True
        _touch(contact)
        return Response(status_code=204)

    async def _delete_contact(self, request: Request) -> Response:
        contact_id = request.path_params["id"]
        contact = self.contacts.get(contact_id)
        if contact is None:
            return self.error(404, "record not found")
        if any(document["contact_id"] == contact_id
               for documents in self.documents.values() for document in documents.values()):
            if self.kept_contacts == "refuse":
                return self.error(422, "Contact is still in use", {"contact": "in_use"})
            if contact["archived"]:
                return self.error(400, "Contact can not be archived", {"id": "can_not_be_archived"})
            contact["archived"] = True
            _touch(contact)
            return Response(status_code=204, headers={"x-kept-as": "archived"})
        del self.contacts[contact_id]
        return Response(status_code=204)

    # -- contact people and notes ---------------------------------------------------------
    def _contact_person_of(self, request: Request) -> tuple[dict[str, Any], dict[str, Any]] | None:
        contact = self.contacts.get(request.path_params["contact_id"])
        if contact is None:
            return None
        person = next((p for p in contact["contact_people"] if p["id"] == request.path_params["id"]), None)
        return (contact, person) if person else None

    async def _get_contact_person(self, request: Request) -> Response:
        found = self._contact_person_of(request)
        return JSONResponse(found[1]) if found else self.error(404, "record not found")

    async def _patch_contact_person(self, request: Request) -> Response:
        found = self._contact_person_of(request)
        if found is None:
            return JSONResponse({"error": "contact person not found", "symbolic": {"contact_person_id": "not_found"}},
                                status_code=404)
        contact, person = found
        body = await _json_body(request)
        changes = body.get("contact_person") if isinstance(body, dict) else None
        if not isinstance(changes, dict):
            raise BadRequest("contact_person is required")
        updated = {**person, **{k: v for k, v in changes.items() if k in CONTACT_PERSON_WRITABLE}}
        if not any(str(updated.get(name) or "").strip() for name in ("firstname", "lastname")):
            raise Unprocessable({"firstname": ["can't be blank"], "lastname": ["can't be blank"]})
        if str(updated.get("email") or "").strip() and not _EMAIL.match(str(updated["email"]).strip()):
            raise Unprocessable({"email": ["is invalid"]})
        if updated != person:
            person.update(updated)
            _touch(person)
            _touch(contact)
        return JSONResponse(person)

    async def _delete_contact_person(self, request: Request) -> Response:
        found = self._contact_person_of(request)
        if found is None:
            return self.error(404, "record not found")
        contact, person = found
        contact["contact_people"].remove(person)
        _touch(contact)
        return Response(status_code=204)

    async def _delete_note(self, request: Request) -> Response:
        contact = self.contacts.get(request.path_params["contact_id"])
        note = next((n for n in contact["notes"] if n["id"] == request.path_params["id"]), None) if contact else None
        if not self.notes_allowed:
            return self.error(400, "User has no permissions to notes for Contact", {"user": "insufficient_permissions"})
        if note is None:  # the spec documents no 404 here; what Moneybird answers for an unknown note is a guess
            return self.error(404, "record not found")
        contact["notes"].remove(note)
        _touch(contact)
        return Response(status_code=204)

    # -- sales invoices and estimates ----------------------------------------------------
    def _filtered(self, kind: _DocumentKind, request: Request) -> list[dict[str, Any]]:
        """The documents a `filter` selects (period, state, contact), as lists and synchronization GETs read it."""
        terms = _filter_terms(request.query_params.get("filter", ""))
        start, end = _period(terms.get("period", "this_year"), self.population.today)
        states = terms.get("state", "all").split("|")
        return [document for document in self.documents[kind.resource].values()
                if start <= date.fromisoformat(document[kind.date_field]) <= end
                and ("all" in states or document["state"] in states)
                and terms.get("contact_id", document["contact_id"]) == document["contact_id"]]

    def _document_lister(self, kind: _DocumentKind):
        async def list_documents(request: Request) -> Response:
            return self._page(request, self._filtered(kind, request))

        return list_documents

    def _document_versions(self, kind: _DocumentKind):
        async def document_versions(request: Request) -> Response:
            return _versions(self._filtered(kind, request))

        return document_versions

    def _document_getter(self, kind: _DocumentKind):
        async def get_document(request: Request) -> Response:
            document = self.documents[kind.resource].get(request.path_params["id"])
            return JSONResponse(document) if document else self.error(404, "record not found")

        return get_document

    def _document_patcher(self, kind: _DocumentKind):
        """PATCH a document: only `update_contact` is modelled (SPEC PATCH /sales_invoices/{id} and /estimates/{id}:
        "When `true`, the contact's address and other details are updated on the invoice [estimate] from the
        current contact record"); the body is `{"sales_invoice": {...}}` or `{"estimate": {...}}`. The spec
        restricts it to no state; vergeet sends it for drafts only (an issued invoice keeps its details)."""
        async def patch_document(request: Request) -> Response:
            document = self.documents[kind.resource].get(request.path_params["id"])
            if document is None:
                return self.error(404, "record not found")
            body = await _json_body(request)
            changes = body.get(kind.record_type) if isinstance(body, dict) else None
            if not isinstance(changes, dict):
                raise BadRequest(f"{kind.record_type} is required")
            if changes.get("update_contact") in (True, "true"):
                contact = self.contacts[document["contact_id"]]
                fresh = {key: copy.deepcopy(value) for key, value in contact.items() if key != "events"}
                if fresh != document["contact"]:
                    document["contact"] = fresh
                    _touch(document)
            return JSONResponse(document)

        return patch_document

    def add_draft(self, contact_id: str, day: date, kind: str = "invoice") -> str:
        """A draft invoice (or estimate) of a contact dated `day`, with a copy of the contact as it is now; its id."""
        document_kind = INVOICES if kind == "invoice" else ESTIMATES
        build = self._invoice_payload if kind == "invoice" else self._estimate_payload
        draft = build(Document(f"draft-{len(self.documents[document_kind.resource]) + 1}", kind, day, DRAFT_STATE,
                               "120.00"), self.contacts[contact_id])
        draft.update({document_kind.number_field: None, "sent_at": None})
        self.documents[document_kind.resource][draft["id"]] = draft
        return draft["id"]

    def _document_deleter(self, kind: _DocumentKind):
        async def delete_document(request: Request) -> Response:
            documents = self.documents[kind.resource]
            document = documents.get(request.path_params["id"])
            if document is None:
                return self.error(404, "record not found")
            refusal = self._undeletable(document) if kind is INVOICES else None
            if refusal:
                return self.error(400, *refusal)
            del documents[document["id"]]
            return Response(status_code=204)

        return delete_document

    def _undeletable(self, invoice: dict[str, Any]) -> tuple[str, dict[str, str]] | None:
        """Why Moneybird keeps this invoice (its message and symbolic code), or None when it may go."""
        if invoice["state"] == "pending_payment":
            return "Sales invoice has pending payments", {"payments": "pending"}
        if (self.period_locked_until is not None
                and date.fromisoformat(invoice["invoice_date"]) <= self.period_locked_until):
            return "Sales invoice lies in a locked bookkeeping period", {"invoice_date": "locked"}
        if self.newest_first and invoice["state"] != "draft":
            order = (invoice["created_at"], int(invoice["id"]))
            if any((other["created_at"], int(other["id"])) > order and other["state"] != "draft"
                   for other in self.documents[INVOICES.resource].values()):
                return ("Only the most recently created sent invoice can be deleted",
                        {"sales_invoice": "not_most_recent"})
        return None

    def _page(self, request: Request, rows: list[dict[str, Any]]) -> Response:
        """One page of `rows`; a page number past the last page and a `per_page` over 100 are a 400."""
        try:
            page = int(request.query_params.get("page", "1"))
            per_page = int(request.query_params.get("per_page", str(MAX_PER_PAGE)))
        except ValueError:
            raise BadRequest("page and per_page must be integers") from None
        if not 1 <= per_page <= MAX_PER_PAGE:
            raise BadRequest("per_page does not have a valid value")
        if page < 1 or page > max(1, math.ceil(len(rows) / per_page)):
            raise BadRequest("page does not have a valid value")
        headers = {}
        if self.link_headers:
            links = []
            if page * per_page < len(rows):
                links.append(f'<{request.url.include_query_params(page=page + 1, per_page=per_page)}>; rel="next"')
            if page > 1:
                links.append(f'<{request.url.include_query_params(page=page - 1, per_page=per_page)}>; rel="prev"')
            if links:
                headers["Link"] = ", ".join(links)
        return JSONResponse(rows[(page - 1) * per_page:page * per_page], headers=headers)


# -- helpers ----------------------------------------------------------------------------
def _versions(records) -> Response:
    return JSONResponse([{"id": record["id"], "version": record["version"]} for record in records])


def _include_archived(request: Request) -> bool:
    return request.query_params.get("include_archived", "").lower() in ("true", "1")


def _mirror(contact: dict[str, Any]) -> None:
    """The read-only attributes that show writable ones: `email`, `attention` and (with a SEPA IBAN) `bank_account`."""
    contact["email"] = contact.get("send_invoices_to_email") or ""
    contact["attention"] = contact.get("send_invoices_to_attention") or ""
    if str(contact.get("sepa_iban") or "").strip():
        contact["bank_account"] = contact["sepa_iban"]


def _validate_contact(contact: dict[str, Any]) -> None:
    """Moneybird's checks on a contact as a PATCH would leave it (see the module docstring); raises Unprocessable."""
    def blank(name: str) -> bool:
        return not str(contact.get(name) or "").strip()

    errors: dict[str, list[str]] = {}
    if all(blank(name) for name in NAME_FIELDS):
        errors.update({name: ["is required"] for name in NAME_FIELDS})
    if contact.get("delivery_method") not in DELIVERY_METHODS:
        errors["delivery_method"] = ["is not included in the list"]
    elif contact["delivery_method"] == "Email" and blank("send_invoices_to_email"):
        errors["send_invoices_to_email"] = ["can't be blank when invoices are sent by e-mail"]
    for name in ("send_invoices_to_email", "send_estimates_to_email"):
        addresses = [part.strip() for part in str(contact.get(name) or "").split(",")]
        if not blank(name) and not all(_EMAIL.match(address) for address in addresses):
            errors[name] = ["should be one or more valid email addresses, separated by a comma"]
    if contact.get("sepa_active") in (True, "true"):
        errors.update({name: ["is required"] for name in SEPA_FIELDS if blank(name)})
    if contact.get("direct_debit") in (True, "true") and (
            contact.get("sepa_active") not in (True, "true") or any(blank(name) for name in SEPA_FIELDS)):
        errors["direct_debit"] = ["requires SEPA fields"]
    if errors:
        raise Unprocessable(errors)


def _touch(record: dict[str, Any]) -> None:
    """What Moneybird does to a record that changes: a new `updated_at` and a higher `version`."""
    now = datetime.now(timezone.utc)
    record["updated_at"] = _iso(now)
    record["version"] = max(record["version"] + 1, int(now.timestamp()))


def _iso(moment: datetime) -> str:
    """Moneybird's timestamp form: UTC with milliseconds and a Z."""
    utc = moment.astimezone(timezone.utc)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def _at(day: date) -> datetime:
    return datetime.combine(day, datetime.min.time(), tzinfo=timezone.utc) + timedelta(hours=9)


def _matches_query(contact: dict[str, Any], terms: list[str], fields: tuple[str, ...], *,
                   with_people: bool = False) -> bool:
    values = [str(contact.get(name) or "").casefold() for name in fields]
    if with_people:
        values += [str(person.get(name) or "").casefold()
                   for person in contact["contact_people"] for name in CONTACT_PERSON_SEARCHED]
    return all(any(term in value for value in values) for term in terms)


async def _json_body(request: Request) -> Any:
    try:
        return await request.json()
    except ValueError:
        raise BadRequest("body is not valid JSON") from None


def _filter_terms(raw: str) -> dict[str, str]:
    """`key:value,key:value` (a value may itself hold colons, as timestamps do)."""
    terms = {}
    for part in raw.split(","):
        key, separator, value = part.partition(":")
        if separator:
            terms[key.strip()] = value.strip()
    return terms


def _period(value: str, today: date) -> tuple[date, date]:
    """First and last day of a Moneybird period: `this_year`-style names, `YYYYMM[DD]` or `a..b`."""
    first, separator, last = value.partition("..")
    if separator:
        if not first or not last:  # SPEC GET /sales_invoices 400 examples
            raise BadRequest("Period must have both a start and end date")
        return _period_bound(first, start=True), _period_bound(last, start=False)
    if value.isdigit():
        return _period_bound(value, start=True), _period_bound(value, start=False)
    relation, _, unit = value.partition("_")
    shift = {"this": 0, "prev": -1, "next": 1}.get(relation)
    months = {"month": 1, "quarter": 3, "year": 12}.get(unit)
    if shift is None or months is None:
        raise BadRequest("Period is invalid")
    index = today.year * 12 + (today.month - 1) // months * months + shift * months
    end_index = index + months
    return date(index // 12, index % 12 + 1, 1), date(end_index // 12, end_index % 12 + 1, 1) - timedelta(days=1)


def _period_bound(value: str, *, start: bool) -> date:
    try:
        if len(value) == 8:
            return date(int(value[:4]), int(value[4:6]), int(value[6:]))
        if len(value) == 6:
            month_start = date(int(value[:4]), int(value[4:]), 1)
            return month_start if start else (month_start + timedelta(days=31)).replace(day=1) - timedelta(days=1)
    except ValueError:
        pass
    raise BadRequest("Period is invalid")
