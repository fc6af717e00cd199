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
