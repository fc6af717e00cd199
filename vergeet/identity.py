"""The identity view: every connector's records in one pandas frame, grouped into people.

Records are linked when they share a normalised e-mail (trimmed, case-folded)
or an E.164 phone number (default region NL), or when one points at the other
(an invoice at its contact, a payment at its customer). Linking is transitive:
people are the connected components of the record-identifier graph
(scipy.sparse.csgraph). A shared name alone never links; it is only flagged
for review. A `shared` record (a meeting with several attendees) belongs to
each attendee's person without joining them.

Everything on the hot path is vectorised; `phonenumbers` is called once per
distinct number that the fast path for common Dutch formats cannot read.
Identifiers and names are normalised once per distinct spelling, and records,
identifiers and names are handled as integer codes after one factorisation
(benchmarks/identity_decide.py: a million records in about four seconds).
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial

import numpy as np
import pandas as pd
import phonenumbers
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from connectors.base import Record

DEFAULT_REGION = "NL"
TIME_COLUMNS = ("created_at", "updated_at", "last_activity_at", "document_date", "consent_changed_at")


@dataclass
class Inputs:
    """Records in columnar form: one row per record, plus its identifiers and links."""

    records: pd.DataFrame  # system, record_type, record_id, first_name, last_name, times..., running_contract,
    # consent, shared, left_alone (a reason or None), counts_as_contact
    identifiers: pd.DataFrame  # row (into records), kind ("email" | "phone"), value (as the vendor has it)
    links: pd.DataFrame  # row, target (record key "system/record_type/record_id")


def _utc(values: pd.Series) -> pd.Series:
    return pd.to_datetime(values, utc=True)


def frame_records(records: Iterable[Record]) -> Inputs:
    """Turn connector `Record`s into the columnar `Inputs` the view is built from."""
    rows, identifiers, links = [], [], []
    for row, record in enumerate(records):
        rows.append((record.system, record.record_type, record.record_id, record.first_name, record.last_name,
                     record.created_at, record.updated_at, record.last_activity_at, record.document_date,
                     record.consent_changed_at, record.running_contract, record.consent, record.shared,
                     record.left_alone, record.counts_as_contact))
        identifiers += [(row, "email", e) for e in record.emails] + [(row, "phone", p) for p in record.phones]
        links += [(row, str(link.target)) for link in record.links]
    frame = pd.DataFrame(rows, columns=["system", "record_type", "record_id", "first_name", "last_name",
                                        "created_at", "updated_at", "last_activity_at", "document_date",
                                        "consent_changed_at", "running_contract", "consent", "shared",
                                        "left_alone", "counts_as_contact"])
    return Inputs(frame, pd.DataFrame(identifiers, columns=["row", "kind", "value"]),
                  pd.DataFrame(links, columns=["row", "target"]))


def normalise_emails(values: pd.Series) -> pd.Series:
    """Trimmed and case-folded; empty becomes NA."""
    cleaned = values.astype("string").str.strip().str.casefold()
    return cleaned.where(cleaned.str.contains("@", regex=False, na=False))


def normalise_phones(values: pd.Series, region: str = DEFAULT_REGION) -> pd.Series:
    """E.164 strings; what cannot be read as a valid number becomes NA.

    Common Dutch spellings (06-12345678, +31 6 1234 5678, 0031612345678,
    (035) 1234567) go through a vectorised path; the rest is parsed by
    `phonenumbers`, once per distinct value.
    """
    raw = values.astype("string")
    compact = raw.str.replace(r"[\s\-\.\(\)/]", "", regex=True)
    # +31, 0031 or 0 and nine digits, the first not 0: the last nine characters are the national number.
    dutch = compact.str.fullmatch(r"(?:\+31|0031|0)[1-9]\d{8}", na=False)
    fast = ("+31" + compact.str[-9:]).where(dutch)
    rest = raw[fast.isna() & raw.notna()]
    if not rest.empty:
        parsed = {value: _parse_phone(value, region) for value in rest.unique()}
        fast = fast.fillna(rest.map(parsed).astype("string"))
    return fast


def _parse_phone(value: str, region: str) -> str | None:
    try:
        number = phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def normalise_name(first: pd.Series, last: pd.Series) -> pd.Series:
    """Full names compared case- and space-insensitively; empty becomes NA."""
    full = (first.astype("string").fillna("") + " " + last.astype("string").fillna(""))
    full = full.str.casefold().str.replace(r"\s+", " ", regex=True).str.strip()
    return full.where(full != "")


@dataclass
class IdentityView:
    """People and the records that are theirs.

    `mentions` has one row per (record, person): the record's columns, its
    `key`, and `person`. A record appears once, except a shared record, which
    appears once per person it concerns. `people` is indexed by person.
    `identifiers` holds the distinct normalised identifiers with their person;
    with `hashed` they (and full names) are keyed hashes of the normalised values.
    """

    mentions: pd.DataFrame
    people: pd.DataFrame
    identifiers: pd.DataFrame
    hashed: bool = False

    def records_of(self, person: int) -> pd.DataFrame:
        return self.mentions[self.mentions["person"] == person]

    def people_with_identifiers(self, kind_values: Iterable[tuple[str, str]]) -> set[int]:
        """People holding any of the given normalised (kind, value) identifiers."""
        wanted = pd.MultiIndex.from_tuples(list(kind_values), names=["kind", "value"])
        index = pd.MultiIndex.from_frame(self.identifiers[["kind", "value"]])
        return set(self.identifiers.loc[index.isin(wanted), "person"].tolist())

    def possible_matches(self, name: str) -> set[int]:
        """People whose full name equals `name` (never a link, only a hint for a human)."""
        target = normalise_name(pd.Series([name]), pd.Series([""])).iloc[0]
        return set(self.mentions.loc[self.mentions["full_name"] == target, "person"].unique().tolist())


def build_view(inputs: Inputs, *, contact_systems: Iterable[str], document_types: Iterable[str],
               region: str = DEFAULT_REGION, hashed: bool = False) -> IdentityView:
    """Link records into people and compute what the retention decisions need per person.

    `contact_systems` are the systems whose activity counts as contact with
    the person; `document_types` the "system/record_type" pairs whose
    `document_date` counts for fiscal retention (invoices and quotes).
    `hashed`: identifiers are keyed hashes of normalised values and
    `first_name` the hash of the normalised full name (the incremental-sync
    cache, `vergeet.sync`); they are linked and compared as they are.
    """
    records = inputs.records.reset_index(drop=True).copy()
    n = len(records)
    for column in TIME_COLUMNS:
        records[column] = _utc(records[column])
    records["key"] = _keys(records)
    records["shared"] = records["shared"].fillna(False).astype(bool)
    records["running_contract"] = records["running_contract"].fillna(False).astype(bool)
    records["counts_as_contact"] = records["counts_as_contact"].fillna(True).astype(bool)

    # Identifiers normalised once per distinct spelling; `value` numbers the distinct normalised values.
    ids = inputs.identifiers
    emails = (ids["kind"] == "email").to_numpy(dtype=bool)
    value = np.full(len(ids), -1, dtype=np.int64)
    normalised = []
    normalisers = (_as_hashed, _as_hashed) if hashed else (normalise_emails, partial(normalise_phones, region=region))
    for part, normalise in zip((emails, ~emails), normalisers):
        numbers, distinct = _normalised(normalise, ids["value"][part])
        value[part] = np.where(numbers >= 0, numbers + sum(map(len, normalised)), -1)
        normalised.append(distinct)
    normalised = np.concatenate(normalised)
    found = value >= 0
    row = ids["row"].to_numpy(dtype=np.int64)[found]
    kind = ids["kind"].to_numpy(dtype=object)[found]
    value = value[found]
    # One node per distinct (kind, value), numbered in order of first appearance.
    kind_code, kinds = pd.factorize(kind, use_na_sentinel=False)
    codes = pd.factorize(value * max(len(kinds), 1) + kind_code)[0].astype(np.int64)
    once = ~_duplicated(row, codes)
    row, kind, value, codes = row[once], kind[once], value[once], codes[once]
    first = np.flatnonzero(~pd.Series(codes).duplicated().to_numpy())  # first row of each node, by node
    id_nodes = n + codes

    # Edges: record <-> identifier (not through shared records), record <-> linked record.
    shared = records["shared"].to_numpy()
    own = ~shared[row]
    key_codes, target_rows = _keys_and_targets(records["key"], inputs.links["target"])
    linked = target_rows >= 0
    sources = np.concatenate([row[own], inputs.links["row"].to_numpy(dtype=np.int64)[linked]])
    targets = np.concatenate([id_nodes[own], target_rows[linked]])
    size = n + len(first)
    graph = coo_matrix((np.ones(len(sources), dtype=np.int8), (sources, targets)), shape=(size, size))
    _, labels = connected_components(graph, directed=False)

    # A shared record belongs to each identifier's person; one without identifiers to its own component.
    shared_rows = row[~own]
    with_identifiers = np.zeros(n, dtype=bool)
    with_identifiers[shared_rows] = True
    plain = np.flatnonzero(~shared | ~with_identifiers)
    position = np.concatenate([plain, shared_rows])
    person = np.concatenate([labels[plain], labels[id_nodes[~own]]])
    once = ~_duplicated(key_codes[position], person)  # a record once per person
    mentions = records.take(position[once])
    mentions["person"] = person[once]
    mentions = mentions.reset_index(names="row")

    identifiers = pd.DataFrame({"kind": kind[first].tolist(), "value": normalised[value[first]].tolist(),
                                "person": labels[n:]})
    mentions["full_name"], name_codes = _full_names(mentions["first_name"], mentions["last_name"])
    people = _people(mentions, identifiers, set(contact_systems), set(document_types), name_codes)
    return IdentityView(mentions, people, identifiers, hashed)


def _as_hashed(values: pd.Series) -> pd.Series:
    """Keyed hashes of normalised identifiers: nothing left to normalise."""
    return values.astype("string")


def _keys(records: pd.DataFrame) -> pd.Series:
    """ "system/record_type/record_id" per record."""
    columns = [records[c] for c in ("system", "record_type", "record_id")]
    dtype = columns[0].dtype
    if isinstance(dtype, pd.StringDtype) and all(c.dtype == dtype for c in columns):
        try:  # the same strings, joined by numpy without pandas' per-operation checks
            joined = columns[0].to_numpy(dtype=object) + "/" + columns[1].to_numpy(dtype=object) + "/" \
                + columns[2].to_numpy(dtype=object)
            return pd.Series(joined, index=records.index, dtype=dtype)
        except TypeError:  # a missing or non-text value: let pandas spell it
            pass
    return records["system"] + "/" + records["record_type"] + "/" + records["record_id"].astype(str)


def _normalised(normalise: Callable[[pd.Series], pd.Series], values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """`normalise(values)` computed once per distinct value, as a number per value (-1: none) and the values."""
    codes, spellings = pd.factorize(values)
    numbers, distinct = pd.factorize(normalise(pd.Series(spellings)))
    return np.where(codes >= 0, numbers[codes], -1), np.asarray(distinct.to_numpy(dtype=object), dtype=object)


def _duplicated(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Which (first, second) pairs of non-negative integers appeared before."""
    if len(first) == 0:
        return np.zeros(0, dtype=bool)
    span = int(second.max()) + 1
    if int(first.max()) < (1 << 62) // span:
        return pd.Series(first.astype(np.int64) * span + second).duplicated().to_numpy()
    return pd.DataFrame({"first": first, "second": second}).duplicated().to_numpy()


def _keys_and_targets(keys: pd.Series, targets: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """A code per record key (the same for the same key), and the first record of each link target (-1: none)."""
    codes = pd.factorize(np.concatenate([keys.to_numpy(dtype=object), targets.to_numpy(dtype=object)]),
                         use_na_sentinel=False)[0].astype(np.int64)
    key_codes, target_codes = codes[:len(keys)], codes[len(keys):]
    first = np.flatnonzero(~pd.Series(key_codes).duplicated().to_numpy())  # keys are numbered first
    target_rows = np.full(len(target_codes), -1, dtype=np.int64)
    known = target_codes < len(first)
    target_rows[known] = first[target_codes[known]]
    return key_codes, target_rows


def _full_names(first: pd.Series, last: pd.Series) -> tuple[pd.Series, np.ndarray]:
    """`normalise_name` once per distinct (first, last) pair, and a code per row for the name (-1: none)."""
    first_code, first_names = pd.factorize(first)
    last_code = pd.factorize(last)[0]
    pair = pd.factorize((first_code.astype(np.int64) + 1)
                        + (last_code.astype(np.int64) + 1) * (len(first_names) + 1))[0]
    once = np.flatnonzero(~pd.Series(pair).duplicated().to_numpy())
    names = normalise_name(first.iloc[once].reset_index(drop=True), last.iloc[once].reset_index(drop=True))
    name_code = pd.factorize(names)[0]
    return pd.Series(names.array.take(pair), index=first.index), name_code[pair]


def _people(mentions: pd.DataFrame, identifiers: pd.DataFrame, contact_systems: set[str],
            document_types: set[str], name_codes: np.ndarray | None = None) -> pd.DataFrame:
    system_code, system_names = pd.factorize(mentions["system"], sort=True)
    type_code, type_names = pd.factorize(mentions["record_type"])
    counts_as_contact = np.isin(system_code, [c for c, s in enumerate(system_names) if s in contact_systems])
    contact_time = mentions[["created_at", "last_activity_at", "document_date"]].max(axis=1)
    is_document = np.zeros(len(mentions), dtype=bool)
    for s_code, system in enumerate(system_names):  # system and record type pairs: a handful
        for t_code, record_type in enumerate(type_names):
            if f"{system}/{record_type}" in document_types:
                is_document |= (system_code == s_code) & (type_code == t_code)
    # A record left alone (one its connector cannot date) dates nobody and is no running contract.
    decided = mentions["left_alone"].isna().to_numpy()
    grouped = pd.DataFrame({
        "person": mentions["person"],
        "contact_time": contact_time.where(counts_as_contact & decided & mentions["counts_as_contact"].to_numpy()),
        "document_date": mentions["document_date"].where(is_document),
        "running_contract": mentions["running_contract"] & decided,
    }).groupby("person")
    people = pd.DataFrame({
        "last_contact": grouped["contact_time"].max(),
        "latest_document": grouped["document_date"].max(),
        "running_contract": grouped["running_contract"].any(),
        "records": grouped.size(),
    })
    if len(mentions) and 0 < len(system_names) <= 16:
        # The systems a person is in, as a bit set; spelled out once per combination, in sorted order.
        where = people.index.get_indexer(mentions["person"])
        bits = np.zeros(len(people), dtype=np.int64)
        for s_code in range(len(system_names)):
            present = np.zeros(len(people), dtype=bool)
            present[where[system_code == s_code]] = True
            bits |= present.astype(np.int64) << s_code
        spelled = np.array([np.nan] + [",".join(s for s_code, s in enumerate(system_names) if combination >> s_code & 1)
                                       for combination in range(1, 1 << len(system_names))], dtype=object)
        people["systems"] = pd.Series(spelled[bits], index=people.index)
    else:
        systems = mentions.groupby(["person", "system"]).size().unstack(fill_value=0) > 0
        people["systems"] = systems.dot(systems.columns + ",").str.rstrip(",") if len(systems) else ""
    id_count = identifiers.groupby("person").size()
    people["identifiers"] = id_count.reindex(people.index, fill_value=0)
    named = mentions["full_name"].notna().groupby(mentions["person"]).any()
    # Someone with an e-mail, a phone or a name: a record with none (a private calendar entry) is nobody's.
    people["identifiable"] = (people["identifiers"] > 0) | named.reindex(people.index, fill_value=False)
    people["name_shared"] = False
    if name_codes is None:
        names = mentions.dropna(subset=["full_name"]).drop_duplicates(["person", "full_name"])
        shared_names = names["full_name"].duplicated(keep=False)
        people.loc[names.loc[shared_names, "person"].unique(), "name_shared"] = True
        return people
    # A name shared by several people flags each of them.
    named = name_codes >= 0
    name, who = name_codes[named].astype(np.int64), mentions["person"].to_numpy()[named]
    once = ~_duplicated(name, who.astype(np.int64))
    name, who = name[once], who[once]
    people.loc[np.unique(who[np.bincount(name)[name] > 1]), "name_shared"] = True
    return people
