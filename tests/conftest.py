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
# The terminal's language follows the locale where no --lang or config says otherwise: tests read English.
for _name in ("LC_ALL", "LC_MESSAGES"):
    os.environ.pop(_name, None)
os.environ["LANG"] = "C.UTF-8"


import pytest  # noqa: E402  (after the environment above is set)

from pathlib import Path  # noqa: E402

_PROJECT = Path(__file__).resolve().parents[1]
#: what vergeet writes for a person (reports, certificates, confirmations): never into the project folder
_PERSONS_DOCUMENTS = ("*-request-*.html", "*-request-*.json")


@pytest.fixture(autouse=True)
def _no_personal_documents_in_the_project_folder():
    """A document for a person holds personal data: a test writes it under its tmp_path (`--out`, `out_dir`,
    `chdir`), never where a commit could pick it up. A stray one is removed and fails the test that wrote it."""
    before = {path for pattern in _PERSONS_DOCUMENTS for path in _PROJECT.glob(pattern)}
    yield
    stray = {path for pattern in _PERSONS_DOCUMENTS for path in _PROJECT.glob(pattern)} - before
    for path in stray:
        path.unlink()
    assert not stray, f"the test wrote {sorted(path.name for path in stray)} into the project folder"


@pytest.fixture(scope="session")
def prefect_harness():
    """One temporary Prefect server for the whole test session (it takes ~20 s to start)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        yield


@pytest.fixture(scope="session")
def postgres_server():
    """A real PostgreSQL server for the session, from the `pgserver` package (PostgreSQL's own binaries, bundled
    in a wheel), listening on a Unix socket in a temporary folder only: no TCP port at all."""
    try:
        import pgserver
    except ImportError:
        pytest.skip("PostgreSQL tests skipped: the pgserver package has no wheel for this Python or machine "
                    "(it has for CPython 3.9-3.12 on Linux x86_64, macOS arm64 and Windows x64)")
    # not under pytest's tmp_path: run as root, pgserver runs PostgreSQL as an unprivileged user, who cannot
    # enter pytest's owner-only folders
    folder = tempfile.mkdtemp(prefix="vergeet-postgres-")
    server = pgserver.get_server(folder, cleanup_mode="delete")
    yield server
    server.cleanup()


@pytest.fixture
def postgres_url(postgres_server, request):
    """A SQLAlchemy URL of a new, empty database on the session's PostgreSQL server (one per test)."""
    import re

    name = "t_" + re.sub(r"\W", "_", request.node.name.lower())[:50] + f"_{os.getpid()}"
    postgres_server.psql(f'DROP DATABASE IF EXISTS "{name}";')
    postgres_server.psql(f'CREATE DATABASE "{name}";')
    uri = postgres_server.get_uri(name)
    return uri.replace("postgresql://", "postgresql+psycopg://", 1)
