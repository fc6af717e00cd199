"""Rectification requests (issue 20): `vergeet correct` finds the person, plans per record what changes and what
cannot, corrects through the ledger, reads back, keeps the old identifiers findable and confirms to the person.

Most tests run against small fake connectors that keep their records in memory and count their writes; the
sandbox tests at the end run the same against the four vendor fakes."""
from __future__ import annotations

import json
import stat
from dataclasses import replace
from datetime import date
from pathlib import Path

import pytest
from typer.testing import CliRunner

from connectors.base import ActionResult, FieldChange, Identifiers, Link, Outcome, Record, RecordRef
from vergeet import access, erasure, rectify
from vergeet.cli import app
from vergeet.errors import BadInput
from vergeet.ledger import Ledger
from vergeet.rules import load_rules

RULES = load_rules(Path(__file__).resolve().parents[1] / "retention_rules.toml")
PEPPER = b"test-pepper-long-enough-for-the-minimum-0123"
TODAY = date.today()
OLD_EMAIL, OLD_PHONE, OLD_STREET = "ria.smit@example.nl", "+31612345678", "Kerkstraat 9"
NEW = {"email": "ria.van.dijk@example.org", "name": "Ria van Dijk", "address.street": "Dorpsweg 12",
       "address.postcode": "3811 AB", "address.city": "Amersfoort"}
OTHER_EMAIL = "kees.bakker@example.nl"

_FIELDS = {"name": "name", "email": "email", "phone": "phone", "address.street": "address1",
           "address.postcode": "zipcode", "address.city": "city"}


class Fake:
    """A connector holding records in memory: contacts take every correction, invoices keep their address."""

    def __init__(self, system: str, records: list[Record], every_write: list[str], crash_on_write: int | None = None):
        self.system = system
        self.store = {r.record_id: r for r in records}
        self.writes: list[str] = []
        self.every_write = every_write  # shared by the fakes of one test
        self.crash_on_write = crash_on_write

    def search(self, identifiers: Identifiers):
        """The records with any of the identifiers, and those linked to them (a contact's invoices)."""
        wanted = linking(identifiers)
        hits = {r.ref for r in self.store.values() if wanted & linking(Identifiers(r.emails, r.phones))}
        return [r for r in self.store.values() if r.ref in hits or any(link.target in hits for link in r.links)]

    def read(self, ref: RecordRef, parent=None):
        return self.store.get(ref.record_id)

    def plan_correction(self, record: Record, new):
        held = {"name": record.name, "email": ", ".join(record.emails) or None,
                "phone": ", ".join(record.phones) or None,
                **{f: record.fields.get(_FIELDS[f]) for f in rectify.ADDRESS_PARTS}}
        refused = "issued_document" if record.record_type == "sales_invoice" else None
        return [FieldChange(record.ref, name, _FIELDS[name], held[name], value, refused=refused)
                for name, value in new.items() if held.get(name)]

    def correct(self, changes):
        ref = changes[0].ref
        record = self.store.get(ref.record_id)
        if record is None:
            return ActionResult(Outcome.ALREADY_GONE)
        if all(rectify.same(c.field, self._value(record, c.field), c.new) for c in changes if not c.refused):
            return ActionResult(Outcome.DONE, "already so")
        if self.crash_on_write is not None and len(self.every_write) == self.crash_on_write:
            raise KeyboardInterrupt  # the process is killed between two writes
        for change in changes:
            if change.field == "email":
                record = replace(record, emails=(change.new,))
            elif change.field == "phone":
                record = replace(record, phones=(change.new,))
            elif change.field == "name":
                first, _, last = change.new.partition(" ")
                record = replace(record, first_name=first, last_name=last)
            else:
                record = replace(record, fields={**record.fields, _FIELDS[change.field]: change.new})
        self.store[ref.record_id] = record
        self.writes.append(ref.record_id)
        self.every_write.append(ref.record_id)
        return ActionResult(Outcome.DONE)

    def _value(self, record: Record, name: str):
        return next(c.current for c in self.plan_correction(record, {name: "x"}))


def linking(identifiers: Identifiers) -> set[str]:
    normal = access.normalise(identifiers)
    return set(normal.emails) | set(normal.phones)


def contact(system: str, record_id: str, email: str, phone: str | None = None, **fields) -> Record:
    first, last = fields.pop("name", "Ria Smit").split(" ", 1)
    return Record(system, "contact", record_id, emails=(email,), phones=(phone,) if phone else (),
                  first_name=first, last_name=last, fields={"address1": OLD_STREET, "zipcode": "1011 AA",
                                                            "city": "Amsterdam", **fields})


def fakes(crash_on_write: int | None = None) -> dict[str, Fake]:
    invoice = Record("moneybird", "sales_invoice", "inv-1", first_name="Ria", last_name="Smit",
                     fields={"invoice_id": "2025-007", "address1": OLD_STREET, "zipcode": "1011 AA",
                             "city": "Amsterdam"},
                     links=(Link("contact", RecordRef("moneybird", "contact", "c-1")),))
    every_write: list[str] = []
    return {"moneybird": Fake("moneybird", [contact("moneybird", "c-1", OLD_EMAIL.upper(), "06-12345678"),
                                            invoice], every_write, crash_on_write),
            "mailblue": Fake("mailblue", [contact("mailblue", "m-1", OLD_EMAIL),
                                          contact("mailblue", "m-2", OTHER_EMAIL, name="Kees Bakker")],
                             every_write, crash_on_write)}


@pytest.fixture
def ledger(tmp_path):
    with Ledger(f"sqlite:///{tmp_path / 'ledger.db'}", PEPPER) as opened:
        yield opened


def planned(ledger, connectors, new=NEW, person=(OLD_EMAIL,)):
    subject = access.classify(list(person))
    plan = rectify.plan_rectification(connectors, subject, new, RULES, ledger)
    plan.request = rectify.register(ledger, subject, RULES, new, received=TODAY, verified_by="ID gezien")
    return plan


def carry_out(ledger, plan, connectors):
    erasure.approve(ledger, plan.request, "approved in the test")
    summary = rectify.execute(ledger, plan, connectors)
    differs = rectify.verify(ledger, plan, connectors)
    return summary, differs, rectify.finish(ledger, plan, summary, differs)


# -- what may be set -----------------------------------------------------------------------------


def test_settings_are_checked_and_an_address_in_one_value_becomes_its_three_parts():
    assert rectify.parse_settings(["email= Ria@Example.org ", "phone=06 1234 5678",
                                   "address=Dorpsweg 12, 3811ab  Amersfoort", "name=Ria  van Dijk"]) == {
        "email": "Ria@Example.org", "phone": "+31612345678", "address.street": "Dorpsweg 12",
        "address.postcode": "3811 AB", "address.city": "Amersfoort", "name": "Ria van Dijk"}
    assert rectify.parse_settings(["address.postcode=3811 ab"]) == {"address.postcode": "3811 AB"}


@pytest.mark.parametrize("settings, says", [
    (["birthday=1 May"], "setting 1: give FIELD=VALUE"),
    (["email"], "setting 1: give FIELD=VALUE"),
    (["email=ria-at-example.org"], "setting 1 (email): not an e-mail address"),
    (["name=Ria", "phone=99887"], "setting 2 (phone): not a valid phone number"),
    (["address.postcode=0123 AB"], "not a Dutch postcode"),
    (["address.postcode=3811 SS"], "not a Dutch postcode"),
    (["address=Dorpsweg 12 Amersfoort"], 'give the address as "Street 1, 1234 AB City"'),
    (["address=Dorpsweg 12, 3811 AB Amersfoort", "address.city=Baarn"], "setting 2 (address.city): set twice"),
    (["name=R1a"], "not a name"),
    (["email="], "the new value is empty"),
    ([], "give at least one setting"),
])
def test_bad_settings_are_refused_naming_position_and_field_never_the_value(settings, says):
    with pytest.raises(BadInput) as raised:
        rectify.parse_settings(settings)
    assert says in str(raised.value)
    for item in settings:
        value = item.partition("=")[2]
        if len(value) > 3:
            assert value not in str(raised.value)


# -- plan, execute, verify -----------------------------------------------------------------------


def test_the_plan_says_per_record_what_changes_and_why_an_invoice_keeps_its_address(ledger):
    connectors = fakes()
    plan = planned(ledger, connectors)
    to_make = plan.to_make()
    assert set(to_make) == {"moneybird/contact/c-1", "mailblue/contact/m-1"}  # not Kees's m-2
    assert {c.field for c in to_make["moneybird/contact/c-1"]} == set(NEW)
    refused = [c for c in plan.changes if c.refused]
    assert {(str(c.ref), c.field, c.refused) for c in refused} == {
        ("moneybird/sales_invoice/inv-1", f, "issued_document") for f in ("name", *rectify.ADDRESS_PARTS)}
    rows = rectify.plan_rows(plan, RULES, "en")
    shown = json.dumps(rows)
    for value in (OLD_EMAIL, "Smit", OLD_STREET, *NEW.values()):
        assert value not in shown
    assert {r["now"] for r in rows if r["field"] == "email"} == {"R***@E***.NL", "r***@e***.nl"}
    why = {r["what"] for r in rows if r["record_id"] == "inv-1"}
    assert why == {rectify.refusal_text("issued_document", "Moneybird", "en")} and "35a" in why.pop()


def test_an_approved_correction_is_written_once_per_record_through_the_ledger_and_read_back(ledger):
    connectors = fakes()
    plan = planned(ledger, connectors)
    summary, differs, status = carry_out(ledger, plan, connectors)
    assert (status, differs, summary.failed) == ("completed", [], 0)
    assert connectors["moneybird"].writes == ["c-1"] and connectors["mailblue"].writes == ["m-1"]
    c1 = connectors["moneybird"].store["c-1"]
    assert (c1.emails, c1.name, c1.fields["zipcode"]) == ((NEW["email"],), "Ria van Dijk", "3811 AB")
    assert connectors["moneybird"].store["inv-1"].fields["address1"] == OLD_STREET  # issued: kept
    assert connectors["mailblue"].store["m-2"].emails == (OTHER_EMAIL,)
    actions = ledger.actions(summary.run_id)
    assert {(a["record_id"], a["action"], a["outcome"]) for a in actions} == {("c-1", "correct", "done"),
                                                                            ("m-1", "correct", "done")}
    assert set(next(a for a in actions if a["record_id"] == "m-1")["fields"]) == set(NEW)
    assert [e["status"] for e in ledger.request_history(plan.request["id"])] == [
        "received", "approved", "executing", "completed"]
    assert ledger.get_run(summary.run_id)["kind"] == "rectification"


def test_the_old_address_still_finds_the_person_and_the_new_one_finds_them_too(ledger):
    connectors = fakes()
    carry_out(ledger, planned(ledger, connectors), connectors)
    new_hash = ledger.hash_identifier("email", NEW["email"])
    assert ledger.indexed_records([new_hash])[new_hash] == {"moneybird/contact/c-1", "mailblue/contact/m-1"}
    for asked in (OLD_EMAIL, NEW["email"]):
        found = access.find_person(connectors, access.classify([asked]), RULES, ledger=ledger)
        assert set(found.mentions["key"]) == {"moneybird/contact/c-1", "moneybird/sales_invoice/inv-1",
                                              "mailblue/contact/m-1"}, asked
    assert not ledger.all_suppressed()


def test_a_new_address_that_belongs_to_someone_else_is_refused_and_nothing_changes(ledger):
    connectors = fakes()
    with pytest.raises(BadInput, match="already on records of someone else .*mailblue/contact/m-2") as raised:
        planned(ledger, connectors, new={"email": OTHER_EMAIL.upper()})
    assert OTHER_EMAIL not in str(raised.value).lower()
    assert ledger.list_requests() == []
    assert connectors["moneybird"].writes == connectors["mailblue"].writes == []
    # naming both addresses says they are one person: then it goes ahead
    assert planned(ledger, connectors, new={"email": OTHER_EMAIL}, person=(OLD_EMAIL, OTHER_EMAIL)).to_make()


def test_a_run_killed_between_two_writes_is_finished_by_the_rerun_writing_each_record_once(ledger):
    connectors = fakes(crash_on_write=1)
    first = planned(ledger, connectors)
    erasure.approve(ledger, first.request, "approved in the test")
    with pytest.raises(KeyboardInterrupt):
        rectify.execute(ledger, first, connectors)
    killed = ledger.unfinished_runs("rectification")
    assert len(killed) == 1 and [a["status"] for a in ledger.actions(killed[0]["id"])] == ["done", "in_progress"]
    written = {system: list(fake.writes) for system, fake in connectors.items()}
    assert sum(map(len, written.values())) == 1
    for fake in connectors.values():
        fake.crash_on_write = None

    again = planned(ledger, connectors)  # the same command again: the same request, planned anew
    assert again.request["id"] == first.request["id"]
    assert len(again.to_make()) == 1  # the record corrected before shows the new values
    _, differs, status = carry_out(ledger, again, connectors)
    assert (status, differs) == ("completed", [])
    assert sorted(connectors["moneybird"].writes + connectors["mailblue"].writes) == ["c-1", "m-1"]
    assert ledger.get_run(killed[0]["id"])["status"] == "aborted"
    assert ledger.unfinished_runs("rectification") == []
    document = rectify.confirmation(ledger, again, RULES, differs, status, "en")
    assert {(e["record_id"], e["outcome"]) for e in document["corrected"]} == {("c-1", "done"), ("m-1", "done")}


def test_a_record_that_does_not_show_the_new_value_when_read_back_keeps_the_request_open(ledger):
    connectors = fakes()
    plan = planned(ledger, connectors)
    connectors["mailblue"].correct = lambda changes: ActionResult(Outcome.DONE)  # says done, writes nothing
    summary, differs, status = carry_out(ledger, plan, connectors)
    assert status == "failed" and summary.failed == 0
    assert differs == [{"system": "mailblue", "record_type": "contact", "record_id": "m-1",
                        "fields": list(NEW)}]
    assert ledger.get_request(plan.request["id"])["closed_at"] is None


def test_a_write_the_vendor_refuses_is_not_corrected_in_the_confirmation_and_not_a_failed_read_back(ledger):
    connectors = fakes()
    plan = planned(ledger, connectors)
    connectors["mailblue"].correct = lambda changes: ActionResult(Outcome.NOT_SUPPORTED, "HTTP 422 duplicate_email")
    summary, differs, status = carry_out(ledger, plan, connectors)
    assert (status, differs, summary.failed) == ("completed", [], 0)
    document = rectify.confirmation(ledger, plan, RULES, differs, status, "en")
    assert {e["record_id"] for e in document["corrected"]} == {"c-1"}
    refused = [e for e in document["not_corrected"] if e["record_id"] == "m-1"]
    assert {e["field"] for e in refused} == set(NEW) and {e["reason"] for e in refused} == {"vendor_refused"}
    assert refused[0]["why"] == "Mailblue refused the change when it was made: the value stayed as it was"
    assert next(e for e in refused if e["field"] == "email")["value"] == OLD_EMAIL  # what the record keeps


# -- the confirmation and what the ledger keeps --------------------------------------------------


def test_the_confirmation_says_what_was_corrected_where_and_what_the_invoice_keeps(ledger, tmp_path):
    connectors = fakes()
    plan = planned(ledger, connectors)
    summary, differs, status = carry_out(ledger, plan, connectors)
    document = rectify.confirmation(ledger, plan, RULES, differs, status, "en")
    corrected = {(e["record_id"], e["field"]): e for e in document["corrected"]}
    assert set(corrected) == {(r, f) for r in ("c-1", "m-1") for f in NEW}
    assert corrected[("m-1", "email")]["value"] == NEW["email"] and corrected[("m-1", "email")]["verified"]
    assert all(e["outcome"] == "done" and e["at"] for e in corrected.values())
    kept = document["not_corrected"]
    assert {(k["record_id"], k["field"], k["value"]) for k in kept} == {
        ("inv-1", "name", "Ria Smit"), ("inv-1", "address.street", OLD_STREET), ("inv-1", "address.postcode", "1011 AA"),
        ("inv-1", "address.city", "Amsterdam")}
    assert kept[0]["reference"] == "2025-007" and "art. 35a" in kept[0]["why"]
    assert document["request"]["status"] == "completed" and document["verification"]["differs"] == []
    paths = rectify.write_confirmation(document, tmp_path / "out")
    assert [p.name for p in paths] == [f"rectification-request-{plan.request['id']}.json",
                                       f"rectification-request-{plan.request['id']}.html"]
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in paths)
    html = paths[1].read_text()
    assert "Confirmation of rectification" in html and NEW["email"] in html and "Dorpsweg 12" in html
    assert "art. 35a" in html and RULES.controller.supervisory_authority in html
    assert RULES.controller.supervisory_authority_url in html
    dutch = rectify.confirmation(ledger, plan, RULES, differs, status, "nl")
    page = rectify.write_confirmation(dutch, tmp_path / "nl")[1].read_text()
    assert "Bevestiging van correctie" in page and "creditfactuur" in page


def test_the_ledger_file_holds_no_old_or_new_value_in_plaintext(tmp_path):
    path = tmp_path / "ledger.db"
    connectors = fakes(crash_on_write=1)
    with Ledger(f"sqlite:///{path}", PEPPER) as ledger:
        plan = planned(ledger, connectors)
        erasure.approve(ledger, plan.request, "approved")
        with pytest.raises(KeyboardInterrupt):
            rectify.execute(ledger, plan, connectors)
        connectors["mailblue"].crash_on_write = connectors["moneybird"].crash_on_write = None
        carry_out(ledger, planned(ledger, connectors), connectors)
        rejected = rectify.register(ledger, access.classify([OTHER_EMAIL]), RULES, {"phone": "+31687654321"},
                                    received=TODAY)
        erasure.reject(ledger, rejected, "not the person's own number")
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith(path.name)).lower()
    assert b"c-1" in raw and b"address.postcode" in raw  # what it does hold reached the file
    for value in (OLD_EMAIL, OLD_PHONE, "612345678", "Smit", OLD_STREET, "Amsterdam", "1011 AA", OTHER_EMAIL,
                  "687654321", *NEW.values(), "van dijk"):
        assert value.lower().encode() not in raw, value


# -- the command line ----------------------------------------------------------------------------


@pytest.fixture
def config(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # where a confirmation without --out goes
    path = tmp_path / "vergeet.toml"
    path.write_text(f'[store]\nurl = "sqlite:///{tmp_path}/ledger.db"\npepper = "{PEPPER.decode()}"\n')
    connectors = fakes()
    monkeypatch.setattr("vergeet.connect.build_connectors", lambda config: connectors)
    monkeypatch.setattr("flows.rectification_request.build_connectors", lambda config: connectors)
    return path, connectors


def vergeet(config, *arguments):
    return CliRunner().invoke(app, ["--config", str(config[0]), *arguments])


def requests_of(config) -> list[dict]:
    with Ledger(f"sqlite:///{config[0].parent}/ledger.db", PEPPER) as ledger:
        return [r | {"history": [e["status"] for e in ledger.request_history(r["id"])]}
                for r in ledger.list_requests(open_only=False)]


def test_vergeet_correct_approved_corrects_and_writes_the_confirmation(config, tmp_path):
    result = vergeet(config, "correct", OLD_EMAIL, "--set", f"email={NEW['email']}", "--set",
                     "address=Dorpsweg 12, 3811 AB Amersfoort", "--approve", "--out", str(tmp_path / "out"),
                     "--lang", "en", "--verified-by", "ID gezien")
    assert result.exit_code == 0, result.output
    assert "Rectification request 1: completed" in result.output
    assert NEW["email"] not in result.output and OLD_EMAIL not in result.output  # masked on the screen
    assert "issued invoice keeps the name and address it was issued to" in " ".join(result.output.split())
    document = json.loads((tmp_path / "out" / "rectification-request-1.json").read_text())
    assert document["request"]["verified_by"] == "ID gezien"
    assert config[1]["mailblue"].store["m-1"].emails == (NEW["email"],)


@pytest.mark.parametrize("arguments", [
    ("--set", "colour=blue"), ("--set", "email=not-an-address"), ("--set", "phone=123"),
    ("--set", "address.postcode=12345"), ("--set", f"email={OTHER_EMAIL}"),
])
def test_vergeet_correct_refuses_bad_input_with_exit_2_and_changes_nothing(config, arguments):
    result = vergeet(config, "correct", OLD_EMAIL, *arguments, "--approve")
    assert result.exit_code == 2, result.output
    assert "error:" in result.output
    assert all(not fake.writes for fake in config[1].values())
    assert requests_of(config) == []


def test_vergeet_correct_unapproved_keeps_the_request_open_and_reject_closes_it(config):
    result = vergeet(config, "correct", OLD_EMAIL, "--set", "name=Ria van Dijk")
    assert result.exit_code == 2 and "stays open" in result.output
    assert all(not fake.writes for fake in config[1].values())
    result = vergeet(config, "correct", OLD_EMAIL, "--set", "name=Ria van Dijk", "--reject", "no ID given")
    assert result.exit_code == 0 and "rejected" in result.output
    (request,) = requests_of(config)
    assert request["history"] == ["received", "awaiting_approval", "rejected"]


# -- the Prefect flow ----------------------------------------------------------------------------


def test_the_flow_pauses_with_the_plan_masked_then_corrects_and_prefect_keeps_no_value(prefect_harness, config,
                                                                                       tmp_path):
    import threading
    import time

    from prefect.client.orchestration import get_client
    from prefect.flow_runs import resume_flow_run

    from flows.rectification_request import run_rectification_request

    path, connectors = config
    result: dict = {}
    thread = threading.Thread(target=lambda: result.update(value=run_rectification_request(
        [OLD_EMAIL], ["email=" + NEW["email"], "address=Dorpsweg 12, 3811 AB Amersfoort"], config_path=str(path),
        lang="en", out_dir=str(tmp_path / "out"), poll_interval=1, approval_timeout=120)))
    thread.start()
    with get_client(sync_client=True) as client:
        deadline = time.monotonic() + 90
        while not (paused := [r for r in client.read_flow_runs() if r.state and r.state.is_paused()]):
            assert time.monotonic() < deadline, "the flow never paused for approval"
            time.sleep(0.5)
        assert all(not fake.writes for fake in connectors.values())  # nothing before the owner decides
        [artifact] = [a for a in client.read_artifacts() if a.flow_run_id == paused[0].id]
        rows = json.loads(artifact.data)
        assert {(r["record_id"], r["refused"]) for r in rows} == {("c-1", ""), ("m-1", ""),
                                                                  ("inv-1", "issued_document")}
        resume_flow_run(paused[0].id, run_input={"approve": True})
        thread.join(120)
        stored = " ".join(str(run.parameters) for run in client.read_flow_runs()) + " ".join(
            f"{a.data} {a.description}" for a in client.read_artifacts())
    assert result["value"]["status"] == "completed" and result["value"]["failed"] == 0
    assert connectors["mailblue"].store["m-1"].emails == (NEW["email"],)
    assert (tmp_path / "out" / f"rectification-request-{result['value']['request_id']}.html").is_file()
    for value in (OLD_EMAIL, "smit", OLD_STREET, NEW["email"], "dorpsweg", "amersfoort"):
        assert value.lower() not in stored.lower(), value


# -- against the sandbox -------------------------------------------------------------------------
# Lotte (tests/test_erasure.py) is in every system; her Moneybird invoice, two years old and paid, is issued.

LOTTE = "lotte.dekker@example.nl"
LOTTE_NEW = {"email": "lotte.vos@example.org", "phone": "+31611223344", "name": "Lotte Vos",
             "address.street": "Dorpsweg 12", "address.postcode": "3811 AB", "address.city": "Amersfoort"}
#: the systems whose connectors correct (connectors.base: plan_correction, correct)
CORRECTING = ("moneybird", "mailblue", "mollie", "google_calendar")
#: where Lotte's records change: her one appointment has passed, so the calendar keeps it (its own test below)
CHANGING = ("moneybird", "mailblue", "mollie")


@pytest.fixture
def sandbox(tmp_path):
    from test_erasure import FAST, population

    from vergeet.config import load_config
    from vergeet.sandbox import Sandbox

    with Sandbox(population(), rates=FAST) as running:
        running.config_path = running.write_config(tmp_path, client_rates=FAST, retries=1)
        running.config = load_config(str(running.config_path))
        yield running


def writes_of(sandbox, system: str, after: int = 0) -> list[tuple[str, str]]:
    from test_erasure import MUTATING

    return [(r.method, r.path) for r in sandbox.fakes[system].requests[after:] if r.method in MUTATING]


@pytest.mark.parametrize("system", CHANGING)
def test_a_correction_in_the_sandbox_is_written_once_read_back_and_found_by_old_and_new_address(sandbox, system):
    from vergeet.connect import build_connectors, open_ledger

    connectors = {system: build_connectors(sandbox.config)[system]}
    with open_ledger(sandbox.config) as ledger:
        plan = planned(ledger, connectors, new=LOTTE_NEW, person=(LOTTE,))
        to_make = plan.to_make()
        assert to_make and all(key.startswith(system + "/") for key in to_make)
        assert "email" in {c.field for changes in to_make.values() for c in changes}
        summary, differs, status = carry_out(ledger, plan, connectors)
        assert (status, differs, summary.failed) == ("completed", [], 0), ledger.actions(summary.run_id)
        written = writes_of(sandbox, system)
        assert written and len(set(written)) == len(written) <= len(to_make)  # each record at most one write
        for key in to_make:
            record = connectors[system].read(RecordRef(*key.split("/", 2)))
            held = {c.field: c.current for c in connectors[system].plan_correction(record, LOTTE_NEW)}
            assert all(rectify.same(f, held.get(f), LOTTE_NEW[f]) for f in (c.field for c in to_make[key])), held

        again = planned(ledger, connectors, new=LOTTE_NEW, person=(LOTTE,))  # asked again: nothing left to do
        assert again.empty and writes_of(sandbox, system) == written
        for asked in (LOTTE, LOTTE_NEW["email"]):
            found = access.find_person(connectors, access.classify([asked]), RULES, ledger=ledger)
            assert set(to_make) <= set(found.mentions["key"]), asked


def test_an_issued_moneybird_invoice_keeps_the_address_it_was_issued_to(sandbox):
    from vergeet.connect import build_connectors, open_ledger

    connectors = {"moneybird": build_connectors(sandbox.config)["moneybird"]}
    with open_ledger(sandbox.config) as ledger:
        plan = planned(ledger, connectors, new=LOTTE_NEW, person=(LOTTE,))
        document = rectify.confirmation(ledger, plan, RULES, [], "received", "nl")
    invoice = [k for k in document["not_corrected"] if k["record_type"] == "sales_invoice"]
    assert invoice and {k["reason"] for k in invoice} == {"issued_document"}
    assert {k["reference"] for k in invoice} == {"F2024-001"}
    assert all("art. 35a Wet op de omzetbelasting 1968" in k["why"] for k in invoice)


def test_vergeet_correct_killed_after_its_first_write_is_finished_by_the_same_command_again(sandbox, tmp_path):
    """A real process, SIGKILLed as soon as a vendor holds its first correction; the rerun writes the rest, and
    repeats no record but the one in flight."""
    import re
    import subprocess
    import sys

    from test_kill_points import kill_when

    from vergeet.connect import open_ledger

    text = sandbox.config_path.read_text()  # only the systems that correct are connected
    sandbox.config_path.write_text("".join(
        block for block in re.split(r"(?m)^(?=\[)", text)
        if not (m := re.match(r"\[connectors\.(\w+)", block)) or m[1] in CORRECTING))
    command = [sys.executable, "-c", "from vergeet.cli import app; app()", "--config", str(sandbox.config_path),
               "correct", LOTTE, *(f"--set={field}={value}" for field, value in LOTTE_NEW.items()), "--approve",
               "--out", str(tmp_path / "out")]
    process = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    kill_when(process, lambda: any(writes_of(sandbox, system) for system in CORRECTING))
    before = {system: writes_of(sandbox, system) for system in CORRECTING}
    with open_ledger(sandbox.config) as ledger:
        [killed] = ledger.unfinished_runs("rectification")
        in_flight = {a["system"] for a in ledger.actions(killed["id"], ("in_progress",))}
        planned_records = len(ledger.actions(killed["id"]))

    rerun = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    after = {system: writes_of(sandbox, system) for system in CORRECTING}
    repeated = {system for system in CORRECTING if len(set(after[system])) < len(after[system])}
    assert repeated <= in_flight  # only the record the kill caught mid-call may have been written twice
    assert sum(len(set(w)) for w in after.values()) == planned_records >= 2
    assert sum(map(len, before.values())) < sum(map(len, after.values()))
    with open_ledger(sandbox.config) as ledger:
        [request] = ledger.list_requests(open_only=False)
        assert request["status"] == "completed" and ledger.get_run(killed["id"])["status"] == "aborted"
    document = json.loads((tmp_path / "out" / f"rectification-request-{request['id']}.json").read_text())
    assert {e["system"] for e in document["corrected"]} == set(CHANGING)
    assert {k["reason"] for k in document["not_corrected"] if k["system"] == "google_calendar"} == {"past_event"}
    # what the killed run wrote is said as corrected too, not as "was already so"
    assert all(e["verified"] and e["outcome"] == "done" and e["at"] for e in document["corrected"])


def test_a_calendar_correction_changes_the_guest_entry_of_an_appointment_to_come_not_of_one_past(tmp_path):
    from datetime import timedelta

    from dateutil.relativedelta import relativedelta
    from test_erasure import FAST, at, lotte

    from vergeet.config import load_config
    from vergeet.connect import build_connectors, open_ledger
    from vergeet.sandbox import Sandbox
    from vergeet.sandbox.population import Appointment, CalendarPresence, Population

    person = lotte()
    person.calendar = CalendarPresence(LOTTE, None, at(TODAY - relativedelta(years=1)), appointments=[
        Appointment(at(TODAY - timedelta(days=20)), 60, "Coaching Lotte"),
        Appointment(at(TODAY + timedelta(days=10)), 60, "Coaching Lotte")])
    with Sandbox(Population(seed=21, today=TODAY, people=[person]), rates=FAST) as sandbox:
        config = load_config(str(sandbox.write_config(tmp_path, client_rates=FAST, retries=1)))
        connectors = {"google_calendar": build_connectors(config)["google_calendar"]}
        with open_ledger(config) as ledger:
            plan = planned(ledger, connectors, new={"email": LOTTE_NEW["email"]}, person=(LOTTE,))
            assert [c.refused for c in plan.changes].count("past_event") == 1
            [(key, [change])] = plan.to_make().items()
            assert (change.field, change.vendor_field) == ("email", "attendees[].email")
            _, differs, status = carry_out(ledger, plan, connectors)
            assert (status, differs) == ("completed", [])
            future = connectors["google_calendar"].read(change.ref)
            past = next(c.ref for c in plan.changes if c.refused == "past_event")
            assert LOTTE_NEW["email"] in future.emails and LOTTE not in future.emails
            assert LOTTE in connectors["google_calendar"].read(past).emails
            document = rectify.confirmation(ledger, plan, RULES, differs, status, "en")
        assert [k["why"] for k in document["not_corrected"]] == [rectify.refusal_text("past_event", "", "en")]
        assert len(writes_of(sandbox, "google_calendar")) == 1
