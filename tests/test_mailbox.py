"""The mailbox connector against the sandbox IMAP server (pymap), and the purge, access and erasure through it."""
from __future__ import annotations

import imaplib
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path

import pytest
from dateutil.relativedelta import relativedelta

from connectors.base import Identifiers, Outcome, RecordRef
from connectors.http import VendorAuthError, VendorRejected, VendorUnavailable
from connectors.mailbox import FLAGGED_TO_KEEP, IN_KEEP_FOLDER, MailboxConnector, parse_id
from vergeet.cli import run_purge
from vergeet.config import load_config, parse_config
from vergeet.connect import build_connectors
from vergeet.errors import BadInput
from vergeet.rules import load_rules
from vergeet.sandbox import Sandbox
from vergeet.sandbox.fake_imap import KEEP_FOLDER, OWNER_ADDRESS, OWNER_NAME, OWNER_OTHER, TRASH, ImapFake
from vergeet.sandbox.population import Mail, MailboxPresence, Person, Population

TODAY = date.today()
RULES = load_rules(Path(__file__).resolve().parents[1] / "retention_rules.toml")


def at(day: date) -> datetime:
    return datetime.combine(day, time(10, 30), tzinfo=timezone.utc)


OLD, NEW = at(TODAY - relativedelta(years=1) - timedelta(days=2)), at(TODAY - timedelta(days=20))


def mailer(key: str, email: str, *messages: Mail, first: str = "Anna") -> Person:
    return Person(key=key, first_name=first, last_name="de Vries", email=email, phone=None,
                  mailbox=MailboxPresence(email, None, OLD, messages=list(messages)))


def population() -> Population:
    return Population(1, TODAY, [
        mailer("anna", "anna@example.nl", Mail("INBOX", OLD, "Vraag", True), Mail("Sent", NEW, "Re: Vraag", False),
               Mail("INBOX", OLD, "Één vraag – café", True, flagged=True)),
        mailer("bram", "Bram@Example.nl", Mail("INBOX", OLD, "Zonder datum", True, dated=False), first="Brám"),
        mailer("carla", "carla@example.nl", Mail(KEEP_FOLDER, OLD, "Contract", True),
               Mail(TRASH, OLD, "Weggegooid", True), first="Carla"),
        # a substring of anna's address: SEARCH FROM "anna@example.nl" matches it, the connector must not
        mailer("hanna", "hanna@example.nl", Mail("INBOX", OLD, "Hallo", True), first="Hanna"),
    ])


@pytest.fixture
def fake():
    with ImapFake(population()) as server:
        yield server


def connector(fake: ImapFake, **overrides) -> MailboxConnector:
    settings = dict(host="127.0.0.1", port=fake.port, tls=False, username=fake.username, password=fake.password,
                    own_addresses=[OWNER_ADDRESS, OWNER_OTHER.upper()], keep_folders=[KEEP_FOLDER],
                    trash_folder=TRASH) | overrides
    return MailboxConnector(**settings)


def by_subject(records):
    return {r.fields["subject"]: r for r in records}


def test_records_are_dated_identified_and_flagged_mail_is_left_alone(fake):
    records = by_subject(connector(fake).records())
    # INBOX and Sent only: the keep folder and Trash are not read for deletion; the owner's two own mails are
    assert set(records) == {"Vraag", "Re: Vraag", "Één vraag – café", "Zonder datum", "Hallo", "Notitie voor mezelf",
                            "Back-up"}
    question = records["Vraag"]
    assert question.emails == ("anna@example.nl",) and not question.shared
    assert question.last_activity_at == OLD and question.fields["date"] == OLD.isoformat()
    assert question.fields["from"][0]["name"] == "Anna de Vries" and question.fields["to"][0]["email"] == OWNER_ADDRESS
    assert "body" not in question.fields
    assert records["Re: Vraag"].emails == ("anna@example.nl",)  # sent: the recipient, not the owner
    assert records["Zonder datum"].last_activity_at == OLD  # no Date header: INTERNALDATE, as appended
    assert records["Zonder datum"].emails == ("bram@example.nl",)  # normalised
    flagged = records["Één vraag – café"]  # RFC 2047 subject decoded
    assert flagged.left_alone == FLAGGED_TO_KEEP and flagged.last_activity_at is None
    assert records["Notitie voor mezelf"].emails == () and records["Back-up"].emails == ()  # own addresses, any case


def test_ids_are_folder_uidvalidity_uid_and_a_renumbered_folder_is_no_longer_addressed(fake):
    mailbox = connector(fake)
    first = by_subject(mailbox.records())
    assert by_subject(mailbox.records())["Re: Vraag"].record_id == first["Re: Vraag"].record_id
    folder, validity, uid = parse_id(first["Re: Vraag"].ref)
    assert folder == "Sent" and validity > 0 and uid > 0
    fake.renumber("Sent")
    again = by_subject(mailbox.records())["Re: Vraag"]
    assert parse_id(again.ref)[1] != validity
    with pytest.raises(VendorRejected, match="renumbered"):
        mailbox.delete(first["Re: Vraag"].ref)
    assert by_subject(mailbox.records())["Re: Vraag"].record_id == again.record_id  # still there


def uids(fake: ImapFake, folder: str) -> list[int]:
    with fake.client() as client:
        client.select_folder(folder, readonly=True)
        return client.search(["ALL"])


def test_delete_expunges_that_message_only_and_is_idempotent(fake):
    mailbox = connector(fake)
    target = by_subject(mailbox.records())["Vraag"]
    _, _, uid = parse_id(target.ref)
    with fake.client() as client:  # the owner's mail program marked another message deleted, not yet expunged
        client.select_folder("INBOX")
        other = next(u for u in client.search(["ALL"]) if u != uid)
        client.add_flags([other], [b"\\Deleted"])
    result = mailbox.delete(target.ref)
    assert result.outcome is Outcome.DONE
    left = uids(fake, "INBOX")
    assert uid not in left and other in left  # UID EXPUNGE, not EXPUNGE
    assert mailbox.delete(target.ref).outcome is Outcome.ALREADY_GONE
    assert mailbox.read(target.ref) is None
    assert len(uids(fake, TRASH)) == 1  # carla's, as seeded: nothing was moved to Trash


def test_search_finds_the_persons_mail_everywhere_it_is_held(fake):
    found = by_subject(connector(fake).search(Identifiers(emails=(" ANNA@example.nl",))))
    assert set(found) == {"Vraag", "Re: Vraag", "Één vraag – café"}  # not hanna@example.nl's "Hallo"
    carla = by_subject(connector(fake).search(Identifiers(emails=("carla@example.nl",))))
    assert set(carla) == {"Contract", "Weggegooid"}
    assert carla["Contract"].left_alone == IN_KEEP_FOLDER
    assert carla["Weggegooid"].left_alone is None and carla["Weggegooid"].record_id.startswith(f"{TRASH}/")
    assert connector(fake).delete(carla["Weggegooid"].ref).outcome is Outcome.DONE  # an erasure empties Trash too
    assert uids(fake, TRASH) == []
    assert list(connector(fake).search(Identifiers(phones=("0612345678",)))) == []


def test_search_by_name_matches_the_display_name_whole_and_names_a_one_correspondent_message(fake):
    found = by_subject(connector(fake).search(Identifiers(names=("anna  DE vries",))))
    # "Hanna de Vries" holds "anna de vries" as a substring: SEARCH matches it, the connector must not
    assert set(found) == {"Vraag", "Re: Vraag", "Één vraag – café"}
    assert found["Re: Vraag"].first_name == "Anna de Vries"  # sent: the recipient's name, not the owner's
    assert by_subject(connector(fake).search(Identifiers(names=(OWNER_NAME,)))) == {}  # the owner
    assert set(by_subject(connector(fake).search(Identifiers(names=("BRÁM de Vries",))))) == {"Zonder datum"}


def test_errors_are_one_line_naming_the_setting_without_secrets(fake):
    with pytest.raises(VendorAuthError) as refused:
        list(connector(fake, password="wrong-password").records())
    message = str(refused.value)
    assert "connectors.mailbox.username and password" in message and "\n" not in message
    assert "wrong-password" not in message and fake.username not in message
    with pytest.raises(VendorRejected, match="connectors.mailbox.folders"):
        list(connector(fake, folders=["Klanten"]).records())
    with pytest.raises(VendorRejected, match="Trash or Junk"):
        with fake.client() as client:
            client.create_folder("Junk")
        _junk_is_listed_as_junk(fake)
    mailbox = connector(fake)
    list(mailbox.records())
    fake.stop()
    with pytest.raises(VendorUnavailable, match="try again later"):
        list(mailbox.records())
    with pytest.raises(VendorUnavailable, match="cannot be reached"):
        list(mailbox.records())


def _junk_is_listed_as_junk(fake: ImapFake) -> None:
    """A server that marks Junk with its special use (RFC 6154), as Dovecot does: scanning it is refused."""
    mailbox = connector(fake, folders=["INBOX", "Junk"])
    original = mailbox._connect

    def connect():
        client = original()
        listing = client.list_folders

        def marked():
            return [((*flags, b"\\Junk") if name == "Junk" else flags, sep, name) for flags, sep, name in listing()]

        client.list_folders = marked
        return client

    mailbox._connect = connect
    list(mailbox.records())


def test_the_server_refuses_a_wrong_request_shape(fake):
    with fake.client() as client:
        client.select_folder("INBOX", readonly=True)
        with pytest.raises(imaplib.IMAP4.error):
            client._imap.uid("SEARCH", "FROMM", "anna@example.nl")  # no such search key: BAD
        with pytest.raises(imaplib.IMAP4.error):
            client._imap.uid("FETCH", "1:*", "(BODY.PEEK[HEADER.FIELDS DATE])")  # fields without parentheses
    with pytest.raises(ValueError):
        connector(fake).delete(RecordRef("mailbox", "message", "INBOX/12"))  # no UIDVALIDITY: refused unsent


def config_text(mailbox: str) -> str:
    return f'[store]\npepper = "x"\n[connectors.mailbox]\nusername = "info@example.nl"\npassword = "env:P"\n{mailbox}'


def test_config_refuses_plain_imap_off_this_machine_and_overlapping_folders(monkeypatch, tmp_path):
    with pytest.raises(BadInput, match="tls: plain IMAP"):
        parse_config(config_text('host = "mail.example.nl"\ntls = false\n'), "v.toml")
    with pytest.raises(BadInput, match="keep_folders"):
        parse_config(config_text('host = "mail.example.nl"\nfolders = ["INBOX", "Archief"]\n'
                                 'keep_folders = ["Archief"]\n'), "v.toml")
    config = parse_config(config_text('host = "127.0.0.1"\ntls = false\nport = 1143\n'), "v.toml")
    with pytest.raises(BadInput, match="connectors.mailbox.password"):
        build_connectors(config)
    monkeypatch.setenv("P", "secret")
    built = build_connectors(config)["mailbox"]
    assert (built.host, built.port, built.folders, built.trash_folder) == ("127.0.0.1", 1143, ("INBOX", "Sent"),
                                                                           "Trash")


def test_a_purge_through_the_sandbox_deletes_old_mail_and_leaves_the_kept(tmp_path):
    with Sandbox(population()) as sandbox:
        config = load_config(str(sandbox.write_config(tmp_path)))
        mailbox = build_connectors(config)["mailbox"]
        assert run_purge(config, RULES, apply=True, day=TODAY, force=True, show=0, lang="en") == 0
        left = by_subject(mailbox.records())
        # due: anna's old question, bram's undated one, hanna's; kept: the recent reply, the flagged one, own mail
        assert set(left) == {"Re: Vraag", "Één vraag – café", "Notitie voor mezelf", "Back-up"}
        assert set(by_subject(mailbox.search(Identifiers(emails=("carla@example.nl",))))) == {"Contract",
                                                                                              "Weggegooid"}


def long_date(moment: datetime) -> str:
    return f"{moment.day} {moment:%B %Y}"


def test_find_and_erase_through_the_cli_name_messages_by_date_and_subject_and_expunge_them(tmp_path):
    import json
    import re

    from typer.testing import CliRunner

    from vergeet.cli import app

    runner = CliRunner()
    with Sandbox(population()) as sandbox:
        config = str(sandbox.write_config(tmp_path))

        def vergeet(*arguments: str):
            result = runner.invoke(app, ["--config", config, *arguments, "--lang", "en"], terminal_width=200)
            assert result.exit_code == 0, result.output
            return result

        report = json.loads(vergeet("find", "Anna@example.nl").stdout)
        mail = {(r["data"]["date"], r["data"]["subject"]) for r in report["records"] if r["system"] == "mailbox"}
        assert mail == {(OLD.isoformat(), "Vraag"), (NEW.isoformat(), "Re: Vraag"),
                        (OLD.isoformat(), "Één vraag – café")}  # not hanna@example.nl's "Hallo"
        vergeet("find", "anna@example.nl", "--format", "html", "--out", str(tmp_path / "access.html"))
        rows = re.findall(r'<td class="title">([^<]*)</td>\s*<td>([^<]*)</td>',
                          (tmp_path / "access.html").read_text())
        assert sorted(rows) == sorted([("Vraag", long_date(OLD)), ("Re: Vraag", long_date(NEW)),
                                       ("Één vraag – café", long_date(OLD))])

        vergeet("erase", "anna@example.nl", "--approve", "--out", str(tmp_path / "out"))
        [certificate] = (tmp_path / "out").glob("erasure-request-*.json")
        issued = json.loads(certificate.read_text())
        # named by the message's own date: its subject is erased content, and may name others
        assert sorted(e["reference"] for e in issued["erased"]) == sorted([long_date(OLD), long_date(NEW)])
        assert [k["reference"] for k in issued["kept"]] == [long_date(OLD)]  # flagged to keep: the owner decides
        page = certificate.with_suffix(".html").read_text()
        assert long_date(NEW) in page and "Vraag" not in page and "anna" not in page.lower()
        assert "Vraag" not in certificate.read_text()
        mailbox = build_connectors(load_config(config))["mailbox"]
        left = by_subject(mailbox.search(Identifiers(emails=("anna@example.nl",))))
        assert set(left) == {"Één vraag – café"}  # expunged from the sandbox's server, not only from the report
        assert "Hallo" in by_subject(mailbox.records())

        vergeet("erase", "carla@example.nl", "--approve", "--out", str(tmp_path / "out"))
        assert set(by_subject(mailbox.search(Identifiers(emails=("carla@example.nl",))))) == {"Contract"}
        assert uids(sandbox.imap, TRASH) == []  # Trash still held her mail: expunged there too
