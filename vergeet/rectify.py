"""Rectification requests: register, plan, approve, correct, verify, confirm.

The person is found as `find` finds them (the identity index, then every vendor's search, expanding through the
identifiers on their records). Each connector says per record what setting the new values would change and what
the record must keep, and why (`Connector.plan_correction`); the owner approves that plan; each record is then
corrected with the vendor's own update call through the ledger (an action of kind "correct": intent before the
call, outcome after) and read again to verify. A run killed halfway is finished by running the same request
again: the records corrected before show the new values and are not written twice.

The new values live in memory and in the confirmation for the person only. The ledger holds the request (hashes
of the identifiers it names), record ids, field names and outcomes; the identity index learns the new
identifiers' hashes from the records read back, and keeps the old ones, so the old address still finds them.
A new e-mail address or phone number that already belongs to another person's records is refused: two people
would become one.
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd
from rich.console import Group
from rich.table import Table
from rich.text import Text

from connectors.base import CORRECTABLE_FIELDS, Connector, FieldChange, Identifiers, Outcome, Record
from connectors.http import VendorError
from vergeet import pipeline
from vergeet.access import (_EMAIL, _NAME, SearchSystems, coverage, find_person, normalise, reference,
                            register_request, search_all)
from vergeet.erasure import write_document
from vergeet.errors import BadInput
from vergeet.identity import normalise_emails, normalise_phones
from vergeet.ledger import Ledger, PlannedAction
from vergeet.mask import mask_email, mask_phone
from vergeet.rules import Rules
from vergeet.sync import index_records

FORMAT = "vergeet-rectification-confirmation/1"
ACTION = "correct"  # the ledger's action kind
RULE = "rectification"  # what the ledger's actions and outcome counts name as their rule
VENDOR_REFUSED = Outcome.NOT_SUPPORTED.value  # a write the vendor refused: the record keeps its values
ADDRESS = "address"
#: what `--set` accepts: the correctable fields, and "address" for street, postcode and city in one value
SETTABLE = (*CORRECTABLE_FIELDS, ADDRESS)
ADDRESS_PARTS = tuple(f for f in CORRECTABLE_FIELDS if f.startswith(ADDRESS + "."))

# A Dutch postcode: four digits, the first not 0, and two letters; PostNL issues no SA, SD or SS.
_POSTCODE = re.compile(r"([1-9]\d{3}) ?(?!SA|SD|SS)([A-Z]{2})")
_ADDRESS = re.compile(r"(?P<street>[^,]+?)\s*,\s*(?P<postcode>\d{4}\s?[A-Za-z]{2})\s+(?P<city>\S.*)")

WORDS = {
    "nl": {
        "fields": {"name": "naam", "email": "e-mailadres", "phone": "telefoonnummer",
                   "address.street": "straat en huisnummer", "address.postcode": "postcode", "address.city": "plaats"},
        "refusals": {
            "issued_document": "een uitgereikte factuur houdt de naam en het adres waarop zij is uitgereikt: dat "
                               "schrijft de wet voor (art. 35a Wet op de omzetbelasting 1968); een correctie gaat "
                               "via een creditfactuur",
            "sent_quote": "een verstuurde offerte legt het aanbod vast zoals het toen is gedaan, aan wie het toen "
                          "gericht was",
            "vendor_read_only": "{system} biedt geen manier om dit gegeven te wijzigen",
            "past_event": "een afspraak die al geweest is, blijft vastgelegd zoals zij toen was",
            "not_organiser": "iemand anders heeft deze afspraak georganiseerd: alleen die kan de gastenlijst wijzigen",
            "vendor_refused": "{system} weigerde de wijziging toen die werd doorgevoerd: het gegeven is gebleven "
                              "zoals het was",
            "other": "dit gegeven kan hier niet gewijzigd worden ({code})"},
        "change": "wordt gewijzigd", "already": "is al zo", "stays": "blijft [{n}]",
        "plan": "Correctieverzoek {id} (uiterlijk {deadline}): {n} gegeven(s) in {records} record(s) te wijzigen, "
                "{refused} blijven zoals ze zijn.",
        "nothing": "Er is niets te wijzigen.",
        "columns": ("systeem", "record", "veld", "nu", "nieuw", "wat"),
        "ask": "Deze {n} record(s) nu corrigeren?",
        "not_now": "Er is niets veranderd. Verzoek {id} blijft open (uiterlijk {deadline}): voer hetzelfde commando "
                   "opnieuw uit om te corrigeren, of wijs het af met --reject \"REDEN\".",
        "rejected": "Verzoek {id} afgewezen: er is niets gezocht of veranderd.",
        "result": "Correctieverzoek {id}: {status}. Bevestiging: {paths}",
        "differs": "{n} record(s) tonen bij het teruglezen niet de nieuwe waarden; voer hetzelfde commando "
                   "opnieuw uit.",
        "statuses": {"completed": "afgerond", "failed": "niet afgerond"},
    },
    "en": {
        "fields": {"name": "name", "email": "e-mail address", "phone": "phone number",
                   "address.street": "street and number", "address.postcode": "postcode", "address.city": "city"},
        "refusals": {
            "issued_document": "an issued invoice keeps the name and address it was issued to: the law requires "
                               "it (art. 35a of the Dutch VAT Act, Wet op de omzetbelasting 1968); a correction "
                               "goes through a credit note",
            "sent_quote": "a quote that was sent records the offer as it was made, to whom it was then addressed",
            "vendor_read_only": "{system} offers no way to change this",
            "past_event": "an appointment that has taken place stays on record as it was then",
            "not_organiser": "someone else organised this appointment: only they can change its guest list",
            "vendor_refused": "{system} refused the change when it was made: the value stayed as it was",
            "other": "this cannot be changed here ({code})"},
        "change": "changes", "already": "already so", "stays": "stays [{n}]",
        "plan": "Rectification request {id} (due {deadline}): {n} value(s) to change in {records} record(s), "
                "{refused} stay as they are.",
        "nothing": "There is nothing to change.",
        "columns": ("system", "record", "field", "now", "new", "what"),
        "ask": "Correct these {n} record(s) now?",
        "not_now": "Nothing was changed. Request {id} stays open (due {deadline}): run the same command again to "
                   "correct, or refuse it with --reject \"REASON\".",
        "rejected": "Request {id} rejected: nothing was searched or changed.",
        "result": "Rectification request {id}: {status}. Confirmation: {paths}",
        "differs": "{n} record(s) do not show the new values when read back; run the same command again.",
        "statuses": {"completed": "completed", "failed": "not completed"},
    },
}


# -- what the owner asks to set ----------------------------------------------------------------


def parse_settings(settings: Iterable[str]) -> dict[str, str]:
    """`FIELD=VALUE` items -> {correctable field: value as it will be written}; an address in one value
    ("Street 1, 1234 AB City") becomes its three parts.

    `BadInput` for an unknown field, a field given twice, an invalid e-mail address, phone number, name or Dutch
    postcode, and for no setting at all. Messages name the position and the field, never the value, in words
    that fit the command line's `--set` and a flow's Secret block alike.
    """
    new: dict[str, str] = {}
    for position, item in enumerate(settings, 1):
        name, equals, raw = item.partition("=")
        name, value = name.strip().lower(), " ".join(raw.split())
        where = f"setting {position} ({name or '?'})"
        if not equals or name not in SETTABLE:
            raise BadInput(f"setting {position}: give FIELD=VALUE, FIELD one of {', '.join(SETTABLE)}")
        if not value:
            raise BadInput(f"{where}: the new value is empty (a field is corrected, never erased here)")
        parts = _address(value, where) if name == ADDRESS else {name: _checked(name, value, where)}
        if set(parts) & set(new):
            raise BadInput(f"{where}: set twice")
        new |= parts
    if not new:
        raise BadInput("give at least one setting FIELD=VALUE (--set on the command line): what the person asks to "
                       "be corrected")
    return new


def _checked(name: str, value: str, where: str) -> str:
    """One value in the form it is written to the vendors, or `BadInput`."""
    if name == "email":
        if not _EMAIL.fullmatch(value):
            raise BadInput(f"{where}: not an e-mail address")
        return value
    if name == "phone":
        phone = normalise_phones(pd.Series([value], dtype="string")).iloc[0]
        if pd.isna(phone):
            raise BadInput(f"{where}: not a valid phone number (Dutch numbers as 06-12345678, others with +country)")
        return str(phone)
    if name == "address.postcode":
        match = _POSTCODE.fullmatch(value.upper())
        if not match:
            raise BadInput(f"{where}: not a Dutch postcode (four digits and two letters, as 1234 AB)")
        return f"{match[1]} {match[2]}"
    if name == "name" and not _NAME.fullmatch(value):
        raise BadInput(f"{where}: not a name (letters, spaces, hyphens and apostrophes only)")
    return value


def _address(value: str, where: str) -> dict[str, str]:
    match = _ADDRESS.fullmatch(value)
    if not match:
        raise BadInput(f"{where}: give the address as \"Street 1, 1234 AB City\", or set address.street, "
                       "address.postcode and address.city apart")
    return {f"{ADDRESS}.{part}": _checked(f"{ADDRESS}.{part}", match[part], where)
            for part in ("street", "postcode", "city")}


def new_identifiers(new: Mapping[str, str]) -> Identifiers:
    """The e-mail address and phone number a correction sets: what links records to a person."""
    return Identifiers(tuple(v for k, v in new.items() if k == "email"),
                       tuple(v for k, v in new.items() if k == "phone"))


def same(name: str, current: str | None, new: str) -> bool:
    """Whether a record already shows the new value (e-mail case and phone notation aside)."""
    if current is None:
        return False
    if name == "email":
        return current.strip().casefold() == new.strip().casefold()
    if name == "phone":
        return _phone(current) == _phone(new)
    return " ".join(current.split()) == new


# -- the plan ------------------------------------------------------------------------------------


@dataclass
class CorrectionPlan:
    """What a rectification would change: the person's records, per record its field changes."""

    identifiers: Identifiers  # normalised: those asked for and those found by expansion
    new: dict[str, str]
    changes: list[FieldChange]
    searched: tuple[str, ...]  # the connected systems the person was looked for in
    records: Mapping[str, Record] = field(default_factory=dict)  # record key -> the record as found
    #: the person's e-mail addresses and phone numbers (normalised, the new ones too): whose entry is theirs
    theirs: frozenset[str] = frozenset()
    request: dict | None = None

    def to_make(self) -> dict[str, list[FieldChange]]:
        """Record key -> its changes still to write (not refused, not already so), in plan order."""
        out: dict[str, list[FieldChange]] = {}
        for change in self.changes:
            if not change.refused and not same(change.field, change.current, change.new):
                out.setdefault(str(change.ref), []).append(change)
        return out

    @property
    def empty(self) -> bool:
        return not self.to_make()


def narrowed(record: Record, theirs: frozenset[str]) -> Record:
    """A shared record with only the person's own e-mail addresses and phone numbers on it (see
    `Connector.plan_correction`); any other record as it is."""
    if not record.shared:
        return record
    emails = normalise_emails(pd.Series(record.emails, dtype="string"))
    return replace(record, emails=tuple(e for e, n in zip(record.emails, emails) if n in theirs),
                   phones=tuple(p for p in record.phones if _phone(p) in theirs))


def _phone(value: str) -> str | None:
    phone = normalise_phones(pd.Series([value], dtype="string")).iloc[0]
    return None if pd.isna(phone) else str(phone)


def plan_rectification(connectors: Mapping[str, Connector], person: Identifiers, new: Mapping[str, str],
                       rules: Rules, ledger: Ledger, *, search_systems: SearchSystems = search_all) -> CorrectionPlan:
    """Find the person everywhere and ask each record's connector what the new values change in it.

    `BadInput` when a new e-mail address or phone number is on records of someone else (a vendor search or the
    identity index finds records with it that are not the person's): the correction would make two people one.
    `search_systems` runs one round of searches (`find_person`); the Prefect flow runs each as a task.
    """
    found = find_person(connectors, person, rules, search_systems=search_systems, ledger=ledger)
    mine = set(found.mentions["key"])
    adding = new_identifiers(new)
    if adding:
        other = find_person(connectors, adding, rules, search_systems=search_systems, max_rounds=1, ledger=ledger)
        foreign = sorted(set(other.mentions["key"]) - mine)
        if foreign:
            kinds = " and ".join(k for k in ("email", "phone") if k in new)
            raise BadInput(f"the new {kinds}: already on records of someone else ({', '.join(foreign[:5])}"
                           f"{', ...' if len(foreign) > 5 else ''}); correcting it would make two people one, so "
                           "nothing was changed. If they are the same person, name that address or number among "
                           "the IDENTIFIERs too.")
    identifiers, normal = found.view.identifiers, normalise(adding)
    theirs = frozenset(identifiers.loc[identifiers["person"].isin(found.people), "value"]) | frozenset(
        normal.emails + normal.phones)
    # a record before those that link to it: a vendor may copy a contact's details into its draft documents
    records = {str(record.ref): record for record in sorted(found.records(), key=lambda r: bool(r.links))}
    changes = [change for record in records.values()
               for change in connectors[record.system].plan_correction(narrowed(record, theirs), new)]
    return CorrectionPlan(found.searched, dict(new), changes, found.systems, records, theirs)


def register(ledger: Ledger, identifiers: Identifiers, rules: Rules, new: Mapping[str, str], *, received: date,
             verified_by: str = "", label: str = "") -> dict:
    """The open rectification request of these fields for these identifiers, else a new one (scope: the fields)."""
    return register_request(ledger, identifiers, rules, received=received, verified_by=verified_by,
                            kind="rectification", scope=",".join(sorted(new, key=CORRECTABLE_FIELDS.index)),
                            label=label)


def masked(name: str, value: str | None) -> str:
    """A value as the owner's screen and Prefect show it: enough to recognise, not enough to read."""
    if not value:
        return "-"
    if name == "email":
        return ", ".join(mask_email(part) for part in value.split(","))
    if name == "phone":
        return ", ".join(mask_phone(part) for part in value.split(","))
    return " ".join(word[:1] + "***" for word in value.split())


def refusal_text(code: str, system_name: str, lang: str) -> str:
    """Why a record keeps its value, in words (`FieldChange.refused`)."""
    texts = WORDS[lang]["refusals"]
    return texts.get(code, texts["other"]).format(system=system_name, code=code)


def plan_rows(plan: CorrectionPlan, rules: Rules, lang: str = "en") -> list[dict[str, str]]:
    """The plan the owner approves, one row per field of each record: values masked, refusals in words."""
    words = WORDS[lang]
    return [{"system": change.ref.system, "record_type": change.ref.record_type, "record_id": change.ref.record_id,
             "field": change.field, "now": masked(change.field, change.current),
             "new": masked(change.field, change.new),
             "refused": change.refused or "",
             "what": refusal_text(change.refused, rules.system_name(change.ref.system), lang) if change.refused
             else words["already"] if same(change.field, change.current, change.new) else words["change"]}
            for change in plan.changes]


def plan_table(plan: CorrectionPlan, rules: Rules, lang: str = "en") -> Group:
    """The plan for the terminal, headed by its counts; why a value stays is said once, below the table."""
    words, to_make, reasons, request = WORDS[lang], plan.to_make(), {}, plan.request
    table = Table(title=words["plan"].format(id=request["id"], deadline=request["deadline"],
                                             n=sum(map(len, to_make.values())), records=len(to_make),
                                             refused=sum(bool(c.refused) for c in plan.changes)),
                  title_justify="left", caption=None if to_make else words["nothing"])
    for column in words["columns"]:
        table.add_column(column)
    for row in plan_rows(plan, rules, lang):
        what = words["stays"].format(n=reasons.setdefault(row["what"], len(reasons) + 1)) if row["refused"] \
            else row["what"]
        table.add_row(row["system"], f"{row['record_type']} {row['record_id']}", words["fields"][row["field"]],
                      row["now"], row["new"], what)
    return Group(table, *(Text(f"[{n}] {text}") for text, n in reasons.items()))


# -- carrying it out -----------------------------------------------------------------------------


def execute(ledger: Ledger, plan: CorrectionPlan, connectors: Mapping[str, Connector]) -> pipeline.Summary:
    """Write the approved changes, one record at a time, through the ledger (intent before each call, outcome
    after), under the ledger's apply lease. A run of this request that a kill left unfinished is closed as
    aborted first: this one planned anew from what the vendors show now."""
    request_id = plan.request["id"]
    to_make = plan.to_make()
    with ledger.lease("rectification"):
        for run in ledger.unfinished_runs("rectification"):
            if run["params"].get("request_id") == request_id:
                ledger.finish_run(run["id"], "aborted", {"note": "interrupted; planned anew by a later run"})
        run_id = ledger.start_run("rectification", as_of=date.today(), apply=True,
                                  params={"request_id": request_id, "actions": len(to_make)})
        ledger.store_plan(run_id, [PlannedAction(ref.system, ref.record_type, ref.record_id, ACTION,
                                                 tuple(c.field for c in changes), RULE, f"request {request_id}")
                                   for changes in to_make.values() for ref in [changes[0].ref]])
        ledger.set_request_status(request_id, "executing", f"run {run_id}")
        summary = pipeline.Summary(run_id)
        for action in ledger.pending_actions(run_id):
            key = f"{action['system']}/{action['record_type']}/{action['record_id']}"
            ledger.mark_started(action["id"])
            try:
                result = connectors[action["system"]].correct(to_make[key])
                outcome, detail = result.outcome.value, result.detail
            except VendorError as exc:
                outcome, detail = "failed", str(exc)
            ledger.mark_outcome(action["id"], outcome, detail)
            summary.counts[(action["system"], RULE, outcome)] += 1
        ledger.finish_run(run_id, "failed" if summary.failed else "succeeded", {"outcomes": summary.rows()})
        return summary


def verify(ledger: Ledger, plan: CorrectionPlan, connectors: Mapping[str, Connector]) -> list[dict[str, str]]:
    """Read every record the plan changes again: those that do not show the new values (record refs and the
    fields). The records read back go into the identity index, so their new identifiers find the person; the
    old ones stay there (the index forgets nothing). A record whose write the vendor refused is not read: it
    keeps its values, and the confirmation says so."""
    differs, read_back = [], []
    refused = {key for (key, _), action in _written(ledger, plan.request["id"]).items()
               if action["outcome"] == VENDOR_REFUSED}
    for key, changes in plan.to_make().items():
        if key in refused:
            continue
        ref = changes[0].ref
        try:
            record = connectors[ref.system].read(ref)
        except (VendorError, ValueError):
            record, fields = None, [c.field for c in changes]
        else:
            if record is None:  # gone from the vendor since: nothing of it shows an old value
                continue
            read_back.append(record)
            now = {c.field: c.current for c in connectors[ref.system].plan_correction(narrowed(record, plan.theirs),
                                                                                      plan.new)}
            fields = [c.field for c in changes if not same(c.field, now.get(c.field), c.new)]
        if fields:
            differs.append({"system": ref.system, "record_type": ref.record_type, "record_id": ref.record_id,
                            "fields": fields})
    index_records(ledger, read_back)
    return differs


def finish(ledger: Ledger, plan: CorrectionPlan, summary: pipeline.Summary | None,
           differs: list[dict[str, str]]) -> str:
    """Close the request when every change is written and read back; else keep it open. `summary` is None when
    there was nothing to change."""
    request_id = plan.request["id"]
    failed = summary.failed if summary else 0
    if failed or differs:
        ledger.set_request_status(request_id, "failed",
                                  f"run {summary.run_id if summary else '-'}: {failed} actions failed, {len(differs)} "
                                  "records read back without the new values; rerun `vergeet correct` to finish")
        return "failed"
    ledger.set_request_status(request_id, "completed", f"run {summary.run_id}" if summary else "nothing to change")
    return "completed"


# -- the confirmation for the person ---------------------------------------------------------------


def _written(ledger: Ledger, request_id: int) -> dict[tuple[str, str], dict]:
    """(record key, field) -> the latest action of the request's runs that wrote it or began to (a killed run's)."""
    # a request is answered within weeks: its runs are among the latest few hundred (a nightly purge a day)
    runs = [run["id"] for run in reversed(ledger.list_runs(limit=500))
            if run["kind"] == "rectification" and run["params"].get("request_id") == request_id]
    return {(f"{a['system']}/{a['record_type']}/{a['record_id']}", name): a
            for run_id in runs for a in ledger.actions(run_id) if a["started_at"] for name in a["fields"]}


def confirmation(ledger: Ledger, plan: CorrectionPlan, rules: Rules, differs: list[dict[str, str]], status: str,
                 lang: str = "nl") -> dict[str, Any]:
    """What was corrected where and when (by this request's runs, or already so), what could not be and why, and
    the request's dates: the one document with the values (the new ones, and those records keep), for the person
    who asked."""
    request = ledger.get_request(plan.request["id"])
    written = _written(ledger, request["id"])
    unread = {(d["system"], d["record_type"], d["record_id"], f) for d in differs for f in d["fields"]}
    words = WORDS[lang]

    def entry(change: FieldChange, **more: Any) -> dict[str, Any]:
        ref, record = change.ref, plan.records.get(str(change.ref))
        rules_for = rules.rules_for(ref.system, ref.record_type)
        return {"system": ref.system, "system_name": rules.system_name(ref.system), "record_type": ref.record_type,
                "record_label": getattr(rules_for[0], lang) if rules_for else ref.record_type,
                "record_id": ref.record_id, "reference": reference(record, lang) if record else None,
                "field": change.field, "field_label": words["fields"][change.field], **more}

    corrected, kept = [], []
    for change in plan.changes:
        if change.refused:
            kept.append(entry(change, value=change.current, reason=change.refused,
                              why=refusal_text(change.refused, rules.system_name(change.ref.system), lang)))
            continue
        action = written.get((str(change.ref), change.field), {})
        if action.get("outcome") == VENDOR_REFUSED:
            kept.append(entry(change, value=change.current, reason="vendor_refused",
                              why=refusal_text("vendor_refused", rules.system_name(change.ref.system), lang)))
            continue
        already = same(change.field, change.current, change.new)
        # a write a kill interrupted, which the record shows now, was this request's
        outcome = action.get("outcome") or ("done" if action and already else "already_so" if already
                                            else "not carried out")
        at = action.get("finished_at") or (action.get("started_at") if already else None)
        verified = (change.ref.system, change.ref.record_type, change.ref.record_id, change.field) not in unread
        corrected.append(entry(change, value=change.new, outcome=outcome, verified=verified,
                               at=at.isoformat(timespec="seconds") if at else None))
    return {
        "format": FORMAT,
        "language": lang,
        "controller": rules.controller.model_dump(),
        "request": {"id": request["id"], "received": request["received"].isoformat(),
                    "fields": [{"field": f, "label": words["fields"][f]} for f in request["scope"].split(",")],
                    "deadline": request["deadline"].isoformat(), "status": status,
                    "verified_by": request["verified_by"],
                    "closed": request["closed_at"].isoformat(timespec="seconds") if request["closed_at"] else None},
        "generated_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "corrected": corrected,
        "not_corrected": kept,
        "systems": coverage(rules, plan.searched, lang),
        "verification": {"read_again": True, "differs": differs},
    }


def write_confirmation(document: dict[str, Any], directory: Path) -> list[Path]:
    """The confirmation as JSON and as a self-contained HTML page for the person; the paths written."""
    return write_document(document, directory, "rectification-request", "rectification_confirmation.html")


