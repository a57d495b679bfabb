"""What every use case receives: the store, the tenant, the request's clock reading and the per-container cache."""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime

from quotaflow.ledger.plans import EffectiveLimit
from quotaflow.store.table import Store

LIMITS_CACHE_SECONDS = 60.0  # a stale entry costs one failed condition and a reload, never a wrong balance
LIMITS_CACHE_ENTRIES_MAX = 10_000


@dataclass(frozen=True)
class UserLimits:
    """A user's effective limits as of `limits_version`; counters written under an older version refuse writes."""

    plan_id: str
    limits: dict[str, EffectiveLimit]
    limits_version: int
    stored: bool  # False: a default-plan user whose subscription item is not written yet


@dataclass
class LimitsCache:
    """Per-container cache of users' limits, so a warm reserve or commit is one DynamoDB call."""

    entries: dict[tuple[str, str], tuple[float, UserLimits]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def get(self, tenant_id: str, user_id: str) -> UserLimits | None:
        hit = self.entries.get((tenant_id, user_id))
        if hit is None or time.monotonic() - hit[0] > LIMITS_CACHE_SECONDS:
            return None
        return hit[1]

    def put(self, tenant_id: str, user_id: str, limits: UserLimits) -> None:
        with self.lock:
            if len(self.entries) >= LIMITS_CACHE_ENTRIES_MAX:
                self.entries.pop(next(iter(self.entries)))
            self.entries[(tenant_id, user_id)] = (time.monotonic(), limits)

    def forget(self, tenant_id: str, user_id: str) -> None:
        self.entries.pop((tenant_id, user_id), None)


@dataclass(frozen=True)
class Scope:
    store: Store
    tenant_id: str
    now: datetime
    cache: LimitsCache

    def new_id(self, prefix: str) -> str:
        return f"{prefix}_{secrets.token_hex(12)}"

    def entry_ids(self, count: int) -> list[str]:
        """Ledger entry ids sort by time (newest-first listing) and keep their order inside one write."""
        stamp = int(self.now.timestamp() * 1000)
        salt = secrets.token_hex(4)
        return [f"{stamp:013d}{salt}{index:02d}" for index in range(count)]
