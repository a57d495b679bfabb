"""The public LiteLLM model cost map (USD per token) as quotaflow prices (integer cents or millicents per million).

The map's numbers must arrive here as `Decimal`s read from the JSON text (`json.loads(text, parse_float=Decimal)`):
1.5e-07 USD per token is exactly 15 cents per million, which binary floating point cannot say (1.5e-07 * 10^8 is
14.999999999999998). A price that is not a whole number of millicents per million is skipped with its reason rather
than rounded: an import never changes a price the map states."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Context, Decimal, Inexact, Overflow, localcontext
from typing import Any

from quotaflow.ledger.amounts import MAX_AMOUNT
from quotaflow.ledger.prices import MODEL_PATTERN, PriceBody, PriceClass

CENTS_PER_USD = 100
MILLICENTS_PER_USD = 100_000
TOKENS_PER_MILLION = 1_000_000
# LiteLLM's field for each price class (USD per token)
CATALOG_FIELDS: dict[PriceClass, str] = {
    "input": "input_cost_per_token",
    "output": "output_cost_per_token",
    "cached_input": "cache_read_input_token_cost",
    "cache_write": "cache_creation_input_token_cost",
    "cache_write_1h": "cache_creation_input_token_cost_above_1hr",
}
EXACT = Context(prec=100, traps=[Inexact, Overflow])  # an arithmetic step that would round raises instead
IMPORT_MODELS_MAX = 25  # entries in one import request (each is up to two DynamoDB calls); clients send chunks
DOCUMENTATION_ENTRY = "sample_spec"  # the map's first entry describes its fields; it is no model


@dataclass(frozen=True)
class Skipped:
    model: str
    reason: str


def catalog_price(model: str, entry: Any, markup_percent: int) -> PriceBody | Skipped:
    """One map entry as a price body, or why it cannot be one."""
    if model == DOCUMENTATION_ENTRY:
        return Skipped(model, "the map's field documentation, not a model")
    if not re.fullmatch(MODEL_PATTERN, model):
        return Skipped(model, "a price's model name is 1-128 characters from A-Z a-z 0-9 _ . : @ -")
    if not isinstance(entry, Mapping):
        return Skipped(model, "the entry is not an object")
    if entry.get(CATALOG_FIELDS["input"]) is None and entry.get(CATALOG_FIELDS["output"]) is None:
        return Skipped(model, "no token prices (input_cost_per_token, output_cost_per_token)")
    fields: dict[str, int] = {"markup_percent": markup_percent}
    for price_class, catalog_field in CATALOG_FIELDS.items():
        usd_per_token = entry.get(catalog_field)
        if usd_per_token is None:
            if price_class in ("input", "output"):
                fields[f"{price_class}_per_million_cents"] = 0  # an embedding model has no output price
            continue
        converted = _per_million(usd_per_token)
        if isinstance(converted, str):
            return Skipped(model, f"{catalog_field}: {converted}")
        unit, amount = converted
        fields[f"{price_class}_per_million_{unit}"] = amount
    return PriceBody.model_validate(fields)


def _per_million(usd_per_token: Any) -> tuple[str, int] | str:
    """("cents", n) when the price is a whole number of cents per million tokens, else ("millicents", n); a reason
    when it is neither."""
    if isinstance(usd_per_token, bool) or not isinstance(usd_per_token, int | Decimal):
        return f"not a number: {usd_per_token!r}"
    price = Decimal(usd_per_token)
    if not price.is_finite() or price < 0:
        return f"not a price: {usd_per_token}"
    for unit, per_usd in (("cents", CENTS_PER_USD), ("millicents", MILLICENTS_PER_USD)):
        try:
            with localcontext(EXACT):
                per_million = price * per_usd * TOKENS_PER_MILLION
        except (Inexact, Overflow):
            return f"not exactly representable: {usd_per_token}"
        if per_million > MAX_AMOUNT:
            return f"too large: {usd_per_token}"
        if per_million == per_million.to_integral_value():
            return unit, int(per_million)
    return f"{usd_per_token} USD per token is not a whole number of millicents per million tokens"
