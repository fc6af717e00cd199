"""Pacing: each vendor's limit kept without idling, and independent systems read and changed at the same time."""
from __future__ import annotations

import threading
import time
from datetime import date

from connectors.base import ActionResult, Changes, Outcome
from connectors.http import RateLimiter
from connectors.mailblue import MailblueConnector
from vergeet import pipeline
from vergeet.ledger import Ledger, PlannedAction
from vergeet.sandbox.fake_mailblue import MailblueFake
from vergeet.sandbox.population import generate
from vergeet.sandbox.server import FakeServer

SYSTEMS = ("moneybird", "mailblue", "mollie", "google_calendar")


def test_a_burst_up_to_the_limit_goes_at_once_and_the_next_waits_for_the_window():
    limiter = RateLimiter(3, 0.2)
    started = time.monotonic()
    for _ in range(3):
        with limiter.slot():
            pass
    burst = time.monotonic() - started
    with limiter.slot():
        waited = time.monotonic() - started
    assert burst < 0.05 and 0.19 <= waited < 0.4


def test_a_request_under_way_holds_its_place_until_answered():
    limiter = RateLimiter(1, 0.05)
    limiter.acquire()
    answered = threading.Timer(0.2, limiter.release)
    answered.start()
    started = time.monotonic()
    waited = limiter.acquire()  # the window counts from the answer, not from the send
    assert waited >= 0.24 and time.monotonic() - started >= 0.24


def test_paced_at_the_vendors_limit_the_client_is_never_refused_and_never_idles():
    fake = MailblueFake(generate(1500, seed=1, today=date(2026, 6, 1)), rate_calls=5, rate_period=0.5)
    with FakeServer(fake) as server:
        connector = MailblueConnector(base_url=f"{server.url}/api/3", token=fake.token, rate=(5, 0.5), retries=0)
        started = time.monotonic()
        list(connector.records())
        elapsed = time.monotonic() - started
    calls = fake.count()
    bound = (calls - 1) // 5 * 0.5  # the earliest the last request may leave under 5 per half second
    assert fake.count(status=429) == 0
    # Catches a limiter that idles (one window per request would take 5x the bound), with slack for a loaded
    # CI machine; how close pacing comes to the bound is measured by benchmarks/rate_limited.py, not here.
    assert calls > 15 and bound <= elapsed <= 2 * bound + 1.0


class Barrier:
    """A stand-in connector whose reads and actions only complete when every system's thread is in them."""

    def __init__(self, system: str, meeting: threading.Barrier):
        self.system, self.meeting = system, meeting

    def changes(self, cursor, known) -> Changes:
        self.meeting.wait()
        return Changes([], cursor={}, full=True)

    def delete(self, ref) -> ActionResult:
        self.meeting.wait()
        return ActionResult(Outcome.DONE)


def test_systems_are_read_and_changed_concurrently():
    meeting = threading.Barrier(len(SYSTEMS), timeout=10)  # sequential work would break it
    connectors = {system: Barrier(system, meeting) for system in SYSTEMS}
    with Ledger("sqlite://", b"pepper") as ledger:
        assert set(pipeline.sync_all(connectors, ledger)) == set(SYSTEMS)
        run_id = ledger.start_run("purge", as_of=date(2026, 6, 1), apply=True)
        ledger.store_plan(run_id, [PlannedAction(system, "contact", "1", "delete", (), "rule", "why")
                                   for system in SYSTEMS])
        summary = pipeline.execute(ledger, run_id, connectors)
    assert summary.rows() == [{"system": s, "rule": "rule", "outcome": "done", "count": 1} for s in sorted(SYSTEMS)]
