"""The global options `--config` and `--lang` before and after the subcommand (DESIGN.md, command line)."""
from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from vergeet.cli import app
from vergeet.ledger import Ledger

PEPPER = "Qw7-rT2y_Ui9Op4aS1dF6gH3jK8lZ5xC0vB"


@pytest.fixture
def config(tmp_path) -> Path:
    """A config in English with a ledger and no connector: enough for `rules show` and `tasks`."""
    path = tmp_path / "vergeet.toml"
    path.write_text(f'language = "en"\n[store]\nurl = "sqlite:///ledger.db"\npepper = "{PEPPER}"\n',
                    encoding="utf-8")
    Ledger(f"sqlite:///{tmp_path / 'ledger.db'}", PEPPER.encode()).close()
    return path


def vergeet(*arguments: str | Path):
    return CliRunner().invoke(app, [str(a) for a in arguments], terminal_width=200)


@pytest.mark.parametrize("arguments", [
    ("--config", "{config}", "--lang", "nl", "rules", "show"),
    ("rules", "show", "--config", "{config}", "--lang", "nl"),
    ("-c", "{config}", "rules", "--lang=nl", "show"),
    ("--lang", "nl", "rules", "show", "--config={config}"),
])
def test_config_and_lang_work_before_and_after_the_subcommand(config, arguments):
    result = vergeet(*(a.format(config=config) for a in arguments))
    assert result.exit_code == 0, result.output
    assert result.output.startswith("Bewaarregels")  # Dutch, against the config's English


def test_without_lang_the_configs_language_is_used(config):
    assert vergeet("rules", "show", "--config", config).output.startswith("Retention rules")


@pytest.mark.parametrize("where", ["before", "after"])
def test_lang_reaches_a_command_without_its_own(config, where):
    assert vergeet("--config", config, "tasks").output.strip() == "No open tasks by hand."
    arguments = ("--lang", "nl", "tasks") if where == "before" else ("tasks", "--lang", "nl")
    result = vergeet("--config", config, *arguments)
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "Geen open taken met de hand."


@pytest.mark.parametrize("arguments", [("--lang", "de", "tasks"), ("tasks", "--lang", "de"),
                                       ("--lang", "de", "rules", "show")])
def test_an_unknown_language_is_refused_wherever_it_stands(config, arguments):
    result = vergeet("--config", config, *arguments)
    assert result.exit_code == 2 and "'de' is not nl or en" in result.output


def test_nothing_after_a_double_dash_is_moved(config):
    result = vergeet("--config", config, "rules", "check", "--", "--lang")
    assert result.exit_code == 2 and "--lang" in result.output  # the file named "--lang" does not exist
