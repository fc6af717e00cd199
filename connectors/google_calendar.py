"""Google Calendar connector: appointments as `event` records, through google-api-python-client.

Facts checked in google-api-python-client 2.202.0 (discovery.py, http.py, model.py, errors.py), google-auth
2.63 (oauth2/service_account.py, oauth2/_client.py) and the bundled discovery document calendar.v3.json ("DISC"):
- `build(..., client_options={"api_endpoint": X}, static_discovery=True)` uses X as the whole base URL
  (root URL + service path), so X ends in `/calendar/v3/`; the static document means no network at build time.
- `HttpRequest.execute(num_retries=N)` retries connection errors, 5xx, 429 and 403 with reason
  rateLimitExceeded/userRateLimitExceeded, sleeping `rand() * 2**attempt` seconds, with no bound in time; it
  ignores `Retry-After`. So each request here runs with `num_retries=0` and is retried by tenacity on the same
  failures (what `_execute` maps to `VendorUnavailable`), with the same full-jitter backoff, at most `retries`
  times and never past `retry_budget` seconds. Anything >= 300 raises `HttpError`, whose text contains the
  request URI (and so a `q=` e-mail): it is never chained into our errors.
- A 2xx body that is not JSON comes back from `execute()` as a plain string, not an exception; a 204 as `{}`.
  What proves a write (DISC): events.delete answers an empty body, events.patch the event as it now is. A
  delete answered otherwise, or a patch whose answer does not show the placeholders, fails. A body cut off on
  the wire is `http.client.IncompleteRead`, retried like a connection error.
- The service-account flow signs a JWT (aud = Google's token endpoint, whatever `token_uri` says) and posts it to
  `token_uri` as `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer`; a refused exchange raises `RefreshError`.
  With `subject` (domain-wide delegation) the JWT carries `sub` and the token acts as that user.
- Quota (developers.google.com/workspace/calendar/api/guides/quota): 600 requests per minute per user per
  project and 10,000 per minute per project, sliding window; over it Google answers 403 or 429 usageLimits.
  The client-side default below is that per-user figure; the per-project budget is shared by every process
  of the Cloud project, which one connector cannot see.
- Incremental sync (developers.google.com/workspace/calendar/api/guides/sync): the last page of a full list
  carries `nextSyncToken`; a list with `syncToken` returns what changed since, deleted events as `cancelled`
  tombstones, and may not set `showDeleted=false`; an expired token answers 410 Gone, and Google asks for a
  full sync then.
- Access (DISC `calendarId`, `Events.accessRole`, Google's errors guide): `primary` is the calendar of whoever the
  token acts for: without `subject` the service account's own, empty calendar, so it is refused. The owner's
  calendar is addressed by its id (usually the owner's address) and must be shared with the service account's
  e-mail at "Make changes to events" (role writer). Every events.list page says the role the token has; the first
  page of every read is checked: a purge needs writer or owner, a search reader or more, and free/busy
  (freeBusyReader: no details; what a Workspace admin's cap on external sharing gives) never passes as an empty
  calendar. A calendar that answers 404 is unreachable (not shared, wrong id): an error, never "nothing held".
  calendars.get would need a calendar-metadata scope this connector does not ask for (DISC scopes), so the
  role comes from the list it reads anyway: no extra call.
- A patch starts with events.get: an event that already holds the placeholders is not patched again (a rerun
  after a crash adds no second change, and mails no one).
- 404 on patch/delete also means "calendar not accessible" (errors guide), so it is "already gone" only when
  events.get confirms the event is absent (404/410, or a cancelled tombstone) and the calendar still answers
  with a role that may write; a share revoked since the read fails the action. 410 is "deleted before".
- DISC `Event.status`: on the organizer's calendar a deleted event keeps its details (title, notes, guests) so
  it can be restored, until Google purges it. `delete` therefore first patches away what holds personal data
  (title, notes, place, guests, attachments; `supportsAttachments=true` as DISC requires for attachments) and
  then deletes. A copy of another organizer's event refuses that patch (403 forbiddenForNonOrganizer) and is
  deleted as it is: the detail says Google may keep it in this calendar's trash.
- A correction (rectification) changes the person's guest entry (`attendees[]` email, displayName) with one
  events.patch naming the whole `attendees` list (patch replaces an array it names; DISC "supports patch
  semantics"), `sendUpdates=none`, after an events.get, on events this calendar organises (`organizer.self`:
  "the calendar on which this copy of the event appears", DISC) that have yet to end. A series is its master:
  correcting it corrects every instance. DISC `attendees`: "Service accounts need to use domain-wide delegation
  of authority to populate the attendee list" (RISKY without `subject`: a 403 is reported, not hidden).
- Recurring events (DISC `recurrence`, `events.instances`): a master's start/end are its FIRST instance; the
  RRULE/RDATE/EXDATE lines and the exceptions (moved or cancelled instances, events of their own with
  `recurringEventId`) are Google's to expand, so a series is dated from `events.instances`, one call per master
  (plus pages), never from a local parse of the rule.
- DISC `eventType`: birthday, fromGmail, focusTime, outOfOffice and workingLocation events are not appointments
  with a client; they are left alone (`Record.left_alone`) and never expanded.

Choices (no vendor fact decides them):
- `record_id` is `"<calendarId>/<eventId>"`: event ids are unique per calendar only, and they never contain "/".
- `singleEvents=False`: a recurring coaching series is ONE record (its master event, with the attendees of the
  whole series), so deleting or scrubbing it reaches every instance. Modified instances (exceptions) are records
  of their own, dated by their own time.
- `last_activity_at` is the end of the latest occurrence that has ended: an appointment is contact with the
  person once it has happened. An appointment that has not ended yet dates from its booking (`created`), and it
  sets `running_contract`; a future date is never reported as activity. `valid_until` is the end of the next
  occurrence. A series whose instances cannot be read (the vendor refuses, or answers without times) is left
  alone for review: no activity, no running contract, never "running for ever".
- Incremental reads expand only the series whose instances may have changed: masters in the sync feed, masters
  of exceptions in it, and masters with an instance that ended since the last read (found with one
  `singleEvents=true` list over the window since the earliest passed `valid_until`).
- All-day dates are midnight in the event's (else the calendar's) time zone, as Google compares them.
- The persons on an event are its attendees and a foreign organizer, without this calendar (`self` marks "the
  calendar on which this copy of the event appears", DISC), the configured calendar ids and `own_emails`,
  rooms/resources and Google's group calendars. An event with more than one such person is `shared` (a group
  session: its addresses do not make its guests one person).
- Search hits carry `fields["_match"]`: "email" when an attendee's address equals a searched one (ignoring case
  and surrounding whitespace), "text" when Google's free-text search found the event by a name, or by the
  address somewhere else (title, notes), but no attendee has the address: a hit for a human to review, never
  evidence on its own.

ASSUMED (no source settles it): instances come in start order (used only to stop paging once an instance that has
not ended is seen); patching a deleted event may answer 410 (then the trash keeps what it held: Google's own
purge is what remains); which fields a foreign organizer's copy refuses. Not handled: extendedProperties, source
and conferenceData are not scrubbed before a delete (clearing them needs their keys or the creator); private
events on a writerWithoutPrivateAccess share (refused as a role).
"""
from __future__ import annotations

import hashlib
import http.client
import json
import logging
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import date, datetime, time, timedelta, timezone
from types import MappingProxyType
from typing import Any, NamedTuple
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import httplib2
from google.auth import exceptions as auth_exceptions
from google.oauth2 import service_account
from google_auth_httplib2 import AuthorizedHttp
from googleapiclient.discovery import build
from googleapiclient.errors import HttpError
from googleapiclient.http import build_http
from tenacity import Retrying, before_sleep_log, retry_if_exception_type, wait_random_exponential

from connectors.base import ActionResult, Changes, FieldChange, Identifiers, Known, Outcome, Record, RecordRef
from connectors.matching import email_key
from connectors.http import (RateLimiter, VendorAuthError, VendorBadResponse, VendorError, VendorNotFound,
                             VendorRejected, VendorUnavailable, budget_stop, error_for_status, note_call, payload_id,
                             redact_query_strings, vendor_payloads)

log = logging.getLogger(__name__)

SYSTEM = "google_calendar"
RECORD_TYPE = "event"
DEFAULT_ENDPOINT = "https://www.googleapis.com/calendar/v3/"
SCOPES = ("https://www.googleapis.com/auth/calendar.events",)
#: 600 requests per minute per user per project (Google's default quota)
DEFAULT_RATE = (600, 60.0)
#: the largest page events.list and events.instances serve
PAGE_SIZE = 2500
#: seconds one request may spend on retries (Google's quota window is a minute; its 429 names no wait)
RETRY_BUDGET = 30.0
BACKOFF_MAX = 32.0  # the library's own largest sleep at its default of 5 retries
#: event ids (DISC Event.id: base32hex, 5-1024 characters; imported events' ids carry `_` and more); never "/"
EVENT_ID = re.compile(r"[A-Za-z0-9_\-.@]{1,1024}")

#: what `anonymise` writes into each field it may scrub; start and end are never touched
PLACEHOLDERS: Mapping[str, Any] = MappingProxyType(
    {"summary": "Afspraak", "description": "", "location": "", "attendees": (), "attachments": ()})
RECORD_FIELDS: dict[str, frozenset[str]] = {RECORD_TYPE: frozenset(PLACEHOLDERS)}

MATCH_KEY = "_match"
MATCH_EMAIL, MATCH_TEXT = "email", "text"

USAGE_LIMIT_REASONS = frozenset({"rateLimitExceeded", "userRateLimitExceeded", "quotaExceeded"})
ORGANIZER_ONLY = "forbiddenForNonOrganizer"  # 403 reason: the calendar holds a copy of someone else's event
NO_WRITE_ACCESS = frozenset({"requiredAccessLevel", "forbidden"})  # 403 reasons: the role may not change events
NOT_A_PERSON = re.compile(r"@(?:[\w.-]+\.)?calendar\.google\.com$")  # group, resource and import calendars

#: DISC Events.accessRole values that may do what a job needs
WRITE_ROLES = frozenset({"writer", "owner"})  # purge reads and actions
READ_ROLES = WRITE_ROLES | {"reader"}  # searches (access and erasure requests)
#: DISC eventType values that are no appointment with a client: left alone, with why (no personal data)
#: correctable field -> the guest entry's field (DISC EventAttendee)
ATTENDEE_CORRECTED = MappingProxyType({"email": "email", "name": "displayName"})
#: why an event keeps a guest's values, in the detail of a refused correction (no personal data)
REFUSALS = MappingProxyType({
    "past_event": "has ended: it stays on record as it happened",
    "not_organiser": "is organised by someone else, who alone can change its guests",
    "vendor_read_only": "is made by Google itself and cannot be modified"})
NOT_APPOINTMENTS: Mapping[str, str] = MappingProxyType({
    "birthday": "birthday event, not an appointment",
    "fromGmail": "event Gmail made from an e-mail, not an appointment",
    "focusTime": "focus-time event, not an appointment",
    "outOfOffice": "out-of-office event, not an appointment",
    "workingLocation": "working-location event, not an appointment",
})
UNDATABLE = "recurrence could not be evaluated; review it in Google Calendar"
#: what events.instances needs to send for dating a series (a partial response: no guests, no titles)
INSTANCE_FIELDS = "items(id,status,start,end),nextPageToken,timeZone"
SHARE_HOW = ('share that calendar with {account} at "Make changes to events" (Google Calendar: Settings and '
             'sharing, Share with specific people)')


def primary_refusal(account: str) -> str:
    """Why `calendar_id = "primary"` is refused for a service account without `subject`, and what to do."""
    return ('"primary" is the calendar of the account that signs in, here the service account\'s own calendar, '
            "which is empty: set calendar_id to the owner's calendar id (usually their address, e.g. "
            f'info@example.nl) and {SHARE_HOW.format(account=account)}; or use domain-wide delegation (subject)')


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


redact_query_strings("googleapiclient.http", "googleapiclient.discovery", "googleapiclient.model")


class CalendarAccessError(VendorAuthError):
    """The calendar cannot be reached, or the share's role does not allow what the job needs."""


class _PacedHttp:
    """An httplib2-like transport that asks the rate limiter before every request, retries included."""

    def __init__(self, http: Any, limiter: RateLimiter | None):
        self._http, self._limiter = http, limiter

    def request(self, *args: Any, **kwargs: Any) -> Any:
        if self._limiter is None:
            return self._http.request(*args, **kwargs)
        with self._limiter.slot():
            return self._http.request(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._http, name)


@vendor_payloads
class GoogleCalendarConnector:
    """Events of one or more Google calendars.

    Production passes `credentials_file` (a service-account JSON key; `subject` for domain-wide delegation);
    tests pass `http` (an `HttpMockSequence` or a plain `httplib2.Http`), which sends no credentials. The two
    exclude each other, as they do in the library. `calendar_ids` are the owners' calendar ids; "primary" with
    a service account is only accepted with `subject` (ValueError otherwise). `backoff_factor` scales the
    retry sleep (`rand() * 2**attempt` seconds at 1.0, as the library's; 0 retries without sleeping), within
    `retry_budget` seconds a request. `clock` gives
    "now" for deciding which appointments have happened. Not thread-safe: httplib2 connections are not.
    """

    system = SYSTEM

    def __init__(self, *, api_endpoint: str = DEFAULT_ENDPOINT, calendar_ids: Sequence[str] = ("primary",),
                 credentials_file: str | None = None, subject: str | None = None, own_emails: Sequence[str] = (),
                 http: Any = None, rate: tuple[int, float] | None = DEFAULT_RATE, retries: int = 5,
                 backoff_factor: float = 1.0, clock: Callable[[], datetime] = _utcnow,
                 retry_budget: float = RETRY_BUDGET):
        if (credentials_file is None) == (http is None):
            raise ValueError("give exactly one of credentials_file (service account) or http (tests)")
        self.calendar_ids = tuple(calendar_ids)
        self.retries, self.backoff_factor, self.retry_budget, self._clock = retries, backoff_factor, retry_budget, clock
        self._own = {email_key(e) for e in (*own_emails, *self.calendar_ids) if "@" in e}
        #: nextSyncToken of the last full read, per calendar id, for a later incremental sync
        self.sync_tokens: dict[str, str] = {}
        self._zones: dict[str, str] = {}  # calendar id -> its time zone, as its list pages say
        if http is not None:
            transport, self._account = http, "the service account"
        else:
            credentials = service_account.Credentials.from_service_account_file(credentials_file, scopes=list(SCOPES))
            self._account = credentials.service_account_email
            if subject:
                credentials = credentials.with_subject(subject)
                self._account = f"{subject} (through {self._account})"
            elif "primary" in self.calendar_ids:
                raise ValueError(primary_refusal(self._account))
            transport = AuthorizedHttp(credentials, http=build_http())
        limiter = RateLimiter(*rate) if rate else None
        service = build("calendar", "v3", http=_PacedHttp(transport, limiter), static_discovery=True,
                        cache_discovery=False, client_options={"api_endpoint": api_endpoint})
        self._events = service.events()

    # -- the protocol ---------------------------------------------------------------------------------
    def records(self, since: datetime | None = None) -> Iterator[Record]:
        """Every event of every calendar, or those changed since `since` (events.list `updatedMin`)."""
        params: dict[str, Any] = {}
        if since is not None:
            params["updatedMin"] = _as_utc(since).isoformat()
        now = self._clock()
        for calendar_id in self.calendar_ids:
            for event in self._list(calendar_id, need=WRITE_ROLES, remember_sync=since is None, **params):
                yield self._record(calendar_id, event, now)

    def changes(self, cursor: Mapping[str, Any] | None, known: Known) -> Changes:
        """A full read without a cursor; else per calendar what changed since its sync token.

        Cancelled tombstones are deletions. A series is dated again when it changed, when one of its exceptions
        (a moved or cancelled instance) did, or when one of its instances ended since the last read; single
        events that ended since are read again too (`valid_until` passed: time alone changed their last activity
        and running contract). A sync token Google no longer accepts (410 Gone) falls back to a full read, as
        Google asks.
        """
        now = self._clock()
        tokens = dict(cursor.get("sync_tokens", {})) if cursor else {}
        if set(tokens) != set(self.calendar_ids):
            return self._full_changes(now)
        try:
            return self._changes_since(tokens, known, now)
        except VendorRejected as exc:
            if exc.status != 410:
                raise
            return self._full_changes(now)

    def _full_changes(self, now: datetime) -> Changes:
        tokens: dict[str, str] = {}
        records = [self._record(calendar_id, item, now) for calendar_id in self.calendar_ids
                   for item in self._items(calendar_id, need=WRITE_ROLES, sync_tokens=tokens)
                   if item.get("status") != "cancelled"]
        return Changes(records, cursor={"sync_tokens": tokens}, full=True)

    def _changes_since(self, tokens: Mapping[str, str], known: Known, now: datetime) -> Changes:
        due = known.due(now)
        records: list[Record] = []
        gone: list[RecordRef] = []
        next_tokens: dict[str, str] = {}
        for calendar_id, token in tokens.items():
            done: set[str] = set()  # event ids read (or gone) this night
            feed = list(self._items(calendar_id, need=WRITE_ROLES, sync_tokens=next_tokens, syncToken=token))
            # masters whose instances may have changed: those with a moved or cancelled instance in the feed
            series = {item["recurringEventId"] for item in feed if item.get("recurringEventId")}
            for item in feed:
                done.add(item["id"])
                if item.get("status") == "cancelled":
                    gone.append(_ref(calendar_id, item["id"]))
                else:
                    records.append(self._record(calendar_id, item, now,
                                                known=None if item["id"] in series else known))
            if due is not None:  # what ended since: timeMin bounds the end, exclusively; instances expanded
                ended = self._items(calendar_id, need=WRITE_ROLES, single_events=True, showDeleted=False,
                                    timeMin=_rfc3339(due - timedelta(seconds=1)), timeMax=_rfc3339(now))
                for item in ended:
                    parent = item.get("recurringEventId")
                    if item.get("status") == "cancelled" or item.get("eventType") in NOT_APPOINTMENTS:
                        continue
                    if parent:
                        series.add(parent)
                    if item["id"] in done or (parent and _ref(calendar_id, item["id"]) not in known):
                        continue  # an unmodified instance is no record: its series is
                    done.add(item["id"])
                    records.append(self._record(calendar_id, item, now))
            for master_id in sorted(series - done):
                master = self._get(calendar_id, master_id)
                if master is None or master.get("status") == "cancelled":
                    gone.append(_ref(calendar_id, master_id))
                else:
                    records.append(self._record(calendar_id, master, now))
        return Changes(records, cursor={"sync_tokens": next_tokens}, gone=gone)

    def search(self, identifiers: Identifiers) -> Iterator[Record]:
        """Events found by Google's free-text search (`q`), one query per e-mail and per name and calendar.

        Each hit is marked in `fields["_match"]` (see the module docstring); an event is reported once. A calendar
        this account cannot read in detail (not shared, free/busy only) is an error, never an empty answer.
        """
        emails = {email_key(e) for e in identifiers.emails if e.strip()}
        queries = [*sorted(emails), *(n.strip() for n in identifiers.names if n.strip())]
        now = self._clock()
        for calendar_id in self.calendar_ids:
            reported: set[str] = set()
            for query in queries:
                for event in self._list(calendar_id, need=READ_ROLES, q=query):
                    if event["id"] in reported:
                        continue
                    reported.add(event["id"])
                    found_by_email = bool(emails & {email_key(e) for e, _ in self._persons(event)})
                    yield self._record(calendar_id, event, now, match=MATCH_EMAIL if found_by_email else MATCH_TEXT)

    def read(self, ref: RecordRef, parent: RecordRef | None = None) -> Record | None:
        """One event by its id (events.get), dated as a listing dates it; None when Google has it no more (404,
        410, or a cancelled tombstone)."""
        calendar_id, event_id = _split(ref)
        event = self._get(calendar_id, event_id)
        if event is None or event.get("status") == "cancelled":
            return None
        return self._record(calendar_id, event, self._clock())

    def delete(self, ref: RecordRef) -> ActionResult:
        """Scrub, then delete the event, without mailing its guests (`sendUpdates=none`); a series goes whole.

        The scrub (one patch with every `PLACEHOLDERS` field) empties what Google's trash would keep of an event
        this calendar organises. A rerun after a kill between the two calls patches again (harmless) and deletes.
        """
        calendar_id, event_id = _split(ref)
        foreign = False
        try:
            gone = self._scrub(ref, PLACEHOLDERS)
        except VendorRejected as exc:
            if exc.status != 403:
                raise
            gone, foreign = None, True  # a copy of another organizer's event: only they may change it
        gone = gone or self._write(ref, self._events.delete(calendarId=calendar_id, eventId=event_id,
                                                            sendUpdates="none"), body=False)
        if gone:
            return gone
        if foreign:
            return ActionResult(Outcome.DONE, f"event {ref.record_id} is a copy of another organizer's event: "
                                              "deleted unscrubbed (only the organizer may change it); Google keeps "
                                              "it in this calendar's trash until it purges it")
        return ActionResult(Outcome.DONE)

    def anonymise(self, ref: RecordRef, fields: Sequence[str]) -> ActionResult:
        """Scrub the named fields with `PLACEHOLDERS` (title "Afspraak", notes and place "", no guests or files).

        One events.patch with `sendUpdates=none`; start and end stay, so the time slot remains in the owner's
        agenda. A copy of another organizer's event cannot be changed (403 forbiddenForNonOrganizer): that is
        NOT_SUPPORTED, and deleting it from this calendar is what remains. Raises ValueError for a field not in
        `RECORD_FIELDS` before any call.
        """
        unknown = sorted(set(fields) - RECORD_FIELDS[RECORD_TYPE])
        if unknown:
            raise ValueError(f"{SYSTEM} events cannot anonymise {unknown}; allowed: {sorted(PLACEHOLDERS)}")
        try:
            gone = self._scrub(ref, {k: v for k, v in PLACEHOLDERS.items() if k in fields})
        except VendorRejected as exc:
            if exc.status != 403:
                raise
            return ActionResult(Outcome.NOT_SUPPORTED, f"event {ref.record_id} belongs to another organizer, "
                                                       "who alone can change it: delete it from this calendar")
        return gone or ActionResult(Outcome.DONE)

    def _scrub(self, ref: RecordRef, placeholders: Mapping[str, Any]) -> ActionResult | None:
        """Patch `placeholders` into the event unless events.get shows them there already; None when the event
        holds them (the patch's answer must show it), the outcome when the event is gone."""
        calendar_id, event_id = _split(ref)
        held = self._get(calendar_id, event_id)
        if held is not None and held.get("status") != "cancelled" and _holds(held, placeholders):
            return None
        extra = {"supportsAttachments": True} if "attachments" in placeholders else {}
        request = self._events.patch(calendarId=calendar_id, eventId=event_id, sendUpdates="none",
                                     body=_body(placeholders), **extra)
        return self._write(ref, request, proof=lambda answer: answer.get("id") == event_id
                           and _holds(answer, placeholders))

    def _write(self, ref: RecordRef, request: Any, *, body: bool = True,
               proof: Callable[[Any], bool] = lambda answer: not answer) -> ActionResult | None:
        """Run a patch or delete of `ref`: None when it went through (`proof` holds for the answer; a delete's is
        empty), the outcome when the event is gone (410, or a 404 that events.get confirms); any other error is
        raised, and an answer that proves nothing is a VendorBadResponse."""
        try:
            answer = self._execute(request, body=body)
        except VendorError as exc:
            if exc.status == 410:
                return _gone(ref, 410)
            if exc.status == 404:
                return self._confirm_gone(ref, exc)
            raise
        if not proof(answer):
            method, path = _where(request)
            raise VendorBadResponse(SYSTEM, method, path, 200, "the answer does not confirm the change; nothing is "
                                                               "recorded as done")
        return None

    # -- rectification --------------------------------------------------------------------------------
    def plan_correction(self, record: Record, new: Mapping[str, str]) -> list[FieldChange]:
        """The person's guest entry (`attendees[]` e-mail and displayName, found by the person's addresses on the
        record) on an event this calendar organises (`organizer.self`, DISC) that has yet to end. Refused: an
        appointment that has ended, "past_event" (the record of what happened); another organizer's event,
        "not_organiser" (only they may change its guests, GERR forbiddenForNonOrganizer); an event Google makes
        itself (birthday, fromGmail, ...: DISC `eventType` "cannot be modified"), "vendor_read_only"."""
        _split(record.ref)
        event = record.fields
        theirs = {email_key(e) for e in record.emails} - {""}
        entry = next((party for party in [*event.get("attendees", ()), event.get("organizer") or {}]
                      if email_key(party.get("email")) in theirs), None)
        if entry is None:
            return []
        refused = ("vendor_read_only" if event.get("eventType") in NOT_APPOINTMENTS
                   else "not_organiser" if not (event.get("organizer") or {}).get("self")
                   else "past_event" if record.left_alone is None and not record.running_contract else None)
        return [FieldChange(record.ref, name, f"attendees[].{ATTENDEE_CORRECTED[name]}",
                            str(entry[ATTENDEE_CORRECTED[name]]).strip(), value, refused)
                for name, value in new.items()
                if name in ATTENDEE_CORRECTED and str(entry.get(ATTENDEE_CORRECTED[name]) or "").strip()]

    def correct(self, changes: Sequence[FieldChange]) -> ActionResult:
        """events.get, then events.patch with the whole `attendees` list, the person's entry corrected (patch
        replaces an array it names), `sendUpdates=none` (no guest is mailed); the answer must show the entry.

        The person's entry is found by the old or new address (else the old or new name): a rerun finds it
        corrected and sends nothing. An event that ended since the plan, or that this calendar does not
        organise, is NOT_SUPPORTED; so is a new address that is another guest's already. Requests: a get, and a
        patch unless the entry shows the new values.
        """
        refs = {change.ref for change in changes}
        if len(refs) != 1:
            raise ValueError("correct() takes the changes of one record")
        ref = refs.pop()
        calendar_id, event_id = _split(ref)
        wanted = {ATTENDEE_CORRECTED[c.field]: c for c in changes if c.refused is None and c.new is not None}
        if not wanted:
            return ActionResult(Outcome.NOT_SUPPORTED, f"event {ref.record_id} keeps every value asked for")
        event = self._get(calendar_id, event_id)
        if event is None or event.get("status") == "cancelled":
            return _gone(ref, 404)
        refusal = _correction_refusal(event, self._clock(), self._zone(calendar_id))
        if refusal:
            return ActionResult(Outcome.NOT_SUPPORTED, f"{refusal}: event {ref.record_id} {REFUSALS[refusal]}")
        attendees = [dict(party) for party in event.get("attendees", ())]
        key = "email" if "email" in wanted else "displayName"
        olds = {_attendee_key(key, wanted[key].current), _attendee_key(key, wanted[key].new)}
        found = [index for index, party in enumerate(attendees) if _attendee_key(key, party.get(key)) in olds]
        if len(found) != 1:
            return ActionResult(Outcome.NOT_SUPPORTED, f"event {ref.record_id}: "
                                + ("the person is no longer a guest" if not found else
                                   "the old and the new value are both on the guest list (two guests); merge them "
                                   "in Google Calendar") + "; nothing was changed")
        entry = attendees[found[0]]
        corrected = {**entry, **{part: change.new for part, change in wanted.items()}}
        if all(_attendee_key(part, entry.get(part)) == _attendee_key(part, value)
               for part, value in corrected.items() if part in wanted):
            return ActionResult(Outcome.DONE, f"event {ref.record_id}: the guest entry already shows "
                                              f"{', '.join(sorted(wanted))}; nothing sent")
        attendees[found[0]] = corrected
        request = self._events.patch(calendarId=calendar_id, eventId=event_id, sendUpdates="none",
                                     body={"attendees": attendees})
        try:
            gone = self._write(ref, request, proof=lambda answer: answer.get("id") == event_id and any(
                all(_attendee_key(part, party.get(part)) == _attendee_key(part, corrected[part]) for part in wanted)
                for party in answer.get("attendees", ())))
        except VendorRejected as exc:
            if exc.status != 403:
                raise
            return ActionResult(Outcome.NOT_SUPPORTED, f"not_organiser: event {ref.record_id} "
                                                       f"{REFUSALS['not_organiser']}")
        return gone or ActionResult(Outcome.DONE, f"event {ref.record_id}: corrected the guest's "
                                                  f"{', '.join(sorted(wanted))} (sendUpdates=none; answer checked)")

    # -- calls ----------------------------------------------------------------------------------------
    def _list(self, calendar_id: str, *, need: frozenset[str], remember_sync: bool = False,
              **params: Any) -> Iterator[dict[str, Any]]:
        """Live events of one calendar (updatedMin lists deleted ones whatever showDeleted says)."""
        items = self._items(calendar_id, need=need, sync_tokens=self.sync_tokens if remember_sync else None,
                            showDeleted=False, **params)
        return (item for item in items if item.get("status") != "cancelled")

    def _items(self, calendar_id: str, *, need: frozenset[str], sync_tokens: dict[str, str] | None = None,
               single_events: bool = False, **params: Any) -> Iterator[dict[str, Any]]:
        """Every item events.list returns, page by page (`pageToken`), the last page's sync token kept in
        `sync_tokens`; the first page's access role checked against `need`; a repeated page token is a vendor bug."""
        request = self._events.list(calendarId=calendar_id, maxResults=PAGE_SIZE, singleEvents=single_events,
                                    **params)
        tokens: set[str] = set()
        first = True
        while request is not None:
            method, path = _where(request)
            page = self._page(calendar_id, request)
            if first:
                self._check_role(calendar_id, method, path, page.get("accessRole"), need)
                first = False
            items = page.get("items", [])
            if not isinstance(items, list):
                raise VendorBadResponse(SYSTEM, method, path, 200, "response does not have the expected shape")
            for item in items:
                payload_id(item, EVENT_ID)
            yield from items
            token = page.get("nextPageToken")
            if token in tokens:
                raise VendorBadResponse(SYSTEM, method, path, 200, "pagination returned the same page twice")
            tokens.add(token)
            if sync_tokens is not None and "nextSyncToken" in page:
                sync_tokens[calendar_id] = page["nextSyncToken"]
            request = self._events.list_next(request, page)

    def _page(self, calendar_id: str, request: Any) -> dict[str, Any]:
        """One events.list page; 404 means the calendar is not there for this account (errors guide)."""
        try:
            page = self._execute(request)
        except VendorNotFound as exc:
            raise CalendarAccessError(SYSTEM, exc.method, exc.path, 404, (
                f"calendar {calendar_id} was not found or is not shared with {self._account}: check that "
                "calendar_id is the owner's calendar id (usually their address), and "
                + SHARE_HOW.format(account=self._account))) from None
        if isinstance(page.get("timeZone"), str):
            self._zones[calendar_id] = page["timeZone"]
        return page

    def _check_role(self, calendar_id: str, method: str, path: str, role: Any, need: frozenset[str]) -> None:
        """The share's role (DISC Events.accessRole) must allow the job: else a clear error, never a guess."""
        if role in need:
            return
        share = SHARE_HOW.format(account=self._account)
        if role == "freeBusyReader":
            why = ("as free/busy only: event details are hidden, so nothing about anyone can be read from it; "
                   f"{share} (in Google Workspace an administrator may limit sharing outside the organisation to "
                   "free/busy information: ask them to allow more for this address)")
        elif role == "reader":
            why = f'read-only ("See all event details"): deleting and anonymising need more; {share}'
        elif role == "writerWithoutPrivateAccess":
            why = f"without access to private events, whose details stay hidden; {share}"
        elif role is None:
            why = f"(its answer names no access role, so what it holds cannot be trusted); {share}"
        else:
            why = f"with access role {role!r}, which allows no reading of events; {share}"
        raise CalendarAccessError(SYSTEM, method, path, None, f"calendar {calendar_id} is shared with "
                                                              f"{self._account} {why}")

    def _get(self, calendar_id: str, event_id: str) -> dict[str, Any] | None:
        """One event (deleted ones as tombstones); None when Google has none under that id (404 or 410)."""
        try:
            return self._execute(self._events.get(calendarId=calendar_id, eventId=event_id))
        except VendorError as exc:
            if exc.status in (404, 410):
                return None
            raise

    def _confirm_gone(self, ref: RecordRef, failed: VendorError) -> ActionResult:
        """A 404 on patch/delete: "already gone" only when the event is confirmed absent (events.get answers
        404/410 or a cancelled tombstone) and the calendar still answers with a role that may write."""
        calendar_id, event_id = _split(ref)
        try:
            event = self._execute(self._events.get(calendarId=calendar_id, eventId=event_id))
        except VendorError as exc:
            if exc.status == 410:  # "deleted": the calendar answered about this very event
                return _gone(ref, 410)
            if exc.status != 404:
                raise
            event = None
        if event is not None and event.get("status") != "cancelled":
            raise VendorRejected(SYSTEM, failed.method, failed.path, 404, (
                "Google refused to change an event it still shows; nothing was changed: check that "
                f"{self._account} may change this calendar ({SHARE_HOW.format(account=self._account)})"))
        if event is None:  # the calendar itself must answer, with a role that could have written
            request = self._events.list(calendarId=calendar_id, maxResults=1, showDeleted=False)
            method, path = _where(request)
            self._check_role(calendar_id, method, path, self._page(calendar_id, request).get("accessRole"),
                             WRITE_ROLES)
        return _gone(ref, 404)

    def _execute(self, request: Any, *, body: bool = True) -> Any:
        """Run one API request, retried on `VendorUnavailable` within `retries` and `retry_budget`; typed errors
        that carry no URL query or body."""
        retrying = Retrying(stop=budget_stop(self.retries, self.retry_budget),
                            wait=wait_random_exponential(multiplier=self.backoff_factor, max=BACKOFF_MAX),
                            retry=retry_if_exception_type(VendorUnavailable), reraise=True,
                            before_sleep=before_sleep_log(log, logging.WARNING))
        return retrying(self._execute_once, request, body=body)

    def _execute_once(self, request: Any, *, body: bool) -> Any:
        method, path = _where(request)
        note_call(method, path)
        try:
            result = request.execute(num_retries=0)
        except HttpError as exc:
            raise self._error_for(method, path, exc) from None
        except auth_exceptions.RefreshError as exc:
            if exc.retryable:
                raise VendorUnavailable(SYSTEM, method, path, None,
                                        "token endpoint unavailable; try again later") from None
            raise VendorAuthError(SYSTEM, method, path, None,
                                  "service-account token refused; check credentials_file and the scope") from None
        except (auth_exceptions.TransportError, httplib2.HttpLib2Error, OSError):
            raise VendorUnavailable(SYSTEM, method, path, None, "cannot reach the Calendar API") from None
        except http.client.HTTPException:  # IncompleteRead: the body was cut off on the wire
            raise VendorUnavailable(SYSTEM, method, path, None, "the response was cut off") from None
        if body and not isinstance(result, dict):
            raise VendorBadResponse(SYSTEM, method, path, 200, "response is not a JSON object")
        return result

    def _error_for(self, method: str, path: str, exc: HttpError) -> VendorError:
        status, reason = exc.status_code, _reason(exc.content)
        if status == 403 and reason in USAGE_LIMIT_REASONS:
            return VendorUnavailable(SYSTEM, method, path, status, "Calendar API quota exhausted after all retries")
        if status == 403 and reason == ORGANIZER_ONLY:
            return VendorRejected(SYSTEM, method, path, status, "only the event's organizer may change it")
        if status == 403 and reason in NO_WRITE_ACCESS:
            return CalendarAccessError(SYSTEM, method, path, status, (
                f"{self._account} may not change events on this calendar: "
                + SHARE_HOW.format(account=self._account)))
        return error_for_status(SYSTEM, method, path, status)

    # -- records --------------------------------------------------------------------------------------
    def _persons(self, event: Mapping[str, Any]) -> list[tuple[str, str | None]]:
        """(e-mail as the vendor has it, display name) of everyone on the event but the owner's side."""
        seen: set[str] = set()
        persons = []
        for party in [*event.get("attendees", ()), event.get("organizer") or {}]:
            email = party.get("email")
            key = email_key(email) if email else ""
            if (not key or party.get("self") or party.get("resource") or key in self._own or key in seen
                    or NOT_A_PERSON.search(key)):
                continue
            seen.add(key)
            persons.append((email, party.get("displayName")))
        return persons

    def _record(self, calendar_id: str, event: dict[str, Any], now: datetime, match: str | None = None,
                known: Known | None = None) -> Record:
        """The event as a record; a series is dated from its instances, unless `known` holds what the last read
        concluded for it and neither its timing (start, end, recurrence) nor time itself has changed that since."""
        persons = self._persons(event)
        first, last = _split_name(next((name for _, name in persons if name), None))
        created = _parse_time(event.get("created"))
        left_alone = NOT_APPOINTMENTS.get(event.get("eventType") or "default")
        timing = _Timing(None, False)
        version = event.get("etag")
        if left_alone is None:
            zone = self._zone(calendar_id)
            if event.get("recurrence"):
                version = f"{version} timing:{_timing_fingerprint(event)}"
                found = _timing_seen(known, _ref(calendar_id, event["id"]), version, now) if known else None
                found = found or self._series_timing(calendar_id, event, now)
            else:
                found = _timing(event, now, zone)
            if found is None:
                left_alone = UNDATABLE
            else:
                timing = found
        fields = dict(event) if match is None else {**event, MATCH_KEY: match}
        return Record(SYSTEM, RECORD_TYPE, f"{calendar_id}/{payload_id(event, EVENT_ID)}", emails=tuple(e for e, _ in persons),
                      first_name=first, last_name=last, fields=fields, created_at=created,
                      updated_at=_parse_time(event.get("updated")),
                      last_activity_at=None if left_alone else timing.last_ended or created,
                      running_contract=timing.running, shared=len(persons) > 1, version=version,
                      valid_until=timing.next_end, left_alone=left_alone)

    def _series_timing(self, calendar_id: str, event: Mapping[str, Any], now: datetime) -> _Timing | None:
        """What a series' real instances say as of `now` (events.instances: Google's own expansion of the rule,
        its exceptions and cancellations); None when they cannot be read."""
        request = self._events.instances(calendarId=calendar_id, eventId=event["id"], maxResults=PAGE_SIZE,
                                         showDeleted=False, fields=INSTANCE_FIELDS)
        last_ended: datetime | None = None
        upcoming: list[datetime] = []
        tokens: set[str] = set()
        while request is not None:
            method, path = _where(request)
            try:
                page = self._execute(request)
            except (VendorRejected, VendorNotFound):
                return None  # the vendor cannot expand it (or it went meanwhile): for a human to look at
            items = page.get("items", [])
            if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
                return None
            zone = self._zone(calendar_id, page.get("timeZone"))
            for item in items:
                if item.get("status") == "cancelled":
                    continue
                start, end = _moment(item.get("start"), zone), _moment(item.get("end"), zone)
                if start is None or end is None:
                    return None
                if end <= now:
                    last_ended = end if last_ended is None else max(last_ended, end)
                else:
                    upcoming.append(end)
            token = page.get("nextPageToken")
            if upcoming or not token:  # instances come in start order: what follows is later still
                break
            if token in tokens:
                raise VendorBadResponse(SYSTEM, method, path, 200, "pagination returned the same page twice")
            tokens.add(token)
            request = self._events.instances_next(request, page)
        return _Timing(last_ended, bool(upcoming), min(upcoming, default=None))

    def _zone(self, calendar_id: str, name: str | None = None) -> Any:
        return _zone(name or self._zones.get(calendar_id))


# -- helpers ----------------------------------------------------------------------------------------------
def _body(values: Mapping[str, Any]) -> dict[str, Any]:
    return {name: list(value) if isinstance(value, tuple) else value for name, value in values.items()}


def _holds(event: Mapping[str, Any], placeholders: Mapping[str, Any]) -> bool:
    """Whether the event shows every placeholder (a field Google leaves out when empty counts as empty)."""
    return all((event.get(name) or type(value)()) == value for name, value in _body(placeholders).items())


def _correction_refusal(event: Mapping[str, Any], now: datetime, zone: Any) -> str | None:
    """Why an event read just now may not have its guest entry corrected (a code of `REFUSALS`), or None."""
    if event.get("eventType") in NOT_APPOINTMENTS:
        return "vendor_read_only"
    if not (event.get("organizer") or {}).get("self"):
        return "not_organiser"
    end = None if event.get("recurrence") else _moment(event.get("end"), zone)
    return "past_event" if end is not None and end <= now else None


def _attendee_key(part: str, value: Any) -> str:
    """How a guest entry's e-mail (ignoring case) or name is compared."""
    text = str(value or "").strip()
    return email_key(text) if part == "email" else text


def _gone(ref: RecordRef, status: int) -> ActionResult:
    return ActionResult(Outcome.ALREADY_GONE, f"event {ref.record_id} is gone (HTTP {status})")


def _ref(calendar_id: str, event_id: str) -> RecordRef:
    return RecordRef(SYSTEM, RECORD_TYPE, f"{calendar_id}/{event_id}")


def _where(request: Any) -> tuple[str, str]:
    """Method and URL path of a request: never its query string, which can carry an e-mail."""
    return request.method, urlsplit(request.uri).path


def _reason(content: bytes) -> str | None:
    """The first `errors[].reason` of Google's error envelope, if there is one."""
    try:
        return json.loads(content)["error"]["errors"][0]["reason"]
    except (ValueError, KeyError, IndexError, TypeError):
        return None


def _split(ref: RecordRef) -> tuple[str, str]:
    calendar_id, _, event_id = ref.record_id.rpartition("/")
    if ref.system != SYSTEM or ref.record_type != RECORD_TYPE or not calendar_id or not event_id:
        raise ValueError(f"not a {SYSTEM} event reference: {ref}")
    return calendar_id, event_id


def _split_name(display_name: str | None) -> tuple[str | None, str | None]:
    """"Jan de Vries" -> ("Jan", "de Vries"): Dutch surnames keep their prefix."""
    if not display_name or not display_name.strip():
        return None, None
    first, _, last = display_name.strip().partition(" ")
    return first, last.strip() or None


def _as_utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)


def _rfc3339(moment: datetime) -> str:
    return _as_utc(moment).isoformat()


def _parse_time(text: str | None) -> datetime | None:
    """An RFC 3339 timestamp as aware UTC (Python 3.10's fromisoformat does not read "Z")."""
    if not text:
        return None
    return _as_utc(datetime.fromisoformat(text.replace("Z", "+00:00")))


def _moment(when: Mapping[str, Any] | None, zone: Any = timezone.utc) -> datetime | None:
    """An event's start or end: `dateTime`, or an all-day `date` as midnight in its (else the calendar's) zone."""
    if not isinstance(when, Mapping):
        return None
    try:
        if when.get("dateTime"):
            return _parse_time(when["dateTime"])
        if when.get("date"):
            own = _zone(when["timeZone"]) if when.get("timeZone") else zone
            return _as_utc(datetime.combine(date.fromisoformat(when["date"]), time(0), tzinfo=own))
    except (TypeError, ValueError):
        return None
    return None


class _Timing(NamedTuple):
    last_ended: datetime | None  # end of the latest occurrence that has ended
    running: bool  # an occurrence has yet to end
    next_end: datetime | None = None  # end of the next occurrence, when that changes the two above


def _timing_fingerprint(event: Mapping[str, Any]) -> str:
    """What a series' instances follow from in the master itself: start, end and recurrence lines."""
    timing = json.dumps([event.get("start"), event.get("end"), event.get("recurrence")], sort_keys=True)
    return hashlib.sha256(timing.encode()).hexdigest()[:16]


def _timing_seen(known: Known, ref: RecordRef, version: str, now: datetime) -> _Timing | None:
    """The timing the last read worked out for a series, when it still holds: the same start, end and recurrence
    (its version's fingerprint), and its next instance not yet ended. A series changed only in title or guests
    (an anonymisation, say) is not expanded again."""
    seen = known.previous(ref)
    before = known.version(ref) or ""
    if seen is None or seen.left_alone or before.partition(" timing:")[2] != version.partition(" timing:")[2]:
        return None
    if seen.valid_until is not None and seen.valid_until <= now:
        return None
    return _Timing(seen.last_activity_at, seen.running_contract, seen.valid_until)


def _timing(event: Mapping[str, Any], now: datetime, zone: Any) -> _Timing:
    """What a single event (or a modified instance) says as of `now`."""
    start, end = _moment(event.get("start"), zone), _moment(event.get("end"), zone)
    if start is None or end is None:
        return _Timing(None, False)
    return _Timing(end, False) if end <= now else _Timing(None, True, end)


def _zone(name: str | None) -> Any:
    try:
        return ZoneInfo(name) if name else timezone.utc
    except (ZoneInfoNotFoundError, ValueError):
        return timezone.utc


# -- what a person reads ---------------------------------------------------------------------

#: labels (nl, en) of the fields a person's record shows in the access report (paths as `vergeet.access` walks
#: the record, `[]` a list position, `{n}` that position from 1). Fields not named here (ids, etags, sequence,
#: the owner's own addresses, links, reminders) stay out of the HTML; the JSON export keeps them all.
FIELD_LABELS: dict[str, tuple[str, str]] = {
    "summary": ("Titel", "Title"), "description": ("Beschrijving", "Description"), "location": ("Locatie", "Location"),
    "start.dateTime": ("Begint", "Starts"), "start.date": ("Datum", "Date"),
    "end.dateTime": ("Eindigt", "Ends"), "end.date": ("Einddatum", "End date"),
    "status": ("Stand", "Status"), "created": ("Aangemaakt", "Created"),
    "attendees[].email": ("Deelnemer {n}: e-mailadres", "Attendee {n}: e-mail address"),
    "attendees[].displayName": ("Deelnemer {n}: naam", "Attendee {n}: name"),
    "attendees[].responseStatus": ("Deelnemer {n}: antwoord", "Attendee {n}: response"),
    "attendees[].comment": ("Deelnemer {n}: opmerking", "Attendee {n}: comment"),
    "recurrence[]": ("Herhaling", "Repeats"),
    "attendees": ("Deelnemers", "Attendees"), "attachments": ("Bijlagen", "Attachments"),
}
#: an attendee entry with `self` set is this calendar, the business itself (DISC `Event.attendees[].self`): not
#: the person's data, so the report does not show it among their fields
OWN_ENTRIES = ("attendees[].self",)
#: vendor codes in words (nl, en)
VALUE_LABELS: dict[str, dict[str, tuple[str, str]]] = {
    "status": {"confirmed": ("bevestigd", "confirmed"), "tentative": ("onder voorbehoud", "tentative"),
               "cancelled": ("geannuleerd", "cancelled")},
    "attendees[].responseStatus": {"accepted": ("geaccepteerd", "accepted"), "declined": ("afgeslagen", "declined"),
                                   "tentative": ("misschien", "maybe"),
                                   "needsAction": ("nog niet geantwoord", "not answered yet")},
}


def web_link(record: Record) -> str | None:
    """The event in Google Calendar's web app: its `htmlLink` (DISC `Event.htmlLink`)."""
    return record.fields.get("htmlLink")
