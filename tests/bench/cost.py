"""USD per million reserve+commit cycles, from the measured write and read units and handler durations.

Prices: AWS public list prices for us-east-1 as published in 2025 (DynamoDB on-demand after its 2024-11-01
reduction; Lambda arm64 first tier; HTTP API first 300 million requests a month). Free tiers are ignored.
Check https://aws.amazon.com/dynamodb/pricing/, /lambda/pricing/ and /api-gateway/pricing/ before quoting."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

PRICES_AS_OF = "2025 AWS list prices, us-east-1 (DynamoDB on-demand since the 2024-11-01 cut)"
DYNAMODB_USD_PER_MILLION_WRITE_UNITS = 0.625
DYNAMODB_USD_PER_MILLION_READ_UNITS = 0.125
LAMBDA_USD_PER_MILLION_REQUESTS = 0.20
LAMBDA_ARM64_USD_PER_GB_SECOND = 0.0000133334
LAMBDA_MEMORY_GB = 0.5  # 512 MB
HTTP_API_USD_PER_MILLION_REQUESTS = 1.00
CLOUDWATCH_LOGS_USD_PER_GB = 0.50  # ingestion, standard class
REQUESTS_PER_CYCLE = 2  # reserve, commit
GIB = 1024**3


@dataclass
class CycleCost:
    write_units: float
    read_units: float
    reserve_ms: float
    commit_ms: float
    log_bytes_per_request: float
    lines: dict[str, float] = field(default_factory=dict)  # component -> USD per million cycles

    @property
    def total(self) -> float:
        return sum(value for name, value in self.lines.items() if not name.startswith("("))


def estimate(
    write_units: float, read_units: float, reserve_ms: float, commit_ms: float, log_bytes_per_request: float
) -> CycleCost:
    cost = CycleCost(write_units, read_units, reserve_ms, commit_ms, log_bytes_per_request)
    billed_seconds = (math.ceil(reserve_ms) + math.ceil(commit_ms)) / 1000  # Lambda bills whole milliseconds
    cost.lines["DynamoDB writes"] = write_units * DYNAMODB_USD_PER_MILLION_WRITE_UNITS
    cost.lines["DynamoDB reads"] = read_units * DYNAMODB_USD_PER_MILLION_READ_UNITS
    cost.lines["Lambda requests"] = REQUESTS_PER_CYCLE * LAMBDA_USD_PER_MILLION_REQUESTS
    cost.lines["Lambda duration"] = billed_seconds * LAMBDA_MEMORY_GB * LAMBDA_ARM64_USD_PER_GB_SECOND * 1e6
    cost.lines["HTTP API requests"] = REQUESTS_PER_CYCLE * HTTP_API_USD_PER_MILLION_REQUESTS
    logs_gb = REQUESTS_PER_CYCLE * log_bytes_per_request * 1e6 / GIB
    cost.lines["(not in total) CloudWatch Logs, request log only"] = logs_gb * CLOUDWATCH_LOGS_USD_PER_GB
    return cost


def assumptions(cost: CycleCost, index_units_per_cycle: int) -> list[str]:
    return [
        f"prices: {PRICES_AS_OF}; free tiers ignored",
        f"DynamoDB on-demand: ${DYNAMODB_USD_PER_MILLION_WRITE_UNITS}/M write units, "
        f"${DYNAMODB_USD_PER_MILLION_READ_UNITS}/M read units",
        f"write units per cycle: {cost.write_units:g} (AWS's rule on the items written, see capacity.py), of which "
        f"{index_units_per_cycle} are index writes at 1/KB; at 2/KB add "
        f"${index_units_per_cycle * DYNAMODB_USD_PER_MILLION_WRITE_UNITS:.3f}",
        f"read units per cycle: {cost.read_units:g} (a warm container reads nothing; a commit on another container "
        f"adds one strongly consistent GetItem = 1 read unit = ${DYNAMODB_USD_PER_MILLION_READ_UNITS:.3f})",
        f"Lambda arm64 {int(LAMBDA_MEMORY_GB * 1024)} MB: ${LAMBDA_USD_PER_MILLION_REQUESTS}/M requests, "
        f"${LAMBDA_ARM64_USD_PER_GB_SECOND}/GB-s; duration = the handler medians measured here on DynamoDB Local "
        f"({cost.reserve_ms:.1f} + {cost.commit_ms:.1f} ms, each rounded up to whole ms); "
        "a 512 MB function has ~0.3 vCPU, so its CPU part runs slower than here",
        f"HTTP API: ${HTTP_API_USD_PER_MILLION_REQUESTS}/M requests (first 300 M a month), "
        f"{REQUESTS_PER_CYCLE} per cycle",
        f"CloudWatch Logs ingestion ${CLOUDWATCH_LOGS_USD_PER_GB}/GB for the {cost.log_bytes_per_request:.0f}-byte "
        "request log line (Lambda's own START/END/REPORT lines come on top); shown, not in the total",
        "not included: storage (ledger entries stay; TTL deletes are free), PITR, stream reads (free for Lambda "
        "triggers), data transfer",
    ]
