"""Erasure plans and outcome tables for the terminal, and masked identifiers: record ids and masks only.

The purge's plan and outcome in words are `vergeet.plan_text`.
"""
from __future__ import annotations

import pandas as pd
from rich.table import Table

from vergeet.erasure import ErasurePlan
from vergeet.identity import IdentityView
from vergeet.mask import mask
from vergeet.rules import Rules

HASHED = {"email": "e-mail (hashed)", "phone": "phone (hashed)"}


def masked_people(view: IdentityView, people: pd.Series) -> dict[int, str]:
    """Person -> their identifiers masked (`j***@g***.com, +316******78`).

    A hashed view (the nightly sync's) knows keyed hashes only: it names their kinds (`e-mail (hashed)`).
    """
    ids = view.identifiers[view.identifiers["person"].isin(people.unique())]
    masked = ids["kind"].map(HASHED) if view.hashed else [mask(k, v) for k, v in zip(ids["kind"], ids["value"])]
    return ids.assign(masked=masked).groupby("person")["masked"].agg(", ".join).to_dict()


def summary_table(rows: list[dict], title: str = "Outcome") -> Table:
    table = Table(title=title)
    for column in ("system", "rule", "outcome", "count"):
        table.add_column(column)
    for row in rows:
        style = "red" if row["outcome"] == "failed" else ("yellow" if row["outcome"] == "not_supported" else "")
        table.add_row(row["system"], row["rule"], f"[{style}]{row['outcome']}[/]" if style else row["outcome"],
                      str(row["count"]))
    return table


def erasure_tables(erasure: ErasurePlan, rules: Rules) -> list[Table]:
    """An erasure plan for the owner to approve: what goes (and what ends with it), and what stays and why
    (record ids only)."""
    plan = erasure.plan
    erased = Table(title="Will be erased")
    for column in ("system", "record", "action", "rule"):
        erased.add_column(column)
    for row in plan.actions.itertuples(index=False):
        action = row.action if row.action != "anonymise" else f"anonymise {', '.join(row.fields)}"
        erased.add_row(row.system, f"{row.record_type} {row.record_id}", action, row.rule_id)
    for key, parent in erasure.ended(rules).items():
        system, record_type, record_id = key.split("/", 2)
        erased.add_row(system, f"{record_type} {record_id}", f"ends with {parent.split('/', 1)[1]}", "-")
    kept = Table(title="Kept (by law, or left for you to check)")
    for column in ("system", "record", "until", "why"):
        kept.add_column(column)
    for row in erasure.kept(rules).itertuples(index=False):
        until = str(row.retained_until) if pd.notna(row.retained_until) else "-"
        kept.add_row(row.system, f"{row.record_type} {row.record_id}", until,
                     row.why + (f" ({row.retained_by})" if row.retained_by else ""))
    return [table for table in (erased, kept) if table.row_count]
