"""Erasure requests: register, plan, approve, execute, verify, certify.

The plan comes from the same `decide` as the nightly purge, with the request
as the trigger (`Erasure`): every period counts as over, except the legal one
that runs from an invoice's or quote's date, and only the exceptions the law
imposes (fiscal retention, a legal hold) keep anything. A scope narrows it:
`newsletter` is the withdrawal of consent for the newsletter purpose (the
systems holding it, from the rules), a system name limits it to that system.

After execution every system is searched again for the person's identifiers:
a record the plan erased that is still found is a failure and keeps the
request open. Only a verified full erasure puts the identifiers (hashed) on
the suppression list, so the nightly purge flags the person if they reappear.
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

from connectors.base import Connector, Identifiers, Record
from vergeet import pipeline, tasks
from vergeet.access import (SearchSystems, coverage, decision_context, find_person, html_environment,
                            identifier_hashes, left_alone_text, period_text, reference, register_request,
                            search_all, write_private)
from vergeet.decide import Erasure, Plan, decide
from vergeet.errors import BadInput
from vergeet.ledger import TASK_STATUSES, Ledger
from vergeet.rules import Rules

ALL = "all"
NEWSLETTER = "newsletter"


def scope_systems(scope: list[str], rules: Rules, connected: Mapping[str, Connector]) -> frozenset[str] | None:
    """The systems a scope reaches (None: all of them); `BadInput` for an unknown scope word."""
    if not scope or scope == [ALL]:
        return None
    systems: set[str] = set()
    for word in scope:
        if word == NEWSLETTER:
            systems |= {name for name, policy in rules.systems.items() if NEWSLETTER in policy.purposes}
        elif word in connected:
            systems.add(word)
        else:
            raise BadInput(f"scope: {word!r} is not 'all', 'newsletter' or a connected system "
                           f"({', '.join(connected)})")
    return frozenset(systems)


def register(ledger: Ledger, identifiers: Identifiers, rules: Rules, *, received: date, verified_by: str,
             scope: list[str], label: str = "") -> dict:
    """The open erasure request with this scope for these identifiers, else a new one."""
    return register_request(ledger, identifiers, rules, received=received, verified_by=verified_by,
                            kind="erasure", scope=",".join(scope) or ALL, label=label)


@dataclass
class ErasurePlan:
    """What an erasure request would do: the person as found, and the plan."""

    request: dict
    identifiers: Identifiers
    systems: frozenset[str] | None
    plan: Plan
    searched: tuple[str, ...] = ()  # the connected systems the person was looked for in
    #: record key -> the record as found, for its links and its reference (`access.reference`)
    records: Mapping[str, Record] = field(default_factory=dict)
    #: the request's tasks by hand (`vergeet.tasks`): the places the plan cannot reach
    by_hand: list[dict] = field(default_factory=list)
    #: searched systems with name-only records where no name was searched (`access.Found.unnamed`)
    unnamed: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return self.plan.actions.empty

    def deleted(self) -> set[str]:
        """Keys of the records the plan deletes."""
        actions = self.plan.actions
        return set(actions.loc[actions["action"] == "delete", "key"])

    def ended(self, rules: Rules) -> dict[str, str]:
        """Kept records that end with a record the plan deletes (a Mollie mandate with its customer): key ->
        the deleted record's key. They are not kept: deleting their parent ends them."""
        deleted, ended = self.deleted(), {}
        for row in self.plan.kept.drop_duplicates("key").itertuples(index=False):
            record, relation = self.records.get(row.key), rules.rule(row.rule_id).ends_with
            parent = next((str(link.target) for link in (record.links if record else ())
                           if link.relation == relation and str(link.target) in deleted), None)
            if parent is not None and row.key not in deleted:
                ended[row.key] = parent
        return ended

    def kept(self, rules: Rules) -> pd.DataFrame:
        """One row per record that stays (by law, or left for the owner to check), with `why` in words; not
        the records the plan deletes (an anonymised one may stay) nor those that end with one (`ended`)."""
        gone = self.deleted() | set(self.ended(rules))
        kept = self.plan.kept.drop_duplicates("key")
        kept = kept[~kept["key"].isin(gone)]
        return kept.assign(why=self.plan.kept_reasons(otherwise=self.plan.kept["rule_id"]).loc[kept.index])

    def reference(self, key: str, lang: str = "nl") -> str | None:
        """The record's number or date, as the person recognises it (`access.reference`)."""
        record = self.records.get(key)
        return reference(record, lang) if record else None


def plan_erasure(connectors: Mapping[str, Connector], identifiers: Identifiers, rules: Rules, ledger: Ledger,
                 request: dict, *, as_of: date, systems: frozenset[str] | None,
                 search_systems: SearchSystems = search_all) -> ErasurePlan:
    """Find the person everywhere and plan what erasure may remove; the request itself does not block it.

    `search_systems` runs one round of searches (see `find_person`); the Prefect flow runs each as a task.
    """
    found = find_person(connectors, identifiers, rules, search_systems=search_systems, ledger=ledger)
    plan = decide(found.view, rules, as_of, decision_context(ledger, as_of), Erasure(found.people, systems))
    return ErasurePlan(request, found.searched, systems, plan, found.systems, found.hits,
                       tasks.open_for(ledger, request, rules, found.systems), found.unnamed)


def reject(ledger: Ledger, request: dict, reason: str) -> None:
    """The owner refuses the request, for `reason` (no personal data): nothing changes, the request closes."""
    if not reason.strip():
        raise BadInput("a refusal needs its reason (it goes on record, and to the person)")
    ledger.set_request_status(request["id"], "rejected", reason)


def approve(ledger: Ledger, request: dict, how: str) -> None:
    """The owner approved the plan shown (`how`: at the prompt, with --approve, in Prefect)."""
    ledger.set_request_status(request["id"], "approved", how)


def not_now(ledger: Ledger, request: dict, note: str) -> None:
    """The plan was shown and not approved yet: the request stays open with its deadline, awaiting approval."""
    ledger.set_request_status(request["id"], "awaiting_approval", note)


def execute(ledger: Ledger, erasure: ErasurePlan, connectors: Mapping[str, Connector],
            progress: pipeline.Progress | None = None) -> pipeline.Summary:
    """Carry out an approved plan through the ledger (resumable like the purge), the request's run id kept; under
    the ledger's apply lease (`LeaseHeld` while another applying run holds it, and nothing starts)."""
    with ledger.lease("erasure"):
        run_id = ledger.start_run("erasure", as_of=erasure.plan.as_of, apply=True,
                                  params={"request_id": erasure.request["id"], "actions": len(erasure.plan.actions)})
        ledger.store_plan(run_id, erasure.plan.planned_actions())
        ledger.set_request_status(erasure.request["id"], "executing", f"run {run_id}")
        return pipeline.execute(ledger, run_id, connectors, progress)


def verify(connectors: Mapping[str, Connector], erasure: ErasurePlan, rules: Rules,
           search_systems: SearchSystems = search_all, ledger: Ledger | None = None) -> list[dict[str, str]]:
    """Search every system again: the erased records still found by the person's identifiers (record refs).

    With `ledger` the identity index is asked too, so a deleted record is read back by id: still there is
    still found. An anonymised record the index still maps to the person's former identifiers is not: it
    carries none of them any more, which is what anonymising it meant.
    """
    found = find_person(connectors, erasure.identifiers, rules, search_systems=search_systems, ledger=ledger)
    actions = erasure.plan.actions
    erased = set(actions["key"])
    if erasure.systems is not None:
        erased = {key for key in erased if key.split("/", 1)[0] in erasure.systems}
    deleted = set(actions.loc[actions["action"] == "delete", "key"])
    erased -= {key for key in found.former if key not in deleted}
    return [{"system": row.system, "record_type": row.record_type, "record_id": str(row.record_id)}
            for row in found.mentions.itertuples(index=False) if row.key in erased]


def finish(ledger: Ledger, erasure: ErasurePlan, summary: pipeline.Summary | None,
           still_found: list[dict[str, str]]) -> str:
    """Close the request when every action is done and nothing erased is found again; else keep it open.

    `summary` is None when the plan had nothing to erase.
    """
    request_id = erasure.request["id"]
    failed = summary.failed if summary else 0
    if failed or still_found:
        ledger.set_request_status(request_id, "failed",
                                  f"run {summary.run_id if summary else '-'}: {failed} actions failed, "
                                  f"{len(still_found)} erased records still found; rerun `vergeet erase` to finish")
        return "failed"
    if erasure.systems is None:
        ledger.suppress(identifier_hashes(ledger, erasure.identifiers), request_id)
    ledger.set_request_status(request_id, "completed", f"run {summary.run_id}" if summary else "nothing to erase")
    return "completed"


def certificate(ledger: Ledger, erasure: ErasurePlan, rules: Rules, summary: pipeline.Summary | None,
                still_found: list[dict[str, str]], status: str, lang: str = "nl") -> dict[str, Any]:
    """What was erased where and when, what is kept until when and why, and the request's dates.

    Record references and dates only: the certificate goes to the person, and it must not leak anyone
    else's data nor repeat the erased data. Each place vergeet could not search says whether its task by hand is
    done; `complete` is true only when the erasure is and no such task is open.
    """
    request = ledger.get_request(erasure.request["id"])
    done = {f"{a['system']}/{a['record_type']}/{a['record_id']}": a
            for a in (ledger.actions(summary.run_id) if summary else [])}

    def carried_out(key: str) -> dict[str, Any]:
        action = done.get(key, {})
        return {"outcome": action.get("outcome") or "not carried out",
                "at": action["finished_at"].isoformat(timespec="seconds") if action.get("finished_at") else None}

    def entry(row, **fields) -> dict[str, Any]:
        rule = rules.rule(row.rule_id)
        return {"system": row.system, "system_name": rules.system_name(row.system),
                "record_type": row.record_type, "record_label": getattr(rule, lang),
                "record_id": str(row.record_id), "reference": erasure.reference(row.key, lang),
                "rule": row.rule_id, **fields}

    erased = [entry(row, action=row.action, fields=list(row.fields), **carried_out(row.key))
              for row in erasure.plan.actions.itertuples(index=False)]
    erased += [entry(row, action=row.action, fields=list(row.fields), outcome="done",  # by an earlier run
                     at=row.since.isoformat(timespec="seconds"))
               for row in erasure.plan.done_before.itertuples(index=False)]
    ended = erasure.ended(rules)
    erased += [entry(row, action="ended", fields=[], **carried_out(ended[row.key]))
               for row in erasure.plan.kept.drop_duplicates("key").itertuples(index=False) if row.key in ended]
    kept = []
    for row in erasure.kept(rules).itertuples(index=False):
        rule = rules.rule(row.rule_id)
        basis = rules.exceptions["document_retention"].legal_basis if "document_retention" in row.exceptions \
            else rules.purposes[rule.purposes[0]].legal_basis
        kept.append(entry(
            row, until=row.retained_until.isoformat() if pd.notna(row.retained_until) else None,
            why=[left_alone_text(lang)] if pd.notna(row.left_alone)
            else [getattr(rules.exceptions[e], lang) for e in row.exceptions.split(",") if e]
            or [period_text(rule.period, rule.clock, lang)],
            retained_by=row.retained_by or None,
            retained_by_name=rules.system_name(row.retained_by) if row.retained_by else None,
            legal_basis=getattr(rules.legal_bases[basis], lang), legal_basis_gdpr=rules.legal_bases[basis].gdpr))
    return {
        "format": "vergeet-erasure-certificate/1",
        "language": lang,
        "controller": rules.controller.model_dump(),
        "request": {"id": request["id"], "scope": request["scope"], "received": request["received"].isoformat(),
                    "deadline": request["deadline"].isoformat(), "status": status,
                    "verified_by": request["verified_by"],
                    "closed": request["closed_at"].isoformat(timespec="seconds") if request["closed_at"] else None},
        "generated_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "erased": erased,
        "kept": kept,
        "systems": coverage(rules, erasure.searched, lang, tasks.public(ledger.tasks(request_id=request["id"])),
                            erasure.unnamed),
        "verification": {"searched_again": True, "still_found": still_found},
    } | _by_hand(ledger, request["id"], status)


def _by_hand(ledger: Ledger, request_id: int, status: str) -> dict[str, Any]:
    """The certificate's count of tasks by hand per status, and whether the erasure is complete with them."""
    counts = dict.fromkeys(TASK_STATUSES, 0)
    for task in ledger.tasks(request_id=request_id):
        counts[task["status"]] += 1
    return {"by_hand": counts, "complete": status == "completed" and not counts["open"]}


def refresh_certificate(ledger: Ledger, certificate: dict[str, Any]) -> dict[str, Any]:
    """A certificate written before, with its tasks by hand as they stand now (the owner marked some done)."""
    request_id = certificate["request"]["id"]
    settled = tasks.public(ledger.tasks(request_id=request_id))
    systems = [entry | {"task": settled.get(entry["system"])} if "task" in entry else entry
               for entry in certificate["systems"]]
    return certificate | {"systems": systems, "generated_at": datetime.now(timezone.utc).isoformat(timespec="seconds")
                          } | _by_hand(ledger, request_id, certificate["request"]["status"])


def write_certificate(certificate: dict[str, Any], directory: Path) -> list[Path]:
    """The certificate as JSON and as a self-contained HTML page for the person; the paths written."""
    return write_document(certificate, directory, "erasure-request", "erasure_certificate.html")


def write_document(document: dict[str, Any], directory: Path, kind: str, template: str) -> list[Path]:
    """A request's document for the person as `KIND-ID.json` and as the HTML page `template` renders from it (as
    `c`), each readable by its owner only; the paths written. No file is written if the page fails to render."""
    directory.mkdir(parents=True, exist_ok=True)
    stem = directory / f"{kind}-{document['request']['id']}"
    html = html_environment(document["language"]).get_template(template).render(c=document, lang=document["language"])
    paths = [stem.with_suffix(".json"), stem.with_suffix(".html")]
    write_private(paths[0], json.dumps(document, ensure_ascii=False, indent=2))
    write_private(paths[1], html)
    return paths
