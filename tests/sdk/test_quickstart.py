"""The README's Python SDK quick start (tests/sdk/quickstart.py, pasted as is) runs as written."""

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


def test_the_quickstart_runs_as_written(server: LocalServer, tenant: TenantCreated) -> None:
    env = {**os.environ, "QUOTAFLOW_URL": server.url, "QUOTAFLOW_API_KEY": tenant.secret_key}
    done = subprocess.run(
        [sys.executable, str(QUICKSTART)], capture_output=True, text=True, timeout=60, env=env, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["Tokens 800 99200", "False", "tokens 1000000 99200"]
