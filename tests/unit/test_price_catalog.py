"""LiteLLM cost-map entries (USD per token, read from the JSON text as Decimal) as integer prices."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from quotaflow.ledger.price_catalog import Skipped, catalog_price
from quotaflow.ledger.prices import PriceBody

pytestmark = pytest.mark.unit


def entry(text: str) -> object:
    return json.loads(text, parse_float=Decimal)


def test_a_float_trap_price_converts_exactly() -> None:
    # the traps: USD -> cents -> per million in binary floating point misses the whole number
    assert float("1.5e-07") * 100 * 10**6 == 14.999999999999998
    assert float("2.5e-06") * 10**8 == 250.00000000000003
    assert int(float("1.2e-07") * 10**8) == 11
    text = '{"input_cost_per_token": 1.5e-07, "output_cost_per_token": 2.5e-06, "cache_read_input_token_cost": 1.2e-07}'
    price = catalog_price("m", entry(text), 40)
    assert price == PriceBody(
        input_per_million_cents=15, output_per_million_cents=250, cached_input_per_million_cents=12, markup_percent=40
    )


def test_prices_below_a_whole_cent_per_million_are_millicents() -> None:
    # 1.25e-08 USD per token = 1.25 cents per million = 1,250 millicents; 7.5e-09 -> 750 millicents
    price = catalog_price(
        "m",
        entry(
            '{"input_cost_per_token": 1.25e-08, "output_cost_per_token": 2e-06,'
            ' "cache_read_input_token_cost": 7.5e-09, "cache_creation_input_token_cost": 3.75e-06,'
            ' "cache_creation_input_token_cost_above_1hr": 6e-06}'
        ),
        0,
    )
    assert price == PriceBody(
        input_per_million_millicents=1250,
        output_per_million_cents=200,
        cached_input_per_million_millicents=750,
        cache_write_per_million_cents=375,
        cache_write_1h_per_million_cents=600,
    )


def test_an_embedding_model_without_an_output_price_costs_nothing_for_output() -> None:
    price = catalog_price("text-embedding-3-small", entry('{"input_cost_per_token": 2e-08, "mode": "embedding"}'), 0)
    assert price == PriceBody(input_per_million_cents=2, output_per_million_cents=0)


@pytest.mark.parametrize(
    ("model", "text", "reason"),
    [
        ("sample_spec", '{"input_cost_per_token": 0}', "documentation"),
        ("openai/gpt-4o", '{"input_cost_per_token": 1e-06}', "model name"),
        ("dall-e-3", '{"input_cost_per_pixel": 1e-08}', "no token prices"),
        ("m", '{"input_cost_per_token": "0.1", "output_cost_per_token": 0}', "not a number"),
        ("m", '{"input_cost_per_token": -1e-06}', "not a price"),
        ("m", '{"input_cost_per_token": 1.2345e-12}', "millicents"),
        ("m", '{"input_cost_per_token": true}', "not a number"),
        ("m", '{"input_cost_per_token": 1e999990}', "too large"),
        ("m", '{"input_cost_per_token": 1e999999}', "not exactly representable"),
        ("m", '{"input_cost_per_token": 1e-999999}', "millicents"),
        ("m", '{"input_cost_per_token": {"value": 1}}', "not a number"),
        ("m", '"free"', "not an object"),
    ],
)
def test_entries_that_are_no_token_price_are_skipped_with_a_reason(model: str, text: str, reason: str) -> None:
    skipped = catalog_price(model, entry(text), 0)
    assert isinstance(skipped, Skipped)
    assert reason in skipped.reason


def test_an_integer_price_in_the_map_converts_too() -> None:
    assert catalog_price("m", entry('{"input_cost_per_token": 0, "output_cost_per_token": 1}'), 0) == PriceBody(
        input_per_million_cents=0, output_per_million_cents=100_000_000
    )
