"""The request register (issue 16): `requests list` tells requests apart, every status change is appended to a
request's history (`requests show`), impossible changes are refused, and "not now" keeps a request open."""
from __future__ import annotations

import re
from datetime import date, timedelta

import pytest
from typer.testing import CliRunner

from vergeet.cli import app
from vergeet.ledger import Ledger, LedgerError

PEPPER = b"test-pepper-long-enough-for-the-minimum-0123"


@pytest.fixture
def config(tmp_path):
    path = tmp_path / "vergeet.toml"
    path.write_text(f'[store]\nurl = "sqlite:///{tmp_path}/ledger.db"\npepper = "{PEPPER.decode()}"\n')
    return path


def ledger_of(config) -> Ledger:
    return Ledger(f"sqlite:///{config.parent}/ledger.db", PEPPER)


def vergeet(config, *arguments: str):
    return CliRunner().invoke(app, ["--config", str(config), *arguments])


def test_open_requests_with_days_left_overdue_marked_and_told_apart(config):
    today = date(2026, 11, 25)
    with ledger_of(config) as ledger:
        on_time = ledger.register_request("access", [ledger.hash_identifier("email", "a@example.nl")],
                                          received=today - timedelta(days=10), verified_by="ID gezien",
                                          label="mail 15 nov")
        late = ledger.register_request("erasure", [ledger.hash_identifier("email", "b@example.nl")],
                                       received=today - timedelta(days=40), scope="newsletter")
        closed = ledger.register_request("access", [ledger.hash_identifier("email", "c@example.nl")],
                                         received=today - timedelta(days=5))
        ledger.set_request_status(closed, "completed", "report sent")
    result = vergeet(config, "requests", "list", "--today", today.isoformat())
    assert result.exit_code == 0, result.output
    heads = {int(m.group(1)): m.group(0) for m in re.finditer(r"^(\d+)  .*$", result.output, re.M)}
    assert set(heads) == {on_time, late}
    assert "18 days left" in heads[on_time] and "OVERDUE by 12 days" in heads[late]
    assert "erasure (newsletter)" in heads[late]
    assert "mail 15 nov" in result.output and "identity: ID gezien" in result.output
    assert "identity: not noted" in result.output


def test_every_change_is_appended_and_an_impossible_one_refused(config):
    with ledger_of(config) as ledger:
        request = ledger.register_request("erasure", [ledger.hash_identifier("email", "a@example.nl")],
                                          received=date(2026, 11, 1))
        ledger.set_request_status(request, "awaiting_approval", "plan shown")
        ledger.set_request_status(request, "rejected", "identity not proven")
        with pytest.raises(LedgerError, match="is rejected; it cannot become completed"):
            ledger.set_request_status(request, "completed", "")
        assert ledger.get_request(request)["status_note"] == "identity not proven"  # the refusal kept its reason
    shown = vergeet(config, "requests", "show", str(request))
    assert shown.exit_code == 0, shown.output
    assert [s for s in ("received", "awaiting approval", "rejected") if s in shown.output] == \
        ["received", "awaiting approval", "rejected"]
    assert "identity not proven" in shown.output
    closing = vergeet(config, "requests", "close", str(request), "--status", "rejected", "--note", "again")
    assert closing.exit_code == 2 and "is rejected; it cannot become rejected" in closing.output
    assert vergeet(config, "requests", "show", "99").exit_code == 2


def test_close_completes_an_access_request_and_refuses_to_complete_an_erasure(config):
    with ledger_of(config) as ledger:
        access = ledger.register_request("access", [ledger.hash_identifier("email", "a@example.nl")],
                                         received=date(2026, 11, 1))
        erasure = ledger.register_request("erasure", [ledger.hash_identifier("email", "b@example.nl")],
                                          received=date(2026, 11, 1))
    assert vergeet(config, "requests", "close", str(access), "--note", "report sent").exit_code == 0
    refused = vergeet(config, "requests", "close", str(erasure))
    assert refused.exit_code == 2 and "completed by `vergeet erase`" in refused.output
    without_reason = vergeet(config, "requests", "close", str(erasure), "--status", "rejected")
    assert without_reason.exit_code == 2 and "needs its reason" in without_reason.output
    assert vergeet(config, "requests", "close", str(erasure), "--status", "rejected", "--note", "no ID").exit_code == 0
    with ledger_of(config) as ledger:
        assert [r["status"] for r in ledger.list_requests(open_only=False)] == ["completed", "rejected"]


def test_a_ledger_from_before_the_history_gets_one(config):
    """A ledger written before `request_events` (status "open", no label column) is upgraded when opened."""
    import sqlite3

    with ledger_of(config) as ledger:
        request = ledger.register_request("access", [ledger.hash_identifier("email", "a@example.nl")],
                                          received=date(2026, 11, 1))
    with sqlite3.connect(config.parent / "ledger.db") as db:
        db.execute("DROP TABLE request_events")
        db.execute("ALTER TABLE requests DROP COLUMN label")
        db.execute("UPDATE requests SET status = 'open', status_note = 'old note'")
    with ledger_of(config) as ledger:
        assert ledger.get_request(request)["status"] == "received" and ledger.get_request(request)["label"] == ""
        assert [(e["status"], e["note"]) for e in ledger.request_history(request)] == [("received", "old note")]
        ledger.set_request_status(request, "completed", "report sent")
        assert len(ledger.request_history(request)) == 2


def test_a_relative_ledger_path_is_relative_to_the_config_wherever_the_command_runs(tmp_path, monkeypatch):
    """`sqlite:///vergeet.db` is beside the config file, as every path in it; a command that only reads the
    ledger never creates an empty one elsewhere, and one that creates the ledger says so."""
    folder, elsewhere = tmp_path / "config", tmp_path / "elsewhere"
    folder.mkdir()
    elsewhere.mkdir()
    config = folder / "vergeet.toml"
    config.write_text(f'[store]\nurl = "sqlite:///vergeet.db"\npepper = "{PEPPER.decode()}"\n')
    monkeypatch.chdir(elsewhere)
    missing = vergeet(config, "requests", "list")
    assert missing.exit_code == 2 and f"no ledger at {folder / 'vergeet.db'}" in missing.output
    assert list(elsewhere.iterdir()) == [] and not (folder / "vergeet.db").exists()
    placed = vergeet(config, "hold", "add", "--record", "moneybird/contact/7", "--reason", "dispute")
    assert placed.exit_code == 0 and f"A new ledger was created at {folder / 'vergeet.db'}" in placed.output
    monkeypatch.chdir(tmp_path)
    again = vergeet(config, "hold", "list")
    assert "record moneybird/contact/7" in again.output and "new ledger" not in again.output
    assert list(elsewhere.iterdir()) == [] and not (tmp_path / "vergeet.db").exists()
