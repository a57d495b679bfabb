"""Browser routes of the API function: the embeddable usage widget, the operator dashboard page and its assets
(public, no secrets in any of them), and the dashboard's one extra read, users by consumption (secret key).

Importing this module registers the routes on the resolver in `quotaflow.handlers.http`."""

from __future__ import annotations

from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Query

from quotaflow import web
from quotaflow.handlers.http import access, app, header, preflight, tenant_scope
from quotaflow.ledger.amounts import METER_PATTERN
from quotaflow.services import dashboard

WIDGET_CACHE_CONTROL = "public, max-age=300"  # pages pick up a new widget within minutes; ETag revalidates
DASHBOARD_CACHE_CONTROL = "no-cache"
# The dashboard holds a secret key in memory: only its own scripts run, it talks only to this API, and no other
# site may frame it.
DASHBOARD_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}


def _static(name: str, cache_control: str, extra_headers: dict[str, str] | None = None) -> Response[Any]:
    preflight("public", None)
    asset = web.asset(name)
    headers = {
        "Cache-Control": cache_control,
        "ETag": asset.etag,
        "X-Content-Type-Options": "nosniff",
        **(extra_headers or {}),
    }
    if asset.etag in (header("if-none-match") or ""):
        return Response(status_code=304, body=None, headers=headers)
    return Response(status_code=200, content_type=asset.content_type, body=asset.body, headers=headers)


@app.get("/v1/widget.js", include_in_schema=False)
@access("public")
def widget_js() -> Response[Any]:
    return _static("widget.js", WIDGET_CACHE_CONTROL, {"Cross-Origin-Resource-Policy": "cross-origin"})


@app.get("/v1/dashboard", include_in_schema=False)
@access("public")
def dashboard_page() -> Response[Any]:
    return _static("dashboard.html", DASHBOARD_CACHE_CONTROL, DASHBOARD_HEADERS)


@app.get("/v1/dashboard.js", include_in_schema=False)
@access("public")
def dashboard_js() -> Response[Any]:
    return _static("dashboard.js", DASHBOARD_CACHE_CONTROL)


@app.get("/v1/dashboard.css", include_in_schema=False)
@access("public")
def dashboard_css() -> Response[Any]:
    return _static("dashboard.css", DASHBOARD_CACHE_CONTROL)


@app.get("/v1/dashboard/users")
@access("secret")
def dashboard_users(
    meter: Annotated[str | None, Query(pattern=METER_PATTERN)] = None,
    limit: Annotated[int, Query(ge=1, le=dashboard.USERS_LISTED_MAX)] = dashboard.USERS_LISTED_DEFAULT,
) -> dashboard.UsersView:
    """The tenant's users by consumption this period: by `used` on `meter`, or without one by the largest share
    of allowance used on any meter. Reads at most 1,000 users (one Query each); `truncated` says when there are more."""
    return dashboard.users_by_consumption(tenant_scope(), meter, limit)
