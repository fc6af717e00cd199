"""Mailblue as ActiveCampaign v3 really behaves (issue 13): list statuses, the contact archive, purges that are
confirmed, paging that stops on a short page, list rows read in bulk, what the access report keeps, the API URL.

Each test names the behaviour of the vendor it relies on; the fake models it (vergeet/sandbox/fake_mailblue.py).
"""
from __future__ import annotations

import json
from contextlib import contextmanager
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest
import responses
from responses import matchers

from connectors.base import Identifiers, Outcome, RecordRef
from connectors.http import VendorAuthError, VendorBadResponse
from connectors.mailblue import MailblueConnector
from vergeet.cli import run_purge
from vergeet.config import load_config, parse_config
from vergeet.decide import decide
from vergeet.errors import BadInput
from vergeet.pipeline import identity_view
from vergeet.rules import load_rules
from vergeet.sandbox.fake_mailblue import ACTIVE, GIVEAWAY, NEWSLETTER, REMOVED, UNSUBSCRIBED, MailblueFake
from vergeet.sandbox.population import generate, newcomer
from vergeet.sandbox.server import FakeServer

ROOT = Path(__file__).resolve().parents[1]
RULES = load_rules(ROOT / "retention_rules.toml")
TODAY = date.today()
NOW = datetime.now(timezone.utc)
TOKEN = "sandbox-mailblue-token"
BASE = "https://acct.api-us1.com/api/3"


@pytest.fixture(scope="module")
def population():
    return generate(60, seed=7, today=TODAY)


@contextmanager
def serving(fake: MailblueFake):
    with FakeServer(fake) as server:
        yield MailblueConnector(base_url=f"{server.url}/api/3", token=TOKEN, rate=None, backoff_factor=0)


def joined(fake: MailblueFake, key: str, *, days_ago: int = 0, subscribed: bool = True) -> str:
    """A newcomer signs up (contact and newsletter row dated `days_ago`, on no other list); its contact id."""
    person = newcomer(key, ["mailblue"], seed=len(key), today=TODAY)
    person.mailblue.created_at = person.mailblue.status_changed_at = NOW - timedelta(days=days_ago)
    person.mailblue.subscribed = subscribed
    fake.add_person(person)
    contact_id = fake.contact_ids[key]
    fake.memberships[contact_id] = [row for row in fake.memberships[contact_id] if row["list"] == NEWSLETTER]
    return contact_id


def plan_of(records):
    return decide(identity_view({"mailblue": list(records)}, RULES), RULES, TODAY)


def fate(plan, key: str) -> tuple[str, str]:
    """('delete', rule) or ('kept', rule) for one record key."""
    acted = plan.actions[plan.actions["key"] == key]
    if len(acted):
        return "delete", acted.iloc[0]["rule_id"]
    kept = plan.kept[plan.kept["key"] == key]
    return "kept", kept.iloc[0]["rule_id"] if len(kept) else ""


# -- 1. consent follows the list status codes ---------------------------------------------------------------------
def test_each_list_status_gives_its_own_consent_state(population):
    """AC-ENUM: 0 unconfirmed, 1 active, 2 unsubscribed, 3 bounced; AC-91: 91 is a removed row, no unsubscribe."""
    fake = MailblueFake(population)
    ids = {state: joined(fake, f"S{state}") for state in ("active", "unsub", "unconf", "bounced", "removed")}
    fake.set_status(ids["unsub"], NEWSLETTER, UNSUBSCRIBED)
    fake.unconfirm(ids["unconf"])
    fake.bounce(ids["bounced"])
    fake.set_status(ids["removed"], NEWSLETTER, REMOVED)
    with serving(fake) as mailblue:
        consent = {r.record_id: r.consent for r in mailblue.records() if r.record_type == "contact"}

    assert {state: consent[i] for state, i in ids.items()} == {
        "active": "subscribed", "unsub": "unsubscribed", "unconf": "unconfirmed", "bounced": "bounced",
        "removed": None}


def test_an_active_row_on_another_list_outweighs_an_unsubscribe(population):
    fake = MailblueFake(population)
    both = joined(fake, "B1")
    fake.memberships[both].append({**fake.memberships[both][0], "id": "9001", "list": GIVEAWAY})
    fake.set_status(both, NEWSLETTER, UNSUBSCRIBED)
    with serving(fake) as mailblue:
        [record] = [r for r in mailblue.records() if r.record_id == both and r.record_type == "contact"]
    assert record.consent == "subscribed"


@pytest.mark.parametrize("key, known_for, signed_up, expected", [
    ("U1", 1, 1, ("kept", "mailblue-unconfirmed-30d")),  # not deleted the next night
    ("U2", 31, 31, ("delete", "mailblue-unconfirmed-30d")),  # goes 30 days after the sign-up
    ("U3", 800, 2, ("kept", "mailblue-unconfirmed-30d")),  # an old contact gets its 30 days from the sign-up
], ids=["next night", "after 30 days", "old contact signs up"])
def test_an_unconfirmed_sign_up_has_30_days_from_the_sign_up(population, key, known_for, signed_up, expected):
    fake = MailblueFake(population)
    contact = joined(fake, key, days_ago=known_for)
    fake.unconfirm(contact, at=NOW - timedelta(days=signed_up))
    with serving(fake) as mailblue:
        plan = plan_of(mailblue.records())
    assert fate(plan, f"mailblue/contact/{contact}") == expected


def test_a_bounced_contact_is_not_deleted_as_withdrawn_consent_but_after_its_year(population):
    fake = MailblueFake(population)
    recent, old = joined(fake, "X1", days_ago=30), joined(fake, "X2", days_ago=400)
    fake.bounce(recent)
    fake.bounce(old)
    with serving(fake) as mailblue:
        plan = plan_of(mailblue.records())
    assert fate(plan, f"mailblue/contact/{recent}") == ("kept", "mailblue-contact-1y")
    assert fate(plan, f"mailblue/contact/{old}") == ("delete", "mailblue-contact-1y")


# -- 2. purges are confirmed by reading the archive --------------------------------------------------------------
def test_a_purge_that_comes_before_the_contact_reaches_the_archive_is_not_reported_done_too_early(population):
    """The purge answers 200 whether or not anything was there (AC-ARCH); archiving may lag (undocumented)."""
    fake = MailblueFake(population)
    contact_id = joined(fake, "P1")
    fake.archiving_lag = 1
    with serving(fake) as mailblue:
        result = mailblue.delete(RecordRef("mailblue", "contact", contact_id))
        list(mailblue.search(Identifiers(emails=("nobody@example.nl",))))  # later requests: archiving catches up
    assert result.outcome is Outcome.DONE
    assert contact_id not in fake.archive and contact_id not in fake.contacts


@responses.activate
def test_delete_reads_the_archive_before_and_after_purging():
    responses.delete(f"{BASE}/contacts/42", json={})
    responses.get(f"{BASE}/contacts/42", status=404, json={"message": "No Result found"})
    responses.get(f"{BASE}/contactArchives/42", json={"contactArchive": {"id": "42"}})
    responses.delete(f"{BASE}/contactArchives/42", json={})
    responses.get(f"{BASE}/contactArchives/42", status=404, json={"message": "No Result found"})
    result = MailblueConnector(base_url=BASE, token="t", rate=None, backoff_factor=0).delete(
        RecordRef("mailblue", "contact", "42"))

    assert result.outcome is Outcome.DONE
    assert [(c.request.method, c.request.path_url) for c in responses.calls] == [
        ("DELETE", "/api/3/contacts/42"), ("GET", "/api/3/contacts/42"), ("GET", "/api/3/contactArchives/42"),
        ("DELETE", "/api/3/contactArchives/42"), ("GET", "/api/3/contactArchives/42")]


@responses.activate
def test_a_purge_the_archive_does_not_reflect_fails_instead_of_reporting_done():
    responses.delete(f"{BASE}/contacts/42", json={})
    responses.get(f"{BASE}/contacts/42", status=404, json={"message": "No Result found"})
    responses.get(f"{BASE}/contactArchives/42", json={"contactArchive": {"id": "42"}})  # stays there
    responses.delete(f"{BASE}/contactArchives/42", json={})
    with pytest.raises(VendorBadResponse, match="still"):
        MailblueConnector(base_url=BASE, token="t", rate=None, backoff_factor=0).delete(
            RecordRef("mailblue", "contact", "42"))


def test_a_token_that_cannot_purge_hands_the_purge_over_saying_what_where_and_why(population):
    """Only Admin users may purge archived contacts; others get 404 (AC-ARCH delete-archived-contact)."""
    fake = MailblueFake(population, admin=False)
    person = next(p for p in population.people if p.mailblue and fake.contact_ids[p.key] in fake.contacts)
    contact_id = fake.contact_ids[person.key]
    with serving(fake) as mailblue:
        result = mailblue.delete(RecordRef("mailblue", "contact", contact_id))

    assert result.outcome is Outcome.NOT_SUPPORTED
    assert contact_id in fake.archive
    detail = result.detail
    assert f"contact {contact_id}" in detail and "Admin" in detail  # what, and why
    assert "View archived contacts" in detail  # where a human does it
    assert person.mailblue.email.strip().casefold() not in detail.casefold() and person.last_name not in detail


def test_a_non_admin_delete_of_a_contact_with_nothing_archived_is_already_gone(population):
    fake = MailblueFake(population, admin=False)
    with serving(fake) as mailblue:
        result = mailblue.delete(RecordRef("mailblue", "contact", "99999"))
    assert result.outcome is Outcome.ALREADY_GONE


@pytest.mark.parametrize("admin", [True, False])
def test_a_second_purge_apply_right_after_the_first_sends_no_changing_request(tmp_path, admin):
    fake = MailblueFake(generate(80, seed=3, today=TODAY), admin=admin, rate_calls=10_000)
    with FakeServer(fake) as server:
        path = tmp_path / "vergeet.toml"
        path.write_text(f'[store]\nurl = "sqlite:///{tmp_path / "ledger.db"}"\npepper = "a-pepper-of-the-length-vergeet-needs-now"\n\n'
                        f'[connectors.mailblue]\nbase_url = "{server.url}/api/3"\ntoken = "{TOKEN}"\n'
                        'rate = { calls = 10000, period_seconds = 1 }\n')
        config = load_config(str(path))
        run_purge(config, RULES, apply=True, day=TODAY, force=True, show=0)
        first = [r for r in fake.requests if r.method != "GET"]
        before = len(fake.requests)
        run_purge(config, RULES, apply=True, day=TODAY, force=True, show=0)

    assert first  # the first run did delete
    assert [(r.method, r.path) for r in fake.requests[before:] if r.method != "GET"] == []


# -- 3. the contact archive ---------------------------------------------------------------------------------------
def test_search_finds_a_contact_deleted_in_the_mailblue_ui(population):
    """Deleted contacts are kept 360 days and GET /contacts never lists them (AC-ARCH)."""
    fake = MailblueFake(population)
    person = next(p for p in population.people if p.mailblue and fake.contact_ids[p.key] in fake.contacts)
    contact_id = fake.contact_ids[person.key]
    fake.archive_contact(contact_id, at=NOW - timedelta(days=40))
    with serving(fake) as mailblue:
        found = list(mailblue.search(Identifiers(emails=(person.email.upper(),))))

    assert [(r.record_type, r.record_id) for r in found] == [("archived_contact", contact_id)]
    assert found[0].fields["deleted_at"] and found[0].fields["is_restorable"] is True
    assert found[0].emails == (person.mailblue.email,)


def test_search_by_name_and_phone_reaches_the_archive_too(population):
    fake = MailblueFake(population)
    contact_id = joined(fake, "A9")
    person = fake.people[contact_id]
    fake.contacts[contact_id]["phone"] = "+31612345678"
    fake.archive_contact(contact_id)
    with serving(fake) as mailblue:
        by_phone = list(mailblue.search(Identifiers(phones=("+31 6 1234 5678",))))
        by_name = list(mailblue.search(Identifiers(names=(person.name.upper(),))))
    assert ("archived_contact", contact_id) in {(r.record_type, r.record_id) for r in by_phone}
    assert ("archived_contact", contact_id) in {(r.record_type, r.record_id) for r in by_name}


def test_the_nightly_read_includes_archived_contacts_and_their_rule_purges_them(population):
    fake = MailblueFake(population)
    seeded = set(fake.archive)
    deleted_in_ui = joined(fake, "A1")
    fake.archive_contact(deleted_in_ui)
    with serving(fake) as mailblue:
        records = list(mailblue.records())
        archived = {r.record_id for r in records if r.record_type == "archived_contact"}
        plan = plan_of(records)
        key = f"mailblue/archived_contact/{deleted_in_ui}"
        assert fate(plan, key) == ("delete", "mailblue-archived-contact")
        result = mailblue.delete(RecordRef("mailblue", "archived_contact", deleted_in_ui))

    assert seeded and archived == seeded | {deleted_in_ui}
    assert result.outcome is Outcome.DONE and deleted_in_ui not in fake.archive


def test_a_non_admin_token_reads_without_the_archive_but_a_search_says_it_could_not_look_there(population):
    fake = MailblueFake(population, admin=False)
    person = next(p for p in population.people if p.mailblue and fake.contact_ids[p.key] in fake.contacts)
    with serving(fake) as mailblue:
        records = list(mailblue.records())
        with pytest.raises(VendorAuthError, match="contact archive could not be searched.*Admin") as caught:
            list(mailblue.search(Identifiers(emails=(person.email,))))
    assert {r.record_type for r in records} == {"contact"}
    assert person.email not in str(caught.value)


def test_an_incremental_read_sees_contacts_deleted_in_the_ui_through_the_archive(population):
    fake = MailblueFake(population)
    with serving(fake) as mailblue:
        first = mailblue.changes(None, known=None)
        victim = sorted(fake.contacts, key=int)[3]
        fake.archive_contact(victim)
        night = mailblue.changes(first.cursor, known=None)
    assert RecordRef("mailblue", "contact", victim) in night.gone
    assert ("archived_contact", victim) in {(r.record_type, r.record_id) for r in night.records}


def test_the_fake_restores_archived_contacts_only_when_old_enough(population):
    """POST /contactArchives/restoreRequest: 400 unless every id is restorable (archived 30 days ago or more)."""
    import requests
    fake = MailblueFake(population)
    old, new = joined(fake, "R1"), joined(fake, "R2")
    fake.archive_contact(old, at=NOW - timedelta(days=31))
    fake.archive_contact(new)
    with FakeServer(fake) as server:
        url, headers = f"{server.url}/api/3/contactArchives/restoreRequest", {"Api-Token": TOKEN}
        refused = requests.post(url, json={"ids": [int(old), int(new)]}, headers=headers)
        restored = requests.post(url, json={"ids": [int(old)]}, headers=headers)
    assert (refused.status_code, restored.status_code) == (400, 201)
    assert old in fake.contacts and old not in fake.archive and new in fake.archive


# -- 4. paging stops on a short page ------------------------------------------------------------------------------
@responses.activate
def test_a_full_page_is_followed_even_when_meta_total_says_it_was_all():
    def contact(i):
        return {"id": str(i), "email": f"p{i}@example.nl", "cdate": "2024-01-10T09:00:00-05:00",
                "udate": "2024-01-10T09:00:00-05:00"}

    keyset = {"orders[id]": "ASC", "limit": "100"}
    responses.get(f"{BASE}/lists", json={"lists": [], "meta": {"total": "0"}})
    responses.get(f"{BASE}/contactLists", json={"contactLists": [], "meta": {"total": "0"}})
    responses.get(f"{BASE}/contactArchives", json={"contactArchives": [], "meta": {"total": "0"}})
    responses.get(f"{BASE}/contacts", json={"contacts": [contact(i) for i in range(1, 101)], "meta": {"total": "100"}},
                  match=[matchers.query_param_matcher({**keyset, "id_greater": "0"})])
    responses.get(f"{BASE}/contacts", json={"contacts": [contact(101)], "meta": {"total": "1"}},
                  match=[matchers.query_param_matcher({**keyset, "id_greater": "100"})])
    records = list(MailblueConnector(base_url=BASE, token="t", rate=None).records())
    assert len([r for r in records if r.record_type == "contact"]) == 101


def test_contacts_that_sign_up_while_paging_are_read(population):
    fake = MailblueFake(generate(300, seed=2, today=TODAY))
    while len(fake.contacts) > 100:
        fake.contacts.pop(max(fake.contacts, key=int))
    fake.memberships = {i: rows for i, rows in fake.memberships.items() if i in fake.contacts}
    fake.add_while_paging(newcomer("W1", ["mailblue"], seed=1, today=TODAY))
    with serving(fake) as mailblue:
        contacts = {r.record_id for r in mailblue.records() if r.record_type == "contact"}
    assert fake.contact_ids["W1"] in contacts and len(contacts) == 101


@responses.activate
def test_list_rows_that_move_while_paging_are_read_again_not_skipped():
    """GET /contactLists pages by offset (TAP); a row deleted before the offset shifts the rest back one."""
    def row(i):
        return {"id": str(i), "contact": str(i), "list": "1", "status": "1",
                "sdate": "2024-01-10T09:00:00-05:00", "udate": "2024-01-10T09:00:00-05:00"}

    rows = [row(i) for i in range(1, 151)]
    served = []

    def serve(request):
        offset = int(request.params["offset"])
        current = rows if not served else rows[1:]  # row 1 goes (its contact deleted) once the first page is read
        served.append(offset)
        body = {"contactLists": current[offset:offset + 100], "meta": {"total": str(len(current))}}
        return 200, {}, json.dumps(body)

    responses.add_callback(responses.GET, f"{BASE}/contactLists", callback=serve)
    responses.get(f"{BASE}/contactArchives", json={"contactArchives": [], "meta": {"total": "0"}})
    responses.get(f"{BASE}/contacts", json={"contacts": [
        {"id": "101", "email": "p101@example.nl", "cdate": "2024-01-10T09:00:00-05:00"}], "meta": {"total": "1"}})
    [record] = MailblueConnector(base_url=BASE, token="t", rate=None).records()
    # paging on by 100 would start the second page at row 102: row 101, contact 101's only row, would be skipped
    assert record.consent == "subscribed"
    assert served[:2] == [0, 99] and 0 in served[2:]


# -- 5. list rows in bulk: unsubscriptions that do not move the contact's udate -----------------------------------
def test_a_night_sees_an_unsubscribe_that_left_the_contact_untouched(population):
    fake = MailblueFake(population)
    subscriber = next(i for i, rows in fake.memberships.items() if any(r["status"] == ACTIVE for r in rows)
                      and len(rows) == 1)
    with serving(fake) as mailblue:
        first = mailblue.changes(None, known=None)
        udate = fake.contacts[subscriber]["udate"]
        fake.set_status(subscriber, NEWSLETTER, UNSUBSCRIBED)
        before = len(fake.requests)
        night = mailblue.changes(first.cursor, known=None)
        calls = fake.requests[before:]

    assert fake.contacts[subscriber]["udate"] == udate  # the fake models that the contact's udate stays
    [record] = [r for r in night.records if r.record_type == "contact" and r.record_id == subscriber]
    assert record.consent == "unsubscribed" and record.consent_changed_at > NOW - timedelta(minutes=5)
    assert not any("listid" in r.query for r in calls)  # no listing per list
    assert {r.path for r in calls} == {"/api/3/contactLists", "/api/3/contacts", "/api/3/contactArchives"}


def test_a_night_costs_the_list_rows_pages_and_a_page_per_feed(population):
    fake = MailblueFake(generate(400, seed=4, today=TODAY))
    with serving(fake) as mailblue:
        first = mailblue.changes(None, known=None)
        before = len(fake.requests)
        mailblue.changes(first.cursor, known=None)
        calls = len(fake.requests) - before
    rows = sum(len(r) for r in fake.memberships.values())
    # the list rows' pages (overlapping by one row), a page of contacts updated since (a day early, as the vendor
    # compares dates in its own zone), a page of contacts archived since, and perhaps one of contacts by id
    # (rows changed within that day of contacts whose udate did not)
    assert -(-rows // 99) + 2 <= calls <= -(-rows // 99) + 3


# -- 6. the access report keeps what the contact read returns ----------------------------------------------------
def test_the_access_report_keeps_geo_data_deals_and_automations(population):
    fake = MailblueFake(population)
    contact_id = next(i for i in sorted(fake.contacts, key=int) if int(i) % 10 == 0)
    email = fake.contacts[contact_id]["email"]
    with serving(fake) as mailblue:
        [record] = mailblue.search(Identifiers(emails=(email,)))
    for side_load in ("geoIps", "geoAddresses", "deals", "contactAutomations", "contactLists"):
        assert record.fields[side_load], side_load
    assert record.fields["geoIps"][0]["ip4"] and record.fields["geoAddresses"][0]["city"]


# -- 7. the API URL -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("pasted", ["https://acct.api-us1.com", "https://acct.api-us1.com/"])
def test_a_base_url_without_api_3_is_completed(pasted):
    config = parse_config(f'[connectors.mailblue]\nbase_url = "{pasted}"\ntoken = "t"\n', "v.toml")
    assert config.connectors.mailblue.base_url == "https://acct.api-us1.com/api/3"
    assert MailblueConnector(base_url=pasted, token="t").http.base_url == "https://acct.api-us1.com/api/3"


@pytest.mark.parametrize("pasted", ["https://acct.api-us1.com/api/2", "https://acct.activehosted.com/admin"])
def test_a_base_url_with_another_path_is_refused_naming_file_and_key(pasted):
    with pytest.raises(BadInput, match=r"^v\.toml: connectors\.mailblue\.base_url: .*/api/3"):
        parse_config(f'[connectors.mailblue]\nbase_url = "{pasted}"\ntoken = "t"\n', "v.toml")

