"""What `quotaflow serve` prints: by default one readable line per request and per scheduled run that did something
(idle runs print nothing); with `--log-format json` the functions' structured entries, as in Lambda. Every line
names the function that wrote it."""

from __future__ import annotations

import json
import re
import time

import httpx
import pytest

from tests.support.serve_process import ServeProcess, eventually

pytestmark = pytest.mark.unit
LINE_SECONDS_MAX = 60  # a bound on waiting for a timer's line, not a speed check
IDLE_TIMER_RUNS_S = 12  # long enough for two sweeper runs (every 5 s) and several notifier runs (every 2 s)
FUNCTIONS = "api|stripe-webhook|sweeper|notifier|billing-export|reaper|serve"
LINE = re.compile(rf"^\d\d:\d\d:\d\d ({FUNCTIONS}) +\S")
REQUEST = re.compile(r"^\d\d:\d\d:\d\d api +POST /v1/reservations 201 \d+\.\d ms$")


def reserve_briefly(serve: ServeProcess) -> None:
    """A tenant, a plan, and a 1-second hold that the sweeper will expire."""
    admin = {"Authorization": f"Bearer {serve.admin_key}"}
    key = httpx.post(f"{serve.url}/v1/admin/tenants", json={"tenant_id": "acme"}, headers=admin, timeout=30)
    qf = httpx.Client(base_url=serve.url, headers={"Authorization": f"Bearer {key.json()['secret_key']}"}, timeout=30)
    plan = {"name": "Free", "limits": {"tokens": {"quota": 100, "period": "none"}}}
    assert qf.put("/v1/plans/free", json=plan).status_code == 200
    assert qf.put("/v1/users/u1/subscription", json={"plan_id": "free"}).status_code == 200
    hold = {"user_id": "u1", "lines": [{"meter": "tokens", "amount": 10}], "ttl_seconds": 1}
    assert qf.post("/v1/reservations", json=hold).status_code == 201


def log_lines(serve: ServeProcess) -> list[str]:
    """Everything after the start banner (which ends with the timers' line)."""
    lines = serve.output.splitlines()
    banner_end = next(i for i, line in enumerate(lines) if line.startswith("scheduled functions on timers"))
    return lines[banner_end + 1 :]


def test_text_logs_are_one_line_per_request_and_per_run_that_did_something() -> None:
    with ServeProcess() as serve:
        reserve_briefly(serve)
        expired = serve.wait_for_line(re.compile(r" sweeper +expired 1 "), LINE_SECONDS_MAX)
        assert expired is not None, serve.output

        def expiry_notified() -> bool:  # the expiry's own stream records, read by the notifier's next run
            lines = log_lines(serve)
            return any(" notifier " in line for line in lines[lines.index(expired) :])

        eventually(expiry_notified, LINE_SECONDS_MAX, "the notifier read the expiry's stream records")
        seen = len(log_lines(serve))
        time.sleep(IDLE_TIMER_RUNS_S)  # idle timer runs happen now: they must add nothing
        lines = log_lines(serve)
    assert len(lines) == seen, f"idle runs printed: {lines[seen:]}"
    assert [line for line in lines if not LINE.match(line)] == [], "every line names its function"
    assert any(REQUEST.match(line) for line in lines), lines
    assert not any("{" in line for line in lines if " api " in line), "no JSON or metrics blobs in text mode"


def test_json_logs_are_the_functions_structured_entries_each_naming_its_function() -> None:
    with ServeProcess("--log-format", "json") as serve:
        reserve_briefly(serve)
        sweep = serve.wait_for_line(re.compile(r'"message":"sweep"'), LINE_SECONDS_MAX)
        assert sweep is not None, serve.output
        lines = log_lines(serve)
    entries = [json.loads(line) for line in lines]
    logged = [entry for entry in entries if "message" in entry]  # the rest are metrics (EMF) documents
    assert all(entry["function_name"].startswith("quotaflow-") for entry in logged), logged
    requests = [entry for entry in logged if entry["message"] == "request"]
    assert {"method": "POST", "path": "/v1/reservations", "status": 201} in [
        {name: entry[name] for name in ("method", "path", "status")} for entry in requests
    ]
    sweeps = [entry for entry in logged if entry["message"] == "sweep"]
    assert {entry["function_arn"].rsplit(":", 1)[-1] for entry in sweeps} == {"quotaflow-sweeper"}
    assert all(entry["function_name"] == "quotaflow-sweeper" for entry in sweeps)
