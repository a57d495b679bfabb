"""Prices, quotes and from_model lines through the API."""

from __future__ import annotations

import pytest

from tests.api.conftest import Api

pytestmark = pytest.mark.unit
GPT_4O = {"input_per_million_cents": 500, "output_per_million_cents": 1500, "markup_percent": 40}


@pytest.fixture
def priced(qf: Api) -> Api:
    assert qf("PUT", "/v1/prices/gpt-4o", GPT_4O).status == 200
    plan = {
        "name": "Cents",
        "limits": {
            "cents": {"quota": 1000, "period": "month"},
            "millicents": {"quota": 10**6, "period": "month"},
            "tokens": {"quota": 10**6, "period": "month"},
        },
    }
    assert qf("PUT", "/v1/plans/plan_cents", plan).status == 200
    assert qf("PUT", "/v1/users/u2/subscription", {"plan_id": "plan_cents"}).status == 200
    return qf


def test_quote_follows_the_contracts_rule(priced: Api) -> None:
    quoted = priced("POST", "/v1/quote", {"model": "gpt-4o", "input_tokens": 1200, "max_output_tokens": 800})
    assert quoted.body == {"model": "gpt-4o", "tokens": 2000, "cost_cents": 3, "price_version": 1, "lines": None}
    assert priced("POST", "/v1/quote", {"model": "claude-sonnet-4-5", "input_tokens": 1}).status == 404


def test_an_agent_run_quotes_several_models(priced: Api) -> None:
    priced("PUT", "/v1/prices/claude-sonnet-4-5", {"input_per_million_cents": 300, "output_per_million_cents": 1500})
    run = priced(
        "POST",
        "/v1/quote",
        {
            "lines": [
                {"model": "gpt-4o", "input_tokens": 1200, "max_output_tokens": 800},
                {"model": "claude-sonnet-4-5", "input_tokens": 10_000, "max_output_tokens": 2_000},
            ]
        },
    ).body
    assert [line["cost_cents"] for line in run["lines"]] == [3, 6]
    assert (run["tokens"], run["cost_cents"]) == (14_000, 9)


def test_a_price_change_is_a_new_version_and_history_keeps_the_old(priced: Api) -> None:
    changed = priced("PUT", "/v1/prices/gpt-4o", {**GPT_4O, "input_per_million_cents": 250})
    assert changed.body["version"] == 2
    history = priced("GET", "/v1/prices/gpt-4o").body
    assert history["price"]["input_per_million_cents"] == 250
    assert [p["input_per_million_cents"] for p in history["history"]] == [250, 500]
    assert [p["model"] for p in priced("GET", "/v1/prices").body["prices"]] == ["gpt-4o"]


def test_from_model_lines_bill_cents_and_record_the_price_version(priced: Api) -> None:
    event = {
        "user_id": "u2",
        "lines": [
            {"meter": "tokens", "amount": 1840},
            {"meter": "cents", "from_model": {"model": "gpt-4o", "input_tokens": 1200, "output_tokens": 640}},
        ],
    }
    assert priced("POST", "/v1/events", event).status == 201
    usage = {c["meter"]: c for c in priced("GET", "/v1/users/u2/usage").body["counters"]}
    # (1200 * 500 + 640 * 1500) * 140 / 10^8 = 2.184 -> 3
    assert (usage["cents"]["used"], usage["tokens"]["used"]) == (3, 1840)
    held = priced("POST", "/v1/reservations", {"user_id": "u2", "lines": [{"meter": "millicents", "amount": 5000}]})
    committed = priced(
        "POST",
        f"/v1/reservations/{held.body['reservation_id']}/commit",
        {
            "lines": [
                {"meter": "millicents", "from_model": {"model": "gpt-4o", "input_tokens": 1200, "output_tokens": 640}}
            ]
        },
    )
    assert committed.body["committed"] == [{"meter": "millicents", "amount": 2184}]


def test_from_model_refuses_meters_that_are_not_money(priced: Api) -> None:
    bad = priced(
        "POST",
        "/v1/events",
        {"user_id": "u2", "lines": [{"meter": "tokens", "from_model": {"model": "gpt-4o", "input_tokens": 1}}]},
    )
    assert (bad.status, bad.body["error"]["details"]["field"]) == (400, "lines[0].meter")
    both = priced(
        "POST",
        "/v1/events",
        {
            "user_id": "u2",
            "lines": [{"meter": "cents", "amount": 1, "from_model": {"model": "gpt-4o", "input_tokens": 1}}],
        },
    )
    assert both.status == 400
    unknown = priced(
        "POST",
        "/v1/events",
        {"user_id": "u2", "lines": [{"meter": "cents", "from_model": {"model": "nope", "input_tokens": 1}}]},
    )
    assert unknown.status == 404


@pytest.mark.parametrize(
    "body",
    [
        {"input_per_million_cents": 1.5, "output_per_million_cents": 1},
        {"input_per_million_cents": -1, "output_per_million_cents": 1},
        {"input_per_million_cents": 1, "output_per_million_cents": 1, "markup_percent": 10_001},
        {"input_per_million_cents": 1},
    ],
)
def test_prices_are_integers(priced: Api, body: dict[str, object]) -> None:
    assert priced("PUT", "/v1/prices/gpt-4o", body).status == 400
    assert priced("GET", "/v1/prices/gpt-4o").body["price"]["version"] == 1


def test_putting_the_same_price_again_is_not_a_new_version(priced: Api) -> None:
    assert priced("PUT", "/v1/prices/gpt-4o", GPT_4O).body["version"] == 1
    assert len(priced("GET", "/v1/prices/gpt-4o").body["history"]) == 1
