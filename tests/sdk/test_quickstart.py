"""The README's Python SDK snippets run as written: the quick start (tests/sdk/quickstart.py), model prices with a
provider adapter in the reserve -> call -> commit pattern (tests/sdk/quickstart_prices.py) and an agent run on one
budget (tests/sdk/quickstart_runs.py), pasted as is."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from quotaflow.local.server import LocalServer
from quotaflow.sdk import TenantCreated

pytestmark = pytest.mark.unit
QUICKSTART = Path(__file__).with_name("quickstart.py")
QUICKSTART_PRICES = Path(__file__).with_name("quickstart_prices.py")
QUICKSTART_RUNS = Path(__file__).with_name("quickstart_runs.py")
QUICKSTART_ACCOUNTS = Path(__file__).with_name("quickstart_accounts.py")
QUICKSTART_PERIODS = Path(__file__).with_name("quickstart_periods.py")


def run_snippet(snippet: Path, server: LocalServer, tenant: TenantCreated) -> list[str]:
    env = {**os.environ, "QUOTAFLOW_URL": server.url, "QUOTAFLOW_API_KEY": tenant.secret_key}
    done = subprocess.run(
        [sys.executable, str(snippet)], capture_output=True, text=True, timeout=60, env=env, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def test_the_quickstart_runs_as_written(server: LocalServer, tenant: TenantCreated) -> None:
    assert run_snippet(QUICKSTART, server, tenant) == ["Tokens 800 99200", "False", "tokens 1000000 99200"]


def test_the_prices_snippet_runs_as_written_and_prints_what_its_comments_say(
    server: LocalServer, tenant: TenantCreated
) -> None:
    assert run_snippet(QUICKSTART_PRICES, server, tenant) == ["16000 10", "13500 495"]


def test_the_agent_run_snippet_runs_as_written(server: LocalServer, tenant: TenantCreated) -> None:
    assert run_snippet(QUICKSTART_RUNS, server, tenant) == [
        "plan 10500",
        "search 4500",
        "answer 2000",
        "90000",
        "['plan', 'search', 'answer']",
    ]


def test_the_periods_and_features_snippet_runs_as_written(server: LocalServer, tenant: TenantCreated) -> None:
    assert run_snippet(QUICKSTART_PERIODS, server, tenant) == [
        "09:30",
        "{'gpt-4o': True, 'max_context_tokens': 128000, 'support': 'priority'}",
        "True False",
    ]


def test_the_accounts_snippet_runs_as_written(server: LocalServer, tenant: TenantCreated) -> None:
    assert run_snippet(QUICKSTART_ACCOUNTS, server, tenant) == [
        "user 500000",
        "account acme 300000",
        "remaining=300000 limited_by='account:acme'",
    ]


@pytest.mark.parametrize(
    ("marker", "snippet"),
    [
        ("sdk-quickstart", QUICKSTART),
        ("sdk-prices", QUICKSTART_PRICES),
        ("sdk-runs", QUICKSTART_RUNS),
        ("sdk-accounts", QUICKSTART_ACCOUNTS),
        ("sdk-periods", QUICKSTART_PERIODS),
    ],
)
def test_the_readme_shows_the_snippets_that_run(marker: str, snippet: Path) -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    shown = readme.split(f"<!-- {marker}:start -->\n```python\n", 1)[1].split("```\n<!-- ", 1)[0]
    assert shown.strip() == snippet.read_text().strip()
