"""`make bench` (`python -m tests.bench.run`): starts DynamoDB Local, measures, prints a table, then one JSON object
on the last line. Bounded: every loop has a named limit; the whole run takes about two minutes on 2 cores."""

from __future__ import annotations

import json
import math
import os
import sys
import time
from datetime import UTC, datetime
from typing import Any

from tests.bench import harness

PARTITION_WRITE_UNITS_PER_S = 1_000  # DynamoDB's per-partition write ceiling
CYCLE_OPS = ("reserve", "commit")
TARGETS = {
    "ddb_calls": "reserve, commit, usage, can_use = 1 call each in steady state",
    "commit_other_container": "ddb_calls_other_paths.commit_other_container = 1 (the id carries the hold)",
    "overhead_ratio": "<= 1.3",
    "serve_vs_raw_throughput": ">= 0.8",
    "import_ratio_api": "<= 1.3",
    "api_imports_neither_stripe_nor_xray": "stripe and the X-Ray SDK never loaded by the API function",
    "export_pairs_per_s_at_150ms": ">= 200",
    "table_ceiling_cycles_per_s": ">= 50,000 (10,000 users over 100 tenants: the hottest key's 1,000 WCU/s)",
    "account_pool_ceiling_cycles_per_s": ">= 2,000 (one account of 1,000 members, its pool in 16 shards)",
}
EXPORT_PAIRS_KEY = "export_pairs_per_s_at_150ms"


def export_pairs_only() -> int:
    """`python -m tests.bench.run export_pairs_per_s_at_150ms`: that one figure, on its own DynamoDB Local."""
    harness.prepare_environment()
    harness.route_request_log(harness.LogSink())
    from tests.support.ddb_local import DynamoDBLocal

    with DynamoDBLocal() as ddb:
        _table(ddb.endpoint)
        pairs = _export_pairs(ddb.endpoint, harness.seed_tenant())
    _print_export("Billing export fanned out, Stripe answering after 150 ms", EXPORT_PAIRS_KEY, pairs)
    print(json.dumps({EXPORT_PAIRS_KEY: round(pairs.events_per_s, 1), "export_pairs": _export_json(pairs)}))
    return 0


def _export_pairs(endpoint: str, tenant: Any) -> Any:
    from tests.bench import export

    return export.measure(
        endpoint, tenant, export.users_requested(), stripe_latency_s=export.STRIPE_LATENCY_S, clones="pairs"
    )


def _export_json(exported: Any) -> dict[str, Any]:
    return {
        "users": exported.users,
        "events_sent": exported.events_sent,
        "seconds": round(exported.seconds, 2),
        "failed": exported.failed,
        "stub_received": exported.stub_events,
        "pairs_planned": exported.pairs,
        "stripe_calls_in_flight_max": exported.in_flight_max,
        "dynamodb_calls": exported.dynamodb_calls,
        "idle_rerun": {"pairs_idle": exported.idle_pairs, "seconds": round(exported.idle_seconds, 2)},
    }


def main() -> int:
    started = time.perf_counter()
    harness.prepare_environment()
    sink = harness.LogSink()
    harness.route_request_log(sink)
    from tests.bench import budgets, cold_start, export, heat, latency, throughput
    from tests.support.ddb_local import DynamoDBLocal

    load_start = harness.machine_load()
    print(
        f"quotaflow bench  {datetime.now(UTC):%Y-%m-%d %H:%M} UTC  Python {harness.python_version()}  "
        f"{os.cpu_count()} CPUs  load {load_start:.2f}",
        flush=True,
    )
    cold = cold_start.measure()
    harness.progress("starting DynamoDB Local")
    with DynamoDBLocal() as ddb:
        store = _table(ddb.endpoint)
        tenant = harness.seed_tenant()
        harness.progress("calls and capacity per operation")
        counted = budgets.measure(ddb.endpoint, tenant.key)
        harness.bind_runtime(store)
        raw = harness.capture_raw_cycle(tenant, store, "rawfloor-template-user")
        log_mark = (sink.bytes_written, sink.lines_written)
        overhead = latency.measure(ddb.endpoint, tenant.key, raw)
        log_bytes = (sink.bytes_written - log_mark[0]) / max(1, sink.lines_written - log_mark[1])
        flow = throughput.measure(ddb.endpoint, tenant, raw)
        exported = export.measure(ddb.endpoint, tenant, export.users_requested()) if _export_built() else None
        pairs = _export_pairs(ddb.endpoint, tenant) if _export_built() else None
    harness.progress("partition heat (moto)")
    heated = heat.measure()  # after DynamoDB Local: moto's mock must not catch the clients above
    load_end = harness.machine_load()
    results, extras = _results(counted, overhead, flow, cold, log_bytes, heated, pairs)
    results["export_events_per_s"] = round(exported.events_per_s, 1) if exported else None
    results["export"] = _export_json(exported) if exported else None
    results[EXPORT_PAIRS_KEY] = round(pairs.events_per_s, 1) if pairs else None
    results["export_pairs"] = _export_json(pairs) if pairs else None
    results["machine"] = {
        "cpus": os.cpu_count(),
        "load_start": load_start,
        "load_end": load_end,
        "python": harness.python_version(),
    }
    results["seconds"] = round(time.perf_counter() - started, 1)
    _print_report(results, extras, counted, raw, flow, cold, exported)
    _print_export("Billing export fanned out, Stripe answering after 150 ms", EXPORT_PAIRS_KEY, pairs)
    print(json.dumps(results, separators=(",", ":")), flush=True)
    return 0


def _export_built() -> bool:
    from tests.bench.cold_start import HANDLER_MODULES, importable

    return importable(HANDLER_MODULES["export"])


def _table(endpoint: str) -> Any:
    from quotaflow.store.table import Store

    store = Store(harness.new_client(endpoint), harness.TABLE_NAME)
    store.create_table()
    harness.bind_runtime(store)
    return store


def _results(
    counted: Any, overhead: Any, flow: Any, cold: Any, log_bytes: float, heated: dict[str, Any], pairs: Any
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The JSON results, and what the table needs besides (objects, not JSON)."""
    from tests.bench import budgets, capacity, cost

    write_units = sum(counted.wcu_aws(op) for op in CYCLE_OPS)
    index_units = sum(counted.ledger.index_units(op) for op in CYCLE_OPS)
    latencies = overhead.summary_ms()
    cycle_cost = cost.estimate(write_units, 0, latencies["handler_reserve"], latencies["handler_commit"], log_bytes)
    by_partition = capacity.units_by_partition(counted.ledger, CYCLE_OPS)
    ddb_calls = {op: counted.count(op) for op in budgets.STEADY_OPS}
    results: dict[str, Any] = {
        "ddb_calls": ddb_calls,
        "ddb_calls_other_paths": {op: counted.count(op) for op in counted.calls if op not in budgets.STEADY_OPS},
        "wcu": {op: counted.ddb_local_units[op] for op in ("reserve", "commit", "event", "release")},
        "wcu_aws": {op: counted.wcu_aws(op) for op in ("reserve", "commit", "event", "release", "reserve_idempotent")},
        "rcu": {op: counted.ddb_local_units[op] for op in ("usage", "can_use")},
        "write_units_per_cycle_by_partition": {kind: place["units"] for kind, place in by_partition.items()},
        "partition_ceiling_cycles_per_s": {
            kind: round(PARTITION_WRITE_UNITS_PER_S / place["units"]) for kind, place in by_partition.items()
        },
        "overhead_ratio": round(overhead.ratio, 3),
        "latency_ms": latencies,
        "serve_vs_raw_throughput": round(flow.ratio, 3),
        "throughput_cycles_per_s": {
            "serve": round(flow.serve_per_s, 1),
            "raw": round(flow.raw_per_s, 1),
            "round_ratios": [round(r, 3) for r in flow.round_ratios],
            "errors": len(flow.errors),
            "serve_health_round_trip_ms": round(flow.health_round_trip_ms, 2),
            "cpu_ms_per_cycle": {side: flow.cpu_ms_per_cycle(side) for side in ("serve", "raw")},
            "other_processes_cores": {side: round(flow.other_cores(side), 2) for side in ("serve", "raw")},
        },
        "import_ms": cold.import_ms,
        "import_ratio_api": round(cold.import_ratio_api, 3),
        "import_ratio_api_fastest_runs": round(cold.import_ratio_api_fastest, 3),
        "api_first_request_ms": cold.first_request_ms,
        "first_request_ratio_api": round(cold.first_request_ms / (cold.import_ms["boto3_client"] or math.nan), 3),
        "api_loads": cold.loaded_in_api,
        "api_import_heaviest_ms": {name: ms for name, ms, _ in cold.heaviest},
        "usd_per_million_cycles": round(cycle_cost.total, 3),
        "usd_per_million_cycles_lines": {name: round(value, 4) for name, value in cycle_cost.lines.items()},
        "log_bytes_per_request": round(log_bytes, 1),
        "table_ceiling_cycles_per_s": heated["table"].as_json()["ceiling_cycles_per_s"],
        "account_pool_ceiling_cycles_per_s": heated["account_pool_16_shards"].as_json()["ceiling_cycles_per_s"],
        "account_pool_ceiling_cycles_per_s_1_shard": heated["account_pool"].as_json()["ceiling_cycles_per_s"],
        "user_ceiling_cycles_per_s": heated["user"].as_json()["ceiling_cycles_per_s"],
        "partition_heat": {name: report.as_json() for name, report in heated.items()},
    }
    met = {
        "ddb_calls": all(ddb_calls[op] == 1 for op in budgets.TARGET_OPS),
        "commit_other_container": counted.count("commit_other_container") == 1,
        "overhead_ratio": overhead.ratio <= 1.3,
        "serve_vs_raw_throughput": flow.ratio >= 0.8 and not flow.errors,
        "import_ratio_api": cold.import_ratio_api <= 1.3,
        EXPORT_PAIRS_KEY: pairs is not None and pairs.events_per_s >= 200,
        "api_imports_neither_stripe_nor_xray": not cold.forbidden_loaded,
        "table_ceiling_cycles_per_s": heated["table"].ceiling_cycles_per_s >= 50_000,
        "account_pool_ceiling_cycles_per_s": heated["account_pool_16_shards"].ceiling_cycles_per_s >= 2_000,
    }
    results["targets"] = {name: {"target": TARGETS[name], "met": met[name]} for name in TARGETS}
    extras = {"cost": cycle_cost, "index_units": index_units, "by_partition": by_partition, "heat": heated}
    return results, extras


def _row(label: str, *cells: Any, width: int = 44) -> None:
    print(f"  {label:<{width}}" + "  ".join(str(cell) for cell in cells))


def _print_report(
    results: dict[str, Any], extras: dict[str, Any], counted: Any, raw: Any, flow: Any, cold: Any, exported: Any
) -> None:
    from tests.bench import cold_start, cost, heat, latency, throughput

    print("\nDynamoDB per operation, through the API function on a warm container")
    _row("operation", "calls  DDB-Local CU  AWS WCU (table+index)  what")
    for op, calls in counted.calls.items():
        units = (
            f"{counted.ledger.table_units(op)}+{counted.ledger.index_units(op)}" if counted.ledger.writes[op] else "-"
        )
        local = counted.ddb_local_units[op]
        _row(op, f"{len(calls):>5}  {local:>12g}  {units:>21}  {' '.join(calls)}")
    print("  (DynamoDB Local's transaction CU does not add up items; AWS WCU applies AWS's rule to the items written)")
    print(f"  raw floor = the store's own transactions, re-keyed: reserve = {raw.items_described[0]};")
    print(f"              commit = {raw.items_described[1]}")

    print("\nWrites per reserve+commit cycle, by partition (AWS's rule; 1 partition takes ~1,000 WCU/s)")
    for kind, place in extras["by_partition"].items():
        ceiling = PARTITION_WRITE_UNITS_PER_S / place["units"] if place["units"] else math.inf
        _row(kind, f"{place['items']} items  {place['units']:>2} WCU  -> at most {ceiling:,.0f} cycles/s", width=62)

    print("\nPartition heat: the global rate at which the hottest key takes 1,000 WCU/s")
    print(f"  ({heat.CYCLES_PER_USER} cycles per sampled user on moto, every write of the store captured;")
    print("   the hottest key of each scope shown)")
    for name, report in extras["heat"].items():
        for line in heat.describe(name, report):
            print(f"  {line}")
    print("  account_pool at 16 pool shards: n/a (sharded pool counters not built yet)")

    summary = results["latency_ms"]
    print(f"\nOverhead, in-process, {latency.OVERHEAD_SAMPLES} interleaved samples (ms)")
    _row(
        "reserve+commit through the API handler",
        f"median {summary['handler_cycle']}  p90 {summary['handler_cycle_p90']}",
    )
    _row("  reserve / commit", f"{summary['handler_reserve']} / {summary['handler_commit']}")
    _row("same two transactions, raw boto3", f"median {summary['raw_cycle']}  p90 {summary['raw_cycle_p90']}")
    _row("CPU per cycle, handler / raw", f"{summary['handler_cpu_per_cycle']} / {summary['raw_cpu_per_cycle']}")
    _row("overhead_ratio", f"{results['overhead_ratio']}  (target {TARGETS['overhead_ratio']})")

    tp = results["throughput_cycles_per_s"]
    print(
        f"\nThroughput, reserve+commit cycles/s, {throughput.CLIENT_THREADS} client threads, "
        f"{throughput.THROUGHPUT_USERS} users, {throughput.ROUNDS} alternating rounds of {throughput.ROUND_SECONDS:g} s"
    )
    print(
        f"  (each thread cycles through its own {throughput.THROUGHPUT_USERS // throughput.CLIENT_THREADS} users: "
        "this measures the path, not one hot counter's contention)"
    )
    _row(f"serve (build_server, {throughput.SERVE_WORKERS} workers, HTTP)", tp["serve"])
    _row("raw boto3, same transactions", tp["raw"])
    _row(
        "serve_vs_raw_throughput",
        f"{results['serve_vs_raw_throughput']}  rounds {tp['round_ratios']}  "
        f"(target {TARGETS['serve_vs_raw_throughput']})",
    )
    _row("serve round trip, GET /v1/health (no DB)", f"{tp['serve_health_round_trip_ms']} ms")
    for side in ("serve", "raw"):
        spent = "  ".join(f"{group} {ms}" for group, ms in tp["cpu_ms_per_cycle"][side].items())
        _row(f"CPU ms per cycle, {side}", f"{spent}  (total {sum(tp['cpu_ms_per_cycle'][side].values()):.1f})")
    others = tp["other_processes_cores"]
    _row("other processes on the machine meanwhile", f"{others['serve']} cores (serve), {others['raw']} cores (raw)")
    if flow.errors:
        _row("errors", f"{len(flow.errors)}, first: {flow.errors[0]}")

    print(f"\nCold start, fresh interpreters, median of {cold_start.IMPORT_RUNS} (ms)")
    for name, value in cold.import_ms.items():
        _row(f"import {cold_start.HANDLER_MODULES.get(name, name)}", "n/a (not built yet)" if value is None else value)
    _row(
        "import_ratio_api (api / boto3 + client)",
        f"{results['import_ratio_api']}  (target {TARGETS['import_ratio_api']})",
    )
    _row("  the same from the fastest run of each", results["import_ratio_api_fastest_runs"])
    _row(
        "api: import + runtime() + first request",
        f"{cold.first_request_ms}  (ratio {results['first_request_ratio_api']}: the whole cold path, not a target)",
    )
    _row("loaded by the API function", cold_start.describe_loaded(cold.loaded_in_api))
    print(f"  heaviest packages under -X importtime (self time summed, total {cold.import_total_ms} ms):")
    for name, ms, share in cold.heaviest:
        _row(f"  {name}", f"{ms:>7} ms  {share:>6.1%}")
    _row("  of which quotaflow's own, heaviest", ", ".join(f"{name} {ms}" for name, ms in cold.heaviest_own))
    _print_export("Billing export, one run to the loopback Stripe server (stripe SDK)", "export_events_per_s", exported)
    print("  (QUOTAFLOW_BENCH_EXPORT_USERS=10000 runs the issue's 10,000 users)")

    cycle_cost, index_units = extras["cost"], extras["index_units"]
    print("\nCost per million reserve+commit cycles (USD)")
    for name, value in cycle_cost.lines.items():
        _row(name, f"{value:8.3f}")
    _row("usd_per_million_cycles", f"{cycle_cost.total:8.3f}")
    for line in cost.assumptions(cycle_cost, index_units):
        print(f"  - {line}")

    print("\nTargets")
    for name, verdict in results["targets"].items():
        _row(name, f"{'met   ' if verdict['met'] else 'MISSED'}  {verdict['target']}")
    load = results["machine"]
    print(f"\nmachine load {load['load_start']:.2f} -> {load['load_end']:.2f}; run took {results['seconds']} s")


def _print_export(title: str, key: str, exported: Any) -> None:
    print(f"\n{title}, pairs on the in-process queue")
    if exported is None:
        _row(key, "n/a (not built yet)")
        return
    _row(f"{exported.users} users with new usage", f"{exported.events_sent} events in {exported.seconds:.1f} s")
    _row("meter-event calls in flight at most", exported.in_flight_max)
    _row(key, f"{exported.events_per_s:.1f}  (failed {exported.failed})")
    for note in exported.notes:
        _row("", note)


if __name__ == "__main__":
    sys.exit(export_pairs_only() if sys.argv[1:] == [EXPORT_PAIRS_KEY] else main())
