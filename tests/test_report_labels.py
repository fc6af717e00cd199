"""What a person reads is for a person (issue 14): the access report and the erasure certificate, in Dutch and
in English, show labels instead of vendor field names, statuses as words, invoice numbers instead of internal
ids, dates in the report's language and no API URL; the English pages carry no Dutch processor description."""
from __future__ import annotations

import html
import re
from datetime import timedelta

import pytest

from connectors.base import Identifiers
from vergeet import access, erasure
from vergeet.access import classify
from vergeet.config import load_config
from vergeet.connect import build_connectors, open_ledger
from vergeet.sandbox import Sandbox

from test_erasure import FAST, RULES, TODAY, population

EMAIL = "lotte.dekker@example.nl"
API_URLS = ("/api/v2/", "/v2/", "/api/3/", "googleapis.com", "api.mollie.com", "api-us1.com")
ISO_DATE = re.compile(r"\b\d{4}-\d{2}-\d{2}\b")


@pytest.fixture(scope="module")
def pages(tmp_path_factory):
    """Lotte (in all four systems): her report and certificate in both languages, as visible text and as HTML,
    and the records found."""
    tmp = tmp_path_factory.mktemp("labels")
    with Sandbox(population(), rates=FAST) as sandbox:
        config = load_config(str(sandbox.write_config(tmp, client_rates=FAST, retries=1)))
        connectors = build_connectors(config)
        found = access.find_person(connectors, classify([EMAIL]), RULES)
        out = {}
        for lang in ("nl", "en"):
            report = access.access_report(found, RULES, subject=Identifiers(emails=(EMAIL,)), as_of=TODAY, lang=lang)
            out[("report", lang)] = access.render_html(report)
        ledger = open_ledger(config)
        with ledger:
            request = erasure.register(ledger, classify([EMAIL]), RULES, received=TODAY, verified_by="ID gezien",
                                       scope=["all"])
            plan = erasure.plan_erasure(connectors, classify([EMAIL]), RULES, ledger, request, as_of=TODAY,
                                        systems=erasure.scope_systems(["all"], RULES, connectors))
            for lang in ("nl", "en"):
                certificate = erasure.certificate(ledger, plan, RULES, None, [], "open", lang)
                paths = erasure.write_certificate(certificate, tmp / lang)
                out[("certificate", lang)] = next(p for p in paths if p.suffix == ".html").read_text(encoding="utf-8")
    return out, found.records()


def visible(page: str) -> str:
    """The text a reader sees: no style sheet, no tags, entities decoded."""
    return html.unescape(re.sub(r"<[^>]+>", " ", re.sub(r"<style.*?</style>", "", page, flags=re.S)))


def keys_of(value) -> set[str]:
    if isinstance(value, dict):
        return set(value) | set().union(*(keys_of(v) for v in value.values()))
    if isinstance(value, list):
        return set().union(*(keys_of(v) for v in value))
    return set()


def vendor_keys(records) -> set[str]:
    """Every dict key of the records found that is a vendor's name for a field (snake_case or camelCase), never
    a word of prose."""
    keys = set().union(*(keys_of(r.fields) for r in records))
    return {k for k in keys if "_" in k.strip("_") or re.search(r"[a-z][A-Z]", k) or k.startswith("_")}


def test_the_records_carry_every_system(pages):
    _, records = pages
    assert {r.system for r in records} == {"moneybird", "mailblue", "mollie", "google_calendar"}
    assert {"send_invoices_to_email", "firstName", "contactLists", "consumerAccount", "responseStatus"} <= \
        vendor_keys(records)


@pytest.mark.parametrize("document", ["report", "certificate"])
@pytest.mark.parametrize("lang", ["nl", "en"])
def test_no_vendor_field_name_and_no_api_url(pages, document, lang):
    out, records = pages
    page, text = out[(document, lang)], visible(out[(document, lang)])
    shown = [k for k in sorted(vendor_keys(records)) if re.search(rf"(?<![\w-]){re.escape(k)}(?![\w-])", text)]
    assert shown == []
    assert not re.search(r"\w\[\d+\]", text)  # no flattened paths such as attendees[0].email
    assert [u for u in API_URLS if u in page] == []
    assert ISO_DATE.findall(text) == []


@pytest.mark.parametrize("document", ["report", "certificate"])
def test_english_pages_carry_no_dutch_processor_description(pages, document):
    out, _ = pages
    text = visible(out[(document, "en")])
    dutch = [p.service for p in RULES.processors.values() if p.service != getattr(p, "service_en", None)]
    assert dutch and [s for s in dutch if s in text] == []


@pytest.mark.parametrize(("lang", "label", "status"), [("nl", "Lijst 1: inschrijving", "ingeschreven"),
                                                        ("en", "List 1: subscription", "subscribed")])
def test_a_list_status_is_a_word_and_an_invoice_its_number(pages, lang, label, status):
    out, records = pages
    text = visible(out[("report", lang)])
    assert re.search(rf"{label}\s+{status}\b", text)
    invoice = next(r for r in records if r.record_type == "sales_invoice")
    assert invoice.fields["invoice_id"] in text and invoice.record_id not in text
    assert ("Factuurnummer" if lang == "nl" else "Invoice number") in text
    month = "december" if lang == "nl" else "December"
    assert re.search(rf"\b\d{{1,2}} {month} \d{{4}}\b", text)


def test_every_field_a_rule_may_erase_has_a_label_in_both_languages():
    """The certificate names erased fields by the connectors' labels only: none may fall back to the raw key."""
    import connectors

    for system in connectors.SYSTEMS:
        labels = connectors.record_labels(system).fields
        for record_type, fields in connectors.record_fields(system).items():
            missing = sorted(f for f in fields if not all(labels.get(f, ("", ""))))
            assert not missing, f"{system} {record_type}: {missing}"


@pytest.mark.parametrize("lang", ["nl", "en"])
def test_the_certificate_names_records_by_number_and_date_never_by_internal_id(pages, lang):
    out, records = pages
    text = visible(out[("certificate", lang)])
    ids = [r.record_id for r in records if len(r.record_id) > 3]  # a short id ("1") is any number
    assert ids and [i for i in ids if i in text] == []
    invoice = next(r for r in records if r.record_type == "sales_invoice")
    assert invoice.fields["invoice_id"] in text
    day = TODAY - timedelta(days=20)  # Lotte's appointment (test_erasure.lotte), named by its date and time
    month = access._MONTHS[lang][day.month - 1]
    assert re.search(rf"{day.day} {month} {day.year}(, | at )\d\d:\d\d", text)


@pytest.mark.parametrize("lang", ["nl", "en"])
def test_the_calendar_itself_is_not_shown_among_the_persons_fields(pages, lang):
    out, records = pages
    event = next(r for r in records if r.system == "google_calendar")
    own = [a["email"] for a in event.fields["attendees"] if a.get("self")]
    assert own, "the fake marks the calendar's own attendee entry"
    text = visible(out[("report", lang)])
    guest = "Deelnemer" if lang == "nl" else "Attendee"
    shown = re.findall(rf"{guest} \d+: e-mail ?ad+res+\s+(\S+)", text)
    assert shown == [EMAIL]


@pytest.mark.parametrize("lang", ["nl", "en"])
def test_an_order_is_named_by_its_number_and_a_session_by_its_day(lang):
    """The certificate's reference for the newer systems' records, from the fakes' documented payloads."""
    from datetime import date

    from connectors.base import Record
    from connectors.woocommerce import order_record
    from vergeet.sandbox.fake_woocommerce import WooCommerceFake
    from vergeet.sandbox.fake_zoom import ZoomFake
    from vergeet.sandbox.population import generate

    people = generate(30, seed=7, today=date.today())
    order = order_record(next(iter(WooCommerceFake(people).orders.values())))
    assert access.reference(order, lang) == str(order.fields["number"])
    meeting = next(iter(ZoomFake(people).meetings.values()))
    day = date.fromisoformat(meeting["start_time"][:10])
    recording = Record("zoom", "recording", meeting["uuid"], fields=meeting)
    assert access.reference(recording, lang) == access._long_date(day.isoformat(), lang)
