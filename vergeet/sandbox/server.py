"""Loopback HTTP fakes of the vendors: the shared server machinery.

Each fake is a Starlette app served by uvicorn in a background thread on a
free 127.0.0.1 port. The base class records every request (so tests can count
and inspect calls), checks authentication the vendor's way, enforces the
vendor's published rate limit with a 429 and `Retry-After`, and can be told to
fail the next requests (fault injection for tests).
"""
from __future__ import annotations

import asyncio
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


@dataclass
class InjectedFault:
    status: int
    remaining: int
    method: str | None = None
    path_contains: str | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def matches(self, request: Request) -> bool:
        return ((self.method is None or request.method == self.method)
                and (self.path_contains is None or self.path_contains in request.url.path))


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
        if fault is not None:
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
