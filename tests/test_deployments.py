"""`vergeet serve` serves prefect.yaml's deployments against a real Prefect server; the three jobs besides the
correction (whose flow tests/test_rectify.py runs) each run once."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

from test_erasure import FAST, mutations, population
from vergeet.sandbox import Sandbox

ROOT = Path(__file__).resolve().parents[1]
VERGEET = Path(sys.executable).with_name("vergeet")
EXPECTED = {"nightly-purge/nightly-purge", "subject-access/access-request", "erasure-request/erasure-request",
            "rectification-request/rectification-request"}


def wait_for(check, what: str, timeout: float = 120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (found := check()) is not None:
            return found
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def served_deployments(client) -> dict | None:
    served = {f"{client.read_flow(d.flow_id).name}/{d.name}": d for d in client.read_deployments()}
    return served if EXPECTED <= set(served) else None


def final_state(client, flow_run_id):
    state = client.read_flow_run(flow_run_id).state
    return state if state.is_final() else None


def test_prefect_yaml_deploys_the_four_jobs_through_the_worker_environment():
    spec = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    deployments = {d["name"]: d for d in spec["deployments"]}
    assert set(deployments) == {name.split("/")[1] for name in EXPECTED}
    for deployment in deployments.values():
        assert deployment["work_pool"]["job_variables"]["env"]["VERGEET_CONFIG"] == "{{ $VERGEET_CONFIG }}"
        assert "identifier" not in str(deployment.get("parameters"))
    assert [d for d in deployments.values() if d.get("schedules")] == [deployments["nightly-purge"]]


def test_vergeet_serve_runs_each_deployment_of_prefect_yaml_once(prefect_harness, tmp_path):
    from prefect.blocks.system import Secret
    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment
    from prefect.flow_runs import resume_flow_run
    from prefect.settings import PREFECT_API_URL

    with Sandbox(population(), rates=FAST) as sandbox:
        config = sandbox.write_config(tmp_path, client_rates=FAST)
        env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value(), "VERGEET_CONFIG": str(config)}
        env.pop("PREFECT_UI_URL", None)
        log = (tmp_path / "serve.log").open("w+")
        server = subprocess.Popen([str(VERGEET), "serve"], cwd=tmp_path, env=env, stdout=log,
                                  stderr=subprocess.STDOUT)
        try:
            with get_client(sync_client=True) as client:
                served = wait_for(lambda: served_deployments(client), "the served deployments")
                schema = served["erasure-request/erasure-request"].parameter_openapi_schema
                assert schema["required"] == ["identifiers_block"]
                schema = served["rectification-request/rectification-request"].parameter_openapi_schema
                assert schema["required"] == ["identifiers_block", "changes_block"]
                assert all(field.get("description") for field in schema["properties"].values())
                assert all(field.get("description") for field in schema["properties"].values())
                assert served["nightly-purge/nightly-purge"].parameters == {"apply": True,
                                                                            "config_path": str(config)}
                Secret(value="lotte.dekker@example.nl").save("serve-access")
                Secret(value="lotte.dekker@example.nl").save("serve-erasure")
                access = run_deployment("subject-access/access-request", timeout=0, parameters={
                    "identifiers_block": "serve-access", "out_dir": str(tmp_path / "access")})
                erasure = run_deployment("erasure-request/erasure-request", timeout=0, parameters={
                    "identifiers_block": "serve-erasure", "out_dir": str(tmp_path / "erasure"),
                    "poll_interval": 1})
                wait_for(lambda: client.read_flow_run(erasure.id).state.is_paused() or None, "the approval pause")
                resume_flow_run(erasure.id, run_input={"approve": True})
                states = {"access": wait_for(lambda: final_state(client, access.id), "the access request"),
                          "erasure": wait_for(lambda: final_state(client, erasure.id), "the erasure request")}
                # after the erasure: both take the ledger's apply lease
                nightly = run_deployment("nightly-purge/nightly-purge", timeout=0, parameters={"force": True})
                states["nightly"] = wait_for(lambda: final_state(client, nightly.id), "the nightly purge")
        finally:
            server.send_signal(signal.SIGINT)
            code = server.wait(60)
        assert {name: state.type.value for name, state in states.items()} == dict.fromkeys(states, "COMPLETED")
        assert mutations(sandbox)  # the erasure and the purge wrote to the vendors
    assert list((tmp_path / "access").glob("access-request-*.json"))
    assert list((tmp_path / "erasure").glob("erasure-request-*.html"))
    log.seek(0)
    output = log.read()
    ui = PREFECT_API_URL.value().removesuffix("/api")
    assert code == 0 and f"Prefect UI: {ui}" in output and "Stopped serving" in output, output
    assert "Traceback" not in output, output
