"""Request bodies: validated at the edge, strictly. Unknown fields are rejected (400 naming the field) so a
typo such as `ttl_second` is never silently ignored."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

from quotaflow.ledger.amounts import Amount, EntityId, Line, Lines, MeterKey, unique_meters
from quotaflow.ledger.plans import Label, Limit, LimitOverride, StripePlanSettings
from quotaflow.ledger.reservations import TTL_SECONDS_DEFAULT, TTL_SECONDS_MAX

PROPERTIES_MAX = 32
USER_TOKEN_TTL_MAX = 86_400

PropertyKey = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.:-]{1,64}$")]
PropertyValue = Annotated[str, StringConstraints(max_length=256)] | Amount | bool | None


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TenantCreate(Body):
    tenant_id: EntityId


class KeyCreate(Body):
    kind: Literal["secret", "publishable"]


class PlanBody(Body):
    name: Label
    limits: dict[MeterKey, Limit] = Field(max_length=40)
    stripe: StripePlanSettings = StripePlanSettings()


class SubscriptionBody(Body):
    plan_id: EntityId
    custom_limits: dict[MeterKey, LimitOverride] = Field(default={}, max_length=40)
    stripe_customer_id: Annotated[str, StringConstraints(min_length=1, max_length=255)] | None = None


class SettingsBody(Body):
    default_plan_id: EntityId | None = None


class CanUseBody(Body):
    """Either one meter and amount, or lines."""

    meter: MeterKey | None = None
    amount: Amount | None = None
    lines: list[Line] | None = Field(default=None, min_length=1, max_length=20)

    @model_validator(mode="after")
    def _one_form(self) -> CanUseBody:
        single = self.meter is not None or self.amount is not None
        if single == (self.lines is not None):
            raise ValueError("give either meter and amount, or lines")
        if single and (self.meter is None or self.amount is None):
            raise ValueError("meter and amount go together")
        return self

    _unique = field_validator("lines")(lambda lines: unique_meters(lines) if lines else lines)


class ReserveBody(Lines):
    user_id: EntityId
    ttl_seconds: Annotated[int, Field(strict=True, ge=1, le=TTL_SECONDS_MAX)] = TTL_SECONDS_DEFAULT


class CommitBody(Body):
    lines: list[Line] = Field(default=[], max_length=20)

    _unique = field_validator("lines")(unique_meters)


class EventBody(Lines):
    user_id: EntityId
    properties: dict[PropertyKey, PropertyValue] = Field(default={}, max_length=PROPERTIES_MAX)


class RefundBody(Lines):
    user_id: EntityId
    reason: Annotated[str, StringConstraints(max_length=500)] | None = None


class CreditsBody(Body):
    meter: MeterKey
    amount: Amount
    expires_at: None = Field(default=None, description="Expiring grants are not supported yet: null only.")


class VerifyBody(Body):
    user_id: EntityId | None = None


class UserTokenBody(Body):
    user_id: EntityId
    ttl_seconds: Annotated[int, Field(strict=True, ge=1, le=USER_TOKEN_TTL_MAX)] = 3600


class UserTokenView(BaseModel):
    token: str
    expires_at: str
