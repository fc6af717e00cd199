"""`vergeet init`: a random pepper in a private env file, a starter config that loads, and nothing overwritten."""
from __future__ import annotations

import re
import stat

from typer.testing import CliRunner

from connectors import SYSTEMS
from vergeet.cli import app
from vergeet.config import load_config, pepper_problem
from vergeet.rules import SHIPPED_RULES, load_rules


def _pepper(env_file) -> str:
    (line,) = [line for line in env_file.read_text().splitlines() if line.startswith("VERGEET_PEPPER=")]
    return line.split("=", 1)[1]


def test_init_writes_a_private_random_pepper_a_config_that_loads_and_the_rules(tmp_path, monkeypatch):
    target = tmp_path / "jessworks"
    result = CliRunner().invoke(app, ["init", str(target)])
    assert result.exit_code == 0, result.output
    env, config_file, rules_file = target / "vergeet.env", target / "vergeet.toml", target / "retention_rules.toml"
    assert stat.S_IMODE(env.stat().st_mode) == 0o600 and stat.S_IMODE(config_file.stat().st_mode) == 0o600
    pepper = _pepper(env)
    assert pepper_problem(pepper) is None and pepper not in result.output  # never shown on the terminal
    assert rules_file.read_text() == SHIPPED_RULES.read_text()

    config = load_config(str(config_file))
    assert config.store.pepper == "env:VERGEET_PEPPER" and pepper not in config_file.read_text()
    assert config.store.url == f"sqlite:///{(target / 'vergeet.db').resolve()}"
    assert load_rules(config.relative_path(config.rules.path)).source == str(rules_file)
    monkeypatch.setenv("VERGEET_PEPPER", pepper)
    purge = CliRunner().invoke(app, ["--config", str(config_file), "purge"])
    assert purge.exit_code == 2 and "no system is connected" in purge.output  # the next step: connect a system

    assert CliRunner().invoke(app, ["init", str(tmp_path / "other")]).exit_code == 0
    assert _pepper(tmp_path / "other" / "vergeet.env") != pepper


def test_every_placeholder_of_the_starter_config_loads_once_uncommented(tmp_path, monkeypatch):
    assert CliRunner().invoke(app, ["init", str(tmp_path)]).exit_code == 0
    config_file = tmp_path / "vergeet.toml"
    text = config_file.read_text()
    config_file.write_text(re.sub(r"^# (\[connectors\.|[a-z_]+ = )", r"\1", text, flags=re.M))
    for line in (tmp_path / "vergeet.env").read_text().splitlines():
        if line.startswith("# ") and line.endswith("="):
            monkeypatch.setenv(line[2:-1], "placeholder")
    config = load_config(str(config_file))
    assert {name for name in SYSTEMS if getattr(config.connectors, name) is not None} == set(SYSTEMS)


def test_init_overwrites_nothing(tmp_path):
    (tmp_path / "vergeet.toml").write_text("# mine\n")
    result = CliRunner().invoke(app, ["init", str(tmp_path)])
    assert result.exit_code == 2 and "already there" in result.output and "vergeet.toml" in result.output
    assert (tmp_path / "vergeet.toml").read_text() == "# mine\n"
    assert not (tmp_path / "vergeet.env").exists() and not (tmp_path / "retention_rules.toml").exists()
