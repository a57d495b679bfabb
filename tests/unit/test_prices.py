"""The pricing rule in integers, at its rounding boundaries."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from quotaflow.ledger.prices import Price, PriceBody, TokenCounts, cost

pytestmark = pytest.mark.unit


def price(input_cents: int = 500, output_cents: int = 1500, markup: int = 40, cached: int | None = None) -> Price:
    return Price(
        model="gpt-4o",
        version=1,
        input_per_million_cents=input_cents,
        output_per_million_cents=output_cents,
        cached_input_per_million_cents=cached,
        markup_percent=markup,
        updated_at="2026-11-27T10:00:00Z",
    )


def test_the_contracts_example() -> None:
    # (1200 * 500 + 800 * 1500) * 140 / 10^8 = 2.52 -> 3 cents
    assert cost(price(), TokenCounts(input_tokens=1200, output_tokens=800)) == 3


def test_rounding_is_one_ceiling_at_the_end() -> None:
    exact = price(input_cents=100, output_cents=0, markup=0)
    assert cost(exact, TokenCounts(input_tokens=1_000_000)) == 100  # exactly 100 cents: no extra cent
    assert cost(exact, TokenCounts(input_tokens=1_000_001)) == 101  # a hair over: rounds up
    assert cost(exact, TokenCounts(input_tokens=1)) == 1  # any use costs at least a cent
    assert cost(exact, TokenCounts()) == 0
    # a thousand calls of 1 token each bill 1,000 cents; one call of 1,000 tokens bills 1: per-call rounding is
    # why the `millicents` meter exists
    assert cost(exact, TokenCounts(input_tokens=1), scale=1000) == 1
    assert cost(exact, TokenCounts(input_tokens=1000), scale=1000) == 100


def test_markup_and_cached_input_are_exact() -> None:
    assert cost(price(input_cents=300, output_cents=0, markup=50), TokenCounts(input_tokens=2_000_000)) == 900
    cached = price(input_cents=300, output_cents=0, markup=0, cached=30)
    assert cost(cached, TokenCounts(input_tokens=1_000_000, cached_input_tokens=1_000_000)) == 330
    assert cost(price(cached=None, markup=0, output_cents=0), TokenCounts(cached_input_tokens=10**6)) == 500


def test_no_float_creeps_in_even_at_the_largest_amounts() -> None:
    huge = TokenCounts(input_tokens=2**53 - 1, output_tokens=2**53 - 1)
    result = cost(price(input_cents=2**53 - 1, output_cents=2**53 - 1, markup=10_000), huge)
    assert isinstance(result, int)
    assert result == -(-((2**53 - 1) ** 2 * 2 * 10_100) // 10**8)


def test_cache_writes_have_their_own_classes_and_fall_back_to_input() -> None:
    anthropic = Price.model_validate(
        {
            "model": "claude-sonnet-4-5",
            "version": 1,
            "input_per_million_cents": 300,
            "output_per_million_cents": 1500,
            "cached_input_per_million_cents": 30,
            "cache_write_per_million_cents": 375,
            "cache_write_1h_per_million_cents": 600,
            "markup_percent": 0,
            "updated_at": "2026-11-27T10:00:00Z",
        }
    )
    million = 1_000_000
    assert cost(anthropic, TokenCounts(cache_write_tokens=million)) == 375
    assert cost(anthropic, TokenCounts(cache_write_1h_tokens=million)) == 600
    plain = price(input_cents=300, output_cents=0, markup=0)
    assert cost(plain, TokenCounts(cache_write_tokens=million, cache_write_1h_tokens=million)) == 600


def test_a_one_hour_write_without_its_own_price_costs_a_five_minute_write() -> None:
    five_minutes_only = Price.model_validate(
        {
            **price(markup=0).model_dump(),
            "cache_write_per_million_cents": 625,
        }
    )
    assert cost(five_minutes_only, TokenCounts(cache_write_1h_tokens=1_000_000)) == 625


def test_millicent_prices_are_exact_and_rounded_once() -> None:
    # 0.015 cents per million input (15 millicents), 0.06 cents per million output
    cheap = Price.model_validate(
        {
            "model": "tiny",
            "version": 1,
            "input_per_million_millicents": 15,
            "output_per_million_millicents": 60,
            "markup_percent": 0,
            "updated_at": "2026-11-27T10:00:00Z",
        }
    )
    assert cost(cheap, TokenCounts(input_tokens=10**8)) == 2  # 1.5 cents -> 2
    assert cost(cheap, TokenCounts(input_tokens=10**8), scale=1000) == 1500  # exactly 1,500 millicents
    assert cost(cheap, TokenCounts(input_tokens=10**8, output_tokens=10**8), scale=1000) == 7500


@pytest.mark.parametrize(
    "fields",
    [
        {"input_per_million_cents": 1, "input_per_million_millicents": 1000, "output_per_million_cents": 1},
        {"output_per_million_cents": 1},
        {"input_per_million_cents": 1},
        {"input_per_million_cents": 1, "output_per_million_cents": 1, "cache_write_per_million_cents": -1},
    ],
)
def test_a_price_body_needs_one_unit_per_class_and_amounts(fields: dict[str, int]) -> None:
    with pytest.raises(ValidationError):
        PriceBody.model_validate(fields)
