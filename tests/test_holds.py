"""Legal holds from the command line (issue 16): placed on a person (hashed) or a record, shown in the plan as
what they keep, listed, released with a reason; bad input changes nothing."""
from __future__ import annotations

import re
from datetime import date, timedelta

import pytest
from typer.testing import CliRunner

from test_erasure import FAST, RULES, TODAY, population
from vergeet import pipeline
from vergeet.cli import app
from vergeet.config import load_config
from vergeet.connect import build_connectors, open_ledger
from vergeet.sandbox import Sandbox


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
    with Sandbox(population(), rates=FAST) as running:
        running.config_path = str(running.write_config(tmp_path_factory.mktemp("holds"), client_rates=FAST,
                                                       retries=1))
        yield running


def vergeet(sandbox, *arguments: str):
    return CliRunner().invoke(app, ["--config", sandbox.config_path, *arguments])


def someone_due(sandbox) -> tuple[str, set[str]]:
    """An e-mail address of a person the purge would act on today, and the keys of those records."""
    config = load_config(sandbox.config_path)
    view = pipeline.identity_view(pipeline.pull_all(build_connectors(config)), RULES)
    with open_ledger(config) as ledger:
        plan = pipeline.make_plan(view, RULES, TODAY, ledger)
    emails = view.identifiers[view.identifiers["kind"] == "email"]
    person = next(p for p in plan.actions["person"].unique() if (emails["person"] == p).any())
    email = emails.loc[emails["person"] == person, "value"].iloc[0]
    return email, set(plan.actions.loc[plan.actions["person"] == person, "key"])


def test_a_hold_keeps_a_persons_records_until_it_is_released(sandbox):
    email, keys = someone_due(sandbox)
    assert "Legal hold" not in vergeet(sandbox, "purge").output
    placed = vergeet(sandbox, "hold", "add", email, "--reason", "dispute about invoice 2024-017")
    assert placed.exit_code == 0, placed.output
    hold_id = re.search(r"Legal hold (\d+)", placed.output).group(1)
    with open_ledger(load_config(sandbox.config_path)) as ledger:
        assert email.encode() not in b"".join(str(h).encode() for h in ledger.holds())  # hashed only

    held = vergeet(sandbox, "purge")
    line = re.search(rf"Legal hold {hold_id} \(dispute about invoice 2024-017\) keeps (\d+) records?", held.output)
    assert line and int(line.group(1)) >= len(keys)
    assert not [key for key in keys if key.split("/", 2)[2] in held.output.split("Planned actions")[-1]]
    listed = vergeet(sandbox, "hold", "list")
    assert f"{hold_id}  a person" in listed.output and "until released" in listed.output

    assert vergeet(sandbox, "hold", "release", hold_id).exit_code == 2  # a reason is needed
    assert vergeet(sandbox, "hold", "release", hold_id, "--reason", "settled").exit_code == 0
    assert "No legal holds in force." in vergeet(sandbox, "hold", "list").output
    assert "released" in vergeet(sandbox, "hold", "list", "--all").output and "settled" in \
        vergeet(sandbox, "hold", "list", "--all").output
    assert "Legal hold" not in vergeet(sandbox, "purge").output


def test_a_record_hold_and_what_is_refused(sandbox):
    future = (date.today() + timedelta(days=30)).isoformat()
    past = (date.today() - timedelta(days=1)).isoformat()
    with open_ledger(load_config(sandbox.config_path)) as ledger:
        before = len(ledger.holds())
    for arguments in (["hold", "add", "a@example.nl"],  # no reason
                      ["hold", "add", "a@example.nl", "--record", "moneybird/contact/1", "--reason", "x"],
                      ["hold", "add", "--record", "nowhere/contact/1", "--reason", "x"],
                      ["hold", "add", "--record", "moneybird/contact", "--reason", "x"],
                      ["hold", "add", "a@example.nl", "--reason", "x", "--until", past],
                      ["hold", "add", "not an identifier", "--reason", "x"],
                      ["hold", "release", "999", "--reason", "x"]):
        result = vergeet(sandbox, *arguments)
        assert result.exit_code == 2, (arguments, result.output)
    with open_ledger(load_config(sandbox.config_path)) as ledger:
        assert len(ledger.holds()) == before
    placed = vergeet(sandbox, "hold", "add", "--record", "moneybird/sales_invoice/42", "--reason", "audit",
                     "--until", future)
    assert placed.exit_code == 0 and f"until {future}" in placed.output
    assert "record moneybird/sales_invoice/42" in vergeet(sandbox, "hold", "list").output


def test_applying_as_on_a_future_day_is_refused_and_a_past_day_is_said(sandbox):
    tomorrow = (date.today() + timedelta(days=1)).isoformat()
    refused = vergeet(sandbox, "purge", "--apply", "--as-of", tomorrow)
    assert refused.exit_code == 2 and "after today" in refused.output
    assert sum(1 for fake in sandbox.fakes.values() for r in fake.requests if r.method in ("DELETE", "PATCH")) == 0
    looked = vergeet(sandbox, "purge", "--as-of", tomorrow, "--no-details")
    assert looked.exit_code == 0 and f"Deciding as on {tomorrow}" in looked.output
