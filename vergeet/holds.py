"""Legal holds: while a dispute runs, a person's records (or one record) stay out of every purge and erasure.

A hold is placed on a person by their e-mail addresses and phone numbers, each
stored as its keyed hash like every identifier in the ledger, or on one record
by its reference (`moneybird/sales_invoice/123`). It has a reason and may have
an end date; releasing it records when and why. The rules' `legal_hold`
exception is what keeps the records; `kept_by` says which hold kept what.
"""
from __future__ import annotations

from collections.abc import Callable
from datetime import date

from connectors.base import Identifiers
from vergeet.access import identifier_hashes
from vergeet.decide import Plan, hash_identifiers
from vergeet.errors import BadInput
from vergeet.identity import IdentityView
from vergeet.ledger import Ledger


def parse_record(text: str, systems: tuple[str, ...]) -> tuple[str, str, str]:
    """"moneybird/sales_invoice/123" -> its parts; `BadInput` for anything else."""
    parts = text.strip().split("/", 2)
    if len(parts) != 3 or not all(parts) or parts[0] not in systems:
        raise BadInput(f"--record: {text!r} is not SYSTEM/RECORD_TYPE/ID with SYSTEM one of {', '.join(systems)} "
                       "(as `purge` lists records, e.g. moneybird/sales_invoice/123)")
    return parts[0], parts[1], parts[2]


def place(ledger: Ledger, *, reason: str, until: date | None, today: date, person: Identifiers | None = None,
          record: tuple[str, str, str] | None = None) -> list[int]:
    """Place a hold on each of the person's identifiers, or on the record; the ids of the holds placed."""
    if not reason.strip():
        raise BadInput("--reason: a legal hold needs its reason (no personal data), e.g. \"dispute about invoice "
                       "2024-017\"")
    if until is not None and until < today:
        raise BadInput(f"--until: {until} is in the past; a hold ends on that day or later")
    if record is not None:
        return [ledger.add_hold(reason=reason, record=record, until=until)]
    assert person is not None
    return [ledger.add_hold(reason=reason, identifier_hash=h, until=until)
            for h in identifier_hashes(ledger, person)]


def release(ledger: Ledger, hold_id: int, reason: str) -> None:
    """Release a hold for `reason`; `BadInput` when there is no such hold or no reason."""
    if not reason.strip():
        raise BadInput("--reason: say why the hold ends (no personal data), e.g. \"dispute settled\"")
    if all(hold["id"] != hold_id for hold in ledger.holds()):
        raise BadInput(f"there is no legal hold {hold_id}; `vergeet hold list --all` shows them")
    ledger.release_hold(hold_id, reason)


def kept_by(plan: Plan, view: IdentityView, holds: list[dict],
            hasher: Callable[[str, str], str]) -> dict[int, int]:
    """Active hold id -> how many records of this plan it keeps (records kept by the `legal_hold` exception).

    `hasher` is the ledger's; a hashed view (the nightly sync's) holds the hashes already.
    """
    kept = plan.kept[plan.kept["exceptions"].str.contains("legal_hold", regex=False)]
    if kept.empty or not holds:
        return {}
    identifiers = view.identifiers[view.identifiers["person"].isin(kept["person"].unique())]
    hashes = identifiers["value"] if view.hashed else hash_identifiers(identifiers, hasher)
    counts = {}
    for hold in holds:
        if hold["record"] is not None:
            rows = kept["key"] == "/".join(hold["record"])
        else:
            rows = kept["person"].isin(identifiers.loc[hashes == hold["identifier_hash"], "person"])
        if rows.any():
            counts[hold["id"]] = int(kept.loc[rows, "key"].nunique())
    return counts
