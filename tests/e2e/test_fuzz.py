"""schemathesis against the served OpenAPI document (`quotaflow serve`, embedded backend): every operation, with
generated valid and invalid inputs, a fixed example budget. No response may be a 5xx, and every response must
match the documented status codes and schemas. Then its coverage phase, which also sends undeclared methods and
content types. What they found earlier lives on as regression tests in tests/api/test_auth_and_input.py and
tests/api/test_content_types.py."""

from __future__ import annotations

import itertools
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from quotaflow.local.server import LocalServer, build_server

pytestmark = pytest.mark.unit
EXAMPLES_PER_OPERATION = 25
MODES = (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE)
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
COVERAGE_RUN_TIMEOUT_SECONDS = 300  # about 10 s here; the bound is for a wedged run, not a speed target
# The coverage phase's settings. Its undeclared methods leave out TRACE and QUERY, which `serve`'s HTTP server
# answers itself before any function sees the request (that is serve's, not the API function's). The Stripe
# webhook's path is routed to its own function by method (API Gateway sends only POST there); serve sends it every
# method. `/v1/prices/import` is also a model name under `/v1/prices/{model}` (GET and PUT answer there, as in API
# Gateway, where the most specific route per method wins), so its undeclared methods are the other path's declared
# ones. Schema-valid requests the API refuses on purpose (a meter the plan lacks, a cursor it never issued) are
# 400 by contract, so `positive_data_acceptance` is off; every other check runs.
COVERAGE_CONFIG = """
[phases.coverage]
unexpected-methods = ["get", "put", "post", "delete", "options", "patch"]

[[operations]]
include-path = "/v1/stripe/webhook/{tenant_id}"
phases.coverage.unexpected-methods = []

[[operations]]
include-path = "/v1/prices/import"
phases.coverage.unexpected-methods = ["delete", "patch"]
"""


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[LocalServer, str]]:
    server = build_server(port=0, admin_key="qf_admin_fuzz_key_0123456789")
    server.start_in_thread()
    admin = {"Authorization": f"Bearer {server.admin_key}"}
    secret = httpx.post(f"{server.url}/v1/admin/tenants", json={"tenant_id": "acme"}, headers=admin).json()[
        "secret_key"
    ]
    auth = {"Authorization": f"Bearer {secret}"}
    plan = {"name": "Pay as you go", "limits": {"tokens": {"quota": 100, "period": "none"}}}
    assert httpx.put(f"{server.url}/v1/plans/plan_paygo", json=plan, headers=auth).status_code == 200
    assert (
        httpx.put(f"{server.url}/v1/settings", json={"default_plan_id": "plan_paygo"}, headers=auth).status_code == 200
    )
    yield server, secret
    server.close()


def test_no_input_breaks_the_api(served: tuple[LocalServer, str]) -> None:
    server, secret = served
    schema = schemathesis.openapi.from_url(f"{server.url}/v1/openapi.json")
    headers = {"Authorization": f"Bearer {secret}"}
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 20
    calls: list[int] = []

    for operation, mode in itertools.product(operations, MODES):

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=EXAMPLES_PER_OPERATION, deadline=None, suppress_health_check=list(HealthCheck), database=None
        )
        def fuzz(case: schemathesis.Case) -> None:
            response = case.call_and_validate(base_url=server.url, headers=headers, checks=CHECKS)
            calls.append(response.status_code)

        try:
            fuzz()
        except Unsatisfiable:  # nothing invalid to generate (e.g. GET /v1/health in negative mode)
            assert mode is schemathesis.GenerationMode.NEGATIVE, operation.label
    print(f"schemathesis: {len(calls)} calls over {len(operations)} operations; statuses {sorted(set(calls))}")
    assert len(calls) >= 10 * len(operations)


def test_the_coverage_phase_finds_nothing(served: tuple[LocalServer, str], tmp_path: Path) -> None:
    """Boundary values, undeclared methods and undeclared content types on every operation (schemathesis's own
    runner, seeded, so a failure replays)."""
    server, secret = served
    config = tmp_path / "schemathesis.toml"
    config.write_text(COVERAGE_CONFIG)
    command = [sys.executable, "-m", "schemathesis.cli", "--config-file", str(config), "run"]
    options = [
        "--phases=coverage",
        "--checks=all",
        "--exclude-checks=positive_data_acceptance",
        "--seed=15",
        "--no-color",
        "--request-timeout=30",
    ]
    done = subprocess.run(
        [*command, f"{server.url}/v1/openapi.json", *options, "-H", f"Authorization: Bearer {secret}"],
        capture_output=True,
        text=True,
        timeout=COVERAGE_RUN_TIMEOUT_SECONDS,
        check=False,
        cwd=tmp_path,  # its cache directory lands there, not in the repo
    )
    summary = done.stdout[done.stdout.rfind("SUMMARY") :]
    print(summary)
    assert done.returncode == 0, done.stdout[-20_000:] + done.stderr[-2_000:]
    tested = re.search(r"Tested: (\d+)", summary)
    assert tested is not None and int(tested.group(1)) >= 20, summary
