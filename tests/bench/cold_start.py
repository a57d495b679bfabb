"""Cold start: each handler module's import time in fresh interpreters (median of IMPORT_RUNS, after one untimed
run that writes the bytecode caches), against `import boto3` + `boto3.client("dynamodb")`; the API function's
first request; which heavy libraries the API function loads; and where its import time goes (-X importtime)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from typing import Any

from tests.bench.harness import ADMIN_KEY, TABLE_NAME, median, progress

IMPORT_RUNS = 5
CHILD_TIMEOUT_SECONDS = 120
HEAVIEST_SHOWN = 8
OWN_MODULES_SHOWN = 5
HANDLER_MODULES = {
    "api": "quotaflow.handlers.api",
    "webhook": "quotaflow.handlers.stripe_webhook",
    "reaper": "quotaflow.handlers.reaper",
    "export": "quotaflow.handlers.billing_export",
    "sweeper": "quotaflow.handlers.sweeper",
}
# Must never load in the API function: stripe (~0.7 s, only the webhook and export need it) and the X-Ray SDK
# (~0.5 s; tracing comes from Lambda's active tracing instead). The others are watched, not targets.
FORBIDDEN_IN_API = ("stripe", "aws_xray_sdk")
WATCHED_IN_API = ("httpx", "moto", "boto3", "pydantic", "aws_lambda_powertools")

_TIME_IMPORT = """
import time
started = time.perf_counter()
import importlib
importlib.import_module({module!r})
print(round((time.perf_counter() - started) * 1000, 2))
"""
_TIME_CLIENT = """
import time
started = time.perf_counter()
import boto3
boto3.client("dynamodb", region_name="us-east-1")
print(round((time.perf_counter() - started) * 1000, 2))
"""
_FIRST_REQUEST = """
import json, sys, time
started = time.perf_counter()
from quotaflow.handlers import api
from quotaflow.handlers.runtime import runtime
runtime()
from quotaflow.local.events import LocalContext, http_event
response = api.handler(http_event("GET", "/v1/health"), LocalContext())
elapsed_ms = round((time.perf_counter() - started) * 1000, 2)
assert response["statusCode"] == 200, response
print(json.dumps({{"ms": elapsed_ms, "loaded": {{name: name in sys.modules for name in {names!r}}}}}))
"""


@dataclass
class ColdStart:
    import_ms: dict[str, float | None] = field(default_factory=dict)
    first_request_ms: float = 0.0
    loaded_in_api: dict[str, bool] = field(default_factory=dict)
    heaviest: list[tuple[str, float, float]] = field(default_factory=list)  # (package, self ms summed, share)
    heaviest_own: list[tuple[str, float]] = field(default_factory=list)  # (quotaflow module, self ms)
    import_total_ms: float = 0.0
    import_ratio_api_fastest: float = float("nan")

    @property
    def import_ratio_api(self) -> float:
        api, client = self.import_ms.get("api"), self.import_ms.get("boto3_client")
        return api / client if api and client else float("nan")

    @property
    def forbidden_loaded(self) -> list[str]:
        return [name for name in FORBIDDEN_IN_API if self.loaded_in_api.get(name)]


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update({"QUOTAFLOW_ADMIN_KEY": ADMIN_KEY, "QUOTAFLOW_TABLE": TABLE_NAME, "POWERTOOLS_LOG_LEVEL": "WARNING"})
    env["PYDANTIC_DISABLE_PLUGINS"] = "__all__"  # as the stack sets it for every function (infra lambdas.py)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def _python(code: str, *flags: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, *flags, "-c", code],
        capture_output=True,
        text=True,
        timeout=CHILD_TIMEOUT_SECONDS,
        env=_child_env(),
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"a fresh interpreter failed:\n{done.stderr[-2000:]}")
    return done


def _median_ms(code: str) -> float:
    _python(code)  # writes bytecode caches, so every timed run starts alike
    return median([_printed_ms(_python(code)) for _ in range(IMPORT_RUNS)])


def importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def _printed_ms(done: subprocess.CompletedProcess[str]) -> float:
    return float(done.stdout.strip().splitlines()[-1])


def measure() -> ColdStart:
    cold = ColdStart()
    api_code = _TIME_IMPORT.format(module=HANDLER_MODULES["api"])
    progress(f"cold start: API function vs boto3 + client('dynamodb'), {IMPORT_RUNS} alternating interpreters")
    _python(api_code)  # bytecode caches first, so every timed run starts alike
    _python(_TIME_CLIENT)
    api_ms, client_ms = [], []
    for _ in range(IMPORT_RUNS):  # alternating, so a busy moment on the machine hits both sides
        api_ms.append(_printed_ms(_python(api_code)))
        client_ms.append(_printed_ms(_python(_TIME_CLIENT)))
    cold.import_ms["boto3_client"], cold.import_ms["api"] = median(client_ms), median(api_ms)
    cold.import_ratio_api_fastest = min(api_ms) / min(client_ms)  # noise only ever adds time: a steadier reading
    for name, module in HANDLER_MODULES.items():
        if name == "api":
            continue
        if not importable(module):
            cold.import_ms[name] = None
            continue
        progress(f"cold start: import {module}, median of {IMPORT_RUNS}")
        cold.import_ms[name] = _median_ms(_TIME_IMPORT.format(module=module))
    names = (*FORBIDDEN_IN_API, *WATCHED_IN_API)
    runs = [json.loads(_python(_FIRST_REQUEST.format(names=names)).stdout.strip().splitlines()[-1]) for _ in range(3)]
    cold.first_request_ms = median([run["ms"] for run in runs])
    cold.loaded_in_api = runs[-1]["loaded"]
    cold.heaviest, cold.heaviest_own, cold.import_total_ms = heaviest_imports(HANDLER_MODULES["api"])
    return cold


def heaviest_imports(module: str) -> tuple[list[tuple[str, float, float]], list[tuple[str, float]], float]:
    """Import time under -X importtime (which itself adds some overhead), from self times so shares add up:
    per top-level package (name, ms, share of the total), heaviest first; quotaflow's own modules (name, ms)."""
    done = _python(f"import {module}", "-X", "importtime")
    by_package: dict[str, float] = {}
    own: dict[str, float] = {}
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, _, name = (part.strip() for part in line.removeprefix("import time:").split("|"))
        package = name.split(".")[0]
        by_package[package] = by_package.get(package, 0.0) + int(self_us) / 1000
        if package == "quotaflow":
            own[name] = int(self_us) / 1000
    total_ms = sum(by_package.values())
    ranked = sorted(by_package.items(), key=lambda pair: pair[1], reverse=True)[:HEAVIEST_SHOWN]
    own_ranked = sorted(own.items(), key=lambda pair: pair[1], reverse=True)[:OWN_MODULES_SHOWN]
    return (
        [(name, round(ms, 1), round(ms / total_ms, 3)) for name, ms in ranked],
        [(name, round(ms, 1)) for name, ms in own_ranked],
        round(total_ms, 1),
    )


def describe_loaded(loaded: dict[str, Any]) -> str:
    return ", ".join(f"{name} {'yes' if flag else 'no'}" for name, flag in loaded.items())
