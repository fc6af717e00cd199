"""The connector protocol and the types every connector speaks.

A connector is the only code that talks to a vendor. It yields `Record`s,
finds records by identifiers, and deletes or anonymises one record given its
`RecordRef`. Deletes and anonymisations are idempotent: a record that is
already gone counts as done. For the nightly run it also reads incrementally
(`changes`): only what changed since a cursor, told what the last run saw
through `Known`.
"""
from __future__ import annotations

import enum
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Protocol, runtime_checkable


@dataclass(frozen=True, order=True)
class RecordRef:
    """Enough to address one vendor record: what a plan and the ledger store."""

    system: str
    record_type: str
    record_id: str

    def __str__(self) -> str:
        return f"{self.system}/{self.record_type}/{self.record_id}"


@dataclass(frozen=True)
class Link:
    """A relation from one record to another, e.g. an invoice's contact."""

    relation: str
    target: RecordRef


#: The newsletter consent states a connector may report in `Record.consent`, and a rule may select on.
CONSENT_STATES = ("subscribed", "unsubscribed", "unconfirmed", "bounced")


@dataclass
class Record:
    """One vendor record, normalised enough to decide on it.

    `fields` keeps the vendor's own fields (for access reports); the typed
    attributes are what identity linking and retention decisions use.
    `document_date` is set on financial documents (invoice, quote, payment)
    whose legal retention runs from that date. `running_contract` is the
    vendor's own evidence of an ongoing agreement (active subscription, valid
    mandate, unpaid invoice). `consent` is the newsletter consent state where
    a vendor keeps one (one of `CONSENT_STATES`). `shared` marks a record
    that concerns several people at once (a meeting with several attendees):
    its identifiers belong to it, but do not make those people one person.
    `version` is the vendor's own version of the record, where it keeps one.
    `valid_until` is when time alone changes `last_activity_at` or
    `running_contract` (an appointment yet to end); None if it never does.
    `left_alone` says why no retention rule may act on this record (no
    personal data in it): what the connector cannot date (a recurrence it
    cannot evaluate: for a human to review) or what is not the business's
    record of a person (a birthday event). Such a record is kept and listed
    with this reason; it dates nobody and is no running contract, so the
    connector leaves `last_activity_at` and `running_contract` unset.
    `counts_as_contact` is False for a record whose dates are no contact
    with the person although its system's are (a payment the person never
    made: expired, failed, cancelled): the record is decided on as usual,
    but it does not date its person.
    """

    system: str
    record_type: str
    record_id: str
    emails: tuple[str, ...] = ()
    phones: tuple[str, ...] = ()
    first_name: str | None = None
    last_name: str | None = None
    fields: dict[str, Any] = field(default_factory=dict)
    created_at: datetime | None = None
    updated_at: datetime | None = None
    last_activity_at: datetime | None = None
    document_date: date | None = None
    running_contract: bool = False
    consent: str | None = None
    consent_changed_at: datetime | None = None
    links: tuple[Link, ...] = ()
    shared: bool = False
    version: str | None = None
    valid_until: datetime | None = None
    left_alone: str | None = None
    counts_as_contact: bool = True

    @property
    def ref(self) -> RecordRef:
        return RecordRef(self.system, self.record_type, self.record_id)

    @property
    def name(self) -> str | None:
        parts = [p for p in (self.first_name, self.last_name) if p]
        return " ".join(parts) or None


@dataclass(frozen=True)
class Identifiers:
    """What a person is searched by in the access and erasure flows."""

    emails: tuple[str, ...] = ()
    phones: tuple[str, ...] = ()
    names: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.emails or self.phones or self.names)


class Outcome(str, enum.Enum):
    """What happened when an action met the vendor."""

    DONE = "done"
    ALREADY_GONE = "already_gone"
    NOT_SUPPORTED = "not_supported"  # the vendor's API cannot do this; a human must


@dataclass(frozen=True)
class ActionResult:
    outcome: Outcome
    detail: str = ""  # never personal data: ids, statuses, vendor rules only


class Known(Protocol):
    """What the last run saw of one system, as an incremental read asks it (the ledger's cache)."""

    def __contains__(self, ref: object) -> bool: ...

    def version(self, ref: RecordRef) -> str | None:
        """The vendor version the last run saw of a record; None when unknown."""

    def previous(self, ref: RecordRef) -> Record | None:
        """The record as the last run saw it (identifiers as keyed hashes, no vendor fields); None when unknown."""

    def changed(self, records: Sequence[Record]) -> list[Record]:
        """Those of `records` that are new or differ from what the last run saw."""

    def due(self, now: datetime) -> datetime | None:
        """The earliest `valid_until` that has passed by `now` (time alone changed that record), if any."""


@dataclass(frozen=True)
class Listing:
    """Every id a vendor holds of one record type (only those created after `created_after`, when given).

    What the last run saw of that type within that span and is not listed here is gone.
    """

    record_type: str
    ids: frozenset[str]
    created_after: datetime | None = None


@dataclass
class Changes:
    """What one incremental read found.

    `records`: new or changed records (with `full`, every record the system
    holds). `cursor`: where the next read starts, JSON without personal data.
    `gone`: deletions the vendor reported. `listings`: complete id lists, from
    which deletions follow. `owned`: record type -> the link relation whose
    target it lives and dies with (a record only reachable through it).
    """

    records: list[Record]
    cursor: dict[str, Any]
    full: bool = False
    gone: list[RecordRef] = field(default_factory=list)
    listings: list[Listing] = field(default_factory=list)
    owned: Mapping[str, str] = field(default_factory=dict)


#: What a rectification request may set on a person (`vergeet correct --set FIELD=VALUE`); an address travels as
#: its three parts "address.street", "address.postcode", "address.city".
CORRECTABLE_FIELDS = ("name", "email", "phone", "address.street", "address.postcode", "address.city")


@dataclass(frozen=True)
class FieldChange:
    """One field of one record a rectification would change, or why it cannot.

    `field` is one of `CORRECTABLE_FIELDS`; `vendor_field` the vendor's own field path it lands in ("email",
    "attendees[].email"). `current` and `new` are plaintext values: they live only in memory and in the
    confirmation the person receives, never in logs, the ledger or Prefect. `refused` is a code saying why the
    vendor record keeps its value (e.g. "issued_document": an issued invoice keeps the address it was issued to;
    "vendor_read_only": the vendor's API offers no way to change it); None when the change will be made.
    """

    ref: RecordRef
    field: str
    vendor_field: str
    current: str | None
    new: str | None
    refused: str | None = None


@runtime_checkable
class Connector(Protocol):
    """What every vendor connector offers.

    A connector whose records may name a person without an e-mail address or phone number (Zoom's guests) sets
    `name_only_records = True`: an access or erasure search then asks it for the names on the person's records
    too, and what those find is a possible match, never the person's.
    """

    system: str

    def records(self, since: datetime | None = None) -> Iterator[Record]:
        """All records (or those changed since `since`) with what dates them."""

    def changes(self, cursor: Mapping[str, Any] | None, known: Known) -> Changes:
        """What changed since `cursor` (None: a full read), with what the vendor offers to find it."""

    def search(self, identifiers: Identifiers) -> Iterator[Record]:
        """Records matching any of the identifiers, through vendor search endpoints."""

    def read(self, ref: RecordRef, parent: RecordRef | None = None) -> Record | None:
        """One record by its id, through the vendor's get-by-id call, as the listing gives it (same identifiers,
        dates and links); None when the vendor has it no more. `parent` is the record it lives under, for a
        vendor that addresses it only there (a Mollie mandate or subscription under its customer)."""

    def delete(self, ref: RecordRef) -> ActionResult:
        """Delete one record; a record that is already gone is `ALREADY_GONE`."""

    def anonymise(self, ref: RecordRef, fields: Sequence[str]) -> ActionResult:
        """Overwrite the named personal fields of one record."""

    def plan_correction(self, record: Record, new: Mapping[str, str]) -> list[FieldChange]:
        """What setting the person's fields to `new` (keys from `CORRECTABLE_FIELDS`) changes in `record`, one
        `FieldChange` per field the record holds, refused ones with their reason; no vendor call. The caller
        gives the record with `emails` and `phones` narrowed to the person's own on it, so in a `shared` record
        (an event with several guests) they say whose entry changes."""

    def correct(self, changes: Sequence[FieldChange]) -> ActionResult:
        """Write the non-refused `changes` of one record with the vendor's own update call, idempotently: a
        record that already shows the new values is DONE without a write; a record that is gone is
        ALREADY_GONE."""

