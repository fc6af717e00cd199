"""An erasure request as a Prefect flow, with a human approval step in the Prefect UI.

Thin wiring around `vergeet.erasure`: register the request, find the person
and plan, pause for the owner's decision (a form in the UI, `flows/approval.py`),
then execute, verify and certify. A pause that times out leaves the request
open and nothing erased. The identifiers never reach Prefect's database in
plaintext (see `flows/identifiers.py`); artifacts carry counts and record ids
only; the certificate is written to `out_dir`.
"""
from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd
from prefect import flow, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.states import State

from flows.approval import WEEK, await_approval
from flows.identifiers import discard, person_from_block, stash
from flows.subject_access import search_as_tasks
from vergeet import erasure
from vergeet.config import load_config
from vergeet.connect import build_connectors, open_ledger
from vergeet.mask import mask_email, mask_phone
from vergeet.rules import Rules, load_rules

SIDE_EFFECTS = {"cache_policy": NO_CACHE, "persist_result": False}


def plan_request(connectors, identifiers, rules, ledger, request, as_of, systems) -> erasure.ErasurePlan:
    """Find and plan; each system's search runs as its own task, retried by Prefect."""
    return erasure.plan_erasure(connectors, identifiers, rules, ledger, request, as_of=as_of, systems=systems,
                                search_systems=search_as_tasks)


@task(**SIDE_EFFECTS)
def execute_request(ledger, plan, connectors):
    return erasure.execute(ledger, plan, connectors)


def verify_request(connectors, plan, rules, ledger=None):
    """Search every system again, each as its own task."""
    return erasure.verify(connectors, plan, rules, search_systems=search_as_tasks, ledger=ledger)


def plan_rows(plan: erasure.ErasurePlan, rules: Rules, lang: str = "en") -> list[dict]:
    """What the owner approves, one row per record: erased (or ending with what is erased) first, then kept;
    record ids, the rules' labels and reasons only, never the person's data."""
    def label(rule_id: str) -> str:
        rule = rules.rule(rule_id)
        return getattr(rule, lang) if rule else rule_id

    def row(key: str, rule_id: str, what: str) -> dict:
        system, record_type, record_id = key.split("/", 2)
        return {"system": system, "record_type": record_type, "record_id": record_id, "label": label(rule_id),
                "action or reason": what}

    rows = [row(r.key, r.rule_id, f"{r.action} {', '.join(r.fields)}".strip())
            for r in plan.plan.actions.drop_duplicates("key").itertuples(index=False)]
    ended, kept = plan.ended(rules), plan.plan.kept.drop_duplicates("key").set_index("key")
    rows += [row(key, kept.loc[key, "rule_id"], f"ends: {parent} is deleted") for key, parent in ended.items()]
    rows += [row(r.key, r.rule_id, f"kept until {r.retained_until}: {r.why}" if pd.notna(r.retained_until)
                 else f"kept: {r.why}") for r in plan.kept(rules).itertuples(index=False)]
    return rows


def plan_markdown(plan: erasure.ErasurePlan, rules: Rules, lang: str = "en") -> str:
    """The rows of `plan_rows` as the approval form's text in the UI: what is erased, then what is kept."""
    rows = plan_rows(plan, rules, lang)
    kept = [r for r in rows if r["action or reason"].startswith("kept")]

    def table(part: list[dict]) -> list[str]:
        return ["| system | record | label | action or reason |", "|---|---|---|---|"] + [
            f"| {r['system']} | {r['record_type']} {r['record_id']} | {r['label']} | {r['action or reason']} |"
            for r in part]

    return "\n".join([f"Erasure request {plan.request['id']} about {masked(plan.identifiers)}, scope "
                      f"{plan.request['scope']}, deadline {plan.request['deadline']}.", "",
                      "Erased:", ""] + table(rows[:len(rows) - len(kept)]) +
                     ["", "Kept (by law, or left for the owner to check):", ""] + table(kept) +
                     ["", "Approve, or reject with the reason in the note."])


def masked(identifiers) -> str:
    """The person as the owner recognises them, never readable (`j***@g***.com, +316******78`)."""
    return ", ".join([mask_email(e) for e in identifiers.emails] + [mask_phone(p) for p in identifiers.phones])


@flow(name="erasure-request", persist_result=False)
def erasure_request(identifiers_block: str, scope: list[str] | None = None, verified_by: str = "",
                    config_path: str | None = None, lang: str = "nl", out_dir: str = ".",
                    approval_timeout: int = WEEK, poll_interval: int = 10) -> dict | State:
    """Register, plan, wait for approval, erase, verify and certify one erasure request.

    Args:
        identifiers_block: The name of a Secret block with the person's e-mail addresses and phone numbers (one
            per line), read once and deleted.
        scope: What to erase: all, newsletter (a withdrawn consent) or system names (default: all).
        verified_by: How the person's identity was checked (never a copy of an ID).
        config_path: The vergeet config file (TOML); empty: VERGEET_CONFIG where the flow runs.
        lang: The certificate's language, nl or en.
        out_dir: Where the certificate goes (HTML and JSON, readable by their owner only).
        approval_timeout: Seconds to wait for the owner's answer in the UI; then the request stays open.
        poll_interval: Seconds between checks for that answer.
    """
    person = person_from_block(identifiers_block)  # first: the block is gone whatever fails next
    config = load_config(config_path, given_as="the config_path parameter")
    rules = load_rules(config.rules_file())
    connectors = build_connectors(config)
    scope = scope or [erasure.ALL]
    systems = erasure.scope_systems(scope, rules, connectors)
    today = date.today()
    with open_ledger(config) as ledger:
        request = erasure.register(ledger, person, rules, received=today, verified_by=verified_by, scope=scope)
        plan = plan_request(connectors, person, rules, ledger, request, today, systems)
        create_table_artifact(plan_rows(plan, rules, lang), key=f"erasure-request-{request['id']}",
                              description=f"Erasure request {request['id']} about {masked(person)}: what is erased "
                                          "and what is kept (record ids only); approve or reject on the paused run")
        if plan.empty:
            status = erasure.finish(ledger, plan, None, [])
            certificate = erasure.certificate(ledger, plan, rules, None, [], status, lang)
            return {"request_id": request["id"], "status": status, "erased": 0,
                    "files": [str(p) for p in erasure.write_certificate(certificate, Path(out_dir))]}
        ended = await_approval(ledger, request, plan_markdown(plan, rules, lang), counted="erased",
                               undone="nothing was erased", timeout=approval_timeout, poll_interval=poll_interval)
        if ended is not None:
            return ended
        summary = execute_request(ledger, plan, connectors)
        still_found = verify_request(connectors, plan, rules, ledger)
        status = erasure.finish(ledger, plan, summary, still_found)
        certificate = erasure.certificate(ledger, plan, rules, summary, still_found, status, lang)
        create_markdown_artifact(f"Request {request['id']}: {status}; "
                                 f"{sum(summary.counts.values())} actions, {summary.failed} failed, "
                                 f"{len(still_found)} erased records found again.",
                                 key=f"erasure-result-{request['id']}")
    return {"request_id": request["id"], "status": status, "erased": len(plan.plan.actions) - summary.failed,
            "failed": summary.failed, "still_found": len(still_found),
            "files": [str(p) for p in erasure.write_certificate(certificate, Path(out_dir))]}


def run_erasure_request(identifiers, names=(), **options) -> dict:
    """Run the flow in-process, the identifiers passed through a Secret block (never a parameter)."""
    block = stash(identifiers, names)
    try:
        return erasure_request(identifiers_block=block, **options)
    finally:
        discard(block)
