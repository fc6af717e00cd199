"""Zoom API v2 connector: cloud recordings (with their transcripts and chats) and meeting registrants.

A coaching session's recording is the most sensitive record the business holds, so this connector reads every
cloud recording, finds out who was in it (the past meeting's participants, the meeting's registrants), and deletes
it permanently when its rule says so.

Vendor facts this module relies on (ZD: developers.zoom.us/docs/api, the Meetings API reference; the other sources
are named where they are used):
- Server-to-server OAuth (ZD rooms/s2s-oauth, "Generate access token"): POST https://zoom.us/oauth/token with
  `grant_type=account_credentials&account_id=...` and HTTP Basic `client_id:client_secret`; the token lives one
  hour (3600 s), there is no refresh token, a new one is simply asked for. A token that expired or was replaced
  answers 401 `{"code": 124, "message": "Invalid access token."}` (devforum.zoom.us/t/95559): the token is asked
  for again once and the request repeated. A token without a scope answers code 4711 (ZD OAuth error messages).
- Error bodies are `{"code", "message"}` (ZD api/errors); `message` can quote ids and addresses, so only the code
  is kept. 3301 "This recording does not exist" (404) is "already gone"; 3001 "Meeting does not exist" (404).
- `GET /users/{userId}/recordings` (Medium): `from`/`to` as yyyy-mm-dd, at most one month apart; a wider range is
  not refused: Zoom answers 200 for the last month before `to` only and says so in the answer's `from`
  (zoom/api#36, graphaelli/zat#16, onyx-dot-app/onyx#14733). So the history is read month by month and an answer
  whose `from`/`to` are not the ones asked for fails the read instead of passing for "no recordings".
  `page_size` at most 300, `next_page_token` ("" on the last page; it expires after 15 minutes, PSZoom
  Get-ZoomRecordings). `trash=true&trash_type=meeting_recordings` lists the trash instead.
- `GET|DELETE /meetings/{meetingId}/recordings`: by the numeric meeting id Zoom answers for the LATEST instance of
  a recurring meeting, so every call here addresses one meeting by its UUID. A UUID that starts with "/" or
  contains "//" must be URL-encoded twice (PSZoom Remove-ZoomMeetingRecordings, ZD). DELETE takes
  `action=trash` (the default: kept 30 days in the trash, restorable) or `action=delete` (permanent), and answers
  204.
- `GET /past_meetings/{meetingUUID}/participants` (Medium; `participants[].user_email`, `name`; paged like the
  list) needs a paid plan (Pro or higher): ASSUMED that a refusal is a 400 (Zoom's "Only available for Paid or
  ZMP account" answers carry code 200), and a 404 for a meeting whose report Zoom no longer has.
- `GET /users/{userId}/meetings?type=scheduled` (Medium): "all valid previous (unexpired) meetings, live meetings,
  and upcoming scheduled meetings" (ZD List meetings), paged like the recordings; a meeting outlives its
  recordings, so its registrants are read through it.
- `GET /meetings/{meetingId}/registrants` (Medium) takes `status` approved (the default), pending or denied;
  `GET|DELETE /meetings/{meetingId}/registrants/{registrantId}` one registrant (DELETE 204). ASSUMED: a meeting
  without registration answers a 400, a meeting that ended and expired 404 (code 3001).
- Rate limits per account, by category (ZD rate-limits; zoom-plugin rest-api/references/rate-limits.md): Pro
  Light 30/s, Medium 20/s, Heavy 10/s; Business and up more. Cloud recording needs a paid plan, so the default
  pace is Pro's Medium (20 a second). A 429 names the category in `X-RateLimit-Category` and the kind in
  `X-RateLimit-Type` (QPS or daily); a daily limit carries `Retry-After`, which `connectors.http` honours.

Choices:
- A recording's record id is its meeting UUID; its files (video, audio, transcript VTT, closed captions, chat) are
  part of it, listed in `recording_files`, and go with it.
- Delete is `action=delete`, never `trash`: the statement promises the recording is gone after the year, and a
  trashed one stays 30 days, restorable by anyone with the account. The delete is verified: the recording must be
  gone from the meeting AND absent from the trash of its month; one still in the trash is a task for the owner.
- Who was in a recording: its participants' and registrants' e-mail addresses and names, without the host's
  address and `own_emails`. Zoom hides a guest's address (someone not on the business's account) unless they
  registered for the meeting, were on its calendar invitation through Zoom's calendar integration, or the host
  entered it (Zoom changelog "Zoom API email address display rules", 2022-01-26): a client who joined by the link
  is a display name only. A recording with no address of anyone besides the host is named by the first display
  name of who else took part, and lists those guests, so its rule acts on it and a search by their names finds
  it (a possible match, never a link). When Zoom refuses the participant list (a plan without reports, a missing
  scope), the people in the recording are unknown: the record is `left_alone` with that reason (never deleted as if
  nobody were in it), and a search yields every such recording, without identifiers, so an access request lists
  it as a possible match for the owner to check instead of leaving it out silently.
- Zoom has no search by participant: `search` reads every recording (kept for `FRESH_SECONDS`, so the rounds of
  one access request read it once; any delete forgets it). The nightly read is a full read too, answered with the
  changed records and the complete id lists (from which deletions follow).
"""
from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import date, datetime, timedelta, timezone
from typing import Any
from urllib.parse import quote

import requests
from requests.auth import HTTPBasicAuth

from connectors.base import (ActionResult, Changes, FieldChange, Identifiers, Known, Listing, Outcome, Record,
                             RecordRef)
from connectors.http import (DIGITS, LastErrorCode, Page, RateLimiter, VendorAuthError, VendorBadResponse,
                             VendorNotFound, VendorRejected, VendorSession, payload_id, vendor_payloads)
from connectors.matching import email_key, name_key, phone_key

SYSTEM = "zoom"
DEFAULT_BASE_URL = "https://api.zoom.us/v2"
DEFAULT_OAUTH_URL = "https://zoom.us/oauth/token"
#: Pro's Medium category: 20 requests a second per account
DEFAULT_RATE = (20, 1.0)
RETRY_BUDGET = 15.0
PAGE_SIZE = 300
#: a token is asked for again this long before its hour is up
TOKEN_MARGIN = 300.0
#: Zoom launched in 2013: no cloud recording is older
HISTORY_FROM = date(2013, 1, 1)
FRESH_SECONDS = 900.0
RECORDING, REGISTRANT = "recording", "registrant"
RECORD_FIELDS: dict[str, frozenset[str]] = {RECORDING: frozenset(), REGISTRANT: frozenset()}
REGISTRANT_STATUSES = ("approved", "pending", "denied")
#: Zoom error codes: the token lacks a scope; an answer only a paid plan gets
MISSING_SCOPE, PAID_ONLY = 4711, 200
#: meeting UUIDs are base64 (with "/" and "+"); registrant ids URL-safe characters
_UUID = re.compile(r"[A-Za-z0-9+/=_-]{8,64}")
_REGISTRANT_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
#: links that play or download a recording, without signing in when sharing is on: never in what a report shows
PLAYABLE = frozenset({"share_url", "play_url", "download_url", "password", "recording_play_passcode"})
TRASH_HOW = "in Zoom: Recordings, Trash, delete it there (Zoom keeps the trash 30 days)"


def error_code(response: requests.Response) -> int | None:
    """Zoom's numeric `code` in an error answer (its message can quote ids and addresses: never kept)."""
    try:
        body = response.json()
    except ValueError:
        return None
    return body.get("code") if isinstance(body, dict) and isinstance(body.get("code"), int) else None


def uuid_path(uuid: str) -> str:
    """A meeting UUID as one path segment: encoded once, twice when it starts with "/" or holds "//" (Zoom's rule)."""
    once = quote(uuid, safe="")
    return quote(once, safe="") if uuid.startswith("/") or "//" in uuid else once


def month_windows(start: date, end: date) -> Iterator[tuple[date, date]]:
    """[first, last] day of every calendar month from `start`'s to `end`'s, the last one ending at `end`."""
    first = start.replace(day=1)
    while first <= end:
        following = (first + timedelta(days=32)).replace(day=1)
        yield first, min(following - timedelta(days=1), end)
        first = following


class ServerToServerAuth(requests.auth.AuthBase):
    """A Bearer token from Zoom's account_credentials grant, asked for when missing or near its hour, and once more
    when Zoom answers 401 (code 124: expired or replaced by a newer token of the same app)."""

    def __init__(self, oauth: VendorSession, token_url: str, account_id: str,
                 clock: Callable[[], float] = time.monotonic):
        self.oauth, self.token_url, self.account_id, self._clock = oauth, token_url, account_id, clock
        self._token: str | None = None
        self._expires = 0.0
        self._lock = threading.Lock()

    def token(self, *, renew: bool = False, stale: str | None = None) -> str:
        with self._lock:
            if renew and self._token != stale:  # another thread renewed it meanwhile
                renew = False
            if renew or self._token is None or self._clock() >= self._expires - TOKEN_MARGIN:
                self._token, self._expires = self._new_token()
            return self._token

    def _new_token(self) -> tuple[str, float]:
        try:
            body = self.oauth.json("POST", self.token_url,
                                   params={"grant_type": "account_credentials", "account_id": self.account_id})
        except (VendorAuthError, VendorRejected) as exc:
            raise VendorAuthError(SYSTEM, "POST", "/oauth/token", exc.status,
                                  "Zoom refused the app's credentials; check account_id, client_id and "
                                  "client_secret of the server-to-server app (Zoom App Marketplace) and that it "
                                  "is activated") from None
        token = body.get("access_token") if isinstance(body, dict) else None
        lifetime = body.get("expires_in") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token or isinstance(lifetime, bool) or not isinstance(lifetime, int):
            raise VendorBadResponse(SYSTEM, "POST", "/oauth/token", 200, "the answer holds no access token")
        return token, self._clock() + lifetime

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self.token()}"
        request.register_hook("response", self._renew_on_401)
        return request

    def _renew_on_401(self, response: requests.Response, **kwargs: Any) -> requests.Response:
        """Repeat a request Zoom refused as unauthorised once, with a new token (as requests' digest auth does)."""
        if response.status_code != 401 or getattr(response.request, "renewed_token", False):
            return response
        stale = response.request.headers.get("Authorization", "").removeprefix("Bearer ")
        response.content  # noqa: B018 - read the body so the connection can be reused
        response.close()
        again = response.request.copy()
        again.renewed_token = True  # type: ignore[attr-defined]
        again.headers["Authorization"] = f"Bearer {self.token(renew=True, stale=stale)}"
        answer = response.connection.send(again, **kwargs)
        answer.history.append(response)
        answer.request = again
        return answer


class _NextPageToken:
    """Zoom's paging: `next_page_token` from each page until it is empty."""

    def first(self, params: dict[str, Any]) -> dict[str, Any]:
        return {**params, "page_size": PAGE_SIZE}

    def next(self, page: Page, params: dict[str, Any]) -> dict[str, Any] | None:
        token = page.body.get("next_page_token")
        return {**params, "next_page_token": token} if token else None


@vendor_payloads
class ZoomConnector:
    """Cloud recordings and meeting registrants of one Zoom user (`me`: the account owner the app belongs to)."""

    #: a guest's recording may carry their display name only: an access search asks for the person's names too
    name_only_records = True

    system = SYSTEM

    def __init__(self, *, account_id: str, client_id: str, client_secret: str, user_id: str = "me",
                 base_url: str = DEFAULT_BASE_URL, oauth_url: str = DEFAULT_OAUTH_URL,
                 own_emails: Sequence[str] = (), history_from: date = HISTORY_FROM,
                 rate: tuple[int, float] | None = DEFAULT_RATE, retries: int = 5, backoff_factor: float = 0.5,
                 retry_budget: float = RETRY_BUDGET, today: Callable[[], date] | None = None,
                 clock: Callable[[], float] = time.monotonic):
        tuning = {"retries": retries, "backoff_factor": backoff_factor, "retry_budget": retry_budget}
        oauth = VendorSession(SYSTEM, oauth_url, HTTPBasicAuth(client_id, client_secret), **tuning)
        self.auth = ServerToServerAuth(oauth, oauth_url, account_id, clock)
        self.http = VendorSession(SYSTEM, base_url, self.auth, limiter=RateLimiter(*rate) if rate else None,
                                  **tuning)
        self._errors = LastErrorCode(self.http, error_code)
        self.user_id = user_id
        self.history_from = history_from
        self._today = today or (lambda: datetime.now(timezone.utc).date())
        self._own = {email_key(e) for e in own_emails} - {""}
        self._read_at: tuple[float, list[Record]] | None = None

    # -- the wire -----------------------------------------------------------------------------------------
    @property
    def _code(self) -> int | None:
        return self._errors.code

    def _pages(self, path: str, key: str, params: Mapping[str, Any] | None = None) -> Iterator[Page]:
        return self.http.paginate(path, _NextPageToken(), items=lambda body: body[key], params=params)

    def _scope_error(self, exc: VendorRejected, scope: str) -> VendorAuthError | None:
        """A 4711 (the token lacks a scope) as the error that names the scope to add."""
        if self._code != MISSING_SCOPE:
            return None
        return VendorAuthError(SYSTEM, exc.method, exc.path, exc.status,
                               f"the app lacks the scope {scope}; add it to the server-to-server app (README)")

    # -- reading ------------------------------------------------------------------------------------------
    def records(self, since: datetime | None = None) -> Iterator[Record]:
        """Every cloud recording (with its people) and every registrant of a recorded meeting; with `since`, those
        whose meeting or registration is later."""
        for record in self._read():
            if since is None or record.created_at is None or record.created_at > since:
                yield record

    def changes(self, cursor: Mapping[str, Any] | None, known: Known) -> Changes:
        """A full read without a cursor; else the recordings of the months since the one before the last read,
        and every registrant.

        Zoom has no changed-since listing. A new recording starts in the current month (or, processed after
        midnight, the one before), and a recording only changes when files are deleted from it, so nights read the
        last two months (their listing shows deletions there) and the full read (`[sync] full_every_days`) sees
        the older months. A recording listed as the last read saw it (the same files and registrations: its
        version) is not read again, so its participants are not asked for again; one whose people were unknown
        is. Requests: one listing per month read, one for the scheduled meetings, one per registrant status and
        meeting, and one participant list per new or changed recording.
        """
        today = self._today()
        try:
            since = _month_before(date.fromisoformat(cursor["read_to"])) if cursor is not None else None
        except (KeyError, TypeError, ValueError):
            since = None
        if since is None:
            return Changes(self._read(), cursor={"read_to": today.isoformat()}, full=True)
        records, recordings = self._gather(since, known)
        start = datetime.combine(since, datetime.min.time(), tzinfo=timezone.utc) - timedelta(microseconds=1)
        listings = [Listing(RECORDING, frozenset(recordings), created_after=start),
                    Listing(REGISTRANT, frozenset(r.record_id for r in records if r.record_type == REGISTRANT))]
        return Changes(known.changed(records), cursor={"read_to": today.isoformat()}, listings=listings)

    def _read(self) -> list[Record]:
        """Every record, kept a while for searches."""
        records, _ = self._gather(None, None)
        self._read_at = (time.monotonic(), records)
        return records

    def _gather(self, since: date | None, known: Known | None) -> tuple[list[Record], list[str]]:
        """Every recording (of the months from `since`), then the registrants of every meeting: the scheduled ones
        (which outlive their recordings) and those of the recordings (Zoom may no longer list an expired one).

        The records (a recording only where `known` lacks its version or did not know its people) and the uuids of
        every recording listed."""
        registrants: dict[str, list[dict[str, Any]]] = {}  # meeting id -> its registrants, read once
        records: list[Record] = []
        meetings = list(self._recordings(trash=False, start=since))
        scheduled = [payload_id(row, DIGITS) for page in self._pages(
            f"users/{quote(self.user_id, safe='')}/meetings", "meetings", {"type": "scheduled"}) for row in page.items]
        for meeting_id in dict.fromkeys([*scheduled, *(payload_id(m, DIGITS) for m in meetings)]):
            registrants[meeting_id] = self._registrants(meeting_id)
            records += [registrant_record(meeting_id, row) for row in registrants[meeting_id]]
        for meeting in meetings:
            ref = RecordRef(SYSTEM, RECORDING, payload_id(meeting, _UUID, "uuid"))
            version = _version(meeting, registrants[payload_id(meeting, DIGITS)])
            seen = known.previous(ref) if known is not None and known.version(ref) == version else None
            if seen is None or seen.left_alone:
                records.append(self._recording_record(meeting, registrants[payload_id(meeting, DIGITS)]))
        return records, [payload_id(m, _UUID, "uuid") for m in meetings]

    def _recordings(self, *, trash: bool, start: date | None = None,
                    end: date | None = None) -> Iterator[dict[str, Any]]:
        """The user's recordings meeting by meeting, one month window at a time (Zoom's limit)."""
        path = f"users/{quote(self.user_id, safe='')}/recordings"
        for first, last in month_windows(start or self.history_from, end or self._today()):
            params = {"from": first.isoformat(), "to": last.isoformat()}
            if trash:
                params |= {"trash": "true", "trash_type": "meeting_recordings"}
            for page in self._pages(path, "meetings", params):
                if (page.body.get("from"), page.body.get("to")) != (params["from"], params["to"]):
                    raise VendorBadResponse(SYSTEM, "GET", f"/{path}", page.response.status_code,
                                            "Zoom answered for another date range than the month asked for; its "
                                            "answer would leave recordings out")
                yield from page.items

    def _participants(self, uuid: str) -> tuple[list[dict[str, Any]], str | None]:
        """The past meeting's participants, or why Zoom does not say who they were."""
        try:
            return [row for page in self._pages(f"past_meetings/{uuid_path(uuid)}/participants", "participants")
                    for row in page.items], None
        except VendorNotFound:
            return [], "Zoom no longer has this meeting's participant list"
        except VendorRejected as exc:
            if self._code == MISSING_SCOPE:
                return [], ("the app may not read participants (scope meeting:read:list_past_participants:admin "
                            "missing)")
            if self._code == PAID_ONLY:
                return [], "Zoom lists a past meeting's participants only on a paid plan"
            return [], f"Zoom refused the participant list (HTTP {exc.status}, code {self._code})"

    def _registrants(self, meeting_id: str) -> list[dict[str, Any]]:
        """Every registrant of a meeting, approved, pending and denied; none when it has no registration or Zoom
        no longer has the meeting."""
        found: list[dict[str, Any]] = []
        for status in REGISTRANT_STATUSES:
            try:
                for page in self._pages(f"meetings/{meeting_id}/registrants", "registrants", {"status": status}):
                    found += page.items
            except VendorNotFound:
                return found
            except VendorRejected as exc:
                if error := self._scope_error(exc, "meeting:read:list_registrants:admin"):
                    raise error from None
                return found
        return found

    def _recording_record(self, meeting: dict[str, Any], registrants: list[dict[str, Any]]) -> Record:
        uuid = payload_id(meeting, _UUID, "uuid")
        participants, unknown = self._participants(uuid)
        own = self._own | {email_key(meeting.get("host_email"))}
        people = [(p.get("user_email"), p.get("name")) for p in participants]
        people += [(r.get("email"), _full_name(r)) for r in registrants]
        persons: dict[str, tuple[str, str | None]] = {}
        for email, name in people:
            key = email_key(email)
            if key and key not in own:
                persons.setdefault(key, (email, name))
        # a guest's address is hidden (see the module docstring): with no address at all, the first display name
        # of who else was there names the recording, so its rule still acts on it
        guests = [] if persons else [p for p in participants if not email_key(p.get("user_email"))
                                     and isinstance(p.get("name"), str) and p["name"].strip()]
        names = [name for _, name in persons.values() if name] if len(persons) == 1 else []
        first, _, last = (names or [p["name"].strip() for p in guests] or [""])[0].partition(" ")
        start = _timestamp(meeting.get("start_time"))
        minutes = meeting.get("duration") if isinstance(meeting.get("duration"), int) else 0
        fields = {**{key: value for key, value in meeting.items() if key not in PLAYABLE},
                  "recording_files": [{key: value for key, value in f.items() if key not in PLAYABLE}
                                      for f in meeting.get("recording_files") or [] if isinstance(f, dict)],
                  "participants": [{"name": p.get("name"), "user_email": p.get("user_email")} for p in participants
                                   if email_key(p.get("user_email")) in persons or p in guests],
                  "registrants": [_registrant_fields(r) for r in registrants if email_key(r.get("email")) in persons]}
        if unknown:
            fields["participants_unknown"] = unknown
        return Record(SYSTEM, RECORDING, uuid, emails=tuple(email for email, _ in persons.values()),
                      version=_version(meeting, registrants),
                      first_name=first or None, last_name=last or None, fields=fields, created_at=start,
                      last_activity_at=None if unknown or start is None else start + timedelta(minutes=minutes),
                      shared=len(persons) > 1,
                      left_alone=f"who took part is unknown: {unknown}; check the recording in Zoom" if unknown
                      else None)

    def search(self, identifiers: Identifiers) -> Iterator[Record]:
        """Recordings and registrants holding a searched e-mail, phone or name, and every recording whose people are
        unknown (for the owner to check: they carry none of the person's identifiers)."""
        emails = {email_key(e) for e in identifiers.emails} - {""}
        phones = {phone_key(p) for p in identifiers.phones} - {None}
        names = {name_key(n) for n in identifiers.names} - {""}
        cached = self._read_at
        records = cached[1] if cached and time.monotonic() - cached[0] <= FRESH_SECONDS else self._read()
        for record in records:
            if (record.left_alone or emails & {email_key(e) for e in record.emails}
                    or phones & {phone_key(p) for p in record.phones} or names & _names(record)):
                yield record

    def read(self, ref: RecordRef, parent: RecordRef | None = None) -> Record | None:
        """One recording (`GET /meetings/{uuid}/recordings`, its participants and its meeting's registrants) or
        registrant (`GET /meetings/{id}/registrants/{id}`); None when Zoom has it no more."""
        if ref.record_type == REGISTRANT:
            meeting_id, registrant_id = _registrant_ids(ref)
            try:
                row = self.http.json("GET", f"meetings/{meeting_id}/registrants/{quote(registrant_id, safe='')}")
            except VendorNotFound:
                return None
            record = registrant_record(meeting_id, row)
            if record.record_id != ref.record_id:
                raise VendorBadResponse(SYSTEM, "GET", "/meetings/{id}/registrants/{id}", 200,
                                        "Zoom answered with another registrant")
            return record
        meeting = self._meeting(ref)
        if meeting is None:
            return None
        return self._recording_record(meeting, self._registrants(payload_id(meeting, DIGITS)))

    def _meeting(self, ref: RecordRef) -> dict[str, Any] | None:
        if ref.system != SYSTEM or ref.record_type != RECORDING:
            raise ValueError(f"not a Zoom recording: {ref}")
        try:
            meeting = self.http.json("GET", f"meetings/{uuid_path(ref.record_id)}/recordings")
        except VendorNotFound:
            return None
        if payload_id(meeting, _UUID, "uuid") != ref.record_id:
            raise VendorBadResponse(SYSTEM, "GET", "/meetings/{uuid}/recordings", 200,
                                    "Zoom answered with another meeting's recording")
        return meeting

    # -- acting -------------------------------------------------------------------------------------------
    def delete(self, ref: RecordRef) -> ActionResult:
        """Delete a recording permanently (`action=delete`, with every file: video, audio, transcript, chat), or a
        registrant; then read again: the recording must be gone from its meeting and from the trash.

        A recording its meeting no longer shows may sit in the trash (moved there in Zoom): the delete is sent
        all the same, and a 204 means it was emptied from there (ASSUMED: Zoom answers a trashed recording's
        `action=delete`; a 404 is "already gone" either way)."""
        self._read_at = None
        if ref.record_type == REGISTRANT:
            return self._delete_registrant(ref)
        meeting = self._meeting(ref)
        try:
            response = self.http.request("DELETE", f"meetings/{uuid_path(ref.record_id)}/recordings",
                                         params={"action": "delete"})
        except VendorNotFound:
            return ActionResult(Outcome.ALREADY_GONE, f"{ref} was not found (code {self._code})")
        except VendorRejected as exc:
            if error := self._scope_error(exc, "cloud_recording:delete:meeting_cloud_recording:admin"):
                raise error from None
            raise
        if response.status_code != 204:
            raise VendorBadResponse(SYSTEM, "DELETE", "/meetings/{uuid}/recordings", response.status_code,
                                    "answered without 204, which alone confirms a delete")
        if self._meeting(ref) is not None:
            raise VendorBadResponse(SYSTEM, "GET", "/meetings/{uuid}/recordings", 200,
                                    "Zoom confirmed the delete but still shows the recording; nothing is recorded "
                                    "as deleted")
        if meeting is None:
            return ActionResult(Outcome.DONE, f"{ref} was in Zoom's trash (moved there in Zoom); deleted from it")
        day = _timestamp(meeting.get("start_time"))
        day = day.date() if day else self._today()
        if any(item.get("uuid") == ref.record_id for item in self._recordings(trash=True, start=day, end=day)):
            return ActionResult(Outcome.NOT_SUPPORTED, f"Zoom moved {ref} to its trash instead of deleting it; "
                                                       f"delete it {TRASH_HOW}")
        return ActionResult(Outcome.DONE, "deleted permanently (action=delete, not the 30-day trash) with all its "
                                          f"{len(meeting.get('recording_files') or [])} file(s); read back: gone, "
                                          "not in the trash")

    def _delete_registrant(self, ref: RecordRef) -> ActionResult:
        meeting_id, registrant_id = _registrant_ids(ref)
        path = f"meetings/{meeting_id}/registrants/{quote(registrant_id, safe='')}"
        try:
            response = self.http.request("DELETE", path)
        except VendorNotFound:
            return ActionResult(Outcome.ALREADY_GONE, f"{ref} was not found (code {self._code})")
        if response.status_code != 204:
            raise VendorBadResponse(SYSTEM, "DELETE", "/meetings/{id}/registrants/{id}", response.status_code,
                                    "answered without 204, which alone confirms a delete")
        if self.read(ref) is not None:
            raise VendorBadResponse(SYSTEM, "GET", "/meetings/{id}/registrants/{id}", 200,
                                    "Zoom confirmed the delete but still shows the registrant")
        return ActionResult(Outcome.DONE)

    def anonymise(self, ref: RecordRef, fields: Sequence[str]) -> ActionResult:
        """Zoom's API cannot edit a recording or a registration: only delete them."""
        return ActionResult(Outcome.NOT_SUPPORTED, f"Zoom's API cannot change {ref}; delete it instead")

    def plan_correction(self, record: Record, new: Mapping[str, str]) -> list[FieldChange]:
        """Every name or address the record holds stays: Zoom's API offers no edit of either."""
        held = {"email": ", ".join(record.emails) or None, "name": record.name}
        return [FieldChange(record.ref, name, name, held[name], value, refused="vendor_read_only")
                for name, value in new.items() if held.get(name)]

    def correct(self, changes: Sequence[FieldChange]) -> ActionResult:
        return ActionResult(Outcome.NOT_SUPPORTED, "Zoom's API cannot change recordings or registrations")


# -- payload -> Record ----------------------------------------------------------------------------------------
def registrant_record(meeting_id: str, row: dict[str, Any]) -> Record:
    """One registration for a meeting: the person's name, e-mail and phone as they registered."""
    registrant_id = payload_id(row, _REGISTRANT_ID)
    created = _timestamp(row.get("create_time"))
    return Record(SYSTEM, REGISTRANT, f"{meeting_id}/{registrant_id}",
                  emails=tuple(e for e in (row.get("email"),) if isinstance(e, str) and e.strip()),
                  phones=tuple(p for p in (row.get("phone"),) if isinstance(p, str) and p.strip()),
                  first_name=row.get("first_name") or None, last_name=row.get("last_name") or None,
                  fields={**row, "meeting_id": meeting_id}, created_at=created, last_activity_at=created)


def _version(meeting: dict[str, Any], registrants: list[dict[str, Any]]) -> str:
    """What a recording's record follows from, besides its participants (a past meeting's never change): its
    files and its meeting's registrations."""
    files = sorted(str(f.get("id")) for f in meeting.get("recording_files") or [] if isinstance(f, dict))
    registered = sorted(f"{r.get('id')}:{r.get('status')}" for r in registrants)
    return hashlib.sha256(json.dumps([files, registered]).encode()).hexdigest()[:16]


def _month_before(day: date) -> date:
    """The first day of the month before `day`'s."""
    return (day.replace(day=1) - timedelta(days=1)).replace(day=1)


def _registrant_ids(ref: RecordRef) -> tuple[str, str]:
    meeting_id, _, registrant_id = ref.record_id.partition("/")
    if ref.system != SYSTEM or not DIGITS.fullmatch(meeting_id) or not _REGISTRANT_ID.fullmatch(registrant_id):
        raise ValueError(f"not a Zoom registrant: {ref}")
    return meeting_id, registrant_id


def _registrant_fields(row: dict[str, Any]) -> dict[str, Any]:
    return {key: row.get(key) for key in ("first_name", "last_name", "email", "status")}


def _full_name(row: dict[str, Any]) -> str | None:
    return " ".join(part for part in (row.get("first_name"), row.get("last_name")) if part) or None


def _names(record: Record) -> set[str]:
    found = {name_key(record.name)}
    found |= {name_key(p.get("name")) for p in record.fields.get("participants", [])}
    found |= {name_key(_full_name(r)) for r in record.fields.get("registrants", [])}
    return found - {""}


def _timestamp(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)).astimezone(timezone.utc)


# -- what a person reads --------------------------------------------------------------------------------------
FIELD_LABELS: dict[str, tuple[str, str]] = {
    "topic": ("Onderwerp", "Topic"), "start_time": ("Begonnen", "Started"), "duration": ("Duur (minuten)",
                                                                                     "Duration (minutes)"),
    "recording_files[].file_type": ("Bestand {n}: soort", "File {n}: kind"),
    "recording_files[].recording_start": ("Bestand {n}: begin", "File {n}: start"),
    "recording_files[].file_size": ("Bestand {n}: grootte (bytes)", "File {n}: size (bytes)"),
    "participants[].name": ("Deelnemer {n}: naam", "Participant {n}: name"),
    "participants[].user_email": ("Deelnemer {n}: e-mailadres", "Participant {n}: e-mail address"),
    "registrants[].first_name": ("Aangemelde {n}: voornaam", "Registrant {n}: first name"),
    "registrants[].last_name": ("Aangemelde {n}: achternaam", "Registrant {n}: last name"),
    "registrants[].email": ("Aangemelde {n}: e-mailadres", "Registrant {n}: e-mail address"),
    "participants_unknown": ("Deelnemers onbekend", "Participants unknown"),
    "first_name": ("Voornaam", "First name"), "last_name": ("Achternaam", "Last name"),
    "email": ("E-mailadres", "E-mail address"), "phone": ("Telefoonnummer", "Phone number"),
    "status": ("Stand", "Status"), "create_time": ("Aangemeld op", "Registered on"),
}
VALUE_LABELS: dict[str, dict[str, tuple[str, str]]] = {
    "recording_files[].file_type": {
        "MP4": ("video", "video"), "M4A": ("geluid", "audio"), "TRANSCRIPT": ("transcriptie", "transcript"),
        "CHAT": ("chat", "chat"), "CC": ("ondertiteling", "closed captions"), "TIMELINE": ("tijdlijn", "timeline"),
        "CSV": ("peilingen", "polls"), "SUMMARY": ("samenvatting", "summary")},
    "status": {"approved": ("goedgekeurd", "approved"), "pending": ("in afwachting", "pending"),
               "denied": ("afgewezen", "denied")},
}
