"""`vergeet requests list`: open requests with days left, overdue ones marked."""
from __future__ import annotations

from datetime import date, timedelta

from typer.testing import CliRunner

from vergeet.cli import app
from vergeet.ledger import Ledger


def test_open_requests_with_days_left_and_overdue_marked(tmp_path):
    config = tmp_path / "vergeet.toml"
    config.write_text(f'[store]\nurl = "sqlite:///{tmp_path}/ledger.db"\npepper = "test-pepper"\n')
    today = date(2026, 11, 25)
    with Ledger(f"sqlite:///{tmp_path}/ledger.db", b"test-pepper") as ledger:
        on_time = ledger.register_request("access", [ledger.hash_identifier("email", "a@example.nl")],
                                          received=today - timedelta(days=10))
        late = ledger.register_request("erasure", [ledger.hash_identifier("email", "b@example.nl")],
                                       received=today - timedelta(days=40))
        closed = ledger.register_request("access", [ledger.hash_identifier("email", "c@example.nl")],
                                         received=today - timedelta(days=5))
        ledger.set_request_status(closed, "completed", "report sent")
    result = CliRunner().invoke(app, ["--config", str(config), "requests", "list", "--today", today.isoformat()],
                                terminal_width=200)
    assert result.exit_code == 0, result.output
    rows = {line.split("│")[1].strip(): line for line in result.output.splitlines() if line.startswith("│")}
    assert set(rows) == {str(on_time), str(late)}
    assert "│ 18 " in rows[str(on_time)]
    assert "OVERDUE by 12" in rows[str(late)]
