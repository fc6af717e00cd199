"""The sandbox: all the vendor fakes on loopback, seeded from one synthetic population.

`Sandbox` starts Moneybird, Mailblue, Mollie, Google Calendar, Zoom and WooCommerce fakes on free
127.0.0.1 ports and writes a vergeet config (plus a service-account key for
the Calendar token exchange) that points the real connectors at them. The
demo, the end-to-end tests and the benchmarks all run against it. Each fake's
`add_person`, `change` and `remove` make the changes a business makes between
two nights, for the incremental-sync tests and benchmarks.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from vergeet.sandbox.fake_calendar import TOKEN_PATH, CalendarFake
from vergeet.sandbox.fake_imap import ImapFake
from vergeet.sandbox.fake_mailblue import MailblueFake
from vergeet.sandbox.fake_mollie import MollieFake
from vergeet.sandbox.fake_woocommerce import WooCommerceFake
from vergeet.sandbox.fake_moneybird import MoneybirdFake
from vergeet.sandbox.fake_zoom import TOKEN_PATH as ZOOM_TOKEN_PATH, ZoomFake
from vergeet.sandbox.population import Population
from vergeet.sandbox.server import FakeServer, FakeVendor

SANDBOX_PEPPER = "sandbox-pepper-not-a-secret-it-is-in-the-source"
#: the first words of every config the sandbox writes
SANDBOX_MARK = "# Written by the vergeet sandbox"


class Sandbox:
    """The vendor fakes and the config that reaches them.

    `rates` overrides a fake's enforced limit per system as (calls, seconds);
    without it every fake enforces its vendor's published limit.
    """

    def __init__(self, population: Population, *, rates: dict[str, tuple[int, float]] | None = None):
        self.population = population
        rates = rates or {}

        def limit(system: str) -> dict[str, Any]:
            return dict(zip(("rate_calls", "rate_period"), rates[system])) if system in rates else {}

        self.fakes: dict[str, FakeVendor] = {
            "moneybird": MoneybirdFake(population, **limit("moneybird")),
            "mailblue": MailblueFake(population, **limit("mailblue")),
            "mollie": MollieFake(population, **limit("mollie")),
            "google_calendar": CalendarFake(population, **limit("google_calendar")),
            "zoom": ZoomFake(population, **limit("zoom")),
            "woocommerce": WooCommerceFake(population, **limit("woocommerce")),
        }
        self.servers = {system: FakeServer(fake) for system, fake in self.fakes.items()}
        #: the mailbox: an IMAP server, not an HTTP fake
        self.imap = ImapFake(population)

    def start(self) -> Sandbox:
        started = []
        try:
            for server in self.servers.values():
                started.append(server.start())
            started.append(self.imap.start())
        except Exception:
            for server in started:
                server.stop()
            raise
        return self

    def stop(self) -> None:
        for server in self.servers.values():
            server.stop()
        self.imap.stop()

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def request_count(self, method: str | None = None) -> dict[str, int]:
        """Requests each fake has served so far (optionally of one method)."""
        return {system: fake.count(method) for system, fake in self.fakes.items()}

    def write_config(self, directory: Path, *, ledger_url: str | None = None,
                     client_rates: dict[str, tuple[int, float]] | None = None,
                     retries: int | None = None, extra: str = "") -> Path:
        """A vergeet.toml (and the Calendar service-account key) for these fakes, in `directory`."""
        directory.mkdir(parents=True, exist_ok=True)
        url = {system: server.url for system, server in self.servers.items()}
        calendar: CalendarFake = self.fakes["google_calendar"]  # type: ignore[assignment]
        key_file = directory / "google-service-account.json"
        key_file.write_text(json.dumps(calendar.service_account_info(url["google_calendar"] + TOKEN_PATH)))
        key_file.chmod(0o600)
        moneybird: MoneybirdFake = self.fakes["moneybird"]  # type: ignore[assignment]
        zoom: ZoomFake = self.fakes["zoom"]  # type: ignore[assignment]
        calls = zoom.category_rates["Medium"]
        zoom_pace = f"rate = {{ calls = {calls}, period_seconds = 1 }}   # the sandbox account's plan allows more\n"
        shop: WooCommerceFake = self.fakes["woocommerce"]  # type: ignore[assignment]
        shop_pace = "rate = { calls = 50, period_seconds = 1 }   # the sandbox shop's host sets no limit\n"
        rates = client_rates or {}

        def rate(system: str) -> str:
            """The optional tuning lines of one connector table."""
            lines = "" if retries is None else f"retries = {retries}\n"
            if system in rates:
                calls, seconds = rates[system]
                lines += f"rate = {{ calls = {calls}, period_seconds = {seconds} }}\n"
            return lines

        text = f"""{SANDBOX_MARK}: every system below is a fake on 127.0.0.1.
[store]
url = "{ledger_url or f'sqlite:///{directory / "ledger.db"}'}"
pepper = "{SANDBOX_PEPPER}"

[connectors.moneybird]
base_url = "{url['moneybird']}/api/v2"
administration_id = "{moneybird.administration_id}"
token = "{moneybird.token}"
{rate('moneybird')}
[connectors.mailblue]
base_url = "{url['mailblue']}/api/3"
token = "{self.fakes['mailblue'].token}"
{rate('mailblue')}
[connectors.mollie]
base_url = "{url['mollie']}/v2"
api_key = "{self.fakes['mollie'].token}"
{rate('mollie')}
[connectors.google_calendar]
api_endpoint = "{url['google_calendar']}/calendar/v3/"
# the owner's calendar, by its id (the owner's address), shared with the key's client_email at "Make changes to events"
calendar_id = "{calendar.calendar_id}"
own_emails = ["{calendar.owner_email}"]
credentials_file = "{key_file.name}"
{rate('google_calendar')}
[connectors.zoom]
base_url = "{url['zoom']}/v2"
oauth_url = "{url['zoom']}{ZOOM_TOKEN_PATH}"
account_id = "{zoom.account_id}"
client_id = "{zoom.client_id}"
client_secret = "{zoom.client_secret}"
history_from = {zoom.first_day().isoformat()}   # the month of the account's oldest recording
{rate('zoom') if 'zoom' in rates else rate('zoom') + zoom_pace}
[connectors.woocommerce]
base_url = "{url['woocommerce']}"   # the shop's address; vergeet adds /wp-json/wc/v3
consumer_key = "{shop.consumer_key}"
consumer_secret = "{shop.consumer_secret}"
{rate('woocommerce') if 'woocommerce' in rates else rate('woocommerce') + shop_pace}
{self.imap.config_table()}{extra}"""
        path = directory / "vergeet.toml"
        path.write_text(text)
        return path
