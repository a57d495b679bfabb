"""The API function driven through real-shaped API Gateway v2 events, on moto."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest

from quotaflow.config import Settings
from quotaflow.handlers import api
from quotaflow.handlers.runtime import Runtime, bind
from quotaflow.local.events import LocalContext, http_event
from quotaflow.store.table import Store
from tests.conftest import Clock

ADMIN_KEY = "qf_admin_test_key_0123456789"


@dataclass
class Reply:
    status: int
    body: Any
    headers: dict[str, str]


class Api:
    def __init__(self, key: str | None = None) -> None:
        self.key = key

    def __call__(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        key: str | None = None,
        headers: dict[str, str] | None = None,
        raw: str | None = None,
        query: str = "",
    ) -> Reply:
        sent = {"Content-Type": "application/json", **(headers or {})}
        auth = key if key is not None else self.key
        if auth:
            sent["Authorization"] = f"Bearer {auth}"
        payload = raw if raw is not None else (json.dumps(body) if body is not None else None)
        event = http_event(method, path, query=query, headers=sent, body=payload.encode() if payload else None)
        response = api.handler(event, LocalContext())
        text = response.get("body")
        return Reply(response["statusCode"], json.loads(text) if text else None, response.get("headers") or {})

    def as_key(self, key: str) -> Api:
        return Api(key)


@pytest.fixture
def runtime(moto_store: Store, clock: Clock) -> Runtime:
    bound = Runtime(store=moto_store, settings=Settings(admin_key=ADMIN_KEY), clock=clock)
    bind(bound)
    return bound


@pytest.fixture
def admin(runtime: Runtime) -> Api:
    return Api(ADMIN_KEY)


@pytest.fixture
def tenant_keys(admin: Api) -> dict[str, str]:
    created = admin("POST", "/v1/admin/tenants", {"tenant_id": "acme"})
    assert created.status == 201, created.body
    return created.body


@pytest.fixture
def qf(tenant_keys: dict[str, str]) -> Api:
    """The tenant's secret key, with plan_paygo and user u1 holding 100,000 tokens (the seed)."""
    client = Api(tenant_keys["secret_key"])
    plan = {
        "name": "Pay as you go",
        "limits": {
            "tokens": {"label": "Tokens", "quota": 0, "period": "none", "enforcement": "hard"},
            "requests": {"label": "Requests", "quota": 5000, "period": "day", "enforcement": "soft"},
        },
    }
    assert client("PUT", "/v1/plans/plan_paygo", plan).status == 200
    assert (
        client(
            "PUT",
            "/v1/users/u1/subscription",
            {"plan_id": "plan_paygo", "custom_limits": {"tokens": {"quota": 100000}}},
        ).status
        == 200
    )
    return client


def bind_with_stripe(store: Store, clock: Clock, stripe_api_base: str) -> Runtime:
    """The functions' runtime with the Stripe SDK pointed at a loopback Stripe server."""
    bound = Runtime(store=store, clock=clock, settings=Settings(admin_key=ADMIN_KEY, stripe_api_base=stripe_api_base))
    bind(bound)
    return bound
