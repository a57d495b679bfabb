"""Requests the routes do not take: an undeclared method on a routed path is 405 with `Allow`, a path nothing
routes 404, both in the API's error shape; a blank query value is a value (API Gateway keeps it), so it is
validated. Found by schemathesis's coverage phase."""

from __future__ import annotations

import pytest

from quotaflow.local.events import query_parameters
from tests.api.conftest import Api

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("PATCH", "/v1/events", ["POST"]),
        ("DELETE", "/v1/users/u1/subscription", ["GET", "PUT"]),
        ("PUT", "/v1/health", ["GET"]),
        ("HEAD", "/v1/plans", ["GET"]),
        ("TRACE", "/v1/reservations/r1/commit", ["POST"]),
        ("GET", "/v1/stripe/webhook/acme", ["POST"]),  # its own function takes the POST
    ],
)
def test_an_undeclared_method_is_405_naming_the_allowed_ones(
    qf: Api, method: str, path: str, allowed: list[str]
) -> None:
    refused = qf(method, path)
    assert refused.status == 405, refused.body
    assert refused.headers["Allow"] == ", ".join(allowed)
    assert refused.body["error"]["code"] == "method_not_allowed"
    assert refused.body["error"]["details"] == {"allowed": allowed}


@pytest.mark.parametrize("method", ["GET", "POST", "PATCH"])
def test_a_path_nothing_routes_is_404(qf: Api, method: str) -> None:
    missing = qf(method, "/v1/no-such-thing")
    assert (missing.status, missing.body["error"]["code"]) == (404, "not_found")
    assert "Allow" not in missing.headers


def test_a_blank_query_value_is_validated_not_dropped(qf: Api) -> None:
    refused = qf("GET", "/v1/dashboard/users", query="meter=")
    assert refused.status == 400, refused.body
    assert refused.body["error"]["details"]["field"] == "meter"
    assert qf("GET", "/v1/dashboard/users", query="meter=tokens").status == 200


def test_query_parameters_are_shaped_as_api_gateway_shapes_them() -> None:
    assert query_parameters("") is None
    assert query_parameters("meter=&limit=5") == {"meter": "", "limit": "5"}
    assert query_parameters("a=1&a=2&b=x%20y") == {"a": "1,2", "b": "x y"}
