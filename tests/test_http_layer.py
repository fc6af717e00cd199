"""The shared HTTP layer: query strings (which carry e-mails in searches) never reach the logs, and an odd payload
is a VendorBadResponse from every protocol method."""
from __future__ import annotations

import logging

import pytest
import responses

from connectors.base import Connector
from connectors.http import PROTOCOL_METHODS, BearerAuth, VendorBadResponse, VendorSession, vendor_payloads


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


def test_every_method_of_the_connector_protocol_turns_a_payload_error_into_a_bad_response():
    """A connector reading an answer as documented raises KeyError and the like on an odd one: each protocol
    method (and each generator it returns) says so as a VendorBadResponse naming the system, not the payload."""
    protocol = [name for name, value in vars(Connector).items() if callable(value) and not name.startswith("_")]
    assert set(protocol) == set(PROTOCOL_METHODS)

    def odd(self, *args, **kwargs):
        return {"contact": "not a mapping"}["id"]

    def odd_items(self, *args, **kwargs):
        yield {"id": 1}
        yield [][0]

    methods = {name: odd_items if name in ("records", "search") else odd for name in protocol}
    Odd = vendor_payloads(type("Odd", (), {"system": "example", **methods}))
    for name in protocol:
        with pytest.raises(VendorBadResponse, match="^example: .*expected shape"):
            result = getattr(Odd(), name)()
            list(result)
