"""A rectification request as a Prefect flow, with the owner's approval in the Prefect UI.

Thin wiring around `vergeet.rectify`, as `flows/erasure_request.py` is around erasure: find the person and plan,
register the request, pause for the owner's decision with the plan as a table artifact, then correct, read back
and confirm. Neither the identifiers nor the new values reach Prefect's database in plaintext: both come from
Secret blocks, read once and deleted (`flows/identifiers.py`); artifacts carry record ids, field names and masked
values only; the confirmation, the one document with the values, is written to `out_dir`.
"""
from __future__ import annotations

import re
import secrets
from collections.abc import Mapping, Sequence
from datetime import date
from pathlib import Path

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.blocks.system import Secret
from prefect.states import State

from flows.approval import WEEK, await_approval
from flows.erasure_request import SIDE_EFFECTS, masked
from flows.identifiers import discard, person_from_block, read_once, stash
from flows.subject_access import search_as_tasks
from vergeet import rectify
from vergeet.config import load_config
from vergeet.connect import build_connectors, open_ledger
from vergeet.errors import BadInput
from vergeet.rules import load_rules

_LINES = re.compile(r"[\n;]+")


def settings_from_block(name: str) -> dict[str, str]:
    """The new values, from the Secret block `name` (one FIELD=VALUE a line, or a JSON object of them), which is
    deleted once read; `rectify.parse_settings` checks them. Messages never repeat the block's content."""
    stored = read_once(name, "changes_block", "what to correct, one FIELD=VALUE a line (email=..., phone=..., "
                                              "name=..., address=Street 1, 1234 AB City)")
    if isinstance(stored, str):
        return rectify.parse_settings(line for line in _LINES.split(stored) if line.strip())
    if isinstance(stored, dict):
        return rectify.parse_settings(f"{field}={value}" for field, value in stored.items())
    raise BadInput(f"changes_block: Secret block {name!r} holds neither FIELD=VALUE lines nor a JSON object of "
                   "them; it was deleted, create it again")


@task(**SIDE_EFFECTS)
def correct_records(ledger, plan, connectors):
    return rectify.execute(ledger, plan, connectors)


@task(**SIDE_EFFECTS)
def read_back(ledger, plan, connectors):
    return rectify.verify(ledger, plan, connectors)


def plan_markdown(plan: rectify.CorrectionPlan, rows: list[dict]) -> str:
    """The approval form's text: the request, then the plan's rows (masked values)."""
    columns = ("system", "record_type", "record_id", "field", "now", "new", "what")
    return "\n".join([f"Rectification request {plan.request['id']} about {masked(plan.identifiers)}, deadline "
                      f"{plan.request['deadline']}.", "", "| " + " | ".join(columns) + " |",
                      "|" + "---|" * len(columns)]
                     + ["| " + " | ".join(str(row[c]) for c in columns) + " |" for row in rows]
                     + ["", "Approve, or reject with the reason in the note."])


@flow(name="rectification-request", persist_result=False)
def rectification_request(identifiers_block: str, changes_block: str, verified_by: str = "",
                          config_path: str | None = None, lang: str = "nl", out_dir: str = ".",
                          approval_timeout: int = WEEK, poll_interval: int = 10) -> dict | State:
    """Plan, wait for approval, correct, read back and confirm one rectification request.

    Args:
        identifiers_block: The name of a Secret block with the person's e-mail addresses and phone numbers (one
            per line), read once and deleted.
        changes_block: The name of a Secret block with what to correct, one FIELD=VALUE a line (name, email,
            phone, address as "Street 1, 1234 AB City", or address.street, address.postcode, address.city),
            read once and deleted.
        verified_by: How the person's identity was checked (never a copy of an ID).
        config_path: The vergeet config file (TOML); empty: VERGEET_CONFIG where the flow runs.
        lang: The confirmation's language, nl or en.
        out_dir: Where the confirmation goes (HTML and JSON, readable by their owner only).
        approval_timeout: Seconds to wait for the owner's answer in the UI; then the request stays open.
        poll_interval: Seconds between checks for that answer.
    """
    person = person_from_block(identifiers_block)  # first: the blocks are gone whatever fails next
    new = settings_from_block(changes_block)
    config = load_config(config_path, given_as="the config_path parameter")
    rules = load_rules(config.rules_file())
    connectors = build_connectors(config)
    today = date.today()
    with open_ledger(config) as ledger:
        plan = rectify.plan_rectification(connectors, person, new, rules, ledger, search_systems=search_as_tasks)
        plan.request = request = rectify.register(ledger, person, rules, new, received=today,
                                                  verified_by=verified_by)
        rows = rectify.plan_rows(plan, rules, lang)
        create_table_artifact(rows, key=f"rectification-request-{request['id']}",
                              description=f"Rectification request {request['id']} about {masked(person)}: what "
                                          "changes and what stays (record ids, values masked); approve or reject "
                                          "on the paused run")
        summary, differs = None, []
        if not plan.empty:
            ended = await_approval(ledger, request, plan_markdown(plan, rows), counted="corrected",
                                   undone="nothing was changed", timeout=approval_timeout, poll_interval=poll_interval)
            if ended is not None:
                return ended
            summary = correct_records(ledger, plan, connectors)
            differs = read_back(ledger, plan, connectors)
        status = rectify.finish(ledger, plan, summary, differs)
        document = rectify.confirmation(ledger, plan, rules, differs, status, lang)
        failed = summary.failed if summary else 0
        create_markdown_artifact(f"Request {request['id']}: {status}; {len(plan.to_make())} records to correct, "
                                 f"{failed} failed, {len(differs)} read back without the new values.",
                                 key=f"rectification-result-{request['id']}")
    return {"request_id": request["id"], "status": status, "corrected": len(plan.to_make()) - failed,
            "failed": failed, "differs": len(differs),
            "files": [str(p) for p in rectify.write_confirmation(document, Path(out_dir))]}


def run_rectification_request(identifiers: Sequence[str], settings: Mapping[str, str] | Sequence[str],
                              **options) -> dict | State:
    """Run the flow in-process, the identifiers and the new values passed through Secret blocks (never
    parameters)."""
    person = stash(identifiers)
    changes = f"vergeet-changes-{secrets.token_hex(8)}"
    Secret(value=dict(settings) if isinstance(settings, Mapping) else "\n".join(settings)).save(changes)
    try:
        return rectification_request(identifiers_block=person, changes_block=changes, **options)
    finally:
        discard(person)
        discard(changes)
