"""One applying run per ledger: a second says who holds the ledger and touches nothing, while reading commands go
on; and a system whose vendor keeps refusing writes stops after a run of failures while the others finish."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import pytest
from typer.testing import CliRunner

from connectors import SYSTEMS
from vergeet.cli import app, run_purge
from vergeet.config import load_config
from vergeet.ledger import LeaseHeld, Ledger
from vergeet.pipeline import STOP_AFTER_FAILURES
from vergeet.rules import load_rules
from vergeet.sandbox import SANDBOX_PEPPER, Sandbox
from vergeet.sandbox.population import generate

ROOT = Path(__file__).resolve().parents[1]
RULES = load_rules(ROOT / "retention_rules.toml")
TODAY = date.today()
FAST = {system: (1000, 1.0) for system in SYSTEMS}
WRITES = ("DELETE", "PATCH", "PUT")
BUSY = "another applying run holds the ledger: the purge run on"


def population():
    return generate(30, seed=3, today=TODAY)


def ledger_at(directory: Path) -> Ledger:
    return Ledger(f"sqlite:///{directory / 'ledger.db'}", SANDBOX_PEPPER.encode())


def vergeet(config: Path, *arguments: str) -> subprocess.Popen:
    """The command line in a process of its own (wide output, so messages are not wrapped)."""
    return subprocess.Popen([sys.executable, "-c", "from vergeet.cli import app; app()", "--config", str(config),
                             *arguments], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=os.environ | {"COLUMNS": "300"})


def vendor_writes(sandbox: Sandbox) -> int:
    return sum(1 for fake in sandbox.fakes.values() for r in fake.requests if r.method in WRITES)


def test_while_a_purge_holds_the_ledger_another_apply_is_refused_and_reading_goes_on(tmp_path):
    runner = CliRunner()
    email = next(p.email for p in population().people if p.mollie)
    with Sandbox(population(), rates=FAST) as sandbox:
        path = sandbox.write_config(tmp_path, client_rates=FAST)
        with ledger_at(tmp_path) as holder, holder.lease("purge"):
            requests = sandbox.request_count()
            second = vergeet(path, "purge", "--apply", "--force")
            _, stderr = second.communicate(timeout=60)
            assert second.returncode == 1
            assert f"{BUSY} {socket.gethostname()} (pid {os.getpid()}) since " in stderr
            assert "nothing was changed" in stderr
            assert sandbox.request_count() == requests  # not even a read
            erase = runner.invoke(app, ["--config", str(path), "erase", email, "--approve",
                                        "--out", str(tmp_path / "out")], terminal_width=300)
            assert erase.exit_code == 1 and BUSY in erase.output and "stays open" in erase.output
            assert vendor_writes(sandbox) == 0
            assert [run["kind"] for run in holder.list_runs()] == []  # the erasure started no run either

            assert run_purge(load_config(str(path)), RULES, apply=False, day=TODAY, show=0) == 0
            found = runner.invoke(app, ["--config", str(path), "find", email])
            assert found.exit_code == 0 and email in found.stdout
        assert vendor_writes(sandbox) == 0
        assert run_purge(load_config(str(path)), RULES, apply=True, day=TODAY, force=True, show=0) == 0
        assert vendor_writes(sandbox) > 0


def test_of_two_purges_started_together_one_applies_and_the_other_names_it(tmp_path):
    # Mollie's client paced slowly (its reads and 9 deletes take some 10 s), so the first run is still at work
    # when the second has started up
    with Sandbox(population(), rates=FAST) as sandbox:
        path = sandbox.write_config(tmp_path, client_rates=FAST | {"mollie": (2, 1.0)})
        first = vergeet(path, "purge", "--apply", "--force", "--no-details")
        with ledger_at(tmp_path) as ledger:
            deadline = time.monotonic() + 60
            while ledger.lease_holder() is None:
                assert first.poll() is None and time.monotonic() < deadline
                time.sleep(0.01)
            second = vergeet(path, "purge", "--apply", "--force", "--no-details")
            _, refused = second.communicate(timeout=60)
            assert first.poll() is None, "the first run ended before the second tried"
            first.communicate(timeout=120)
            runs = ledger.list_runs()
            planned = [a for a in ledger.actions(runs[0]["id"]) if a["system"] == "mollie"]
        deletes = sandbox.fakes["mollie"].count("DELETE")
    assert second.returncode == 1 and f"(pid {first.pid}) since " in refused
    assert first.returncode == 0
    assert deletes == len(planned) > 0  # each customer the plan deletes, once
    assert [(run["kind"], run["status"]) for run in runs] == [("purge", "succeeded")]


def test_the_nightly_flow_does_not_run_beside_another_applying_run(prefect_harness, tmp_path):
    from flows.nightly_purge import nightly_purge

    with Sandbox(population(), rates=FAST) as sandbox:
        path = sandbox.write_config(tmp_path, client_rates=FAST)
        with ledger_at(tmp_path) as holder, holder.lease("erasure"):
            with pytest.raises(LeaseHeld, match="the erasure run on"):
                nightly_purge(config_path=str(path), apply=True, force=True)
        assert sum(sandbox.request_count().values()) == 0


def test_a_system_whose_writes_keep_failing_stops_while_the_others_finish(tmp_path, capsys):
    with Sandbox(population(), rates=FAST) as sandbox:
        config = load_config(str(sandbox.write_config(tmp_path, client_rates=FAST, retries=0)))
        mollie = sandbox.fakes["mollie"]
        mollie.fail_next(10**6, 500, method="DELETE")

        assert run_purge(config, RULES, apply=True, day=TODAY, force=True, show=0) == 1

        with ledger_at(tmp_path) as ledger:
            [run] = ledger.list_runs()
            statuses = {}
            for action in ledger.actions(run["id"]):
                statuses.setdefault(action["system"], []).append(action["status"])
        planned = len(statuses["mollie"])
        assert planned > STOP_AFTER_FAILURES
        assert mollie.count("DELETE") == STOP_AFTER_FAILURES
        assert statuses["mollie"] == ["failed"] * STOP_AFTER_FAILURES + ["planned"] * (planned - STOP_AFTER_FAILURES)
        assert {system: set(s) for system, s in statuses.items() if system != "mollie"} == \
            {system: {"done"} for system in SYSTEMS if system != "mollie"}
        stderr = capsys.readouterr().err
        assert stderr.count("Stopped:") == 1
        assert (f"mollie: stopped after {STOP_AFTER_FAILURES} failed actions in a row (last: "
                in " ".join(stderr.split()))
        assert f"its {planned - STOP_AFTER_FAILURES} remaining actions are left for the next run" in \
            " ".join(stderr.split())

        mollie.faults.clear()  # the vendor is back: the next run does what was left
        assert run_purge(config, RULES, apply=True, day=TODAY, force=True, show=0) == 0
        assert mollie.count("DELETE", status=204) == planned
