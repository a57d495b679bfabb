"""Response bodies of the use cases, exactly as the API returns (and idempotency replays) them."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from quotaflow.ledger.amounts import Line
from quotaflow.ledger.model import Model
from quotaflow.ledger.plans import Enforcement
from quotaflow.ledger.reservations import ReservationStatus


class ReservationView(Model):
    reservation_id: str
    status: ReservationStatus
    user_id: str
    lines: list[Line]  # held at creation plus increases
    drawn: list[Line]  # running totals of draws
    held: list[Line]  # what is left of the hold
    created_at: str
    expires_at: str


class DrawView(Model):
    reservation_id: str
    status: ReservationStatus
    drawn: list[Line]
    held: list[Line]
    overage: list[Line]  # what this draw took beyond the hold, from the balance


class StepView(Model):
    """One draw on a reservation, as its steps are listed."""

    step_id: str
    at: str
    lines: list[Line]
    overage: list[Line]
    properties: dict[str, Any]


class StepsView(Model):
    reservation_id: str
    steps: list[StepView]
    next_cursor: str | None


class CommitView(Model):
    reservation_id: str
    status: ReservationStatus
    committed: list[Line]
    refunded: list[Line]
    overage: list[Line]


class ReleaseView(Model):
    reservation_id: str
    status: ReservationStatus
    refunded: list[Line]


class CounterView(Model):
    meter: str
    label: str
    period: str
    period_start: str | None
    period_end: str | None
    enforcement: Enforcement
    quota: int
    credits: int
    used: int
    reserved: int
    remaining: int


class AccountCountersView(Model):
    account_id: str
    counters: list[CounterView]


class EffectiveView(Model):
    """What the user can really spend now on a meter: the least any hard-limited level has left."""

    remaining: int
    limited_by: str  # "user" or "account:<id>"


class UsageView(Model):
    user_id: str
    plan_id: str
    counters: list[CounterView]
    accounts: list[AccountCountersView] = Field(default_factory=list)  # the accounts above the user, nearest first
    effective: dict[str, EffectiveView] = Field(default_factory=dict)


class AccountUsageView(Model):
    account_id: str
    plan_id: str
    counters: list[CounterView]


class CanUseView(Model):
    allowed: bool
    remaining: int


class MeterAllowance(Model):
    meter: str
    allowed: bool
    remaining: int


class CanUseLinesView(Model):
    allowed: bool
    meters: list[MeterAllowance]


class EventView(Model):
    event_id: str


class RefundView(Model):
    refund_id: str


class GrantView(Model):
    grant_id: str


class EntryView(Model):
    entry_id: str
    at: str
    kind: str
    meter: str
    period_start: str | None
    delta_used: int
    delta_reserved: int
    delta_credits: int
    delta_quota: int
    ref: str | None
    properties: dict[str, Any] | None = None


class LedgerView(Model):
    entries: list[EntryView]
    next_cursor: str | None


class ProblemView(Model):
    user_id: str
    meter: str
    period_start: str | None
    message: str


class VerifyView(Model):
    ok: bool
    checked: int
    problems: list[ProblemView]


class SubscriptionView(Model):
    user_id: str
    plan_id: str
    custom_limits: dict[str, Any]
    custom_features: dict[str, bool | int | str] = Field(default_factory=dict)
    stripe_customer_id: str | None
    account_id: str | None = None
    period_anchor: str | None = None  # set on the subscription; None: the plan's default anchoring
    updated_at: str


class AccountView(Model):
    account_id: str
    name: str
    plan_id: str
    custom_limits: dict[str, Any]
    parent_id: str | None
    stripe_customer_id: str | None
    pool_shards: int = 1
    updated_at: str


class EntitlementsView(Model):
    user_id: str
    features: dict[str, bool | int | str]


class FeatureAllowanceView(Model):
    allowed: bool


class SettingsView(Model):
    tenant_id: str
    default_plan_id: str | None
    allowed_origins: list[str] = Field(default_factory=list)  # browser origins the widget may call usage from (CORS)


class TenantCreatedView(Model):
    tenant_id: str
    secret_key: str
    publishable_key: str


class KeyCreatedView(Model):
    key: str
    key_id: str
    kind: str
