"""The incremental-sync cache keeps what decisions need of a record, and nothing in plaintext."""
from __future__ import annotations

from datetime import datetime, timezone

from connectors.base import Record
from vergeet.sync import Snapshot, Summariser


def hasher(kind: str, value: str) -> str:
    return f"h({kind})"  # what the value was must not matter to what the cache keeps of the flags


def round_trip(record: Record) -> Record:
    key = str(record.ref)
    return next(Snapshot(record.system, {key: Summariser(hasher)([record])[key]}).records())


def test_a_record_left_alone_keeps_its_reason_in_the_cache():
    series = Record("google_calendar", "event", "owner@example.nl/s1", emails=("jan@example.nl",),
                    created_at=datetime(2026, 1, 1, tzinfo=timezone.utc), left_alone="recurrence could not be evaluated")
    restored = round_trip(series)
    assert restored.left_alone == "recurrence could not be evaluated"
    assert restored.counts_as_contact and restored.emails == ("h(email)",)


def test_a_payment_that_is_no_contact_stays_so_in_the_cache():
    payment = Record("mollie", "payment", "tr_1", counts_as_contact=False)
    assert round_trip(payment).counts_as_contact is False
    assert round_trip(Record("mollie", "payment", "tr_2")).counts_as_contact is True
