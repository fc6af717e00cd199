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

from connectors.base import Connector, Identifiers
from vergeet import pipeline
from vergeet.access import (SearchSystems, coverage, decision_context, find_person, html_environment,
                            identifier_hashes, left_alone_text, period_text, register_request, search_all)
from vergeet.decide import Erasure, Plan, decide
from vergeet.errors import BadInput
from vergeet.ledger import Ledger
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
            raise BadInput(f"--scope: {word!r} is not 'all', 'newsletter' or a connected system "
                           f"({', '.join(connected)})")
    return frozenset(systems)


def register(ledger: Ledger, identifiers: Identifiers, rules: Rules, *, received: date, verified_by: str,
             scope: list[str]) -> dict:
    """The open erasure request with this scope for these identifiers, else a new one."""
    return register_request(ledger, identifiers, rules, received=received, verified_by=verified_by,
                            kind="erasure", scope=",".join(scope) or ALL)


@dataclass
class ErasurePlan:
    """What an erasure request would do: the person as found, and the plan."""

    request: dict
    identifiers: Identifiers
    systems: frozenset[str] | None
    plan: Plan
    searched: tuple[str, ...] = ()  # the connected systems the person was looked for in
    #: record key -> (relation, target key) of its links, for what ends with the record it belongs to
    links: Mapping[str, tuple[tuple[str, str], ...]] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return self.plan.actions.empty


def plan_erasure(connectors: Mapping[str, Connector], identifiers: Identifiers, rules: Rules, ledger: Ledger,
                 request: dict, *, as_of: date, systems: frozenset[str] | None,
                 search_systems: SearchSystems = search_all) -> ErasurePlan:
    """Find the person everywhere and plan what erasure may remove; the request itself does not block it.

    `search_systems` runs one round of searches (see `find_person`); the Prefect flow runs each as a task.
    """
    found = find_person(connectors, identifiers, rules, search_systems=search_systems, ledger=ledger)
    plan = decide(found.view, rules, as_of, decision_context(ledger, as_of), Erasure(found.people, systems))
    links = {key: tuple((link.relation, str(link.target)) for link in record.links)
             for key, record in found.hits.items() if record.links}
    return ErasurePlan(request, found.searched, systems, plan, found.systems, links)


def reject(ledger: Ledger, request: dict, note: str) -> None:
    """A human said no: nothing changes, the reason is recorded."""
    ledger.set_request_status(request["id"], "rejected", note or "rejected without a reason")


def execute(ledger: Ledger, erasure: ErasurePlan, connectors: Mapping[str, Connector],
            progress: pipeline.Progress | None = None) -> pipeline.Summary:
    """Carry out an approved plan through the ledger (resumable like the purge), the request's run id kept."""
    run_id = ledger.start_run("erasure", as_of=erasure.plan.as_of, apply=True,
                              params={"request_id": erasure.request["id"], "actions": len(erasure.plan.actions)})
    ledger.store_plan(run_id, erasure.plan.planned_actions())
    ledger.set_request_status(erasure.request["id"], "open", f"approved; executing in run {run_id}")
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
    else's data nor repeat the erased data.
    """
    request = ledger.get_request(erasure.request["id"])
    done = {f"{a['system']}/{a['record_type']}/{a['record_id']}": a
            for a in (ledger.actions(summary.run_id) if summary else [])}

    def carried_out(key: str) -> dict[str, Any]:
        action = done.get(key, {})
        return {"outcome": action.get("outcome") or "not carried out",
                "at": action["finished_at"].isoformat(timespec="seconds") if action.get("finished_at") else None}

    erased = []
    for row in erasure.plan.actions.itertuples(index=False):
        erased.append({"system": row.system, "system_name": rules.system_name(row.system),
                       "record_type": row.record_type, "record_label": getattr(rules.rule(row.rule_id), lang),
                       "record_id": str(row.record_id),
                       "action": row.action, "fields": list(row.fields), "rule": row.rule_id,
                       **carried_out(row.key)})
    for row in erasure.plan.done_before.itertuples(index=False):  # anonymised by an earlier run: say so, and when
        erased.append({"system": row.system, "system_name": rules.system_name(row.system),
                       "record_type": row.record_type, "record_label": getattr(rules.rule(row.rule_id), lang),
                       "record_id": str(row.record_id), "action": row.action, "fields": list(row.fields),
                       "rule": row.rule_id, "outcome": "done", "at": row.since.isoformat(timespec="seconds")})
    actions = erasure.plan.actions
    deleted = set(actions.loc[actions["action"] == "delete", "key"])  # anonymised records may still be kept
    kept = []
    for row in erasure.plan.kept.drop_duplicates("key").itertuples(index=False):
        if row.key in deleted:
            continue
        rule = rules.rule(row.rule_id)
        parent = next((target for relation, target in erasure.links.get(row.key, ())
                       if relation == rule.ends_with and target in deleted), None)
        if parent is not None:  # it ended with the record it belonged to (Mollie cancels a customer's mandates)
            erased.append({"system": row.system, "system_name": rules.system_name(row.system),
                           "record_type": row.record_type, "record_label": getattr(rule, lang),
                           "record_id": str(row.record_id), "action": "ended", "fields": [], "rule": row.rule_id,
                           **carried_out(parent)})
            continue
        basis = rules.exceptions["document_retention"].legal_basis if "document_retention" in row.exceptions \
            else rules.purposes[rule.purposes[0]].legal_basis
        kept.append({"system": row.system, "system_name": rules.system_name(row.system),
                     "record_type": row.record_type, "record_label": getattr(rule, lang),
                     "record_id": str(row.record_id),
                     "until": row.retained_until.isoformat() if pd.notna(row.retained_until) else None,
                     "why": [left_alone_text(lang)] if pd.notna(row.left_alone)
                     else [getattr(rules.exceptions[e], lang) for e in row.exceptions.split(",") if e]
                     or [period_text(rule.period, rule.clock, lang)],
                     "retained_by": row.retained_by or None,
                     "retained_by_name": rules.system_name(row.retained_by) if row.retained_by else None,
                     "legal_basis": getattr(rules.legal_bases[basis], lang),
                     "legal_basis_gdpr": rules.legal_bases[basis].gdpr})
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
        "systems": coverage(rules, erasure.searched, lang),
        "verification": {"searched_again": True, "still_found": still_found},
    }


def write_certificate(certificate: dict[str, Any], directory: Path) -> list[Path]:
    """The certificate as JSON and as a self-contained HTML page for the person; the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    stem = directory / f"erasure-request-{certificate['request']['id']}"
    html = html_environment(certificate["language"]).get_template("erasure_certificate.html").render(
        c=certificate, lang=certificate["language"])
    paths = [stem.with_suffix(".json"), stem.with_suffix(".html")]
    paths[0].write_text(json.dumps(certificate, ensure_ascii=False, indent=2), encoding="utf-8")
    paths[1].write_text(html, encoding="utf-8")
    return paths
