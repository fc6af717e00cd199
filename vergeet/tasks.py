"""Tasks by hand: what the owner must check or ask where vergeet cannot search or erase itself.

An access request, and an erasure request of scope all, gets a task for each processor in the rules file without a
`system` (the bookkeeper, Google Analytics, Meta: its `check` says what to ask whom) and for each system of the
rules file that is not connected (look the person up there): the places `access.coverage` lists as not searched.
The ledger keeps them (`request_tasks`: keys and statuses, no personal data) until the owner marks them done or not
applicable with `vergeet tasks`; the access report, the erasure certificate and the digest say where they stand.

What a vendor's API could not do in a purge (a connector's not-supported outcome, `Ledger.handed_over`) is the
other kind of work by hand: `handed_over` lists it from the plan over the ledger's cache, as the digest does. It
ends by itself when the next run finds the record gone or changed, so it is listed, never marked.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date
from typing import Any

import pandas as pd

from vergeet.access import by_hand_text, checklist, coverage
from vergeet.ledger import Ledger
from vergeet.rules import Rules

NOT_CONNECTED = "not_connected"
#: the check key of a processor without a `check` text of its own (`access.by_hand_text`)
BY_HAND = "check_by_hand"
#: the request scope whose tasks are made: a narrower erasure (the newsletter, one system) asks nothing by hand
ALL = "all"

WORDS = {
    "nl": {"title": "Taken met de hand", "none": "Geen open taken met de hand.", "none_all": "Geen taken met de hand.",
           "request": "verzoek {id} ({kind}), uiterlijk {deadline}", "statuses": {
               "open": "open", "done": "gedaan", "not_applicable": "niet van toepassing"},
           "kinds": {"access": "inzage", "erasure": "verwijdering", "rectification": "correctie",
                     "objection": "bezwaar"},
           "mark": "Klaar? `vergeet tasks done ID [--note ...]`, of `vergeet tasks na ID --note REDEN`.",
           "handed_over": "Uit de nachtelijke run: de API van de leverancier kan dit niet, doe het in de app "
                          "(het verdwijnt hier als de volgende run het gegeven weg of veranderd vindt):",
           "do": {"delete": "verwijderen", "anonymise": "onherkenbaar maken"}, "since": "sinds {day}",
           "marked": "Taak {id} ({name}, verzoek {request}): {status}.",
           "all_done": "Alle taken met de hand van verzoek {request} zijn afgehandeld.",
           "renew": "Een nieuw bewijs van verwijdering dat dit zegt: `vergeet tasks certificate "
                    "erasure-request-{request}.json`."},
    "en": {"title": "Tasks by hand", "none": "No open tasks by hand.", "none_all": "No tasks by hand.",
           "request": "request {id} ({kind}), due {deadline}", "statuses": {
               "open": "open", "done": "done", "not_applicable": "not applicable"},
           "kinds": {"access": "access", "erasure": "erasure", "rectification": "rectification",
                     "objection": "objection"},
           "mark": "Done? `vergeet tasks done ID [--note ...]`, or `vergeet tasks na ID --note REASON`.",
           "handed_over": "From the nightly run: the vendor's API cannot do these, do them in its app (they leave "
                          "this list when the next run finds the record gone or changed):",
           "do": {"delete": "delete", "anonymise": "make unrecognisable"}, "since": "since {day}",
           "marked": "Task {id} ({name}, request {request}): {status}.",
           "all_done": "Every task by hand of request {request} is settled.",
           "renew": "A new certificate of erasure that says so: `vergeet tasks certificate "
                    "erasure-request-{request}.json`."},
}


def checks(rules: Rules, searched: Iterable[str]) -> list[tuple[str, str]]:
    """(subject, check key) of every place a request's answer must be completed by hand: `access.coverage`'s
    entries that were not searched."""
    return [(entry["system"], NOT_CONNECTED if entry["status"] == NOT_CONNECTED
             else f"processors.{entry['system']}.check" if rules.processors[entry["system"]].check else BY_HAND)
            for entry in coverage(rules, searched, "en") if entry["status"] != "searched"]


def open_for(ledger: Ledger, request: Mapping[str, Any], rules: Rules, searched: Iterable[str]) -> list[dict]:
    """The request's tasks, made now where it has none for a place yet (an erasure of a narrower scope gets
    none): the ledger's rows, oldest first."""
    if request["kind"] == "access" or request["scope"] == ALL:
        ledger.add_tasks(request["id"], checks(rules, searched))
    return ledger.tasks(request_id=request["id"])


def public(tasks: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Subject -> what a report for the person says of its task: id, status and when it was settled (never the
    owner's note)."""
    return {task["subject"]: {"id": task["id"], "status": task["status"],
                              "done_at": task["done_at"].isoformat(timespec="seconds") if task["done_at"] else None}
            for task in tasks}


def described(task: Mapping[str, Any], rules: Rules, lang: str) -> dict[str, Any]:
    """The task with its place's name and what to do there, in `lang`, from the rules as they are now."""
    entries = {(entry["system"], entry["status"]): entry for entry in coverage(rules, (), lang)}
    status = NOT_CONNECTED if task["check_key"] == NOT_CONNECTED else "checked_by_hand"
    entry = entries.get((task["subject"], status)) or {"system": task["subject"], "name": task["subject"],
                                                       "status": "checked_by_hand", "check": by_hand_text(lang)}
    return dict(task) | {"name": entry["name"], "what": checklist([entry], lang)[0]}


def due(ledger: Ledger, rules: Rules, day: date, within_days: int, lang: str) -> list[dict[str, Any]]:
    """Open tasks whose request is due within `within_days` of `day` (or overdue), described in `lang`."""
    return [described(task, rules, lang) for task in ledger.tasks(open_only=True)
            if (task["deadline"] - day).days <= within_days]


def settled(ledger: Ledger, request_id: int) -> bool:
    """Whether none of the request's tasks is open."""
    return not ledger.tasks(request_id=request_id, open_only=True)


def handed_over(plan: Any) -> list[dict[str, Any]]:
    """What a plan over the ledger's cache (`notify.cached_plan`) leaves to the owner: record key, action, since
    when, and the connector's note of what to do where (record ids, no personal data)."""
    if plan is None:
        return []
    return [{"key": row["key"], "action": row["action"], "since": row["since"] if pd.notna(row["since"]) else None,
             "detail": row["detail"]} for row in plan.awaiting_owner.to_dict("records")]
