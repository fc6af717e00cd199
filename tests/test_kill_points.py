"""A `vergeet purge --apply` killed (SIGKILL) at any point is finished by the next run, which repeats at most the
action each system had in flight: nothing done before the kill is sent again.

The run is a real process against the sandbox; the test counts the fakes' requests and kills it after the k-th
vendor write (or while it is still reading), then reruns the purge and compares the vendors with those of a
sandbox purged once without interruption. Each kill point is tried with the ledger in SQLite and in PostgreSQL.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import date
from pathlib import Path
from urllib.parse import unquote

import pytest

from connectors import SYSTEMS
from vergeet import pipeline
from vergeet.cli import run_purge
from vergeet.config import load_config
from vergeet.connect import build_connectors
from vergeet.ledger import Ledger
from vergeet.rules import load_rules
from vergeet.sandbox import SANDBOX_PEPPER, Sandbox
from vergeet.sandbox.fake_imap import comparable_id
from vergeet.sandbox.population import generate

ROOT = Path(__file__).resolve().parents[1]
RULES = load_rules(ROOT / "retention_rules.toml")
TODAY = date.today()
FAST = {system: (1000, 1.0) for system in SYSTEMS}
WRITES = ("DELETE", "PATCH", "PUT")


def population():
    return generate(30, seed=3, today=TODAY)


def vendor_state(config_path: Path) -> dict[str, tuple]:
    """Every record the vendors hold, with the identifiers and names on it."""
    records = pipeline.pull_all(build_connectors(load_config(str(config_path))))
    return {f"{r.system}/{r.record_type}/{comparable_id(r.system, r.record_id)}": (r.emails, r.phones, r.first_name,
                                                                                  r.last_name)
            for rs in records.values() for r in rs}


def writes(sandbox: Sandbox, after: dict[str, int] | None = None) -> list[tuple[str, str, str]]:
    """The vendor writes so far as (system, method, path); with `after`, those after each fake's first requests."""
    return [(system, r.method, r.path) for system, fake in sandbox.fakes.items()
            for r in fake.requests[(after or {}).get(system, 0):] if r.method in WRITES]


def start_purge(config_path: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", "from vergeet.cli import app; app()", "--config",
                             str(config_path), "purge", "--apply", "--force", "--no-details"],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def kill_when(process: subprocess.Popen, reached, timeout: float = 60) -> None:
    """SIGKILL `process` as soon as `reached()` is true (polled every millisecond)."""
    deadline = time.monotonic() + timeout
    while not reached():
        assert process.poll() is None, "the purge ended before the kill point"
        assert time.monotonic() < deadline, "the kill point was never reached"
        time.sleep(0.001)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    time.sleep(0.2)  # a request the fake had whole before the kill is logged once it is answered


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """The vendors after one purge that ran to its end, and how many writes it made."""
    with Sandbox(population(), rates=FAST) as sandbox:
        path = sandbox.write_config(tmp_path_factory.mktemp("uninterrupted"), client_rates=FAST)
        assert run_purge(load_config(str(path)), RULES, apply=True, day=TODAY, force=True, show=0) == 0
        return vendor_state(path), len(writes(sandbox))


@pytest.fixture(params=["sqlite", "postgresql"])
def ledger_url(request, tmp_path) -> str:
    """Where the killed purge keeps its ledger: a SQLite file, or a new database on the test PostgreSQL server."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ledger.db'}"
    return request.getfixturevalue("postgres_url")


@pytest.mark.parametrize("kill_after", [0, 1, 12, 30])
def test_a_killed_purge_is_finished_by_the_next_without_repeating_what_was_done(uninterrupted, tmp_path,
                                                                               ledger_url, kill_after):
    """`kill_after` vendor writes (0: while it reads, after its tenth request)."""
    expected_state, expected_writes = uninterrupted
    assert expected_writes > 30
    with Sandbox(population(), rates=FAST) as sandbox:
        path = sandbox.write_config(tmp_path, ledger_url=ledger_url, client_rates=FAST)
        process = start_purge(path)
        if kill_after:
            kill_when(process, lambda: len(writes(sandbox)) >= kill_after)
        else:
            kill_when(process, lambda: sum(sandbox.request_count().values()) >= 10)
        killed_at = {system: len(fake.requests) for system, fake in sandbox.fakes.items()}
        before = writes(sandbox)
        with Ledger(ledger_url, SANDBOX_PEPPER.encode()) as ledger:
            runs = ledger.unfinished_runs("purge")  # none when killed while reading
            in_flight = [action for run in runs for action in ledger.actions(run["id"], ("in_progress",))]

        assert run_purge(load_config(str(path)), RULES, apply=True, day=TODAY, force=True, show=0) == 0

        rerun = writes(sandbox, after=killed_at)
        state = vendor_state(path)
    assert state == expected_state
    assert len(runs) == (1 if kill_after else 0)
    # each system carries out its actions one at a time: at most one was in flight per system
    flying = {action["system"]: action["record_id"].rsplit("/", 1)[-1] for action in in_flight}
    assert len(flying) == len(in_flight)
    resent = [write for write in rerun if write in set(before)]
    for system, _, path in resent:  # only the record of the action in flight
        # ids as the vendor's path carries them: Zoom's meeting UUIDs are encoded twice
        assert flying.get(system) in unquote(unquote(path)).removesuffix(".json").split("/"), (system, path, flying)
    assert len(before) + len(rerun) - len(resent) == expected_writes
