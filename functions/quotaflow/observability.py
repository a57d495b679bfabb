"""Logger and metrics shared by every function.

Tracing: Lambda's active tracing records every invocation as an X-Ray segment without the X-Ray SDK. The
SDK (Powertools Tracer) would add per-call subsegments but costs ~0.5 s on every cold start, so the API
function does without it; each request's DynamoDB call count and latency go to the structured log instead."""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics

logger = Logger(service="quotaflow")
metrics = Metrics(namespace="Quotaflow", service="quotaflow")
