"""Typed results of the HTTP API, mirroring the v1 contract (API.md). Independent of the server's own models.

Response models ignore fields they do not know, so a newer server does not break an older SDK. Plan limits keep
unknown fields instead (`extra="allow"`): a plan read from the server and written back loses nothing."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Enforcement = Literal["hard", "soft", "none"]
Period = Literal["day", "week", "month", "none"]
ReservationStatus = Literal["pending", "committed", "released", "expired"]
KeyKind = Literal["secret", "publishable"]
TokenCount = Annotated[int, Field(strict=True, ge=0)]  # an int, never a float or a numeric string


class Model(BaseModel):
    model_config = ConfigDict(frozen=True)


class Line(Model):
    meter: str
    amount: int


class Counter(Model):
    """One meter of a user's balance: `remaining = max(0, quota + credits - used - reserved)`."""

    meter: str
    label: str
    period: Period
    period_start: datetime | None
    period_end: datetime | None
    enforcement: Enforcement
    quota: int
    credits: int
    used: int
    reserved: int
    remaining: int


class _Counters(Model):
    counters: list[Counter]

    def counter(self, meter: str) -> Counter:
        """The counter of one meter; KeyError if the plan has no such meter."""
        for counter in self.counters:
            if counter.meter == meter:
                return counter
        raise KeyError(meter)


class AccountCounters(_Counters):
    account_id: str


class Effective(Model):
    """What the user can really spend now on a meter: the least any hard-limited level has left."""

    remaining: int
    limited_by: str  # "user" or "account:<id>"


class Usage(_Counters):
    user_id: str
    plan_id: str
    accounts: list[AccountCounters] = []  # the accounts above the user, nearest first
    effective: dict[str, Effective] = {}


class AccountUsage(_Counters):
    account_id: str
    plan_id: str


class Account(Model):
    account_id: str
    name: str
    plan_id: str
    custom_limits: dict[str, dict[str, Any]]
    parent_id: str | None
    stripe_customer_id: str | None
    pool_shards: int = 1
    updated_at: datetime | None = None


FeatureValue = bool | int | str  # in this order, so `true` stays a boolean


class CanUse(Model):
    allowed: bool
    remaining: int


class MeterAllowance(Model):
    meter: str
    allowed: bool
    remaining: int


class CanUseLines(Model):
    allowed: bool
    meters: list[MeterAllowance]

    @model_validator(mode="before")
    @classmethod
    def _allowed_from_meters(cls, data: Any) -> Any:
        """The contract names only `meters`; `allowed` is then every meter's answer."""
        if isinstance(data, dict) and "allowed" not in data and isinstance(data.get("meters"), list):
            return {**data, "allowed": all(bool(m.get("allowed")) for m in data["meters"] if isinstance(m, dict))}
        return data


class ReservationInfo(Model):
    reservation_id: str
    status: ReservationStatus
    user_id: str
    lines: list[Line]  # held at creation plus increases
    expires_at: datetime
    created_at: datetime | None = None
    drawn: list[Line] = []  # running totals of draws
    held: list[Line] = []  # what is left of the hold


class DrawResult(Model):
    reservation_id: str
    status: ReservationStatus
    drawn: list[Line]
    held: list[Line]
    overage: list[Line] = []


class Step(Model):
    step_id: str
    at: datetime
    lines: list[Line]
    overage: list[Line] = []
    properties: dict[str, Any] = {}


class StepsPage(Model):
    reservation_id: str
    steps: list[Step]
    next_cursor: str | None = None


class CommitResult(Model):
    reservation_id: str
    status: ReservationStatus
    committed: list[Line]
    refunded: list[Line]
    overage: list[Line] = []


class ReleaseResult(Model):
    status: ReservationStatus
    refunded: list[Line]
    reservation_id: str | None = None


class EventRecorded(Model):
    event_id: str


class RefundRecorded(Model):
    refund_id: str


class CreditGrant(Model):
    grant_id: str


class LedgerEntry(Model):
    entry_id: str
    at: datetime
    kind: str  # reserve|commit|release|expire|event|refund|grant|grant_expire|quota_change|carryover
    meter: str
    period_start: datetime | None
    delta_used: int
    delta_reserved: int
    delta_credits: int
    delta_quota: int
    ref: str | None
    properties: dict[str, Any] | None = None  # what the write recorded about itself: model, pricing, estimated


class LedgerPage(Model):
    entries: list[LedgerEntry]
    next_cursor: str | None


class VerifyProblem(Model):
    user_id: str
    meter: str
    period_start: datetime | None
    message: str


class UsageReport(Model):
    """Usage per window and group from the lake. `status` is `running` (no rows yet) while Athena still works."""

    rows: list[dict[str, Any]] = []
    query_id: str | None = None
    status: Literal["succeeded", "running"] = "succeeded"


class VerifyResult(Model):
    ok: bool
    checked: int
    problems: list[VerifyProblem]


class Rollover(Model):
    max: int
    expires_after_periods: int = 1


class Limit(Model):
    """A plan's rule for one meter. Defaults are the server's, so a plan file may leave them out."""

    model_config = ConfigDict(frozen=True, extra="allow")

    label: str | None = None
    quota: int
    period: Period = "month"
    enforcement: Enforcement = "hard"
    alerts: list[int] = []  # percents of quota + credits that trigger a usage.threshold_crossed webhook
    rollover: Rollover | None = None  # unspent allowance carried into the next period as an expiring grant


class StripePlanSettings(Model):
    model_config = ConfigDict(frozen=True, extra="allow")

    meter_event_names: dict[str, str] = {}


class PlanSpec(Model):
    """What `PUT /v1/plans/{plan_id}` takes: also one entry of a `quotaflow plans apply` file."""

    model_config = ConfigDict(frozen=True, extra="allow")

    name: str
    limits: dict[str, Limit]
    stripe: StripePlanSettings = StripePlanSettings()
    features: dict[str, FeatureValue] = {}  # `{"gpt-4o": true, "max_context_tokens": 128000}`
    period_anchoring: Literal["calendar", "subscription"] = "calendar"  # where periods start by default


class Plan(PlanSpec):
    plan_id: str
    version: int

    def spec(self) -> PlanSpec:
        return PlanSpec.model_validate(self.model_dump(exclude={"plan_id", "version"}))


class PlanList(Model):
    plans: list[Plan]


class Subscription(Model):
    user_id: str
    plan_id: str
    custom_limits: dict[str, dict[str, Any]]
    custom_features: dict[str, FeatureValue] = {}
    stripe_customer_id: str | None
    account_id: str | None = None
    period_anchor: datetime | None = None  # day/week/month periods start here plus whole periods
    updated_at: datetime | None = None


class Entitlements(Model):
    """A user's features: the plan's, with the subscription's `custom_features` on top."""

    user_id: str
    features: dict[str, FeatureValue]


class FeatureAllowance(Model):
    allowed: bool


class TenantSettings(Model):
    tenant_id: str
    default_plan_id: str | None


class TenantCreated(Model):
    tenant_id: str
    secret_key: str = Field(repr=False)
    publishable_key: str = Field(repr=False)


class KeyCreated(Model):
    key: str = Field(repr=False)
    key_id: str
    kind: KeyKind | None = None


class UserToken(Model):
    token: str = Field(repr=False)
    expires_at: datetime


class Health(Model):
    ok: bool


# --- prices and quotes ---------------------------------------------------------------------------------


class Price(Model):
    """A model's price as of `version` (each change makes a new version; history keeps the old ones). Each class in
    integer cents per million tokens, or where that is not whole, in millicents (`*_per_million_millicents`). A class
    without a price costs as input (cached input, cache writes) or as a 5-minute cache write (1-hour cache writes)."""

    model: str
    version: int
    input_per_million_cents: int | None = None
    input_per_million_millicents: int | None = None
    output_per_million_cents: int | None = None
    output_per_million_millicents: int | None = None
    cached_input_per_million_cents: int | None = None
    cached_input_per_million_millicents: int | None = None
    cache_write_per_million_cents: int | None = None
    cache_write_per_million_millicents: int | None = None
    cache_write_1h_per_million_cents: int | None = None
    cache_write_1h_per_million_millicents: int | None = None
    markup_percent: int
    updated_at: datetime


class PriceImport(Model):
    """What `POST /v1/prices/import` did: new or changed prices, prices already current, and entries it skipped."""

    imported: int
    unchanged: int
    skipped: list[dict[str, str]]  # {"model", "reason"}


class PriceHistory(Model):
    price: Price  # the current version
    history: list[Price]  # its versions, newest first, the current one included (the server sends up to 100)


class PriceList(Model):
    prices: list[Price]


class QuoteRun(Model):
    """One model call to quote: `input_tokens` not served from a cache, `cached_input_tokens` served from one,
    `max_output_tokens` the output cap (or the known output, to price a finished call)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model: str
    input_tokens: TokenCount
    max_output_tokens: TokenCount
    cached_input_tokens: TokenCount = 0


class QuoteLine(Model):
    """The most one call may cost: `tokens` in all, `cost_cents` rounded up, at the price's `price_version`."""

    model: str
    tokens: int
    cost_cents: int
    price_version: int


class Quote(QuoteLine):
    """A quote of one call, or of several (`quote_run`): then `model` is "*", the totals are sums, `price_version` is
    0 and `lines` holds each call's quote in order."""

    lines: list[QuoteLine] | None = None
