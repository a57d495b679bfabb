"""The README's curl walkthrough runs as written against `quotaflow serve`."""

from __future__ import annotations

import os
import re
import subprocess
import sys
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


@pytest.mark.unit
def test_readme_analytics_example_runs_as_written() -> None:
    block = re.search(r"<!-- analytics:start -->\n```bash\n(.*?)```\n<!-- analytics:end -->", README.read_text(), re.S)
    assert block is not None
    server = build_server(port=0, admin_key="qf_admin_change_me_0123456789")
    server.start_in_thread()
    scripts = str(Path(sys.executable).parent)  # where `quotaflow` is installed, as after `make install`
    try:
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", block.group(1)],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "QF": server.url, "PATH": f"{scripts}:{os.environ['PATH']}"},
            check=False,
        )
    finally:
        server.close()
    assert done.returncode == 0, done.stderr
    assert re.search(r'"model":"gpt-4o","used":800,"events":2\}', done.stdout), done.stdout
    assert re.search(r'"model":"claude","used":400,"events":1\}', done.stdout), done.stdout
    table = done.stdout[done.stdout.index("WINDOW_START") :].splitlines()  # curl prints no final newlines
    assert table[0].split() == ["WINDOW_START", "MODEL", "USED", "EVENTS"]
    assert [line.split()[1:] for line in table[1:]] == [["gpt-4o", "800", "2"], ["claude", "400", "1"]]
