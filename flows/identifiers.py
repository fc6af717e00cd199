"""How a flow gets a person's identifiers without Prefect storing them in plaintext.

Prefect keeps every flow run's parameters in its database as they were sent,
and shows them in the UI. A deployment's form sends what is typed into it, even
into a field typed `SecretStr` (shown as a password field, stored as typed). So
the request flows take no identifiers as parameters at all: they take the name
of a Prefect `Secret` block that holds them, read it once and delete it.
Secret block data is stored encrypted (Fernet, with the server's key:
`PREFECT_SERVER_ENCRYPTION_KEY`, else a key Prefect generates into its own
database) and masked in the UI.

To start a request from the UI: Blocks, add a Secret block, give it a name and
as its value the identifiers, one per line (or a JSON object
`{"identifiers": [...], "names": [...]}`), then run the deployment with that
block name as `identifiers_block`. In-process callers use `stash`, which does
the same in code.
"""
from __future__ import annotations

import re
import secrets
from collections.abc import Sequence
from typing import Any

from prefect.blocks.system import Secret
from pydantic import SecretStr

from connectors.base import Identifiers
from vergeet.access import classify
from vergeet.errors import BadInput

_SEPARATORS = re.compile(r"[\n,;]+")


def person_from_block(name: str) -> Identifiers:
    """The person a request is about, from the Secret block `name`, which is deleted once read.

    The block holds identifiers one per line (or comma-separated), a JSON list of them, or a JSON object with
    `identifiers` and optionally `names`. Messages never repeat the block's content.
    """
    stored = read_once(name, "identifiers_block", "the person's e-mail addresses and phone numbers, one per line")
    if isinstance(stored, str):
        values, names = _SEPARATORS.split(stored), []
    elif isinstance(stored, list):
        values, names = stored, []
    elif isinstance(stored, dict) and isinstance(stored.get("identifiers", []), list) \
            and isinstance(stored.get("names", []), list):
        values, names = stored.get("identifiers", []), stored.get("names", [])
    else:
        raise BadInput(f"identifiers_block: Secret block {name!r} holds neither identifiers one per line nor a "
                       'JSON object {"identifiers": [...], "names": [...]}; it was deleted, create it again')
    return classify([str(v) for v in values if str(v).strip()], [str(n) for n in names if str(n).strip()])


def read_once(name: str, parameter: str, holding: str) -> Any:
    """What the Secret block `name` holds (a secret string unwrapped), the block deleted once read. A missing block
    is a BadInput naming the flow's `parameter` and saying what to create it `holding`; never the content."""
    try:
        stored = Secret.load(name).get()
    except ValueError:
        raise BadInput(f"{parameter}: there is no Secret block named {name!r}; create one (Prefect UI: Blocks, add a "
                       f"Secret) holding {holding}, and run again with its name") from None
    Secret.delete(name)
    return stored.get_secret_value() if isinstance(stored, SecretStr) else stored


def stash(identifiers: Sequence[str], names: Sequence[str] = ()) -> str:
    """Put a person's identifiers in a new Secret block for one flow run; its name (random, no personal data)."""
    name = f"vergeet-request-{secrets.token_hex(8)}"
    Secret(value={"identifiers": list(identifiers), "names": list(names)}).save(name)
    return name


def discard(name: str) -> None:
    """Delete a stashed block the flow did not get to read (it failed before), so nothing stays behind."""
    try:
        Secret.delete(name)
    except ValueError:  # read and deleted by the flow, as it should be
        pass
