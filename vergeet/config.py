"""The configuration file: one TOML table per connected system, validated with pydantic.

Loaded from `--config` or `VERGEET_CONFIG`. Secrets are references:
`env:NAME` reads an environment variable, `prefect-secret:NAME` a Prefect
Secret block; a plain string is taken literally (fine for the sandbox, not for
real tokens). Every error names the file and the key path, e.g.
`vergeet.toml: connectors.mollie.api_key: environment variable MOLLIE_API_KEY is not set`.
"""
from __future__ import annotations

import logging
import os
import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_core import PydanticCustomError

from vergeet.errors import BadInput

CONFIG_ENV = "VERGEET_CONFIG"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StoreConfig(_Section):
    url: str = "sqlite:///vergeet.db"
    pepper: str = "env:VERGEET_PEPPER"


class RateConfig(_Section):
    """A client-side rate limit: `calls` requests per `period_seconds`."""

    calls: int = Field(gt=0)
    period_seconds: float = Field(gt=0)


class _ConnectorSection(_Section):
    #: client-side pacing; default: the vendor's published limit
    rate: RateConfig | None = None
    #: how often a request is retried on connection errors, 5xx and 429 before the action fails
    retries: int = Field(default=5, ge=0, le=10)


class MoneybirdConfig(_ConnectorSection):
    base_url: str = "https://moneybird.com/api/v2"
    administration_id: str
    token: str


class MailblueConfig(_ConnectorSection):
    #: the account's API URL (Settings > Developer) with `/api/3`; pasted without it, it is completed
    base_url: str
    token: str

    @field_validator("base_url")
    @classmethod
    def _api_path(cls, value: str) -> str:
        from connectors.mailblue import api_base_url  # the vendor's URL rule lives with its connector

        try:
            completed = api_base_url(value)
        except ValueError as exc:
            raise PydanticCustomError("mailblue_base_url", str(exc)) from None
        if completed.rstrip("/") != value.strip().rstrip("/"):
            logging.getLogger(__name__).warning(
                "connectors.mailblue.base_url has no /api/3 (the API URL from Settings > Developer is shown "
                "without it); using %s", completed)
        return completed


class MollieConfig(_ConnectorSection):
    base_url: str = "https://api.mollie.com/v2"
    api_key: str


class GoogleCalendarConfig(_ConnectorSection):
    api_endpoint: str = "https://www.googleapis.com/calendar/v3/"
    #: the owner's calendar id (usually their address), shared with the service account's e-mail at "Make changes
    #: to events"; "primary" is the calendar of whoever signs in, so only with `subject` (vergeet.connect refuses
    #: it otherwise, naming the service account from the key file)
    calendar_id: str = "primary"
    credentials_file: str
    #: the business's own addresses on events: never taken for a client (a service account is not the owner)
    own_emails: list[str] = []
    #: the Workspace user to act as, with domain-wide delegation
    subject: str | None = None


class ConnectorsConfig(_Section):
    moneybird: MoneybirdConfig | None = None
    mailblue: MailblueConfig | None = None
    mollie: MollieConfig | None = None
    google_calendar: GoogleCalendarConfig | None = None


class RulesConfig(_Section):
    path: str | None = None


class PurgeConfig(_Section):
    """Safety limits of the nightly purge."""

    #: the largest share of one system's records a plan may delete without --force
    max_delete_share: float = Field(default=0.2, gt=0, le=1)


class SyncConfig(_Section):
    """Incremental nightly reading (`vergeet.sync`)."""

    #: days between full reads of a system, which catch what an incremental read cannot see (deletions a vendor
    #: does not report, Mollie's changes beyond its newest pages)
    full_every_days: int = Field(default=7, ge=1, le=90)


class Config(_Section):
    store: StoreConfig = StoreConfig()
    connectors: ConnectorsConfig = ConnectorsConfig()
    rules: RulesConfig = RulesConfig()
    purge: PurgeConfig = PurgeConfig()
    sync: SyncConfig = SyncConfig()
    #: where the file was read from, for error messages and relative paths
    source: str = Field(default="", exclude=True)

    def resolve_secret(self, key_path: str, reference: str) -> str:
        """The value behind a secret reference; a missing secret is a `BadInput` naming file and key."""
        return resolve_secret(reference, where=f"{self.source}: {key_path}")

    def relative_path(self, value: str) -> Path:
        """A path from the config file, relative to the file's folder."""
        path = Path(value).expanduser()
        return path if path.is_absolute() or not self.source else Path(self.source).parent / path


def resolve_secret(reference: str, *, where: str) -> str:
    """Resolve `env:NAME`, `prefect-secret:NAME` or a literal value."""
    if reference.startswith("env:"):
        name = reference[4:]
        value = os.environ.get(name)
        if not value:
            raise BadInput(f"{where}: environment variable {name} is not set")
        return value
    if reference.startswith("prefect-secret:"):
        name = reference[len("prefect-secret:"):]
        # Imported here so that only a config that asks for a Secret block pays for Prefect.
        from prefect.blocks.system import Secret

        try:
            return str(Secret.load(name).get())
        except Exception as exc:  # Prefect raises ValueError or its own errors; all mean "not usable"
            raise BadInput(f"{where}: Prefect Secret block {name!r} could not be loaded ({type(exc).__name__})") from None
    if not reference:
        raise BadInput(f"{where}: empty value")
    return reference


def _key_path(loc: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in loc)


def _message(error: dict[str, Any]) -> str:
    if error["type"] == "extra_forbidden":
        return "unknown key"
    if error["type"] == "missing":
        return "required key is missing"
    return error["msg"]


def parse_config(text: str, source: str) -> Config:
    """Validate a config file's text; `source` names it in errors."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise BadInput(f"{source}: not valid TOML: {exc}") from None
    try:
        config = Config.model_validate({**data, "source": source})
    except ValidationError as exc:
        lines = [f"{source}: {_key_path(e['loc'])}: {_message(e)}" for e in exc.errors()]
        raise BadInput("\n".join(lines)) from None
    if "source" in data:
        raise BadInput(f"{source}: source: unknown key")
    return config


def config_path(explicit: str | None) -> Path | None:
    """The config file to read: `--config`, else `VERGEET_CONFIG`, else none."""
    chosen = explicit or os.environ.get(CONFIG_ENV)
    return Path(chosen) if chosen else None


def load_config(explicit: str | None = None) -> Config:
    """Read and validate the config file named by `--config` or `VERGEET_CONFIG`."""
    path = config_path(explicit)
    if path is None:
        raise BadInput(f"no configuration: pass --config PATH or set {CONFIG_ENV}")
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise BadInput(f"{path}: cannot read the configuration file ({exc.strerror})") from None
    return parse_config(text, str(path))
