"""The retention rules file: the privacy statement as validated data.

`load_rules` reads a TOML file, validates its shape with pydantic and its
references against what the connectors really offer (systems, record types,
fields), and stops with a `BadInput` naming the file, the line where it can be
found, and the key path. Periods are ISO-8601 durations (`P1Y`, `P7Y`, `P4W`) of at most 100 years.

Fiscal documents have a legal floor (`LEGAL_FLOOR`, see `_floor_problems`): a rule that would act on one sooner,
or a `document_retention` exception shorter than it, is refused unless it says why in `below_legal_floor`.
`rules_change` and `accept_rules` compare the rules with those the last applying purge ran with.
"""
from __future__ import annotations

import difflib
import json
import re
import tomllib
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from dateutil.relativedelta import relativedelta
from pydantic import (BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer, StringConstraints,
                      ValidationError, field_validator)

import connectors
from connectors.base import CONSENT_STATES
from vergeet.errors import BadInput

if TYPE_CHECKING:
    from vergeet.ledger import Ledger

RULES_FILE = "retention_rules.toml"
SHIPPED_RULES = Path(__file__).parent / "data" / RULES_FILE

Clock = Literal["last_contact", "last_activity", "created", "document_date", "consent_withdrawn", "consent_changed"]
Action = Literal["delete", "anonymise", "keep"]
ConsentState = Literal[CONSENT_STATES]
ExceptionName = Literal["document_retention", "running_contract", "legal_hold", "open_request", "active_consent"]
Right = Literal["access", "rectification", "erasure", "withdraw_consent", "objection", "portability"]

_PERIOD = re.compile(r"^P(?:(?P<years>\d+)Y)?(?:(?P<months>\d+)M)?(?:(?P<weeks>\d+)W)?(?:(?P<days>\d+)D)?$",
                     re.ASCII)
#: the longest period vergeet dates: the decisions date records with pandas, whose calendar ends in 2262
LONGEST_YEARS = 100
#: start days on which periods are compared: the lengths of months and years differ (leap days, February)
_STARTS = (date(2000, 1, 1), date(2000, 2, 29), date(2001, 3, 1), date(2003, 12, 31))


@dataclass(frozen=True)
class Period:
    """An ISO-8601 calendar duration of years, months, weeks and days."""

    text: str
    years: int = 0
    months: int = 0
    weeks: int = 0
    days: int = 0

    @classmethod
    def parse(cls, value: Any) -> Period:
        if isinstance(value, Period):
            return value
        match = _PERIOD.match(value) if isinstance(value, str) else None
        if not match or value == "P":
            raise ValueError(f"{value!r} is not an ISO-8601 period such as P1Y, P7Y, P4W or P30D")
        period = cls(value, **{k: int(v) for k, v in match.groupdict().items() if v})
        # Bounded before any date arithmetic, which fails on periods beyond the calendar.
        months, days = period.years * 12 + period.months, period.weeks * 7 + period.days
        if months > LONGEST_YEARS * 12 or days > LONGEST_YEARS * 366 or not period.at_most(
                relativedelta(years=LONGEST_YEARS)):
            raise ValueError(f"{value!r} is longer than {LONGEST_YEARS} years (P{LONGEST_YEARS}Y), the longest "
                             "period vergeet can date")
        return period

    @property
    def delta(self) -> relativedelta:
        return relativedelta(years=self.years, months=self.months, weeks=self.weeks, days=self.days)

    def after(self, start: date) -> date:
        """The day this period ends when it starts on `start`."""
        return start + self.delta

    def cutoff(self, as_of: date) -> date:
        """The latest start whose period has ended by `as_of`."""
        return as_of - self.delta

    def at_least(self, other: relativedelta) -> bool:
        """Whether this period is never shorter than `other`, whatever day it starts."""
        return all(self.after(start) >= start + other for start in _STARTS)

    def at_most(self, other: relativedelta) -> bool:
        """Whether this period is never longer than `other`, whatever day it starts."""
        return all(self.after(start) <= start + other for start in _STARTS)

    def __str__(self) -> str:
        return self.text


PeriodField = Annotated[Period, BeforeValidator(Period.parse), PlainSerializer(str, return_type=str)]
#: why a rule goes below the legal floor of fiscal documents: the override must say so, in words
Reason = Annotated[str, StringConstraints(strip_whitespace=True, min_length=10)]

#: Dutch fiscal retention (art. 52 lid 4 AWR): the books and the documents behind them are kept 7 years
LEGAL_FLOOR = relativedelta(years=7)
LEGAL_FLOOR_TEXT = "P7Y (art. 52 AWR, Dutch fiscal retention)"
#: GDPR art. 12(3): a request is answered within one month (extended per case, with notice, by two more)
ANSWER_LIMIT = relativedelta(months=1)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)


class Controller(_Model):
    name: str
    representative: str = ""
    address: str
    email: str
    supervisory_authority: str
    supervisory_authority_url: str


class Rights(_Model):
    answer_within: PeriodField

    @field_validator("answer_within")
    @classmethod
    def _within_a_month(cls, period: Period) -> Period:
        if not period.at_least(relativedelta(days=1)) or not period.at_most(ANSWER_LIMIT):
            raise ValueError(f"{period} is not between one day and one month (P1M), the longest the GDPR allows "
                             "for an answer (art. 12(3))")
        return period
    available: list[Right]
    contact: str
    identity_verification: str
    under_16: str = ""


class LegalBasis(_Model):
    nl: str
    en: str
    gdpr: str


class Purpose(_Model):
    number: int
    nl: str
    en: str
    data: list[str]
    legal_basis: str


class Texts(_Model):
    nl: str
    en: str


class Processor(_Model):
    name: str
    #: the name in English documents, where it is a Dutch word ("Boekhouder")
    name_en: str | None = None
    role: Literal["processor", "independent_controller", "recipient"]
    #: what the processor does for the business, in Dutch; `service_en` in English (the English documents leave
    #: the service out where it is missing, never showing the Dutch text)
    service: str
    service_en: str | None = None
    purposes: list[str]
    #: the connected system that is this processor's own (its data is what vergeet reads there)
    system: str | None = None
    #: connected systems whose data this processor receives besides (the bookkeeper: the invoicing system's)
    receives: list[str] = []
    #: what the owner looks at by hand for a person's request, where vergeet has no connector
    check: Texts | None = None
    outside_eea: bool

    def name_in(self, lang: str) -> str:
        return self.name_en if lang == "en" and self.name_en else self.name

    def service_in(self, lang: str) -> str:
        """What the processor does, in `lang`; "" in English where no English text is given."""
        return self.service if lang == "nl" else self.service_en or ""


class SystemPolicy(_Model):
    purposes: list[str]
    counts_as_contact: bool


class ExceptionPolicy(_Model):
    nl: str
    en: str
    legal_basis: str
    period: PeriodField | None = None
    #: why this period may be shorter than the legal floor (document_retention only)
    below_legal_floor: Reason | None = None


class PartialAction(_Model):
    action: Literal["anonymise"]
    fields: list[str] = Field(min_length=1)


class Rule(_Model):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    system: str
    record_type: str
    purposes: list[str] = Field(min_length=1)
    clock: Clock
    period: PeriodField
    action: Action
    fields: list[str] = []
    #: the rule concerns only records in one of these newsletter consent states (none: every record of the type)
    consent: list[ConsentState] | None = Field(default=None, min_length=1)
    exceptions: list[ExceptionName] = []
    while_retained: PartialAction | None = None
    retained_by: str | None = None
    #: the link relation of the record this one ends with (a mandate with its customer): where that record is
    #: deleted, this one is reported as ended with it, not as kept
    ends_with: str | None = None
    #: why this rule may act on fiscal documents sooner than the legal floor (`_floor_problems`)
    below_legal_floor: Reason | None = None
    nl: str
    en: str


class Rules(_Model):
    version: Literal[1]
    controller: Controller
    rights: Rights
    legal_bases: dict[str, LegalBasis]
    purposes: dict[str, Purpose]
    processors: dict[str, Processor]
    systems: dict[str, SystemPolicy]
    exceptions: dict[ExceptionName, ExceptionPolicy]
    rules: list[Rule] = Field(min_length=1)
    source: str = Field(default="", exclude=True)

    def rule(self, rule_id: str) -> Rule | None:
        return next((r for r in self.rules if r.id == rule_id), None)

    def system_name(self, system: str) -> str:
        """How people know a system: its processor's name (`Google Calendar`), else the system's own name."""
        return next((p.name for p in self.processors.values() if p.system == system), system)

    def rules_for(self, system: str, record_type: str) -> list[Rule]:
        return [r for r in self.rules if r.system == system and r.record_type == record_type]

    def processors_of(self, system: str) -> list[Processor]:
        """The processors holding a system's data: the system's own vendor first, then those that receive it."""
        own = [p for p in self.processors.values() if p.system == system]
        return own + [p for p in self.processors.values() if p.system != system and system in p.receives]

    def unconnected_processors(self) -> list[Processor]:
        """Processors with no system of their own vergeet could search: checked by hand for a request."""
        return [p for p in self.processors.values() if p.system is None]

    def contact_systems(self) -> set[str]:
        return {name for name, policy in self.systems.items() if policy.counts_as_contact}


# -- where in the file ---------------------------------------------------------------


def locate(text: str, path: tuple[Any, ...]) -> int | None:
    """The line (1-based) where a key path is written, found by reading the TOML text.

    Good enough for error messages: follows `[table]`, `[[array]]` headers and
    `key =` lines; returns the nearest enclosing line it can find.
    """
    lines = text.splitlines()
    start, end, found = 0, len(lines), None
    header_path: list[str] = []
    index = 0
    while index < len(path):
        part = path[index]
        if isinstance(part, int):
            index += 1
            continue
        header_path.append(str(part))
        nxt = path[index + 1] if index + 1 < len(path) else None
        dotted = re.escape(".".join(header_path))
        if isinstance(nxt, int):
            hits = [i for i in range(start, end) if re.match(rf"^\s*\[\[\s*{dotted}\s*\]\]", lines[i])]
            if nxt < len(hits):
                start = hits[nxt]
                following = [i for i in range(start + 1, len(lines)) if re.match(r"^\s*\[", lines[i])]
                end = following[0] if following else len(lines)
                found = start + 1
                header_path = []
            index += 2
            continue
        table = [i for i in range(start, end) if re.match(rf"^\s*\[\s*{dotted}\s*\]", lines[i])]
        if table:
            start = table[0]
            following = [i for i in range(start + 1, len(lines)) if re.match(r"^\s*\[", lines[i])]
            end = following[0] if following else len(lines)
            found = start + 1
            header_path = []
        elif not any(re.match(rf"^\s*\[\[?\s*{dotted}\.", lines[i]) for i in range(start, end)):  # not a prefix
            key = re.escape(str(part))
            keyed = [i for i in range(start, end) if re.match(rf"^\s*(\"?){key}\1\s*[=.]", lines[i])]
            if keyed:
                found = keyed[0] + 1
                start = keyed[0]
        index += 1
    return found


def _where(source: str, text: str, path: tuple[Any, ...]) -> str:
    line = locate(text, path)
    dotted = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".")
    return f"{source}: line {line}: {dotted}" if line else f"{source}: {dotted}"


def _pydantic_message(error: dict[str, Any]) -> str:
    if error["type"] == "extra_forbidden":
        return "unknown key"
    if error["type"] == "missing":
        return "required key is missing"
    if error["type"] == "literal_error":
        return f"unknown value {error['input']!r}; expected {error['ctx']['expected']}"
    if error["type"] == "value_error":
        return str(error["ctx"]["error"])
    return error["msg"]


# -- checks across the file --------------------------------------------------------------


def _references(rules: Rules) -> list[tuple[tuple[Any, ...], str]]:
    """Every reference in the file that points at something undefined or unsupported."""
    problems: list[tuple[tuple[Any, ...], str]] = []
    for name, purpose in rules.purposes.items():
        if purpose.legal_basis not in rules.legal_bases:
            problems.append((("purposes", name, "legal_basis"), f"unknown legal basis {purpose.legal_basis!r}"))
    for name, policy in rules.exceptions.items():
        if policy.legal_basis not in rules.legal_bases:
            problems.append((("exceptions", name, "legal_basis"), f"unknown legal basis {policy.legal_basis!r}"))
    if "document_retention" in rules.exceptions and rules.exceptions["document_retention"].period is None:
        problems.append((("exceptions", "document_retention", "period"), "required key is missing"))
    for name, processor in rules.processors.items():
        problems += [(("processors", name, "purposes"), f"unknown purpose {p!r}")
                     for p in processor.purposes if p not in rules.purposes]
        if processor.system is not None and processor.system not in connectors.SYSTEMS:
            problems.append((("processors", name, "system"), _unknown_system(processor.system)))
        problems += [(("processors", name, "receives"), _unknown_system(system))
                     for system in processor.receives if system not in connectors.SYSTEMS]
    for name, policy in rules.systems.items():
        if name not in connectors.SYSTEMS:
            problems.append((("systems", name), _unknown_system(name)))
        problems += [(("systems", name, "purposes"), f"unknown purpose {p!r}")
                     for p in policy.purposes if p not in rules.purposes]
    seen: set[str] = set()
    for index, rule in enumerate(rules.rules):
        problems += _rule_problems(rules, index, rule)
        if rule.id in seen:
            problems.append((("rules", index, "id"), f"duplicate rule id {rule.id!r}"))
        seen.add(rule.id)
    return problems


def _unknown_system(name: str) -> str:
    return f"unknown system {name!r}; known: {', '.join(connectors.SYSTEMS)}"


def _rule_problems(rules: Rules, index: int, rule: Rule) -> list[tuple[tuple[Any, ...], str]]:
    at = ("rules", index)
    if rule.system not in connectors.SYSTEMS:
        return [((*at, "system"), _unknown_system(rule.system))]
    record_types = connectors.record_fields(rule.system)
    if rule.record_type not in record_types:
        return [((*at, "record_type"), f"unknown record type {rule.record_type!r} for {rule.system}; "
                                       f"known: {', '.join(sorted(record_types))}")]
    known_fields = record_types[rule.record_type]
    problems = [((*at, "purposes"), f"unknown purpose {p!r}") for p in rule.purposes if p not in rules.purposes]
    problems += [((*at, "exceptions"), f"exception {e!r} is not defined under [exceptions]")
                 for e in rule.exceptions if e not in rules.exceptions]
    if rule.action == "anonymise" and not rule.fields:
        problems.append(((*at, "fields"), "action anonymise needs the fields to anonymise"))
    if rule.action != "anonymise" and rule.fields:
        problems.append(((*at, "fields"), f"fields only go with action anonymise, not {rule.action}"))
    problems += [((*at, "fields"), _unknown_field(f, rule, known_fields)) for f in rule.fields if f not in known_fields]
    if rule.while_retained is not None:
        if "document_retention" not in rule.exceptions:
            problems.append(((*at, "while_retained"), "needs document_retention among the exceptions"))
        problems += [((*at, "while_retained", "fields"), _unknown_field(f, rule, known_fields))
                     for f in rule.while_retained.fields if f not in known_fields]
    return problems


#: the record types the connectors give a document date (`connectors.base.Record.document_date`): invoices,
#: quotes and payments. Named here too, so that a rule moved off clock document_date still counts as fiscal.
FISCAL_DOCUMENTS = (("moneybird", "sales_invoice"), ("moneybird", "estimate"), ("mollie", "payment"))


def fiscal_record_types(rules: Rules) -> list[tuple[str, str]]:
    """The (system, record type) pairs that are fiscal documents: `FISCAL_DOCUMENTS`, and any other a rule
    counts from its document date (clock document_date, which only documents have)."""
    dated = [(r.system, r.record_type) for r in rules.rules if r.clock == "document_date"]
    return list(dict.fromkeys([*FISCAL_DOCUMENTS, *dated]))


def _floor_problems(rules: Rules) -> list[tuple[tuple[Any, ...], str]]:
    """What would remove fiscal documents before the legal floor without saying why in `below_legal_floor`.

    The `document_retention` exception must last the floor. A rule for a fiscal record type acts too soon unless
    it keeps (`keep`, nothing anonymised meanwhile), waits for `document_retention`, or counts at least the floor
    from the document date; every rule of the type counts, since the first rule that is due acts.
    """
    problems: list[tuple[tuple[Any, ...], str]] = []
    documents = rules.exceptions.get("document_retention")
    if documents is not None and documents.period is not None:
        short = not documents.period.at_least(LEGAL_FLOOR)
        problems += _override(("exceptions", "document_retention"), "period", short, documents.below_legal_floor,
                              f"{documents.period} is shorter than the legal floor of fiscal documents, "
                              f"{LEGAL_FLOOR_TEXT}")
    fiscal = set(fiscal_record_types(rules))
    for index, rule in enumerate(rules.rules):
        key, early = _acts_before_floor(rule) if (rule.system, rule.record_type) in fiscal else ("period", False)
        problems += _override(("rules", index), key, early, rule.below_legal_floor,
                              f"acts on {rule.system} {rule.record_type}, a fiscal document, sooner than the legal "
                              f"floor {LEGAL_FLOOR_TEXT}: count at least P7Y from clock document_date, add "
                              "document_retention to its exceptions, or use action keep")
    return problems


def _acts_before_floor(rule: Rule) -> tuple[str, bool]:
    """Whether a rule for a fiscal record type may act within the floor, and the key that makes it so."""
    if rule.while_retained is not None:
        return "while_retained", True
    if rule.action == "keep" or "document_retention" in rule.exceptions:
        return "period", False
    if rule.clock != "document_date":
        return "clock", True
    return "period", not rule.period.at_least(LEGAL_FLOOR)


def _override(at: tuple[Any, ...], key: str, below: bool, reason: str | None,
              problem: str) -> list[tuple[tuple[Any, ...], str]]:
    """The floor problem of one table, unless its `below_legal_floor` says why; a needless override is one too."""
    if below and reason is None:
        return [((*at, key), f"{problem}; or, if the law allows it here, say why: below_legal_floor = \"...\"")]
    if not below and reason is not None:
        return [((*at, "below_legal_floor"), "nothing here goes below the legal floor; remove the override")]
    return []


def _unknown_field(name: str, rule: Rule, known: frozenset[str]) -> str:
    return (f"unknown field {name!r} for {rule.system} {rule.record_type}; "
            f"known: {', '.join(sorted(known)) or '(none can be anonymised)'}")


def parse_rules(text: str, source: str) -> Rules:
    """Validate a rules file's text; `source` names it in errors."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise BadInput(f"{source}: not valid TOML: {exc}") from None
    if "source" in data:
        raise BadInput(f"{_where(source, text, ('source',))}: unknown key")
    try:
        rules = Rules.model_validate({**data, "source": source})
    except ValidationError as exc:
        raise BadInput("\n".join(f"{_where(source, text, tuple(e['loc']))}: {_pydantic_message(e)}"
                                 for e in exc.errors())) from None
    problems = _references(rules)
    problems += [] if problems else _floor_problems(rules)
    if problems:
        raise BadInput("\n".join(f"{_where(source, text, path)}: {message}" for path, message in problems))
    return rules


def rules_path(explicit: str | Path | None = None) -> Path:
    """The rules file to use: the one named, else ./retention_rules.toml, else the shipped one."""
    if explicit:
        return Path(explicit)
    local = Path.cwd() / RULES_FILE
    return local if local.exists() else SHIPPED_RULES


def load_rules(path: str | Path | None = None) -> Rules:
    """Read and validate a retention rules file (see `rules_path` for which one)."""
    chosen = rules_path(path)
    try:
        text = chosen.read_text(encoding="utf-8")
    except OSError as exc:
        raise BadInput(f"{chosen}: cannot read the rules file ({exc.strerror})") from None
    return parse_rules(text, str(chosen))


# -- the rules an applying purge accepted -----------------------------------------------


class RulesChanged(Exception):
    """The rules differ from those the last applying purge ran with; `diff` shows how (no personal data)."""

    def __init__(self, diff: str):
        super().__init__("the retention rules changed since the last applied run; review the change and accept "
                         "it once: `vergeet purge --apply --accept-rules`\n" + diff)
        self.diff = diff


def canonical(rules: Rules) -> str:
    """What decides a purge, one `key = value` line each in file order: the rules (by id), the exceptions and
    the systems. Comments, wording elsewhere and the controller's details do not count."""
    data = rules.model_dump(mode="json", include={"version", "systems", "exceptions", "rules"}, exclude_none=True)
    data["rules"] = {rule.pop("id"): rule for rule in data["rules"]}
    return "".join(f"{key} = {json.dumps(value, ensure_ascii=False)}\n" for key, value in _flat(data))


def _flat(value: Any, prefix: str = "") -> list[tuple[str, Any]]:
    if isinstance(value, dict) and value:
        return [item for key, inner in value.items() for item in _flat(inner, f"{prefix}{key}.")]
    return [(prefix.rstrip("."), value)]


def rules_change(ledger: Ledger, rules: Rules) -> str:
    """A unified diff from the rules the last applying purge accepted to `rules`; "" when unchanged or when no
    purge has applied rules on this ledger yet."""
    accepted = ledger.accepted_rules()
    current = canonical(rules)
    if accepted is None or accepted == current:
        return ""
    return "".join(difflib.unified_diff(accepted.splitlines(keepends=True), current.splitlines(keepends=True),
                                        "accepted rules", rules.source or "rules", n=1))


def accept_rules(ledger: Ledger, rules: Rules, *, accept: bool = False) -> str:
    """Before an applying purge (the CLI's and the nightly flow's): `RulesChanged` when the rules changed since
    the last applied run and `accept` is not given; else `rules` become the accepted ones. Returns the change
    accepted ("" when there was none: unchanged, or the first applying run on this ledger)."""
    change = rules_change(ledger, rules)
    if change and not accept:
        raise RulesChanged(change)
    current = canonical(rules)
    if ledger.accepted_rules() != current:
        ledger.set_accepted_rules(current)
    return change
