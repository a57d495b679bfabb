"""Which pools may be sharded (services/pools.py shards them): only those whose every rule a shard keeps exactly."""

from __future__ import annotations

from quotaflow.ledger.errors import Conflict
from quotaflow.ledger.plans import POOL_SHARDS_MAX, EffectiveLimit

__all__ = ["POOL_SHARDS_MAX", "check_shardable", "sharding_refusal"]


def sharding_refusal(
    limits: dict[str, EffectiveLimit], stripe_customer_id: str | None, has_credits: bool
) -> str | None:
    """Why a pool with these limits cannot have more than one shard; None when it can."""
    if stripe_customer_id is not None:
        return "the pool's usage is billed to a Stripe customer: the billing export reads one counter per meter"
    if has_credits:
        return "the pool has credit grants: credits are spent in time order against one counter's allowance"
    for meter, limit in limits.items():
        if limit.rollover is not None:
            return f"{meter}: rollover is computed from one counter's unspent allowance"
        if limit.alerts:
            return f"{meter}: alerts are computed from one counter's quota and usage"
    return None


def check_shardable(
    limits: dict[str, EffectiveLimit], shards: int, stripe_customer_id: str | None, has_credits: bool
) -> None:
    """Refuse (409) a shard count above 1 for a pool `sharding_refusal` names a reason for."""
    reason = sharding_refusal(limits, stripe_customer_id, has_credits) if shards > 1 else None
    if reason is not None:
        raise Conflict(f"a pool with {shards} shards is not possible: {reason}", field="pool_shards")


def check_resharding(old_shards: int, new_shards: int) -> None:
    """A pool's shard count may grow (new shards open empty and rebalancing fills them); it never shrinks: the
    shards it would drop hold this period's usage and holds, which must stay where their ledger says they are."""
    if new_shards < old_shards:
        raise Conflict(
            f"a pool's shard count only grows: {old_shards} -> {new_shards} would strand what the dropped shards hold",
            field="pool_shards",
        )
