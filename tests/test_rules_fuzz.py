"""A fixed-seed fuzz of the rules file: every mutation is refused naming the file, or it runs.

Each mutation edits one to three `key = value` lines of the shipped file (another value of the same kind or of
another type, a period in or out of range, a line removed, a key renamed or added). A mutation that
`vergeet rules check` refuses must exit 2 naming the file; one it accepts must decide a purge, an erasure and an
access request over a generated population without a traceback, and, unless it names an override, delete or
change no fiscal document younger than the legal floor.
"""
from __future__ import annotations

import random
import re
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path

import pytest
from dateutil.relativedelta import relativedelta
from typer.testing import CliRunner

from connectors.base import Link, Record, RecordRef
from vergeet import access
from vergeet.cli import app
from vergeet.decide import Context, Erasure, decide
from vergeet.ledger import Ledger
from vergeet.pipeline import identity_view
from vergeet.rules import load_rules

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = (ROOT / "retention_rules.toml").read_text()
AS_OF = date(2026, 11, 25)
SEED, MUTATIONS = 20261125, 120
PEPPER = b"fuzz-pepper-" + b"x" * 32

PERIODS = ["P0D", "P1D", "P4W", "P1M", "P30D", "P1Y", "P6Y11M", "P2555D", "P2557D", "P7Y", "P84M", "P100Y",
           "P101Y", "P1200M", "P36525D", "P9999Y", "P99999Y", "P99999999999999999999D", "P", "-P1Y", "P1.5Y",
           "PT1H", "P1Y1", "P٣Y"]
CHOICES = {
    "clock": ['"last_contact"', '"last_activity"', '"created"', '"document_date"', '"consent_withdrawn"',
              '"consent_changed"', '"tomorrow"'],
    "action": ['"delete"', '"anonymise"', '"keep"', '"archive"'],
    "exceptions": ["[]", '["document_retention"]', '["legal_hold", "open_request"]', '["running_contract"]',
                   '["active_consent", "document_retention"]', '["nope"]'],
    "consent": ['["subscribed"]', '["unsubscribed", "bounced"]', '["unconfirmed"]', "[]", '["maybe"]'],
    "record_type": ['"contact"', '"sales_invoice"', '"estimate"', '"payment"', '"customer"', '"event"',
                    '"archived_contact"', '"mandate"', '"invoice"'],
    "system": ['"moneybird"', '"mollie"', '"mailblue"', '"google_calendar"', '"hubspot"'],
    "fields": ['["phone"]', '["attendees", "summary"]', '["email", "name"]', '["description"]', "[]", '["x"]'],
    "counts_as_contact": ["true", "false"],
    "legal_basis": ['"contract"', '"consent"', '"legal_obligation"', '"nonsense"'],
    "available": ['["access"]', "[]", '["access", "flying"]'],
    "number": ["0", "-1", "9223372036854775807", "1.0", "1.5"],
}
OTHER_TYPES = ['""', '"x"', "0", "-7", "1.5", "inf", "nan", "true", "[]", "{}", '["P1Y"]', "1979-05-27",
               "{ years = 7 }", '"' + "x" * 2000 + '"']
TEXTS = ['"Andere tekst"', '""', '"' + "é" * 2000 + '"', "'{{ not a template }}'"]
NEW_KEYS = ["retention", "period", "below_legal_floor", "clock", "exceptions", "fields", "while_retained",
            "consent", "ends_with", "retained_by", "priority"]
NEW_VALUES = ['"P1Y"', '"because the tax office said so in writing"', '"short"', "[]",
              '{ action = "anonymise", fields = ["phone"] }', '"customer"', "true"]

ASSIGNMENT = re.compile(r"^(?P<key>[a-z_]+) = (?P<value>.+)$")


def mutate(rng: random.Random) -> str:
    """The shipped text with one to three random edits of its `key = value` lines."""
    lines = SHIPPED.splitlines()
    decisive = next(i for i, line in enumerate(lines) if line.startswith("[exceptions."))
    for _ in range(rng.randint(1, 3)):
        assignments = [i for i, line in enumerate(lines) if ASSIGNMENT.match(line)]
        periods = [i for i in assignments if ASSIGNMENT.match(lines[i])["key"] in ("period", "answer_within")]
        # most edits where the decisions are: the periods, the exceptions and the rules
        kind = rng.random()
        index = rng.choice(periods if kind < 0.35 else [i for i in assignments if i > decisive]
                           if rng.random() < 0.8 else assignments)
        match = ASSIGNMENT.match(lines[index])
        key, value = match["key"], match["value"]
        if kind < 0.35:
            lines[index] = f'{key} = "{rng.choice(PERIODS)}"'
        elif kind < 0.70:
            lines[index] = f"{key} = {rng.choice(CHOICES.get(key, TEXTS if value[0] == chr(34) else OTHER_TYPES))}"
        elif kind < 0.80:
            lines[index] = f"{key} = {rng.choice(OTHER_TYPES)}"
        elif kind < 0.88:
            del lines[index]
        elif kind < 0.92:
            lines[index] = f"{rng.choice(NEW_KEYS)}_x = {value}"
        else:
            lines.insert(index + 1, f"{rng.choice(NEW_KEYS)} = {rng.choice(NEW_VALUES)}")
    return "\n".join(lines) + "\n"


def _at(day: date) -> datetime:
    return datetime.combine(day, time(12, 0), tzinfo=timezone.utc)


def population(rng: random.Random, people: int = 24) -> list[Record]:
    """People in all four systems, dated over twelve years around `AS_OF` (a few in the future, some undated)."""
    records: list[Record] = []
    consents = ("subscribed", "unsubscribed", "unconfirmed", "bounced", None)

    def day() -> date:
        return AS_OF - timedelta(days=rng.randint(-60, 12 * 366))

    for n in range(people):
        email, phone = f"person{n}@example.nl", f"+3161234{n:04d}"
        person = {"emails": (email,), "phones": (phone,) if n % 3 else (), "first_name": "P", "last_name": f"N{n}"}
        created = day()
        mb = RecordRef("moneybird", "contact", f"c{n}")
        cst = RecordRef("mollie", "customer", f"cst_{n}")
        records.append(Record("moneybird", "contact", mb.record_id, **person, created_at=_at(created),
                              last_activity_at=_at(day()) if n % 2 else None, running_contract=n % 11 == 0))
        for k in range(rng.randint(0, 3)):
            dated = day()
            kind = rng.choice(("sales_invoice", "estimate"))
            records.append(Record("moneybird", kind, f"{kind[0]}{n}-{k}", **person, document_date=dated,
                                  created_at=_at(dated), running_contract=k == 0 and n % 7 == 0,
                                  links=(Link("contact", mb),)))
        records.append(Record("mollie", "customer", cst.record_id, emails=(email,), created_at=_at(created)))
        for k in range(rng.randint(0, 2)):
            dated = day()
            records.append(Record("mollie", "payment", f"tr_{n}_{k}", emails=(email,), document_date=dated,
                                  created_at=_at(dated), links=(Link("customer", cst),)))
        for kind in ("mandate", "subscription")[: n % 3]:
            records.append(Record("mollie", kind, f"{kind[:3]}_{n}", created_at=_at(created),
                                  links=(Link("customer", cst),)))
        consent = consents[n % len(consents)]
        records.append(Record("mailblue", "contact", f"m{n}", **person, consent=consent,
                              consent_changed_at=_at(day()) if consent else None, created_at=_at(day())))
        if n % 5 == 0:
            records.append(Record("mailblue", "archived_contact", f"a{n}", emails=(email,), created_at=_at(day())))
        records.append(Record("google_calendar", "event", f"e{n}", emails=(email,), created_at=_at(day()),
                              last_activity_at=_at(day())))
    return records


RECORDS = population(random.Random(SEED))


def run_everything(rules) -> set[str]:
    """A purge, an erasure and an access request under `rules`; the keys of fiscal documents younger than the
    legal floor that the purge would delete or change."""
    view = identity_view({"all": RECORDS}, rules)
    plan = decide(view, rules, AS_OF, Context())
    decide(view, rules, AS_OF, Context(), erasure=Erasure(frozenset(view.people.index[:5])))
    subject = access.classify(["person3@example.nl"])
    with Ledger("sqlite://", PEPPER) as ledger:
        request = access.register_request(ledger, subject, rules, received=AS_OF)
        found = access.find_person({system: None for system in ("moneybird", "mailblue", "mollie", "google_calendar")},
                                   subject, rules, search_systems=lambda _, __: {"all": RECORDS})
        report = access.access_report(found, rules, subject=subject, as_of=AS_OF, request=request)
    access.report_json(report)
    young = {str(r.ref) for r in RECORDS
             if r.document_date is not None and r.document_date > AS_OF - relativedelta(years=7)}
    return young & set(plan.actions["key"])


def test_the_shipped_rules_run_and_keep_young_fiscal_documents():
    rules = load_rules(ROOT / "retention_rules.toml")
    assert run_everything(rules) == set()
    # the population does hold young and old documents, and the purge does act on the old ones
    view = identity_view({"all": RECORDS}, rules)
    acted = set(decide(view, rules, AS_OF, Context()).actions["key"])
    old = {str(r.ref) for r in RECORDS if r.document_date is not None
           and r.document_date <= AS_OF - relativedelta(years=7, days=1) and r.record_type != "payment"}
    assert old & acted


def test_every_mutation_is_refused_naming_the_file_or_runs(tmp_path):
    rng = random.Random(SEED)
    runner = CliRunner()
    outcomes = {"refused": 0, "ran": 0}
    for n in range(MUTATIONS):
        text = mutate(rng)
        path = tmp_path / f"mutation-{n}.toml"
        path.write_text(text)
        result = runner.invoke(app, ["rules", "check", str(path)])
        assert result.exit_code in (0, 2), (n, result.output, result.exception)
        if result.exit_code == 2:
            assert str(path) in result.output, (n, result.output)
            outcomes["refused"] += 1
            continue
        assert "OK" in result.output
        try:
            too_early = run_everything(load_rules(path))
        except Exception as exc:  # the point of the fuzz: report which mutation crashed, with its text
            pytest.fail(f"mutation {n} passed rules check but crashed: {exc!r}\n{text}")
        if "below_legal_floor" not in text:
            assert not too_early, (n, sorted(too_early)[:5], text)
        outcomes["ran"] += 1
    # both sides are exercised: the fuzz is not all refusals, nor all harmless
    assert outcomes["refused"] > MUTATIONS // 2 and outcomes["ran"] > MUTATIONS // 10, outcomes
