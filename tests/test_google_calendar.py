"""Tests for connectors.google_calendar: request shapes with HttpMockSequence, the whole path against the sandbox."""
from __future__ import annotations

import json
import logging
import time
from datetime import date, datetime, timedelta, timezone
from urllib.parse import parse_qs, urlsplit

import httplib2
import pytest
from googleapiclient.http import HttpMockSequence

from connectors.base import Identifiers, Outcome, RecordRef
from connectors.google_calendar import MATCH_KEY, RECORD_FIELDS, SYSTEM, GoogleCalendarConnector
from connectors.http import VendorAuthError, VendorBadResponse, VendorRejected, VendorUnavailable
from vergeet.sandbox.fake_calendar import CalendarFake
from vergeet.sandbox.population import Appointment, CalendarPresence, Person, Population, generate
from vergeet.sandbox.server import FakeServer

NOW = datetime(2026, 1, 15, 12, 0, tzinfo=timezone.utc)
OWNER = "info@jessworks.nl"
EVENTS_PATH = "/calendar/v3/calendars/primary/events"  # HttpMockSequence tests: any id will do
OWNER_PATH = f"/calendar/v3/calendars/{OWNER}/events"  # the sandbox: the owner's calendar, as the fake logs it
PERSON_EMAIL = "jan.jansen@example.com"


# -- HttpMockSequence helpers --------------------------------------------------------------------------------
def _event(event_id: str, start: datetime, *, minutes: int = 60, attendees: list[dict] | None = None,
           **extra) -> dict:
    """An event shaped like the vendor fixture (events_list_page1.json)."""
    owner = {"email": OWNER, "self": True}
    if attendees is None:
        attendees = [{"email": " Jan.Jansen@Example.com", "displayName": "Jan de Jansen", "responseStatus": "accepted"},
                     {**owner, "organizer": True, "responseStatus": "accepted"}]
    return {"kind": "calendar#event", "etag": '"3181161784712000"', "id": event_id, "status": "confirmed",
            "created": "2025-03-01T09:00:00.000Z", "updated": "2025-03-02T10:15:00.000Z",
            "summary": "Intake Jan", "description": "Telefoon 0612345678", "location": "Hoofdstraat 12",
            "creator": owner, "organizer": owner,
            "start": {"dateTime": start.isoformat(), "timeZone": "Europe/Amsterdam"},
            "end": {"dateTime": (start + timedelta(minutes=minutes)).isoformat(), "timeZone": "Europe/Amsterdam"},
            "iCalUID": f"{event_id}@google.com", "attendees": attendees, **extra}


def _page(items: list[dict], *, next_page: str | None = None, sync: str | None = "sync-1",
          role: str = "writer") -> str:
    body: dict = {"kind": "calendar#events", "summary": OWNER, "timeZone": "Europe/Amsterdam", "accessRole": role,
                  "items": items}
    body.update({"nextPageToken": next_page} if next_page else {"nextSyncToken": sync})
    return json.dumps(body)


def _ok(body: str) -> tuple[dict, str]:
    return {"status": "200"}, body


def _google_error(status: int, reason: str) -> tuple[dict, str]:
    body = {"error": {"code": status, "message": reason, "errors": [{"domain": "global", "reason": reason,
                                                                        "message": reason}]}}
    return {"status": str(status)}, json.dumps(body)


def _mocked(*responses, **kwargs) -> tuple[GoogleCalendarConnector, HttpMockSequence]:
    http = HttpMockSequence(list(responses))
    options = {"rate": None, "retries": 0, "backoff_factor": 0, "clock": lambda: NOW, **kwargs}
    return GoogleCalendarConnector(http=http, **options), http


def _query(uri: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(uri).query)


def _ref(event_id: str = "evt0001abc") -> RecordRef:
    return RecordRef(SYSTEM, "event", f"primary/{event_id}")


# -- reading ------------------------------------------------------------------------------------------------
def test_records_pages_with_page_tokens_and_keeps_the_sync_token_of_the_last_page():
    past = NOW - timedelta(days=30)
    connector, http = _mocked(
        _ok(_page([_event("evt1", past)], next_page="tok-2")),
        _ok(_page([_event("evt2", past)], next_page="tok-3")),
        _ok(_page([_event("evt3", past)], sync="sync-final")))

    records = list(connector.records())

    assert [r.record_id for r in records] == ["primary/evt1", "primary/evt2", "primary/evt3"]
    assert len(http.request_sequence) == 3
    for uri, method, _, _ in http.request_sequence:
        assert method == "GET"
        assert urlsplit(uri).path == EVENTS_PATH
        query = _query(uri)
        assert query["maxResults"] == ["2500"]
        assert query["showDeleted"] == ["false"]
        assert query["singleEvents"] == ["false"]
        assert "q" not in query and "updatedMin" not in query
    assert [_query(uri).get("pageToken") for uri, *_ in http.request_sequence] == [None, ["tok-2"], ["tok-3"]]
    assert connector.sync_tokens == {"primary": "sync-final"}


def test_a_past_event_is_dated_by_its_end_and_names_only_its_guests():
    start = datetime(2025, 3, 10, 9, 0, tzinfo=timezone.utc)
    attendees = [{"email": " Jan.Jansen@Example.com", "displayName": "Jan de Jansen"},
                 {"email": OWNER.upper(), "responseStatus": "accepted"},  # the owner, not marked self
                 {"email": "kamer-1@resource.calendar.google.com", "resource": True},
                 {"email": "sa@project.iam.gserviceaccount.com", "self": True}]
    organizer = {"email": "praktijk@group.calendar.google.com", "displayName": "Praktijk"}
    connector, _ = _mocked(_ok(_page([_event("evt1", start, attendees=attendees, organizer=organizer)])),
                           own_emails=(OWNER,))

    [record] = connector.records()

    assert record.system == SYSTEM and record.record_type == "event"
    assert record.emails == (" Jan.Jansen@Example.com",)
    assert (record.first_name, record.last_name) == ("Jan", "de Jansen")
    assert record.last_activity_at == start + timedelta(hours=1)
    assert record.created_at == datetime(2025, 3, 1, 9, tzinfo=timezone.utc)
    assert record.updated_at == datetime(2025, 3, 2, 10, 15, tzinfo=timezone.utc)
    assert record.document_date is None and record.running_contract is False and record.shared is False
    assert record.fields["summary"] == "Intake Jan" and MATCH_KEY not in record.fields


def test_a_foreign_organizer_counts_and_several_guests_make_a_shared_event():
    attendees = [{"email": "a@example.nl", "displayName": "Anna Bakker"}, {"email": "b@example.nl"}]
    connector, _ = _mocked(_ok(_page([_event("evt1", NOW - timedelta(days=3), attendees=attendees,
                                             organizer={"email": "Org@Example.nl"})])))

    [record] = connector.records()

    assert record.emails == ("a@example.nl", "b@example.nl", "Org@Example.nl")
    assert record.shared is True


def test_a_future_appointment_is_a_running_contract_dated_from_its_booking():
    connector, _ = _mocked(_ok(_page([_event("evt1", NOW + timedelta(days=5))])))

    [record] = connector.records()

    assert record.running_contract is True
    assert record.last_activity_at == record.created_at == datetime(2025, 3, 1, 9, tzinfo=timezone.utc)


def _instances(starts: list[datetime], *, minutes: int = 60, cancelled: tuple[int, ...] = (),
               next_page: str | None = None) -> str:
    items = [{"id": f"series1_{start:%Y%m%dT%H%M%SZ}", "recurringEventId": "series1",
              "status": "cancelled" if n in cancelled else "confirmed",
              "start": {"dateTime": start.isoformat()}, "end": {"dateTime": (start + timedelta(minutes=minutes)).isoformat()}}
             for n, start in enumerate(starts)]
    body = {"kind": "calendar#events", "timeZone": "Europe/Amsterdam", "items": items}
    return json.dumps(body | ({"nextPageToken": next_page} if next_page else {}))


WEEKLY = [datetime(2025, 12, 25, 9, 0, tzinfo=timezone.utc) + timedelta(weeks=k) for k in range(10)]


@pytest.mark.parametrize("starts, last_end, running, next_end", [
    # weekly, 10 times, from three weeks ago: four have happened (today's this morning), six to come
    (WEEKLY, datetime(2026, 1, 15, 10, 0, tzinfo=timezone.utc), True, datetime(2026, 1, 22, 10, 0, tzinfo=timezone.utc)),
    # ended before today
    (WEEKLY[:2], datetime(2026, 1, 1, 10, 0, tzinfo=timezone.utc), False, None),
    # a single occurrence, long over
    (WEEKLY[:1], datetime(2025, 12, 25, 10, 0, tzinfo=timezone.utc), False, None),
])
def test_a_recurring_series_is_dated_by_its_instances_as_google_expands_them(starts, last_end, running, next_end):
    first = datetime(2025, 12, 25, 9, 0, tzinfo=timezone.utc)
    connector, http = _mocked(_ok(_page([_event("series1", first, recurrence=["RRULE:FREQ=WEEKLY;COUNT=10"])])),
                              _ok(_instances(starts)))

    [record] = connector.records()

    assert record.last_activity_at == last_end and record.running_contract is running
    assert record.valid_until == next_end and record.left_alone is None
    uri = http.request_sequence[1][0]
    assert urlsplit(uri).path == EVENTS_PATH + "/series1/instances"
    assert _query(uri)["maxResults"] == ["2500"] and _query(uri)["showDeleted"] == ["false"]
    assert "attendees" not in _query(uri)["fields"][0]  # only what dates it: no guests, no titles


def test_instances_are_paged_until_one_has_not_ended_and_cancelled_ones_do_not_count():
    first = datetime(2025, 12, 25, 9, 0, tzinfo=timezone.utc)
    connector, http = _mocked(_ok(_page([_event("series1", first, recurrence=["RRULE:FREQ=WEEKLY"])])),
                              _ok(_instances(WEEKLY[:3], next_page="p2")),
                              _ok(_instances(WEEKLY[3:6], cancelled=(0,), next_page="p3")))

    [record] = connector.records()

    assert record.last_activity_at == WEEKLY[2] + timedelta(hours=1)  # the fourth was cancelled
    assert record.running_contract and record.valid_until == WEEKLY[4] + timedelta(hours=1)
    assert [_query(uri).get("pageToken") for uri, *_ in http.request_sequence[1:]] == [None, ["p2"]]


def test_records_since_asks_for_updated_min_and_drops_tombstones():
    since = datetime(2025, 6, 1, tzinfo=timezone.utc)
    tombstone = {"kind": "calendar#event", "etag": '"1"', "id": "gone1", "status": "cancelled"}
    connector, http = _mocked(_ok(_page([_event("evt1", NOW - timedelta(days=2)), tombstone])))

    records = list(connector.records(since=since))

    assert [r.record_id for r in records] == ["primary/evt1"]
    assert _query(http.request_sequence[0][0])["updatedMin"] == ["2025-06-01T00:00:00+00:00"]
    assert connector.sync_tokens == {}  # a filtered read is no base for an incremental sync


def test_every_calendar_is_read_and_record_ids_keep_them_apart():
    connector, http = _mocked(_ok(_page([_event("evt1", NOW - timedelta(days=2))])),
                              _ok(_page([_event("evt1", NOW - timedelta(days=2))])),
                              calendar_ids=("primary", "praktijk@group.calendar.google.com"))

    records = list(connector.records())

    assert [r.record_id for r in records] == ["primary/evt1", "praktijk@group.calendar.google.com/evt1"]
    second_path = urlsplit(http.request_sequence[1][0]).path
    assert second_path == "/calendar/v3/calendars/praktijk%40group.calendar.google.com/events"


def test_search_queries_each_identifier_and_marks_hits_without_a_matching_guest():
    by_email = _event("evt1", NOW - timedelta(days=9))
    mentioned = _event("evt2", NOW - timedelta(days=8), attendees=[{"email": "other@example.nl"}],
                       description="mail jan.jansen@example.com")
    namesake = _event("evt3", NOW - timedelta(days=7), attendees=[{"email": "jan@elders.nl",
                                                                   "displayName": "Jan Jansen"}])
    connector, http = _mocked(_ok(_page([by_email, mentioned])), _ok(_page([by_email, namesake])))

    hits = list(connector.search(Identifiers(emails=("  JAN.Jansen@example.COM ",), names=("Jan Jansen",))))

    assert [(h.record_id, h.fields[MATCH_KEY]) for h in hits] == [
        ("primary/evt1", "email"), ("primary/evt2", "text"), ("primary/evt3", "text")]
    assert [_query(uri)["q"] for uri, *_ in http.request_sequence] == [[PERSON_EMAIL], ["Jan Jansen"]]


def test_a_repeated_page_token_stops_with_bad_response():
    past = NOW - timedelta(days=3)
    connector, _ = _mocked(_ok(_page([_event("evt1", past)], next_page="same")),
                           _ok(_page([_event("evt2", past)], next_page="same")))

    with pytest.raises(VendorBadResponse):
        list(connector.records())


def test_a_body_that_is_not_json_is_a_bad_response():
    connector, _ = _mocked(_ok("<html>Service temporarily unavailable</html>"))

    with pytest.raises(VendorBadResponse) as caught:
        list(connector.records())

    assert caught.value.path == EVENTS_PATH and caught.value.method == "GET"


# -- actions ------------------------------------------------------------------------------------------------
def _held(**fields) -> tuple[dict, str]:
    """events.get (or a patch's answer) of the event `_ref` names."""
    return _ok(json.dumps({**_event("evt0001abc", NOW - timedelta(days=400)), **fields}))


SCRUBBED = {"summary": "Afspraak", "description": "", "location": "", "attendees": [], "attachments": []}


def test_delete_scrubs_then_deletes_without_mailing_the_guests():
    connector, http = _mocked(_held(), _held(**SCRUBBED), ({"status": "204"}, ""))

    result = connector.delete(_ref())

    assert result.outcome is Outcome.DONE
    [(_, read, _, _), (patch_uri, patch, body, _), (uri, delete, _, _)] = http.request_sequence
    assert read == "GET"
    assert (patch, delete) == ("PATCH", "DELETE")
    assert urlsplit(uri).path == urlsplit(patch_uri).path == EVENTS_PATH + "/evt0001abc"
    assert _query(uri)["sendUpdates"] == _query(patch_uri)["sendUpdates"] == ["none"]
    assert _query(patch_uri)["supportsAttachments"] == ["true"]
    assert json.loads(body) == {"attendees": [], "attachments": [], "summary": "Afspraak", "description": "",
                                "location": ""}


def test_anonymise_patches_guests_and_text_away_but_keeps_the_time_slot():
    connector, http = _mocked(_held(), _held(**SCRUBBED))

    result = connector.anonymise(_ref(), sorted(RECORD_FIELDS["event"]))

    assert result.outcome is Outcome.DONE
    [_, (uri, method, body, _)] = http.request_sequence
    assert method == "PATCH" and _query(uri)["sendUpdates"] == ["none"]
    assert _query(uri)["supportsAttachments"] == ["true"]  # DISC: attachments change only with it
    assert json.loads(body) == {"attendees": [], "attachments": [], "summary": "Afspraak", "description": "",
                                "location": ""}


def test_anonymise_sends_only_the_named_fields():
    connector, http = _mocked(_held(), _held(attendees=[]))

    connector.anonymise(_ref(), ["attendees"])

    assert json.loads(http.request_sequence[1][2]) == {"attendees": []}
    assert "supportsAttachments" not in _query(http.request_sequence[1][0])


@pytest.mark.parametrize("action", ["delete", "anonymise"])
def test_an_event_that_holds_the_placeholders_is_not_patched_again(action):
    connector, http = _mocked(_held(**SCRUBBED), ({"status": "204"}, ""))

    result = connector.delete(_ref()) if action == "delete" else connector.anonymise(_ref(), ["summary", "location"])

    assert result.outcome is Outcome.DONE
    assert [m for _, m, _, _ in http.request_sequence] == ["GET"] + (["DELETE"] if action == "delete" else [])


@pytest.mark.parametrize("answer", [_ok("<html>Just a moment</html>"), _held()], ids=["html", "unchanged"])
def test_a_patch_whose_answer_does_not_show_the_placeholders_fails(answer):
    connector, _ = _mocked(_held(), answer)

    with pytest.raises(VendorBadResponse, match="PATCH"):
        connector.anonymise(_ref(), ["summary"])


def test_a_delete_answered_with_a_page_instead_of_no_content_fails():
    connector, _ = _mocked(_held(**SCRUBBED), _ok("<html>Just a moment</html>"))

    with pytest.raises(VendorBadResponse, match="DELETE"):
        connector.delete(_ref())


def test_anonymise_refuses_an_unknown_field_before_any_call():
    connector, http = _mocked()

    with pytest.raises(ValueError):
        connector.anonymise(_ref(), ["start"])
    assert http.request_sequence == []


@pytest.mark.parametrize("action", ["delete", "anonymise"])
def test_an_event_deleted_before_is_already_gone(action):
    connector, http = _mocked(_google_error(410, "deleted"), _google_error(410, "deleted"))

    result = connector.delete(_ref()) if action == "delete" else connector.anonymise(_ref(), ["summary"])

    assert result.outcome is Outcome.ALREADY_GONE and "410" in result.detail
    assert [m for _, m, _, _ in http.request_sequence] == ["GET", "PATCH"]


@pytest.mark.parametrize("confirmation", [_google_error(410, "deleted"),
                                          _ok(json.dumps({"kind": "calendar#event", "id": "evt0001abc",
                                                          "status": "cancelled"}))])
def test_a_404_is_already_gone_when_google_shows_the_event_deleted(confirmation):
    connector, http = _mocked(_google_error(404, "notFound"), _google_error(404, "notFound"), confirmation)

    assert connector.anonymise(_ref(), ["summary"]).outcome is Outcome.ALREADY_GONE
    assert [m for _, m, _, _ in http.request_sequence] == ["GET", "PATCH", "GET"]


@pytest.mark.parametrize("role, outcome", [("writer", Outcome.ALREADY_GONE), ("reader", None)])
def test_a_404_twice_asks_whether_the_calendar_still_answers_with_write_access(role, outcome):
    connector, http = _mocked(*[_google_error(404, "notFound")] * 3, _ok(_page([], role=role)))

    if outcome is None:
        with pytest.raises(VendorAuthError, match="Make changes to events"):
            connector.delete(_ref())
    else:
        assert connector.delete(_ref()).outcome is outcome
    assert [m for _, m, _, _ in http.request_sequence] == ["GET", "PATCH", "GET", "GET"]
    assert _query(http.request_sequence[3][0])["maxResults"] == ["1"]


def test_a_write_a_read_only_share_refuses_is_a_failure_naming_the_share():
    connector, _ = _mocked(_google_error(403, "requiredAccessLevel"))

    with pytest.raises(VendorAuthError, match="Make changes to events"):
        connector.anonymise(_ref(), ["summary"])


def test_scrubbing_another_organizers_event_is_not_supported():
    connector, http = _mocked(_google_error(403, "forbiddenForNonOrganizer"), retries=3)

    result = connector.anonymise(_ref(), ["attendees"])

    assert result.outcome is Outcome.NOT_SUPPORTED and "delete" in result.detail
    assert len(http.request_sequence) == 1  # not retried


def test_a_reference_of_another_system_is_refused():
    connector, _ = _mocked()

    with pytest.raises(ValueError):
        connector.delete(RecordRef("moneybird", "contact", "primary/evt1"))


# -- failures -----------------------------------------------------------------------------------------------
def test_a_server_error_that_outlasts_the_retries_is_unavailable_without_personal_data(caplog):
    caplog.set_level(logging.DEBUG)
    connector, http = _mocked(*[_google_error(500, "backendError")] * 3, retries=2)

    with pytest.raises(VendorUnavailable) as caught:
        list(connector.search(Identifiers(emails=(PERSON_EMAIL,))))

    assert len(http.request_sequence) == 3  # first try + 2 retries
    error = caught.value
    assert error.status == 500 and error.path == EVENTS_PATH
    assert "jan" not in str(error).lower() and "%40" not in str(error)
    assert error.__cause__ is None and error.__suppress_context__
    assert "Retrying" in caplog.text  # the retries are logged ...
    assert "jan.jansen" not in caplog.text and "%40example" not in caplog.text  # ... without the query


@pytest.mark.parametrize("status, reason, retried, error_type", [
    (401, "authError", False, VendorAuthError),
    (403, "requiredAccessLevel", False, VendorAuthError),
    (403, "rateLimitExceeded", True, VendorUnavailable),
    (429, "rateLimitExceeded", True, VendorUnavailable),
    (400, "invalid", False, VendorRejected),
])
def test_vendor_errors_map_to_typed_errors(status, reason, retried, error_type):
    connector, http = _mocked(*[_google_error(status, reason)] * 2, retries=1)

    with pytest.raises(error_type) as caught:
        list(connector.records())

    assert caught.value.status == status
    assert len(http.request_sequence) == (2 if retried else 1)


def test_the_rate_limiter_paces_every_request_retries_included():
    connector, http = _mocked(_google_error(503, "backendError"), _ok(_page([])), _ok(_page([])),
                              rate=(1, 0.1), retries=1)

    started = time.monotonic()
    list(connector.records())
    list(connector.records())

    assert len(http.request_sequence) == 3
    assert time.monotonic() - started >= 0.2


def test_credentials_and_a_test_transport_exclude_each_other(tmp_path):
    with pytest.raises(ValueError):
        GoogleCalendarConnector()
    with pytest.raises(ValueError):
        GoogleCalendarConnector(credentials_file=str(tmp_path / "sa.json"), http=HttpMockSequence([]))


# -- against the sandbox ------------------------------------------------------------------------------------
AFTER_TODAY = datetime(2026, 1, 16, tzinfo=timezone.utc)  # every seeded appointment has happened by then


@pytest.fixture(scope="module")
def population() -> Population:
    return generate(40, seed=7, today=date(2026, 1, 15))


def _namesakes() -> Population:
    """Two different people called Anna de Vries, and someone else."""
    def person(key: str, first: str, last: str, typed: str, *days: int) -> Person:
        appointments = [Appointment(datetime(2025, 6, day, 10, tzinfo=timezone.utc), 60, f"Coaching {first}")
                        for day in days]
        return Person(key, first, last, typed.strip().lower(), None, calendar=CalendarPresence(
            typed, None, datetime(2025, 5, 1, tzinfo=timezone.utc), appointments=appointments))
    return Population(1, date(2026, 1, 15), [person("p00000", "Anna", "de Vries", "Anna.deVries@Gmail.com", 2, 9),
                                             person("p00001", "Anna", "de Vries", "anna@vries.nl", 16),
                                             person("p00002", "Bram", "Bakker", "bram@bakker.nl", 23)])


def _serve(population: Population, **fake_options):
    fake = CalendarFake(population, **fake_options)
    return fake, FakeServer(fake).start()


@pytest.fixture
def sandbox(population):
    fake, server = _serve(population)
    yield fake, server
    server.stop()


def _service_account_file(fake: CalendarFake, server: FakeServer, tmp_path) -> str:
    path = tmp_path / "service-account.json"
    path.write_text(json.dumps(fake.service_account_info(server.url + "/token")))
    return str(path)


def _connector(server: FakeServer, credentials_file: str, **kwargs) -> GoogleCalendarConnector:
    options = {"retries": 1, "backoff_factor": 0, "own_emails": (OWNER,), "clock": lambda: AFTER_TODAY,
               "calendar_ids": (OWNER,), **kwargs}
    return GoogleCalendarConnector(api_endpoint=server.url + "/calendar/v3/", credentials_file=credentials_file,
                                   **options)


def test_service_account_token_exchange_then_list_and_delete(sandbox, tmp_path):
    fake, server = sandbox
    connector = _connector(server, _service_account_file(fake, server, tmp_path))

    records = list(connector.records())
    result = connector.delete(records[0].ref)

    assert result.outcome is Outcome.DONE
    assert [(r.method, r.path, r.status) for r in fake.requests[:2]] == [
        ("POST", "/token", 200), ("GET", OWNER_PATH, 200)]
    bearer = fake.requests[1].headers["authorization"]
    assert bearer.startswith("Bearer ya29.sandbox-") and bearer != f"Bearer {fake.token}"
    assert fake.count("POST", "/token") == 1  # the token is reused for the delete
    assert records[0].ref not in {r.ref for r in connector.records()}
    assert fake.notified == []
    assert connector.delete(records[0].ref).outcome is Outcome.ALREADY_GONE
    assert set(connector.sync_tokens) == {OWNER}


def test_a_full_read_matches_the_population(sandbox, population, tmp_path):
    fake, server = sandbox
    connector = _connector(server, _service_account_file(fake, server, tmp_path))

    records = list(connector.records())

    appointments = [r for r in records if not r.left_alone]
    people = {(p.calendar.email, p.first_name, p.last_name) for p in population.people if p.calendar}
    assert {(r.emails[0], r.first_name, r.last_name) for r in appointments} == people
    assert all(len(r.emails) == 1 and not r.running_contract and not r.shared for r in appointments)
    # series, invitations and exceptions included, everyone's last contact is their last appointment
    last = {}
    for record in appointments:
        last[record.emails[0]] = max(last.get(record.emails[0], record.last_activity_at), record.last_activity_at)
    assert last == {p.calendar.email: p.calendar.appointments[-1].start
                    + timedelta(minutes=p.calendar.appointments[-1].minutes)
                    for p in population.people if p.calendar}
    assert {r.fields["eventType"] for r in records if r.left_alone} <= {"birthday", "fromGmail"}
    assert any("recurrence" in r.fields for r in appointments)  # the population has series: the test means it
    assert fake.count("GET", "/instances") == sum(1 for r in appointments if "recurrence" in r.fields)


def test_anonymised_events_keep_their_slot_in_the_sandbox(sandbox, tmp_path):
    fake, server = sandbox
    connector = _connector(server, _service_account_file(fake, server, tmp_path))
    before = next(iter(connector.records()))

    connector.anonymise(before.ref, sorted(RECORD_FIELDS["event"]))

    after = next(r for r in connector.records() if r.ref == before.ref)
    assert before.emails and before.first_name
    assert after.emails == () and after.first_name is None
    assert after.fields["summary"] == "Afspraak"
    assert "description" not in after.fields and "location" not in after.fields
    assert (after.fields["start"], after.fields["end"]) == (before.fields["start"], before.fields["end"])
    assert fake.notified == []


def test_search_finds_a_person_by_email_in_another_case_and_marks_a_namesake(tmp_path):
    fake, server = _serve(_namesakes())
    try:
        connector = _connector(server, _service_account_file(fake, server, tmp_path))

        hits = list(connector.search(Identifiers(emails=(" anna.devries@GMAIL.com",), names=("Anna de Vries",))))
    finally:
        server.stop()

    by_match = {match: sorted(h.emails[0] for h in hits if h.fields[MATCH_KEY] == match)
                for match in ("email", "text")}
    assert by_match == {"email": ["Anna.deVries@Gmail.com"] * 2, "text": ["anna@vries.nl"]}
    assert fake.count("GET", OWNER_PATH) == 2  # one query per identifier


def test_no_token_is_an_auth_error(sandbox):
    fake, server = sandbox
    connector = GoogleCalendarConnector(api_endpoint=server.url + "/calendar/v3/", http=httplib2.Http(),
                                        calendar_ids=(OWNER,), retries=0, rate=None)

    with pytest.raises(VendorAuthError) as caught:
        list(connector.records())

    assert caught.value.status == 401
    assert fake.count("GET", OWNER_PATH, status=401) == 1


def test_a_wrong_bearer_token_gets_googles_401(sandbox):
    fake, server = sandbox

    response, content = httplib2.Http().request(server.url + EVENTS_PATH, headers={"Authorization": "Bearer wrong"})

    assert response.status == 401
    assert json.loads(content)["error"]["errors"][0]["reason"] == "authError"


def test_a_key_the_vendor_never_issued_is_an_auth_error(sandbox, tmp_path):
    fake, server = sandbox
    stranger = CalendarFake(Population(1, date(2026, 1, 15), []))
    path = tmp_path / "stranger.json"
    path.write_text(json.dumps(stranger.service_account_info(server.url + "/token")))
    connector = _connector(server, str(path))

    with pytest.raises(VendorAuthError) as caught:
        list(connector.records())

    assert caught.value.status is None and "token" in str(caught.value)
    assert fake.count("POST", "/token", status=400) == 1
    assert fake.count("GET", OWNER_PATH, status=200) == 0


def test_over_the_rate_the_sandbox_answers_429_and_the_connector_gives_up(tmp_path):
    bram = _namesakes().people[2]  # one appointment: one page, no series to expand
    fake, server = _serve(Population(1, date(2026, 1, 15), [bram]), rate_calls=2, rate_period=60)
    try:
        connector = _connector(server, _service_account_file(fake, server, tmp_path), retries=0)
        list(connector.records())  # the token exchange and this read use the two calls
        with pytest.raises(VendorUnavailable) as caught:
            list(connector.records())
    finally:
        server.stop()

    assert caught.value.status == 429
    [limited] = [r for r in fake.requests if r.status == 429]
    assert limited.path == OWNER_PATH


def test_the_sandbox_pages_hides_tombstones_and_syncs_changes(sandbox):
    fake, server = sandbox
    series = fake.add_series(("bram@bakker.nl", "Bram Bakker"), [datetime(2025, 9, 1 + 7 * k, 9, tzinfo=timezone.utc)
                                                               for k in range(4)], 60, ["RRULE:FREQ=WEEKLY;COUNT=4"],
                             cancelled=(2,))
    http = httplib2.Http()
    headers = {"Authorization": f"Bearer {fake.token}"}

    def get(**params) -> dict:
        query = "&".join(f"{k}={v}" for k, v in params.items())
        response, content = http.request(f"{server.url}{EVENTS_PATH}?{query}", headers=headers)
        assert response.status == 200
        return json.loads(content)

    ids, pages, token = [], [], None
    while True:
        page = get(maxResults=7, **({"pageToken": token} if token else {}))
        pages.append(page)
        ids += [item["id"] for item in page["items"]]
        token = page.get("nextPageToken")
        if token is None:
            break
    assert all(len(p["items"]) == 7 for p in pages[:-1]) and len(ids) == len(set(ids)) == len(fake.events)
    assert "nextSyncToken" in pages[-1] and all("nextSyncToken" not in p for p in pages[:-1])
    items = [i for p in pages for i in p["items"]]
    # DISC showDeleted: cancelled instances of a series are listed even without it, with their series' id
    assert [i["recurringEventId"] for i in items if i["status"] == "cancelled"] == [series]
    target = next(i["id"] for i in items if i["status"] == "confirmed" and "recurrence" not in i
                  and "recurringEventId" not in i and i.get("eventType") == "default")

    response, _ = http.request(f"{server.url}{EVENTS_PATH}/{target}?sendUpdates=none", "DELETE", headers=headers)
    assert response.status == 204
    assert target not in {i["id"] for i in get(maxResults=2500)["items"]}
    tombstones = [i for i in get(maxResults=2500, showDeleted="true")["items"]
                  if i["status"] == "cancelled" and "recurringEventId" not in i]
    assert [t["id"] for t in tombstones] == [target] and tombstones[0]["attendees"]  # restorable: details kept
    changed = get(syncToken=pages[-1]["nextSyncToken"])
    assert changed["items"] == [{"kind": "calendar#event", "etag": tombstones[0]["etag"], "id": target,
                                 "status": "cancelled"}]  # an incremental read gets no details (DISC Event.status)
