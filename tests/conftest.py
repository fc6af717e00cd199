"""Shared test setup: no network, Prefect in a throw-away home, no analytics."""
from __future__ import annotations

import os
import tempfile

# Set before anything imports Prefect: a temporary home, no telemetry, and the
# startup timeout a fresh database needs on a 2-core machine.
_PREFECT_HOME = tempfile.mkdtemp(prefix="vergeet-prefect-")
os.environ.setdefault("PREFECT_HOME", _PREFECT_HOME)
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
os.environ.setdefault("DO_NOT_TRACK", "1")


import pytest  # noqa: E402  (after the environment above is set)


@pytest.fixture(scope="session")
def prefect_harness():
    """One temporary Prefect server for the whole test session (it takes ~20 s to start)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        yield
