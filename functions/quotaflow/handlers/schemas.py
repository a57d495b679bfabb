"""Request bodies: validated at the edge, strictly. Unknown fields are rejected (400 naming the field) so a
typo such as `ttl_second` is never silently ignored."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import (
    AwareDatetime,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from quotaflow.ledger.amounts import LINES_MAX, Amount, EntityId, Line, Lines, MeterKey, unique_meters
from quotaflow.ledger.model import Model
from quotaflow.ledger.plans import (
    POOL_SHARDS_MAX,
    AnchorTime,
    FeatureKey,
    Features,
    Label,
    Limit,
    LimitOverride,
    PeriodAnchoring,
    StripePlanSettings,
    written_time,
)
from quotaflow.ledger.prices import ModelName
from quotaflow.ledger.reservations import TTL_SECONDS_DEFAULT, TTL_SECONDS_MAX
from quotaflow.services.pricing import PricedLine

PROPERTIES_MAX = 32
USER_TOKEN_TTL_MAX = 86_400

PropertyKey = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.:-]{1,64}$")]
PropertyValue = Annotated[str, StringConstraints(max_length=256)] | Amount | bool | None


class Body(Model):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TenantCreate(Body):
    tenant_id: EntityId


class KeyCreate(Body):
    kind: Literal["secret", "publishable"]


class PlanBody(Body):
    name: Label
    limits: dict[MeterKey, Limit] = Field(max_length=40)
    stripe: StripePlanSettings = Field(default_factory=StripePlanSettings)
    features: Features = Field(default_factory=dict)
    period_anchoring: PeriodAnchoring = "calendar"


class SubscriptionBody(Body):
    plan_id: EntityId
    custom_limits: dict[MeterKey, LimitOverride] = Field(default={}, max_length=40)
    custom_features: Features = Field(default_factory=dict)
    stripe_customer_id: Annotated[str, StringConstraints(min_length=1, max_length=255)] | None = None
    account_id: EntityId | None = None  # the account whose pools the user draws on too
    period_anchor: AnchorTime | None = None


class AccountBody(Body):
    name: Label
    plan_id: EntityId
    custom_limits: dict[MeterKey, LimitOverride] = Field(default={}, max_length=40)
    parent_id: EntityId | None = None
    stripe_customer_id: Annotated[str, StringConstraints(min_length=1, max_length=255)] | None = None
    period_anchor: AnchorTime | None = None
    pool_shards: Annotated[int, Field(strict=True, ge=1, le=POOL_SHARDS_MAX)] | None = None  # None: keep


Origin = Annotated[str, StringConstraints(pattern=r"^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?$", max_length=255)]
ORIGINS_MAX = 20


class SettingsBody(Body):
    """Fields left out keep their value; `null` clears the default plan."""

    default_plan_id: EntityId | None = None
    allowed_origins: list[Origin] | None = Field(default=None, max_length=ORIGINS_MAX)


class CanUseBody(Body):
    """One meter and amount, or lines, or a feature."""

    meter: MeterKey | None = None
    amount: Amount | None = None
    lines: list[Line] | None = Field(default=None, min_length=1, max_length=20)
    feature: FeatureKey | None = None

    @model_validator(mode="after")
    def _one_form(self) -> CanUseBody:
        single = self.meter is not None or self.amount is not None
        if single + (self.lines is not None) + (self.feature is not None) != 1:
            raise ValueError("give either meter and amount, or lines, or feature")
        if single and (self.meter is None or self.amount is None):
            raise ValueError("meter and amount go together")
        return self

    _unique = field_validator("lines")(lambda lines: unique_meters(lines) if lines else lines)


class ReserveBody(Lines):
    user_id: EntityId
    ttl_seconds: Annotated[int, Field(strict=True, ge=1, le=TTL_SECONDS_MAX)] = TTL_SECONDS_DEFAULT


class FromModel(Body):
    """Token counts of one model call, priced by the server with the model's current price."""

    model: ModelName
    input_tokens: Amount = 0
    output_tokens: Amount = 0
    cached_input_tokens: Amount = 0
    cache_write_tokens: Amount = 0
    cache_write_1h_tokens: Amount = 0


class UsageLine(Body):
    """An amount on a meter, or (on `cents`/`millicents`) a model call for the server to price."""

    meter: MeterKey
    amount: Amount | None = None
    from_model: FromModel | None = None

    @model_validator(mode="after")
    def _one_of(self) -> UsageLine:
        if (self.amount is None) == (self.from_model is None):
            raise ValueError("give either amount or from_model")
        return self

    def priced(self) -> PricedLine:
        return PricedLine(
            meter=self.meter, amount=self.amount, from_model=self.from_model.model_dump() if self.from_model else None
        )


class UsageLines(Body):
    lines: list[UsageLine] = Field(min_length=1, max_length=LINES_MAX)

    _unique = field_validator("lines")(unique_meters)


class CommitBody(Body):
    lines: list[UsageLine] = Field(default=[], max_length=LINES_MAX)
    properties: dict[PropertyKey, PropertyValue] = Field(default={}, max_length=PROPERTIES_MAX)

    _unique = field_validator("lines")(unique_meters)


class EventBody(UsageLines):
    user_id: EntityId
    properties: dict[PropertyKey, PropertyValue] = Field(default={}, max_length=PROPERTIES_MAX)


class DrawBody(UsageLines):
    """Usage of one step of a run, drawn on the reservation's hold; `properties` name the step."""

    properties: dict[PropertyKey, PropertyValue] = Field(default={}, max_length=PROPERTIES_MAX)


class IncreaseBody(Lines):
    pass


class ExtendBody(Body):
    ttl_seconds: Annotated[int, Field(strict=True, ge=1, le=TTL_SECONDS_MAX)]


class QuoteRun(FromModel):
    max_output_tokens: Amount | None = None  # a quote's output estimate; output_tokens when it is known


class QuoteBody(Body):
    """One model call (`model`, `input_tokens`, `max_output_tokens`), or `lines` of several."""

    model: ModelName | None = None
    input_tokens: Amount = 0
    cached_input_tokens: Amount = 0
    max_output_tokens: Amount = 0
    lines: list[QuoteRun] | None = Field(default=None, min_length=1, max_length=LINES_MAX)

    @model_validator(mode="after")
    def _one_form(self) -> QuoteBody:
        if (self.model is None) == (self.lines is None):
            raise ValueError("give either model or lines")
        return self


class RefundBody(Lines):
    user_id: EntityId
    reason: Annotated[str, StringConstraints(max_length=500)] | None = None


class CreditsBody(Body):
    meter: MeterKey
    amount: Amount
    # what is left of the grant then expires (ledger kind grant_expire)
    expires_at: Annotated[AwareDatetime, BeforeValidator(written_time)] | None = None


class VerifyBody(Body):
    user_id: EntityId | None = None


class UserTokenBody(Body):
    user_id: EntityId
    ttl_seconds: Annotated[int, Field(strict=True, ge=1, le=USER_TOKEN_TTL_MAX)] = 3600


class UserTokenView(Model):
    token: str
    expires_at: str
