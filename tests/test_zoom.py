"""The Zoom connector against the Zoom fake: month windows, paging, OAuth, who is in a recording, deletes, refusals,
and the sandbox end to end."""
from __future__ import annotations

import json
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from urllib.parse import parse_qs, quote

import pytest
import requests
from dateutil.relativedelta import relativedelta
from typer.testing import CliRunner

from connectors import zoom
from connectors.base import Identifiers, Outcome, RecordRef
from connectors.http import VendorAuthError, VendorBadResponse
from connectors.zoom import RECORDING, REGISTRANT, ZoomConnector, uuid_path
from vergeet import access
from vergeet.cli import app, run_purge
from vergeet.config import load_config
from vergeet.rules import load_rules
from vergeet.sandbox import Sandbox
from vergeet.sandbox.fake_zoom import TOKEN_PATH, ZoomFake
from vergeet.sandbox.population import MailbluePresence, Person, Population, Session, ZoomPresence
from vergeet.sandbox.server import FakeServer

TODAY = date.today()
RULES = load_rules(Path(__file__).resolve().parents[1] / "retention_rules.toml")
OWNER = "info@jessworks.nl"


def at(day: date, hour: int = 10) -> datetime:
    return datetime.combine(day, time(hour), tzinfo=timezone.utc)


def person(key: str, first: str, last: str, email: str, *sessions: Session, phone: str | None = None) -> Person:
    return Person(key=key, first_name=first, last_name=last, email=email, phone=phone,
                  zoom=ZoomPresence(email, None, at(TODAY - relativedelta(years=3)), sessions=list(sessions)))


def population(*people: Person) -> Population:
    return Population(7, TODAY, list(people))


@pytest.fixture
def served():
    """A fake with no one in it yet, on loopback; tests add meetings."""
    fake = ZoomFake(population())
    with FakeServer(fake) as server:
        yield fake, server


def connector(server: FakeServer, fake: ZoomFake, **options) -> ZoomConnector:
    options = {"history_from": TODAY - relativedelta(years=1), "rate": None, "backoff_factor": 0.01} | options
    return ZoomConnector(account_id=fake.account_id, client_id=fake.client_id, client_secret=fake.client_secret,
                         base_url=f"{server.url}/v2", oauth_url=server.url + TOKEN_PATH, own_emails=(OWNER,),
                         **options)


def listing_queries(fake: ZoomFake) -> list[dict[str, str]]:
    return [{k: v[0] for k, v in parse_qs(r.query).items()} for r in fake.requests
            if r.path.endswith("/recordings") and r.path.startswith("/v2/users/")]


def add(fake: ZoomFake, uuid: str, start: datetime, *people: tuple[str, str], meeting_id: int = 81_000_000_001,
        minutes: int = 60) -> None:
    fake.add_meeting(uuid, meeting_id, start, minutes, "Coaching", [{"name": n, "user_email": e} for n, e in people])


# -- reading --------------------------------------------------------------------------------------------------
def test_a_year_of_recordings_is_read_one_calendar_month_at_a_time(served):
    fake, server = served
    first_of_month = (TODAY - relativedelta(months=5)).replace(day=1)
    days = [TODAY - relativedelta(years=1), first_of_month, first_of_month - timedelta(days=1), TODAY]
    for number, day in enumerate(days):
        add(fake, f"window{number}AAAAAAAA==", at(day, 8), ("Anna Bakker", "anna@example.nl"),
            meeting_id=81_000_000_000 + number)
    records = [r for r in connector(server, fake).records() if r.record_type == RECORDING]
    assert sorted(r.record_id for r in records) == [f"window{n}AAAAAAAA==" for n in range(len(days))]
    windows = listing_queries(fake)
    assert len(windows) == 13  # this month and the twelve before it
    for query in windows:
        start, end = date.fromisoformat(query["from"]), date.fromisoformat(query["to"])
        assert start.day == 1 and start <= end < start + relativedelta(months=1)
        assert query["page_size"] == "300"
    covered = sorted((date.fromisoformat(q["from"]), date.fromisoformat(q["to"])) for q in windows)
    assert all(later[0] == earlier[1] + timedelta(days=1) for earlier, later in zip(covered, covered[1:]))
    assert covered[-1][1] == TODAY


def test_zoom_narrows_a_wider_range_and_the_connector_refuses_such_an_answer(served, monkeypatch):
    fake, server = served
    old = TODAY - relativedelta(months=6)
    add(fake, "oldMeetingAAAAAAAA==", at(old), ("Anna Bakker", "anna@example.nl"))
    client = connector(server, fake)
    token = client.auth.token()
    answer = requests.get(f"{server.url}/v2/users/me/recordings", headers={"Authorization": f"Bearer {token}"},
                          params={"from": (TODAY - relativedelta(years=1)).isoformat(), "to": TODAY.isoformat()})
    body = answer.json()
    assert answer.status_code == 200 and body["meetings"] == []  # silently left out, as Zoom does
    assert date.fromisoformat(body["from"]) == TODAY - relativedelta(months=1)
    # a connector asking for a wider window gets Zoom's narrowed answer: it fails instead of reading "nothing"
    monkeypatch.setattr(zoom, "month_windows", lambda start, end: iter([(start, end)]))
    with pytest.raises(VendorBadResponse, match="another date range"):
        list(client.records())


def test_pages_follow_next_page_token_and_the_fake_refuses_what_zoom_refuses(served):
    fake, server = served
    many = [(f"Deelnemer {n}", f"deelnemer{n}@example.nl") for n in range(650)]
    add(fake, "bigGroupAAAAAAAA==", at(TODAY - timedelta(days=3)), *many)
    [record] = [r for r in connector(server, fake).records() if r.record_type == RECORDING]
    assert len(record.emails) == 650 and record.shared
    pages = [r for r in fake.requests if "/participants" in r.path]
    assert len(pages) == 3 and "next_page_token" not in pages[0].query
    assert all("next_page_token=" in r.query for r in pages[1:])
    token = connector(server, fake).auth.token()
    get = lambda **params: requests.get(f"{server.url}/v2/past_meetings/bigGroupAAAAAAAA==/participants",  # noqa: E731
                                        headers={"Authorization": f"Bearer {token}"}, params=params)
    assert get(page_size=301).json()["code"] == 300
    assert get(page_size=10, next_page_token="made-up").status_code == 400
    first = get(page_size=400 // 2).json()
    assert len(first["participants"]) == 200 and get(page_size=200, next_page_token=first["next_page_token"]).ok


def test_who_is_in_a_recording_participants_and_registrants_but_not_the_host(served):
    fake, server = served
    start = at(TODAY - timedelta(days=40))
    add(fake, "groupSessionAAAAAA==", start, ("Anna Bakker", " Anna@Example.nl "), ("iPhone", ""),
        ("Bram de Vries", "bram@example.nl"), meeting_id=81_000_000_777, minutes=90)
    registered = person("p1", "Carla", "Smit", "carla@example.nl", phone="+31612345678")
    fake.add_registrant(81_000_000_777, registered, start - timedelta(days=2))
    records = {r.record_type: r for r in connector(server, fake).records()}
    recording, registrant = records[RECORDING], records[REGISTRANT]
    assert recording.emails == (" Anna@Example.nl ", "bram@example.nl", "carla@example.nl")
    assert recording.shared and recording.left_alone is None and recording.first_name is None
    assert recording.created_at == start and recording.last_activity_at == start + timedelta(minutes=90)
    assert {p["user_email"] for p in recording.fields["participants"]} == {" Anna@Example.nl ", "bram@example.nl"}
    assert [f["file_type"] for f in recording.fields["recording_files"]] == ["MP4", "M4A", "TRANSCRIPT", "CHAT"]
    assert "zoom.us/rec/" not in json.dumps(recording.fields)  # no link that plays the recording
    assert registrant.record_id.startswith("81000000777/") and registrant.emails == ("carla@example.nl",)
    assert registrant.phones == ("+31612345678",) and (registrant.first_name, registrant.last_name) == ("Carla",
                                                                                                          "Smit")
    statuses = [parse_qs(r.query)["status"][0] for r in fake.requests if r.path.endswith("/registrants")]
    assert statuses == ["approved", "pending", "denied"]


def test_search_finds_a_person_by_address_phone_or_name_and_reads_zoom_once(served):
    fake, server = served
    add(fake, "annaAloneAAAAAAAA==", at(TODAY - timedelta(days=9)), ("Anna Bakker", "anna@example.nl"),
        meeting_id=81_000_000_001)
    add(fake, "bramAloneAAAAAAAA==", at(TODAY - timedelta(days=8)), ("Bram de Vries", "bram@example.nl"),
        meeting_id=81_000_000_002)
    fake.add_registrant(81_000_000_002, person("p2", "Bram", "de Vries", "bram@example.nl", phone="+31612345678"),
                        at(TODAY - timedelta(days=10)))
    client = connector(server, fake)
    assert [r.record_id for r in client.search(Identifiers(emails=("ANNA@example.nl ",)))] == ["annaAloneAAAAAAAA=="]
    found = {r.record_type for r in client.search(Identifiers(phones=("06-12345678",)))}
    assert found == {REGISTRANT}
    assert {r.record_id for r in client.search(Identifiers(names=("bram de  vries",)))} >= {"bramAloneAAAAAAAA=="}
    assert len(listing_queries(fake)) == 13  # one read for the three searches


# -- OAuth ----------------------------------------------------------------------------------------------------
def test_an_expired_token_is_replaced_once_and_the_request_repeated(served):
    fake, server = served
    add(fake, "tokenTestAAAAAAAA==", at(TODAY - timedelta(days=2)), ("Anna Bakker", "anna@example.nl"))
    client = connector(server, fake)
    assert len(list(client.records())) == 1
    fake.expire_tokens()
    assert len(list(client.records())) == 1
    assert fake.count("POST", TOKEN_PATH, status=200) == 2
    assert fake.count(status=401) == 1  # the one refused request, repeated with the new token
    token_call = next(r for r in fake.requests if r.path == TOKEN_PATH)
    assert parse_qs(token_call.query) == {"grant_type": ["account_credentials"], "account_id": [fake.account_id]}
    assert token_call.headers["authorization"].startswith("Basic ")


def test_a_token_near_the_end_of_its_hour_is_replaced_before_zoom_refuses_it(served):
    fake, server = served
    now = [1000.0]
    client = connector(server, fake, clock=lambda: now[0])
    list(client.records())
    now[0] += 3600 - zoom.TOKEN_MARGIN + 1
    list(client.records())
    assert fake.count("POST", TOKEN_PATH) == 2 and fake.count(status=401) == 0


def test_wrong_credentials_are_one_error_naming_what_to_check_never_the_secret(served):
    fake, server = served
    client = ZoomConnector(account_id=fake.account_id, client_id=fake.client_id, client_secret="wrong-secret-123",
                           base_url=f"{server.url}/v2", oauth_url=server.url + TOKEN_PATH, rate=None)
    with pytest.raises(VendorAuthError) as caught:
        list(client.records())
    assert "client_secret" in str(caught.value) and "wrong-secret-123" not in str(caught.value)
    assert fake.count(path_contains="/v2/") == 0


# -- deleting -------------------------------------------------------------------------------------------------
def test_a_recording_is_deleted_for_good_verified_and_a_second_delete_finds_it_gone(served):
    fake, server = served
    uuid = "/slashFirst//AAAAAAAA=="
    add(fake, uuid, at(TODAY - relativedelta(years=2)), ("Anna Bakker", "anna@example.nl"))
    client = connector(server, fake, history_from=TODAY - relativedelta(years=3))
    ref = RecordRef("zoom", RECORDING, uuid)
    assert client.read(ref).emails == ("anna@example.nl",)
    result = client.delete(ref)
    assert result.outcome is Outcome.DONE and "not the 30-day trash" in result.detail
    assert uuid not in fake.meetings and uuid not in fake.trash
    [deleted] = [r for r in fake.requests if r.method == "DELETE"]
    assert parse_qs(deleted.query) == {"action": ["delete"]}
    assert quote(uuid, safe="") in deleted.path  # encoded twice: one decoding still leaves it encoded
    trash_checks = [q for q in listing_queries(fake) if q.get("trash") == "true"]
    assert trash_checks and trash_checks[0]["trash_type"] == "meeting_recordings"
    assert client.delete(ref).outcome is Outcome.ALREADY_GONE
    assert client.read(ref) is None
    assert fake.participants[uuid]  # the past meeting's report is not the recording


def test_a_delete_zoom_only_moves_to_the_trash_is_handed_to_the_owner(served, monkeypatch):
    fake, server = served
    add(fake, "trashedOnlyAAAAAA==", at(TODAY - relativedelta(years=2)), ("Anna Bakker", "anna@example.nl"))
    client = connector(server, fake)
    send = client.http.request

    def without_action(method, path, **options):  # Zoom's default action is trash
        return send(method, path, **{k: v for k, v in options.items() if method != "DELETE" or k != "params"})

    monkeypatch.setattr(client.http, "request", without_action)
    result = client.delete(RecordRef("zoom", RECORDING, "trashedOnlyAAAAAA=="))
    assert result.outcome is Outcome.NOT_SUPPORTED and "trash" in result.detail
    assert "trashedOnlyAAAAAA==" in fake.trash


def test_a_uuid_encoded_once_or_a_meeting_id_reaches_another_recording_than_meant(served):
    fake, server = served
    add(fake, "/firstInstanceAAAAA==", at(TODAY - timedelta(days=20)), ("Anna Bakker", "anna@example.nl"),
        meeting_id=81_000_000_555)
    add(fake, "laterInstanceAAAAAA==", at(TODAY - timedelta(days=13)), ("Bram de Vries", "bram@example.nl"),
        meeting_id=81_000_000_555)
    headers = {"Authorization": f"Bearer {connector(server, fake).auth.token()}"}
    once = requests.delete(f"{server.url}/v2/meetings/{quote('/firstInstanceAAAAA==', safe='')}/recordings",
                           headers=headers, params={"action": "delete"})
    assert once.status_code == 404 and once.json()["code"] == 3001 and "/firstInstanceAAAAA==" in fake.meetings
    by_id = requests.get(f"{server.url}/v2/meetings/81000000555/recordings", headers=headers).json()
    assert by_id["uuid"] == "laterInstanceAAAAAA=="  # the latest instance, not the one a plan names
    twice = requests.get(f"{server.url}/v2/meetings/{uuid_path('/firstInstanceAAAAA==')}/recordings",
                         headers=headers)
    assert twice.json()["uuid"] == "/firstInstanceAAAAA=="
    assert uuid_path("plain+id/with=") == "plain%2Bid%2Fwith%3D"  # one "/" inside: encoded once, as Zoom asks


def test_a_registrant_is_deleted_and_read_back(served):
    fake, server = served
    add(fake, "registeredAAAAAAAA==", at(TODAY - relativedelta(years=2)), meeting_id=81_000_000_999)
    registrant_id = fake.add_registrant(81_000_000_999, person("p3", "Dirk", "Kok", "dirk@example.nl"),
                                        at(TODAY - relativedelta(years=2)))
    client = connector(server, fake)
    ref = RecordRef("zoom", REGISTRANT, f"81000000999/{registrant_id}")
    assert client.read(ref).emails == ("dirk@example.nl",)
    assert client.delete(ref).outcome is Outcome.DONE and not fake.registrants[81_000_000_999]
    assert client.delete(ref).outcome is Outcome.ALREADY_GONE


# -- refusals and limits --------------------------------------------------------------------------------------
def test_without_a_paid_plan_the_people_in_a_recording_are_unknown_and_said_to_be(served):
    fake, server = served
    fake.paid_plan = False
    add(fake, "unknownPeopleAAAAA==", at(TODAY - relativedelta(years=2)), ("Anna Bakker", "anna@example.nl"))
    client = connector(server, fake, history_from=TODAY - relativedelta(years=3))
    [record] = list(client.records())
    assert record.emails == () and record.last_activity_at is None
    assert "paid plan" in record.left_alone and "paid plan" in record.fields["participants_unknown"]
    # an access request for anyone lists it, for the owner to check, rather than leaving it out
    assert [r.record_id for r in client.search(Identifiers(emails=("someone@example.org",)))] == [
        "unknownPeopleAAAAA=="]


def test_zoom_429s_are_waited_out(served):
    fake, server = served
    fake.category_rates["Medium"] = 2
    for number in range(3):
        add(fake, f"busy{number}AAAAAAAAAA==", at(TODAY - timedelta(days=number + 1)),
            ("Anna Bakker", "anna@example.nl"), meeting_id=81_000_000_100 + number)
    records = list(connector(server, fake, history_from=TODAY - relativedelta(months=1), backoff_factor=0.5).records())
    assert len([r for r in records if r.record_type == RECORDING]) == 3
    assert fake.count(status=429) > 0


# -- the sandbox end to end -----------------------------------------------------------------------------------
def test_the_sandbox_purge_deletes_recordings_a_year_after_the_session_and_find_reports_them(tmp_path):
    old = Session(at(TODAY - relativedelta(years=1, days=5)), 60, "Coaching Anna")
    recent = Session(at(TODAY - relativedelta(months=2)), 60, "Coaching Anna")
    anna = person("anna", "Anna", "Bakker", "anna.bakker@example.nl", old, recent)
    anna.mailblue = MailbluePresence(anna.email, None, at(TODAY - relativedelta(years=2)))  # her name, by her address
    bram = person("bram", "Bram", "de Vries", "bram@example.nl", Session(at(TODAY - relativedelta(months=3)), 45,
                                                                         "Intake Bram", registered=True))
    with Sandbox(population(anna, bram)) as sandbox:
        fake: ZoomFake = sandbox.fakes["zoom"]  # type: ignore[assignment]
        path = sandbox.write_config(tmp_path)
        assert "[connectors.zoom]" in path.read_text()
        found = CliRunner().invoke(app, ["--config", str(path), "find", "anna.bakker@example.nl", "--test",
                                         "--format", "json"])
        assert found.exit_code == 0, found.output
        report = json.loads(found.stdout)
        # Anna did not register: Zoom hides her address, so her recordings carry her display name only, and are
        # found by the name on her other records as possible matches, for the owner to judge
        assert [r for r in report["records"] if r["system"] == "zoom"] == []
        named = [m for m in report["possible_matches"] if m["system"] == "zoom"]
        assert len(named) == 2 and {(m["record_type"], m["found_by"]) for m in named} == {(RECORDING, "same_name")}
        assert "limit" not in {s["system"]: s for s in report["systems"]}["zoom"]  # her name was searched
        unknown = json.loads(CliRunner().invoke(app, ["--config", str(path), "find", "someone@example.nl", "--test",
                                                      "--format", "json"]).stdout)
        zoom = {s["system"]: s for s in unknown["systems"]}["zoom"]
        assert zoom["records"] == 0 and zoom["limit"].startswith("Zoom laat het e-mailadres van wie zonder "
                                                                 "inschrijving deelnam niet zien")
        page = access.render_html(unknown)
        assert "Ik vond hier niets bij wat ik zocht." in page and zoom["limit"] in page  # not "nothing is kept"
        erased = CliRunner().invoke(app, ["--config", str(path), "erase", "someone@example.nl", "--approve",
                                          "--verified-by", "ID gezien", "--lang", "en", "--out", str(tmp_path / "out")])
        assert erased.exit_code == 0, erased.output
        certificate = json.loads(next((tmp_path / "out").glob("erasure-request-*.json")).read_text())
        limit = {s["system"]: s for s in certificate["systems"]}["zoom"]["limit"]
        assert limit.startswith("Zoom does not show the e-mail address of someone who took part without registering")
        assert limit in next((tmp_path / "out").glob("erasure-request-*.html")).read_text()
        named = json.loads(CliRunner().invoke(app, ["--config", str(path), "find", "someone@example.nl", "--name",
                                                    "anna BAKKER", "--test", "--format", "json"]).stdout)
        assert "limit" not in {s["system"]: s for s in named["systems"]}["zoom"]
        assert len([m for m in named["possible_matches"] if m["system"] == "zoom"]) == 2
        found = CliRunner().invoke(app, ["--config", str(path), "find", "bram@example.nl", "--test", "--format",
                                         "json"])
        recordings = [r for r in json.loads(found.stdout)["records"] if r["system"] == "zoom"]
        assert len(recordings) == 2  # registered: the recording and the registration carry his address
        assert {r["label"] for r in recordings} == {RULES.rule("zoom-recording-1y").nl,
                                                   RULES.rule("zoom-registrant-1y").nl}
        assert {s["system"]: s["status"] for s in report["systems"]}["zoom"] == "searched"
        assert "Google Meet" in {s["name"] for s in report["systems"] if s["status"] == "checked_by_hand"}
        by_start = {m["start_time"][:10]: uuid for uuid, m in fake.meetings.items()}
        assert run_purge(load_config(str(path)), RULES, apply=True, day=TODAY, force=True, show=0) == 0
        assert set(fake.meetings) == {by_start[recent.start.date().isoformat()],
                                      by_start[bram.zoom.sessions[0].start.date().isoformat()]}
        assert not fake.trash
        assert len(fake.registrants[next(iter(fake.registrants))]) == 1  # Bram's registration: contact within a year
        assert run_purge(load_config(str(path)), RULES, apply=True, day=TODAY, show=0) == 0
        assert fake.count("DELETE") == 1


def test_registrants_are_read_through_the_meeting_after_its_recordings_are_gone(served):
    fake, server = served
    add(fake, "onlyRecordingAAAAA==", at(TODAY - relativedelta(years=2)), ("Anna Bakker", "anna@example.nl"),
        meeting_id=81_000_000_321)
    fake.add_registrant(81_000_000_321, person("p4", "Eva", "Bos", "eva@example.nl"), at(TODAY - timedelta(days=5)))
    client = connector(server, fake, history_from=TODAY - relativedelta(years=3))
    assert client.delete(RecordRef("zoom", RECORDING, "onlyRecordingAAAAA==")).outcome is Outcome.DONE
    assert [(r.record_type, r.emails) for r in client.records()] == [(REGISTRANT, ("eva@example.nl",))]


def test_a_night_after_the_full_read_lists_two_months_and_asks_only_new_recordings_for_their_people(tmp_path):
    sessions = [Session(at(TODAY - relativedelta(months=months, days=days)), 60, "Coaching")
                for months, days in ((0, 10), (3, 0), (9, 0), (20, 0))]
    with Sandbox(population(person("anna", "Anna", "Bakker", "anna@example.nl", *sessions))) as sandbox:
        fake: ZoomFake = sandbox.fakes["zoom"]  # type: ignore[assignment]
        config = load_config(str(sandbox.write_config(tmp_path)))
        assert run_purge(config, RULES, apply=True, day=TODAY, force=True, show=0) == 0
        full = len(listing_queries(fake))
        fake.requests.clear()
        assert run_purge(config, RULES, apply=True, day=TODAY, show=0) == 0
        assert len(listing_queries(fake)) == 2 < full and fake.count(path_contains="/participants") == 0
        fake.requests.clear()
        add(fake, "newTodayAAAAAAAAAA==", at(TODAY, 0), ("Anna Bakker", "anna@example.nl"))
        assert run_purge(config, RULES, apply=True, day=TODAY, show=0) == 0
        assert [r.path for r in fake.requests if "/participants" in r.path] == [
            "/v2/past_meetings/newTodayAAAAAAAAAA==/participants"]


# -- configuration --------------------------------------------------------------------------------------------
def zoom_config(tmp_path: Path, table: str) -> Path:
    path = tmp_path / "vergeet.toml"
    path.write_text(f'[store]\nurl = "sqlite://"\npepper = "{"p" * 8}-not-read-here"\n\n[connectors.zoom]\n{table}')
    return path


def test_a_missing_zoom_secret_is_named_and_a_plain_http_url_refused(tmp_path, monkeypatch):
    from vergeet.connect import build_connectors
    from vergeet.errors import BadInput

    monkeypatch.delenv("ZOOM_CLIENT_SECRET", raising=False)
    secrets = 'account_id = "acc"\nclient_id = "cid"\nclient_secret = "env:ZOOM_CLIENT_SECRET"\n'
    with pytest.raises(BadInput, match="connectors.zoom.client_secret.*ZOOM_CLIENT_SECRET"):
        build_connectors(load_config(str(zoom_config(tmp_path, secrets))))
    with pytest.raises(BadInput, match="connectors.zoom.oauth_url"):
        load_config(str(zoom_config(tmp_path, secrets + 'oauth_url = "http://zoom.example.com/oauth/token"\n')))
    monkeypatch.setenv("ZOOM_CLIENT_SECRET", "s3cret")
    built = build_connectors(load_config(str(zoom_config(tmp_path, secrets + 'history_from = 2020-01-01\n'))))
    assert built["zoom"].history_from == date(2020, 1, 1) and built["zoom"].user_id == "me"


def test_a_recording_the_owner_moved_to_the_trash_is_deleted_from_it(served):
    fake, server = served
    add(fake, "ownerTrashedAAAAAA==", at(TODAY - relativedelta(years=2)), ("Anna Bakker", "anna@example.nl"))
    fake.remove(0)
    client = connector(server, fake)
    result = client.delete(RecordRef("zoom", RECORDING, "ownerTrashedAAAAAA=="))
    assert result.outcome is Outcome.DONE and "trash" in result.detail and not fake.trash
    assert client.delete(RecordRef("zoom", RECORDING, "ownerTrashedAAAAAA==")).outcome is Outcome.ALREADY_GONE
