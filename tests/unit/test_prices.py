"""The pricing rule in integers, at its rounding boundaries."""

from __future__ import annotations

import pytest

from quotaflow.ledger.prices import Price, TokenCounts, cost

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
