"""A loopback fake of the Moneybird API v2, seeded from a `Population`.

Serves, under `/api/v2/{administration_id}/`: contacts (list with `query`, `include_archived` and paging;
one; PATCH; DELETE; synchronization GET and POST), sales invoices and estimates (list with
`filter=period:...,state:...,contact_id:...`; synchronization GET with the same filter, and POST; one;
DELETE). Payloads follow the shapes of Moneybird's own examples (github.com/moneybird/openapi and the
moneybird-dotnet fixtures): documents embed a copy of their contact, lists page with `page`/`per_page` (at
most 100) and a `Link` header, errors are `{"error": ..., "symbolic": {...}}`, and a 429 answers "Retry
later" with `Retry-After` and `RateLimit-Reset` as the epoch second the window resets.

Behaviour beyond the documentation, chosen as the safe reading (see connectors/moneybird.py):
`query` matches case-insensitive substrings per whitespace-separated term; deleting a contact that documents
refer to archives it and answers 204 with `x-kept-as: archived`; deleting an invoice with a pending payment
or in the locked period answers 400; PATCH records the old and new values in the contact's `events`.
"""
from __future__ import annotations

import copy
import itertools
import math
import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from vergeet.sandbox.population import Document, Person, Population
from vergeet.sandbox.server import FakeVendor

PREFIX = "/api/v2/{administration_id}"
MAX_PER_PAGE = 100
SYNC_BATCH = 100
SEARCHED_FIELDS = ("company_name", "attention", "firstname", "lastname", "address1", "address2", "zipcode", "city",
                   "country", "email", "phone", "customer_id", "tax_number", "chamber_of_commerce", "bank_account")
READ_ONLY_FIELDS = frozenset({"id", "administration_id", "created_at", "updated_at", "version", "sales_invoices_url",
                              "notes", "custom_fields", "contact_people", "archived", "events",
                              "tax_number_validated_at", "tax_number_valid", "moneybird_payments_mandate"})
NAME_FIELDS = ("company_name", "firstname", "lastname")
VAT = Decimal("1.21")


@dataclass(frozen=True)
class _DocumentKind:
    resource: str
    date_field: str
    number_field: str
    record_type: str


INVOICES = _DocumentKind("sales_invoices", "invoice_date", "invoice_id", "sales_invoice")
ESTIMATES = _DocumentKind("estimates", "estimate_date", "estimate_id", "estimate")


class BadRequest(Exception):
    """A request Moneybird would answer with 400."""


class MoneybirdFake(FakeVendor):
    """In-memory Moneybird administration: contacts from people with `person.moneybird`, their documents."""

    name = "moneybird"
    rate_calls = 150
    rate_period = 300.0

    def __init__(self, population: Population, *, token: str = "sandbox-moneybird-token",
                 administration_id: str = "123456789", rate_calls: int | None = None,
                 rate_period: float | None = None, period_locked_until: date | None = None):
        self.population = population
        self.administration_id = administration_id
        self.period_locked_until = period_locked_until
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
            record["email"] = f"changed{pick}@example.nl"
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

    def _next_id(self) -> str:
        return str(next(self._ids))

    def _contact_payload(self, person: Person, customer_id: str) -> dict[str, Any]:
        presence = person.moneybird
        contact_id = self._next_id()
        email = presence.email or ""
        return {
            "id": contact_id, "administration_id": self.administration_id,
            "company_name": person.company or "", "firstname": person.first_name, "lastname": person.last_name,
            "address1": person.street, "address2": "", "zipcode": person.zipcode, "city": person.city,
            "country": "NL", "phone": presence.phone or "", "delivery_method": "Email", "customer_id": customer_id,
            "tax_number": "", "chamber_of_commerce": "", "bank_account": "", "is_trusted": False,
            "max_transfer_amount": None, "attention": "", "email": email, "email_ubl": True,
            "send_invoices_to_attention": "", "send_invoices_to_email": email,
            "send_estimates_to_attention": "", "send_estimates_to_email": email,
            "sepa_active": False, "sepa_iban": "", "sepa_iban_account_name": "", "sepa_bic": "",
            "sepa_mandate_id": "", "sepa_mandate_date": None, "sepa_sequence_type": "RCUR",
            "credit_card_number": "", "credit_card_reference": "", "credit_card_type": None,
            "tax_number_validated_at": None, "tax_number_valid": None, "invoice_workflow_id": None,
            "estimate_workflow_id": None, "si_identifier": "", "si_identifier_type": None,
            "moneybird_payments_mandate": False,
            "created_at": _iso(presence.created_at), "updated_at": _iso(presence.created_at),
            "version": int(presence.created_at.timestamp()),
            "sales_invoices_url": f"https://moneybird.com/{self.administration_id}/sales_invoices/{contact_id}/all",
            "notes": [], "custom_fields": [], "contact_people": [], "archived": False,
            "events": [self._event("contact_created", presence.created_at)],
        }

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
        return [
            self._route("/contacts.json", self._list_contacts, "GET"),
            self._route("/contacts/synchronization.json", self._contact_versions, "GET"),
            self._route("/contacts/synchronization.json", self._by_ids(lambda: self.contacts), "POST"),
            self._route("/contacts/{id}.json", self._get_contact, "GET"),
            self._route("/contacts/{id}.json", self._patch_contact, "PATCH"),
            self._route("/contacts/{id}.json", self._delete_contact, "DELETE"),
            *(route for kind in (INVOICES, ESTIMATES) for route in (
                self._route(f"/{kind.resource}.json", self._document_lister(kind), "GET"),
                self._route(f"/{kind.resource}/synchronization.json", self._document_versions(kind), "GET"),
                self._route(f"/{kind.resource}/synchronization.json",
                            self._by_ids(lambda kind=kind: self.documents[kind.resource]), "POST"),
                self._route(f"/{kind.resource}/{{id}}.json", self._document_getter(kind), "GET"),
                self._route(f"/{kind.resource}/{{id}}.json", self._document_deleter(kind), "DELETE"))),
        ]

    def _route(self, path: str, handler, method: str) -> Route:
        async def endpoint(request: Request) -> Response:
            if request.path_params["administration_id"] != self.administration_id:
                return self.error(404, "record not found")
            try:
                return await handler(request)
            except BadRequest as exc:
                return self.error(400, str(exc))

        return Route(PREFIX + path, endpoint, methods=[method])

    def authorised(self, request: Request) -> bool:
        return request.headers.get("authorization") == f"Bearer {self.token}"

    def error(self, status: int, message: str) -> Response:
        if status == 401:
            return JSONResponse({"error": "Authorization required"}, status_code=401)
        if status == 404:
            return JSONResponse({"error": "record not found", "symbolic": {"id": "not_found"}}, status_code=404)
        return JSONResponse({"error": message}, status_code=status)

    def rate_limited(self, wait: float) -> Response:
        reset = str(math.ceil(time.time() + wait))
        return JSONResponse("Retry later", status_code=429, headers={
            "RateLimit-Limit": str(self.rate_calls), "RateLimit-Remaining": "0",
            "RateLimit-Reset": reset, "Retry-After": reset})

    # -- contacts ---------------------------------------------------------------------
    async def _list_contacts(self, request: Request) -> Response:
        include_archived = request.query_params.get("include_archived", "").lower() in ("true", "1")
        terms = request.query_params.get("query", "").casefold().split()
        rows = [contact for contact in self.contacts.values()
                if (include_archived or not contact["archived"]) and _matches_query(contact, terms)]
        return _page(request, rows)

    async def _contact_versions(self, request: Request) -> Response:
        return _versions(self.contacts.values())

    def _by_ids(self, records):
        """POST .../synchronization.json: the records with the given ids (at most 100), whole."""
        async def by_ids(request: Request) -> Response:
            body = await _json_body(request)
            ids = body.get("ids") if isinstance(body, dict) else None
            if not isinstance(ids, list):
                raise BadRequest("ids is required")
            stored = records()
            return JSONResponse([stored[record_id] for record_id in map(str, ids[:SYNC_BATCH]) if record_id in stored])

        return by_ids

    async def _get_contact(self, request: Request) -> Response:
        contact = self.contacts.get(request.path_params["id"])
        return JSONResponse(contact) if contact else self.error(404, "record not found")

    async def _patch_contact(self, request: Request) -> Response:
        contact = self.contacts.get(request.path_params["id"])
        if contact is None:
            return self.error(404, "record not found")
        body = await _json_body(request)
        changes = body.get("contact") if isinstance(body, dict) else None
        if not isinstance(changes, dict):
            raise BadRequest("contact is required")
        unknown = sorted(set(changes) - (set(contact) - READ_ONLY_FIELDS))
        if unknown:
            raise BadRequest(f"{unknown[0]} is not a valid attribute")
        updated = {**contact, **changes}
        if not any(str(updated.get(name) or "").strip() for name in NAME_FIELDS):
            errors = {name: ["is required"] for name in NAME_FIELDS}
            return JSONResponse({"error": errors, "details": {name: [{"error": "is required"}] for name in errors}},
                                status_code=422)
        diff = {name: [contact[name], value] for name, value in changes.items() if contact[name] != value}
        contact.update(changes)
        _touch(contact)
        contact["events"].append(self._event("contact_changed", datetime.now(timezone.utc), {"changes": diff}))
        return JSONResponse(contact)

    async def _delete_contact(self, request: Request) -> Response:
        contact_id = request.path_params["id"]
        contact = self.contacts.get(contact_id)
        if contact is None:
            return self.error(404, "record not found")
        if any(document["contact_id"] == contact_id
               for documents in self.documents.values() for document in documents.values()):
            contact["archived"] = True
            contact["version"] += 1
            return Response(status_code=204, headers={"x-kept-as": "archived"})
        del self.contacts[contact_id]
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
            return _page(request, self._filtered(kind, request))

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

    def _document_deleter(self, kind: _DocumentKind):
        async def delete_document(request: Request) -> Response:
            documents = self.documents[kind.resource]
            document = documents.get(request.path_params["id"])
            if document is None:
                return self.error(404, "record not found")
            if kind is INVOICES and self._undeletable(document):
                return JSONResponse({"error": "Sales invoice cannot be deleted",
                                     "symbolic": {"sales_invoice": "not_deletable"}}, status_code=400)
            del documents[document["id"]]
            return Response(status_code=204)

        return delete_document

    def _undeletable(self, invoice: dict[str, Any]) -> bool:
        locked = (self.period_locked_until is not None
                  and date.fromisoformat(invoice["invoice_date"]) <= self.period_locked_until)
        return invoice["state"] == "pending_payment" or locked


# -- helpers ----------------------------------------------------------------------------
def _versions(records) -> Response:
    return JSONResponse([{"id": record["id"], "version": record["version"]} for record in records])


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


def _matches_query(contact: dict[str, Any], terms: list[str]) -> bool:
    values = [str(contact.get(name) or "").casefold() for name in SEARCHED_FIELDS]
    return all(any(term in value for value in values) for term in terms)


async def _json_body(request: Request) -> Any:
    try:
        return await request.json()
    except ValueError:
        raise BadRequest("body is not valid JSON") from None


def _page(request: Request, rows: list[dict[str, Any]]) -> Response:
    """One page of `rows`, with a Link header for the neighbouring pages."""
    try:
        page = int(request.query_params.get("page", "1"))
        per_page = min(int(request.query_params.get("per_page", str(MAX_PER_PAGE))), MAX_PER_PAGE)
    except ValueError:
        raise BadRequest("page and per_page must be integers") from None
    if page < 1 or per_page < 1:
        raise BadRequest("page and per_page must be positive")
    links = []
    if page * per_page < len(rows):
        links.append(f'<{request.url.include_query_params(page=page + 1, per_page=per_page)}>; rel="next"')
    if page > 1:
        links.append(f'<{request.url.include_query_params(page=page - 1, per_page=per_page)}>; rel="prev"')
    headers = {"Link": ", ".join(links)} if links else {}
    return JSONResponse(rows[(page - 1) * per_page:page * per_page], headers=headers)


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
