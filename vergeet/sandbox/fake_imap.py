"""The sandbox mailbox: a real IMAP server (pymap, its in-memory dict backend) on a free 127.0.0.1 port.

pymap is a maintained pure-Python IMAP4rev1 server (RFC 3501) with UIDPLUS (RFC 4315, `UID EXPUNGE`) and MOVE
(RFC 6851): it speaks every command the mailbox connector sends (LOGIN, LIST, SELECT/EXAMINE, UID SEARCH,
UID FETCH of header fields, INTERNALDATE and FLAGS, UID STORE, UID EXPUNGE), answers BAD to a malformed one,
NO to a wrong password, and keeps a UIDVALIDITY per folder that changes when a folder is made anew. It is
served here in a thread of its own, without TLS (loopback only), and filled over IMAP itself (APPEND with
flags and INTERNALDATE), as a mail program would, so the same seeding works against any server.

The mail comes from the population (`Person.mailbox`): per message a From, To and Subject (RFC 2047-encoded
where not ASCII), a Date header unless the message is one of those without one, and \\Flagged where the owner
flagged it. Besides, the owner's own mail: a note to self, and a message the owner sent to the owner's second
address, which no person is in.
"""
from __future__ import annotations

import asyncio
import re
import threading
from argparse import Namespace
from datetime import datetime, timedelta, timezone
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any

from imapclient import IMAPClient
from proxyprotocol.reader import ProxyProtocolReader
from pymap.backend.dict import DictBackend
from pymap.imap import IMAPServer

from connectors.mailbox import without_delay
from vergeet.sandbox.population import Mail, Person, Population

def comparable_id(system: str, record_id: str) -> str:
    """`record_id` as two sandboxes with the same population give it: a mailbox message's id holds its folder's
    UIDVALIDITY, which each IMAP server picks anew (FOLDER/UIDVALIDITY/UID -> FOLDER/UID)."""
    return re.sub(r"/\d+/(\d+)$", r"/\1", record_id) if system == "mailbox" else record_id


OWNER_ADDRESS = "info@jessworks.nl"
OWNER_OTHER = "jessica@jessworks.nl"
OWNER_NAME = "Jessica van Diggelen"
USERNAME = OWNER_ADDRESS
PASSWORD = "sandbox-imap-password"
FOLDERS = ("INBOX", "Sent")
KEEP_FOLDER = "Archief/Contracten"
TRASH = "Trash"


def message_bytes(sender: Address, to: Address, subject: str, sent_at: datetime | None) -> bytes:
    """An RFC 5322 message; headers outside ASCII RFC 2047-encoded; no Date header when `sent_at` is None."""
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = sender, to, subject
    if sent_at is not None:
        message["Date"] = format_datetime(sent_at)
    message.set_content("(sandbox message)\n")
    return message.as_bytes()


def person_message(person: Person, mail: Mail) -> bytes:
    client = Address(person.name, addr_spec=(person.mailbox.email if person.mailbox else person.email))
    owner = Address(OWNER_NAME, addr_spec=OWNER_ADDRESS)
    sender, to = (client, owner) if mail.incoming else (owner, client)
    return message_bytes(sender, to, mail.subject, mail.sent_at if mail.dated else None)


class ImapFake:
    """An IMAP server holding the population's mail; `start()` serves it, `stop()` ends it."""

    name = "mailbox"

    def __init__(self, population: Population, *, username: str = USERNAME, password: str = PASSWORD):
        self.population = population
        self.username, self.password = username, password
        self.own_addresses = (OWNER_ADDRESS, OWNER_OTHER)
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.base_events.Server | None = None
        self._ready = threading.Event()
        self._failure: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="fake-imap", daemon=True)

    # -- serving ---------------------------------------------------------------------------
    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # reported by start(), which waits for the server
            self._failure = exc
            self._ready.set()

    async def _serve(self) -> None:
        args = Namespace(demo_data=False, demo_user=self.username, demo_password=self.password, passlib_cfg=None,
                         host=None, port=0, tls=False, cert=None, key=None, proxy_protocol=None,
                         inherited_sockets=None, debug=False)
        # plain LOGIN without TLS is refused by default (RFC 9051 6.2.3's advice); the sandbox lives on loopback
        backend, config = await DictBackend.init(args, secure_auth=False, reject_dnsbl=False,
                                                 invalid_user_sleep=0.0, bad_command_limit=None)
        config.apply_context()
        serve = ProxyProtocolReader(config.proxy_protocol).get_callback(IMAPServer(backend.login, config))
        self._loop = asyncio.get_running_loop()
        self._server = await asyncio.start_server(serve, host="127.0.0.1", port=0)
        self.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        async with self._server:
            try:
                await self._server.serve_forever()
            except asyncio.CancelledError:
                pass

    def start(self) -> ImapFake:
        self._thread.start()
        if not self._ready.wait(10) or self._failure is not None:
            raise RuntimeError(f"sandbox IMAP server did not start: {self._failure!r}")
        self.seed()
        return self

    def stop(self) -> None:
        if self._loop is not None and self._server is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._server.close)
            self._thread.join(timeout=10)

    def __enter__(self) -> ImapFake:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # -- the mail ----------------------------------------------------------------------------
    def client(self) -> IMAPClient:
        """A logged-in client, for seeding and for tests that change the mailbox as a mail program would."""
        client = without_delay(IMAPClient("127.0.0.1", port=self.port, ssl=False))
        client.normalise_times = False
        client.login(self.username, self.password)
        return client

    def seed(self) -> None:
        """Fill the folders: every person's mail, and the owner's own."""
        with self.client() as client:
            for folder in (*FOLDERS[1:], KEEP_FOLDER, TRASH):
                client.create_folder(folder)
            for person in self.population.people:
                for mail in person.mailbox.messages if person.mailbox else ():
                    self.append(client, mail.folder, person_message(person, mail), mail.sent_at, mail.flagged)
            long_ago = datetime.combine(self.population.today, datetime.min.time(), timezone.utc) - timedelta(days=900)
            owner = Address(OWNER_NAME, addr_spec=OWNER_ADDRESS)
            self.append(client, "INBOX", message_bytes(owner, owner, "Notitie voor mezelf", long_ago), long_ago)
            self.append(client, "Sent", message_bytes(owner, Address("", addr_spec=OWNER_OTHER), "Back-up",
                                                      long_ago), long_ago)

    @staticmethod
    def append(client: IMAPClient, folder: str, message: bytes, received: datetime, flagged: bool = False) -> int:
        """APPEND one message (INTERNALDATE `received`); its UID from the APPENDUID answer (RFC 4315 3)."""
        answer = client.append(folder, message, flags=[b"\\Flagged"] if flagged else [], msg_time=received)
        return int(answer.split(b"APPENDUID ", 1)[1].split(b"]", 1)[0].split()[1])

    def renumber(self, folder: str) -> None:
        """Make `folder` anew with the same messages, as a server restored from a backup does: every message
        gets a new UID under a new UIDVALIDITY (RFC 9051 2.3.1.1)."""
        with self.client() as client:
            client.select_folder(folder, readonly=True)
            uids = client.search(["ALL"])
            kept = client.fetch(uids, [b"BODY.PEEK[]", b"INTERNALDATE", b"FLAGS"]) if uids else {}
            client.select_folder("INBOX", readonly=True)  # leave the folder before deleting it
            client.delete_folder(folder)
            client.create_folder(folder)
            for uid in sorted(kept):
                data = kept[uid]
                client.append(folder, data[b"BODY[]"], flags=[f for f in data[b"FLAGS"] if f != b"\\Recent"],
                              msg_time=data[b"INTERNALDATE"])

    def config_table(self) -> str:
        """The `[connectors.mailbox]` table that reaches this server."""
        folders = ", ".join(f'"{f}"' for f in FOLDERS)
        own = ", ".join(f'"{a}"' for a in self.own_addresses)
        return (f'[connectors.mailbox]\nhost = "127.0.0.1"\nport = {self.port}\n'
                f'tls = false   # the sandbox server is on this machine; a real one is reached over TLS (993)\n'
                f'username = "{self.username}"\npassword = "{self.password}"\nfolders = [{folders}]\n'
                f'trash_folder = "{TRASH}"\nown_addresses = [{own}]\nkeep_folders = ["{KEEP_FOLDER}"]\n')
