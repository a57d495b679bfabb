"""What every use case receives: the store, the tenant, the request's clock reading and the per-container cache."""

from __future__ import annotations

import itertools
import random
import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Generic, TypeVar

from quotaflow.ledger.periods import CALENDAR, Anchoring
from quotaflow.ledger.plans import EffectiveLimit
from quotaflow.ledger.reservations import TTL_SECONDS_MAX as RESERVATION_TTL_SECONDS_MAX
from quotaflow.ledger.reservations import Reservation
from quotaflow.store.table import Store

LIMITS_CACHE_SECONDS = 60.0
LIMITS_CACHE_ENTRIES_MAX = 10_000
RESERVATIONS_CACHED_MAX = 10_000
BACKOFF_BASE_S = 0.004
BACKOFF_MAX_S = 0.15
V = TypeVar("V")
_ENTRY_SEQUENCE = itertools.count()


@dataclass(frozen=True)
class UserLimits:
    """A user's effective limits as of `limits_version`; counters written under an older version refuse writes."""

    plan_id: str
    limits: dict[str, EffectiveLimit]
    limits_version: int
    stored: bool  # False: a default-plan user whose subscription item is not written yet
    above: str | None = None  # the holder id of the account above (a user's account, an account's parent)
    features: dict[str, bool | int | str] = field(default_factory=dict)  # the plan's, merged with overrides
    anchoring: Anchoring = CALENDAR  # where this holder's day/week/month periods start
    pool_shards: int = 1  # an account's counters are this many shard items each (services/pools.py)


class Expiring(Generic[V]):
    """A bounded map whose entries expire; when full, the oldest entry goes."""

    def __init__(self, seconds: float, entries_max: int) -> None:
        self.seconds = seconds
        self.entries_max = entries_max
        self.entries: dict[tuple[str, str], tuple[float, V]] = {}
        self.lock = threading.Lock()

    def get(self, key: tuple[str, str]) -> V | None:
        hit = self.entries.get(key)
        if hit is None or time.monotonic() - hit[0] > self.seconds:
            return None
        return hit[1]

    def put(self, key: tuple[str, str], value: V) -> None:
        with self.lock:
            if len(self.entries) >= self.entries_max:
                self.entries.pop(next(iter(self.entries)), None)
            self.entries[key] = (time.monotonic(), value)

    def forget(self, key: tuple[str, str]) -> None:
        self.entries.pop(key, None)


@dataclass
class ContainerCache:
    """What one container remembers between requests, so that a warm reserve or commit is one DynamoDB call.

    Users' limits: a stale entry costs one failed condition and a reload, never a wrong balance. Reservations
    made here: their holds never change, and whether they are still pending is the transaction's condition."""

    limits: Expiring[UserLimits] = field(
        default_factory=lambda: Expiring(LIMITS_CACHE_SECONDS, LIMITS_CACHE_ENTRIES_MAX)
    )
    reservations: Expiring[Reservation] = field(
        default_factory=lambda: Expiring(RESERVATION_TTL_SECONDS_MAX, RESERVATIONS_CACHED_MAX)
    )


@dataclass(frozen=True)
class Scope:
    store: Store
    tenant_id: str
    now: datetime
    cache: ContainerCache

    def new_id(self, prefix: str) -> str:
        return f"{prefix}_{secrets.token_hex(12)}"

    def entry_ids(self, count: int) -> list[str]:
        """Ledger entry ids sort by time (newest-first listing) and keep their order inside one write."""
        stamp = int(self.now.timestamp() * 1000)
        sequence = next(_ENTRY_SEQUENCE)  # orders this container's writes within one millisecond
        salt = secrets.token_hex(3)
        return [f"{stamp:013d}{sequence:012d}{salt}{index:02d}" for index in range(count)]


def pause_before_retry(attempt: int) -> None:
    """Full-jitter exponential backoff before retry number `attempt` (none before the first try)."""
    if attempt > 0:
        time.sleep(min(BACKOFF_MAX_S, BACKOFF_BASE_S * 2**attempt) * random.random())  # noqa: S311 - jitter
