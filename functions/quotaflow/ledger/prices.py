"""Model prices and the one pricing rule, in integers: no float ever touches money.

    cost = ceil((Σ tokens of a class * that class's price in millicents per million)
                * (100 + markup_percent) / (10^6 tokens per priced million * 100 percent * 1000 millicents per cent))

Each price class (input, output, cached input, cache write, 1-hour cache write) is given either in whole cents per
million tokens (`*_per_million_cents`) or, where a price is not a whole number of cents, in thousandths of a cent
(`*_per_million_millicents`); markup is an integer percent. The only rounding is the final ceiling: a call is never
billed less than it cost. A meter named `millicents` counts thousandths of a cent (`UNIT_SCALE`), for apps whose calls
each cost less than a cent."""

from __future__ import annotations

from typing import Annotated, Literal, Self

from pydantic import ConfigDict, Field, StringConstraints, model_validator

from quotaflow.ledger.amounts import Amount, div_ceil
from quotaflow.ledger.model import Model

MODEL_PATTERN = r"^[A-Za-z0-9_.:@-]{1,128}$"
ModelName = Annotated[str, StringConstraints(pattern=MODEL_PATTERN)]
TOKENS_PER_PRICED_UNIT = 1_000_000
PERCENT = 100
MILLICENTS_PER_CENT = 1_000
MARKUP_PERCENT_MAX = 10_000
UNIT_SCALE = {"cents": 1, "millicents": MILLICENTS_PER_CENT}  # the meters a from_model line may price into

PriceClass = Literal["input", "output", "cached_input", "cache_write", "cache_write_1h"]
PRICE_CLASSES: tuple[PriceClass, ...] = ("input", "output", "cached_input", "cache_write", "cache_write_1h")
REQUIRED_CLASSES: frozenset[PriceClass] = frozenset({"input", "output"})
# A class without a price of its own costs what this one costs: cached input and cache writes as input (the price's
# author did not distinguish them), a 1-hour cache write as a 5-minute one.
FALLBACK_CLASS: dict[PriceClass, PriceClass] = {
    "cached_input": "input",
    "cache_write": "input",
    "cache_write_1h": "cache_write",
}


class PriceRates(Model):
    """A price per class, in cents or in millicents per million tokens (one of the two, never both)."""

    model_config = ConfigDict(frozen=True)

    input_per_million_cents: Amount | None = None
    input_per_million_millicents: Amount | None = None
    output_per_million_cents: Amount | None = None
    output_per_million_millicents: Amount | None = None
    cached_input_per_million_cents: Amount | None = None  # prompt read from the provider's cache
    cached_input_per_million_millicents: Amount | None = None
    cache_write_per_million_cents: Amount | None = None  # prompt written to the cache (Anthropic's 5-minute TTL)
    cache_write_per_million_millicents: Amount | None = None
    cache_write_1h_per_million_cents: Amount | None = None  # written with an hour's retention or longer
    cache_write_1h_per_million_millicents: Amount | None = None
    markup_percent: Annotated[int, Field(strict=True, ge=0, le=MARKUP_PERCENT_MAX)] = 0

    @model_validator(mode="after")
    def _one_unit_per_class(self) -> Self:
        for price_class in PRICE_CLASSES:
            cents = getattr(self, f"{price_class}_per_million_cents")
            millicents = getattr(self, f"{price_class}_per_million_millicents")
            if cents is not None and millicents is not None:
                raise ValueError(f"give {price_class}_per_million_cents or _millicents, not both")
            if price_class in REQUIRED_CLASSES and cents is None and millicents is None:
                raise ValueError(f"{price_class}_per_million_cents (or _millicents) is required")
        return self

    def own_rate_millicents(self, price_class: PriceClass) -> int | None:
        """The class's own price in millicents per million tokens; None when it has none."""
        cents = getattr(self, f"{price_class}_per_million_cents")
        if cents is not None:
            return int(cents) * MILLICENTS_PER_CENT
        millicents = getattr(self, f"{price_class}_per_million_millicents")
        return None if millicents is None else int(millicents)

    def rate_millicents(self, price_class: PriceClass) -> int:
        """The class's price in millicents per million tokens, falling back as `FALLBACK_CLASS` says."""
        current: PriceClass | None = price_class
        while current is not None:
            own = self.own_rate_millicents(current)
            if own is not None:
                return own
            current = FALLBACK_CLASS.get(current)
        raise AssertionError("input and output always have a price")  # the validator guarantees it


class PriceBody(PriceRates):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Price(PriceRates):
    """One model's price as of `version`; a change writes a new version, history keeps the old ones."""

    model: str
    version: int
    updated_at: str


class TokenCounts(Model):
    """One call's tokens, split into disjoint price classes."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    input_tokens: Amount = 0  # prompt neither read from nor written to a cache
    output_tokens: Amount = 0
    cached_input_tokens: Amount = 0  # part of the prompt served from the provider's cache, billed at its own rate
    cache_write_tokens: Amount = 0  # part of the prompt written to the cache (5-minute TTL, or unspecified)
    cache_write_1h_tokens: Amount = 0  # part of the prompt written to the cache for an hour or longer

    @property
    def total_tokens(self) -> int:
        return (
            self.input_tokens
            + self.output_tokens
            + self.cached_input_tokens
            + self.cache_write_tokens
            + self.cache_write_1h_tokens
        )

    def of_class(self, price_class: PriceClass) -> int:
        return int(getattr(self, f"{price_class}_tokens"))


def cost(price: PriceRates, tokens: TokenCounts, scale: int = 1) -> int:
    """What `tokens` cost at `price`, in cents * `scale`, rounded up once at the end."""
    raw_millicents = sum(tokens.of_class(c) * price.rate_millicents(c) for c in PRICE_CLASSES)
    denominator = TOKENS_PER_PRICED_UNIT * PERCENT * MILLICENTS_PER_CENT
    return div_ceil(raw_millicents * (PERCENT + price.markup_percent) * scale, denominator)
