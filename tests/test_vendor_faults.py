"""Vendor faults (issue 15): every connector, every operation, every fault kind the probe found.

Each case runs one sandbox fake (`vergeet.sandbox.server`: `inject` and `fail_next`) with the real connector at
tiny retry budgets. While the fault lasts, an operation either raises a typed `VendorError` (never a traceback of
another type) or reports an outcome the vendor's state bears out: nothing is recorded as done that was not. Once
the fault is gone, the same operation succeeds, and an anonymisation repeated then sends no second write.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import date
from typing import Any

import pytest

from connectors import SYSTEMS as CONNECTED
from connectors.base import Connector, Identifiers, Outcome, Record
from connectors.google_calendar import GoogleCalendarConnector
from connectors.http import VendorError, VendorUnavailable
from connectors.mailblue import MailblueConnector
from connectors.mollie import MollieConnector
from connectors.moneybird import MoneybirdConnector
from vergeet.sandbox.fake_calendar import TOKEN_PATH, CalendarFake
from vergeet.sandbox.fake_mailblue import MailblueFake
from vergeet.sandbox.fake_mollie import MollieFake
from vergeet.sandbox.fake_moneybird import MoneybirdFake
from vergeet.sandbox.population import generate
from vergeet.sandbox.server import FAULT_KINDS, FakeServer, FakeVendor

SYSTEMS = ("moneybird", "mailblue", "mollie", "google_calendar")
OPERATIONS = ("read", "search", "delete", "anonymise")
FAULTS = (*FAULT_KINDS, "endless_500")
#: the method each operation's fault hits: reads on GET, actions on the write that carries them
WRITES = {"moneybird": {"delete": "DELETE", "anonymise": "PATCH"}, "mailblue": {"delete": "DELETE", "anonymise": "PUT"},
          "mollie": {"delete": "DELETE", "anonymise": "PATCH"},
          "google_calendar": {"delete": "DELETE", "anonymise": "PATCH"}}
#: what each system's anonymisation overwrites here, with a check on the record read back afterwards
ANONYMISE = {
    "moneybird": (["phone", "address1"], lambda f: not f.get("phone") and not f.get("address1")),
    "mailblue": (["firstName", "phone"], lambda f: f.get("firstName") == "anonymised" and not f.get("phone")),
    "mollie": (["name", "email"], lambda f: f.get("name") == "Anonymised"),
    "google_calendar": (["summary", "description"], lambda f: f.get("summary") == "Afspraak"
                        and not f.get("description")),
}
TARGET_TYPES = {"moneybird": "contact", "mailblue": "contact", "mollie": "customer", "google_calendar": "event"}
TUNING = {"rate": None, "retries": 1, "backoff_factor": 0, "retry_budget": 0.5}


@pytest.fixture(scope="module")
def population():
    return generate(12, seed=5, today=date(2026, 3, 1))


@dataclass
class Served:
    fake: FakeVendor
    connector: Connector


def _connector(system: str, fake: FakeVendor, url: str, tmp_path, **tuning: Any) -> Connector:
    if system == "moneybird":
        return MoneybirdConnector(base_url=f"{url}/api/v2", administration_id=fake.administration_id,
                                  token=fake.token, **tuning)
    if system == "mailblue":
        return MailblueConnector(base_url=f"{url}/api/3", token=fake.token, sleep=lambda _: None, **tuning)
    if system == "mollie":
        return MollieConnector(base_url=f"{url}/v2", api_key=fake.token, **tuning)
    key = tmp_path / "key.json"
    key.write_text(json.dumps(fake.service_account_info(url + TOKEN_PATH)))
    return GoogleCalendarConnector(api_endpoint=f"{url}/calendar/v3/", calendar_ids=(fake.calendar_id,),
                                   credentials_file=str(key), own_emails=(fake.owner_email,), **tuning)


@pytest.fixture
def serve(population, tmp_path):
    fakes = {"moneybird": MoneybirdFake, "mailblue": MailblueFake, "mollie": MollieFake,
             "google_calendar": CalendarFake}
    servers: list[FakeServer] = []

    def start(system: str, **tuning: Any) -> Served:
        fake = fakes[system](population, rate_calls=10_000)
        server = FakeServer(fake).start()
        servers.append(server)
        return Served(fake, _connector(system, fake, server.url, tmp_path, **{**TUNING, **tuning}))

    yield start
    for server in servers:
        server.stop()


def _target(system: str, connector: Connector) -> Record:
    """A record the operation can act on: a contact no document refers to (Moneybird keeps those), a customer, a
    plain appointment."""
    records = list(connector.records())
    referred = {link.target for record in records for link in record.links} if system == "moneybird" else set()
    return next(r for r in records if r.record_type == TARGET_TYPES[system] and r.ref not in referred
                and r.left_alone is None and (r.emails or system == "google_calendar")
                and not r.fields.get("recurrence"))


def _inject(fake: FakeVendor, fault: str, method: str) -> None:
    if fault == "endless_500":
        fake.fail_next(10_000, 500, method=method)
    else:
        fake.inject(fault, 10_000, method=method)


def _run(system: str, operation: str, connector: Connector, target: Record) -> Any:
    if operation == "read":
        return list(connector.records())
    if operation == "search":
        return list(connector.search(Identifiers(emails=target.emails[:1] or ("nobody@example.nl",))))
    if operation == "delete":
        return connector.delete(target.ref)
    return connector.anonymise(target.ref, ANONYMISE[system][0])


def _holds(system: str, operation: str, connector: Connector, target: Record, result: Any) -> None:
    """What an outcome claims, checked against the vendor's own state (faults cleared)."""
    if operation in ("read", "search"):
        assert any(record.ref == target.ref for record in result)
        return
    assert result.outcome in (Outcome.DONE, Outcome.ALREADY_GONE)
    after = connector.read(target.ref)
    if operation == "delete":
        assert after is None
    else:
        assert after is not None and ANONYMISE[system][1](after.fields)


def _writes(fake: FakeVendor) -> int:
    return fake.count("PATCH") + fake.count("PUT")


@pytest.mark.parametrize("operation", OPERATIONS)
@pytest.mark.parametrize("system", SYSTEMS)
@pytest.mark.parametrize("fault", FAULTS)
def test_a_fault_is_a_vendor_error_or_a_true_outcome_and_a_rerun_after_it_is_clean(serve, fault, system, operation):
    served = serve(system)
    fake, connector = served.fake, served.connector
    target = _target(system, connector)
    _inject(fake, fault, "GET" if operation in ("read", "search") else WRITES[system][operation])

    try:
        during = _run(system, operation, connector, target)
    except VendorError as exc:
        assert exc.vendor == system and exc.method and exc.path  # one line naming system, call and path
        assert "\n" not in str(exc) and all(e not in str(exc) for e in target.emails)
        during = None
    fake.clear_faults()
    if operation in ("read", "search"):
        assert during is None  # no listing is taken from a spoilt answer
    elif during is not None:  # an outcome reported while the fault lasted must be true
        _holds(system, operation, connector, target, during)

    again = _run(system, operation, connector, target)
    _holds(system, operation, connector, target, again)
    if operation == "anonymise":  # a repeat after success sends nothing the vendor would keep as a change
        before = _writes(fake)
        assert _run(system, operation, connector, target).outcome is Outcome.DONE
        assert _writes(fake) == before


@pytest.mark.parametrize("system", SYSTEMS)
def test_a_vendor_that_keeps_failing_costs_one_retry_budget_per_call(serve, system):
    served = serve(system, retries=10, backoff_factor=0.2, retry_budget=1.0)
    target = _target(system, served.connector)
    served.fake.fail_next(10_000, 500, method="DELETE")
    served.fake.fail_next(10_000, 500, method="PATCH")

    started = time.monotonic()
    with pytest.raises(VendorUnavailable):
        served.connector.delete(target.ref)
    elapsed = time.monotonic() - started

    assert elapsed < 2.5  # ten retries at this backoff would take over 3 minutes
    assert served.fake.count(status=500) < 11


@pytest.mark.parametrize("fault", ["missing_id", "wrong_id"])
@pytest.mark.parametrize("system", SYSTEMS)
def test_ids_missing_or_of_the_wrong_type_never_become_already_gone(serve, system, fault):
    """The probe's 34 "already gone" outcomes: records read with ids of the wrong type, then deleted by them."""
    served = serve(system)
    served.fake.inject(fault, 10_000, method="GET")
    with pytest.raises(VendorError):
        list(served.connector.records())
    assert served.fake.count("DELETE") == 0


# -- through the command line: one line on stderr, exit 1, nothing changed ------------------------------------------
@pytest.fixture(scope="module")
def sandbox_config(population, tmp_path_factory):
    from vergeet.sandbox import Sandbox

    fast = {system: (10_000, 1.0) for system in CONNECTED}
    with Sandbox(population, rates=fast) as sandbox:
        yield sandbox, sandbox.write_config(tmp_path_factory.mktemp("cli"), retries=0, client_rates=fast)


@pytest.mark.parametrize("command", ["purge", "find", "erase"])
@pytest.mark.parametrize("fault", FAULTS)
def test_the_cli_says_one_line_and_exits_1_for_every_fault_kind(sandbox_config, fault, command):
    from typer.testing import CliRunner

    from vergeet.cli import app

    sandbox, config = sandbox_config
    email = next(p.moneybird.email for p in sandbox.population.people if p.moneybird)
    arguments = {"purge": ["purge", "--apply", "--force"], "find": ["find", email, "--format", "json", "--out",
                                                                     str(config.parent / "report.json")],
                 "erase": ["erase", email, "--approve", "--verified-by", "ID seen"]}[command]
    moneybird = sandbox.fakes["moneybird"]
    _inject(moneybird, fault, "GET")
    try:
        result = CliRunner().invoke(app, ["--config", str(config), *arguments])
    finally:
        moneybird.clear_faults()

    assert result.exit_code == 1, result.output
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output and result.output.count("error:") == 1  # one message (rich wraps it)
    assert "moneybird: GET /" in result.output and email not in result.output
    assert sum(fake.count(method) for fake in sandbox.fakes.values() for method in ("DELETE", "PATCH", "PUT")) == 0
