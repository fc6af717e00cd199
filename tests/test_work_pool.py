"""The README's recipe for larger installs, followed literally against a real Prefect server: a process work pool,
`prefect deploy --all` from the project folder with VERGEET_CONFIG set, and a worker started in a terminal that has
neither VERGEET_CONFIG nor any secret. The config's pepper is a Prefect Secret block. An access request run on that
worker finds the person and writes its report: the deployment carried the worker's whole environment."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from test_deployments import final_state, wait_for
from test_erasure import FAST, population
from vergeet.sandbox import SANDBOX_PEPPER, Sandbox

ROOT = Path(__file__).resolve().parents[1]
PREFECT = Path(sys.executable).with_name("prefect")


def prefect(*arguments: str, env: dict[str, str], timeout: float = 180) -> subprocess.CompletedProcess:
    done = subprocess.run([str(PREFECT), *arguments], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def test_a_worker_with_nothing_in_its_terminal_runs_a_deployed_request(prefect_harness, tmp_path):
    from prefect.blocks.system import Secret
    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment
    from prefect.settings import PREFECT_API_URL

    with Sandbox(population(), rates=FAST) as sandbox:
        config = sandbox.write_config(tmp_path, client_rates=FAST)
        Secret(value=SANDBOX_PEPPER).save("work-pool-test-pepper", overwrite=True)
        text = config.read_text(encoding="utf-8")
        assert f'pepper = "{SANDBOX_PEPPER}"' in text
        config.write_text(text.replace(f'pepper = "{SANDBOX_PEPPER}"', 'pepper = "prefect-secret:work-pool-test-pepper"'),
                          encoding="utf-8")
        terminal = {key: value for key, value in os.environ.items()
                    if not key.startswith(("VERGEET_", "PREFECT_UI_URL"))} | {"PREFECT_API_URL": PREFECT_API_URL.value()}

        prefect("work-pool", "create", "vergeet", "--type", "process", "--overwrite", env=terminal)
        prefect("--no-prompt", "deploy", "--all", env=terminal | {"VERGEET_CONFIG": str(config)})
        Secret(value="lotte.dekker@example.nl").save("work-pool-access", overwrite=True)
        run = run_deployment("subject-access/access-request", timeout=0, parameters={
            "identifiers_block": "work-pool-access", "out_dir": str(tmp_path / "access")})
        worker = prefect("worker", "start", "--pool", "vergeet", "--run-once", env=terminal, timeout=300)
        with get_client(sync_client=True) as client:
            state = wait_for(lambda: final_state(client, run.id), "the access request on the worker")
            deployment = client.read_deployment(run.deployment_id)
    assert state.type.value == "COMPLETED", worker.stdout + worker.stderr
    assert deployment.job_variables["env"] == {"VERGEET_CONFIG": str(config)}
    [report] = (tmp_path / "access").glob("access-request-*.json")
    assert "lotte" in report.read_text(encoding="utf-8").lower()  # found: the flow read the sandbox's vendors
    assert "lotte.dekker@example.nl" not in worker.stdout + worker.stderr
