"""Response bodies of the use cases, exactly as the API returns (and idempotency replays) them."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from quotaflow.ledger.amounts import Line
from quotaflow.ledger.plans import Enforcement
from quotaflow.ledger.reservations import ReservationStatus


class ReservationView(BaseModel):
    reservation_id: str
    status: ReservationStatus
    user_id: str
    lines: list[Line]
    created_at: str
    expires_at: str


class CommitView(BaseModel):
    reservation_id: str
    status: ReservationStatus
    committed: list[Line]
    refunded: list[Line]
    overage: list[Line]


class ReleaseView(BaseModel):
    reservation_id: str
    status: ReservationStatus
    refunded: list[Line]


class CounterView(BaseModel):
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


class UsageView(BaseModel):
    user_id: str
    plan_id: str
    counters: list[CounterView]


class CanUseView(BaseModel):
    allowed: bool
    remaining: int


class MeterAllowance(BaseModel):
    meter: str
    allowed: bool
    remaining: int


class CanUseLinesView(BaseModel):
    allowed: bool
    meters: list[MeterAllowance]


class EventView(BaseModel):
    event_id: str


class RefundView(BaseModel):
    refund_id: str


class GrantView(BaseModel):
    grant_id: str


class EntryView(BaseModel):
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


class LedgerView(BaseModel):
    entries: list[EntryView]
    next_cursor: str | None


class ProblemView(BaseModel):
    user_id: str
    meter: str
    period_start: str | None
    message: str


class VerifyView(BaseModel):
    ok: bool
    checked: int
    problems: list[ProblemView]


class SubscriptionView(BaseModel):
    user_id: str
    plan_id: str
    custom_limits: dict[str, Any]
    custom_features: dict[str, bool | int | str] = {}
    stripe_customer_id: str | None
    period_anchor: str | None = None  # set on the subscription; None: the plan's default anchoring
    updated_at: str


class EntitlementsView(BaseModel):
    user_id: str
    features: dict[str, bool | int | str]


class FeatureAllowanceView(BaseModel):
    allowed: bool


class SettingsView(BaseModel):
    tenant_id: str
    default_plan_id: str | None
    allowed_origins: list[str] = []  # browser origins the widget may call usage from (CORS)


class TenantCreatedView(BaseModel):
    tenant_id: str
    secret_key: str
    publishable_key: str


class KeyCreatedView(BaseModel):
    key: str
    key_id: str
    kind: str
