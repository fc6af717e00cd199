"""Mailblue: the Dutch white label of the ActiveCampaign API v3.

Vendor facts this module relies on (developers.activecampaign.com reference
pages, the v3 OpenAPI mirror in api-evangelist/activecampaign, and the sources
tagged in /work/shared/audits/moneybird-mailblue.md):

- Auth is the `Api-Token` header; the base URL is the account's "API URL" from
  Settings > Developer, and "URL paths should begin with /api/3" (reference
  overview, AC-URL). A URL pasted without its path is completed with `/api/3`
  (`api_base_url`); one with another path is refused.
- 5 requests per second for the whole account; over it the vendor answers 429
  with `Retry-After`, which the shared session honours.
- Collections page with `limit` (max 100) and `offset`; `meta.total` is a
  string and is never trusted to end a listing: paging stops on a short page
  (a full last page costs one more request). `GET /contacts` is paged by
  ascending id (`orders[id]=ASC` + `id_greater`), as the pagination page advises
  for large accounts (`IdKeysetPaginator`).
- Consent is read from the list rows (contactLists): status 1 active,
  2 unsubscribed, 0 unconfirmed (double opt-in not yet confirmed), 3 bounced
  (AC-ENUM; help article "Contact list statuses explained"); 91 marks a
  subscription removed from the contact, not an unsubscribe (AC-91), and is no
  membership. A contact active on any list is "subscribed"; else one pending
  confirmation on any list is "unconfirmed"; else one that unsubscribed from
  any list is "unsubscribed" (the only state that is withdrawn consent); else a
  bounced one is "bounced". Its date is the latest change of the rows deciding
  it (for "unconfirmed": the latest sign-up).
- The list rows are read in bulk with `GET /contactLists` (`limit`/`offset`, as
  a production Singer tap reads them: TAP streams.py `ContactLists`), because a
  list status change need not touch the contact's `udate` (activity does not,
  FIX-AC), so an updated-since read of contacts alone misses unsubscriptions.
  The listing has no documented filter, so every night reads it whole, pages
  overlapping by one row: a page that does not begin with a row already seen
  means rows before it went away while paging (a contact deleted), and the
  read steps back instead of skipping rows (`_overlapping`).
- A wrong token is answered 403 ("could not be authenticated", reference/errors).
- `DELETE /contacts/{id}` does not purge: the contact moves to the contact
  archive, where `GET /contacts` never lists it, restorable for 360 days
  (reference/contact-archives). `GET /contactArchives` lists and searches it
  (Admin users only; others get 404); `GET /contactArchives/{id}` reads one by
  the id it had as a contact (any user; 404 once purged or when it is no
  archived contact); `DELETE /contactArchives/{id}` purges (Admin only, others
  get 404) and answers 200 `{}` also when nothing was there
  (reference/delete-archived-contact, retrieve-archived-contact). So a delete
  here waits until the contact shows in the archive, purges it, and reads the
  archive again to confirm it is gone.
- What proves a write (reference/delete-contact, update-contact-new; shared/vendors.md): `DELETE
  /contacts/{id}` answers 200 `{}` and `PUT /contacts/{id}` 200 with the `contact` as it now is. Anything else
  (a 200 with an HTML page from a proxy or login wall) proves nothing: the write fails, and a delete is also
  confirmed by a read of the contact answering 404. Ids are strings of digits (every example); a 404 is "gone"
  only for an id of that shape.
- A correction (rectification) PUTs `{"contact": {...}}` the same way, only the fields that differ, and checks
  the answer. An address another contact has is refused 422 with code `duplicate` (AC-SPEC's POST /contacts
  example; ASSUMED for PUT): a refusal reported as "duplicate_email", not a failure. The contact has no address.
- An anonymisation reads the contact first and writes only the fields that do not hold their placeholder yet:
  a repeat (after a crash) sends nothing, so it adds no second change to the contact's history.
- Archived contacts are records of their own type, `archived_contact` (same
  id): another lifecycle (a purge, not a delete), read-only (no anonymising),
  dated by their archiving, and a rule of their own in the rules file; reading
  them with the contacts would make every contact rule also a rule for a
  contact the business already deleted.
- `GET /contacts/{id}` side-loads `contactAutomations`, `contactLists`,
  `deals`, `fieldValues`, `geoAddresses` and `geoIps` (AC-SPEC, FIX-AC): an
  access report keeps them all.

ASSUMED (unverified, with the safe choice made): that `GET /contactLists` lists
rows in a stable order (the one-row overlap detects rows going away, whatever
the order); that its `udate`/`updated_timestamp` move when a row's status does
(the rows' only dates; a change they do not show waits for the weekly full
read); the archive listing's paging (`limit`/`offset`) and response keys
(`contactArchives`, `contactArchive`); the `ids[]` filter of `GET /contacts`
for contacts whose rows changed (AC-SPEC names it; a filter the vendor ignored
would list more contacts, not fewer); the meaning of `adate` (read as the last
activity); that `PUT` with an empty `phone` clears it. Whether Mailblue offers
`contactArchives` at all is unverified: without it nothing reaches an archive,
and a delete reports that there was nothing to purge.
"""
from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import urlparse

import phonenumbers

from connectors.base import ActionResult, Changes, FieldChange, Identifiers, Known, Outcome, Record, RecordRef
from connectors.matching import email_key, name_key, parse_phone, phone_key
from connectors.http import (DIGITS, HeaderTokenAuth, Page, RateLimiter, VendorAuthError, VendorBadResponse,
                             VendorNotFound, VendorRejected, VendorSession, payload_id, vendor_payloads)

log = logging.getLogger(__name__)

SYSTEM = "mailblue"
CONTACT = "contact"
ARCHIVED = "archived_contact"
#: record types and the fields a retention rule may anonymise, by the vendor's names (archived contacts are
#: read-only: they can only be purged)
RECORD_FIELDS: dict[str, frozenset[str]] = {CONTACT: frozenset({"email", "firstName", "lastName", "phone"}),
                                            ARCHIVED: frozenset()}
#: 5 requests per second per account, shared by every key (developers.activecampaign.com/reference/rate-limits)
DEFAULT_RATE = (5, 1.0)
#: seconds one call may spend on retries (its rate window is a second, so a 429 asks for little)
RETRY_BUDGET = 15.0
PAGE_SIZE = 100  # the vendor's maximum `limit`
API_PATH = "/api/3"
#: list row status -> consent state; 91 (a removed subscription) and unknown codes are no membership
LIST_STATUS = {"1": "subscribed", "0": "unconfirmed", "2": "unsubscribed", "3": "bounced"}
#: which state a contact has when its lists disagree, strongest first
CONSENT_ORDER = ("subscribed", "unconfirmed", "unsubscribed", "bounced")
NAME_PLACEHOLDER = "anonymised"
#: contact fields that record the person's own doing; `udate` and `edate` are left out (edits, sends)
ACTIVITY_FIELDS = ("adate", "last_open_date", "last_click_date")
#: how often a delete looks for its contact in the archive, and purges, before it gives up
ARCHIVE_CHECKS = 3
#: times a paged read may step back because rows went away under it, before it gives up
STEP_BACKS = 10
#: correctable field -> the contact fields it is written to (PUT /contacts/{id}, AC-SPEC); the contact has no
#: address of its own (custom fields and geo addresses are not corrected)
CORRECTED_THROUGH = {"name": ("firstName", "lastName"), "email": ("email",), "phone": ("phone",)}
#: the error code AC answers when the address belongs to another contact (AC-SPEC POST /contacts 422 example:
#: {"errors": [{"title": "Email address already exists in the system", "code": "duplicate", ...}]})
DUPLICATE = "duplicate"
_CODE = re.compile(r"[a-z_]{1,40}")
ADMIN_ONLY = ("only API users in the Admin group may read or purge Mailblue's contact archive, and this API "
              "token's user is not one")


def anonymised_email(contact_id: str) -> str:
    """A valid address that stays unique per contact (the vendor refuses duplicates) and can never be delivered."""
    return f"anonymised-{contact_id}@invalid.invalid"


def api_base_url(url: str) -> str:
    """The API base URL for what a user pasted: the account URL gets `/api/3`; another path is refused.

    The Developer tab shows the account's API URL without the path, while every
    request path must begin with `/api/3` (reference overview).
    """
    parsed = urlparse(url.strip())
    path = parsed.path.rstrip("/")
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ValueError("is not a URL; use the API URL from Mailblue's Settings > Developer, ending in /api/3")
    if path == API_PATH:
        return parsed._replace(path=API_PATH, params="", query="", fragment="").geturl()
    if path:
        raise ValueError(f"ends in {path!r}, but Mailblue's API lives under /api/3: use the API URL from "
                         "Settings > Developer, followed by /api/3")
    return parsed._replace(path=API_PATH, params="", query="", fragment="").geturl()


@dataclass
class IdKeysetPaginator:
    """`GET /contacts` paged by ascending id (`orders[id]=ASC` + `id_greater`), as the vendor advises for big accounts.

    Paging stops on a short page only: `meta.total` is no count to rely on
    (contacts come and go while paging, and nothing documents what it counts
    once `id_greater` is set). A page whose ids do not ascend means the
    ordering was ignored; stopping there with an error beats skipping contacts.
    """

    limit: int = PAGE_SIZE

    def first(self, params: dict[str, Any]) -> dict[str, Any]:
        return {**params, "orders[id]": "ASC", "id_greater": 0, "limit": self.limit}

    def next(self, page: Page, params: dict[str, Any]) -> dict[str, Any] | None:
        ids = [int(payload_id(item, DIGITS)) for item in page.items]
        if ids != sorted(set(ids)) or (ids and ids[0] <= int(params["id_greater"])):
            raise VendorBadResponse(SYSTEM, "GET", urlparse(page.response.url).path, page.response.status_code,
                                    "contacts are not ordered by id; paging would skip records")
        if len(ids) < self.limit:
            return None
        return {**params, "id_greater": ids[-1]}


@vendor_payloads
class MailblueConnector:
    """Contacts of one Mailblue account with their newsletter consent, and the contacts in its archive."""

    system = SYSTEM

    def __init__(self, *, base_url: str, token: str, rate: tuple[int, float] | None = DEFAULT_RATE,
                 retries: int = 5, backoff_factor: float = 0.5, sleep: Callable[[float], None] = time.sleep,
                 retry_budget: float = RETRY_BUDGET):
        self.http = VendorSession(SYSTEM, api_base_url(base_url), HeaderTokenAuth("Api-Token", token),
                                  limiter=RateLimiter(*rate) if rate else None,
                                  retries=retries, backoff_factor=backoff_factor, retry_budget=retry_budget)
        self.backoff_factor = backoff_factor
        self._sleep = sleep
        self._refusal = threading.local()  # the error codes of the last 422, per thread
        self.http.session.hooks["response"].append(self._keep_codes)

    def _keep_codes(self, response: Any, *args: Any, **kwargs: Any) -> None:
        """The `code`s of a 422's `errors` (AC-SPEC); codes only, never the titles, which may quote values."""
        if response.status_code != 422:
            return
        try:
            errors = response.json().get("errors")
        except (ValueError, AttributeError):
            errors = None
        self._refusal.codes = tuple(e["code"] for e in errors if isinstance(e, dict) and isinstance(e.get("code"), str)
                                    and _CODE.fullmatch(e["code"])) if isinstance(errors, list) else ()

    # -- reading ----------------------------------------------------------------------
    def records(self, since: datetime | None = None) -> Iterator[Record]:
        """Every contact and archived contact (or those that changed since `since`), consent read in bulk.

        Requests: the list rows of the account (all of them: `GET /contactLists`
        has no documented filter), the contacts (updated since `since`, and by
        id those whose list rows changed since), and the archive (archived since
        `since`); each a paged listing, never a call per contact.
        """
        return iter(self._read(since)[0])

    def changes(self, cursor: Mapping[str, Any] | None, known: Known) -> Changes:
        """A full read without a cursor; else what changed since the last read.

        A contact that shows in the archive since then was deleted (in the
        Mailblue UI): it is reported gone as a contact. Purges, restores and the
        archive's own expiry are not reported; they wait for the next full read
        (one vergeet purges is forgotten at once).
        """
        started = datetime.now(timezone.utc)
        since = datetime.fromisoformat(cursor["read_at"]) if cursor else None
        records, gone = self._read(since)
        return Changes(records, cursor={"read_at": started.isoformat()}, full=since is None, gone=gone)

    def _read(self, since: datetime | None) -> tuple[list[Record], list[RecordRef]]:
        rows = self._list_rows()
        margin = _a_day_early(since)
        if margin is None:
            contacts = list(self._contacts({}))
        else:
            contacts = list(self._contacts({"filters[updated_after]": margin.date().isoformat()}))
            listed = {payload_id(c, DIGITS) for c in contacts}
            moved = sorted((contact_id for contact_id, own in rows.items()
                            if contact_id not in listed and _changed_since(own, margin)), key=int)
            for start in range(0, len(moved), PAGE_SIZE - 1):  # a short page, so one request per batch
                contacts += self._contacts({"ids[]": moved[start:start + PAGE_SIZE - 1]})
        records = []
        for contact in contacts:
            consent, changed_at = _consent_of_rows(rows.get(payload_id(contact, DIGITS), ()))
            records.append(_record(contact, consent=consent, consent_changed_at=changed_at))
        archived = self._archived({} if margin is None else {"start": int(margin.timestamp() * 1000)})
        records += [_archived_record(row) for row in archived]
        fresh = {payload_id(c, DIGITS) for c in contacts}
        gone = [] if since is None else [RecordRef(SYSTEM, CONTACT, payload_id(row, DIGITS)) for row in archived
                                         if payload_id(row, DIGITS) not in fresh]
        return records, gone

    def _list_rows(self) -> dict[str, list[Mapping[str, Any]]]:
        """Every list row of the account, by contact id."""
        by_contact: dict[str, list[Mapping[str, Any]]] = {}
        for row in self._overlapping("/contactLists", "contactLists", {}):
            by_contact.setdefault(payload_id(row, DIGITS, "contact"), []).append(row)
        return by_contact

    def _archived(self, params: Mapping[str, Any]) -> list[Mapping[str, Any]]:
        """Archived contacts (matching `params`); none when the token may not read the archive (not an Admin)."""
        try:
            return list(self._overlapping("/contactArchives", "contactArchives", params))
        except VendorNotFound:
            log.warning("%s: the contact archive was not read: %s", SYSTEM, ADMIN_ONLY)
            return []

    def _overlapping(self, path: str, key: str, params: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
        """An `offset`/`limit` listing, each page overlapping the last by one row, until a short page.

        The overlap is the check: when rows before the offset go away while
        paging (a contact deleted), the rest move back and a page would begin
        after a row nobody read; such a page is not taken, and the read steps
        back a page. Rows added meanwhile are at worst read twice (kept once).
        """
        seen: set[str] = set()
        offset, step_backs = 0, 0
        while True:
            body = self.http.json("GET", path, params={**params, "offset": offset, "limit": PAGE_SIZE})
            items = body.get(key) if isinstance(body, dict) else None
            if not isinstance(items, list):
                raise VendorBadResponse(SYSTEM, "GET", path, 200, "response does not have the expected shape")
            if offset and (not items or payload_id(items[0], DIGITS) not in seen):
                step_backs += 1
                if step_backs > STEP_BACKS:
                    raise VendorBadResponse(SYSTEM, "GET", path, 200, "rows kept moving while paging; try again")
                offset = max(0, offset - (PAGE_SIZE - 1))
                continue
            for item in items:
                if payload_id(item, DIGITS) not in seen:
                    seen.add(payload_id(item, DIGITS))
                    yield item
            if len(items) < PAGE_SIZE:
                return
            offset += PAGE_SIZE - 1

    def _contacts(self, params: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
        for page in self.http.paginate("/contacts", IdKeysetPaginator(), items=lambda body: body["contacts"],
                                       params=params):
            yield from page.items

    # -- searching --------------------------------------------------------------------
    def search(self, identifiers: Identifiers) -> Iterator[Record]:
        """Contacts and archived contacts matching any identifier.

        Contacts: exact `email` filter, `search` for phones and names, each hit
        checked client-side on the normalised identifier, then read whole
        (`GET /contacts/{id}`: list rows, custom field values, automations,
        deals, geo addresses and IPs) for the access report. Archived contacts:
        the archive's own `search` (an exact address, a phone, a full name),
        checked the same way; the listed row is the contact as archived.
        """
        seen: set[str] = set()
        for contact in self._hits(identifiers):
            contact_id = payload_id(contact, DIGITS)
            if contact_id not in seen:
                seen.add(contact_id)
                record = self._full_record(contact_id)
                if record is not None:
                    yield record
        archived: set[str] = set()
        for row in self._archive_hits(identifiers):
            if payload_id(row, DIGITS) not in archived:
                archived.add(payload_id(row, DIGITS))
                yield _archived_record(row)

    def _hits(self, identifiers: Identifiers) -> Iterator[Mapping[str, Any]]:
        """Listed contacts that match an identifier; blank identifiers are skipped (they would match everyone)."""
        return self._matching(identifiers, lambda params: self._contacts(params), email_param="email")

    def _archive_hits(self, identifiers: Identifiers) -> Iterator[Mapping[str, Any]]:
        """Archived contacts that match; a token that may not read the archive is an error, not "nothing there":
        an access report or an erasure check must not leave out copies it could not look for."""
        try:
            yield from self._matching(identifiers, lambda params: self._overlapping(
                "/contactArchives", "contactArchives", params), email_param="search")
        except VendorNotFound as exc:
            raise VendorAuthError(SYSTEM, exc.method, exc.path, exc.status,
                                  f"the contact archive could not be searched: {ADMIN_ONLY}") from None

    def _matching(self, identifiers: Identifiers, listing: Callable[[dict[str, Any]], Iterable[Mapping[str, Any]]],
                  *, email_param: str) -> Iterator[Mapping[str, Any]]:
        for email in filter(str.strip, identifiers.emails):
            wanted = email_key(email)
            yield from (c for c in listing({email_param: email.strip()}) if email_key(c.get("email")) == wanted)
        for phone in filter(_phone_key, identifiers.phones):
            wanted = _phone_key(phone)
            for term in _phone_search_terms(phone):
                yield from (c for c in listing({"search": term}) if _phone_key(c.get("phone")) == wanted)
        for name in filter(name_key, identifiers.names):
            wanted = name_key(name)
            yield from (c for c in listing({"search": " ".join(name.split())})
                        if name_key(f"{c.get('firstName') or ''} {c.get('lastName') or ''}") == wanted)

    def _contact_read(self, contact_id: str) -> dict[str, Any] | None:
        """`GET /contacts/{id}` whole (the contact and its side-loads); None when Mailblue has no such contact."""
        try:
            body = self.http.json("GET", f"/contacts/{contact_id}")
        except VendorNotFound:
            return None
        if not isinstance(body, dict) or payload_id(body.get("contact"), DIGITS) != contact_id:
            raise VendorBadResponse(SYSTEM, "GET", f"/contacts/{contact_id}", 200, "response has no contact")
        return body

    def _full_record(self, contact_id: str) -> Record | None:
        body = self._contact_read(contact_id)
        if body is None:
            return None  # deleted between the search and this read (the archive search finds it)
        rows = body.get("contactLists") or []
        consent, changed_at = _consent_of_rows(rows)
        side_loads = {name: value for name, value in body.items() if name != "contact"}
        return _record(body["contact"], consent=consent, consent_changed_at=changed_at,
                       extra={**side_loads, "contactLists": rows, "fieldValues": body.get("fieldValues") or []})

    def read(self, ref: RecordRef, parent: RecordRef | None = None) -> Record | None:
        """One contact (`GET /contacts/{id}`, read whole as `search` reads it) or archived contact
        (`GET /contactArchives/{id}`, any user, AC-ARCH); None when Mailblue has it no more."""
        record_type, contact_id = _target(ref)
        if record_type == CONTACT:
            return self._full_record(contact_id)
        try:
            body = self.http.json("GET", f"/contactArchives/{contact_id}")
        except VendorNotFound:
            return None  # restored (a contact again) or purged
        if not isinstance(body, dict) or payload_id(body.get("contactArchive"), DIGITS) != contact_id:
            raise VendorBadResponse(SYSTEM, "GET", f"/contactArchives/{contact_id}", 200,
                                    "response has no contactArchive")
        return _archived_record(body["contactArchive"])

    # -- acting -----------------------------------------------------------------------
    def delete(self, ref: RecordRef) -> ActionResult:
        """Delete the contact and purge it from the archive the vendor keeps it in for 360 days; or purge an
        archived contact.

        The purge answers 200 whether or not anything was there, so the archive
        is read before (the contact must have arrived) and after (it must be
        gone). A token whose user is outside the Admin group cannot purge (404):
        that is a task for a human, handed over with what to do where.
        """
        record_type, contact_id = _target(ref)
        deleted = False
        if record_type == CONTACT:
            try:
                self._written("DELETE", f"/contacts/{contact_id}")
                deleted = True
            except VendorNotFound:
                pass
            if deleted and self._contact_read(contact_id) is not None:
                raise VendorBadResponse(SYSTEM, "DELETE", f"/contacts/{contact_id}", 200,
                                        "the contact is still there after its delete was answered; nothing is "
                                        "recorded as deleted")
        what = f"contact {contact_id}" if record_type == CONTACT else f"archived contact {contact_id}"
        # a contact deleted just now must reach the archive; waiting for it is what makes the purge count
        if not self._arrives(contact_id, ARCHIVE_CHECKS if deleted else 1):
            outcome = Outcome.DONE if deleted else Outcome.ALREADY_GONE
            return ActionResult(outcome, f"{what} {'deleted' if deleted else 'already gone'}; it is not in the "
                                         "contact archive, so nothing is left to purge")
        for attempt in range(ARCHIVE_CHECKS):
            try:
                self._written("DELETE", f"/contactArchives/{contact_id}")
            except VendorNotFound:
                return ActionResult(Outcome.NOT_SUPPORTED, _hand_over(what, contact_id, deleted))
            if not self._archived_now(contact_id):
                return ActionResult(Outcome.DONE if deleted or record_type == ARCHIVED else Outcome.ALREADY_GONE,
                                    f"{what} {'deleted and ' if deleted else ''}purged from the contact archive "
                                    "(confirmed: the archive no longer has it)")
            self._pause(attempt)
        raise VendorBadResponse(SYSTEM, "DELETE", f"/contactArchives/{contact_id}", 200,
                                f"{what} is still in the contact archive after {ARCHIVE_CHECKS} purges; the next run "
                                "tries again")

    def _written(self, method: str, path: str, json: Any = None) -> dict[str, Any]:
        """A write answered with the JSON object Mailblue documents for it; else VendorBadResponse."""
        body = self.http.json(method, path, json=json)
        if not isinstance(body, dict):
            raise VendorBadResponse(SYSTEM, method, path, 200, "answered without the JSON object that confirms "
                                                               "the change; nothing is recorded as done")
        return body

    def _arrives(self, contact_id: str, checks: int) -> bool:
        """Whether the contact is (or, within `checks` reads, comes to be) in the archive."""
        for attempt in range(checks):
            if self._archived_now(contact_id):
                return True
            if attempt + 1 < checks:
                self._pause(attempt)
        return False

    def _archived_now(self, contact_id: str) -> bool:
        try:
            self.http.request("GET", f"/contactArchives/{contact_id}")
        except VendorNotFound:
            return False
        return True

    def _pause(self, attempt: int) -> None:
        if self.backoff_factor:
            self._sleep(self.backoff_factor * 2 ** attempt)

    def anonymise(self, ref: RecordRef, fields: Sequence[str]) -> ActionResult:
        """Overwrite the named contact fields with placeholders.

        `email` becomes `anonymised-<id>@invalid.invalid` (valid, unique,
        undeliverable: `.invalid` is reserved by RFC 2606), `firstName` and
        `lastName` become "anonymised", `phone` becomes "" (the vendor's own
        empty value). Archived contacts are read-only: they can only be purged.
        """
        record_type, contact_id = _target(ref)
        if record_type != CONTACT:
            raise ValueError(f"{SYSTEM} {record_type} cannot be anonymised, only purged: {ref}")
        unknown = set(fields) - RECORD_FIELDS[CONTACT]
        if unknown:
            raise ValueError(f"{SYSTEM} contact has no anonymisable field(s) {sorted(unknown)}")
        placeholders = {"email": anonymised_email(contact_id), "firstName": NAME_PLACEHOLDER,
                        "lastName": NAME_PLACEHOLDER, "phone": ""}
        wanted = {name: placeholders[name] for name in sorted(fields)}
        body = self._contact_read(contact_id)
        if body is None:
            return ActionResult(Outcome.ALREADY_GONE, f"contact {contact_id} not found (read before the write)")
        change = _differing(body["contact"], wanted)
        if not change:
            return ActionResult(Outcome.DONE, f"contact {contact_id}: {', '.join(wanted)} already overwritten; "
                                              "nothing sent")
        try:
            answer = self._written("PUT", f"/contacts/{contact_id}", json={"contact": change})
        except VendorNotFound:
            return ActionResult(Outcome.ALREADY_GONE, f"contact {contact_id} not found")
        if not isinstance(answer.get("contact"), dict) or _differing(answer["contact"], change):
            raise VendorBadResponse(SYSTEM, "PUT", f"/contacts/{contact_id}", 200,
                                    "the answer does not show the overwritten fields; nothing is recorded as done")
        return ActionResult(Outcome.DONE, f"contact {contact_id}: overwrote {', '.join(change)}")

    # -- rectification ----------------------------------------------------------------
    def plan_correction(self, record: Record, new: Mapping[str, str]) -> list[FieldChange]:
        """A contact's e-mail address, name (first and last) and phone, where it holds them; an archived contact is
        read-only (it can only be restored or purged): "vendor_read_only"."""
        record_type, _ = _target(record.ref)
        refused = None if record_type == CONTACT else "vendor_read_only"
        changes = []
        for name, value in new.items():
            attributes = CORRECTED_THROUGH.get(name, ())
            held = " ".join(_held(record.fields, attribute) for attribute in attributes if _held(record.fields, attribute))
            if held:
                changes.append(FieldChange(record.ref, name, ", ".join(attributes), held, value, refused))
        return changes

    def correct(self, changes: Sequence[FieldChange]) -> ActionResult:
        """Read the contact, PUT `{"contact": {...}}` with the fields that do not show the new values yet, and check
        the answer shows them. An address another contact has is refused by Mailblue (422 `duplicate`): reported
        as NOT_SUPPORTED "duplicate_email", nothing changed. Requests: a read (`read`), and a PUT unless nothing
        differs."""
        refs = {change.ref for change in changes}
        if len(refs) != 1:
            raise ValueError("correct() takes the changes of one record")
        ref = refs.pop()
        record_type, contact_id = _target(ref)
        wanted: dict[str, str] = {}
        for change in changes:
            if change.refused is None and change.new is not None:
                values = _name_parts(change.new) if change.field == "name" else [change.new]
                wanted |= dict(zip(CORRECTED_THROUGH[change.field], values))
        if record_type != CONTACT or not wanted:
            return ActionResult(Outcome.NOT_SUPPORTED, f"{record_type} {contact_id} keeps every value asked for "
                                                       "(read-only in Mailblue)")
        record = self.read(ref)
        if record is None:
            return ActionResult(Outcome.ALREADY_GONE, f"contact {contact_id} not found (read before the write)")
        change = _differing(record.fields, wanted)
        if not change:
            return ActionResult(Outcome.DONE, f"contact {contact_id} already shows {', '.join(sorted(wanted))}; "
                                              "nothing sent")
        self._refusal.codes = ()
        try:
            answer = self._written("PUT", f"/contacts/{contact_id}", json={"contact": change})
        except VendorNotFound:
            return ActionResult(Outcome.ALREADY_GONE, f"contact {contact_id} not found")
        except VendorRejected as exc:
            if exc.status != 422:
                raise
            codes = getattr(self._refusal, "codes", ())
            if DUPLICATE in codes:
                return ActionResult(Outcome.NOT_SUPPORTED, f"duplicate_email: Mailblue refused the new e-mail address "
                                                           f"of contact {contact_id}: another contact has it (HTTP "
                                                           "422, code duplicate); nothing was changed. Merge or delete "
                                                           "one of the two contacts in Mailblue, then run again")
            return ActionResult(Outcome.NOT_SUPPORTED, f"Mailblue refused to change {', '.join(sorted(change))} of "
                                                       f"contact {contact_id} (HTTP 422, codes "
                                                       f"{', '.join(codes) or 'none'}); nothing was changed")
        if not isinstance(answer.get("contact"), dict) or _differing(answer["contact"], change):
            raise VendorBadResponse(SYSTEM, "PUT", f"/contacts/{contact_id}", 200,
                                    "the answer does not show the corrected fields; nothing is recorded as done")
        return ActionResult(Outcome.DONE, f"contact {contact_id}: corrected {', '.join(sorted(change))} (answer "
                                          "checked)")


def _held(fields: Mapping[str, Any], name: str) -> str:
    value = fields.get(name)
    return "" if value is None else str(value).strip()


def _name_parts(name: str) -> list[str]:
    """First and last name of one name: split at the first space (a single word is the last name)."""
    parts = name.split(maxsplit=1)
    return parts if len(parts) == 2 else ["", name]


def _differing(contact: Mapping[str, Any], wanted: Mapping[str, str]) -> dict[str, str]:
    """The fields of `wanted` the contact does not hold yet (an address compared ignoring case)."""
    def held(name: str) -> str:
        value = contact.get(name)
        text = "" if value is None else str(value).strip()
        return text.lower() if name == "email" else text

    return {name: value for name, value in wanted.items()
            if held(name) != (value.lower() if name == "email" else value)}


def _hand_over(what: str, contact_id: str, deleted: bool) -> str:
    """The task for a human when the token cannot purge: what, where and why; ids only."""
    return (f"{what} {'was deleted but ' if deleted else ''}stays restorable for up to 360 days in Mailblue's "
            f"contact archive: {ADMIN_ONLY}. An admin must delete archived contact {contact_id} permanently "
            "(Contacts > ... > View archived contacts > Delete), or give vergeet an admin's API token")


# -- mapping vendor payloads -----------------------------------------------------------
#: a sign-up (pending or confirmed) is the person's own act in Mailblue: it dates the contact there (not the
#: person elsewhere: newsletter activity is no contact, `counts_as_contact` in the rules); a bounce is not
SIGNED_UP = frozenset({"unconfirmed", "subscribed"})


def _record(contact: Mapping[str, Any], *, consent: str | None, consent_changed_at: datetime | None,
            extra: Mapping[str, Any] | None = None) -> Record:
    activity = [moment for moment in (_date(contact.get(name)) for name in ACTIVITY_FIELDS) if moment]
    if consent in SIGNED_UP and consent_changed_at is not None:
        activity.append(consent_changed_at)
    return Record(
        system=SYSTEM, record_type=CONTACT, record_id=payload_id(contact, DIGITS),
        emails=tuple(v for v in (contact.get("email"),) if v), phones=tuple(v for v in (contact.get("phone"),) if v),
        first_name=contact.get("firstName") or None, last_name=contact.get("lastName") or None,
        fields={**{k: v for k, v in contact.items() if k != "links"}, **(extra or {})},
        created_at=_date(contact.get("cdate")), updated_at=_date(contact.get("udate")),
        last_activity_at=max(activity, default=None), consent=consent, consent_changed_at=consent_changed_at)


def _archived_record(row: Mapping[str, Any]) -> Record:
    """A contact in the archive: the contact as it was when archived, `deleted_at` saying when; no consent (it
    receives nothing) and read-only."""
    activity = [moment for moment in (_date(row.get(name)) for name in ACTIVITY_FIELDS) if moment]
    archived_at = _date(row.get("deleted_at"))
    return Record(
        system=SYSTEM, record_type=ARCHIVED, record_id=payload_id(row, DIGITS),
        emails=tuple(v for v in (row.get("email"),) if v), phones=tuple(v for v in (row.get("phone"),) if v),
        first_name=row.get("firstName") or None, last_name=row.get("lastName") or None,
        fields={k: v for k, v in row.items() if k != "links"},
        created_at=_date(row.get("cdate")) or archived_at, updated_at=archived_at,
        last_activity_at=max(activity, default=None))


def _consent_of_rows(rows: Iterable[Mapping[str, Any]]) -> tuple[str | None, datetime | None]:
    """A contact's consent from its list rows (`CONSENT_ORDER`), dated by the latest change of the rows that decide
    it: for a pending confirmation the latest sign-up, else the latest status change."""
    by_state: dict[str, list[Mapping[str, Any]]] = {}
    for row in rows:
        state = LIST_STATUS.get(str(row.get("status")))
        if state:
            by_state.setdefault(state, []).append(row)
    for state in CONSENT_ORDER:
        if state in by_state:
            dates = [_row_date(row, sign_up=state == "unconfirmed") for row in by_state[state]]
            return state, max((d for d in dates if d), default=None)
    return None, None


def _row_date(row: Mapping[str, Any], *, sign_up: bool = False) -> datetime | None:
    if sign_up:
        return _date(row.get("sdate")) or _date(row.get("created_timestamp"))
    return (_date(row.get("udate")) or _date(row.get("updated_timestamp")) or _date(row.get("sdate"))
            or _date(row.get("created_timestamp")))


def _changed_since(rows: Iterable[Mapping[str, Any]], moment: datetime) -> bool:
    """Whether any of a contact's list rows changed (or was made) at or after `moment`."""
    for row in rows:
        dates = (_row_date(row), _row_date(row, sign_up=True))
        if any(day is not None and day >= moment for day in dates):
            return True
    return False


def _date(value: Any) -> datetime | None:
    """A vendor timestamp in UTC; zero dates ("0000-00-00") and blanks are None.

    The vendor writes ISO 8601 with the account's offset; the few fields
    without an offset (`adate` at times, the rows' `*_timestamp`, which are in
    the account's zone) are read as UTC (an error of hours at most).
    """
    if not value or str(value).startswith("0000-00-00"):
        return None
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)).astimezone(timezone.utc)


def _a_day_early(since: datetime | None) -> datetime | None:
    """Where an incremental read starts: a day early, as the vendor compares dates in the account's own zone."""
    if since is None:
        return None
    moment = since if since.tzinfo else since.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc) - timedelta(days=1)


def _target(ref: RecordRef) -> tuple[str, str]:
    if ref.system != SYSTEM or ref.record_type not in RECORD_FIELDS or not ref.record_id.isdigit():
        raise ValueError(f"not a {SYSTEM} contact or archived contact: {ref}")
    return ref.record_type, ref.record_id


# -- matching identifiers ----------------------------------------------------------------
def _phone_key(raw: str | None) -> str:
    """E.164 where the number parses (default region NL), else its digits; '' for none."""
    if not raw or not raw.strip():
        return ""
    return phone_key(raw) or "".join(ch for ch in raw if ch.isdigit())


def _phone_search_terms(raw: str) -> list[str]:
    """The vendor's `search` matches text, so try the number as given, in E.164 and in national digits."""
    terms = [raw.strip()]
    parsed = parse_phone(raw)
    if parsed is not None:
        terms += [phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164),
                  "0" + str(parsed.national_number)]
    return list(dict.fromkeys(term for term in terms if term))


# -- what a person reads ---------------------------------------------------------------------

#: labels (nl, en) of the fields a person's record shows in the access report (paths as `vergeet.access` walks
#: the record, `[]` a list position, `{n}` that position from 1). Fields not named here (ids, hashes, API links,
#: counters, internal flags) stay out of the HTML; the JSON export keeps them all.
FIELD_LABELS: dict[str, tuple[str, str]] = {
    "email": ("E-mailadres", "E-mail address"), "firstName": ("Voornaam", "First name"),
    "lastName": ("Achternaam", "Last name"), "phone": ("Telefoonnummer", "Phone number"),
    "cdate": ("Aangemeld", "Signed up"), "udate": ("Laatst gewijzigd", "Last changed"),
    "contactLists[].status": ("Lijst {n}: inschrijving", "List {n}: subscription"),
    "contactLists[].sdate": ("Lijst {n}: sinds", "List {n}: since"),
    "contactLists[].unsubreason": ("Lijst {n}: reden van uitschrijven", "List {n}: reason for unsubscribing"),
    "fieldValues[].value": ("Extra veld {n}", "Extra field {n}"),
    "geoIps[].ip4": ("Locatie {n}: IP-adres", "Location {n}: IP address"),
    "geoAddresses[].city": ("Locatie {n}: plaats", "Location {n}: city"),
    "geoAddresses[].country": ("Locatie {n}: land", "Location {n}: country"),
    "deals[].title": ("Traject {n}", "Engagement {n}"),
    "deals[].cdate": ("Traject {n}: begonnen", "Engagement {n}: started"),
    "notes[].note": ("Notitie {n}", "Note {n}"),
}
#: vendor codes in words (nl, en); list row statuses as `LIST_STATUS` reads them
VALUE_LABELS: dict[str, dict[str, tuple[str, str]]] = {
    "contactLists[].status": {"1": ("ingeschreven", "subscribed"), "2": ("uitgeschreven", "unsubscribed"),
                              "0": ("nog niet bevestigd", "not yet confirmed"), "3": ("onbestelbaar", "bounced")},
}
