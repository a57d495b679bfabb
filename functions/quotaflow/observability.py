"""Logger and metrics shared by every function.

Tracing: Lambda's active tracing records every invocation as an X-Ray segment without the X-Ray SDK. The
SDK (Powertools Tracer) would add per-call subsegments but costs ~0.5 s on every cold start, so the API
function does without it; each request's DynamoDB call count and latency go to the structured log instead."""

from __future__ import annotations

import os

from aws_lambda_powertools import Logger, Metrics

# POWERTOOLS_SERVICE_NAME and POWERTOOLS_METRICS_NAMESPACE (set per stage by the stack) override these defaults.
SERVICE = os.environ.get("POWERTOOLS_SERVICE_NAME", "quotaflow")
logger = Logger(service=SERVICE)
metrics = Metrics(namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "Quotaflow"), service=SERVICE)
