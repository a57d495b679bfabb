"""The seed scenario, printed step by step: what an app developer does with quotaflow on day one."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from typing import Any

STEPS_WIDTH = 72


class Http:
    """A tiny JSON client over urllib (the demo needs nothing beyond the standard library)."""

    def __init__(self, base_url: str, key: str) -> None:
        self.base_url = base_url
        self.key = key

    def __call__(self, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(  # noqa: S310 - the demo talks to its own loopback server
            self.base_url + path,
            data=data,
            method=method,
            headers={"Authorization": f"Bearer {self.key}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback, http only
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"null")


def _step(title: str, status: int, body: Any) -> None:
    print(f"\n== {title}  [{status}]")
    print(json.dumps(body, indent=2))


def run_demo() -> int:
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
    from quotaflow.local.server import build_server

    server = build_server(port=0)
    server.start_in_thread()
    try:
        admin = Http(server.url, server.admin_key)
        status, tenant = admin("POST", "/v1/admin/tenants", {"tenant_id": "demo"})
        _step(
            "create tenant 'demo' (admin key)",
            status,
            {**tenant, "secret_key": "qf_sk_…", "publishable_key": "qf_pk_…"},
        )
        qf = Http(server.url, tenant["secret_key"])
        steps: list[tuple[str, str, str, dict[str, Any] | None]] = [
            (
                "plan_paygo: tokens, hard limit, no period",
                "PUT",
                "/v1/plans/plan_paygo",
                {
                    "name": "Pay as you go",
                    "limits": {"tokens": {"label": "Tokens", "quota": 0, "period": "none", "enforcement": "hard"}},
                },
            ),
            (
                "user u1 buys 100,000 tokens (custom quota)",
                "PUT",
                "/v1/users/u1/subscription",
                {"plan_id": "plan_paygo", "custom_limits": {"tokens": {"quota": 100000}}},
            ),
        ]
        for title, method, path, body in steps:
            _step(title, *qf(method, path, body))
        status, held = qf(
            "POST",
            "/v1/reservations",
            {"user_id": "u1", "lines": [{"meter": "tokens", "amount": 4000}], "ttl_seconds": 300},
        )
        _step("reserve 4,000 tokens before the LLM call", status, held)
        _step(
            "commit the 800 actually used (3,200 come back)",
            *qf(
                "POST",
                f"/v1/reservations/{held['reservation_id']}/commit",
                {"lines": [{"meter": "tokens", "amount": 800}]},
            ),
        )
        _step("balance", *qf("GET", "/v1/users/u1/usage"))
        _step("can u1 use 99,201 tokens?", *qf("POST", "/v1/users/u1/can-use", {"meter": "tokens", "amount": 99201}))
        _step("the ledger, newest first", *qf("GET", "/v1/users/u1/ledger"))
        status, verdict = qf("POST", "/v1/verify", {})
        _step("verify: counters reconcile to the ledger", status, verdict)
        return 0 if verdict.get("ok") else 1
    finally:
        server.close()
