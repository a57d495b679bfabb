"""Analytics routes of the API function: usage queries over the lake (DuckDB under `serve`, Athena in AWS).

Importing this module registers the routes on the resolver in `quotaflow.handlers.http`. Neither engine's
library loads before the first analytics request."""

from __future__ import annotations

from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Body

from quotaflow.handlers.http import access, app, json_response, tenant_scope
from quotaflow.handlers.runtime import runtime
from quotaflow.ledger import errors
from quotaflow.services import analytics
from quotaflow.store.lake_query import Lake


def _lake() -> Lake:
    lake = runtime().lake()
    if lake is None:
        raise errors.NotFound("this deployment has no usage lake")
    return lake


def _reply(answer: analytics.UsageRows | analytics.QueryPending) -> Response[Any]:
    return json_response(202 if isinstance(answer, analytics.QueryPending) else 200, answer)


@app.post("/v1/analytics/usage")
@access("secret")
def analytics_usage(body: Annotated[analytics.UsageQuery, Body()]) -> Response[Any]:
    """Usage of one meter per time window and group, from the lake. 202 with a `query_id` when Athena needs
    longer than the request may wait: poll GET /v1/analytics/queries/{query_id}."""
    return _reply(analytics.usage(tenant_scope(), _lake(), body))


@app.get("/v1/analytics/queries/<query_id>")
@access("secret")
def analytics_query(query_id: str) -> Response[Any]:
    """A usage query still running on Athena: 202 while it runs, then 200 with its rows."""
    scope = tenant_scope()
    if not analytics.QUERY_ID.fullmatch(query_id):
        raise errors.InvalidRequest("query_id is the id a usage query answered with", field="query_id")
    return _reply(analytics.query_result(scope, _lake(), query_id))
