"""Throughput of reserve+commit through `quotaflow serve` (build_server, worker processes) over HTTP, against raw
boto3 replaying the same transactions, both with the same number of client threads on the same DynamoDB Local.

Many users, each thread cycling through its own (THROUGHPUT_USERS / CLIENT_THREADS of them): this measures how
fast the path runs, not one hot counter's contention. The two sides alternate in short rounds so that whatever
else the machine is doing meanwhile lands on both."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from quotaflow.local.server import build_server
from tests.bench.harness import (
    ADMIN_KEY,
    COMMIT_BODY,
    RESERVE_BODY,
    TABLE_NAME,
    Api,
    RawCycle,
    cpu_seconds_by_group,
    machine_cpu_seconds,
    median,
    new_client,
    progress,
    timed,
)

SERVE_WORKERS = 4
CLIENT_THREADS = 8
THROUGHPUT_USERS = 64
ROUNDS = 4
ROUND_SECONDS = 5.0
WARMUP_SECONDS = 2.0
CYCLES_PER_THREAD_MAX = 100_000  # a bound on each loop besides its deadline
HTTP_TIMEOUT_SECONDS = 30.0
HEALTH_PROBES = 50


@dataclass
class Throughput:
    serve_cycles: int = 0
    serve_seconds: float = 0.0
    raw_cycles: int = 0
    raw_seconds: float = 0.0
    errors: list[str] = field(default_factory=list)
    round_ratios: list[float] = field(default_factory=list)
    health_round_trip_ms: float = 0.0
    cpu_seconds: dict[str, dict[str, float]] = field(default_factory=dict)  # side -> process group -> CPU s
    other_cpu_seconds: dict[str, float] = field(default_factory=dict)  # side -> CPU s of processes not ours

    def add(self, side: str, cycles: int, seconds: float) -> None:
        if side == "serve":
            self.serve_cycles += cycles
            self.serve_seconds += seconds
        else:
            self.raw_cycles += cycles
            self.raw_seconds += seconds

    def cpu_ms_per_cycle(self, side: str) -> dict[str, float]:
        cycles = self.serve_cycles if side == "serve" else self.raw_cycles
        return {group: round(seconds * 1000 / max(1, cycles), 2) for group, seconds in self.cpu_seconds[side].items()}

    def other_cores(self, side: str) -> float:
        seconds = self.serve_seconds if side == "serve" else self.raw_seconds
        return self.other_cpu_seconds.get(side, 0.0) / seconds if seconds else 0.0

    @property
    def serve_per_s(self) -> float:
        return self.serve_cycles / self.serve_seconds if self.serve_seconds else 0.0

    @property
    def raw_per_s(self) -> float:
        return self.raw_cycles / self.raw_seconds if self.raw_seconds else 0.0

    @property
    def ratio(self) -> float:
        return self.serve_per_s / self.raw_per_s if self.raw_per_s else 0.0


Loop = Callable[[int, float, list[int], list[str]], None]


def _run(loop: Loop, seconds: float) -> tuple[int, float, list[str]]:
    """CLIENT_THREADS threads running `loop(thread_index, deadline, counts, errors)`; (cycles, seconds, errors)."""
    counts = [0] * CLIENT_THREADS
    errors: list[str] = []
    started = time.perf_counter()
    deadline = started + seconds
    threads = [threading.Thread(target=loop, args=(i, deadline, counts, errors)) for i in range(CLIENT_THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(counts), time.perf_counter() - started, errors


def _users_of(thread_index: int, prefix: str) -> list[str]:
    return [f"{prefix}{i}" for i in range(thread_index, THROUGHPUT_USERS, CLIENT_THREADS)]


def _serve_loop(clients: list[httpx.Client]) -> Loop:
    def loop(index: int, deadline: float, counts: list[int], errors: list[str]) -> None:
        users = _users_of(index, "tp-serve-")
        client = clients[index]
        for cycle in range(CYCLES_PER_THREAD_MAX):
            if time.perf_counter() >= deadline:
                return
            held = client.post("/v1/reservations", json={"user_id": users[cycle % len(users)], **RESERVE_BODY})
            if held.status_code != 201:
                errors.append(f"reserve {held.status_code}: {held.text[:200]}")
                continue
            done = client.post(f"/v1/reservations/{held.json()['reservation_id']}/commit", json=COMMIT_BODY)
            if done.status_code != 200:
                errors.append(f"commit {done.status_code}: {done.text[:200]}")
                continue
            counts[index] += 1

    return loop


def _raw_loop(client: Any, raw: RawCycle) -> Loop:
    def loop(index: int, deadline: float, counts: list[int], errors: list[str]) -> None:
        users = _users_of(index, "tp-raw-")
        for cycle in range(CYCLES_PER_THREAD_MAX):
            if time.perf_counter() >= deadline:
                return
            reserve, commit = raw.instance(users[cycle % len(users)])
            try:
                client.transact_write_items(**reserve)
                client.transact_write_items(**commit)
            except Exception as error:  # counted and reported, the other threads go on
                errors.append(f"raw {type(error).__name__}: {error}"[:200])
                continue
            counts[index] += 1

    return loop


def measure(endpoint: str, tenant: Api, raw: RawCycle) -> Throughput:
    progress(f"throughput: {THROUGHPUT_USERS} users for serve and for raw, opening their counters")
    raw_client = new_client(endpoint)
    for user in range(THROUGHPUT_USERS):
        tenant.subscribe(f"tp-serve-{user}")
        tenant.cycle(f"tp-serve-{user}")
        raw.add_user(raw_client, f"tp-raw-{user}")
    server = build_server(
        port=0, dynamodb_endpoint=endpoint, table_name=TABLE_NAME, admin_key=ADMIN_KEY, workers=SERVE_WORKERS
    )
    server.start_in_thread()
    result = Throughput()
    headers = {"Authorization": f"Bearer {tenant.key}"}
    # One keep-alive client per thread, made before the clock starts (making one costs an SSL context).
    clients = [
        httpx.Client(base_url=server.url, headers=headers, timeout=HTTP_TIMEOUT_SECONDS) for _ in range(CLIENT_THREADS)
    ]
    try:
        result.health_round_trip_ms = _health_round_trip_ms(clients[0])
        serve, floor = _serve_loop(clients), _raw_loop(raw_client, raw)
        _run(serve, WARMUP_SECONDS)
        _run(floor, WARMUP_SECONDS)
        for round_index in range(ROUNDS):
            progress(f"throughput round {round_index + 1}/{ROUNDS}: {ROUND_SECONDS:g} s serve, {ROUND_SECONDS:g} s raw")
            order = [("serve", serve), ("raw", floor)] if round_index % 2 == 0 else [("raw", floor), ("serve", serve)]
            rates: dict[str, float] = {}
            for side, loop in order:
                ours, machine = cpu_seconds_by_group(), machine_cpu_seconds()
                cycles, seconds, errors = _run(loop, ROUND_SECONDS)
                _add_cpu(result, side, ours, machine)
                result.errors.extend(errors)
                rates[side] = cycles / seconds
                result.add(side, cycles, seconds)
            result.round_ratios.append(rates["serve"] / rates["raw"] if rates["raw"] else 0.0)
    finally:
        for client in clients:
            client.close()
        server.close()
    return result


def _add_cpu(result: Throughput, side: str, ours_before: dict[str, float], machine_before: float) -> None:
    """Charge the CPU used meanwhile to `side`: ours by process group, and the rest of the machine's."""
    ours_after, machine_after = cpu_seconds_by_group(), machine_cpu_seconds()
    spent = result.cpu_seconds.setdefault(side, {})
    ours_total = 0.0
    for group, seconds in ours_after.items():
        used = seconds - ours_before.get(group, 0.0)
        spent[group] = spent.get(group, 0.0) + used
        ours_total += used
    result.other_cpu_seconds[side] = result.other_cpu_seconds.get(side, 0.0) + max(
        0.0, machine_after - machine_before - ours_total
    )


def _health_round_trip_ms(client: httpx.Client) -> float:
    """One HTTP request through serve that touches no database: the transport's own floor."""
    client.get("/v1/health")
    return median([timed(lambda: client.get("/v1/health")) for _ in range(HEALTH_PROBES)]) * 1000
