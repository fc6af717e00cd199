"""The configuration file: one TOML table per connected system, validated with pydantic.

Loaded from `--config` or `VERGEET_CONFIG`. Secrets are references:
`env:NAME` reads an environment variable, `prefect-secret:NAME` a Prefect
Secret block; a plain string is taken literally (fine for the sandbox, not for
real tokens). Every error names the file and the key path, e.g.
`vergeet.toml: connectors.mollie.api_key: environment variable MOLLIE_API_KEY is not set`.

Ranges are checked here, so that what loads also runs: vendor URLs are https (http only to this machine, where
the sandbox and test fakes live), and pacing is never faster than the vendor allows (again except on this
machine). The pepper's strength (`pepper_problem`) is checked once it is resolved, in `vergeet.connect`.
"""
from __future__ import annotations

import importlib
import ipaddress
import logging
import math
import os
import re
import secrets
import tomllib
from datetime import date
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import PydanticCustomError

from vergeet.errors import BadInput

CONFIG_ENV = "VERGEET_CONFIG"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


#: a pepper shorter than this is refused: 32 characters of `secrets.token_urlsafe` carry 192 bits, and 128 bits
#: is what an offline guess against the ledger's pepper check must face (a 4-character pepper fell in 6 s)
PEPPER_MIN_LENGTH = 32
PEPPER_MIN_BITS = 128
#: character classes and how many characters each offers a random pepper
_CHARACTER_CLASSES = ((str.isdigit, 10), (str.islower, 26), (str.isupper, 26), (lambda c: not c.isalnum(), 33))


def new_pepper() -> str:
    """A fresh random pepper: 43 URL-safe characters, 256 bits."""
    return secrets.token_urlsafe(32)


def pepper_problem(pepper: str) -> str | None:
    """Why `pepper` is too weak to key the ledger's hashes, or None.

    At least `PEPPER_MIN_LENGTH` characters, at least 8 different ones, and at least `PEPPER_MIN_BITS` bits if
    it were random over the character classes it uses (so 32 digits, 106 bits, are too few): this refuses the
    obviously guessable, not every weak choice; `vergeet init` makes a random one.
    """
    alphabet = sum(size for belongs, size in _CHARACTER_CLASSES if any(belongs(c) for c in pepper))
    if len(pepper) < PEPPER_MIN_LENGTH:
        weakness = f"is {len(pepper)} characters long; at least {PEPPER_MIN_LENGTH} are needed"
    elif len(set(pepper)) < 8 or len(pepper) * math.log2(alphabet) < PEPPER_MIN_BITS:
        weakness = "has too few different characters to withstand a guess"
    else:
        return None
    return (f"the pepper {weakness}: it keys every hash in the ledger, and the ledger holds a check value an "
            "offline guess can test. Make a random one with `vergeet init` or `python -c \"import secrets; "
            "print(secrets.token_urlsafe(32))\"` and put it in the environment (VERGEET_PEPPER) or a Prefect "
            "Secret block, never in the file. A ledger made with a weak pepper cannot be re-keyed: see README, "
            "\"A new pepper\"")


def is_local(url: str) -> bool:
    """Whether `url` points at this machine (the sandbox, a test fake), where no vendor's limit applies."""
    host = urlsplit(url).hostname or ""
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _http_url(value: str) -> str:
    """An https URL with a host (http only to this machine: tokens travel in its headers)."""
    try:
        parts = urlsplit(value.strip())
        parts.port  # noqa: B018 - raises on a port that is no number
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise PydanticCustomError("http_url", "{value!r} is not an https:// URL", {"value": value})
    if parts.scheme == "http" and not is_local(value):
        raise PydanticCustomError("https_url", "{value!r} is plain http: the vendor's token would travel "
                                  "unencrypted; use https:// (http only to 127.0.0.1 or localhost)", {"value": value})
    return value.strip()


HttpUrl = Annotated[str, AfterValidator(_http_url)]


class StoreConfig(_Section):
    url: str = "sqlite:///vergeet.db"
    pepper: str = "env:VERGEET_PEPPER"

    def in_memory(self) -> bool:
        """Whether the ledger lives in memory only: gone, with what was done, when the command ends."""
        scheme, _, rest = self.url.partition("://")
        return scheme.split("+")[0] == "sqlite" and rest.split("?")[0] in ("", "/:memory:")


class RateConfig(_Section):
    """A client-side rate limit: `calls` requests per `period_seconds` (at most an hour: slower is no use)."""

    calls: int = Field(gt=0, le=1_000_000)
    period_seconds: float = Field(ge=0.001, le=3600)


class _ConnectorSection(_Section):
    #: the connector module that knows the vendor's limit (`DEFAULT_RATE`) and the key of the vendor's URL
    vendor: ClassVar[str]
    url_key: ClassVar[str] = "base_url"
    #: client-side pacing; default: the vendor's published limit
    rate: RateConfig | None = None
    #: how often a request is retried on connection errors, 5xx and 429 before the action fails
    retries: int = Field(default=5, ge=0, le=10)
    #: how long one call may keep retrying, in seconds (default: the connector's RETRY_BUDGET for its vendor)
    retry_budget_seconds: float | None = Field(default=None, gt=0, le=3600)

    @model_validator(mode="after")
    def _within_the_vendors_limit(self):
        """No pacing faster than the vendor allows: never more calls in the vendor's window than it counts."""
        if self.rate is None or is_local(getattr(self, self.url_key)):
            return self
        calls, period = importlib.import_module(f"connectors.{self.vendor}").DEFAULT_RATE
        if self.rate.calls * math.ceil(period / self.rate.period_seconds) > calls:
            raise PydanticCustomError(
                "too_fast", "rate: {calls} calls per {seconds} s is faster than the vendor allows ({limit} calls "
                            "per {period} s); leave rate out to pace at the vendor's limit",
                {"calls": self.rate.calls, "seconds": self.rate.period_seconds, "limit": calls, "period": period})
        return self


class MoneybirdConfig(_ConnectorSection):
    vendor = "moneybird"
    base_url: HttpUrl = "https://moneybird.com/api/v2"
    #: the number in the administration's Moneybird address (moneybird.com/123456789/...)
    administration_id: str = Field(pattern=r"^\d{1,30}$")
    token: str


class MailblueConfig(_ConnectorSection):
    vendor = "mailblue"
    #: the account's API URL (Settings > Developer) with `/api/3`; pasted without it, it is completed
    base_url: HttpUrl
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
    vendor = "mollie"
    base_url: HttpUrl = "https://api.mollie.com/v2"
    api_key: str


class GoogleCalendarConfig(_ConnectorSection):
    vendor = "google_calendar"
    url_key = "api_endpoint"
    api_endpoint: HttpUrl = "https://www.googleapis.com/calendar/v3/"
    #: the owner's calendar id (usually their address), shared with the service account's e-mail at "Make changes
    #: to events"; "primary" is the calendar of whoever signs in, so only with `subject` (vergeet.connect refuses
    #: it otherwise, naming the service account from the key file)
    calendar_id: str = "primary"
    credentials_file: str
    #: the business's own addresses on events: never taken for a client (a service account is not the owner)
    own_emails: list[str] = []
    #: the Workspace user to act as, with domain-wide delegation
    subject: str | None = None


class ZoomConfig(_ConnectorSection):
    vendor = "zoom"
    base_url: HttpUrl = "https://api.zoom.us/v2"
    #: Zoom's token endpoint (the sandbox serves its own)
    oauth_url: HttpUrl = "https://zoom.us/oauth/token"
    #: the server-to-server app's credentials (Zoom App Marketplace, the app's App Credentials page), each a secret
    #: reference
    account_id: str
    client_id: str
    client_secret: str
    #: whose cloud recordings: "me" is the user who made the app, or a user's id or address
    user_id: str = Field(default="me", min_length=1)
    #: the host's other addresses, never taken for a participant
    own_emails: list[str] = []
    #: the first month read: no recording of the account is older (default: 2013, when Zoom launched)
    history_from: date = date(2013, 1, 1)


class MailboxConfig(_Section):
    """The business's mailbox over IMAP (connectors/mailbox.py)."""

    #: the IMAP server the mail host names (for Vimexx: the mail server shown in its control panel)
    host: str = Field(min_length=1, pattern=r"^[A-Za-z0-9.:\[\]-]+$")
    port: int = Field(default=993, ge=1, le=65535)
    #: IMAP over TLS (port 993); false only to 127.0.0.1 or localhost: the password would travel unencrypted
    tls: bool = True
    username: str = Field(min_length=1)
    #: a secret reference (env:NAME or prefect-secret:NAME); a plain string is taken literally (the sandbox)
    password: str = Field(min_length=1)
    #: the folders read each night for mail past its period
    folders: list[str] = Field(default=["INBOX", "Sent"], min_length=1)
    #: the Trash folder: never scanned for deletion, but searched for access and erasure requests
    trash_folder: str = Field(default="Trash", min_length=1)
    #: the business's own addresses: never taken for a person
    own_addresses: list[str] = []
    #: folders the owner keeps whole (e.g. "Archief/Contracten"): never scanned for deletion, searched for requests
    keep_folders: list[str] = []

    @model_validator(mode="after")
    def _safe_and_consistent(self):
        if not self.tls and not is_local(f"imap://{self.host}"):
            raise PydanticCustomError("plain_imap", "tls: plain IMAP to {host} would send the password and the mail "
                                      "unencrypted; use tls = true (port 993; plain only to 127.0.0.1 or "
                                      "localhost)", {"host": self.host})
        overlap = sorted(set(self.folders) & {*self.keep_folders, self.trash_folder})
        if overlap:
            raise PydanticCustomError("mailbox_folders", "folders: {names} is also the Trash folder or one of the "
                                      "keep_folders, which are never scanned for deletion; list it in one place only",
                                      {"names": ", ".join(overlap)})
        return self


class WooCommerceConfig(_ConnectorSection):
    vendor = "woocommerce"
    #: the shop's own address (https://shop.example.nl); vergeet adds /wp-json/wc/v3
    base_url: HttpUrl
    #: a REST API key with Read/Write permission (WooCommerce, Settings, Advanced, REST API), each a secret reference
    consumer_key: str
    consumer_secret: str

    @model_validator(mode="after")
    def _within_the_vendors_limit(self):
        """WooCommerce documents no limit of its own (the shop's host may have one): any pace may be set."""
        return self


class ConnectorsConfig(_Section):
    moneybird: MoneybirdConfig | None = None
    mailblue: MailblueConfig | None = None
    mollie: MollieConfig | None = None
    google_calendar: GoogleCalendarConfig | None = None
    zoom: ZoomConfig | None = None
    mailbox: MailboxConfig | None = None
    woocommerce: WooCommerceConfig | None = None


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


def _mail_address(value: str) -> str:
    """One bare e-mail address (no display name, no line breaks: it goes into a mail header)."""
    from email.utils import parseaddr

    name, address = parseaddr(value)
    if name or address != value.strip() or not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", address):
        raise PydanticCustomError("mail_address", "'{value}' is not one bare e-mail address (no name)",
                                  {"value": value})
    return address


MailAddress = Annotated[str, AfterValidator(_mail_address)]


class NotifyConfig(_Section):
    """The owner's e-mail digest (`vergeet.notify`): failures, tasks and deadlines, sent through SMTP."""

    host: str = Field(min_length=1)
    #: default: 465 for ssl, 587 for starttls, 25 for plain
    port: int | None = Field(default=None, ge=1, le=65535)
    #: plain (no encryption) only to this machine: a local relay
    security: Literal["starttls", "ssl", "plain"] = "starttls"
    username: str | None = None
    #: a secret reference, never the password itself
    password: str | None = None
    sender: MailAddress = Field(alias="from")
    to: list[MailAddress] = Field(min_length=1)
    #: "when_needed": only a digest with something in it; "always": also one saying all is well
    send: Literal["when_needed", "always"] = "when_needed"
    #: open requests this many days (or fewer) before their deadline are in the digest
    deadline_days: int = Field(default=5, ge=0, le=28)

    @field_validator("password")
    @classmethod
    def _reference(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"(env|prefect-secret):\S+", value):
            raise PydanticCustomError("secret_reference", "give a secret reference (env:NAME or prefect-secret:NAME), "
                                      "never the password itself")
        return value

    @model_validator(mode="after")
    def _safe_delivery(self):
        if self.security == "plain" and not is_local(f"smtp://{self.host}"):
            raise PydanticCustomError("plain_smtp", "security: plain SMTP to {host} would send the digest (and the "
                                      "password) unencrypted; use starttls or ssl (plain only to 127.0.0.1 or "
                                      "localhost)", {"host": self.host})
        if (self.username is None) != (self.password is None):
            raise PydanticCustomError("smtp_login", "username and password go together (or neither, for a server "
                                      "that needs no login)")
        return self

    def smtp_port(self) -> int:
        return self.port or {"ssl": 465, "starttls": 587, "plain": 25}[self.security]


class Config(_Section):
    store: StoreConfig = StoreConfig()
    connectors: ConnectorsConfig = ConnectorsConfig()
    rules: RulesConfig = RulesConfig()
    purge: PurgeConfig = PurgeConfig()
    sync: SyncConfig = SyncConfig()
    #: the owner's e-mail digest; absent: none is sent
    notify: NotifyConfig | None = None
    #: the language of what vergeet prints and writes, unless a command's --lang says otherwise (default: the
    #: locale's, Dutch where it is Dutch, else English)
    language: Literal["nl", "en"] | None = None
    #: where the file was read from, for error messages and relative paths
    source: str = Field(default="", exclude=True)

    def resolve_secret(self, key_path: str, reference: str) -> str:
        """The value behind a secret reference; a missing secret is a `BadInput` naming file and key."""
        return resolve_secret(reference, where=f"{self.source}: {key_path}")

    def relative_path(self, value: str) -> Path:
        """A path from the config file, relative to the file's folder."""
        path = Path(value).expanduser()
        return path if path.is_absolute() or not self.source else Path(self.source).parent / path

    def ledger_url(self) -> str:
        """`[store] url` with a relative SQLite path made relative to the config file's folder, like every path
        in the config: the same ledger whatever folder a command runs in."""
        path = self.ledger_file()
        return self.store.url if path is None else self._sqlite_url().set(database=str(path)).render_as_string(
            hide_password=False)

    def rules_file(self) -> Path | None:
        """The rules file `[rules] path` names, resolved from the config's folder (None: the shipped rules)."""
        return self.relative_path(self.rules.path) if self.rules.path else None

    def ledger_file(self) -> Path | None:
        """The SQLite ledger's file, resolved from the config's folder (None for a ledger in a database server
        or in memory)."""
        url = self._sqlite_url()
        return None if url is None else self.relative_path(url.database).resolve()

    def _sqlite_url(self):
        """`[store] url` parsed when it names a SQLite file; None otherwise (a server, memory, or not a URL, which
        the ledger reports naming the key)."""
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            url = make_url(self.store.url)
        except ArgumentError:
            return None
        return url if url.get_backend_name() == "sqlite" and not self.store.in_memory() and url.database else None

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
    if error["type"] == "string_pattern_mismatch" and error["loc"][-1] == "administration_id":
        return "is not a number: use the number in the administration's Moneybird address (moneybird.com/NUMBER/)"
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


def load_config(explicit: str | None = None, given_as: str = "--config PATH") -> Config:
    """Read and validate the config file named by `--config` or `VERGEET_CONFIG`; `given_as`: how the caller's
    user names the file (a flow: its parameter)."""
    path = config_path(explicit)
    if path is None:
        raise BadInput(f"no configuration: pass {given_as} or set {CONFIG_ENV}")
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise BadInput(f"{path}: cannot read the configuration file ({exc.strerror})") from None
    return parse_config(text, str(path))


# -- vergeet init ------------------------------------------------------------------------

ENV_FILE = "vergeet.env"
CONFIG_FILE = "vergeet.toml"

_STARTER_CONFIG = """\
# vergeet configuration, written by `vergeet init`. Secrets are references, never values: `env:NAME` reads an
# environment variable (see {env}), `prefect-secret:NAME` a Prefect Secret block.
# A system without a [connectors.NAME] table is not connected: remove the "# " before the tables you use.

[store]
url = "sqlite:///{ledger}"   # any SQLAlchemy URL, e.g. postgresql://user@host/vergeet
pepper = "env:VERGEET_PEPPER"   # the key of the ledger's hashes: keep it safe, never change it

[rules]
path = "retention_rules.toml"   # your privacy statement as data: check it with `vergeet rules check`

# [connectors.moneybird]
# administration_id = "123456789"   # the number in your Moneybird address
# token = "env:MONEYBIRD_TOKEN"

# [connectors.mailblue]
# base_url = "https://ACCOUNT.api-us1.com/api/3"   # Settings > Developer > API URL, then /api/3
# token = "env:MAILBLUE_API_TOKEN"

# [connectors.mollie]
# api_key = "env:MOLLIE_API_KEY"

# [connectors.google_calendar]
# calendar_id = "info@example.nl"   # the owner's calendar, shared with the service account
# credentials_file = "env:GOOGLE_APPLICATION_CREDENTIALS"
# own_emails = ["info@example.nl"]

# [connectors.zoom]   # a Server-to-Server OAuth app in the Zoom App Marketplace (see README)
# account_id = "env:ZOOM_ACCOUNT_ID"
# client_id = "env:ZOOM_CLIENT_ID"
# client_secret = "env:ZOOM_CLIENT_SECRET"

# [connectors.woocommerce]   # WooCommerce, Settings, Advanced, REST API: a key with Read/Write permission
# base_url = "https://shop.example.nl"   # the shop's own address
# consumer_key = "env:WOOCOMMERCE_CONSUMER_KEY"
# consumer_secret = "env:WOOCOMMERCE_CONSUMER_SECRET"

# [connectors.mailbox]   # the business's mail over IMAP (for Vimexx: the mail server its control panel shows)
# host = "mail.example.nl"
# username = "info@example.nl"
# password = "env:MAILBOX_PASSWORD"
# folders = ["INBOX", "Sent"]   # read each night for mail past its period; as your mail program names them
# trash_folder = "Trash"
# keep_folders = []   # folders you keep whole, e.g. "Archief/Contracten"
# own_addresses = ["info@example.nl"]
"""

_STARTER_ENV = """\
# vergeet's secrets, written by `vergeet init`; readable by you only. Never commit or mail this file.
# Load it before a command:  set -a; . ./{env}; set +a
# Keep a copy of VERGEET_PEPPER in your password manager: the ledger cannot be read without it.
VERGEET_PEPPER={pepper}
# MONEYBIRD_TOKEN=
# MAILBLUE_API_TOKEN=
# MOLLIE_API_KEY=
# GOOGLE_APPLICATION_CREDENTIALS=/path/to/service-account.json
# ZOOM_ACCOUNT_ID=
# ZOOM_CLIENT_ID=
# ZOOM_CLIENT_SECRET=
# WOOCOMMERCE_CONSUMER_KEY=
# WOOCOMMERCE_CONSUMER_SECRET=
# MAILBOX_PASSWORD=
"""


def write_starter(directory: Path, rules_text: str) -> list[Path]:
    """`vergeet init`: a starter config, the env file with a new pepper (mode 0600) and the rules file
    (`rules_text`) in `directory`. Overwrites nothing: if any of them exists, `BadInput` and nothing is written."""
    files = {directory / CONFIG_FILE: (_STARTER_CONFIG.format(env=ENV_FILE, ledger=(directory / "vergeet.db")
                                                              .resolve()), 0o600),
             directory / ENV_FILE: (_STARTER_ENV.format(env=ENV_FILE, pepper=new_pepper()), 0o600),
             directory / "retention_rules.toml": (rules_text, 0o644)}
    existing = [str(path) for path in files if path.exists()]
    if existing:
        raise BadInput(f"{', '.join(existing)}: already there; vergeet init overwrites nothing (choose another "
                       "directory, or move the files away)")
    try:
        directory.mkdir(parents=True, exist_ok=True)
        for path, (text, mode) in files.items():
            with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode), "w", encoding="utf-8") as file:
                file.write(text)
    except OSError as exc:
        raise BadInput(f"{exc.filename or directory}: cannot write ({exc.strerror})") from None
    return list(files)
