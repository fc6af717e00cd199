"""Vendor connectors: the only code that speaks HTTP.

`SYSTEMS` names every system vergeet can connect; `record_fields(system)`
tells which record types a system yields and which of their fields a
retention rule may anonymise (imported lazily, so asking about one vendor does
not load the others' SDKs).
"""
from __future__ import annotations

import importlib

SYSTEMS = ("moneybird", "mailblue", "mollie", "google_calendar")


def record_fields(system: str) -> dict[str, frozenset[str]]:
    """Record types of `system` with their anonymisable fields; KeyError for an unknown system."""
    if system not in SYSTEMS:
        raise KeyError(system)
    return importlib.import_module(f"connectors.{system}").RECORD_FIELDS


def record_labels(system: str) -> tuple[dict[str, tuple[str, str]], dict[str, dict[str, tuple[str, str]]]]:
    """`system`'s labels for a person to read: (FIELD_LABELS, VALUE_LABELS) of its connector module, each
    label (nl, en); empty for an unknown system (its fields are then not shown, only exported)."""
    if system not in SYSTEMS:
        return {}, {}
    module = importlib.import_module(f"connectors.{system}")
    return getattr(module, "FIELD_LABELS", {}), getattr(module, "VALUE_LABELS", {})
