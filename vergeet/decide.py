"""Retention decisions: identity view + rules + a date -> a plan.

A pure function. For every record, the rules for its system and record type
are tried in file order; the first rule whose period has run out (counted from
its clock) and that no exception blocks acts. A record no rule acts on is
kept, with the exceptions that keep it and, where known, the date it may go.
A person is only acted on when an e-mail, a phone or a name identifies them:
records nobody can be identified in (a private calendar entry, an appointment
already scrubbed) are left alone.

The same code serves erasure requests: there the person's request replaces
the clock (every period counts as over, except the legal period that runs from
a document's date) and only the exceptions the law imposes remain
(`ERASURE_EXCEPTIONS`).
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime

import numpy as np
import pandas as pd

from vergeet.identity import IdentityView
from vergeet.ledger import PlannedAction
from vergeet.rules import Rule, Rules

ACTION_COLUMNS = ["key", "system", "record_type", "record_id", "person", "action", "fields", "rule_id", "reason"]
KEPT_COLUMNS = ["key", "system", "record_type", "record_id", "person", "rule_id", "exceptions", "retained_until",
                "retained_by"]
#: exceptions that still hold when the person asks for erasure: the law, and a dispute
ERASURE_EXCEPTIONS = frozenset({"document_retention", "legal_hold"})


@dataclass(frozen=True)
class Context:
    """What the ledger knows that the vendors do not; identifiers as keyed hashes only."""

    hasher: Callable[[str, str], str] | None = None
    held_hashes: frozenset[str] = frozenset()
    held_records: frozenset[str] = frozenset()  # record keys "system/record_type/record_id"
    open_request_hashes: frozenset[str] = frozenset()
    #: erased identifiers' hashes -> when they were erased; a record of theirs created later is a reappearance
    suppressed_since: Mapping[str, datetime] = field(default_factory=dict)
    #: record key -> when it was last anonymised, so an anonymised record is not anonymised again every night
    anonymised_at: Mapping[str, datetime] = field(default_factory=dict)


@dataclass(frozen=True)
class Erasure:
    """A request as the trigger: these people, in these systems (None = all)."""

    people: frozenset[int]
    systems: frozenset[str] | None = None


@dataclass
class Plan:
    """What a run would do, what it keeps and why, and what it noticed."""

    as_of: date
    actions: pd.DataFrame
    kept: pd.DataFrame
    reappeared: pd.DataFrame  # records of people on the suppression list
    records_per_system: dict[str, int]
    unidentified: int  # records in which no person can be identified; left alone

    def planned_actions(self) -> list[PlannedAction]:
        return [PlannedAction(system=row.system, record_type=row.record_type, record_id=str(row.record_id),
                              action=row.action, fields=tuple(row.fields), rule_id=row.rule_id, reason=row.reason,
                              person=str(row.person))
                for row in self.actions.itertuples(index=False)]

    def delete_share(self) -> dict[str, float]:
        """Per system, the share of its records this plan deletes."""
        deletes = self.actions[self.actions["action"] == "delete"].groupby("system").size()
        return {system: float(deletes.get(system, 0)) / total
                for system, total in self.records_per_system.items() if total}


def _day(ts: pd.Series) -> pd.Series:
    return ts.dt.tz_convert("UTC").dt.normalize() if len(ts) else ts


def _timestamp(day: date) -> pd.Timestamp:
    return pd.Timestamp(day, tz="UTC")


def _people_with(view: IdentityView, hashes: frozenset[str], hashed: pd.Series | None) -> np.ndarray:
    if not hashes or hashed is None:
        return np.array([], dtype=np.int64)
    return view.identifiers.loc[hashed.isin(hashes), "person"].unique()


def decide(view: IdentityView, rules: Rules, as_of: date, context: Context = Context(),
           erasure: Erasure | None = None) -> Plan:
    """The plan for `as_of`: actions, kept records with their reasons, and reappearing erased people."""
    m = view.mentions
    people = view.people
    hashed = None
    if context.hasher and (context.held_hashes or context.open_request_hashes or context.suppressed_since):
        hasher = context.hasher
        hashed = pd.Series([hasher(k, v) for k, v in zip(view.identifiers["kind"], view.identifiers["value"])],
                           index=view.identifiers.index)

    person = m["person"]
    identified = person.map(people["identifiable"]).to_numpy(dtype=bool)
    in_scope = np.ones(len(m), dtype=bool)
    if erasure is not None:
        in_scope = person.isin(erasure.people).to_numpy().copy()
        if erasure.systems is not None:
            in_scope &= m["system"].isin(erasure.systems).to_numpy()

    masks = _exception_masks(view, rules, as_of, context, hashed)
    clocks = {
        # Someone known only where activity is not contact (a newsletter subscriber) is dated by that record itself.
        "last_contact": person.map(people["last_contact"]).fillna(
            m[["created_at", "last_activity_at", "document_date"]].max(axis=1)),
        "last_activity": m["last_activity_at"],
        "created": m["created_at"],
        "document_date": m["document_date"],
        "consent_withdrawn": m["consent_changed_at"].where(m["consent"] == "unsubscribed"),
    }
    clock_days = {name: _day(pd.Series(values.to_numpy(), index=m.index, dtype="datetime64[ns, UTC]"))
                  for name, values in clocks.items()}

    undecided = in_scope & identified
    action_parts, kept_parts = [], []
    acted = np.zeros(len(m), dtype=bool)
    for rule in rules.rules:
        selected = ((m["system"] == rule.system) & (m["record_type"] == rule.record_type)).to_numpy() & undecided
        if not selected.any():
            continue
        clock = clock_days[rule.clock]
        if erasure is not None and rule.clock not in ("document_date", "consent_withdrawn"):
            due = np.ones(len(m), dtype=bool)
        elif erasure is not None and rule.clock == "consent_withdrawn":
            due = clock.notna().to_numpy()  # a rule for unsubscribed contacts only, whatever the date
        else:
            due = (clock.notna() & (clock <= _timestamp(rule.period.cutoff(as_of)))).to_numpy()
        exceptions = [e for e in rule.exceptions if erasure is None or e in ERASURE_EXCEPTIONS]
        blocking = {e: masks[e] for e in exceptions}
        blocked = _any(blocking.values(), len(m))
        acts = selected & due & ~blocked & (rule.action != "keep")
        action_parts.append(_actions(m, acts, rule.action, rule.fields, rule, clock, "period over"))
        if rule.while_retained is not None:
            others = [v for e, v in blocking.items() if e != "document_retention"]
            only_documents = blocking.get("document_retention", np.zeros(len(m), dtype=bool)) & ~_any(others, len(m))
            action_parts.append(_actions(m, selected & due & only_documents, "anonymise",
                                         rule.while_retained.fields, rule, clock,
                                         "kept for an invoice or quote; fields not on the invoice go"))
        kept_parts.append(_kept(m, selected & ~acts, rule, rules, clock, due, blocking, people))
        acted |= acts
        undecided &= ~acts

    actions = pd.concat(action_parts, ignore_index=True) if action_parts else pd.DataFrame(columns=ACTION_COLUMNS)
    kept = pd.concat(kept_parts, ignore_index=True) if kept_parts else pd.DataFrame(columns=KEPT_COLUMNS)
    acted_pairs = m.loc[acted, "key"] + "|" + m.loc[acted, "person"].astype(str)
    kept = _best_reason(kept[~(kept["key"] + "|" + kept["person"].astype(str)).isin(acted_pairs)])
    actions = _settle_shared(actions, kept, m)
    actions = _skip_already_anonymised(actions, m, context.anonymised_at)

    reappeared = m.loc[_reappeared(view, context, hashed), ["key", "system", "record_type", "record_id", "person"]]
    records_per_system = m.drop_duplicates("key").groupby("system").size().to_dict()
    return Plan(as_of, _ordered(actions, m), kept.reset_index(drop=True), reappeared.reset_index(drop=True),
                {k: int(v) for k, v in records_per_system.items()},
                int((~identified).sum()))


def _reappeared(view: IdentityView, context: Context, hashed: pd.Series | None) -> np.ndarray:
    """Records of erased people created after their erasure (what the law kept from before is not news)."""
    m = view.mentions
    if not context.suppressed_since or hashed is None:
        return np.zeros(len(m), dtype=bool)
    erased_at = pd.Series(hashed.map(context.suppressed_since).to_numpy(), dtype="datetime64[ns, UTC]",
                          index=view.identifiers["person"].to_numpy())
    first_erasure = m["person"].map(erased_at.groupby(level=0).min())
    return (first_erasure.notna() & ~(m["created_at"] <= first_erasure)).to_numpy()


def _exception_masks(view: IdentityView, rules: Rules, as_of: date, context: Context,
                     hashed: pd.Series | None) -> dict[str, np.ndarray]:
    m, people, person = view.mentions, view.people, view.mentions["person"]
    masks: dict[str, np.ndarray] = {}
    documents = rules.exceptions.get("document_retention")
    if documents is not None and documents.period is not None:
        latest = _day(people["latest_document"])
        young = latest > _timestamp(documents.period.cutoff(as_of))
        masks["document_retention"] = person.map(young).fillna(False).to_numpy(dtype=bool)
    masks["running_contract"] = person.map(people["running_contract"]).fillna(False).to_numpy(dtype=bool)
    held_people = _people_with(view, context.held_hashes, hashed)
    masks["legal_hold"] = (person.isin(held_people) | m["key"].isin(context.held_records)).to_numpy()
    masks["open_request"] = person.isin(_people_with(view, context.open_request_hashes, hashed)).to_numpy()
    masks["active_consent"] = (m["consent"] == "subscribed").fillna(False).to_numpy(dtype=bool)
    return masks


def _actions(m: pd.DataFrame, rows: np.ndarray, action: str, fields: Iterable[str], rule: Rule,
             clock: pd.Series, why: str) -> pd.DataFrame:
    picked = m.loc[rows, ["key", "system", "record_type", "record_id", "person"]].copy()
    picked["action"] = action
    picked["fields"] = [tuple(fields)] * len(picked)
    picked["rule_id"] = rule.id
    since = clock[rows].dt.strftime("%Y-%m-%d").fillna("request")
    picked["reason"] = f"{why}: {rule.clock.replace('_', ' ')} " + since + f" + {rule.period}"
    return picked[ACTION_COLUMNS]


def _kept(m: pd.DataFrame, rows: np.ndarray, rule: Rule, rules: Rules, clock: pd.Series, due: np.ndarray,
          blocking: dict[str, np.ndarray], people: pd.DataFrame) -> pd.DataFrame:
    picked = m.loc[rows, ["key", "system", "record_type", "record_id", "person"]].copy()
    picked["rule_id"] = rule.id
    names = pd.Series("", index=m.index, dtype="object")
    for name, mask in blocking.items():
        names[mask & due] += name + ","
    picked["exceptions"] = names[rows].str.rstrip(",")
    until = clock[rows] + pd.DateOffset(years=rule.period.years, months=rule.period.months,
                                        weeks=rule.period.weeks, days=rule.period.days)
    if "document_retention" in blocking:
        period = rules.exceptions["document_retention"].period
        held_by_documents = pd.Series((blocking["document_retention"] & due)[rows], index=until.index)
        document_end = m.loc[rows, "person"].map(people["latest_document"]) + pd.DateOffset(
            years=period.years, months=period.months, weeks=period.weeks, days=period.days)
        until = until.where(~held_by_documents, _day(document_end))
    # Kept by an exception other than the documents' own period: no end date can be given.
    open_ended = pd.Series((due & _any([v for e, v in blocking.items() if e != "document_retention"], len(m)))[rows],
                           index=until.index)
    picked["retained_until"] = until.where(~open_ended).dt.date
    picked["retained_by"] = rule.retained_by or ""
    return picked[KEPT_COLUMNS]


def _best_reason(kept: pd.DataFrame) -> pd.DataFrame:
    """One kept row per record and person: an exception that holds beats a date, an earlier date a later one."""
    rank = kept.assign(_open=kept["exceptions"] == "", _until=pd.to_datetime(kept["retained_until"]))
    rank = rank.sort_values(["_open", "_until"], na_position="last", kind="stable")
    return rank.drop_duplicates(["key", "person"]).drop(columns=["_open", "_until"])


def _settle_shared(actions: pd.DataFrame, kept: pd.DataFrame, m: pd.DataFrame) -> pd.DataFrame:
    """A record that concerns several people is acted on only when it is due for every one of them."""
    shared = m.loc[m["key"].duplicated(keep=False), "key"].unique()
    blocked = kept.loc[kept["key"].isin(shared), "key"].unique()
    actions = actions[~actions["key"].isin(blocked)]
    return actions[~actions.duplicated(["key", "action", "fields"])]


def _any(masks: Iterable[np.ndarray], size: int) -> np.ndarray:
    masks = list(masks)
    return np.logical_or.reduce(masks) if masks else np.zeros(size, dtype=bool)


def _skip_already_anonymised(actions: pd.DataFrame, m: pd.DataFrame, anonymised_at: Mapping[str, datetime]
                             ) -> pd.DataFrame:
    if not anonymised_at or actions.empty:
        return actions
    done = actions["key"].map(pd.Series(anonymised_at, dtype="datetime64[ns, UTC]"))
    updated = actions["key"].map(m.drop_duplicates("key").set_index("key")["updated_at"])
    unchanged = done.notna() & (updated.isna() | (updated <= done))
    return actions[~((actions["action"] == "anonymise") & unchanged)]


def _ordered(actions: pd.DataFrame, m: pd.DataFrame) -> pd.DataFrame:
    """Documents before the contacts they point at; then by system, rule and record."""
    is_document = actions["key"].map(m.drop_duplicates("key").set_index("key")["document_date"].notna())
    return (actions.assign(_doc=~is_document.fillna(False).astype(bool))
            .sort_values(["_doc", "system", "rule_id", "record_type", "record_id"])
            .drop(columns="_doc").reset_index(drop=True))
