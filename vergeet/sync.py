"""Incremental sync: what the last run saw of each system, kept in the ledger and brought up to date each night.

Per system the ledger keeps one summary per record (a row each): the vendor's version,
the dates and flags decisions need, its links, and its identifiers only as
keyed hashes (`Ledger.hash_identifier`) of their normalised values (e-mail
trimmed and case-folded, phone E.164, full name), never in plaintext. Each
night a connector's `changes` reads only what changed since its cursor, the
summaries take the changes in, and the identity view runs over all of them,
linking on the hashes. A system is read in full when it has no cache yet,
when its vendor asks for it, and every `full_every`: the reconciliation that
catches what an incremental read cannot see (deletions a vendor does not
report, Mollie's changes beyond its newest pages).
"""
from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any

import pandas as pd

from connectors.base import Changes, Connector, Link, Record, RecordRef
from vergeet.identity import normalise_emails, normalise_name, normalise_phones
from vergeet.ledger import Ledger

Summary = dict[str, Any]
Hasher = Callable[[str, str], str]

CURSOR, FULL_AT = "cursor", "full_at"  # the sync-state keys of one system
INDEXED = "indexed"  # sync-state key: every cached record of the system is in the identity index


@dataclass
class Snapshot:
    """One system as the cache holds it after a sync: record key -> summary."""

    system: str
    summaries: dict[str, Summary]
    full: bool = False  # this sync read the system in full
    read: int = 0  # records the vendor sent this sync

    def records(self) -> Iterator[Record]:
        """The cached records: identifiers as keyed hashes, the full name's hash as `first_name`."""
        return (_restored(key, summary) for key, summary in self.summaries.items())


def sync_system(connector: Connector, ledger: Ledger, *, full_every: timedelta, full: bool = False,
                now: datetime | None = None) -> Snapshot:
    """Bring one system's cache up to date: what changed, or everything when a full read is due (or `full`)."""
    now = now or datetime.now(timezone.utc)
    system = connector.system
    cached: dict[str, Summary] = ledger.cached_records(system)
    cursor = ledger.get_sync_state(system, CURSOR)
    full_at = ledger.get_sync_state(system, FULL_AT)
    if full or full_at is None or now - datetime.fromisoformat(full_at) >= full_every:
        cursor = None
    summarise = Summariser(ledger.hash_identifier)
    changes = connector.changes(cursor, Cache(cached, summarise))
    fresh = summarise(changes.records)
    summaries = updated(cached, changes, fresh)
    # the records and the index before the cursor: a crash in between reads the same changes again
    ledger.update_cached_records(system, {key: summary for key, summary in summaries.items()
                                          if cached.get(key) != summary}, cached.keys() - summaries.keys())
    indexed = ledger.get_sync_state(system, INDEXED)
    ledger.index_identifiers(index_entries(fresh if indexed and not changes.full else summaries,
                                           ledger.hash_identifier), seen_at=now)
    if not indexed:
        ledger.set_sync_state(system, INDEXED, True)
    ledger.set_sync_state(system, CURSOR, changes.cursor)
    if changes.full:
        ledger.set_sync_state(system, FULL_AT, now.isoformat())
    return Snapshot(system, summaries, changes.full, len(changes.records))


def index_entries(summaries: Mapping[str, Summary], hasher: Hasher) -> list[tuple[str, str]]:
    """The identity index's (hash, record key) pairs of summaries: their identifier hashes, and per link the
    hash of the record it links to (so a contact found in the index brings the documents that link to it)."""
    return [(h, key) for key, summary in summaries.items()
            for h in (*summary.get("emails", ()), *summary.get("phones", ()),
                      *([summary["name"]] if summary.get("name") else []),
                      *(hasher("link", target) for _, target in summary.get("links", ())))]


def index_records(ledger: Ledger, records: Sequence[Record]) -> None:
    """Put records read in plaintext (a vendor search, a read by id) into the identity index, hashed."""
    if records:
        ledger.index_identifiers(index_entries(Summariser(ledger.hash_identifier)(records), ledger.hash_identifier))


def updated(cached: Mapping[str, Summary], changes: Changes, fresh: Mapping[str, Summary]) -> dict[str, Summary]:
    """The cache after `changes`.

    Deletions go (reported ones, and what a complete listing lacks), fresh records come in, and a record whose
    owner is gone goes with it.
    """
    kept = {} if changes.full else dict(cached)
    for ref in changes.gone:
        kept.pop(str(ref), None)
    for listing in changes.listings:
        for key in [k for k in kept if _type(k) == listing.record_type and k.split("/", 2)[2] not in listing.ids]:
            created = _time(kept[key].get("created"))
            if listing.created_after is None or (created is not None and created > listing.created_after):
                del kept[key]
    kept.update(fresh)
    for record_type, relation in changes.owned.items():
        for key in [k for k in kept if _type(k) == record_type]:
            owners = [target for rel, target in kept[key].get("links", ()) if rel == relation]
            if owners and not any(owner in kept for owner in owners):
                del kept[key]
    return kept


class Summariser:
    """Records -> cache summaries, identifiers normalised (as the identity view does) and then keyed-hashed."""

    def __init__(self, hasher: Hasher):
        self.hasher = hasher
        self._hashes: dict[tuple[str, str], str] = {}

    def __call__(self, records: Sequence[Record]) -> dict[str, Summary]:
        emails = self._hashed("email", normalise_emails, [(i, e) for i, r in enumerate(records) for e in r.emails])
        phones = self._hashed("phone", normalise_phones, [(i, p) for i, r in enumerate(records) for p in r.phones])
        names = normalise_name(pd.Series([r.first_name for r in records], dtype=object),
                               pd.Series([r.last_name for r in records], dtype=object))
        return {str(record.ref): _summary(record, emails.get(i, []), phones.get(i, []),
                                          None if pd.isna(name) else self._hash("name", name))
                for i, (record, name) in enumerate(zip(records, names))}

    def _hashed(self, kind: str, normalise: Callable[[pd.Series], pd.Series],
                values: list[tuple[int, str]]) -> dict[int, list[str]]:
        """Per record (by position) the hashes of its identifiers of one kind that normalise, each once."""
        out: dict[int, list[str]] = {}
        if not values:
            return out
        rows, raw = zip(*values)
        for row, value in zip(rows, normalise(pd.Series(raw, dtype="string"))):
            if not pd.isna(value):
                hashes = out.setdefault(row, [])
                if (hashed := self._hash(kind, value)) not in hashes:
                    hashes.append(hashed)
        return out

    def _hash(self, kind: str, value: str) -> str:
        if (kind, value) not in self._hashes:
            self._hashes[kind, value] = self.hasher(kind, value)
        return self._hashes[kind, value]


class Cache:
    """What the last run saw of one system, as a connector's incremental read asks it (`connectors.base.Known`)."""

    def __init__(self, summaries: Mapping[str, Summary], summarise: Summariser):
        self.summaries, self.summarise = summaries, summarise

    def __contains__(self, ref: object) -> bool:
        return str(ref) in self.summaries

    def version(self, ref: RecordRef) -> str | None:
        return self.summaries.get(str(ref), {}).get("version")

    def previous(self, ref: RecordRef) -> Record | None:
        summary = self.summaries.get(str(ref))
        return None if summary is None else _restored(str(ref), summary)

    def changed(self, records: Sequence[Record]) -> list[Record]:
        fresh = self.summarise(records)
        return [record for record in records if fresh[str(record.ref)] != self.summaries.get(str(record.ref))]

    def due(self, now: datetime) -> datetime | None:
        passed = [moment for summary in self.summaries.values()
                  if (moment := _time(summary.get("valid_until"))) is not None and moment <= now]
        return min(passed, default=None)


# -- summaries <-> records ----------------------------------------------------------------------------------------
def _summary(record: Record, emails: list[str], phones: list[str], name: str | None) -> Summary:
    """What the cache keeps of a record, without the empty parts (no plaintext: identifiers come hashed)."""
    summary = {
        "version": record.version, "created": _iso(record.created_at), "updated": _iso(record.updated_at),
        "activity": _iso(record.last_activity_at), "document": _iso(record.document_date),
        "running": record.running_contract, "consent": record.consent,
        "consent_at": _iso(record.consent_changed_at), "shared": record.shared,
        "valid_until": _iso(record.valid_until), "left_alone": record.left_alone,
        "no_contact": not record.counts_as_contact,
        "links": [[link.relation, str(link.target)] for link in record.links],
        "emails": emails, "phones": phones, "name": name,
    }
    return {field: value for field, value in summary.items() if value not in (None, False, [])}


def _restored(key: str, summary: Summary) -> Record:
    system, record_type, record_id = key.split("/", 2)
    return Record(system, record_type, record_id, emails=tuple(summary.get("emails", ())),
                  phones=tuple(summary.get("phones", ())), first_name=summary.get("name"),
                  created_at=_time(summary.get("created")), updated_at=_time(summary.get("updated")),
                  last_activity_at=_time(summary.get("activity")), document_date=_day(summary.get("document")),
                  running_contract=summary.get("running", False), consent=summary.get("consent"),
                  consent_changed_at=_time(summary.get("consent_at")),
                  links=tuple(Link(relation, RecordRef(*target.split("/", 2)))
                              for relation, target in summary.get("links", ())),
                  shared=summary.get("shared", False), version=summary.get("version"),
                  valid_until=_time(summary.get("valid_until")), left_alone=summary.get("left_alone"),
                  counts_as_contact=not summary.get("no_contact", False))


def _type(key: str) -> str:
    return key.split("/", 2)[1]


def _iso(moment: date | None) -> str | None:
    return None if moment is None else moment.isoformat()


def _time(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def _day(text: str | None) -> date | None:
    return None if text is None else date.fromisoformat(text)
