"""The HTTP layer every requests-based connector shares.

One `VendorSession` per vendor: connect/read timeouts, retries with
exponential backoff on connection errors, 5xx and 429 (honouring
`Retry-After`) through urllib3's `Retry`, bounded in count and in time (a retry
budget: no retry starts, and no wait is begun, that would end past it), a
client-side rate limiter so the vendor's published limit is not exceeded in the
first place, typed errors that name vendor, method, path and status but never a
response body, and paginators as small state objects (after dlt's rest_client).

A payload that lacks what a connector needs (no id, an id of the wrong type, a
list where an object belongs) is a `VendorBadResponse` naming the call that
brought it: connectors read ids through `payload_id` and wrap their protocol
methods with `vendor_payloads`.
"""
from __future__ import annotations

import functools
import inspect
import logging
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import requests
from requests.adapters import HTTPAdapter
from tenacity import stop_after_attempt, stop_before_delay
from urllib3.exceptions import MaxRetryError, ResponseError
from urllib3.util.retry import Retry

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
#: vendor ids that are strings of digits (Moneybird, ActiveCampaign)
DIGITS = re.compile(r"[0-9]{1,30}")


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
    """The vendor answered 2xx with something that is not the expected JSON, or that does not prove what was asked."""


class PayloadError(ValueError):
    """A vendor payload lacks what a connector needs; `vendor_payloads` turns it into a `VendorBadResponse`."""


def payload_id(payload: Any, shape: re.Pattern[str], key: str = "id") -> str:
    """`payload[key]` as a string of the vendor's id shape; PayloadError when it is missing or of another type.

    An id of the wrong type must never become a path: `str(None)` or `str(1.2e17)` addresses nothing, and a
    404 on it would read as "already gone".
    """
    value = payload.get(key) if isinstance(payload, Mapping) else None
    if isinstance(value, bool) or not isinstance(value, (str, int)) or not shape.fullmatch(str(value)):
        raise PayloadError(f"a record without a valid {key!r}")
    return str(value)


_calls = threading.local()  # the last vendor call of this thread, for errors about what it answered


def note_call(method: str, path: str) -> None:
    """Remember the call under way (method and path without query), for an error about its payload."""
    _calls.last = (method, path)


#: what a vendor's odd payload raises in code that reads it as documented
_PAYLOAD_ERRORS = (PayloadError, KeyError, IndexError, TypeError, AttributeError)
C = TypeVar("C")
PROTOCOL_METHODS = ("records", "changes", "search", "read", "delete", "anonymise", "plan_correction", "correct")


def vendor_payloads(cls: C) -> C:
    """Class decorator: a payload error in a protocol method (or while iterating what it returns) becomes a
    `VendorBadResponse` naming the system and the last call, never the payload."""

    def bad(self: Any) -> VendorBadResponse:
        method, path = getattr(_calls, "last", ("?", "?"))
        return VendorBadResponse(self.system, method, path, None, "response does not have the expected shape "
                                                                  "(a missing or malformed field, such as an id)")

    def guarded(self: Any, items: Iterator[Any]) -> Iterator[Any]:
        try:
            yield from items
        except _PAYLOAD_ERRORS:
            raise bad(self) from None

    def wrap(function: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(function)
        def method(self: Any, *args: Any, **kwargs: Any) -> Any:
            try:
                result = function(self, *args, **kwargs)
            except _PAYLOAD_ERRORS:
                raise bad(self) from None
            return guarded(self, result) if inspect.isgenerator(result) else result
        return method

    for name in PROTOCOL_METHODS:
        setattr(cls, name, wrap(getattr(cls, name)))
    return cls


def budget_stop(retries: int, budget: float) -> Any:
    """A tenacity stop: after `retries` retries, or before a wait that would end past `budget` seconds."""
    return stop_after_attempt(retries + 1) | stop_before_delay(budget)


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


class _BudgetedRetry(_EpochAwareRetry):
    """`Retry` with a time budget: counted from the first failed attempt, a retry whose wait would end past
    `budget` seconds is not made (the last answer, or error, stands)."""

    def __init__(self, *args: Any, budget: float = float("inf"), started: float | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.budget, self.started = budget, started

    def new(self, **kw: Any) -> _BudgetedRetry:
        started = self.started if self.started is not None else time.monotonic()
        return super().new(budget=self.budget, started=started, **kw)  # type: ignore[return-value]

    def increment(self, method=None, url=None, response=None, error=None, _pool=None, _stacktrace=None):  # type: ignore[override]
        retry = super().increment(method, url, response, error, _pool, _stacktrace)
        wait = (self.get_retry_after(response) if response is not None and self.respect_retry_after_header
                else None)
        wait = retry.get_backoff_time() if wait is None else wait
        if time.monotonic() + wait - retry.started > self.budget:
            reason = error or ResponseError(f"retry budget of {self.budget:g} s spent")
            raise MaxRetryError(_pool, url, reason) from reason  # type: ignore[arg-type]
        return retry


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


class LastErrorCode:
    """The vendor's own error code in the last answer a session received, per thread (a response hook).

    `parse` takes the code from an error answer's body, None when it has none: only the code is kept, never the
    message beside it, which can quote what was sent. Connectors branch on it after a `VendorError`.
    """

    def __init__(self, session: VendorSession, parse: Callable[[requests.Response], Any]):
        self._parse = parse
        self._last = threading.local()
        session.session.hooks["response"].append(self._keep)

    def _keep(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        self._last.code = None if response.ok else self._parse(response)

    @property
    def code(self) -> Any:
        return getattr(self._last, "code", None)


class VendorSession:
    """A requests session for one vendor, with retries, pacing and typed errors."""

    def __init__(self, vendor: str, base_url: str, auth: requests.auth.AuthBase, *,
                 limiter: RateLimiter | None = None, timeout: tuple[float, float] = (5.0, 30.0),
                 retries: int = 5, backoff_factor: float = 0.5, backoff_max: float = 60.0,
                 retry_budget: float = 30.0):
        self.vendor = vendor
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.limiter = limiter
        self.session = requests.Session()
        self.session.auth = auth
        self.session.headers.update({"Accept": "application/json", "User-Agent": "vergeet"})
        retry = _BudgetedRetry(total=retries, connect=retries, read=retries, status=retries,
                                 status_forcelist=RETRY_STATUSES, allowed_methods=None,
                                 backoff_factor=backoff_factor, backoff_max=backoff_max,
                                 respect_retry_after_header=True, raise_on_status=False, budget=retry_budget)
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
        note_call(method, self._path_for_errors(url))
        try:
            response = self.session.request(method, url, params=params, json=json, timeout=self.timeout)
        except requests.exceptions.ChunkedEncodingError as exc:  # the body was cut off on the wire
            raise VendorUnavailable(self.vendor, method, self._path_for_errors(url), None,
                                    "the response was cut off; try again later") from exc
        except requests.exceptions.ContentDecodingError as exc:
            raise VendorBadResponse(self.vendor, method, self._path_for_errors(url), None,
                                    "the response could not be decoded") from exc
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
