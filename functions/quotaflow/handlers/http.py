"""HTTP plumbing of the API function: the resolver, authentication, idempotency claims, and the one map from
domain errors to HTTP responses (`error_response`)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
from collections.abc import Callable
from decimal import Decimal
from typing import Any, Literal, TypeVar
from urllib.parse import unquote

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.middlewares.openapi_validation import OpenAPIRequestValidationMiddleware
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from pydantic import BaseModel, TypeAdapter, ValidationError

from quotaflow.handlers import media_type
from quotaflow.handlers.runtime import runtime
from quotaflow.ledger import errors
from quotaflow.ledger.amounts import ID_PATTERN, EntityId
from quotaflow.observability import logger
from quotaflow.services import tenants, tokens
from quotaflow.services.idempotency import IdempotencyClaim, Replay, remember_failure
from quotaflow.services.scope import Scope
from quotaflow.services.tenants import Principal
from quotaflow.store import keys

BODY_BYTES_MAX = 64 * 1024
IDEMPOTENCY_KEY_LENGTH_MAX = 255
LEDGER_PAGE_DEFAULT = 50
LEDGER_PAGE_MAX = 200
Access = Literal["public", "admin", "secret", "user"]  # user: a secret key, or a publishable key + user token


class PayloadTooLarge(errors.QuotaflowError):
    code = "payload_too_large"


STATUS: dict[type[errors.QuotaflowError], int] = {
    errors.InvalidRequest: 400,
    errors.Unauthenticated: 401,
    errors.InsufficientQuota: 402,
    errors.Forbidden: 403,
    errors.NotFound: 404,
    errors.Conflict: 409,
    errors.ReservationNotPending: 409,
    errors.ReservationExpired: 409,
    errors.IdempotencyKeyReused: 409,
    PayloadTooLarge: 413,
    media_type.UnsupportedMediaType: 415,
    errors.Throttled: 429,
    errors.Unavailable: 503,
}
RETRYABLE = {429, 503}


class ContentTypeRefused(Exception):
    """A body the API does not read, found before the framework would parse it; reported after the preflight."""

    def __init__(self, refusal: errors.QuotaflowError) -> None:
        super().__init__(refusal.message)
        self.refusal = refusal


class JsonBodyValidation(OpenAPIRequestValidationMiddleware):
    """The framework's request validation, reading bodies as JSON only. Left to itself it would parse forms and
    multipart bodies (and fail with a bare ValueError on a multipart type without its boundary: a 500)."""

    def _get_body(self, app: Any) -> Any:
        if app.current_event.body:
            try:
                media_type.check_json(header("content-type"))
            except errors.QuotaflowError as refusal:
                raise ContentTypeRefused(refusal) from None
        return self._parse_json_data(app)


app = APIGatewayHttpResolver(enable_validation=True)
if not isinstance(getattr(app, "_request_validation_middleware", None), OpenAPIRequestValidationMiddleware):
    raise RuntimeError("aws_lambda_powertools changed how it validates requests: revisit JsonBodyValidation")
app._request_validation_middleware = JsonBodyValidation()


# --- request plumbing ---------------------------------------------------------------------------------

Route = TypeVar("Route", bound=Callable[..., Any])


def access(level: Access) -> Callable[[Route], Route]:
    """Declare who may call a route; validation errors are reported only after this check passes."""

    def mark(func: Route) -> Route:
        func.access = level  # type: ignore[attr-defined]
        return func

    return mark


def json_response(
    status: int, body: BaseModel | dict[str, Any] | None, headers: dict[str, str] | None = None
) -> Response[Any]:
    payload = body.model_dump_json() if isinstance(body, BaseModel) else json.dumps(body, separators=(",", ":"))
    return Response(
        status_code=status,
        content_type="application/json",
        body=payload if body is not None else None,
        headers=headers or {},
    )


def header(name: str) -> str | None:
    value = app.current_event.headers.get(name.lower())
    return value if value is None else str(value)


def path_id(raw: str, name: str) -> str:
    value = unquote(raw)
    try:
        return TypeAdapter(EntityId).validate_python(value)
    except ValidationError:
        raise errors.InvalidRequest(f"{name} must match {ID_PATTERN}", field=name) from None


def preflight(level: Access, user_id: str | None) -> Principal | None:
    """Size, authentication, authorization and the body's media type, in that order, before anything reads it."""
    principal = _authorize(level, user_id)
    _require_json()
    return principal


def _authorize(level: Access, user_id: str | None) -> Principal | None:
    body = app.current_event.body or ""
    if len(body.encode()) > BODY_BYTES_MAX:
        raise PayloadTooLarge(f"bodies are limited to {BODY_BYTES_MAX} bytes", field="body")
    if level == "public":
        return None
    bearer = header("authorization") or ""
    scheme, _, raw_key = bearer.partition(" ")
    if scheme.lower() != "bearer" or not raw_key.strip():
        raise errors.Unauthenticated("send Authorization: Bearer <key>")
    raw_key = raw_key.strip()
    admin_key = runtime().settings.admin_key
    if admin_key is not None and hmac.compare_digest(raw_key.encode(), admin_key.encode()):
        if level != "admin":
            raise errors.Forbidden("the admin key only manages tenants")
        app.append_context(idempotency_scope=tenants.ADMIN_SCOPE)
        return None
    principal = tenants.authenticate(runtime().store, raw_key, runtime().key_cache)
    if level == "admin":
        raise errors.Forbidden("tenant keys cannot manage tenants")
    if principal.kind == "publishable":
        if level != "user" or user_id is None:
            raise errors.Forbidden("publishable keys may only read usage and entitlements and ask can-use")
        token = header("x-quotaflow-user-token")
        if not token:
            raise errors.Unauthenticated("publishable keys need an X-Quotaflow-User-Token header")
        _check_user_token(principal.tenant_id, token, unquote(user_id))
    app.append_context(principal=principal, idempotency_scope=principal.tenant_id)
    return principal


def _check_user_token(tenant_id: str, token: str, user_id: str) -> None:
    """Verify with this container's cached secrets; a mismatch reads them again once (a rotation elsewhere)."""
    bound = runtime()
    now = bound.clock()
    cache_key = (tenant_id, "token_secrets")
    cached = bound.key_cache.token_secrets.get(cache_key)
    if cached is not None:
        try:
            tokens.check(cached.accepted(now), token, tenant_id, user_id, now)
            return
        except errors.Unauthenticated:
            pass
    fresh = tokens.signing_secrets(bound.store, tenant_id)
    bound.key_cache.token_secrets.put(cache_key, fresh)
    tokens.check(fresh.accepted(now), token, tenant_id, user_id, now)


def _require_json() -> None:
    if app.current_event.body:
        media_type.check_json(header("content-type"))


def exact_json_object(text: str) -> dict[str, Any]:
    """A JSON object body with its fractional numbers as `Decimal` (never float: money is converted from it), for the
    routes that read prices from the body; NaN and Infinity are refused."""

    def refuse_constant(name: str) -> Any:
        raise ValueError(f"{name} is not a number JSON allows")

    try:
        value = json.loads(text, parse_float=Decimal, parse_constant=refuse_constant)
    except ValueError as error:
        raise errors.InvalidRequest(f"the body is not valid JSON: {error}", field="body") from None
    except RecursionError:
        raise errors.InvalidRequest("the body nests too deeply", field="body") from None
    if not isinstance(value, dict):
        raise errors.InvalidRequest("the body must be a JSON object", field="body")
    return value


def admin_scope() -> Scope:
    preflight("admin", None)
    return Scope(runtime().store, tenants.ADMIN_SCOPE, runtime().clock(), runtime().cache)


def tenant_scope(level: Access = "secret", user_id: str | None = None) -> Scope:
    principal = preflight(level, user_id)
    if principal is None:
        raise errors.Forbidden("this route needs a tenant key")
    return Scope(runtime().store, principal.tenant_id, runtime().clock(), runtime().cache)


def idempotency_claim(success_status: int) -> IdempotencyClaim | None:
    """The request's Idempotency-Key, fingerprinted by method, path and canonical JSON body."""
    key = header("idempotency-key")
    if key is None:
        return None
    if not 1 <= len(key) <= IDEMPOTENCY_KEY_LENGTH_MAX or not all(" " <= ch <= "~" for ch in key):
        raise errors.InvalidRequest("Idempotency-Key must be 1-255 printable ASCII characters", field="Idempotency-Key")
    raw = app.current_event.body or ""
    try:
        canonical = json.dumps(json.loads(raw), sort_keys=True, separators=(",", ":")) if raw else ""
    except ValueError:
        canonical = raw
    http = app.current_event.request_context.http
    digest = hashlib.sha256(f"{http.method}\n{app.current_event.raw_path}\n{canonical}".encode()).hexdigest()
    claim = IdempotencyClaim(key, digest, success_status)
    app.append_context(claim=claim)
    return claim


def undecodable_body(event: dict[str, Any]) -> dict[str, Any] | None:
    """A base64 body that is not UTF-8 never reaches the resolver (it would fail decoding it): 400 instead."""
    if not event.get("isBase64Encoded") or not event.get("body"):
        return None
    try:
        media_type.check_json((event.get("headers") or {}).get("content-type"))
    except errors.QuotaflowError:
        return None  # not JSON at all (a file upload, say): the resolver answers 415 or 400, after the key checks
    try:
        base64.b64decode(event["body"], validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        error = errors.InvalidRequest("the body must be UTF-8 JSON", field="body")
        return {
            "statusCode": 400,
            "headers": {"Content-Type": "application/json"},
            "body": json.dumps(_error_body(error), separators=(",", ":")),
        }
    return None


# --- CORS for the browser widget: usage, entitlements and can-use, only from the tenant's allowed origins ---

BROWSER_ROUTE = re.compile(r"^/v1/users/[^/]+/(usage|can-use|entitlements)$")
CORS_HEADERS = {
    "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
    "Access-Control-Allow-Headers": "Authorization, Content-Type, X-Quotaflow-User-Token",
    "Access-Control-Max-Age": "600",
    "Vary": "Origin",
}


def preflight_response(event: dict[str, Any]) -> dict[str, Any] | None:
    """Answer a browser's preflight for the widget's routes. A preflight carries no key, so it cannot know the
    tenant: it is allowed for any origin, and the real response carries Access-Control-Allow-Origin only for the
    tenant's allowed origins, without which the browser never lets the page read it."""
    http = (event.get("requestContext") or {}).get("http") or {}
    origin = (event.get("headers") or {}).get("origin")
    if http.get("method") != "OPTIONS" or not origin or not BROWSER_ROUTE.match(event.get("rawPath") or ""):
        return None
    return {"statusCode": 204, "headers": {**CORS_HEADERS, "Access-Control-Allow-Origin": origin}, "body": ""}


def with_cors(event: dict[str, Any], response: dict[str, Any]) -> dict[str, Any]:
    origin = (event.get("headers") or {}).get("origin")
    if not origin or not BROWSER_ROUTE.match(event.get("rawPath") or ""):
        return response
    bearer = str((event.get("headers") or {}).get("authorization") or "")
    try:
        principal = tenants.authenticate(runtime().store, bearer.removeprefix("Bearer ").strip(), runtime().key_cache)
    except errors.QuotaflowError:
        return response
    if origin not in _allowed_origins(principal.tenant_id):
        return response
    headers = {**(response.get("headers") or {}), **CORS_HEADERS, "Access-Control-Allow-Origin": origin}
    return {**response, "headers": headers}


def _allowed_origins(tenant_id: str) -> list[str]:
    bound = runtime()
    cache_key = (tenant_id, "allowed_origins")
    cached = bound.key_cache.origins.get(cache_key)
    if cached is None:
        tenant = bound.store.get(keys.tenant(tenant_id)) or {}
        cached = list(tenant.get("allowed_origins", []))
        bound.key_cache.origins.put(cache_key, cached)
    return cached


# --- errors: the one map from domain errors to HTTP ------------------------------------------------------


def _error_body(error: errors.QuotaflowError) -> dict[str, Any]:
    return {"error": {"code": error.code, "message": error.message, "details": error.details}}


def error_response(error: errors.QuotaflowError) -> Response[Any]:
    status = STATUS.get(type(error), 400)
    body = _error_body(error)
    claim: IdempotencyClaim | None = app.context.get("claim")
    idempotency_scope: str | None = app.context.get("idempotency_scope")
    if claim is not None and idempotency_scope is not None and status not in RETRYABLE:
        scope = Scope(runtime().store, idempotency_scope, runtime().clock(), runtime().cache)
        try:
            remember_failure(scope, claim, status, body)
        except Replay as replay:
            return json_response(replay.status, replay.body)
        except errors.QuotaflowError as other:
            return json_response(STATUS.get(type(other), 400), _error_body(other))
    headers = {"Retry-After": "1"} if status in RETRYABLE else None
    return json_response(status, body, headers)


@app.exception_handler(errors.QuotaflowError)
def _domain_error(error: errors.QuotaflowError) -> Response[Any]:
    return error_response(error)


@app.exception_handler(Replay)
def _replay(replay: Replay) -> Response[Any]:
    return json_response(replay.status, replay.body)


def _field(loc: tuple[Any, ...]) -> str:
    parts = [p for p in loc if p not in ("body", "query", "path", "header")]
    name = ""
    for part in parts:
        name += f"[{part}]" if isinstance(part, int) else (f".{part}" if name else str(part))
    return name or "body"


def _after_preflight(refusal: errors.QuotaflowError) -> Response[Any]:
    """Report what was refused before the route ran, once the route's key checks have passed (a request without
    a key hears 401, not what was wrong with its body), remembered under its Idempotency-Key."""
    route = app.context.get("_route")
    level: Access = getattr(getattr(route, "func", None), "access", "secret")
    user_id = (app.context.get("_route_args") or {}).get("user_id")
    try:
        _authorize(level, user_id)
        if app.current_event.request_context.http.method == "POST":
            idempotency_claim(STATUS.get(type(refusal), 400))
    except errors.QuotaflowError as refused:
        return error_response(refused)
    return error_response(refusal)


@app.exception_handler(RequestValidationError)
def _invalid(error: RequestValidationError) -> Response[Any]:
    first = error.errors()[0]
    field_name = "body" if first.get("type") == "json_invalid" else _field(tuple(first.get("loc", ())))
    message = str(first.get("msg", "invalid request")).removeprefix("Value error, ")
    return _after_preflight(errors.InvalidRequest(f"{field_name}: {message}", field=field_name))


@app.exception_handler(ContentTypeRefused)
def _content_type_refused(refused: ContentTypeRefused) -> Response[Any]:
    return _after_preflight(refused.refusal)


@app.exception_handler(errors.InvariantViolation)
def _bug(violation: errors.InvariantViolation) -> Response[Any]:
    logger.exception("invariant violated")
    return json_response(500, {"error": {"code": "internal", "message": "internal error", "details": {}}})


# Routes of this API that another function serves: API Gateway sends only these methods there, the rest here.
OTHER_FUNCTIONS_ROUTES: tuple[tuple[re.Pattern[str], frozenset[str]], ...] = (
    (re.compile(r"^/v1/stripe/webhook/[^/]+$"), frozenset({"POST"})),
)


def allowed_methods(path: str) -> list[str]:
    """Every method some function of this API answers at `path`, sorted; empty for a path nothing routes."""
    routes = app._static_routes + app._dynamic_routes  # the resolver's routing table (it has no public listing)
    methods = {route.method for route in routes if route.rule.match(path)}
    methods.update(*(served for rule, served in OTHER_FUNCTIONS_ROUTES if rule.match(path)))
    return sorted(methods)


@app.not_found
def _no_route(_: Exception) -> Response[Any]:
    """404 for a path nothing routes; 405 naming the methods (`Allow`) for a path routed under other methods."""
    allowed = allowed_methods(app.current_event.path)
    if not allowed:
        return json_response(404, {"error": {"code": "not_found", "message": "no such route", "details": {}}})
    method = app.current_event.request_context.http.method
    body = {
        "error": {
            "code": "method_not_allowed",
            "message": f"{method} is not allowed here: use {', '.join(allowed)}",
            "details": {"allowed": allowed},
        }
    }
    return json_response(405, body, {"Allow": ", ".join(allowed)})
