"""What the law keeps: the 7-year floor of fiscal documents, its named override, periods vergeet can date, and
changed rules shown and accepted once before a purge applies them."""
from __future__ import annotations

import re
from datetime import date
from pathlib import Path

import pytest
from typer.testing import CliRunner

from connectors import SYSTEMS
from vergeet.cli import app
from vergeet.errors import BadInput
from vergeet.ledger import Ledger
from vergeet.rules import RulesChanged, accept_rules, parse_rules, rules_change
from vergeet.sandbox import Sandbox
from vergeet.sandbox.population import generate

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = (ROOT / "retention_rules.toml").read_text()
INVOICE_PERIOD = 'period = "P7Y"\naction = "delete"\nexceptions = ["running_contract", "legal_hold"]'
DOCUMENT_RETENTION = 'period = "P7Y"\nlegal_basis = "legal_obligation"'
REASON = 'below_legal_floor = "a credit note replaces these; the tax office agreed in writing (letter 2026-03)"'
SECOND_INVOICE_RULE = """
[[rules]]
id = "moneybird-invoice-cleanup"
system = "moneybird"
record_type = "sales_invoice"
purposes = ["invoicing"]
clock = "{clock}"
period = "P1Y"
action = "delete"
{extra}nl = "Factuur"
en = "Invoice"
"""


def edited(old: str, new: str) -> str:
    assert SHIPPED.count(old) == 1, old
    return SHIPPED.replace(old, new)


def check(tmp_path: Path, text: str):
    path = tmp_path / "rules.toml"
    path.write_text(text)
    return path, CliRunner().invoke(app, ["rules", "check", str(path)], terminal_width=250)


def line_of(text: str, needle: str) -> int:
    return text[: text.index(needle)].count("\n") + 1


def refused_at(tmp_path: Path, text: str, needle: str, key: str) -> str:
    """`rules check` exits 2 naming the file, the line of `needle` and `key`; returns the output."""
    path, result = check(tmp_path, text)
    assert result.exit_code == 2, result.output
    assert f"{path}: line {line_of(text, needle)}: {key}:" in result.output, result.output
    return result.output


#: the key of a rule appended to the shipped file
APPENDED = f"rules[{SHIPPED.count('[[rules]]')}]"

CASES = {
    "invoice rule P0D": (edited(INVOICE_PERIOD, INVOICE_PERIOD.replace("P7Y", "P0D")),
                         'period = "P0D"\naction = "delete"', "rules[1].period"),
    "invoice rule P2555D (7 x 365 days)": (edited(INVOICE_PERIOD, INVOICE_PERIOD.replace("P7Y", "P2555D")),
                                           'period = "P2555D"', "rules[1].period"),
    "document_retention P0D": (edited(DOCUMENT_RETENTION, DOCUMENT_RETENTION.replace("P7Y", "P0D")),
                               'period = "P0D"\nlegal_basis', "exceptions.document_retention.period"),
    "second invoice rule without exceptions": (SHIPPED + SECOND_INVOICE_RULE.format(clock="document_date", extra=""),
                                               'period = "P1Y"\naction = "delete"\nnl = "Factuur"',
                                               f"{APPENDED}.period"),
    "second invoice rule on another clock": (SHIPPED + SECOND_INVOICE_RULE.format(clock="created", extra=""),
                                             'clock = "created"\nperiod = "P1Y"', f"{APPENDED}.clock"),
    "invoice rule moved off document_date": (edited(INVOICE_PERIOD, INVOICE_PERIOD.replace("P7Y", "P1Y"))
                                             .replace('record_type = "sales_invoice"\npurposes = ["invoicing"]\n'
                                                      'clock = "document_date"', 'record_type = "sales_invoice"\n'
                                                      'purposes = ["invoicing"]\nclock = "created"'),
                                             'clock = "created"\nperiod = "P1Y"', "rules[1].clock"),
}


@pytest.mark.parametrize("case", CASES)
def test_a_rule_that_deletes_what_the_law_keeps_is_refused(tmp_path, case):
    text, needle, key = CASES[case]
    output = refused_at(tmp_path, text, needle, key)
    assert "P7Y" in output and "below_legal_floor" in output


def test_every_period_p0d_is_refused_for_each_fiscal_rule_and_the_exception(tmp_path):
    text = re.sub(r'(period|answer_within) = "P[0-9A-Z]+"', r'\1 = "P0D"', SHIPPED)
    text = text.replace('answer_within = "P0D"', 'answer_within = "P4W"')  # its own range is tested below
    path, result = check(tmp_path, text)
    assert result.exit_code == 2
    for key in ("exceptions.document_retention.period", "rules[1].period", "rules[2].period"):
        assert f"{key}: " in result.output
    assert "rules[6]" not in result.output  # the Mollie payment rule keeps: no floor problem at P0D


@pytest.mark.parametrize("case", CASES)
def test_the_named_override_lets_each_case_through_and_rules_check_says_so(tmp_path, case):
    text, needle, key = CASES[case]
    if key.startswith("exceptions"):
        overridden = text.replace('period = "P0D"\nlegal_basis', f'period = "P0D"\n{REASON}\nlegal_basis')
    elif APPENDED in key:
        overridden = text.replace('action = "delete"\nnl = "Factuur"', f'action = "delete"\n{REASON}\nnl = "Factuur"')
    else:
        start = text.index('id = "moneybird-invoice-7y"')
        overridden = text[:start] + text[start:].replace('\nnl = "Factuur"', f'\n{REASON}\nnl = "Factuur"', 1)
    path, result = check(tmp_path, overridden)
    assert result.exit_code == 0, result.output
    assert "Below the legal floor" in result.output and "tax office agreed in writing" in result.output


def test_an_override_needs_a_reason_and_a_needless_one_is_refused(tmp_path):
    start = SHIPPED.index('id = "moneybird-invoice-7y"')
    short = SHIPPED[:start] + SHIPPED[start:].replace('\nnl = "Factuur"', '\nbelow_legal_floor = "ok"\nnl = "Factuur"', 1)
    with pytest.raises(BadInput, match=r"rules\[1\]\.below_legal_floor: String should have at least 10"):
        parse_rules(short, "rules.toml")
    needless = SHIPPED[:start] + SHIPPED[start:].replace('\nnl = "Factuur"', f'\n{REASON}\nnl = "Factuur"', 1)
    with pytest.raises(BadInput, match=r"rules\[1\]\.below_legal_floor: nothing here goes below the legal floor"):
        parse_rules(needless, "rules.toml")


@pytest.mark.parametrize("period", ["P7Y", "P84M", "P2557D", "P8Y", "P100Y"])
def test_the_floor_itself_and_longer_periods_pass(period):
    rules = parse_rules(edited(INVOICE_PERIOD, INVOICE_PERIOD.replace("P7Y", period)), "rules.toml")
    assert str(rules.rule("moneybird-invoice-7y").period) == period


@pytest.mark.parametrize("where, period, message", [
    ('period = "P1Y"', "P101Y", "longer than 100 years"),
    ('period = "P1Y"', "P9999Y", "longer than 100 years"),
    ('period = "P1Y"', "P99999999999999999999D", "longer than 100 years"),
    ('period = "P1Y"', "P1201M", "longer than 100 years"),
    ('answer_within = "P4W"', "P99999Y", "longer than 100 years"),
    ('answer_within = "P4W"', "P5W", "one month"),
    ('answer_within = "P4W"', "P0D", "one month"),
    ('answer_within = "P4W"', "P30D", "one month"),  # longer than February
])
def test_periods_the_engine_cannot_run_are_refused(tmp_path, where, period, message):
    text = SHIPPED.replace(where, where.replace(where.split('"')[1], period), 1)
    path, result = check(tmp_path, text)
    assert result.exit_code == 2 and str(path) in result.output and message in result.output, result.output


@pytest.mark.parametrize("period", ["P1M", "P4W", "P1D"])
def test_answer_within_up_to_a_month_passes(period):
    assert str(parse_rules(SHIPPED.replace('"P4W"', f'"{period}"'), "r.toml").rights.answer_within) == period


# -- changed rules: shown, and accepted once --------------------------------------------------------------------------


def test_changed_rules_are_a_diff_of_what_decides_and_accepting_makes_them_current(tmp_path):
    first = parse_rules(SHIPPED, "rules.toml")
    changed = parse_rules(SHIPPED.replace('period = "P30D"', 'period = "P60D"'), "rules.toml")
    reworded = parse_rules(SHIPPED.replace("# Reading chosen: NO.", "# Reading chosen: no.")
                           .replace('email = "info@jessworks.nl"', 'email = "hallo@jessworks.nl"'), "rules.toml")
    with Ledger(f"sqlite:///{tmp_path / 'ledger.db'}", b"p" + b"0123456789abcdef" * 3) as ledger:
        assert rules_change(ledger, changed) == ""  # nothing applied yet: nothing to compare with
        assert accept_rules(ledger, first) == ""
        assert rules_change(ledger, reworded) == ""  # comments and the controller's details decide nothing
        diff = rules_change(ledger, changed)
        assert '-rules.mailblue-unconfirmed-30d.period = "P30D"' in diff
        assert '+rules.mailblue-unconfirmed-30d.period = "P60D"' in diff
        assert "jessworks" not in ledger.accepted_rules()
        with pytest.raises(RulesChanged) as caught:
            accept_rules(ledger, changed)
        assert caught.value.diff == diff and "--accept-rules" in str(caught.value)
        assert rules_change(ledger, changed) == diff  # refused: still the old ones
        assert accept_rules(ledger, changed, accept=True) == diff
        assert rules_change(ledger, changed) == "" and rules_change(ledger, first) != ""


FAST = {system: (1000, 1.0) for system in SYSTEMS}
MUTATING = ("DELETE", "PATCH", "PUT", "POST")


def test_purge_apply_shows_changed_rules_and_needs_accept_rules_once(tmp_path):
    rules_file = tmp_path / "rules.toml"
    rules_file.write_text(SHIPPED)
    with Sandbox(generate(20, seed=5, today=date.today()), rates=FAST) as sandbox:
        config = sandbox.write_config(tmp_path, client_rates=FAST, extra='\n[rules]\npath = "rules.toml"\n')

        def purge(*options):
            return CliRunner().invoke(app, ["--config", str(config), "purge", "--no-details", *options],
                                      terminal_width=250)

        def writes():
            return sum(1 for fake in sandbox.fakes.values() for r in fake.requests
                       if r.method in MUTATING and "synchronization" not in r.path and r.path != "/token")

        assert purge("--apply", "--force").exit_code == 0  # the first applied run: these rules are accepted
        rules_file.write_text(SHIPPED.replace('period = "P30D"', 'period = "P60D"'))
        before = writes()
        refused = purge("--apply", "--force")
        assert refused.exit_code == 1 and "refused" in refused.output and "--accept-rules" in refused.output
        assert '-rules.mailblue-unconfirmed-30d.period = "P30D"' in refused.output
        assert '+rules.mailblue-unconfirmed-30d.period = "P60D"' in refused.output
        assert writes() == before
        dry = purge()
        assert dry.exit_code == 0 and "P60D" in dry.output and "needs --accept-rules" in dry.output
        assert purge("--accept-rules").exit_code == 2  # goes with --apply
        accepted = purge("--apply", "--force", "--accept-rules")
        assert accepted.exit_code == 0 and "Accepted" in accepted.output and "P60D" in accepted.output
        again = purge("--apply", "--force")
        assert again.exit_code == 0 and "changed" not in again.output
