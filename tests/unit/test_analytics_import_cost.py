"""The API function's cold start does not pay for analytics: neither engine's client loads at import."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]


def test_importing_the_api_function_leaves_duckdb_and_the_athena_client_unloaded() -> None:
    code = (
        "import sys, quotaflow.handlers.api, quotaflow.handlers.lake_writer\n"
        "print(sorted(m for m in ('duckdb', 'sqlglot', 'pyarrow', 'pandas') if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
