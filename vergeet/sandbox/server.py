"""Loopback HTTP fakes of the vendors: the shared server machinery.

Each fake is a Starlette app served by uvicorn in a background thread on a
free 127.0.0.1 port. The base class records every request (so tests can count
and inspect calls), checks authentication the vendor's way, enforces the
vendor's published rate limit with a 429 and `Retry-After`, and can be told to
fail the next requests (fault injection for tests): with a status, or with one of
the payload and wire faults of `FAULT_KINDS` that real vendors and the proxies
in front of them produce.
"""
from __future__ import annotations

import asyncio
import json
import math
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route


@dataclass(frozen=True)
class LoggedRequest:
    """One request as a fake saw it."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes
    status: int


#: faults `inject` makes. "html": 200 with an HTML page and the request not served (a proxy's or login page);
#: the others serve the request (what it changes is changed) and spoil the answer: "cut_off" promises the whole
#: body in Content-Length, sends half and drops the connection; "truncated_json" is a complete response of half the
#: JSON; "missing_id" drops every "id" key; "wrong_id" turns every id into a float (a big integer id through a
#: JSON encoder that knows only doubles) or null; "wrong_shape" wraps an object in a list and a list in an object.
FAULT_KINDS = ("html", "cut_off", "truncated_json", "missing_id", "wrong_id", "wrong_shape")
SERVED_FAULTS = frozenset(FAULT_KINDS) - {"html"}
HTML_PAGE = b"<!DOCTYPE html><html><head><title>Just a moment...</title></head><body>Checking</body></html>"


@dataclass
class InjectedFault:
    status: int
    remaining: int
    method: str | None = None
    path_contains: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    kind: str = "status"

    def matches(self, request: Request) -> bool:
        return ((self.method is None or request.method == self.method)
                and (self.path_contains is None or self.path_contains in request.url.path))


def _spoil(kind: str, body: bytes) -> bytes:
    """The body a served fault sends instead of `body` (unchanged when it is no JSON to spoil)."""
    if kind in ("cut_off", "truncated_json"):
        return body[: len(body) // 2]
    try:
        payload = json.loads(body)
    except ValueError:
        return body
    if kind == "wrong_shape":
        return json.dumps([payload] if isinstance(payload, dict) else {"data": payload}).encode()

    def walk(value: Any) -> Any:
        if isinstance(value, list):
            return [walk(item) for item in value]
        if not isinstance(value, dict):
            return value
        spoilt = {key: walk(item) for key, item in value.items() if not (kind == "missing_id" and key == "id")}
        if kind == "wrong_id" and "id" in value:
            spoilt["id"] = float(value["id"]) if str(value["id"]).isdigit() else None
        return spoilt

    return json.dumps(walk(payload)).encode()


class FakeVendor:
    """Base of a vendor fake. Subclasses define `routes()`, `authorised()` and the error bodies."""

    name = "vendor"
    #: requests allowed per window, and the window in seconds (the vendor's published limit)
    rate_calls: int | None = None
    rate_period: float = 1.0
    #: the status the vendor answers a wrong credential with (some use 403 instead of 401)
    unauthorised_status: int = 401

    def __init__(self, *, token: str, rate_calls: int | None = None, rate_period: float | None = None):
        self.token = token
        if rate_calls is not None:
            self.rate_calls = rate_calls
        if rate_period is not None:
            self.rate_period = rate_period
        self.requests: list[LoggedRequest] = []
        self.faults: list[InjectedFault] = []
        self._window: deque[float] = deque()
        self._lock = threading.Lock()
        self.app = Starlette(routes=self.routes())
        self.app.add_middleware(_Gatekeeper, fake=self)

    # -- for subclasses -------------------------------------------------------------
    def routes(self) -> list[Route]:
        raise NotImplementedError

    def authorised(self, request: Request) -> bool:
        raise NotImplementedError

    # -- the changes a business makes between two nights (incremental-sync tests, benchmarks) --
    def add_person(self, person: Any) -> list[str]:
        """Records for a person with a presence in this system; the record types added."""
        raise NotImplementedError

    def change(self, pick: int) -> str:
        """Change the record `pick` lands on (modulo the records there are); its record type."""
        raise NotImplementedError

    def remove(self, pick: int) -> str:
        """Delete the record `pick` lands on, as a user of the vendor would; its record type."""
        raise NotImplementedError

    def error(self, status: int, message: str) -> Response:
        """The vendor's error body for `status`."""
        return JSONResponse({"error": message}, status_code=status)

    def rate_limited(self, wait: float) -> Response:
        """The vendor's 429 when its window has room again in `wait` seconds (Retry-After in seconds by default)."""
        response = self.error(429, "too many requests")
        response.headers["Retry-After"] = str(max(1, math.ceil(wait)))
        return response

    # -- for tests ------------------------------------------------------------------
    def fail_next(self, count: int, status: int = 500, *, method: str | None = None,
                  path_contains: str | None = None, headers: dict[str, str] | None = None) -> None:
        """Answer the next `count` matching requests with `status` instead of serving them."""
        self.faults.append(InjectedFault(status, count, method, path_contains, headers or {}))

    def inject(self, kind: str, count: int = 1, *, method: str | None = None,
               path_contains: str | None = None) -> None:
        """Spoil the next `count` matching answers with a fault of `FAULT_KINDS`."""
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault {kind!r}; one of {', '.join(FAULT_KINDS)}")
        self.faults.append(InjectedFault(200, count, method, path_contains, kind=kind))

    def clear_faults(self) -> None:
        """Serve every request again."""
        with self._lock:
            self.faults.clear()

    def count(self, method: str | None = None, path_contains: str | None = None, *, status: int | None = None) -> int:
        """How many requests matched (all statuses unless one is given)."""
        return sum(1 for r in self.requests
                   if (method is None or r.method == method)
                   and (path_contains is None or path_contains in r.path)
                   and (status is None or r.status == status))

    # -- the gate every request passes ------------------------------------------------
    def _over_rate(self) -> float | None:
        """Seconds until the window has room, when this request exceeds the limit; else None."""
        if self.rate_calls is None:
            return None
        now = time.monotonic()
        with self._lock:
            while self._window and now - self._window[0] >= self.rate_period:
                self._window.popleft()
            if len(self._window) >= self.rate_calls:
                return self.rate_period - (now - self._window[0])
            self._window.append(now)
        return None

    def _injected(self, request: Request) -> InjectedFault | None:
        with self._lock:
            for fault in self.faults:
                if fault.remaining > 0 and fault.matches(request):
                    fault.remaining -= 1
                    return fault
        return None


class _Gatekeeper:
    """ASGI middleware: log, fault injection, auth, rate limit, then the route."""

    def __init__(self, app, fake: FakeVendor):
        self.app, self.fake = app, fake

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        body = await request.body()

        async def replay():
            return {"type": "http.request", "body": body, "more_body": False}

        status_box: dict[str, int] = {}

        def log(status: int) -> None:
            self.fake.requests.append(LoggedRequest(
                request.method, request.url.path, request.url.query,
                {k.lower(): v for k, v in request.headers.items()}, body, status))

        async def capture(message):
            # logged before the response leaves, so a client that has its answer always finds it in the log
            if message["type"] == "http.response.start" and "status" not in status_box:
                status_box["status"] = message["status"]
                log(message["status"])
            await send(message)

        response: Response | None = None
        fault = self.fake._injected(request)
        if fault is not None and fault.kind in SERVED_FAULTS:
            await self._spoilt(fault.kind, scope, replay, capture)
            return
        if fault is not None and fault.kind == "html":
            response = Response(HTML_PAGE, media_type="text/html")
        elif fault is not None:
            response = self.fake.error(fault.status, "injected fault")
            response.headers.update(fault.headers)
        elif not self.fake.authorised(request):
            response = self.fake.error(self.fake.unauthorised_status, "unauthorised")
        else:
            wait = self.fake._over_rate()
            if wait is not None:
                response = self.fake.rate_limited(wait)
        if response is not None:
            await response(scope, replay, capture)
        else:
            await self.app(scope, replay, capture)
        if "status" not in status_box:
            log(0)

    async def _spoilt(self, kind: str, scope, receive, send) -> None:
        """Serve the request, then send its answer spoilt by `kind`."""
        start: dict[str, Any] = {}
        chunks: list[bytes] = []

        async def collect(message):
            if message["type"] == "http.response.start":
                start.update(message)
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        await self.app(scope, receive, collect)
        whole = b"".join(chunks)
        body = _spoil(kind, whole)
        headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
        headers.append((b"content-length", str(len(whole) if kind == "cut_off" else len(body)).encode()))
        await send({**start, "headers": headers})
        # a cut-off answer ends here, unfinished: the server drops the connection mid-body
        await send({"type": "http.response.body", "body": body, "more_body": kind == "cut_off"})


class FakeServer:
    """Serves one fake on a free 127.0.0.1 port in a background thread."""

    def __init__(self, fake: FakeVendor):
        self.fake = fake
        # proto IPPROTO_TCP (not 0) so asyncio sets TCP_NODELAY on accepted connections; without it every
        # response waits ~40 ms for the client's delayed ACK (Nagle between header and body writes).
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind(("127.0.0.1", 0))
        self.port = self._socket.getsockname()[1]
        config = uvicorn.Config(fake.app, log_level="warning", access_log=False, lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._run, name=f"fake-{fake.name}", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _run(self) -> None:
        asyncio.run(self._server.serve(sockets=[self._socket]))

    def start(self) -> FakeServer:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError(f"sandbox {self.fake.name} did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._socket.close()

    def __enter__(self) -> FakeServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
