"""Identity view + retention decisions over a million synthetic records (issue 9, item 3c).

Builds N synthetic records (default 1,000,000; about 0.3 N people) directly as
the columnar `vergeet.identity.Inputs` frames, never as `Record` objects, and
times `build_view` (what `vergeet.pipeline.identity_view` runs) and `decide`
with the shipped rules. Prints the counts, the wall time of every stage
(generation too, but it is not part of the target), the peak memory and where
the time goes. Targets on the 2-core reference machine: view + decisions at
most 10 s, at most 2 GiB peak.

The measured part runs in a fresh Python process that loads the generated
inputs from a temporary pickle, so its peak RSS (`ru_maxrss`) is that of the
inputs + view + decisions, not of the generator. `--in-process` skips that.

    .venv/bin/python benchmarks/identity_decide.py                # 1M records
    .venv/bin/python benchmarks/identity_decide.py --records 100000 --profile
    .venv/bin/python benchmarks/identity_decide.py --digest       # a digest of the plan, to compare two versions

The population: every person has a personal e-mail address (some also a work
one, a few households share one), most have a Dutch mobile or landline
number; records are Moneybird contacts, invoices and quotes (which carry their
contact's e-mail/phone and link to the contact), Mailblue contacts with
newsletter consent, Mollie customers and payments (linked to the customer, or
one-off with a billing e-mail), and Google Calendar events (some shared by two
attendees, a few private without any). E-mail addresses are written with
case and whitespace variations, phone numbers in the usual Dutch spellings
(06-12345678, +31 6 1234 5678, 0031612345678, (06) 12345678, ...) and about
1 % in odd ones only `phonenumbers` reads (+31 (0)6 ..., tel. ..., foreign
numbers, typos). Names repeat (namesakes), activity spans ten years before the
run date, with some appointments planned after it.
"""
from __future__ import annotations

import argparse
import cProfile
import dataclasses
import gc
import hashlib
import hmac
import io
import json
import os
import pickle
import pstats
import resource
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vergeet.identity import Inputs  # noqa: E402
from vergeet.sandbox.population import DOMAINS, FIRST_NAMES, LAST_NAMES  # noqa: E402

AS_OF = date(2026, 11, 25)
TARGET_SECONDS = 10.0
TARGET_BYTES = 2 * 1024 ** 3
PEOPLE_PER_RECORD = 0.3
SHARES = {  # share of all records per (system, record_type)
    ("moneybird", "contact"): 0.18,
    ("moneybird", "sales_invoice"): 0.22,
    ("moneybird", "estimate"): 0.05,
    ("mailblue", "contact"): 0.16,
    ("mollie", "customer"): 0.10,
    ("mollie", "payment"): 0.17,
    ("google_calendar", "event"): 0.12,
}
RECORD_COLUMNS = ["system", "record_type", "record_id", "first_name", "last_name", "created_at", "updated_at",
                  "last_activity_at", "document_date", "consent_changed_at", "running_contract", "consent", "shared"]
TIME_COLUMNS = ["created_at", "updated_at", "last_activity_at", "document_date", "consent_changed_at"]
DAY_S = 86_400
NAT = np.iinfo(np.int64).min
STRINGS = pd.Series(["text"]).dtype  # pandas' default for strings: `str` from pandas 3, object before

# -- generation ------------------------------------------------------------------------------------------


def _obj(values) -> np.ndarray:
    return np.asarray(list(values), dtype=object)


def _syllable_names(rng: np.random.Generator, heads, tails, count: int) -> list[str]:
    names = sorted({h + t for h in heads for t in tails})
    return [names[i] for i in rng.permutation(len(names))[:count]]


class Population:
    """People as numpy arrays: names, e-mail addresses, phone numbers, when they were active."""

    def __init__(self, rng: np.random.Generator, size: int, as_of_s: int):
        self.rng, self.size = rng, size
        firsts = list(FIRST_NAMES) + _syllable_names(
            rng, ["Ma", "Jo", "Li", "Ro", "Sa", "Ni", "Ka", "Wi", "Da", "Fe", "Mi", "Ti", "Ha", "El", "Be"],
            ["rit", "ris", "na", "bin", "nne", "ek", "ja", "lem", "ni", "ke", "ra", "tse", "ns", "sje"], 160)
        roots = _syllable_names(
            rng, ["Ber", "Hoog", "Kool", "Wes", "Stri", "Mol", "Bran", "Veld", "Zon", "Dam", "Kroon", "Lin", "Ste",
                  "Ruy", "Vaar", "Beu", "Hul", "Gro", "Ter", "Wou", "Blo", "Kui", "Pol", "Ree", "Vin", "Hek",
                  "Boo", "Lan", "Schu", "Mee"],
            ["man", "stra", "sma", "kamp", "veld", "dijk", "huis", "berg", "hof", "ink", "ing", "er", "link",
             "broek", "horst", "wijk", "laar", "boom", "stein", "hout"], 600)
        lasts = list(LAST_NAMES) + [p + r for p in ("", "van ", "de ", "van der ", "ter ") for r in roots]
        first = rng.integers(len(firsts), size=size)
        common = rng.random(size) < 0.3  # the usual Dutch surnames: many namesakes
        last = np.where(common, rng.integers(len(LAST_NAMES), size=size),
                        rng.integers(len(LAST_NAMES), len(lasts), size=size))
        self.first = _obj(firsts)[first]
        self.last = _obj(lasts)[last]
        first_l = _obj(f.lower() for f in firsts)[first]
        last_l = _obj(x.lower().replace(" ", "") for x in lasts)[last]
        pid = np.arange(size).astype(str).astype(object)
        domain = _obj(DOMAINS)[rng.integers(len(DOMAINS), size=size)]
        self.email = first_l + "." + last_l + pid + "@" + domain
        households = np.flatnonzero(rng.random(size) < 0.01)
        households = households[households > 0]
        self.email[households] = self.email[households - 1]  # partners sharing one address
        self.email2 = np.where(rng.random(size) < 0.15, first_l + "@" + last_l + pid + ".nl", None)

        # Phones: E.164 digits after +31 (9 digits), or a foreign number written as is.
        has_phone = rng.random(size) < 0.65
        mobile = rng.random(size) < 0.8
        mobile_digits = "6" + rng.integers(10 ** 7, 10 ** 8, size=size).astype(str).astype(object)
        areas = _obj(["10", "20", "30", "35", "40", "50", "70", "72", "73", "76", "33", "15"])
        land_digits = areas[rng.integers(len(areas), size=size)] + rng.integers(
            10 ** 6, 10 ** 7, size=size).astype(str).astype(object)
        self.phone = np.where(has_phone, np.where(mobile, mobile_digits, land_digits), None)
        self.mobile = mobile & has_phone
        foreign = has_phone & (rng.random(size) < 0.004)
        belgian = "+32 47" + rng.integers(0, 10, size=size).astype(str).astype(object) + " " + rng.integers(
            100000, 1000000, size=size).astype(str).astype(object)
        german = "+49 151 " + rng.integers(10 ** 7, 10 ** 8, size=size).astype(str).astype(object)
        self.foreign = np.where(foreign, np.where(rng.random(size) < 0.5, belgian, german), None)

        # Activity: a first contact in the ten years before the run, then a while of coming back.
        ten_years = 3652 * DAY_S
        self.start = as_of_s - rng.integers(0, ten_years, size=size)
        span = (rng.exponential(500, size=size) * DAY_S).astype(np.int64)
        self.end = np.minimum(self.start + span, as_of_s + 60 * DAY_S)

    def moment(self, people: np.ndarray) -> np.ndarray:
        """A random moment in each person's active period (seconds since the epoch)."""
        width = self.end[people] - self.start[people]
        return self.start[people] + (self.rng.random(len(people)) * width).astype(np.int64)

    def emails(self, people: np.ndarray) -> np.ndarray:
        """One address of each person, as typed: mostly lower case, some capitalised, shouted or padded."""
        rng = self.rng
        second = self.email2[people]
        use_second = (second != None) & (rng.random(len(people)) < 0.3)  # noqa: E711
        out = np.where(use_second, second, self.email[people])
        style = rng.random(len(people))
        title = style < 0.10
        out[title] = _obj(v[:1].upper() + v[1:] for v in out[title])
        upper = (style >= 0.10) & (style < 0.15)
        out[upper] = _obj(v.upper() for v in out[upper])
        padded = (style >= 0.15) & (style < 0.27)
        out[padded] = " " + out[padded] + _obj(rng.choice([" ", "  ", "\t", ""], size=int(padded.sum())))
        return out

    def phones(self, people: np.ndarray) -> np.ndarray:
        """One number of each person (None for those without), in one of the ways people write it."""
        rng = self.rng
        digits = self.phone[people]
        out = np.full(len(people), None, dtype=object)
        has = digits != None  # noqa: E711
        mob = has & self.mobile[people]
        land = has & ~self.mobile[people]
        d = digits
        pick = rng.integers(0, 7, size=len(people))
        idx = np.flatnonzero(mob)
        if len(idx):
            m = d[idx]
            rest = _obj(v[1:] for v in m)
            a, b = _obj(v[1:5] for v in m), _obj(v[5:] for v in m)
            pairs = _obj(f"{v[1:3]} {v[3:5]} {v[5:7]} {v[7:]}" for v in m)
            forms = [
                "06-" + rest, "+31 6 " + a + " " + b, "0031" + m, "0" + m, "+31" + m, "06 " + pairs, "(06) " + rest]
            out[idx] = np.choose(pick[idx], forms)
        idx = np.flatnonzero(land)
        if len(idx):
            n = d[idx]
            area, local = _obj(v[:2] for v in n), _obj(v[2:] for v in n)
            forms = ["0" + area + "-" + local, "+31 " + area + " " + _obj(v[:3] for v in local) + " "
                     + _obj(v[3:] for v in local), "0031" + n, "0" + n, "+31" + n]
            out[idx] = np.choose(pick[idx] % 5, forms)
        # About 1 % written in ways only phonenumbers reads, or not at all.
        odd = np.flatnonzero(has & (rng.random(len(people)) < 0.01))
        if len(odd):
            kinds = rng.integers(0, 5, size=len(odd))
            n = d[odd]
            written = np.choose(kinds, [
                "+31 (0)" + _obj(v[:1] if v[0] == "6" else v[:2] for v in n) + " "
                + _obj(v[1:] if v[0] == "6" else v[2:] for v in n),
                "tel. 0" + n,
                "0031 (0)" + n,
                "0" + n + "1",  # a digit too many
                "0" + _obj(v[:3] for v in n),  # cut short
            ])
            out[odd] = written
        foreign = self.foreign[people]
        use_foreign = foreign != None  # noqa: E711
        out[use_foreign] = foreign[use_foreign]
        return out


def _seconds(as_of: date) -> int:
    return int(pd.Timestamp(as_of, tz="UTC").value // 10 ** 9)


def _times(seconds: np.ndarray, day: bool = False) -> pd.Series:
    """int64 seconds (NAT = missing) -> datetime64[us, UTC], as `frame_records` gives them."""
    s = np.asarray(seconds, dtype=np.int64)
    missing = s == NAT
    if day:
        s = np.where(missing, 0, s - s % DAY_S)
    us = np.where(missing, NAT, s * 1_000_000)
    return pd.Series(us.view("datetime64[us]")).dt.tz_localize("UTC")


def _none(n: int) -> np.ndarray:
    return np.full(n, NAT, dtype=np.int64)


def generate(n: int, seed: int, as_of: date) -> tuple[Inputs, dict]:
    """N records in the columnar form `build_view` takes, and a few facts about them."""
    rng = np.random.default_rng(seed)
    as_of_s = _seconds(as_of)
    counts = {k: int(n * share) for k, share in SHARES.items()}
    counts[("moneybird", "contact")] += n - sum(counts.values())
    size = max(2, round(n * PEOPLE_PER_RECORD))
    pop = Population(rng, size, as_of_s)
    blocks, ids, links = [], [], []
    offset = 0

    def block(system, record_type, record_ids, people, *, first=None, last=None, created=None, updated=None,
              activity=None, document=None, consent_changed=None, running=None, consent=None, shared=None):
        nonlocal offset
        k = len(record_ids)
        frame = {
            "system": np.full(k, system, dtype=object), "record_type": np.full(k, record_type, dtype=object),
            "record_id": record_ids,
            "first_name": first if first is not None else np.full(k, None, dtype=object),
            "last_name": last if last is not None else np.full(k, None, dtype=object),
            "created_at": created if created is not None else _none(k),
            "updated_at": updated if updated is not None else _none(k),
            "last_activity_at": activity if activity is not None else _none(k),
            "document_date": document if document is not None else _none(k),
            "consent_changed_at": consent_changed if consent_changed is not None else _none(k),
            "running_contract": running if running is not None else np.zeros(k, dtype=bool),
            "consent": consent if consent is not None else np.full(k, None, dtype=object),
            "shared": shared if shared is not None else np.zeros(k, dtype=bool),
        }
        blocks.append(frame)
        start = offset
        offset += k
        return start

    def identifiers(start, rows, kind, values):
        keep = values != None  # noqa: E711
        ids.append((start + rows[keep], kind, values[keep]))

    def names(people, share):
        named = rng.random(len(people)) < share
        return (np.where(named, pop.first[people], None), np.where(named, pop.last[people], None))

    # Moneybird contacts: about 60 % of the people; a few have two.
    k = counts[("moneybird", "contact")]
    mb_people = rng.permutation(size)[:k] if k <= size else rng.integers(size, size=k)
    dup = rng.random(k) < 0.02
    mb_people[dup] = rng.integers(size, size=int(dup.sum()))
    mb_ids = (np.arange(k, dtype=np.int64) + 400_000_000_000_000_000).astype(str).astype(object)
    created = pop.start[mb_people] + (rng.random(k) * 5 * DAY_S).astype(np.int64)
    first, last = names(mb_people, 0.97)
    rows = np.arange(k)
    start = block("moneybird", "contact", mb_ids, mb_people, first=first, last=last, created=created,
                  updated=created + (rng.random(k) * 400 * DAY_S).astype(np.int64),
                  activity=np.where(rng.random(k) < 0.05, pop.moment(mb_people), NAT),
                  running=rng.random(k) < 0.03)
    identifiers(start, rows, "email", pop.emails(mb_people))
    identifiers(start, rows, "phone", np.where(rng.random(k) < 0.75, pop.phones(mb_people), None))
    second = rng.random(k) < 0.1
    identifiers(start, rows[second], "email", pop.emails(mb_people[second]))

    # Invoices and quotes: the contact's data copied onto the document, and a link to the contact.
    for record_type, base in (("sales_invoice", 500_000_000_000_000_000), ("estimate", 600_000_000_000_000_000)):
        k = counts[("moneybird", record_type)]
        contact = np.minimum((rng.random(k) ** 1.5 * len(mb_people)).astype(np.int64), len(mb_people) - 1)
        people = mb_people[contact]
        day = pop.moment(people)
        first, last = names(people, 0.95)
        recent = day > as_of_s - 90 * DAY_S
        rows = np.arange(k)
        start = block("moneybird", record_type, (np.arange(k, dtype=np.int64) + base).astype(str).astype(object),
                      people, first=first, last=last, created=day,
                      updated=day + (rng.random(k) * 30 * DAY_S).astype(np.int64),
                      activity=day + (rng.random(k) * 20 * DAY_S).astype(np.int64), document=day,
                      running=recent & (rng.random(k) < (0.3 if record_type == "sales_invoice" else 0.0)))
        identifiers(start, rows, "email", np.where(rng.random(k) < 0.9, pop.emails(people), None))
        identifiers(start, rows, "phone", np.where(rng.random(k) < 0.4, pop.phones(people), None))
        links.append((start + rows, "moneybird/contact/" + mb_ids[contact]))

    # Mailblue: newsletter contacts, most subscribed, a quarter unsubscribed, some on no list.
    k = counts[("mailblue", "contact")]
    people = rng.permutation(size)[:k] if k <= size else rng.integers(size, size=k)
    created = pop.moment(people)
    state = rng.random(k)
    consent = np.where(state < 0.6, "subscribed", np.where(state < 0.85, "unsubscribed", None)).astype(object)
    changed = np.where(consent == "unsubscribed",
                       created + (rng.random(k) * np.maximum(as_of_s - created, DAY_S)).astype(np.int64), NAT)
    first, last = names(people, 0.7)
    rows = np.arange(k)
    start = block("mailblue", "contact", (np.arange(k) + 1).astype(str).astype(object), people, first=first,
                  last=last, created=created, updated=np.where(changed != NAT, changed, created),
                  activity=np.where(consent == "subscribed",
                                    np.minimum(as_of_s, created + (rng.random(k) * 2000 * DAY_S).astype(np.int64)),
                                    NAT),
                  consent_changed=changed, consent=consent)
    identifiers(start, rows, "email", pop.emails(people))
    identifiers(start, rows, "phone", np.where(rng.random(k) < 0.25, pop.phones(people), None))

    # Mollie customers: mostly people who are also Moneybird contacts.
    k = counts[("mollie", "customer")]
    from_mb = rng.random(k) < 0.8
    cst_people = np.where(from_mb, mb_people[rng.integers(len(mb_people), size=k)], rng.integers(size, size=k))
    cst_ids = "cst_" + (np.arange(k) + 10 ** 9).astype(str).astype(object)
    first, last = names(cst_people, 0.9)
    rows = np.arange(k)
    created = pop.moment(cst_people)
    start = block("mollie", "customer", cst_ids, cst_people, first=first, last=last, created=created,
                  activity=np.maximum(created, pop.moment(cst_people)), running=rng.random(k) < 0.1)
    identifiers(start, rows, "email", pop.emails(cst_people))

    # Mollie payments: of a customer (85 %), or one-off with a billing address.
    k = counts[("mollie", "payment")]
    linked = rng.random(k) < 0.85
    customer = rng.integers(len(cst_people), size=k)
    people = np.where(linked, cst_people[customer], rng.integers(size, size=k))
    day = pop.moment(people)
    billing = ~linked | (rng.random(k) < 0.3)
    first, last = names(people, 0.5)
    rows = np.arange(k)
    start = block("mollie", "payment", "tr_" + (np.arange(k) + 10 ** 9).astype(str).astype(object), people,
                  first=first, last=last, created=day, activity=day, document=day, running=rng.random(k) < 0.01)
    identifiers(start, rows, "email", np.where(billing, pop.emails(people), None))
    identifiers(start, rows, "phone", np.where(billing & (rng.random(k) < 0.3), pop.phones(people), None))
    links.append((start + rows[linked], "mollie/customer/" + cst_ids[customer[linked]]))

    # Calendar events: clients' appointments; 15 % with two attendees (shared), 2 % private ones.
    k = counts[("google_calendar", "event")]
    clients = np.where(rng.random(k) < 0.85, mb_people[rng.integers(len(mb_people), size=k)],
                       rng.integers(size, size=k))
    ended = pop.moment(clients)
    ended = np.where(rng.random(k) < 0.02, as_of_s + (rng.random(k) * 60 * DAY_S).astype(np.int64), ended)
    kind = rng.random(k)
    private = kind < 0.02
    shared = (kind >= 0.02) & (kind < 0.17)
    first, last = names(clients, 0.8)
    first[private], last[private] = None, None
    rows = np.arange(k)
    start = block("google_calendar", "event", "info@example.nl/evt" + np.arange(k).astype(str).astype(object),
                  clients, first=first, last=last, created=ended - (rng.random(k) * 30 * DAY_S).astype(np.int64),
                  updated=ended - DAY_S, activity=ended, running=ended > as_of_s, shared=shared)
    identifiers(start, rows[~private], "email", pop.emails(clients[~private]))
    other = rng.integers(size, size=int(shared.sum()))
    identifiers(start, rows[shared], "email", pop.emails(other))

    columns = {c: np.concatenate([b[c] for b in blocks]) for c in RECORD_COLUMNS}
    records = pd.DataFrame({c: (_times(v, day=(c == "document_date")) if c in TIME_COLUMNS else v)
                            for c, v in columns.items()})
    # Strings as `frame_records` gives them (pandas' default string dtype); flags as plain booleans.
    for c in ("system", "record_type", "record_id", "first_name", "last_name", "consent"):
        records[c] = pd.Series(columns[c]).astype(STRINGS)
    # Every record decided on and dating its person (no unreadable series, no unpaid payments), so the plan
    # digests stay comparable with earlier versions; the columns are there as `frame_records` gives them.
    records["left_alone"] = np.full(len(records), None, dtype=object)
    records["counts_as_contact"] = True
    identifiers_frame = pd.DataFrame({
        "row": np.concatenate([r for r, _, _ in ids]).astype(np.int64),
        "kind": np.concatenate([np.full(len(r), kind, dtype=object) for r, kind, _ in ids]),
        "value": np.concatenate([v for _, _, v in ids]),
    }).sort_values("row", kind="stable").reset_index(drop=True)
    links_frame = pd.DataFrame({"row": np.concatenate([r for r, _ in links]).astype(np.int64),
                                "target": np.concatenate([t for _, t in links])}
                               ).sort_values("row", kind="stable").reset_index(drop=True)
    for frame, c in ((identifiers_frame, "kind"), (identifiers_frame, "value"), (links_frame, "target")):
        frame[c] = frame[c].astype(STRINGS)
    phones = identifiers_frame["value"][identifiers_frame["kind"] == "phone"]
    facts = {"people_generated": size, "identifiers": len(identifiers_frame), "links": len(links_frame),
             "distinct_phone_spellings": int(phones.nunique()),
             "records_per_type": {f"{s}/{t}": c for (s, t), c in counts.items()}}
    return Inputs(records, identifiers_frame, links_frame), facts


# -- measuring -------------------------------------------------------------------------------------------


class Stages:
    """Exclusive wall time per wrapped function (time in wrapped callees is not counted twice)."""

    def __init__(self):
        self.self_time: dict[str, float] = {}
        self.calls: dict[str, int] = {}
        self.stack: list[list[float]] = []

    def wrap(self, module, name: str, label: str) -> None:
        original = getattr(module, name, None)
        if original is None:
            return
        stages = self

        def timed(*args, **kwargs):
            stages.stack.append([time.perf_counter(), 0.0])
            try:
                return original(*args, **kwargs)
            finally:
                began, inner = stages.stack.pop()
                elapsed = time.perf_counter() - began
                stages.self_time[label] = stages.self_time.get(label, 0.0) + elapsed - inner
                stages.calls[label] = stages.calls.get(label, 0) + 1
                if stages.stack:
                    stages.stack[-1][1] += elapsed

        setattr(module, name, timed)

    def section(self, label: str):
        stages = self

        class Section:
            def __enter__(self):
                stages.stack.append([time.perf_counter(), 0.0])
                return self

            def __exit__(self, *exc):
                began, inner = stages.stack.pop()
                elapsed = time.perf_counter() - began
                stages.self_time[label] = stages.self_time.get(label, 0.0) + elapsed - inner
                stages.calls[label] = stages.calls.get(label, 0) + 1
                if stages.stack:
                    stages.stack[-1][1] += elapsed
                self.elapsed = elapsed

        return Section()


# Functions timed when they exist (old and new versions of the code differ); time in one that another timed
# function calls is counted once, for the callee. "(rest)" is the time in build_view/decide's own lines.
IDENTITY_STAGES = ["_utc", "_keys", "_normalised", "_per_distinct", "normalise_emails", "normalise_phones",
                   "_parse_phone", "_duplicated", "_keys_and_targets", "connected_components", "_full_names",
                   "normalise_name", "_people"]
DECIDE_STAGES = ["_hash_identifiers", "hash_identifiers", "_people_with", "_reappeared", "_exception_masks", "_utc_ns", "_day",
                 "_actions", "_dates", "_kept", "_exception_names", "_best_reason", "_settle_shared",
                 "_left_alone", "_skip_settled", "_awaiting", "_ordered", "_sort_order"]


def _hasher(pepper: bytes):
    """The ledger's keyed hash (HMAC-SHA256 hex of "kind:value") through hmac.digest, the fast path."""
    def hash_identifier(kind: str, value: str) -> str:
        return hmac.digest(pepper, f"{kind}:{value}".encode(), "sha256").hex()
    return hash_identifier


def _context(view, seed: int):
    from vergeet.decide import Context
    rng = np.random.default_rng(seed + 1)
    pepper = b"benchmark-pepper"
    hasher = _hasher(pepper)
    ids = view.identifiers
    pick = lambda k: ids.iloc[rng.choice(len(ids), size=min(k, len(ids)), replace=False)]  # noqa: E731
    hashes = lambda frame: frozenset(hasher(k, v) for k, v in zip(frame["kind"], frame["value"]))  # noqa: E731
    events = view.mentions.loc[view.mentions["system"] == "google_calendar", "key"].drop_duplicates()
    anonymised = events.iloc[rng.choice(len(events), size=min(1000, len(events)), replace=False)] if len(events) \
        else events
    keys = view.mentions["key"].drop_duplicates()
    suppressed = sorted(hashes(pick(100)) | {hasher("email", f"gone{i}@example.nl") for i in range(100)})
    if "suppressed_since" in {f.name for f in dataclasses.fields(Context)}:
        # erased between three years and a month ago: their records created since then have reappeared
        erased = pd.Timestamp(AS_OF, tz="UTC") - pd.to_timedelta(rng.integers(30, 3 * 365, len(suppressed)), unit="D")
        suppression = {"suppressed_since": {h: t.to_pydatetime() for h, t in zip(suppressed, erased)}}
    else:  # the first version of Context
        suppression = {"suppressed_hashes": frozenset(suppressed)}
    return Context(
        hasher=hasher,
        **suppression,
        held_hashes=hashes(pick(10)),
        held_records=frozenset(keys.iloc[rng.choice(len(keys), size=min(10, len(keys)), replace=False)]),
        open_request_hashes=hashes(pick(10)),
        anonymised_at={k: pd.Timestamp(AS_OF, tz="UTC").to_pydatetime() for k in anonymised},
    )


def _rss() -> int:
    """Peak resident set size of this process so far, in bytes (Linux reports KiB)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def _current_rss() -> int:
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return 0


def _digest(plan) -> str:
    """A digest of what the plan says, to compare two versions of the code on the same data."""
    h = hashlib.sha256()
    for name, frame in (("actions", plan.actions), ("kept", plan.kept), ("reappeared", plan.reappeared)):
        frame = frame.astype(object).astype(str)
        frame = frame.sort_values(list(frame.columns), kind="stable")
        h.update(name.encode())
        h.update(frame.to_csv(index=False).encode())
    h.update(json.dumps([plan.records_per_system, plan.unidentified], sort_keys=True).encode())
    return h.hexdigest()[:16]


def measure(inputs: Inputs, as_of: date, seed: int, profile: bool, digest: bool) -> dict:
    import vergeet.decide as decide_module
    import vergeet.identity as identity_module
    from vergeet.rules import SHIPPED_RULES, load_rules

    rules = load_rules(SHIPPED_RULES)
    documents = rules.exceptions.get("document_retention")
    document_types = {f"{r.system}/{r.record_type}" for r in rules.rules if r.clock == "document_date"
                      and r.action != "keep"} if documents else set()  # as vergeet.pipeline.identity_view
    stages = Stages()
    if not profile:
        for name in IDENTITY_STAGES:
            stages.wrap(identity_module, name, f"identity.{name}")
        for name in DECIDE_STAGES:
            stages.wrap(decide_module, name, f"decide.{name}")
    profiler = cProfile.Profile() if profile else None
    result: dict = {"rss_inputs": _current_rss()}
    gc.collect()

    if profiler:
        profiler.enable()
    with stages.section("build_view (rest)") as s_view:
        view = identity_module.build_view(inputs, contact_systems=rules.contact_systems(),
                                          document_types=document_types)
    with stages.section("decide (rest)") as s_plain:
        plan = decide_module.decide(view, rules, as_of)
    if profiler:
        profiler.disable()
    plain_stages, plain_calls = dict(stages.self_time), dict(stages.calls)
    result.update(view_s=s_view.elapsed, decide_s=s_plain.elapsed, rss_after_plain=_rss(),
                  records=int(view.mentions["key"].nunique()), mentions=len(view.mentions),
                  people=len(view.people), people_identifiable=int(view.people["identifiable"].sum()),
                  people_name_shared=int(view.people["name_shared"].sum()),
                  distinct_identifiers=len(view.identifiers),
                  actions=len(plan.actions), kept=len(plan.kept), unidentified=plan.unidentified)
    if digest:
        result["digest_plain"] = _digest(plan)
    del plan
    gc.collect()

    with stages.section("context (test setup)"):
        context = _context(view, seed)
    if profiler:
        profiler.enable()
    with stages.section("decide (rest)") as s_ctx:
        plan = decide_module.decide(view, rules, as_of, context)
    if profiler:
        profiler.disable()
    result.update(decide_ctx_s=s_ctx.elapsed, rss_peak=_rss(), actions_ctx=len(plan.actions),
                  kept_ctx=len(plan.kept), reappeared=len(plan.reappeared))
    if digest:
        result["digest_ctx"] = _digest(plan)
    result["stages_plain"] = plain_stages
    result["stages_ctx"] = {k: v - plain_stages.get(k, 0.0) for k, v in stages.self_time.items()
                            if v - plain_stages.get(k, 0.0) > 0 and k != "context (test setup)"}
    result["calls_plain"] = plain_calls
    result["calls_ctx"] = {k: v - plain_calls.get(k, 0) for k, v in stages.calls.items()}
    if profiler:
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out)
        stats.sort_stats("tottime").print_stats(15)
        out.write("\n")
        stats.sort_stats("cumulative").print_stats(25)
        result["profile"] = out.getvalue()
    return result


# -- report ----------------------------------------------------------------------------------------------


def _gib(n: int) -> str:
    return f"{n / 1024 ** 3:.2f} GiB"


def report(args, facts: dict, gen_s: float, r: dict) -> None:
    print(f"records            {r['records']:,}  ({r['mentions']:,} record-person rows; shared events count per "
          "attendee)")
    print("  per type         " + ", ".join(f"{k} {v:,}" for k, v in facts["records_per_type"].items()))
    print(f"people             {r['people']:,} in the view ({r['people_identifiable']:,} identifiable, "
          f"{r['people_name_shared']:,} with a namesake); {facts['people_generated']:,} generated")
    print(f"identifiers        {facts['identifiers']:,} as written, {r['distinct_identifiers']:,} distinct normalised;"
          f" {facts['distinct_phone_spellings']:,} distinct phone spellings; links {facts['links']:,}")
    print(f"plan               {r['actions']:,} actions, {r['kept']:,} kept, {r['unidentified']:,} unidentified; with "
          f"ledger context {r['actions_ctx']:,} actions, {r['reappeared']:,} reappeared")
    print()
    print(f"generation         {gen_s:7.2f} s   (not part of the target)")
    if "load_s" in r:
        print(f"load in child      {r['load_s']:7.2f} s   (not part of the target)")
    total = r["view_s"] + r["decide_s"]
    total_ctx = r["view_s"] + r["decide_ctx_s"]
    print(f"build_view         {r['view_s']:7.2f} s")
    print(f"decide             {r['decide_s']:7.2f} s   (empty ledger context)")
    print(f"decide + ledger    {r['decide_ctx_s']:7.2f} s   (hasher=hmac.digest, 200 suppressed, 10 held, "
          "10 open requests, 10 held records, 1000 anonymised)")
    ok_t = "OK" if max(total, total_ctx) <= TARGET_SECONDS else "OVER"
    print(f"view + decide      {total:7.2f} s   (with ledger context {total_ctx:.2f} s)   target <= "
          f"{TARGET_SECONDS:.0f} s: {ok_t}")
    ok_m = "OK" if r["rss_peak"] <= TARGET_BYTES else "OVER"
    where = "fresh process: inputs + view + decisions" if not args.in_process else "this process, generation included"
    print(f"peak RSS           {_gib(r['rss_peak'])}   ({where}; inputs alone {_gib(r['rss_inputs'])}; after the "
          f"first plan {_gib(r['rss_after_plain'])})   target <= 2 GiB: {ok_m}")
    if "digest_plain" in r:
        print(f"plan digest        {r['digest_plain']} (empty context)  {r['digest_ctx']} (ledger context)")
    if "profile" in r:
        print("\ncProfile (view + both decisions), top by own time, then by cumulative time:")
        print(r["profile"])
        return
    for title, stages, calls_of in (
            ("where the time goes: build_view + decide (empty context)", r["stages_plain"], r["calls_plain"]),
            ("the second decide, with the ledger context", r["stages_ctx"], r["calls_ctx"])):
        print(f"\n{title}")
        for label, seconds in sorted(stages.items(), key=lambda kv: -kv[1]):
            if seconds >= 0.005:
                calls = calls_of.get(label, 0)
                print(f"  {label:34s} {seconds:7.2f} s" + (f"   ({calls:,} calls)" if calls > 1 else ""))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=9)
    parser.add_argument("--as-of", type=date.fromisoformat, default=AS_OF)
    parser.add_argument("--profile", action="store_true", help="cProfile top functions instead of the stage timers")
    parser.add_argument("--digest", action="store_true", help="print a digest of the plans (slow; not timed)")
    parser.add_argument("--in-process", action="store_true", help="measure in this process, not a fresh one")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child:
        began = time.perf_counter()
        with open(args.child, "rb") as f:
            inputs = pickle.load(f)
        load_s = time.perf_counter() - began
        result = measure(inputs, args.as_of, args.seed, args.profile, args.digest)
        result["load_s"] = load_s
        sys.stdout.write(json.dumps(result) + "\n")
        return 0

    began = time.perf_counter()
    inputs, facts = generate(args.records, args.seed, args.as_of)
    gen_s = time.perf_counter() - began
    print(f"python {sys.version.split()[0]}, pandas {pd.__version__}, numpy {np.__version__}, "
          f"{os.cpu_count()} CPUs; {args.records:,} records, seed {args.seed}, as of {args.as_of}", flush=True)
    if args.in_process:
        result = measure(inputs, args.as_of, args.seed, args.profile, args.digest)
    else:
        with tempfile.NamedTemporaryFile(suffix=".pickle", delete=False) as f:
            pickle.dump(inputs, f, protocol=pickle.HIGHEST_PROTOCOL)
            path = f.name
        del inputs
        gc.collect()
        try:
            command = [sys.executable, __file__, "--child", path, "--seed", str(args.seed),
                       "--as-of", args.as_of.isoformat()] + (["--profile"] if args.profile else []) \
                + (["--digest"] if args.digest else [])
            done = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=True)
        finally:
            os.unlink(path)
        result = json.loads(done.stdout.strip().splitlines()[-1])
    report(args, facts, gen_s, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
