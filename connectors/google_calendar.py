"""Google Calendar connector: appointments as `event` records, through google-api-python-client.

Facts checked in google-api-python-client 2.202.0 (discovery.py, http.py, model.py, errors.py), google-auth
2.63 (oauth2/service_account.py, oauth2/_client.py) and the bundled discovery document calendar.v3.json:
- `build(..., client_options={"api_endpoint": X}, static_discovery=True)` uses X as the whole base URL
  (root URL + service path), so X ends in `/calendar/v3/`; the static document means no network at build time.
- `HttpRequest.execute(num_retries=N)` retries connection errors, 5xx, 429 and 403 with reason
  rateLimitExceeded/userRateLimitExceeded, sleeping `rand() * 2**attempt` seconds; it ignores `Retry-After`.
  Anything else >= 300 raises `HttpError`, whose text contains the request URI (and so a `q=` e-mail): it is
  never chained into our errors, and the library's retry warnings are logged with query strings redacted.
- A 2xx body that is not JSON comes back from `execute()` as a plain string, not an exception.
- The service-account flow signs a JWT (aud = Google's token endpoint, whatever `token_uri` says) and posts it to
  `token_uri` as `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer`; a refused exchange raises `RefreshError`.
- Quota (developers.google.com/workspace/calendar/api/guides/quota): 600 requests per minute per user per
  project and 10,000 per minute per project, sliding window; over it Google answers 403 or 429 usageLimits.
  The client-side default below is that per-user figure; the per-project budget is shared by every process
  of the Cloud project, which one connector cannot see.
- Incremental sync (developers.google.com/workspace/calendar/api/guides/sync): the last page of a full list
  carries `nextSyncToken`; a list with `syncToken` returns what changed since, deleted events as `cancelled`
  tombstones, and may not set `showDeleted=false`; an expired token answers 410 Gone, and Google asks for a
  full sync then.

Choices (no vendor fact decides them):
- `record_id` is `"<calendarId>/<eventId>"`: event ids are unique per calendar only, and they never contain "/".
- `singleEvents=False`: a recurring coaching series is ONE record (its master event, with the attendees of the
  whole series), so deleting or scrubbing it reaches every instance. Expanded instances would each be a separate
  record whose deletion only cancels that instance and leaves the series, and the person on it, in place. The
  series' dates come from evaluating its RRULE (python-dateutil). Modified instances are records of their own.
- `last_activity_at` is the end of the latest occurrence that has ended: an appointment is contact with the
  person once it has happened. An appointment that has not ended yet dates from its booking (`created`), and it
  sets `running_contract`; a future date is never reported as activity. A recurrence rule that cannot be
  evaluated counts as still running (the safe side: nothing is purged on a guess).
- The persons on an event are its attendees and a foreign organizer, without the calendar's owner (`self`),
  the configured calendar ids and `own_emails`, rooms/resources and Google's group calendars. With a service
  account that reads a shared calendar, Google marks the service account as `self`, not the owner: list the
  owner's addresses in `own_emails` (or use domain-wide delegation via `subject`). An event with more than one
  such person is `shared` (a group session: its addresses do not make its guests one person).
- Search hits carry `fields["_match"]`: "email" when an attendee's address equals a searched one (ignoring case
  and surrounding whitespace), "text" when Google's free-text search found the event by a name, or by the
  address somewhere else (title, notes), but no attendee has the address: a hit for a human to review, never
  evidence on its own.
"""
from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from types import MappingProxyType
from typing import Any, NamedTuple
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import httplib2
from dateutil.rrule import rrulestr
from google.auth import exceptions as auth_exceptions
from google.oauth2 import service_account
from google_auth_httplib2 import AuthorizedHttp
from googleapiclient.discovery import build
from googleapiclient.errors import HttpError
from googleapiclient.http import build_http

from connectors.base import ActionResult, Changes, Identifiers, Known, Outcome, Record, RecordRef
from connectors.http import (RateLimiter, VendorAuthError, VendorBadResponse, VendorError, VendorRejected,
                             VendorUnavailable, error_for_status, redact_query_strings)

SYSTEM = "google_calendar"
RECORD_TYPE = "event"
DEFAULT_ENDPOINT = "https://www.googleapis.com/calendar/v3/"
SCOPES = ("https://www.googleapis.com/auth/calendar.events",)
#: 600 requests per minute per user per project (Google's default quota)
DEFAULT_RATE = (600, 60.0)
#: the largest page events.list serves
PAGE_SIZE = 2500

#: what `anonymise` writes into each field it may scrub; start and end are never touched
PLACEHOLDERS: Mapping[str, Any] = MappingProxyType(
    {"summary": "Afspraak", "description": "", "location": "", "attendees": ()})
RECORD_FIELDS: dict[str, frozenset[str]] = {RECORD_TYPE: frozenset(PLACEHOLDERS)}

MATCH_KEY = "_match"
MATCH_EMAIL, MATCH_TEXT = "email", "text"

GONE_STATUSES = frozenset({404, 410})  # 410: Google's answer for an event deleted before
USAGE_LIMIT_REASONS = frozenset({"rateLimitExceeded", "userRateLimitExceeded", "quotaExceeded"})
ORGANIZER_ONLY = "forbiddenForNonOrganizer"  # 403 reason: the calendar holds a copy of someone else's event
NOT_A_PERSON = re.compile(r"@(?:[\w.-]+\.)?calendar\.google\.com$")  # group, resource and import calendars



def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


redact_query_strings("googleapiclient.http", "googleapiclient.discovery", "googleapiclient.model")


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


class GoogleCalendarConnector:
    """Events of one or more Google calendars.

    Production passes `credentials_file` (a service-account JSON key; `subject` for domain-wide delegation);
    tests pass `http` (an `HttpMockSequence` or a plain `httplib2.Http`), which sends no credentials. The two
    exclude each other, as they do in the library. `backoff_factor` scales the library's own retry sleep
    (`rand() * 2**attempt` seconds at 1.0; 0 retries without sleeping). `clock` gives "now" for deciding which
    appointments have happened. Not thread-safe: httplib2 connections are not.
    """

    system = SYSTEM

    def __init__(self, *, api_endpoint: str = DEFAULT_ENDPOINT, calendar_ids: Sequence[str] = ("primary",),
                 credentials_file: str | None = None, subject: str | None = None, own_emails: Sequence[str] = (),
                 http: Any = None, rate: tuple[int, float] | None = DEFAULT_RATE, retries: int = 5,
                 backoff_factor: float = 1.0, clock: Callable[[], datetime] = _utcnow):
        if (credentials_file is None) == (http is None):
            raise ValueError("give exactly one of credentials_file (service account) or http (tests)")
        self.calendar_ids = tuple(calendar_ids)
        self.retries, self.backoff_factor, self._clock = retries, backoff_factor, clock
        self._own = {_normalise(e) for e in (*own_emails, *self.calendar_ids) if "@" in e}
        #: nextSyncToken of the last full read, per calendar id, for a later incremental sync
        self.sync_tokens: dict[str, str] = {}
        transport = http if http is not None else _authorised_http(credentials_file, subject)
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
            for event in self._list(calendar_id, remember_sync=since is None, **params):
                yield self._record(calendar_id, event, now)

    def changes(self, cursor: Mapping[str, Any] | None, known: Known) -> Changes:
        """A full read without a cursor; else per calendar what changed since its sync token.

        Cancelled tombstones are deletions. When a cached appointment has ended since the last read (its
        `valid_until` passed), the events that ended since are read too (`timeMin`/`timeMax`): time alone
        changed their last activity and running contract. A sync token Google no longer accepts (410 Gone)
        falls back to a full read, as Google asks.
        """
        now = self._clock()
        tokens = dict(cursor.get("sync_tokens", {})) if cursor else {}
        if set(tokens) != set(self.calendar_ids):
            return self._full_changes(now)
        try:
            return self._changes_since(tokens, known.due(now), now)
        except VendorRejected as exc:
            if exc.status != 410:
                raise
            return self._full_changes(now)

    def _full_changes(self, now: datetime) -> Changes:
        tokens: dict[str, str] = {}
        records = [self._record(calendar_id, item, now) for calendar_id in self.calendar_ids
                   for item in self._items(calendar_id, sync_tokens=tokens) if item.get("status") != "cancelled"]
        return Changes(records, cursor={"sync_tokens": tokens}, full=True)

    def _changes_since(self, tokens: Mapping[str, str], due: datetime | None, now: datetime) -> Changes:
        records: list[Record] = []
        gone: list[RecordRef] = []
        next_tokens: dict[str, str] = {}
        for calendar_id, token in tokens.items():
            for item in self._items(calendar_id, sync_tokens=next_tokens, syncToken=token):
                if item.get("status") == "cancelled":
                    gone.append(RecordRef(SYSTEM, RECORD_TYPE, f"{calendar_id}/{item['id']}"))
                else:
                    records.append(self._record(calendar_id, item, now))
            if due is not None:  # timeMin bounds the end, exclusively
                ended = self._list(calendar_id, timeMin=_rfc3339(due - timedelta(seconds=1)), timeMax=_rfc3339(now))
                records += [self._record(calendar_id, event, now) for event in ended]
        return Changes(records, cursor={"sync_tokens": next_tokens}, gone=gone)

    def search(self, identifiers: Identifiers) -> Iterator[Record]:
        """Events found by Google's free-text search (`q`), one query per e-mail and per name and calendar.

        Each hit is marked in `fields["_match"]` (see the module docstring); an event is reported once.
        """
        emails = {_normalise(e) for e in identifiers.emails if e.strip()}
        queries = [*sorted(emails), *(n.strip() for n in identifiers.names if n.strip())]
        now = self._clock()
        for calendar_id in self.calendar_ids:
            reported: set[str] = set()
            for query in queries:
                for event in self._list(calendar_id, q=query):
                    if event["id"] in reported:
                        continue
                    reported.add(event["id"])
                    found_by_email = bool(emails & {_normalise(e) for e, _ in self._persons(event)})
                    yield self._record(calendar_id, event, now, match=MATCH_EMAIL if found_by_email else MATCH_TEXT)

    def delete(self, ref: RecordRef) -> ActionResult:
        """Delete the event without mailing its guests (`sendUpdates=none`); a series goes as a whole."""
        calendar_id, event_id = _split(ref)
        return self._act(ref, self._events.delete(calendarId=calendar_id, eventId=event_id, sendUpdates="none"))

    def anonymise(self, ref: RecordRef, fields: Sequence[str]) -> ActionResult:
        """Scrub the named fields with `PLACEHOLDERS` (title "Afspraak", notes and place "", no guests).

        One events.patch with `sendUpdates=none`; start and end stay, so the time slot remains in the owner's
        agenda. A copy of another organizer's event cannot be changed (403 forbiddenForNonOrganizer): that is
        NOT_SUPPORTED, and deleting it from this calendar is what remains. Raises ValueError for a field not in
        `RECORD_FIELDS` before any call.
        """
        unknown = sorted(set(fields) - RECORD_FIELDS[RECORD_TYPE])
        if unknown:
            raise ValueError(f"{SYSTEM} events cannot anonymise {unknown}; allowed: {sorted(PLACEHOLDERS)}")
        calendar_id, event_id = _split(ref)
        body = {name: list(value) if isinstance(value, tuple) else value
                for name, value in PLACEHOLDERS.items() if name in fields}
        request = self._events.patch(calendarId=calendar_id, eventId=event_id, body=body, sendUpdates="none")
        return self._act(ref, request, expect_event=True)

    # -- calls ----------------------------------------------------------------------------------------
    def _list(self, calendar_id: str, *, remember_sync: bool = False, **params: Any) -> Iterator[dict[str, Any]]:
        """Live events of one calendar (updatedMin lists deleted ones whatever showDeleted says)."""
        items = self._items(calendar_id, sync_tokens=self.sync_tokens if remember_sync else None, showDeleted=False,
                            **params)
        return (item for item in items if item.get("status") != "cancelled")

    def _items(self, calendar_id: str, *, sync_tokens: dict[str, str] | None = None,
               **params: Any) -> Iterator[dict[str, Any]]:
        """Every item events.list returns, page by page (`pageToken`), the last page's sync token kept in
        `sync_tokens`; a repeated page token is a vendor bug."""
        request = self._events.list(calendarId=calendar_id, maxResults=PAGE_SIZE, singleEvents=False, **params)
        tokens: set[str] = set()
        while request is not None:
            method, path = _where(request)
            page = self._execute(request)
            items = page.get("items", [])
            if not isinstance(items, list) or not all(isinstance(i, dict) and "id" in i for i in items):
                raise VendorBadResponse(SYSTEM, method, path, 200, "response does not have the expected shape")
            yield from items
            token = page.get("nextPageToken")
            if token in tokens:
                raise VendorBadResponse(SYSTEM, method, path, 200, "pagination returned the same page twice")
            tokens.add(token)
            if sync_tokens is not None and "nextSyncToken" in page:
                sync_tokens[calendar_id] = page["nextSyncToken"]
            request = self._events.list_next(request, page)

    def _act(self, ref: RecordRef, request: Any, *, expect_event: bool = False) -> ActionResult:
        try:
            self._execute(request, body=expect_event)
        except VendorError as exc:
            if exc.status in GONE_STATUSES:
                return ActionResult(Outcome.ALREADY_GONE, f"event {ref.record_id} is gone (HTTP {exc.status})")
            if isinstance(exc, VendorRejected) and exc.status == 403:
                return ActionResult(Outcome.NOT_SUPPORTED, f"event {ref.record_id} belongs to another organizer, "
                                                           "who alone can change it: delete it from this calendar")
            raise
        return ActionResult(Outcome.DONE)

    def _execute(self, request: Any, *, body: bool = True) -> Any:
        """Run one API request with the library's retries; typed errors that carry no URL query or body."""
        method, path = _where(request)
        request._rand = self._scaled_rand(request._rand)  # the library's documented test stub for its backoff
        try:
            result = request.execute(num_retries=self.retries)
        except HttpError as exc:
            raise _error_for(method, path, exc) from None
        except auth_exceptions.RefreshError as exc:
            if exc.retryable:
                raise VendorUnavailable(SYSTEM, method, path, None,
                                        "token endpoint unavailable; try again later") from None
            raise VendorAuthError(SYSTEM, method, path, None,
                                  "service-account token refused; check credentials_file and the scope") from None
        except (auth_exceptions.TransportError, httplib2.HttpLib2Error, OSError):
            raise VendorUnavailable(SYSTEM, method, path, None, "cannot reach the Calendar API") from None
        if body and not isinstance(result, dict):
            raise VendorBadResponse(SYSTEM, method, path, 200, "response is not a JSON object")
        return result

    def _scaled_rand(self, rand: Callable[[], float]) -> Callable[[], float]:
        return lambda: self.backoff_factor * rand()

    # -- records --------------------------------------------------------------------------------------
    def _persons(self, event: Mapping[str, Any]) -> list[tuple[str, str | None]]:
        """(e-mail as the vendor has it, display name) of everyone on the event but the owner's side."""
        seen: set[str] = set()
        persons = []
        for party in [*event.get("attendees", ()), event.get("organizer") or {}]:
            email = party.get("email")
            key = _normalise(email) if email else ""
            if (not key or party.get("self") or party.get("resource") or key in self._own or key in seen
                    or NOT_A_PERSON.search(key)):
                continue
            seen.add(key)
            persons.append((email, party.get("displayName")))
        return persons

    def _record(self, calendar_id: str, event: dict[str, Any], now: datetime, match: str | None = None) -> Record:
        persons = self._persons(event)
        first, last = _split_name(next((name for _, name in persons if name), None))
        created = _parse_time(event.get("created"))
        timing = _timing(event, now)
        fields = dict(event) if match is None else {**event, MATCH_KEY: match}
        return Record(SYSTEM, RECORD_TYPE, f"{calendar_id}/{event['id']}", emails=tuple(e for e, _ in persons),
                      first_name=first, last_name=last, fields=fields, created_at=created,
                      updated_at=_parse_time(event.get("updated")), last_activity_at=timing.last_ended or created,
                      running_contract=timing.running, shared=len(persons) > 1, version=event.get("etag"),
                      valid_until=timing.next_end)


# -- helpers ----------------------------------------------------------------------------------------------
def _authorised_http(credentials_file: str, subject: str | None) -> AuthorizedHttp:
    credentials = service_account.Credentials.from_service_account_file(credentials_file, scopes=list(SCOPES))
    if subject:
        credentials = credentials.with_subject(subject)
    return AuthorizedHttp(credentials, http=build_http())


def _where(request: Any) -> tuple[str, str]:
    """Method and URL path of a request: never its query string, which can carry an e-mail."""
    return request.method, urlsplit(request.uri).path


def _error_for(method: str, path: str, exc: HttpError) -> VendorError:
    status, reason = exc.status_code, _reason(exc.content)
    if status == 403 and reason in USAGE_LIMIT_REASONS:
        return VendorUnavailable(SYSTEM, method, path, status, "Calendar API quota exhausted after all retries")
    if status == 403 and reason == ORGANIZER_ONLY:
        return VendorRejected(SYSTEM, method, path, status, "only the event's organizer may change it")
    return error_for_status(SYSTEM, method, path, status)


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


def _normalise(email: str) -> str:
    return email.strip().casefold()


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


def _moment(when: Mapping[str, Any] | None) -> datetime | None:
    """An event's start or end: `dateTime`, or an all-day `date` as midnight UTC."""
    if not when:
        return None
    if when.get("dateTime"):
        return _parse_time(when["dateTime"])
    if when.get("date"):
        return datetime.fromisoformat(when["date"]).replace(tzinfo=timezone.utc)
    return None


class _Timing(NamedTuple):
    last_ended: datetime | None  # end of the latest occurrence that has ended
    running: bool  # an occurrence has yet to end (or the recurrence cannot be read: the safe side)
    next_end: datetime | None = None  # end of the next occurrence, when that changes the two above


def _timing(event: Mapping[str, Any], now: datetime) -> _Timing:
    """What the event's occurrences say as of `now`."""
    start, end = _moment(event.get("start")), _moment(event.get("end"))
    if start is None or end is None:
        return _Timing(None, False)
    if not event.get("recurrence"):
        return _Timing(end, False) if end <= now else _Timing(None, True, end)
    try:
        return _series_timing(event, start, end - start, now)
    except (ValueError, TypeError, OverflowError):
        return _Timing(end if end <= now else None, True)


def _series_timing(event: Mapping[str, Any], start: datetime, duration: timedelta, now: datetime) -> _Timing:
    """`_timing` for a recurring series: its RRULE/RDATE/EXDATE lines evaluated in the event's time zone."""
    all_day = "date" in event["start"]
    if all_day:  # all-day rules carry floating dates (UNTIL=20240101): compare without a zone
        dtstart, cutoff = start.replace(tzinfo=None), now.astimezone(timezone.utc).replace(tzinfo=None) - duration
    else:
        dtstart, cutoff = start.astimezone(_zone(event["start"].get("timeZone"))), now - duration
    occurrences = rrulestr("\n".join(event["recurrence"]), dtstart=dtstart, forceset=True)
    last_start = occurrences.before(cutoff, inc=True)
    upcoming = occurrences.after(cutoff)
    return _Timing(None if last_start is None else _as_utc(last_start + duration), upcoming is not None,
                   None if upcoming is None else _as_utc(upcoming + duration))


def _zone(name: str | None) -> Any:
    try:
        return ZoneInfo(name) if name else timezone.utc
    except (ZoneInfoNotFoundError, ValueError):
        return timezone.utc
