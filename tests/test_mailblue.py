"""Tests for connectors.mailblue: request shapes with `responses`, behaviour against the sandbox fake."""
from __future__ import annotations

import math
from datetime import date, datetime, timezone

import pytest
import responses
from responses import matchers

from connectors.base import Identifiers, Outcome, RecordRef
from connectors.http import VendorAuthError, VendorBadResponse, VendorUnavailable
from connectors.mailblue import MailblueConnector, anonymised_email
from vergeet.sandbox.fake_mailblue import MailblueFake
from vergeet.sandbox.population import generate
from vergeet.sandbox.server import FakeServer

BASE = "https://acct.api-us1.com/api/3"
TOKEN = "test-token"
KEYSET = {"orders[id]": "ASC", "id_greater": "0", "limit": "100"}


def connector(**kwargs) -> MailblueConnector:
    settings = {"rate": None, "retries": 2, "backoff_factor": 0, **kwargs}
    return MailblueConnector(base_url=BASE, token=TOKEN, **settings)


def ref(contact_id: str = "42") -> RecordRef:
    return RecordRef("mailblue", "contact", contact_id)


def contact(contact_id: int, email: str = "", **fields) -> dict:
    """A contact as `GET /contacts` returns it (every value a string)."""
    return {"cdate": "2024-01-10T09:00:00-05:00", "email": email or f"person{contact_id}@example.nl", "phone": "",
            "firstName": "", "lastName": "", "orgid": "0", "deleted": "0", "anonymized": "0", "adate": None,
            "udate": "2024-01-10T09:00:00-05:00", "edate": None, "scoreValues": [],
            "links": {"contactLists": f"{BASE}/contacts/{contact_id}/contactLists"}, "id": str(contact_id),
            "organization": None, **fields}


def contacts_body(items: list[dict], total: int | None = None) -> dict:
    return {"scoreValues": [], "contacts": items, "meta": {"total": str(len(items) if total is None else total)}}


def add_rows(rsps, rows: list[dict], offset: int = 0) -> None:
    """`GET /contactLists`: the account's list rows in bulk (one page)."""
    rsps.get(f"{BASE}/contactLists", json={"contactLists": rows, "meta": {"total": str(len(rows))}},
             match=[matchers.query_param_matcher({"offset": str(offset), "limit": "100"}),
                    matchers.header_matcher({"Api-Token": TOKEN})])


def add_archive(rsps, items: list[dict] | None = None, **query) -> None:
    rsps.get(f"{BASE}/contactArchives", json={"contactArchives": items or [], "meta": {"total": str(len(items or []))}},
             match=[matchers.query_param_matcher({"offset": "0", "limit": "100", **query}),
                    matchers.header_matcher({"Api-Token": TOKEN})])


def row(contact_id: int, status: str, list_id: str = "1", **dates) -> dict:
    """A list row as `GET /contactLists` returns it (fixture contact_contactLists.json)."""
    return {"contact": str(contact_id), "list": list_id, "status": status, "sdate": "2024-01-10T09:00:00-05:00",
            "udate": None, "id": f"{contact_id}{list_id}", **dates}


def add_contacts(rsps, items: list[dict], total: int | None = None, **query) -> None:
    rsps.get(f"{BASE}/contacts", json=contacts_body(items, total),
             match=[matchers.query_param_matcher({**KEYSET, **query}), matchers.header_matcher({"Api-Token": TOKEN})])


# -- request shapes and mapping (responses) ------------------------------------------------------
@responses.activate
def test_records_read_consent_from_the_list_rows_in_bulk_and_map_dates_to_utc():
    subscribed = contact(1, " Anna.deJong@Example.NL ", firstName="Anna", lastName="de Jong", phone="06-12345678",
                         adate="2025-03-01T10:00:00-05:00", last_open_date="2025-04-02 08:00:00",
                         udate="2025-02-01T12:00:00-06:00")
    unsubscribed = contact(2, udate="2024-01-10T09:00:00-05:00", adate="0000-00-00 00:00:00")
    on_no_list = contact(3)
    add_rows(responses, [row(1, "1", udate="2025-02-01T12:00:00-06:00"), row(1, "2", "2"),
                         row(2, "2", udate="2025-05-05T00:30:00+02:00"), row(3, "91")])
    add_contacts(responses, [subscribed, unsubscribed, on_no_list])
    add_archive(responses)

    records = {r.record_id: r for r in connector().records()}

    assert [(r.consent, r.consent_changed_at) for r in records.values()] == [
        ("subscribed", datetime(2025, 2, 1, 18, 0, tzinfo=timezone.utc)),  # active on one list outweighs the other
        ("unsubscribed", datetime(2025, 5, 4, 22, 30, tzinfo=timezone.utc)),  # the row's date, not the contact's
        (None, None)]  # 91: a subscription removed, no membership
    first = records["1"]
    assert first.emails == (" Anna.deJong@Example.NL ",) and first.phones == ("06-12345678",)
    assert (first.first_name, first.last_name) == ("Anna", "de Jong")
    assert first.created_at == datetime(2024, 1, 10, 14, 0, tzinfo=timezone.utc)
    assert first.last_activity_at == datetime(2025, 4, 2, 8, 0, tzinfo=timezone.utc)  # the later of adate and last open
    assert records["2"].last_activity_at is None  # a zero date is no activity, and udate (edits) never counts
    assert "links" not in first.fields and first.fields["orgid"] == "0"
    assert len(responses.calls) == 3  # list rows, contacts, archive: no listing per list


@responses.activate
def test_records_since_read_changed_contacts_a_day_early_and_by_id_those_whose_rows_changed():
    since = datetime(2026, 1, 15, 0, 30, tzinfo=timezone.utc)
    margin = int(datetime(2026, 1, 14, 0, 30, tzinfo=timezone.utc).timestamp() * 1000)
    add_rows(responses, [row(9, "1"), row(5, "2", udate="2026-01-14T20:00:00-05:00"), row(6, "1")])
    add_contacts(responses, [contact(9)], **{"filters[updated_after]": "2026-01-14"})
    add_contacts(responses, [contact(5)], **{"ids[]": "5"})  # unsubscribed since; its udate did not move
    add_archive(responses, start=str(margin))

    records = connector().records(since=since)

    assert [(r.record_id, r.consent) for r in records] == [("9", "subscribed"), ("5", "unsubscribed")]
    assert len(responses.calls) == 4


@responses.activate
def test_contacts_page_by_id_until_a_short_page():
    add_rows(responses, [])
    add_contacts(responses, [contact(i) for i in range(1, 101)], total=150)
    add_contacts(responses, [contact(i) for i in range(101, 151)], total=50, id_greater="100")
    add_archive(responses)

    assert [r.record_id for r in connector().records()] == [str(i) for i in range(1, 151)]
    assert len(responses.calls) == 4


@responses.activate
def test_a_full_last_page_costs_one_more_request_whatever_meta_total_says():
    add_rows(responses, [])
    add_contacts(responses, [contact(i) for i in range(1, 101)], total=100)
    add_contacts(responses, [], total=0, id_greater="100")
    add_archive(responses)

    assert len(list(connector().records())) == 100
    assert len(responses.calls) == 4


@responses.activate
def test_contacts_not_ordered_by_id_stop_with_an_error_instead_of_skipping():
    add_rows(responses, [])
    add_contacts(responses, [contact(5), contact(3)], total=200)

    with pytest.raises(VendorBadResponse, match="not ordered by id"):
        list(connector().records())


@responses.activate
def test_a_429_is_retried_after_its_retry_after():
    responses.get(f"{BASE}/contactLists", status=429, headers={"Retry-After": "0"},
                  json={"message": "too many requests"})
    add_rows(responses, [])
    add_contacts(responses, [contact(1)])
    add_archive(responses)

    assert [r.record_id for r in connector().records()] == ["1"]
    assert [c.response.status_code for c in responses.calls] == [429, 200, 200, 200]


@responses.activate
def test_5xx_until_retries_run_out_is_unavailable_without_the_email_in_the_message():
    responses.get(f"{BASE}/contacts", status=503, json={"message": "unavailable"})

    with pytest.raises(VendorUnavailable) as raised:
        list(connector(retries=2).search(Identifiers(emails=("Anna.deJong@Example.NL",))))

    assert len(responses.calls) == 3
    assert "dejong" not in str(raised.value).lower() and "example" not in str(raised.value).lower()


@responses.activate
def test_malformed_json_is_a_bad_response():
    responses.get(f"{BASE}/contactLists", body="<html>maintenance</html>", content_type="text/html")

    with pytest.raises(VendorBadResponse):
        list(connector().records())


@responses.activate
def test_search_filters_exactly_then_reads_each_matching_contact_whole():
    anna = contact(7, "anna.dejong@example.nl", firstName="Anna", lastName="de Jong", phone="+31 6 1234 5678")
    namesake = contact(8, "anna.dejonge@example.nl", firstName="Anna", lastName="de Jonge", phone="06-87654321")
    add_contacts(responses, [anna], email="Anna.deJong@Example.NL")
    add_contacts(responses, [anna, namesake], search="06-12345678")
    add_contacts(responses, [], search="+31612345678")
    add_contacts(responses, [anna], search="0612345678")
    add_contacts(responses, [anna, namesake], search="anna de JONG")  # whitespace collapsed
    for term in ("Anna.deJong@Example.NL", "06-12345678", "+31612345678", "0612345678", "anna de JONG"):
        add_archive(responses, search=term)  # the archive is searched the same way
    rows = [{"contact": "7", "list": "1", "status": "2", "sdate": "2023-01-01T10:00:00-05:00",
             "udate": "2024-06-01T10:00:00-05:00"},
            {"contact": "7", "list": "2", "status": "1", "sdate": "2024-02-01T10:00:00-05:00", "udate": None}]
    responses.get(f"{BASE}/contacts/7", json={"contact": anna, "contactLists": rows,
                                              "fieldValues": [{"field": "1", "value": "Hilversum"}]},
                  match=[matchers.header_matcher({"Api-Token": TOKEN})])

    found = list(connector().search(Identifiers(emails=(" Anna.deJong@Example.NL ",), phones=("06-12345678",),
                                                names=("anna  de JONG",))))

    assert [r.record_id for r in found] == ["7"]  # the namesake is filtered out client-side and never read
    assert found[0].consent == "subscribed"  # active on list 2, dated by that row (subscribe date, no update)
    assert found[0].consent_changed_at == datetime(2024, 2, 1, 15, 0, tzinfo=timezone.utc)
    assert found[0].fields["fieldValues"] == [{"field": "1", "value": "Hilversum"}]
    assert len(responses.calls) == 11


@pytest.mark.parametrize("contact_status, archived, purge_status, outcome, calls", [
    (200, True, 200, Outcome.DONE, ["DELETE contacts", "GET contacts", "GET contactArchives",
                                    "DELETE contactArchives", "GET contactArchives"]),
    (404, False, None, Outcome.ALREADY_GONE, ["DELETE contacts", "GET contactArchives"]),
    (200, True, 404, Outcome.NOT_SUPPORTED, ["DELETE contacts", "GET contacts", "GET contactArchives",
                                             "DELETE contactArchives"]),
])
@responses.activate
def test_delete_archives_then_purges_and_confirms(contact_status, archived, purge_status, outcome, calls):
    responses.delete(f"{BASE}/contacts/42", status=contact_status,
                     json={} if contact_status == 200 else {"message": "No result found for contact with id 42"},
                     match=[matchers.header_matcher({"Api-Token": TOKEN})])
    not_found = {"status": 404, "json": {"message": "No Result found"}}
    responses.get(f"{BASE}/contacts/42", **not_found)  # the delete confirmed: the contact is not there
    responses.get(f"{BASE}/contactArchives/42", **({"json": {"contactArchive": {"id": "42"}}} if archived
                                                   else not_found))
    if purge_status:
        responses.delete(f"{BASE}/contactArchives/42", status=purge_status, json={} if purge_status == 200 else None)
        responses.get(f"{BASE}/contactArchives/42", **not_found)

    result = connector().delete(ref())

    assert result.outcome is outcome
    assert [f"{c.request.method} {c.request.path_url.split('/')[3]}" for c in responses.calls] == calls
    if outcome is Outcome.NOT_SUPPORTED:
        assert "Admin" in result.detail and "42" in result.detail


@responses.activate
def test_anonymise_puts_placeholders_for_the_named_fields_only():
    responses.get(f"{BASE}/contacts/42", json={"contact": contact(42, phone="0612345678", firstName="Anna",
                                                                  lastName="de Jong")})
    overwritten = {"email": "anonymised-42@invalid.invalid", "firstName": "anonymised", "phone": ""}
    responses.put(f"{BASE}/contacts/42", json={"contact": contact(42, lastName="de Jong", **overwritten),
                                               "fieldValues": []},
                  match=[matchers.json_params_matcher({"contact": overwritten}),
                         matchers.header_matcher({"Api-Token": TOKEN})])

    result = connector().anonymise(ref(), ["phone", "email", "firstName"])

    assert result.outcome is Outcome.DONE and "@" not in result.detail


@responses.activate
def test_anonymise_writes_only_what_is_not_overwritten_yet_and_a_repeat_sends_nothing():
    responses.get(f"{BASE}/contacts/42", json={"contact": contact(42, "anonymised-42@invalid.invalid",
                                                                  firstName="Anna")})
    responses.put(f"{BASE}/contacts/42", json={"contact": contact(42, "anonymised-42@invalid.invalid",
                                                                  firstName="anonymised")},
                  match=[matchers.json_params_matcher({"contact": {"firstName": "anonymised"}})])

    assert connector().anonymise(ref(), ["email", "firstName", "phone"]).outcome is Outcome.DONE
    responses.replace(responses.GET, f"{BASE}/contacts/42",
                      json={"contact": contact(42, "anonymised-42@invalid.invalid", firstName="anonymised")})
    again = connector().anonymise(ref(), ["email", "firstName", "phone"])

    assert again.outcome is Outcome.DONE and "nothing sent" in again.detail
    assert [c.request.method for c in responses.calls] == ["GET", "PUT", "GET"]


@pytest.mark.parametrize("answer", [{"body": "<html>Just a moment</html>", "content_type": "text/html"},
                                    {"json": {"contact": {"id": "42", "firstName": "Anna"}}}],
                         ids=["html", "unchanged"])
@responses.activate
def test_a_put_whose_answer_does_not_show_the_change_fails(answer):
    responses.get(f"{BASE}/contacts/42", json={"contact": contact(42, firstName="Anna")})
    responses.put(f"{BASE}/contacts/42", **answer)

    with pytest.raises(VendorBadResponse, match=r"mailblue: PUT /contacts/42"):
        connector().anonymise(ref(), ["firstName"])


@responses.activate
def test_a_delete_answered_with_an_html_page_or_not_carried_out_fails():
    responses.delete(f"{BASE}/contacts/42", body="<html>Just a moment</html>", content_type="text/html")
    with pytest.raises(VendorBadResponse, match=r"mailblue: DELETE /contacts/42"):
        connector().delete(ref())
    responses.replace(responses.DELETE, f"{BASE}/contacts/42", json={})
    responses.get(f"{BASE}/contacts/42", json={"contact": contact(42)})  # still there
    with pytest.raises(VendorBadResponse, match="still there"):
        connector().delete(ref())


@responses.activate
def test_anonymise_of_a_missing_contact_is_already_gone():
    responses.get(f"{BASE}/contacts/42", status=404, json={"message": "No Result found for Subscriber with id 42"})

    assert connector().anonymise(ref(), ["lastName"]).outcome is Outcome.ALREADY_GONE


@responses.activate
def test_unknown_fields_and_foreign_refs_are_refused_before_any_request():
    with pytest.raises(ValueError):
        connector().anonymise(ref(), ["ip"])
    with pytest.raises(ValueError):
        connector().delete(RecordRef("moneybird", "contact", "42"))
    with pytest.raises(ValueError):
        connector().delete(ref("42/../1"))
    assert len(responses.calls) == 0


@responses.activate
def test_blank_identifiers_are_not_searched():
    assert list(connector().search(Identifiers(emails=("  ",), phones=(" ",), names=("",)))) == []
    assert len(responses.calls) == 0


# -- against the sandbox fake ----------------------------------------------------------------
TODAY = date(2026, 1, 15)


@pytest.fixture(scope="module")
def population():
    return generate(60, seed=7, today=TODAY)


def sandbox_connector(server: FakeServer, **kwargs) -> MailblueConnector:
    settings = {"token": "sandbox-mailblue-token", "backoff_factor": 0, **kwargs}
    return MailblueConnector(base_url=f"{server.url}/api/3", **settings)


def test_full_read_matches_the_population(population):
    fake = MailblueFake(population, rate_calls=1000)
    with FakeServer(fake) as server:
        records = list(sandbox_connector(server, rate=None).records())
    contacts = {r.record_id: r for r in records if r.record_type == "contact"}

    def expected_consent(contact_id: str, presence) -> tuple:
        """The person's list statuses, strongest first (AC-ENUM), dated by the status change or, when the sign-up
        is unconfirmed, by the sign-up."""
        statuses = {row["status"] for row in fake.memberships[contact_id]}
        for status, state in (("1", "subscribed"), ("0", "unconfirmed"), ("2", "unsubscribed"), ("3", "bounced")):
            if status in statuses:
                return state, presence.created_at if status == "0" else presence.status_changed_at
        return None, None

    def expected_activity(consent: tuple, presence) -> object:
        """The last open, or the sign-up when the person signed up since (a sign-up is their own act)."""
        state, changed = consent
        moments = [presence.last_open_at] + ([changed] if state in ("subscribed", "unconfirmed") else [])
        return max((m for m in moments if m), default=None)

    live = [p for p in population.people if p.mailblue and fake.contact_ids[p.key] in fake.contacts]
    consents = {p.key: expected_consent(fake.contact_ids[p.key], p.mailblue) for p in live}
    expected = {fake.contact_ids[p.key]: (p.mailblue.email, *consents[p.key],
                                          expected_activity(consents[p.key], p.mailblue), p.mailblue.created_at)
                for p in live}
    assert {i: (r.emails[0], r.consent, r.consent_changed_at, r.last_activity_at, r.created_at)
            for i, r in contacts.items()} == expected
    assert {r.consent for r in contacts.values()} == {"subscribed", "unsubscribed", "unconfirmed", "bounced"}
    assert {r.record_id for r in records if r.record_type == "archived_contact"} == set(fake.archive) != set()


def test_a_full_read_costs_pages_not_contacts():
    population = generate(320, seed=11, today=TODAY)
    fake = MailblueFake(population)
    with FakeServer(fake) as server:
        count = len([r for r in sandbox_connector(server).records() if r.record_type == "contact"])

    rows = sum(len(rows) for rows in fake.memberships.values())
    assert count > 100 and rows > 100  # several pages
    # the list rows in pages overlapping by one row, the contacts by id, the archive (one page)
    assert fake.count() <= math.ceil(rows / 99) + count // 100 + 1 + 1
    assert fake.count(path_contains="/contacts/") == 0  # nothing read per contact


def test_search_by_email_in_another_case_finds_the_contact(population):
    person = next(p for p in population.people if p.mailblue and not p.mailblue.subscribed)
    fake = MailblueFake(population)
    with FakeServer(fake) as server:
        found = list(sandbox_connector(server).search(
            Identifiers(emails=(f"  {person.mailblue.email.strip().swapcase()} ",))))

    assert [(r.record_id, r.consent, r.consent_changed_at) for r in found] == [
        (fake.contact_ids[person.key], "unsubscribed", person.mailblue.status_changed_at)]


def test_delete_then_search_shows_it_gone_and_purged(population):
    person = next(p for p in population.people if p.mailblue)
    fake = MailblueFake(population)
    contact_id = fake.contact_ids[person.key]
    with FakeServer(fake) as server:
        mailblue = sandbox_connector(server)
        first = mailblue.delete(ref(contact_id))
        again = mailblue.delete(ref(contact_id))
        found = list(mailblue.search(Identifiers(emails=(person.email,))))

    assert (first.outcome, again.outcome, found) == (Outcome.DONE, Outcome.ALREADY_GONE, [])
    assert contact_id not in fake.archive


def test_delete_by_a_non_admin_leaves_the_archived_contact_for_a_human(population):
    person = next(p for p in population.people if p.mailblue)
    fake = MailblueFake(population, admin=False)
    contact_id = fake.contact_ids[person.key]
    with FakeServer(fake) as server:
        result = sandbox_connector(server).delete(ref(contact_id))

    assert result.outcome is Outcome.NOT_SUPPORTED
    assert contact_id in fake.archive and contact_id not in fake.contacts


def test_anonymised_contact_is_found_by_its_placeholder_not_its_email(population):
    person = next(p for p in population.people if p.mailblue)
    fake = MailblueFake(population)
    contact_id = fake.contact_ids[person.key]
    with FakeServer(fake) as server:
        mailblue = sandbox_connector(server)
        result = mailblue.anonymise(ref(contact_id), ["email", "firstName", "lastName"])
        by_old = list(mailblue.search(Identifiers(emails=(person.email,))))
        by_new = list(mailblue.search(Identifiers(emails=(anonymised_email(contact_id),))))

    assert result.outcome is Outcome.DONE and by_old == []
    assert [(r.record_id, r.first_name, r.last_name) for r in by_new] == [(contact_id, "anonymised", "anonymised")]


def test_wrong_token_is_an_auth_error(population):
    fake = MailblueFake(population)
    with FakeServer(fake) as server:
        with pytest.raises(VendorAuthError):
            list(sandbox_connector(server, token="not-the-token").records())

    assert fake.count(status=403) == 1


def test_429s_over_a_lowered_limit_are_absorbed_by_retries(population):
    fake = MailblueFake(population, rate_calls=2, rate_period=1)
    with FakeServer(fake) as server:
        records = list(sandbox_connector(server, rate=None).records())

    assert len(records) == len(fake.contacts) + len(fake.archive)
    assert fake.count(status=429) > 0


def test_client_pacing_at_the_vendor_limit_never_meets_a_429(population):
    fake = MailblueFake(population)
    with FakeServer(fake) as server:
        mailblue = sandbox_connector(server)
        list(mailblue.records())
        list(mailblue.search(Identifiers(names=tuple(p.name for p in population.people[:5]))))

    assert fake.count() > fake.rate_calls  # the window was actually filled
    assert fake.count(status=429) == 0

