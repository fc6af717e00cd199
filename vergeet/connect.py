"""Turn a validated config into connectors and a ledger: where secrets are resolved.

Everything here happens before any pipeline step runs, so a missing secret or
an unusable ledger stops the command with exit code 2 and changes nothing.
"""
from __future__ import annotations

import json
import re
from typing import Any

from connectors.base import Connector
from vergeet.config import Config, RateConfig, pepper_problem
from vergeet.errors import BadInput
from vergeet.ledger import Ledger, LedgerError


def _tuning(section: Any) -> dict[str, Any]:
    """The pacing and retry settings every connector takes."""
    rate: RateConfig | None = section.rate
    budget = section.retry_budget_seconds
    return ({"retries": section.retries} | ({} if rate is None else {"rate": (rate.calls, rate.period_seconds)})
            | ({} if budget is None else {"retry_budget": budget}))


def _token(config: Config, key_path: str, reference: str) -> str:
    """A resolved vendor secret, which travels in an HTTP header: one line of visible ASCII characters."""
    value = config.resolve_secret(key_path, reference)
    if not re.fullmatch(r"[!-~]+", value):
        raise BadInput(f"{config.source}: {key_path}: the secret holds spaces, line breaks or non-ASCII characters; "
                       "a token is one line of visible characters (check what was pasted)")
    return value


def build_connectors(config: Config) -> dict[str, Connector]:
    """One connector per system that has a table under [connectors]; secrets resolved now.

    A config that connects no system is `BadInput`: every job would run on nothing and report success.
    """
    built: dict[str, Connector] = {}
    section = config.connectors
    if section.moneybird:
        from connectors.moneybird import MoneybirdConnector

        mb = section.moneybird
        built["moneybird"] = MoneybirdConnector(
            base_url=mb.base_url, administration_id=mb.administration_id,
            token=_token(config, "connectors.moneybird.token", mb.token), **_tuning(mb))
    if section.mailblue:
        from connectors.mailblue import MailblueConnector

        ml = section.mailblue
        built["mailblue"] = MailblueConnector(
            base_url=ml.base_url, token=_token(config, "connectors.mailblue.token", ml.token), **_tuning(ml))
    if section.mollie:
        from connectors.mollie import MollieConnector

        mo = section.mollie
        try:
            built["mollie"] = MollieConnector(
                base_url=mo.base_url, api_key=_token(config, "connectors.mollie.api_key", mo.api_key), **_tuning(mo))
        except ValueError as exc:  # the connector's word on a malformed key (it never quotes the key)
            raise BadInput(f"{config.source}: connectors.mollie.api_key: {exc}") from None
    if section.google_calendar:
        from connectors.google_calendar import GoogleCalendarConnector, primary_refusal

        gc = section.google_calendar
        where = f"{config.source}: connectors.google_calendar"
        credentials = config.relative_path(
            config.resolve_secret("connectors.google_calendar.credentials_file", gc.credentials_file))
        if not credentials.is_file():
            raise BadInput(f"{where}.credentials_file: no service-account JSON file at {credentials}")
        try:  # the service account's e-mail is no personal data: the owner shares the calendar with it
            account = json.loads(credentials.read_text(encoding="utf-8"))["client_email"]
        except (OSError, ValueError, KeyError, TypeError):
            raise BadInput(f"{where}.credentials_file: {credentials} is not a service-account JSON key") from None
        if gc.calendar_id == "primary" and not gc.subject:
            raise BadInput(f"{where}.calendar_id: {primary_refusal(account)}")
        try:
            built["google_calendar"] = GoogleCalendarConnector(
                api_endpoint=gc.api_endpoint, calendar_ids=(gc.calendar_id,), credentials_file=str(credentials),
                own_emails=tuple(gc.own_emails), subject=gc.subject, **_tuning(gc))
        except (ValueError, KeyError) as exc:  # google-auth's answer to a key it cannot use
            raise BadInput(f"{where}.credentials_file: {credentials} is not a usable service-account key "
                           f"({type(exc).__name__})") from None
    if section.zoom:
        from connectors.zoom import ZoomConnector

        zm = section.zoom
        built["zoom"] = ZoomConnector(
            account_id=_token(config, "connectors.zoom.account_id", zm.account_id),
            client_id=_token(config, "connectors.zoom.client_id", zm.client_id),
            client_secret=_token(config, "connectors.zoom.client_secret", zm.client_secret), user_id=zm.user_id,
            base_url=zm.base_url, oauth_url=zm.oauth_url, own_emails=tuple(zm.own_emails),
            history_from=zm.history_from, **_tuning(zm))
    if section.mailbox:
        from connectors.mailbox import MailboxConnector

        mx = section.mailbox
        built["mailbox"] = MailboxConnector(
            host=mx.host, port=mx.port, tls=mx.tls, username=mx.username,
            password=config.resolve_secret("connectors.mailbox.password", mx.password), folders=tuple(mx.folders),
            trash_folder=mx.trash_folder, own_addresses=tuple(mx.own_addresses), keep_folders=tuple(mx.keep_folders))
    if section.woocommerce:
        from connectors.woocommerce import WooCommerceConnector

        wc = section.woocommerce
        built["woocommerce"] = WooCommerceConnector(
            base_url=wc.base_url, consumer_key=_token(config, "connectors.woocommerce.consumer_key", wc.consumer_key),
            consumer_secret=_token(config, "connectors.woocommerce.consumer_secret", wc.consumer_secret),
            **_tuning(wc))
    if not built:
        raise BadInput(f"{config.source}: connectors: no system is connected; add a [connectors.NAME] table")
    return built


def require_lasting_ledger(config: Config) -> None:
    """An applying run needs a ledger that outlives it: an in-memory one forgets what was deleted, the requests
    and the suppression list the moment the command ends, so the next run would repeat it all."""
    if config.store.in_memory():
        raise BadInput(f"{config.source}: store.url: {config.store.url!r} is an in-memory ledger, which forgets "
                       "every action when the run ends; an applying run needs a file (sqlite:///vergeet.db) or a "
                       "database server")


def open_ledger(config: Config, *, applying: bool = False, create: bool = True) -> Ledger:
    """The ledger named by [store], with its pepper resolved and checked; problems are `BadInput`.

    `applying`: the run will change vendor data, so the ledger must last (`require_lasting_ledger`).
    `create=False`: a command that only reads the ledger; a SQLite file that is not there is an error naming the
    path, not a new, empty ledger that would answer "nothing".
    """
    if applying:
        require_lasting_ledger(config)
    pepper = config.resolve_secret("store.pepper", config.store.pepper)
    if problem := pepper_problem(pepper):
        raise BadInput(f"{config.source}: store.pepper: {problem}")
    path = config.ledger_file()
    if not create and path is not None and not path.exists():
        raise BadInput(f"{config.source}: store.url: there is no ledger at {path} (a relative path is relative to "
                       "the config file); nothing has run with this config yet, or store.url names another file")
    try:
        return Ledger(config.ledger_url(), pepper.encode("utf-8"))
    except LedgerError as exc:
        raise BadInput(f"{config.source}: store.url: {exc}") from None
