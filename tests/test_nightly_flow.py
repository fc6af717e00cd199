"""The Prefect flow runs the same pipeline, reports counts only, and the deployment is scheduled right."""
from __future__ import annotations

import subprocess
import sys
from datetime import date
from pathlib import Path

import yaml

from connectors import SYSTEMS
from vergeet.sandbox import Sandbox
from vergeet.sandbox.population import generate, phone_formats

ROOT = Path(__file__).resolve().parents[1]
FAST = {system: (1000, 1.0) for system in SYSTEMS}


def test_nightly_flow_applies_and_leaves_no_personal_data_in_prefect(prefect_harness, tmp_path):
    from prefect.client.orchestration import get_client

    from flows.nightly_purge import nightly_purge

    population = generate(30, seed=3, today=date.today())
    with Sandbox(population, rates=FAST) as sandbox:
        path = sandbox.write_config(tmp_path, client_rates=FAST)
        first = nightly_purge(config_path=str(path), apply=True, force=True)
        second = nightly_purge(config_path=str(path), apply=True)
        deletes = sandbox.request_count("DELETE")
    assert first["planned"] > 0 and first["failed"] == 0
    assert sum(row["count"] for row in first["outcomes"]) == first["planned"]
    assert second["planned"] == 0
    assert sum(deletes.values()) > 0

    with get_client(sync_client=True) as client:
        artifacts = [a for a in client.read_artifacts() if a.key == "nightly-purge"]
        logs = client.read_logs()
        runs = client.read_flow_runs()
    assert len(artifacts) >= 2 and "| system | rule | outcome | records |" in artifacts[0].data
    stored = " ".join(str(a.data) for a in artifacts) + " ".join(log.message for log in logs) + " ".join(
        str(run.parameters) for run in runs)
    lowered = stored.lower()
    for person in population.people:
        assert person.email not in lowered
        assert person.last_name.lower() not in lowered
        if person.phone:
            assert all(variant not in stored for variant in phone_formats(person.phone))


def test_deployment_is_scheduled_nightly_in_amsterdam_and_applies():
    spec = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    [deployment] = [d for d in spec["deployments"] if d["name"] == "nightly-purge"]
    assert deployment["schedules"][0]["cron"] == "0 3 * * *"
    assert deployment["schedules"][0]["timezone"] == "Europe/Amsterdam"
    assert deployment["parameters"]["apply"] is True
    module, _, function = deployment["entrypoint"].partition(":")
    assert (ROOT / module).is_file() and f"def {function}(" in (ROOT / module).read_text()


def test_command_line_pipeline_does_not_load_prefect():
    code = ("import sys, vergeet.cli, vergeet.pipeline, vergeet.demo, vergeet.sandbox; "
            "sys.exit('prefect' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT).returncode == 0


def test_the_nightly_flow_refuses_changed_rules_until_accepted_and_names_its_parameter(prefect_harness, tmp_path):
    from flows.nightly_purge import nightly_purge

    rules = tmp_path / "rules.toml"
    rules.write_text((ROOT / "retention_rules.toml").read_text(encoding="utf-8"), encoding="utf-8")
    with Sandbox(generate(12, seed=5, today=date.today()), rates=FAST) as sandbox:
        path = sandbox.write_config(tmp_path, client_rates=FAST, extra=f'\n[rules]\npath = "{rules}"\n')
        nightly_purge(config_path=str(path), apply=True, force=True)  # the first applied run accepts the rules
        rules.write_text(rules.read_text(encoding="utf-8").replace('period = "P1Y"', 'period = "P2Y"', 1),
                         encoding="utf-8")
        before = sum(sandbox.request_count().values())
        state = nightly_purge(config_path=str(path), apply=True, return_state=True)
        assert state.is_failed() and "accept_rules = true" in state.message and "\n" not in state.message
        assert sum(sandbox.request_count().values()) == before  # nothing read
        assert nightly_purge(config_path=str(path), apply=True, accept_rules=True)["failed"] == 0


def test_the_first_night_refused_by_the_circuit_breaker_fails_in_one_line_naming_force(prefect_harness, tmp_path):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
    from prefect.logging.handlers import APILogWorker

    from flows.nightly_purge import nightly_purge

    with Sandbox(generate(30, seed=11, today=date.today()), rates=FAST) as sandbox:
        path = sandbox.write_config(tmp_path, client_rates=FAST)
        state = nightly_purge(config_path=str(path), apply=True, return_state=True)
        assert sum(sandbox.request_count("DELETE").values()) == 0
    assert state.is_failed() and state.message.startswith("Refused by the circuit breaker: the plan would delete")
    assert "force = true" in state.message and "--force" not in state.message and "\n" not in state.message
    APILogWorker.drain_all(timeout=10)  # logs reach the server in batches
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(state.state_details.flow_run_id)
        logs = [log.message for log in client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run.id])))]
        [artifact] = [a for a in client.read_artifacts() if a.flow_run_id == run.id]
    assert run.state.is_failed() and run.state.message == state.message
    assert state.message in logs and not [line for line in logs if "Traceback" in line]
    assert f"**{state.message}**" in artifact.data and "(refused)" in artifact.data
