"""The HTTP layer every requests-based connector shares.

One `VendorSession` per vendor: connect/read timeouts, retries with
exponential backoff on connection errors, 5xx and 429 (honouring
`Retry-After`) through urllib3's `Retry`, a client-side rate limiter so the
vendor's published limit is not exceeded in the first place, typed errors that
name vendor, method, path and status but never a response body, and
paginators as small state objects (after dlt's rest_client).
"""
from __future__ import annotations

import logging
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


_URL_QUERY = re.compile(r"((?:https?://|/)[^\s?\"'<>]*)\?[^\s\"'<>]*")


class _RedactQueries(logging.Filter):
    """Strips query strings from URLs in a log record: a search's query carries an e-mail, a phone or a name."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # a malformed record: leave it to logging's own error handling
            return True
        record.msg, record.args = _URL_QUERY.sub(r"\1?<redacted>", message), ()
        return True


def redact_query_strings(*logger_names: str) -> None:
    """Redact URL query strings in what these loggers write (a logger's filters do not reach its children)."""
    for name in logger_names:
        logging.getLogger(name).addFilter(_REDACT)


_REDACT = _RedactQueries()
# urllib3 logs request lines at DEBUG and retries at WARNING, both with the URL and its query.
redact_query_strings("urllib3.connectionpool", "urllib3.util.retry")


class VendorError(Exception):
    """A vendor call failed. The message names vendor, method, path and status only."""

    def __init__(self, vendor: str, method: str, path: str, status: int | None, reason: str):
        self.vendor, self.method, self.path, self.status, self.reason = vendor, method, path, status, reason
        where = f"HTTP {status}" if status is not None else "no response"
        super().__init__(f"{vendor}: {method} {path} failed ({where}): {reason}")


class VendorAuthError(VendorError):
    """401/403: the token is wrong, expired or lacks a scope."""


class VendorNotFound(VendorError):
    """404: the record does not exist (any more)."""


class VendorRejected(VendorError):
    """Another 4xx: the vendor refused the request as sent."""


class VendorUnavailable(VendorError):
    """5xx, 429 or connection errors that outlasted every retry."""


class VendorBadResponse(VendorError):
    """The vendor answered 2xx with something that is not the expected JSON."""


def error_for_status(vendor: str, method: str, path: str, status: int) -> VendorError:
    """The typed error for a non-2xx status, with a reason a person can act on."""
    if status in (401, 403):
        return VendorAuthError(vendor, method, path, status, "authentication refused; check the token in the config")
    if status == 404:
        return VendorNotFound(vendor, method, path, status, "not found")
    if status in RETRY_STATUSES:
        return VendorUnavailable(vendor, method, path, status, "vendor kept failing after all retries; try again later")
    return VendorRejected(vendor, method, path, status, "request rejected by the vendor")


class RateLimiter:
    """Sliding window: at most `calls` requests in any `period` seconds, as the vendor counts them.

    A request holds its place in the window from before it is sent until its
    response is in, and is then dated by its response. The vendor counts a
    request when it arrives, which lies between the two, so the vendor's window
    never holds more than `calls` whatever the latency, while a burst up to the
    limit still goes at once: just under the limit, without a guessed safety
    margin. Thread-safe, so concurrent users of one vendor share its budget.
    Written here rather than taken from a package because it is the whole
    algorithm and the clock can be injected in tests.
    """

    def __init__(self, calls: int, period: float, clock: Callable[[], float] = time.monotonic):
        if calls < 1 or period <= 0:
            raise ValueError("a rate limit needs at least one call per positive period")
        self.calls, self.period = calls, period
        self._clock = clock
        self._answered: deque[float] = deque()  # when the window's answered requests came back, oldest first
        self._under_way = 0
        self._room = threading.Condition()

    @contextmanager
    def slot(self) -> Iterator[None]:
        """Hold one request's place in the window while the request is under way."""
        self.acquire()
        try:
            yield
        finally:
            self.release()

    def acquire(self) -> float:
        """Wait until one more request fits in the window and claim its place; returns seconds waited."""
        started = self._clock()
        with self._room:
            while True:
                now = self._clock()
                while self._answered and now - self._answered[0] >= self.period:
                    self._answered.popleft()
                if len(self._answered) + self._under_way < self.calls:
                    self._under_way += 1
                    return now - started
                # a place frees when the oldest answered request leaves the window, or when one under way is answered
                self._room.wait(self.period - (now - self._answered[0]) if self._answered else None)

    def release(self) -> None:
        """The request claimed by `acquire` has its answer: date its place now."""
        with self._room:
            self._under_way -= 1
            self._answered.append(self._clock())
            self._room.notify()


class _EpochAwareRetry(Retry):
    """urllib3's `Retry`, except that a `Retry-After` integer that can only be a Unix time is read as one.

    Moneybird sends the epoch second at which its rate window resets (OpenAPI spec
    github.com/moneybird/openapi, `429_too_many_requests`), which plain urllib3 would
    take as a delay of decades (capped at `retry_after_max`, six hours).
    """

    EPOCH_FLOOR = 1_000_000_000  # 2001-09-09: no vendor asks for a 31-year delay

    def parse_retry_after(self, retry_after: str) -> float:
        value = retry_after.strip()
        if value.isdigit() and int(value) >= self.EPOCH_FLOOR:
            return min(max(int(value) - time.time(), 0.0), self.retry_after_max)
        return super().parse_retry_after(retry_after)


class _LimitedAdapter(HTTPAdapter):
    """An adapter that asks the vendor's rate limiter before each send."""

    def __init__(self, limiter: RateLimiter | None, **kwargs: Any):
        self.limiter = limiter
        super().__init__(**kwargs)

    def send(self, request, **kwargs):  # type: ignore[override]
        if self.limiter is None:
            return super().send(request, **kwargs)
        with self.limiter.slot():
            return super().send(request, **kwargs)


class BearerAuth(requests.auth.AuthBase):
    """`Authorization: Bearer <token>` (Moneybird)."""

    def __init__(self, token: str):
        self.token = token

    def __call__(self, request):
        request.headers["Authorization"] = f"Bearer {self.token}"
        return request


class HeaderTokenAuth(requests.auth.AuthBase):
    """A token in a named header, e.g. ActiveCampaign's `Api-Token`."""

    def __init__(self, header: str, token: str):
        self.header, self.token = header, token

    def __call__(self, request):
        request.headers[self.header] = self.token
        return request


@dataclass
class Page:
    """One page of a paginated listing, with the response that carried it."""

    items: list[Any]
    body: Any
    response: requests.Response


class Paginator(Protocol):
    """Pagination as a state machine: initial params, then the next request or None."""

    def first(self, params: dict[str, Any]) -> dict[str, Any]: ...

    def next(self, page: Page, params: dict[str, Any]) -> dict[str, Any] | str | None:
        """Params for the next request, an absolute next URL, or None when done."""


class VendorSession:
    """A requests session for one vendor, with retries, pacing and typed errors."""

    def __init__(self, vendor: str, base_url: str, auth: requests.auth.AuthBase, *,
                 limiter: RateLimiter | None = None, timeout: tuple[float, float] = (5.0, 30.0),
                 retries: int = 5, backoff_factor: float = 0.5, backoff_max: float = 60.0):
        self.vendor = vendor
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.limiter = limiter
        self.session = requests.Session()
        self.session.auth = auth
        self.session.headers.update({"Accept": "application/json", "User-Agent": "vergeet"})
        retry = _EpochAwareRetry(total=retries, connect=retries, read=retries, status=retries,
                                 status_forcelist=RETRY_STATUSES, allowed_methods=None,
                                 backoff_factor=backoff_factor, backoff_max=backoff_max,
                                 respect_retry_after_header=True, raise_on_status=False)
        adapter = _LimitedAdapter(limiter, max_retries=retry)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)

    def url(self, path: str) -> str:
        return path if path.startswith(("http://", "https://")) else f"{self.base_url}/{path.lstrip('/')}"

    def _path_for_errors(self, url: str) -> str:
        """The path without query string: queries can carry e-mail addresses."""
        path = url.split("?", 1)[0]
        return path[len(self.base_url):] or "/" if path.startswith(self.base_url) else requests.utils.urlparse(path).path

    def request(self, method: str, path: str, *, params: Mapping[str, Any] | None = None,
                json: Any = None) -> requests.Response:
        """Send one request; returns the 2xx response or raises a typed `VendorError`."""
        url = self.url(path)
        try:
            response = self.session.request(method, url, params=params, json=json, timeout=self.timeout)
        except requests.exceptions.RetryError as exc:
            raise VendorUnavailable(self.vendor, method, self._path_for_errors(url), None,
                                    "vendor kept failing after all retries; try again later") from exc
        except requests.exceptions.ConnectionError as exc:
            raise VendorUnavailable(self.vendor, method, self._path_for_errors(url), None,
                                    f"cannot connect to {self.base_url}") from exc
        except requests.exceptions.Timeout as exc:
            raise VendorUnavailable(self.vendor, method, self._path_for_errors(url), None, "timed out") from exc
        if not response.ok:
            raise error_for_status(self.vendor, method, self._path_for_errors(url), response.status_code)
        return response

    def json(self, method: str, path: str, *, params: Mapping[str, Any] | None = None, json: Any = None) -> Any:
        """Send one request and decode its JSON body (an empty body is None)."""
        response = self.request(method, path, params=params, json=json)
        return self.decode(method, response)

    def decode(self, method: str, response: requests.Response) -> Any:
        if not response.content.strip():
            return None
        try:
            return response.json()
        except ValueError:
            raise VendorBadResponse(self.vendor, method, self._path_for_errors(response.url), response.status_code,
                                    "response is not valid JSON") from None

    def paginate(self, path: str, paginator: Paginator, *, items: Callable[[Any], list[Any]],
                 params: Mapping[str, Any] | None = None, method: str = "GET", json: Any = None) -> Iterator[Page]:
        """Yield pages until the paginator says done; a repeated request is a vendor bug and stops with an error."""
        request: dict[str, Any] | str | None = paginator.first(dict(params or {}))
        seen: set[str] = set()
        current_params: dict[str, Any] = request if isinstance(request, dict) else {}
        while request is not None:
            key = request if isinstance(request, str) else repr(sorted(request.items()))
            if key in seen:
                raise VendorBadResponse(self.vendor, method, self._path_for_errors(self.url(path)), None,
                                        "pagination returned the same page twice")
            seen.add(key)
            if isinstance(request, str):
                response = self.request(method, request, json=json)
            else:
                current_params = request
                response = self.request(method, path, params=request, json=json)
            body = self.decode(method, response)
            try:
                page_items = items(body)
            except (KeyError, TypeError, AttributeError):
                raise VendorBadResponse(self.vendor, method, self._path_for_errors(response.url), response.status_code,
                                        "response does not have the expected shape") from None
            if not isinstance(page_items, list):
                raise VendorBadResponse(self.vendor, method, self._path_for_errors(response.url), response.status_code,
                                        "response does not have the expected shape")
            page = Page(page_items, body, response)
            yield page
            request = paginator.next(page, current_params)
