"""The nightly flow's artifact: counts and reasons only, including what is left to the owner."""
from __future__ import annotations

from datetime import date, datetime, timezone
from pathlib import Path

from connectors.base import Record
from flows.nightly_purge import report_markdown
from vergeet.decide import Context, decide
from vergeet.pipeline import identity_view
from vergeet.rules import load_rules

RULES = load_rules(Path(__file__).resolve().parents[1] / "retention_rules.toml")
OLD = datetime(2019, 1, 1, tzinfo=timezone.utc)


def test_the_artifact_counts_records_left_alone_and_actions_waiting_for_the_owner():
    records = [Record("google_calendar", "event", "owner@example.nl/s1", emails=("jan@example.nl",),
                      created_at=OLD, left_alone="recurrence could not be evaluated"),
               Record("moneybird", "contact", "c1", emails=("piet@example.nl",), created_at=OLD)]
    handed = {("moneybird/contact/c1", "delete"): (OLD, "archive it in Moneybird")}
    plan = decide(identity_view({"all": records}, RULES), RULES, date(2026, 11, 25), Context(handed_over=handed))
    text = report_markdown(plan, None)
    assert "| google_calendar | recurrence could not be evaluated | 1 |" in text
    assert "**1 action waits for the owner**" in text
    assert "jan@example.nl" not in text and "piet" not in text
