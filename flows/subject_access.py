"""The access request as a Prefect flow: thin wiring around `vergeet.access`.

Registers the request, searches each system as its own task (retried by
Prefect, concurrently) round after round as `find_person` expands, builds the
report and writes it as JSON and HTML to `out_dir`, named after the request
id. The markdown artifact and the logs carry counts only.

The person's identifiers are personal data and Prefect stores every flow run's
parameters: the flow takes the name of a Secret block that holds them, reads it
once and deletes it (see `flows/identifiers.py`, which says how to start a
request from the UI). `run_subject_access` does that for in-process callers.

Tasks neither cache nor persist results (their inputs and outputs are personal
data); Prefect records a task's inputs as references to upstream runs only,
not as values.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date
from pathlib import Path
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.tasks import exponential_backoff

from connectors.base import Connector, Identifiers, Record
from flows.identifiers import discard, person_from_block, stash
from vergeet import access, tasks
from vergeet.config import load_config
from vergeet.connect import build_connectors, open_ledger
from vergeet.ledger import Ledger
from vergeet.rules import Rules, load_rules

SIDE_EFFECT_FREE = {"cache_policy": NO_CACHE, "persist_result": False}


@task(retries=3, retry_delay_seconds=exponential_backoff(backoff_factor=10), **SIDE_EFFECT_FREE)
def search_system(connector: Connector, identifiers: Identifiers) -> list[Record]:
    """One system's hits for one round; retried by Prefect when the vendor stays unavailable."""
    return access.search(connector, identifiers)


def search_as_tasks(connectors: Mapping[str, Connector], identifiers: Identifiers) -> dict[str, list[Record]]:
    """One round of `find_person`: every system searched in its own task, concurrently."""
    futures = {system: search_system.submit(connector, identifiers) for system, connector in connectors.items()}
    return {system: future.result() for system, future in futures.items()}


@task(**SIDE_EFFECT_FREE)
def register_request(ledger: Ledger, subject: Identifiers, rules: Rules, received: date, verified_by: str) -> dict:
    return access.register_request(ledger, subject, rules, received=received, verified_by=verified_by)


@task(**SIDE_EFFECT_FREE)
def build_report(found: access.Found, rules: Rules, subject: Identifiers, request: dict, lang: str,
                 ledger: Ledger) -> dict:
    """The report, with the request's tasks by hand (made now where it has none yet) for the places not searched."""
    today = date.today()
    by_hand = tasks.open_for(ledger, request, rules, found.systems)
    return access.access_report(found, rules, subject=subject, as_of=today, lang=lang, request=request,
                                context=access.decision_context(ledger, today), tasks=tasks.public(by_hand))


@task(**SIDE_EFFECT_FREE)
def write_report(report: dict, out_dir: str) -> list[str]:
    """The report as JSON (the portability export) and as the HTML page for the person (owner-readable only)."""
    return [str(path) for path in access.write_report(report, Path(out_dir))]


def report_markdown(report: dict) -> str:
    """Counts only: records per system, possible matches, search rounds, the deadline."""
    request = report["request"]
    lines = [f"# Access request {request['id']}", "", f"Received {request['received']}, answer by "
             f"{request['deadline']}.", "", "| system | records |", "|---|---|"]
    lines += [f"| {s['system']} | {s['records']} |" for s in report["systems"] if s["status"] == "searched"]
    lines += ["", "Check by hand before the answer goes out:", ""]
    lines += [f"- {line}" for line in access.checklist(report["systems"], report["language"])]
    search = report["search"]
    lines += ["", f"{len(report['possible_matches'])} possible matches (not included), "
                  f"{search['rounds']} search rounds, {search['identifiers_searched']} identifiers searched, "
                  f"{search['identifiers_left_unsearched']} left unsearched."]
    return "\n".join(lines)


@flow(name="subject-access", log_prints=False, persist_result=False)
def subject_access(identifiers_block: str, config_path: str | None = None, lang: str = "nl",
                   out_dir: str = ".", verified_by: str = "", received: date | None = None) -> dict:
    """Register the access request, find everything about the person, and write the report (JSON and HTML).

    Args:
        identifiers_block: The name of a Secret block with the person's e-mail addresses and phone numbers (one
            per line), read once and deleted.
        config_path: The vergeet config file (TOML); empty: VERGEET_CONFIG where the flow runs.
        lang: The report's language, nl or en.
        out_dir: Where the report goes (JSON and HTML, readable by their owner only).
        verified_by: How the person's identity was checked (never a copy of an ID).
        received: The day the request came in (default: today); the deadline is 4 weeks later.
    """
    logger = get_run_logger()
    subject = person_from_block(identifiers_block)
    config = load_config(config_path, given_as="the config_path parameter")
    rules = load_rules(config.rules_file())
    connectors = build_connectors(config)
    with open_ledger(config) as ledger:
        request = register_request(ledger, subject, rules, received or date.today(), verified_by)
        found = access.find_person(connectors, subject, rules, search_systems=search_as_tasks, ledger=ledger)
        report = build_report(found, rules, subject, request, lang, ledger)
    paths = write_report(report, out_dir)
    logger.info("request %s: %s records, %s possible matches", request["id"], len(report["records"]),
                len(report["possible_matches"]))
    create_markdown_artifact(report_markdown(report), key=f"access-request-{request['id']}",
                             description="Counts per system (no personal data)")
    return {"request_id": request["id"], "deadline": request["deadline"].isoformat(),
            "records": len(report["records"]), "possible_matches": len(report["possible_matches"]),
            "files": paths}


def run_subject_access(identifiers: Sequence[str], names: Sequence[str] = (), **options) -> dict:
    """Run the flow in-process, the identifiers passed through a Secret block (never a parameter)."""
    block = stash(identifiers, names)
    try:
        return subject_access(identifiers_block=block, **options)
    finally:
        discard(block)
