"""A Stripe-protocol HTTP server on loopback, for driving the real ``stripe`` SDK over HTTP in tests.

It speaks the wire protocol the SDK uses (form-encoded bodies with ``a[b]`` keys, JSON objects with ``object``,
``livemode`` and list envelopes, Stripe's ``{"error": {...}}`` bodies and status codes) for the two endpoints
quotaflow calls:

- ``POST /v1/billing/meter_events``: validated the way Stripe documents it (whole-number ``value``; ``timestamp``
  at most 35 days old and at most 5 minutes ahead of the stub's clock; ``identifier`` unique for 24 hours, a repeat
  answered as Stripe answers it: 400 ``invalid_request_error``, no code, ``Stripe-Should-Retry: false``,
  "An event already exists with identifier <id>."), one call at a time per customer and meter (429
  ``lock_timeout`` otherwise), unknown customers and meters refused once the test registers the known ones.
- ``GET /v1/checkout/sessions/{id}/line_items``: from sessions the test registers, paged with ``limit``,
  ``starting_after``, ``ending_before`` and ``has_more``.

Every request needs ``Authorization: Bearer <api_key>`` (401 as Stripe words it otherwise). POSTs honor
``Idempotency-Key`` (a successful answer is replayed for the same key and parameters). Faults: ``fail_next``
(any status, optional ``Retry-After`` and ``Stripe-Should-Retry``), ``drop_next`` (close the connection, before or
after the request took effect), ``latency_seconds`` (the answer waits; the effect has already happened). Everything
received is counted and recorded, and so is the most meter-event calls in flight at once, per customer+meter
(``in_flight_max_by_slot``; with ``one_call_per_customer_meter=False`` an overlap is counted, not refused) and over
all (``in_flight_max``); ``gather_meter_events(k)`` holds calls until ``k`` are in flight together. Usage::

    with StripeStub(now_epoch_s=1_795_000_000) as stub:
        stub.add_customers("cus_1")
        gateway = StripeGateway(stub.api_key, api_base=stub.url)
        ...
        assert stub.meter_events[0]["identifier"] == "..."
"""

from __future__ import annotations

import json
import secrets
import socket
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, urlsplit

meter_event_age_seconds_max = 35 * 24 * 3600
meter_event_ahead_seconds_max = 5 * 60
meter_event_identifier_window_seconds = 24 * 3600
meter_event_string_chars_max = 100
list_limit_default = 10
list_limit_max = 100
request_body_bytes_max = 1_000_000
meter_events_path = "/v1/billing/meter_events"
line_items_route = "/v1/checkout/sessions/{session}/line_items"


@dataclass(frozen=True)
class RecordedRequest:
    """One request as received. ``params`` is the decoded form body (POST) or query string (GET)."""

    method: str
    path: str
    route: str
    params: dict[str, Any]
    headers: dict[str, str]  # names lower-cased


@dataclass
class _Fault:
    remaining: int
    path_prefix: str | None
    status: int | None  # None: close the connection without an answer
    after_processing: bool = False
    retry_after: str | None = None
    should_retry: bool | None = None
    error: dict[str, Any] = field(default_factory=dict)
    customer: str | None = None  # only meter events for this customer

    def matches(self, path: str, customer: str | None) -> bool:
        return (
            self.remaining > 0
            and (self.path_prefix is None or path.startswith(self.path_prefix))
            and (self.customer is None or customer == self.customer)
        )


@dataclass
class _Answer:
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


class _StripeFailure(Exception):
    def __init__(self, answer: _Answer) -> None:
        super().__init__(answer.body)
        self.answer = answer


def stripe_error(
    status: int,
    message: str,
    *,
    error_type: str = "invalid_request_error",
    code: str | None = None,
    param: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> _StripeFailure:
    error: dict[str, Any] = {"message": message, "type": error_type}
    if code is not None:
        error["code"] = code
        error["doc_url"] = f"https://stripe.com/docs/error-codes/{code.replace('_', '-')}"
    if param is not None:
        error["param"] = param
    return _StripeFailure(_Answer(status, {"error": error}, dict(headers or {})))


def _default_fault_error(status: int) -> dict[str, Any]:
    if status == 429:
        return {
            "type": "invalid_request_error",
            "code": "rate_limit",
            "message": "Request rate limit exceeded. Learn more about rate limits here "
            "https://stripe.com/docs/rate-limits.",
        }
    if status == 401:
        return {"type": "invalid_request_error", "message": "Invalid API Key provided: sk_test_****stub"}
    if status == 402:
        return {"type": "card_error", "code": "card_declined", "message": "Your card was declined."}
    if status == 403:
        return {
            "type": "invalid_request_error",
            "message": "The provided key does not have the required permissions for this endpoint.",
        }
    if status == 404:
        return {"type": "invalid_request_error", "code": "resource_missing", "message": "No such object."}
    if status >= 500:
        return {"type": "api_error", "message": "An unknown error occurred"}
    return {"type": "invalid_request_error", "message": "The request was refused."}


def _nested(pairs: Sequence[tuple[str, str]]) -> dict[str, Any]:
    """``a[b][c]=v`` pairs as nested dicts (list indices ``a[0]`` stay string keys)."""
    root: dict[str, Any] = {}
    for key, value in pairs:
        parts = key.replace("]", "").split("[")
        node = root
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise stripe_error(400, f"Invalid object: {key}", param=parts[0])
            node = child
        node[parts[-1]] = value
    return root


def _masked(api_key: str) -> str:
    if len(api_key) <= 12:
        return "*" * len(api_key)
    return f"{api_key[:8]}{'*' * (len(api_key) - 12)}{api_key[-4:]}"


class StripeStub:
    """A Stripe stand-in on ``127.0.0.1``, on a free port. Start with ``with`` (or ``start()`` / ``close()``)."""

    def __init__(
        self,
        api_key: str = "sk_test_quotaflow_stub",
        *,
        now_epoch_s: int | None = None,
        reject_unknown_customers: bool = True,
        one_call_per_customer_meter: bool = True,
    ) -> None:
        self.api_key = api_key
        self.now_epoch_s = now_epoch_s  # None: the real clock
        self.reject_unknown_customers = reject_unknown_customers
        self.one_call_per_customer_meter = one_call_per_customer_meter
        self.latency_seconds = 0.0
        self.requests: list[RecordedRequest] = []
        self.request_counts: Counter[str] = Counter()
        self.meter_events: list[dict[str, Any]] = []
        self.unknown_customer_events: list[dict[str, Any]] = []
        self._customers: set[str] = set()
        self._meters: set[str] = set()
        self._sessions: dict[str, list[dict[str, Any]]] = {}
        self._identifiers_seen_at: dict[str, int] = {}
        self._idempotent_answers: dict[str, tuple[str, _Answer]] = {}
        self._in_flight: Counter[tuple[str, str]] = Counter()
        # The most meter-event calls seen in flight at once, per (customer, event_name) and over all.
        self.in_flight_max_by_slot: Counter[tuple[str, str]] = Counter()
        self.in_flight_max = 0
        self._gathering: threading.Barrier | None = None
        self._gather_left = 0
        self.gather_broken = False
        self._faults: list[_Fault] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle -------------------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the stub is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> StripeStub:
        server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        server.daemon_threads = True
        server.block_on_close = False
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="stripe-stub", daemon=True
        )
        self._thread.start()
        return self

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> StripeStub:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # --- the clock -------------------------------------------------------------------------------------------

    def now(self) -> int:
        return int(time.time()) if self.now_epoch_s is None else self.now_epoch_s

    def advance(self, seconds: int) -> None:
        self.now_epoch_s = self.now() + seconds

    # --- what Stripe knows -----------------------------------------------------------------------------------

    def add_customers(self, *customer_ids: str) -> None:
        """Once any customer is known, meter events for other customers are refused (or, with
        ``reject_unknown_customers=False``, accepted and listed in ``unknown_customer_events``, as Stripe's
        asynchronous error report would list them)."""
        with self._lock:
            self._customers.update(customer_ids)

    def add_meters(self, *event_names: str) -> None:
        """Once any meter is known, meter events naming another event_name are refused."""
        with self._lock:
            self._meters.update(event_names)

    def add_checkout_session(
        self, session_id: str, line_items: Sequence[tuple[str, int | None] | tuple[str, int | None, int]]
    ) -> list[dict[str, Any]]:
        """Register a session's line items as ``(price_id, quantity)`` or ``(price_id, quantity, unit_amount)``;
        returns them as Stripe shapes them."""
        created = self.now()
        items = []
        for index, spec in enumerate(line_items):
            price_id, quantity = spec[0], spec[1]
            unit_amount = spec[2] if len(spec) > 2 else 1000
            amount = unit_amount * (1 if quantity is None else quantity)
            items.append(
                {
                    "id": f"li_{session_id[-8:]}{index:04d}{secrets.token_hex(4)}",
                    "object": "item",
                    "adjustable_quantity": None,
                    "amount_discount": 0,
                    "amount_subtotal": amount,
                    "amount_tax": 0,
                    "amount_total": amount,
                    "currency": "usd",
                    "description": f"Product for {price_id}",
                    "metadata": {},
                    "price": _price(price_id, unit_amount, created),
                    "quantity": quantity,
                }
            )
        with self._lock:
            self._sessions[session_id] = items
        return items

    # --- faults ----------------------------------------------------------------------------------------------

    def fail_next(
        self,
        n: int = 1,
        status: int = 500,
        *,
        path: str | None = None,
        retry_after: float | str | None = None,
        should_retry: bool | None = None,
        error_type: str | None = None,
        code: str | None = None,
        message: str | None = None,
        customer: str | None = None,
    ) -> None:
        """Answer the next ``n`` requests (whose path starts with ``path``, and that are meter events for
        ``customer``, if given) with ``status`` and a Stripe-shaped error, before they take effect."""
        error = _default_fault_error(status)
        error.update({k: v for k, v in (("type", error_type), ("code", code), ("message", message)) if v})
        with self._lock:
            self._faults.append(
                _Fault(
                    n,
                    path,
                    status,
                    retry_after=None if retry_after is None else str(retry_after),
                    should_retry=should_retry,
                    error=error,
                    customer=customer,
                )
            )

    def drop_next(self, n: int = 1, *, path: str | None = None, after_processing: bool = False) -> None:
        """Close the connection instead of answering the next ``n`` requests. ``after_processing``: the request
        takes effect first (Stripe recorded it; the answer is lost on the way back)."""
        with self._lock:
            self._faults.append(_Fault(n, path, None, after_processing=after_processing))

    def gather_meter_events(self, calls: int, timeout_seconds: float = 10.0) -> None:
        """Hold each of the next ``calls`` meter-event calls (after it took its customer+meter slot) until all of
        them are in flight at once: proof of parallelism that does not depend on timing. If they never all
        arrive within ``timeout_seconds``, they go on and ``gather_broken`` says so."""
        with self._lock:
            self._gathering = threading.Barrier(calls, timeout=timeout_seconds)
            self._gather_left = calls
            self.gather_broken = False

    # --- what was received -----------------------------------------------------------------------------------

    def count(self, method: str, route: str) -> int:
        return self.request_counts[f"{method} {route}"]

    # --- the server side -------------------------------------------------------------------------------------

    def _take_fault(self, path: str, params: Mapping[str, Any]) -> _Fault | None:
        payload = params.get("payload")
        customer = payload.get("stripe_customer_id") if isinstance(payload, dict) else None
        with self._lock:
            for fault in self._faults:
                if fault.matches(path, customer):
                    fault.remaining -= 1
                    return fault
        return None

    def _authenticate(self, headers: Mapping[str, str]) -> None:
        authorization = headers.get("authorization", "")
        scheme, _, key = authorization.partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            raise stripe_error(
                401,
                "You did not provide an API key. You need to provide your API key in the Authorization header, "
                "using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY').",
                headers={"Www-Authenticate": 'Bearer realm="Stripe"'},
            )
        if key.strip() != self.api_key:
            raise stripe_error(
                401,
                f"Invalid API Key provided: {_masked(key.strip())}",
                headers={"Www-Authenticate": 'Bearer realm="Stripe"'},
            )

    def handle(self, method: str, path: str, params: dict[str, Any], headers: Mapping[str, str]) -> _Answer:
        """Route one authenticated request (idempotent replay for POSTs)."""
        key = headers.get("idempotency-key") if method == "POST" else None
        fingerprint = json.dumps([method, path, params], sort_keys=True)
        if key:
            with self._lock:
                stored = self._idempotent_answers.get(key)
            if stored is not None:
                if stored[0] != fingerprint:
                    raise stripe_error(
                        400,
                        "Keys for idempotent requests can only be used with the same parameters they were first "
                        f"used with. Try using a key other than '{key}' if you meant to execute a different request.",
                        error_type="idempotency_error",
                    )
                replay = stored[1]
                return _Answer(replay.status, replay.body, {**replay.headers, "Idempotent-Replayed": "true"})
        answer = self._route(method, path, params)
        if key and 200 <= answer.status < 300:
            with self._lock:
                self._idempotent_answers[key] = (fingerprint, answer)
        return answer

    def _route(self, method: str, path: str, params: dict[str, Any]) -> _Answer:
        if method == "POST" and path == meter_events_path:
            return self._create_meter_event(params)
        parts = path.split("/")
        # /v1/checkout/sessions/{session}/line_items
        if method == "GET" and _is_line_items_path(parts):
            return self._list_line_items(parts[4], params)
        raise stripe_error(
            404,
            f"Unrecognized request URL ({method}: {path}). Please see https://stripe.com/docs or we can help at "
            "https://support.stripe.com/.",
        )

    # POST /v1/billing/meter_events

    def _create_meter_event(self, params: dict[str, Any]) -> _Answer:
        event_name = _required_string(params, "event_name")
        payload = params.get("payload")
        if not isinstance(payload, dict):
            raise stripe_error(400, "Missing required param: payload.", code="parameter_missing", param="payload")
        identifier = params.get("identifier")
        if identifier is not None:
            _check_length(identifier, "identifier")
        timestamp = self._checked_timestamp(params.get("timestamp"))
        customer_id = payload.get("stripe_customer_id")
        if not customer_id:
            raise stripe_error(
                400,
                "Customer mapping key stripe_customer_id not found in payload.",
                code="meter_event_no_customer_defined",
                param="payload[stripe_customer_id]",
            )
        slot = (customer_id, event_name)
        with self._lock:
            if self.one_call_per_customer_meter and slot in self._in_flight:
                raise stripe_error(
                    429,
                    "This object cannot be accessed right now because another API request or Stripe process is "
                    "currently accessing it. If you see this error intermittently, retry the request.",
                    code="lock_timeout",
                )
            self._in_flight[slot] += 1
            self.in_flight_max_by_slot[slot] = max(self.in_flight_max_by_slot[slot], self._in_flight[slot])
            self.in_flight_max = max(self.in_flight_max, self._in_flight.total())
            gathering, self._gather_left = self._gathering, self._gather_left - 1
            if self._gather_left <= 0:
                self._gathering = None
        try:
            if gathering is not None:
                self._wait_for_the_others(gathering)
            return self._record_meter_event(event_name, payload, identifier, timestamp)
        finally:
            if self.latency_seconds:
                time.sleep(self.latency_seconds)  # still holding the customer+meter slot, as a slow call would
            with self._lock:
                self._in_flight[slot] -= 1
                if not self._in_flight[slot]:
                    del self._in_flight[slot]

    def _wait_for_the_others(self, gathering: threading.Barrier) -> None:
        try:
            gathering.wait()
        except threading.BrokenBarrierError:
            with self._lock:
                self.gather_broken = True

    def _record_meter_event(
        self, event_name: str, payload: dict[str, Any], identifier: str | None, timestamp: int
    ) -> _Answer:
        value = payload.get("value")
        if value is None:
            raise stripe_error(
                400, "Value key value not found in payload.", code="meter_event_value_not_found", param="payload[value]"
            )
        if not _is_whole_number(value):
            raise stripe_error(
                400,
                f"Invalid value {value!r}: meter event values must be whole numbers.",
                code="meter_event_invalid_value",
                param="payload[value]",
            )
        with self._lock:
            if self._meters and event_name not in self._meters:
                raise stripe_error(
                    400, f'No active meter found for event name "{event_name}".', code="no_meter", param="event_name"
                )
            customer_id = payload["stripe_customer_id"]
            unknown_customer = bool(self._customers) and customer_id not in self._customers
            if unknown_customer and self.reject_unknown_customers:
                raise stripe_error(
                    400,
                    f"No such customer: '{customer_id}'",
                    code="meter_event_customer_not_found",
                    param="payload[stripe_customer_id]",
                )
            now = self.now()
            if identifier is None:
                identifier = str(uuid.uuid4())
            seen_at = self._identifiers_seen_at.get(identifier)
            if seen_at is not None and now - seen_at < meter_event_identifier_window_seconds:
                raise stripe_error(
                    400,
                    f"An event already exists with identifier {identifier}.",
                    headers={"Stripe-Should-Retry": "false"},
                )
            self._identifiers_seen_at[identifier] = now
            event = {
                "object": "billing.meter_event",
                "created": now,
                "event_name": event_name,
                "identifier": identifier,
                "livemode": False,
                "payload": dict(payload),
                "timestamp": timestamp,
            }
            (self.unknown_customer_events if unknown_customer else self.meter_events).append(event)
        return _Answer(200, event)

    def _checked_timestamp(self, raw: Any) -> int:
        now = self.now()
        if raw is None:
            return now
        try:
            timestamp = int(raw)
        except (TypeError, ValueError):
            raise stripe_error(
                400, f"Invalid integer: {raw}", code="parameter_invalid_integer", param="timestamp"
            ) from None
        if timestamp < now - meter_event_age_seconds_max:
            raise stripe_error(
                400,
                "Timestamp must be within the past 35 calendar days.",
                code="timestamp_too_far_in_past",
                param="timestamp",
            )
        if timestamp > now + meter_event_ahead_seconds_max:
            raise stripe_error(
                400,
                "Timestamp must not be more than 5 minutes in the future.",
                code="timestamp_in_future",
                param="timestamp",
            )
        return timestamp

    # GET /v1/checkout/sessions/{session}/line_items

    def _list_line_items(self, session_id: str, params: dict[str, Any]) -> _Answer:
        limit = _limit(params.get("limit"))
        with self._lock:
            items = self._sessions.get(session_id)
        if items is None:
            raise stripe_error(
                404, f"No such checkout.session: '{session_id}'", code="resource_missing", param="session"
            )
        ids = [item["id"] for item in items]
        starting_after, ending_before = params.get("starting_after"), params.get("ending_before")
        if starting_after is not None and ending_before is not None:
            raise stripe_error(400, "You may only specify one of these parameters: ending_before, starting_after.")
        if starting_after is not None:
            start = _cursor_index(ids, starting_after, "starting_after") + 1
            page, has_more = items[start : start + limit], start + limit < len(items)
        elif ending_before is not None:
            end = _cursor_index(ids, ending_before, "ending_before")
            page, has_more = items[max(0, end - limit) : end], end - limit > 0
        else:
            page, has_more = items[:limit], limit < len(items)
        return _Answer(
            200,
            {
                "object": "list",
                "data": page,
                "has_more": has_more,
                "url": line_items_route.format(session=session_id),
            },
        )


def _required_string(params: dict[str, Any], name: str) -> str:
    value = params.get(name)
    if not value:
        raise stripe_error(400, f"Missing required param: {name}.", code="parameter_missing", param=name)
    if not isinstance(value, str):
        raise stripe_error(400, f"Invalid string: {value!r}", code="parameter_invalid_string", param=name)
    _check_length(value, name)
    return value


def _check_length(value: Any, name: str) -> None:
    if not isinstance(value, str) or not value:
        raise stripe_error(400, f"Invalid string: {value!r}", code="parameter_invalid_empty", param=name)
    if len(value) > meter_event_string_chars_max:
        raise stripe_error(
            400,
            f"Invalid string: {value[:20]}...; must be at most {meter_event_string_chars_max} characters",
            code="string_length_exceeds_maximum",
            param=name,
        )


def _is_whole_number(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    digits = value[1:] if value.startswith("-") else value
    return digits.isdigit() and digits.isascii()


def _limit(raw: Any) -> int:
    if raw is None:
        return list_limit_default
    try:
        limit = int(raw)
    except (TypeError, ValueError):
        raise stripe_error(400, f"Invalid integer: {raw}", code="parameter_invalid_integer", param="limit") from None
    if not 1 <= limit <= list_limit_max:
        raise stripe_error(400, f"Invalid limit: must be between 1 and {list_limit_max}", param="limit")
    return limit


def _cursor_index(ids: list[str], cursor: Any, param: str) -> int:
    if cursor not in ids:
        raise stripe_error(400, f"No such line item: '{cursor}'", code="resource_missing", param=param)
    return ids.index(cursor)


def _price(price_id: str, unit_amount: int, created: int) -> dict[str, Any]:
    return {
        "id": price_id,
        "object": "price",
        "active": True,
        "billing_scheme": "per_unit",
        "created": created,
        "currency": "usd",
        "custom_unit_amount": None,
        "livemode": False,
        "lookup_key": None,
        "metadata": {},
        "nickname": None,
        "product": f"prod_{price_id.removeprefix('price_')}",
        "recurring": None,
        "tax_behavior": "unspecified",
        "tiers_mode": None,
        "transform_quantity": None,
        "type": "one_time",
        "unit_amount": unit_amount,
        "unit_amount_decimal": str(unit_amount),
    }


def _handler_for(stub: StripeStub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as Stripe's API offers
        timeout = 10  # an idle kept-alive connection ends its thread after this

        def setup(self) -> None:
            super().setup()
            # headers and body go out in two writes: without this, Nagle + delayed ACK add ~40 ms per answer
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def do_GET(self) -> None:
            self._serve("GET")

        def do_POST(self) -> None:
            self._serve("POST")

        def do_DELETE(self) -> None:
            self._serve("DELETE")

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _serve(self, method: str) -> None:
            split = urlsplit(self.path)
            headers = {name.lower(): value for name, value in self.headers.items()}
            body = self._read_body()
            route = _route_name(method, split.path)
            early: _Answer | None = None  # a body that cannot even be decoded is answered without routing
            try:
                params = _nested(parse_qsl(body if method == "POST" else split.query, keep_blank_values=True))
            except _StripeFailure as failure:
                params, early = {}, failure.answer
            with stub._lock:
                stub.request_counts[route] += 1
                stub.requests.append(RecordedRequest(method, split.path, route, params, headers))
            fault = stub._take_fault(split.path, params)
            if fault is not None and fault.status is None and not fault.after_processing:
                self.close_connection = True
                return
            if fault is not None and fault.status is not None:
                self._answer(_fault_answer(fault), headers)
                return
            answer = early or self._process(method, split.path, params, headers)
            if fault is not None:  # dropped after processing: the effect stays, the answer is lost
                self.close_connection = True
                return
            if stub.latency_seconds and split.path != meter_events_path:
                time.sleep(stub.latency_seconds)
            self._answer(answer, headers)

        def _process(self, method: str, path: str, params: dict[str, Any], headers: Mapping[str, str]) -> _Answer:
            try:
                stub._authenticate(headers)
                return stub.handle(method, path, params, headers)
            except _StripeFailure as failure:
                return failure.answer

        def _read_body(self) -> str:
            length = int(self.headers.get("Content-Length") or 0)
            if length > request_body_bytes_max:
                self.close_connection = True
                return ""
            return self.rfile.read(length).decode("utf-8") if length else ""

        def _answer(self, answer: _Answer, request_headers: Mapping[str, str]) -> None:
            data = json.dumps(answer.body, indent=2).encode("utf-8")
            try:
                self.send_response(answer.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Request-Id", f"req_{secrets.token_hex(7)}")
                if "stripe-version" in request_headers:
                    self.send_header("Stripe-Version", request_headers["stripe-version"])
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True  # the client gave up waiting (a timeout test)

    return Handler


def _fault_answer(fault: _Fault) -> _Answer:
    assert fault.status is not None
    headers = {}
    if fault.retry_after is not None:
        headers["Retry-After"] = fault.retry_after
    if fault.should_retry is not None:
        headers["Stripe-Should-Retry"] = "true" if fault.should_retry else "false"
    return _Answer(fault.status, {"error": dict(fault.error)}, headers)


def _is_line_items_path(parts: list[str]) -> bool:
    return (
        len(parts) == 6 and parts[1:4] == ["v1", "checkout", "sessions"] and bool(parts[4]) and parts[5] == "line_items"
    )


def _route_name(method: str, path: str) -> str:
    return f"{method} {line_items_route}" if _is_line_items_path(path.split("/")) else f"{method} {path}"


@contextmanager
def stripe_stub(**options: Any) -> Iterator[StripeStub]:
    """``with stripe_stub(now_epoch_s=...) as stub:`` — or wrap it in a fixture."""
    with StripeStub(**options) as stub:
        yield stub


def signature_header(payload: bytes, signing_secrets: Sequence[str], timestamp: int) -> str:
    """A ``Stripe-Signature`` with one ``v1`` per secret, built as Stripe documents it:
    ``t=<ts>,v1=<hex HMAC-SHA256(secret, "<ts>.<payload>")>,...`` (Stripe sends several during a secret roll)."""
    import hashlib
    import hmac

    signed = f"{timestamp}.".encode() + payload
    v1 = [hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest() for secret in signing_secrets]
    return ",".join([f"t={timestamp}", *(f"v1={signature}" for signature in v1)])


def signed_webhook(event: Mapping[str, Any], secret: str, timestamp: int | None = None) -> tuple[bytes, str]:
    """The event as Stripe would deliver it: the JSON body and its ``Stripe-Signature`` header, signed by the
    SDK's own ``WebhookSignature.generate_signature_header``."""
    import stripe

    payload = json.dumps(event, indent=2)
    header = stripe.WebhookSignature.generate_signature_header(payload, secret, timestamp=timestamp)
    return payload.encode("utf-8"), header
