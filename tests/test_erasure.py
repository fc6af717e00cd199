"""Erasure requests against the sandbox: plan, approve or reject, execute, verify, certify, suppress."""
from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path

import pytest
from dateutil.relativedelta import relativedelta

from connectors import SYSTEMS
from vergeet import erasure, pipeline
from vergeet.access import classify
from vergeet.config import load_config
from vergeet.connect import build_connectors, open_ledger
from vergeet.rules import load_rules
from vergeet.sandbox import Sandbox
from vergeet.sandbox.population import (Appointment, CalendarPresence, Document, MailbluePresence,
                                        MolliePresence, MoneybirdPresence, Payment, Person, Population, generate)

TODAY = date.today()
RULES = load_rules(Path(__file__).resolve().parents[1] / "retention_rules.toml")
FAST = {system: (1000, 1.0) for system in SYSTEMS}
MUTATING = ("DELETE", "PATCH", "PUT")
INVOICE_DAY = TODAY - relativedelta(years=2)


def at(day: date) -> datetime:
    return datetime.combine(day, time(10, 0), tzinfo=timezone.utc)


def lotte() -> Person:
    """A client in all four systems, with an invoice two years old and a running subscription."""
    return Person(
        key="lotte", first_name="Lotte", last_name="Dekker", email="lotte.dekker@example.nl", phone="+31687654321",
        street="Larenseweg 4", zipcode="1221 CM", city="Hilversum",
        moneybird=MoneybirdPresence("Lotte.Dekker@example.nl", "06-87654321", at(TODAY - relativedelta(years=3)),
                                    documents=[Document("F2024-001", "invoice", INVOICE_DAY, "paid", "450.00")]),
        mailblue=MailbluePresence("LOTTE.DEKKER@EXAMPLE.NL", None, at(TODAY - relativedelta(years=3)),
                                  subscribed=True, status_changed_at=at(TODAY - relativedelta(years=3))),
        mollie=MolliePresence("lotte.dekker@example.nl", None, at(TODAY - relativedelta(years=3)),
                              payments=[Payment(at(INVOICE_DAY), "paid", "450.00", "Traject")],
                              subscription_active=True, mandate_valid=True),
        calendar=CalendarPresence(" lotte.dekker@example.nl", None, at(TODAY - relativedelta(years=1)),
                                  appointments=[Appointment(at(TODAY - timedelta(days=20)), 60, "Coaching Lotte")]))


def population() -> Population:
    others = generate(12, seed=21, today=TODAY).people
    return Population(seed=21, today=TODAY, people=[lotte(), *others])


def mutations(sandbox: Sandbox) -> list[tuple[str, str, str]]:
    return sorted((system, r.method, r.path) for system, fake in sandbox.fakes.items()
                  for r in fake.requests if r.method in MUTATING)


def execute_approved(ledger, plan, connectors):
    """The owner approves the plan shown, then it is carried out."""
    erasure.approve(ledger, plan.request, "approved in the test")
    return erasure.execute(ledger, plan, connectors)


@pytest.fixture
def sandbox(tmp_path):
    with Sandbox(population(), rates=FAST) as running:
        running.config = load_config(str(running.write_config(tmp_path, client_rates=FAST, retries=1)))
        yield running


def plan_for(sandbox, scope=("all",)):
    connectors = build_connectors(sandbox.config)
    person = classify(["lotte.dekker@example.nl"])
    ledger = open_ledger(sandbox.config)
    systems = erasure.scope_systems(list(scope), RULES, connectors)
    request = erasure.register(ledger, person, RULES, received=TODAY, verified_by="ID gezien op 25-11",
                               scope=list(scope))
    return connectors, ledger, erasure.plan_erasure(connectors, person, RULES, ledger, request, as_of=TODAY,
                                                    systems=systems)


def test_approved_full_erasure_leaves_only_the_retained_invoice(sandbox):
    connectors, ledger, plan = plan_for(sandbox)
    with ledger:
        summary = execute_approved(ledger, plan, connectors)
        still_found = erasure.verify(connectors, plan, RULES)
        status = erasure.finish(ledger, plan, summary, still_found)
        certificate = erasure.certificate(ledger, plan, RULES, summary, still_found, status, lang="en")
        suppressed = ledger.all_suppressed()
        request = ledger.get_request(plan.request["id"])
    assert (status, summary.failed, still_found) == ("completed", 0, [])
    invoice_until = (INVOICE_DAY + relativedelta(years=7)).isoformat()
    assert request["status"] == "completed" and request["closed_at"] is not None
    assert {(e["system"], e["record_type"], e["action"]) for e in certificate["erased"]} >= {
        ("mailblue", "contact", "delete"), ("mollie", "customer", "delete"), ("google_calendar", "event", "anonymise")}
    assert ("moneybird", "contact") not in {(e["system"], e["record_type"]) for e in certificate["erased"]}
    assert all(e["outcome"] in ("done", "already_gone") and e["at"] for e in certificate["erased"])
    # the running subscription and the mandate end with the deleted customer: said so, not "kept until"
    ended = {(e["record_type"], e["outcome"]) for e in certificate["erased"] if e["action"] == "ended"}
    assert ended == {("mandate", "done"), ("subscription", "done")}
    assert not [k for k in certificate["kept"] if k["record_type"] in ("mandate", "subscription")]
    kept = {(k["system"], k["record_type"]): k for k in certificate["kept"]}
    assert kept[("moneybird", "contact")]["until"] == invoice_until  # stays whole while the invoice is kept
    invoice = kept[("moneybird", "sales_invoice")]
    assert invoice["until"] == invoice_until
    assert invoice["legal_basis"] == "legal obligation"
    assert kept[("mollie", "payment")]["retained_by"] == "mollie"
    assert len(suppressed) == 2  # the e-mail address and the phone number, hashed

    # searching again finds the invoice and the payment only (both kept by law)
    from vergeet.access import find_person
    again = find_person(connectors, classify(["lotte.dekker@example.nl", "06-87654321"]), RULES)
    assert {(r.system, r.record_type) for r in again.records()} <= {("moneybird", "sales_invoice"),
                                                                      ("moneybird", "contact"),
                                                                      ("mollie", "payment")}
    assert [r.record_type for r in again.records() if r.system == "moneybird" and r.record_type == "contact"] == [
        "contact"]  # the contact the invoice keeps, still whole


def test_rejected_request_changes_nothing_and_says_why(sandbox):
    connectors, ledger, plan = plan_for(sandbox)
    with ledger:
        erasure.reject(ledger, plan.request, "identiteit niet vastgesteld")
        request = ledger.get_request(plan.request["id"])
        runs = ledger.list_runs()
    assert mutations(sandbox) == []
    assert (request["status"], request["status_note"]) == ("rejected", "identiteit niet vastgesteld")
    assert runs == []


def test_newsletter_scope_only_touches_mailblue(sandbox):
    connectors, ledger, plan = plan_for(sandbox, scope=("newsletter",))
    with ledger:
        summary = execute_approved(ledger, plan, connectors)
        status = erasure.finish(ledger, plan, summary, erasure.verify(connectors, plan, RULES))
        suppressed = ledger.all_suppressed()
    assert status == "completed"
    assert {system for system, _, _ in mutations(sandbox)} == {"mailblue"}
    assert suppressed == set()  # consent withdrawn for one purpose is not an erasure of the person


def test_failing_vendor_keeps_request_open_and_rerun_finishes_without_repeats(sandbox):
    sandbox.fakes["mollie"].fail_next(100, 500, method="DELETE")
    connectors, ledger, plan = plan_for(sandbox)
    with ledger:
        summary = execute_approved(ledger, plan, connectors)
        status = erasure.finish(ledger, plan, summary, erasure.verify(connectors, plan, RULES))
        request = ledger.get_request(plan.request["id"])
    assert status == "failed" and summary.failed == 1
    assert request["status"] == "failed" and request["closed_at"] is None
    assert "1 actions failed" in request["status_note"]
    done_before = [m for m in mutations(sandbox) if m[0] != "mollie"]

    sandbox.fakes["mollie"].faults.clear()
    connectors, ledger, plan = plan_for(sandbox)  # the same request is found again, the plan made anew
    with ledger:
        assert plan.request["id"] == request["id"]
        assert list(plan.plan.actions["system"]) == ["mollie"]
        summary = execute_approved(ledger, plan, connectors)
        status = erasure.finish(ledger, plan, summary, erasure.verify(connectors, plan, RULES))
    assert status == "completed"
    assert [m for m in mutations(sandbox) if m[0] != "mollie"] == done_before  # nothing repeated


def test_an_erased_person_who_reappears_is_flagged_by_the_next_nightly_run(sandbox):
    connectors, ledger, plan = plan_for(sandbox)
    with ledger:
        erasure.finish(ledger, plan, execute_approved(ledger, plan, connectors),
                       erasure.verify(connectors, plan, RULES))
        quiet = pipeline.make_plan(pipeline.identity_view(pipeline.pull_all(connectors), RULES), RULES, TODAY,
                                   ledger)
        again = lotte()  # she signs up for the newsletter again, today
        again.mailblue = MailbluePresence("lotte.dekker@example.nl", None, datetime.now(timezone.utc))
        sandbox.fakes["mailblue"].add_person(again)
        flagged = pipeline.make_plan(pipeline.identity_view(pipeline.pull_all(connectors), RULES), RULES, TODAY,
                                     ledger)
    assert quiet.reappeared.empty  # the invoice kept by law is not a reappearance
    assert list(flagged.reappeared["system"]) == ["mailblue"]


def test_cli_erase_with_approve_writes_the_certificate(sandbox, tmp_path):
    from typer.testing import CliRunner

    from vergeet.cli import app

    result = CliRunner().invoke(app, ["--config", sandbox.config.source, "erase", "Lotte.Dekker@example.nl",
                                      "--approve", "--verified-by", "ID gezien", "--lang", "en",
                                      "--out", str(tmp_path / "out")], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "completed" in result.output
    import json

    certificate = json.loads((tmp_path / "out" / "erasure-request-1.json").read_text())
    html = (tmp_path / "out" / "erasure-request-1.html").read_text()
    assert {f.stat().st_mode & 0o777 for f in (tmp_path / "out").iterdir()} == {0o600}
    assert certificate["request"]["status"] == "completed"
    assert "Certificate of erasure" in html and "Autoriteit Persoonsgegevens" in html
    assert "lotte" not in html.lower() and "87654321" not in html  # no erased data repeated
    # it says which systems were searched and which were gone through by hand, never a bare "nothing kept"
    assert {s["status"] for s in certificate["systems"]} == {"searched", "checked_by_hand"}
    assert "Not searched automatically" in html and "Google Meet" in html and "Nothing about you is kept." not in html
    assert "Check by hand before you send the answer" in result.output


def test_cli_erase_without_approval_when_not_interactive_changes_nothing(sandbox):
    from typer.testing import CliRunner

    from vergeet.cli import app

    result = CliRunner().invoke(app, ["--config", sandbox.config.source, "erase", "06-87654321"])
    assert result.exit_code == 2 and "pass --approve" in result.output
    assert mutations(sandbox) == []
    with open_ledger(sandbox.config) as ledger:
        [request] = ledger.list_requests()
    assert request["status"] == "awaiting_approval"


def test_cli_erase_not_now_at_the_prompt_keeps_the_request_open_and_reject_needs_a_reason(sandbox, monkeypatch):
    from typer.testing import CliRunner

    from vergeet import cli

    monkeypatch.setattr(cli, "_interactive", lambda: True)
    runner = CliRunner()
    later = runner.invoke(cli.app, ["--config", sandbox.config.source, "erase", "lotte.dekker@example.nl"],
                          input="n\n")
    assert later.exit_code == 0 and "stays open" in later.output and mutations(sandbox) == []
    with open_ledger(sandbox.config) as ledger:
        [request] = ledger.list_requests()
    assert request["status"] == "awaiting_approval"
    again = runner.invoke(cli.app, ["--config", sandbox.config.source, "erase", "Lotte.Dekker@example.nl",
                                    "--received", (TODAY + timedelta(days=3)).isoformat()], input="n\n")
    assert again.exit_code == 0
    with open_ledger(sandbox.config) as ledger:
        [same] = ledger.list_requests()
    assert (same["id"], same["deadline"]) == (request["id"], request["deadline"])  # one request, its deadline

    refused = runner.invoke(cli.app, ["--config", sandbox.config.source, "erase", "lotte.dekker@example.nl",
                                      "--reject", "verzoek ingetrokken"])
    assert refused.exit_code == 0 and "rejected" in refused.output and mutations(sandbox) == []
    with open_ledger(sandbox.config) as ledger:
        [closed] = ledger.list_requests(open_only=False)
        history = [event["status"] for event in ledger.request_history(closed["id"])]
    assert (closed["status"], closed["status_note"]) == ("rejected", "verzoek ingetrokken")
    assert history == ["received", "awaiting_approval", "awaiting_approval", "rejected"]
    blank = runner.invoke(cli.app, ["--config", sandbox.config.source, "erase", "lotte.dekker@example.nl",
                                    "--reject", " "])
    assert blank.exit_code == 2 and "give the reason" in blank.output


def test_what_ends_with_a_deleted_customer_is_shown_as_ending_not_as_kept(sandbox):
    """The owner approves what the certificate will say: Lotte's Mollie mandate and subscription end with her
    customer, in the approval table and the Prefect artifact alike; the invoice and payment stay by law."""
    from rich.console import Console

    from flows.erasure_request import plan_markdown
    from vergeet.plan_text import erasure_text

    _, ledger, plan = plan_for(sandbox)
    with ledger:
        ended = plan.ended(RULES)
        assert sorted(key.split("/")[1] for key in ended) == ["mandate", "subscription"]
        assert {parent.split("/")[1] for parent in ended.values()} == {"customer"}
        kept = plan.kept(RULES)
        assert not kept["key"].isin(list(ended)).any()
        assert set(kept["record_type"]) == {"contact", "sales_invoice", "payment"}
        console = Console(record=True, width=200)
        console.print(erasure_text(plan, RULES, "en"))
        text = console.export_text()
        erased_part, kept_part = text.split("Stays (3):")
        assert erased_part.count("ends with customer") == 2 and "Mollie mandate" in erased_part
        assert "mandate" not in kept_part and "Moneybird invoice" in kept_part and "F2024-001" in kept_part
        assert "7 years after the document's date" in kept_part and "document_retention" not in text
        markdown = plan_markdown(plan, RULES)
        assert markdown.count("ends with") == 2 and "mandate" not in markdown.split("Kept (by law")[1]
