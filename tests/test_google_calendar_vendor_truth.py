"""Google Calendar as a real account behaves (issue 12), against the sandbox fake and HttpMockSequence.

Sources per behaviour are in vergeet/sandbox/fake_calendar.py's docstring (the discovery document, Google's errors
and sync guides). Each test here failed on the connector before issue 12.
"""
from __future__ import annotations

import json
from datetime import date, datetime, time, timedelta, timezone
from urllib.parse import urlsplit

import httplib2
import pytest
from google.oauth2 import service_account
from google_auth_httplib2 import AuthorizedHttp
from googleapiclient.http import HttpMockSequence

from connectors.base import Identifiers, Outcome, RecordRef
from connectors.google_calendar import SYSTEM, GoogleCalendarConnector
from connectors.http import VendorAuthError, VendorError
from vergeet import access, pipeline
from vergeet.sandbox.fake_calendar import SERVICE_ACCOUNT_EMAIL, CalendarFake
from vergeet.sandbox.population import Population
from vergeet.sandbox.server import FakeServer

OWNER = "info@jessworks.nl"
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=timezone.utc)
ZONE_NOTE = "Europe/Amsterdam"
CLIENT = ("anna.bakker@example.nl", "Anna Bakker")


class Known:
    """The cache as a connector's incremental read asks it (a small stand-in for vergeet.sync.Cache)."""

    def __init__(self, records):
        self.records = {r.ref: r for r in records}

    def __contains__(self, ref):
        return ref in self.records

    def version(self, ref):
        record = self.records.get(ref)
        return record.version if record else None

    def previous(self, ref):
        return self.records.get(ref)

    def changed(self, records):
        return list(records)

    def due(self, now):
        passed = [r.valid_until for r in self.records.values() if r.valid_until and r.valid_until <= now]
        return min(passed, default=None)


@pytest.fixture
def fake():
    fake = CalendarFake(Population(1, NOW.date(), []))
    server = FakeServer(fake).start()
    fake.url = server.url
    yield fake
    server.stop()


def key_file(fake: CalendarFake, tmp_path) -> str:
    path = tmp_path / "service-account.json"
    if not path.exists():
        path.write_text(json.dumps(fake.service_account_info(fake.url + "/token")))
    return str(path)


def connector(fake: CalendarFake, tmp_path, *, calendar: str = OWNER, clock=lambda: NOW, **kwargs):
    options = {"retries": 0, "backoff_factor": 0, "own_emails": (OWNER,), "clock": clock, **kwargs}
    return GoogleCalendarConnector(api_endpoint=fake.url + "/calendar/v3/", calendar_ids=(calendar,),
                                   credentials_file=key_file(fake, tmp_path), **options)


def at(day: date, hour: int = 10) -> datetime:
    return datetime.combine(day, time(hour), tzinfo=timezone.utc)


def tombstone(fake: CalendarFake, event_id: str) -> dict:
    return fake.events[event_id].payload


# -- 1. "primary" is the service account's own calendar -------------------------------------------------------------
def test_primary_without_delegation_is_the_service_accounts_own_empty_calendar(fake, tmp_path):
    fake.add_event(CLIENT, at(date(2026, 3, 2)), at(date(2026, 3, 2), 11))

    with pytest.raises(ValueError, match="primary"):
        connector(fake, tmp_path, calendar="primary")
    # what Google answers such a setup: a calendar of its own, writable, with nothing in it
    credentials = service_account.Credentials.from_service_account_file(
        key_file(fake, tmp_path), scopes=["https://www.googleapis.com/auth/calendar.events"])
    response, content = AuthorizedHttp(credentials, http=httplib2.Http()).request(
        fake.url + "/calendar/v3/calendars/primary/events", "GET")
    page = json.loads(content)
    assert response.status == 200 and page["items"] == [] and page["accessRole"] == "owner"
    assert page["summary"] == SERVICE_ACCOUNT_EMAIL


def test_primary_with_domain_wide_delegation_is_that_users_calendar(fake, tmp_path):
    event_id = fake.add_event(CLIENT, at(date(2026, 3, 2)), at(date(2026, 3, 2), 11))

    records = list(connector(fake, tmp_path, calendar="primary", subject=OWNER).records())

    assert [r.record_id for r in records] == [f"primary/{event_id}"] and records[0].emails == (CLIENT[0],)


# -- 2. the calendar must be reachable, and writable for a purge --------------------------------------------------
def test_a_calendar_not_shared_with_the_service_account_is_a_clear_error_not_an_empty_calendar(fake, tmp_path):
    fake.add_event(CLIENT, at(date(2026, 3, 2)), at(date(2026, 3, 2), 11))
    fake.share(None)  # the owner stopped sharing (or never shared) the calendar
    reader = connector(fake, tmp_path)

    for read in (lambda: list(reader.records()), lambda: reader.changes(None, Known([])),
                 lambda: list(reader.search(Identifiers(emails=(CLIENT[0],))))):
        with pytest.raises(VendorAuthError) as caught:
            read()
        message = str(caught.value)
        assert OWNER in message and SERVICE_ACCOUNT_EMAIL in message and "Make changes to events" in message
        assert CLIENT[0] not in message


@pytest.mark.parametrize("role", ["reader", "freeBusyReader"])
def test_a_purge_needs_make_changes_to_events(fake, tmp_path, role):
    calendar = "praktijk@jessworks.nl"
    fake.add_calendar(calendar, role)
    fake.add_event(CLIENT, at(date(2026, 3, 2)), at(date(2026, 3, 2), 11), calendar_id=calendar)
    reader = connector(fake, tmp_path, calendar=calendar)

    with pytest.raises(VendorAuthError) as caught:
        reader.changes(None, Known([]))

    assert calendar in str(caught.value) and "Make changes to events" in str(caught.value)
    with pytest.raises(pipeline.PullFailed):
        pipeline.pull(reader)


def test_search_reads_a_read_only_share_but_never_a_free_busy_one(fake, tmp_path):
    for calendar, role in (("lezen@jessworks.nl", "reader"), ("bezet@jessworks.nl", "freeBusyReader")):
        fake.add_calendar(calendar, role)
        fake.add_event(CLIENT, at(date(2026, 3, 2)), at(date(2026, 3, 2), 11), calendar_id=calendar)
    asked = Identifiers(emails=(CLIENT[0],))

    [hit] = connector(fake, tmp_path, calendar="lezen@jessworks.nl").search(asked)
    assert hit.emails == (CLIENT[0],)
    free_busy = connector(fake, tmp_path, calendar="bezet@jessworks.nl")
    with pytest.raises(access.SearchFailed) as caught:  # free/busy shows no guests: never "nothing held"
        access.search(free_busy, asked)
    assert "free/busy" in str(caught.value)


# -- 3. 404 on a write is "already gone" only when the event is confirmed absent ---------------------------------
@pytest.mark.parametrize("action", ["delete", "anonymise"])
def test_a_revoked_share_fails_the_action_instead_of_recording_it_done(fake, tmp_path, action):
    event_id = fake.add_event(CLIENT, at(date(2025, 3, 2)), at(date(2025, 3, 2), 11))
    writer = connector(fake, tmp_path)
    [record] = writer.records()
    fake.share(None)

    with pytest.raises(VendorError) as caught:
        writer.delete(record.ref) if action == "delete" else writer.anonymise(record.ref, ["attendees"])

    assert "Make changes to events" in str(caught.value)
    assert fake.events[event_id].payload["status"] == "confirmed"


def test_an_event_that_is_not_there_on_a_calendar_that_answers_is_already_gone(fake, tmp_path):
    writer = connector(fake, tmp_path)

    result = writer.delete(RecordRef(SYSTEM, "event", f"{OWNER}/neverexisted0001"))

    assert result.outcome is Outcome.ALREADY_GONE


def test_a_404_on_an_event_that_is_still_there_is_a_failure():
    event = {"kind": "calendar#event", "id": "evt1", "status": "confirmed"}
    http = HttpMockSequence([({"status": "200"}, json.dumps(event)),  # the read before the patch
                             ({"status": "404"}, json.dumps({"error": {"code": 404, "errors": [{"reason": "notFound"}]}})),
                             ({"status": "200"}, json.dumps(event))])
    writer = GoogleCalendarConnector(http=http, calendar_ids=(OWNER,), rate=None, retries=0, clock=lambda: NOW)

    with pytest.raises(VendorError):
        writer.anonymise(RecordRef(SYSTEM, "event", f"{OWNER}/evt1"), ["summary"])

    assert [method for _, method, _, _ in http.request_sequence] == ["GET", "PATCH", "GET"]


# -- 4. a deleted event keeps its details in the organiser's trash: scrub first ------------------------------------
def test_delete_scrubs_the_event_first_so_the_tombstone_holds_nothing(fake, tmp_path):
    event_id = fake.add_event(CLIENT, at(date(2025, 3, 2)), at(date(2025, 3, 2), 11), summary="Intake Anna",
                              description="Telefoon 0612345678", location="Kerkstraat 1",
                              attachments=[{"fileUrl": "https://drive.google.com/x", "title": "Intake Anna.pdf"}])
    writer = connector(fake, tmp_path)
    [record] = writer.records()

    assert writer.delete(record.ref).outcome is Outcome.DONE

    left = tombstone(fake, event_id)
    assert left["status"] == "cancelled"
    assert not {"description", "location", "attachments"} & set(left)
    assert "Anna" not in left.get("summary", "") and [a for a in left.get("attendees", []) if not a.get("self")] == []
    assert fake.notified == []
    assert writer.delete(record.ref).outcome is Outcome.ALREADY_GONE


def test_a_rerun_after_a_kill_between_scrub_and_delete_finishes_the_job(fake, tmp_path):
    event_id = fake.add_event(CLIENT, at(date(2025, 3, 2)), at(date(2025, 3, 2), 11), summary="Intake Anna")
    writer = connector(fake, tmp_path)
    [record] = writer.records()
    fake.fail_next(1, 503, method="DELETE")

    with pytest.raises(VendorError):
        writer.delete(record.ref)
    assert fake.events[event_id].payload["status"] == "confirmed"  # scrubbed, not yet deleted

    assert writer.delete(record.ref).outcome is Outcome.DONE
    assert tombstone(fake, event_id)["status"] == "cancelled" and "Anna" not in tombstone(fake, event_id)["summary"]


def test_a_copy_of_another_organizers_event_is_deleted_without_the_scrub_it_may_not_make(fake, tmp_path):
    event_id = fake.add_invitation(*CLIENT, at(date(2025, 3, 2)))
    writer = connector(fake, tmp_path)
    [record] = writer.records()

    result = writer.delete(record.ref)

    assert result.outcome is Outcome.DONE and "organizer" in result.detail and CLIENT[0] not in result.detail
    assert tombstone(fake, event_id)["status"] == "cancelled"
    assert [r.status for r in fake.requests if r.method in ("PATCH", "DELETE")] == [403, 204]


# -- 5. recurring series are dated by their real instances ---------------------------------------------------------
def weekly(first: date, weeks: int) -> list[datetime]:
    return [at(first + timedelta(weeks=k)) for k in range(weeks)]


@pytest.mark.parametrize("recurrence", [
    ["RRULE:FREQ=WEEKLY;UNTIL=20250324;BYDAY=MO"],  # date-only UNTIL: dateutil refuses it with a zoned start
    ["RRULE:FREQ=YEARLY;COUNT=1", "RDATE;TZID=Europe/Amsterdam:20250310T120000,20250317T120000,20250324T120000"],
    ["RRULE:FREQ=WEEKLY;COUNT=5", "EXDATE;TZID=Europe/Amsterdam:20250407T120000"],
])
def test_a_series_that_ended_is_dated_by_its_last_real_instance(fake, tmp_path, recurrence):
    starts = weekly(date(2025, 3, 3), 6)
    series = fake.add_series(CLIENT, starts, 60, recurrence, cancelled=(5,), moved={4: timedelta(days=1)})
    [record] = [r for r in connector(fake, tmp_path).records() if r.record_id == f"{OWNER}/{series}"]

    # the sixth was cancelled, the fifth moved a day later: that is the last time they met
    assert record.last_activity_at == starts[4] + timedelta(days=1, hours=1)
    assert record.running_contract is False and record.valid_until is None and record.left_alone is None
    assert record.emails == (CLIENT[0],)


def test_a_running_series_is_running_until_its_next_instance_ends(fake, tmp_path):
    starts = weekly(date(2026, 5, 4), 10)  # five past (the fourth cancelled, today's this morning), five to come
    fake.add_series(CLIENT, starts, 60, ["RRULE:FREQ=WEEKLY;UNTIL=20260706"], cancelled=(3,))
    [record] = connector(fake, tmp_path).records()

    assert record.running_contract is True
    assert record.last_activity_at == starts[4] + timedelta(hours=1)
    assert record.valid_until == starts[5] + timedelta(hours=1)


def test_a_series_that_cannot_be_evaluated_is_left_for_review_never_running_forever():
    master = {"kind": "calendar#event", "id": "series1", "status": "confirmed", "created": "2025-01-01T09:00:00Z",
              "summary": "Coaching Anna", "attendees": [{"email": CLIENT[0]}], "recurrence": ["RRULE:FREQ=SOMETIMES"],
              "start": {"dateTime": "2025-01-06T10:00:00+01:00"}, "end": {"dateTime": "2025-01-06T11:00:00+01:00"}}
    page = {"kind": "calendar#events", "accessRole": "writer", "timeZone": ZONE_NOTE, "items": [master],
            "nextSyncToken": "s1"}
    refused = {"error": {"code": 400, "message": "Invalid recurrence rule.", "errors": [{"reason": "invalid"}]}}
    http = HttpMockSequence([({"status": "200"}, json.dumps(page)), ({"status": "400"}, json.dumps(refused))])
    reader = GoogleCalendarConnector(http=http, calendar_ids=(OWNER,), rate=None, retries=0, clock=lambda: NOW)

    [record] = reader.records()

    assert record.left_alone and "review" in record.left_alone and "Anna" not in record.left_alone
    assert record.running_contract is False and record.last_activity_at is None and record.valid_until is None
    assert record.emails == (CLIENT[0],)  # still the person's data: listed, kept, reported
    assert urlsplit(http.request_sequence[1][0]).path.endswith("/events/series1/instances")


def test_instances_are_asked_for_series_only_once_each(fake, tmp_path):
    fake.add_series(CLIENT, weekly(date(2025, 3, 3), 4), 60, ["RRULE:FREQ=WEEKLY;COUNT=4"])
    fake.add_series(("bram@example.nl", "Bram"), weekly(date(2026, 5, 25), 4), 60, ["RRULE:FREQ=WEEKLY;COUNT=4"])
    fake.add_event(CLIENT, at(date(2025, 3, 2)), at(date(2025, 3, 2), 11))
    fake.add_birthday("Anna", date(1990, 4, 12))

    connector(fake, tmp_path).changes(None, Known([]))

    assert fake.count("GET", "/instances") == 2
    assert fake.count("GET", "/events") == 3  # one page of events, two series


def test_a_series_changed_only_in_title_and_guests_is_not_expanded_again(fake, tmp_path):
    """The night after an anonymisation: the series' etag moved, its timing did not."""
    starts = weekly(date(2025, 3, 3), 4)
    series = fake.add_series(CLIENT, starts, 60, ["RRULE:FREQ=WEEKLY;COUNT=4"])
    reader = connector(fake, tmp_path)
    first = reader.changes(None, Known([]))
    [before] = first.records
    assert reader.anonymise(before.ref, ["summary", "attendees"]).outcome is Outcome.DONE
    expanded = fake.count("GET", "/instances")

    night = reader.changes(first.cursor, Known(first.records))

    [after] = night.records
    assert fake.count("GET", "/instances") == expanded
    assert (after.last_activity_at, after.running_contract, after.valid_until) == (
        before.last_activity_at, before.running_contract, before.valid_until) == (
        starts[3] + timedelta(hours=1), False, None)
    assert after.version != before.version and not after.emails
    fake.events[series].payload["recurrence"] = ["RRULE:FREQ=WEEKLY;COUNT=3"]  # the owner shortens it
    fake.calendars[OWNER].series[series] = fake.calendars[OWNER].series[series][:3]
    fake._store(fake.events[series].payload, NOW)

    [shortened] = reader.changes(night.cursor, Known(night.records)).records

    assert fake.count("GET", "/instances") == expanded + 1
    assert shortened.last_activity_at == starts[2] + timedelta(hours=1)


def test_an_instance_cancelled_since_the_last_read_redates_its_series(fake, tmp_path):
    starts = weekly(date(2025, 3, 3), 4)
    series = fake.add_series(CLIENT, starts, 60, ["RRULE:FREQ=WEEKLY;COUNT=4"])
    reader = connector(fake, tmp_path)
    first = reader.changes(None, Known([]))
    [before] = first.records
    assert before.last_activity_at == starts[3] + timedelta(hours=1)
    fake.cancel_instance(series, starts[3])  # the owner cancels the last session

    night = reader.changes(first.cursor, Known(first.records))

    [after] = [r for r in night.records if r.record_id == before.record_id]
    assert after.last_activity_at == starts[2] + timedelta(hours=1)
    assert {r.record_id for r in night.records} == {before.record_id}


def test_a_series_whose_next_instance_ended_since_is_read_again(fake, tmp_path):
    starts = weekly(date(2026, 5, 25), 3)
    fake.add_series(CLIENT, starts, 60, ["RRULE:FREQ=YEARLY;COUNT=1",
                                         "RDATE;TZID=Europe/Amsterdam:20260601T120000,20260608T120000"])
    later = {"now": NOW}
    reader = connector(fake, tmp_path, clock=lambda: later["now"])
    first = reader.changes(None, Known([]))
    [before] = first.records
    assert before.running_contract and before.valid_until == starts[2] + timedelta(hours=1)
    later["now"] = NOW + timedelta(days=14)  # every session has happened

    night = reader.changes(first.cursor, Known(first.records))

    [after] = night.records
    assert not after.running_contract and after.valid_until is None
    assert after.last_activity_at == starts[2] + timedelta(hours=1)
    assert after == connector(fake, tmp_path, clock=lambda: later["now"]).changes(None, Known([])).records[0]


def test_an_all_day_event_that_ended_since_is_read_again(fake, tmp_path):
    day = date(2026, 6, 2)
    fake.add_event(CLIENT, day, day + timedelta(days=1), summary="Workshop Anna")
    later = {"now": NOW}
    reader = connector(fake, tmp_path, clock=lambda: later["now"])
    first = reader.changes(None, Known([]))
    [before] = first.records
    assert before.running_contract
    later["now"] = NOW + timedelta(days=3)

    night = reader.changes(first.cursor, Known(first.records))

    [after] = night.records
    assert not after.running_contract and after.last_activity_at == before.valid_until


# -- 6. birthdays and Gmail's events are no appointments -----------------------------------------------------------
def test_birthday_and_gmail_events_are_left_alone_and_say_why(fake, tmp_path):
    fake.add_birthday("Anna", date(1990, 4, 12))
    fake.add_from_gmail(at(date(2025, 9, 1)), "Treinreis Hilversum - Utrecht Centraal")

    records = {r.fields["eventType"]: r for r in connector(fake, tmp_path).records()}

    assert set(records) == {"birthday", "fromGmail"}
    assert "birthday" in records["birthday"].left_alone and "Gmail" in records["fromGmail"].left_alone
    for record in records.values():
        assert record.running_contract is False and record.last_activity_at is None and record.valid_until is None
        assert "Anna" not in record.left_alone
    assert fake.count("GET", "/instances") == 0  # a birthday recurs for ever: not worth expanding
