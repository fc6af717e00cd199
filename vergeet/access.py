"""Find everything about one person: the access and portability report.

`find_person` searches every connected system through its `search()` (the
vendors' search and filter endpoints, never a full scan), then expands: the
e-mail addresses and phone numbers on the person's records that were not
searched yet are searched in a next round (an e-mail found in Moneybird with a
phone number finds that number elsewhere), until nothing new turns up or
`MAX_ROUNDS` is reached. Every round searches only identifiers not searched
before, so the vendor calls grow with the number of identifiers, not with the
size of any system.

Who the person is, the identity view decides: the records linked (by e-mail,
phone or a record link) to an e-mail address or phone number the request
names. A name never identifies anyone: it is searched, and a hit linked to
none of those identifiers (a namesake, a calendar entry found by free text) is
a *possible match*, listed by record reference for a human to judge and never
included. So a request must name at least one e-mail address or phone number.

`access_report` turns what was found into the report of DESIGN.md: per record
the vendor's data, purposes, legal bases and retention (the dates `decide`
gives), plus per system the processors that receive the data, the rights and
how to use them, and the request's deadline. The same dict is the JSON export
(stable field names, `REPORT_FORMAT`) and what `render_html` shows.
"""
from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import date, datetime, timezone
from itertools import groupby
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
from jinja2 import Environment, FileSystemLoader, select_autoescape

from connectors.base import Connector, Identifiers, Record, RecordRef
from connectors.http import VendorError
from connectors.matching import name_key
from vergeet import pipeline
from vergeet.decide import Context, Plan, decide
from vergeet.errors import BadInput
from vergeet.identity import IdentityView, normalise_emails, normalise_name, normalise_phones
from vergeet.ledger import Ledger
from vergeet.rules import Period, Rule, Rules
from vergeet.sync import index_records

if TYPE_CHECKING:
    from connectors import Labels

MAX_ROUNDS = 3
REPORT_FORMAT = "vergeet-access-report/1"
LANGUAGES = ("nl", "en")
TEMPLATES = Path(__file__).parent / "templates"

_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_NAME = re.compile(r"[^\W\d_]+(?:[ '’.-]+[^\W\d_]+)*\.?")  # letters, words joined by spaces, hyphens, apostrophes

SearchSystems = Callable[[Mapping[str, Connector], Identifiers], Mapping[str, list[Record]]]


# -- identifiers -----------------------------------------------------------------------------


def classify(values: Iterable[str], names: Iterable[str] = ()) -> Identifiers:
    """Sort identifiers into e-mail addresses and phone numbers (as given, trimmed); names come apart.

    `BadInput` for a value that is neither, for a name with digits or symbols, and for a request that names
    no e-mail address or phone number. Messages give the position, never the value: it may be personal data.
    """
    emails, phones = [], []
    for position, raw in enumerate(values, 1):
        value = raw.strip()
        if _EMAIL.fullmatch(value):
            emails.append(value)
        elif pd.notna(normalise_phones(pd.Series([value])).iloc[0]):
            phones.append(value)
        else:
            raise BadInput(f"identifier {position} is neither an e-mail address nor a phone number (a name is "
                           'given apart: --name on the command line, "names" in a request\'s Secret block)')
    cleaned = [" ".join(name.split()) for name in names]
    for position, name in enumerate(cleaned, 1):
        if not _NAME.fullmatch(name):
            raise BadInput(f"name {position} is not a name (letters, spaces, hyphens and apostrophes only)")
    if not emails and not phones:
        raise BadInput("give at least one e-mail address or phone number: a name alone never identifies a person")
    return Identifiers(tuple(emails), tuple(phones), tuple(cleaned))


def normalise(identifiers: Identifiers) -> Identifiers:
    """E-mail addresses case-folded, phone numbers in E.164: the form searched, linked and hashed."""
    emails = normalise_emails(pd.Series(identifiers.emails, dtype="string")).dropna()
    phones = normalise_phones(pd.Series(identifiers.phones, dtype="string")).dropna()
    return Identifiers(tuple(dict.fromkeys(emails)), tuple(dict.fromkeys(phones)), identifiers.names)


def _pairs(identifiers: Identifiers) -> set[tuple[str, str]]:
    return ({("email", e) for e in identifiers.emails} | {("phone", p) for p in identifiers.phones}
            | {("name", n) for n in identifiers.names})


def _from_pairs(pairs: Iterable[tuple[str, str]]) -> Identifiers:
    ordered = sorted(pairs)
    return Identifiers(*(tuple(v for k, v in ordered if k == kind) for kind in ("email", "phone", "name")))


# -- the request register --------------------------------------------------------------------


def identifier_hashes(ledger: Ledger, identifiers: Identifiers) -> list[str]:
    """Keyed hashes of the normalised e-mail addresses and phone numbers: all the ledger ever holds of them."""
    normal = normalise(identifiers)
    return ([ledger.hash_identifier("email", e) for e in normal.emails]
            + [ledger.hash_identifier("phone", p) for p in normal.phones])


def register_request(ledger: Ledger, identifiers: Identifiers, rules: Rules, *, received: date,
                     verified_by: str = "", kind: str = "access", scope: str = "all", label: str = "") -> dict:
    """The open request of this kind and scope that shares an identifier with these, else a new one.

    Running `find` again for the same person (a retry, a second format) answers the same request; the
    deadline is `received` + the rules' `answer_within`. `verified_by` notes how identity was checked, `label`
    is the owner's name for the request (neither may hold personal data).
    """
    hashes = identifier_hashes(ledger, identifiers)
    for request in ledger.list_requests():
        shares = set(hashes) & set(request["identifier_hashes"])
        if request["kind"] == kind and request["scope"] == scope and shares:
            return request
    answer_within = rules.rights.answer_within.after(received) - received
    request_id = ledger.register_request(kind, hashes, received=received, verified_by=verified_by, scope=scope,
                                         answer_within=answer_within, label=label)
    return ledger.get_request(request_id)


# -- finding ---------------------------------------------------------------------------------


class SearchFailed(Exception):
    """A system could not be searched: a report without it would not be complete."""


def search(connector: Connector, identifiers: Identifiers) -> list[Record]:
    """One system's hits; a vendor error becomes `SearchFailed` naming the system (never an identifier)."""
    try:
        return list(connector.search(identifiers))
    except VendorError as exc:
        raise SearchFailed(f"could not search {connector.system}: {exc}") from None


def search_all(connectors: Mapping[str, Connector], identifiers: Identifiers) -> dict[str, list[Record]]:
    """One round: every system in turn (the flow runs them as concurrent tasks instead)."""
    return {system: search(connector, identifiers) for system, connector in connectors.items()}


@dataclass
class Found:
    """Every hit of a search, the identity view over them, and which of its people the request is about."""

    systems: tuple[str, ...]
    hits: dict[str, Record]  # record key "system/record_type/record_id" -> record
    view: IdentityView
    people: frozenset[int]
    names: tuple[str, ...]  # the names searched, to tell a namesake from a free-text hit
    searched: Identifiers  # normalised: those asked for and those found by expansion
    rounds: int
    unsearched: int  # identifiers found in the last round allowed, left unsearched
    former: frozenset[str] = frozenset()  # keys found only through the identity index, by identifiers they lost
    #: systems holding records that carry a name only (`Connector.name_only_records`) where no name was searched
    unnamed: tuple[str, ...] = ()

    @property
    def mentions(self) -> pd.DataFrame:
        """The person's records, one row each, in the view's columns."""
        m = self.view.mentions
        return m[m["person"].isin(self.people)].drop_duplicates("key")

    def records(self) -> list[Record]:
        """The person's records as the connectors gave them."""
        return [self.hits[key] for key in self.mentions["key"]]

    def possible_matches(self) -> list[dict[str, str]]:
        """Hits linked to none of the identifiers asked for: record references only, with how they were found."""
        m = self.view.mentions
        others = m[~m["key"].isin(self.mentions["key"])]
        namesakes = set().union(*(self.view.possible_matches(name) for name in self.names))
        # a shared record (a meeting) is a namesake's when any of the people it concerns is one
        named = others["person"].isin(namesakes).groupby(others["key"], sort=False).any()
        return [{"system": row.system, "record_type": row.record_type, "record_id": str(row.record_id),
                 "found_by": "same_name" if named[row.key] else "text_search"}
                for row in others.drop_duplicates("key").itertuples(index=False)]


def find_person(connectors: Mapping[str, Connector], identifiers: Identifiers, rules: Rules, *,
                search_systems: SearchSystems = search_all, max_rounds: int = MAX_ROUNDS,
                ledger: Ledger | None = None) -> Found:
    """Search every system for the person, expanding through the identifiers on their records.

    `identifiers` must hold an e-mail address or a phone number (see `classify`). `search_systems` runs one
    round of searches; the Prefect flow passes one that runs each system as a task.

    With `ledger`, each round first looks the round's identifiers up in the identity index (keyed hashes, one
    query, and one more for the records that link to what it found: a contact's invoices, a customer's
    payments), searches the vendors as before, and reads by id what the index knows and the search did not
    find (gone records are None and stay out). A record the index maps to an identifier asked for belongs to
    the person even when it no longer carries it (anonymised, changed): in the identity view it carries it
    again, so it links and expands like any other. Every record seen goes into the index.
    """
    asked = normalise(identifiers)
    linking = _pairs(replace(asked, names=()))
    if not linking:
        raise ValueError("a name alone never identifies a person: give an e-mail address or a phone number")
    pending, searched = _pairs(asked), set()
    hits: dict[str, Record] = {}
    searched_hits: set[str] = set()  # found by a vendor search
    mapped: dict[str, set[tuple[str, str]]] = {}  # record key -> identifiers the index mapped to it
    rounds = 0
    while pending and rounds < max_rounds:
        rounds += 1
        indexed = _index_lookup(ledger, pending) if ledger is not None else {}
        for records in search_systems(connectors, _from_pairs(pending)).values():
            hits.update((str(record.ref), record) for record in records)
        searched_hits.update(hits)
        if ledger is not None:
            owned = _owned_lookup(ledger, [key for key, pairs in indexed.items()
                                           if any(kind != "name" for kind, _ in pairs)])
            hits.update(_read(connectors, {key: None for key in indexed} | owned, hits))
        for key, pairs in indexed.items():
            mapped.setdefault(key, set()).update(pairs)
        searched |= pending
        view = pipeline.identity_view({"hits": [_as_indexed(hits[key], mapped.get(key, ())) for key in hits]}, rules)
        people = view.people_with_identifiers(linking)
        on_their_records = view.identifiers[view.identifiers["person"].isin(people)]
        pending = set(zip(on_their_records["kind"], on_their_records["value"])) - searched
    named_only = {system: c for system, c in connectors.items() if getattr(c, "name_only_records", False)}
    names = asked.names + _names_to_ask(named_only, search_systems, view, people, asked.names, hits)
    if len(names) > len(asked.names):
        view = pipeline.identity_view({"hits": [_as_indexed(hits[key], mapped.get(key, ())) for key in hits]}, rules)
        people = view.people_with_identifiers(linking)
    if ledger is not None:
        index_records(ledger, list(hits.values()))
    former = frozenset(key for key in hits if key not in searched_hits and key in mapped
                       and not _carries(hits[key], mapped[key]))
    return Found(tuple(connectors), hits, view, frozenset(people), names, _from_pairs(searched), rounds,
                 len(pending), former, () if names else tuple(named_only))


def _names_to_ask(named_only: Mapping[str, Connector], search_systems: SearchSystems, view: IdentityView,
                  people: Iterable[int], asked: tuple[str, ...], hits: dict[str, Record]) -> tuple[str, ...]:
    """The names on the person's records, searched once more in `named_only`, the systems that hold records
    carrying a name only (`Connector.name_only_records`: Zoom hides guests' addresses); their hits go into `hits`.
    A name never links, so what they find is a possible match for a human to judge. The names searched beyond
    `asked`."""
    m = view.mentions
    names = set(m.loc[m["person"].isin(list(people)), "full_name"].dropna()) - {name_key(n) for n in asked}
    if not named_only or not names:
        return ()
    extra = tuple(sorted(names))
    for records in search_systems(named_only, Identifiers(names=extra)).values():
        hits.update((str(record.ref), record) for record in records)
    return extra


def _index_lookup(ledger: Ledger, pairs: set[tuple[str, str]]) -> dict[str, set[tuple[str, str]]]:
    """Record key -> the normalised identifiers (of `pairs`) the identity index maps to it: one query."""
    hashes: dict[str, tuple[str, str]] = {}
    for kind, value in pairs:
        if kind == "name":
            name = normalise_name(pd.Series([value]), pd.Series([""])).iloc[0]  # as `IdentityView.possible_matches`
            if pd.isna(name):
                continue
            value = name
        hashes[ledger.hash_identifier(kind, value)] = (kind, value)
    found: dict[str, set[tuple[str, str]]] = {}
    for hashed, keys in ledger.indexed_records(hashes).items():
        for key in keys:
            found.setdefault(key, set()).add(hashes[hashed])
    return found


def _owned_lookup(ledger: Ledger, keys: list[str]) -> dict[str, RecordRef]:
    """Record key -> the record among `keys` it links to (an invoice's contact, a payment's customer): one query."""
    targets = {ledger.hash_identifier("link", key): key for key in keys}
    return {owned: _ref(target) for hashed, owners in ledger.indexed_records(targets).items()
            for target in [targets[hashed]] for owned in owners}


def _read(connectors: Mapping[str, Connector], wanted: Mapping[str, RecordRef | None],
          hits: Mapping[str, Record]) -> dict[str, Record]:
    """The records of `wanted` (key -> the record it lives under, if any) not in `hits`, read by id where their
    system is connected; gone ones are left out. A vendor error becomes `SearchFailed`."""
    out: dict[str, Record] = {}
    for key, parent in sorted(wanted.items()):
        ref = _ref(key)
        connector = connectors.get(ref.system)
        if key in hits or connector is None:
            continue
        try:
            record = connector.read(ref, parent)
        except VendorError as exc:
            raise SearchFailed(f"could not read {ref.system} {ref.record_type} {ref.record_id}: {exc}") from None
        except ValueError:
            continue  # not addressable on its own (a Mollie mandate without its customer): the search finds it
        if record is not None:
            out[key] = record
    return out


def _as_indexed(record: Record, pairs: Iterable[tuple[str, str]]) -> Record:
    """The record as the identity view links it: with the e-mail addresses and phone numbers the index mapped to
    it (former ones included); names never link, so they are not added."""
    emails = tuple(value for kind, value in pairs if kind == "email")
    phones = tuple(value for kind, value in pairs if kind == "phone")
    if not emails and not phones:
        return record
    return replace(record, emails=record.emails + emails, phones=record.phones + phones)


def _carries(record: Record, pairs: Iterable[tuple[str, str]]) -> bool:
    """Whether the record, as the vendor has it now, carries any of these linking identifiers."""
    own = _pairs(normalise(Identifiers(record.emails, record.phones)))
    return bool(own & {pair for pair in pairs if pair[0] != "name"})


def _ref(key: str) -> RecordRef:
    return RecordRef(*key.split("/", 2))


# -- the report ------------------------------------------------------------------------------

_TEXT = {
    "nl": {
        "name_only": "{system} laat het e-mailadres van wie zonder inschrijving deelnam niet zien, alleen de naam "
                     "waarmee die deelnam, en er is op geen naam gezocht: noem mij de naam die je daar gebruikte, "
                     "dan zoek ik opnieuw",
        "units": {"years": ("jaar", "jaar"), "months": ("maand", "maanden"), "weeks": ("week", "weken"),
                  "days": ("dag", "dagen")},
        "clocks": {"last_contact": "het laatste contact", "last_activity": "de laatste activiteit",
                   "created": "het aanmaken", "document_date": "de datum van het document",
                   "consent_withdrawn": "het uitschrijven", "consent_changed": "de aanmelding of afmelding"},
        "after": "{period} na {clock}", "at_once": "direct na {clock}",
        "due": "de bewaartermijn ({period}) is voorbij",
        "open_ended": "zolang dit geldt: {why}",
        "left_alone": "niet automatisch beoordeeld: de verwerkingsverantwoordelijke beoordeelt dit gegeven zelf",
        "check_by_hand": "zoek de persoon hier met de hand op",
        "not_connected_check": "niet gekoppeld aan vergeet, dus niet doorzocht; zoek de persoon daar op",
        "done_before": "op {date} onherkenbaar gemaakt: wat naar jou verwees is eruit gehaald",
        "no_rule": "geen bewaarregel voor dit soort gegevens; vraag het na bij de verwerkingsverantwoordelijke",
        "retained_by": "bewaard door {name} onder diens eigen wettelijke plicht",
        "rights": {"access": "inzage", "rectification": "correctie", "erasure": "verwijdering",
                   "withdraw_consent": "intrekken van toestemming", "objection": "bezwaar",
                   "portability": "gegevensoverdraagbaarheid"},
        "redacted": "[gegevens van een andere deelnemer]",
    },
    "en": {
        "name_only": "{system} does not show the e-mail address of someone who took part without registering, "
                     "only the name they used, and no name was searched: tell me the name you used there and I "
                     "will search again",
        "units": {"years": ("year", "years"), "months": ("month", "months"), "weeks": ("week", "weeks"),
                  "days": ("day", "days")},
        "clocks": {"last_contact": "the last contact", "last_activity": "the last activity",
                   "created": "creation", "document_date": "the document's date",
                   "consent_withdrawn": "unsubscribing", "consent_changed": "signing up or unsubscribing"},
        "after": "{period} after {clock}", "at_once": "immediately after {clock}",
        "due": "the retention period ({period}) is over",
        "open_ended": "as long as this holds: {why}",
        "left_alone": "not decided automatically: the controller reviews this record by hand",
        "check_by_hand": "look the person up here by hand",
        "not_connected_check": "not connected to vergeet, so not searched; look the person up there",
        "done_before": "made unrecognisable on {date}: what pointed to you was removed",
        "no_rule": "no retention rule for this kind of data; ask the controller",
        "retained_by": "kept by {name} under its own legal duty",
        "rights": {"access": "access", "rectification": "rectification", "erasure": "erasure",
                   "withdraw_consent": "withdrawal of consent", "objection": "objection",
                   "portability": "data portability"},
        "redacted": "[another participant's data]",
    },
}


def duration_text(period: Period, lang: str) -> str:
    """`P4W` -> "4 weken" / "4 weeks"; empty for a period of zero."""
    units = _TEXT[lang]["units"]
    return " ".join(f"{n} {units[unit][n != 1]}" for unit in ("years", "months", "weeks", "days")
                    if (n := getattr(period, unit)))


def by_hand_text(lang: str) -> str:
    """What the owner does at a processor whose rules give no `check` text of their own."""
    return _TEXT[lang]["check_by_hand"]


def left_alone_text(lang: str) -> str:
    """What a person reads about a record vergeet does not decide on (`Record.left_alone`)."""
    return _TEXT[lang]["left_alone"]


def period_text(period: Period, clock: str, lang: str) -> str:
    """`P1Y` from `last_contact` -> "1 jaar na het laatste contact" / "1 year after the last contact"."""
    text, duration = _TEXT[lang], duration_text(period, lang)
    clock_text = text["clocks"][clock]
    return text["after"].format(period=duration, clock=clock_text) if duration else \
        text["at_once"].format(clock=clock_text)


def decision_context(ledger: Ledger, as_of: date) -> Context:
    """The ledger's holds, suppressions and past anonymisations, without open requests.

    An open request pauses deletion; the report states what the rules themselves keep, and until when.
    """
    return replace(pipeline.ledger_context(ledger, as_of), open_request_hashes=frozenset())


def access_report(found: Found, rules: Rules, *, subject: Identifiers, as_of: date, lang: str = "nl",
                  context: Context = Context(), request: dict | None = None,
                  generated_at: datetime | None = None,
                  tasks: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, Any]:
    """The access and portability report (a JSON-ready dict) about what `find_person` found; `tasks` as in
    `coverage`."""
    plan = decide(found.view, rules, as_of, context)
    identifiers = found.view.identifiers
    theirs = set(identifiers.loc[identifiers["person"].isin(found.people), "value"])
    records = [_record_entry(found.hits[row.key], row.person, plan, rules, lang, theirs)
               for row in found.mentions.itertuples(index=False)]
    records.sort(key=lambda r: (found.systems.index(r["system"]), _rule_order(rules, r["retention"]["rule_id"]),
                                r["record_type"], r["record_id"]))
    return {
        "format": REPORT_FORMAT,
        "language": lang,
        "subject": {"emails": list(subject.emails), "phones": list(subject.phones), "names": list(subject.names)},
        "generated_at": (generated_at or datetime.now(timezone.utc)).isoformat(timespec="seconds"),
        "as_of": as_of.isoformat(),
        "controller": rules.controller.model_dump(),
        "request": _request_entry(request),
        "records": records,
        "systems": [_system_entry(system, records, rules, lang, unnamed=system in found.unnamed)
                    for system in found.systems]
        + [entry for entry in coverage(rules, found.systems, lang, tasks) if entry["status"] != "searched"],
        "rights": _rights_entry(rules, lang),
        "possible_matches": found.possible_matches(),
        "search": {"rounds": found.rounds, "identifiers_searched": len(_pairs(found.searched)),
                   "identifiers_left_unsearched": found.unsearched},
    }


def _rule_order(rules: Rules, rule_id: str | None) -> int:
    return next((i for i, rule in enumerate(rules.rules) if rule.id == rule_id), len(rules.rules))


def _request_entry(request: dict | None) -> dict | None:
    if request is None:
        return None
    return {"id": request["id"], "received": request["received"].isoformat(),
            "deadline": request["deadline"].isoformat()}


def _record_entry(record: Record, person: int, plan: Plan, rules: Rules, lang: str,
                  theirs: set[str]) -> dict[str, Any]:
    """One record with why it is held and how long; in a shared record, other people's entries are blanked."""
    key = str(record.ref)
    kept = plan.kept[(plan.kept["key"] == key) & (plan.kept["person"] == person)]
    actions = plan.actions[(plan.actions["key"] == key) & (plan.actions["person"] == person)]
    rule = _deciding_rule(record, rules, kept, actions)
    purposes = rule.purposes if rule else _system_purposes(rules, record.system)
    bases = dict.fromkeys(rules.purposes[p].legal_basis for p in purposes)
    data = _portable(record.fields)
    if record.shared:
        others = set(normalise_emails(pd.Series(record.emails, dtype="string")).dropna()) - theirs
        data = _redacted(data, others, _TEXT[lang]["redacted"])
    return {
        "system": record.system,
        "record_type": record.record_type,
        "record_id": record.record_id,
        "label": getattr(rule, lang) if rule else record.record_type,
        "data": data,
        "purpose": [{"key": name, "number": rules.purposes[name].number, "text": getattr(rules.purposes[name], lang),
                     "legal_basis": rules.purposes[name].legal_basis} for name in purposes],
        "legal_basis": [{"key": basis, "text": getattr(rules.legal_bases[basis], lang),
                         "gdpr": rules.legal_bases[basis].gdpr} for basis in bases],
        "retention": _retention(rule, kept, actions, rules, plan.as_of, lang)
        | _done_before(plan.done_before[plan.done_before["key"] == key], lang),
    }


def _done_before(done: pd.DataFrame, lang: str) -> dict[str, Any]:
    """What an earlier run already did to the record (anonymised it): said, with when, instead of a period."""
    if done.empty:
        return {}
    when = done["since"].iloc[0]
    return {"done_before": {"action": done["action"].iloc[0], "at": when.isoformat(timespec="seconds")},
            "why": _TEXT[lang]["done_before"].format(date=_long_date(when.date().isoformat(), lang))}


def _system_purposes(rules: Rules, system: str) -> list[str]:
    return rules.systems[system].purposes if system in rules.systems else []


def _deciding_rule(record: Record, rules: Rules, kept: pd.DataFrame, actions: pd.DataFrame) -> Rule | None:
    """The rule the decision names for this record, else the first rule for its kind."""
    named = list(kept["rule_id"]) + list(actions["rule_id"])
    if named:
        return rules.rule(named[0])
    candidates = rules.rules_for(record.system, record.record_type)
    return candidates[0] if candidates else None


def _retention(rule: Rule | None, kept: pd.DataFrame, actions: pd.DataFrame, rules: Rules, as_of: date,
               lang: str) -> dict[str, Any]:
    """Until when the record is kept and why; `due` when its period is over and `next_run` deletes or
    anonymises it (a record kept for an invoice can still lose the fields the invoice does not need)."""
    text = _TEXT[lang]
    entry: dict[str, Any] = {"until": None, "why": text["no_rule"], "rule_id": None, "exceptions": [],
                             "legal_basis": None, "due": False, "next_run": None, "retained_by": None}
    if rule is None:
        return entry
    period = period_text(rule.period, rule.clock, lang)
    entry |= {"rule_id": rule.id, "why": period, "retained_by": rule.retained_by}
    if rule.retained_by:
        owner = rules.processors[rule.retained_by].name if rule.retained_by in rules.processors else rule.retained_by
        entry["why"] += "; " + text["retained_by"].format(name=owner)
    if len(actions):
        action = actions.iloc[0]
        entry["next_run"] = {"action": action["action"], "fields": list(action["fields"])}
    if len(kept):
        return entry | _kept_reason(kept.iloc[0], rules, lang)
    if entry["next_run"]:
        entry |= {"until": as_of.isoformat(), "due": True, "why": text["due"].format(period=period)}
    return entry


def _kept_reason(kept: pd.Series, rules: Rules, lang: str) -> dict[str, Any]:
    exceptions = [e for e in kept["exceptions"].split(",") if e]
    until = kept["retained_until"]
    reason: dict[str, Any] = {"until": None if pd.isna(until) else until.isoformat(), "exceptions": exceptions}
    if pd.notna(kept["left_alone"]):
        return reason | {"why": left_alone_text(lang)}
    if exceptions:
        first = rules.exceptions[exceptions[0]]
        why = "; ".join(getattr(rules.exceptions[e], lang) for e in exceptions)
        reason |= {"legal_basis": first.legal_basis,
                   "why": why if reason["until"] else _TEXT[lang]["open_ended"].format(why=why)}
    return reason


def coverage(rules: Rules, searched: Iterable[str], lang: str,
             tasks: Mapping[str, Mapping[str, Any]] | None = None, unnamed: Iterable[str] = ()
             ) -> list[dict[str, Any]]:
    """Per system of the rules file whether it was searched or is not connected, then every processor vergeet
    has no connector for, with what the owner must check there by hand: what a person's answer covers.

    With `tasks` (subject -> `tasks.public` entry), each place not searched says where its task by hand stands;
    each searched system of `unnamed` says what a search without a name did not cover (`name_only_limit`).
    """
    searched, unnamed = list(searched), set(unnamed)
    entries = [{"system": system, "name": rules.system_name(system), "status": "searched"}
               | ({"limit": name_only_limit(rules.system_name(system), lang)} if system in unnamed else {})
               for system in searched]
    entries += [{"system": system, "name": rules.system_name(system), "status": "not_connected"}
                for system in rules.systems if system not in searched]
    entries += [{"system": key, "name": processor.name_in(lang), "status": "checked_by_hand",
                 "service": processor.service_in(lang), "role": processor.role,
                 "check": getattr(processor.check, lang) if processor.check else by_hand_text(lang)}
                for key, processor in rules.processors.items() if processor.system is None]
    if tasks is not None:
        entries = [entry | {"task": tasks.get(entry["system"])} if entry["status"] != "searched" else entry
                   for entry in entries]
    return entries


def checklist(entries: Iterable[Mapping[str, Any]], lang: str = "en") -> list[str]:
    """For the owner, before the answer goes out: the systems vergeet did not search, and what to check there
    (`entries` from `coverage` in `lang`)."""
    lines = []
    for entry in entries:
        if entry["status"] == "not_connected":
            lines.append(f"{entry['name']}: {_TEXT[lang]['not_connected_check']}")
        elif entry["status"] == "checked_by_hand":
            lines.append(f"{entry['name']}: {entry['check']}")
    return lines


def _system_entry(system: str, records: list[dict], rules: Rules, lang: str, *, unnamed: bool = False
                  ) -> dict[str, Any]:
    """A searched system's entry; `unnamed`: it holds records that carry a name only, and no name was searched."""
    processors = rules.processors_of(system)
    own = rules.system_name(system)
    limit = {"limit": name_only_limit(own, lang)} if unnamed else {}
    return {"system": system, "name": own, "status": "searched", **limit,
            "records": sum(r["system"] == system for r in records),
            "may_leave_eea": any(p.outside_eea for p in processors),
            "processors": [{"name": p.name_in(lang), "role": p.role, "service": p.service_in(lang),
                            "outside_eea": p.outside_eea} for p in processors]}


def name_only_limit(system_name: str, lang: str) -> str:
    """What a search of a system with name-only records did not cover when no name was searched."""
    return _TEXT[lang]["name_only"].format(system=system_name)


def _rights_entry(rules: Rules, lang: str) -> dict[str, Any]:
    rights, controller = rules.rights, rules.controller
    return {"available": [{"key": r, "text": _TEXT[lang]["rights"][r]} for r in rights.available],
            "contact": rights.contact,
            "answer_within": {"period": str(rights.answer_within), "text": duration_text(rights.answer_within, lang)},
            "identity_verification": rights.identity_verification,
            "under_16": rights.under_16,
            "complaint": {"authority": controller.supervisory_authority, "url": controller.supervisory_authority_url}}


def _portable(fields: Mapping[str, Any]) -> dict[str, Any]:
    """The vendor's fields as plain JSON; keys starting with "_" are the connector's notes, not vendor data."""
    return json.loads(json.dumps({k: v for k, v in fields.items() if not k.startswith("_")}, default=str))


def _redacted(value: Any, others: set[str], placeholder: str) -> Any:
    """`value` with every part naming another person's e-mail (an attendee entry, say) replaced."""
    if isinstance(value, str):
        return placeholder if value.strip().casefold() in others else value
    if isinstance(value, list):
        return [_redacted(item, others, placeholder) for item in value]
    if isinstance(value, dict):
        if any(isinstance(v, str) and v.strip().casefold() in others for v in value.values()):
            return placeholder
        return {k: _redacted(v, others, placeholder) for k, v in value.items()}
    return value


def report_json(report: dict[str, Any]) -> str:
    return json.dumps(report, ensure_ascii=False, indent=2)


# -- the HTML page ---------------------------------------------------------------------------

_MONTHS = {"nl": ("januari", "februari", "maart", "april", "mei", "juni", "juli", "augustus", "september",
                  "oktober", "november", "december"),
           "en": ("January", "February", "March", "April", "May", "June", "July", "August", "September",
                  "October", "November", "December")}
#: fields that name a record for a reader, and that date it, in the vendors' own names
#: a document's own number: Moneybird's invoice and quote, WooCommerce's order
_NUMBER_FIELDS = ("invoice_id", "estimate_id", "number")
_TITLE_FIELDS = (*_NUMBER_FIELDS, "company_name", "summary", "description", "name", "subject", "topic")
_NAME_FIELDS = ("firstname", "lastname", "firstName", "lastName")
#: a record's own date (a message's Date); a record with none of them is dated by when it was created
#: the date a record is about (a document's, an appointment's, a mail's, an order's, a Zoom session's)
_OWN_DATE_FIELDS = ("invoice_date", "estimate_date", "start.dateTime", "start.date", "date", "date_created",
                    "start_time")
_DATE_FIELDS = (*_OWN_DATE_FIELDS, "createdAt", "created_at", "cdate")


def html_environment(lang: str) -> Environment:
    """The Jinja2 environment of every page vergeet writes for a person, with its filters in `lang`."""
    environment = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]),
                              trim_blocks=True, lstrip_blocks=True)
    environment.filters["long_date"] = lambda iso: _long_date(iso, lang)
    environment.filters["flat"] = lambda data: list(_flat(data))
    environment.filters["field_label"] = lambda field, system: _field_label(system, field, lang)
    environment.filters["capitalize_first"] = lambda text: text[:1].upper() + text[1:]
    return environment


def write_private(path: Path, text: str) -> None:
    """Write a document that holds personal data so that only its owner can read it (mode 0600), also over a
    file that was there before with wider permissions."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        os.chmod(path, 0o600)
        file.write(text)


def write_report(report: dict[str, Any], directory: Path) -> list[Path]:
    """The report as JSON (the portability export) and as the HTML page for the person, each readable by its
    owner only; the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    stem = directory / f"access-request-{report['request']['id']}"
    paths = [stem.with_suffix(".json"), stem.with_suffix(".html")]
    write_private(paths[0], report_json(report))
    write_private(paths[1], render_html(report))
    return paths


def render_html(report: dict[str, Any]) -> str:
    """The report as one self-contained HTML page (inline CSS, no external resources) in its language."""
    lang = report["language"]
    return html_environment(lang).get_template("access_report.html").render(
        report=report, lang=lang, sections=_sections(report))


def _sections(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Per system its records grouped by the rule that keeps them, each record with a title and a date."""
    sections, lang = [], report["language"]
    for system in (s for s in report["systems"] if s["status"] == "searched"):
        records = [r for r in report["records"] if r["system"] == system["system"]]
        groups = [list(group) for _, group in groupby(records, key=lambda r: r["retention"]["rule_id"])]
        sections.append(system | {"groups": [_group(group, lang) for group in groups]})
    return sections


def _group(records: list[dict[str, Any]], lang: str = "nl") -> dict[str, Any]:
    """Records under one rule; a retention reason they all share is shown once, above them."""
    reasons = {json.dumps([r["retention"]["why"], r["retention"]["next_run"]]) for r in records}
    return {"first": records[0], "records": [_titled(r, lang) for r in records],
            "shared_retention": records[0]["retention"] if len(reasons) == 1 else None}


def _titled(record: dict[str, Any], lang: str = "nl") -> dict[str, Any]:
    """The record with a title a person recognises (an invoice's number, an appointment's date and time, a
    name), its date, and `fields`: its labelled fields as (label, value) in `lang` (see `_labelled`)."""
    flat = dict(_flat(record["data"]))
    when = next((str(flat[f])[:10] for f in _DATE_FIELDS if flat.get(f)), None)
    name = " ".join(str(flat[f]) for f in _NAME_FIELDS if flat.get(f))
    if record["system"] == "google_calendar" and when:
        title = _long_date(when, lang) + _clock(flat.get("start.dateTime"), lang)
    else:
        title = (next((str(flat[f]) for f in _TITLE_FIELDS if flat.get(f)), None) or name
                 or str(flat.get("email") or "").strip() or record["label"])
    return record | {"title": title, "date": when, "fields": _labelled(record["system"], record["data"], lang)}


def reference(record: Record, lang: str = "nl") -> str | None:
    """How a person recognises a record without reading its personal data again: an invoice's or quote's
    number, else the date (and an appointment's time) it was made for; None when it has neither.

    The erasure certificate names records this way: a name or address would repeat what was erased."""
    flat = dict(_flat(record.fields))
    number = next((str(flat[f]) for f in _NUMBER_FIELDS if flat.get(f)), None)
    if number:
        return number
    field = next((f for f in _DATE_FIELDS if flat.get(f)), None)
    if field is None:
        return None
    when = _long_date(str(flat[field]), lang) + _clock(flat.get("start.dateTime"), lang)
    return when if field in _OWN_DATE_FIELDS else ("aangemaakt op " if lang == "nl" else "created on ") + when


_API_URL = re.compile(r"https?://[^\s]*(?:/api/|/v\d+/|googleapis\.com|api\.mollie\.com|\.api-us1\.com)")
#: date-time fields whose time of day a reader needs (an appointment's start and end)
_TIMED_FIELDS = ("start.dateTime", "end.dateTime")
_ISO = re.compile(r"\d{4}-\d{2}-\d{2}(?:[T ][\d:.]+(?:Z|[+-]\d{2}:?\d{2})?)?")


def _labelled(system: str, data: Any, lang: str) -> list[tuple[str, Any]]:
    """The fields of a record a person reads: those the connector labels (`connectors.record_labels`), with
    the label in `lang`, codes in words and dates written out; unlabelled and technical fields and any value
    that is an API URL are left out (the JSON export keeps them all)."""
    labels, values, own_entries = _labels(system)
    column = LANGUAGES.index(lang)
    leaves = list(_flat(data))
    own = tuple(path.rsplit(".", 1)[0] + "." for path, value in leaves if value is True
                and _pattern(path)[0] in own_entries)
    shown = []
    for path, value in leaves:
        pattern, positions = _pattern(path)
        if pattern not in labels or (isinstance(value, str) and _API_URL.match(value)) or path.startswith(own):
            continue
        label = labels[pattern][column].format(n=positions[0] + 1 if positions else "")
        coded = values.get(pattern, {}).get(str(value))
        if coded:
            value = coded[column]
        elif isinstance(value, str) and _ISO.fullmatch(value.strip()):
            value = _long_date(value.strip(), lang) + (_clock(value, lang) if pattern in _TIMED_FIELDS else "")
        shown.append((label, value))
    return shown


def _labels(system: str) -> Labels:
    import connectors  # lazily: only the connector module of the system asked about is loaded
    return connectors.record_labels(system)


def _pattern(path: str) -> tuple[str, list[int]]:
    """"attendees[0].email" -> ("attendees[].email", [0]): the path as a label table names it."""
    positions = [int(n) for n in re.findall(r"\[(\d+)\]", path)]
    return re.sub(r"\[\d+\]", "[]", path), positions


def _field_label(system: str, field: str, lang: str) -> str | None:
    """A field's label as part of a sentence ("e-mailadres voor facturen"), None where the connector has none."""
    label = _labels(system).fields.get(field)
    if not label:
        return None
    text = label[LANGUAGES.index(lang)]
    return text if text[:2].isupper() else text[:1].lower() + text[1:]


def _clock(iso: Any, lang: str) -> str:
    """", 11:00" / " at 11:00" for an ISO date-time in its own offset; empty for a date."""
    match = re.match(r"\d{4}-\d{2}-\d{2}[T ](\d{2}:\d{2})", str(iso or ""))
    if not match:
        return ""
    return (", " if lang == "nl" else " at ") + match.group(1)


def _flat(value: Any, prefix: str = "") -> Iterable[tuple[str, Any]]:
    """Non-empty leaves of nested vendor data as ("attendees[0].email", value) pairs."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _flat(item, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _flat(item, f"{prefix}[{index}]")
    elif value not in (None, ""):
        yield prefix, value


def _long_date(iso: str | None, lang: str) -> str:
    if not iso:
        return ""
    day = date.fromisoformat(iso[:10])
    return f"{day.day} {_MONTHS[lang][day.month - 1]} {day.year}"

