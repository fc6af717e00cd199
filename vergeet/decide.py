"""Retention decisions: identity view + rules + a date -> a plan.

A pure function. For every record, the rules for its system and record type
are tried in file order; the first rule whose period has run out (counted from
its clock) and that no exception blocks acts. A record no rule acts on is
kept, with the exceptions that keep it and, where known, the date it may go.
A person is only acted on when an e-mail, a phone or a name identifies them:
records nobody can be identified in (a private calendar entry, an appointment
already scrubbed) are left alone, and so are those their connector says no
rule may act on (`Record.left_alone`: kept, with the connector's reason).

The same code serves erasure requests: there the person's request replaces
the clock (every period counts as over, except the legal period that runs from
a document's date) and only the exceptions the law imposes remain
(`ERASURE_EXCEPTIONS`).

Vectorised throughout (benchmarks/identity_decide.py: a million records in
about two seconds): rows travel as positions in `mentions` and records as
factorised keys, so no step hashes or compares key strings per row. The one
call per row left is the ledger's hasher, once per distinct identifier and
only when the ledger holds hashes to compare.
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

#: `since`: the day the rule's clock started ("YYYY-MM-DD"; "request" when an erasure request set it)
ACTION_COLUMNS = ["key", "system", "record_type", "record_id", "person", "action", "fields", "rule_id", "reason",
                  "since"]
KEPT_COLUMNS = ["key", "system", "record_type", "record_id", "person", "rule_id", "exceptions", "retained_until",
                "retained_by", "left_alone"]
AWAITING_COLUMNS = ["key", "system", "record_type", "record_id", "action", "since", "detail"]
DONE_BEFORE_COLUMNS = ["key", "system", "record_type", "record_id", "action", "fields", "rule_id", "since"]
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
    #: (record key, action) -> when that action last ended "not_supported" and the connector's note: a task handed
    #: to a human, not planned again every night while the record is unchanged (`Ledger.handed_over`)
    handed_over: Mapping[tuple[str, str], tuple[datetime, str]] = field(default_factory=dict)


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
    #: actions an earlier run handed to a human (the vendor's API cannot do them), on records unchanged since:
    #: not planned again; key, system, record_type, record_id, action, since, detail
    awaiting_owner: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=AWAITING_COLUMNS))
    #: anonymisations an earlier run did on records unchanged since: not planned again; since = when
    done_before: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=DONE_BEFORE_COLUMNS))
    #: per system, its records in which no person can be identified (together: `unidentified`)
    unidentified_per_system: dict[str, int] = field(default_factory=dict)

    def planned_actions(self) -> list[PlannedAction]:
        return [PlannedAction(system=row.system, record_type=row.record_type, record_id=str(row.record_id),
                              action=row.action, fields=tuple(row.fields), rule_id=row.rule_id, reason=row.reason,
                              person=str(row.person))
                for row in self.actions.itertuples(index=False)]

    def kept_reasons(self, otherwise: pd.Series | str = "period not over") -> pd.Series:
        """Per kept row, for the owner: the exceptions that hold it, else why it is left alone, else `otherwise`
        (by default: its period is not over)."""
        exceptions = self.kept["exceptions"].str.replace(",", ", ")
        return exceptions.where(exceptions != "", self.kept["left_alone"].fillna(otherwise))

    def left_alone(self) -> pd.DataFrame:
        """The kept records no rule may act on, one row per record, with their connector's reason."""
        return self.kept[self.kept["left_alone"].notna()].drop_duplicates("key")

    def deleted_per_system(self) -> dict[str, int]:
        """Per system, how many of its records this plan deletes."""
        deletes = self.actions[self.actions["action"] == "delete"].drop_duplicates("key")
        return {system: int(n) for system, n in deletes["system"].value_counts().items()}

    def delete_share(self) -> dict[str, float]:
        """Per system, the share of its records this plan deletes (of `records_per_system`, as shown)."""
        deletes = self.deleted_per_system()
        return {system: deletes.get(system, 0) / total for system, total in self.records_per_system.items() if total}


def _day(ts: pd.Series) -> pd.Series:
    return ts.dt.tz_convert("UTC").dt.normalize() if len(ts) else ts


def _utc_ns(values: pd.Series, index: pd.Index) -> pd.Series:
    """`values` (by position) as datetime64[ns, UTC] on `index`, without a detour through Python objects."""
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        return pd.Series(values.dt.tz_convert("UTC").array.as_unit("ns"), index=index)
    return pd.Series(values.to_numpy(), index=index, dtype="datetime64[ns, UTC]")


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
    if m.empty:  # nothing found (a search without hits): nothing to decide
        return Plan(as_of, pd.DataFrame(columns=ACTION_COLUMNS), pd.DataFrame(columns=KEPT_COLUMNS),
                    pd.DataFrame(columns=["key", "system", "record_type", "record_id", "person"]), {}, 0)
    people = view.people
    hashed = None
    if context.hasher and (context.held_hashes or context.open_request_hashes or context.suppressed_since):
        hashed = hash_identifiers(view.identifiers, context.hasher)

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
        "consent_changed": m["consent_changed_at"],  # the consent state's own date, whatever the state
    }
    clock_days = {name: _day(_utc_ns(values, m.index)) for name, values in clocks.items()}
    records = _Records.of(m)
    systems, record_types = _Codes(m["system"]), _Codes(m["record_type"])
    what: dict[tuple[str, tuple[str, ...]], int] = {}  # (action, fields) -> a number, to find repeated actions

    left_alone = m["left_alone"].notna().to_numpy()
    undecided = in_scope & identified & ~left_alone
    action_parts, kept_parts = [], []
    acted = np.zeros(len(m), dtype=bool)
    for rule in rules.rules:
        selected = systems.equal(rule.system) & record_types.equal(rule.record_type) & undecided
        if rule.consent is not None:
            selected &= m["consent"].isin(rule.consent).to_numpy(dtype=bool)
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
        action_parts.append(_actions(m, acts, rule.action, rule.fields, rule, clock, "period over", what))
        if rule.while_retained is not None:
            others = [v for e, v in blocking.items() if e != "document_retention"]
            only_documents = blocking.get("document_retention", np.zeros(len(m), dtype=bool)) & ~_any(others, len(m))
            action_parts.append(_actions(m, selected & due & only_documents, "anonymise",
                                         rule.while_retained.fields, rule, clock,
                                         "kept for an invoice or quote; fields not on the invoice go", what))
        kept_parts.append(_kept(m, selected & ~acts, rule, rules, clock, due, blocking, people))
        acted |= acts
        undecided &= ~acts

    kept_parts.append(_left_alone(m, in_scope & identified & left_alone, rules))

    # Internal columns ride along until the end: _row (the mention's position in m), _what, _until.
    actions = pd.concat(action_parts, ignore_index=True) if action_parts else pd.DataFrame(
        columns=ACTION_COLUMNS + ["_row", "_what"])
    kept = pd.concat(kept_parts, ignore_index=True) if kept_parts else pd.DataFrame(
        columns=KEPT_COLUMNS + ["_row", "_until"])
    # A mention is one (record, person) pair: the reasons to keep a pair that is acted on do not count.
    kept = _best_reason(kept, ~acted[_rows(kept)])
    actions = _settle_shared(actions, kept, records)
    # An erasure tries again what was handed over: the person asked, and the certificate must say what happened.
    handed_over = context.handed_over if erasure is None else {}
    settled = {(key, "anonymise"): moment for key, moment in context.anonymised_at.items()}
    for what, (moment, _) in handed_over.items():
        settled[what] = max(moment, settled.get(what, moment))
    actions, skipped = _skip_settled(actions, m, settled, records)
    awaiting = _awaiting(skipped, handed_over)
    done_before = _done_before(skipped, handed_over, context.anonymised_at)

    reappeared = m.loc[_reappeared(view, context, hashed), ["key", "system", "record_type", "record_id", "person"]]
    one_per_record = m["system"].iloc[records.first]
    records_per_system = one_per_record.groupby(one_per_record).size().to_dict()
    nobody = m.loc[~identified, ["key", "system"]].drop_duplicates("key")["system"].value_counts().to_dict()
    return Plan(as_of, _ordered(actions, m, records)[ACTION_COLUMNS], kept[KEPT_COLUMNS].reset_index(drop=True),
                reappeared.reset_index(drop=True), {k: int(v) for k, v in records_per_system.items()},
                int((~identified).sum()), awaiting, done_before, {k: int(v) for k, v in nobody.items()})


def hash_identifiers(identifiers: pd.DataFrame, hasher: Callable[[str, str], str]) -> pd.Series:
    """The keyed hash of every distinct identifier: one call each, the only per-row Python in `decide`."""
    return pd.Series(list(map(hasher, identifiers["kind"].tolist(), identifiers["value"].tolist())),
                     index=identifiers.index)


@dataclass(frozen=True)
class _Records:
    """Which mentions are one record: `code` per mention (its key factorised), `first` mention per code."""

    code: np.ndarray
    first: np.ndarray
    shared: np.ndarray  # per code: the record concerns several people

    @classmethod
    def of(cls, m: pd.DataFrame) -> _Records:
        code = pd.factorize(m["key"], use_na_sentinel=False)[0].astype(np.int64, copy=False)
        # Codes are numbered in order of first appearance: the first mentions, in order, are codes 0, 1, ...
        first = np.flatnonzero(~pd.Series(code).duplicated().to_numpy())
        return cls(code, first, np.bincount(code, minlength=len(first)) > 1)

    def first_of(self, rows: np.ndarray) -> np.ndarray:
        """For mention positions `rows`, the position of their record's first mention."""
        return self.first[self.code[rows]]


class _Codes:
    """A column's values as integer codes, so that comparing it with a value compares integers."""

    def __init__(self, values: pd.Series):
        codes, uniques = pd.factorize(values)
        self.codes = codes
        self.lookup = {value: code for code, value in enumerate(uniques)}

    def equal(self, value: str) -> np.ndarray:
        code = self.lookup.get(value)
        return self.codes == code if code is not None else np.zeros(len(self.codes), dtype=bool)


def _rows(frame: pd.DataFrame) -> np.ndarray:
    return frame["_row"].to_numpy(dtype=np.int64)


def _reappeared(view: IdentityView, context: Context, hashed: pd.Series | None) -> np.ndarray:
    """Records of erased people created after their erasure (what the law kept from before is not news)."""
    m = view.mentions
    if not context.suppressed_since or hashed is None:
        return np.zeros(len(m), dtype=bool)
    hit = hashed.isin(list(context.suppressed_since)).to_numpy()
    if not hit.any():
        return np.zeros(len(m), dtype=bool)
    erased_at = pd.Series(hashed[hit].map(context.suppressed_since).to_numpy(), dtype="datetime64[ns, UTC]",
                          index=view.identifiers["person"].to_numpy()[hit])
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
             clock: pd.Series, why: str, what: dict[tuple[str, tuple[str, ...]], int]) -> pd.DataFrame:
    picked = m.loc[rows, ["key", "system", "record_type", "record_id", "person"]].copy()
    picked["action"] = action
    picked["fields"] = [tuple(fields)] * len(picked)
    picked["rule_id"] = rule.id
    since = _dates(clock[rows])
    since[pd.isna(since)] = "request"
    reason = f"{why}: {rule.clock.replace('_', ' ')} " + since + f" + {rule.period}"
    picked["reason"] = pd.Series(reason, index=picked.index, dtype=_STRINGS)
    picked["since"] = pd.Series(since, index=picked.index, dtype=_STRINGS)
    picked["_row"] = np.flatnonzero(rows)
    picked["_what"] = what.setdefault((action, tuple(fields)), len(what))
    return picked[ACTION_COLUMNS + ["_row", "_what"]]


#: the dtype pandas gives strings (`str` from pandas 3, object before), as `.dt.strftime` returns them
_STRINGS = pd.Series(["-"]).dtype


def _dates(days: pd.Series) -> np.ndarray:
    """UTC days as "YYYY-MM-DD" strings, NaN where missing: `.dt.strftime("%Y-%m-%d")` without a call per row."""
    naive = days.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy(dtype="datetime64[ns]")
    text = np.datetime_as_string(naive.astype("datetime64[D]"), unit="D").astype(object)
    text[np.isnat(naive)] = np.nan
    return text


def _kept(m: pd.DataFrame, rows: np.ndarray, rule: Rule, rules: Rules, clock: pd.Series, due: np.ndarray,
          blocking: dict[str, np.ndarray], people: pd.DataFrame) -> pd.DataFrame:
    picked = m.loc[rows, ["key", "system", "record_type", "record_id", "person"]].copy()
    picked["rule_id"] = rule.id
    picked["exceptions"] = pd.Series(_exception_names(blocking, due, rows), index=picked.index, dtype=object)
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
    until = until.where(~open_ended)
    picked["retained_until"] = until.dt.date
    picked["retained_by"] = rule.retained_by or ""
    picked["left_alone"] = None
    picked["_row"] = np.flatnonzero(rows)
    picked["_until"] = until.dt.normalize() if len(until) else until  # retained_until, sortable
    return picked[KEPT_COLUMNS + ["_row", "_until"]]


def _left_alone(m: pd.DataFrame, rows: np.ndarray, rules: Rules) -> pd.DataFrame:
    """Records no rule may act on, kept with their connector's reason and the first rule for their kind (what
    would decide them); a kind no rule covers stays out of the plan, as it does when no record is left alone."""
    first_rule = {(r.system, r.record_type): r for r in reversed(rules.rules)}
    picked = m.loc[rows, ["key", "system", "record_type", "record_id", "person", "left_alone"]].copy()
    picked["_row"] = np.flatnonzero(rows)
    rule = [first_rule.get(kind) for kind in zip(picked["system"], picked["record_type"])]  # the few left alone
    covered = np.array([r is not None for r in rule], dtype=bool)
    picked = picked[covered]
    picked["rule_id"] = [r.id for r in rule if r is not None]
    picked["retained_by"] = [r.retained_by or "" for r in rule if r is not None]
    picked["exceptions"] = ""
    picked["retained_until"] = pd.NaT
    picked["_until"] = pd.Series(pd.NaT, index=picked.index, dtype="datetime64[ns, UTC]")
    return picked[KEPT_COLUMNS + ["_row", "_until"]]


def _exception_names(blocking: dict[str, np.ndarray], due: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Per selected row, the exceptions that hold it, comma-separated in `blocking`'s order."""
    names = list(blocking)
    combination = np.zeros(int(rows.sum()), dtype=np.int64)
    for bit, name in enumerate(names):
        combination |= (blocking[name] & due)[rows].astype(np.int64) << bit
    spelled = np.array([",".join(name for bit, name in enumerate(names) if code >> bit & 1)
                        for code in range(1 << len(names))], dtype=object)
    return spelled[combination]


def _best_reason(kept: pd.DataFrame, candidates: np.ndarray) -> pd.DataFrame:
    """One of the `candidates` rows per record and person: an exception that holds beats a date, an earlier
    date a later one."""
    if not isinstance(kept["_until"].dtype, pd.DatetimeTZDtype):
        rank = kept[candidates].assign(_open=lambda k: k["exceptions"] == "")
        rank = rank.sort_values(["_open", "_until"], na_position="last", kind="stable").drop(columns=["_open"])
        return rank[~pd.Series(_rows(rank)).duplicated().to_numpy()]
    # sort_values(["_open", "_until"], na_position="last", kind="stable") on integers, and one copy of the rows
    rows = np.flatnonzero(candidates)
    until = kept["_until"].to_numpy(dtype="datetime64[ns]").view(np.int64)[rows]
    until = np.where(until == np.iinfo(np.int64).min, np.iinfo(np.int64).max, until)
    is_open = (kept["exceptions"] == "").to_numpy(dtype=bool)[rows]
    order = rows[np.lexsort([until, is_open])]
    return kept.iloc[order[~pd.Series(_rows(kept)[order]).duplicated().to_numpy()]]


def _settle_shared(actions: pd.DataFrame, kept: pd.DataFrame, records: _Records) -> pd.DataFrame:
    """A record that concerns several people is acted on only when it is due for every one of them."""
    kept_codes = records.code[_rows(kept)]
    blocked = np.zeros(len(records.shared), dtype=bool)
    blocked[kept_codes[records.shared[kept_codes]]] = True
    actions = actions[~blocked[records.code[_rows(actions)]]]
    # The same action with the same fields on one record (a shared one, once per person) is planned once.
    what = actions["_what"].to_numpy(dtype=np.int64)
    same = records.code[_rows(actions)] * (int(what.max(initial=0)) + 1) + what
    return actions[~pd.Series(same).duplicated().to_numpy()]


def _any(masks: Iterable[np.ndarray], size: int) -> np.ndarray:
    masks = list(masks)
    return np.logical_or.reduce(masks) if masks else np.zeros(size, dtype=bool)


def _skip_settled(actions: pd.DataFrame, m: pd.DataFrame, settled: Mapping[tuple[str, str], datetime],
                  records: _Records) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The actions left once those settled on a record unchanged since are dropped, and the dropped ones.

    Settled: an anonymisation done, or an action handed to a human; a record the vendor changed since (its
    `updated_at` later) is decided afresh.
    """
    if not settled or actions.empty:
        return actions, actions.iloc[:0]
    by_action: dict[str, dict[str, datetime]] = {}
    for (key, action), moment in settled.items():
        by_action.setdefault(action, {})[key] = moment
    unchanged = np.zeros(len(actions), dtype=bool)
    for action, moments in by_action.items():  # one action kind at a time: keys only, no (key, action) pairs
        rows = np.flatnonzero((actions["action"] == action).to_numpy(dtype=bool))
        done = actions["key"].iloc[rows].map(pd.Series(moments, dtype="datetime64[ns, UTC]"))
        rows, done = rows[done.notna().to_numpy()], done[done.notna()]
        updated = pd.Series(m["updated_at"].iloc[records.first_of(_rows(actions.iloc[rows]))].array,
                            index=done.index)
        unchanged[rows[(updated.isna() | (updated <= done)).to_numpy(dtype=bool)]] = True
    return actions[~unchanged], actions[unchanged]


def _done_before(skipped: pd.DataFrame, handed_over: Mapping[tuple[str, str], tuple[datetime, str]],
                 anonymised_at: Mapping[str, datetime]) -> pd.DataFrame:
    """The skipped anonymisations an earlier run carried out, with when."""
    done = skipped[(skipped["action"] == "anonymise").to_numpy(dtype=bool)]
    done = done[np.array([(key, "anonymise") not in handed_over for key in done["key"]], dtype=bool)]
    return done.assign(since=done["key"].map(anonymised_at))[DONE_BEFORE_COLUMNS].drop_duplicates("key")


def _awaiting(skipped: pd.DataFrame, handed_over: Mapping[tuple[str, str], tuple[datetime, str]]) -> pd.DataFrame:
    """The skipped actions that wait for a human, with since when and the connector's note."""
    if not handed_over or skipped.empty:
        return pd.DataFrame(columns=AWAITING_COLUMNS)
    rows = [(*row, *handed_over[row[0], row[4]])
            for row in skipped[["key", "system", "record_type", "record_id", "action"]].itertuples(index=False)
            if (row[0], row[4]) in handed_over]
    return pd.DataFrame(rows, columns=AWAITING_COLUMNS).drop_duplicates(["key", "action"])


_ORDER = ["_doc", "system", "rule_id", "record_type", "record_id"]


def _ordered(actions: pd.DataFrame, m: pd.DataFrame, records: _Records) -> pd.DataFrame:
    """Documents before the contacts they point at; then by system, rule and record."""
    is_document = m["document_date"].notna().to_numpy(dtype=bool)[records.first_of(_rows(actions))]
    actions = actions.assign(_doc=~is_document)
    order = _sort_order(actions, _ORDER)
    actions = actions.sort_values(_ORDER) if order is None else actions.iloc[order]
    return actions.drop(columns="_doc").reset_index(drop=True)


def _sort_order(frame: pd.DataFrame, columns: list[str]) -> np.ndarray | None:
    """The order `frame.sort_values(columns)` gives (a stable sort), through integer keys; None to let pandas sort.

    Every column but the last has few values and is ranked by factorising. The last (one value per
    record) is sorted as ASCII bytes packed big-endian into 64-bit integers, which orders them as
    Python compares strings (numpy drops trailing NUL characters, which record ids do not have);
    anything but ASCII strings goes to pandas.
    """
    *few, last = columns
    values = frame[last].to_numpy(dtype=object)
    if len(frame) < 2 or pd.api.types.infer_dtype(values, skipna=False) != "string":
        return None
    group = np.zeros(len(frame), dtype=np.int64)
    for column in few:
        codes, uniques = pd.factorize(frame[column], sort=True)
        if (codes < 0).any() or len(uniques) > 1 << 10:
            return None
        group = group * len(uniques) + codes
    try:
        text = values.astype("S")  # fixed width, shorter values padded with NUL (sorting first, as in Python)
    except UnicodeEncodeError:
        return None
    width = text.dtype.itemsize
    padded = np.zeros((len(text), -(-width // 8) * 8), dtype=np.uint8)
    padded[:, :width] = text.view(np.uint8).reshape(len(text), width)
    words = padded.view(">u8")
    return np.lexsort([words[:, i] for i in range(words.shape[1] - 1, -1, -1)] + [group])
