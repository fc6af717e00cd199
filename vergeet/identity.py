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
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

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

    records: pd.DataFrame  # system, record_type, record_id, first_name, last_name, times..., running_contract, consent, shared
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
                     record.consent_changed_at, record.running_contract, record.consent, record.shared))
        identifiers += [(row, "email", e) for e in record.emails] + [(row, "phone", p) for p in record.phones]
        links += [(row, str(link.target)) for link in record.links]
    frame = pd.DataFrame(rows, columns=["system", "record_type", "record_id", "first_name", "last_name",
                                        "created_at", "updated_at", "last_activity_at", "document_date",
                                        "consent_changed_at", "running_contract", "consent", "shared"])
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
    e164 = compact.str.replace(r"^(?:\+31|0031|0)([1-9]\d{8})$", r"+31\1", regex=True)
    fast = e164.where(e164.str.fullmatch(r"\+31[1-9]\d{8}", na=False))
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
    `identifiers` holds the distinct normalised identifiers with their person.
    """

    mentions: pd.DataFrame
    people: pd.DataFrame
    identifiers: pd.DataFrame

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
               region: str = DEFAULT_REGION) -> IdentityView:
    """Link records into people and compute what the retention decisions need per person.

    `contact_systems` are the systems whose activity counts as contact with
    the person; `document_types` the "system/record_type" pairs whose
    `document_date` counts for fiscal retention (invoices and quotes).
    """
    records = inputs.records.reset_index(drop=True).copy()
    n = len(records)
    for column in TIME_COLUMNS:
        records[column] = _utc(records[column])
    records["key"] = records["system"] + "/" + records["record_type"] + "/" + records["record_id"].astype(str)
    records["shared"] = records["shared"].fillna(False).astype(bool)
    records["running_contract"] = records["running_contract"].fillna(False).astype(bool)

    ids = inputs.identifiers
    emails = ids["kind"] == "email"
    value = pd.Series(pd.NA, index=ids.index, dtype="string")
    value[emails] = normalise_emails(ids.loc[emails, "value"])
    value[~emails] = normalise_phones(ids.loc[~emails, "value"], region)
    ids = pd.DataFrame({"row": ids["row"].to_numpy(dtype=np.int64), "kind": ids["kind"].to_numpy(),
                        "value": value.to_numpy()})
    ids = ids[ids["value"].notna()].drop_duplicates(["row", "kind", "value"])
    codes, uniques = pd.factorize(ids["kind"] + ":" + ids["value"])
    id_nodes = n + codes.astype(np.int64)

    # Edges: record <-> identifier (not through shared records), record <-> linked record.
    own = ~records["shared"].to_numpy()[ids["row"].to_numpy()]
    target_row = pd.Series(np.arange(n), index=records["key"])
    target_row = target_row[~target_row.index.duplicated()]
    linked = inputs.links.assign(target_row=inputs.links["target"].map(target_row)).dropna(subset=["target_row"])
    sources = np.concatenate([ids["row"].to_numpy()[own], linked["row"].to_numpy(dtype=np.int64)])
    targets = np.concatenate([id_nodes[own], linked["target_row"].to_numpy(dtype=np.int64)])
    size = n + len(uniques)
    graph = coo_matrix((np.ones(len(sources), dtype=np.int8), (sources, targets)), shape=(size, size))
    _, labels = connected_components(graph, directed=False)

    # A shared record belongs to each identifier's person; one without identifiers to its own component.
    shared_ids = ids[~own]
    solo = records.index[records["shared"] & ~records.index.isin(shared_ids["row"])]
    plain = records.index[~records["shared"]].union(solo)
    mentions = pd.concat([records.loc[plain].assign(person=labels[plain]),
                          records.loc[shared_ids["row"]].assign(person=labels[id_nodes[~own]])])
    mentions = mentions.drop_duplicates(["key", "person"]).reset_index(names="row")

    identifiers = pd.DataFrame({"kind": [u.split(":", 1)[0] for u in uniques],
                                "value": [u.split(":", 1)[1] for u in uniques],
                                "person": labels[n:]})
    mentions["full_name"] = normalise_name(mentions["first_name"], mentions["last_name"])
    people = _people(mentions, identifiers, set(contact_systems), set(document_types))
    return IdentityView(mentions, people, identifiers)


def _people(mentions: pd.DataFrame, identifiers: pd.DataFrame, contact_systems: set[str],
            document_types: set[str]) -> pd.DataFrame:
    counts_as_contact = mentions["system"].isin(contact_systems)
    contact_time = mentions[["created_at", "last_activity_at", "document_date"]].max(axis=1)
    is_document = (mentions["system"] + "/" + mentions["record_type"]).isin(document_types)
    grouped = pd.DataFrame({
        "person": mentions["person"],
        "contact_time": contact_time.where(counts_as_contact),
        "document_date": mentions["document_date"].where(is_document),
        "running_contract": mentions["running_contract"],
    }).groupby("person")
    people = pd.DataFrame({
        "last_contact": grouped["contact_time"].max(),
        "latest_document": grouped["document_date"].max(),
        "running_contract": grouped["running_contract"].any(),
        "records": grouped.size(),
    })
    systems = mentions.groupby(["person", "system"]).size().unstack(fill_value=0) > 0
    people["systems"] = systems.dot(systems.columns + ",").str.rstrip(",") if len(systems) else ""
    id_count = identifiers.groupby("person").size()
    people["identifiers"] = id_count.reindex(people.index, fill_value=0)
    named = mentions["full_name"].notna().groupby(mentions["person"]).any()
    # Someone with an e-mail, a phone or a name: a record with none (a private calendar entry) is nobody's.
    people["identifiable"] = (people["identifiers"] > 0) | named.reindex(people.index, fill_value=False)
    names = mentions.dropna(subset=["full_name"]).drop_duplicates(["person", "full_name"])
    shared_names = names["full_name"].duplicated(keep=False)
    people["name_shared"] = False
    people.loc[names.loc[shared_names, "person"].unique(), "name_shared"] = True
    return people
