"""Google Calendar API v3 sandbox: one calendar's events plus a service-account token endpoint.

Paths, parameters and field names follow the discovery document shipped with google-api-python-client 2.202.0
(calendar.v3.json): events list/get/delete/patch under `/calendar/v3/calendars/{calendarId}/events`, so
`build(..., client_options={"api_endpoint": "<server>/calendar/v3/"})` talks to it unchanged. Behaviour modelled
on Google's documentation:
- list: `maxResults` (default 250, at most 2500) with `nextPageToken`, `nextSyncToken` on the last page only,
  `showDeleted`, `updatedMin` (deleted events always included), `timeMin`/`timeMax`, `q` (every term must occur,
  case-insensitive, in summary, description, location, attendee or organizer e-mail and displayName), and
  `syncToken` (only what changed since; combined with q/updatedMin/timeMin/timeMax/orderBy/iCalUID or with
  `showDeleted=false` it is a 400; an unknown or expired token (`expire_sync_tokens`) is 410 fullSyncRequired).
- delete leaves a `status: "cancelled"` tombstone with kind/etag/id only, as in the vendor fixture.
- patch replaces the fields it names (nested objects merged one level); fields set to "" or [] disappear.
- Errors use Google's JSON envelope {"error": {"code", "message", "errors": [{"domain", "reason", "message"}]}}.
ASSUMED (unverified): the exact message strings, and that delete AND patch of a deleted event answer 410
"deleted" (Google documents 410 for deleting twice; a tombstone is still returned by get).

Tokens: POST /token takes the service-account JWT-bearer grant google-auth sends, checks the JWT's signature
against the key pair `service_account_info()` issued, its issuer, audience, expiry and a calendar scope, and
answers `{"access_token", "expires_in": 3600, "token_type": "Bearer"}`. The events routes accept only tokens
issued that way, plus the constructor's `token` (a token issued before; random unless given).
Guests "mailed" by delete/patch with sendUpdates all/externalOnly are recorded in `notified` (event ids).
"""
from __future__ import annotations

import base64
import copy
import hashlib
import json
import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
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

EVENTS_PATH = "/calendar/v3/calendars/{calendar_id}/events"
TOKEN_PATH = "/token"
TIME_ZONE = "Europe/Amsterdam"
DEFAULT_PAGE, MAX_PAGE = 250, 2500
TOKEN_LIFETIME = 3600
#: how long before an appointment its event was created
BOOKED_AHEAD = timedelta(days=7)
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
#: google-auth always signs for Google's own token endpoint, whatever `token_uri` it posts to
GOOGLE_TOKEN_AUDIENCE = "https://oauth2.googleapis.com/token"
CALENDAR_SCOPES = frozenset({"https://www.googleapis.com/auth/calendar",
                             "https://www.googleapis.com/auth/calendar.events"})
SERVICE_ACCOUNT_EMAIL = "vergeet@vergeet-sandbox.iam.gserviceaccount.com"
SEND_UPDATES = frozenset({"all", "externalOnly", "none"})
READ_ONLY = frozenset({"kind", "etag", "id", "htmlLink", "created", "updated", "creator", "organizer", "iCalUID"})
SYNC_FORBIDS = ("q", "updatedMin", "timeMin", "timeMax", "orderBy", "iCalUID")

#: status -> (domain, reason, message) of Google's error envelope
GOOGLE_ERRORS = {
    400: ("global", "badRequest", "Bad Request"),
    401: ("global", "authError", "Invalid Credentials"),
    404: ("global", "notFound", "Not Found"),
    410: ("global", "deleted", "Resource has been deleted"),
    429: ("usageLimits", "rateLimitExceeded", "Rate Limit Exceeded"),
    500: ("global", "backendError", "Backend Error"),
    503: ("global", "backendError", "Backend Error"),
}


@dataclass
class _Stored:
    """One event as kept: its payload, the change sequence number that syncTokens count, and when it changed."""

    payload: dict[str, Any]
    seq: int
    changed: datetime


def _stamp(moment: datetime) -> str:
    """Google's `created`/`updated` form: UTC with milliseconds and Z."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _local(moment: datetime) -> dict[str, str]:
    return {"dateTime": moment.astimezone(ZoneInfo(TIME_ZONE)).isoformat(), "timeZone": TIME_ZONE}


def _parse(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError("an RFC 3339 timestamp needs a time zone offset")
    return moment


def _event_id(*parts: str) -> str:
    """A stable id in Google's alphabet (base32hex, lower case)."""
    digest = hashlib.sha1("/".join(parts).encode()).digest()
    return base64.b32hexencode(digest).decode().rstrip("=").lower()


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


class CalendarFake(FakeVendor):
    """The events of one calendar, seeded with one event per appointment in the population."""

    name = "google_calendar"
    #: Google's default quota: 600 requests per minute per user per project
    rate_calls = 600
    rate_period = 60.0

    def __init__(self, population: Population, *, token: str | None = None, rate_calls: int | None = None,
                 rate_period: float | None = None, calendar_id: str = "primary",
                 owner_email: str = "info@jessworks.nl"):
        self.calendar_id, self.owner_email = calendar_id, owner_email
        self.events: dict[str, _Stored] = {}
        self.notified: list[str] = []
        self._seq = 0
        self._oldest_valid_sync = 0  # sync tokens from before this change number have expired
        self._keys: dict[str, tuple[str, str]] = {}  # private_key_id -> (client_email, public key PEM)
        self._issued: dict[str, float] = {}  # access token -> expiry (epoch seconds)
        super().__init__(token=token or secrets.token_urlsafe(24), rate_calls=rate_calls, rate_period=rate_period)
        for person in population.people:
            if person.calendar is not None:
                self.add_person(person)

    # -- seeding, changing and state -----------------------------------------------------------------
    def add_person(self, person: Person) -> list[str]:
        """One event per appointment of a person with a Calendar presence."""
        for index, appointment in enumerate(person.calendar.appointments):
            self._store(self._seed_event(person, index, appointment), appointment.start - BOOKED_AHEAD)
        return ["event"] * len(person.calendar.appointments)

    def change(self, pick: int) -> str:
        """The live event `pick` lands on moves a day later, or its guest's e-mail changes."""
        live = sorted((s for s in self.events.values() if s.payload.get("status") != "cancelled"),
                      key=lambda s: s.payload["id"])
        event = copy.deepcopy(live[pick % len(live)].payload)
        if pick % 2:
            for attendee in event.get("attendees", []):
                if not attendee.get("self"):
                    attendee["email"] = f"changed{pick}@example.nl"
        else:
            for edge in ("start", "end"):
                moved = datetime.fromisoformat(event[edge]["dateTime"]) + timedelta(days=1)
                event[edge] = _local(moved)
        now = datetime.now(timezone.utc)
        event["updated"] = _stamp(now)
        self._store(event, now)
        return "event"

    def remove(self, pick: int) -> str:
        """The live event `pick` lands on is deleted (a tombstone, as `delete_event` leaves)."""
        live = sorted(stored.payload["id"] for stored in self.events.values()
                      if stored.payload.get("status") != "cancelled")
        self._store({"kind": "calendar#event", "id": live[pick % len(live)], "status": "cancelled"},
                    datetime.now(timezone.utc))
        return "event"

    def expire_sync_tokens(self) -> None:
        """Every sync token issued so far answers 410 Gone from now on, as Google's do after a while."""
        self._seq += 1  # tokens issued from now on carry this number or a later one
        self._oldest_valid_sync = self._seq
    def _seed_event(self, person: Person, index: int, appointment: Appointment) -> dict[str, Any]:
        event_id = _event_id(person.key, str(index))
        created = _stamp(appointment.start - BOOKED_AHEAD)
        owner = {"email": self.owner_email, "self": True}
        event = {
            "kind": "calendar#event", "id": event_id, "status": "confirmed",
            "htmlLink": "https://www.google.com/calendar/event?eid="
                        + base64.urlsafe_b64encode(f"{event_id} {self.owner_email}".encode()).decode().rstrip("="),
            "created": created, "updated": created, "summary": appointment.summary,
            "description": appointment.description, "location": appointment.location,
            "creator": dict(owner), "organizer": dict(owner),
            "start": _local(appointment.start),
            "end": _local(appointment.start + timedelta(minutes=appointment.minutes)),
            "iCalUID": f"{event_id}@google.com", "sequence": 0,
            "attendees": [{"email": person.calendar.email, "displayName": person.name, "responseStatus": "accepted"},
                          {**owner, "organizer": True, "responseStatus": "accepted"}],
            "reminders": {"useDefault": True}, "eventType": "default",
        }
        return {key: value for key, value in event.items() if value != ""}

    def _store(self, payload: dict[str, Any], changed: datetime) -> _Stored:
        self._seq += 1
        payload["etag"] = f'"{3181161784712000 + self._seq}"'
        stored = _Stored(payload, self._seq, changed)
        self.events[payload["id"]] = stored
        return stored

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
                Route(events, self.list_events, methods=["GET"]),
                Route(events + "/{event_id}", self.get_event, methods=["GET"]),
                Route(events + "/{event_id}", self.delete_event, methods=["DELETE"]),
                Route(events + "/{event_id}", self.patch_event, methods=["PATCH"])]

    def authorised(self, request: Request) -> bool:
        if request.url.path == TOKEN_PATH:
            return True
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        return scheme.lower() == "bearer" and (token == self.token or self._issued.get(token, 0) > time.time())

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
        if not CALENDAR_SCOPES & set(str(claims.get("scope", "")).split()):
            return self._oauth_error("invalid_scope", "Invalid OAuth scope or ID token audience provided.")
        token = "ya29.sandbox-" + secrets.token_urlsafe(32)
        self._issued[token] = time.time() + TOKEN_LIFETIME
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

    # -- events --------------------------------------------------------------------------------------
    def _known_calendar(self, request: Request) -> bool:
        return request.path_params["calendar_id"] in (self.calendar_id, "primary", self.owner_email)

    def _find(self, request: Request) -> _Stored | Response:
        """The addressed event, or the error response for an unknown calendar or event."""
        stored = self.events.get(request.path_params["event_id"]) if self._known_calendar(request) else None
        return stored if stored is not None else self.error(404)

    async def list_events(self, request: Request) -> Response:
        if not self._known_calendar(request):
            return self.error(404)
        params = request.query_params
        try:
            size = int(params.get("maxResults", DEFAULT_PAGE))
            selected = self._select(params)
        except ValueError:
            return _google_error(400, "Invalid Value", "invalid")
        except LookupError:
            return _google_error(410, "Sync token is no longer valid, a full sync is required.", "fullSyncRequired")
        if size < 1:
            return _google_error(400, "Invalid Value", "invalid")
        after = _decode("after", params["pageToken"]) if "pageToken" in params else ""
        if after is None:
            return _google_error(400, "Invalid Value", "invalid")
        remaining = [s for s in selected if s.payload["id"] > after]
        page = remaining[:min(size, MAX_PAGE)]
        body: dict[str, Any] = {
            "kind": "calendar#events", "etag": f'"p{self._seq}"', "summary": self.owner_email, "description": "",
            "updated": _stamp(max((s.changed for s in self.events.values()), default=datetime.now(timezone.utc))),
            "timeZone": TIME_ZONE, "accessRole": "owner", "defaultReminders": [],
            "items": [s.payload for s in page]}
        if len(remaining) > len(page):
            body["nextPageToken"] = _encode("after", page[-1].payload["id"])
        else:
            body["nextSyncToken"] = _encode("sync", str(self._seq))
        return JSONResponse(body)

    def _select(self, params: Any) -> list[_Stored]:
        """Events the list parameters ask for, in a stable order (by id) that page tokens resume from.

        ValueError for invalid parameters, LookupError for an unknown sync token.
        """
        stored = sorted(self.events.values(), key=lambda s: s.payload["id"])
        if "syncToken" in params:
            if any(p in params for p in SYNC_FORBIDS) or params.get("showDeleted", "").lower() == "false":
                raise ValueError("syncToken cannot be combined with these parameters")
            since = _decode("sync", params["syncToken"])
            if since is None or not since.isdigit() or int(since) < self._oldest_valid_sync:
                raise LookupError(params["syncToken"])
            return [s for s in stored if s.seq > int(since)]
        if params.get("orderBy") == "startTime" and not _true(params.get("singleEvents")):
            raise ValueError("orderBy=startTime needs singleEvents=true")
        updated_min = _parse(params["updatedMin"]) if "updatedMin" in params else None
        time_min = _parse(params["timeMin"]) if "timeMin" in params else None
        time_max = _parse(params["timeMax"]) if "timeMax" in params else None
        terms = params.get("q", "").casefold().split()
        selected = []
        for s in stored:
            if s.payload.get("status") == "cancelled":
                if _true(params.get("showDeleted")) or (updated_min and s.changed >= updated_min):
                    selected.append(s)
                continue
            if updated_min and s.changed < updated_min:
                continue
            if time_min and _parse(s.payload["end"]["dateTime"]) <= time_min:
                continue
            if time_max and _parse(s.payload["start"]["dateTime"]) >= time_max:
                continue
            if terms and not all(term in _searchable(s.payload) for term in terms):
                continue
            selected.append(s)
        return selected

    async def get_event(self, request: Request) -> Response:
        found = self._find(request)
        return found if isinstance(found, Response) else JSONResponse(found.payload)

    async def delete_event(self, request: Request) -> Response:
        found = self._find(request)
        if isinstance(found, Response):
            return found
        if found.payload.get("status") == "cancelled":
            return self.error(410)
        if not self._notify_setting_ok(request, found):
            return _google_error(400, "Invalid Value", "invalid")
        tombstone = {"kind": "calendar#event", "id": found.payload["id"], "status": "cancelled"}
        self._store(tombstone, datetime.now(timezone.utc))
        return Response(status_code=204)

    async def patch_event(self, request: Request) -> Response:
        found = self._find(request)
        if isinstance(found, Response):
            return found
        if found.payload.get("status") == "cancelled":
            return self.error(410)
        try:
            changes = json.loads(await request.body())
        except ValueError:
            return _google_error(400, "Parse Error", "parseError")
        if not isinstance(changes, dict) or not self._notify_setting_ok(request, found):
            return _google_error(400, "Invalid Value", "invalid")
        now = datetime.now(timezone.utc)
        event = _merged(found.payload, changes)
        event["updated"] = _stamp(now)
        return JSONResponse(self._store(event, now).payload)

    def _notify_setting_ok(self, request: Request, stored: _Stored) -> bool:
        """Validates `sendUpdates` and records the guests Google would have mailed."""
        send_updates = request.query_params.get("sendUpdates")
        if send_updates is not None and send_updates not in SEND_UPDATES:
            return False
        if send_updates in ("all", "externalOnly") and stored.payload.get("attendees"):
            self.notified.append(stored.payload["id"])
        return True


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
