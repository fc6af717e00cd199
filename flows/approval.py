"""The owner's approval of a request's plan in the Prefect UI, as the erasure and rectification flows ask for it.

The run pauses with a form (`pause_flow_run(wait_for_input=...)`): approve, or reject with the reason, which goes on
record. A pause that times out leaves the request open and nothing changed.
"""
from __future__ import annotations

from prefect import get_client, get_run_logger
from prefect.context import FlowRunContext
from prefect.exceptions import FlowPauseTimeout
from prefect.flow_runs import pause_flow_run
from prefect.input import RunInput
from prefect.states import Failed, Running, State

from vergeet import erasure

WEEK = 7 * 24 * 3600


class Decision(RunInput):
    """The owner's answer to a shown plan: approve, or reject with the reason (it goes on record)."""

    approve: bool
    note: str = ""


def await_approval(ledger, request: dict, description: str, *, counted: str, undone: str, timeout: int,
                   poll_interval: int) -> dict | State | None:
    """Pause for the owner's answer to the plan in `description`; None once approved (and on record), else what
    the run returns: the rejection, or AwaitingApproval when no answer came in `timeout` seconds. `counted` is the
    result's count of records changed ("erased"), `undone` says so in words ("nothing was erased")."""
    erasure.not_now(ledger, request, "plan shown in Prefect; waiting for approval")
    try:
        decision = pause_flow_run(wait_for_input=Decision.with_initial_data(description=description, approve=False),
                                  timeout=timeout, poll_interval=poll_interval)
    except FlowPauseTimeout:
        erasure.not_now(ledger, request, f"approval timed out in Prefect; {undone}")
        message = (f"Request {request['id']} awaits approval: no answer within {timeout} s, {undone}; it stays "
                   f"open (deadline {request['deadline']}): run {FlowRunContext.get().flow.name} again to show the "
                   "plan anew")
        get_run_logger().warning("%s", message)
        return awaiting_approval(message)
    if not decision.approve:
        erasure.reject(ledger, request, decision.note.strip() or "rejected in Prefect; no reason given")
        return {"request_id": request["id"], "status": "rejected", counted: 0}
    erasure.approve(ledger, request, "approved in Prefect" + (f": {decision.note}" if decision.note else ""))
    return None


def awaiting_approval(message: str) -> State:
    """The run's end after an unanswered pause: Failed, named AwaitingApproval. Prefect replaces any state a run
    proposes after its pause expired with "paused and never resumed", so the run is put back in Running first."""
    with get_client(sync_client=True) as client:
        client.set_flow_run_state(FlowRunContext.get().flow_run.id, Running(), force=True)
    return Failed(name="AwaitingApproval", message=message)
