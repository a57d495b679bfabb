"""The web routes over HTTP, without a browser: how the static assets are served and cached, and the
dashboard's users-by-consumption listing (ranking, bounds, who may call it)."""

from __future__ import annotations

import httpx
import pytest

from quotaflow.services import dashboard
from tests.browser.conftest import ADMIN_KEY, Api, Tenant

pytestmark = pytest.mark.unit

PLAN = {
    "name": "Pro",
    "limits": {
        "tokens": {"quota": 1_000, "period": "month", "enforcement": "hard"},
        "images": {"quota": 10, "period": "none", "enforcement": "hard"},
    },
}


def seed(tenant: Tenant, usage: dict[str, dict[str, int]]) -> None:
    tenant.ok("PUT", "/v1/plans/plan_pro", PLAN)
    for user_id, amounts in usage.items():
        tenant.ok("PUT", f"/v1/users/{user_id}/subscription", {"plan_id": "plan_pro"})
        lines = [{"meter": meter, "amount": amount} for meter, amount in amounts.items() if amount]
        if lines:
            tenant.ok("POST", "/v1/events", {"user_id": user_id, "lines": lines}, status=201)


def ranked(listing: dict[str, object]) -> list[tuple[str, str]]:
    return [(row["user_id"], row["ranked_by"]) for row in listing["users"]]  # type: ignore[attr-defined]


def test_the_widget_script_is_public_cacheable_javascript(api: Api) -> None:
    first = httpx.get(f"{api.url}/v1/widget.js")
    assert first.status_code == 200
    assert first.headers["content-type"] == "text/javascript; charset=utf-8"
    assert first.headers["cache-control"] == "public, max-age=300"
    assert "Quotaflow.widget" in first.text and "innerHTML" not in first.text
    again = httpx.get(f"{api.url}/v1/widget.js", headers={"If-None-Match": first.headers["etag"]})
    assert (again.status_code, again.content) == (304, b"")


def test_the_dashboard_assets_are_served_with_their_types(api: Api) -> None:
    for path, media in (("dashboard", "text/html"), ("dashboard.js", "text/javascript"), ("dashboard.css", "text/css")):
        response = httpx.get(f"{api.url}/v1/{path}")
        assert response.status_code == 200, path
        assert response.headers["content-type"].startswith(media), path
        assert response.headers["x-content-type-options"] == "nosniff"
    assert "/v1/dashboard/users" in httpx.get(f"{api.url}/v1/openapi.json").json()["paths"]


def test_users_rank_by_used_on_a_meter_or_by_the_largest_share_of_any(tenant: Tenant) -> None:
    # Given ann: 600 of 1,000 tokens; ben: 100 tokens and 9 of 10 images; cy: 600 tokens, as ann; dee: nothing
    seed(
        tenant,
        {
            "ann": {"tokens": 600},
            "ben": {"tokens": 100, "images": 9},
            "cy": {"tokens": 600},
            "dee": {},
        },
    )
    by_share = tenant.ok("GET", "/v1/dashboard/users")
    assert ranked(by_share) == [("ben", "images"), ("ann", "tokens"), ("cy", "tokens"), ("dee", "images")]
    assert (by_share["meters"], by_share["scanned"], by_share["truncated"]) == (["images", "tokens"], 4, False)
    by_tokens = tenant.ok("GET", "/v1/dashboard/users?meter=tokens&limit=3")
    assert ranked(by_tokens) == [("ann", "tokens"), ("cy", "tokens"), ("ben", "tokens")]
    ann = by_tokens["users"][0]["counters"]
    assert {c["meter"]: c["remaining"] for c in ann} == {"images": 10, "tokens": 400}
    assert tenant.ok("GET", "/v1/dashboard/users?meter=audio")["users"] == []


def test_a_listing_reads_a_bounded_number_of_users_and_says_so(tenant: Tenant, monkeypatch: pytest.MonkeyPatch) -> None:
    seed(tenant, {"u1": {"tokens": 1}, "u2": {"tokens": 2}, "u3": {"tokens": 3}})
    monkeypatch.setattr(dashboard, "USERS_SCANNED_MAX", 2)
    listing = tenant.ok("GET", "/v1/dashboard/users?meter=tokens")
    assert (listing["scanned"], listing["truncated"], len(listing["users"])) == (2, True, 2)


def test_only_a_secret_key_lists_users(api: Api, tenant: Tenant) -> None:
    url = f"{api.url}/v1/dashboard/users"
    for key, status in ((tenant.publishable_key, 403), (ADMIN_KEY, 403), ("qf_sk_unknown", 401)):
        assert httpx.get(url, headers={"Authorization": f"Bearer {key}"}).status_code == status
    for query, field in (("limit=0", "limit"), ("limit=1001", "limit"), ("meter=Tokens", "meter")):
        refused = tenant.client.get(f"/v1/dashboard/users?{query}")
        assert refused.status_code == 400
        assert refused.json()["error"]["details"]["field"] == field
