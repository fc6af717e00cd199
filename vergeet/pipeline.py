"""The nightly purge's steps, shared line for line by the CLI and the Prefect flow.

sync (or pull) -> identity view -> plan -> (circuit breaker) -> plan stored in
the ledger -> execute, each action's intent written before the vendor call and
its outcome after. A run killed halfway is finished by the next `--apply` run
(`resume_unfinished`) without repeating what was done.

The nightly run syncs: each system's changes since the last run go into the
ledger's cache (`vergeet.sync`) and the view is built over the cache, with
identifiers as keyed hashes. `pull` reads a system whole, in plaintext, for
callers that need the vendors' own values. Systems are read, and plans
executed, concurrently: each vendor has its own rate limit, so they do not
compete.
"""
from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from typing import TypeVar

from connectors.base import Connector, Outcome, Record, RecordRef
from connectors.http import VendorError
from vergeet.config import SyncConfig
from vergeet.decide import Context, Erasure, Plan, decide
from vergeet.identity import IdentityView, build_view, frame_records
from vergeet.ledger import Ledger
from vergeet.rules import Rules
from vergeet.sync import Snapshot, sync_system

Progress = Callable[[dict], None]
T = TypeVar("T")
V = TypeVar("V")
#: outcomes after which a deleted record is gone from the vendor
GONE = frozenset({Outcome.DONE.value, Outcome.ALREADY_GONE.value})
#: failed actions in a row after which a system's remaining actions wait for the next run. Each failure has had
#: its retries already (seconds each), so five in a row means the vendor refuses writes, not that five records
#: are odd (a record the vendor refuses alone, such as a 422, fails among successes); five also bounds what a
#: vendor that is down costs a run to about a minute per system.
STOP_AFTER_FAILURES = 5


class PullFailed(Exception):
    """A system could not be read; no plan is made on partial data."""


class CircuitOpen(Exception):
    """The plan deletes more of a system than the configured share allows (the message says how much of which;
    the caller says how to override it: the CLI's `--force`, the flow's `force`)."""


@contextmanager
def _reading(system: str) -> Iterator[None]:
    """A vendor error while reading becomes `PullFailed` naming the system."""
    try:
        yield
    except VendorError as exc:
        raise PullFailed(f"could not read {system}: {exc}; nothing was changed") from None


def pull(connector: Connector) -> list[Record]:
    """Every record of one system, as the vendor has it."""
    with _reading(connector.system):
        return list(connector.records())


def sync(connector: Connector, ledger: Ledger, settings: SyncConfig = SyncConfig(), *,
         full: bool = False) -> Snapshot:
    """One system's cache brought up to date with what changed (all of it when a full read is due, or `full`)."""
    with _reading(connector.system):
        return sync_system(connector, ledger, full_every=timedelta(days=settings.full_every_days), full=full)


def _per_system(items: Mapping[str, V], work: Callable[[V], T]) -> dict[str, T]:
    """`work` on every system's item at once, one thread each; a failure is raised once all have ended."""
    if not items:
        return {}
    with ThreadPoolExecutor(max_workers=len(items), thread_name_prefix="system") as pool:
        futures = {system: pool.submit(work, item) for system, item in items.items()}
        return {system: future.result() for system, future in futures.items()}


def pull_all(connectors: Mapping[str, Connector]) -> dict[str, list[Record]]:
    """All systems read whole, concurrently."""
    return _per_system(connectors, pull)


def sync_all(connectors: Mapping[str, Connector], ledger: Ledger, settings: SyncConfig = SyncConfig(), *,
             full: bool = False) -> dict[str, Snapshot]:
    """All systems synced into the ledger's cache, concurrently."""
    return _per_system(connectors, lambda connector: sync(connector, ledger, settings, full=full))


def identity_view(records: Mapping[str, list[Record]] | Mapping[str, Snapshot], rules: Rules) -> IdentityView:
    """The identity view over every system's records (or synced snapshots: then linked on keyed hashes), with the
    rules' notion of contact and documents."""
    documents = rules.exceptions.get("document_retention")
    document_types = {f"{r.system}/{r.record_type}" for r in rules.rules if r.clock == "document_date"
                      and r.action != "keep"} if documents else set()
    hashed = {isinstance(value, Snapshot) for value in records.values()}
    if len(hashed) > 1:
        raise ValueError("give either every system's records or every system's snapshot, not a mix")
    everything = [record for value in records.values()
                  for record in (value.records() if isinstance(value, Snapshot) else value)]
    return build_view(frame_records(everything), contact_systems=rules.contact_systems(),
                      document_types=document_types, hashed=hashed == {True})


def ledger_context(ledger: Ledger, as_of: date) -> Context:
    """What the ledger adds to a decision: holds, open requests, suppressions, past anonymisations."""
    holds = ledger.active_holds(as_of)
    return Context(
        hasher=ledger.hash_identifier,
        held_hashes=frozenset(h["identifier_hash"] for h in holds if h["identifier_hash"]),
        held_records=frozenset("/".join(h["record"]) for h in holds if h["record"]),
        open_request_hashes=frozenset(ledger.open_request_hashes()),
        suppressed_since=ledger.suppressed_since(),
        anonymised_at=ledger.last_anonymised(),
        handed_over=ledger.handed_over())


def make_plan(view: IdentityView, rules: Rules, as_of: date, ledger: Ledger,
              erasure: Erasure | None = None) -> Plan:
    context = ledger_context(ledger, as_of)
    if view.hashed:
        context = replace(context, hasher=_already_hashed)
    return decide(view, rules, as_of, context, erasure)


def _already_hashed(kind: str, value: str) -> str:
    """A hashed view's identifiers are the ledger's keyed hashes already."""
    return value


def check_circuit_breaker(plan: Plan, max_share: float) -> None:
    """Refuse a plan that deletes more than `max_share` of any system's records."""
    over = {system: share for system, share in plan.delete_share().items() if share > max_share}
    if over:
        deletes = plan.deleted_per_system()
        detail = ", ".join(f"{system} {deletes.get(system, 0)} of {plan.records_per_system[system]} records "
                           f"({share:.0%})" for system, share in sorted(over.items()))
        raise CircuitOpen(f"the plan would delete more than {max_share:.0%} of a system's records ({detail}); "
                          "nothing was changed")


@dataclass
class Summary:
    """Outcomes of one executed run, counted per system, rule and outcome (no personal data)."""

    run_id: int
    counts: Counter = field(default_factory=Counter)
    #: system -> why its remaining actions were left for the next run (after a run of failures)
    stopped: dict[str, str] = field(default_factory=dict)

    @property
    def failed(self) -> int:
        return sum(n for (_, _, outcome), n in self.counts.items() if outcome == "failed")

    def rows(self) -> list[dict]:
        return [{"system": s, "rule": r, "outcome": o, "count": n} for (s, r, o), n in sorted(self.counts.items())]


def store_plan(ledger: Ledger, plan: Plan, kind: str = "purge", apply: bool = True) -> int:
    """Start a run and write its whole plan before any vendor call."""
    run_id = ledger.start_run(kind, as_of=plan.as_of, apply=apply,
                              params={"actions": len(plan.actions), "kept": len(plan.kept)})
    ledger.store_plan(run_id, plan.planned_actions())
    return run_id


def execute(ledger: Ledger, run_id: int, connectors: Mapping[str, Connector],
            progress: Progress | None = None, stop_after: int = STOP_AFTER_FAILURES) -> Summary:
    """Carry out a stored plan's pending actions, each system in its own thread and in plan order within it.

    Each intent is written before the call, the outcome after (with it, a deleted record leaves the sync cache).
    After `stop_after` failed actions in a row a system stops: its remaining actions stay planned, counted as
    "pending", and the next run plans them again. When one system's thread raises (or `progress` does), the
    others stop before their next action and the exception is raised.
    """
    summary = Summary(run_id)
    for done in ledger.actions(run_id, ("done",)):
        summary.counts[(done["system"], done["rule_id"], done["outcome"])] += 1
    by_system: dict[str, list[dict]] = {}
    for action in ledger.pending_actions(run_id):
        by_system.setdefault(action["system"], []).append(action)
    stop = threading.Event()
    reporting = threading.Lock()  # counts and progress reports, one system at a time

    def carry_out(actions: list[dict]) -> None:
        failures, detail = 0, ""
        try:
            for position, action in enumerate(actions):
                if stop.is_set():
                    return
                if failures == stop_after:
                    left = actions[position:]
                    with reporting:
                        summary.counts.update((a["system"], a["rule_id"], "pending") for a in left)
                        summary.stopped[action["system"]] = (
                            f"{action['system']}: stopped after {failures} failed actions in a row (last: {detail}); "
                            f"its {len(left)} remaining actions are left for the next run")
                    return
                outcome, detail = _perform(ledger, action, connectors)
                failures = failures + 1 if outcome == "failed" else 0
                with reporting:
                    summary.counts[(action["system"], action["rule_id"], outcome)] += 1
                    if progress:
                        progress(action | {"outcome": outcome, "detail": detail})
        except BaseException:
            stop.set()
            raise

    _per_system(by_system, carry_out)
    ledger.finish_run(run_id, "failed" if summary.failed else "succeeded",
                      {"outcomes": summary.rows()})
    return summary


def _perform(ledger: Ledger, action: dict, connectors: Mapping[str, Connector]) -> tuple[str, str]:
    connector = connectors.get(action["system"])
    if connector is None:
        ledger.mark_outcome(action["id"], "skipped", f"{action['system']} is not connected in the config")
        return "skipped", ""
    ref = RecordRef(action["system"], action["record_type"], action["record_id"])
    ledger.mark_started(action["id"])
    try:
        if action["action"] == "delete":
            result = connector.delete(ref)
        else:
            result = connector.anonymise(ref, action["fields"])
    except VendorError as exc:
        ledger.mark_outcome(action["id"], "failed", str(exc))
        return "failed", str(exc)
    # what vergeet deleted leaves the cache with the outcome (a vendor that lists no deletions would not tell)
    ledger.mark_outcome(action["id"], result.outcome.value, result.detail,
                        forget=action["action"] == "delete" and result.outcome.value in GONE)
    return result.outcome.value, result.detail


def resume_unfinished(ledger: Ledger, connectors: Mapping[str, Connector], kind: str = "purge",
                      progress: Progress | None = None, stop_after: int = STOP_AFTER_FAILURES) -> list[Summary]:
    """Finish the applying runs a crash left behind, before anything new is planned."""
    return [execute(ledger, run["id"], connectors, progress, stop_after) for run in ledger.unfinished_runs(kind)]

