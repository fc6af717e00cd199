"""The ledger and the pipeline on a real PostgreSQL server (see the `postgres_url` fixture in conftest.py).

Every ledger test that needs nothing but a ledger runs here again against PostgreSQL, and a purge, an access
request and an erasure run end to end against the sandbox with their ledger there, after which its data files hold
no plaintext identifier. tests/test_kill_points.py kills a purge with its ledger here too."""
from __future__ import annotations

import inspect
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

import test_ledger
from test_erasure import FAST, population
from vergeet.cli import app
from vergeet.ledger import Ledger
from vergeet.sandbox import SANDBOX_PEPPER, Sandbox
from vergeet.sandbox.population import phone_formats

#: the ledger tests whose only fixture is `ledger`: they run unchanged on PostgreSQL
LEDGER_TESTS = sorted(name for name, test in vars(test_ledger).items() if name.startswith("test_")
                      and callable(test) and list(inspect.signature(test).parameters) == ["ledger"])


def test_most_ledger_tests_run_here():
    assert len(LEDGER_TESTS) >= 15


@pytest.mark.parametrize("name", LEDGER_TESTS)
def test_the_ledger_behaves_the_same_on_postgresql(name, postgres_url):
    with Ledger(postgres_url, test_ledger.PEPPER) as ledger:
        assert ledger.url.startswith("postgresql")
        getattr(test_ledger, name)(ledger)


def test_purge_find_and_erase_with_the_ledger_on_postgresql_leave_no_plaintext_on_its_disk(postgres_server,
                                                                                          postgres_url, tmp_path):
    """The systems are purged concurrently into one PostgreSQL ledger; afterwards the server's data files and
    write-ahead log, which hold every row ever written (dead ones too), hold none of the people's identifiers."""
    runner = CliRunner()
    people = population()
    with Sandbox(people, rates=FAST) as sandbox:
        config = str(sandbox.write_config(tmp_path, ledger_url=postgres_url, client_rates=FAST, retries=1))

        def vergeet(*arguments: str):
            result = runner.invoke(app, ["--config", config, *arguments], terminal_width=200)
            assert result.exit_code == 0, result.output
            return result

        vergeet("purge", "--apply", "--force", "--no-details")
        deletes = [r for fake in sandbox.fakes.values() for r in fake.requests if r.method == "DELETE"]
        assert deletes
        assert "Nothing to do." in vergeet("purge", "--apply", "--no-details").output  # the ledger remembered
        report = json.loads(vergeet("find", "lotte.dekker@example.nl").stdout)
        assert {r["system"] for r in report["records"]} == {"moneybird", "mailblue", "mollie", "google_calendar"}
        vergeet("erase", "lotte.dekker@example.nl", "--approve", "--out", str(tmp_path / "out"))
        assert json.loads((tmp_path / "out" / "erasure-request-2.json").read_text())["request"]["status"] == \
            "completed"
    with Ledger(postgres_url, SANDBOX_PEPPER.encode()) as ledger:
        assert [r["status"] for r in ledger.list_requests(open_only=False)] == ["received", "completed"]
    postgres_server.psql("CHECKPOINT;")  # the pages themselves on disk, not only the log
    files = [path for folder in ("base", "pg_wal") for path in (Path(postgres_server.pgdata) / folder).rglob("*")
             if path.is_file()]
    stored = b"".join(path.read_bytes() for path in files).decode("utf-8", "replace").casefold()
    assert len(files) > 10 and "identity_index" in stored  # the ledger's tables are there
    for person in people.people:
        assert person.email.casefold() not in stored
        assert person.name.casefold() not in stored
        for variant in phone_formats(person.phone) if person.phone else ():
            assert variant.casefold() not in stored
