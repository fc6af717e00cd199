"""The erasure flow's approval pause in a real Prefect flow run, driven with `resume_flow_run`."""
from __future__ import annotations

import threading
import time

from test_erasure import FAST, mutations, population
from vergeet.config import load_config
from vergeet.connect import open_ledger
from vergeet.sandbox import Sandbox


def run_in_background(**parameters) -> tuple[threading.Thread, dict]:
    from flows.erasure_request import run_erasure_request

    result: dict = {}

    def target():
        result["value"] = run_erasure_request(["lotte.dekker@example.nl"], poll_interval=1, **parameters)

    thread = threading.Thread(target=target)
    thread.start()
    return thread, result


def wait_for_pause(timeout: float = 90):
    from prefect.client.orchestration import get_client

    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            paused = [run for run in client.read_flow_runs() if run.state and run.state.is_paused()]
            if paused:
                return paused[0]
            time.sleep(0.5)
    raise AssertionError("the flow never paused for approval")


def test_approval_in_prefect_erases_and_rejection_changes_nothing(prefect_harness, tmp_path):
    from prefect.client.orchestration import get_client
    from prefect.flow_runs import resume_flow_run

    with Sandbox(population(), rates=FAST) as sandbox:
        config_path = str(sandbox.write_config(tmp_path, client_rates=FAST))

        thread, result = run_in_background(config_path=config_path, approval_timeout=120)
        paused = wait_for_pause()
        assert mutations(sandbox) == []  # nothing happens before the owner decides
        resume_flow_run(paused.id, run_input={"approve": False, "note": "geen ID ontvangen"})
        thread.join(120)
        assert result["value"]["status"] == "rejected" and mutations(sandbox) == []

        thread, result = run_in_background(config_path=config_path, approval_timeout=120,
                                           out_dir=str(tmp_path / "certificates"))
        resume_flow_run(wait_for_pause().id, run_input={"approve": True})
        thread.join(120)
        assert result["value"]["status"] == "completed"
        assert (tmp_path / "certificates" / "erasure-request-2.html").is_file()
        # Moneybird is not written to: the person's invoice is younger than 7 years, so it keeps the contact whole
        assert {system for system, _, _ in mutations(sandbox)} == {"mailblue", "mollie", "google_calendar"}
    with open_ledger(load_config(config_path)) as ledger:
        statuses = sorted(r["status"] for r in ledger.list_requests(open_only=False))
    assert statuses == ["completed", "rejected"]
    with get_client(sync_client=True) as client:
        parameters = " ".join(str(run.parameters) for run in client.read_flow_runs())
    assert "lotte" not in parameters.lower()


def test_approval_timeout_leaves_the_request_open(prefect_harness, tmp_path):
    with Sandbox(population(), rates=FAST) as sandbox:
        config_path = str(sandbox.write_config(tmp_path, client_rates=FAST))
        thread, result = run_in_background(config_path=config_path, approval_timeout=3)
        thread.join(120)
        assert result["value"]["status"] == "awaiting_approval" and mutations(sandbox) == []
    with open_ledger(load_config(config_path)) as ledger:
        [request] = ledger.list_requests()
    assert request["status"] == "awaiting_approval" and "timed out" in request["status_note"]
