"""Vendor connectors: the only code that speaks HTTP.

`SYSTEMS` names every system vergeet can connect; `record_fields(system)`
tells which record types a system yields and which of their fields a
retention rule may anonymise (imported lazily, so asking about one vendor does
not load the others' SDKs).
"""
from __future__ import annotations

import importlib
from typing import NamedTuple

SYSTEMS = ("moneybird", "mailblue", "mollie", "google_calendar", "zoom", "mailbox", "woocommerce")


def record_fields(system: str) -> dict[str, frozenset[str]]:
    """Record types of `system` with their anonymisable fields; KeyError for an unknown system."""
    if system not in SYSTEMS:
        raise KeyError(system)
    return importlib.import_module(f"connectors.{system}").RECORD_FIELDS


class Labels(NamedTuple):
    """How a system's records read for a person, each label (nl, en): `fields` by field path
    ("attendees[].email"), `values` vendor codes in words per field path, and `own_entries` the flags
    ("attendees[].self") that mark a list entry as the business's own, not shown in a person's report."""

    fields: dict[str, tuple[str, str]]
    values: dict[str, dict[str, tuple[str, str]]]
    own_entries: tuple[str, ...]


def record_labels(system: str) -> Labels:
    """`system`'s labels from its connector module (FIELD_LABELS, VALUE_LABELS, OWN_ENTRIES); empty for an
    unknown system (its fields are then not shown, only exported)."""
    if system not in SYSTEMS:
        return Labels({}, {}, ())
    module = importlib.import_module(f"connectors.{system}")
    return Labels(getattr(module, "FIELD_LABELS", {}), getattr(module, "VALUE_LABELS", {}),
                  getattr(module, "OWN_ENTRIES", ()))


def web_link(record) -> str | None:
    """Where the owner opens `record` in its vendor's web app (its connector module's `web_link`), if anywhere."""
    module = importlib.import_module(f"connectors.{record.system}") if record.system in SYSTEMS else None
    link = getattr(module, "web_link", None)
    return link(record) if link else None
