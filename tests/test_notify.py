"""The owner's e-mail digest, sent to a real SMTP server on 127.0.0.1 (aiosmtpd): each item arrives, no personal
data does, nothing is sent without news, and a digest that cannot be sent is a clear error that never hides the
nightly run's own failure."""
from __future__ import annotations

import email
import logging
import socket
import time
from collections.abc import Iterator, Mapping, Sequence
from datetime import date, datetime, timedelta, timezone
from email.policy import default
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from typer.testing import CliRunner

from connectors import SYSTEMS as CONNECTED
from connectors.base import ActionResult, Changes, Identifiers, Known, Outcome, Record, RecordRef
from connectors.http import VendorUnavailable
from vergeet import notify, pipeline
from vergeet.cli import app
from vergeet.config import load_config, parse_config
from vergeet.errors import BadInput
from vergeet.ledger import Ledger
from vergeet.rules import load_rules

ROOT = Path(__file__).resolve().parents[1]
RULES = load_rules(ROOT / "retention_rules.toml")
PEPPER = "Vx3-kP9q_Lm2Zr7tW4yB8nC1dF6gH0jS5uE"
PASSWORD = "smtp-password-for-tests"
TODAY = date.today()
OLD = datetime(2019, 1, 1, tzinfo=timezone.utc)
PEOPLE = {"c1": ("jan@example.nl", "Jan"), "c2": ("piet@example.nl", "Piet"), "c3": ("kees@example.nl", "Kees")}


class Mailbox:
    """aiosmtpd's handler: keeps every message it is given."""

    def __init__(self) -> None:
        self.messages: list[email.message.EmailMessage] = []

    async def handle_DATA(self, server, session, envelope) -> str:
        self.messages.append(email.message_from_bytes(envelope.original_content, policy=default))
        return "250 OK"


def _login(server, session, envelope, mechanism, auth_data) -> AuthResult:
    # handled=False: aiosmtpd answers a refusal with 535 (by default it leaves the answer to the authenticator)
    return AuthResult(success=auth_data.login == b"owner" and auth_data.password == PASSWORD.encode(),
                      handled=False)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def smtp() -> Iterator[tuple[Mailbox, int]]:
    """A real SMTP server on 127.0.0.1 that asks for a login (allowed without TLS: it is this machine)."""
    mailbox, port = Mailbox(), _free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port, authenticator=_login, auth_require_tls=False)
    controller.start()
    yield mailbox, port
    controller.stop()


class Moneybird:
    """Three old contacts: c1's delete the API cannot do (a task for the owner), c2's fails, and c3 belongs to a
    person erased before, who came back."""

    system = "moneybird"

    def records(self, since: datetime | None = None) -> Iterator[Record]:
        for record_id, (address, name) in PEOPLE.items():
            created = datetime.now(timezone.utc) if record_id == "c3" else OLD
            yield Record("moneybird", "contact", record_id, emails=(address,), first_name=name, created_at=created,
                         updated_at=created)

    def changes(self, cursor: Mapping[str, Any] | None, known: Known) -> Changes:
        return Changes(list(self.records()), cursor={}, full=True)

    def search(self, identifiers: Identifiers) -> Iterator[Record]:
        return iter(())

    def delete(self, ref: RecordRef) -> ActionResult:
        if ref.record_id == "c2":
            raise VendorUnavailable("moneybird", "DELETE", "/contacts/c2", 503, "service unavailable")
        return ActionResult(Outcome.NOT_SUPPORTED, "archive it in Moneybird: documents refer to it")

    def anonymise(self, ref: RecordRef, fields: Sequence[str]) -> ActionResult:
        raise AssertionError("not planned here")


def write_config(directory: Path, port: int, notify_extra: str = "", language: str = "en") -> Path:
    path = directory / "vergeet.toml"
    path.write_text(f"""language = "{language}"
[store]
url = "sqlite:///ledger.db"
pepper = "{PEPPER}"

[connectors.moneybird]
base_url = "http://127.0.0.1:9/api/v2"
administration_id = "1"
token = "not-used"

[notify]
host = "127.0.0.1"
port = {port}
security = "plain"
username = "owner"
password = "env:TEST_SMTP_PASSWORD"
from = "vergeet@example.com"
to = ["owner@example.com"]
{notify_extra}
""", encoding="utf-8")
    return path


def night_with_everything(path: Path) -> dict[str, int]:
    """A ledger with a failed run, a task for the owner, a reappeared person and two open requests (one due in 3
    days, one in 28); the request ids."""
    connectors = {"moneybird": Moneybird()}
    with Ledger(f"sqlite:///{path.parent / 'ledger.db'}", PEPPER.encode()) as ledger:
        ledger.suppress([ledger.hash_identifier("email", "kees@example.nl")], None)
        view = pipeline.identity_view(pipeline.sync_all(connectors, ledger, full=True), RULES)
        plan = pipeline.make_plan(view, RULES, TODAY, ledger)
        pipeline.execute(ledger, pipeline.store_plan(ledger, plan), connectors)
        hashes = [ledger.hash_identifier("email", "someone-else@example.org")]
        due = ledger.register_request("erasure", hashes, received=TODAY - timedelta(days=25))
        later = ledger.register_request("access", hashes, received=TODAY)
    return {"due": due, "later": later}


def _body(mail: email.message.EmailMessage) -> str:
    return mail.get_content().replace("\r\n", "\n")


def test_the_digest_arrives_with_every_item_and_no_personal_data(smtp, tmp_path, monkeypatch):
    mailbox, port = smtp
    monkeypatch.setenv("TEST_SMTP_PASSWORD", PASSWORD)
    path = write_config(tmp_path, port)
    requests = night_with_everything(path)

    assert notify.after_run(str(path), "Refused by the circuit breaker: moneybird 2 of 3 records\nmore",
                            logging.getLogger("test"))
    [mail] = mailbox.messages
    body = _body(mail)
    assert mail["To"] == "owner@example.com" and mail["From"] == "vergeet@example.com"
    assert "nightly run failed" in mail["Subject"] and "1 waiting for you" in mail["Subject"]
    assert "The nightly run failed: Refused by the circuit breaker: moneybird 2 of 3 records\n" in body
    assert "failed: 1 action failed" in body and "moneybird/contact/c2 (delete)" in body
    assert f"moneybird/contact/c1 (delete, since {TODAY})" in body
    assert "Reappeared after erasure: 1 record" in body and "  moneybird/contact/c3" in body
    assert f"request {requests['due']} (erasure): due {TODAY + timedelta(days=3)}, 3 days left" in body
    assert f"request {requests['later']} " not in body
    whole = mail.as_string()
    for address, name in PEOPLE.values():
        assert address not in whole.lower() and name not in whole


def test_the_digest_speaks_the_owners_language(smtp, tmp_path, monkeypatch):
    mailbox, port = smtp
    monkeypatch.setenv("TEST_SMTP_PASSWORD", PASSWORD)
    path = write_config(tmp_path, port, language="nl")
    requests = night_with_everything(path)
    config = load_config(str(path))
    with Ledger(config.ledger_url(), PEPPER.encode()) as ledger:
        assert notify.deliver(config, notify.collect(config, ledger, RULES, TODAY))
    body = _body(mailbox.messages[0])
    assert "Wacht op jou, 1 taak" in body and "moneybird/contact/c1 (verwijderen" in body
    assert f"verzoek {requests['due']} (verwijdering): uiterlijk {TODAY + timedelta(days=3)}, nog 3 dagen" in body


def test_nothing_is_sent_when_there_is_nothing_to_say_unless_asked_always(smtp, tmp_path, monkeypatch):
    mailbox, port = smtp
    monkeypatch.setenv("TEST_SMTP_PASSWORD", PASSWORD)
    path = write_config(tmp_path, port)
    Ledger(f"sqlite:///{tmp_path / 'ledger.db'}", PEPPER.encode()).close()
    assert notify.after_run(str(path), None, logging.getLogger("test")) is False
    assert mailbox.messages == []

    path = write_config(tmp_path, port, 'send = "always"')
    assert notify.after_run(str(path), None, logging.getLogger("test")) is True
    [mail] = mailbox.messages
    assert mail["Subject"] == "vergeet: nothing to report" and "Nothing to report" in _body(mail)


def test_the_command_prints_the_digest_and_sends_it_with_send(smtp, tmp_path, monkeypatch):
    mailbox, port = smtp
    monkeypatch.setenv("TEST_SMTP_PASSWORD", PASSWORD)
    path = write_config(tmp_path, port)
    night_with_everything(path)
    runner = CliRunner()
    printed = runner.invoke(app, ["--config", str(path), "digest"])
    assert printed.exit_code == 0 and "moneybird/contact/c1" in printed.output and mailbox.messages == []
    sent = runner.invoke(app, ["--config", str(path), "digest", "--send"])
    assert sent.exit_code == 0, sent.output
    assert "Sent to owner@example.com." in sent.output and len(mailbox.messages) == 1


def test_a_wrong_password_reference_or_password_or_server_is_a_clear_error(smtp, tmp_path, monkeypatch):
    mailbox, port = smtp
    path = write_config(tmp_path, port)
    night_with_everything(path)
    runner = CliRunner()
    monkeypatch.delenv("TEST_SMTP_PASSWORD", raising=False)
    unset = runner.invoke(app, ["--config", str(path), "digest", "--send"])
    assert unset.exit_code == 2
    assert "notify.password: environment variable TEST_SMTP_PASSWORD is not set" in unset.output

    monkeypatch.setenv("TEST_SMTP_PASSWORD", "wrong")
    refused = runner.invoke(app, ["--config", str(path), "digest", "--send"])
    assert refused.exit_code == 1 and f"127.0.0.1:{port} refused the login of notify.username" in refused.output

    closed = _free_port()
    unreachable = runner.invoke(app, ["--config", str(write_config(tmp_path, closed)), "digest", "--send"])
    assert unreachable.exit_code == 1 and f"SMTP server 127.0.0.1:{closed}: the digest was not sent" \
        in unreachable.output
    assert "Traceback" not in unreachable.output and mailbox.messages == []


def _certificate(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for localhost and 127.0.0.1 with its key, as PEM files."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.now(timezone.utc)
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                   .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(minutes=5))
                   .not_valid_after(now + timedelta(days=1))
                   .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                               x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                                  critical=False)
                   .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                   .sign(key, hashes.SHA256()))
    cert_file, key_file = folder / "smtp-cert.pem", folder / "smtp-key.pem"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file


class TlsMailbox(Mailbox):
    """A `Mailbox` that also notes whether each message came over TLS."""

    def __init__(self) -> None:
        super().__init__()
        self.encrypted: list[bool] = []

    async def handle_DATA(self, server, session, envelope) -> str:
        self.encrypted.append(server.transport.get_extra_info("ssl_object") is not None)
        return await super().handle_DATA(server, session, envelope)


@pytest.mark.parametrize("security", ["starttls", "ssl"])
def test_the_digest_goes_over_verified_tls_and_an_untrusted_server_gets_nothing(security, tmp_path, monkeypatch):
    """A real SMTP server with a certificate: STARTTLS on the submission port, or TLS from the first byte; the
    login is only made under TLS. The certificate is checked against the trusted ones (here: the test's own,
    through SSL_CERT_FILE); without that trust the digest is refused, named, and not sent."""
    import ssl

    cert_file, key_file = _certificate(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    mailbox, port = TlsMailbox(), _free_port()
    # aiosmtpd offers AUTH under "require TLS" only after STARTTLS; with TLS from the first byte it needs no such
    # requirement (nothing is ever sent in the clear there)
    tls = ({"tls_context": context, "require_starttls": True, "auth_require_tls": True} if security == "starttls"
           else {"ssl_context": context, "auth_require_tls": False})
    controller = Controller(mailbox, hostname="127.0.0.1", port=port, authenticator=_login,
                            server_hostname="localhost", **tls)
    controller.start()
    try:
        monkeypatch.setenv("TEST_SMTP_PASSWORD", PASSWORD)
        path = write_config(tmp_path, port)
        path.write_text(path.read_text(encoding="utf-8").replace('host = "127.0.0.1"', 'host = "localhost"')
                        .replace('security = "plain"', f'security = "{security}"'), encoding="utf-8")
        night_with_everything(path)
        runner = CliRunner()

        monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "no-such-bundle.pem"))  # trusts nothing
        untrusted = runner.invoke(app, ["--config", str(path), "digest", "--send"])
        assert untrusted.exit_code == 1 and f"SMTP server localhost:{port}: the digest was not sent" \
            in untrusted.output
        assert "CERTIFICATE_VERIFY_FAILED" in untrusted.output and mailbox.messages == []

        monkeypatch.setenv("SSL_CERT_FILE", str(cert_file))
        sent = runner.invoke(app, ["--config", str(path), "digest", "--send"])
        assert sent.exit_code == 0, sent.output
        assert len(mailbox.messages) == 1 and mailbox.encrypted == [True]
    finally:
        controller.stop()


@pytest.mark.parametrize(("setting", "message"), [
    ('host = "smtp.example.com"\nsecurity = "plain"', "notify: security: plain SMTP to smtp.example.com"),
    ('host = "smtp.example.com"\nusername = "owner"\npassword = "hunter2"', "notify.password: give a secret "
                                                                            "reference"),
    ('host = "smtp.example.com"\nusername = "owner"', "notify: username and password go together"),
    ('host = "smtp.example.com"\nport = 70000', "notify.port:"),
])
def test_wrong_notify_settings_name_their_key(setting, message):
    text = f'[notify]\n{setting}\nfrom = "vergeet@example.com"\nto = ["owner@example.com"]\n'
    with pytest.raises(BadInput, match=message):
        parse_config(text, "vergeet.toml")
    with pytest.raises(BadInput, match="notify.to: required key is missing"):
        parse_config('[notify]\nhost = "smtp.example.com"\nfrom = "vergeet@example.com"\n', "vergeet.toml")
    with pytest.raises(BadInput, match="notify.from: 'Jan <j@example.com>' is not one bare e-mail address"):
        parse_config('[notify]\nhost = "h"\nfrom = "Jan <j@example.com>"\nto = ["o@example.com"]\n', "v.toml")


def test_a_failed_nightly_run_sends_its_failure_and_an_unsendable_digest_does_not_hide_it(
        prefect_harness, smtp, tmp_path, monkeypatch):
    from flows.nightly_purge import nightly_purge
    from vergeet.sandbox import Sandbox
    from vergeet.sandbox.population import generate

    mailbox, port = smtp
    monkeypatch.setenv("TEST_SMTP_PASSWORD", PASSWORD)
    fast = {system: (1000, 1.0) for system in CONNECTED}
    population = generate(12, seed=7, today=TODAY)
    notify_table = (f'\n[notify]\nhost = "127.0.0.1"\nport = {port}\nsecurity = "plain"\nusername = "owner"\n'
                    'password = "env:TEST_SMTP_PASSWORD"\nfrom = "vergeet@example.com"\nto = ["owner@example.com"]\n')
    with Sandbox(population, rates=fast) as sandbox:
        path = sandbox.write_config(tmp_path, client_rates=fast, extra=notify_table)
        with pytest.raises(Exception) as refused:  # a first night's backlog: the circuit breaker refuses
            nightly_purge(config_path=str(path), apply=True)
        [mail] = mailbox.messages
        assert "nightly run failed" in mail["Subject"]
        assert str(refused.value).splitlines()[0] in _body(mail)
        whole = mail.as_string().lower()
        assert not any(person.email in whole or person.last_name.lower() in whole for person in population.people)

        monkeypatch.delenv("TEST_SMTP_PASSWORD")
        with pytest.raises(type(refused.value)) as again:
            nightly_purge(config_path=str(path), apply=True)
    assert str(again.value) == str(refused.value) and len(mailbox.messages) == 1
    from prefect.client.orchestration import get_client

    from prefect.client.schemas.sorting import LogSort

    def logged() -> bool:  # the newest logs: the shared server holds every other test's too
        with get_client(sync_client=True) as client:
            return any(log.message.startswith("the e-mail digest was not sent: ")
                       and "TEST_SMTP_PASSWORD is not set" in log.message
                       for log in client.read_logs(limit=200, sort=LogSort.TIMESTAMP_DESC))

    deadline = time.monotonic() + 10  # logs reach the server in batches
    while not logged() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert logged()
