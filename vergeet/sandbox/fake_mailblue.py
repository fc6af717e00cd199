"""A loopback fake of Mailblue (ActiveCampaign API v3), seeded from a `Population`.

Paths, payload shapes and error bodies follow the vendor's documented examples
(/work/shared/vendor-fixtures/mailblue): every value a string, `meta.total` a
string, dates in ISO 8601 with the account's UTC offset. Each behaviour below
names its source; AC-SPEC is the v3 OpenAPI mirror (api-evangelist/activecampaign,
openapi/_original/activecampaign-v3.json), the other tags are those of
/work/shared/audits/moneybird-mailblue.md.

What it serves and models:
- `GET /lists`; `GET /contacts` with `email`, `search`, `ids[]`, `listid`,
  `status`, `filters[updated_after]`, `orders[id]`, `id_greater`/`id_less`,
  `limit` (max 100) and `offset` (AC-SPEC `/contacts` parameters; AC-PAG).
  `meta.total` counts the rows matching at the moment of the request, so it is
  stale when contacts are added while paging (`add_while_paging`).
- `GET|PUT|DELETE /contacts/{id}` and `GET /contacts/{id}/contactLists`. The
  single read side-loads `contactAutomations`, `contactLists`, `deals`,
  `fieldValues`, `geoAddresses` and `geoIps` (AC-SPEC, FIX-AC contact_get.json).
- `PUT /contacts/{id}` `{"contact": {...}}` writes `email`, `firstName`, `lastName` and `phone` (AC-SPEC
  update-a-contact-new request schema; other keys are ignored, ASSUMED) and answers `{"contact", "fieldValues"}`.
  An address another contact has is refused 422 `{"errors": [{"title": "Email address already exists in the
  system", "code": "duplicate", "source": {"pointer": "/data/attributes/email"}}]}`: AC-SPEC documents that body
  for POST /contacts; that PUT refuses a duplicate the same way is ASSUMED (addresses are unique per account, and
  PUT documents no other error than 404). An address without `@` and a dotted domain is refused the same way with
  code `email_invalid` (ASSUMED: the code is not documented).
- List rows with the statuses the platform uses: 1 active, 2 unsubscribed,
  0 unconfirmed (a double opt-in sign-up not yet confirmed), 3 bounced (AC-ENUM;
  help.activecampaign.com "Contact list statuses explained") and 91, a
  subscription removed from the contact rather than unsubscribed (AC-91).
- A list status change moves the row's `udate`/`updated_timestamp`, not the
  contact's `udate`: the documented examples show activity without a newer
  contact `udate` (FIX-AC contacts_list.json), and nothing says a list change
  touches it, so the fake takes the reading that a reader cannot rely on it.
- `GET /contactLists`: every list row of every live contact, `limit` (max 100)
  and `offset`, `meta.total` a string, as a production Singer tap reads it
  (TAP streams.py `ContactLists`, client.py). It has no documented filters and
  the fake honours none (ASSUMED); rows come in id order (ASSUMED).
- The contact archive (AC-ARCH): `DELETE /contacts/{id}` moves the contact there
  (out of `GET /contacts` and out of `GET /contactLists`), as does a deletion in
  the Mailblue UI (`remove`). `GET /contactArchives` lists contacts archived in
  the last 360 days, only to an Admin user (anyone else: 404, empty body), each
  row the contact as archived plus `deleted_at` and `is_restorable` (archived at
  least 30 days ago), searchable with `search` (an exact address; one word
  anywhere in e-mail, names or phone; several words against the full name or the
  phone) and `start`/`end` (Unix milliseconds on `deleted_at`).
  `GET /contactArchives/{id}` reads one by the id it had as a contact, for any
  user and without the 360-day limit, 404 when there is none (still a contact,
  or purged). `DELETE /contactArchives/{id}` purges for an Admin (200 `{}` also
  when nothing is there), 404 with an empty body for anyone else.
  `POST /contactArchives/restoreRequest` `{"ids": [...]}` restores (Admin only;
  400 when an id is not restorable; of several with the same e-mail only the
  highest id comes back).
- Archiving can lag behind the delete (`archiving_lag`): whether it is
  synchronous is undocumented (audit, DELETE /contactArchives row), and a purge
  that comes too early answers 200 while the contact then lands in the archive.

ASSUMED where the vendor is silent: the archive listing's paging (`limit` max
100, `offset`, `meta.total`) and its response keys (`contactArchives`,
`contactArchive`, `restoreRequestId`); that a restore is immediate (the vendor
queues it); that archived contacts take their list rows with them and get them
back when restored; that archived contacts older than 360 days are gone (the
platform purges them). Not modelled: `POST /contactArchives/restoreAll`,
`/contactArchives/deleteList`, restore progress, 409 while a restore runs.

Seeding: every person is on "Nieuwsbrief", every third contact also on
"Weggever" (unsubscribed). For the people of a generated population (keys
`p00000`...), stable hashes of the person key, never the population's random
generator, add the other shapes: one in eight subscribers has bounced, one in
four non-subscribers never confirmed the sign-up (unconfirmed), one in five
"Weggever" rows was removed (91), and one in twenty contacts was deleted in the
Mailblue UI within the last year and sits in the archive. A contact's `udate`
is its last list status change or sign-up (`status_changed_at`), its `adate`
its last open (`last_open_at`). Tests make specific situations with
`add_person`, `change`, `remove`, `unconfirm`, `bounce`, `archive`,
`add_while_paging` and the `admin` and `archiving_lag` attributes.
"""
from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from vergeet.sandbox.population import Person, Population
from vergeet.sandbox.server import FakeVendor

API = "/api/3"
ACCOUNT_TZ = timezone(timedelta(hours=-5))  # the vendor renders dates in the account's zone; its examples use -05:00
MAX_LIMIT = 100
DEFAULT_LIMIT = 20
LISTS = (("1", "Nieuwsbrief", "nieuwsbrief"), ("2", "Weggever", "weggever"))
NEWSLETTER, GIVEAWAY = LISTS[0][0], LISTS[1][0]
#: list statuses (AC-ENUM; AC-91)
UNCONFIRMED, ACTIVE, UNSUBSCRIBED, BOUNCED, REMOVED = "0", "1", "2", "3", "91"
EDITABLE = ("email", "firstName", "lastName", "phone")  # the contact fields PUT /contacts/{id} changes here
#: AC's 403 for a key it cannot authenticate (reference/errors names the status; the wording is not published)
AUTH_MESSAGE = "You are not authorized to access this resource"
ARCHIVE_DAYS = 360  # archived contacts are kept (and listed) this long (AC-ARCH)
RESTORE_AFTER = timedelta(days=30)  # an archived contact can be restored once this old (AC-ARCH, is_restorable)
GENERATED_KEY = re.compile(r"^p\d{5}$")  # the keys `population.generate` gives its people


def _stamp(moment: datetime | None) -> str | None:
    return moment.astimezone(ACCOUNT_TZ).isoformat() if moment else None


def _local(moment: datetime) -> str:
    """The rows' `created_timestamp`/`updated_timestamp`: the account's local time without an offset (FIX-AC)."""
    return moment.astimezone(ACCOUNT_TZ).strftime("%Y-%m-%d %H:%M:%S")


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _links(kind: str, item_id: str, names: tuple[str, ...]) -> dict[str, str]:
    return {name: f"https://:account.api-us1.com/api/3/{kind}/{item_id}/{name}" for name in names}


def _mark(key: str, salt: str) -> int:
    """A stable number for a person key: the seeding's only source of variety besides the population itself."""
    return int(hashlib.sha256(f"{salt}:{key}".encode()).hexdigest()[:12], 16)


CONTACT_LINKS = ("bounceLogs", "contactAutomations", "contactData", "contactGoals", "contactLists", "contactLogs",
                 "contactTags", "contactDeals", "deals", "fieldValues", "geoIps", "notes", "organization",
                 "plusAppend", "trackingLogs", "scoreValues")
CONTACT_LIST_LINKS = ("automation", "list", "contact", "form", "autosyncLog", "campaign", "unsubscribeAutomation",
                      "message")


class MailblueFake(FakeVendor):
    """Contacts of the population's Mailblue presences, on two lists, with an archive and 5 requests/second."""

    name = "mailblue"
    rate_calls = 5
    rate_period = 1.0
    unauthorised_status = 403

    def __init__(self, population: Population, *, token: str = "sandbox-mailblue-token",
                 rate_calls: int | None = None, rate_period: float | None = None, admin: bool = True):
        self.admin = admin  # False: the key's user is outside the Admin group and cannot read or purge the archive
        #: requests (of any kind) after a DELETE /contacts/{id} before the contact shows in the archive
        self.archiving_lag = 0
        self.contacts: dict[str, dict[str, Any]] = {}
        self.memberships: dict[str, list[dict[str, Any]]] = {}
        self.archive: dict[str, dict[str, Any]] = {}
        self.contact_ids: dict[str, str] = {}  # person key -> contact id, for tests
        self.people: dict[str, Person] = {}  # contact id -> its person, for the side-loads of a single read
        self._archived_rows: dict[str, list[dict[str, Any]]] = {}  # list rows an archived contact takes along
        self._arriving: list[list[Any]] = []  # [id, contact, rows, requests to go] of contacts not yet archived
        self._added_while_paging: list[Person] = []
        self._last_id = 0
        self._last_row_id = 0
        self._restore_requests = 0
        self._seed(population)
        super().__init__(token=token, rate_calls=rate_calls, rate_period=rate_period)

    # -- seeding ------------------------------------------------------------------------
    def _seed(self, population: Population) -> None:
        for person in population.people:
            if person.mailblue is None:
                continue
            contact_id = self._add(person, shaped=bool(GENERATED_KEY.match(person.key)))
            if GENERATED_KEY.match(person.key) and _mark(person.key, "archived") % 20 == 0:
                age = max(0, (_now() - person.mailblue.created_at).days)
                days = _mark(person.key, "archived-days") % min(ARCHIVE_DAYS - 30, age + 1)
                self.archive_contact(contact_id, at=_now() - timedelta(days=days))

    def add_person(self, person: Person) -> list[str]:
        """A (new) contact for a person with a Mailblue presence, as a sign-up form would make it."""
        self._add(person, shaped=False)
        return ["contact"]

    def _add(self, person: Person, *, shaped: bool) -> str:
        self._last_id += 1  # ActiveCampaign never reuses a contact id
        contact_id = str(self._last_id)
        self.contact_ids[person.key] = contact_id
        self.people[contact_id] = person
        self.contacts[contact_id] = _contact(contact_id, person)
        presence = person.mailblue
        newsletter = ACTIVE if presence.subscribed else UNSUBSCRIBED
        giveaway = UNSUBSCRIBED if int(contact_id) % 3 == 0 else None
        if shaped:
            if newsletter == ACTIVE and _mark(person.key, "bounced") % 8 == 0:
                newsletter = BOUNCED
            elif newsletter == UNSUBSCRIBED and _mark(person.key, "unconfirmed") % 4 == 0:
                newsletter = UNCONFIRMED
            if giveaway and _mark(person.key, "removed") % 5 == 0:
                giveaway = REMOVED
        self.memberships[contact_id] = [self._row(contact_id, NEWSLETTER, newsletter, person)]
        if giveaway:
            self.memberships[contact_id].append(self._row(contact_id, GIVEAWAY, giveaway, person))
        if newsletter == BOUNCED:
            self.contacts[contact_id].update(bounced_hard="1",
                                            bounced_date=_stamp(presence.status_changed_at or presence.created_at)[:10])
        return contact_id

    def _row(self, contact_id: str, list_id: str, status: str, person: Person) -> dict[str, Any]:
        self._last_row_id += 1
        presence = person.mailblue
        # an unconfirmed sign-up has only its subscription date: nothing happened to it since
        changed = presence.created_at if status == UNCONFIRMED else presence.status_changed_at or presence.created_at
        return _membership(str(self._last_row_id), contact_id, list_id, status, person, changed)

    # -- the changes a business makes between two nights ----------------------------------
    def change(self, pick: int) -> str:
        """The contact `pick` lands on flips its newsletter status (an unsubscribe, or a (re)subscription or
        confirmation), which moves the list row's dates only; or changes its e-mail, which moves `udate`."""
        contact = self.contacts[sorted(self.contacts, key=int)[pick % len(self.contacts)]]
        if pick % 2:
            contact["email"] = f"changed{pick}@example.nl"
            contact["udate"] = _stamp(_now())
        else:
            for row in self.memberships[contact["id"]]:
                if row["list"] == NEWSLETTER:
                    self.set_status(contact["id"], NEWSLETTER, UNSUBSCRIBED if row["status"] == ACTIVE else ACTIVE)
        return "contact"

    def remove(self, pick: int) -> str:
        """A contact deleted in the Mailblue UI: it goes to the archive."""
        self.archive_contact(sorted(self.contacts, key=int)[pick % len(self.contacts)])
        return "contact"

    # -- explicit situations for tests ------------------------------------------------------
    def set_status(self, contact_id: str, list_id: str, status: str, *, at: datetime | None = None) -> None:
        """A list status change, as an unsubscribe link or a confirmation makes it: the row's dates move, the
        contact's `udate` does not."""
        moment = at or _now()
        for row in self.memberships[contact_id]:
            if row["list"] == list_id:
                row.update(status=status, udate=_stamp(moment), updated_timestamp=_local(moment))

    def unconfirm(self, contact_id: str, *, at: datetime | None = None) -> None:
        """The contact's newsletter sign-up is a double opt-in still waiting for its confirmation."""
        moment = at or _now()
        for row in self.memberships[contact_id]:
            if row["list"] == NEWSLETTER:
                row.update(status=UNCONFIRMED, sdate=_stamp(moment), udate=_stamp(moment),
                           created_timestamp=_local(moment), updated_timestamp=_local(moment))

    def bounce(self, contact_id: str, *, at: datetime | None = None) -> None:
        """A campaign to the contact bounced hard: its rows become bounced."""
        moment = at or _now()
        for row in self.memberships[contact_id]:
            if row["status"] in (ACTIVE, UNCONFIRMED):
                row.update(status=BOUNCED, udate=_stamp(moment), updated_timestamp=_local(moment))
        self.contacts[contact_id].update(bounced_hard="1", bounced_date=_stamp(moment)[:10])

    def archive_contact(self, contact_id: str, *, at: datetime | None = None) -> None:
        """What deleting does on the platform: the contact leaves its lists and waits in the archive."""
        self._archived_rows[contact_id] = self.memberships.pop(contact_id)
        self.archive[contact_id] = {**self.contacts.pop(contact_id), "deleted_at": _stamp(at or _now())}

    def add_while_paging(self, *people: Person) -> None:
        """These people sign up right after the next page of `GET /contacts` (not of one list) is served."""
        self._added_while_paging.extend(people)

    # -- FakeVendor -----------------------------------------------------------------------
    def routes(self) -> list[Route]:
        route = self._route
        return [
            route("/lists", self.list_lists, "GET"),
            route("/contacts", self.list_contacts, "GET"),
            route("/contacts/{contact_id}", self.get_contact, "GET"),
            route("/contacts/{contact_id}", self.update_contact, "PUT"),
            route("/contacts/{contact_id}", self.delete_contact, "DELETE"),
            route("/contacts/{contact_id}/contactLists", self.contact_lists, "GET"),
            route("/contactLists", self.all_contact_lists, "GET"),
            route("/contactArchives", self.list_archived, "GET"),
            route("/contactArchives/restoreRequest", self.restore_archived, "POST"),
            route("/contactArchives/{contact_id}", self.get_archived, "GET"),
            route("/contactArchives/{contact_id}", self.purge_archived, "DELETE"),
        ]

    def _route(self, path: str, handler: Callable, method: str) -> Route:
        async def ticking(request: Request) -> Response:
            self._land_arrivals()
            return await handler(request)
        return Route(f"{API}{path}", ticking, methods=[method])

    def authorised(self, request: Request) -> bool:
        return request.headers.get("api-token") == self.token

    def error(self, status: int, message: str) -> Response:
        return JSONResponse({"message": AUTH_MESSAGE if status == self.unauthorised_status else message},
                            status_code=status)

    # -- routes: contacts -----------------------------------------------------------------
    async def list_lists(self, request: Request) -> Response:
        lists = [{"stringid": stringid, "userid": "1", "name": name, "cdate": "2016-05-02T09:12:00-05:00",
                  "links": _links("lists", list_id, ("contactGoalLists", "user", "addressLists")), "id": list_id,
                  "user": "1"} for list_id, name, stringid in LISTS]
        page, _ = _page(lists, request)
        return JSONResponse({"lists": page, "meta": {"total": str(len(lists))}})

    async def list_contacts(self, request: Request) -> Response:
        query = request.query_params
        matched = sorted((c for c in self.contacts.values() if self._matches(c, query)), key=_order(query))
        page, page_input = _page(matched, request)
        response = JSONResponse({"scoreValues": [], "contacts": page,
                                 "meta": {"total": str(len(matched)), "page_input": page_input}})
        while self._added_while_paging and "listid" not in query:
            self.add_person(self._added_while_paging.pop(0))
        return response

    async def get_contact(self, request: Request) -> Response:
        contact_id = request.path_params["contact_id"]
        if contact_id not in self.contacts:
            return self._no_subscriber(contact_id)
        contact = self.contacts[contact_id]
        rows = self.memberships[contact_id]
        loads = _side_loads(contact_id, self.people.get(contact_id), rows)
        return JSONResponse({
            "contactLists": rows, "fieldValues": [], **loads,
            "contact": {**contact, "contactLists": [row["id"] for row in rows], "fieldValues": [],
                        **{name: [item["id"] for item in loads[name]]
                           for name in ("contactAutomations", "geoIps", "deals")}, "accountContacts": []}})

    async def contact_lists(self, request: Request) -> Response:
        contact_id = request.path_params["contact_id"]
        if contact_id not in self.contacts:
            return self._no_subscriber(contact_id)
        return JSONResponse({"contactLists": self.memberships[contact_id]})

    async def all_contact_lists(self, request: Request) -> Response:
        rows = sorted((row for rows in self.memberships.values() for row in rows), key=lambda r: int(r["id"]))
        page, _ = _page(rows, request)
        return JSONResponse({"contactLists": page, "meta": {"total": str(len(rows))}})

    async def update_contact(self, request: Request) -> Response:
        contact_id = request.path_params["contact_id"]
        if contact_id not in self.contacts:
            return self._no_subscriber(contact_id)
        changes = (await request.json()).get("contact", {})
        problem = self._refused_email(contact_id, changes.get("email"))
        if problem:
            return JSONResponse({"errors": [problem]}, status_code=422)
        contact = self.contacts[contact_id]
        contact.update({key: str(changes[key]) for key in EDITABLE if key in changes})
        contact["udate"] = _stamp(_now())
        return JSONResponse({"fieldValues": [], "contact": contact})

    async def delete_contact(self, request: Request) -> Response:
        contact_id = request.path_params["contact_id"]
        if contact_id not in self.contacts:
            return JSONResponse({"message": f"No result found for contact with id {contact_id}"}, status_code=404)
        if self.archiving_lag:
            rows = self.memberships.pop(contact_id)
            self._arriving.append([contact_id, self.contacts.pop(contact_id), rows, self.archiving_lag])
        else:
            self.archive_contact(contact_id)
        return JSONResponse({})

    # -- routes: the archive ----------------------------------------------------------------
    async def list_archived(self, request: Request) -> Response:
        if not self.admin:
            return Response(status_code=404)  # only the Admin group may list the archive; the body is empty
        query = request.query_params
        now = _now()
        rows = [row for _, row in sorted(self.archive.items(), key=lambda item: int(item[0]))
                if _deleted_at(row) > now - timedelta(days=ARCHIVE_DAYS) and _in_window(row, query)
                and ("search" not in query or _archive_searched(row, query["search"]))]
        page, _ = _page([{**row, "is_restorable": _deleted_at(row) <= now - RESTORE_AFTER} for row in rows], request)
        return JSONResponse({"contactArchives": page, "meta": {"total": str(len(rows))}})

    async def get_archived(self, request: Request) -> Response:
        contact_id = request.path_params["contact_id"]
        if contact_id not in self.archive:
            return JSONResponse({"message": f"No Result found for ContactArchive with id {contact_id}"},
                                status_code=404)
        return JSONResponse({"contactArchive": self.archive[contact_id]})

    async def purge_archived(self, request: Request) -> Response:
        if not self.admin:
            return Response(status_code=404)  # the vendor answers non-admins 404 with an empty body
        contact_id = request.path_params["contact_id"]
        self.archive.pop(contact_id, None)
        self._archived_rows.pop(contact_id, None)
        return JSONResponse({})

    async def restore_archived(self, request: Request) -> Response:
        if not self.admin:
            return Response(status_code=404)
        ids = [str(i) for i in (await request.json()).get("ids", [])]
        now = _now()
        if any(i not in self.archive or _deleted_at(self.archive[i]) > now - RESTORE_AFTER for i in ids):
            return JSONResponse({"message": "Every id must be an archived contact that can be restored"},
                                status_code=400)
        newest: dict[str, str] = {}
        for contact_id in sorted(ids, key=int):  # of several with one e-mail, the highest id comes back
            newest[self.archive[contact_id]["email"].strip().casefold()] = contact_id
        for contact_id in newest.values():
            row = self.archive.pop(contact_id)
            self.contacts[contact_id] = {**row, "deleted_at": None}
            self.memberships[contact_id] = self._archived_rows.pop(contact_id, [])
        self._restore_requests += 1
        return JSONResponse({"restoreRequestId": self._restore_requests}, status_code=201)

    # -- helpers --------------------------------------------------------------------------
    def _land_arrivals(self) -> None:
        """Contacts deleted with `archiving_lag` reach the archive after that many further requests."""
        for arrival in list(self._arriving):
            arrival[3] -= 1
            if arrival[3] < 0:
                contact_id, contact, rows, _ = arrival
                self._arriving.remove(arrival)
                self._archived_rows[contact_id] = rows
                self.archive[contact_id] = {**contact, "deleted_at": _stamp(_now())}

    def _matches(self, contact: dict[str, Any], query) -> bool:
        contact_id = int(contact["id"])
        if "email" in query and contact["email"].strip().casefold() != query["email"].strip().casefold():
            return False
        if "search" in query and not _searched(contact, query["search"]):
            return False
        ids = query.getlist("ids[]")
        if ids and contact["id"] not in ids:
            return False
        if contact_id <= int(query.get("id_greater", 0)) or contact_id >= int(query.get("id_less", 2**31)):
            return False
        if "filters[updated_after]" in query and not _updated_after(contact, query["filters[updated_after]"]):
            return False
        return self._on_list(contact["id"], query.get("listid"), query.get("status", "-1"))

    def _on_list(self, contact_id: str, list_id: str | None, status: str) -> bool:
        """`listid` and `status` together: the status on that list; `status` alone: that status on any list."""
        if list_id is None and status == "-1":
            return True
        return any((list_id is None or row["list"] == list_id) and status in ("-1", row["status"])
                   for row in self.memberships[contact_id])

    def _refused_email(self, contact_id: str, email: str | None) -> dict[str, Any] | None:
        if email is None:
            return None
        local, _, domain = email.partition("@")
        if not local or "." not in domain:
            return {"title": "Email address is not valid.", "detail": "", "code": "email_invalid",
                    "source": {"pointer": "/data/attributes/email"}}
        if any(c["email"].strip().casefold() == email.strip().casefold()
               for cid, c in self.contacts.items() if cid != contact_id):
            return {"title": "Email address already exists in the system.", "detail": "", "code": "duplicate",
                    "source": {"pointer": "/data/attributes/email"}}
        return None

    @staticmethod
    def _no_subscriber(contact_id: str) -> Response:
        return JSONResponse({"message": f"No Result found for Subscriber with id {contact_id}"}, status_code=404)


def _contact(contact_id: str, person: Person) -> dict[str, Any]:
    presence = person.mailblue
    return {
        "cdate": _stamp(presence.created_at), "email": presence.email, "phone": presence.phone or "",
        "firstName": person.first_name, "lastName": person.last_name, "orgid": "0", "segmentio_id": "",
        "bounced_hard": "0", "bounced_soft": "0", "bounced_date": None, "ip": "0", "ua": None,
        "hash": hashlib.md5(presence.email.encode()).hexdigest(), "socialdata_lastcheck": None,
        "email_local": "", "email_domain": "", "sentcnt": "0", "rating_tstamp": None, "gravatar": "0",
        "deleted": "0", "anonymized": "0", "adate": _stamp(presence.last_open_at),
        "udate": _stamp(presence.status_changed_at or presence.created_at), "edate": None, "deleted_at": None,
        "scoreValues": [], "links": _links("contacts", contact_id, CONTACT_LINKS), "id": contact_id,
        "organization": None,
    }


def _membership(row_id: str, contact_id: str, list_id: str, status: str, person: Person,
                changed: datetime) -> dict[str, Any]:
    presence = person.mailblue
    return {
        "contact": contact_id, "list": list_id, "form": None, "seriesid": "0", "sdate": _stamp(presence.created_at),
        "udate": _stamp(changed), "status": status, "responder": "1", "sync": "0", "unsubreason": None,
        "campaign": None, "message": None, "first_name": person.first_name, "last_name": person.last_name,
        "ip4Sub": "0", "sourceid": "0", "autosyncLog": None, "ip4_last": "0", "ip4Unsub": "0",
        "created_timestamp": _local(presence.created_at), "updated_timestamp": _local(changed),
        "created_by": None, "updated_by": None, "unsubscribeAutomation": None,
        "links": _links("contactLists", row_id, CONTACT_LIST_LINKS), "id": row_id, "automation": None,
    }


def _side_loads(contact_id: str, person: Person | None, rows: list[dict[str, Any]]) -> dict[str, list]:
    """What `GET /contacts/{id}` carries besides the contact (shapes of FIX-AC contact_get.json): where the
    sign-up came from (`geoIps`, `geoAddresses`), the welcome automation of a newsletter row, and a deal for
    some. Derived from the contact id and the person; no random generator."""
    if person is None:
        return {"contactAutomations": [], "deals": [], "geoAddresses": [], "geoIps": []}
    signed_up = _stamp(person.mailblue.created_at)
    ip = f"{int(contact_id) % 200 + 10}.{int(contact_id) // 200 % 250}.1.{int(contact_id) % 250}"
    automations = [{"contact": contact_id, "seriesid": "1", "startid": "0", "status": "2", "adddate": signed_up,
                    "remdate": signed_up, "timespan": None, "lastblock": "0", "lastdate": signed_up,
                    "completedElements": "1", "totalElements": "1", "completed": 1, "completeValue": 100,
                    "links": _links("contactAutomations", contact_id, ("automation", "contact", "contactGoals")),
                    "id": contact_id, "automation": "1"}
                   for row in rows if row["list"] == NEWSLETTER]
    deals = ([{"owner": "1", "contact": contact_id, "organization": None, "group": "1", "stage": "1",
               "title": f"Coaching traject {person.first_name}", "description": "", "percent": "0",
               "cdate": signed_up, "mdate": signed_up, "nextdate": None, "nexttaskid": None, "value": "45000",
               "currency": "eur", "winProbability": None, "winProbabilityMdate": None, "status": "0",
               "activitycount": "1", "nextdealid": contact_id, "edate": None,
               "links": _links("deals", contact_id, ("dealActivities", "contact", "contactDeals")),
               "id": contact_id, "isDisabled": False, "nextTask": None}]
             if int(contact_id) % 10 == 0 else [])
    return {
        "contactAutomations": automations, "deals": deals,
        "geoAddresses": [{"ip4": ip, "country2": "NL", "country": "Netherlands", "state": "NH",
                          "city": person.city or "Hilversum", "zip": person.zipcode[:4], "area": "0",
                          "lat": "52.2292", "lon": "5.1669", "tz": "Europe/Amsterdam", "tstamp": signed_up,
                          "links": [], "id": contact_id}],
        "geoIps": [{"contact": contact_id, "campaignid": "0", "messageid": "0", "geoaddrid": contact_id, "ip4": ip,
                    "tstamp": signed_up, "geoAddress": contact_id,
                    "links": {"geoAddress": f"https://:account.api-us1.com/api/3/geoIps/{contact_id}/geoAddress"},
                    "id": contact_id}],
    }


def _searched(contact: dict[str, Any], term: str) -> bool:
    """The vendor's `search`: the term anywhere in names, full name, e-mail or phone, ignoring case."""
    needle = term.strip().casefold()
    haystack = (contact["firstName"], contact["lastName"], f"{contact['firstName']} {contact['lastName']}",
                contact["email"], contact["phone"])
    return any(needle in value.casefold() for value in haystack if value)


def _archive_searched(row: dict[str, Any], term: str) -> bool:
    """The archive's `search` (AC-ARCH): an exact address; one word anywhere in e-mail, names or phone; several
    words together against the full name, or as a whole against the phone."""
    needle = term.strip().casefold()
    email, phone = (row.get("email") or "").strip().casefold(), (row.get("phone") or "").casefold()
    if "@" in needle and " " not in needle and "." in needle.partition("@")[2]:
        return email == needle
    if " " not in needle:
        return any(needle in value for value in (email, (row.get("firstName") or "").casefold(),
                                                 (row.get("lastName") or "").casefold(), phone))
    full = " ".join(f"{row.get('firstName') or ''} {row.get('lastName') or ''}".casefold().split())
    return " ".join(needle.split()) in full or needle in phone


def _deleted_at(row: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(row["deleted_at"]).astimezone(timezone.utc)


def _in_window(row: dict[str, Any], query) -> bool:
    """`start` and `end`: Unix milliseconds on the archive date (AC-ARCH)."""
    moment = _deleted_at(row).timestamp() * 1000
    return float(query.get("start", "-inf")) <= moment <= float(query.get("end", "inf"))


def _updated_after(contact: dict[str, Any], day: str) -> bool:
    return datetime.fromisoformat(contact["udate"]).astimezone(timezone.utc).date() > datetime.fromisoformat(day).date()


def _order(query):
    """`orders[id]` when asked; the vendor's default order is by e-mail (as its list example shows)."""
    direction = query.get("orders[id]")
    if direction:
        return (lambda c: -int(c["id"])) if direction.upper() == "DESC" else (lambda c: int(c["id"]))
    return lambda c: c["email"].strip().casefold()


def _page(items: list[Any], request: Request) -> tuple[list[Any], dict[str, Any]]:
    """One `limit`/`offset` page (limit capped at the vendor's 100) and the `page_input` the vendor echoes."""
    query = request.query_params
    limit = min(int(query.get("limit", DEFAULT_LIMIT)), MAX_LIMIT)
    offset = int(query.get("offset", 0))
    page_input = {"segmentid": 0, "formid": 0, "listid": int(query.get("listid", 0)), "tagid": 0, "limit": limit,
                  "offset": offset, "search": query.get("search"), "sort": None, "seriesid": 0, "waitid": 0,
                  "status": int(query.get("status", -1)), "forceQuery": 0, "cacheid": ""}
    return items[offset:offset + limit], page_input
