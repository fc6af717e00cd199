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


# -- ranges and schemes: what loads also runs ------------------------------------------------------------------------
LONG_PEPPER = "Zq8v-3kPz_LmW2aR9xYt0bNc4dEf6gHj7iKs"


@pytest.mark.parametrize("section, line, message", [
    ("moneybird", 'base_url = "nonsense://"', "is not an https:// URL"),
    ("moneybird", 'base_url = "env:MONEYBIRD_URL"', "is not an https:// URL"),
    ("mollie", 'base_url = "sqlite://"', "is not an https:// URL"),
    ("mollie", 'base_url = "https://"', "is not an https:// URL"),
    ("mollie", 'base_url = "https://api.mollie.com:x/v2"', "is not an https:// URL"),
    ("moneybird", 'base_url = "http://moneybird.com/api/v2"', "plain http"),
    ("mailblue", 'base_url = "ftp://acme.api-us1.com/api/3"', "is not an https:// URL"),
    ("google_calendar", 'api_endpoint = "prefect-secret:x"', "is not an https:// URL"),
    ("moneybird", "rate = { calls = 1, period_seconds = 1e12 }", "less than or equal to 3600"),
    ("moneybird", "rate = { calls = 1, period_seconds = 1e-9 }", "greater than or equal to 0.001"),
    ("moneybird", "rate = { calls = 1000, period_seconds = 1 }", "faster than the vendor allows (150 calls per 300"),
    ("moneybird", "rate = { calls = 300, period_seconds = 600 }", "faster than the vendor allows"),  # a 300 burst
    ("mailblue", "rate = { calls = 6, period_seconds = 1 }", "faster than the vendor allows (5 calls per 1"),
    ("mollie", "rate = { calls = 10, period_seconds = 1 }", "faster than the vendor allows"),
    ("google_calendar", "rate = { calls = 11, period_seconds = 1 }", "faster than the vendor allows (600 calls"),
])
def test_unusable_urls_and_rates_are_refused_naming_the_key(section, line, message):
    required = {"moneybird": 'administration_id = "1"\ntoken = "t"\n',
                "mailblue": 'token = "t"\n' + ('' if "base_url" in line else 'base_url = "https://a.api-us1.com"\n'),
                "mollie": 'api_key = "test_x"\n', "google_calendar": 'credentials_file = "k.json"\n'}[section]
    with pytest.raises(BadInput) as caught:
        parse_config(f"[connectors.{section}]\n{required}{line}\n", "v.toml")
    assert f"v.toml: connectors.{section}" in str(caught.value) and message in str(caught.value)


@pytest.mark.parametrize("line", [
    "rate = { calls = 150, period_seconds = 300 }", "rate = { calls = 1, period_seconds = 2 }",
    "rate = { calls = 50, period_seconds = 3600 }", 'base_url = "http://127.0.0.1:8123/api/v2"',
])
def test_the_vendors_limit_slower_pacing_and_local_fakes_pass(line):
    config = parse_config(f'[connectors.moneybird]\nadministration_id = "1"\ntoken = "t"\n{line}\n', "v.toml")
    assert config.connectors.moneybird is not None
    fast_local = parse_config('[connectors.moneybird]\nadministration_id = "1"\ntoken = "t"\n'
                              'base_url = "http://localhost:9/api/v2"\nrate = { calls = 1000, period_seconds = 1 }\n',
                              "v.toml")
    assert fast_local.connectors.moneybird.rate.calls == 1000  # no vendor's limit on this machine


def test_administration_id_must_be_the_number(tmp_path):
    with pytest.raises(BadInput, match=r"connectors\.moneybird\.administration_id: is not a number"):
        parse_config('[connectors.moneybird]\nadministration_id = "../123"\ntoken = "t"\n', "v.toml")


def _mollie_config(tmp_path, monkeypatch, key: str, pepper: str = LONG_PEPPER, url: str = "") -> Path:
    monkeypatch.setenv("FUZZ_MOLLIE_KEY", key)
    monkeypatch.setenv("FUZZ_PEPPER", pepper)
    path = tmp_path / "vergeet.toml"
    path.write_text(f'[store]\nurl = "{url or f"sqlite:///{tmp_path}/ledger.db"}"\npepper = "env:FUZZ_PEPPER"\n'
                    '[connectors.mollie]\nbase_url = "http://127.0.0.1:9/v2"\napi_key = "env:FUZZ_MOLLIE_KEY"\n')
    return path


@pytest.mark.parametrize("key, message", [("cst_not_a_key", "starts with 'live_' or 'test_'"),
                                          ("test_abc\ndef", "line breaks"), ("test_ab cd", "spaces"),
                                          ("test_é", "non-ASCII")])
def test_a_malformed_mollie_key_is_exit_2_naming_the_key_never_the_value(tmp_path, monkeypatch, key, message):
    result = CliRunner().invoke(app, ["--config", str(_mollie_config(tmp_path, monkeypatch, key)), "purge"])
    assert result.exit_code == 2 and result.exception is not None and isinstance(result.exception, SystemExit)
    assert "connectors.mollie.api_key" in result.output and message in result.output
    assert key not in result.output


@pytest.mark.parametrize("pepper, message", [
    ("short", "5 characters long; at least 32"), ("a" * 64, "too few different characters"),
    ("ab" * 20, "too few different characters"), ("1234567890" * 4 + "1", None),
    ("0123456789" * 3 + "01", "too few different characters"),  # 32 digits: 106 bits
    (LONG_PEPPER, None),
])
def test_the_pepper_must_be_long_and_varied(pepper, message):
    from vergeet.config import new_pepper, pepper_problem

    problem = pepper_problem(pepper)
    assert (problem is None) if message is None else (message in problem and "vergeet init" in problem)
    assert pepper_problem(new_pepper()) is None and new_pepper() != new_pepper()


def test_a_short_pepper_stops_every_command_before_the_ledger_exists(tmp_path, monkeypatch):
    path = _mollie_config(tmp_path, monkeypatch, "test_" + "x" * 30, pepper="hunter2")
    result = CliRunner().invoke(app, ["--config", str(path), "requests", "list"])
    assert result.exit_code == 2 and "store.pepper: the pepper is 7 characters long" in result.output
    assert "hunter2" not in result.output and not (tmp_path / "ledger.db").exists()


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:", "sqlite+pysqlite://"])
def test_an_in_memory_ledger_is_refused_for_apply_only(tmp_path, monkeypatch, url):
    from vergeet.config import load_config as load

    path = _mollie_config(tmp_path, monkeypatch, "test_" + "x" * 30, url=url)
    assert load(str(path)).store.in_memory()
    for command in (["purge", "--apply"], ["erase", "a@example.nl", "--approve"]):
        result = CliRunner().invoke(app, ["--config", str(path), *command])
        assert result.exit_code == 2 and "store.url" in result.output and "in-memory ledger" in result.output
    assert not load(str(_mollie_config(tmp_path, monkeypatch, "test_x", url="sqlite:///x.db"))).store.in_memory()


def test_a_connectors_retry_budget_can_be_set_and_is_bounded(monkeypatch):
    from vergeet.connect import _tuning

    monkeypatch.setenv("MONEYBIRD_TOKEN", "tok")
    text = FULL.replace('token = "env:MONEYBIRD_TOKEN"', 'token = "env:MONEYBIRD_TOKEN"\nretry_budget_seconds = 2.5')
    config = parse_config(text.format(tmp="/tmp"), "vergeet.toml")
    assert _tuning(config.connectors.moneybird)["retry_budget"] == 2.5
    assert "retry_budget" not in _tuning(config.connectors.mailblue)  # the connector's own default
    with pytest.raises(BadInput, match=r"connectors\.moneybird\.retry_budget_seconds"):
        parse_config(text.replace("= 2.5", "= 0").format(tmp="/tmp"), "vergeet.toml")
