"""Google Calendar API v3 sandbox: calendars shared with a service account, their events, and a token endpoint.

Paths, parameters and field names follow the discovery document shipped with google-api-python-client 2.202.0
(calendar.v3.json, "DISC" below): calendars.get, and events list/get/delete/patch/instances under
`/calendar/v3/calendars/{calendarId}/events`, so `build(..., client_options={"api_endpoint": "<server>/calendar/v3/"})`
talks to it unchanged. "GERR" is Google's Calendar errors guide (developers.google.com/workspace/calendar/api/guides/
errors), "GSYNC" its sync guide. Modelled:

Who sees which calendar (DISC `calendarId`, `Events.accessRole`, `acl`):
- Every token belongs to a principal: a service account's token without a `sub` claim to the service account, one
  with `sub` (domain-wide delegation, google-auth `with_subject`) to that user, the constructor's `token` to the
  owner (as if the owner had authorised an app). `primary` is the principal's OWN calendar: for a service account
  without delegation an empty calendar it owns, never the owner's.
- The owner's calendar has the owner's address as its id and is shared with the service account as `writer` ("Make
  changes to events"). `add_calendar` adds others shared at any role, `share` changes or revokes the service
  account's role. A calendar the principal has no role on answers 404 (GERR: 404 also for a calendar the user cannot
  access). Every list response carries `accessRole`.
- freeBusyReader: list items carry only id, status and the busy time, no details (DISC accessRole; the Workspace
  admin setting that caps external sharing at free/busy produces this role). get and instances need reader, patch
  and delete writer, else 403 `requiredAccessLevel`.
- calendars.get needs one of its own scopes (DISC: calendar, calendar.readonly, calendar.calendars[.readonly]), not
  `calendar.events`: with the events scope alone it answers 403 insufficientPermissions.

Events:
- list: `maxResults` (default 250, at most 2500) with `nextPageToken`, `nextSyncToken` on the last page only,
  `showDeleted`, `singleEvents`, `updatedMin` (deleted events always included), `q` (every term must occur,
  case-insensitive, in summary, description, location, attendee or organizer e-mail and displayName), `timeMin`
  (exclusive bound on an event's end) / `timeMax` (exclusive bound on its start), for timed and all-day events
  (an all-day `date` is midnight in the calendar's time zone), and `syncToken` (only what changed since; combined
  with q/updatedMin/timeMin/timeMax/orderBy/iCalUID or with `showDeleted=false` it is a 400; an unknown or expired
  token (`expire_sync_tokens`) is 410 fullSyncRequired).
- Deleted events (DISC `Event.status`): the tombstone keeps the event's details (title, notes, guests) so that it
  can be restored; get and `showDeleted=true` return them, an incremental read (syncToken/updatedMin) without
  `showDeleted=true` returns only id and status. Deleting a series cancels its exceptions too.
- Recurring series: each is stored with its explicit list of instances (computed when seeded with plain datetime
  arithmetic, never by parsing the RRULE text, which is in the forms real calendars hold: date-only UNTIL,
  `RDATE;TZID=...`, EXDATE). `instances` serves them in start order with `timeMin` (inclusive on end, as DISC
  says for this method), `timeMax`, `showDeleted`, `originalStart`, `maxResults`/`pageToken`. Exceptions are
  events of their own with `recurringEventId` and `originalStartTime`: moved ones with their new time, cancelled
  ones with only those fields; a plain listing (singleEvents=false) includes cancelled exceptions of live series
  even without showDeleted (DISC `showDeleted`). `singleEvents=true` expands series into their live instances.
- `eventType` birthday (all-day, yearly, `birthdayProperties`) and fromGmail events are seeded for some people.
- patch replaces the fields it names (nested objects merged one level, arrays such as `attendees` whole); fields
  set to "", [] or null disappear; every attendee sent needs a valid `email` (DISC EventAttendee.email), else 400;
  `attachments` change only with `supportsAttachments=true` (DISC `attachments`). On a copy of another organizer's
  event (organizer not this calendar), a patch that names a shared property answers 403 forbiddenForNonOrganizer
  (GERR). Deleting such a copy works.
- Errors use Google's JSON envelope {"error": {"code", "message", "errors": [{"domain", "reason", "message"}]}}.

Seeding (from the population, without drawing from its random generator): one event per appointment, except that
a stable hash of the person's key makes some people with two or more appointments a weekly series (date-only
UNTIL, one EXDATE, a cancelled and a moved instance, ending at their last appointment), an RDATE series (their
appointments as the instances), or an invitation they organised; some people get a birthday event, some a
Gmail-generated event. `add_series`, `add_event`, `add_invitation`, `add_birthday`, `add_from_gmail`,
`add_calendar` and `share` create specific situations for tests.

ASSUMED (not settled by a source): the exact message strings; that patch of a deleted event answers 410 like
delete (GERR documents 410 for deleting twice); which fields a foreign organizer's copy refuses (all shared ones
here); that instances come in start order and that `instances` of a deleted series is 410 and of a single event
400; that a series matches timeMin/timeMax in a plain listing when one of its instances does, and a cancelled
exception by its original start; that q skips cancelled exceptions; that get/instances on a free/busy share is
403; `fields` (partial responses) is ignored: full items come back. Not modelled: private events
(`visibility`), writerWithoutPrivateAccess, attachments' files, conference data, quotas beyond one rate window.

Tokens: POST /token takes the service-account JWT-bearer grant google-auth sends, checks the JWT's signature
against the key pair `service_account_info()` issued, its issuer, audience, expiry and a calendar scope, and
answers `{"access_token", "expires_in": 3600, "token_type": "Bearer"}`.
Guests "mailed" by delete/patch with sendUpdates all/externalOnly are recorded in `notified` (event ids).
"""
from __future__ import annotations

import base64
import copy
import hashlib
import json
import re
import secrets
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Any
from urllib.parse import parse_qs
from zoneinfo import ZoneInfo

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from google.auth import exceptions as auth_exceptions
from google.auth import jwt
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from vergeet.sandbox.population import Appointment, Person, Population
from vergeet.sandbox.server import FakeVendor

CALENDAR_PATH = "/calendar/v3/calendars/{calendar_id}"
EVENTS_PATH = CALENDAR_PATH + "/events"
TOKEN_PATH = "/token"
TIME_ZONE = "Europe/Amsterdam"
ZONE = ZoneInfo(TIME_ZONE)
DEFAULT_PAGE, MAX_PAGE = 250, 2500
TOKEN_LIFETIME = 3600
#: how long before an appointment its event was created
BOOKED_AHEAD = timedelta(days=7)
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
#: google-auth always signs for Google's own token endpoint, whatever `token_uri` it posts to
GOOGLE_TOKEN_AUDIENCE = "https://oauth2.googleapis.com/token"
CALENDAR_SCOPES = frozenset({"https://www.googleapis.com/auth/calendar",
                             "https://www.googleapis.com/auth/calendar.events"})
#: DISC calendars.get scopes: the events scope is not among them
CALENDARS_GET_SCOPES = frozenset({"https://www.googleapis.com/auth/calendar",
                                  "https://www.googleapis.com/auth/calendar.readonly",
                                  "https://www.googleapis.com/auth/calendar.calendars",
                                  "https://www.googleapis.com/auth/calendar.calendars.readonly"})
SERVICE_ACCOUNT_EMAIL = "vergeet@vergeet-sandbox.iam.gserviceaccount.com"
SEND_UPDATES = frozenset({"all", "externalOnly", "none"})
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
READ_ONLY = frozenset({"kind", "etag", "id", "htmlLink", "created", "updated", "creator", "organizer", "iCalUID",
                       "recurringEventId", "originalStartTime", "eventType", "birthdayProperties"})
SYNC_FORBIDS = ("q", "updatedMin", "timeMin", "timeMax", "orderBy", "iCalUID")
#: DISC Events.accessRole, from no access to full access
ROLES = ("none", "freeBusyReader", "reader", "writer", "owner")
RANK = {role: rank for rank, role in enumerate(ROLES)}
#: what a free/busy reader sees of an event
FREE_BUSY_FIELDS = frozenset({"kind", "etag", "id", "status", "start", "end"})
#: what an incremental read without showDeleted=true returns of a deleted event (DISC Event.status)
TOMBSTONE_FIELDS = frozenset({"kind", "etag", "id", "status", "recurringEventId", "originalStartTime"})
#: the properties only the organizer may change on the copies of an event (GERR forbiddenForNonOrganizer)
SHARED_PROPERTIES = frozenset({"summary", "description", "location", "attendees", "start", "end", "recurrence"})
GMAIL_ORGANIZER = {"email": "unknownorganizer@calendar.google.com", "displayName": "Unknown Organizer"}
GMAIL_SUMMARIES = ("Treinreis Hilversum - Utrecht Centraal", "Reservering Restaurant De Kas", "Vlucht KL1001")

#: status -> (domain, reason, message) of Google's error envelope
GOOGLE_ERRORS = {
    400: ("global", "badRequest", "Bad Request"),
    401: ("global", "authError", "Invalid Credentials"),
    403: ("global", "requiredAccessLevel", "You need to have writer access to this calendar."),
    404: ("global", "notFound", "Not Found"),
    410: ("global", "deleted", "Resource has been deleted"),
    429: ("usageLimits", "rateLimitExceeded", "Rate Limit Exceeded"),
    500: ("global", "backendError", "Backend Error"),
    503: ("global", "backendError", "Backend Error"),
}

Slot = tuple[datetime, datetime] | tuple[date, date]  # one instance's original start and end (all-day: dates)


@dataclass
class _Stored:
    """One event as kept: its payload, the change sequence number that syncTokens count, and when it changed."""

    payload: dict[str, Any]
    seq: int
    changed: datetime


@dataclass
class _Calendar:
    """One calendar: who may see it at which role, its events, and each series' instances."""

    calendar_id: str
    acl: dict[str, str]  # principal (e-mail) -> role
    events: dict[str, _Stored] = field(default_factory=dict)
    series: dict[str, list[Slot]] = field(default_factory=dict)  # master id -> its instances, in start order


def _stamp(moment: datetime) -> str:
    """Google's `created`/`updated` form: UTC with milliseconds and Z."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _local(moment: datetime) -> dict[str, str]:
    return {"dateTime": moment.astimezone(ZONE).isoformat(), "timeZone": TIME_ZONE}


def _when(moment: datetime | date) -> dict[str, str]:
    """An EventDateTime: `dateTime` for a moment, `date` for an all-day date."""
    return _local(moment) if isinstance(moment, datetime) else {"date": moment.isoformat()}


def _parse(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError("an RFC 3339 timestamp needs a time zone offset")
    return moment


def _instant(when: dict[str, Any] | None) -> datetime | None:
    """An EventDateTime as an aware moment; an all-day `date` is midnight in the calendar's zone."""
    if not when:
        return None
    if when.get("dateTime"):
        return _parse(when["dateTime"])
    if when.get("date"):
        return datetime.combine(date.fromisoformat(when["date"]), datetime.min.time(), tzinfo=ZONE)
    return None


def _event_id(*parts: str) -> str:
    """A stable id in Google's alphabet (base32hex, lower case)."""
    digest = hashlib.sha1("/".join(parts).encode()).digest()
    return base64.b32hexencode(digest).decode().rstrip("=").lower()


def _bucket(key: str, shape: str) -> int:
    """0..99 from a stable hash of a person's key: which calendar-only shape they get (no random generator)."""
    return int.from_bytes(hashlib.sha1(f"{key}/{shape}".encode()).digest()[:4], "big") % 100


def _instance_id(master_id: str, original_start: datetime | date) -> str:
    """Google's instance ids: the series id, "_", the original start (UTC, basic format) or date."""
    if isinstance(original_start, datetime):
        return f"{master_id}_{original_start.astimezone(timezone.utc):%Y%m%dT%H%M%SZ}"
    return f"{master_id}_{original_start:%Y%m%d}"


def _encode(prefix: str, value: str) -> str:
    return base64.urlsafe_b64encode(f"{prefix}:{value}".encode()).decode()


def _decode(prefix: str, token: str) -> str | None:
    try:
        kind, _, value = base64.urlsafe_b64decode(token.encode()).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        return None
    return value if kind == prefix else None


def _true(value: str | None) -> bool:
    return (value or "").lower() == "true"


def _google_error(status: int, message: str | None = None, reason: str | None = None) -> Response:
    """A response with Google's JSON error envelope."""
    domain, default_reason, default_message = GOOGLE_ERRORS.get(status, ("global", "error", "Error"))
    message = message or default_message
    detail = {"domain": domain, "reason": reason or default_reason, "message": message}
    if status == 401:
        detail.update(locationType="header", location="Authorization")
    body = {"error": {"code": status, "message": message, "errors": [detail]}}
    return JSONResponse(body, status_code=status)


def _ical_local(moment: datetime) -> str:
    return f"{moment.astimezone(ZONE):%Y%m%dT%H%M%S}"


class CalendarFake(FakeVendor):
    """The owner's calendar (shared with the service account) and any others, seeded from the population."""

    name = "google_calendar"
    #: Google's default quota: 600 requests per minute per user per project
    rate_calls = 600
    rate_period = 60.0

    def __init__(self, population: Population, *, token: str | None = None, rate_calls: int | None = None,
                 rate_period: float | None = None, owner_email: str = "info@jessworks.nl"):
        #: the owner's calendar: its id is the owner's address (DISC: a user's primary calendar id is their e-mail)
        self.owner_email = self.calendar_id = owner_email
        self.calendars: dict[str, _Calendar] = {}
        self._add(owner_email, {owner_email: "owner", SERVICE_ACCOUNT_EMAIL: "writer"})
        self.notified: list[str] = []
        self._seq = 0
        self._oldest_valid_sync = 0  # sync tokens from before this change number have expired
        self._keys: dict[str, tuple[str, str]] = {}  # private_key_id -> (client_email, public key PEM)
        self._issued: dict[str, tuple[float, str, frozenset[str]]] = {}  # token -> (expiry, principal, scopes)
        super().__init__(token=token or secrets.token_urlsafe(24), rate_calls=rate_calls, rate_period=rate_period)
        for person in population.people:
            if person.calendar is not None:
                self.add_person(person)

    @property
    def events(self) -> dict[str, _Stored]:
        """The owner's calendar's events (tombstones included)."""
        return self.calendars[self.calendar_id].events

    def _add(self, calendar_id: str, acl: dict[str, str]) -> _Calendar:
        calendar = self.calendars[calendar_id] = _Calendar(calendar_id, acl)
        return calendar

    # -- seeding ---------------------------------------------------------------------------------------
    def add_person(self, person: Person) -> list[str]:
        """A person's appointments as events (some as one series or as their invitation), and maybe a birthday or a
        Gmail event; the shape comes from a stable hash of the person's key."""
        appointments = person.calendar.appointments
        shape = _bucket(person.key, "shape") if len({a.start for a in appointments}) >= 2 else None
        added: list[str] = []
        if shape is not None and shape < 5:
            added.append(self._seed_weekly(person))
        elif shape is not None and shape < 8:
            added.append(self._seed_rdate(person))
        else:
            for index, appointment in enumerate(appointments):
                event = self._seed_event(person, index, appointment)
                if shape is not None and shape < 11 and index == 0:
                    event = self._as_invitation(event, person.calendar.email.strip(), person.name)
                self._store(event, appointment.start - BOOKED_AHEAD)
                added.append(event["id"])
        if _bucket(person.key, "birthday") < 3:
            moment = person.calendar.created_at
            added.append(self.add_birthday(person.first_name, date(moment.year, moment.month, min(moment.day, 28)),
                                           key=person.key))
        if _bucket(person.key, "gmail") < 2:
            start = appointments[0].start - timedelta(days=1)
            added.append(self.add_from_gmail(start, GMAIL_SUMMARIES[_bucket(person.key, "trip") % 3], key=person.key))
        return ["event"] * len(added)

    def _seed_event(self, person: Person, index: int, appointment: Appointment) -> dict[str, Any]:
        return self._payload(_event_id(person.key, str(index)), appointment.start - BOOKED_AHEAD,
                             appointment.summary, appointment.start,
                             appointment.start + timedelta(minutes=appointment.minutes),
                             attendee=(person.calendar.email, person.name), location=appointment.location,
                             description=appointment.description)

    def _payload(self, event_id: str, created: datetime, summary: str, start: datetime | date, end: datetime | date,
                 *, attendee: tuple[str, str | None] | None = None, **fields: Any) -> dict[str, Any]:
        """An event organised by the calendar's owner, with one guest."""
        owner = {"email": self.owner_email, "self": True}
        attendees = [{**owner, "organizer": True, "responseStatus": "accepted"}]
        if attendee is not None:
            email, name = attendee
            attendees.insert(0, {"email": email, "displayName": name, "responseStatus": "accepted"})
        event = {
            "kind": "calendar#event", "id": event_id, "status": "confirmed",
            "htmlLink": "https://www.google.com/calendar/event?eid="
                        + base64.urlsafe_b64encode(f"{event_id} {self.owner_email}".encode()).decode().rstrip("="),
            "created": _stamp(created), "updated": _stamp(created), "summary": summary,
            "creator": dict(owner), "organizer": dict(owner), "start": _when(start), "end": _when(end),
            "iCalUID": f"{event_id}@google.com", "sequence": 0, "attendees": attendees,
            "reminders": {"useDefault": True}, "eventType": "default", **fields,
        }
        return {key: value for key, value in event.items() if value not in ("", None)}

    @staticmethod
    def _as_invitation(event: dict[str, Any], organizer: str, name: str | None) -> dict[str, Any]:
        """The owner's copy of an event someone else organised and invited the owner to."""
        foreign = {"email": organizer, "displayName": name}
        guests = [{**foreign, "organizer": True, "responseStatus": "accepted"}]
        guests += [{**a, "organizer": False} for a in event["attendees"] if a.get("self")]
        return {**event, "organizer": foreign, "creator": dict(foreign), "attendees": guests, "guestsCanModify": False}

    def _seed_weekly(self, person: Person) -> str:
        """Weekly sessions up to the person's last appointment: date-only UNTIL, one EXDATE, a cancelled and a moved
        instance. Their last real instance is the last appointment, so the person's last contact stays the same."""
        last = person.calendar.appointments[-1]
        weeks = len(person.calendar.appointments) + 2
        starts = [last.start - timedelta(weeks=k) for k in range(weeks, -1, -1)]
        excluded = starts[-2]  # the week before the last: an EXDATE
        recurrence = [f"RRULE:FREQ=WEEKLY;UNTIL={last.start.astimezone(ZONE):%Y%m%d}",
                      f"EXDATE;TZID={TIME_ZONE}:{_ical_local(excluded)}"]
        starts.remove(excluded)
        return self.add_series((person.calendar.email, person.name), [s for s in starts], last.minutes, recurrence,
                               summary=last.summary, location=last.location, cancelled=(1,), moved={2: timedelta(days=1)},
                               key=person.key)

    def _seed_rdate(self, person: Person) -> str:
        """The person's appointments as one series of explicit dates (RDATE;TZID=..., beside a one-time RRULE)."""
        appointments = person.calendar.appointments
        starts = sorted({a.start for a in appointments})
        recurrence = ["RRULE:FREQ=YEARLY;COUNT=1",
                      f"RDATE;TZID={TIME_ZONE}:" + ",".join(_ical_local(s) for s in starts[1:])]
        return self.add_series((person.calendar.email, person.name), starts, appointments[-1].minutes, recurrence,
                               summary=appointments[-1].summary, key=person.key)

    def add_series(self, attendee: tuple[str, str | None], starts: Sequence[datetime], minutes: int,
                   recurrence: Sequence[str], *, summary: str = "Coaching", location: str = "",
                   cancelled: Iterable[int] = (), moved: dict[int, timedelta] | None = None,
                   key: str | None = None, calendar_id: str | None = None) -> str:
        """A recurring series with these instances (`starts`, in order); the instances at the `cancelled` positions
        are cancelled exceptions, those in `moved` exceptions moved by their timedelta. Returns the series id."""
        calendar = self.calendars[calendar_id or self.calendar_id]
        starts = sorted(starts)
        duration = timedelta(minutes=minutes)
        master_id = _event_id(key or f"series/{len(calendar.events)}", "series")
        created = starts[0] - BOOKED_AHEAD
        master = self._payload(master_id, created, summary, starts[0], starts[0] + duration, attendee=attendee,
                               location=location, recurrence=list(recurrence))
        self._store(master, created, calendar)
        calendar.series[master_id] = [(s, s + duration) for s in starts]
        for position in sorted(set(cancelled)):
            self._store(self._cancelled_exception(master_id, starts[position]), starts[position] - BOOKED_AHEAD,
                        calendar)
        for position, shift in sorted((moved or {}).items()):
            instance = self._instance(calendar, master_id, (starts[position], starts[position] + duration))
            instance.update(start=_when(starts[position] + shift), end=_when(starts[position] + shift + duration))
            self._store(instance, starts[position] - BOOKED_AHEAD, calendar)
        return master_id

    def add_event(self, attendee: tuple[str, str | None] | None, start: datetime | date, end: datetime | date, *,
                  summary: str = "Coaching", calendar_id: str | None = None, **fields: Any) -> str:
        """One event organised by the owner (`date`s make it all-day); extra Event fields as keywords."""
        calendar = self.calendars[calendar_id or self.calendar_id]
        event_id = _event_id("event", calendar.calendar_id, str(len(calendar.events)))
        created = (start if isinstance(start, datetime) else
                   datetime.combine(start, datetime.min.time(), tzinfo=ZONE)) - BOOKED_AHEAD
        self._store(self._payload(event_id, created, summary, start, end, attendee=attendee, **fields), created,
                    calendar)
        return event_id

    def add_invitation(self, organizer: str, name: str | None, start: datetime, minutes: int = 60, *,
                       summary: str = "Kennismaking") -> str:
        """The owner's copy of an event the person `organizer` organised: only they may change its shared fields."""
        event_id = _event_id("invitation", organizer, start.isoformat())
        event = self._payload(event_id, start - BOOKED_AHEAD, summary, start, start + timedelta(minutes=minutes),
                              attendee=(organizer, name))
        self._store(self._as_invitation(event, organizer, name), start - BOOKED_AHEAD)
        return event_id

    def add_birthday(self, first_name: str, born: date, *, key: str | None = None) -> str:
        """A contact's birthday (DISC eventType birthday: all-day, yearly; birthdayProperties), instances from the
        year it was added until 30 years on."""
        calendar = self.calendars[self.calendar_id]
        event_id = _event_id(key or first_name, "birthday")
        created = datetime.combine(born, datetime.min.time(), tzinfo=ZONE)
        event = self._payload(event_id, created, f"Verjaardag {first_name}", born, born + timedelta(days=1),
                              recurrence=["RRULE:FREQ=YEARLY"], eventType="birthday", transparency="transparent",
                              visibility="private",
                              birthdayProperties={"type": "birthday", "contact": f"people/c{event_id[:12]}"})
        event.pop("attendees")
        self._store(event, created)
        calendar.series[event_id] = [(date(born.year + n, born.month, born.day),
                                      date(born.year + n, born.month, born.day) + timedelta(days=1))
                                     for n in range(31)]
        return event_id

    def add_from_gmail(self, start: datetime, summary: str, *, key: str | None = None) -> str:
        """An event Gmail made from a reservation mail (DISC eventType fromGmail): no guest but the owner."""
        event_id = _event_id(key or summary, "gmail", start.isoformat())
        event = self._payload(event_id, start - BOOKED_AHEAD, summary, start, start + timedelta(hours=2),
                              eventType="fromGmail", organizer=dict(GMAIL_ORGANIZER), creator=dict(GMAIL_ORGANIZER))
        event["attendees"] = [{"email": self.owner_email, "self": True, "responseStatus": "accepted"}]
        self._store(event, start - BOOKED_AHEAD)
        return event_id

    def add_calendar(self, calendar_id: str, role: str) -> None:
        """Another calendar, shared with the service account at `role` (freeBusyReader, reader, writer)."""
        self._add(calendar_id, {calendar_id: "owner", SERVICE_ACCOUNT_EMAIL: role})

    def share(self, role: str | None, calendar_id: str | None = None) -> None:
        """Change the service account's role on a calendar (the owner's by default); None revokes the share."""
        acl = self.calendars[calendar_id or self.calendar_id].acl
        if role is None:
            acl.pop(SERVICE_ACCOUNT_EMAIL, None)
        else:
            acl[SERVICE_ACCOUNT_EMAIL] = role

    def cancel_instance(self, master_id: str, original_start: datetime | date) -> str:
        """One instance of a series on the owner's calendar cancelled (the owner deleted "this event" only)."""
        return self._store(self._cancelled_exception(master_id, original_start), datetime.now(timezone.utc)).payload["id"]

    def _cancelled_exception(self, master_id: str, original_start: datetime | date) -> dict[str, Any]:
        """DISC: a cancelled exception is only guaranteed to carry id, recurringEventId and originalStartTime."""
        return {"kind": "calendar#event", "id": _instance_id(master_id, original_start), "status": "cancelled",
                "recurringEventId": master_id, "originalStartTime": _when(original_start)}

    def _instance(self, calendar: _Calendar, master_id: str, slot: Slot) -> dict[str, Any]:
        """One unmodified instance of a series, as Google expands it from the master."""
        master = calendar.events[master_id].payload
        start, end = slot
        instance = {k: copy.deepcopy(v) for k, v in master.items() if k not in ("recurrence", "etag")}
        instance.update(id=_instance_id(master_id, start), recurringEventId=master_id,
                        originalStartTime=_when(start), start=_when(start), end=_when(end), etag=master.get("etag"))
        return instance

    # -- changing and state --------------------------------------------------------------------------
    def change(self, pick: int) -> str:
        """The live event `pick` lands on moves a day later (a single timed one), or its guest's e-mail changes (or,
        without a guest, its title)."""
        live = sorted((s for s in self.events.values() if s.payload.get("status") != "cancelled"),
                      key=lambda s: s.payload["id"])
        event = copy.deepcopy(live[pick % len(live)].payload)
        guests = [a for a in event.get("attendees", []) if not a.get("self")]
        movable = "dateTime" in event["start"] and "recurrence" not in event and "recurringEventId" not in event
        if pick % 2 and guests or guests and not movable:
            for attendee in guests:
                attendee["email"] = f"changed{pick}@example.nl"
        elif movable:
            for edge in ("start", "end"):
                event[edge] = _local(datetime.fromisoformat(event[edge]["dateTime"]) + timedelta(days=1))
        else:
            event["summary"] = event.get("summary", "") + " (gewijzigd)"
        now = datetime.now(timezone.utc)
        event["updated"] = _stamp(now)
        self._store(event, now)
        return "event"

    def remove(self, pick: int) -> str:
        """The live event `pick` lands on is deleted in Google Calendar's own app (as `delete_event` does)."""
        live = sorted(stored.payload["id"] for stored in self.events.values()
                      if stored.payload.get("status") != "cancelled")
        self._delete(self.calendars[self.calendar_id], self.events[live[pick % len(live)]])
        return "event"

    def expire_sync_tokens(self) -> None:
        """Every sync token issued so far answers 410 Gone from now on, as Google's do after a while."""
        self._seq += 1  # tokens issued from now on carry this number or a later one
        self._oldest_valid_sync = self._seq

    def _store(self, payload: dict[str, Any], changed: datetime, calendar: _Calendar | None = None) -> _Stored:
        self._seq += 1
        payload["etag"] = f'"{3181161784712000 + self._seq}"'
        stored = _Stored(payload, self._seq, changed)
        (calendar or self.calendars[self.calendar_id]).events[payload["id"]] = stored
        return stored

    def _delete(self, calendar: _Calendar, stored: _Stored) -> None:
        """A tombstone that keeps the event's details (DISC Event.status); a series takes its exceptions along."""
        now = datetime.now(timezone.utc)
        event_id = stored.payload["id"]
        self._store({**stored.payload, "status": "cancelled", "updated": _stamp(now)}, now, calendar)
        for other in list(calendar.events.values()):
            if other.payload.get("recurringEventId") == event_id and other.payload.get("status") != "cancelled":
                self._store({**other.payload, "status": "cancelled", "updated": _stamp(now)}, now, calendar)

    # -- service accounts ----------------------------------------------------------------------------
    def service_account_info(self, token_uri: str) -> dict[str, str]:
        """A service-account JSON key (fresh RSA key pair) whose token exchange this fake accepts."""
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        key_id = secrets.token_hex(20)
        public_pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                                   serialization.PublicFormat.SubjectPublicKeyInfo).decode()
        self._keys[key_id] = (SERVICE_ACCOUNT_EMAIL, public_pem)
        private_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                        serialization.NoEncryption()).decode()
        return {"type": "service_account", "project_id": "vergeet-sandbox", "private_key_id": key_id,
                "private_key": private_pem, "client_email": SERVICE_ACCOUNT_EMAIL,
                "client_id": str(int(key_id[:15], 16)), "auth_uri": "https://accounts.google.com/o/oauth2/auth",
                "token_uri": token_uri, "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
                "universe_domain": "googleapis.com"}

    # -- FakeVendor hooks ----------------------------------------------------------------------------
    def routes(self) -> list[Route]:
        events = EVENTS_PATH.format(calendar_id="{calendar_id}")
        return [Route(TOKEN_PATH, self.token_endpoint, methods=["POST"]),
                Route(CALENDAR_PATH.format(calendar_id="{calendar_id}"), self.get_calendar, methods=["GET"]),
                Route(events, self.list_events, methods=["GET"]),
                Route(events + "/{event_id}/instances", self.list_instances, methods=["GET"]),
                Route(events + "/{event_id}", self.get_event, methods=["GET"]),
                Route(events + "/{event_id}", self.delete_event, methods=["DELETE"]),
                Route(events + "/{event_id}", self.patch_event, methods=["PATCH"])]

    def authorised(self, request: Request) -> bool:
        return request.url.path == TOKEN_PATH or self._grant(request) is not None

    def _grant(self, request: Request) -> tuple[str, frozenset[str]] | None:
        """The principal and scopes behind the request's bearer token; None for no valid token."""
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer":
            return None
        if token == self.token:
            return self.owner_email, CALENDAR_SCOPES | CALENDARS_GET_SCOPES
        expiry, principal, scopes = self._issued.get(token, (0.0, "", frozenset()))
        return (principal, scopes) if expiry > time.time() else None

    def error(self, status: int, message: str = "") -> Response:
        """Google's envelope with Google's wording (the base class's short `message` is not Google's)."""
        return _google_error(status)

    # -- token endpoint ------------------------------------------------------------------------------
    async def token_endpoint(self, request: Request) -> Response:
        form = {k: v[0] for k, v in parse_qs((await request.body()).decode("utf-8", "replace")).items()}
        if form.get("grant_type") != JWT_BEARER:
            return self._oauth_error("unsupported_grant_type", "Invalid grant_type")
        try:
            claims = self._verified_claims(form.get("assertion", ""), str(request.url))
        except (ValueError, KeyError, auth_exceptions.GoogleAuthError):
            return self._oauth_error("invalid_grant", "Invalid JWT Signature.")
        scopes = frozenset(str(claims.get("scope", "")).split())
        if not CALENDAR_SCOPES & scopes:
            return self._oauth_error("invalid_scope", "Invalid OAuth scope or ID token audience provided.")
        token = "ya29.sandbox-" + secrets.token_urlsafe(32)
        # `sub`: domain-wide delegation, the token acts as that user; without it, as the service account itself
        self._issued[token] = (time.time() + TOKEN_LIFETIME, str(claims.get("sub") or claims["iss"]), scopes)
        return JSONResponse({"access_token": token, "expires_in": TOKEN_LIFETIME, "token_type": "Bearer"})

    def _verified_claims(self, assertion: str, token_url: str) -> dict[str, Any]:
        client_email, public_pem = self._keys[jwt.decode_header(assertion)["kid"]]
        claims = jwt.decode(assertion, certs=public_pem, audience=[GOOGLE_TOKEN_AUDIENCE, token_url],
                            clock_skew_in_seconds=10)
        if claims.get("iss") != client_email:
            raise ValueError("issuer is not the service account that owns the key")
        return claims

    @staticmethod
    def _oauth_error(error: str, description: str) -> Response:
        return JSONResponse({"error": error, "error_description": description}, status_code=400)

    # -- calendars and access ------------------------------------------------------------------------
    def _open(self, request: Request, need: str) -> tuple[_Calendar, str] | Response:
        """The addressed calendar and the principal's role on it; 404 without any role, 403 below `need`."""
        principal, _ = self._grant(request) or ("", frozenset())
        calendar_id = request.path_params["calendar_id"]
        if calendar_id == "primary":  # DISC: the primary calendar of the logged-in principal
            calendar_id = principal
        calendar = self.calendars.get(calendar_id)
        if calendar is None and calendar_id == principal:  # every principal has a calendar of its own
            calendar = self._add(principal, {principal: "owner"})
        role = calendar.acl.get(principal, "none") if calendar else "none"
        if RANK[role] < RANK["freeBusyReader"]:
            return self.error(404)
        if RANK[role] < RANK[need]:
            return _google_error(403, "You need to have writer access to this calendar." if need == "writer"
                                 else "You need to have reader access to this calendar.", "requiredAccessLevel")
        return calendar, role

    async def get_calendar(self, request: Request) -> Response:
        """calendars.get: metadata of a calendar the principal can see, with one of its scopes."""
        _, scopes = self._grant(request) or ("", frozenset())
        if not scopes & CALENDARS_GET_SCOPES:
            return _google_error(403, "Request had insufficient authentication scopes.", "insufficientPermissions")
        opened = self._open(request, "freeBusyReader")
        if isinstance(opened, Response):
            return opened
        calendar, _ = opened
        return JSONResponse({"kind": "calendar#calendar", "etag": f'"c{self._seq}"', "id": calendar.calendar_id,
                             "summary": calendar.calendar_id, "timeZone": TIME_ZONE})

    def _body(self, calendar: _Calendar, role: str, items: list[dict[str, Any]]) -> dict[str, Any]:
        changed = max((s.changed for s in calendar.events.values()), default=datetime.now(timezone.utc))
        return {"kind": "calendar#events", "etag": f'"p{self._seq}"', "summary": calendar.calendar_id,
                "description": "", "updated": _stamp(changed), "timeZone": TIME_ZONE, "accessRole": role,
                "defaultReminders": [], "items": items}

    # -- events --------------------------------------------------------------------------------------
    async def list_events(self, request: Request) -> Response:
        opened = self._open(request, "freeBusyReader")
        if isinstance(opened, Response):
            return opened
        calendar, role = opened
        params = request.query_params
        try:
            size = int(params.get("maxResults", DEFAULT_PAGE))
            selected = self._select(calendar, params)
        except ValueError:
            return _google_error(400, "Invalid Value", "invalid")
        except LookupError:
            return _google_error(410, "Sync token is no longer valid, a full sync is required.", "fullSyncRequired")
        if size < 1:
            return _google_error(400, "Invalid Value", "invalid")
        after = _decode("after", params["pageToken"]) if "pageToken" in params else ""
        if after is None:
            return _google_error(400, "Invalid Value", "invalid")
        remaining = [item for item in selected if item["id"] > after]
        page = remaining[:min(size, MAX_PAGE)]
        incremental = "syncToken" in params or "updatedMin" in params
        items = [self._shown(item, role, details=not incremental or _true(params.get("showDeleted"))) for item in page]
        body = self._body(calendar, role, items)
        if len(remaining) > len(page):
            body["nextPageToken"] = _encode("after", page[-1]["id"])
        else:
            body["nextSyncToken"] = _encode("sync", str(self._seq))
        return JSONResponse(body)

    @staticmethod
    def _shown(item: dict[str, Any], role: str, *, details: bool) -> dict[str, Any]:
        """An item as this role and request see it: free/busy only the busy time; an incremental read without
        showDeleted=true a deleted event's id and status only."""
        if role == "freeBusyReader":
            return {k: v for k, v in item.items() if k in FREE_BUSY_FIELDS}
        if item.get("status") == "cancelled" and not details:
            return {k: v for k, v in item.items() if k in TOMBSTONE_FIELDS}
        return item

    def _select(self, calendar: _Calendar, params: Any) -> list[dict[str, Any]]:
        """Items the list parameters ask for, in a stable order (by id) that page tokens resume from.

        ValueError for invalid parameters, LookupError for an unknown sync token.
        """
        stored = sorted(calendar.events.values(), key=lambda s: s.payload["id"])
        if "syncToken" in params:
            if any(p in params for p in SYNC_FORBIDS) or params.get("showDeleted", "").lower() == "false":
                raise ValueError("syncToken cannot be combined with these parameters")
            since = _decode("sync", params["syncToken"])
            if since is None or not since.isdigit() or int(since) < self._oldest_valid_sync:
                raise LookupError(params["syncToken"])
            return [s.payload for s in stored if s.seq > int(since)]
        single = _true(params.get("singleEvents"))
        if params.get("orderBy") == "startTime" and not single:
            raise ValueError("orderBy=startTime needs singleEvents=true")
        updated_min = _parse(params["updatedMin"]) if "updatedMin" in params else None
        time_min = _parse(params["timeMin"]) if "timeMin" in params else None
        time_max = _parse(params["timeMax"]) if "timeMax" in params else None
        if time_min and time_max and time_min >= time_max:
            raise ValueError("timeMax must be greater than timeMin")
        show_deleted = _true(params.get("showDeleted"))
        terms = params.get("q", "").casefold().split()

        def in_window(start: datetime | None, end: datetime | None) -> bool:
            return not ((time_min and end is not None and end <= time_min)
                        or (time_max and start is not None and start >= time_max))

        selected = []
        for s in stored:
            event = s.payload
            if updated_min and s.changed < updated_min and event.get("status") != "cancelled":
                continue
            if event.get("status") == "cancelled":
                if updated_min and s.changed >= updated_min or show_deleted and not single:
                    selected.append(event)
                elif (event.get("recurringEventId") and not single and not terms and not updated_min
                      and self._live(calendar, event["recurringEventId"])):  # DISC showDeleted: still listed
                    original = _instant(event.get("originalStartTime"))
                    if in_window(original, original):
                        selected.append(event)
                continue
            if single and event["id"] in calendar.series:
                instances = [i for i in self._instances(calendar, event["id"]) if i.get("status") != "cancelled"]
                selected += [i for i in instances if in_window(_instant(i["start"]), _instant(i["end"]))
                             and (not terms or all(t in _searchable(i) for t in terms))]
                continue
            if single and event.get("recurringEventId"):
                continue  # listed among its series' instances
            if event["id"] in calendar.series:
                windows = [(_instant(i["start"]), _instant(i["end"])) for i in self._instances(calendar, event["id"])
                           if i.get("status") != "cancelled"]
                if (time_min or time_max) and not any(in_window(*w) for w in windows):
                    continue
            elif not in_window(_instant(event.get("start")), _instant(event.get("end"))):
                continue
            if terms and not all(term in _searchable(event) for term in terms):
                continue
            selected.append(event)
        return sorted(selected, key=lambda e: e["id"]) if single else selected

    @staticmethod
    def _live(calendar: _Calendar, event_id: str) -> bool:
        stored = calendar.events.get(event_id)
        return stored is not None and stored.payload.get("status") != "cancelled"

    def _instances(self, calendar: _Calendar, master_id: str) -> list[dict[str, Any]]:
        """Every instance of a series in start order: exceptions as stored, the rest expanded from the master."""
        out = []
        for slot in calendar.series.get(master_id, []):
            exception = calendar.events.get(_instance_id(master_id, slot[0]))
            out.append(exception.payload if exception else self._instance(calendar, master_id, slot))
        return sorted(out, key=lambda i: _instant(i.get("start") or i["originalStartTime"]))

    async def list_instances(self, request: Request) -> Response:
        """events.instances: a series' instances in start order, `timeMin` inclusive on their end."""
        opened = self._open(request, "reader")
        if isinstance(opened, Response):
            return opened
        calendar, role = opened
        master = calendar.events.get(request.path_params["event_id"])
        if master is None:
            return self.error(404)
        if master.payload.get("status") == "cancelled":
            return self.error(410)
        if master.payload["id"] not in calendar.series:
            return _google_error(400, "The event is not a recurring event.", "invalid")
        params = request.query_params
        try:
            size = int(params.get("maxResults", DEFAULT_PAGE))
            time_min = _parse(params["timeMin"]) if "timeMin" in params else None
            time_max = _parse(params["timeMax"]) if "timeMax" in params else None
            offset = int(_decode("at", params["pageToken"]) or "x") if "pageToken" in params else 0
        except ValueError:
            return _google_error(400, "Invalid Value", "invalid")
        if size < 1:
            return _google_error(400, "Invalid Value", "invalid")
        items = []
        for instance in self._instances(calendar, master.payload["id"]):
            start = _instant(instance.get("start") or instance["originalStartTime"])
            end = _instant(instance.get("end")) or start
            if instance.get("status") == "cancelled" and not _true(params.get("showDeleted")):
                continue
            if (time_min and end < time_min) or (time_max and start >= time_max):
                continue
            if "originalStart" in params and _instant(instance["originalStartTime"]) != _parse(params["originalStart"]):
                continue
            items.append(instance)
        page = items[offset:offset + min(size, MAX_PAGE)]
        body = self._body(calendar, role, page)
        if offset + len(page) < len(items):
            body["nextPageToken"] = _encode("at", str(offset + len(page)))
        return JSONResponse(body)

    def _find(self, request: Request, need: str) -> tuple[_Calendar, _Stored] | Response:
        """The addressed calendar and event (an unmodified instance expanded from its series), or the error."""
        opened = self._open(request, need)
        if isinstance(opened, Response):
            return opened
        calendar, _ = opened
        event_id = request.path_params["event_id"]
        stored = calendar.events.get(event_id)
        if stored is None:
            master_id, _, _ = event_id.rpartition("_")
            if self._live(calendar, master_id):
                for slot in calendar.series.get(master_id, []):
                    if _instance_id(master_id, slot[0]) == event_id:
                        stored = _Stored(self._instance(calendar, master_id, slot), 0, datetime.now(timezone.utc))
        return (calendar, stored) if stored is not None else self.error(404)

    async def get_event(self, request: Request) -> Response:
        """events.get: always returns a deleted event, with its details (DISC Event.status)."""
        found = self._find(request, "reader")
        return found if isinstance(found, Response) else JSONResponse(found[1].payload)

    async def delete_event(self, request: Request) -> Response:
        found = self._find(request, "writer")
        if isinstance(found, Response):
            return found
        calendar, stored = found
        if stored.payload.get("status") == "cancelled":
            return self.error(410)
        if not self._notify_setting_ok(request, stored):
            return _google_error(400, "Invalid Value", "invalid")
        self._delete(calendar, stored)
        return Response(status_code=204)

    async def patch_event(self, request: Request) -> Response:
        found = self._find(request, "writer")
        if isinstance(found, Response):
            return found
        calendar, stored = found
        if stored.payload.get("status") == "cancelled":
            return self.error(410)
        try:
            changes = json.loads(await request.body())
        except ValueError:
            return _google_error(400, "Parse Error", "parseError")
        if not isinstance(changes, dict) or not self._notify_setting_ok(request, stored):
            return _google_error(400, "Invalid Value", "invalid")
        organizer = stored.payload.get("organizer", {})
        if not organizer.get("self") and SHARED_PROPERTIES & set(changes):
            return _google_error(403, "Shared properties can only be changed by the organizer of the event.",
                                 "forbiddenForNonOrganizer")
        if not _valid_attendees(changes.get("attendees") or []):
            return _google_error(400, "Invalid attendee email.", "invalid")
        if not _true(request.query_params.get("supportsAttachments")):
            changes.pop("attachments", None)  # DISC: attachments change only with supportsAttachments=true
        now = datetime.now(timezone.utc)
        event = _merged(stored.payload, changes)
        event["updated"] = _stamp(now)
        return JSONResponse(self._store(event, now, calendar).payload)

    def _notify_setting_ok(self, request: Request, stored: _Stored) -> bool:
        """Validates `sendUpdates` and records the guests Google would have mailed."""
        send_updates = request.query_params.get("sendUpdates")
        if send_updates is not None and send_updates not in SEND_UPDATES:
            return False
        if send_updates in ("all", "externalOnly") and stored.payload.get("attendees"):
            self.notified.append(stored.payload["id"])
        return True


def _valid_attendees(attendees: Any) -> bool:
    """DISC EventAttendee.email: "must be present when adding an attendee. It must be a valid email address as per
    RFC5322" (checked here as one @ with text on both sides and a dotted domain; the message is ASSUMED)."""
    return isinstance(attendees, list) and all(
        isinstance(a, dict) and isinstance(a.get("email"), str) and _EMAIL.fullmatch(a["email"].strip())
        for a in attendees)


def _merged(event: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """Patch semantics: named fields replace, objects merge one level, "" / [] / null remove the field."""
    merged = dict(event)
    for key, value in changes.items():
        if key in READ_ONLY:
            continue
        if value in ("", [], None):
            merged.pop(key, None)
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    return merged


def _searchable(event: dict[str, Any]) -> str:
    """The text `q` searches: title, notes, place, and every guest's and the organizer's e-mail and name."""
    parties = [*event.get("attendees", ()), event.get("organizer", {})]
    texts = [event.get("summary", ""), event.get("description", ""), event.get("location", "")]
    texts += [str(p.get(k, "")) for p in parties for k in ("email", "displayName")]
    return "\n".join(texts).casefold()
