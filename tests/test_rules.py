"""The retention rules file: the shipped statement validates, every error path names file, line and key."""
from __future__ import annotations

import filecmp
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from vergeet.cli import app
from vergeet.errors import BadInput
from vergeet.rules import SHIPPED_RULES, Period, load_rules, locate, parse_rules

ROOT = Path(__file__).resolve().parents[1]
SHIPPED_TEXT = (ROOT / "retention_rules.toml").read_text()


def broken(old: str, new: str, count: int = 1) -> str:
    assert old in SHIPPED_TEXT, old
    return SHIPPED_TEXT.replace(old, new, count)


def test_shipped_rules_are_valid_and_cover_the_statement():
    rules = load_rules(ROOT / "retention_rules.toml")
    assert sorted(p.number for p in rules.purposes.values()) == list(range(1, 10))
    assert {p.legal_basis for p in rules.purposes.values()} == {"legitimate_interest", "contract",
                                                                 "legal_obligation", "consent"}
    names = {p.name for p in rules.processors.values()}
    for expected in ("Mailblue", "Moneybird", "WooCommerce", "Mollie", "Vimexx", "Google Calendar",
                     "Zoom", "Google Meet", "Google Analytics"):
        assert expected in names
    assert str(rules.rights.answer_within) == "P4W"
    assert set(rules.rights.available) == {"access", "rectification", "erasure", "withdraw_consent",
                                           "objection", "portability"}
    assert set(rules.exceptions) == {"document_retention", "running_contract", "legal_hold", "open_request",
                                     "active_consent"}
    assert str(rules.exceptions["document_retention"].period) == "P7Y"
    contact = rules.rules_for("moneybird", "contact")[0]
    assert (contact.clock, str(contact.period), contact.action) == ("last_contact", "P1Y", "delete")
    assert "document_retention" in contact.exceptions
    invoice = rules.rules_for("moneybird", "sales_invoice")[0]
    assert (invoice.clock, str(invoice.period)) == ("document_date", "P7Y")


def test_shipped_copy_inside_the_package_is_the_same_file():
    assert filecmp.cmp(SHIPPED_RULES, ROOT / "retention_rules.toml", shallow=False)


@pytest.mark.parametrize("text, expected", [
    ('period = "P0D"', Period("P0D")),
    ('period = "P1Y"', Period("P1Y", years=1)),
    ('period = "P4W"', Period("P4W", weeks=4)),
    ('period = "P1Y6M"', Period("P1Y6M", years=1, months=6)),
])
def test_periods_parse(text, expected):
    assert Period.parse(text.split('"')[1]) == expected


@pytest.mark.parametrize("bad", ["1 year", "P", "PT1H", "P1.5Y", "-P1Y", "P1Y1"])
def test_malformed_period_names_file_line_and_key(bad):
    text = broken('period = "P1Y"', f'period = "{bad}"')
    with pytest.raises(BadInput) as caught:
        parse_rules(text, "rules.toml")
    line = text.splitlines().index(f'period = "{bad}"') + 1
    assert f"rules.toml: line {line}: rules[0].period:" in str(caught.value)
    assert "ISO-8601" in str(caught.value)


def test_unknown_system():
    text = broken('system = "moneybird"\nrecord_type = "contact"', 'system = "hubspot"\nrecord_type = "contact"')
    with pytest.raises(BadInput, match=r"rules\.toml: line \d+: rules\[0\]\.system: unknown system 'hubspot'"):
        parse_rules(text, "rules.toml")


def test_unknown_record_type():
    text = broken('record_type = "sales_invoice"', 'record_type = "invoice"')
    with pytest.raises(BadInput, match=r"rules\[1\]\.record_type: unknown record type 'invoice' for moneybird"):
        parse_rules(text, "rules.toml")


def test_unknown_field():
    text = broken('fields = ["attendees", "summary", "description", "location"]',
                  'fields = ["attendees", "colour"]')
    with pytest.raises(BadInput, match=r"rules\[9\]\.fields: unknown field 'colour' for google_calendar event"):
        parse_rules(text, "rules.toml")


def test_unknown_action():
    text = broken('action = "keep"', 'action = "archive"')
    with pytest.raises(BadInput, match=r"rules\[6\]\.action: unknown value 'archive'"):
        parse_rules(text, "rules.toml")


def test_unknown_exception_and_unknown_key():
    text = broken('exceptions = ["legal_hold"]', 'exceptions = ["customer_is_nice"]\nretention = "P1Y"')
    with pytest.raises(BadInput) as caught:
        parse_rules(text, "rules.toml")
    assert "rules[2].exceptions[0]: unknown value 'customer_is_nice'" in str(caught.value)
    assert "rules[2].retention: unknown key" in str(caught.value)


def test_anonymise_without_fields_and_delete_with_fields():
    text = broken('action = "anonymise"\nfields = ["attendees", "summary", "description", "location"]',
                  'action = "anonymise"')
    with pytest.raises(BadInput, match="action anonymise needs the fields"):
        parse_rules(text, "rules.toml")


def test_unknown_purpose_reference():
    text = broken('purposes = ["quotes", "invoicing"]\nclock', 'purposes = ["quotes", "sales"]\nclock')
    with pytest.raises(BadInput, match=r"rules\[0\]\.purposes: unknown purpose 'sales'"):
        parse_rules(text, "rules.toml")


def test_toml_syntax_error_names_line_and_column():
    text = broken('[controller]', '[controller')
    with pytest.raises(BadInput, match=r"rules\.toml: not valid TOML: .*\(at line \d+, column \d+\)"):
        parse_rules(text, "rules.toml")


def test_locate_finds_table_keys_and_array_entries():
    text = '[a]\nx = 1\n\n[[rules]]\nid = "one"\n\n[[rules]]\nid = "two"\nperiod = "P1Y"\n'
    assert locate(text, ("a", "x")) == 2
    assert locate(text, ("rules", 1, "period")) == 9
    assert locate(text, ("rules", 0)) == 4


def test_cli_rules_check_ok_and_bad(tmp_path):
    runner = CliRunner()
    ok = runner.invoke(app, ["rules", "check", str(ROOT / "retention_rules.toml")])
    assert ok.exit_code == 0 and "OK" in ok.output
    bad_file = tmp_path / "bad.toml"
    bad_file.write_text(broken('period = "P7Y"\naction = "delete"', 'period = "seven years"\naction = "delete"'))
    bad = runner.invoke(app, ["rules", "check", str(bad_file)])
    assert bad.exit_code == 2
    assert f"{bad_file}: line" in bad.output and "period" in bad.output
    missing = runner.invoke(app, ["rules", "check", str(tmp_path / "nope.toml")])
    assert missing.exit_code == 2 and "cannot read the rules file" in missing.output


@pytest.mark.parametrize(("lang", "expected"), [
    ("en", ("moneybird-contact-1y", "7 years after the document's date", "legal obligation", "Mailblue", "EEA",
            "Requests are answered within 4 weeks")),
    ("nl", ("moneybird-contact-1y", "7 jaar na de datum van het document", "wettelijke verplichting", "EER",
            "nieuwsbriefinschrijving niet bevestigd", "verwerker", "binnen 4 weken beantwoord"))])
def test_cli_rules_show_prints_periods_and_legal_bases_in_words(monkeypatch, lang, expected):
    monkeypatch.delenv("VERGEET_CONFIG", raising=False)
    result = CliRunner().invoke(app, ["rules", "show", str(ROOT / "retention_rules.toml"), "--lang", lang])
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    assert [e for e in expected if e not in text] == []
    assert not re.search(r"\bP\d+[YMWD]\b", text)  # no ISO durations
    other = ("kept until", "unless", "processor ") if lang == "nl" else ("bewaard tot", "tenzij", "verwerker")
    assert [word for word in other if word in text] == []


def test_a_rule_may_select_on_consent_states_and_an_unknown_state_names_the_line():
    selecting = broken('clock = "consent_withdrawn"', 'consent = ["unsubscribed"]\nclock = "consent_withdrawn"')
    (rule,) = [r for r in parse_rules(selecting, "rules.toml").rules if r.id == "mailblue-unsubscribed"]
    assert rule.consent == ["unsubscribed"]
    with pytest.raises(BadInput, match=r"rules.toml: line \d+: rules\[\d+\]\.consent\[0\]: unknown value 'maybe'"):
        parse_rules(broken('clock = "consent_withdrawn"', 'consent = ["maybe"]\nclock = "consent_withdrawn"'),
                    "rules.toml")


def test_the_narrower_reading_for_invoice_contacts_is_off_by_default_and_valid_when_switched_on():
    assert load_rules(ROOT / "retention_rules.toml").rule("moneybird-contact-1y").while_retained is None
    switched_on = parse_rules(SHIPPED_TEXT.replace("# while_retained = ", "while_retained = "), "rules.toml")
    assert "phone" in switched_on.rule("moneybird-contact-1y").while_retained.fields
