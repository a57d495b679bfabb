"""The seed scenario, printed step by step through the Python SDK: what an app developer does on day one."""

from __future__ import annotations

import json
import os

from pydantic import BaseModel

from quotaflow.sdk import Client


def _step(title: str, result: BaseModel | list[BaseModel]) -> None:
    body = (
        [item.model_dump(mode="json") for item in result]
        if isinstance(result, list)
        else result.model_dump(mode="json")
    )
    print(f"\n== {title}")
    print(json.dumps(body, indent=2))


def _walk(qf: Client) -> bool:
    limits = {"tokens": {"label": "Tokens", "quota": 0, "period": "none", "enforcement": "hard"}}
    _step("plan_paygo: tokens, hard limit, no period", qf.put_plan("plan_paygo", "Pay as you go", limits))
    subscription = qf.upsert_subscription("u1", "plan_paygo", custom_limits={"tokens": {"quota": 100_000}})
    _step("user u1 buys 100,000 tokens (custom quota)", subscription)
    with qf.reserve("u1", {"tokens": 4000}, ttl_seconds=300) as held:
        _step("reserve 4,000 tokens before the LLM call", held.info)
        _step("commit the 800 actually used (3,200 come back)", held.commit({"tokens": 800}))
    _step("balance", qf.usage("u1"))
    _step("can u1 use 99,201 tokens?", qf.can_use("u1", "tokens", 99_201))
    _step("the ledger, newest first", list(qf.ledger_entries("u1")))
    verdict = qf.verify()
    _step("verify: counters reconcile to the ledger", verdict)
    return verdict.ok


def run_demo() -> int:
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
    from quotaflow.local.server import build_server

    server = build_server(port=0)
    server.start_in_thread()
    try:
        with Client(api_key=server.admin_key, base_url=server.url) as admin:
            tenant = admin.create_tenant("demo")
        print("== create tenant 'demo' (admin key): its secret and publishable keys are shown once")
        with Client(api_key=tenant.secret_key, base_url=server.url) as qf:
            return 0 if _walk(qf) else 1
    finally:
        server.close()
