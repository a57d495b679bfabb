"""Routes for accounts: organizations and teams holding shared pools above their members.

Importing this module registers the routes on the resolver in `quotaflow.handlers.http`."""

from __future__ import annotations

from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Body, Query

from quotaflow.handlers import schemas
from quotaflow.handlers.http import access, app, idempotency_claim, path_id, tenant_scope
from quotaflow.services import accounts, audit, balances, credits
from quotaflow.services.views import AccountUsageView, AccountView, GrantView, LedgerView

LEDGER_PAGE_DEFAULT = 50
LEDGER_PAGE_MAX = 200


@app.put("/v1/accounts/<account_id>")
@access("secret")
def put_account(account_id: str, body: Annotated[schemas.AccountBody, Body()]) -> AccountView:
    """Create or replace an account (plan, overrides, parent, Stripe customer, pool shards); a tree at most 3 levels
    deep."""
    scope = tenant_scope()
    return accounts.put_account(
        scope,
        path_id(account_id, "account_id"),
        body.name,
        body.plan_id,
        body.custom_limits,
        body.parent_id,
        body.stripe_customer_id,
        body.period_anchor,
        body.pool_shards,
    )


@app.get("/v1/accounts/<account_id>")
@access("secret")
def get_account(account_id: str) -> AccountView:
    return accounts.get_account(tenant_scope(), path_id(account_id, "account_id"))


@app.get("/v1/accounts/<account_id>/usage")
@access("secret")
def account_usage(account_id: str) -> AccountUsageView:
    scope = tenant_scope()
    account = path_id(account_id, "account_id")
    accounts.require_account(scope, account)
    return balances.account_usage(scope, account)


@app.post(
    "/v1/accounts/<account_id>/credits",
    responses={201: {"description": "granted", "content": {"application/json": {"model": GrantView}}}},
)
@access("secret")
def grant_account_credits(account_id: str, body: Annotated[schemas.CreditsBody, Body()]) -> Response[Any]:
    """Credits for the pool, spent by its members after the pool's allowance."""
    scope = tenant_scope()
    holder = accounts.require_account(scope, path_id(account_id, "account_id"))
    granted = credits.grant(scope, holder, body.meter, body.amount, body.expires_at, idempotency_claim(201))
    return Response(status_code=201, content_type="application/json", body=granted)


@app.get("/v1/accounts/<account_id>/ledger")
@access("secret")
def account_ledger(
    account_id: str,
    limit: Annotated[int, Query(ge=1, le=LEDGER_PAGE_MAX)] = LEDGER_PAGE_DEFAULT,
    cursor: Annotated[str | None, Query(max_length=1024)] = None,
) -> LedgerView:
    scope = tenant_scope()
    holder = accounts.require_account(scope, path_id(account_id, "account_id"))
    return audit.ledger(scope, holder, limit, cursor)
