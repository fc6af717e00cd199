"""A loopback fake of the WooCommerce REST API v3 (customers and orders), seeded from the population's shop orders.

Faithful where the connector depends on it (WC: the `woocommerce/woocommerce` repository, plugins/woocommerce/
includes/rest-api/Controllers; DOCS: developer.woocommerce.com/docs/apis/rest-api):
- Paths under /wp-json/wc/v3. Authentication over HTTPS is HTTP Basic consumer_key:consumer_secret (DOCS
  authentication). A wrong key is 401 `woocommerce_rest_authentication_error` "Consumer key is invalid."; no
  credentials at all 401 `woocommerce_rest_cannot_view` (what a host that drops the Authorization header causes);
  a key with Read permission only answers a write with 401 `woocommerce_rest_authentication_error` "The API key
  provided does not have write permissions." (WC class-wc-rest-authentication.php).
- Error bodies `{"code", "message", "data": {"status"}}` (WordPress WP_Error through the REST server).
- Lists: `page` (>= 1) and `per_page` (1..100, default 10) outside their range are 400 `rest_invalid_param`, as are
  an `orderby`, `order`, `status` or `role` outside their enums and a `modified_after` that is no date-time
  (WC_REST_CRUD_Controller::get_collection_params, WC_REST_Orders_V2_Controller::get_collection_params,
  rest_validate_request_arg); unknown parameters are ignored, as WordPress does. Answers carry `X-WP-Total`,
  `X-WP-TotalPages` and a `Link` header with `next`/`prev`; a page past the last is an empty list.
- Orders: `status=any` (the default) leaves the trash out, `status=trash` lists it; `customer`, `search` (a
  substring of the billing and shipping fields), `modified_after` with `dates_are_gmt`. GET orders/{id} shows a
  trashed order too; an unknown id is 404 `woocommerce_rest_shop_order_invalid_id` "Invalid ID.". DELETE without
  `force` moves it to the trash (410 `woocommerce_rest_already_trashed` if it is there), with `force=true` it is
  gone; both answer 200 with the order as it was (WC_REST_CRUD_Controller::delete_item).
- Customers: listed by `role` (default `customer`, or `all`), `email` (exact), `search`. DELETE needs `force=true`
  (else 501 `woocommerce_rest_trash_not_supported` "Customers do not support trashing."); a user whose role is not
  customer or subscriber is 403 `woocommerce_rest_cannot_delete`; deleting sets `customer_id` to 0 on the user's
  orders (wc-user-functions.php `wc_reset_order_customer_id_on_deleted_user`). ASSUMED: an unknown user id is 404
  `woocommerce_rest_invalid_id` "Invalid resource id." (the code of Users::get_user_in_current_site's error is not
  in the controllers). PUT/POST customers/{id} updates `first_name`, `last_name`, `email` (one another user has is
  400 `woocommerce_rest_customer_invalid_email`), `billing` and `shipping`.
- No rate limit: the REST API v3 documents none (the Store API's optional limiter is for the Store API only);
  `rate_calls` makes the fake answer 429 with Retry-After as a host in front of a shop might.

Seeded: each person with shop orders of the population; registered ones are users with role `customer` (ids from
2; user 1 is the shop's administrator, the owner), the others place guest orders (`customer_id` 0, the person in
`billing` only). Order ids are WordPress post ids, counted over every order by date. Digital products have an empty
shipping address. Local dates are Europe/Amsterdam.

Not modelled: refunds, notes, products, OAuth 1.0a over plain HTTP, `_fields`, `include`/`exclude`, HPOS.
"""
from __future__ import annotations

import base64
import hashlib
from datetime import datetime, timezone
from typing import Any
from zoneinfo import ZoneInfo

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from vergeet.sandbox.population import Person, Population
from vergeet.sandbox.server import FakeVendor

PREFIX = "/wp-json/wc/v3"
SHOP_ZONE = ZoneInfo("Europe/Amsterdam")
ORDER_STATUSES = ("pending", "processing", "on-hold", "completed", "cancelled", "refunded", "failed",
                  "checkout-draft")
ROLES = ("all", "administrator", "editor", "author", "contributor", "subscriber", "customer", "shop_manager")
DELETABLE_ROLES = ("customer", "subscriber")
ADDRESS_FIELDS = ("first_name", "last_name", "company", "address_1", "address_2", "city", "state", "postcode",
                  "country", "email", "phone")


def _gmt(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")


def _local(moment: datetime) -> str:
    return moment.astimezone(SHOP_ZONE).strftime("%Y-%m-%dT%H:%M:%S")


def _dates(name: str, moment: datetime | None) -> dict[str, str | None]:
    return {name: _local(moment) if moment else None, f"{name}_gmt": _gmt(moment) if moment else None}


def _boolean(value: str | None) -> bool | None:
    """A WordPress REST boolean (rest_validate_request_arg): absent is false; None when the value is no boolean."""
    if value is None:
        return False
    return {"true": True, "1": True, "false": False, "0": False}.get(value.lower())


def _address(person: Person, email: str | None, phone: str | None) -> dict[str, str]:
    return {"first_name": person.first_name, "last_name": person.last_name, "company": person.company or "",
            "address_1": person.street, "address_2": "", "city": person.city, "state": "", "postcode": person.zipcode,
            "country": "NL", "email": email or "", "phone": phone or ""}


def _shipping(person: Person, phone: str | None, sent: bool) -> dict[str, str]:
    """A shipping address (it has no e-mail): the person's when something was sent by post, else empty."""
    fields = _address(person, None, phone) if sent else dict.fromkeys(ADDRESS_FIELDS, "")
    fields.pop("email")
    return fields


class WooCommerceFake(FakeVendor):
    """One WooCommerce shop with its customers (WordPress users) and orders."""

    name = "woocommerce"
    unauthorised_status = 401

    def __init__(self, population: Population, *, consumer_key: str = "ck_sandbox0000000000000000000000000000000000",
                 consumer_secret: str = "cs_sandbox0000000000000000000000000000000000", write: bool = True,
                 rate_calls: int | None = None, rate_period: float | None = None):
        self.population = population
        self.consumer_key, self.consumer_secret, self.write = consumer_key, consumer_secret, write
        self.users: dict[int, dict[str, Any]] = {}
        self.orders: dict[int, dict[str, Any]] = {}
        self._next_user, self._next_order = 2, 100
        self._user_of: dict[str, int] = {}  # person key -> their user id
        self._refusal: tuple[str, str] = ("woocommerce_rest_cannot_view", "Sorry, you cannot list resources.")
        owner = datetime(2015, 1, 5, 9, tzinfo=timezone.utc)
        self.users[1] = self._user(1, owner, "info@jessworks.nl", "Jessica", "van Diggelen", "administrator")
        people = [p for p in population.people if p.woocommerce is not None]
        for person in people:
            self._add_customer(person)
        for created, person, order in sorted(((o.created, p, o) for p in people for o in p.woocommerce.orders),
                                             key=lambda item: (item[0], item[1].key)):
            self._add_order(person, order)
        super().__init__(token=consumer_secret, rate_calls=rate_calls, rate_period=rate_period)

    # -- seeding and changing ------------------------------------------------------------------------------------
    def _user(self, user_id: int, created: datetime, email: str, first: str, last: str, role: str,
              billing: dict[str, str] | None = None, shipping: dict[str, str] | None = None) -> dict[str, Any]:
        return {"id": user_id, **_dates("date_created", created), **_dates("date_modified", created),
                "email": email, "first_name": first, "last_name": last, "role": role,
                "username": email.split("@")[0].strip().lower(),
                "billing": billing or dict.fromkeys(ADDRESS_FIELDS, ""),
                "shipping": shipping or dict.fromkeys(ADDRESS_FIELDS, ""), "is_paying_customer": True,
                "avatar_url": f"https://secure.gravatar.com/avatar/{hashlib.md5(email.encode()).hexdigest()}",
                "meta_data": []}

    def _add_customer(self, person: Person) -> int | None:
        shop = person.woocommerce
        if shop is None or not shop.registered:
            return None
        user_id = self._next_user
        self._next_user += 1
        self.users[user_id] = self._user(
            user_id, shop.created_at, shop.email.strip(), person.first_name, person.last_name, "customer",
            _address(person, shop.email, shop.phone),
            _shipping(person, shop.phone, any(o.shipped for o in shop.orders)))
        self._user_of[person.key] = user_id
        return user_id

    def _add_order(self, person: Person, order: Any) -> int:
        shop = person.woocommerce
        order_id = self._next_order
        self._next_order += 1
        paid = order.created if order.status in ("processing", "completed", "refunded") else None
        completed = order.created if order.status in ("completed", "refunded") else None
        key = base64.b32encode(hashlib.sha256(f"order|{person.key}|{order_id}".encode()).digest()[:10]).decode()
        self.orders[order_id] = {
            "id": order_id, "parent_id": 0, "number": str(order_id), "order_key": f"wc_order_{key.lower()}",
            "created_via": "checkout", "version": "9.4.2", "status": order.status, "currency": "EUR",
            **_dates("date_created", order.created), **_dates("date_modified", completed or order.created),
            "discount_total": "0.00", "shipping_total": "4.95" if order.shipped else "0.00", "total": order.total,
            "total_tax": "0.00", "prices_include_tax": True,
            "customer_id": self._user_of.get(person.key, 0),
            "customer_ip_address": f"145.53.{order_id % 250}.{(order_id * 7) % 250}",
            "customer_user_agent": "Mozilla/5.0", "customer_note": "",
            "billing": _address(person, shop.email, shop.phone),
            "shipping": _shipping(person, shop.phone, order.shipped),
            "payment_method": "mollie_wc_gateway_ideal", "payment_method_title": "iDEAL",
            "transaction_id": f"tr_{key[:10]}" if paid else "", **_dates("date_paid", paid),
            **_dates("date_completed", completed), "cart_hash": key.lower(), "meta_data": [],
            "line_items": [{"id": order_id * 10, "name": order.product, "product_id": 10 + len(order.product) % 7,
                            "quantity": 1, "subtotal": order.total, "total": order.total, "sku": "", "price":
                            float(order.total)}],
            "tax_lines": [], "shipping_lines": [], "fee_lines": [], "coupon_lines": [], "refunds": []}
        return order_id

    def add_person(self, person: Person) -> list[str]:
        """A newcomer's account (if registered) and orders."""
        added = ["customer"] if self._add_customer(person) else []
        for order in person.woocommerce.orders if person.woocommerce else []:
            self._add_order(person, order)
            added.append("order")
        return added

    def change(self, pick: int) -> str:
        """The shop marks an order completed (a trashed one stays in the trash)."""
        order = self.orders[sorted(self.orders)[pick % len(self.orders)]]
        now = datetime.now(timezone.utc)
        order["status"] = "completed" if order["status"] != "trash" else "trash"
        order.update(_dates("date_completed", now), **_dates("date_modified", now))
        return "order"

    def remove(self, pick: int) -> str:
        """The owner moves an order to the trash in the admin (it is still there, restorable)."""
        order = self.orders[sorted(self.orders)[pick % len(self.orders)]]
        order["status"] = "trash"
        order.update(_dates("date_modified", datetime.now(timezone.utc)))
        return "order"

    # -- the gate ----------------------------------------------------------------------------------------------
    def routes(self) -> list[Route]:
        return [Route(f"{PREFIX}/customers", self.list_customers, methods=["GET"]),
                Route(f"{PREFIX}/customers/{{id}}", self.customer, methods=["GET", "PUT", "POST", "PATCH", "DELETE"]),
                Route(f"{PREFIX}/orders", self.list_orders, methods=["GET"]),
                Route(f"{PREFIX}/orders/{{id}}", self.order, methods=["GET", "DELETE"])]

    def authorised(self, request: Request) -> bool:
        header = request.headers.get("authorization", "")
        expected = base64.b64encode(f"{self.consumer_key}:{self.consumer_secret}".encode()).decode()
        if not header:
            self._refusal = ("woocommerce_rest_cannot_view", "Sorry, you cannot list resources.")
            return False
        if header != f"Basic {expected}":
            self._refusal = ("woocommerce_rest_authentication_error", "Consumer key is invalid.")
            return False
        if request.method != "GET" and not self.write:
            self._refusal = ("woocommerce_rest_authentication_error",
                             "The API key provided does not have write permissions.")
            return False
        return True

    def error(self, status: int, message: str, *, code: str | None = None) -> Response:
        if status == 401 and code is None:
            code, message = self._refusal
        return JSONResponse({"code": code or "woocommerce_rest_error", "message": message, "data": {"status": status}},
                            status_code=status)

    def _invalid(self, name: str, reason: str) -> Response:
        return JSONResponse({"code": "rest_invalid_param", "message": f"Invalid parameter(s): {name}",
                             "data": {"status": 400, "params": {name: reason}}}, status_code=400)

    # -- listings ----------------------------------------------------------------------------------------------
    def _page(self, request: Request, rows: list[dict[str, Any]], orderby: tuple[str, ...]) -> Response:
        """One page of `rows` as WordPress pages them, or the 400 of a parameter out of its range."""
        query = request.query_params
        for name, default, high in (("page", "1", None), ("per_page", "10", 100)):
            text = query.get(name, default)
            if not text.isdigit() or int(text) < 1 or (high is not None and int(text) > high):
                return self._invalid(name, f"{name} must be between 1 (inclusive) and 100 (inclusive)" if high
                                     else f"{name} must be greater than or equal to 1")
        if query.get("order", "desc") not in ("asc", "desc"):
            return self._invalid("order", "order is not one of asc and desc.")
        key = query.get("orderby", orderby[0])
        if key not in orderby:
            return self._invalid("orderby", f"orderby is not one of {', '.join(orderby)}.")
        page, size = int(query.get("page", "1")), int(query.get("per_page", "10"))
        field = {"date": "date_created_gmt", "registered_date": "date_created_gmt", "modified": "date_modified_gmt",
                 "name": "last_name"}.get(key, "id")
        rows = sorted(rows, key=lambda row: (row[field] or "", row["id"]), reverse=query.get("order", "desc") == "desc")
        pages = -(-len(rows) // size)
        response = JSONResponse(rows[(page - 1) * size: page * size])
        response.headers.update({"X-WP-Total": str(len(rows)), "X-WP-TotalPages": str(pages)})
        base = str(request.url.remove_query_params("page"))
        links = [f'<{base}&page={page - 1}>; rel="prev"'] if page > 1 else []
        links += [f'<{base}&page={page + 1}>; rel="next"'] if page < pages else []
        if links:
            response.headers["Link"] = ", ".join(links)
        return response

    async def list_customers(self, request: Request) -> Response:
        query = request.query_params
        role = query.get("role", "customer")
        if role not in ROLES:
            return self._invalid("role", f"role is not one of {', '.join(ROLES)}.")
        rows = [u for u in self.users.values() if role == "all" or u["role"] == role]
        if email := query.get("email"):
            rows = [u for u in rows if u["email"].lower() == email.strip().lower()]
        if search := query.get("search", "").lower():
            rows = [u for u in rows if any(search in str(u[k]).lower() for k in ("email", "username", "last_name"))]
        return self._page(request, rows, ("id", "include", "name", "registered_date"))

    async def list_orders(self, request: Request) -> Response:
        query = request.query_params
        status = query.get("status", "any")
        if status not in ("any", "trash", *ORDER_STATUSES):
            return self._invalid("status", f"status is not one of any, trash, {', '.join(ORDER_STATUSES)}.")
        rows = [o for o in self.orders.values()
                if (o["status"] != "trash" if status == "any" else o["status"] == status)]
        if "customer" in query:
            if not query["customer"].isdigit():
                return self._invalid("customer", "customer is not of type integer.")
            rows = [o for o in rows if o["customer_id"] == int(query["customer"])]
        if "modified_after" in query:
            try:
                after = datetime.fromisoformat(query["modified_after"])
            except ValueError:
                return self._invalid("modified_after", "Invalid date.")
            gmt = _boolean(query.get("dates_are_gmt"))
            if gmt is None:
                return self._invalid("dates_are_gmt", "dates_are_gmt is not of type boolean.")
            column = "date_modified_gmt" if gmt else "date_modified"
            rows = [o for o in rows if o[column] > after.strftime("%Y-%m-%dT%H:%M:%S")]
        if search := query.get("search", "").lower():
            rows = [o for o in rows if any(search in str(value).lower() for part in ("billing", "shipping")
                                           for value in o[part].values())]
        return self._page(request, rows, ("date", "id", "include", "title", "slug", "modified"))

    # -- one record --------------------------------------------------------------------------------------------
    async def order(self, request: Request) -> Response:
        order_id = request.path_params["id"]
        order = self.orders.get(int(order_id)) if order_id.isdigit() else None
        if order is None:
            return self.error(404, "Invalid ID.", code="woocommerce_rest_shop_order_invalid_id")
        if request.method == "GET":
            return JSONResponse(order)
        force = _boolean(request.query_params.get("force"))
        if force is None:
            return self._invalid("force", "force is not of type boolean.")
        if force:
            return JSONResponse(self.orders.pop(order["id"]))
        if order["status"] == "trash":
            return self.error(410, "The shop_order has already been deleted.", code="woocommerce_rest_already_trashed")
        answer = dict(order)
        order["status"] = "trash"
        order.update(_dates("date_modified", datetime.now(timezone.utc)))
        return JSONResponse(answer)

    async def customer(self, request: Request) -> Response:
        user_id = request.path_params["id"]
        user = self.users.get(int(user_id)) if user_id.isdigit() else None
        if request.method == "DELETE":
            force = _boolean(request.query_params.get("force"))
            if force is None:
                return self._invalid("force", "force is not of type boolean.")
            if not force:
                return self.error(501, "Customers do not support trashing.",
                                  code="woocommerce_rest_trash_not_supported")
        if user is None:
            return self.error(404, "Invalid resource id.", code="woocommerce_rest_invalid_id")
        if request.method == "GET":
            return JSONResponse(user)
        if request.method == "DELETE":
            if user["role"] not in DELETABLE_ROLES:
                return self.error(403, f"Sorry, users with {user['role']} role cannot be deleted via this endpoint. "
                                       f"Allowed roles: {', '.join(DELETABLE_ROLES)}",
                                  code="woocommerce_rest_cannot_delete")
            del self.users[user["id"]]
            for order in self.orders.values():
                if order["customer_id"] == user["id"]:
                    order["customer_id"] = 0
            return JSONResponse(user)
        return await self._update(request, user)

    async def _update(self, request: Request, user: dict[str, Any]) -> Response:
        try:
            body = await request.json()
        except ValueError:
            return self.error(400, "Invalid JSON body passed.", code="rest_invalid_json")
        if not isinstance(body, dict):
            return self.error(400, "Invalid JSON body passed.", code="rest_invalid_json")
        email = body.get("email")
        if isinstance(email, str) and any(u["email"].lower() == email.lower() and u["id"] != user["id"]
                                          for u in self.users.values()):
            return self.error(400, "Email address is invalid.", code="woocommerce_rest_customer_invalid_email")
        for name in ("first_name", "last_name", "email"):
            if isinstance(body.get(name), str):
                user[name] = body[name]
        for part in ("billing", "shipping"):
            for name, value in (body.get(part) or {}).items():
                if name in user[part] and isinstance(value, str):
                    user[part][name] = value
        user.update(_dates("date_modified", datetime.now(timezone.utc)))
        return JSONResponse(user)
