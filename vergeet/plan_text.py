"""The purge's plan and outcome in words, in Dutch or English, for the business owner at a terminal.

Per system: how many records it holds, what is deleted, what is anonymised
(which fields, by their labels), what stays and why (the rules file's own
labels for exceptions, periods as "1 jaar na het laatste contact"), then the
first records of each kind with a name the owner recognises where the run has
one (an invoice's number, an appointment's date, a masked name and address)
and a link into the vendor's web app where there is one. Record ids are shown
whole, so each can be looked up. The shares the circuit breaker checks are the
ones shown here, on the same denominators. `plan_json` is the same plan for
scripts, without names.
"""
from __future__ import annotations

import locale
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
from rich.console import Group, RenderableType
from rich.padding import Padding
from rich.text import Text

from connectors.base import Record
from vergeet.access import LANGUAGES, _field_label, _long_date, period_text, reference
from vergeet.decide import Plan
from vergeet.erasure import ErasurePlan
from vergeet.identity import IdentityView
from vergeet.present import masked_people
from vergeet.rules import Rules

#: how a record type is called, (singular, plural) per language
_KINDS = {
    "contact": (("contact", "contacten"), ("contact", "contacts")),
    "archived_contact": (("gearchiveerd contact", "gearchiveerde contacten"),
                         ("archived contact", "archived contacts")),
    "sales_invoice": (("factuur", "facturen"), ("invoice", "invoices")),
    "estimate": (("offerte", "offertes"), ("quote", "quotes")),
    "event": (("afspraak", "afspraken"), ("appointment", "appointments")),
    "customer": (("klant", "klanten"), ("customer", "customers")),
    "payment": (("betaling", "betalingen"), ("payment", "payments")),
    "mandate": (("machtiging", "machtigingen"), ("mandate", "mandates")),
    "subscription": (("abonnement", "abonnementen"), ("subscription", "subscriptions")),
    "message": (("e-mail", "e-mails"), ("e-mail", "e-mails")),
    "order": (("bestelling", "bestellingen"), ("order", "orders")),
    "recording": (("opname", "opnames"), ("recording", "recordings")),
    "registrant": (("aanmelding", "aanmeldingen"), ("registration", "registrations")),
}

_WORDS = {
    "nl": {
        "plan": "Plan voor {day}", "dry": "proefdraai: er verandert niets", "apply": "uit te voeren",
        "records": ("gegeven", "gegevens"), "system": "{name}: {n}",
        "delete": "verwijderen", "anonymise": "onherkenbaar maken", "stay": "blijven zoals ze zijn",
        "share": "{part} van {whole} ({share:.0%})",
        "period_not_over": "bewaartermijn nog niet voorbij", "nobody": "herleidbaar tot niemand (geen e-mail, "
        "telefoon of naam): niet beoordeeld", "awaiting": "wachten op jou: de API van de leverancier kan het niet",
        "done_before": "eerder al onherkenbaar gemaakt", "no_rule": "geen bewaarregel voor dit soort gegeven",
        "left_alone": "niet automatisch beoordeeld",
        "first": "de eerste {shown}:", "since": "{period}: {day}",
        "by_request": "op verzoek van de betrokkene", "fields": "velden",
        "nothing": "Niets te doen.",
        "breaker": "Verwijdert het plan meer dan {limit:.0%} van de gegevens van een systeem, dan weigert --apply "
                   "zonder --force (de noodrem); het percentage hierboven is van alle gegevens in dat systeem.",
        "breaker_over": "Boven de grens van {limit:.0%}: {systems}.",
        "refused": "Geweigerd: het plan verwijdert meer dan {limit:.0%} van de gegevens van {systems}; er is niets "
                   "veranderd. Bekijk het plan hierboven; klopt het, voer het dan één keer uit met --force.",
        "of": "{name} ({part} van {whole})",
        "erasure": "Verzoek {id}: wat er gebeurt", "erase": "Verwijderen of onherkenbaar maken ({n}):",
        "ends": "Eindigt met waar het bij hoort ({n}):", "ends_with": "eindigt met {parent}",
        "stays": "Blijft bewaard ({n}):", "until": "tot {day}", "no_end": "zolang dat nodig is",
        "by": "bewaard door {name}", "nothing_to_erase": "Er is niets te verwijderen.",
        "reappeared": "[bold yellow]Let op:[/] {n} in {systems} horen bij mensen die eerder zijn gewist "
                      "(onderdrukkingslijst). Controleer ze: {records}",
        "handed": "[bold yellow]Wacht op jou[/] sinds {since}: {action} {n} ({system}: {ids}); de API van de "
                  "leverancier kan dat niet. Wat te doen, voor de eerste (bericht van de leverancier): {detail}",
        "left_alone_check": "[bold yellow]Niet automatisch beoordeeld, bekijk ze zelf:[/] {system}: {reason}: "
                            "{records}",
        "outcome": "Uitgevoerd in run {run}", "outcomes": {
            ("delete", "done"): "verwijderd", ("anonymise", "done"): "onherkenbaar gemaakt",
            ("delete", "already_gone"): "was al weg", ("anonymise", "already_gone"): "was al weg",
            "not_supported": "aan jou overgedragen: de API van de leverancier kan het niet",
            "failed": "mislukt", "skipped": "overgeslagen: systeem niet gekoppeld", "pending": "nog niet gedaan"},
        "first_failure": "eerste fout: {detail}",
        "next": "De volgende nachtelijke run is op {day} om {time} ({source}).",
        "next_unknown": "Er is geen nachtelijke planning gevonden (prefect.yaml).",
        "retry": " Die probeert opnieuw wat mislukte.",
        "waiting": "Wacht op jou: {tasks}. `vergeet purge` laat ze zien tot ze gedaan zijn.",
    },
    "en": {
        "plan": "Plan for {day}", "dry": "dry run: nothing is changed", "apply": "to carry out",
        "records": ("record", "records"), "system": "{name}: {n}",
        "delete": "delete", "anonymise": "make unrecognisable", "stay": "stay as they are",
        "share": "{part} of {whole} ({share:.0%})",
        "period_not_over": "retention period not over", "nobody": "identify nobody (no e-mail, phone or name): "
        "not decided on", "awaiting": "waiting for you: the vendor's API cannot do it",
        "done_before": "made unrecognisable before", "no_rule": "no retention rule for this kind of record",
        "left_alone": "not decided automatically",
        "first": "the first {shown}:", "since": "{period}: {day}",
        "by_request": "at the person's request", "fields": "fields",
        "nothing": "Nothing to do.",
        "breaker": "When the plan deletes more than {limit:.0%} of a system's records, --apply refuses without "
                   "--force (the circuit breaker); the share above is of all that system's records.",
        "breaker_over": "Over the {limit:.0%} limit: {systems}.",
        "refused": "Refused: the plan deletes more than {limit:.0%} of the records of {systems}; nothing was "
                   "changed. Review the plan above; if it is right, run it once with --force.",
        "of": "{name} ({part} of {whole})",
        "erasure": "Request {id}: what happens", "erase": "Erase or make unrecognisable ({n}):",
        "ends": "Ends with what it belongs to ({n}):", "ends_with": "ends with {parent}",
        "stays": "Stays ({n}):", "until": "until {day}", "no_end": "as long as needed",
        "by": "kept by {name}", "nothing_to_erase": "There is nothing to erase.",
        "reappeared": "[bold yellow]Attention:[/] {n} in {systems} belong to people who were erased before "
                      "(suppression list). Check them: {records}",
        "handed": "[bold yellow]Waiting for you[/] since {since}: {action} {n} ({system}: {ids}), which the "
                  "vendor's API cannot do. What to do, for the first (the vendor's message): {detail}",
        "left_alone_check": "[bold yellow]Left alone, check by hand:[/] {system}: {reason}: {records}",
        "outcome": "Carried out in run {run}", "outcomes": {
            ("delete", "done"): "deleted", ("anonymise", "done"): "made unrecognisable",
            ("delete", "already_gone"): "already gone", ("anonymise", "already_gone"): "already gone",
            "not_supported": "handed to you: the vendor's API cannot do it",
            "failed": "failed", "skipped": "skipped: system not connected", "pending": "not done yet"},
        "first_failure": "first error: {detail}",
        "next": "The next nightly run is on {day} at {time} ({source}).",
        "next_unknown": "No nightly schedule was found (prefect.yaml).",
        "retry": " It retries what failed.",
        "waiting": "Waiting for you: {tasks}. `vergeet purge` lists them until they are done.",
    },
}


def choose_language(option: str | None, configured: str | None = None) -> str:
    """`--lang`, else the config's `language`, else the locale's (Dutch where it is Dutch), else English."""
    for choice in (option, configured):
        if choice:
            return choice
    spoken = os.environ.get("LC_ALL") or os.environ.get("LC_MESSAGES") or os.environ.get("LANG") or \
        (locale.getlocale()[0] or "")
    return "nl" if spoken.lower().startswith("nl") else "en"


def counted(n: int, kind: str, lang: str) -> str:
    """"1 factuur", "3 facturen", "1 invoice": a count with its record type in the right number."""
    words = _KINDS.get(kind, ((kind.replace("_", " "),) * 2,) * 2)[LANGUAGES.index(lang)]
    return f"{n} {words[n != 1]}"


def _records(n: int, lang: str) -> str:
    return f"{n} {_WORDS[lang]['records'][n != 1]}"


@dataclass(frozen=True)
class RecordName:
    """What the owner recognises a record by: a title (no more personal data than masked identifiers) and a
    link into the vendor's web app."""

    title: str = ""
    link: str | None = None


class RecordNamer:
    """Names the records a plan shows: a number or date from the vendor's fields (where the run read them: a
    dry run does) and whose they are, masked (`vergeet.present.masked_people`; a hashed view knows no one)."""

    def __init__(self, view: IdentityView, records: Mapping[str, Record], lang: str):
        self._view, self._records, self._lang = view, records, lang
        self._people = view.mentions.drop_duplicates("key").set_index("key")["person"]

    def __call__(self, key: str) -> RecordName:
        record = self._records.get(key)
        parts = [reference(record, self._lang)] if record is not None else []
        if not self._view.hashed and key in self._people.index:
            person = self._people.loc[key]
            parts.append(masked_people(self._view, pd.Series([person])).get(person, ""))
        import connectors  # lazily: a connector module loads its vendor's SDK

        link = connectors.web_link(record) if record is not None else None
        return RecordName(" · ".join(p for p in parts if p), link)


@dataclass(frozen=True)
class SystemCounts:
    """One system's records as the overview counts them; `deleted + anonymised + sum(staying) == records`."""

    system: str
    records: int
    deleted: int
    anonymised: int
    staying: dict[str, int]  # reason in words -> records


def system_counts(plan: Plan, rules: Rules, lang: str) -> list[SystemCounts]:
    """Every system's records split into deleted, anonymised and staying (by reason), on one denominator."""
    words = _WORDS[lang]
    counts = []
    actions = plan.actions
    for system in sorted(plan.records_per_system, key=lambda s: rules.system_name(s).lower()):
        total = plan.records_per_system[system]
        mine = actions[actions["system"] == system]
        deleted = set(mine.loc[mine["action"] == "delete", "key"])
        anonymised = set(mine["key"]) - deleted
        acted = deleted | anonymised
        staying: dict[str, int] = {}
        for label, keys in (
                (words["awaiting"], _keys(plan.awaiting_owner, system)),
                (words["done_before"], _keys(plan.done_before, system))):
            keys -= acted
            if keys:
                staying[label] = len(keys)
                acted |= keys
        kept = plan.kept[(plan.kept["system"] == system) & ~plan.kept["key"].isin(acted)].drop_duplicates("key")
        for why, n in kept.assign(why=_kept_reasons(kept, rules, lang))["why"].value_counts().items():
            staying[why] = int(n)
        nobody = plan.unidentified_per_system.get(system, 0)
        if nobody:
            staying[words["nobody"]] = nobody
        rest = total - len(deleted) - len(anonymised) - sum(staying.values())
        if rest > 0:
            staying[words["no_rule"]] = rest
        counts.append(SystemCounts(system, total, len(deleted), len(anonymised), staying))
    return counts


def _keys(frame: pd.DataFrame, system: str) -> set[str]:
    return set(frame.loc[frame["system"] == system, "key"]) if len(frame) else set()


def _kept_reasons(kept: pd.DataFrame, rules: Rules, lang: str) -> pd.Series:
    """Per kept record the first exception that keeps it in the rules' words, else why it is left alone, else
    that its period is not over."""
    labels = {name: getattr(policy, lang) for name, policy in rules.exceptions.items()}
    first = kept["exceptions"].str.split(",").str[0].map(labels)
    left = kept["left_alone"].notna().map({True: _WORDS[lang]["left_alone"], False: None})
    return first.fillna(left).fillna(_WORDS[lang]["period_not_over"])


def plan_text(plan: Plan, rules: Rules, lang: str, *, applying: bool,
              names: Callable[[str], RecordName] | None = None, first: int | None = 3,
              max_delete_share: float | None = None) -> RenderableType:
    """The plan for a person to read: per system the counts, then the first `first` records of each kind of
    action (None: all), each with its full id, its name and link where known, and why."""
    words, names = _WORDS[lang], names or (lambda key: RecordName())
    parts: list[RenderableType] = [Text(words["plan"].format(day=_long_date(plan.as_of.isoformat(), lang)) +
                                        f" ({words['apply'] if applying else words['dry']})", style="bold")]
    for counts in system_counts(plan, rules, lang):
        parts.append(Text(""))
        parts.append(Text(words["system"].format(name=rules.system_name(counts.system),
                                                 n=_records(counts.records, lang)), style="bold"))
        lines = []
        mine = plan.actions[plan.actions["system"] == counts.system]
        for action in ("anonymise", "delete"):  # what changes least first
            rows = mine[mine["action"] == action].drop_duplicates("key")
            if rows.empty:
                continue
            share = words["share"].format(part=len(rows), whole=counts.records, share=len(rows) / counts.records)
            kinds = ", ".join(counted(int(n), kind, lang) for kind, n in rows["record_type"].value_counts().items())
            lines.append(Text(f"{words[action]}: {share}: {kinds}"))
            documents = {r.record_type for r in rules.rules if r.system == counts.system and r.clock == "document_date"}
            groups = sorted(rows.groupby(["record_type", "fields"], sort=False), key=lambda g: g[0][0] in documents)
            for (kind, fields), group in groups:  # contacts before invoices: what a purge is for comes first
                lines.append(Padding(_kind_items(group, kind, fields, counts.system, rules, lang, names, first),
                                     (0, 0, 0, 4)))
        if counts.staying:
            staying = sum(counts.staying.values())
            share = words["share"].format(part=staying, whole=counts.records, share=staying / counts.records)
            lines.append(Text(f"{words['stay']}: {share}"))
            for why, n in sorted(counts.staying.items(), key=lambda item: -item[1]):
                lines.append(Padding(Text(f"{n}  {why}"), (0, 0, 0, 4)))
        parts.append(Padding(Group(*lines), (0, 0, 0, 2)))
    if plan.actions.empty:
        parts += [Text(""), Text(words["nothing"])]
    if max_delete_share is not None and not plan.actions.empty:
        parts += [Text(""), Text(words["breaker"].format(limit=max_delete_share), style="dim")]
        over = [f"{rules.system_name(s)} {share:.0%}" for s, share in sorted(plan.delete_share().items())
                if share > max_delete_share]
        if over:
            parts.append(Text(words["breaker_over"].format(limit=max_delete_share, systems=", ".join(over)),
                              style="bold yellow"))
    return Group(*parts)


def _kind_items(rows: pd.DataFrame, kind: str, fields: tuple[str, ...], system: str, rules: Rules, lang: str,
                names: Callable[[str], RecordName], first: int | None) -> RenderableType:
    """One kind of action on one record type: its fields in words, then its first records."""
    words = _WORDS[lang]
    head = counted(len(rows), kind, lang)
    if fields:
        labels = [_field_label(system, f, lang) or f for f in fields]
        head += f" ({words['fields']}: {', '.join(labels)})"
    shown = rows if first is None else rows.head(first)
    if shown.empty:
        return Text(head)
    lines: list[RenderableType] = [Text(head + (", " + words["first"].format(shown=len(shown))
                                                if len(shown) < len(rows) else ":"))]
    for row in shown.itertuples(index=False):
        name = names(row.key)
        rule = rules.rule(row.rule_id)
        why = words["by_request"] if row.since == "request" else words["since"].format(
            period=period_text(rule.period, rule.clock, lang), day=_long_date(row.since, lang))
        item = Text(f"• {_KINDS.get(kind, ((kind,) * 2,) * 2)[LANGUAGES.index(lang)][0]} {row.record_id}")
        if name.title:
            item.append(f"  {name.title}", style="bold")
        item.append(f"  ({why})", style="dim")
        lines.append(Padding(item, (0, 0, 0, 2)))
        if name.link:
            lines.append(Padding(Text(name.link, style="link " + name.link), (0, 0, 0, 4)))
    return Group(*lines)


def plan_json(plan: Plan, rules: Rules, *, applying: bool, max_delete_share: float) -> dict[str, Any]:
    """The plan for scripts: counts per system (the breaker's denominators) and every action, by record id."""
    return {
        "format": "vergeet-plan/1",
        "as_of": plan.as_of.isoformat(),
        "apply": applying,
        "max_delete_share": max_delete_share,
        "systems": [{"system": c.system, "records": c.records, "delete": c.deleted, "anonymise": c.anonymised,
                     "delete_share": round(c.deleted / c.records, 4) if c.records else 0.0,
                     "staying": c.staying} for c in system_counts(plan, rules, "en")],
        "actions": [{"system": r.system, "record_type": r.record_type, "record_id": str(r.record_id),
                     "action": r.action, "fields": list(r.fields), "rule": r.rule_id, "since": r.since}
                    for r in plan.actions.itertuples(index=False)],
        "awaiting_owner": [{"system": r.system, "record_type": r.record_type, "record_id": str(r.record_id),
                            "action": r.action, "since": r.since.isoformat() if isinstance(r.since, datetime)
                            else str(r.since)} for r in plan.awaiting_owner.itertuples(index=False)],
    }


def outcome_text(run_id: int, actions: list[dict], rules: Rules, lang: str,
                 next_night: tuple[datetime, str] | None) -> RenderableType:
    """What a run did, per system in words (`actions`: the run's actions as the ledger has them), what failed
    and why (the first error per system), what waits for the owner, and when the next night comes."""
    words = _WORDS[lang]
    outcomes = words["outcomes"]
    parts: list[RenderableType] = [Text(words["outcome"].format(run=run_id), style="bold")]
    frame = pd.DataFrame(actions, columns=["system", "record_type", "action", "outcome", "detail", "status"])
    frame["outcome"] = frame["outcome"].fillna("pending")
    for system, mine in sorted(frame.groupby("system"), key=lambda item: rules.system_name(item[0]).lower()):
        said = []
        for (action, outcome, kind), rows in mine.groupby(["action", "outcome", "record_type"]):
            said.append(f"{counted(len(rows), kind, lang)} {outcomes.get((action, outcome)) or outcomes[outcome]}")
        line = Text(f"{rules.system_name(system)}: " + "; ".join(said))
        failed = mine[mine["outcome"] == "failed"]
        if len(failed):
            line.append("\n" + words["first_failure"].format(detail=failed["detail"].iloc[0]), style="red")
        parts.append(Padding(line, (0, 0, 0, 2)))
    waiting = frame[frame["outcome"] == "not_supported"]
    if len(waiting):
        tasks = ", ".join(f"{counted(len(rows), kind, lang)} ({rules.system_name(system)})"
                          for (system, kind), rows in waiting.groupby(["system", "record_type"]))
        parts.append(Text(words["waiting"].format(tasks=tasks), style="yellow"))
    retry = words["retry"] if (frame["outcome"] == "failed").any() else ""
    if next_night is None:
        parts.append(Text(words["next_unknown"] + retry))
    else:
        when, source = next_night
        parts.append(Text(words["next"].format(day=_long_date(when.date().isoformat(), lang),
                                               time=f"{when:%H:%M}", source=source) + retry))
    return Group(*parts)


def next_scheduled_night(folders: list[Path], after: datetime | None = None) -> tuple[datetime, str] | None:
    """When the nightly purge deployment next runs, from the first `prefect.yaml` in `folders` (its schedule's
    cron and time zone), and that file's path; None when none is found or it schedules no nightly purge."""
    from zoneinfo import ZoneInfo

    import yaml
    from cronsim import CronSim

    for folder in folders:
        path = folder / "prefect.yaml"
        if not path.is_file():
            continue
        deployments = (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("deployments") or []
        for deployment in deployments:
            for schedule in deployment.get("schedules") or []:
                if deployment.get("entrypoint", "").endswith(":nightly_purge") and schedule.get("cron"):
                    zone = ZoneInfo(schedule.get("timezone") or "UTC")
                    start = (after or datetime.now(zone)).astimezone(zone)
                    return next(CronSim(schedule["cron"], start)), str(path)
    return None


def breaker_refusal(plan: Plan, rules: Rules, lang: str, limit: float) -> str:
    """Why the circuit breaker refused the plan, on the numbers the plan showed, and how to go on."""
    words, deleted = _WORDS[lang], plan.deleted_per_system()
    over = [words["of"].format(name=rules.system_name(system), part=deleted.get(system, 0),
                               whole=plan.records_per_system[system])
            for system, share in sorted(plan.delete_share().items()) if share > limit]
    return words["refused"].format(limit=limit, systems=", ".join(over))


def erasure_text(erasure: ErasurePlan, rules: Rules, lang: str) -> RenderableType:
    """An erasure plan for the owner to approve, in words: what is erased (and which fields), what ends with
    it, and what stays, until when and why; each record by system, kind, whole id and its number or date."""
    words = _WORDS[lang]

    def item(system: str, kind: str, record_id: str, key: str, what: str) -> Padding:
        reference = erasure.reference(key, lang)
        name = _KINDS.get(kind, ((kind,) * 2,) * 2)[LANGUAGES.index(lang)][0]
        line = Text(f"• {rules.system_name(system)} {name} {record_id}")
        if reference:
            line.append(f" ({reference})", style="bold")
        line.append(f": {what}")
        return Padding(line, (0, 0, 0, 4))

    parts: list[RenderableType] = [Text(words["erasure"].format(id=erasure.request["id"]), style="bold")]
    actions = erasure.plan.actions.drop_duplicates("key")
    if len(actions):
        parts.append(Padding(Text(words["erase"].format(n=len(actions))), (0, 0, 0, 2)))
        for row in actions.itertuples(index=False):
            labels = ", ".join(_field_label(row.system, f, lang) or f for f in row.fields)
            what = words[row.action] + (f": {labels}" if row.fields else "")
            parts.append(item(row.system, row.record_type, row.record_id, row.key, what))
    else:
        parts.append(Padding(Text(words["nothing_to_erase"]), (0, 0, 0, 2)))
    ended = erasure.ended(rules)
    if ended:
        parts.append(Padding(Text(words["ends"].format(n=len(ended))), (0, 0, 0, 2)))
        for key, parent in ended.items():
            system, kind, record_id = key.split("/", 2)
            _, parent_kind, parent_id = parent.split("/", 2)
            parts.append(item(system, kind, record_id, key, words["ends_with"].format(
                parent=f"{counted(1, parent_kind, lang)[2:]} {parent_id}")))
    kept = erasure.kept(rules)
    if len(kept):
        parts.append(Padding(Text(words["stays"].format(n=len(kept))), (0, 0, 0, 2)))
        generic = _WORDS[lang]["period_not_over"]
        for row, why in zip(kept.itertuples(index=False), _kept_reasons(kept, rules, lang)):
            if why == generic:  # say which period: the person's records differ in it
                rule = rules.rule(row.rule_id)
                why = period_text(rule.period, rule.clock, lang)
            until = words["until"].format(day=_long_date(row.retained_until.isoformat(), lang)) \
                if pd.notna(row.retained_until) else words["no_end"]
            by = f"; {words['by'].format(name=rules.system_name(row.retained_by))}" if row.retained_by else ""
            parts.append(item(row.system, row.record_type, row.record_id, row.key, f"{until}: {why}{by}"))
    return Group(*parts)


def notices(plan: Plan, rules: Rules, lang: str) -> list[str]:
    """What the owner must look at beside the plan, as rich markup lines: people who reappeared after erasure,
    tasks handed over (the vendor's API cannot do them), records left for a human to judge."""
    words, said = _WORDS[lang], []

    def kind(record_type: str) -> str:
        return _KINDS.get(record_type, ((record_type,) * 2,) * 2)[LANGUAGES.index(lang)][0]

    if len(plan.reappeared):
        said.append(words["reappeared"].format(
            n=_records(len(plan.reappeared), lang),
            systems=", ".join(sorted({rules.system_name(s) for s in plan.reappeared["system"]})),
            records=", ".join(f"{rules.system_name(r.system)} {kind(r.record_type)} {r.record_id}"
                              for r in plan.reappeared.itertuples())))
    for (system, record_type, action), rows in plan.awaiting_owner.groupby(["system", "record_type", "action"]):
        said.append(words["handed"].format(
            since=_long_date(rows["since"].min().date().isoformat(), lang), action=words[action],
            n=counted(len(rows), record_type, lang), system=rules.system_name(system),
            ids=", ".join(map(str, rows["record_id"])), detail=rows["detail"].iloc[0]))
    for (system, reason), rows in plan.left_alone().groupby(["system", "left_alone"]):
        said.append(words["left_alone_check"].format(
            system=rules.system_name(system), reason=reason,
            records=", ".join(f"{kind(r.record_type)} {r.record_id}" for r in rows.itertuples())))
    return said


#: what `find` and `erase` tell the owner at the terminal (the documents have their own language, `--lang`)
REQUEST_WORDS = {
    "nl": {
        "test": "Proefzoekopdracht, er is geen verzoek geregistreerd. Gevonden: {held}.",
        "access": "Inzageverzoek {id}: ontvangen {received}, antwoord uiterlijk {deadline} (nog {days} dagen). "
                  "Gevonden: {held}.",
        "check": "[bold]Controleer met de hand voordat je antwoordt[/] (vergeet heeft hier niet gezocht):",
        "matches": "[bold yellow]{n} mogelijke treffers, niet opgenomen[/] (gevonden op naam of vrije tekst, aan geen "
                   "gevraagd e-mailadres of telefoonnummer gekoppeld). Bekijk ze; is er een van deze persoon, zoek "
                   "dan opnieuw met het gegeven dat erop staat:",
        "incomplete": "[bold yellow]Onvolledig:[/] het zoeken stopte na {rounds} rondes met {left} gegevens van de "
                      "persoon nog niet doorzocht; zoek opnieuw met de gegevens in de records van het rapport.",
        "written": "Rapport geschreven naar {path}",
        "result": "Verzoek {id}: {status}. Bewijs: {paths}",
        "statuses": {"completed": "afgerond", "failed": "nog niet afgerond"},
        "still_found": "{n} verwijderde gegevens zijn nog gevonden; het verzoek blijft open. Voer dezelfde opdracht "
                       "nog eens uit om het af te maken.",
    },
    "en": {
        "test": "Test search, no request registered. Records found: {held}.",
        "access": "Access request {id}: received {received}, answer by {deadline} ({days} days left). Records "
                  "found: {held}.",
        "check": "[bold]Check by hand before you send the answer[/] (vergeet has not searched these):",
        "matches": "[bold yellow]{n} possible matches, not included[/] (found by name or free text, linked to no "
                   "e-mail address or phone number asked for). Check them; if one is this person, run again with the "
                   "identifier it has:",
        "incomplete": "[bold yellow]Incomplete:[/] the search stopped after {rounds} rounds with {left} identifiers "
                      "on the person's records not searched; run again with the identifiers in the report's records.",
        "written": "Report written to {path}",
        "result": "Request {id}: {status}. Certificate: {paths}",
        "statuses": {"completed": "completed", "failed": "not completed yet"},
        "still_found": "{n} erased records were still found; the request stays open. Run the same command again "
                       "to finish it.",
    },
}
