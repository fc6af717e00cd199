"""What a vendor's API cannot do is handed to the owner once, not attempted again every night."""
from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

from connectors.base import ActionResult, Changes, Identifiers, Known, Outcome, Record, RecordRef
from vergeet import pipeline
from vergeet.ledger import Ledger
from vergeet.rules import load_rules

RULES = load_rules(Path(__file__).resolve().parents[1] / "retention_rules.toml")
AS_OF = date(2026, 11, 25)


class RefusingMoneybird:
    """A Moneybird that holds one old contact and refuses to delete it (documents refer to it)."""

    system = "moneybird"

    def __init__(self) -> None:
        self.updated_at = datetime(2020, 1, 1, tzinfo=timezone.utc)
        self.deletes: list[RecordRef] = []

    def records(self, since: datetime | None = None) -> Iterator[Record]:
        yield Record("moneybird", "contact", "c1", emails=("jan@example.nl",), first_name="Jan",
                     created_at=datetime(2019, 1, 1, tzinfo=timezone.utc), updated_at=self.updated_at)

    def changes(self, cursor: Mapping[str, Any] | None, known: Known) -> Changes:
        return Changes(list(self.records()), cursor={}, full=True)

    def search(self, identifiers: Identifiers) -> Iterator[Record]:
        return iter(())

    def delete(self, ref: RecordRef) -> ActionResult:
        self.deletes.append(ref)
        return ActionResult(Outcome.NOT_SUPPORTED, "archive it in Moneybird: documents refer to it")

    def anonymise(self, ref: RecordRef, fields: Sequence[str]) -> ActionResult:
        raise AssertionError("not planned here")


def night(ledger: Ledger, connector: RefusingMoneybird):
    connectors = {"moneybird": connector}
    view = pipeline.identity_view(pipeline.sync_all(connectors, ledger, full=True), RULES)
    plan = pipeline.make_plan(view, RULES, AS_OF, ledger)
    pipeline.execute(ledger, pipeline.store_plan(ledger, plan), connectors)
    return plan


def test_a_refused_delete_is_handed_over_once_and_tried_again_only_after_the_record_changed(tmp_path):
    moneybird = RefusingMoneybird()
    with Ledger(f"sqlite:///{tmp_path / 'ledger.db'}", b"pepper") as ledger:
        first = night(ledger, moneybird)
        second = night(ledger, moneybird)
        assert len(first.actions) == 1 and second.actions.empty
        assert moneybird.deletes == [RecordRef("moneybird", "contact", "c1")]
        waiting = second.awaiting_owner.iloc[0]
        assert (waiting["record_id"], waiting["detail"]) == ("c1", "archive it in Moneybird: documents refer to it")
        moneybird.updated_at = datetime.now(timezone.utc)  # the owner changed something in Moneybird
        third = night(ledger, moneybird)
        assert len(third.actions) == 1 and len(moneybird.deletes) == 2
