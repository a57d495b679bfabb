"""Model prices and the one pricing rule, in integers: no float ever touches money.

    cost = ceil((input * input_price + cached_input * cached_input_price + output * output_price)
                * (100 + markup_percent) / (10^6 tokens per priced million * 100 percent))

Prices are integer cents per million tokens and markup an integer percent, so the only rounding is the final
ceiling: a call is never billed less than it cost. A meter named `millicents` counts thousandths of a cent
(`UNIT_SCALE`), for apps whose calls each cost less than a cent."""

from __future__ import annotations

from typing import Annotated

from pydantic import ConfigDict, Field, StringConstraints

from quotaflow.ledger.amounts import Amount, div_ceil
from quotaflow.ledger.model import Model

MODEL_PATTERN = r"^[A-Za-z0-9_.:@-]{1,128}$"
ModelName = Annotated[str, StringConstraints(pattern=MODEL_PATTERN)]
TOKENS_PER_PRICED_UNIT = 1_000_000
PERCENT = 100
MARKUP_PERCENT_MAX = 10_000
UNIT_SCALE = {"cents": 1, "millicents": 1_000}  # the meters a from_model line may price into, and their scale


class Price(Model):
    """One model's price as of `version`; a change writes a new version, history keeps the old ones."""

    model_config = ConfigDict(frozen=True)

    model: str
    version: int
    input_per_million_cents: int
    output_per_million_cents: int
    cached_input_per_million_cents: int | None = None  # None: cached input costs as much as input
    markup_percent: int
    updated_at: str


class TokenCounts(Model):
    model_config = ConfigDict(extra="forbid", frozen=True)

    input_tokens: Amount = 0
    output_tokens: Amount = 0
    cached_input_tokens: Amount = 0  # part of the prompt served from the provider's cache, billed at its own rate


class PriceBody(Model):
    model_config = ConfigDict(extra="forbid", frozen=True)

    input_per_million_cents: Amount
    output_per_million_cents: Amount
    cached_input_per_million_cents: Amount | None = None
    markup_percent: Annotated[int, Field(strict=True, ge=0, le=MARKUP_PERCENT_MAX)] = 0


def cost(price: Price, tokens: TokenCounts, scale: int = 1) -> int:
    """What `tokens` cost at `price`, in cents * `scale`, rounded up once at the end."""
    cached_rate = (
        price.cached_input_per_million_cents
        if price.cached_input_per_million_cents is not None
        else price.input_per_million_cents
    )
    raw = (
        tokens.input_tokens * price.input_per_million_cents
        + tokens.cached_input_tokens * cached_rate
        + tokens.output_tokens * price.output_per_million_cents
    )
    return div_ceil(raw * (PERCENT + price.markup_percent) * scale, TOKENS_PER_PRICED_UNIT * PERCENT)
