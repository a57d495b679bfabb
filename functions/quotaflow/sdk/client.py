"""`Client`: the blocking client. Each method builds a `Call` (calls.py) and sends it through `_send`, which
retries what may be retried with the same Idempotency-Key."""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any, Literal, TypeVar

import httpx

from quotaflow.sdk import calls, models
from quotaflow.sdk.calls import Amounts, Call, LimitInput, Lines, QuoteRunInput
from quotaflow.sdk.errors import PageLimitReached
from quotaflow.sdk.reservation import Reservation
from quotaflow.sdk.retry import Outcome, RetryPolicy
from quotaflow.sdk.run import Run
from quotaflow.sdk.transport import (
    TIMEOUT_SECONDS_DEFAULT,
    Connection,
    build_request,
    new_idempotency_key,
    read_result,
)

T = TypeVar("T")
LEDGER_PAGE_SIZE_DEFAULT = 200  # the server's maximum page
LEDGER_PAGES_MAX_DEFAULT = 1000
TTL_SECONDS_DEFAULT = 900  # the server's default hold; a run's heartbeat extends by the run's own ttl
REPORT_POLLS_MAX = 60  # a usage query Athena is still running: polled once a second for up to a minute
REPORT_POLL_INTERVAL_S = 1.0


class Client:
    """quotaflow over HTTP. `api_key` and `base_url` default to QUOTAFLOW_API_KEY and QUOTAFLOW_URL.

    A tenant's secret key reaches every tenant route; the admin key only `create_tenant`, `create_key` and
    `revoke_key`. Errors are raised as `QuotaflowError` subclasses named after the API's error codes."""

    def __init__(
        self,
        api_key: str | None = None,
        base_url: str | None = None,
        *,
        timeout_seconds: float = TIMEOUT_SECONDS_DEFAULT,
        retry: RetryPolicy | None = None,
        http_client: httpx.Client | None = None,
    ) -> None:
        self.connection = Connection.resolve(api_key, base_url)
        self.retry = retry or RetryPolicy()
        self._http = http_client or httpx.Client(timeout=timeout_seconds)
        self._owns_http = http_client is None

    def close(self) -> None:
        """Close the connection pool (not an `http_client` handed in)."""
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()

    def _send(self, call: Call[T], idempotency_key: str | None = None) -> T:
        request = build_request(self.connection, call, idempotency_key or new_idempotency_key())
        attempt = 0
        outcome = self._attempt(request)
        while (delay_seconds := self.retry.delay_seconds(attempt, outcome)) is not None:
            time.sleep(delay_seconds)
            attempt += 1
            outcome = self._attempt(request)
        return read_result(call, outcome)

    def _attempt(self, request: httpx.Request) -> Outcome:
        try:
            return self._http.send(request)
        except httpx.TransportError as error:
            return error

    # --- usage -----------------------------------------------------------------------------------------

    def usage(self, user_id: str, *, user_token: str | None = None) -> models.Usage:
        """The user's counters. `user_token` (from `user_token()`) goes with a publishable key."""
        return self._send(calls.usage(user_id, user_token))

    def can_use(self, user_id: str, meter: str, amount: int, *, user_token: str | None = None) -> models.CanUse:
        """Would `amount` fit? Consumes nothing."""
        return self._send(calls.can_use(user_id, meter, amount, user_token))

    def entitlements(self, user_id: str, *, user_token: str | None = None) -> models.Entitlements:
        """The user's features (plan merged with `custom_features`); a publishable key needs `user_token`."""
        return self._send(calls.entitlements(user_id, user_token))

    def can_use_feature(self, user_id: str, feature: str, *, user_token: str | None = None) -> models.FeatureAllowance:
        """Is `feature` on for the user? A missing, false, 0 or empty feature is not allowed."""
        return self._send(calls.can_use_feature(user_id, feature, user_token))

    def can_use_lines(self, user_id: str, lines: Amounts, *, user_token: str | None = None) -> models.CanUseLines:
        return self._send(calls.can_use_lines(user_id, lines, user_token))

    # --- reservations ----------------------------------------------------------------------------------

    def reserve(
        self, user_id: str, lines: Amounts, *, ttl_seconds: int | None = None, idempotency_key: str | None = None
    ) -> Reservation:
        """Hold `lines` (`{"tokens": 4000}`) before the work; raises InsufficientQuota and holds nothing if any
        meter lacks room. Use it in a `with` block: leaving it uncommitted releases the hold."""
        key = idempotency_key or new_idempotency_key()
        info = self._send(calls.reserve(user_id, lines, ttl_seconds), key)
        return Reservation(self._send, info, key)

    def run(
        self,
        user_id: str,
        lines: Amounts,
        *,
        ttl_seconds: int = TTL_SECONDS_DEFAULT,
        heartbeat_seconds: float | None = None,
        idempotency_key: str | None = None,
    ) -> Run:
        """Hold a budget for a whole agent run: `with qf.run("u1", {"tokens": 50_000}) as run: run.draw(...)`.
        Leaving the block finishes the run (the rest comes back); an exception releases it. With
        `heartbeat_seconds`, a background thread extends the hold by `ttl_seconds` that often."""
        key = idempotency_key or new_idempotency_key()
        info = self._send(calls.reserve(user_id, lines, ttl_seconds), key)
        return Run(self._send, info, key, ttl_seconds=ttl_seconds, heartbeat_seconds=heartbeat_seconds)

    def commit(
        self, reservation_id: str, lines: Lines | None = None, *, idempotency_key: str | None = None
    ) -> models.CommitResult:
        return self._send(calls.commit(reservation_id, lines), idempotency_key)

    def release(self, reservation_id: str, *, idempotency_key: str | None = None) -> models.ReleaseResult:
        return self._send(calls.release(reservation_id), idempotency_key)

    def get_reservation(self, reservation_id: str) -> models.ReservationInfo:
        return self._send(calls.get_reservation(reservation_id))

    def get_steps(self, reservation_id: str, *, limit: int = 100, cursor: str | None = None) -> models.StepsPage:
        """The draws on a reservation, oldest first (a page; follow `next_cursor`)."""
        return self._send(calls.steps(reservation_id, limit, cursor))

    # --- direct usage, refunds, credits ----------------------------------------------------------------

    def track(
        self,
        user_id: str,
        lines: Lines,
        *,
        properties: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> models.EventRecorded:
        """Record usage that already happened (no reservation). Hard meters without room: InsufficientQuota.
        A money meter may take a `ModelUsage` (`{"cents": from_openai(response.usage, "gpt-4o")}`): the server prices
        it with the model's current price and keeps the price version in the ledger."""
        return self._send(calls.track(user_id, lines, properties), idempotency_key)

    def refund(
        self, user_id: str, lines: Amounts, *, reason: str | None = None, idempotency_key: str | None = None
    ) -> models.RefundRecorded:
        return self._send(calls.refund(user_id, lines, reason), idempotency_key)

    def grant_credits(
        self, user_id: str, meter: str, amount: int, *, idempotency_key: str | None = None
    ) -> models.CreditGrant:
        return self._send(calls.grant_credits(user_id, meter, amount), idempotency_key)

    def user_token(
        self, user_id: str, *, ttl_seconds: int = 3600, idempotency_key: str | None = None
    ) -> models.UserToken:
        """A signed token for the browser: with the publishable key it reads this user's usage only."""
        return self._send(calls.user_token(user_id, ttl_seconds), idempotency_key)

    # --- ledger and verify -----------------------------------------------------------------------------

    def ledger(
        self, user_id: str, *, limit: int = LEDGER_PAGE_SIZE_DEFAULT, cursor: str | None = None
    ) -> models.LedgerPage:
        """One page of the user's ledger, newest first."""
        return self._send(calls.ledger(user_id, limit, cursor))

    def ledger_entries(
        self,
        user_id: str,
        *,
        page_size: int = LEDGER_PAGE_SIZE_DEFAULT,
        pages_max: int = LEDGER_PAGES_MAX_DEFAULT,
    ) -> Iterator[models.LedgerEntry]:
        """Every ledger entry, newest first, page by page. Past `pages_max` pages: PageLimitReached."""
        cursor: str | None = None
        for _ in range(pages_max):
            page = self.ledger(user_id, limit=page_size, cursor=cursor)
            yield from page.entries
            if page.next_cursor is None:
                return
            cursor = page.next_cursor
        raise PageLimitReached(f"stopped after {pages_max} ledger pages", next_cursor=cursor or "")

    def usage_report(
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
        """Usage of `meter` from `start` to `end` per window and group (POST /v1/analytics/usage). A query that
        Athena is still running is polled once a second, at most `polls_max` times; then its `status` is `running`."""
        report = self._send(calls.usage_report(meter, start, end, window, group_by, filters, limit))
        for _ in range(polls_max):
            if report.status != "running" or report.query_id is None:
                break
            time.sleep(REPORT_POLL_INTERVAL_S)
            report = self._send(calls.analytics_query(report.query_id))
        return report

    def verify(self, user_id: str | None = None) -> models.VerifyResult:
        """Check that counters reconcile to the ledger: one user, or the whole tenant."""
        return self._send(calls.verify(user_id))

    # --- plans, subscriptions, settings ----------------------------------------------------------------

    def put_plan(
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
        """Create or replace a plan; a quota change reaches current counters at once."""
        return self._send(
            calls.put_plan(plan_id, calls.plan_spec(name, limits, stripe, features, period_anchoring)), idempotency_key
        )

    def get_plan(self, plan_id: str) -> models.Plan:
        return self._send(calls.get_plan(plan_id))

    def list_plans(self) -> list[models.Plan]:
        return self._send(calls.list_plans())

    def upsert_subscription(
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
        return self._send(call, idempotency_key)

    # --- accounts ------------------------------------------------------------------------------------------

    def put_account(
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
        return self._send(call, idempotency_key)

    def get_account(self, account_id: str) -> models.Account:
        return self._send(calls.get_account(account_id))

    def account_usage(self, account_id: str) -> models.AccountUsage:
        return self._send(calls.account_usage(account_id))

    def grant_account_credits(
        self, account_id: str, meter: str, amount: int, *, idempotency_key: str | None = None
    ) -> models.CreditGrant:
        return self._send(calls.grant_account_credits(account_id, meter, amount), idempotency_key)

    def account_ledger(self, account_id: str, *, limit: int = 50, cursor: str | None = None) -> models.LedgerPage:
        return self._send(calls.account_ledger(account_id, limit, cursor))

    def get_subscription(self, user_id: str) -> models.Subscription:
        return self._send(calls.get_subscription(user_id))

    def get_settings(self) -> models.TenantSettings:
        return self._send(calls.get_settings())

    def put_settings(self, *, default_plan_id: str | None, idempotency_key: str | None = None) -> models.TenantSettings:
        return self._send(calls.put_settings(default_plan_id), idempotency_key)

    # --- prices and quotes ----------------------------------------------------------------------------

    def put_price(
        self,
        model: str,
        *,
        input_per_million_cents: int,
        output_per_million_cents: int,
        cached_input_per_million_cents: int | None = None,
        markup_percent: int = 0,
        idempotency_key: str | None = None,
    ) -> models.Price:
        """Set a model's price (integer cents per million tokens) and markup: a new version; usage already priced
        keeps the version it was priced with. Without a cached-input price, cached input costs as much as input."""
        call = calls.put_price(
            model, input_per_million_cents, output_per_million_cents, cached_input_per_million_cents, markup_percent
        )
        return self._send(call, idempotency_key)

    def import_prices(
        self, catalog_json: bytes, *, markup_percent: int = 0, idempotency_key: str | None = None
    ) -> models.PriceImport:
        """Import a chunk (under 64 KiB) of a LiteLLM model cost map, its JSON text as is."""
        return self._send(calls.import_prices(catalog_json, markup_percent), idempotency_key)

    def send(self, call: Call[T], idempotency_key: str | None = None) -> T:
        """Send a prepared `calls.*` request, retried under `idempotency_key` (a new one if None)."""
        return self._send(call, idempotency_key)

    def get_price(self, model: str) -> models.PriceHistory:
        """The model's current price and every version before it, newest first. No price: NotFound."""
        return self._send(calls.get_price(model))

    def list_prices(self) -> list[models.Price]:
        return self._send(calls.list_prices())

    def quote(
        self, model: str, *, input_tokens: int, max_output_tokens: int, cached_input_tokens: int = 0
    ) -> models.Quote:
        """The most a call may cost, before making it: `input_tokens` (not cached) plus the output cap, at the model's
        current price, in cents rounded up. Reserve `quote.cost_cents` on a `cents` meter. No price: NotFound."""
        return self._send(calls.quote(model, input_tokens, max_output_tokens, cached_input_tokens))

    def quote_run(self, runs: Sequence[QuoteRunInput]) -> models.Quote:
        """Several calls, perhaps of several models, quoted at once: totals, and each call's quote in `lines`."""
        return self._send(calls.quote_run(runs))

    # --- admin (admin key) and operations --------------------------------------------------------------

    def create_tenant(self, tenant_id: str, *, idempotency_key: str | None = None) -> models.TenantCreated:
        """A tenant and its first keys, shown once."""
        return self._send(calls.create_tenant(tenant_id), idempotency_key)

    def create_key(
        self, tenant_id: str, kind: models.KeyKind = "secret", *, idempotency_key: str | None = None
    ) -> models.KeyCreated:
        return self._send(calls.create_key(tenant_id, kind), idempotency_key)

    def revoke_key(self, tenant_id: str, key_id: str, *, idempotency_key: str | None = None) -> None:
        self._send(calls.revoke_key(tenant_id, key_id), idempotency_key)

    def health(self) -> models.Health:
        return self._send(calls.health())
