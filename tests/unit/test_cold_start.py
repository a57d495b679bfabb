"""What the API function's cold start pays for: importing it builds none of its pydantic models (each is built on
first use), a request builds only the models it touches, and the import runs with the cyclic collector paused,
leaving it running and what was built frozen. Speed itself is measured by `make bench`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
BUILT_MODELS = """
import json, sys
from quotaflow.ledger.model import Model

def subclasses(cls):
    for sub in cls.__subclasses__():
        yield sub
        yield from subclasses(sub)

def built():
    return sorted(f"{m.__module__}.{m.__qualname__}" for m in subclasses(Model) if m.__pydantic_complete__)
"""


def run(code: str) -> dict[str, list[Any]]:
    done = subprocess.run(
        [sys.executable, "-c", BUILT_MODELS + code], cwd=REPO, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, list[Any]] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_importing_the_api_function_builds_none_of_its_models() -> None:
    result = run(
        "from quotaflow.handlers import api\n"
        "print(json.dumps({'models': [m.__name__ for m in subclasses(Model)], 'built': built()}))"
    )
    assert len(result["models"]) >= 40, "every model of the functions derives from quotaflow.ledger.model.Model"
    assert result["built"] == []


def test_a_request_builds_only_what_it_touches() -> None:
    result = run(
        "import os\n"
        "os.environ.update(QUOTAFLOW_ADMIN_KEY='qf_admin_cold_key_0123456789', POWERTOOLS_LOG_LEVEL='WARNING')\n"
        "from quotaflow.handlers import api\n"
        "from quotaflow.local.events import LocalContext, http_event\n"
        "body = json.dumps({'user_id': 'u1', 'lines': [{'meter': 'tokens', 'amount': 1}]}).encode()\n"
        "headers = {'Authorization': 'Bearer qf_admin_cold_key_0123456789', 'Content-Type': 'application/json'}\n"
        "reply = api.handler(http_event('POST', '/v1/reservations', headers=headers, body=body), LocalContext())\n"
        "assert reply['statusCode'] == 403, reply\n"
        "print(json.dumps({'models': [m.__name__ for m in subclasses(Model)], 'built': built()}))"
    )
    assert result["built"] == ["quotaflow.config.Settings"], "a refused reserve reads the settings, and builds no more"


def test_importing_the_api_function_leaves_the_collector_running_with_its_objects_frozen() -> None:
    result = run(
        "import gc\n"
        "from quotaflow.handlers import api\n"
        "print(json.dumps({'enabled': [gc.isenabled()], 'frozen': [gc.get_freeze_count()]}))"
    )
    assert result["enabled"] == [True], "the collector resumes once the imports are done"
    assert result["frozen"][0] > 10_000, "what the imports built is frozen, so no collection rescans it"


def test_an_embedding_process_that_runs_without_the_collector_keeps_it_off() -> None:
    result = run(
        "import gc\ngc.disable()\nfrom quotaflow.handlers import api\nprint(json.dumps({'enabled': [gc.isenabled()]}))"
    )
    assert result["enabled"] == [False]
