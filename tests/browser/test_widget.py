"""The embeddable widget in a real browser, on an app page served from another origin than the API: the numbers
after a reserve/commit, the refresh after a credit grant, the error state on an expired token, and CORS."""

from __future__ import annotations

import html
import json
import time
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import Api, AppSite, Tenant

pytestmark = pytest.mark.integration

PLAN = {
    "name": "Pro",
    "limits": {
        "tokens": {"label": "Tokens", "quota": 20_000, "period": "month", "enforcement": "hard"},
        "renders": {"label": "Free renders", "quota": 10, "period": "none", "enforcement": "hard"},
    },
}
THEME = """
  body { font: 15px/1.4 system-ui, sans-serif; margin: 0; padding: 24px; background: #fff; color: #111827; }
  #quota { width: 360px; padding: 16px 18px; border: 1px solid #e5e7eb; border-radius: 12px; }
  #quota { --qf-bar-color: #4f46e5; --qf-bar-height: 10px; }
"""


def app_page(
    api_url: str, tenant: Tenant, user_id: str, token: str, refresh_seconds: int, *, data_attributes: bool = False
) -> str:
    """The three lines an app pastes (or the container with data attributes and the script tag), plus a listener
    recording the widget's events for the test."""
    options = {
        "publishableKey": tenant.publishable_key,
        "userId": user_id,
        "userToken": token,
        "refreshSeconds": refresh_seconds,
    }
    if data_attributes:
        attributes = " ".join(
            f'data-{name}="{html.escape(str(value))}"'
            for name, value in (
                ("publishable-key", tenant.publishable_key),
                ("user-id", user_id),
                ("user-token", token),
                ("refresh-seconds", refresh_seconds),
            )
        )
        embed = f"""<div id="quota" data-quotaflow-widget {attributes}></div>
<script src="{api_url}/v1/widget.js"></script>"""
    else:
        embed = f"""<div id="quota"></div>
<script src="{api_url}/v1/widget.js"></script>
<script>Quotaflow.widget("#quota", {json.dumps(options)});</script>"""
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>My AI app</title><style>{THEME}</style></head>
<body>
<script>window.qfEvents = [];
["quotaflow:update", "quotaflow:error"].forEach(function (name) {{
  document.addEventListener(name, function (e) {{ window.qfEvents.push({{type: name, detail: e.detail}}); }});
}});</script>
{embed}
</body></html>"""


def seed(tenant: Tenant, user_id: str, origin: str) -> None:
    tenant.ok("PUT", "/v1/plans/plan_pro", PLAN)
    tenant.ok("PUT", f"/v1/users/{user_id}/subscription", {"plan_id": "plan_pro"})
    tenant.ok("PUT", "/v1/settings", {"allowed_origins": [origin]})


def token_for(tenant: Tenant, user_id: str, ttl_seconds: int = 3600) -> str:
    minted = tenant.ok("POST", "/v1/user-tokens", {"user_id": user_id, "ttl_seconds": ttl_seconds}, status=201)
    return str(minted["token"])


@pytest.mark.parametrize("page", [2], indirect=True)  # a crisp screenshot for the README
def test_widget_shows_the_balance_after_a_commit_and_follows_a_credit_grant(
    page: Page, api: Api, app_site: AppSite, tenant: Tenant, artifacts: Path
) -> None:
    # Given a user who held 10,000 tokens and used 7,600 of them, and 3 of 10 renders
    seed(tenant, "u1", app_site.origin)
    held = tenant.ok(
        "POST", "/v1/reservations", {"user_id": "u1", "lines": [{"meter": "tokens", "amount": 10_000}]}, status=201
    )
    tenant.ok(
        "POST", f"/v1/reservations/{held['reservation_id']}/commit", {"lines": [{"meter": "tokens", "amount": 7_600}]}
    )
    tenant.ok("POST", "/v1/events", {"user_id": "u1", "lines": [{"meter": "renders", "amount": 3}]}, status=201)

    # When the app's page (another origin) embeds the widget
    url = app_site.page("/u1", app_page(api.url, tenant, "u1", token_for(tenant, "u1"), refresh_seconds=1))
    page.goto(url)

    # Then each meter shows remaining, quota, percent used as an accessible progress bar
    tokens = page.locator('.qf-meter[data-meter="tokens"]')
    expect(tokens.locator(".qf-remaining")).to_have_text("12,400 tokens left")
    expect(tokens.locator(".qf-quota")).to_have_text("of 20,000")
    expect(tokens.locator(".qf-percent")).to_have_text("38% used")
    expect(tokens.locator(".qf-period")).to_contain_text("Resets")
    bar = page.get_by_role("progressbar", name="Tokens used")
    expect(bar).to_have_attribute("aria-valuenow", "38")
    expect(bar).to_have_attribute("aria-valuemin", "0")
    expect(bar).to_have_attribute("aria-valuemax", "100")
    expect(bar).to_have_attribute("aria-valuetext", "12,400 tokens left (38% used)")
    renders = page.locator('.qf-meter[data-meter="renders"]')
    expect(renders.locator(".qf-remaining")).to_have_text("7 free renders left")
    expect(renders.locator(".qf-period")).to_have_text("")
    assert page.evaluate("window.qfEvents[0].detail.user_id") == "u1"

    # When the user buys 30,000 tokens, Then the next refresh shows them
    tenant.ok("POST", "/v1/users/u1/credits", {"meter": "tokens", "amount": 30_000, "expires_at": None}, status=201)
    expect(tokens.locator(".qf-remaining")).to_have_text("42,400 tokens left", timeout=5_000)
    expect(tokens.locator(".qf-quota")).to_have_text("of 20,000 + 30,000 credits")
    expect(bar).to_have_attribute("aria-valuenow", "15")

    # And the bar's width follows the theme variable and the percent
    color = page.evaluate("getComputedStyle(document.querySelector('.qf-fill')).backgroundColor")
    assert color == "rgb(79, 70, 229)"
    page.locator("#quota").screenshot(path=str(artifacts / "widget.png"))
    page.screenshot(path=str(artifacts / "widget-page.png"))


def test_widget_shows_an_error_and_tells_the_page_when_the_token_expires(
    page: Page, api: Api, app_site: AppSite, tenant: Tenant, artifacts: Path
) -> None:
    # Given a token that lives one second
    seed(tenant, "u2", app_site.origin)
    token = token_for(tenant, "u2", ttl_seconds=1)
    url = app_site.page("/u2", app_page(api.url, tenant, "u2", token, 1, data_attributes=True))

    # When the page keeps the widget open past the token's expiry
    page.goto(url)

    # Then the widget says so, stops refreshing, and the page got a quotaflow:error event with the 401
    expect(page.locator(".qf-status")).to_have_text(
        "Your session has expired. Reload the page to see your balance.", timeout=6_000
    )
    expect(page.locator("#quota")).to_have_class("qf-widget qf-widget--error")
    expect(page.locator(".qf-meter")).to_have_count(0)
    error = page.evaluate("window.qfEvents.find(function (e) { return e.type === 'quotaflow:error'; }).detail")
    assert (error["status"], error["code"], error["fatal"]) == (401, "unauthenticated", True)
    page.locator("#quota").screenshot(path=str(artifacts / "widget-expired.png"))


def test_widget_pauses_its_refresh_while_the_tab_is_hidden(
    page: Page, api: Api, app_site: AppSite, tenant: Tenant
) -> None:
    # Given a widget refreshing every second
    seed(tenant, "u5", app_site.origin)
    calls: list[float] = []
    page.on("request", lambda request: calls.append(time.monotonic()) if request.url.endswith("/usage") else None)
    page.goto(app_site.page("/u5", app_page(api.url, tenant, "u5", token_for(tenant, "u5"), 1)))
    expect(page.locator('[data-meter="tokens"] .qf-remaining')).to_have_text("20,000 tokens left")

    # When the tab is hidden, Then it stops asking
    page.evaluate(HIDE_TAB)
    hidden_at = time.monotonic()
    page.wait_for_timeout(2_500)
    assert not [t for t in calls if t > hidden_at + 0.5], "requests while hidden"

    # When it shows again, Then it refreshes at once (its last refresh is older than the interval)
    page.evaluate(SHOW_TAB)
    shown_at = time.monotonic()
    page.wait_for_timeout(500)
    assert [t for t in calls if t > shown_at]


def test_labels_from_the_api_are_shown_as_text_never_parsed_as_html(
    page: Page, api: Api, app_site: AppSite, tenant: Tenant
) -> None:
    # Given a meter whose label is markup
    label = '<img src=x onerror="window.pwned = true">Images'
    tenant.ok("PUT", "/v1/plans/plan_raw", {"name": "Raw", "limits": {"images": {"label": label, "quota": 5}}})
    tenant.ok("PUT", "/v1/users/u6/subscription", {"plan_id": "plan_raw"})
    tenant.ok("PUT", "/v1/settings", {"allowed_origins": [app_site.origin]})

    # When the widget renders it, Then it is text
    page.goto(app_site.page("/u6", app_page(api.url, tenant, "u6", token_for(tenant, "u6"), 30)))
    expect(page.locator(".qf-label")).to_have_text(label)
    assert page.locator("#quota img").count() == 0
    assert page.evaluate("window.pwned === undefined")


def test_a_token_function_is_asked_again_when_the_api_refuses_the_token(
    page: Page, api: Api, app_site: AppSite, tenant: Tenant
) -> None:
    # Given a page whose token function first hands out a stale token, then (asked to renew) a fresh one
    seed(tenant, "u7", app_site.origin)
    fresh = token_for(tenant, "u7")
    options = json.dumps({"publishableKey": tenant.publishable_key, "userId": "u7"})
    html_page = f"""<!doctype html><html><body><div id="quota"></div>
<script src="{api.url}/v1/widget.js"></script>
<script>window.asked = [];
var options = {options};
options.userToken = function (request) {{
  window.asked.push(request.renew);
  return Promise.resolve(request.renew ? {json.dumps(fresh)} : "stale.token");
}};
Quotaflow.widget("#quota", options);</script></body></html>"""

    # When the widget loads, Then it asked twice and shows the balance
    page.goto(app_site.page("/u7", html_page))
    expect(page.locator('[data-meter="tokens"] .qf-remaining')).to_have_text("20,000 tokens left")
    assert page.evaluate("window.asked") == [False, True]


HIDE_TAB = """Object.defineProperty(document, "visibilityState", {value: "hidden", configurable: true});
document.dispatchEvent(new Event("visibilitychange"));"""
SHOW_TAB = """Object.defineProperty(document, "visibilityState", {value: "visible", configurable: true});
document.dispatchEvent(new Event("visibilitychange"));"""


def test_a_page_from_an_origin_the_tenant_did_not_allow_cannot_read_the_balance(
    page: Page, api: Api, app_site: AppSite, tenant: Tenant
) -> None:
    # Given a tenant that allows only http://127.0.0.1:<port> (localhost is another origin to the browser)
    seed(tenant, "u3", app_site.origin)
    url = app_site.page("/u3", app_page(api.url, tenant, "u3", token_for(tenant, "u3"), 30))
    foreign = url.replace("127.0.0.1", "localhost")

    # When the widget runs there, Then the browser withholds the response: a retryable error, no numbers
    page.goto(foreign)
    expect(page.locator(".qf-status")).to_have_text("Couldn't refresh your balance. Retrying…")
    expect(page.locator(".qf-meter")).to_have_count(0)
    error = page.evaluate("window.qfEvents[0]")
    assert error["type"] == "quotaflow:error" and error["detail"]["code"] == "network"


def test_serve_passes_the_cors_preflight_to_the_api(api: Api, app_site: AppSite, tenant: Tenant) -> None:
    # Given the widget's route, When a browser sends its preflight, Then serve answers it as API Gateway would
    seed(tenant, "u4", app_site.origin)
    preflight = httpx.options(
        f"{api.url}/v1/users/u4/usage",
        headers={"Origin": app_site.origin, "Access-Control-Request-Method": "GET"},
    )
    assert preflight.status_code == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == app_site.origin
