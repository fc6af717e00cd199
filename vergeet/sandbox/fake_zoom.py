"""A loopback fake of the Zoom API v2 (cloud recordings, past meeting participants, registrants) and of Zoom's
server-to-server OAuth token endpoint, seeded from the synthetic population's online sessions.

Faithful where the connector depends on it (ZD: developers.zoom.us/docs/api, the Meetings API reference):
- POST /oauth/token?grant_type=account_credentials&account_id=... with HTTP Basic client_id:client_secret answers
  `{"access_token", "token_type": "bearer", "expires_in": 3600, "scope", "api_url"}` (ZD rooms/s2s-oauth: one
  hour, no refresh token, several tokens usable at once); wrong credentials 400 `{"reason", "error":
  "invalid_client"}`, another grant type 400 `unsupported_grant_type` (developers.zoom.us/blog/
  s2s-token-generation-troubleshoot). A token past its hour, or unknown, is 401 `{"code": 124, "message":
  "Invalid access token."}` (devforum.zoom.us/t/95559). `expire_tokens()` ends every token now.
- Error bodies `{"code", "message"}` (ZD api/errors). 404 code 3301 "This recording does not exist."; a UUID that
  starts with "/" or holds "//" sent encoded once reaches Zoom as another path: 404 code 3001 "Meeting does not
  exist." (ZD and PSZoom: such UUIDs must be encoded twice; what Zoom answers to a single encoding is ASSUMED).
- GET /v2/users/{userId}/recordings: `from`/`to` (yyyy-mm-dd, default today), at most a month apart. A wider range
  is NOT refused: the answer covers the month before `to` and says so in its `from` (zoom/api#36, graphaelli/zat#16).
  `page_size` 1..300 (default 30; ASSUMED: more is a 400 code 300), `next_page_token` that expires after 15
  minutes (PSZoom Get-ZoomRecordings; an unknown or expired one is a 400 code 300, ASSUMED), "" on the last page.
  `trash=true&trash_type=meeting_recordings` lists the trash. Meetings newest first (ASSUMED).
- GET /v2/meetings/{meetingId}/recordings: by UUID that instance; by the numeric id the LATEST instance of the
  meeting (ZD: "If the meeting ID is provided instead of UUID, the response will be for the latest meeting
  instance"). DELETE takes `action=trash` (default: to the trash, kept 30 days) or `delete` (permanent), 204;
  DELETE .../recordings/{recordingId} one file. ASSUMED: `action=delete` also empties a trashed recording.
- GET /v2/past_meetings/{meetingUUID}/participants (`user_email`, `name`, paged): only on a paid plan; with
  `paid_plan=False` a 400 code 200 "Only available for Paid or ZMP account" (wording ASSUMED). Participants belong
  to the past meeting and stay when its recording is deleted.
- GET /v2/users/{userId}/meetings?type=scheduled (paged like the recordings): "all valid previous (unexpired)
  meetings, live meetings, and upcoming scheduled meetings" (ZD List meetings); a meeting outlives its recordings.
- GET /v2/meetings/{meetingId}/registrants?status=approved|pending|denied (paged), GET|DELETE
  .../registrants/{registrantId} (DELETE 204). ASSUMED: a meeting without registration answers 400 code 300.
- Rate limits by category (ZD rate-limits, Business plan; Pro has 30 and 20): Light 80/s (one meeting's
  recordings, deletes, one registrant), Medium 60/s (listings, participants, registrants), counted per category;
  over it a 429 `{"code": 429, ...}` with `X-RateLimit-Category`, `X-RateLimit-Type: QPS` and `Retry-After` in
  seconds (ASSUMED for the per-second limit: Zoom documents `Retry-After` for its daily limits; a client that
  starts while another has just used the second's quota meets it, as a second connector does here).

Seeded: each online session of the population is one meeting instance with a cloud recording (MP4, M4A,
TRANSCRIPT, CHAT), hosted by the owner; its participants are the host, the person and sometimes a guest without an
address or a second person (a group session). Every participant but the host is a guest of the account, so their
`user_email` is "" unless they registered for the meeting (the address as they typed it): since March 2022 Zoom
hides guests' addresses except for registrants, calendar invitations through its calendar integrations and
addresses the host entered (Zoom changelog "Zoom API email address display rules", 2022-01-26). Sessions of one person in the same
series share a recurring meeting id; registered ones put the person in that meeting's registrants. Some UUIDs start
with "/" or hold "//", as Zoom's do. Ids and picks come from stable hashes, never from the population's generator.

Not modelled: webinars, other users of the account, the account-level listing, recording settings and sharing,
recovering from the trash, the trash emptying itself after 30 days, daily limits.
"""
from __future__ import annotations

import base64
import hashlib
import math
import secrets
import time
from datetime import date, datetime, timedelta, timezone
from typing import Any
from urllib.parse import unquote

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from vergeet.sandbox.population import Person, Population
from vergeet.sandbox.server import FakeVendor

TOKEN_PATH = "/oauth/token"
TOKEN_LIFETIME = 3600
PAGE_TOKEN_LIFETIME = 900
MAX_PAGE_SIZE = 300
DEFAULT_PAGE_SIZE = 30
SCOPES = ("cloud_recording:read:list_user_recordings:admin cloud_recording:read:list_recording_files:admin "
          "cloud_recording:delete:meeting_cloud_recording:admin meeting:read:list_past_participants:admin "
          "meeting:read:list_registrants:admin meeting:read:registrant:admin meeting:delete:registrant:admin")
#: requests a second per category: the sandbox account is on a Business plan (Pro: Light 30, Medium 20)
CATEGORY_RATES = {"Light": 80, "Medium": 60}
FILE_TYPES = (("MP4", "shared_screen_with_speaker_view", "MP4"), ("M4A", "audio_only", "M4A"),
              ("TRANSCRIPT", "audio_transcript", "VTT"), ("CHAT", "chat_file", "TXT"))


def _hash(*parts: Any) -> bytes:
    return hashlib.sha256("|".join(map(str, parts)).encode()).digest()


def _share(*parts: Any) -> float:
    return int.from_bytes(_hash("share", *parts)[:8], "big") / 2**64


def _uuid(*parts: Any) -> str:
    """A Zoom-like meeting UUID (base64 of 16 bytes); some start with "/" or hold "//", as real ones do."""
    text = base64.b64encode(_hash("uuid", *parts)[:16]).decode()
    pick = _share("uuid-shape", *parts)
    if pick < 0.15:
        return "/" + text[1:]
    if pick < 0.3:
        return text[:5] + "//" + text[7:]
    return text


def _iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _misrouted(segment: str) -> bool:
    """A UUID that starts with "/" or holds "//" sent encoded once: Zoom's router decodes it into slashes that
    split or collapse the path, and finds no such meeting (hence Zoom's rule to encode such UUIDs twice)."""
    return not segment or segment.startswith("/") or "//" in segment


def _month_before(day: date) -> date:
    """The same day a month earlier (the last day of that month when it is shorter)."""
    year, month = (day.year, day.month - 1) if day.month > 1 else (day.year - 1, 12)
    for last in (31, 30, 29, 28):
        try:
            return day.replace(year=year, month=month, day=min(day.day, last))
        except ValueError:
            continue
    raise AssertionError("unreachable")


class ZoomFake(FakeVendor):
    """One Zoom account with one user (the owner) who records coaching sessions to the cloud."""

    name = "zoom"

    def __init__(self, population: Population, *, account_id: str = "sandboxAccount01",
                 client_id: str = "sandboxZoomClient", client_secret: str = "sandbox-zoom-secret-not-a-secret",
                 owner_email: str = "info@jessworks.nl", paid_plan: bool = True,
                 rate_calls: int | None = None, rate_period: float | None = None):
        self.population = population
        self.account_id, self.client_id, self.client_secret = account_id, client_id, client_secret
        self.owner_email = owner_email
        self.paid_plan = paid_plan
        self.token_lifetime = TOKEN_LIFETIME
        self.tokens: dict[str, float] = {}  # access token -> when it expires (monotonic)
        self.meetings: dict[str, dict[str, Any]] = {}  # uuid -> meeting with its recording files
        self.trash: dict[str, dict[str, Any]] = {}  # uuid -> a trashed meeting recording
        self.participants: dict[str, list[dict[str, Any]]] = {}  # uuid -> the past meeting's participants
        self.registrants: dict[int, list[dict[str, Any]]] = {}  # meeting id -> registrants (registration on)
        self.scheduled: dict[int, dict[str, Any]] = {}  # meeting id -> the meeting, which outlives its recordings
        self._page_tokens: dict[str, tuple[str, int, float]] = {}  # token -> (listing key, offset, expiry)
        self._category_windows: dict[str, list[float]] = {name: [] for name in CATEGORY_RATES}
        self.category_rates = dict(CATEGORY_RATES)
        for person in population.people:
            if person.zoom is not None:
                self.add_person(person)
        super().__init__(token=client_secret, rate_calls=rate_calls, rate_period=rate_period)
        if rate_calls is not None:
            self.category_rates = {name: rate_calls for name in CATEGORY_RATES}
        self.rate_calls = None  # limits are per category, in `_over_category`

    # -- seeding and changing ------------------------------------------------------------------------------------
    def add_person(self, person: Person) -> list[str]:
        """A recorded meeting per online session of the person, with its participants and registrants."""
        added = []
        others = [p for p in self.population.people if p.zoom is not None and p.key != person.key]
        for number, session in enumerate(person.zoom.sessions if person.zoom else []):
            meeting_id = 80_000_000_000 + int.from_bytes(_hash("meeting", person.key, session.series)[:4], "big")
            uuid = _uuid(person.key, number, session.start.isoformat())
            # a guest's address is shown only when they registered (Zoom's e-mail display rules, 2022)
            people = [{"name": person.name, "user_email": person.zoom.email if session.registered else ""}]
            if others and _share("group", person.key, number) < 0.15:
                other = others[int(_share("who", person.key, number) * len(others))]
                people.append({"name": other.name, "user_email": ""})
            if _share("guest", person.key, number) < 0.2:
                people.append({"name": "iPhone", "user_email": ""})
            self.add_meeting(uuid, meeting_id, session.start, session.minutes, session.topic, people)
            if session.registered:
                self.add_registrant(meeting_id, person, session.start - timedelta(days=3))
            added.append("recording")
        return added

    def add_meeting(self, uuid: str, meeting_id: int, start: datetime, minutes: int, topic: str,
                    people: list[dict[str, str]]) -> None:
        """One recorded meeting instance; `people` are its participants besides the host."""
        files = [{"id": base64.b16encode(_hash("file", uuid, kind)[:8]).decode().lower(), "meeting_id": uuid,
                  "recording_start": _iso(start), "recording_end": _iso(start + timedelta(minutes=minutes)),
                  "file_type": kind, "file_extension": extension, "file_size": 1000 + len(uuid) * 37,
                  "recording_type": recording_type, "status": "completed",
                  "download_url": f"https://zoom.us/rec/download/{_hash('url', uuid, kind).hex()[:16]}",
                  "play_url": f"https://zoom.us/rec/play/{_hash('url', uuid, kind).hex()[:16]}"}
                 for kind, recording_type, extension in FILE_TYPES]
        self.meetings[uuid] = {
            "uuid": uuid, "id": meeting_id, "account_id": self.account_id, "host_id": "sandboxHost01",
            "host_email": self.owner_email, "topic": topic, "type": 8 if meeting_id % 2 else 2,
            "start_time": _iso(start), "timezone": "Europe/Amsterdam", "duration": minutes,
            "total_size": sum(f["file_size"] for f in files), "recording_count": len(files),
            "share_url": f"https://zoom.us/rec/share/{_hash('share', uuid).hex()[:16]}", "recording_files": files}
        self.scheduled.setdefault(meeting_id, {
            "uuid": uuid, "id": meeting_id, "host_id": "sandboxHost01", "topic": topic, "type": 8 if meeting_id % 2
            else 2, "start_time": _iso(start), "duration": minutes, "timezone": "Europe/Amsterdam",
            "created_at": _iso(start - timedelta(days=7)), "join_url": f"https://zoom.us/j/{meeting_id}"})
        host = {"name": "JessWorks", "user_email": self.owner_email}
        self.participants[uuid] = [
            {"id": base64.b16encode(_hash("participant", uuid, index)[:6]).decode().lower(), "name": who["name"],
             "user_email": who["user_email"], "join_time": _iso(start),
             "leave_time": _iso(start + timedelta(minutes=minutes)), "duration": minutes * 60}
            for index, who in enumerate([host, *people])]

    def add_registrant(self, meeting_id: int, person: Person, at: datetime) -> str:
        registrant_id = base64.urlsafe_b64encode(_hash("registrant", meeting_id, person.key)[:12]).decode()
        rows = self.registrants.setdefault(meeting_id, [])
        if all(row["id"] != registrant_id for row in rows):
            rows.append({"id": registrant_id, "email": person.zoom.email if person.zoom else person.email,
                         "first_name": person.first_name, "last_name": person.last_name,
                         "phone": person.phone or "", "status": "approved", "create_time": _iso(at),
                         "join_url": f"https://zoom.us/w/{meeting_id}?tk={registrant_id}"})
        return registrant_id

    def change(self, pick: int) -> str:
        """A transcript file is deleted in Zoom's web app (the recording stays)."""
        uuid = sorted(self.meetings)[pick % len(self.meetings)]
        files = self.meetings[uuid]["recording_files"]
        self.meetings[uuid]["recording_files"] = [f for f in files if f["file_type"] != "TRANSCRIPT"] or files
        return "recording"

    def remove(self, pick: int) -> str:
        """The owner deletes a recording in Zoom's web app: it goes to the trash."""
        uuid = sorted(self.meetings)[pick % len(self.meetings)]
        self.trash[uuid] = self.meetings.pop(uuid)
        return "recording"

    def first_day(self) -> date:
        """The first day of the month of the oldest recording (today without any)."""
        days = [date.fromisoformat(m["start_time"][:10]) for m in [*self.meetings.values(), *self.trash.values()]]
        return min(days, default=datetime.now(timezone.utc).date()).replace(day=1)

    def expire_tokens(self) -> None:
        """Every token issued so far is past its hour."""
        self.tokens = {token: 0.0 for token in self.tokens}

    # -- the gate ----------------------------------------------------------------------------------------------
    def routes(self) -> list[Route]:
        return [Route(TOKEN_PATH, self.token_endpoint, methods=["POST"]),
                Route("/v2/users/{user}/recordings", self.list_recordings, methods=["GET"]),
                Route("/v2/users/{user}/meetings", self.list_meetings, methods=["GET"]),
                Route("/v2/meetings/{rest:path}", self.meeting_calls, methods=["GET", "DELETE"]),
                Route("/v2/past_meetings/{rest:path}", self.past_meeting_calls, methods=["GET"])]

    def authorised(self, request: Request) -> bool:
        if request.url.path == TOKEN_PATH:
            return True
        token = request.headers.get("authorization", "").removeprefix("Bearer ")
        return self.tokens.get(token, 0.0) > time.monotonic()

    def error(self, status: int, message: str = "", *, code: int | None = None) -> Response:
        if status == 401:
            return JSONResponse({"code": 124, "message": "Invalid access token."}, status_code=401)
        return JSONResponse({"code": code if code is not None else status, "message": message}, status_code=status)

    def _over_category(self, category: str) -> Response | None:
        """Zoom's 429 when this category's per-second quota is spent."""
        now = time.monotonic()
        with self._lock:
            window = [moment for moment in self._category_windows[category] if now - moment < self.rate_period]
            over = len(window) >= self.category_rates[category]
            if not over:
                window.append(now)
            self._category_windows[category] = window
        if not over:
            return None
        response = self.error(429, "You have reached the maximum per-second rate limit for this API. Try again "
                                   "later.", code=429)
        response.headers.update({"X-RateLimit-Category": category, "X-RateLimit-Type": "QPS",
                                 "Retry-After": str(max(1, math.ceil(self.rate_period - (now - window[0]))))})
        return response

    async def token_endpoint(self, request: Request) -> Response:
        expected = base64.b64encode(f"{self.client_id}:{self.client_secret}".encode()).decode()
        if request.query_params.get("grant_type") != "account_credentials":
            return JSONResponse({"reason": "unsupported grant type", "error": "unsupported_grant_type"},
                                status_code=400)
        if (request.headers.get("authorization") != f"Basic {expected}"
                or request.query_params.get("account_id") != self.account_id):
            return JSONResponse({"reason": "Invalid client_id or client_secret", "error": "invalid_client"},
                                status_code=400)
        token = secrets.token_urlsafe(24)
        self.tokens[token] = time.monotonic() + self.token_lifetime
        return JSONResponse({"access_token": token, "token_type": "bearer", "expires_in": self.token_lifetime,
                             "scope": SCOPES, "api_url": "https://api.zoom.us"})

    # -- listings ----------------------------------------------------------------------------------------------
    def _page(self, request: Request, key: str, listing: str, items: list[dict[str, Any]],
              extra: dict[str, Any] | None = None) -> Response:
        """One page of `items` by `page_size` and `next_page_token`, as Zoom pages."""
        size_text = request.query_params.get("page_size", str(DEFAULT_PAGE_SIZE))
        if not size_text.isdigit() or not 1 <= int(size_text) <= MAX_PAGE_SIZE:
            return self.error(400, "Invalid field.", code=300)
        size, offset = int(size_text), 0
        token = request.query_params.get("next_page_token")
        if token:
            kept = self._page_tokens.get(token)
            if kept is None or kept[0] != listing or kept[2] < time.monotonic():
                return self.error(400, "Invalid next_page_token.", code=300)
            offset = kept[1]
        following = ""
        if offset + size < len(items):
            following = secrets.token_urlsafe(16)
            self._page_tokens[following] = (listing, offset + size, time.monotonic() + PAGE_TOKEN_LIFETIME)
        return JSONResponse({**(extra or {}), "page_size": size, "total_records": len(items),
                             "next_page_token": following, key: items[offset:offset + size]})

    async def list_recordings(self, request: Request) -> Response:
        if limited := self._over_category("Medium"):
            return limited
        if request.path_params["user"] not in ("me", "sandboxHost01", self.owner_email):
            return self.error(404, "User does not exist.", code=1001)
        today = datetime.now(timezone.utc).date()
        try:
            end = date.fromisoformat(request.query_params.get("to", today.isoformat()))
            start = date.fromisoformat(request.query_params.get("from", today.isoformat()))
        except ValueError:
            return self.error(400, "Invalid field.", code=300)
        start = max(start, _month_before(end))  # Zoom answers for the last month before `to`, saying so in `from`
        trash = request.query_params.get("trash") == "true"
        store = self.trash if trash else self.meetings
        chosen = sorted((m for m in store.values() if start <= date.fromisoformat(m["start_time"][:10]) <= end),
                        key=lambda m: m["start_time"], reverse=True)
        listing = f"recordings {start} {end} {trash}"
        return self._page(request, "meetings", listing, chosen, {"from": start.isoformat(), "to": end.isoformat()})

    async def list_meetings(self, request: Request) -> Response:
        if limited := self._over_category("Medium"):
            return limited
        if request.path_params["user"] not in ("me", "sandboxHost01", self.owner_email):
            return self.error(404, "User does not exist.", code=1001)
        kind = request.query_params.get("type", "scheduled")
        if kind not in ("scheduled", "live", "upcoming", "upcoming_meetings", "previous_meetings"):
            return self.error(400, "Invalid field.", code=300)
        chosen = sorted(self.scheduled.values(), key=lambda m: m["id"]) if kind == "scheduled" else []
        return self._page(request, "meetings", f"meetings {kind}", chosen)

    # -- one meeting ---------------------------------------------------------------------------------------------
    def _segments(self, request: Request, prefix: str) -> list[str]:
        """The path after `prefix` in segments, each decoded once as Zoom's router does (a double-encoded UUID is
        decoded once more by the handler)."""
        raw = request.scope.get("raw_path", request.url.path.encode()).decode("latin-1").split("?", 1)[0]
        return [unquote(part) for part in raw[len(prefix):].split("/")]

    def _instance(self, key: str, store: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
        """The meeting a path segment names: a UUID (decoded twice when it was double-encoded) or the numeric id's
        latest instance."""
        if key.isdigit():
            instances = [m for m in store.values() if m["id"] == int(key)]
            return max(instances, key=lambda m: m["start_time"], default=None)
        return store.get(unquote(key) if "%" in key else key)

    async def meeting_calls(self, request: Request) -> Response:
        parts = self._segments(request, "/v2/meetings/")
        if len(parts) >= 2 and parts[1] == "registrants":
            return await self._registrant_calls(request, parts)
        if len(parts) not in (2, 3) or parts[1] != "recordings" or _misrouted(parts[0]):
            return self.error(404, "Meeting does not exist.", code=3001)
        if limited := self._over_category("Light"):
            return limited
        meeting = self._instance(parts[0], self.meetings)
        trashed = self._instance(parts[0], self.trash) if meeting is None else None
        if request.method == "GET":
            return JSONResponse(meeting) if meeting else self.error(404, "This recording does not exist.", code=3301)
        action = request.query_params.get("action", "trash")
        if action not in ("trash", "delete"):
            return self.error(400, "Invalid field.", code=300)
        if meeting is None and not (trashed and action == "delete"):
            return self.error(404, "This recording does not exist.", code=3301)
        if len(parts) == 3:
            return self._delete_file(meeting or trashed, parts[2])
        uuid = (meeting or trashed)["uuid"]
        self.meetings.pop(uuid, None)
        self.trash.pop(uuid, None)
        if action == "trash":
            self.trash[uuid] = meeting
        return Response(status_code=204)

    def _delete_file(self, meeting: dict[str, Any], file_id: str) -> Response:
        files = meeting["recording_files"]
        if all(f["id"] != file_id for f in files):
            return self.error(404, "This recording does not exist.", code=3301)
        meeting["recording_files"] = [f for f in files if f["id"] != file_id]
        return Response(status_code=204)

    async def past_meeting_calls(self, request: Request) -> Response:
        parts = self._segments(request, "/v2/past_meetings/")
        if len(parts) != 2 or parts[1] != "participants" or _misrouted(parts[0]):
            return self.error(404, "Meeting does not exist.", code=3001)
        if limited := self._over_category("Medium"):
            return limited
        if not self.paid_plan:
            return self.error(400, f"Only available for Paid or ZMP account: {self.account_id}", code=200)
        key = parts[0]
        if key.isdigit():
            instance = self._instance(key, {**self.trash, **self.meetings})
            key = instance["uuid"] if instance else key
        uuid = unquote(key) if "%" in key else key
        if uuid not in self.participants:
            return self.error(404, "Meeting does not exist.", code=3001)
        return self._page(request, "participants", f"participants {uuid}", self.participants[uuid])

    async def _registrant_calls(self, request: Request, parts: list[str]) -> Response:
        category = "Medium" if len(parts) == 2 else "Light"
        if limited := self._over_category(category):
            return limited
        if not parts[0].isdigit() or len(parts) > 3:
            return self.error(404, "Meeting does not exist.", code=3001)
        meeting_id = int(parts[0])
        if meeting_id not in self.scheduled:
            return self.error(404, "Meeting does not exist.", code=3001)
        if meeting_id not in self.registrants:
            return self.error(400, "Registration has not been enabled for this meeting.", code=300)
        rows = self.registrants[meeting_id]
        if len(parts) == 2:
            if request.method != "GET":
                return self.error(405, "Method not allowed.", code=300)
            status = request.query_params.get("status", "approved")
            if status not in ("approved", "pending", "denied"):
                return self.error(400, "Invalid field.", code=300)
            chosen = [row for row in rows if row["status"] == status]
            return self._page(request, "registrants", f"registrants {meeting_id} {status}", chosen)
        row = next((row for row in rows if row["id"] == parts[2]), None)
        if row is None:
            return self.error(404, "Registrant not found.", code=3001)
        if request.method == "GET":
            return JSONResponse(row)
        rows.remove(row)
        return Response(status_code=204)
