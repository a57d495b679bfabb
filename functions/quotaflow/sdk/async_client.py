"""`AsyncClient`: `Client` for asyncio. Same methods, same `Call`s, same retry rule; documented on `Client`."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any, Literal, TypeVar

import httpx

from quotaflow.sdk import calls, models
from quotaflow.sdk.calls import Amounts, Call, LimitInput, Lines, QuoteRunInput
from quotaflow.sdk.client import (
    LEDGER_PAGE_SIZE_DEFAULT,
    LEDGER_PAGES_MAX_DEFAULT,
    REPORT_POLL_INTERVAL_S,
    REPORT_POLLS_MAX,
    TTL_SECONDS_DEFAULT,
)
from quotaflow.sdk.errors import PageLimitReached
from quotaflow.sdk.reservation import AsyncReservation, PendingReservation
from quotaflow.sdk.retry import Outcome, RetryPolicy
from quotaflow.sdk.run import AsyncRun
from quotaflow.sdk.transport import (
    TIMEOUT_SECONDS_DEFAULT,
    Connection,
    build_request,
    new_idempotency_key,
    read_result,
)

T = TypeVar("T")


class AsyncClient:
    """quotaflow over HTTP, for asyncio. `async with qf.reserve(...) as r: await r.commit(...)`."""

    def __init__(
        self,
        api_key: str | None = None,
        base_url: str | None = None,
        *,
        timeout_seconds: float = TIMEOUT_SECONDS_DEFAULT,
        retry: RetryPolicy | None = None,
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        self.connection = Connection.resolve(api_key, base_url)
        self.retry = retry or RetryPolicy()
        self._http = http_client or httpx.AsyncClient(timeout=timeout_seconds)
        self._owns_http = http_client is None

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        await self.aclose()

    async def _send(self, call: Call[T], idempotency_key: str | None = None) -> T:
        request = build_request(self.connection, call, idempotency_key or new_idempotency_key())
        attempt = 0
        outcome = await self._attempt(request)
        while (delay_seconds := self.retry.delay_seconds(attempt, outcome)) is not None:
            await asyncio.sleep(delay_seconds)
            attempt += 1
            outcome = await self._attempt(request)
        return read_result(call, outcome)

    async def _attempt(self, request: httpx.Request) -> Outcome:
        try:
            return await self._http.send(request)
        except httpx.TransportError as error:
            return error

    # --- usage -----------------------------------------------------------------------------------------

    async def usage(self, user_id: str, *, user_token: str | None = None) -> models.Usage:
        return await self._send(calls.usage(user_id, user_token))

    async def can_use(self, user_id: str, meter: str, amount: int, *, user_token: str | None = None) -> models.CanUse:
        return await self._send(calls.can_use(user_id, meter, amount, user_token))

    async def entitlements(self, user_id: str, *, user_token: str | None = None) -> models.Entitlements:
        """The user's features (plan merged with `custom_features`); a publishable key needs `user_token`."""
        return await self._send(calls.entitlements(user_id, user_token))

    async def can_use_feature(
        self, user_id: str, feature: str, *, user_token: str | None = None
    ) -> models.FeatureAllowance:
        """Is `feature` on for the user? A missing, false, 0 or empty feature is not allowed."""
        return await self._send(calls.can_use_feature(user_id, feature, user_token))

    async def can_use_lines(self, user_id: str, lines: Amounts, *, user_token: str | None = None) -> models.CanUseLines:
        return await self._send(calls.can_use_lines(user_id, lines, user_token))

    # --- reservations ----------------------------------------------------------------------------------

    def reserve(
        self, user_id: str, lines: Amounts, *, ttl_seconds: int | None = None, idempotency_key: str | None = None
    ) -> PendingReservation[AsyncReservation]:
        """`async with qf.reserve(...) as r:` (released unless committed), or `r = await qf.reserve(...)`."""
        key = idempotency_key or new_idempotency_key()

        async def open_reservation() -> AsyncReservation:
            info = await self._send(calls.reserve(user_id, lines, ttl_seconds), key)
            return AsyncReservation(self._send, info, key)

        return PendingReservation(open_reservation)

    def run(
        self,
        user_id: str,
        lines: Amounts,
        *,
        ttl_seconds: int = TTL_SECONDS_DEFAULT,
        heartbeat_seconds: float | None = None,
        idempotency_key: str | None = None,
    ) -> PendingReservation[AsyncRun]:
        """`async with qf.run("u1", {"tokens": 50_000}) as run: await run.draw(...)`: finished when the block ends
        (released on an exception); with `heartbeat_seconds`, a task extends the hold that often."""
        key = idempotency_key or new_idempotency_key()

        async def open_run() -> AsyncRun:
            info = await self._send(calls.reserve(user_id, lines, ttl_seconds), key)
            return AsyncRun(self._send, info, key, ttl_seconds=ttl_seconds, heartbeat_seconds=heartbeat_seconds)

        return PendingReservation(open_run)

    async def commit(
        self, reservation_id: str, lines: Lines | None = None, *, idempotency_key: str | None = None
    ) -> models.CommitResult:
        return await self._send(calls.commit(reservation_id, lines), idempotency_key)

    async def release(self, reservation_id: str, *, idempotency_key: str | None = None) -> models.ReleaseResult:
        return await self._send(calls.release(reservation_id), idempotency_key)

    async def get_reservation(self, reservation_id: str) -> models.ReservationInfo:
        return await self._send(calls.get_reservation(reservation_id))

    async def get_steps(self, reservation_id: str, *, limit: int = 100, cursor: str | None = None) -> models.StepsPage:
        return await self._send(calls.steps(reservation_id, limit, cursor))

    # --- direct usage, refunds, credits ----------------------------------------------------------------

    async def track(
        self,
        user_id: str,
        lines: Lines,
        *,
        properties: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> models.EventRecorded:
        return await self._send(calls.track(user_id, lines, properties), idempotency_key)

    async def refund(
        self, user_id: str, lines: Amounts, *, reason: str | None = None, idempotency_key: str | None = None
    ) -> models.RefundRecorded:
        return await self._send(calls.refund(user_id, lines, reason), idempotency_key)

    async def grant_credits(
        self, user_id: str, meter: str, amount: int, *, idempotency_key: str | None = None
    ) -> models.CreditGrant:
        return await self._send(calls.grant_credits(user_id, meter, amount), idempotency_key)

    async def user_token(
        self, user_id: str, *, ttl_seconds: int = 3600, idempotency_key: str | None = None
    ) -> models.UserToken:
        return await self._send(calls.user_token(user_id, ttl_seconds), idempotency_key)

    # --- ledger and verify -----------------------------------------------------------------------------

    async def ledger(
        self, user_id: str, *, limit: int = LEDGER_PAGE_SIZE_DEFAULT, cursor: str | None = None
    ) -> models.LedgerPage:
        return await self._send(calls.ledger(user_id, limit, cursor))

    async def ledger_entries(
        self,
        user_id: str,
        *,
        page_size: int = LEDGER_PAGE_SIZE_DEFAULT,
        pages_max: int = LEDGER_PAGES_MAX_DEFAULT,
    ) -> AsyncIterator[models.LedgerEntry]:
        cursor: str | None = None
        for _ in range(pages_max):
            page = await self.ledger(user_id, limit=page_size, cursor=cursor)
            for entry in page.entries:
                yield entry
            if page.next_cursor is None:
                return
            cursor = page.next_cursor
        raise PageLimitReached(f"stopped after {pages_max} ledger pages", next_cursor=cursor or "")

    async def usage_report(
        self,
        meter: str,
        start: datetime,
        end: datetime,
        *,
        window: str = "day",
        group_by: Sequence[str] = (),
        filters: Mapping[str, str] | None = None,
        limit: int | None = None,
        polls_max: int = REPORT_POLLS_MAX,
    ) -> models.UsageReport:
        """As `Client.usage_report`: a query Athena is still running is polled once a second, at most `polls_max`."""
        report = await self._send(calls.usage_report(meter, start, end, window, group_by, filters, limit))
        for _ in range(polls_max):
            if report.status != "running" or report.query_id is None:
                break
            await asyncio.sleep(REPORT_POLL_INTERVAL_S)
            report = await self._send(calls.analytics_query(report.query_id))
        return report

    async def verify(self, user_id: str | None = None) -> models.VerifyResult:
        return await self._send(calls.verify(user_id))

    # --- plans, subscriptions, settings ----------------------------------------------------------------

    async def put_plan(
        self,
        plan_id: str,
        name: str,
        limits: Mapping[str, LimitInput],
        *,
        stripe: models.StripePlanSettings | Mapping[str, Any] | None = None,
        features: Mapping[str, models.FeatureValue] | None = None,
        period_anchoring: Literal["calendar", "subscription"] | None = None,
        idempotency_key: str | None = None,
    ) -> models.Plan:
        return await self._send(
            calls.put_plan(plan_id, calls.plan_spec(name, limits, stripe, features, period_anchoring)), idempotency_key
        )

    async def get_plan(self, plan_id: str) -> models.Plan:
        return await self._send(calls.get_plan(plan_id))

    async def list_plans(self) -> list[models.Plan]:
        return await self._send(calls.list_plans())

    async def upsert_subscription(
        self,
        user_id: str,
        plan_id: str,
        *,
        custom_limits: Mapping[str, Mapping[str, Any]] | None = None,
        custom_features: Mapping[str, models.FeatureValue] | None = None,
        stripe_customer_id: str | None = None,
        period_anchor: datetime | None = None,
        account_id: str | None = None,
        idempotency_key: str | None = None,
    ) -> models.Subscription:
        """Replace the user's subscription. `period_anchor`: where their day/week/month periods start; with
        `account_id`, the user is a member of that account and draws on its pools (and those above it) too."""
        call = calls.upsert_subscription(
            user_id, plan_id, custom_limits, stripe_customer_id, custom_features, period_anchor, account_id
        )
        return await self._send(call, idempotency_key)

    # --- accounts ------------------------------------------------------------------------------------------

    async def put_account(
        self,
        account_id: str,
        name: str,
        plan_id: str,
        *,
        custom_limits: Mapping[str, Mapping[str, Any]] | None = None,
        parent_id: str | None = None,
        stripe_customer_id: str | None = None,
        pool_shards: int | None = None,
        idempotency_key: str | None = None,
    ) -> models.Account:
        """Create or replace an account (an organization or team holding a pool); `parent_id` nests it (3 levels).
        `pool_shards` splits its counters into that many shard items (left out: kept; it only grows)."""
        call = calls.put_account(account_id, name, plan_id, custom_limits, parent_id, stripe_customer_id, pool_shards)
        return await self._send(call, idempotency_key)

    async def get_account(self, account_id: str) -> models.Account:
        return await self._send(calls.get_account(account_id))

    async def account_usage(self, account_id: str) -> models.AccountUsage:
        return await self._send(calls.account_usage(account_id))

    async def grant_account_credits(
        self, account_id: str, meter: str, amount: int, *, idempotency_key: str | None = None
    ) -> models.CreditGrant:
        return await self._send(calls.grant_account_credits(account_id, meter, amount), idempotency_key)

    async def account_ledger(self, account_id: str, *, limit: int = 50, cursor: str | None = None) -> models.LedgerPage:
        return await self._send(calls.account_ledger(account_id, limit, cursor))

    async def get_subscription(self, user_id: str) -> models.Subscription:
        return await self._send(calls.get_subscription(user_id))

    async def get_settings(self) -> models.TenantSettings:
        return await self._send(calls.get_settings())

    async def put_settings(
        self, *, default_plan_id: str | None, idempotency_key: str | None = None
    ) -> models.TenantSettings:
        return await self._send(calls.put_settings(default_plan_id), idempotency_key)

    # --- prices and quotes ----------------------------------------------------------------------------

    async def put_price(
        self,
        model: str,
        *,
        input_per_million_cents: int,
        output_per_million_cents: int,
        cached_input_per_million_cents: int | None = None,
        markup_percent: int = 0,
        idempotency_key: str | None = None,
    ) -> models.Price:
        call = calls.put_price(
            model, input_per_million_cents, output_per_million_cents, cached_input_per_million_cents, markup_percent
        )
        return await self._send(call, idempotency_key)

    async def send(self, call: Call[T], idempotency_key: str | None = None) -> T:
        """Send a prepared `calls.*` request, retried under `idempotency_key` (a new one if None)."""
        return await self._send(call, idempotency_key)

    async def get_price(self, model: str) -> models.PriceHistory:
        return await self._send(calls.get_price(model))

    async def list_prices(self) -> list[models.Price]:
        return await self._send(calls.list_prices())

    async def quote(
        self, model: str, *, input_tokens: int, max_output_tokens: int, cached_input_tokens: int = 0
    ) -> models.Quote:
        return await self._send(calls.quote(model, input_tokens, max_output_tokens, cached_input_tokens))

    async def quote_run(self, runs: Sequence[QuoteRunInput]) -> models.Quote:
        return await self._send(calls.quote_run(runs))

    # --- admin (admin key) and operations --------------------------------------------------------------

    async def create_tenant(self, tenant_id: str, *, idempotency_key: str | None = None) -> models.TenantCreated:
        return await self._send(calls.create_tenant(tenant_id), idempotency_key)

    async def create_key(
        self, tenant_id: str, kind: models.KeyKind = "secret", *, idempotency_key: str | None = None
    ) -> models.KeyCreated:
        return await self._send(calls.create_key(tenant_id, kind), idempotency_key)

    async def revoke_key(self, tenant_id: str, key_id: str, *, idempotency_key: str | None = None) -> None:
        await self._send(calls.revoke_key(tenant_id, key_id), idempotency_key)

    async def health(self) -> models.Health:
        return await self._send(calls.health())
