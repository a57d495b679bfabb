"""`POST /v1/prices/import` against a real `quotaflow serve`: a LiteLLM cost map (tests/sdk/data, written for these
tests, with float-trap prices) converted exactly, cache classes included, idempotently."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from quotaflow.local.server import LocalServer
from quotaflow.sdk import Client, ModelUsage, TenantCreated

pytestmark = pytest.mark.unit
SAMPLE = Path(__file__).with_name("data") / "cost_map_sample.json"


def post_import(server: LocalServer, tenant: TenantCreated, body: bytes, **headers: str) -> httpx.Response:
    return httpx.post(
        f"{server.url}/v1/prices/import",
        params={"markup_percent": 40},
        content=body,
        headers={"Authorization": f"Bearer {tenant.secret_key}", "Content-Type": "application/json", **headers},
    )


def test_the_sample_map_imports_exactly_with_its_cache_classes(qf: Client) -> None:
    result = qf.import_prices(SAMPLE.read_bytes(), markup_percent=40)

    assert (result.imported, result.unchanged) == (4, 0)
    assert {s["model"] for s in result.skipped} == {"sample_spec", "azure/gpt-4o", "dall-e-3"}
    mini = qf.get_price("gpt-4o-mini").price
    assert (mini.input_per_million_cents, mini.output_per_million_cents) == (15, 60)  # 1.5e-07 USD/token = 15
    assert mini.cached_input_per_million_millicents == 7500  # 7.5e-08 USD/token = 7.5 cents per million
    assert mini.markup_percent == 40
    claude = qf.get_price("claude-sonnet-4-5").price
    assert (claude.cached_input_per_million_cents, claude.cache_write_per_million_cents) == (30, 375)
    assert claude.cache_write_1h_per_million_cents == 600
    lite = qf.get_price("gemini-2.0-flash-lite").price
    assert (lite.input_per_million_millicents, lite.cached_input_per_million_millicents) == (7500, 1875)


def test_importing_the_same_map_again_makes_no_new_version(qf: Client) -> None:
    qf.import_prices(SAMPLE.read_bytes())
    again = qf.import_prices(SAMPLE.read_bytes())
    assert (again.imported, again.unchanged) == (0, 4)
    assert qf.get_price("gpt-4o-mini").price.version == 1
    changed = qf.import_prices(SAMPLE.read_bytes(), markup_percent=10)
    assert (changed.imported, changed.unchanged) == (4, 0)
    assert qf.get_price("gpt-4o-mini").price.version == 2


def test_a_retry_under_the_same_key_replays_the_first_answer(server: LocalServer, tenant: TenantCreated) -> None:
    body = SAMPLE.read_bytes()
    first = post_import(server, tenant, body, **{"Idempotency-Key": "import-1"})
    second = post_import(server, tenant, body, **{"Idempotency-Key": "import-1"})
    assert first.status_code == second.status_code == 200
    assert second.json() == first.json() and first.json()["imported"] == 4
    other = post_import(server, tenant, body.replace(b"1.5e-07", b"1.6e-07"), **{"Idempotency-Key": "import-1"})
    assert other.status_code == 409 and other.json()["error"]["code"] == "idempotency_key_reused"


def test_imported_cache_write_prices_bill_anthropic_cache_writes(qf: Client) -> None:
    qf.import_prices(SAMPLE.read_bytes(), markup_percent=0)
    qf.put_plan("plan_paygo", "Pay as you go", {"cents": {"label": "Cents", "quota": 10_000, "period": "none"}})
    usage = ModelUsage("claude-sonnet-4-5", input_tokens=0, cache_write_tokens=1_000_000, cache_write_1h_tokens=500_000)
    qf.track("u1", {"cents": usage})
    (counter,) = [c for c in qf.usage("u1").counters if c.meter == "cents"]
    assert counter.used == 375 + 300  # 1M 5-minute writes at 375 + 0.5M 1-hour writes at 600 cents per million


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b'{"m": {"input_cost_per_token": NaN}}', "body"),
        (b'[{"m": 1}]', "body"),
        (b'{"m": ', "body"),
        (b"[" * 30_000 + b"]" * 30_000, "body"),
        (b'{"m": ' * 8_000 + b"1" + b"}" * 8_000, "body"),
    ],
)
def test_a_body_that_is_no_cost_map_is_a_400_that_changes_nothing(
    server: LocalServer, tenant: TenantCreated, qf: Client, body: bytes, field: str
) -> None:
    response = post_import(server, tenant, body, **{"Idempotency-Key": "bad-body"})
    assert response.status_code == 400
    assert response.json()["error"]["details"]["field"] == field
    assert qf.list_prices() == []


def test_a_markup_out_of_range_is_a_400(server: LocalServer, tenant: TenantCreated) -> None:
    response = httpx.post(
        f"{server.url}/v1/prices/import?markup_percent=-1",
        content=SAMPLE.read_bytes(),
        headers={"Authorization": f"Bearer {tenant.secret_key}", "Content-Type": "application/json"},
    )
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_request"
