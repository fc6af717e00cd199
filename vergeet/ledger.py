"""The ledger: vergeet's own store of runs, plans, actions, requests, suppressions and holds.

SQLAlchemy Core on any SQLAlchemy URL (a SQLite file by default, PostgreSQL for
larger installs). The ledger holds no plaintext personal data: people are known
only by HMAC-SHA256 hashes of their normalised identifiers, keyed with a secret
pepper, next to vendor record ids, timestamps, rule ids and outcomes.

Every action is written to the ledger as planned, marked in progress *before*
the vendor call and given its outcome after it, so a crashed run can resume
without doing work twice and without losing track of what was done.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import re
import secrets
import socket
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.pool import StaticPool

__all__ = [
    "LEASE_SECONDS",
    "SCHEMA_VERSION",
    "LeaseHeld",
    "LeaseHolder",
    "LeaseLost",
    "Ledger",
    "LedgerError",
    "PlannedAction",
    "redact_url",
]

SCHEMA_VERSION = 1

IDENTIFIER_KINDS = ("email", "phone", "name", "link")  # "link": a record key another record links to (index)
RUN_KINDS = ("purge", "access", "erasure", "rectification")
RUN_FINAL_STATUSES = ("succeeded", "failed", "aborted")
ACTION_STATUSES = ("planned", "in_progress", "done", "failed")
PENDING_STATUSES = ("planned", "in_progress", "failed")
DONE_OUTCOMES = ("done", "already_gone", "not_supported", "skipped")
# Outcomes that report on a vendor call, so the intent must have been written first.
CALL_OUTCOMES = ("done", "already_gone", "failed")
REQUEST_KINDS = ("access", "erasure", "rectification", "objection")
REQUEST_STATUSES = ("received", "awaiting_approval", "approved", "executing", "completed", "failed", "rejected")
REQUEST_CLOSING_STATUSES = ("rejected", "completed")
TASK_STATUSES = ("open", "done", "not_applicable")
#: status -> the statuses a request may move to from it (staying is a note); a closed request moves no more
REQUEST_MOVES = {
    "received": frozenset({"received", "awaiting_approval", "approved", "completed", "rejected"}),
    "awaiting_approval": frozenset({"awaiting_approval", "approved", "completed", "rejected"}),
    # an approval is of the plan shown: a rerun that makes the plan anew asks again
    "approved": frozenset({"approved", "awaiting_approval", "executing", "failed"}),
    # a run killed while executing leaves the request here: the rerun plans anew and asks again
    "executing": frozenset({"executing", "completed", "failed", "awaiting_approval", "approved"}),
    "failed": frozenset({"failed", "awaiting_approval", "approved", "completed", "rejected"}),
    "completed": frozenset(),
    "rejected": frozenset(),
}

_HASH_RE = re.compile(r"[0-9a-f]{64}")
_PEPPER_CHECK_MESSAGE = b"vergeet ledger pepper check"
# Stay well below SQLite's bound-parameter limit in IN (...) queries.
_IN_CHUNK = 500


#: How long the apply lease lasts without renewal. The holder renews it every quarter of this, so a live run keeps
#: it through three missed renewals (each may wait out SQLite's 30 s busy timeout); a holder that crashed on another
#: machine blocks the next run for at most these two minutes (one that crashed on this machine is taken over at
#: once: its process is gone). Holders' clocks must agree to well within this (NTP).
LEASE_SECONDS = 120.0
LEASE_KINDS = ("purge", "erasure", "nightly-purge", "rectification")
_APPLY_LEASE = "apply"  # the name of the one lease: every applying run takes the same

log = logging.getLogger(__name__)


class LedgerError(Exception):
    """The ledger cannot be opened or used as asked (never carries personal data)."""


@dataclass(frozen=True)
class LeaseHolder:
    """Who holds the apply lease: the kind of run, the machine and process, since when, until when."""

    kind: str
    host: str
    pid: int
    since: datetime
    expires_at: datetime

    def __str__(self) -> str:
        return (f"the {self.kind} run on {self.host} (pid {self.pid}) since {self.since:%Y-%m-%d %H:%M:%S} UTC "
                f"(its lease runs until {self.expires_at:%H:%M:%S} UTC unless renewed)")


class LeaseHeld(LedgerError):
    """Another applying run holds the ledger."""

    def __init__(self, holder: LeaseHolder):
        super().__init__(f"another applying run holds the ledger: {holder}")
        self.holder = holder


class LeaseLost(LedgerError):
    """This run's lease expired and another run took it over: it must not start another action."""


@dataclass(frozen=True)
class PlannedAction:
    """One action of a run's plan, as stored in the ledger.

    `person` is an opaque key or hash for the person the record belongs to,
    never an identifier in plaintext; `reason` is free text without personal data.
    """

    system: str
    record_type: str
    record_id: str
    action: str
    fields: tuple[str, ...]
    rule_id: str
    reason: str
    person: str = ""

    def __post_init__(self) -> None:
        # Accept any sequence of field names but always store a tuple.
        object.__setattr__(self, "fields", tuple(self.fields))


class _UTCDateTime(sa.types.TypeDecorator):
    """Timezone-aware UTC datetimes on every backend.

    SQLite has no timezone type: values are stored as naive UTC and given back
    their UTC tzinfo when read.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.engine.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("ledger timestamps must be timezone-aware")
        value = value.astimezone(timezone.utc)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: sa.engine.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


metadata = sa.MetaData()

meta_table = sa.Table(
    "meta",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

runs_table = sa.Table(
    "runs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("as_of", sa.Date, nullable=False),
    sa.Column("apply", sa.Boolean, nullable=False),
    sa.Column("params_json", sa.Text, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("summary_json", sa.Text, nullable=True),
    sa.Column("started_at", _UTCDateTime, nullable=False),
    sa.Column("finished_at", _UTCDateTime, nullable=True),
    sa.Index("ix_runs_kind_status", "kind", "status"),
)

actions_table = sa.Table(
    "actions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.Integer, sa.ForeignKey("runs.id"), nullable=False),
    sa.Column("system", sa.String(64), nullable=False),
    sa.Column("record_type", sa.String(64), nullable=False),
    sa.Column("record_id", sa.String(255), nullable=False),
    sa.Column("action", sa.String(32), nullable=False),
    sa.Column("fields_json", sa.Text, nullable=False),
    sa.Column("rule_id", sa.String(128), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("person", sa.String(128), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("outcome", sa.String(16), nullable=True),
    sa.Column("detail", sa.Text, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("started_at", _UTCDateTime, nullable=True),
    sa.Column("finished_at", _UTCDateTime, nullable=True),
    sa.Index("ix_actions_run_status", "run_id", "status"),
)

requests_table = sa.Table(
    "requests",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("received", sa.Date, nullable=False),
    sa.Column("deadline", sa.Date, nullable=False),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("status_note", sa.Text, nullable=False),
    sa.Column("verified_by", sa.Text, nullable=False),
    sa.Column("scope", sa.Text, nullable=False),
    sa.Column("created_at", _UTCDateTime, nullable=False),
    sa.Column("updated_at", _UTCDateTime, nullable=False),
    sa.Column("closed_at", _UTCDateTime, nullable=True),
    sa.Column("label", sa.Text, nullable=False, server_default=""),  # the owner's name for it, no personal data
)

#: every status a request went through, appended: `requests.status` is the last of them
request_events_table = sa.Table(
    "request_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("request_id", sa.Integer, sa.ForeignKey("requests.id"), nullable=False, index=True),
    sa.Column("at", _UTCDateTime, nullable=False),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("note", sa.Text, nullable=False),
)

request_identifiers_table = sa.Table(
    "request_identifiers",
    metadata,
    sa.Column("request_id", sa.Integer, sa.ForeignKey("requests.id"), primary_key=True),
    sa.Column("hash", sa.String(64), primary_key=True),
    sa.Index("ix_request_identifiers_hash", "hash"),
)

suppressions_table = sa.Table(
    "suppressions",
    metadata,
    sa.Column("hash", sa.String(64), primary_key=True),
    sa.Column("request_id", sa.Integer, sa.ForeignKey("requests.id"), nullable=True),
    sa.Column("suppressed_at", _UTCDateTime, nullable=False),
)

holds_table = sa.Table(
    "holds",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("identifier_hash", sa.String(64), nullable=True),
    sa.Column("system", sa.String(64), nullable=True),
    sa.Column("record_type", sa.String(64), nullable=True),
    sa.Column("record_id", sa.String(255), nullable=True),
    sa.Column("until", sa.Date, nullable=True),
    sa.Column("created_at", _UTCDateTime, nullable=False),
    sa.Column("released_at", _UTCDateTime, nullable=True),
    sa.Column("released_because", sa.Text, nullable=True),
)

sync_state_table = sa.Table(
    "sync_state",
    metadata,
    sa.Column("system", sa.String(64), primary_key=True),
    sa.Column("key", sa.String(255), primary_key=True),
    sa.Column("value_json", sa.Text, nullable=False),
    sa.Column("updated_at", _UTCDateTime, nullable=False),
)

#: The identity index: every identifier hash vergeet has seen on a record, mapped to that record. Append-only in
#: spirit: a record's former identifiers (before it changed or was anonymised) stay mapped, so `find` and `erase`
#: still reach it. Hashes and record ids only, never a plaintext identifier.
identity_index_table = sa.Table(
    "identity_index",
    metadata,
    sa.Column("hash", sa.String(64), primary_key=True),
    sa.Column("system", sa.String(64), primary_key=True),
    sa.Column("record_type", sa.String(64), primary_key=True),
    sa.Column("record_id", sa.String(255), primary_key=True),
    sa.Column("first_seen", _UTCDateTime, nullable=False),
    sa.Column("last_seen", _UTCDateTime, nullable=False),
)

#: The incremental-sync cache (`vergeet.sync`): one row per record vergeet has seen in a system, its summary
#: (identifiers as keyed hashes only). One row each, so a deleted record leaves the cache in the transaction that
#: records its outcome (`Ledger.mark_outcome`) without rewriting the rest.
sync_records_table = sa.Table(
    "sync_records",
    metadata,
    sa.Column("system", sa.String(64), primary_key=True),
    sa.Column("key", sa.String(400), primary_key=True),
    sa.Column("summary_json", sa.Text, nullable=False),
)

#: The apply lease: one row while an applying run (purge, erasure, the nightly flow) holds the ledger, so that no
#: two act on the vendors at once. It names the holder's machine, process and kind of run: no personal data.
leases_table = sa.Table(
    "leases",
    metadata,
    sa.Column("name", sa.String(32), primary_key=True),
    sa.Column("token", sa.String(64), nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("host", sa.String(255), nullable=False),
    sa.Column("pid", sa.Integer, nullable=False),
    sa.Column("acquired_at", _UTCDateTime, nullable=False),
    sa.Column("renewed_at", _UTCDateTime, nullable=False),
    sa.Column("expires_at", _UTCDateTime, nullable=False),
)

#: Tasks by hand (`vergeet.tasks`): per request, each place vergeet cannot search or erase in itself (a processor
#: without a connector, a system not connected) and whether the owner has done it. `check_key` is the key of the
#: text saying what to ask whom (in the rules file or vergeet's own texts), `subject` the processor or system: no
#: personal data. Every change of status is appended to `task_events`.
request_tasks_table = sa.Table(
    "request_tasks",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("request_id", sa.Integer, sa.ForeignKey("requests.id"), nullable=False, index=True),
    sa.Column("subject", sa.String(64), nullable=False),
    sa.Column("check_key", sa.String(128), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("note", sa.Text, nullable=False),
    sa.Column("created_at", _UTCDateTime, nullable=False),
    sa.Column("done_at", _UTCDateTime, nullable=True),
    sa.UniqueConstraint("request_id", "subject", name="uq_request_tasks_subject"),
)

task_events_table = sa.Table(
    "task_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("task_id", sa.Integer, sa.ForeignKey("request_tasks.id"), nullable=False, index=True),
    sa.Column("at", _UTCDateTime, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("note", sa.Text, nullable=False),
)

#: columns added within schema version 1, as (table, column, SQL type and default): a ledger written before one
#: of them gets it when opened
_ADDED_COLUMNS = (("requests", "label", "TEXT NOT NULL DEFAULT ''"), ("holds", "released_because", "TEXT"))
#: tables added within schema version 1: a ledger written before one of them gets it when opened
_ADDED_TABLES = (identity_index_table, sync_records_table, leases_table, request_events_table,
                 request_tasks_table, task_events_table)
#: the sync_state key under which a system's whole cache was one JSON object, before `sync_records`
_CACHE_BLOB_KEY = "records"

_LEDGER_TABLES = frozenset(t.name for t in metadata.sorted_tables) - {"meta"}


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _json_default(value: Any) -> Any:
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _dumps(value: Any) -> str:
    return json.dumps(value, default=_json_default, sort_keys=True, ensure_ascii=False)


def _check_choice(name: str, value: str, allowed: Sequence[str]) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(allowed)}; got {value!r}")


def _check_hashes(hashes: Iterable[str]) -> list[str]:
    """Return the hashes deduplicated in order; refuse anything that is not a hash.

    The value is deliberately left out of the message: a string that is not a
    hash may well be a plaintext identifier.
    """
    if isinstance(hashes, str):
        raise ValueError("expected a collection of identifier hashes, got a single string")
    out: list[str] = []
    seen: set[str] = set()
    for h in hashes:
        if not isinstance(h, str) or not _HASH_RE.fullmatch(h):
            raise ValueError(
                "not an identifier hash (expected 64 lower-case hex characters from "
                "Ledger.hash_identifier); plaintext identifiers are never stored"
            )
        if h not in seen:
            seen.add(h)
            out.append(h)
    return out


def _chunks(items: Sequence[str], size: int = _IN_CHUNK) -> Iterable[Sequence[str]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def redact_url(url: str | URL) -> str:
    """Render a database URL with its password masked, for messages and logs."""
    if isinstance(url, URL):
        return url.render_as_string(hide_password=True)
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        # Unparseable: mask anything between "user:" and "@" the crude way.
        return re.sub(r"(//[^/:@]*:)[^@/]*@", r"\1***@", str(url))


class _SharedConnectionPool(StaticPool):
    """The one connection of an in-memory database, lent to one thread at a time (checkout to checkin).

    Interleaved, two threads' statements would share, and end, each other's transactions. File databases and
    PostgreSQL give each thread a connection of its own and need no such pool.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._lent = threading.RLock()

    def _do_get(self) -> Any:
        self._lent.acquire()
        try:
            return super()._do_get()
        except BaseException:
            self._lent.release()
            raise

    def _do_return_conn(self, record: Any) -> None:
        super()._do_return_conn(record)
        self._lent.release()


class _SchemaIncomplete(LedgerError):
    """The ledger's tables are there without their meta data: damaged, or being created by another process."""


def _creation_clash(exc: Exception) -> bool:
    """Whether `exc` may come from another process creating the same tables at this moment."""
    if isinstance(exc, (_SchemaIncomplete, sa_exc.IntegrityError)):
        return True
    text = str(getattr(exc, "orig", exc)).lower()
    return "already exists" in text or "locked" in text


class Ledger:
    """vergeet's store; open with a SQLAlchemy URL and the secret pepper.

    Use as a context manager or call `close()`. A new database gets its tables
    created; an existing one must carry this vergeet's schema version and have
    been created with the same pepper.
    """

    def __init__(self, url: str, pepper: bytes) -> None:
        if not isinstance(pepper, (bytes, bytearray)) or not pepper:
            raise LedgerError("the ledger pepper must be non-empty bytes")
        self._pepper = bytes(pepper)
        self._lease_token: str | None = None  # while this object holds the apply lease
        self._engine = self._create_engine(url)
        self.url = redact_url(self._engine.url)
        try:
            self._init_schema_settled()
        except LedgerError:
            self._engine.dispose()
            raise
        except sa_exc.SQLAlchemyError as exc:
            self._engine.dispose()
            raise LedgerError(f"cannot open ledger at {self.url}: {_describe(exc)}") from None

    # -- opening -----------------------------------------------------------

    @staticmethod
    def _create_engine(url: str) -> Engine:
        try:
            parsed = make_url(url)
        except Exception:
            raise LedgerError(
                f"not a valid database URL: {redact_url(url)!r} "
                "(expected e.g. sqlite:///vergeet.db or postgresql://user@host/dbname)"
            ) from None
        shown = redact_url(parsed)
        kwargs: dict[str, Any] = {}
        if parsed.get_backend_name() == "sqlite":
            database = parsed.database or ""
            if database in ("", ":memory:"):
                # One shared connection, so every thread sees the same in-memory database.
                kwargs.update(poolclass=_SharedConnectionPool, connect_args={"check_same_thread": False})
            else:
                if not database.startswith("file:"):
                    try:
                        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
                        _private_file(Path(database).expanduser(), shown)
                    except OSError as exc:
                        raise LedgerError(
                            f"cannot create the ledger file or its directory at {shown}: {exc.strerror}"
                        ) from None
                kwargs["connect_args"] = {"timeout": 30}
        try:
            engine = sa.create_engine(parsed, **kwargs)
        except (sa_exc.NoSuchModuleError, ImportError) as exc:
            raise LedgerError(
                f"cannot open ledger at {shown}: database driver not available ({exc})"
            ) from None
        except (sa_exc.ArgumentError, TypeError, ValueError) as exc:
            raise LedgerError(f"cannot open ledger at {shown}: {exc}") from None
        if engine.dialect.name == "sqlite":
            sa.event.listen(engine, "connect", _sqlite_on_connect)
        return engine

    def _pepper_check(self) -> str:
        return hmac.new(self._pepper, _PEPPER_CHECK_MESSAGE, hashlib.sha256).hexdigest()

    def _init_schema_settled(self, wait: float = 3.0) -> None:
        """`_init_schema`, waiting out another process that is creating the same new ledger at this moment (two
        flow runs started together): half-made tables or a clash on creating them are retried for `wait` s, and
        only then reported as a damaged ledger."""
        deadline = time.monotonic() + wait
        while True:
            try:
                return self._init_schema()
            except (_SchemaIncomplete, sa_exc.DBAPIError) as exc:
                if not _creation_clash(exc) or time.monotonic() >= deadline:
                    raise
                time.sleep(0.25)

    def _init_schema(self) -> None:
        with self._engine.begin() as conn:
            existing = set(sa.inspect(conn).get_table_names())
            if "meta" not in existing:
                stray = sorted(existing & _LEDGER_TABLES)
                if stray:
                    raise _SchemaIncomplete(
                        f"ledger at {self.url} has tables {', '.join(stray)} but no meta table; "
                        "it was not created by vergeet or is damaged"
                    )
                metadata.create_all(conn)
                conn.execute(
                    meta_table.insert(),
                    [
                        {"key": "schema_version", "value": str(SCHEMA_VERSION)},
                        {"key": "pepper_check", "value": self._pepper_check()},
                        {"key": "created_at", "value": _now().isoformat()},
                    ],
                )
                return
            meta = dict(conn.execute(sa.select(meta_table.c.key, meta_table.c.value)).all())
            if meta.get("schema_version") == str(SCHEMA_VERSION):
                for table, column, definition in _ADDED_COLUMNS:
                    if column not in {c["name"] for c in sa.inspect(conn).get_columns(table)}:
                        conn.execute(sa.text(f"ALTER TABLE {table} ADD COLUMN {column} {definition}"))
                for table in _ADDED_TABLES:
                    if table.name not in existing:
                        table.create(conn)
                if sync_records_table.name not in existing:
                    _move_cache_blobs(conn)
                if request_events_table.name not in existing:
                    _start_request_histories(conn)
        version = meta.get("schema_version")
        if version is None or not version.strip().isdigit():
            raise _SchemaIncomplete(
                f"ledger at {self.url} has no readable schema version; "
                "it was not created by vergeet or is damaged"
            )
        if int(version) != SCHEMA_VERSION:
            raise LedgerError(
                f"ledger at {self.url} has schema version {int(version)}, this vergeet "
                f"expects {SCHEMA_VERSION}; use the vergeet release that wrote it, "
                "or point store.url at a new ledger"
            )
        check = meta.get("pepper_check")
        if check is not None and not hmac.compare_digest(check, self._pepper_check()):
            raise LedgerError(
                f"ledger at {self.url} was created with a different pepper; its hashes "
                "(requests, suppression list, holds) would not match. Configure the "
                "original pepper, or point store.url at a new ledger"
            )

    def close(self) -> None:
        """Release the database connections."""
        self._engine.dispose()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Ledger({self.url!r})"

    # -- identifiers -------------------------------------------------------

    def hash_identifier(self, kind: str, value: str) -> str:
        """Return the keyed hash (HMAC-SHA256 hex) of one identifier.

        `kind` is "email", "phone" or "name". The caller normalises `value`
        first (lower-cased e-mail, E.164 phone): the same person must always
        give the same string, or the hashes will not match.
        """
        _check_choice("identifier kind", kind, IDENTIFIER_KINDS)
        return hmac.new(self._pepper, f"{kind}:{value}".encode(), hashlib.sha256).hexdigest()

    # -- the apply lease ---------------------------------------------------

    @contextmanager
    def lease(self, kind: str, seconds: float = LEASE_SECONDS) -> Iterator[None]:
        """Hold the apply lease for the block, renewed in the background; `LeaseHeld` names who holds it else.

        `kind` is the kind of run ("purge", "erasure", "nightly-purge"). Re-entrant for this ledger object. A lease
        that expired, or whose holder's process is gone from this machine, is taken over. While it is held,
        `mark_started` refuses to start an action once another run has taken the lease over (`LeaseLost`).
        """
        if self._lease_token is not None:
            yield
            return
        token = self._take_lease(kind, seconds)
        self._lease_token = token
        stop = threading.Event()
        beat = threading.Thread(target=self._heartbeat, args=(token, seconds, stop), name="ledger-lease", daemon=True)
        beat.start()
        try:
            yield
        finally:
            stop.set()
            beat.join()
            self._lease_token = None
            self._release_lease(token)

    def lease_holder(self) -> LeaseHolder | None:
        """Who holds the apply lease (an expired one too), or None."""
        with self._engine.connect() as conn:
            row = conn.execute(leases_table.select().where(leases_table.c.name == _APPLY_LEASE)).first()
        return None if row is None else _holder(row)

    def _take_lease(self, kind: str, seconds: float) -> str:
        _check_choice("lease kind", kind, LEASE_KINDS)
        token = secrets.token_hex(16)
        t = leases_table
        while True:  # each round inserts, finds a live holder, or sees the row change under it and looks again
            now = _now()
            row = {"name": _APPLY_LEASE, "token": token, "kind": kind, "host": socket.gethostname(),
                   "pid": os.getpid(), "acquired_at": now, "renewed_at": now,
                   "expires_at": now + timedelta(seconds=seconds)}
            try:
                with self._engine.begin() as conn:
                    conn.execute(t.insert().values(**row))
                return token
            except sa_exc.IntegrityError:
                pass
            with self._engine.begin() as conn:
                current = conn.execute(t.select().where(t.c.name == _APPLY_LEASE)).first()
                if current is None:
                    continue  # released meanwhile
                if not _abandoned(current, now):
                    raise LeaseHeld(_holder(current))
                taken = conn.execute(t.update().where(t.c.name == _APPLY_LEASE, t.c.token == current.token)
                                     .values(**row)).rowcount
            if taken:
                log.warning("took over the ledger's lease from %s: it was not renewed or its process is gone",
                            _holder(current))
                return token

    def _renew_lease(self, token: str, seconds: float) -> bool:
        """Extend this holder's lease; False when another run has taken it over."""
        t, now = leases_table, _now()
        with self._engine.begin() as conn:
            return conn.execute(t.update().where(t.c.name == _APPLY_LEASE, t.c.token == token)
                                .values(renewed_at=now, expires_at=now + timedelta(seconds=seconds))).rowcount == 1

    def _heartbeat(self, token: str, seconds: float, stop: threading.Event) -> None:
        while not stop.wait(seconds / 4):
            try:
                if not self._renew_lease(token, seconds):
                    log.warning("the ledger's lease was taken over by %s; this run stops before its next action",
                                self.lease_holder())
                    return
            except sa_exc.SQLAlchemyError as exc:  # a busy or unreachable database: try again at the next beat
                log.warning("could not renew the ledger's lease: %s", _describe(exc))

    def _release_lease(self, token: str) -> None:
        t = leases_table
        try:
            with self._engine.begin() as conn:
                conn.execute(t.delete().where(t.c.name == _APPLY_LEASE, t.c.token == token))
        except sa_exc.SQLAlchemyError as exc:  # it expires on its own; do not hide what ended the block
            log.warning("could not release the ledger's lease (it expires by itself): %s", _describe(exc))

    # -- runs --------------------------------------------------------------

    def start_run(
        self, kind: str, *, as_of: date, apply: bool, params: dict | None = None
    ) -> int:
        """Record the start of a run (one of `RUN_KINDS`) and return its id.

        `params` must be JSON-serialisable (dates are written as ISO strings)
        and must not contain personal data.
        """
        _check_choice("run kind", kind, RUN_KINDS)
        params_json = _dumps(params or {})
        with self._engine.begin() as conn:
            result = conn.execute(
                runs_table.insert().values(
                    kind=kind,
                    as_of=as_of,
                    apply=bool(apply),
                    params_json=params_json,
                    status="running",
                    started_at=_now(),
                )
            )
            return int(result.inserted_primary_key[0])

    def finish_run(self, run_id: int, status: str, summary: dict | None = None) -> None:
        """Close a running run with status "succeeded", "failed" or "aborted"."""
        _check_choice("run status", status, RUN_FINAL_STATUSES)
        summary_json = None if summary is None else _dumps(summary)
        with self._engine.begin() as conn:
            result = conn.execute(
                runs_table.update()
                .where(runs_table.c.id == run_id, runs_table.c.status == "running")
                .values(status=status, summary_json=summary_json, finished_at=_now())
            )
            if result.rowcount == 0:
                current = self._run_status(conn, run_id)
                raise LedgerError(f"run {run_id} is already finished (status {current})")

    def get_run(self, run_id: int) -> dict:
        """Return one run as a dict; LedgerError if there is no such run."""
        with self._engine.connect() as conn:
            row = conn.execute(runs_table.select().where(runs_table.c.id == run_id)).first()
        if row is None:
            raise LedgerError(f"no run {run_id} in the ledger")
        return _run_dict(row)

    def unfinished_runs(self, kind: str) -> list[dict]:
        """Return applying runs of `kind` still marked running (i.e. crashed or in flight), oldest first."""
        _check_choice("run kind", kind, RUN_KINDS)
        with self._engine.connect() as conn:
            rows = conn.execute(
                runs_table.select()
                .where(
                    runs_table.c.kind == kind,
                    runs_table.c.apply.is_(True),
                    runs_table.c.status == "running",
                )
                .order_by(runs_table.c.id)
            ).all()
        return [_run_dict(r) for r in rows]

    def list_runs(self, limit: int = 20) -> list[dict]:
        """Return the latest runs, newest first."""
        with self._engine.connect() as conn:
            rows = conn.execute(
                runs_table.select().order_by(runs_table.c.id.desc()).limit(limit)
            ).all()
        return [_run_dict(r) for r in rows]

    @staticmethod
    def _run_status(conn: Connection, run_id: int) -> str:
        status = conn.execute(
            sa.select(runs_table.c.status).where(runs_table.c.id == run_id)
        ).scalar_one_or_none()
        if status is None:
            raise LedgerError(f"no run {run_id} in the ledger")
        return status

    # -- plan and actions --------------------------------------------------

    def store_plan(self, run_id: int, actions: list[PlannedAction]) -> list[int]:
        """Store a running run's whole plan in one transaction; return the action ids in plan order.

        A run has one plan: storing a second one for the same run is refused,
        since it could make the executor do work twice.
        """
        rows = []
        for a in actions:
            if not isinstance(a, PlannedAction):
                raise TypeError(f"expected PlannedAction, got {type(a).__name__}")
            rows.append(
                {
                    "run_id": run_id,
                    "system": a.system,
                    "record_type": a.record_type,
                    "record_id": str(a.record_id),
                    "action": a.action,
                    "fields_json": json.dumps(list(a.fields)),
                    "rule_id": a.rule_id,
                    "reason": a.reason,
                    "person": a.person,
                    "status": "planned",
                    "outcome": None,
                    "detail": "",
                    "attempts": 0,
                }
            )
        with self._engine.begin() as conn:
            status = self._run_status(conn, run_id)
            if status != "running":
                raise LedgerError(f"run {run_id} is finished (status {status}); cannot store a plan")
            already = conn.execute(
                sa.select(sa.func.count())
                .select_from(actions_table)
                .where(actions_table.c.run_id == run_id)
            ).scalar_one()
            if already:
                raise LedgerError(f"run {run_id} already has a plan of {already} actions")
            if not rows:
                return []
            result = conn.execute(
                actions_table.insert().returning(actions_table.c.id, sort_by_parameter_order=True),
                rows,
            )
            return [int(r[0]) for r in result]

    def actions(self, run_id: int, statuses: tuple[str, ...] | None = None) -> list[dict]:
        """Return a run's actions in plan order, optionally only those with the given statuses."""
        query = actions_table.select().where(actions_table.c.run_id == run_id)
        if statuses is not None:
            for s in statuses:
                _check_choice("action status", s, ACTION_STATUSES)
            query = query.where(actions_table.c.status.in_(tuple(statuses)))
        with self._engine.connect() as conn:
            rows = conn.execute(query.order_by(actions_table.c.id)).all()
        return [_action_dict(r) for r in rows]

    def last_anonymised(self) -> dict[str, datetime]:
        """Record key ("system/record_type/record_id") -> when it was last anonymised successfully."""
        a = actions_table.c
        query = (sa.select(a.system, a.record_type, a.record_id, sa.func.max(a.finished_at))
                 .where(a.action == "anonymise", a.outcome == "done")
                 .group_by(a.system, a.record_type, a.record_id))
        with self._engine.connect() as conn:
            rows = conn.execute(query).all()
        return {f"{system}/{record_type}/{record_id}": finished
                for system, record_type, record_id, finished in rows}

    def handed_over(self) -> dict[tuple[str, str], tuple[datetime, str]]:
        """(record key, action) -> when that action last ended "not_supported" (the vendor's API cannot do it: a
        task for a human) and the connector's note of what to do where; no personal data."""
        a = actions_table.c
        latest = (sa.select(a.system, a.record_type, a.record_id, a.action, sa.func.max(a.id).label("id"))
                  .where(a.outcome == "not_supported")
                  .group_by(a.system, a.record_type, a.record_id, a.action).subquery())
        query = (sa.select(a.system, a.record_type, a.record_id, a.action, a.finished_at, a.detail)
                 .join(latest, a.id == latest.c.id))
        with self._engine.connect() as conn:
            rows = conn.execute(query).all()
        return {(f"{system}/{record_type}/{record_id}", action): (finished, detail or "")
                for system, record_type, record_id, action, finished, detail in rows}

    def pending_actions(self, run_id: int) -> list[dict]:
        """Return the actions still to do on resume: planned, in progress or failed.

        An action left "in_progress" by a crash may or may not have reached the
        vendor; it is done again, which is safe because deletes and
        anonymisations are idempotent.
        """
        return self.actions(run_id, PENDING_STATUSES)

    def mark_started(self, action_id: int) -> None:
        """Write the intent before the vendor call: status "in_progress", started_at, attempts + 1."""
        t, lease = actions_table, leases_table
        holding = [] if self._lease_token is None else [  # fenced: only while this run's lease is not taken over
            sa.exists().where(lease.c.name == _APPLY_LEASE, lease.c.token == self._lease_token)]
        with self._engine.begin() as conn:
            result = conn.execute(
                t.update()
                .where(t.c.id == action_id, t.c.status.in_(PENDING_STATUSES), *holding)
                .values(
                    status="in_progress",
                    started_at=_now(),
                    finished_at=None,
                    outcome=None,
                    detail="",
                    attempts=t.c.attempts + 1,
                )
            )
            if result.rowcount == 0:
                status = self._action_status(conn, action_id)
                if holding and status in PENDING_STATUSES:
                    raise LeaseLost(f"this run's lease on the ledger was taken over by {self.lease_holder()}; "
                                    f"action {action_id} was not started")
                raise LedgerError(f"action {action_id} is already {status}; not starting it again")

    def mark_outcome(self, action_id: int, outcome: str, detail: str = "", *, forget: bool = False) -> None:
        """Write the outcome after the vendor call; with `forget`, the record leaves the sync cache in the same
        transaction (a deleted record: a rerun after a crash must not find it there and delete it again).

        "done", "already_gone", "not_supported" and "skipped" make the action
        done; "failed" makes it failed (to be retried on resume). Outcomes that
        report a vendor call ("done", "already_gone", "failed") require the
        action to have been marked started; "skipped" and "not_supported" may
        be written for any action not yet done. `detail` must not contain
        personal data.
        """
        if outcome == "failed":
            status = "failed"
        elif outcome in DONE_OUTCOMES:
            status = "done"
        else:
            raise ValueError(
                f"outcome must be one of {', '.join(DONE_OUTCOMES + ('failed',))}; got {outcome!r}"
            )
        allowed_from = ("in_progress",) if outcome in CALL_OUTCOMES else PENDING_STATUSES
        t = actions_table
        with self._engine.begin() as conn:
            result = conn.execute(
                t.update()
                .where(t.c.id == action_id, t.c.status.in_(allowed_from))
                .values(status=status, outcome=outcome, detail=detail, finished_at=_now())
            )
            if result.rowcount == 0:
                current = self._action_status(conn, action_id)
                raise LedgerError(
                    f"action {action_id} is {current}; outcome {outcome!r} needs it to be "
                    f"{' or '.join(allowed_from)}"
                )
            if forget:
                system, record_type, record_id = conn.execute(
                    sa.select(t.c.system, t.c.record_type, t.c.record_id).where(t.c.id == action_id)).one()
                c = sync_records_table.c
                conn.execute(sync_records_table.delete().where(
                    c.system == system, c.key == f"{system}/{record_type}/{record_id}"))

    @staticmethod
    def _action_status(conn: Connection, action_id: int) -> str:
        status = conn.execute(
            sa.select(actions_table.c.status).where(actions_table.c.id == action_id)
        ).scalar_one_or_none()
        if status is None:
            raise LedgerError(f"no action {action_id} in the ledger")
        return status

    # -- request register --------------------------------------------------

    def register_request(
        self,
        kind: str,
        identifier_hashes: list[str],
        *,
        received: date,
        verified_by: str = "",
        scope: str = "all",
        answer_within: timedelta = timedelta(weeks=4),
        label: str = "",
    ) -> int:
        """Register a subject request and return its id; deadline = received + answer_within.

        `kind` is "access", "erasure", "rectification" or "objection". The
        default period of 4 weeks is the privacy statement's answer deadline.
        `verified_by` notes *that* and how identity was verified; never a copy
        of the ID itself. `label` is the owner's name for the request (no
        personal data). It starts "received", with that as its first event.
        """
        _check_choice("request kind", kind, REQUEST_KINDS)
        hashes = _check_hashes(identifier_hashes)
        if not hashes:
            raise ValueError("a request needs at least one identifier hash")
        now = _now()
        with self._engine.begin() as conn:
            result = conn.execute(
                requests_table.insert().values(
                    kind=kind,
                    received=received,
                    deadline=received + answer_within,
                    status="received",
                    status_note="",
                    verified_by=verified_by,
                    scope=scope,
                    created_at=now,
                    updated_at=now,
                    closed_at=None,
                    label=label,
                )
            )
            request_id = int(result.inserted_primary_key[0])
            conn.execute(request_events_table.insert().values(request_id=request_id, at=now, status="received",
                                                              note=""))
            conn.execute(
                request_identifiers_table.insert(),
                [{"request_id": request_id, "hash": h} for h in hashes],
            )
        return request_id

    def get_request(self, request_id: int) -> dict:
        """Return one request with its identifier hashes; LedgerError if there is none."""
        with self._engine.connect() as conn:
            row = conn.execute(
                requests_table.select().where(requests_table.c.id == request_id)
            ).first()
            if row is None:
                raise LedgerError(f"no request {request_id} in the ledger")
            hashes = self._request_hashes(conn, [request_id])
        return _request_dict(row, hashes.get(request_id, []))

    def list_requests(self, open_only: bool = True) -> list[dict]:
        """Return requests (by default only those not closed), earliest deadline first."""
        query = requests_table.select()
        if open_only:
            query = query.where(requests_table.c.closed_at.is_(None))
        query = query.order_by(requests_table.c.deadline, requests_table.c.id)
        with self._engine.connect() as conn:
            rows = conn.execute(query).all()
            hashes = self._request_hashes(conn, [r.id for r in rows]) if rows else {}
        return [_request_dict(r, hashes.get(r.id, [])) for r in rows]

    def set_request_status(self, request_id: int, status: str, note: str = "") -> None:
        """Move a request to `status` with a note, appended to its history; "rejected" and "completed" close it.

        Only the moves in `REQUEST_MOVES` are allowed (a closed request moves no more): anything else is a
        `LedgerError` naming both statuses, and changes nothing.
        """
        _check_choice("request status", status, REQUEST_STATUSES)
        now = _now()
        r = requests_table
        with self._engine.begin() as conn:
            current = conn.execute(sa.select(r.c.status).where(r.c.id == request_id)).scalar()
            if current is None:
                raise LedgerError(f"no request {request_id} in the ledger")
            if status not in REQUEST_MOVES[current]:
                raise LedgerError(f"request {request_id} is {current}; it cannot become {status}")
            moved = conn.execute(r.update().where(r.c.id == request_id, r.c.status == current).values(
                status=status, status_note=note, updated_at=now,
                closed_at=now if status in REQUEST_CLOSING_STATUSES else None))
            if moved.rowcount == 0:  # another process moved it in between
                raise LedgerError(f"request {request_id} changed while it was being updated; try again")
            conn.execute(request_events_table.insert().values(request_id=request_id, at=now, status=status,
                                                              note=note))

    def request_history(self, request_id: int) -> list[dict]:
        """Every status the request went through, oldest first: at, status, note."""
        e = request_events_table
        self.get_request(request_id)  # LedgerError when there is none
        with self._engine.connect() as conn:
            rows = conn.execute(sa.select(e.c.at, e.c.status, e.c.note).where(e.c.request_id == request_id)
                                .order_by(e.c.id)).all()
        return [{"at": row.at, "status": row.status, "note": row.note} for row in rows]

    def open_request_hashes(self) -> set[str]:
        """Return the identifier hashes of every request not yet closed."""
        ri, r = request_identifiers_table, requests_table
        with self._engine.connect() as conn:
            rows = conn.execute(
                sa.select(ri.c.hash)
                .join(r, r.c.id == ri.c.request_id)
                .where(r.c.closed_at.is_(None))
                .distinct()
            ).scalars()
            return set(rows)

    @staticmethod
    def _request_hashes(conn: Connection, request_ids: list[int]) -> dict[int, list[str]]:
        ri = request_identifiers_table
        out: dict[int, list[str]] = {}
        for chunk in _chunks(request_ids):
            for request_id, h in conn.execute(
                sa.select(ri.c.request_id, ri.c.hash)
                .where(ri.c.request_id.in_(chunk))
                .order_by(ri.c.request_id, ri.c.hash)
            ):
                out.setdefault(request_id, []).append(h)
        return out

    # -- tasks by hand -----------------------------------------------------

    def add_tasks(self, request_id: int, checks: Iterable[tuple[str, str]]) -> None:
        """Open a task for each (subject, check) the request has none for yet; those it has stay as they are.

        `subject` is a processor's or system's key, `check` the key of the text saying what to do: no personal data.
        """
        checks = list(checks)
        t = request_tasks_table
        for attempt in (1, 2):  # a second process adding the same tasks at this moment wins; then nothing is left
            try:
                with self._engine.begin() as conn:
                    if conn.execute(sa.select(requests_table.c.id).where(requests_table.c.id == request_id)
                                    ).first() is None:
                        raise LedgerError(f"no request {request_id} in the ledger")
                    have = set(conn.execute(sa.select(t.c.subject).where(t.c.request_id == request_id)).scalars())
                    now = _now()
                    for subject, check in checks:
                        if subject in have:
                            continue
                        have.add(subject)
                        task_id = conn.execute(t.insert().values(
                            request_id=request_id, subject=subject, check_key=check, status="open", note="",
                            created_at=now, done_at=None)).inserted_primary_key[0]
                        conn.execute(task_events_table.insert().values(task_id=task_id, at=now, status="open",
                                                                       note=""))
                return
            except sa_exc.IntegrityError:
                if attempt == 2:
                    raise

    def tasks(self, *, request_id: int | None = None, open_only: bool = False) -> list[dict]:
        """Tasks by hand with their request's kind, deadline and status: earliest deadline first."""
        t, r = request_tasks_table, requests_table
        query = (sa.select(t, r.c.kind.label("request_kind"), r.c.deadline, r.c.status.label("request_status"))
                 .join(r, r.c.id == t.c.request_id).order_by(r.c.deadline, t.c.request_id, t.c.id))
        if request_id is not None:
            query = query.where(t.c.request_id == request_id)
        if open_only:
            query = query.where(t.c.status == "open")
        with self._engine.connect() as conn:
            return [dict(row._mapping) for row in conn.execute(query)]

    def set_task_status(self, task_id: int, status: str, note: str = "") -> None:
        """Mark a task done or not applicable (with the reason in `note`), or open it again; appended to its
        history. Marking it as it already is, or not applicable without a reason, is a `LedgerError`."""
        _check_choice("task status", status, TASK_STATUSES)
        if status == "not_applicable" and not note.strip():
            raise LedgerError(f"task {task_id}: not applicable needs the reason (no personal data)")
        t, now = request_tasks_table, _now()
        with self._engine.begin() as conn:
            current = conn.execute(sa.select(t.c.status).where(t.c.id == task_id)).scalar()
            if current is None:
                raise LedgerError(f"no task {task_id} in the ledger")
            if current == status:
                raise LedgerError(f"task {task_id} is {current.replace('_', ' ')} already")
            moved = conn.execute(t.update().where(t.c.id == task_id, t.c.status == current).values(
                status=status, note=note, done_at=None if status == "open" else now))
            if moved.rowcount == 0:  # another process moved it in between
                raise LedgerError(f"task {task_id} changed while it was being updated; try again")
            conn.execute(task_events_table.insert().values(task_id=task_id, at=now, status=status, note=note))

    def task_history(self, task_id: int) -> list[dict]:
        """Every status the task went through, oldest first: at, status, note."""
        e = task_events_table
        with self._engine.connect() as conn:
            rows = conn.execute(sa.select(e.c.at, e.c.status, e.c.note).where(e.c.task_id == task_id)
                                .order_by(e.c.id)).all()
        if not rows:
            raise LedgerError(f"no task {task_id} in the ledger")
        return [{"at": row.at, "status": row.status, "note": row.note} for row in rows]

    # -- suppression list --------------------------------------------------

    def suppress(self, identifier_hashes: list[str], request_id: int | None) -> None:
        """Put identifier hashes on the suppression list; hashes already on it keep their first entry."""
        hashes = _check_hashes(identifier_hashes)
        if not hashes:
            return
        now = _now()
        rows = [{"hash": h, "request_id": request_id, "suppressed_at": now} for h in hashes]
        with self._engine.begin() as conn:
            _insert_ignoring_existing(conn, suppressions_table, rows, ["hash"])

    def suppressed(self, hashes: set[str] | list[str]) -> set[str]:
        """Return those of the given hashes that are on the suppression list."""
        wanted = _check_hashes(hashes)
        found: set[str] = set()
        s = suppressions_table
        with self._engine.connect() as conn:
            for chunk in _chunks(wanted):
                found.update(conn.execute(sa.select(s.c.hash).where(s.c.hash.in_(chunk))).scalars())
        return found

    def suppressed_since(self) -> dict[str, datetime]:
        """Every hash on the suppression list, with when it was put there."""
        s = suppressions_table
        with self._engine.connect() as conn:
            return dict(conn.execute(sa.select(s.c.hash, s.c.suppressed_at)).all())

    def all_suppressed(self) -> set[str]:
        """Return every hash on the suppression list."""
        with self._engine.connect() as conn:
            return set(conn.execute(sa.select(suppressions_table.c.hash)).scalars())

    # -- legal holds -------------------------------------------------------

    def add_hold(
        self,
        *,
        reason: str,
        identifier_hash: str | None = None,
        record: tuple[str, str, str] | None = None,
        until: date | None = None,
    ) -> int:
        """Place a legal hold on a person (identifier hash) or on one record; return its id.

        Give exactly one of `identifier_hash` and `record` (system,
        record_type, record_id). The hold is active up to and including
        `until`, or until released if `until` is None. `reason` must not
        contain personal data.
        """
        if (identifier_hash is None) == (record is None):
            raise ValueError("give exactly one of identifier_hash and record")
        if not reason.strip():
            raise ValueError("a legal hold needs a reason")
        values: dict[str, Any] = {"reason": reason, "until": until, "created_at": _now()}
        if identifier_hash is not None:
            values["identifier_hash"] = _check_hashes([identifier_hash])[0]
        else:
            assert record is not None
            if len(record) != 3:
                raise ValueError("record must be (system, record_type, record_id)")
            system, record_type, record_id = record
            values.update(system=system, record_type=record_type, record_id=str(record_id))
        with self._engine.begin() as conn:
            result = conn.execute(holds_table.insert().values(**values))
            return int(result.inserted_primary_key[0])

    def release_hold(self, hold_id: int, reason: str = "") -> None:
        """Release a legal hold, for `reason` (no personal data); releasing it again changes nothing."""
        h = holds_table
        with self._engine.begin() as conn:
            exists = conn.execute(sa.select(h.c.id).where(h.c.id == hold_id)).first()
            if exists is None:
                raise LedgerError(f"no legal hold {hold_id} in the ledger")
            conn.execute(
                h.update()
                .where(h.c.id == hold_id, h.c.released_at.is_(None))
                .values(released_at=_now(), released_because=reason)
            )

    def holds(self) -> list[dict]:
        """Every legal hold ever placed, released and expired ones too, oldest first."""
        with self._engine.connect() as conn:
            rows = conn.execute(holds_table.select().order_by(holds_table.c.id)).all()
        return [_hold_dict(r) for r in rows]

    def active_holds(self, as_of: date) -> list[dict]:
        """Return the holds not released and not expired on `as_of` (`until` >= as_of or no end)."""
        h = holds_table
        with self._engine.connect() as conn:
            rows = conn.execute(
                h.select()
                .where(
                    h.c.released_at.is_(None),
                    sa.or_(h.c.until.is_(None), h.c.until >= as_of),
                )
                .order_by(h.c.id)
            ).all()
        return [_hold_dict(r) for r in rows]

    # -- identity index ----------------------------------------------------

    def index_identifiers(self, entries: Iterable[tuple[str, str]], *, seen_at: datetime | None = None) -> int:
        """Map identifier hashes to record keys ("system/record_type/record_id"), in one bulk upsert.

        `entries` are (hash, record key) pairs. A pair already mapped keeps its `first_seen` and gets
        `last_seen` = `seen_at` (default now); nothing is ever removed, so a record's former identifiers keep
        finding it. Returns the number of distinct pairs written.
        """
        pairs = list(dict.fromkeys((h, key) for h, key in entries))
        if not pairs:
            return 0
        _check_hashes([h for h, _ in pairs])
        now = seen_at or _now()
        rows = []
        for h, key in pairs:
            system, record_type, record_id = _record_key(key)
            rows.append({"hash": h, "system": system, "record_type": record_type, "record_id": record_id,
                         "first_seen": now, "last_seen": now})
        t = identity_index_table
        with self._engine.begin() as conn:
            insert = _conflict_insert(conn)
            if insert is not None:
                statement = insert(t)
                statement = statement.on_conflict_do_update(
                    index_elements=["hash", "system", "record_type", "record_id"],
                    set_={"last_seen": statement.excluded.last_seen})
                for start in range(0, len(rows), _IN_CHUNK):
                    conn.execute(statement, rows[start:start + _IN_CHUNK])
            else:  # other backends: update what is there, insert the rest
                for row in rows:
                    result = conn.execute(
                        t.update().where(t.c.hash == row["hash"], t.c.system == row["system"],
                                         t.c.record_type == row["record_type"], t.c.record_id == row["record_id"])
                        .values(last_seen=now))
                    if result.rowcount == 0:
                        conn.execute(t.insert().values(**row))
        return len(rows)

    def indexed_records(self, hashes: Iterable[str]) -> dict[str, set[str]]:
        """The record keys each of these identifier hashes was ever seen on (one query per 500 hashes)."""
        wanted = _check_hashes(list(hashes))
        out: dict[str, set[str]] = {}
        t = identity_index_table
        with self._engine.connect() as conn:
            for chunk in _chunks(wanted):
                for h, system, record_type, record_id in conn.execute(
                        sa.select(t.c.hash, t.c.system, t.c.record_type, t.c.record_id).where(t.c.hash.in_(chunk))):
                    out.setdefault(h, set()).add(f"{system}/{record_type}/{record_id}")
        return out

    # -- incremental-sync cache ------------------------------------------

    def cached_records(self, system: str) -> dict[str, Any]:
        """One system's sync cache: record key -> summary."""
        t = sync_records_table
        with self._engine.connect() as conn:
            rows = conn.execute(sa.select(t.c.key, t.c.summary_json).where(t.c.system == system))
            return {key: json.loads(value) for key, value in rows}

    def update_cached_records(self, system: str, put: Mapping[str, Any], drop: Iterable[str] = ()) -> None:
        """Write the summaries in `put` (new or changed) and remove the records in `drop`, in one transaction."""
        t = sync_records_table
        replaced = list(dict.fromkeys([*drop, *put]))
        for key in replaced:
            if _record_key(key)[0] != system:
                raise ValueError(f"record key of another system than {system}")
        with self._engine.begin() as conn:
            for chunk in _chunks(replaced):
                conn.execute(t.delete().where(t.c.system == system, t.c.key.in_(chunk)))
            if put:
                conn.execute(t.insert(), [{"system": system, "key": key, "summary_json": _dumps(summary)}
                                          for key, summary in put.items()])

    def get_sync_state(self, system: str, key: str) -> Any | None:
        """Return the stored sync value (e.g. a cursor or sync token) or None."""
        s = sync_state_table
        with self._engine.connect() as conn:
            value = conn.execute(
                sa.select(s.c.value_json).where(s.c.system == system, s.c.key == key)
            ).scalar_one_or_none()
        return None if value is None else json.loads(value)

    def set_sync_state(self, system: str, key: str, value: Any) -> None:
        """Store a JSON-serialisable sync value, replacing any previous one."""
        s = sync_state_table
        row = {"system": system, "key": key, "value_json": _dumps(value), "updated_at": _now()}
        with self._engine.begin() as conn:
            result = conn.execute(
                s.update()
                .where(s.c.system == system, s.c.key == key)
                .values(value_json=row["value_json"], updated_at=row["updated_at"])
            )
            if result.rowcount == 0:
                conn.execute(s.insert().values(**row))

    # -- accepted retention rules (vergeet.rules.accept_rules) --------------

    def accepted_rules(self) -> str | None:
        """The canonical text of the rules the last applying purge ran with (no personal data), or None."""
        with self._engine.connect() as conn:
            return conn.execute(sa.select(meta_table.c.value).where(meta_table.c.key == "accepted_rules")
                                ).scalar_one_or_none()

    def set_accepted_rules(self, text: str) -> None:
        """Record `text` (`vergeet.rules.canonical`) as the accepted rules."""
        with self._engine.begin() as conn:
            t = meta_table
            if not conn.execute(t.update().where(t.c.key == "accepted_rules").values(value=text)).rowcount:
                conn.execute(t.insert().values(key="accepted_rules", value=text))


def _private_file(path: Path, shown: str) -> None:
    """The SQLite file, readable by its owner only (SQLite gives its journals the same mode): created so, and
    tightened when found wider. Its keyed hashes and pepper check are what an offline guess of the pepper needs,
    and no one but vergeet has reason to read it; a warning alone would go unread under a nightly schedule."""
    if os.name != "posix":
        return
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        return
    except FileExistsError:
        pass
    mode = path.stat().st_mode & 0o777
    if not mode & 0o077:
        return
    try:
        path.chmod(mode & 0o700)
    except OSError as exc:  # another user's file
        log.warning("ledger at %s is readable by others (mode %03o) and could not be made private (%s): "
                    "chmod 600 it", shown, mode, exc.strerror)
    else:
        log.warning("ledger at %s was readable by others (mode %03o); it is now readable by its owner only (%03o)",
                    shown, mode, mode & 0o700)


def _holder(row: sa.Row) -> LeaseHolder:
    return LeaseHolder(row.kind, row.host, row.pid, row.acquired_at, row.expires_at)


def _abandoned(lease: sa.Row, now: datetime) -> bool:
    """A lease whose holder stopped renewing it, or whose process is gone from this machine."""
    return lease.expires_at <= now or (lease.host == socket.gethostname() and not _process_alive(lease.pid))


def _process_alive(pid: int) -> bool:
    """Whether a process of this machine exists; assumed so where that cannot be asked (not POSIX)."""
    if os.name != "posix":
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def _start_request_histories(conn: Connection) -> None:
    """A ledger from before `request_events`: the old "open" becomes "received", and each request's history
    starts with its status as it stands (dated when last changed)."""
    r = requests_table
    conn.execute(r.update().where(r.c.status == "open").values(status="received"))
    rows = conn.execute(sa.select(r.c.id, r.c.updated_at, r.c.status, r.c.status_note)).all()
    if rows:
        conn.execute(request_events_table.insert(), [
            {"request_id": row.id, "at": row.updated_at, "status": row.status, "note": row.status_note}
            for row in rows])


def _move_cache_blobs(conn: Connection) -> None:
    """A ledger from before `sync_records`: each system's cache, one JSON object in sync_state, becomes rows."""
    s = sync_state_table
    for system, value in conn.execute(sa.select(s.c.system, s.c.value_json).where(s.c.key == _CACHE_BLOB_KEY)).all():
        rows = [{"system": system, "key": key, "summary_json": _dumps(summary)}
                for key, summary in json.loads(value).items()]
        if rows:
            conn.execute(sync_records_table.insert(), rows)
    conn.execute(s.delete().where(s.c.key == _CACHE_BLOB_KEY))


def _record_key(key: str) -> tuple[str, str, str]:
    parts = str(key).split("/", 2)
    if len(parts) != 3 or not all(parts):
        raise ValueError("a record key is system/record_type/record_id")
    return parts[0], parts[1], parts[2]


def _sqlite_on_connect(dbapi_connection: Any, connection_record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _describe(exc: sa_exc.SQLAlchemyError) -> str:
    """A short message for a database error, without SQL text or bound parameters."""
    orig = getattr(exc, "orig", None)
    if orig is not None:
        return f"{type(orig).__name__}: {orig}"
    return f"{type(exc).__name__}: {exc}"


def _conflict_insert(conn: Connection) -> Any:
    """The dialect's INSERT that takes ON CONFLICT (SQLite, PostgreSQL), or None where SQLAlchemy has none."""
    if conn.dialect.name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    elif conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        return None
    return insert


def _insert_ignoring_existing(
    conn: Connection, table: sa.Table, rows: list[dict], key: list[str]
) -> None:
    insert = _conflict_insert(conn)
    if insert is not None:
        conn.execute(insert(table).on_conflict_do_nothing(index_elements=key), rows)
        return
    # Other backends: skip rows whose key is already present.
    (col,) = key
    keys = [r[col] for r in rows]
    existing: set = set()
    for chunk in _chunks(keys):
        existing.update(conn.execute(sa.select(table.c[col]).where(table.c[col].in_(chunk))).scalars())
    new = [r for r in rows if r[col] not in existing]
    if new:
        conn.execute(table.insert(), new)


def _run_dict(row: sa.Row) -> dict:
    return {
        "id": row.id,
        "kind": row.kind,
        "as_of": row.as_of,
        "apply": bool(row.apply),
        "params": json.loads(row.params_json),
        "status": row.status,
        "summary": None if row.summary_json is None else json.loads(row.summary_json),
        "started_at": row.started_at,
        "finished_at": row.finished_at,
    }


def _action_dict(row: sa.Row) -> dict:
    return {
        "id": row.id,
        "run_id": row.run_id,
        "system": row.system,
        "record_type": row.record_type,
        "record_id": row.record_id,
        "action": row.action,
        "fields": tuple(json.loads(row.fields_json)),
        "rule_id": row.rule_id,
        "reason": row.reason,
        "person": row.person,
        "status": row.status,
        "outcome": row.outcome,
        "detail": row.detail,
        "attempts": row.attempts,
        "started_at": row.started_at,
        "finished_at": row.finished_at,
    }


def _request_dict(row: sa.Row, hashes: list[str]) -> dict:
    return {
        "id": row.id,
        "kind": row.kind,
        "identifier_hashes": hashes,
        "received": row.received,
        "deadline": row.deadline,
        "status": row.status,
        "status_note": row.status_note,
        "verified_by": row.verified_by,
        "scope": row.scope,
        "created_at": row.created_at,
        "updated_at": row.updated_at,
        "closed_at": row.closed_at,
        "label": row.label,
    }


def _hold_dict(row: sa.Row) -> dict:
    record = None
    if row.system is not None:
        record = (row.system, row.record_type, row.record_id)
    return {
        "id": row.id,
        "reason": row.reason,
        "identifier_hash": row.identifier_hash,
        "record": record,
        "until": row.until,
        "created_at": row.created_at,
        "released_at": row.released_at,
        "released_because": row.released_because,
    }
