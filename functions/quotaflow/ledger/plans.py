"""Plans, limits and subscriptions, and the one rule that merges them into a user's effective limits."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

from quotaflow.ledger.amounts import MAX_AMOUNT, Amount, EntityId, MeterKey
from quotaflow.ledger.model import Model
from quotaflow.ledger.periods import Anchoring, PeriodKind, whole_seconds

Enforcement = Literal["hard", "soft", "none"]
PeriodAnchoring = Literal[
    "calendar", "subscription"
]  # a plan's default: UTC calendar, or from the subscription's start


def written_time(value: object) -> object:
    """A time in a body is ISO 8601 text (an integer is not read as epoch seconds); stored datetimes pass."""
    if not isinstance(value, str | datetime):
        raise ValueError("expected an ISO 8601 time such as 2026-11-15T09:30:00Z")
    return value


AnchorTime = Annotated[AwareDatetime, BeforeValidator(written_time), AfterValidator(whole_seconds)]
Label = Annotated[str, StringConstraints(min_length=1, max_length=128)]
AlertThreshold = Annotated[int, Field(strict=True, ge=1, le=1000)]  # percent of quota + credits
ALERTS_PER_LIMIT_MAX = 10
METERS_PER_PLAN_MAX = 40  # keeps a user's limit change (subscription + counters + entries) in one transaction
FEATURES_PER_PLAN_MAX = 100
FEATURE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$"  # `gpt-4o`, `max_context_tokens`

FeatureKey = Annotated[str, StringConstraints(pattern=FEATURE_PATTERN)]
# Exact JSON types: `true` stays a boolean, `1` an integer; floats are refused like every amount.
FeatureValue = (
    Annotated[bool, Field(strict=True)]
    | Annotated[int, Field(strict=True, ge=-MAX_AMOUNT, le=MAX_AMOUNT)]
    | Annotated[str, StringConstraints(max_length=256)]
)
Features = Annotated[dict[FeatureKey, FeatureValue], Field(max_length=FEATURES_PER_PLAN_MAX)]


ROLLOVER_PERIODS_MAX = 12
POOL_SHARDS_MAX = 32  # shard items per counter of one account: a rebalance reads them all in one BatchGetItem


class Rollover(Model):
    """Unspent allowance at a period's end becomes a grant of the next period: at most `max`, expiring at the
    end of the `expires_after_periods`-th period it is usable in."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max: Amount
    expires_after_periods: Annotated[int, Field(strict=True, ge=1, le=ROLLOVER_PERIODS_MAX)] = 1


class Limit(Model):
    """A plan's rule for one meter."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    label: Label | None = None
    quota: Amount
    period: PeriodKind = "month"
    enforcement: Enforcement = "hard"
    alerts: list[AlertThreshold] = Field(default=[], max_length=ALERTS_PER_LIMIT_MAX)
    rollover: Rollover | None = None

    @model_validator(mode="after")
    def _rollover_needs_a_period(self) -> Limit:
        if self.rollover is not None and self.period == "none":
            raise ValueError("rollover needs a day, week or month period")
        return self


class LimitOverride(Model):
    """A subscription's change to one meter's limit; a meter the plan lacks needs at least a quota."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    label: Label | None = None
    quota: Amount | None = None
    period: PeriodKind | None = None
    enforcement: Enforcement | None = None
    alerts: list[AlertThreshold] | None = Field(default=None, max_length=ALERTS_PER_LIMIT_MAX)
    rollover: Rollover | None = None


class StripePlanSettings(Model):
    model_config = ConfigDict(extra="forbid", frozen=True)

    meter_event_names: dict[MeterKey, Annotated[str, StringConstraints(min_length=1, max_length=100)]] = Field(
        default_factory=dict
    )


class Plan(Model):
    model_config = ConfigDict(extra="forbid", frozen=True)

    plan_id: EntityId
    name: Label
    limits: dict[MeterKey, Limit] = Field(max_length=METERS_PER_PLAN_MAX)
    stripe: StripePlanSettings = Field(default_factory=StripePlanSettings)
    features: Features = Field(default_factory=dict)
    period_anchoring: PeriodAnchoring = "calendar"
    version: int = 1


class Subscription(Model):
    """A holder's plan: a user's (`account_id`: the account it belongs to), or an account's (`account_id`: its
    parent, `name` its display name)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    user_id: str  # the holder id (validated at the edge)
    plan_id: EntityId
    custom_limits: dict[MeterKey, LimitOverride] = Field(default={}, max_length=METERS_PER_PLAN_MAX)
    custom_features: Features = Field(default_factory=dict)
    stripe_customer_id: Annotated[str, StringConstraints(min_length=1, max_length=255)] | None = None
    account_id: EntityId | None = None
    name: Label | None = None
    period_anchor: AnchorTime | None = None  # where day/week/month periods start; None: the plan's default
    pool_shards: Annotated[int, Field(ge=1, le=POOL_SHARDS_MAX)] | None = None  # an account's; None: 1 (unsharded)


class EffectiveLimit(Model):
    """What a user's counter for one meter obeys: the plan's limit with the subscription's overrides."""

    model_config = ConfigDict(frozen=True)

    meter: str
    label: str
    quota: int
    period: PeriodKind
    enforcement: Enforcement
    alerts: tuple[int, ...] = ()
    rollover: Rollover | None = None  # ignored on `none` periods: they never end
    retired: bool = False  # dropped from the plan but still holding reservations: they may end, nothing new starts


def effective_limits(plan: Plan, custom_limits: dict[str, LimitOverride]) -> dict[str, EffectiveLimit]:
    """Merge a plan with a subscription's overrides. A custom meter without a quota is an input error upstream."""
    merged: dict[str, EffectiveLimit] = {}
    for meter in sorted(set(plan.limits) | set(custom_limits)):
        base = plan.limits.get(meter)
        override = custom_limits.get(meter, LimitOverride())
        quota = override.quota if override.quota is not None else (base.quota if base else None)
        if quota is None:
            raise ValueError(f"custom limit for {meter!r} needs a quota: the plan has no such meter")
        merged[meter] = EffectiveLimit(
            meter=meter,
            label=override.label or (base.label if base else None) or meter,
            quota=quota,
            period=override.period or (base.period if base else "none"),
            enforcement=override.enforcement or (base.enforcement if base else "hard"),
            alerts=tuple(
                sorted(set(override.alerts if override.alerts is not None else (base.alerts if base else [])))
            ),
            rollover=override.rollover or (base.rollover if base else None),
        )
    return merged


def effective_features(plan: Plan, custom_features: dict[str, bool | int | str]) -> dict[str, bool | int | str]:
    """A user's entitlements: the plan's features, each override replacing the plan's value or adding one."""
    return dict(sorted({**plan.features, **custom_features}.items()))


def feature_allowed(value: bool | int | str | None) -> bool:
    """A feature is usable unless it is missing, `false`, `0` or the empty string."""
    return value is not None and value is not False and value != 0 and value != ""


def effective_anchoring(
    plan: Plan, subscription: Subscription, started_at: datetime, previous: Anchoring | None, now: datetime
) -> Anchoring:
    """Where the holder's periods start: its own `period_anchor`, else the plan's default (the UTC calendar, or
    the moment the holder subscribed). A change of anchor (not the first one) cuts the running period at `now`."""
    if subscription.period_anchor is not None:
        anchor = Anchoring(subscription.period_anchor)
    elif plan.period_anchoring == "subscription":
        anchor = Anchoring(started_at)
    else:
        anchor = Anchoring()
    if previous is None:
        return anchor
    if previous.anchor == anchor.anchor:
        return previous
    return Anchoring(anchor.anchor, since=now)
