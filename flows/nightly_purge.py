"""The nightly purge as a Prefect flow: thin wiring around `vergeet.pipeline`.

Each system is synced in its own task (with Prefect retries, concurrently):
what changed since the last run goes into the ledger's cache, hashed. Then
the view is built, the plan made, stored and executed. A markdown
artifact reports counts per system, rule and outcome; it never carries
personal data. Task results are not persisted and not cached: they hold
personal data and the actions have side effects.
"""
from __future__ import annotations

from contextlib import nullcontext
from datetime import date

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.logging.loggers import flow_run_logger
from prefect.states import Failed, State
from prefect.tasks import exponential_backoff

from connectors.base import Connector
from vergeet import notify, pipeline
from vergeet.config import SyncConfig, load_config
from vergeet.connect import build_connectors, open_ledger
from vergeet.decide import Plan
from vergeet.identity import IdentityView
from vergeet.ledger import Ledger
from vergeet.rules import Rules, RulesChanged, load_rules
from vergeet.rules import accept_rules as accept_changed_rules
from vergeet.sync import Snapshot

SIDE_EFFECT_FREE = {"cache_policy": NO_CACHE, "persist_result": False}


@task(retries=3, retry_delay_seconds=exponential_backoff(backoff_factor=10), **SIDE_EFFECT_FREE)
def sync_system(connector: Connector, ledger: Ledger, settings: SyncConfig) -> Snapshot:
    """Read what changed in one system (all of it when a full read is due); retried by Prefect when the vendor
    stays unavailable (the cache changes only once a read is complete)."""
    return pipeline.sync(connector, ledger, settings)


@task(**SIDE_EFFECT_FREE)
def build_identity_view(records: dict[str, Snapshot], rules: Rules) -> IdentityView:
    return pipeline.identity_view(records, rules)


@task(**SIDE_EFFECT_FREE)
def plan_purge(view: IdentityView, rules: Rules, as_of: date, ledger: Ledger) -> Plan:
    return pipeline.make_plan(view, rules, as_of, ledger)


@task(**SIDE_EFFECT_FREE)
def execute_plan(ledger: Ledger, plan: Plan, connectors: dict[str, Connector]) -> pipeline.Summary:
    """The plan into the ledger, then every action through it."""
    return pipeline.execute(ledger, pipeline.store_plan(ledger, plan), connectors)


def breaker_refusal(plan: Plan, max_delete_share: float) -> str | None:
    """The circuit breaker's refusal in the flow's own terms (its `force` parameter), or None: the plan may run."""
    try:
        pipeline.check_circuit_breaker(plan, max_delete_share)
    except pipeline.CircuitOpen as exc:
        return (f"Refused by the circuit breaker: {exc}. Review the plan (`vergeet purge` shows it record by "
                "record); if it is right, run this deployment once with the parameter force = true.")
    return None


@task(**SIDE_EFFECT_FREE)
def resume_interrupted(ledger: Ledger, connectors: dict[str, Connector]) -> list[pipeline.Summary]:
    return pipeline.resume_unfinished(ledger, connectors)


def report_markdown(plan: Plan, summary: pipeline.Summary | None, refusal: str | None = None) -> str:
    """Counts only: per system, rule and outcome, plus kept records per exception; a refusal first."""
    lines = [f"# Nightly purge {plan.as_of}", ""] + ([f"**{refusal}**", ""] if refusal else [])
    lines += ["| system | rule | outcome | records |", "|---|---|---|---|"]
    if summary is not None:
        lines += [f"| {r['system']} | {r['rule']} | {r['outcome']} | {r['count']} |" for r in summary.rows()]
    else:
        counts = plan.actions.groupby(["system", "rule_id", "action"]).size()
        unapplied = "refused" if refusal else "dry run"
        lines += [f"| {s} | {r} | planned {a} ({unapplied}) | {n} |" for (s, r, a), n in counts.items()]
    kept = plan.kept.assign(why=plan.kept_reasons())
    lines += ["", "| system | kept because | records |", "|---|---|---|"]
    lines += [f"| {s} | {w} | {n} |" for (s, w), n in kept.groupby(["system", "why"]).size().items()]
    if waiting := len(plan.awaiting_owner):
        lines += ["", f"**{waiting} {'action waits' if waiting == 1 else 'actions wait'} for the owner**: the "
                      "vendor's API cannot do this (see `vergeet purge` for what to do where)."]
    if len(plan.reappeared):
        lines += ["", f"**{len(plan.reappeared)} records of previously erased people reappeared** "
                      "(see `vergeet purge` for their record ids)."]
    return "\n".join(lines)


def _log_stopped(logger, summary: pipeline.Summary) -> None:
    """A system that stopped after a run of failures, one warning each (systems and counts only)."""
    for message in summary.stopped.values():
        logger.warning("%s", message)


def _send_digest(flow, flow_run, state) -> None:
    """The owner's e-mail digest when [notify] is configured: a hook on every end of a run, so that a failure
    anywhere in the flow still sends it (and a digest that cannot be sent is only logged)."""
    notify.after_run(flow_run.parameters.get("config_path"), None if state.is_completed() else state.message,
                     flow_run_logger(flow_run))


@flow(name="nightly-purge", log_prints=False, on_completion=[_send_digest], on_failure=[_send_digest],
      on_crashed=[_send_digest])
def nightly_purge(config_path: str | None = None, apply: bool = True, as_of: date | None = None,
                  force: bool = False, accept_rules: bool = False) -> dict | State:
    """Pull every system, plan what the retention rules demand and (when `apply`) carry it out.

    Args:
        config_path: The vergeet config file (TOML); empty: VERGEET_CONFIG where the flow runs.
        apply: Carry the plan out; off: a dry run that only reports the plan.
        as_of: Decide as on this day (default: today).
        force: Carry out, this once, a plan the circuit breaker refuses (review it first).
        accept_rules: Run with rules changed since the last applied run (the run fails with the change
            otherwise, before anything is read).
    """
    logger = get_run_logger()
    config = load_config(config_path, given_as="the config_path parameter")
    rules = load_rules(config.rules_file())
    connectors = build_connectors(config)
    day = as_of or date.today()
    # one applying run per ledger: `LeaseHeld` (naming the holder) fails this flow run before anything is read
    with open_ledger(config, applying=apply) as ledger, ledger.lease("nightly-purge") if apply else nullcontext():
        if apply:
            try:
                accept_changed_rules(ledger, rules, accept=accept_rules)
            except RulesChanged as exc:  # said in the flow's own terms: its parameter, not the CLI's flag
                refused = ("Refused: the retention rules changed since the last applied run; nothing was read or "
                           "changed. Review the change in the log, then run this deployment once with the parameter "
                           "accept_rules = true.")
                logger.error("%s\n%s", refused, exc.diff)
                return Failed(message=refused)  # the run's end in one line, no traceback
            for resumed in resume_interrupted(ledger, connectors):
                logger.info("finished interrupted run %s: %s failed", resumed.run_id, resumed.failed)
                _log_stopped(logger, resumed)
        futures = {system: sync_system.submit(connector, ledger, config.sync)
                   for system, connector in connectors.items()}
        records = {system: future.result() for system, future in futures.items()}
        view = build_identity_view(records, rules)
        plan = plan_purge(view, rules, day, ledger)
        logger.info("plan: %s actions, %s records kept", len(plan.actions), len(plan.kept))
        refusal = breaker_refusal(plan, config.purge.max_delete_share) if apply and not force else None
        summary = execute_plan(ledger, plan, connectors) if apply and refusal is None else None
        if summary is not None:
            _log_stopped(logger, summary)
    create_markdown_artifact(report_markdown(plan, summary, refusal), key="nightly-purge",
                             description="Counts per system, rule and outcome (no personal data)")
    if refusal:
        logger.error("%s", refusal)
        return Failed(message=refusal)  # the run's end in one line, no traceback
    result = {"as_of": day.isoformat(), "planned": len(plan.actions), "kept": len(plan.kept),
              "reappeared": len(plan.reappeared)}
    if summary is not None:
        result |= {"run_id": summary.run_id, "failed": summary.failed, "outcomes": summary.rows()}
        if summary.failed:
            raise RuntimeError(f"run {summary.run_id}: {summary.failed} actions failed; the next run retries them")
    return result
