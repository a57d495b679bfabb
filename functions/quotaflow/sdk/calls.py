"""Every route of the API as a `Call`: the request to send and how to read its answer.

Both clients send the same `Call`s; only how they wait differs."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, Literal, TypeVar
from urllib.parse import quote as url_quote

from quotaflow.sdk import models
from quotaflow.sdk.providers import ModelUsage

T = TypeVar("T")
Method = Literal["GET", "POST", "PUT", "DELETE"]
Amounts = Mapping[str, int]  # meter -> amount: {"tokens": 4000, "requests": 1}
# Usage lines (track, commit): an amount, or on a money meter (`cents`, `millicents`) a model call's token counts for
# the server to price: {"tokens": usage.total_tokens, "cents": usage}
Lines = Mapping[str, int | ModelUsage]
LimitInput = models.Limit | Mapping[str, Any]
QuoteRunInput = models.QuoteRun | ModelUsage | Mapping[str, Any]


@dataclass(frozen=True)
class Call(Generic[T]):
    method: Method
    path: str
    parse: Callable[[Any], T]  # the response's JSON (None for an empty body) -> the typed result
    body: Mapping[str, Any] | None = None
    params: Mapping[str, str | int] | None = None
    json_text: bytes | None = None  # a body already encoded as JSON (sent instead of `body`), for exact numbers
    user_token: str | None = None  # X-Quotaflow-User-Token, with a publishable key

    @property
    def is_write(self) -> bool:
        """Everything but GET carries an Idempotency-Key (harmless where the server ignores it)."""
        return self.method != "GET"


def _segment(value: str) -> str:
    return url_quote(value, safe="")


def _lines(lines: Lines) -> list[dict[str, Any]]:
    return [_line(meter, value) for meter, value in lines.items()]


def _line(meter: str, value: int | ModelUsage) -> dict[str, Any]:
    if isinstance(value, ModelUsage):
        return {"meter": meter, "from_model": value.from_model_payload()}
    return {"meter": meter, "amount": value}


def _iso(moment: datetime) -> str:
    """The API's timestamp format; a naive datetime is refused rather than guessed."""
    if moment.tzinfo is None:
        raise ValueError("period_anchor needs a timezone (e.g. datetime(..., tzinfo=UTC))")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _nothing(_: Any) -> None:
    return None


def _without_none(body: Mapping[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in body.items() if value is not None}


# --- operations and admin ------------------------------------------------------------------------------


def health() -> Call[models.Health]:
    return Call("GET", "/v1/health", models.Health.model_validate)


def create_tenant(tenant_id: str) -> Call[models.TenantCreated]:
    return Call("POST", "/v1/admin/tenants", models.TenantCreated.model_validate, {"tenant_id": tenant_id})


def create_key(tenant_id: str, kind: models.KeyKind) -> Call[models.KeyCreated]:
    path = f"/v1/admin/tenants/{_segment(tenant_id)}/keys"
    return Call("POST", path, models.KeyCreated.model_validate, {"kind": kind})


def revoke_key(tenant_id: str, key_id: str) -> Call[None]:
    return Call("DELETE", f"/v1/admin/tenants/{_segment(tenant_id)}/keys/{_segment(key_id)}", _nothing)


# --- plans, subscriptions, settings --------------------------------------------------------------------


def plan_spec(
    name: str,
    limits: Mapping[str, LimitInput],
    stripe: models.StripePlanSettings | Mapping[str, Any] | None,
    features: Mapping[str, models.FeatureValue] | None = None,
    period_anchoring: str | None = None,
) -> models.PlanSpec:
    """Validate a plan locally (a missing quota fails here, before any request)."""
    body = {
        "name": name,
        "limits": dict(limits),
        "stripe": stripe,
        "features": features,
        "period_anchoring": period_anchoring,
    }
    return models.PlanSpec.model_validate(_without_none(body))


def put_plan(plan_id: str, spec: models.PlanSpec) -> Call[models.Plan]:
    body = spec.model_dump(mode="json")
    return Call("PUT", f"/v1/plans/{_segment(plan_id)}", models.Plan.model_validate, body)


def get_plan(plan_id: str) -> Call[models.Plan]:
    return Call("GET", f"/v1/plans/{_segment(plan_id)}", models.Plan.model_validate)


def list_plans() -> Call[list[models.Plan]]:
    return Call("GET", "/v1/plans", lambda body: models.PlanList.model_validate(body).plans)


def upsert_subscription(
    user_id: str,
    plan_id: str,
    custom_limits: Mapping[str, Mapping[str, Any]] | None,
    stripe_customer_id: str | None,
    custom_features: Mapping[str, models.FeatureValue] | None = None,
    period_anchor: datetime | None = None,
    account_id: str | None = None,
) -> Call[models.Subscription]:
    body = _without_none(
        {
            "plan_id": plan_id,
            "custom_limits": {meter: dict(limit) for meter, limit in (custom_limits or {}).items()},
            "custom_features": dict(custom_features) if custom_features else None,
            "stripe_customer_id": stripe_customer_id,
            "account_id": account_id,
            "period_anchor": _iso(period_anchor) if period_anchor else None,
        }
    )
    return Call("PUT", f"/v1/users/{_segment(user_id)}/subscription", models.Subscription.model_validate, body)


def get_subscription(user_id: str) -> Call[models.Subscription]:
    return Call("GET", f"/v1/users/{_segment(user_id)}/subscription", models.Subscription.model_validate)


def put_settings(default_plan_id: str | None) -> Call[models.TenantSettings]:
    body = {"default_plan_id": default_plan_id}
    return Call("PUT", "/v1/settings", models.TenantSettings.model_validate, body)


def get_settings() -> Call[models.TenantSettings]:
    return Call("GET", "/v1/settings", models.TenantSettings.model_validate)


# --- usage ---------------------------------------------------------------------------------------------


def usage(user_id: str, user_token: str | None) -> Call[models.Usage]:
    path = f"/v1/users/{_segment(user_id)}/usage"
    return Call("GET", path, models.Usage.model_validate, user_token=user_token)


def can_use(user_id: str, meter: str, amount: int, user_token: str | None) -> Call[models.CanUse]:
    path = f"/v1/users/{_segment(user_id)}/can-use"
    body = {"meter": meter, "amount": amount}
    return Call("POST", path, models.CanUse.model_validate, body, user_token=user_token)


def can_use_lines(user_id: str, lines: Amounts, user_token: str | None) -> Call[models.CanUseLines]:
    path = f"/v1/users/{_segment(user_id)}/can-use"
    body = {"lines": _lines(lines)}
    return Call("POST", path, models.CanUseLines.model_validate, body, user_token=user_token)


def entitlements(user_id: str, user_token: str | None) -> Call[models.Entitlements]:
    path = f"/v1/users/{_segment(user_id)}/entitlements"
    return Call("GET", path, models.Entitlements.model_validate, user_token=user_token)


def can_use_feature(user_id: str, feature: str, user_token: str | None) -> Call[models.FeatureAllowance]:
    path = f"/v1/users/{_segment(user_id)}/can-use"
    return Call("POST", path, models.FeatureAllowance.model_validate, {"feature": feature}, user_token=user_token)


# --- reservations --------------------------------------------------------------------------------------


def reserve(user_id: str, lines: Amounts, ttl_seconds: int | None) -> Call[models.ReservationInfo]:
    body = _without_none({"user_id": user_id, "lines": _lines(lines), "ttl_seconds": ttl_seconds})
    return Call("POST", "/v1/reservations", models.ReservationInfo.model_validate, body)


def commit(
    reservation_id: str, lines: Lines | None, properties: Mapping[str, Any] | None = None
) -> Call[models.CommitResult]:
    path = f"/v1/reservations/{_segment(reservation_id)}/commit"
    body = {"lines": _lines(lines or {}), **({"properties": dict(properties)} if properties else {})}
    return Call("POST", path, models.CommitResult.model_validate, body)


def release(reservation_id: str) -> Call[models.ReleaseResult]:
    path = f"/v1/reservations/{_segment(reservation_id)}/release"
    return Call("POST", path, models.ReleaseResult.model_validate)


def get_reservation(reservation_id: str) -> Call[models.ReservationInfo]:
    path = f"/v1/reservations/{_segment(reservation_id)}"
    return Call("GET", path, models.ReservationInfo.model_validate)


def draw(reservation_id: str, lines: Lines, properties: Mapping[str, Any] | None) -> Call[models.DrawResult]:
    path = f"/v1/reservations/{_segment(reservation_id)}/draw"
    body = _without_none({"lines": _lines(lines), "properties": properties})
    return Call("POST", path, models.DrawResult.model_validate, body)


def increase(reservation_id: str, lines: Amounts) -> Call[models.ReservationInfo]:
    path = f"/v1/reservations/{_segment(reservation_id)}/increase"
    return Call("POST", path, models.ReservationInfo.model_validate, {"lines": _lines(lines)})


def extend(reservation_id: str, ttl_seconds: int) -> Call[models.ReservationInfo]:
    path = f"/v1/reservations/{_segment(reservation_id)}/extend"
    return Call("POST", path, models.ReservationInfo.model_validate, {"ttl_seconds": ttl_seconds})


def steps(reservation_id: str, limit: int, cursor: str | None) -> Call[models.StepsPage]:
    params: dict[str, str | int] = {"limit": limit} if cursor is None else {"limit": limit, "cursor": cursor}
    path = f"/v1/reservations/{_segment(reservation_id)}/steps"
    return Call("GET", path, models.StepsPage.model_validate, params=params)


# --- direct usage, refunds, credits, ledger, verify, tokens ----------------------------------------------


def track(user_id: str, lines: Lines, properties: Mapping[str, Any] | None) -> Call[models.EventRecorded]:
    body = _without_none({"user_id": user_id, "lines": _lines(lines), "properties": properties})
    return Call("POST", "/v1/events", models.EventRecorded.model_validate, body)


def refund(user_id: str, lines: Amounts, reason: str | None) -> Call[models.RefundRecorded]:
    body = _without_none({"user_id": user_id, "lines": _lines(lines), "reason": reason})
    return Call("POST", "/v1/refunds", models.RefundRecorded.model_validate, body)


def grant_credits(user_id: str, meter: str, amount: int) -> Call[models.CreditGrant]:
    path = f"/v1/users/{_segment(user_id)}/credits"
    return Call("POST", path, models.CreditGrant.model_validate, {"meter": meter, "amount": amount})


def ledger(user_id: str, limit: int, cursor: str | None) -> Call[models.LedgerPage]:
    params: dict[str, str | int] = {"limit": limit} if cursor is None else {"limit": limit, "cursor": cursor}
    path = f"/v1/users/{_segment(user_id)}/ledger"
    return Call("GET", path, models.LedgerPage.model_validate, params=params)


def verify(user_id: str | None) -> Call[models.VerifyResult]:
    return Call("POST", "/v1/verify", models.VerifyResult.model_validate, _without_none({"user_id": user_id}))


def usage_report(
    meter: str,
    start: datetime,
    end: datetime,
    window: str,
    group_by: Sequence[str],
    filters: Mapping[str, str] | None,
    limit: int | None,
) -> Call[models.UsageReport]:
    body = {
        "meter": meter,
        "from": _utc(start),
        "to": _utc(end),
        "window": window,
        "group_by": list(group_by),
        "filters": dict(filters or {}),
        "limit": limit,
    }
    return Call("POST", "/v1/analytics/usage", models.UsageReport.model_validate, _without_none(body))


def _utc(moment: datetime) -> str:
    """Full precision: the server rounds an exclusive `to` up to the second, so nothing of its last second is lost."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def analytics_query(query_id: str) -> Call[models.UsageReport]:
    return Call("GET", f"/v1/analytics/queries/{_segment(query_id)}", models.UsageReport.model_validate)


def user_token(user_id: str, ttl_seconds: int) -> Call[models.UserToken]:
    body = {"user_id": user_id, "ttl_seconds": ttl_seconds}
    return Call("POST", "/v1/user-tokens", models.UserToken.model_validate, body)


# --- prices and quotes -----------------------------------------------------------------------------------


def put_price(
    model: str,
    input_per_million_cents: int,
    output_per_million_cents: int,
    cached_input_per_million_cents: int | None,
    markup_percent: int,
) -> Call[models.Price]:
    body = _without_none(
        {
            "input_per_million_cents": input_per_million_cents,
            "output_per_million_cents": output_per_million_cents,
            "cached_input_per_million_cents": cached_input_per_million_cents,
            "markup_percent": markup_percent,
        }
    )
    return Call("PUT", f"/v1/prices/{_segment(model)}", models.Price.model_validate, body)


def import_prices(catalog_json: bytes, markup_percent: int) -> Call[models.PriceImport]:
    """A chunk of a LiteLLM cost map, sent as the JSON text it is (its prices must not pass through a float)."""
    params = {"markup_percent": markup_percent}
    return Call("POST", "/v1/prices/import", models.PriceImport.model_validate, params=params, json_text=catalog_json)


def get_price(model: str) -> Call[models.PriceHistory]:
    return Call("GET", f"/v1/prices/{_segment(model)}", models.PriceHistory.model_validate)


def list_prices() -> Call[list[models.Price]]:
    return Call("GET", "/v1/prices", lambda body: models.PriceList.model_validate(body).prices)


def quote(model: str, input_tokens: int, max_output_tokens: int, cached_input_tokens: int) -> Call[models.Quote]:
    run = models.QuoteRun(
        model=model,
        input_tokens=input_tokens,
        max_output_tokens=max_output_tokens,
        cached_input_tokens=cached_input_tokens,
    )
    return Call("POST", "/v1/quote", models.Quote.model_validate, run.model_dump())


def quote_run(runs: Sequence[QuoteRunInput]) -> Call[models.Quote]:
    """Several calls quoted at once (an agent run); each a `QuoteRun`, its fields as a mapping, or a `ModelUsage`
    (its output tokens as the cap, to price calls already made)."""
    if not runs:
        raise ValueError("quote_run needs at least one call")
    body = {"lines": [_quote_run(run).model_dump() for run in runs]}
    return Call("POST", "/v1/quote", models.Quote.model_validate, body)


def _quote_run(run: QuoteRunInput) -> models.QuoteRun:
    if isinstance(run, models.QuoteRun):
        return run
    if isinstance(run, ModelUsage):
        return models.QuoteRun(
            model=run.model,
            input_tokens=run.input_tokens,
            max_output_tokens=run.output_tokens,
            cached_input_tokens=run.cached_input_tokens,
        )
    return models.QuoteRun.model_validate(run)


# --- accounts ------------------------------------------------------------------------------------------


def put_account(
    account_id: str,
    name: str,
    plan_id: str,
    custom_limits: Mapping[str, Mapping[str, Any]] | None,
    parent_id: str | None,
    stripe_customer_id: str | None,
    pool_shards: int | None = None,
) -> Call[models.Account]:
    body = _without_none(
        {
            "name": name,
            "plan_id": plan_id,
            "custom_limits": {meter: dict(limit) for meter, limit in (custom_limits or {}).items()},
            "parent_id": parent_id,
            "stripe_customer_id": stripe_customer_id,
            "pool_shards": pool_shards,
        }
    )
    return Call("PUT", f"/v1/accounts/{_segment(account_id)}", models.Account.model_validate, body)


def get_account(account_id: str) -> Call[models.Account]:
    return Call("GET", f"/v1/accounts/{_segment(account_id)}", models.Account.model_validate)


def account_usage(account_id: str) -> Call[models.AccountUsage]:
    return Call("GET", f"/v1/accounts/{_segment(account_id)}/usage", models.AccountUsage.model_validate)


def grant_account_credits(account_id: str, meter: str, amount: int) -> Call[models.CreditGrant]:
    path = f"/v1/accounts/{_segment(account_id)}/credits"
    return Call("POST", path, models.CreditGrant.model_validate, {"meter": meter, "amount": amount})


def account_ledger(account_id: str, limit: int, cursor: str | None) -> Call[models.LedgerPage]:
    params: dict[str, str | int] = {"limit": limit} if cursor is None else {"limit": limit, "cursor": cursor}
    path = f"/v1/accounts/{_segment(account_id)}/ledger"
    return Call("GET", path, models.LedgerPage.model_validate, params=params)
