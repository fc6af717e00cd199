"""The purge's plan and outcome in words (issue 17): counts that add up on the breaker's own denominators,
durations and reasons in words in Dutch and English, whole record ids, and JSON for scripts."""
from __future__ import annotations

import json
import re
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from rich.console import Console
from typer.testing import CliRunner

from test_erasure import FAST
from vergeet import pipeline
from vergeet.cli import app
from vergeet.config import load_config
from vergeet.connect import build_connectors, open_ledger
from vergeet.plan_text import (RecordNamer, choose_language, counted, next_scheduled_night, plan_json, plan_text,
                               system_counts)
from vergeet.rules import load_rules
from vergeet.sandbox import Sandbox
from vergeet.sandbox.population import generate

RULES = load_rules()
TODAY = date.today()
CODES = ("document_retention", "active_consent", "running_contract", "period over", "P1Y", "P7Y", "P0D",
         "google_calendar", "sales_invoice", "moneybird-contact-1y", "…")


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """The demo's population read in full (a dry run), its plan and the sandbox's config."""
    with Sandbox(generate(60, seed=7, today=TODAY), rates=FAST) as sandbox:
        path = sandbox.write_config(tmp_path_factory.mktemp("plan"), client_rates=FAST)
        config = load_config(str(path))
        records = pipeline.pull_all(build_connectors(config))
        view = pipeline.identity_view(records, RULES)
        with open_ledger(config) as ledger:
            plan = pipeline.make_plan(view, RULES, TODAY, ledger)
        yield {"plan": plan, "view": view, "records": records, "config": path, "sandbox": sandbox}


def rendered(demo, lang: str, width: int) -> str:
    console = Console(width=width, record=True, color_system=None)
    read = {str(r.ref): r for found in demo["records"].values() for r in found}
    console.print(plan_text(demo["plan"], RULES, lang, applying=False, names=RecordNamer(demo["view"], read, lang),
                            max_delete_share=0.2))
    return console.export_text()


@pytest.mark.parametrize("lang", ["nl", "en"])
def test_every_systems_records_add_up_on_the_breakers_denominator(demo, lang):
    plan = demo["plan"]
    for counts in system_counts(plan, RULES, lang):
        assert counts.deleted + counts.anonymised + sum(counts.staying.values()) == counts.records
        assert counts.records == plan.records_per_system[counts.system]
        assert plan.delete_share()[counts.system] == pytest.approx(counts.deleted / counts.records)


@pytest.mark.parametrize("width", [80, 120])
@pytest.mark.parametrize("lang", ["nl", "en"])
def test_the_plan_reads_in_words_with_whole_ids_at_any_width(demo, lang, width):
    text = rendered(demo, lang, width)
    assert [code for code in CODES if code in text] == []
    assert max(len(line) for line in text.splitlines()) <= width
    flat = " ".join(text.split())
    for row in demo["plan"].actions.drop_duplicates("key").groupby(["system", "action"]).head(1).itertuples():
        assert str(row.record_id) in flat.replace(" ", "") or str(row.record_id) in flat
    period = "1 jaar na het laatste contact" if lang == "nl" else "1 year after the last contact"
    assert period in flat
    assert ("factuur of offerte jonger dan 7 jaar" if lang == "nl" else "invoice or quote younger than 7 years") \
        in flat
    assert re.search(r"\w\*\*\*@\w\*\*\*\.", flat)  # whose records, masked
    for person in demo["sandbox"].population.people:
        assert person.email not in flat


def test_contacts_come_before_invoices_and_the_breaker_names_its_numbers(demo):
    text = " ".join(rendered(demo, "en", 120).split())
    moneybird = text[text.index("Moneybird:"):]
    assert moneybird.index(" contacts, the first 3") < moneybird.index(" invoices, the first 3")
    over = re.search(r"Over the 20% limit: (.*)\.", text).group(1)
    for system, share in demo["plan"].delete_share().items():
        if share > 0.2:
            assert f"{RULES.system_name(system)} {share:.0%}" in over


def test_plural_forms_and_the_language_default():
    assert (counted(1, "sales_invoice", "nl"), counted(2, "sales_invoice", "nl")) == ("1 factuur", "2 facturen")
    assert (counted(1, "event", "en"), counted(3, "event", "en")) == ("1 appointment", "3 appointments")
    assert choose_language("en", "nl") == "en" and choose_language(None, "nl") == "nl"


def test_the_json_plan_is_for_scripts_and_names_no_one(demo):
    data = plan_json(demo["plan"], RULES, applying=False, max_delete_share=0.2)
    assert len(data["actions"]) == len(demo["plan"].actions)
    assert all(s["delete"] + s["anonymise"] + sum(s["staying"].values()) == s["records"] for s in data["systems"])
    assert "***" not in json.dumps(data)
    result = CliRunner().invoke(app, ["--config", str(demo["config"]), "purge", "--format", "json"])
    assert result.exit_code == 0
    assert json.loads(result.stdout)["format"] == "vergeet-plan/1"


def test_the_next_night_comes_from_the_deployments_schedule():
    repo = Path(__file__).resolve().parents[1]
    after = datetime(2026, 12, 3, 2, 0, tzinfo=ZoneInfo("Europe/Amsterdam"))
    when, source = next_scheduled_night([repo], after=after)
    assert (when.date(), f"{when:%H:%M}", source) == (date(2026, 12, 3), "03:00", str(repo / "prefect.yaml"))
    when, _ = next_scheduled_night([repo], after=after.replace(hour=4))
    assert when.date() == date(2026, 12, 4)
    assert next_scheduled_night([repo / "tests"]) is None


def test_after_a_run_it_says_what_was_done_what_waits_and_when_the_next_night_is(demo):
    """Runs last in this module: it applies the plan."""
    result = CliRunner().invoke(app, ["--config", str(demo["config"]), "purge", "--apply", "--force",
                                      "--no-details", "--lang", "nl"])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "Uitgevoerd in run 1" in text
    assert re.search(r"Mailblue: [^:]*\d+ contacten verwijderd", text)
    assert "Moneybird:" in text and "aan jou overgedragen" in text and "Wacht op jou:" in text
    assert re.search(r"De volgende nachtelijke run is op \d{1,2} \w+ \d{4} om 03:00", text)
    assert [code for code in CODES if code in text] == []
    again = CliRunner().invoke(app, ["--config", str(demo["config"]), "purge", "--no-details", "--lang", "nl"])
    said = " ".join(again.output.split())
    assert re.search(r"Wacht op jou sinds \d{1,2} \w+ \d{4}: verwijderen \d+ facturen \(Moneybird: \d+", said)
    assert "the vendor's API" not in said and "Waiting for you" not in said


def test_every_record_type_a_connector_yields_has_its_words_in_both_languages():
    from connectors import SYSTEMS, record_fields
    from vergeet.plan_text import _KINDS

    types = {record_type for system in SYSTEMS for record_type in record_fields(system)}
    assert types - set(_KINDS) == set()
