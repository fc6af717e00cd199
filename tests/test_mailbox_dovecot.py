"""The mailbox connector against a real Dovecot, where one is installed (Debian: dovecot-imapd); skipped otherwise.

The test starts Dovecot itself, in the foreground (`-F`), on a free 127.0.0.1 port, with its own configuration in
a temporary folder: a passwd-file user, Maildir storage there, no TLS (loopback only). It fills the mailbox over
IMAP as the sandbox fills its pymap server, and runs the sandbox's checks again (tests/test_mailbox.py), plus what
only a real server shows: Dovecot's own special-use Trash folder, and its answer to a wrong password.

Nothing may hang: every IMAP connection has a timeout, the whole test has a deadline (SIGALRM), and Dovecot is
stopped (and killed, if it does not stop) whatever happens.
"""
from __future__ import annotations

import grp
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from imapclient import IMAPClient

import test_mailbox
from connectors.http import VendorAuthError, VendorRejected
from test_mailbox import by_subject, connector, population
from vergeet.sandbox.fake_imap import OWNER_ADDRESS, ImapFake

DOVECOT = shutil.which("dovecot") or next((p for p in ("/usr/sbin/dovecot",) if os.access(p, os.X_OK)), None)
pytestmark = pytest.mark.skipif(DOVECOT is None, reason="Dovecot is not installed (Debian/Ubuntu: apt-get install "
                                "dovecot-imapd); tests/test_mailbox.py runs the same checks against the sandbox")
PASSWORD = "dovecot-test-password"
TIMEOUT = 10.0  # seconds, per IMAP connection and per socket read
START = 20.0  # seconds for Dovecot to greet
DEADLINE = 120  # seconds for one whole test, Dovecot's start and the filling included

#: the sandbox checks that need nothing but a filled mailbox (not the one that stops its server)
SAME_CHECKS = ("test_records_are_dated_identified_and_flagged_mail_is_left_alone",
               "test_ids_are_folder_uidvalidity_uid_and_a_renumbered_folder_is_no_longer_addressed",
               "test_delete_expunges_that_message_only_and_is_idempotent",
               "test_search_finds_the_persons_mail_everywhere_it_is_held",
               "test_search_by_name_matches_the_display_name_whole_and_names_a_one_correspondent_message",
               "test_the_server_refuses_a_wrong_request_shape")


class DovecotMailbox(ImapFake):
    """The population's mail in a running Dovecot: ImapFake's filling and helpers, not its server."""

    def __init__(self, port: int):
        super().__init__(population(), username=OWNER_ADDRESS, password=PASSWORD)
        self.port = port

    def client(self) -> IMAPClient:
        client = IMAPClient("127.0.0.1", port=self.port, ssl=False, timeout=TIMEOUT)
        client.normalise_times = False
        client.login(self.username, self.password)
        return client


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def users() -> tuple[str, str, str]:
    """(internal, login, mail) user. As root, those the Debian package creates (dovecot, dovenull; the mail
    is the test's own, so the dovecot user may own it); as anyone else, that user for all three."""
    if os.geteuid() == 0:
        return "dovecot", "dovenull", "dovecot"
    me = pwd.getpwuid(os.geteuid()).pw_name
    return me, me, me


def configuration(folder: Path, port: int) -> str:
    internal, login, mail = users()
    uid, gid = pwd.getpwnam(mail).pw_uid, pwd.getpwnam(mail).pw_gid
    return f"""
base_dir = {folder}/run
state_dir = {folder}/state
log_path = {folder}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
login_trusted_networks = 127.0.0.1/32
auth_mechanisms = plain
default_internal_user = {internal}
default_internal_group = {grp.getgrgid(pwd.getpwnam(internal).pw_gid).gr_name}
default_login_user = {login}
first_valid_uid = {uid}
last_valid_uid = {uid}
mail_uid = {uid}
mail_gid = {gid}
mail_location = maildir:{folder}/mail
passdb {{
  driver = passwd-file
  args = scheme=PLAIN {folder}/passwd
}}
userdb {{
  driver = static
  args = home={folder}/mail
}}
namespace inbox {{
  inbox = yes
  separator = /
  mailbox Trash {{
    special_use = \\Trash
  }}
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service anvil {{
  chroot =
}}
"""


@contextmanager
def deadline(seconds: int) -> Iterator[None]:
    """Fail, rather than hang, when the block takes longer than `seconds` (interrupts a blocking socket read)."""
    def expired(signum, frame):
        raise TimeoutError(f"the Dovecot test took longer than {seconds} s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def greeted(port: int, process: subprocess.Popen, log: Path) -> None:
    """Wait until Dovecot answers "* OK" on `port`; its log in the failure when it stops or stays silent."""
    until = time.monotonic() + START
    while time.monotonic() < until:
        if process.poll() is not None:
            break
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1.0) as sock:
                sock.settimeout(TIMEOUT)
                if sock.recv(64).startswith(b"* OK"):
                    return
        except OSError:
            time.sleep(0.1)
    told = log.read_text(errors="replace")[-2000:] if log.exists() else "(no log)"
    pytest.fail(f"Dovecot did not greet on 127.0.0.1:{port} (exit code {process.poll()}); its log:\n{told}")


def stop(process: subprocess.Popen) -> None:
    """SIGTERM to Dovecot's master, which ends its children; SIGKILL to its process group if it lingers."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


@pytest.fixture
def dovecot() -> Iterator[DovecotMailbox]:
    # not pytest's tmp_path: its folders are 0700, and Dovecot's login and mail processes run as other users
    folder = Path(tempfile.mkdtemp(prefix="vergeet-dovecot-"))
    folder.chmod(0o755)
    (folder / "passwd").write_text(f"{OWNER_ADDRESS}:{PASSWORD}::::::\n")
    (folder / "mail").mkdir()
    mail = pwd.getpwnam(users()[2])
    os.chown(folder / "mail", mail.pw_uid, mail.pw_gid)
    port = free_port()
    (folder / "dovecot.conf").write_text(configuration(folder, port))
    with deadline(DEADLINE):
        process = subprocess.Popen([DOVECOT, "-F", "-c", str(folder / "dovecot.conf")], stdin=subprocess.DEVNULL,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            greeted(port, process, folder / "dovecot.log")
            mailbox = DovecotMailbox(port)
            mailbox.seed()
            yield mailbox
        finally:
            stop(process)
            shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.parametrize("name", SAME_CHECKS)
def test_the_sandbox_checks_hold_on_dovecot(name, dovecot):
    getattr(test_mailbox, name)(dovecot)


def test_dovecot_speaks_what_the_connector_needs(dovecot):
    with dovecot.client() as client:
        assert client.has_capability("UIDPLUS")  # else the connector deletes nothing
        flags = {name: flags for flags, _, name in client.list_folders()}
    assert b"\\Trash" in flags["Trash"]


def test_dovecot_refuses_a_wrong_password_and_its_trash_is_not_scanned(dovecot):
    with pytest.raises(VendorAuthError, match="connectors.mailbox.username and password"):
        list(connector(dovecot, password="wrong-password", timeout=TIMEOUT).records())
    with pytest.raises(VendorRejected, match="Trash or Junk"):
        list(connector(dovecot, folders=["INBOX", "Trash"], timeout=TIMEOUT).records())
    assert "Vraag" in by_subject(connector(dovecot, timeout=TIMEOUT).records())
