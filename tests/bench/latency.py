"""Overhead of the API function against the physical floor: the median reserve+commit through the handler in this
process, over the median of the same two TransactWriteItems issued raw with boto3, on the same DynamoDB Local,
with the samples interleaved (alternating which goes first) so drift on a shared machine hits both alike."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from quotaflow.handlers import api as api_function
from quotaflow.local.events import LocalContext, http_event
from quotaflow.store.table import Store
from tests.bench.harness import (
    COMMIT_BODY,
    RESERVE_BODY,
    TABLE_NAME,
    Api,
    RawCycle,
    bind_runtime,
    median,
    new_client,
    percentile,
    progress,
)

OVERHEAD_WARMUP_CYCLES = 30
OVERHEAD_SAMPLES = 300
HANDLER_USER = "latency-handler"
RAW_USER = "latency-raw"


@dataclass
class Overhead:
    handler_cycle_s: list[float] = field(default_factory=list)
    handler_reserve_s: list[float] = field(default_factory=list)
    handler_commit_s: list[float] = field(default_factory=list)
    handler_cpu_s: list[float] = field(default_factory=list)
    raw_cycle_s: list[float] = field(default_factory=list)
    raw_cpu_s: list[float] = field(default_factory=list)

    @property
    def ratio(self) -> float:
        return median(self.handler_cycle_s) / median(self.raw_cycle_s)

    def summary_ms(self) -> dict[str, float]:
        return {
            "handler_cycle": round(median(self.handler_cycle_s) * 1000, 2),
            "handler_cycle_p90": round(percentile(self.handler_cycle_s, 0.9) * 1000, 2),
            "raw_cycle": round(median(self.raw_cycle_s) * 1000, 2),
            "raw_cycle_p90": round(percentile(self.raw_cycle_s, 0.9) * 1000, 2),
            "handler_reserve": round(median(self.handler_reserve_s) * 1000, 2),
            "handler_commit": round(median(self.handler_commit_s) * 1000, 2),
            "handler_cpu_per_cycle": round(median(self.handler_cpu_s) * 1000, 2),
            "raw_cpu_per_cycle": round(median(self.raw_cpu_s) * 1000, 2),
        }


def measure(endpoint: str, tenant_key: str, raw: RawCycle) -> Overhead:
    store = Store(new_client(endpoint), TABLE_NAME)
    bind_runtime(store)
    tenant = Api(tenant_key)
    tenant.subscribe(HANDLER_USER)
    tenant.cycle(HANDLER_USER)
    raw_client = new_client(endpoint)
    raw.add_user(raw_client, RAW_USER)
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {tenant_key}"}
    reserve_body = json.dumps({"user_id": HANDLER_USER, **RESERVE_BODY}).encode()
    commit_body = json.dumps(COMMIT_BODY).encode()

    def handler_cycle(into: Overhead | None) -> None:
        reserve_event = http_event("POST", "/v1/reservations", headers=headers, body=reserve_body)
        context = LocalContext()
        wall, cpu = time.perf_counter(), time.process_time()
        reserved = api_function.handler(reserve_event, context)
        reserve_wall, reserve_cpu = time.perf_counter() - wall, time.process_time() - cpu
        _expect(reserved, 201)
        path = f"/v1/reservations/{json.loads(reserved['body'])['reservation_id']}/commit"
        commit_event = http_event("POST", path, headers=headers, body=commit_body)
        context = LocalContext()
        wall, cpu = time.perf_counter(), time.process_time()
        committed = api_function.handler(commit_event, context)
        commit_wall, commit_cpu = time.perf_counter() - wall, time.process_time() - cpu
        _expect(committed, 200)
        if into is not None:
            into.handler_reserve_s.append(reserve_wall)
            into.handler_commit_s.append(commit_wall)
            into.handler_cycle_s.append(reserve_wall + commit_wall)
            into.handler_cpu_s.append(reserve_cpu + commit_cpu)

    def raw_cycle(params: tuple[dict[str, Any], dict[str, Any]], into: Overhead | None) -> None:
        reserve, commit = params
        wall, cpu = time.perf_counter(), time.process_time()
        raw_client.transact_write_items(**reserve)
        raw_client.transact_write_items(**commit)
        if into is not None:
            into.raw_cycle_s.append(time.perf_counter() - wall)
            into.raw_cpu_s.append(time.process_time() - cpu)

    prebuilt = [raw.instance(RAW_USER) for _ in range(OVERHEAD_WARMUP_CYCLES + OVERHEAD_SAMPLES)]
    for index in range(OVERHEAD_WARMUP_CYCLES):
        handler_cycle(None)
        raw_cycle(prebuilt[index], None)
    progress(f"overhead: {OVERHEAD_SAMPLES} interleaved samples of each path")
    overhead = Overhead()
    for index in range(OVERHEAD_SAMPLES):
        params = prebuilt[OVERHEAD_WARMUP_CYCLES + index]
        if index % 2:
            raw_cycle(params, overhead)
            handler_cycle(overhead)
        else:
            handler_cycle(overhead)
            raw_cycle(params, overhead)
    return overhead


def _expect(response: dict[str, Any], status: int) -> None:
    if response["statusCode"] != status:
        raise RuntimeError(f"the API function answered {response['statusCode']}: {response.get('body')}")
