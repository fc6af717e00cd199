"""A loopback fake of Mailblue (ActiveCampaign API v3), seeded from a `Population`.

Paths, payload shapes and error bodies follow the vendor's documented examples
(/work/shared/vendor-fixtures/mailblue): every value a string, `meta.total` a
string, dates in ISO 8601 with the account's UTC offset. It serves what the
connector uses: `GET /lists`, `GET /contacts` with its filters and paging,
`GET|PUT|DELETE /contacts/{id}`, `GET /contacts/{id}/contactLists` and
`DELETE /contactArchives/{id}`. A deleted contact moves to an archive, as on the
real platform, until it is purged.

Modelling choices where the vendor is silent: every person is on the list
"Nieuwsbrief" (active when subscribed, else unsubscribed), every third also on
"Weggever" (unsubscribed); a contact's `udate` is its last list status change
(`status_changed_at`), its `adate` its last open (`last_open_at`).
"""
from __future__ import annotations

import hashlib
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
ACTIVE, UNSUBSCRIBED = "1", "2"
EDITABLE = ("email", "firstName", "lastName", "phone")  # the contact fields PUT /contacts/{id} changes here
#: AC's 403 for a key it cannot authenticate (reference/errors names the status; the wording is not published)
AUTH_MESSAGE = "You are not authorized to access this resource"


def _stamp(moment: datetime | None) -> str | None:
    return moment.astimezone(ACCOUNT_TZ).isoformat() if moment else None


def _links(kind: str, item_id: str, names: tuple[str, ...]) -> dict[str, str]:
    return {name: f"https://:account.api-us1.com/api/3/{kind}/{item_id}/{name}" for name in names}


CONTACT_LINKS = ("bounceLogs", "contactAutomations", "contactData", "contactGoals", "contactLists", "contactLogs",
                 "contactTags", "contactDeals", "deals", "fieldValues", "geoIps", "notes", "organization",
                 "plusAppend", "trackingLogs", "scoreValues")
CONTACT_LIST_LINKS = ("automation", "list", "contact", "form", "autosyncLog", "campaign", "unsubscribeAutomation",
                      "message")


class MailblueFake(FakeVendor):
    """Contacts of the population's Mailblue presences, on two lists, with the vendor's 5 requests/second."""

    name = "mailblue"
    rate_calls = 5
    rate_period = 1.0
    unauthorised_status = 403

    def __init__(self, population: Population, *, token: str = "sandbox-mailblue-token",
                 rate_calls: int | None = None, rate_period: float | None = None, admin: bool = True):
        self.admin = admin  # False: the key's user is outside the Admin group and cannot purge archived contacts
        self.contacts: dict[str, dict[str, Any]] = {}
        self.memberships: dict[str, list[dict[str, Any]]] = {}
        self.archive: dict[str, dict[str, Any]] = {}
        self.contact_ids: dict[str, str] = {}  # person key -> contact id, for tests
        self._last_id = 0
        self._seed(population)
        super().__init__(token=token, rate_calls=rate_calls, rate_period=rate_period)

    # -- seeding ------------------------------------------------------------------------
    def _seed(self, population: Population) -> None:
        for person in population.people:
            if person.mailblue is not None:
                self.add_person(person)

    def add_person(self, person: Person) -> list[str]:
        """A (new) contact for a person with a Mailblue presence, as a sign-up form would make it."""
        self._last_id += 1  # ActiveCampaign never reuses a contact id
        contact_id = str(self._last_id)
        self.contact_ids[person.key] = contact_id
        self.contacts[contact_id] = _contact(contact_id, person)
        self.memberships[contact_id] = _memberships(contact_id, person)
        return ["contact"]

    def change(self, pick: int) -> str:
        """The contact `pick` lands on flips its newsletter subscription, or changes its e-mail; both touch `udate`."""
        contact = self.contacts[sorted(self.contacts, key=int)[pick % len(self.contacts)]]
        now = _stamp(datetime.now(timezone.utc))
        if pick % 2:
            contact["email"] = f"changed{pick}@example.nl"
        else:
            for row in self.memberships[contact["id"]]:
                if row["list"] == NEWSLETTER:
                    row.update(status=UNSUBSCRIBED if row["status"] == ACTIVE else ACTIVE, udate=now)
        contact["udate"] = now
        return "contact"

    def remove(self, pick: int) -> str:
        self._archive(sorted(self.contacts, key=int)[pick % len(self.contacts)])
        return "contact"

    # -- FakeVendor -----------------------------------------------------------------------
    def routes(self) -> list[Route]:
        return [
            Route(f"{API}/lists", self.list_lists, methods=["GET"]),
            Route(f"{API}/contacts", self.list_contacts, methods=["GET"]),
            Route(f"{API}/contacts/{{contact_id}}", self.get_contact, methods=["GET"]),
            Route(f"{API}/contacts/{{contact_id}}", self.update_contact, methods=["PUT"]),
            Route(f"{API}/contacts/{{contact_id}}", self.delete_contact, methods=["DELETE"]),
            Route(f"{API}/contacts/{{contact_id}}/contactLists", self.contact_lists, methods=["GET"]),
            Route(f"{API}/contactArchives/{{contact_id}}", self.purge_archived, methods=["DELETE"]),
        ]

    def authorised(self, request: Request) -> bool:
        return request.headers.get("api-token") == self.token

    def error(self, status: int, message: str) -> Response:
        return JSONResponse({"message": AUTH_MESSAGE if status == self.unauthorised_status else message},
                            status_code=status)

    # -- routes ---------------------------------------------------------------------------
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
        return JSONResponse({"scoreValues": [], "contacts": page,
                             "meta": {"total": str(len(matched)), "page_input": page_input}})

    async def get_contact(self, request: Request) -> Response:
        contact_id = request.path_params["contact_id"]
        if contact_id not in self.contacts:
            return self._no_subscriber(contact_id)
        contact = self.contacts[contact_id]
        rows = self.memberships[contact_id]
        return JSONResponse({
            "contactAutomations": [], "contactLists": rows, "deals": [], "fieldValues": [], "geoAddresses": [],
            "geoIps": [], "contact": {**contact, "contactLists": [row["id"] for row in rows], "fieldValues": [],
                                      "contactAutomations": [], "geoIps": [], "deals": [], "accountContacts": []}})

    async def contact_lists(self, request: Request) -> Response:
        contact_id = request.path_params["contact_id"]
        if contact_id not in self.contacts:
            return self._no_subscriber(contact_id)
        return JSONResponse({"contactLists": self.memberships[contact_id]})

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
        contact["udate"] = _stamp(datetime.now(timezone.utc))
        return JSONResponse({"fieldValues": [], "contact": contact})

    async def delete_contact(self, request: Request) -> Response:
        contact_id = request.path_params["contact_id"]
        if contact_id not in self.contacts:
            return JSONResponse({"message": f"No result found for contact with id {contact_id}"}, status_code=404)
        self._archive(contact_id)
        return JSONResponse({})

    async def purge_archived(self, request: Request) -> Response:
        if not self.admin:
            return Response(status_code=404)  # the vendor answers non-admins 404 with an empty body
        self.archive.pop(request.path_params["contact_id"], None)
        return JSONResponse({})

    # -- helpers --------------------------------------------------------------------------
    def _archive(self, contact_id: str) -> None:
        """What deleting does on the platform: the contact leaves its lists and waits in the archive."""
        self.memberships.pop(contact_id)
        self.archive[contact_id] = {**self.contacts.pop(contact_id), "deleted_at": _stamp(datetime.now(timezone.utc))}

    def _matches(self, contact: dict[str, Any], query) -> bool:
        contact_id = int(contact["id"])
        if "email" in query and contact["email"].strip().casefold() != query["email"].strip().casefold():
            return False
        if "search" in query and not _searched(contact, query["search"]):
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


def _memberships(contact_id: str, person: Person) -> list[dict[str, Any]]:
    presence = person.mailblue
    statuses = [(NEWSLETTER, ACTIVE if presence.subscribed else UNSUBSCRIBED)]
    if int(contact_id) % 3 == 0:
        statuses.append((GIVEAWAY, UNSUBSCRIBED))
    return [_membership(f"{contact_id}{list_id}", contact_id, list_id, status, person)
            for list_id, status in statuses]


def _membership(row_id: str, contact_id: str, list_id: str, status: str, person: Person) -> dict[str, Any]:
    presence = person.mailblue
    changed = presence.status_changed_at or presence.created_at
    return {
        "contact": contact_id, "list": list_id, "form": None, "seriesid": "0", "sdate": _stamp(presence.created_at),
        "udate": _stamp(changed), "status": status, "responder": "1", "sync": "0", "unsubreason": None,
        "campaign": None, "message": None, "first_name": person.first_name, "last_name": person.last_name,
        "ip4Sub": "0", "sourceid": "0", "autosyncLog": None, "ip4_last": "0", "ip4Unsub": "0",
        "created_timestamp": presence.created_at.strftime("%Y-%m-%d %H:%M:%S"),
        "updated_timestamp": changed.strftime("%Y-%m-%d %H:%M:%S"), "created_by": None, "updated_by": None,
        "unsubscribeAutomation": None, "links": _links("contactLists", row_id, CONTACT_LIST_LINKS), "id": row_id,
        "automation": None,
    }


def _searched(contact: dict[str, Any], term: str) -> bool:
    """The vendor's `search`: the term anywhere in names, full name, e-mail or phone, ignoring case."""
    needle = term.strip().casefold()
    haystack = (contact["firstName"], contact["lastName"], f"{contact['firstName']} {contact['lastName']}",
                contact["email"], contact["phone"])
    return any(needle in value.casefold() for value in haystack if value)


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
