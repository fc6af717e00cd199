"""A deterministic synthetic population for the sandbox fakes.

Seeded, so the same seed gives the same people: Dutch names (namesakes who
are different people included), Dutch phone numbers written the many ways
people write them, e-mail addresses with case and whitespace variations, the
same person present in several systems, and activity spread over ten years.
Every fake builds its vendor's payloads from one `Population`, so the same
person appears consistently across all four systems.
"""
from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone

FIRST_NAMES = ("Anna", "Daan", "Emma", "Sem", "Julia", "Lucas", "Sophie", "Finn", "Tess", "Milan", "Sara",
               "Levi", "Eva", "Noah", "Lotte", "Bram", "Fleur", "Jesse", "Lisa", "Thijs", "Iris", "Ruben",
               "Noor", "Lars", "Anouk", "Jan", "Marieke", "Pieter", "Sanne", "Joost", "Femke", "Wouter",
               "Ingrid", "Henk", "Yvonne", "Kees", "Mirjam", "Gerrit", "Esther", "Roel")
LAST_NAMES = ("de Jong", "Jansen", "de Vries", "van den Berg", "van Dijk", "Bakker", "Janssen", "Visser",
              "Smit", "Meijer", "de Boer", "Mulder", "de Groot", "Bos", "Vos", "Peters", "Hendriks",
              "van Leeuwen", "Dekker", "Brouwer", "de Wit", "Dijkstra", "Smits", "de Graaf", "van der Meer",
              "van der Linden", "Kok", "Jacobs", "de Haan", "Vermeulen", "van den Heuvel", "van der Veen",
              "van Beek", "Willems", "Schouten", "Hoekstra", "van Wijk", "Koster", "Prins", "Huisman")
DOMAINS = ("gmail.com", "hotmail.com", "outlook.com", "ziggo.nl", "kpnmail.nl", "xs4all.nl", "live.nl",
           "planet.nl", "icloud.com", "example.nl")
STREETS = ("Kerkstraat", "Schoolstraat", "Dorpsstraat", "Molenweg", "Stationsweg", "Julianalaan",
           "Beatrixstraat", "Eikenlaan", "Vaartweg", "Larenseweg")
CITIES = (("1211", "Hilversum"), ("1217", "Hilversum"), ("1251", "Laren"), ("1401", "Bussum"),
          ("3741", "Baarn"), ("1012", "Amsterdam"), ("3511", "Utrecht"), ("1271", "Huizen"))
SUMMARIES = ("Intake {name}", "Coaching {name}", "Coachgesprek met {name}", "Evaluatie {name}", "{name} - sessie")


def phone_formats(e164: str) -> list[str]:
    """Ways people write one Dutch number, from a `+31...` E.164 string."""
    national = "0" + e164[3:]
    digits = e164[3:]
    if digits.startswith("6"):
        return [f"06-{digits[1:]}", f"+31 6 {digits[1:5]} {digits[5:]}", f"0031{digits}", national, e164,
                f"06 {digits[1:3]} {digits[3:5]} {digits[5:7]} {digits[7:]}", f"(06) {digits[1:]}"]
    return [f"0{digits[:2]}-{digits[2:]}", f"+31 {digits[:2]} {digits[2:5]} {digits[5:]}", f"0031{digits}",
            national, e164]


@dataclass
class Document:
    """An invoice or a quote in the invoicing system."""

    number: str
    kind: str  # "invoice" | "estimate"
    date: date
    state: str  # invoices: paid | open | late; estimates: accepted | open | rejected
    amount: str


@dataclass
class Payment:
    created_at: datetime
    status: str  # paid | open | failed
    amount: str
    description: str


@dataclass
class Appointment:
    start: datetime
    minutes: int
    summary: str
    location: str = ""
    description: str = ""


@dataclass
class Presence:
    """How one system knows a person: the e-mail and phone as typed there, and since when."""

    email: str | None
    phone: str | None
    created_at: datetime


@dataclass
class MoneybirdPresence(Presence):
    documents: list[Document] = field(default_factory=list)


@dataclass
class MailbluePresence(Presence):
    subscribed: bool = True
    status_changed_at: datetime | None = None
    last_open_at: datetime | None = None


@dataclass
class MolliePresence(Presence):
    payments: list[Payment] = field(default_factory=list)
    mandate_valid: bool = False
    subscription_active: bool = False


@dataclass
class CalendarPresence(Presence):
    appointments: list[Appointment] = field(default_factory=list)


@dataclass
class Session:
    """An online session in Zoom, recorded to the cloud (video, transcript, chat)."""

    start: datetime
    minutes: int
    topic: str
    registered: bool = False  # the person registered for the meeting (registration on)
    series: int = 0  # sessions of one person in the same series share one recurring meeting id


@dataclass
class ZoomPresence(Presence):
    sessions: list[Session] = field(default_factory=list)


@dataclass
class Mail:
    """One message between the person and the business in its mailbox."""

    folder: str  # INBOX (from the person), Sent (to them), a folder the owner keeps, or Trash
    sent_at: datetime
    subject: str
    incoming: bool
    flagged: bool = False  # \Flagged: the owner keeps it
    dated: bool = True  # has a Date header; without one the server's INTERNALDATE dates it


@dataclass
class MailboxPresence(Presence):
    messages: list[Mail] = field(default_factory=list)


@dataclass
class ShopOrder:
    """An order in the web shop (WooCommerce)."""

    created: datetime
    status: str  # completed | processing | on-hold | pending | cancelled | refunded | failed
    product: str
    total: str
    shipped: bool = False  # a product sent by post (a shipping address), not a download or a course


@dataclass
class WooCommercePresence(Presence):
    registered: bool = True  # an account in the shop; else every order is a guest order
    orders: list[ShopOrder] = field(default_factory=list)


@dataclass
class Person:
    """One real-world person and how each system knows them."""

    key: str
    first_name: str
    last_name: str
    email: str  # canonical: trimmed and lower-cased
    phone: str | None  # canonical E.164
    street: str = ""
    zipcode: str = ""
    city: str = ""
    company: str | None = None
    moneybird: MoneybirdPresence | None = None
    mailblue: MailbluePresence | None = None
    mollie: MolliePresence | None = None
    calendar: CalendarPresence | None = None
    zoom: ZoomPresence | None = None
    mailbox: MailboxPresence | None = None
    woocommerce: WooCommercePresence | None = None

    @property
    def name(self) -> str:
        return f"{self.first_name} {self.last_name}"


@dataclass
class Population:
    seed: int
    today: date
    people: list[Person]

    def person(self, key: str) -> Person:
        return next(p for p in self.people if p.key == key)


def _at(day: date, rng: random.Random) -> datetime:
    return datetime.combine(day, time(rng.randint(8, 19), rng.choice((0, 15, 30, 45))), tzinfo=timezone.utc)


def _email_as_typed(email: str, rng: random.Random) -> str:
    local, domain = email.split("@")
    variant = rng.randrange(6)
    if variant == 1:
        return f"{local.title()}@{domain}"
    if variant == 2:
        return email.upper()
    if variant == 3:
        return f" {email} "
    if variant == 4:
        return f"{local}@{domain.capitalize()}"
    return email


def _day_between(start: date, end: date, rng: random.Random) -> date:
    return start + timedelta(days=rng.randint(0, max(0, (end - start).days)))


def _ascii(text: str) -> str:
    return text.lower().replace(" ", "")


class _Generator:
    def __init__(self, seed: int, today: date):
        self.rng = random.Random(seed)
        self.today = today
        self.document_number = 0
        self.used_emails: set[str] = set()
        self.used_phones: set[str] = set()

    def email(self, first: str, last: str) -> str:
        while True:
            suffix = "" if self.rng.random() < 0.5 else str(self.rng.randint(1, 999))
            sep = self.rng.choice((".", "", "_"))
            candidate = f"{_ascii(first)}{sep}{_ascii(last)}{suffix}@{self.rng.choice(DOMAINS)}"
            if candidate not in self.used_emails:
                self.used_emails.add(candidate)
                return candidate

    def phone(self) -> str:
        while True:
            if self.rng.random() < 0.85:
                candidate = f"+316{self.rng.randint(10_000_000, 99_999_999)}"
            else:
                candidate = f"+3135{self.rng.randint(1_000_000, 9_999_999)}"
            if candidate not in self.used_phones:
                self.used_phones.add(candidate)
                return candidate

    def as_typed(self, person: Person) -> tuple[str | None, str | None]:
        email = _email_as_typed(person.email, self.rng)
        phone = self.rng.choice(phone_formats(person.phone)) if person.phone and self.rng.random() < 0.8 else None
        return email, phone

    def documents(self, first: date, last: date) -> list[Document]:
        docs = []
        for _ in range(self.rng.choice((0, 1, 1, 2, 3, 5))):
            self.document_number += 1
            day = _day_between(first, last, self.rng)
            age = (self.today - day).days
            if self.rng.random() < 0.3:
                state = "open" if age < 60 else self.rng.choice(("accepted", "rejected"))
                kind = "estimate"
            else:
                state = "paid" if age > 45 or self.rng.random() < 0.5 else self.rng.choice(("open", "late"))
                kind = "invoice"
            prefix = "OFF" if kind == "estimate" else "F"
            docs.append(Document(f"{prefix}{day.year}-{self.document_number:05d}", kind, day, state,
                                 f"{self.rng.choice((85, 120, 150, 450, 995))}.00"))
        return sorted(docs, key=lambda d: d.date)

    def person(self, index: int, namesake_of: Person | None = None) -> Person:
        rng = self.rng
        first = namesake_of.first_name if namesake_of else rng.choice(FIRST_NAMES)
        last = namesake_of.last_name if namesake_of else rng.choice(LAST_NAMES)
        zipcode, city = rng.choice(CITIES)
        person = Person(
            key=f"p{index:05d}", first_name=first, last_name=last, email=self.email(first, last),
            phone=self.phone() if rng.random() < 0.85 else None,
            street=f"{rng.choice(STREETS)} {rng.randint(1, 180)}",
            zipcode=f"{zipcode} {rng.choice('ABCDEGHJKLMNPRSTVWXZ')}{rng.choice('ABCDEGHJKLMNPRSTVWXZ')}", city=city,
            company=f"{last} Advies" if rng.random() < 0.2 else None)
        first_day = self.today - timedelta(days=rng.randint(0, 3650))
        last_day = _day_between(first_day, self.today, rng)
        systems = [s for s, share in (("moneybird", 0.6), ("mailblue", 0.5), ("mollie", 0.35), ("calendar", 0.5))
                   if rng.random() < share] or ["moneybird"]
        if "moneybird" in systems:
            email, phone = self.as_typed(person)
            person.moneybird = MoneybirdPresence(email, phone, _at(first_day, rng),
                                                 documents=self.documents(first_day, last_day))
        if "mailblue" in systems:
            subscribed = rng.random() < 0.7
            changed = _at(_day_between(first_day, self.today, rng), rng)
            opened = _at(_day_between(first_day, self.today, rng), rng) if subscribed and rng.random() < 0.6 else None
            person.mailblue = MailbluePresence(_email_as_typed(person.email, rng), None, _at(first_day, rng),
                                               subscribed=subscribed, status_changed_at=changed, last_open_at=opened)
        if "mollie" in systems:
            invoices = [d for d in (person.moneybird.documents if person.moneybird else []) if d.kind == "invoice"]
            days = [d.date for d in invoices] or [_day_between(first_day, last_day, rng)]
            payments = [Payment(_at(day, rng), "paid" if rng.random() < 0.9 else "failed",
                                rng.choice(("85.00", "120.00", "450.00")), f"Coaching {day:%B %Y}") for day in days]
            recent = (self.today - last_day).days < 120
            person.mollie = MolliePresence(_email_as_typed(person.email, rng), None, _at(first_day, rng),
                                           payments=payments, mandate_valid=recent and rng.random() < 0.5,
                                           subscription_active=recent and rng.random() < 0.3)
        if "calendar" in systems:
            appointments = []
            for _ in range(rng.randint(1, 6)):
                start = _at(_day_between(first_day, last_day, rng), rng)
                appointments.append(Appointment(start, rng.choice((30, 60, 90)),
                                                rng.choice(SUMMARIES).format(name=person.first_name),
                                                location=rng.choice(("", "Google Meet", "Egelantierstraat 11"))))
            person.calendar = CalendarPresence(_email_as_typed(person.email, rng), None, _at(first_day, rng),
                                               appointments=sorted(appointments, key=lambda a: a.start))
        return person


def generate(size: int = 60, *, seed: int = 7, today: date | None = None, namesake_share: float = 0.05) -> Population:
    """A population of `size` people; `namesake_share` of them share a name with someone else."""
    today = today or date.today()
    generator = _Generator(seed, today)
    people: list[Person] = []
    for index in range(size):
        namesake_of = people[generator.rng.randrange(len(people))] if people and generator.rng.random() < namesake_share else None
        people.append(generator.person(index, namesake_of))
    _add_zoom_sessions(people, random.Random(f"zoom:{seed}"), today)
    _add_mail(people, random.Random(f"mail:{seed}"), today)
    _add_shop_orders(people, random.Random(f"woocommerce:{seed}"), today)
    return Population(seed, today, people)


def _contact_days(person: Person, since: datetime) -> list[date]:
    """The days of a person's first record and of their invoices, payments and appointments."""
    days = [since.date()]
    days += [d.date for d in (person.moneybird.documents if person.moneybird else [])]
    days += [p.created_at.date() for p in (person.mollie.payments if person.mollie else [])]
    return days + [a.start.date() for a in (person.calendar.appointments if person.calendar else [])]


def _add_zoom_sessions(people: list[Person], rng: random.Random, today: date) -> None:
    """Online sessions for about a third of the people, between their first record and their last contact (an
    invoice, a payment, an appointment), so a person's last contact stays what it was; a generator of its own, so
    the other systems' data stays what it was before Zoom joined the sandbox."""
    for person in people:
        if rng.random() >= 0.35:
            continue
        since = min(p.created_at for p in (person.moneybird, person.mailblue, person.mollie, person.calendar) if p)
        first, last = since.date(), min(max(_contact_days(person, since)), today - timedelta(days=1))
        sessions = [Session(_at(_day_between(first, last, rng), rng), rng.choice((45, 60, 90)),
                            rng.choice(SUMMARIES).format(name=person.first_name), registered=rng.random() < 0.3,
                            series=rng.randrange(2)) for _ in range(rng.randint(1, 4))]
        person.zoom = ZoomPresence(_email_as_typed(person.email, rng), None, since,
                                   sessions=sorted(sessions, key=lambda s: s.start))


#: mail subjects, some non-ASCII (sent RFC 2047-encoded)
MAIL_SUBJECTS = ("Vraag over coaching", "Re: Intake {name}", "Offerte traject", "Afspraak verzetten",
                 "Één vraag nog – {name}", "Bedankt voor het gesprek", "Factuur ontvangen?", "Réactie op je sessie")


def _add_mail(people: list[Person], rng: random.Random, today: date) -> None:
    """Mail with about half the people, from their first record to today: received (INBOX) and sent (Sent), a
    few flagged, a few without a Date header, a few in the owner's kept folder or in Trash; a generator of its
    own, so the other systems' data stays what it was before the mailbox joined the sandbox."""
    for person in people:
        if rng.random() >= 0.5:
            continue
        since = min(p.created_at for p in (person.moneybird, person.mailblue, person.mollie, person.calendar) if p)
        messages = []
        for _ in range(rng.randint(1, 4)):
            incoming = rng.random() < 0.6
            where = rng.random()
            folder = ("Archief/Contracten" if where < 0.05 else "Trash" if where < 0.1
                      else "INBOX" if incoming else "Sent")
            messages.append(Mail(folder, _at(_day_between(since.date(), today, rng), rng),
                                 rng.choice(MAIL_SUBJECTS).format(name=person.first_name), incoming,
                                 flagged=rng.random() < 0.1, dated=rng.random() >= 0.1))
        person.mailbox = MailboxPresence(_email_as_typed(person.email, rng).strip(), None, since,
                                         messages=sorted(messages, key=lambda m: m.sent_at))


#: what the web shop sells: (product, price, sent by post)
SHOP_PRODUCTS = (("Online cursus Grip op je tijd", "97.00", False), ("E-book Rust in je hoofd", "19.95", False),
                 ("Werkboek Grip op je tijd (papier)", "24.95", True), ("Intakegesprek", "85.00", False))


def _add_shop_orders(people: list[Person], rng: random.Random, today: date) -> None:
    """Web shop orders for about a third of the people, with or without an account, between their first record and
    their last contact elsewhere (an invoice, a payment, an appointment, a session), so a person's last contact
    stays what it was; a generator of its own, so the other systems' data stays what it was before the shop
    joined."""
    for person in people:
        if rng.random() >= 0.35:
            continue
        presences = (person.moneybird, person.mailblue, person.mollie, person.calendar, person.zoom)
        since = min(p.created_at for p in presences if p)
        sessions = [s.start.date() for s in (person.zoom.sessions if person.zoom else [])]
        last = min(max(_contact_days(person, since) + sessions), today)
        orders = []
        for _ in range(rng.randint(1, 4)):
            created = _at(_day_between(since.date(), last, rng), rng)
            age = (today - created.date()).days
            status = (rng.choice(("processing", "on-hold", "pending", "completed")) if age < 14 else
                      rng.choices(("completed", "refunded", "cancelled", "failed"), (85, 5, 5, 5))[0])
            product, price, shipped = rng.choice(SHOP_PRODUCTS)
            orders.append(ShopOrder(created, status, product, price, shipped))
        phone = rng.choice(phone_formats(person.phone)) if person.phone and rng.random() < 0.7 else None
        person.woocommerce = WooCommercePresence(_email_as_typed(person.email, rng), phone, since,
                                                 registered=rng.random() < 0.6,
                                                 orders=sorted(orders, key=lambda o: o.created))


def newcomer(key: str, systems: Iterable[str], *, seed: int, today: date) -> Person:
    """Someone who arrives today in `systems` (moneybird, mailblue, mollie, calendar, zoom, woocommerce).

    Known since now everywhere: an open invoice dated today, a payment made now, a newsletter subscription, an
    appointment next week. `key` makes the e-mail address unique.
    """
    rng = random.Random(seed)
    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    email = f"{_ascii(first)}.{_ascii(last)}.{key.lower()}@{rng.choice(DOMAINS)}"
    person = Person(key=key, first_name=first, last_name=last, email=email,
                    phone=f"+316{rng.randint(10_000_000, 99_999_999)}", street=f"{rng.choice(STREETS)} 1",
                    zipcode="1211 AB", city="Hilversum")
    now = datetime.now(timezone.utc)
    chosen = set(systems)
    if "moneybird" in chosen:
        person.moneybird = MoneybirdPresence(email, phone_formats(person.phone)[0], now, documents=[
            Document(f"F{today.year}-{key}", "invoice", today, "open", "120.00")])
    if "mailblue" in chosen:
        person.mailblue = MailbluePresence(email, None, now, subscribed=True, status_changed_at=now)
    if "mollie" in chosen:
        person.mollie = MolliePresence(email, None, now, payments=[Payment(now, "paid", "120.00", "Coaching")])
    if "calendar" in chosen:
        start = datetime.combine(today + timedelta(days=7), time(10), tzinfo=timezone.utc)
        person.calendar = CalendarPresence(email, None, now, appointments=[Appointment(start, 60, f"Intake {first}")])
    if "zoom" in chosen:
        person.zoom = ZoomPresence(email, None, now, sessions=[Session(now - timedelta(hours=2), 60, f"Intake {first}")])
    if "woocommerce" in chosen:
        person.woocommerce = WooCommercePresence(email, phone_formats(person.phone)[0], now, orders=[
            ShopOrder(now, "processing", *SHOP_PRODUCTS[0])])
    return person
