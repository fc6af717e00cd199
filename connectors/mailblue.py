"""Mailblue: the Dutch white label of the ActiveCampaign API v3.

Vendor facts this module relies on (sources: developers.activecampaign.com
reference pages and the v3 OpenAPI mirror in api-evangelist/activecampaign,
summarised in /work/shared/vendors.md):

- Auth is the `Api-Token` header; the base URL is per account
  (`https://ACCOUNT.api-us1.com/api/3`). Mailblue's own host is unverified, so
  the base URL is taken from the config as is.
- 5 requests per second for the whole account; over it the vendor answers 429
  with `Retry-After`, which the shared session honours.
- Collections page with `limit` (max 100) and `offset`, `meta.total` is a
  string. The pagination page warns that deep offsets on `GET /contacts` are
  slow on large accounts and recommends `orders[id]=ASC` with `id_greater`,
  which is what contact listings use here (`IdKeysetPaginator`).
- A wrong token is answered 403 ("could not be authenticated", reference/errors).
- `DELETE /contacts/{id}` does not purge: the contact is archived and kept 360
  days, restorable after 30 (reference/contact-archives). `DELETE
  /contactArchives/{id}` removes the archived contact for good, keyed by the id
  it had before; it answers 200 `{}` also when the id is already gone, and 404
  to an API user outside the Admin group (reference/delete-archived-contact).

What stays unverified (and the safe choice made): whether `status` together
with `listid` filters on the status in that list (assumed, as in the UI's
contact list statuses); the meaning of the contact's `adate` (read as its last
activity); whether a list status change touches the contact's `udate`; that
`PUT` with an empty `phone` clears it.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import urlparse

import phonenumbers

from connectors.base import ActionResult, Changes, Identifiers, Known, Outcome, Record, RecordRef
from connectors.http import (HeaderTokenAuth, OffsetPaginator, Page, RateLimiter, VendorBadResponse,
                             VendorNotFound, VendorSession)

SYSTEM = "mailblue"
CONTACT = "contact"
#: contact fields a retention rule may anonymise, by the vendor's names
RECORD_FIELDS: dict[str, frozenset[str]] = {CONTACT: frozenset({"email", "firstName", "lastName", "phone"})}
#: 5 requests per second per account, shared by every key (developers.activecampaign.com/reference/rate-limits)
DEFAULT_RATE = (5, 1.0)
PAGE_SIZE = 100  # the vendor's maximum `limit`
ACTIVE = "1"  # contactList status: 1 active (subscribed), 2 unsubscribed, 0 unconfirmed, 3 bounced
NAME_PLACEHOLDER = "anonymised"
#: contact fields that record the person's own doing; `udate` and `edate` are left out (edits, sends)
ACTIVITY_FIELDS = ("adate", "last_open_date", "last_click_date")


def anonymised_email(contact_id: str) -> str:
    """A valid address that stays unique per contact (the vendor refuses duplicates) and can never be delivered."""
    return f"anonymised-{contact_id}@invalid.invalid"


@dataclass
class IdKeysetPaginator:
    """`GET /contacts` paged by ascending id (`orders[id]=ASC` + `id_greater`), as the vendor advises for big accounts.

    With `id_greater` set, `meta.total` counts the rows from this page on, so a
    page holding all of them is the last. A page whose ids do not ascend means
    the ordering was ignored; stopping there with an error beats skipping
    contacts silently.
    """

    limit: int = PAGE_SIZE

    def first(self, params: dict[str, Any]) -> dict[str, Any]:
        return {**params, "orders[id]": "ASC", "id_greater": 0, "limit": self.limit}

    def next(self, page: Page, params: dict[str, Any]) -> dict[str, Any] | None:
        ids = [int(item["id"]) for item in page.items]
        if ids != sorted(set(ids)) or (ids and ids[0] <= int(params["id_greater"])):
            raise VendorBadResponse(SYSTEM, "GET", urlparse(page.response.url).path, page.response.status_code,
                                    "contacts are not ordered by id; paging would skip records")
        remaining = page.body.get("meta", {}).get("total")
        if len(ids) < self.limit or (remaining is not None and int(remaining) <= len(ids)):
            return None
        return {**params, "id_greater": ids[-1]}


class MailblueConnector:
    """Contacts of one Mailblue account, with their newsletter consent."""

    system = SYSTEM

    def __init__(self, *, base_url: str, token: str, rate: tuple[int, float] | None = DEFAULT_RATE,
                 retries: int = 5, backoff_factor: float = 0.5):
        self.http = VendorSession(SYSTEM, base_url, HeaderTokenAuth("Api-Token", token),
                                  limiter=RateLimiter(*rate) if rate else None,
                                  retries=retries, backoff_factor=backoff_factor)

    # -- reading ----------------------------------------------------------------------
    def records(self, since: datetime | None = None) -> Iterator[Record]:
        """Every contact (or those updated since `since`), with consent read in bulk per list.

        Requests: the lists once, then per list its members and its active
        members, then all contacts; each a paged listing, never a call per
        contact. No documented bulk route carries the list rows' own dates
        (`sdate`/`udate`), so `consent_changed_at` is the contact's `udate`, the
        documented bulk field closest to it: it is never earlier than the last
        status change if that change touches the contact (unverified), and a
        later date only postpones a consent-based deletion.
        """
        filters = _updated_since(since)
        on_a_list, subscribed = self._memberships(filters)
        for contact in self._contacts(filters):
            consent = _consent(contact["id"] in on_a_list, contact["id"] in subscribed)
            yield _record(contact, consent=consent, consent_changed_at=_date(contact.get("udate")) if consent else None)

    def changes(self, cursor: Mapping[str, Any] | None, known: Known) -> Changes:
        """A full read without a cursor; else `records` since the last read (the vendor's updated-after filter).

        The vendor lists no deletions: a contact deleted in Mailblue itself stays in the cache until the next
        full read (one vergeet deletes is forgotten at once).
        """
        started = datetime.now(timezone.utc)
        since = datetime.fromisoformat(cursor["read_at"]) if cursor else None
        return Changes(list(self.records(since)), cursor={"read_at": started.isoformat()}, full=since is None)

    def search(self, identifiers: Identifiers) -> Iterator[Record]:
        """Contacts matching any identifier: exact `email` filter, `search` for phones and names.

        Every hit is checked client-side on the normalised identifier, then read
        whole (`GET /contacts/{id}`: list rows with their dates, custom field
        values) for the access report.
        """
        seen: set[str] = set()
        for contact in self._hits(identifiers):
            if contact["id"] not in seen:
                seen.add(contact["id"])
                record = self._full_record(contact["id"])
                if record is not None:
                    yield record

    def _hits(self, identifiers: Identifiers) -> Iterator[Mapping[str, Any]]:
        """Listed contacts that match an identifier; blank identifiers are skipped (they would match everyone)."""
        for email in filter(str.strip, identifiers.emails):
            wanted = _email_key(email)
            yield from (c for c in self._contacts({"email": email.strip()}) if _email_key(c.get("email")) == wanted)
        for phone in filter(_phone_key, identifiers.phones):
            wanted = _phone_key(phone)
            for term in _phone_search_terms(phone):
                yield from (c for c in self._contacts({"search": term}) if _phone_key(c.get("phone")) == wanted)
        for name in filter(_name_key, identifiers.names):
            wanted = _name_key(name)
            yield from (c for c in self._contacts({"search": " ".join(name.split())})
                        if _name_key(f"{c.get('firstName') or ''} {c.get('lastName') or ''}") == wanted)

    def _full_record(self, contact_id: str) -> Record | None:
        try:
            body = self.http.json("GET", f"/contacts/{contact_id}")
        except VendorNotFound:
            return None  # deleted between the search and this read
        if not isinstance(body, dict) or not isinstance(body.get("contact"), dict):
            raise VendorBadResponse(SYSTEM, "GET", f"/contacts/{contact_id}", 200, "response has no contact")
        rows = body.get("contactLists") or []
        consent, changed_at = _consent_of_rows(rows)
        return _record(body["contact"], consent=consent, consent_changed_at=changed_at,
                       extra={"contactLists": rows, "fieldValues": body.get("fieldValues") or []})

    def _memberships(self, filters: Mapping[str, Any]) -> tuple[set[str], set[str]]:
        """Ids of contacts on any list, and of those active on at least one."""
        on_a_list: set[str] = set()
        subscribed: set[str] = set()
        for list_id in self._list_ids():
            on_a_list.update(c["id"] for c in self._contacts({**filters, "listid": list_id}))
            subscribed.update(c["id"] for c in self._contacts({**filters, "listid": list_id, "status": ACTIVE}))
        return on_a_list, subscribed

    def _list_ids(self) -> list[str]:
        pages = self.http.paginate("/lists", OffsetPaginator(limit=PAGE_SIZE), items=lambda body: body["lists"])
        return [item["id"] for page in pages for item in page.items]

    def _contacts(self, params: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
        for page in self.http.paginate("/contacts", IdKeysetPaginator(), items=lambda body: body["contacts"],
                                       params=params):
            yield from page.items

    # -- acting -----------------------------------------------------------------------
    def delete(self, ref: RecordRef) -> ActionResult:
        """Delete the contact, then purge it from the archive the vendor keeps it in for 360 days.

        Without the purge the erased person stays restorable; an API user
        outside the Admin group cannot purge (404), which a human must then do.
        """
        contact_id = _contact_id(ref)
        try:
            self.http.request("DELETE", f"/contacts/{contact_id}")
            outcome = Outcome.DONE
        except VendorNotFound:
            outcome = Outcome.ALREADY_GONE
        try:
            self.http.request("DELETE", f"/contactArchives/{contact_id}")
        except VendorNotFound:
            return ActionResult(Outcome.NOT_SUPPORTED,
                                f"contact {contact_id} is archived, not purged: the API user is not in the Admin "
                                "group; an admin must purge the archived contact, or configure an admin's API token")
        return ActionResult(outcome, f"contact {contact_id} deleted and purged from the contact archive")

    def anonymise(self, ref: RecordRef, fields: Sequence[str]) -> ActionResult:
        """Overwrite the named contact fields with placeholders.

        `email` becomes `anonymised-<id>@invalid.invalid` (valid, unique,
        undeliverable: `.invalid` is reserved by RFC 2606), `firstName` and
        `lastName` become "anonymised", `phone` becomes "" (the vendor's own
        empty value).
        """
        contact_id = _contact_id(ref)
        unknown = set(fields) - RECORD_FIELDS[CONTACT]
        if unknown:
            raise ValueError(f"{SYSTEM} contact has no anonymisable field(s) {sorted(unknown)}")
        placeholders = {"email": anonymised_email(contact_id), "firstName": NAME_PLACEHOLDER,
                        "lastName": NAME_PLACEHOLDER, "phone": ""}
        try:
            self.http.json("PUT", f"/contacts/{contact_id}",
                           json={"contact": {name: placeholders[name] for name in sorted(fields)}})
        except VendorNotFound:
            return ActionResult(Outcome.ALREADY_GONE, f"contact {contact_id} not found")
        return ActionResult(Outcome.DONE, f"contact {contact_id}: overwrote {', '.join(sorted(fields))}")


# -- mapping vendor payloads -----------------------------------------------------------
def _record(contact: Mapping[str, Any], *, consent: str | None, consent_changed_at: datetime | None,
            extra: Mapping[str, Any] | None = None) -> Record:
    activity = [moment for moment in (_date(contact.get(name)) for name in ACTIVITY_FIELDS) if moment]
    return Record(
        system=SYSTEM, record_type=CONTACT, record_id=str(contact["id"]),
        emails=tuple(v for v in (contact.get("email"),) if v), phones=tuple(v for v in (contact.get("phone"),) if v),
        first_name=contact.get("firstName") or None, last_name=contact.get("lastName") or None,
        fields={**{k: v for k, v in contact.items() if k != "links"}, **(extra or {})},
        created_at=_date(contact.get("cdate")), updated_at=_date(contact.get("udate")),
        last_activity_at=max(activity, default=None), consent=consent, consent_changed_at=consent_changed_at)


def _consent(on_a_list: bool, subscribed: bool) -> str | None:
    """Subscribed to any list; on lists but subscribed to none; or on no list (None)."""
    if subscribed:
        return "subscribed"
    return "unsubscribed" if on_a_list else None


def _consent_of_rows(rows: Iterable[Mapping[str, Any]]) -> tuple[str | None, datetime | None]:
    """Consent from one contact's list rows, dated by the latest change of the rows that decide it."""
    rows = list(rows)
    active = [row for row in rows if str(row.get("status")) == ACTIVE]
    deciding = active or rows
    changed = [moment for row in deciding if (moment := _date(row.get("udate")) or _date(row.get("sdate")))]
    return _consent(bool(rows), bool(active)), max(changed, default=None)


def _date(value: Any) -> datetime | None:
    """A vendor timestamp in UTC; zero dates ("0000-00-00") and blanks are None.

    The vendor writes ISO 8601 with the account's offset; the few fields
    without an offset are read as UTC (an error of hours at most).
    """
    if not value or str(value).startswith("0000-00-00"):
        return None
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)).astimezone(timezone.utc)


def _updated_since(since: datetime | None) -> dict[str, str]:
    """The vendor's date filter, a day early: it compares dates in the account's own time zone."""
    if since is None:
        return {}
    moment = since if since.tzinfo else since.replace(tzinfo=timezone.utc)
    return {"filters[updated_after]": (moment.astimezone(timezone.utc) - timedelta(days=1)).date().isoformat()}


def _contact_id(ref: RecordRef) -> str:
    if ref.system != SYSTEM or ref.record_type != CONTACT or not ref.record_id.isdigit():
        raise ValueError(f"not a {SYSTEM} contact: {ref}")
    return ref.record_id


# -- matching identifiers ----------------------------------------------------------------
def _email_key(email: str | None) -> str:
    return (email or "").strip().casefold()


def _name_key(name: str) -> str:
    return " ".join(name.casefold().split())


def _parsed_phone(raw: str) -> phonenumbers.PhoneNumber | None:
    try:
        return phonenumbers.parse(raw, "NL")
    except phonenumbers.NumberParseException:
        return None


def _phone_key(raw: str | None) -> str:
    """E.164 where the number parses (default region NL), else its digits; '' for none."""
    if not raw or not raw.strip():
        return ""
    parsed = _parsed_phone(raw)
    if parsed is None:
        return "".join(ch for ch in raw if ch.isdigit())
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def _phone_search_terms(raw: str) -> list[str]:
    """The vendor's `search` matches text, so try the number as given, in E.164 and in national digits."""
    terms = [raw.strip()]
    parsed = _parsed_phone(raw)
    if parsed is not None:
        terms += [phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164),
                  "0" + str(parsed.national_number)]
    return list(dict.fromkeys(term for term in terms if term))
