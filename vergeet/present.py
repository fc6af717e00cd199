"""Outcome tables and masked identifiers for the terminal: record ids and masks only.

The purge's plan and outcome, and an erasure plan, in words are `vergeet.plan_text`.
"""
from __future__ import annotations

import pandas as pd
from rich.table import Table

from vergeet.identity import IdentityView
from vergeet.mask import mask

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
