"""The shared HTTP layer: query strings (which carry e-mails in searches) never reach the logs."""
from __future__ import annotations

import logging

import responses

from connectors.http import BearerAuth, VendorSession


@responses.activate
def test_retry_warnings_and_debug_lines_carry_no_query(caplog):
    url = "https://vendor.test/api/contacts"
    responses.get(url, status=503)
    responses.get(url, json=[], status=200)
    session = VendorSession("vendor", "https://vendor.test/api", BearerAuth("t"), retries=2, backoff_factor=0)
    with caplog.at_level(logging.DEBUG):
        session.json("GET", "contacts", params={"email": "jan.jansen@example.nl", "phone": "+31612345678"})
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "contacts?<redacted>" in logged  # the lines are there, without their query
    assert "jan.jansen" not in logged and "31612345678" not in logged
