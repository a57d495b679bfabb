"""The HTTP API function (API Gateway HTTP API, payload v2): every `/v1` route of the contract.

Glue only: each route authenticates (`tenant_scope`), takes its validated body, calls one use case and shapes
the response. Errors become HTTP in `http.error_response`, nowhere else.

Cold start: the cyclic garbage collector is paused while this module's imports run, and what they built is frozen
(`gc.freeze`) before it resumes. An import allocates ~90,000 long-lived objects and almost no garbage, so the
collections it would set off (~10 % of the import) find nothing, and later collections skip those objects too."""

# ruff: noqa: E402 (the pause has to come before the imports it covers)
from __future__ import annotations

import gc

_collecting = gc.isenabled()  # resumed as it was: an embedding process may run without the collector
gc.disable()

import re
import time
from typing import Annotated, Any
from urllib.parse import unquote

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Body, Query
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel

from quotaflow import __version__

# accounts, analytics, runs and web register their routes
from quotaflow.handlers import accounts, analytics, runs, schemas, web  # noqa: F401
from quotaflow.handlers.http import (
    access,
    admin_scope,
    app,
    exact_json_object,
    idempotency_claim,
    path_id,
    preflight,
    preflight_response,
    tenant_scope,
    undecodable_body,
    with_cors,
)
from quotaflow.handlers.runtime import runtime
from quotaflow.ledger import errors
from quotaflow.ledger.amounts import Line
from quotaflow.ledger.plans import Plan
from quotaflow.ledger.prices import MARKUP_PERCENT_MAX, MODEL_PATTERN, Price, PriceBody, TokenCounts
from quotaflow.observability import logger
from quotaflow.services import (
    alerts,
    audit,
    balances,
    credits,
    metering,
    plans,
    price_import,
    pricing,
    stripe_config,
    tenants,
    tokens,
    users,
)
from quotaflow.services.views import (
    CanUseLinesView,
    CanUseView,
    CommitView,
    EntitlementsView,
    EventView,
    FeatureAllowanceView,
    GrantView,
    KeyCreatedView,
    LedgerView,
    RefundView,
    ReleaseView,
    ReservationView,
    SettingsView,
    SubscriptionView,
    TenantCreatedView,
    UsageView,
    VerifyView,
)

LEDGER_PAGE_DEFAULT = 50
LEDGER_PAGE_MAX = 200


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    started = time.perf_counter()
    response = preflight_response(event) or undecodable_body(event) or with_cors(event, app.resolve(event, context))
    http = event.get("requestContext", {}).get("http", {})
    logger.info(
        "request",
        extra={
            "method": http.get("method"),
            "path": event.get("rawPath"),
            "status": response["statusCode"],
            "ms": round((time.perf_counter() - started) * 1000, 2),
        },
    )
    return response


def _created(body: BaseModel) -> Response[Any]:
    return Response(status_code=201, content_type="application/json", body=body)


# --- operations ----------------------------------------------------------------------------------------


@app.get("/v1/health")
@access("public")
def health() -> dict[str, bool]:
    preflight("public", None)
    return {"ok": True}


_openapi_document: dict[str, Any] = {}
ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message", "details"],
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "details": {"type": "object"},
            },
        }
    },
}
ERROR_STATUSES = {
    "400": "invalid_request (details.field names the field)",
    "401": "unauthenticated",
    "402": "insufficient_quota (details: meter, requested, available)",
    "403": "forbidden",
    "404": "not_found",
    "409": "reservation_not_pending, reservation_expired, idempotency_key_reused or conflict",
    "413": "payload_too_large",
    "415": "unsupported_media_type (bodies are application/json in UTF-8)",
    "429": "throttled (Retry-After)",
    "503": "unavailable (Retry-After)",
}


STRIPE_WEBHOOK_OPERATION: dict[str, Any] = {
    "post": {
        "summary": "Stripe webhook endpoint (no bearer key: the Stripe-Signature header is verified)",
        "operationId": "stripe_webhook",
        "parameters": [
            {"name": "tenant_id", "in": "path", "required": True, "schema": {"type": "string"}},
            {"name": "Stripe-Signature", "in": "header", "required": True, "schema": {"type": "string"}},
        ],
        "requestBody": {"required": True, "content": {"application/json": {"schema": {"type": "object"}}}},
        "responses": {
            "200": {
                "description": "received (applied at most once, or ignored)",
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "properties": {"received": {"type": "boolean"}},
                            "required": ["received"],
                        }
                    }
                },
            }
        },
    }
}


def _document() -> dict[str, Any]:
    """The generated OpenAPI document, with the error responses this API really gives (Powertools documents a
    422 for validation errors; this API answers 400 in its own error shape)."""
    document: dict[str, Any] = app.get_openapi_schema(
        title="quotaflow",
        version=__version__,
        description="Usage metering and credits for AI apps: reserve, commit, release; usage; plans.",
    ).model_dump(mode="json", by_alias=True, exclude_none=True)
    document.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR_SCHEMA
    error = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    document["paths"]["/v1/stripe/webhook/{tenant_id}"] = STRIPE_WEBHOOK_OPERATION  # its own function, same API
    for operations in document["paths"].values():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            responses.pop("422", None)
            if "201" in responses:
                responses.pop("200", None)
            for status, description in ERROR_STATUSES.items():
                responses[status] = {"description": description, "content": error}
    return document


@app.get("/v1/openapi.json", include_in_schema=False)
@access("public")
def openapi() -> dict[str, Any]:
    if not _openapi_document:
        _openapi_document.update(_document())
    return _openapi_document


# --- admin ---------------------------------------------------------------------------------------------


@app.post(
    "/v1/admin/tenants",
    responses={201: {"description": "created", "content": {"application/json": {"model": TenantCreatedView}}}},
)
@access("admin")
def create_tenant(body: Annotated[schemas.TenantCreate, Body()]) -> Response[TenantCreatedView]:
    admin = admin_scope()
    return _created(tenants.create_tenant(admin, body.tenant_id, idempotency_claim(201)))


@app.post(
    "/v1/admin/tenants/<tenant_id>/keys",
    responses={201: {"description": "created", "content": {"application/json": {"model": KeyCreatedView}}}},
)
@access("admin")
def create_key(tenant_id: str, body: Annotated[schemas.KeyCreate, Body()]) -> Response[KeyCreatedView]:
    admin = admin_scope()
    return _created(tenants.create_key(admin, path_id(tenant_id, "tenant_id"), body.kind, idempotency_claim(201)))


@app.delete("/v1/admin/tenants/<tenant_id>/keys/<key_id>")
@access("admin")
def revoke_key(tenant_id: str, key_id: str) -> Response[None]:
    admin = admin_scope()
    tenants.revoke_key(admin.store, path_id(tenant_id, "tenant_id"), path_id(key_id, "key_id"), admin.now)
    runtime().key_cache.principals.entries.clear()  # this container forgets at once; others within KEY_CACHE_SECONDS
    return Response(204, None, None)


# --- plans, subscriptions, settings --------------------------------------------------------------------


@app.put("/v1/plans/<plan_id>")
@access("secret")
def put_plan(plan_id: str, body: Annotated[schemas.PlanBody, Body()]) -> Plan:
    scope = tenant_scope()
    plan = Plan(
        plan_id=path_id(plan_id, "plan_id"),
        name=body.name,
        limits=body.limits,
        stripe=body.stripe,
        features=body.features,
        period_anchoring=body.period_anchoring,
    )
    return plans.put_plan(scope, plan)


@app.get("/v1/plans/<plan_id>")
@access("secret")
def get_plan(plan_id: str) -> Plan:
    scope = tenant_scope()
    return users.get_plan(scope, path_id(plan_id, "plan_id"))


@app.get("/v1/plans")
@access("secret")
def list_plans() -> dict[str, list[Plan]]:
    return {"plans": plans.list_plans(tenant_scope())}


@app.put("/v1/users/<user_id>/subscription")
@access("secret")
def put_subscription(user_id: str, body: Annotated[schemas.SubscriptionBody, Body()]) -> SubscriptionView:
    scope = tenant_scope()
    return plans.put_subscription(
        scope,
        path_id(user_id, "user_id"),
        body.plan_id,
        body.custom_limits,
        body.stripe_customer_id,
        custom_features=body.custom_features,
        period_anchor=body.period_anchor,
        account_id=body.account_id,
    )


@app.get("/v1/users/<user_id>/subscription")
@access("secret")
def get_subscription(user_id: str) -> SubscriptionView:
    scope = tenant_scope()
    return plans.get_subscription(scope, path_id(user_id, "user_id"))


@app.put("/v1/settings")
@access("secret")
def put_settings(body: Annotated[schemas.SettingsBody, Body()]) -> SettingsView:
    return plans.put_settings(
        tenant_scope(),
        allowed_origins=body.allowed_origins,
        change_default_plan="default_plan_id" in body.model_fields_set,
        default_plan=body.default_plan_id,
    )


@app.get("/v1/settings")
@access("secret")
def get_settings() -> SettingsView:
    return plans.get_settings(tenant_scope())


# --- usage (secret key, or publishable key + user token) -----------------------------------------------


@app.get("/v1/users/<user_id>/usage")
@access("user")
def usage(user_id: str) -> UsageView:
    scope = tenant_scope("user", user_id)
    return balances.usage(scope, path_id(user_id, "user_id"))


@app.post("/v1/users/<user_id>/can-use")
@access("user")
def can_use(
    user_id: str, body: Annotated[schemas.CanUseBody, Body()]
) -> CanUseView | CanUseLinesView | FeatureAllowanceView:
    scope = tenant_scope("user", user_id)
    user = path_id(user_id, "user_id")
    if body.feature is not None:
        return plans.can_use_feature(scope, user, body.feature)
    if body.lines is not None:
        return balances.can_use_lines(scope, user, body.lines)
    return balances.can_use_one(scope, user, Line(meter=body.meter or "", amount=body.amount or 0))


@app.get("/v1/users/<user_id>/entitlements")
@access("user")
def entitlements(user_id: str) -> EntitlementsView:
    scope = tenant_scope("user", user_id)
    return plans.entitlements(scope, path_id(user_id, "user_id"))


# --- reservations --------------------------------------------------------------------------------------


@app.post(
    "/v1/reservations",
    responses={201: {"description": "held", "content": {"application/json": {"model": ReservationView}}}},
)
@access("secret")
def reserve(body: Annotated[schemas.ReserveBody, Body()]) -> Response[ReservationView]:
    scope = tenant_scope()
    return _created(metering.reserve(scope, body.user_id, body.lines, body.ttl_seconds, idempotency_claim(201)))


@app.post("/v1/reservations/<reservation_id>/commit")
@access("secret")
def commit(reservation_id: str, body: Annotated[schemas.CommitBody, Body()]) -> CommitView:
    scope = tenant_scope()
    rid = path_id(reservation_id, "reservation_id")
    lines, priced = pricing.resolve_lines(scope, [line.priced() for line in body.lines])
    properties = {**body.properties, **({"pricing": priced} if priced else {})}
    return metering.commit(scope, rid, lines, idempotency_claim(200), properties or None)


@app.post("/v1/reservations/<reservation_id>/release")
@access("secret")
def release(reservation_id: str) -> ReleaseView:
    scope = tenant_scope()
    return metering.release_reservation(scope, path_id(reservation_id, "reservation_id"), idempotency_claim(200))


@app.get("/v1/reservations/<reservation_id>")
@access("secret")
def get_reservation(reservation_id: str) -> ReservationView:
    scope = tenant_scope()
    reservation = metering.get_reservation(scope, path_id(reservation_id, "reservation_id"))
    return metering.reservation_view(reservation, scope)


# --- direct usage, refunds, credits, ledger, verify ------------------------------------------------------


@app.post(
    "/v1/events",
    responses={201: {"description": "recorded", "content": {"application/json": {"model": EventView}}}},
)
@access("secret")
def track(body: Annotated[schemas.EventBody, Body()]) -> Response[EventView]:
    scope = tenant_scope()
    lines, priced = pricing.resolve_lines(scope, [line.priced() for line in body.lines])
    properties = {**body.properties, **({"pricing": priced} if priced else {})}
    return _created(metering.track(scope, body.user_id, lines, properties or None, idempotency_claim(201)))


@app.post(
    "/v1/refunds",
    responses={201: {"description": "refunded", "content": {"application/json": {"model": RefundView}}}},
)
@access("secret")
def refund(body: Annotated[schemas.RefundBody, Body()]) -> Response[RefundView]:
    scope = tenant_scope()
    return _created(metering.refund(scope, body.user_id, body.lines, body.reason, idempotency_claim(201)))


@app.post(
    "/v1/users/<user_id>/credits",
    responses={201: {"description": "granted", "content": {"application/json": {"model": GrantView}}}},
)
@access("secret")
def grant_credits(user_id: str, body: Annotated[schemas.CreditsBody, Body()]) -> Response[GrantView]:
    scope = tenant_scope()
    user = path_id(user_id, "user_id")
    return _created(credits.grant(scope, user, body.meter, body.amount, body.expires_at, idempotency_claim(201)))


@app.get("/v1/users/<user_id>/credits")
@access("secret")
def list_credits(user_id: str) -> dict[str, list[credits.GrantInfo]]:
    """Every grant of the user with what is left of it: spent after the allowance, earliest expiry first."""
    scope = tenant_scope()
    return {"grants": credits.list_grants(scope, path_id(user_id, "user_id"))}


@app.get("/v1/users/<user_id>/ledger")
@access("secret")
def ledger(
    user_id: str,
    limit: Annotated[int, Query(ge=1, le=LEDGER_PAGE_MAX)] = LEDGER_PAGE_DEFAULT,
    cursor: Annotated[str | None, Query(max_length=1024)] = None,
) -> LedgerView:
    scope = tenant_scope()
    return audit.ledger(scope, path_id(user_id, "user_id"), limit, cursor)


@app.post("/v1/verify")
@access("secret")
def verify(body: Annotated[schemas.VerifyBody, Body()]) -> VerifyView:
    return audit.verify(tenant_scope(), body.user_id)


@app.post(
    "/v1/user-tokens",
    responses={201: {"description": "minted", "content": {"application/json": {"model": schemas.UserTokenView}}}},
)
@access("secret")
def user_token(body: Annotated[schemas.UserTokenBody, Body()]) -> Response[schemas.UserTokenView]:
    scope = tenant_scope()
    secret = tokens.signing_secrets(scope.store, scope.tenant_id).current
    token, expires_at = tokens.mint(secret, scope.tenant_id, body.user_id, scope.now, body.ttl_seconds)
    return _created(schemas.UserTokenView(token=token, expires_at=expires_at))


@app.post("/v1/user-tokens/rotate-secret")
@access("secret")
def rotate_user_token_secret() -> dict[str, str]:
    """New tokens are signed with a new secret; tokens already handed out keep working until they expire."""
    scope = tenant_scope()
    return {"rotated_at": tokens.rotate(scope.store, scope.tenant_id, scope.now)}


# --- prices and quotes -----------------------------------------------------------------------------------


@app.put("/v1/prices/<model>")
@access("secret")
def put_price(model: str, body: Annotated[PriceBody, Body()]) -> Price:
    scope = tenant_scope()
    return pricing.put_price(scope, _model(model), body)


@app.post("/v1/prices/import")
@access("secret")
def import_prices(
    markup_percent: Annotated[int, Query(ge=0, le=MARKUP_PERCENT_MAX)] = 0,
) -> price_import.ImportView:
    """A catalog in the LiteLLM cost-map format. Its numbers are read from the JSON text as Decimals, not floats."""
    scope = tenant_scope()
    catalog = exact_json_object(app.current_event.decoded_body or "")
    return price_import.import_catalog(scope, catalog, markup_percent, idempotency_claim(200))


@app.get("/v1/prices/<model>")
@access("secret")
def get_price(model: str) -> pricing.PriceHistoryView:
    scope = tenant_scope()
    return pricing.price_history(scope, _model(model))


@app.get("/v1/prices")
@access("secret")
def list_prices() -> dict[str, list[Price]]:
    return {"prices": pricing.list_prices(tenant_scope())}


@app.post("/v1/quote")
@access("secret")
def quote(body: Annotated[schemas.QuoteBody, Body()]) -> pricing.QuoteView:
    """What a call will cost at most: input tokens plus the output cap, at the model's current price."""
    scope = tenant_scope()
    if body.lines is not None:
        runs = [
            (
                run.model,
                _estimate(
                    run.input_tokens,
                    run.cached_input_tokens,
                    run.max_output_tokens if run.max_output_tokens is not None else run.output_tokens,
                ),
            )
            for run in body.lines
        ]
    else:
        runs = [(body.model or "", _estimate(body.input_tokens, body.cached_input_tokens, body.max_output_tokens))]
    return pricing.quote(scope, runs)


def _output_cap(run: schemas.QuoteRun) -> int:
    return run.max_output_tokens if run.max_output_tokens is not None else run.output_tokens


def _estimate(input_tokens: int, cached_input_tokens: int, output_tokens: int) -> TokenCounts:
    return TokenCounts(input_tokens=input_tokens, cached_input_tokens=cached_input_tokens, output_tokens=output_tokens)


def _model(raw: str) -> str:
    value = unquote(raw)
    if not re.fullmatch(MODEL_PATTERN, value):
        raise errors.InvalidRequest(f"model must match {MODEL_PATTERN}", field="model")
    return value


# --- Stripe settings (the webhook itself is its own function: handlers/stripe_webhook.py) ------------------


@app.put("/v1/stripe/config")
@access("secret")
def put_stripe_config(body: Annotated[stripe_config.StripeConfigBody, Body()]) -> stripe_config.StripeConfigView:
    """Secrets are encrypted at rest and only ever shown masked (last 4 characters)."""
    scope = tenant_scope()
    return stripe_config.put_config(scope, runtime().secret_box, body)


@app.get("/v1/stripe/config")
@access("secret")
def get_stripe_config() -> stripe_config.StripeConfigView:
    return stripe_config.get_config(tenant_scope())


# --- outgoing webhooks (alerts) ---------------------------------------------------------------------------


@app.put("/v1/webhooks")
@access("secret")
def put_webhook(body: Annotated[alerts.WebhookBody, Body()]) -> alerts.WebhookView:
    """Where alerts are POSTed, signed with `secret` (shown masked from now on)."""
    scope = tenant_scope()
    bound = runtime()
    return alerts.put_webhook(scope, bound.secret_box, body, allow_loopback_http=bound.settings.allow_loopback_webhooks)


@app.get("/v1/webhooks")
@access("secret")
def get_webhook() -> alerts.WebhookView:
    return alerts.get_webhook(tenant_scope())


gc.freeze()  # every route is registered: what the imports built is kept for the container's life, never rescanned
if _collecting:
    gc.enable()
