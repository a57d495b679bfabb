"""The server parts are optional extras: commands that run the handlers say how to install them instead of failing
with an ImportError."""

from __future__ import annotations

import importlib
from collections.abc import Sequence

from quotaflow.cli.output import CommandFailed

SERVER_MODULES = ("boto3", "aws_lambda_powertools")  # quotaflow[server]
LOCAL_MODULES = (*SERVER_MODULES, "moto")  # quotaflow[local]: the embedded DynamoDB


def missing_modules(names: Sequence[str]) -> list[str]:
    missing: list[str] = []
    for name in names:
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    return missing


def require(command: str, names: Sequence[str]) -> None:
    """Fail with the pip command to run when `command` needs modules that are not installed."""
    missing = missing_modules(names)
    if missing:
        extra = "local" if "moto" in names else "server"
        raise CommandFailed(
            f"`quotaflow {command}` runs the server code, whose parts are not installed "
            f"(missing: {', '.join(missing)}). Install them with:\n    pip install 'quotaflow[{extra}]'"
        )
