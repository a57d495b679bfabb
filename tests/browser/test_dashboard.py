"""The operator dashboard in a real browser: served without secrets, the key typed in and kept in memory only,
users ranked by consumption, one user's counters, open reservations, ledger and a hand-drawn usage chart."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import ConsoleMessage, Page, expect

from tests.browser.conftest import ADMIN_KEY, Api, ServerClock, Tenant

pytestmark = pytest.mark.integration

PLAN = {
    "name": "Pro",
    "limits": {
        "tokens": {"label": "Tokens", "quota": 50_000, "period": "month", "enforcement": "hard"},
        "requests": {"label": "Requests", "quota": 1_000, "period": "day", "enforcement": "soft"},
    },
}
ALICE_TOKENS = [1_200, 4_800, 2_500, 6_000, 3_300, 5_200, 7_000, 3_900]  # spread over this month so far
ALICE_CREDITS = 20_000
ALICE_REFUND = 2_000


def use(tenant: Tenant, user_id: str, tokens: int = 0, requests: int = 0) -> None:
    lines = [{"meter": m, "amount": a} for m, a in (("tokens", tokens), ("requests", requests)) if a]
    tenant.ok("POST", "/v1/events", {"user_id": user_id, "lines": lines}, status=201)


def seed(tenant: Tenant, clock: ServerClock) -> str:
    """carol: 97% of her tokens; bob: 90% of his requests but few tokens; dave: nothing yet; alice: a history
    laid out over this month (the server's clock pinned), credits halfway, then a refund and an open hold now.
    Returns alice's open reservation."""
    tenant.ok("PUT", "/v1/plans/plan_pro", PLAN)
    now = datetime.now(UTC)
    month_start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    step = (now - month_start) * 0.9 / (len(ALICE_TOKENS) + 1)
    clock.pinned = month_start + timedelta(seconds=1)
    tenant.ok("PUT", "/v1/users/alice/subscription", {"plan_id": "plan_pro"})
    for index, amount in enumerate(ALICE_TOKENS, start=1):
        clock.pinned = month_start + step * index
        use(tenant, "alice", tokens=amount)
        if index == len(ALICE_TOKENS) // 2:
            tenant.ok("POST", "/v1/users/alice/credits", {"meter": "tokens", "amount": ALICE_CREDITS}, status=201)
    clock.pinned = None
    tenant.ok("POST", "/v1/refunds", {"user_id": "alice", "lines": [{"meter": "tokens", "amount": ALICE_REFUND}]}, 201)
    held = tenant.ok(
        "POST", "/v1/reservations", {"user_id": "alice", "lines": [{"meter": "tokens", "amount": 5_000}]}, status=201
    )
    for user in ("bob", "carol", "dave"):
        tenant.ok("PUT", f"/v1/users/{user}/subscription", {"plan_id": "plan_pro"})
    use(tenant, "carol", tokens=48_500, requests=40)
    use(tenant, "bob", tokens=12_000, requests=900)
    return str(held["reservation_id"])


def user_order(page: Page) -> list[str]:
    return page.locator("#users-table tbody tr").evaluate_all("rows => rows.map(r => r.dataset.user)")


def test_dashboard_page_carries_no_secret_and_only_runs_its_own_code(api: Api) -> None:
    page = httpx.get(f"{api.url}/v1/dashboard")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "qf_sk_" not in page.text.replace('placeholder="qf_sk_…"', "")
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert httpx.get(f"{api.url}/v1/dashboard/users").status_code == 401


def test_dashboard_ranks_users_and_charts_one_users_usage_with_the_key_in_memory_only(
    page: Page, api: Api, tenant: Tenant, server_clock: ServerClock, artifacts: Path
) -> None:
    reservation_id = seed(tenant, server_clock)
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if _is_error(message) else None)
    page.on("pageerror", lambda error: errors.append(str(error)))

    # Given the dashboard, When the operator types the secret key
    page.goto(f"{api.url}/v1/dashboard")
    page.get_by_label("Tenant secret key").fill(tenant.secret_key)
    page.get_by_role("button", name="Connect").click()

    # Then users are ranked by the largest share of allowance used on any meter
    expect(page.locator("#users-table tbody tr")).to_have_count(4)
    assert user_order(page) == ["carol", "bob", "alice", "dave"]
    expect(page.locator("#users-note")).to_contain_text("4 users read")
    # And by tokens used once the operator picks that meter
    page.locator("#users-meter").select_option("tokens")
    expect(page.locator('#users-table tbody tr[data-user="bob"] td').nth(3)).to_have_text("Tokens")
    assert user_order(page) == ["carol", "alice", "bob", "dave"]

    # When they open alice
    page.get_by_role("button", name="alice", exact=True).click()

    # Then her counters, her open reservation, her ledger and a chart of her tokens over the period show
    alice_used = sum(ALICE_TOKENS) - ALICE_REFUND
    tokens_row = page.locator("#counters-table tbody tr", has_text="Tokens")
    expect(tokens_row.locator("td").nth(2)).to_have_text(f"{alice_used:,}")
    expect(tokens_row.locator("td").nth(5)).to_have_text("20,000")
    holds = page.locator("#holds-table tbody tr")
    expect(holds).to_have_count(1)
    expect(holds.first.locator("td").nth(0)).to_have_text(reservation_id)
    expect(holds.first.locator("td").nth(2)).to_have_text("5,000")
    expect(holds.first.locator("td").nth(4)).not_to_have_text("")  # its expiry, read from the reservation
    # the tokens period's opening (quota_change), the events, the grant, the refund, the reserve
    expect(page.locator("#ledger-table tbody tr")).to_have_count(1 + len(ALICE_TOKENS) + 3)
    chart = page.locator("#chart svg")
    expect(chart).to_be_visible()
    expect(chart.locator("circle.dot")).to_have_count(len(ALICE_TOKENS) + 1)  # every change of used
    assert chart.locator("path.used").get_attribute("d").count("H") >= len(ALICE_TOKENS) + 2
    expect(chart.locator("title").first).to_contain_text(f"{alice_used:,} of {50_000 + ALICE_CREDITS:,} now")

    # And the key is in no storage, cookie, URL or form field
    assert page.evaluate("localStorage.length + sessionStorage.length") == 0
    assert page.evaluate("document.cookie") == ""
    assert tenant.secret_key not in page.url
    assert page.get_by_label("Tenant secret key").input_value() == ""
    assert not errors, errors  # nothing blocked by the page's Content-Security-Policy, no script errors
    page.screenshot(path=str(artifacts / "dashboard.png"), full_page=True)

    # When they forget the key, Then the data goes with it
    page.get_by_role("button", name="Forget key").click()
    expect(page.locator("#users")).to_be_hidden()
    expect(page.locator("#connection")).to_have_text("Not connected")


def test_dashboard_charts_the_tenants_usage_by_model_per_day_and_its_top_users(
    page: Page, api: Api, tenant: Tenant, server_clock: ServerClock, artifacts: Path
) -> None:
    # Given two days of usage by three users on two models (and one event without a model), in the lake
    tenant.ok("PUT", "/v1/plans/plan_pro", PLAN)
    for user in ("alice", "bob", "carol"):
        tenant.ok("PUT", f"/v1/users/{user}/subscription", {"plan_id": "plan_pro"})
    now = datetime.now(UTC)
    usage = {2: [("alice", 300, "gpt-4o"), ("bob", 100, "claude")], 1: [("alice", 200, "gpt-4o"),
             ("carol", 50, "gpt-4o"), ("bob", 80, None)]}  # fmt: skip
    for days_ago, events in usage.items():
        server_clock.pinned = now - timedelta(days=days_ago)
        for user, tokens, model in events:
            properties = {"model": model} if model else {}
            body = {"user_id": user, "lines": [{"meter": "tokens", "amount": tokens}], "properties": properties}
            tenant.ok("POST", "/v1/events", body, status=201)
    server_clock.pinned = None
    flushed = httpx.post(f"{api.url}/_local/run/notifier", headers={"Authorization": f"Bearer {ADMIN_KEY}"})
    assert flushed.status_code == 200, flushed.text

    # When the operator connects
    page.goto(f"{api.url}/v1/dashboard")
    page.get_by_label("Tenant secret key").fill(tenant.secret_key)
    page.get_by_role("button", name="Connect").click()

    # Then, on the tokens meter, the analytics section charts each day's usage stacked by model, and ranks the
    # users over the range
    expect(page.locator("#analytics-meter option")).to_have_count(2)
    page.locator("#analytics-meter").select_option("tokens")
    chart = page.locator("#model-chart svg")
    expect(chart.locator("rect.bar")).to_have_count(4)  # (day, model): gpt-4o and claude, then gpt-4o and none
    expect(page.locator("#model-chart figcaption")).to_contain_text("gpt-4o")
    expect(page.locator("#model-chart figcaption")).to_contain_text("claude")
    top = page.locator("#top-users-table tbody tr")
    expect(top).to_have_count(3)
    assert top.evaluate_all("rows => rows.map(r => r.dataset.user)") == ["alice", "bob", "carol"]
    expect(top.first.locator("td").nth(2)).to_have_text("500")
    daily = page.locator("#daily-table tbody tr")
    expect(daily).to_have_count(2)
    expect(daily.nth(0).locator("td").nth(1)).to_have_text("400")
    expect(daily.nth(1).locator("td").nth(1)).to_have_text("330")
    assert chart.locator("rect.series-0").count() == 2  # gpt-4o, the most used model, gets the first colour
    page.locator("#analytics").screenshot(path=str(artifacts / "dashboard-analytics.png"))


def test_a_refused_key_is_reported_and_not_kept(page: Page, api: Api) -> None:
    page.goto(f"{api.url}/v1/dashboard")
    page.get_by_label("Tenant secret key").fill("qf_sk_not_a_real_key")
    page.get_by_role("button", name="Connect").click()
    expect(page.locator("#connect-error")).to_contain_text("The key was refused (401 unauthenticated)")
    expect(page.locator("#users")).to_be_hidden()


def _is_error(message: ConsoleMessage) -> bool:
    return message.type == "error"
