"""Tasks by hand (issue 19): every place an access or erasure request cannot reach by API is a task in the ledger
until the owner marks it; the certificate says honestly which were gone through, the digest names those of
requests near their deadline, and `vergeet tasks` lists them beside what the vendors' APIs handed over."""
from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from connectors.base import ActionResult, Changes, Identifiers, Known, Outcome, Record, RecordRef
from vergeet import erasure, notify, pipeline, tasks
from vergeet.cli import app
from vergeet.config import load_config
from vergeet.ledger import Ledger, LedgerError
from vergeet.rules import load_rules

RULES = load_rules(Path(__file__).resolve().parents[1] / "retention_rules.toml")
PEPPER = "Qw7-rT2y_Ui9Op4aS1dF6gH3jK8lZ5xC0vB"
TODAY = date.today()
#: the places of the rules file a request cannot search: processors without a system, then unconnected systems
BY_HAND = {key for key, processor in RULES.processors.items() if processor.system is None}


class Moneybird:
    """One old contact whose delete the API cannot do (a task the vendor hands over), and no search hits."""

    system = "moneybird"

    def changes(self, cursor: Mapping[str, Any] | None, known: Known) -> Changes:
        old = datetime(2019, 1, 1, tzinfo=timezone.utc)
        return Changes([Record("moneybird", "contact", "c1", emails=("jan@example.nl",), first_name="Jan",
                               created_at=old, updated_at=old)], cursor={}, full=True)

    def search(self, identifiers: Identifiers) -> Iterator[Record]:
        return iter(())

    def delete(self, ref: RecordRef) -> ActionResult:
        return ActionResult(Outcome.NOT_SUPPORTED, "archive it in Moneybird: documents refer to it")

    def anonymise(self, ref: RecordRef, fields: Sequence[str]) -> ActionResult:
        raise AssertionError("not planned here")


@pytest.fixture
def config(tmp_path) -> Path:
    path = tmp_path / "vergeet.toml"
    path.write_text(f'''language = "en"
[store]
url = "sqlite:///ledger.db"
pepper = "{PEPPER}"

[connectors.moneybird]
base_url = "http://127.0.0.1:9/api/v2"
administration_id = "1"
token = "not-used"
''', encoding="utf-8")
    return path


def ledger_of(config: Path) -> Ledger:
    return Ledger(f"sqlite:///{config.parent / 'ledger.db'}", PEPPER.encode())


def vergeet(config: Path, *arguments: str):
    return CliRunner().invoke(app, ["--config", str(config), *arguments], terminal_width=200)


def request(ledger: Ledger, kind: str = "erasure", scope: str = "all", received: date = TODAY) -> dict:
    request_id = ledger.register_request(kind, [ledger.hash_identifier("email", f"{kind}-{scope}@example.org")],
                                         received=received, scope=scope)
    return ledger.get_request(request_id)


def test_each_place_not_searched_is_one_task_made_once_and_a_narrower_erasure_gets_none(config):
    with ledger_of(config) as ledger:
        full = request(ledger)
        made = tasks.open_for(ledger, full, RULES, ["moneybird", "mollie"])
        again = tasks.open_for(ledger, full, RULES, ["moneybird", "mollie"])  # a rerun answers the same request
        narrow = tasks.open_for(ledger, request(ledger, scope="newsletter"), RULES, ["mailblue"])
        access = tasks.open_for(ledger, request(ledger, kind="access"), RULES, list(RULES.systems))
    unsearched = set(RULES.systems) - {"moneybird", "mollie"}
    assert {"mailblue", "google_calendar"} <= unsearched
    assert {t["subject"] for t in made} == BY_HAND | unsearched and len(made) == len(BY_HAND) + len(unsearched)
    assert [t["id"] for t in again] == [t["id"] for t in made]
    assert narrow == [] and {t["subject"] for t in access} == BY_HAND
    keys = {t["subject"]: t["check_key"] for t in made}
    assert keys["bookkeeping"] == "processors.bookkeeping.check" and keys["mailblue"] == "not_connected"
    assert {t["status"] for t in made} == {"open"}


def test_a_task_is_marked_with_its_history_appended_and_nonsense_refused(config):
    with ledger_of(config) as ledger:
        task = tasks.open_for(ledger, request(ledger), RULES, list(RULES.systems))[0]
        ledger.set_task_status(task["id"], "done", "asked by phone")
        with pytest.raises(LedgerError, match="done already"):
            ledger.set_task_status(task["id"], "done")
        ledger.set_task_status(task["id"], "open", "the answer was about someone else")
        with pytest.raises(LedgerError, match="needs the reason"):
            ledger.set_task_status(task["id"], "not_applicable", "  ")
        ledger.set_task_status(task["id"], "not_applicable", "never held any")
        history = ledger.task_history(task["id"])
        [now] = [t for t in ledger.tasks() if t["id"] == task["id"]]
        with pytest.raises(LedgerError, match="no task 999"):
            ledger.set_task_status(999, "done")
    assert [(e["status"], e["note"]) for e in history] == [
        ("open", ""), ("done", "asked by phone"), ("open", "the answer was about someone else"),
        ("not_applicable", "never held any")]
    assert now["status"] == "not_applicable" and now["done_at"] is not None and now["note"] == "never held any"


def test_a_ledger_from_before_tasks_gets_their_tables(config):
    with ledger_of(config) as ledger:
        request(ledger)
    engine = sa.create_engine(f"sqlite:///{config.parent / 'ledger.db'}")
    with engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE task_events"))
        conn.execute(sa.text("DROP TABLE request_tasks"))
    engine.dispose()
    with ledger_of(config) as ledger:
        made = tasks.open_for(ledger, ledger.get_request(1), RULES, list(RULES.systems))
    assert {t["subject"] for t in made} == BY_HAND


def test_the_tasks_command_lists_marks_and_refuses_what_makes_no_sense(config):
    with ledger_of(config) as ledger:
        made = tasks.open_for(ledger, request(ledger), RULES, ["moneybird"])
    by_subject = {t["subject"]: t["id"] for t in made}
    listed = vergeet(config, "tasks")
    assert listed.exit_code == 0, listed.output
    assert f"{by_subject['bookkeeping']}  Bookkeeper: Ask the bookkeeper" in listed.output
    assert "Facebook (Meta) Conversion API and pixel: Check in Meta Events Manager" in listed.output
    assert f"request 1 (erasure), due {TODAY + timedelta(weeks=4)} · open" in listed.output

    done = vergeet(config, "tasks", "done", str(by_subject["bookkeeping"]), "--note", "mailed the bookkeeper")
    assert done.exit_code == 0 and "Bookkeeper, request 1): done" in done.output
    assert vergeet(config, "tasks", "done", str(by_subject["bookkeeping"])).exit_code == 2
    missing_reason = vergeet(config, "tasks", "na", str(by_subject["facebook"]))
    assert missing_reason.exit_code == 2
    assert vergeet(config, "tasks", "na", str(by_subject["facebook"]), "--note", "").exit_code == 2
    assert vergeet(config, "tasks", "done", "999").exit_code == 2

    still_open = vergeet(config, "tasks").output
    everything = vergeet(config, "tasks", "--all", "--request", "1").output
    assert "Ask the bookkeeper" not in still_open and "Ask the bookkeeper" in everything
    assert f"done {TODAY:%Y-%m-%d}: mailed the bookkeeper" in everything
    assert vergeet(config, "tasks", "--request", "2").output.strip() == "No open tasks by hand."


def test_closing_an_access_request_with_open_tasks_warns_and_without_them_does_not(config):
    with ledger_of(config) as ledger:
        first = request(ledger, kind="access")
        made = tasks.open_for(ledger, first, RULES, list(RULES.systems))
        second = request(ledger, kind="access", scope="newsletter")
    closed = vergeet(config, "requests", "close", str(first["id"]))
    assert closed.exit_code == 0 and f"{len(made)} task(s) by hand of request {first['id']} are still open" \
        in closed.output
    quiet = vergeet(config, "requests", "close", str(second["id"]))
    assert quiet.exit_code == 0 and "warning" not in quiet.output


def test_settling_the_last_task_says_so_and_how_to_renew_the_certificate(config):
    with ledger_of(config) as ledger:
        made = tasks.open_for(ledger, request(ledger), RULES, list(RULES.systems))
    *first, last = [t["id"] for t in made]
    for task_id in first:
        assert "settled" not in vergeet(config, "tasks", "done", str(task_id)).output
    output = vergeet(config, "tasks", "na", str(last), "--note", "no pixel on the site").output
    assert "Every task by hand of request 1 is settled." in output
    assert "vergeet tasks certificate erasure-request-1.json" in output


def test_tasks_lists_what_a_vendor_handed_over_beside_the_requests(config):
    connectors = {"moneybird": Moneybird()}
    with ledger_of(config) as ledger:
        view = pipeline.identity_view(pipeline.sync_all(connectors, ledger, full=True), RULES)
        pipeline.execute(ledger, pipeline.store_plan(ledger, pipeline.make_plan(view, RULES, TODAY, ledger)),
                         connectors)
    output = vergeet(config, "tasks").output
    assert "the vendor's API cannot do these" in output
    assert f"moneybird/contact/c1 (delete, since {TODAY:%Y-%m-%d}): archive it in Moneybird" in output
    assert "jan@example.nl" not in output and "Jan" not in output


def test_the_digest_names_open_tasks_of_requests_near_their_deadline(config):
    with ledger_of(config) as ledger:
        near = request(ledger, received=TODAY - timedelta(days=25))  # due in 3 days
        far = request(ledger, kind="access", received=TODAY)
        near_tasks = tasks.open_for(ledger, near, RULES, list(RULES.systems))
        tasks.open_for(ledger, far, RULES, list(RULES.systems))
        ledger.set_task_status(near_tasks[0]["id"], "done")
        digest = notify.collect(load_config(str(config)), ledger, RULES, TODAY)
    text = digest.text()
    assert len(digest.by_hand) == len(near_tasks) - 1 and "by hand" in digest.subject()
    assert f"Tasks by hand of requests due within 5 days, {len(near_tasks) - 1} tasks" in text
    shown = {task_id for task_id, _, _, _ in digest.by_hand}
    assert near_tasks[0]["id"] not in shown and all(request_id == near["id"] for _, request_id, _, _ in digest.by_hand)
    bookkeeper = next(t for t in near_tasks if t["subject"] == "bookkeeping")
    assert (f"task {bookkeeper['id']} (request {near['id']}, due {near['deadline']}, 3 days left): Bookkeeper: "
            "Ask the bookkeeper") in text


def certificate_of(config: Path, ledger: Ledger, plan: erasure.ErasurePlan) -> dict:
    return erasure.certificate(ledger, plan, RULES, None, [], erasure.finish(ledger, plan, None, []), "en")


def empty_plan(ledger: Ledger, scope: str = "all") -> erasure.ErasurePlan:
    """An erasure that found nothing in the one system searched (Moneybird): only tasks by hand are left."""
    from vergeet.access import classify

    person = classify(["nobody@example.org"])
    registered = erasure.register(ledger, person, RULES, received=TODAY, verified_by="ID seen", scope=[scope])
    return erasure.plan_erasure({"moneybird": Moneybird()}, person, RULES, ledger, registered, as_of=TODAY,
                                systems=None if scope == "all" else frozenset({"moneybird"}))


def test_the_certificate_claims_no_check_by_hand_that_is_still_open_and_is_renewed_when_done(config, tmp_path):
    with ledger_of(config) as ledger:
        plan = empty_plan(ledger)
        certificate = certificate_of(config, ledger, plan)
    assert {t["subject"] for t in plan.by_hand} == BY_HAND | (set(RULES.systems) - {"moneybird"})
    assert certificate["request"]["status"] == "completed" and certificate["complete"] is False
    assert certificate["by_hand"] == {"open": len(plan.by_hand), "done": 0, "not_applicable": 0}
    unsearched = [s for s in certificate["systems"] if s["status"] != "searched"]
    assert {s["task"]["status"] for s in unsearched} == {"open"}
    [path, page] = erasure.write_certificate(certificate, tmp_path / "out")
    html = page.read_text()
    assert f"completed in the systems searched; {len(plan.by_hand)} check(s) by hand still open" in html
    assert "does not confirm erasure there yet" in html and "gone through by hand on" not in html
    assert "(recipient: measuring advertising" in html and "Check in Meta Events Manager" in html

    ids = {t["subject"]: t["id"] for t in plan.by_hand}
    for subject, task_id in ids.items():
        arguments = ("na", str(task_id), "--note", "no pixel") if subject == "facebook" else ("done", str(task_id))
        assert vergeet(config, "tasks", *arguments).exit_code == 0
    renewed = vergeet(config, "tasks", "certificate", str(path))
    assert renewed.exit_code == 0, renewed.output
    certificate = json.loads(path.read_text())
    html = page.read_text()
    assert certificate["complete"] is True and certificate["by_hand"]["open"] == 0
    assert f"gone through by hand on {TODAY.day}" in html and "gone through by hand: not applicable" in html
    assert "still open" not in html and "not yet gone through by hand" not in html
    assert "no pixel" not in html  # the owner's notes stay in the ledger


def test_a_narrower_erasure_says_the_places_by_hand_are_outside_it(config, tmp_path):
    with ledger_of(config) as ledger:
        plan = empty_plan(ledger, scope="moneybird")
        certificate = certificate_of(config, ledger, plan)
    assert plan.by_hand == [] and certificate["complete"] is True
    html = erasure.write_certificate(certificate, tmp_path)[1].read_text()
    assert "outside this request" in html and "not yet gone through by hand" not in html


def test_a_certificate_that_is_not_one_is_refused(config, tmp_path):
    other = tmp_path / "other.json"
    other.write_text('{"format": "vergeet-access-report/1"}')
    assert vergeet(config, "tasks", "certificate", str(other)).exit_code == 2
    assert vergeet(config, "tasks", "certificate", str(tmp_path / "missing.json")).exit_code == 2


def test_the_access_report_says_per_place_by_hand_whether_it_was_gone_through(config):
    from vergeet import access

    person = access.classify(["nobody@example.org"])
    connectors = {"moneybird": Moneybird()}
    with ledger_of(config) as ledger:
        registered = access.register_request(ledger, person, RULES, received=TODAY)
        found = access.find_person(connectors, person, RULES, ledger=ledger)

        def report() -> dict:
            by_hand = tasks.open_for(ledger, registered, RULES, found.systems)
            return access.access_report(found, RULES, subject=person, as_of=TODAY, lang="nl", request=registered,
                                        tasks=tasks.public(by_hand))

        before = report()
        bookkeeper = next(t for t in ledger.tasks() if t["subject"] == "bookkeeping")
        ledger.set_task_status(bookkeeper["id"], "done", "gemaild")
        after = report()
    entry = {s["system"]: s for s in after["systems"]}
    assert entry["bookkeeping"]["task"]["status"] == "done" and entry["google_analytics"]["task"]["status"] == "open"
    assert entry["mailblue"]["status"] == "not_connected" and entry["mailblue"]["task"]["status"] == "open"
    assert "gemaild" not in json.dumps(after)
    html_before, html_after = access.render_html(before), access.render_html(after)
    assert "met de hand nagelopen op" not in html_before and "nog niet met de hand nagelopen" in html_before
    flat = " ".join(html_after.split())
    assert f'Boekhouder <span class="muted">(boekhouding)</span>: met de hand nagelopen op {TODAY.day} ' in flat
    assert 'Google Analytics <span class="muted">(websitestatistieken (analytische cookies))</span>: nog niet met' \
        in flat
