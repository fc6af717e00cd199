"""Access requests: `vergeet find` and the subject-access flow against the sandbox of all four vendors."""
from __future__ import annotations

import json
import re
from collections import Counter
from datetime import date
from pathlib import Path
from urllib.parse import unquote

import pytest
from dateutil.relativedelta import relativedelta
from typer.testing import CliRunner

from connectors import SYSTEMS as CONNECTED
from connectors.base import Identifiers, Record
from vergeet import access, pipeline
from vergeet.cli import app
from vergeet.config import load_config
from vergeet.connect import build_connectors
from vergeet.decide import decide
from vergeet.errors import BadInput
from vergeet.rules import load_rules
from vergeet.sandbox import Sandbox
from vergeet.sandbox.population import Person, Population, generate, phone_formats

#: the systems the people `everywhere` are in; the sandbox connects all of `CONNECTED`
SYSTEMS = ("moneybird", "mailblue", "mollie", "google_calendar")
FAST = {system: (1000, 1.0) for system in CONNECTED}
RECORD_KEYS = {"system", "record_type", "record_id", "label", "data", "purpose", "legal_basis", "retention"}


@pytest.fixture(scope="module")
def population() -> Population:
    return generate(60, seed=7, today=date.today())


@pytest.fixture(scope="module")
def sandbox(population):
    with Sandbox(population, rates=FAST) as sandbox:
        yield sandbox


@pytest.fixture(scope="module")
def config_path(sandbox, tmp_path_factory) -> Path:
    return sandbox.write_config(tmp_path_factory.mktemp("access"), client_rates=FAST)


@pytest.fixture(scope="module")
def connectors(config_path):
    return build_connectors(load_config(str(config_path)))


@pytest.fixture(scope="module")
def rules():
    return load_rules()


@pytest.fixture(scope="module")
def everything(connectors, rules):
    """The identity view over a full read of every system: what a search must come back with."""
    return pipeline.identity_view(pipeline.pull_all(connectors), rules)


def everywhere(population: Population) -> list[Person]:
    """People the sandbox has in all four systems."""
    return [p for p in population.people if p.moneybird and p.mailblue and p.mollie and p.calendar]


def keys_of(view, person: Person) -> set[str]:
    people = view.people_with_identifiers([("email", person.email)])
    return set(view.mentions.loc[view.mentions["person"].isin(people), "key"])


def other_notation(person: Person) -> str:
    """The person's phone number written unlike Moneybird has it."""
    return next(f for f in phone_formats(person.phone) if f != person.moneybird.phone)


def kinds(keys: set[str]) -> Counter:
    return Counter(tuple(key.split("/", 2)[:2]) for key in keys)


def run(*args: str):
    return CliRunner().invoke(app, [str(a) for a in args])


def listed_requests(config_path: Path) -> dict[str, str]:
    """`vergeet requests list` by request id: each request's two lines as one."""
    text = run("--config", config_path, "requests", "list").stdout
    return {m.group(1): m.group(0) for m in re.finditer(r"^(\d+)  .*\n    .*$", text, re.M)}


# -- finding --------------------------------------------------------------------------------


def test_a_person_in_all_four_systems_is_found_completely(population, connectors, rules, everything):
    people = [p for p in everywhere(population) if p.phone and p.moneybird.phone]
    assert len(people) >= 2
    for person in people:
        asked = Identifiers(emails=(f"  {person.email.upper()} ",), phones=(other_notation(person),))
        found = access.find_person(connectors, asked, rules)

        keys = set(found.mentions["key"])
        assert keys == keys_of(everything, person)
        documents = Counter(d.kind for d in person.moneybird.documents)
        expected = {("moneybird", "contact"): 1, ("moneybird", "sales_invoice"): documents["invoice"],
                    ("moneybird", "estimate"): documents["estimate"], ("mailblue", "contact"): 1,
                    ("mollie", "customer"): 1, ("mollie", "payment"): len(person.mollie.payments),
                    ("google_calendar", "event"): len(person.calendar.appointments)}
        assert {kind: kinds(keys)[kind] for kind in expected} == expected
        assert found.possible_matches() == []


def test_a_phone_number_alone_finds_the_rest_through_the_email_on_the_invoicing_contact(
        population, connectors, rules, everything):
    person = next(p for p in everywhere(population) if p.phone and p.moneybird.phone)
    found = access.find_person(connectors, Identifiers(phones=(other_notation(person),)), rules)

    assert found.rounds == 2  # round 1: Moneybird by phone; round 2: its e-mail everywhere; then nothing new
    assert person.email in found.searched.emails
    assert set(found.mentions["key"]) == keys_of(everything, person)
    assert set(found.mentions["system"]) == set(SYSTEMS)


def test_a_namesake_is_only_a_possible_match(population, connectors, rules, everything):
    person = next(p for p in everywhere(population)
                  if any(o.name == p.name and o.key != p.key for o in population.people))
    namesakes = [o for o in population.people if o.name == person.name and o.key != person.key]
    found = access.find_person(connectors, Identifiers(emails=(person.email,), names=(person.name,)), rules)
    report = access.access_report(found, rules, subject=Identifiers(emails=(person.email,)), as_of=date.today())

    their_keys = set().union(*(keys_of(everything, o) for o in namesakes))
    # a recording where someone of this name took part as a guest (no address shown) may be either's, or another's
    guest_of = {str(r.ref) for r in connectors["zoom"].records() if not r.emails
                and person.name.casefold() in {p["name"].casefold() for p in r.fields["participants"]}}
    possible = {f"{m['system']}/{m['record_type']}/{m['record_id']}" for m in report["possible_matches"]}
    assert their_keys and guest_of and possible == their_keys | guest_of
    # (a guest recording named after its first guest, someone else, is a text-search hit)
    assert {m["found_by"] for m in report["possible_matches"]
            if f"{m['system']}/{m['record_type']}/{m['record_id']}" not in guest_of} == {"same_name"}
    assert {f"{r['system']}/{r['record_type']}/{r['record_id']}" for r in report["records"]} == \
        keys_of(everything, person)
    records = json.dumps(report["records"]).lower()
    assert all(o.email not in records for o in namesakes)


def test_vendor_calls_grow_with_the_identifiers_and_never_list_a_whole_system(sandbox, population, connectors,
                                                                             rules):
    person = next(p for p in everywhere(population) if p.phone and p.moneybird.phone)
    before = {system: len(fake.requests) for system, fake in sandbox.fakes.items()}
    found = access.find_person(connectors, Identifiers(emails=(person.email,), phones=(person.phone,),
                                                       names=(person.name,)), rules)
    calls = {system: fake.requests[before[system]:] for system, fake in sandbox.fakes.items()}

    searched = sum(map(len, (found.searched.emails, found.searched.phones, found.searched.names)))
    hits = Counter(record.system for record in found.hits.values())
    for system, requests in calls.items():
        # per identifier: a query (two for a phone); per hit: its details or documents; one token exchange
        assert len(requests) <= 2 * searched + 2 * hits[system] + found.rounds, system
    listings = [(system, r.path, r.query) for system, requests in calls.items() for r in requests if r.method == "GET"
                and r.path.endswith(("/contacts.json", "/contacts/filter.json", "/sales_invoices.json",
                                     "/estimates.json", "/contacts", "/events"))]
    assert listings
    for system, path, query in listings:
        assert any(term in unquote(query) for term in ("query=", "contact_id:", "email=", "search=", "q=")), path


def test_the_search_stops_after_the_last_round_and_says_how_much_is_left(population, connectors, rules):
    person = next(p for p in everywhere(population) if p.phone and p.moneybird.phone)
    found = access.find_person(connectors, Identifiers(phones=(person.phone,)), rules, max_rounds=1)
    assert found.rounds == 1 and found.unsearched == 1  # the e-mail on the Moneybird contact


# -- the report -------------------------------------------------------------------------------


def test_every_record_has_its_purpose_legal_basis_and_retention_date(population, connectors, rules):
    today = date.today()
    recent = today - relativedelta(years=7)
    person = next(p for p in everywhere(population)
                  if any(d.kind == "invoice" and d.date > recent for d in p.moneybird.documents))
    found = access.find_person(connectors, Identifiers(emails=(person.email,)), rules)
    report = json.loads(access.report_json(access.access_report(
        found, rules, subject=Identifiers(emails=(person.email,)), as_of=today)))
    plan = decide(found.view, rules, today)

    assert {"subject", "generated_at", "records", "possible_matches", "systems", "rights"} <= set(report)
    assert report["subject"] == {"emails": [person.email], "phones": [], "names": []}
    assert len(report["records"]) == len(found.mentions)
    for record in report["records"]:
        assert set(record) == RECORD_KEYS
        assert "_match" not in record["data"] and record["data"]
        assert record["purpose"] and all(p["number"] and p["text"] and p["legal_basis"] in rules.legal_bases
                                         for p in record["purpose"])
        assert record["legal_basis"] and all(b["gdpr"].startswith("art. 6(1)") for b in record["legal_basis"])
        retention = record["retention"]
        assert retention["why"] and retention["rule_id"]
        assert retention["until"] or retention["exceptions"], record["record_id"]  # no end date only for a reason
        key = f"{record['system']}/{record['record_type']}/{record['record_id']}"
        kept = plan.kept[plan.kept["key"] == key]
        if len(kept) and retention["until"] and not retention["due"]:
            assert retention["until"] == kept["retained_until"].iloc[0].isoformat()
    invoices = [r for r in report["records"] if r["record_type"] == "sales_invoice" and not r["retention"]["due"]]
    assert invoices
    for invoice in invoices:
        issued = date.fromisoformat(invoice["data"]["invoice_date"])
        assert invoice["retention"]["until"] == (issued + relativedelta(years=7)).isoformat()
        assert [p["legal_basis"] for p in invoice["purpose"]] == ["legal_obligation"]
    systems = {s["system"]: s for s in report["systems"]}
    assert {k for k, s in systems.items() if s["status"] == "searched"} == set(CONNECTED)
    assert systems["google_calendar"]["may_leave_eea"]
    by_hand = {s["name"]: s["check"] for s in report["systems"] if s["status"] == "checked_by_hand"}
    assert {"Google Meet", "Boekhouder", "Google Analytics"} <= set(by_hand)
    assert all(by_hand.values())
    # the bookkeeper receives the invoicing system's data; WooCommerce shares a purpose but receives none of it
    assert [p["name"] for p in systems["moneybird"]["processors"]] == ["Moneybird", "Boekhouder"]
    assert [p["name"] for p in systems["mailblue"]["processors"]] == ["Mailblue"]
    assert {r["key"] for r in report["rights"]["available"]} >= {"access", "erasure", "portability"}


def test_a_group_session_shows_no_other_participant(rules):
    """A shared record is the person's too, but its other guests are not theirs to see."""
    anna, bram = "anna@example.nl", "bram@example.nl"
    event = Record("google_calendar", "event", "primary/e1", emails=(anna, bram), shared=True,
                   fields={"summary": "Groepssessie", "attendees": [{"email": anna, "displayName": "Anna"},
                                                                    {"email": bram, "displayName": "Bram de Wit"}]})
    contact = Record("mailblue", "contact", "7", emails=(anna,), first_name="Anna", fields={"email": anna})

    class Stub:
        def __init__(self, system, records):
            self.system, self._records = system, records

        def search(self, identifiers):
            return [r for r in self._records if set(r.emails) & set(identifiers.emails)]

    connectors = {"mailblue": Stub("mailblue", [contact]), "google_calendar": Stub("google_calendar", [event])}
    found = access.find_person(connectors, Identifiers(emails=(anna,)), rules)
    report = access.access_report(found, rules, subject=Identifiers(emails=(anna,)), as_of=date(2026, 1, 1))

    [shown] = [r for r in report["records"] if r["record_type"] == "event"]
    assert shown["data"]["attendees"][0] == {"email": anna, "displayName": "Anna"}
    assert "bram" not in json.dumps(report).lower()


@pytest.mark.parametrize("value", ["jan@", "12345", "Jan Jansen", "06-1234", "@example.nl"])
def test_an_identifier_that_is_neither_email_nor_phone_is_refused_without_repeating_it(value):
    with pytest.raises(BadInput) as refused:
        access.classify(["anna@example.nl", value])
    assert "identifier 2" in str(refused.value) and value not in str(refused.value)


def test_identifiers_in_common_notations_are_sorted_and_a_name_alone_is_refused():
    subject = access.classify([" Anna@Example.NL ", "06-12345678", "+31 35 123 4567"], ["  Anna  de  Jong "])
    assert subject == Identifiers(("Anna@Example.NL",), ("06-12345678", "+31 35 123 4567"), ("Anna de Jong",))
    assert access.normalise(subject).phones == ("+31612345678", "+31351234567")
    with pytest.raises(BadInput, match="name alone"):
        access.classify([], ["Anna de Jong"])
    with pytest.raises(BadInput, match="name 1 is not a name"):
        access.classify(["anna@example.nl"], ["<script>"])


# -- the command line -------------------------------------------------------------------------


def test_find_registers_the_request_once_with_hashed_identifiers_only(population, config_path):
    person = next(p for p in everywhere(population) if p.phone and p.moneybird.phone)
    first = run("--config", config_path, "find", person.email.upper(), other_notation(person),
                "--verified-by", "ID shown on a video call")
    assert first.exit_code == 0, first.output
    report = json.loads(first.stdout)
    assert report["request"]["deadline"] == (date.today() + relativedelta(weeks=4)).isoformat()
    again = run("--config", config_path, "find", person.email)
    assert json.loads(again.stdout)["request"]["id"] == report["request"]["id"]

    ledger = (config_path.parent / "ledger.db").read_bytes().lower()
    assert person.email.encode() not in ledger and person.email.split("@")[0].encode() not in ledger
    assert all(variant.encode() not in ledger for variant in phone_formats(person.phone))
    assert b"id shown on a video call" in ledger  # how identity was verified: kept, as free text

    listed = listed_requests(config_path)[str(report["request"]["id"])]
    assert "access, received" in listed and "28 days left" in listed and "received · " in listed
    assert "identity: ID shown on a video call" in listed


def test_find_writes_the_html_report_in_dutch_and_in_english(population, config_path, tmp_path):
    person = everywhere(population)[0]
    pages = {}
    for lang in ("nl", "en"):
        result = run("--config", config_path, "find", person.email, "--format", "html", "--lang", lang,
                     "--out", tmp_path / f"{lang}.html")
        assert result.exit_code == 0, result.output
        pages[lang] = (tmp_path / f"{lang}.html").read_text()
    for lang, page in pages.items():
        assert "<style>" in page and not any(tag in page for tag in ("<script", "<link", 'src="', "@import"))
        assert all(name in page for name in ("Moneybird", "Mailblue", "Mollie", "Google Calendar"))
        assert "Autoriteit Persoonsgegevens" in page and "info@jessworks.nl" in page and "art. 6(1)" in page
    assert all(text in pages["nl"] for text in ("Jouw rechten", "Een klacht indienen", "Wie deze gegevens ontvangt",
                                                "kan buiten de EER worden verwerkt", "Bewaard tot", "Doel"))
    assert all(text in pages["en"] for text in ("Your rights", "Making a complaint", "Who receives this data",
                                                "may be processed outside the EEA", "Kept until", "Purpose"))


def test_find_exit_codes(sandbox, population, config_path, tmp_path):
    email = everywhere(population)[0].email
    refused = run("--config", config_path, "find", email, "not an identifier")
    assert refused.exit_code == 2 and "identifier 2" in refused.output and "not an identifier" not in refused.output
    assert run("--config", config_path, "find", email, "--name", "R2-D2").exit_code == 2
    assert run("--config", config_path, "find", email, "--format", "pdf").exit_code == 2
    assert run("--config", config_path, "find", email, "--lang", "de").exit_code == 2
    assert run("--config", config_path, "find", email, "--received", "yesterday").exit_code == 2
    missing = run("--config", tmp_path / "missing.toml", "find", email)
    assert missing.exit_code == 2 and "cannot read the configuration" in missing.output

    sandbox.fakes["moneybird"].fail_next(1, status=401)
    failed = run("--config", config_path, "find", email)
    assert failed.exit_code == 1 and "could not search moneybird" in failed.output
    assert email not in failed.output.lower()


def test_requests_close_ends_an_access_request(population, config_path):
    person = everywhere(population)[-1]
    request_id = json.loads(run("--config", config_path, "find", person.email).stdout)["request"]["id"]
    assert str(request_id) in listed_requests(config_path)
    assert run("--config", config_path, "requests", "close", request_id, "--note", "report sent").exit_code == 0
    assert str(request_id) not in listed_requests(config_path)
    assert run("--config", config_path, "requests", "close", 9999).exit_code == 2


# -- the Prefect flow ---------------------------------------------------------------------------


def prefect_database_bytes() -> bytes:
    """Every byte of the Prefect server's SQLite files (the database and its write-ahead log), freed pages too."""
    import prefect.settings

    database = Path(prefect.settings.PREFECT_SERVER_DATABASE_CONNECTION_URL.value().split("///", 1)[1])
    return b"".join(path.read_bytes() for path in (database, Path(f"{database}-wal")) if path.exists())


def assert_not_in_prefect(person: Person) -> None:
    from prefect.logging.handlers import APILogHandler

    APILogHandler().flush()
    stored = prefect_database_bytes().lower()
    assert b"access-request" in stored  # the artifacts and the runs are there ...
    for secret in (person.email, person.name, *phone_formats(person.phone)):
        assert secret.lower().encode() not in stored, "found in Prefect's database"  # ... the person is not


def test_the_flow_writes_the_report_and_keeps_identifiers_out_of_prefect(prefect_harness, population, config_path,
                                                                        tmp_path):
    from prefect.blocks.system import Secret
    from prefect.client.orchestration import get_client

    from flows.subject_access import run_subject_access, subject_access

    person = next(p for p in everywhere(population) if p.phone and p.moneybird.phone)
    first = run_subject_access([person.email.upper()], [person.name], config_path=str(config_path),
                               out_dir=str(tmp_path), verified_by="ID checked")
    report = json.loads(Path(first["files"][0]).read_text())
    assert first["records"] == len(report["records"]) > 0 and Path(first["files"][1]).is_file()
    assert {Path(f).stat().st_mode & 0o777 for f in first["files"]} == {0o600}  # personal data: the owner's only
    by_hand = [entry for entry in report["systems"] if entry["status"] != "searched"]
    assert by_hand and all(entry["task"]["status"] == "open" for entry in by_hand)  # tasks made, none settled

    Secret(value=f"{other_notation(person)}\n{person.email}").save("access-request-test")  # as typed in the UI
    second = subject_access(identifiers_block="access-request-test", config_path=str(config_path),
                            out_dir=str(tmp_path))
    assert second["request_id"] == first["request_id"] and second["records"] == first["records"]
    with pytest.raises(ValueError):
        Secret.load("access-request-test")  # read once, then deleted

    with get_client(sync_client=True) as client:
        parameters = [run.parameters for run in client.read_flow_runs()]
        blocks = [b.name for b in client.read_block_documents() if (b.name or "").startswith("vergeet-request-")]
    assert any(p.get("identifiers_block", "").startswith("vergeet-request-") for p in parameters)
    assert blocks == []  # the stashed block went with its run
    assert_not_in_prefect(person)


def test_a_deployed_access_request_takes_a_block_name_only_and_leaves_no_identifier_in_prefect(
        prefect_harness, population, config_path, tmp_path):
    """The deployment's form has no field for identifiers (a `SecretStr` field there would be stored as typed);
    a run started as the UI starts one reads them from a Secret block and leaves nothing of them behind."""
    from prefect.blocks.system import Secret
    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment
    from prefect.flow_engine import run_flow_in_subprocess

    from flows.subject_access import subject_access

    deployment_id = subject_access.to_deployment(name="access-request-test").apply()
    with get_client(sync_client=True) as client:
        schema = client.read_deployment(deployment_id).parameter_openapi_schema
    assert schema["required"] == ["identifiers_block"]
    assert not [name for name in schema["properties"] if "identifier" in name and name != "identifiers_block"]

    person = [p for p in everywhere(population) if p.phone][-1]
    Secret(value=f"{person.email}\n{person.phone}").save("request-from-the-ui")
    flow_run = run_deployment("subject-access/access-request-test", timeout=0, parameters={
        "identifiers_block": "request-from-the-ui", "config_path": str(config_path), "out_dir": str(tmp_path)})
    process = run_flow_in_subprocess(subject_access, flow_run=flow_run, parameters=flow_run.parameters)
    process.join(180)
    with get_client(sync_client=True) as client:
        state = client.read_flow_run(flow_run.id).state
    assert state.is_completed(), state
    [report_file] = tmp_path.glob("access-request-*.json")
    assert json.loads(report_file.read_text())["records"]
    with pytest.raises(ValueError):
        Secret.load("request-from-the-ui")
    assert_not_in_prefect(person)


def test_someone_in_no_system_gets_a_report_saying_so(config_path, tmp_path):
    result = run("--config", config_path, "find", "nobody.here@example.org", "+31 6 9999 0000")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    searched = [s for s in report["systems"] if s["status"] == "searched"]
    assert report["records"] == [] and len(searched) == len(CONNECTED) and all(s["records"] == 0 for s in searched)
    unsearched = {s["name"] for s in report["systems"] if s["status"] != "searched"}
    assert {"Google Meet", "Boekhouder", "Google Analytics"} <= unsearched
    assert "Check by hand before you send the answer" in result.stderr and "Google Meet:" in result.stderr
    for lang, heading, bookkeeper in (("nl", "Niet automatisch doorzocht", "Boekhouder"),
                                      ("en", "Not searched automatically", "Bookkeeper")):
        page = tmp_path / f"none-{lang}.html"
        assert run("--config", config_path, "find", "nobody.here@example.org", "--format", "html",
                   "--lang", lang, "--out", page).exit_code == 0
        html = page.read_text()
        assert heading in html and "Google Meet" in html and "Google Analytics" in html and bookkeeper in html


def test_a_document_with_personal_data_is_readable_by_its_owner_only_even_over_an_older_file(tmp_path):
    page = tmp_path / "report.html"
    page.write_text("older")
    page.chmod(0o644)
    access.write_private(page, "new")
    assert (page.read_text(), page.stat().st_mode & 0o777) == ("new", 0o600)


def test_a_test_search_registers_no_request_and_a_label_tells_requests_apart(population, config_path, tmp_path):
    person = everywhere(population)[1]
    before = listed_requests(config_path)
    tried = run("--config", config_path, "find", person.email, "--test")
    assert tried.exit_code == 0 and json.loads(tried.stdout)["request"] is None
    assert "no request registered" in tried.stderr and listed_requests(config_path) == before
    labelled = run("--config", config_path, "find", person.email, "--label", "mail van 1 december")
    request_id = str(json.loads(labelled.stdout)["request"]["id"])
    assert request_id not in before and "mail van 1 december" in listed_requests(config_path)[request_id]


def test_find_speaks_the_configured_language_at_the_terminal(population, config_path, tmp_path):
    dutch = config_path.parent / "dutch.toml"  # beside it: the key file's path is relative to the config
    dutch.write_text('language = "nl"\n' + config_path.read_text())
    person = everywhere(population)[0]
    result = run("--config", dutch, "find", person.email, "--test")
    said = " ".join(result.stderr.split())
    assert result.exit_code == 0 and "Proefzoekopdracht" in said and "Controleer met de hand" in said
    assert "niet gekoppeld" in said or "Boekhouder" in said
    assert "Check by hand" not in said and "Records found" not in said
