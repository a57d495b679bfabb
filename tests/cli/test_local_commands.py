"""invoke, demo, and what serve says when the server parts are not installed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from quotaflow.cli.main import main
from tests.sdk.test_packaging import BLOCK_SERVER_DEPENDENCIES

pytestmark = pytest.mark.unit
EVENTS = Path(__file__).resolve().parents[2] / "events" / "api"


def event(name: str) -> str:
    return str(EVENTS / f"{name}.json")


def test_invoke_runs_the_api_handler_on_a_sample_event(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["invoke", "api", event("health")]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"== {event('health')}  [200]") and '"ok": true' in out


def test_invoke_runs_a_sequence_filling_placeholders_from_earlier_answers(
    capsys: pytest.CaptureFixture[str],
) -> None:
    names = ["admin-create-tenant", "put-plan", "put-subscription", "reserve", "commit", "usage", "verify"]
    assert main(["invoke", "api", *map(event, names), "--json"]) == 0
    responses = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["statusCode"] for r in responses] == [201, 200, 200, 201, 200, 200, 200]
    assert json.loads(responses[5]["body"])["counters"][0]["remaining"] == 99_200


def test_invoke_takes_placeholder_values_from_flags(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["invoke", "api", event("usage"), "--var", "SECRET_KEY=qf_sk_unknown"]) == 0
    assert "[401]" in capsys.readouterr().out


def test_invoke_says_which_placeholder_lacks_a_value(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["invoke", "api", event("reserve")]) == 2
    err = capsys.readouterr().err
    assert "${SECRET_KEY}" in err and "--var NAME=VALUE" in err
    assert main(["invoke", "api", event("health"), "--var", "lower=x"]) == 2
    assert main(["invoke", "api", "no-such-event.json"]) == 2
    assert "no-such-event.json" in capsys.readouterr().err


def test_invoke_knows_its_functions(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["invoke", "scheduler", event("health")])
    assert "invalid choice: 'scheduler'" in capsys.readouterr().err


def test_invoke_runs_a_scheduled_function_on_its_sample_event(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["invoke", "sweeper", str(EVENTS.parent / "schedule" / "sweeper.json")]) == 0
    assert '"expired": 0' in capsys.readouterr().out


def test_demo_walks_the_seed_scenario_through_the_sdk(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    assert '"remaining": 99200' in out and '"allowed": false' in out and '"ok": true' in out


def test_serve_without_the_local_extra_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "moto", None)  # as if moto were not installed
    assert main(["serve", "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert "missing: moto" in err and "pip install 'quotaflow[local]'" in err


def test_the_cli_of_a_base_install_explains_instead_of_a_traceback() -> None:
    """Without boto3, Powertools and moto: --help works, and the server commands print how to install them."""
    code = BLOCK_SERVER_DEPENDENCIES + (
        "import sys\nfrom quotaflow.cli.main import main\nsys.exit(main(sys.argv[1:]))\n"
    )
    env = {**os.environ, "QUOTAFLOW_ADMIN_KEY": ""}
    for argv, needle in [
        (["serve"], "pip install 'quotaflow[local]'"),
        (["invoke", "api", event("health")], "pip install 'quotaflow[local]'"),
        (["serve", "--dynamodb-endpoint", "http://127.0.0.1:9"], "pip install 'quotaflow[server]'"),
    ]:
        done = subprocess.run(
            [sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=60, env=env, check=False
        )
        assert done.returncode == 2 and needle in done.stderr and "Traceback" not in done.stderr, done.stderr
    done = subprocess.run(
        [sys.executable, "-c", code, "--help"], capture_output=True, text=True, timeout=60, env=env, check=False
    )
    assert done.returncode == 0 and "plans apply" in done.stdout, done.stderr
