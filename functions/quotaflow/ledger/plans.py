"""Plans, limits and subscriptions, and the one rule that merges them into a user's effective limits."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import ConfigDict, Field, StringConstraints

from quotaflow.ledger.amounts import Amount, EntityId, MeterKey
from quotaflow.ledger.model import Model
from quotaflow.ledger.periods import PeriodKind

Enforcement = Literal["hard", "soft", "none"]
Label = Annotated[str, StringConstraints(min_length=1, max_length=128)]
AlertThreshold = Annotated[int, Field(strict=True, ge=1, le=1000)]  # percent of quota + credits
ALERTS_PER_LIMIT_MAX = 10
METERS_PER_PLAN_MAX = 40  # keeps a user's limit change (subscription + counters + entries) in one transaction


class Limit(Model):
    """A plan's rule for one meter."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    label: Label | None = None
    quota: Amount
    period: PeriodKind = "month"
    enforcement: Enforcement = "hard"
    alerts: list[AlertThreshold] = Field(default=[], max_length=ALERTS_PER_LIMIT_MAX)


class LimitOverride(Model):
    """A subscription's change to one meter's limit; a meter the plan lacks needs at least a quota."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    label: Label | None = None
    quota: Amount | None = None
    period: PeriodKind | None = None
    enforcement: Enforcement | None = None
    alerts: list[AlertThreshold] | None = Field(default=None, max_length=ALERTS_PER_LIMIT_MAX)


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
    version: int = 1


class Subscription(Model):
    """A holder's plan: a user's (`account_id`: the account it belongs to), or an account's (`account_id`: its
    parent, `name` its display name)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    user_id: str  # the holder id (validated at the edge)
    plan_id: EntityId
    custom_limits: dict[MeterKey, LimitOverride] = Field(default={}, max_length=METERS_PER_PLAN_MAX)
    stripe_customer_id: Annotated[str, StringConstraints(min_length=1, max_length=255)] | None = None
    account_id: EntityId | None = None
    name: Label | None = None


class EffectiveLimit(Model):
    """What a user's counter for one meter obeys: the plan's limit with the subscription's overrides."""

    model_config = ConfigDict(frozen=True)

    meter: str
    label: str
    quota: int
    period: PeriodKind
    enforcement: Enforcement
    alerts: tuple[int, ...] = ()
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
        )
    return merged
