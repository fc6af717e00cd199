"""Tests for vergeet.ledger: schema, hashing, runs/actions, requests, suppressions, holds, sync state."""
from __future__ import annotations

import logging
import os
import socket
import sqlite3
import stat
import subprocess
import sys
import time
from datetime import date, datetime, timedelta, timezone
from unittest.mock import patch

import pytest
from sqlalchemy import exc as sa_exc

from vergeet.ledger import SCHEMA_VERSION, LeaseHeld, LeaseLost, Ledger, LedgerError, PlannedAction, leases_table

PEPPER = b"test-pepper-not-a-real-secret"


@pytest.fixture
def db_path(tmp_path):
    return tmp_path / "ledger.db"


@pytest.fixture
def ledger(db_path):
    with Ledger(f"sqlite:///{db_path}", PEPPER) as led:
        yield led


def _hash(ledger: Ledger, n: int) -> str:
    return ledger.hash_identifier("email", f"person{n}@example.org")


def _action(record_id: str, **kw) -> PlannedAction:
    base = dict(
        system="moneybird",
        record_type="contact",
        record_id=record_id,
        action="delete",
        fields=(),
        rule_id="contact-1y",
        reason="last contact more than 1 year ago",
    )
    base.update(kw)
    return PlannedAction(**base)


# -- schema --------------------------------------------------------------------


def test_fresh_file_gets_schema_and_version(tmp_path):
    path = tmp_path / "sub" / "dir" / "ledger.db"  # parent directories do not exist yet
    Ledger(f"sqlite:///{path}", PEPPER).close()
    assert path.is_file()
    con = sqlite3.connect(path)
    try:
        tables = {r[0] for r in con.execute("select name from sqlite_master where type='table'")}
        version = con.execute("select value from meta where key='schema_version'").fetchone()[0]
    finally:
        con.close()
    assert {
        "meta", "runs", "actions", "requests", "request_identifiers",
        "suppressions", "holds", "sync_state",
    } <= tables
    assert int(version) == SCHEMA_VERSION == 1


def test_the_ledger_file_is_readable_by_its_owner_only(tmp_path, caplog):
    fresh, wide = tmp_path / "fresh.db", tmp_path / "wide.db"
    Ledger(f"sqlite:///{fresh}", PEPPER).close()
    Ledger(f"sqlite:///{wide}", PEPPER).close()
    wide.chmod(0o644)
    with caplog.at_level(logging.WARNING, logger="vergeet.ledger"):
        Ledger(f"sqlite:///{wide}", PEPPER).close()
    assert stat.S_IMODE(fresh.stat().st_mode) == stat.S_IMODE(wide.stat().st_mode) == 0o600
    assert "was readable by others (mode 644)" in caplog.text


def test_reopen_keeps_data(db_path):
    with Ledger(f"sqlite:///{db_path}", PEPPER) as led:
        run_id = led.start_run("purge", as_of=date(2025, 1, 1), apply=False)
    with Ledger(f"sqlite:///{db_path}", PEPPER) as led:
        assert led.get_run(run_id)["kind"] == "purge"


def test_schema_version_mismatch_names_both_versions(db_path):
    Ledger(f"sqlite:///{db_path}", PEPPER).close()
    con = sqlite3.connect(db_path)
    con.execute("update meta set value='3' where key='schema_version'")
    con.commit()
    con.close()
    with pytest.raises(LedgerError) as err:
        Ledger(f"sqlite:///{db_path}", PEPPER)
    msg = str(err.value)
    assert "schema version 3" in msg
    assert "expects 1" in msg
    assert str(db_path) in msg


def test_different_pepper_on_existing_ledger_is_refused(db_path):
    Ledger(f"sqlite:///{db_path}", PEPPER).close()
    with pytest.raises(LedgerError, match="different pepper"):
        Ledger(f"sqlite:///{db_path}", b"another-pepper")


def test_foreign_tables_without_meta_are_refused(db_path):
    con = sqlite3.connect(db_path)
    con.execute("create table runs (x integer)")
    con.commit()
    con.close()
    with pytest.raises(LedgerError, match="no meta table"):
        Ledger(f"sqlite:///{db_path}", PEPPER)


_OPEN_AT_ONCE = """
import sys, time
from vergeet.ledger import Ledger
start = float(sys.argv[2])
time.sleep(max(0.0, start - time.time()))
with Ledger(sys.argv[1], b"test-pepper-not-a-real-secret") as led:
    print(led.url)
"""


def test_processes_creating_the_same_new_ledger_at_once_all_open_it(db_path):
    """Two flow runs started together on a machine without a ledger yet: each must find one ledger, not a
    'damaged' half-made one."""
    start = f"{time.time() + 2.0:.3f}"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _OPEN_AT_ONCE, f"sqlite:///{db_path}", start],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    results = [(p.wait(timeout=60), p.stderr.read()) for p in procs]
    for p in procs:
        p.stdout.close()
        p.stderr.close()
    assert [rc for rc, _ in results] == [0, 0, 0, 0], [err.strip().splitlines()[-1:] for _, err in results]
    with Ledger(f"sqlite:///{db_path}", PEPPER) as led:
        assert led.url


def test_a_damaged_ledger_is_still_refused_after_waiting_for_a_creator(db_path):
    con = sqlite3.connect(db_path)
    con.execute("create table meta (key text primary key, value text)")
    con.execute("create table runs (x integer)")
    con.commit()
    con.close()
    began = time.monotonic()
    with pytest.raises(LedgerError, match="no readable schema version"):
        Ledger(f"sqlite:///{db_path}", PEPPER)
    assert time.monotonic() - began < 10


@pytest.mark.parametrize(
    "url",
    [
        "this is not a url",
        "nosuchdialect://admin:s3cretpw@localhost/vergeet",
        "postgresql://admin:s3cretpw@127.0.0.1:1/vergeet",
    ],
)
def test_bad_url_gives_ledger_error_without_password(url):
    with pytest.raises(LedgerError) as err:
        Ledger(url, PEPPER)
    assert "s3cretpw" not in str(err.value)
    assert err.value.__cause__ is None or "s3cretpw" not in str(err.value.__cause__)


def test_empty_pepper_is_refused(tmp_path):
    with pytest.raises(LedgerError, match="pepper"):
        Ledger(f"sqlite:///{tmp_path / 'x.db'}", b"")


def test_in_memory_url_works():
    with Ledger("sqlite://", PEPPER) as led:
        run_id = led.start_run("access", as_of=date(2025, 1, 1), apply=False)
        assert led.get_run(run_id)["status"] == "running"


# -- hashing -------------------------------------------------------------------


def test_hashing_is_keyed_and_deterministic(tmp_path):
    a = Ledger(f"sqlite:///{tmp_path / 'a.db'}", b"pepper-one")
    b = Ledger(f"sqlite:///{tmp_path / 'b.db'}", b"pepper-two")
    try:
        h1 = a.hash_identifier("email", "jan@example.nl")
        assert h1 == a.hash_identifier("email", "jan@example.nl")
        assert len(h1) == 64 and all(c in "0123456789abcdef" for c in h1)
        assert h1 != b.hash_identifier("email", "jan@example.nl")
        # The kind is part of the hashed message.
        assert a.hash_identifier("email", "x") != a.hash_identifier("name", "x")
        assert h1 != a.hash_identifier("email", "piet@example.nl")
    finally:
        a.close()
        b.close()


def test_hash_matches_hmac_sha256_of_kind_and_value(ledger):
    import hashlib
    import hmac

    expected = hmac.new(PEPPER, b"phone:+31612345678", hashlib.sha256).hexdigest()
    assert ledger.hash_identifier("phone", "+31612345678") == expected


def test_unknown_identifier_kind_is_refused(ledger):
    with pytest.raises(ValueError):
        ledger.hash_identifier("bsn", "123456782")


def test_plaintext_identifiers_are_refused_where_hashes_are_expected(ledger):
    with pytest.raises(ValueError) as err:
        ledger.suppress(["jan@example.nl"], None)
    assert "jan@example.nl" not in str(err.value)
    with pytest.raises(ValueError):
        ledger.register_request("access", ["Jan Jansen"], received=date(2025, 1, 1))
    with pytest.raises(ValueError):
        ledger.add_hold(reason="dispute", identifier_hash="+31612345678")


# -- runs ------------------------------------------------------------------------


def test_run_lifecycle(ledger):
    run_id = ledger.start_run(
        "purge", as_of=date(2025, 3, 1), apply=True, params={"systems": ["moneybird"], "day": date(2025, 3, 1)}
    )
    run = ledger.get_run(run_id)
    assert run["status"] == "running"
    assert run["apply"] is True
    assert run["as_of"] == date(2025, 3, 1)
    assert run["params"] == {"systems": ["moneybird"], "day": "2025-03-01"}
    assert run["started_at"].tzinfo is not None
    assert run["started_at"].utcoffset() == timedelta(0)
    assert abs(run["started_at"] - datetime.now(timezone.utc)) < timedelta(minutes=1)
    assert [r["id"] for r in ledger.unfinished_runs("purge")] == [run_id]

    ledger.finish_run(run_id, "succeeded", {"deleted": 3})
    run = ledger.get_run(run_id)
    assert run["status"] == "succeeded"
    assert run["summary"] == {"deleted": 3}
    assert run["finished_at"] >= run["started_at"]
    assert ledger.unfinished_runs("purge") == []

    with pytest.raises(LedgerError, match="already finished"):
        ledger.finish_run(run_id, "failed")
    with pytest.raises(ValueError):
        ledger.start_run("nightly", as_of=date(2025, 3, 1), apply=True)
    with pytest.raises(LedgerError):
        ledger.get_run(9999)


def test_unfinished_runs_only_applying_runs_of_that_kind(ledger):
    dry = ledger.start_run("purge", as_of=date(2025, 3, 1), apply=False)
    applying = ledger.start_run("purge", as_of=date(2025, 3, 1), apply=True)
    other_kind = ledger.start_run("erasure", as_of=date(2025, 3, 1), apply=True)
    assert [r["id"] for r in ledger.unfinished_runs("purge")] == [applying]
    assert [r["id"] for r in ledger.unfinished_runs("erasure")] == [other_kind]
    assert [r["id"] for r in ledger.list_runs()] == [other_kind, applying, dry]
    assert [r["id"] for r in ledger.list_runs(limit=1)] == [other_kind]


# -- plan and actions --------------------------------------------------------------


def test_plan_start_outcome_and_resume_after_crash(ledger):
    run_id = ledger.start_run("purge", as_of=date(2025, 3, 1), apply=True)
    plan = [
        _action("101"),
        _action("102", action="anonymise", fields=["phone", "address"]),
        _action("103", system="mailblue"),
        _action("104"),
    ]
    ids = ledger.store_plan(run_id, plan)
    assert len(ids) == 4 and len(set(ids)) == 4

    rows = ledger.actions(run_id)
    assert [r["id"] for r in rows] == ids
    assert [r["record_id"] for r in rows] == ["101", "102", "103", "104"]
    assert all(r["status"] == "planned" and r["attempts"] == 0 for r in rows)
    assert rows[1]["fields"] == ("phone", "address")
    assert rows[1]["action"] == "anonymise"
    assert rows[2]["system"] == "mailblue"

    # Action 1 completes; action 2 is started and then the process "crashes";
    # action 3 fails; action 4 is never touched.
    ledger.mark_started(ids[0])
    ledger.mark_outcome(ids[0], "done")
    ledger.mark_started(ids[1])
    ledger.mark_started(ids[2])
    ledger.mark_outcome(ids[2], "failed", "HTTP 503 after 5 retries")

    done = ledger.actions(run_id, ("done",))
    assert [r["id"] for r in done] == [ids[0]]
    assert done[0]["outcome"] == "done"
    assert done[0]["started_at"] <= done[0]["finished_at"]
    assert done[0]["finished_at"].utcoffset() == timedelta(0)

    in_progress = ledger.actions(run_id, ("in_progress",))[0]
    assert in_progress["id"] == ids[1]
    assert in_progress["attempts"] == 1
    assert in_progress["started_at"] is not None and in_progress["finished_at"] is None

    failed = ledger.actions(run_id, ("failed",))[0]
    assert (failed["outcome"], failed["detail"]) == ("failed", "HTTP 503 after 5 retries")

    pending = ledger.pending_actions(run_id)
    assert [r["id"] for r in pending] == [ids[1], ids[2], ids[3]]
    assert {r["status"] for r in pending} == {"in_progress", "failed", "planned"}

    # Resume: the in-progress action is started again and completes.
    ledger.mark_started(ids[1])
    assert ledger.actions(run_id, ("in_progress",))[0]["attempts"] == 2
    ledger.mark_outcome(ids[1], "already_gone")
    assert ids[1] not in [r["id"] for r in ledger.pending_actions(run_id)]
    assert ledger.actions(run_id, ("done",))[1]["outcome"] == "already_gone"


def test_done_action_is_not_started_again(ledger):
    run_id = ledger.start_run("purge", as_of=date(2025, 3, 1), apply=True)
    (aid,) = ledger.store_plan(run_id, [_action("1")])
    ledger.mark_started(aid)
    ledger.mark_outcome(aid, "done")
    with pytest.raises(LedgerError, match="already done"):
        ledger.mark_started(aid)
    with pytest.raises(LedgerError):
        ledger.mark_outcome(aid, "failed")
    assert ledger.actions(run_id)[0]["attempts"] == 1


def test_handed_over_gives_the_latest_not_supported_outcome_per_record_and_action(ledger):
    first = ledger.start_run("purge", as_of=date(2025, 3, 1), apply=True)
    refused, done = ledger.store_plan(first, [_action("1"), _action("2")])
    for aid, outcome, detail in ((refused, "not_supported", "archive it in Moneybird"), (done, "done", "")):
        ledger.mark_started(aid)
        ledger.mark_outcome(aid, outcome, detail)
    second = ledger.start_run("purge", as_of=date(2025, 3, 2), apply=True)
    (again,) = ledger.store_plan(second, [_action("1")])
    ledger.mark_started(again)
    ledger.mark_outcome(again, "not_supported", "documents refer to it")
    handed = ledger.handed_over()
    assert list(handed) == [("moneybird/contact/1", "delete")]
    since, detail = handed["moneybird/contact/1", "delete"]
    assert detail == "documents refer to it"
    assert since == ledger.actions(second)[0]["finished_at"]


def test_call_outcome_requires_intent_first(ledger):
    run_id = ledger.start_run("purge", as_of=date(2025, 3, 1), apply=True)
    a, b = ledger.store_plan(run_id, [_action("1"), _action("2")])
    with pytest.raises(LedgerError, match="in_progress"):
        ledger.mark_outcome(a, "done")
    # Skipping needs no vendor call, so no intent is required.
    ledger.mark_outcome(b, "skipped", "legal hold appeared")
    assert ledger.actions(run_id, ("done",))[0]["outcome"] == "skipped"
    with pytest.raises(ValueError):
        ledger.mark_outcome(a, "exploded")
    with pytest.raises(LedgerError):
        ledger.mark_started(424242)


def test_plan_is_stored_once_for_a_running_run(ledger):
    run_id = ledger.start_run("purge", as_of=date(2025, 3, 1), apply=True)
    ledger.store_plan(run_id, [_action("1")])
    with pytest.raises(LedgerError, match="already has a plan"):
        ledger.store_plan(run_id, [_action("2")])
    assert len(ledger.actions(run_id)) == 1

    finished = ledger.start_run("purge", as_of=date(2025, 3, 1), apply=True)
    ledger.finish_run(finished, "aborted")
    with pytest.raises(LedgerError):
        ledger.store_plan(finished, [_action("3")])
    assert ledger.store_plan(ledger.start_run("purge", as_of=date(2025, 3, 1), apply=True), []) == []


def test_plan_stored_in_one_transaction(ledger):
    run_id = ledger.start_run("purge", as_of=date(2025, 3, 1), apply=True)
    bad = _action("2", rule_id=None)  # NOT NULL violation on the second row
    with pytest.raises(sa_exc.IntegrityError):
        ledger.store_plan(run_id, [_action("1"), bad])
    assert ledger.actions(run_id) == []


# -- request register ----------------------------------------------------------------


def test_request_deadline_listing_and_open_hashes(ledger):
    h1, h2, h3 = _hash(ledger, 1), _hash(ledger, 2), _hash(ledger, 3)
    r1 = ledger.register_request(
        "erasure", [h1, h2, h1], received=date(2025, 1, 30), verified_by="ID checked by owner", scope="newsletter"
    )
    r2 = ledger.register_request("access", [h3], received=date(2025, 1, 10))

    req = ledger.get_request(r1)
    assert req["deadline"] == date(2025, 2, 27)  # received + 28 days
    assert req["received"] == date(2025, 1, 30)
    assert sorted(req["identifier_hashes"]) == sorted([h1, h2])  # de-duplicated
    assert (req["status"], req["status_note"], req["closed_at"]) == ("received", "", None)
    assert (req["verified_by"], req["scope"], req["kind"]) == ("ID checked by owner", "newsletter", "erasure")

    # Earliest deadline first.
    assert [r["id"] for r in ledger.list_requests()] == [r2, r1]
    assert ledger.open_request_hashes() == {h1, h2, h3}

    ledger.set_request_status(r1, "awaiting_approval", "plan shown")
    assert ledger.open_request_hashes() == {h1, h2, h3}
    assert ledger.get_request(r1)["closed_at"] is None

    ledger.set_request_status(r2, "completed", "report sent")
    closed = ledger.get_request(r2)
    assert closed["status"] == "completed" and closed["status_note"] == "report sent"
    assert closed["closed_at"] is not None and closed["closed_at"].utcoffset() == timedelta(0)
    assert [r["id"] for r in ledger.list_requests()] == [r1]
    assert [r["id"] for r in ledger.list_requests(open_only=False)] == [r2, r1]
    assert ledger.open_request_hashes() == {h1, h2}

    for status in ("approved", "executing", "failed"):
        ledger.set_request_status(r1, status, "vendor down" if status == "failed" else "")
    assert ledger.open_request_hashes() == {h1, h2}  # failed is not closed
    ledger.set_request_status(r1, "rejected", "identity not verified")
    assert ledger.open_request_hashes() == set()
    assert ledger.list_requests() == []


def test_request_answer_period_is_a_parameter(ledger):
    rid = ledger.register_request(
        "access", [_hash(ledger, 1)], received=date(2025, 1, 1), answer_within=timedelta(days=10)
    )
    assert ledger.get_request(rid)["deadline"] == date(2025, 1, 11)


def test_request_validation(ledger):
    with pytest.raises(ValueError):
        ledger.register_request("complaint", [_hash(ledger, 1)], received=date(2025, 1, 1))
    with pytest.raises(ValueError):
        ledger.register_request("access", [], received=date(2025, 1, 1))
    rid = ledger.register_request("access", [_hash(ledger, 1)], received=date(2025, 1, 1))
    with pytest.raises(ValueError):
        ledger.set_request_status(rid, "done")
    with pytest.raises(LedgerError):
        ledger.set_request_status(9999, "completed")
    with pytest.raises(LedgerError):
        ledger.get_request(9999)


# -- suppression list ------------------------------------------------------------------


def test_suppression_is_idempotent(ledger):
    h1, h2, h3 = _hash(ledger, 1), _hash(ledger, 2), _hash(ledger, 3)
    rid = ledger.register_request("erasure", [h1, h2], received=date(2025, 1, 1))
    ledger.suppress([h1, h2], rid)
    ledger.suppress([h1, h2], rid)
    ledger.suppress([h2, h2], None)
    assert ledger.all_suppressed() == {h1, h2}
    assert ledger.suppressed({h1, h3}) == {h1}
    assert ledger.suppressed([h3]) == set()
    assert ledger.suppressed([]) == set()
    ledger.suppress([], None)
    assert ledger.all_suppressed() == {h1, h2}


def test_suppressed_handles_many_hashes(ledger):
    many = [ledger.hash_identifier("email", f"p{i}@example.org") for i in range(1200)]
    ledger.suppress(many[::2], None)
    assert ledger.suppressed(many) == set(many[::2])


# -- legal holds ---------------------------------------------------------------------------


def test_holds_active_released_and_expired(ledger):
    h = _hash(ledger, 1)
    person = ledger.add_hold(reason="dispute about invoice 2024-017", identifier_hash=h)
    record = ledger.add_hold(
        reason="running contract", record=("moneybird", "contact", "42"), until=date(2025, 6, 30)
    )
    released = ledger.add_hold(reason="old dispute", identifier_hash=_hash(ledger, 2))
    ledger.release_hold(released)
    ledger.release_hold(released)  # idempotent

    active = {x["id"]: x for x in ledger.active_holds(date(2025, 6, 30))}
    assert set(active) == {person, record}  # until is inclusive
    assert active[person]["identifier_hash"] == h and active[person]["record"] is None
    assert active[record]["record"] == ("moneybird", "contact", "42")
    assert active[record]["identifier_hash"] is None

    assert [x["id"] for x in ledger.active_holds(date(2025, 7, 1))] == [person]  # expired

    ledger.release_hold(person)
    assert ledger.active_holds(date(2025, 7, 1)) == []
    with pytest.raises(LedgerError):
        ledger.release_hold(9999)


def test_hold_needs_exactly_one_target(ledger):
    with pytest.raises(ValueError):
        ledger.add_hold(reason="x")
    with pytest.raises(ValueError):
        ledger.add_hold(reason="x", identifier_hash=_hash(ledger, 1), record=("a", "b", "c"))


# -- sync state ------------------------------------------------------------------------------


def test_sync_state_round_trip(ledger, db_path):
    assert ledger.get_sync_state("google_calendar", "sync_token") is None
    ledger.set_sync_state("google_calendar", "sync_token", "CPDAlvWDx70CEPDAlvWDx70CGAU=")
    ledger.set_sync_state("moneybird", "contacts", {"version": 17, "ids": ["1", "2"]})
    assert ledger.get_sync_state("google_calendar", "sync_token") == "CPDAlvWDx70CEPDAlvWDx70CGAU="
    ledger.set_sync_state("google_calendar", "sync_token", "NEWTOKEN")
    assert ledger.get_sync_state("google_calendar", "sync_token") == "NEWTOKEN"
    assert ledger.get_sync_state("moneybird", "contacts") == {"version": 17, "ids": ["1", "2"]}
    assert ledger.get_sync_state("moneybird", "other") is None
    with Ledger(f"sqlite:///{db_path}", PEPPER) as again:
        assert again.get_sync_state("google_calendar", "sync_token") == "NEWTOKEN"


def test_the_sync_cache_is_a_row_per_record_and_a_deleted_record_leaves_it_with_its_outcome(ledger):
    contact = {"version": "3", "emails": [_hash(ledger, 1)]}
    ledger.update_cached_records("moneybird", {"moneybird/contact/1": contact, "moneybird/contact/2": {"v": "1"},
                                               "moneybird/contact/3": {"v": "1"}})
    ledger.update_cached_records("moneybird", {"moneybird/contact/2": {"v": "2"}}, drop=["moneybird/contact/3"])
    assert ledger.cached_records("moneybird") == {"moneybird/contact/1": contact, "moneybird/contact/2": {"v": "2"}}
    assert ledger.cached_records("mollie") == {}
    with pytest.raises(ValueError, match="another system"):
        ledger.update_cached_records("mollie", {"moneybird/contact/9": {}})

    run_id = ledger.start_run("purge", as_of=date(2025, 3, 1), apply=True)
    deleted, failed = ledger.store_plan(run_id, [_action("1"), _action("2")])
    for action_id in (deleted, failed):
        ledger.mark_started(action_id)
    ledger.mark_outcome(failed, "failed", "HTTP 500", forget=False)
    ledger.mark_outcome(deleted, "done", forget=True)
    assert ledger.cached_records("moneybird") == {"moneybird/contact/2": {"v": "2"}}
    assert [a["outcome"] for a in ledger.actions(run_id)] == ["done", "failed"]


def test_a_ledger_with_the_cache_as_one_blob_per_system_gets_it_as_rows(db_path):
    with Ledger(f"sqlite:///{db_path}", PEPPER) as old:
        old.set_sync_state("mollie", "records", {"mollie/customer/cst_1": {"version": "a"}})
        old.set_sync_state("mollie", "cursor", "c1")
    con = sqlite3.connect(db_path)
    con.execute("drop table sync_records")
    con.commit()
    con.close()
    with Ledger(f"sqlite:///{db_path}", PEPPER) as led:
        assert led.cached_records("mollie") == {"mollie/customer/cst_1": {"version": "a"}}
        assert led.get_sync_state("mollie", "records") is None
        assert led.get_sync_state("mollie", "cursor") == "c1"


# -- the apply lease -------------------------------------------------------------------------


def _second(ledger: Ledger) -> Ledger:
    """Another process's view of the same ledger: a Ledger object of its own."""
    return Ledger(ledger._engine.url.render_as_string(hide_password=False), PEPPER)


def _expire(ledger: Ledger) -> None:
    with ledger._engine.begin() as conn:
        conn.execute(leases_table.update().values(expires_at=datetime.now(timezone.utc) - timedelta(seconds=1)))


def test_the_lease_admits_one_holder_and_names_it(ledger):
    with _second(ledger) as other:
        with ledger.lease("purge"):
            with ledger.lease("erasure"):  # the same holder may nest
                pass
            with pytest.raises(LeaseHeld) as refused, other.lease("nightly-purge"):
                pass
            holder = refused.value.holder
            assert (holder.kind, holder.host, holder.pid) == ("purge", socket.gethostname(), os.getpid())
            assert f"the purge run on {socket.gethostname()} (pid {os.getpid()}) since " in str(refused.value)
            assert ledger.lease_holder() == holder  # nested use did not release it
        assert ledger.lease_holder() is None
        with other.lease("nightly-purge"):
            assert ledger.lease_holder().kind == "nightly-purge"


def test_an_expired_lease_is_taken_over_and_its_old_holder_may_start_nothing(ledger):
    run_id = ledger.start_run("purge", as_of=date(2025, 3, 1), apply=True)
    first, second = ledger.store_plan(run_id, [_action("1"), _action("2")])
    with _second(ledger) as frozen, patch("vergeet.ledger.socket.gethostname", return_value="elsewhere"), \
            frozen.lease("purge", seconds=3600):
        frozen.mark_started(first)
        with pytest.raises(LeaseHeld, match="on elsewhere"), ledger.lease("purge"):
            pass  # alive on another machine: not taken
        _expire(frozen)  # its holder stopped renewing (frozen, or its machine gone)
        with ledger.lease("nightly-purge"):
            with pytest.raises(LeaseLost, match="taken over by the nightly-purge run"):
                frozen.mark_started(second)
            frozen.mark_outcome(first, "done")  # a call that was made is still recorded
            assert ledger.actions(run_id, ("planned",))[0]["id"] == second
    assert ledger.lease_holder() is None  # the old holder's exit did not release what it no longer held


def test_a_lease_whose_process_is_gone_from_this_machine_is_taken_over_at_once(ledger):
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    with _second(ledger) as crashed, patch("vergeet.ledger.os.getpid", return_value=gone.pid):
        crashed._take_lease("purge", 3600)  # and then killed: no heartbeat, no release
    with ledger.lease("purge"):
        assert ledger.lease_holder().pid == os.getpid()


def test_the_lease_is_renewed_while_it_is_held(ledger):
    with ledger.lease("purge", seconds=0.4):
        taken = ledger.lease_holder().expires_at
        time.sleep(0.6)  # past the first expiry: renewed every 0.1 s
        assert ledger.lease_holder().expires_at > taken
        with _second(ledger) as other, pytest.raises(LeaseHeld), other.lease("purge"):
            pass


# -- no plaintext personal data in the file --------------------------------------------------


FIXTURE_IDENTITIES = [
    ("email", "Jan.Jansen@Example.NL"),
    ("phone", "+31612345678"),
    ("name", "Jan Jansen"),
    ("email", "Marieke.de.Vries@Voorbeeld.nl"),
    ("phone", "+31201234567"),
    ("name", "Marieke de Vries"),
]


def test_database_file_holds_no_plaintext_identifiers(db_path):
    with Ledger(f"sqlite:///{db_path}", PEPPER) as led:
        # Normalise the way callers do: lower-cased e-mail, E.164 phone, names as given.
        hashes = [
            led.hash_identifier(kind, value.lower() if kind == "email" else value)
            for kind, value in FIXTURE_IDENTITIES
        ]
        jan, marieke = hashes[:3], hashes[3:]
        r_jan = led.register_request("erasure", jan, received=date(2025, 2, 1), verified_by="ID checked")
        led.register_request("access", marieke, received=date(2025, 2, 3))
        led.suppress(jan, r_jan)
        led.add_hold(reason="dispute", identifier_hash=marieke[0])
        run_id = led.start_run("erasure", as_of=date(2025, 2, 5), apply=True, params={"request_id": r_jan})
        ids = led.store_plan(
            run_id,
            [
                _action("501", person=jan[0]),
                _action("c-77", system="mailblue", person=jan[0]),
                _action("9", action="anonymise", fields=("phone", "email"), person=marieke[0]),
            ],
        )
        led.mark_started(ids[0])
        led.mark_outcome(ids[0], "done")
        led.set_request_status(r_jan, "completed", "erased in 2 systems")

    files = [p for p in db_path.parent.iterdir() if p.name.startswith(db_path.name)]
    raw = b"".join(p.read_bytes() for p in files)
    # The data did reach the file, so the absence checks below mean something.
    for h in hashes:
        assert h.encode() in raw
    for _, value in FIXTURE_IDENTITIES:
        for form in {value, value.lower(), value.upper(), value.lstrip("+")}:
            assert form.encode("utf-8") not in raw, form
            assert form.encode("utf-16-le") not in raw, form
