"""Runs inside an isolated interpreter (`python -I -S`): the standard library plus one Lambda bundle, nothing else.

Reads `{"bundle": DIR, "handler": "quotaflow.handlers.api.handler", "function_name": ..., "events": [...]}` on
stdin, imports the handler from the bundle as Lambda's runtime would, hands it each event in turn (one container,
warm after the first), and prints `{"results": [...], "quotaflow_file": ..., "foreign_paths": [...],
"loaded": [...]}` as the last line of stdout. Only the standard library is imported before the bundle is on the
path, so any module the bundle lacks fails here as it would in AWS."""

from __future__ import annotations

import importlib
import json
import sys
from dataclasses import dataclass, field
from typing import Any

WATCHED_MODULES = ("boto3", "botocore", "pydantic", "aws_lambda_powertools", "stripe", "httpx", "moto", "yaml")


@dataclass
class Context:
    """What Lambda hands a handler besides the event (the attributes Powertools reads)."""

    function_name: str
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 1024
    aws_request_id: str = "bundle-run"
    log_group_name: str = "/aws/lambda/bundle-run"
    log_stream_name: str = "bundle-run"
    invoked_function_arn: str = field(default="")

    def __post_init__(self) -> None:
        self.invoked_function_arn = f"arn:aws:lambda:us-east-1:000000000000:function:{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


def main() -> None:
    order = json.loads(sys.stdin.read())
    bundle = order["bundle"]
    sys.path.insert(0, bundle)
    # the interpreter's own standard library lives under its base prefix; a venv or site-packages would not
    foreign = [p for p in sys.path if p != bundle and not (p.startswith(sys.base_prefix) and "site-packages" not in p)]
    module_name, _, function_name = order["handler"].rpartition(".")
    handler = getattr(importlib.import_module(module_name), function_name)
    context = Context(order["function_name"])
    results: list[Any] = [handler(event, context) for event in order["events"]]
    quotaflow = sys.modules["quotaflow"]
    print(
        json.dumps(
            {
                "results": results,
                "quotaflow_file": quotaflow.__file__,
                "foreign_paths": foreign,
                "loaded": sorted(name for name in WATCHED_MODULES if name in sys.modules),
            }
        )
    )


if __name__ == "__main__":
    main()
