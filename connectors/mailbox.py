"""The business's mailbox over IMAP (any provider; the statement's is Vimexx), through `imapclient`.

The one connector that speaks IMAP instead of HTTP. Facts it relies on (RFC 9051, IMAP4rev2, and RFC 3501,
IMAP4rev1, which servers such as Dovecot still speak; RFC 4315 UIDPLUS; RFC 6851 MOVE):

- A message is addressed by its UID within one folder, and a UID means that message only while the folder's
  UIDVALIDITY is unchanged (RFC 9051 2.3.1.1): a server that renumbers a folder gives it a new UIDVALIDITY.
  So a record id is `folder/UIDVALIDITY/UID`, and an id whose UIDVALIDITY the folder no longer has is an error
  (the message may still be there under a new UID), never "already gone".
- What is read: the header fields Date, From, To, Cc, Reply-To and Subject (`BODY.PEEK[HEADER.FIELDS ...]`, which
  sets no \\Seen flag, RFC 9051 6.4.5), INTERNALDATE and FLAGS; never the body. Headers are decoded by Python's
  `email` package (RFC 5322 addresses, RFC 2047 encoded words), not taken from ENVELOPE, whose decoding differs
  per server. A message is dated by its Date header; one without a (readable) Date by INTERNALDATE, the time the
  server received it (RFC 9051 2.3.3).
- Deleting: `UID STORE +FLAGS.SILENT (\\Deleted)`, then `UID EXPUNGE` of that UID only (RFC 4315 2.1; in IMAP4rev2
  itself, RFC 9051 6.4.9), in the message's own folder, then a `UID SEARCH UID n` that must find nothing. This is
  the folder's real delete. Moving to Trash first (UID MOVE, RFC 6851) would only add a step: a message in Trash
  is still held, so the promise needs it expunged there too, and between the two steps a crash would leave it in
  Trash under a UID the ledger does not know. A plain EXPUNGE is never sent: it would also remove every message
  the owner's mail program marked \\Deleted, so a server without UIDPLUS gets no delete at all (an error that
  says so).
- Flagged messages (\\Flagged, "flagged to keep") and messages in the owner's `keep_folders` are left alone
  (`Record.left_alone`): no rule acts on them and they date nobody. The owner's judgement that a mail is still
  needed for a contract or a dispute is not a fact vergeet can check per person, as the rule exceptions are; a
  rule exception for it would have to be one for every system. The nightly read covers `folders` only; the
  Trash folder, Junk and the keep folders are not read for deletion. Access and erasure searches cover `folders`,
  the keep folders and Trash (mail in Trash is still held: an erasure expunges it there).
- `SEARCH FROM/TO/CC` match substrings (RFC 9051 6.4.4), so every hit is checked on its decoded addresses,
  or for a name on its decoded display names (the owner's excluded). A message with one correspondent carries
  their display name as its name: a hint for namesakes, as names are everywhere, never a link.
- The nightly read is a full read: IMAP offers no "changed since" without CONDSTORE (RFC 7162), which not every
  host offers, and a full read is one FETCH of a few header fields per 500 messages per folder.

Folder names come from the config (the owner names them), so they may stand in record ids and errors; the
username, addresses and subjects never do.
"""
from __future__ import annotations

import email
import email.policy
import email.utils
import imaplib
import socket
import ssl
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any

from imapclient import IMAPClient
from imapclient.exceptions import LoginError

from connectors.base import (ActionResult, Changes, FieldChange, Identifiers, Known, Outcome, Record,
                             RecordRef)
from connectors.http import VendorAuthError, VendorBadResponse, VendorRejected, VendorUnavailable
from connectors.matching import email_key, name_key

SYSTEM = "mailbox"
MESSAGE = "message"
#: a message is deleted whole: nothing in it is anonymised
RECORD_FIELDS: dict[str, frozenset[str]] = {MESSAGE: frozenset()}
HEADER_FIELDS = b"BODY.PEEK[HEADER.FIELDS (DATE FROM TO CC REPLY-TO SUBJECT)]"
#: how the answer to `HEADER_FIELDS` begins: without PEEK, and with the field list as the server writes it (pymap
#: sorts it, Dovecot echoes it)
HEADER_KEY = b"BODY[HEADER.FIELDS ("
ADDRESS_HEADERS = (("from", "From"), ("to", "To"), ("cc", "Cc"), ("reply_to", "Reply-To"))
BATCH = 500  # UIDs per FETCH: a short command line, few round trips
FLAGGED = b"\\Flagged"
FLAGGED_TO_KEEP = "flagged to keep (\\Flagged in the mailbox): the owner keeps it"
IN_KEEP_FOLDER = "in a folder the owner keeps (connectors.mailbox.keep_folders)"
TIMEOUT = 30.0


def message_id(folder: str, uidvalidity: int, uid: int) -> str:
    """The record id of one message: its folder, the folder's UIDVALIDITY and its UID."""
    return f"{folder}/{uidvalidity}/{uid}"


def parse_id(ref: RecordRef) -> tuple[str, int, int]:
    """(folder, UIDVALIDITY, UID) of a message ref; ValueError for anything else."""
    folder, _, rest = ref.record_id.rpartition("/")
    folder, _, validity = folder.rpartition("/")
    if ref.system != SYSTEM or ref.record_type != MESSAGE or not folder or not validity.isdigit() \
            or not rest.isdigit() or int(rest) == 0:
        raise ValueError(f"not a {SYSTEM} message: {ref}")
    return folder, int(validity), int(rest)


def without_delay(client: IMAPClient) -> IMAPClient:
    """`client` with Nagle's algorithm off. Many IMAP exchanges are a short line, then a wait for the server's
    answer or "+" before the rest: with Nagle and delayed ACKs each stalls about 40 ms (an APPEND took 50 ms
    on 127.0.0.1; with this, 8 ms)."""
    client.socket().setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return client


class MailboxConnector:
    """The messages in the configured folders of one IMAP mailbox."""

    system = SYSTEM

    def __init__(self, *, host: str, username: str, password: str, port: int = 993, tls: bool = True,
                 folders: Sequence[str] = ("INBOX", "Sent"), trash_folder: str = "Trash",
                 own_addresses: Sequence[str] = (), keep_folders: Sequence[str] = (), timeout: float = TIMEOUT,
                 ssl_context: ssl.SSLContext | None = None):
        self.host, self.port, self.tls, self.timeout = host, port, tls, timeout
        self._username, self._password = username, password
        self.folders, self.trash_folder = tuple(folders), trash_folder
        self.keep_folders = tuple(keep_folders)
        self.own = frozenset(email_key(a) for a in own_addresses)
        self._ssl_context = ssl_context
        self._client: IMAPClient | None = None
        self._lock = threading.RLock()
        self.where = f"imap://{host}:{port}"

    # -- the connection ------------------------------------------------------------------
    def _connect(self) -> IMAPClient:
        try:
            client = IMAPClient(self.host, port=self.port, ssl=self.tls, ssl_context=self._ssl_context,
                                timeout=self.timeout)
            client.normalise_times = False  # INTERNALDATE with its zone, not as local naive time
            without_delay(client)
        except (OSError, imaplib.IMAP4.error):
            raise VendorUnavailable(SYSTEM, "CONNECT", self.where, None, "the IMAP server cannot be reached; check "
                                    "connectors.mailbox.host, port and tls") from None
        try:
            client.login(self._username, self._password)
        except LoginError:
            self._drop(client)
            raise VendorAuthError(SYSTEM, "LOGIN", self.where, None, "login refused; check "
                                  "connectors.mailbox.username and password") from None
        except (OSError, imaplib.IMAP4.error):
            self._drop(client)
            raise VendorUnavailable(SYSTEM, "LOGIN", self.where, None, "the IMAP server closed the connection "
                                    "during login; try again later") from None
        return client

    @staticmethod
    def _drop(client: IMAPClient) -> None:
        try:
            client.shutdown()
        except (OSError, imaplib.IMAP4.error):
            pass

    @contextmanager
    def _session(self) -> Iterator[IMAPClient]:
        """The logged-in connection (opened on first use, kept); a dropped connection is one error line and is
        opened anew next time."""
        with self._lock:
            if self._client is None:
                self._client = self._connect()
            try:
                yield self._client
            except (OSError, imaplib.IMAP4.abort):
                self._drop(self._client)
                self._client = None
                raise VendorUnavailable(SYSTEM, "IMAP", self.where, None, "the IMAP server dropped the connection; "
                                        "try again later") from None
            except imaplib.IMAP4.error as exc:
                # a NO or BAD to a command vergeet sent as documented; the server's text may quote what was sent
                raise VendorRejected(SYSTEM, _command(exc), self.where, None, "the IMAP server refused a command "
                                     "(NO or BAD)") from None

    def close(self) -> None:
        """Log out, if connected."""
        with self._lock:
            if self._client is not None:
                try:
                    self._client.logout()
                except (OSError, imaplib.IMAP4.error):
                    pass
                self._client = None

    def _select(self, client: IMAPClient, folder: str, *, readonly: bool) -> int:
        """Select `folder`; its UIDVALIDITY. A folder the server does not have is an error naming the setting."""
        try:
            info = client.select_folder(folder, readonly=readonly)
        except imaplib.IMAP4.abort:
            raise
        except imaplib.IMAP4.error:
            raise VendorRejected(SYSTEM, "SELECT", f"{self.where}/{folder}", None,
                                 f"the server has no folder {folder!r}; check connectors.mailbox.folders, "
                                 "keep_folders and trash_folder (names as your mail program shows them, "
                                 "with the server's separator, e.g. INBOX.Sent)") from None
        return int(info[b"UIDVALIDITY"])

    # -- reading ----------------------------------------------------------------------------
    def records(self, since: datetime | None = None) -> Iterator[Record]:
        """Every message in `folders` (a full read: see the module's notes), dated by its own Date."""
        with self._session() as client:
            self._check_folders(client)
            for folder in self.folders:
                validity = self._select(client, folder, readonly=True)
                yield from self._fetch(client, folder, validity, client.search(["ALL"]))

    def changes(self, cursor: Mapping[str, Any] | None, known: Known) -> Changes:
        """A full read every night: IMAP tells no "changed since" without CONDSTORE (module notes)."""
        return Changes(list(self.records()), cursor={}, full=True)

    def _check_folders(self, client: IMAPClient) -> None:
        """The folders to scan exist and are no Trash or Junk folder (RFC 6154 special use, where listed)."""
        listed = {name: flags for flags, _, name in client.list_folders()}
        for folder in self.folders:
            if folder not in listed:
                self._select(client, folder, readonly=True)  # the error naming the setting
            if {b"\\Trash", b"\\Junk"} & set(listed[folder]):
                raise VendorRejected(SYSTEM, "LIST", f"{self.where}/{folder}", None,
                                     f"{folder!r} is the server's Trash or Junk folder, which is not scanned for "
                                     "deletion; remove it from connectors.mailbox.folders")

    def _fetch(self, client: IMAPClient, folder: str, validity: int, uids: Sequence[int]) -> Iterator[Record]:
        uids = sorted(uids)
        for start in range(0, len(uids), BATCH):
            answers = client.fetch(uids[start:start + BATCH], [HEADER_FIELDS, b"INTERNALDATE", b"FLAGS"])
            for uid in sorted(answers):
                yield self._record(folder, validity, uid, answers[uid])

    def _record(self, folder: str, validity: int, uid: int, data: Mapping[bytes, Any]) -> Record:
        raw = next((value for key, value in data.items() if key.upper().startswith(HEADER_KEY)), None)
        received = data.get(b"INTERNALDATE")
        if not isinstance(raw, bytes) or not isinstance(received, datetime):
            raise VendorBadResponse(SYSTEM, "UID FETCH", f"{self.where}/{folder}", None,
                                    "the answer lacks the header fields or INTERNALDATE asked for")
        headers = email.message_from_bytes(raw, policy=email.policy.default)
        people = {key: _addresses(headers, name) for key, name in ADDRESS_HEADERS}
        dated = _header_date(headers) or _utc(received)
        flagged = FLAGGED in data.get(b"FLAGS", ())
        emails = tuple(dict.fromkeys(key for entries in people.values() for entry in entries
                                     if (key := email_key(entry["email"])) and key not in self.own))
        left_alone = FLAGGED_TO_KEEP if flagged else IN_KEEP_FOLDER if folder in self.keep_folders else None
        # one correspondent: their display name is the message's name (a namesake hint, never a link)
        name = next((entry["name"] for entries in people.values() for entry in entries
                     if entry["name"] and email_key(entry["email"]) in emails), None) if len(emails) == 1 else None
        return Record(
            system=SYSTEM, record_type=MESSAGE, record_id=message_id(folder, validity, uid), emails=emails,
            first_name=name,
            fields={"date": dated.isoformat(), "subject": _text(headers, "Subject"), **people, "folder": folder,
                    "flagged": flagged},
            created_at=dated, last_activity_at=None if left_alone else dated, shared=len(emails) > 1,
            left_alone=left_alone)

    def read(self, ref: RecordRef, parent: RecordRef | None = None) -> Record | None:
        """One message by its id (UID FETCH); None when its UID is gone from the folder."""
        folder, validity, uid = parse_id(ref)
        with self._session() as client:
            self._same_validity(folder, validity, self._select(client, folder, readonly=True))
            return next(self._fetch(client, folder, validity, client.search(["UID", str(uid)])), None)

    def _same_validity(self, folder: str, expected: int, actual: int) -> None:
        if expected != actual:
            raise VendorRejected(SYSTEM, "SELECT", f"{self.where}/{folder}", None,
                                 f"folder {folder!r} was renumbered (UIDVALIDITY {expected} is now {actual}): its "
                                 "messages have new ids, so this one is not addressed; the next read lists them anew")

    # -- searching ---------------------------------------------------------------------------
    def search(self, identifiers: Identifiers) -> Iterator[Record]:
        """Messages from or to any of the addresses or display names (SEARCH FROM/TO/CC, and Reply-To) in
        `folders`, the keep folders and Trash, each hit checked on its decoded addresses and names. Phones are not
        searched: they stand in message bodies, which vergeet does not read."""
        addresses = {email_key(e) for e in identifiers.emails} - {""}
        names = {name_key(n): _name_term(n) for n in identifiers.names if name_key(n)}
        if not addresses and not names:
            return
        with self._session() as client:
            for folder in dict.fromkeys((*self.folders, *self.keep_folders, self.trash_folder)):
                validity = self._select(client, folder, readonly=True)
                hits: set[int] = set()
                for term in sorted(addresses | set(names.values())):
                    charset = None if term.isascii() else "UTF-8"
                    hits.update(client.search(["OR", "FROM", term, "OR", "TO", term, "OR", "CC", term,
                                               "HEADER", "Reply-To", term], charset=charset))
                for record in self._fetch(client, folder, validity, sorted(hits)):
                    if addresses & set(record.emails) or names.keys() & self._correspondent_names(record):
                        yield record

    def _correspondent_names(self, record: Record) -> set[str]:
        """The compared display names on a message's addresses other than the owner's."""
        return {name_key(entry["name"]) for key, _ in ADDRESS_HEADERS for entry in record.fields[key]
                if entry["name"] and email_key(entry["email"]) not in self.own}

    # -- acting --------------------------------------------------------------------------------
    def delete(self, ref: RecordRef) -> ActionResult:
        """Expunge one message from its folder (\\Deleted + UID EXPUNGE of that UID), confirmed by a search
        that no longer finds it; a UID that is gone is ALREADY_GONE."""
        folder, validity, uid = parse_id(ref)
        with self._session() as client:
            self._same_validity(folder, validity, self._select(client, folder, readonly=False))
            if not client.search(["UID", str(uid)]):
                return ActionResult(Outcome.ALREADY_GONE, f"message {ref.record_id} is no longer in its folder")
            if not (client.has_capability("UIDPLUS") or client.has_capability("IMAP4rev2")):
                raise VendorRejected(SYSTEM, "UID EXPUNGE", self.where, None,
                                     "the server offers no UIDPLUS (RFC 4315), so one message cannot be expunged "
                                     "without also expunging every message marked deleted; delete it by hand")
            client.add_flags([uid], [b"\\Deleted"], silent=True)
            client.uid_expunge([uid])
            if client.search(["UID", str(uid)]):
                raise VendorBadResponse(SYSTEM, "UID EXPUNGE", f"{self.where}/{folder}", None,
                                        "the message is still in its folder after the expunge was answered; nothing "
                                        "is recorded as deleted")
        return ActionResult(Outcome.DONE, f"message {ref.record_id} expunged (UID EXPUNGE; confirmed: the folder no "
                                          "longer has its UID)")

    def anonymise(self, ref: RecordRef, fields: Sequence[str]) -> ActionResult:
        """A message cannot be changed in IMAP (RFC 9051 2.3: messages are immutable), only deleted."""
        raise ValueError(f"{SYSTEM} messages cannot be anonymised, only deleted: {ref}")

    def plan_correction(self, record: Record, new: Mapping[str, str]) -> list[FieldChange]:
        """A received or sent mail is a record of what was written then: the addresses in it stay."""
        held = {"email": ", ".join(record.emails) or None}
        return [FieldChange(record.ref, name, name, held[name], value, refused="vendor_read_only")
                for name, value in new.items() if held.get(name)]

    def correct(self, changes: Sequence[FieldChange]) -> ActionResult:
        return ActionResult(Outcome.NOT_SUPPORTED, "mail messages cannot be changed (IMAP messages are immutable)")


def _command(exc: imaplib.IMAP4.error) -> str:
    """The IMAP command a refusal answered, from imaplib's message ("SELECT command error: ..."), else "IMAP"."""
    word = str(exc).split(" command error", 1)[0]
    return word if word.isalpha() and word.isupper() else "IMAP"


def _addresses(headers: email.message.EmailMessage, name: str) -> list[dict[str, str]]:
    """The addresses of one header field (RFC 5322 groups included), display names decoded (RFC 2047)."""
    try:
        field = headers[name]
        found = [] if field is None else list(field.addresses)
    except (ValueError, TypeError, AttributeError, IndexError):
        found = [{"name": "", "email": a} for _, a in email.utils.getaddresses(headers.get_all(name, []))]
        return [a for a in found if a["email"]]
    return [{"name": a.display_name, "email": a.addr_spec} for a in found if a.addr_spec and "@" in a.addr_spec]


def _name_term(name: str) -> str:
    """What to SEARCH for a display name: the name itself, or for one with letters beyond ASCII its longest
    ASCII word. Servers compare non-ASCII letters case-sensitively or not at all (pymap matches with re.ASCII,
    so "Á" is not "á") and some do not decode RFC 2047 encoded words; an ASCII word still stands in a
    Q-encoded name. Hits are compared on the whole decoded name afterwards."""
    words = name.split()
    ascii_words = [word for word in words if word.isascii() and any(c.isalpha() for c in word)]
    return " ".join(words) if name.isascii() or not ascii_words else max(ascii_words, key=len)


def _text(headers: email.message.EmailMessage, name: str) -> str:
    try:
        return str(headers[name] or "")
    except (ValueError, TypeError, IndexError):
        return ""


def _header_date(headers: email.message.EmailMessage) -> datetime | None:
    """The Date header in UTC; None when it is missing or unreadable."""
    try:
        value = headers["Date"]
        moment = getattr(value, "datetime", None) or (email.utils.parsedate_to_datetime(str(value)) if value else None)
    except (ValueError, TypeError, IndexError):
        return None
    return None if moment is None else _utc(moment)


def _utc(moment: datetime) -> datetime:
    """A naive time (a "-0000" zone: unknown, RFC 5322 3.3) is read as UTC."""
    return (moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)).astimezone(timezone.utc)


def web_link(record: Record) -> str | None:
    """Mail has no address of its own in a web app: the owner finds it by folder, date and subject."""
    return None


#: labels (nl, en) of what a person's access report shows of a message (never the body)
FIELD_LABELS: dict[str, tuple[str, str]] = {
    "date": ("Datum", "Date"), "subject": ("Onderwerp", "Subject"),
    "from[].email": ("Van", "From"), "to[].email": ("Aan {n}", "To {n}"), "cc[].email": ("Cc {n}", "Cc {n}"),
    "folder": ("Map", "Folder"),
}
VALUE_LABELS: dict[str, dict[str, tuple[str, str]]] = {}
