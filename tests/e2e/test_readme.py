"""The README's curl walkthrough runs as written against `quotaflow serve`."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from quotaflow.local.server import build_server

README = Path(__file__).resolve().parents[2] / "README.md"


@pytest.mark.unit
def test_readme_walkthrough_runs_as_written() -> None:
    block = re.search(
        r"<!-- walkthrough:start -->\n```bash\n(.*?)```\n<!-- walkthrough:end -->", README.read_text(), re.S
    )
    assert block is not None
    server = build_server(port=0, admin_key="qf_admin_change_me_0123456789")
    server.start_in_thread()
    try:
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", block.group(1)],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "QF": server.url},
            check=False,
        )
    finally:
        server.close()
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert '"refunded":[{"meter":"tokens","amount":3200}]' in out
    assert '"remaining":99200' in out
    assert '{"allowed":false,"remaining":99200}' in out
    assert '"ok":true' in out and '"kind":"commit"' in out
