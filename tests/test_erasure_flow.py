"""The erasure flow's approval pause in a real Prefect flow run, driven with `resume_flow_run`."""
from __future__ import annotations

import json
import threading
import time

from test_erasure import FAST, RULES, mutations, population
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


def run_input_description(paused) -> str:
    """The text the UI shows above a paused run's approval form."""
    from prefect.client.orchestration import get_client
    from prefect.input.run_input import keyset_from_paused_state

    with get_client(sync_client=True) as client:
        return json.loads(client.read_flow_run_input(paused.id, keyset_from_paused_state(paused.state)["description"]))


def test_approval_in_prefect_erases_and_rejection_changes_nothing(prefect_harness, tmp_path):
    from prefect.client.orchestration import get_client
    from prefect.flow_runs import resume_flow_run

    with Sandbox(population(), rates=FAST) as sandbox:
        config_path = str(sandbox.write_config(tmp_path, client_rates=FAST))

        thread, result = run_in_background(config_path=config_path, approval_timeout=120)
        paused = wait_for_pause()
        assert mutations(sandbox) == []  # nothing happens before the owner decides
        with get_client(sync_client=True) as client:
            [artifact] = [a for a in client.read_artifacts() if a.flow_run_id == paused.id]
        rows = json.loads(artifact.data)
        assert artifact.type == "table" and "l***@e***.nl" in artifact.description
        assert {r["action or reason"].split()[0].rstrip(":") for r in rows} == {"delete", "anonymise", "ends", "kept"}
        [invoice] = [r for r in rows if r["record_type"] == "sales_invoice"]
        assert invoice["label"] == RULES.rule("moneybird-invoice-7y").nl and "kept until" in invoice[
            "action or reason"] and invoice["record_id"]
        form = run_input_description(paused)
        assert "Erased:" in form and "Kept (by law" in form and invoice["record_id"] in form
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
        stored = " ".join(str(run.parameters) for run in client.read_flow_runs()) + " ".join(
            f"{a.data} {a.description}" for a in client.read_artifacts())
    assert "lotte" not in stored.lower() and "dekker" not in stored.lower()


def test_approval_timeout_ends_not_done_awaiting_approval_and_leaves_the_request_open(prefect_harness, tmp_path):
    from prefect.client.orchestration import get_client

    with Sandbox(population(), rates=FAST) as sandbox:
        config_path = str(sandbox.write_config(tmp_path, client_rates=FAST))
        thread, result = run_in_background(config_path=config_path, approval_timeout=3, return_state=True)
        thread.join(120)
        state = result["value"]
        assert mutations(sandbox) == []
    with get_client(sync_client=True) as client:
        stored = client.read_flow_run(state.state_details.flow_run_id).state
    assert (stored.type, stored.name) == (state.type, "AwaitingApproval") and stored.is_failed()
    assert "awaits approval" in stored.message and "stays open" in stored.message
    with open_ledger(load_config(config_path)) as ledger:
        [request] = ledger.list_requests()
    assert request["status"] == "awaiting_approval" and "timed out" in request["status_note"]
