"""What `serve` prints. `text` (the default): one readable line per request and per scheduled run that did
something, and the functions' warnings and errors, each line naming the function that wrote it. `json`: the
functions' own structured JSON and metrics, exactly as they write them in Lambda, and serve's lines as JSON.
Nothing here runs in Lambda: the functions' Powertools logger is only reconfigured by `serve`."""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Mapping
from typing import Any

from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter

LOG_FORMATS = ("text", "json")
FUNCTION_COLUMN_CHARS = 14
SERVE = "serve"  # serve's own lines: requests, job runs, its own errors
# The keys Powertools puts on every entry; anything else in an entry is the call's own detail.
POWERTOOLS_KEYS = frozenset(
    {
        "level",
        "location",
        "message",
        "timestamp",
        "service",
        "cold_start",
        "function_name",
        "function_memory_size",
        "function_arn",
        "function_request_id",
        "xray_trace_id",
        "sampling_rate",
        "exception",
        "exception_name",
        "stack_trace",
    }
)
# Per scheduled function, the report fields that say it did something; a run where all are empty prints nothing.
JOB_ACTIVITY: dict[str, tuple[str, ...]] = {
    "sweeper": ("expired", "grants_expired", "credits_removed", "alerts_redelivered"),
    "notifier": ("stream_records", "batchItemFailures", "redelivered"),
    "billing-export": ("events_sent", "value_sent", "failed"),
}

serve_log = logging.getLogger("quotaflow.local.serve")
serve_log.propagate = False  # not through the functions' Powertools handler: serve is not a Lambda function


def short_name(function_name: str) -> str:
    return function_name.removeprefix("quotaflow-")


def _clock() -> str:
    return time.strftime("%H:%M:%S")


def _text_line(function: str, level: str, message: str) -> str:
    prefix = "" if level == "INFO" else f"{level} "
    return f"{_clock()} {function:<{FUNCTION_COLUMN_CHARS}} {prefix}{message}"


class ReadableFormatter(LambdaPowertoolsFormatter):
    """The functions' Powertools entries as one line each (plus a traceback), named by the function."""

    def serialize(self, log: Mapping[str, Any]) -> str:
        function = short_name(str(log.get("function_name") or log.get("service") or "quotaflow"))
        detail = {name: value for name, value in log.items() if name not in POWERTOOLS_KEYS and value is not None}
        message = str(log.get("message", ""))
        if detail:
            message += " " + json.dumps(detail, default=str, separators=(",", ":"))
        line = _text_line(function, str(log.get("level", "INFO")), message)
        trace = log.get("exception")
        return f"{line}\n{trace}" if trace else line


class _ServeFormatter(logging.Formatter):
    def __init__(self, log_format: str) -> None:
        super().__init__()
        self.log_format = log_format

    def format(self, record: logging.LogRecord) -> str:
        function = str(getattr(record, "function", SERVE))
        message = record.getMessage()
        trace = self.formatException(record.exc_info) if record.exc_info else None
        if self.log_format == "json":
            entry: dict[str, Any] = {
                "level": record.levelname,
                "message": message,
                "timestamp": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
                "function_name": f"quotaflow-{function}",
                **getattr(record, "detail", {}),
            }
            if trace:
                entry["exception"] = trace
            return json.dumps(entry, default=str, separators=(",", ":"))
        line = _text_line(function, record.levelname, message)
        return f"{line}\n{trace}" if trace else line


def configure(log_format: str) -> None:
    """Set up this process's output (serve's, and each worker's). Call before the functions run."""
    if log_format not in LOG_FORMATS:
        raise ValueError(f"log format is one of {', '.join(LOG_FORMATS)}")
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(_ServeFormatter(log_format))
    serve_log.handlers[:] = [handler]
    serve_log.setLevel(logging.INFO)
    if log_format == "json":
        return  # the functions log exactly as in Lambda
    os.environ["POWERTOOLS_METRICS_DISABLED"] = "true"  # no EMF blobs on a terminal
    from quotaflow.observability import logger

    logger.setLevel(logging.WARNING)  # their per-call INFO entries become serve's request and job lines
    logger.registered_handler.setFormatter(ReadableFormatter())


def request(function: str, method: str, path: str, status: int, elapsed_ms: float, text_mode: bool) -> None:
    """`POST /v1/reservations 201 5.1 ms`. In json mode the API function's own entry says it already."""
    if text_mode:
        serve_log.info("%s %s %d %.1f ms", method, path, status, elapsed_ms, extra={"function": function})


def job(name: str, report: Mapping[str, Any], elapsed_ms: float, text_mode: bool) -> None:
    """One line for a scheduled run that did something; an idle run prints nothing."""
    if not text_mode:
        return
    done = [_activity(field, report.get(field)) for field in JOB_ACTIVITY.get(name, ())]
    done = [part for part in done if part]
    if done:
        serve_log.info("%s (%.1f ms)", ", ".join(done), elapsed_ms, extra={"function": name})


def _activity(field: str, value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return ""
    if isinstance(value, int):
        return f"{field.replace('_', ' ')} {value}" if value else ""
    if isinstance(value, Mapping):
        counts = ", ".join(f"{key} {count}" for key, count in value.items() if count)
        return f"{field.replace('_', ' ')}: {counts}" if counts else ""
    if isinstance(value, list | tuple):
        return f"{field.replace('_', ' ')} {len(value)}" if value else ""
    return ""
