"""The config contract: validation, secret references and exit code 2 on bad input."""
from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest
from typer.testing import CliRunner

from vergeet.cli import app
from vergeet.config import load_config, parse_config, resolve_secret
from vergeet.errors import BadInput

FULL = """
[store]
url = "sqlite:///{tmp}/ledger.db"
pepper = "env:TEST_PEPPER"

[connectors.moneybird]
administration_id = "123456789"
token = "env:MONEYBIRD_TOKEN"

[connectors.mailblue]
base_url = "https://acme.api-us1.com/api/3"
token = "env:MAILBLUE_API_TOKEN"

[connectors.mollie]
api_key = "env:MOLLIE_API_KEY"

[connectors.google_calendar]
calendar_id = "info@example.nl"
credentials_file = "env:GOOGLE_APPLICATION_CREDENTIALS"
"""


def test_the_design_contract_parses_with_defaults(tmp_path):
    config = parse_config(FULL.format(tmp=tmp_path), "vergeet.toml")
    assert config.connectors.moneybird.base_url == "https://moneybird.com/api/v2"
    assert config.connectors.mollie.base_url == "https://api.mollie.com/v2"
    assert config.connectors.google_calendar.api_endpoint == "https://www.googleapis.com/calendar/v3/"
    assert config.purge.max_delete_share == 0.2


def test_absent_connector_table_means_not_connected():
    config = parse_config('[connectors.mollie]\napi_key = "env:X"\n', "vergeet.toml")
    assert config.connectors.moneybird is None and config.connectors.mollie is not None


def test_missing_env_secret_names_file_key_and_variable(monkeypatch):
    monkeypatch.delenv("MOLLIE_API_KEY", raising=False)
    config = parse_config('[connectors.mollie]\napi_key = "env:MOLLIE_API_KEY"\n', "vergeet.toml")
    with pytest.raises(BadInput) as caught:
        config.resolve_secret("connectors.mollie.api_key", config.connectors.mollie.api_key)
    assert str(caught.value) == ("vergeet.toml: connectors.mollie.api_key: "
                                 "environment variable MOLLIE_API_KEY is not set")


def test_env_secret_is_read(monkeypatch):
    monkeypatch.setenv("SOME_TOKEN", "s3cret")
    assert resolve_secret("env:SOME_TOKEN", where="x") == "s3cret"


def test_unknown_key_is_rejected_with_its_path():
    with pytest.raises(BadInput) as caught:
        parse_config('[connectors.mollie]\napi_key = "x"\napi_kye = "y"\n', "vergeet.toml")
    assert "vergeet.toml: connectors.mollie.api_kye: unknown key" in str(caught.value)


def test_unknown_connector_is_rejected():
    with pytest.raises(BadInput, match=r"connectors\.hubspot: unknown key"):
        parse_config('[connectors.hubspot]\ntoken = "x"\n', "vergeet.toml")


def test_missing_required_key_and_wrong_type():
    with pytest.raises(BadInput) as caught:
        parse_config('[connectors.moneybird]\ntoken = "x"\n[purge]\nmax_delete_share = 3\n', "c.toml")
    message = str(caught.value)
    assert "c.toml: connectors.moneybird.administration_id: required key is missing" in message
    assert "c.toml: purge.max_delete_share:" in message


def test_toml_syntax_error_shows_line_and_column():
    with pytest.raises(BadInput, match=r"c\.toml: not valid TOML: .*line 2, column"):
        parse_config('[store]\nurl = \n', "c.toml")


def test_config_from_env_variable(tmp_path, monkeypatch):
    path = tmp_path / "v.toml"
    path.write_text('[store]\nurl = "sqlite:///x.db"\n')
    monkeypatch.setenv("VERGEET_CONFIG", str(path))
    assert load_config().store.url == "sqlite:///x.db"


def test_no_config_at_all_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("VERGEET_CONFIG", raising=False)
    with pytest.raises(BadInput, match="pass --config PATH or set VERGEET_CONFIG"):
        load_config()


def test_cli_exits_2_on_bad_config_and_changes_nothing(tmp_path, monkeypatch):
    monkeypatch.delenv("TEST_PEPPER", raising=False)
    path = tmp_path / "vergeet.toml"
    path.write_text(FULL.format(tmp=tmp_path))
    result = CliRunner().invoke(app, ["--config", str(path), "requests", "list"])
    assert result.exit_code == 2
    assert "store.pepper: environment variable TEST_PEPPER is not set" in result.output
    assert not (tmp_path / "ledger.db").exists()


def test_cli_exits_2_on_unreadable_config(tmp_path):
    result = CliRunner().invoke(app, ["--config", str(tmp_path / "missing.toml"), "requests", "list"])
    assert result.exit_code == 2
    assert "missing.toml: cannot read the configuration file" in result.output


def test_prefect_secret_reference(prefect_harness):
    from prefect.blocks.system import Secret

    Secret(value="tok-123").save("moneybird-token", overwrite=True)
    assert resolve_secret("prefect-secret:moneybird-token", where="x") == "tok-123"
    with pytest.raises(BadInput, match=r"^v\.toml: connectors\.moneybird\.token: Prefect Secret block 'missing' "
                                       r"could not be loaded"):
        resolve_secret("prefect-secret:missing", where="v.toml: connectors.moneybird.token")


@pytest.mark.parametrize("command", [["purge"], ["find", "jan@example.nl"], ["erase", "jan@example.nl", "--approve"]])
def test_a_config_that_connects_no_system_is_refused(tmp_path, command):
    path = tmp_path / "vergeet.toml"
    path.write_text(f'[store]\nurl = "sqlite:///{tmp_path}/ledger.db"\npepper = "p"\n')
    result = CliRunner().invoke(app, ["--config", str(path), *command])
    assert result.exit_code == 2
    assert "connectors: no system is connected" in result.output


# -- Google Calendar: "primary" is the service account's own calendar ------------------------------------------------
def _calendar_config(tmp_path, calendar_line: str) -> Path:
    from vergeet.sandbox.fake_calendar import CalendarFake
    from vergeet.sandbox.population import Population

    key = tmp_path / "service-account.json"
    key.write_text(json.dumps(CalendarFake(Population(1, date(2026, 1, 1), [])).service_account_info(
        "http://127.0.0.1:9/token")))
    path = tmp_path / "vergeet.toml"
    path.write_text(f'[store]\nurl = "sqlite:///{tmp_path}/ledger.db"\npepper = "p"\n\n'
                    f'[connectors.google_calendar]\n{calendar_line}credentials_file = "{key.name}"\n')
    return path


@pytest.mark.parametrize("calendar_line", ['calendar_id = "primary"\n', ""])  # "" : the default
def test_primary_without_a_delegated_subject_is_refused_with_what_to_do(tmp_path, calendar_line):
    from vergeet.connect import build_connectors

    path = _calendar_config(tmp_path, calendar_line)
    with pytest.raises(BadInput) as caught:
        build_connectors(load_config(str(path)))
    message = str(caught.value)
    assert "connectors.google_calendar.calendar_id" in message and "primary" in message
    assert "vergeet@vergeet-sandbox.iam.gserviceaccount.com" in message  # the key's client_email
    assert "Make changes to events" in message and "address" in message

    result = CliRunner().invoke(app, ["--config", str(path), "purge"])
    assert result.exit_code == 2 and "Make changes to events" in result.output
    assert not (tmp_path / "ledger.db").exists()


def test_primary_with_a_delegated_subject_and_an_owners_calendar_id_are_accepted(tmp_path):
    from vergeet.connect import build_connectors

    for line in ('calendar_id = "primary"\nsubject = "info@example.nl"\n', 'calendar_id = "info@example.nl"\n'):
        built = build_connectors(load_config(str(_calendar_config(tmp_path, line))))
        assert list(built) == ["google_calendar"]
