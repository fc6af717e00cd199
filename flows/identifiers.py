"""How a flow gets a person's identifiers without Prefect storing them in plaintext.

See `flows/subject_access.py` for why: `SecretStr` parameters are stored as
asterisks when the flow is called in-process with `SecretStr` values, and a
deployment run takes them from a Prefect `Secret` block that is deleted once read.
"""
from __future__ import annotations

from prefect.blocks.system import Secret
from pydantic import SecretStr

from connectors.base import Identifiers
from vergeet.access import classify


def from_block(name: str) -> tuple[list[str], list[str]]:
    """The identifiers and names stored in a Secret block, which is deleted once read."""
    stored = Secret.load(name).get()
    Secret.delete(name)
    if not isinstance(stored, dict):
        raise ValueError(f"Secret block {name!r} must hold a JSON object with 'identifiers' and 'names'")
    return list(stored.get("identifiers", [])), list(stored.get("names", []))


def revealed(values: list[SecretStr] | None) -> list[str]:
    return [value.get_secret_value() for value in values or ()]


def person_from_parameters(identifiers: list[SecretStr] | None, names: list[SecretStr] | None,
                           identifiers_block: str | None) -> Identifiers:
    """The person a flow run is about, from `SecretStr` parameters and/or a Secret block."""
    values, name_values = from_block(identifiers_block) if identifiers_block else ([], [])
    return classify(revealed(identifiers) + values, revealed(names) + name_values)


def as_secrets(values) -> list[SecretStr]:
    """Wrap plain values for an in-process flow call, so Prefect stores only asterisks."""
    return [SecretStr(value) for value in values]
