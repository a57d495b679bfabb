"""The only module that knows the single table's key formats.

    pk                          sk                       item
    T#<tenant>                  TENANT                   tenant settings
    T#<tenant>                  KEY#<key_id>             an API key's listing (hash, kind)
    T#<tenant>                  PLAN#<plan_id>           a plan
    T#<tenant>                  PRICE#<model>            a model's current price
    T#<tenant>#PRICE#<model>    V#<version>              every price version (history)
    APIKEY#<sha256>             APIKEY                   key lookup by hash
    T#<tenant>#U#<user>         S#SUB                    subscription (+ effective limits, limits_version)
    T#<tenant>#A#<account>      (as a user's)            an account: a budget holder above users, same items
    T#<tenant>#A#<account>      CHILD#<account>          a sub-account (the tree is walked down for its height)
    T#<tenant>#U#<user>         S#CTR#<meter>            the meter's current counter
    T#<tenant>#U#<user>         H#CTR#<meter>#<period>   a closed period's counter
    T#<tenant>#A#<account>#<k>  P#CTR#<meter>            shard k > 0 of a sharded pool's current counter
    T#<tenant>#A#<account>#<k>  P#H#<meter>#<period>     shard k > 0 of a closed period's pool counter
    T#<tenant>#A#<account>#<k>  L#<entry_id>             ledger entry of a change on shard k > 0
    T#<tenant>#U#<user>         L#<entry_id>             ledger entry (time-ordered ids)
    T#<tenant>#U#<user>         G#<meter>#<grant_id>     credit grant
    T#<tenant>#U#<user>         S#CB#<meter>             credit book: the meter's grants as of its last credit event
    T#<tenant>#R#<reservation>  RSV                      reservation
    T#<tenant>#R#<reservation>  STEP#<entry_id>          one draw on it (lines, overage, step properties)
    T#<tenant>#I#<sha256(key)>  IDEM                     idempotency record (TTL)
    T#<tenant>#AQ#<query_id>    QUERY                    an analytics query started on Athena (TTL)
    SWEEPER                     WATERMARK                the expiry minute the next sweep starts at

GSI1 (gsi1pk, gsi1sk) = (T#<tenant>#PLAN#<plan_id>, <user>) on subscriptions: a plan's subscribers.
GSI2 (gsi2pk, gsi2sk) = (EXP#<minute bucket>[#<shard>], <expires_at>#<tenant>#<reservation>) on pending
reservations only: the sweeper's view of what is overdue, across tenants.
Expiring credit grants also sit in GSI2, under day buckets: (GEXP#<day>[#<shard>],
<expires_at>#<tenant>#<user>#<meter>#<id>); alerts awaiting delivery under (ALERTS#DUE[#<shard>], <next attempt>#...).
GSI3 (gsi3pk, gsi3sk) = (T#<tenant>#U#<user>, <expires_at>#<reservation>) on pending reservations only: one user's
holds, for the lazy reclaim on a refused reserve.
Ids never contain '#': the API admits only [A-Za-z0-9_.:@-]. A *holder* is whoever has counters: a user, whose
holder id is its user id, or an account, whose holder id is `A#<account>` — never a user id, since it holds a '#'.
Every function below that takes a `user_id` takes a holder id.

Shared buckets are sharded. Every GSI2 partition above is written by every tenant, so each bucket is split into
a fixed number of shards by a hash of the item's id (`shard_of`): shard 0 is the bare bucket name, shard k > 0 is
`<bucket>#<k>`. A reader reads shards 0 .. `*_SHARDS_READ` - 1. Changing a shard count never strands an item:
writers use the new `*_SHARDS`, and `*_SHARDS_READ` stays at the largest count any item still in reach was
written with (an item written with n shards sits in a shard below n): for reservations until the sweeper's
90-minute lookback has passed, for alerts until the longest retry wait (6 h) has, for grants until the
longest-lived grant written before has expired (in practice: keep the old maximum). The unsharded layout of
earlier versions is the 1-shard case (shard 0 is the old key), so upgrading strands nothing.
"""

from __future__ import annotations

import hashlib

Key = dict[str, str]

GSI_PLAN_SUBSCRIBERS = "gsi1"
GSI_EXPIRY = "gsi2"
GSI_USER_HOLDS = "gsi3"
RESERVATION_INDEX_ATTRIBUTES = ("gsi2pk", "gsi2sk", "gsi3pk", "gsi3sk")  # removed when a reservation ends

USER_CURRENT_PREFIX = "S#"  # subscription and current counters: one Query is the whole usage picture
COUNTER_CURRENT_PREFIX = "S#CTR#"
COUNTER_CLOSED_PREFIX = "H#CTR#"
CREDIT_BOOK_PREFIX = "S#CB#"  # read with the counters: a credit event needs both
LEDGER_PREFIX = "L#"
SUBSCRIPTION_SK = "S#SUB"


def tenant(tenant_id: str) -> Key:
    return {"pk": f"T#{tenant_id}", "sk": "TENANT"}


def tenant_key_listing(tenant_id: str, key_id: str) -> Key:
    return {"pk": f"T#{tenant_id}", "sk": f"KEY#{key_id}"}


def api_key(key_hash: str) -> Key:
    return {"pk": f"APIKEY#{key_hash}", "sk": "APIKEY"}


def plan(tenant_id: str, plan_id: str) -> Key:
    return {"pk": f"T#{tenant_id}", "sk": f"PLAN#{plan_id}"}


def price(tenant_id: str, model: str) -> Key:
    return {"pk": f"T#{tenant_id}", "sk": f"PRICE#{model}"}


def prices_prefix(tenant_id: str) -> tuple[str, str]:
    return f"T#{tenant_id}", "PRICE#"


def price_version(tenant_id: str, model: str, version: int) -> Key:
    return {"pk": f"T#{tenant_id}#PRICE#{model}", "sk": f"V#{version:010d}"}


def plans_prefix(tenant_id: str) -> tuple[str, str]:
    return f"T#{tenant_id}", "PLAN#"


ACCOUNT_HOLDER_PREFIX = "A#"


def account_holder(account_id: str) -> str:
    return f"{ACCOUNT_HOLDER_PREFIX}{account_id}"


def account_of(holder: str) -> str | None:
    """The account id of an account's holder id; None for a user."""
    return holder.removeprefix(ACCOUNT_HOLDER_PREFIX) if holder.startswith(ACCOUNT_HOLDER_PREFIX) else None


def user_partition(tenant_id: str, user_id: str) -> str:
    """A holder's partition: T#<tenant>#U#<user>, or T#<tenant>#A#<account> for an account's holder id."""
    if user_id.startswith(ACCOUNT_HOLDER_PREFIX):
        return f"T#{tenant_id}#{user_id}"
    return f"T#{tenant_id}#U#{user_id}"


def holder_of(partition: str) -> tuple[str, str]:
    """(tenant, holder id) of a holder's partition (or of a pool shard's)."""
    _, tenant_id, kind, holder_id = without_pool_shard(partition).split("#", 3)
    return tenant_id, account_holder(holder_id) if kind == "A" else holder_id


def account_child(tenant_id: str, parent_id: str, child_id: str) -> Key:
    return {"pk": user_partition(tenant_id, account_holder(parent_id)), "sk": f"{ACCOUNT_CHILD_PREFIX}{child_id}"}


ACCOUNT_CHILD_PREFIX = "CHILD#"


def subscription(tenant_id: str, user_id: str) -> Key:
    return {"pk": user_partition(tenant_id, user_id), "sk": SUBSCRIPTION_SK}


def counter_current(tenant_id: str, user_id: str, meter: str) -> Key:
    return {"pk": user_partition(tenant_id, user_id), "sk": f"{COUNTER_CURRENT_PREFIX}{meter}"}


def counter_closed(tenant_id: str, user_id: str, meter: str, period_key: str) -> Key:
    return {"pk": user_partition(tenant_id, user_id), "sk": f"{COUNTER_CLOSED_PREFIX}{meter}#{period_key}"}


POOL_SHARD_PREFIX = "P#"  # a pool shard's counters, in the shard's own partition
POOL_SHARD_SEPARATOR = "#"


def pool_shard_partition(tenant_id: str, holder: str, shard: int) -> str:
    """Shard k > 0 of a sharded pool lives in its own partition (with the ledger entries of its changes), so the
    shards of a hot pool spread over partitions; shard 0 is the account's partition (the unsharded layout)."""
    base = user_partition(tenant_id, holder)
    return base if shard == 0 else f"{base}{POOL_SHARD_SEPARATOR}{shard}"


def without_pool_shard(partition: str) -> str:
    """The holder partition a pool shard's partition belongs to (any other partition unchanged)."""
    parts = partition.split("#")
    if len(parts) == 5 and parts[0] == "T" and parts[2] == "A" and parts[4].isdigit():
        return "#".join(parts[:4])
    return partition


def counter_shard(tenant_id: str, holder: str, meter: str, shard: int) -> Key:
    """Shard `shard` of an account's current counter: shard 0 is the counter itself (the unsharded layout)."""
    if shard == 0:
        return counter_current(tenant_id, holder, meter)
    return {"pk": pool_shard_partition(tenant_id, holder, shard), "sk": f"{POOL_SHARD_PREFIX}CTR#{meter}"}


def counter_shard_closed(tenant_id: str, holder: str, meter: str, period_key: str, shard: int) -> Key:
    if shard == 0:
        return counter_closed(tenant_id, holder, meter, period_key)
    return {"pk": pool_shard_partition(tenant_id, holder, shard), "sk": f"{POOL_SHARD_PREFIX}H#{meter}#{period_key}"}


def ledger_entry(tenant_id: str, user_id: str, entry_id: str, shard: int = 0) -> Key:
    return {"pk": pool_shard_partition(tenant_id, user_id, shard), "sk": f"{LEDGER_PREFIX}{entry_id}"}


def reservation_partition(tenant_id: str, reservation_id: str) -> str:
    return f"T#{tenant_id}#R#{reservation_id}"


def reservation(tenant_id: str, reservation_id: str) -> Key:
    return {"pk": reservation_partition(tenant_id, reservation_id), "sk": "RSV"}


STEP_PREFIX = "STEP#"


def reservation_step(tenant_id: str, reservation_id: str, step_id: str) -> Key:
    return {"pk": reservation_partition(tenant_id, reservation_id), "sk": f"{STEP_PREFIX}{step_id}"}


def idempotency(tenant_id: str, idempotency_key: str) -> Key:
    digest = hashlib.sha256(idempotency_key.encode()).hexdigest()
    return {"pk": f"T#{tenant_id}#I#{digest}", "sk": "IDEM"}


def plan_subscribers(tenant_id: str, plan_id: str) -> str:
    return f"T#{tenant_id}#PLAN#{plan_id}"


GRANT_PREFIX = "G#"
STRIPE_TENANTS = "STRIPE_TENANTS"  # partition listing the tenants with a Stripe configuration (billing export)


ALERTS_DUE = "ALERTS#DUE"  # GSI2 bucket of alerts awaiting (re)delivery, sorted by next attempt (sharded)


def alert(tenant_id: str, event_id: str) -> Key:
    return {"pk": f"T#{tenant_id}#ALERT#{event_id}", "sk": "ALERT"}


def webhook(tenant_id: str) -> Key:
    return {"pk": f"T#{tenant_id}", "sk": "WEBHOOK"}


def stripe_config(tenant_id: str) -> Key:
    return {"pk": f"T#{tenant_id}", "sk": "STRIPE"}


def stripe_tenant(tenant_id: str) -> Key:
    return {"pk": STRIPE_TENANTS, "sk": tenant_id}


def stripe_event(tenant_id: str, event_id: str) -> Key:
    """A Stripe event (or one of its effects) applied: the at-most-once marker."""
    return {"pk": f"T#{tenant_id}#STRIPE#{event_id}", "sk": "EVENT"}


def stripe_payment(tenant_id: str, payment_intent: str) -> Key:
    """The grants a payment bought, for revoking them when the charge is refunded."""
    return {"pk": f"T#{tenant_id}#PI#{payment_intent}", "sk": "GRANTS"}


def stripe_customer(tenant_id: str, customer_id: str) -> Key:
    return {"pk": f"T#{tenant_id}#CUS#{customer_id}", "sk": "USER"}


def grant(tenant_id: str, user_id: str, meter: str, grant_id: str) -> Key:
    return {"pk": user_partition(tenant_id, user_id), "sk": f"{GRANT_PREFIX}{meter}#{grant_id}"}


def credit_book(tenant_id: str, user_id: str, meter: str) -> Key:
    return {"pk": user_partition(tenant_id, user_id), "sk": f"{CREDIT_BOOK_PREFIX}{meter}"}


# Shard counts of the shared GSI2 buckets (see the module docstring before changing one). A reserve+commit writes
# its reservation's expiry shard twice (index put and delete, 1 WCU each): 128 shards keep the hottest one under
# DynamoDB's 1,000 WCU/s up to ~64,000 cycles/s. Grants and alerts are written off the hot path: 16 is plenty.
EXPIRY_SHARDS = 128
EXPIRY_SHARDS_READ = 128
GRANT_EXPIRY_SHARDS = 16
GRANT_EXPIRY_SHARDS_READ = 16
ALERTS_DUE_SHARDS = 16
ALERTS_DUE_SHARDS_READ = 16
SHARD_HASH_BYTES = 8
if not (
    EXPIRY_SHARDS_READ >= EXPIRY_SHARDS
    and GRANT_EXPIRY_SHARDS_READ >= GRANT_EXPIRY_SHARDS
    and ALERTS_DUE_SHARDS_READ >= ALERTS_DUE_SHARDS
):
    raise ValueError("a reader must read at least as many shards as writers write: items would be stranded")


def shard_of(item_id: str, shards: int) -> int:
    """The shard an item's id hashes to: stable across processes and versions (not Python's salted hash)."""
    if shards < 1:
        raise ValueError(f"a bucket has at least one shard, not {shards}")
    return int.from_bytes(hashlib.sha256(item_id.encode()).digest()[:SHARD_HASH_BYTES], "big") % shards


def bucket_shard(bucket: str, shard: int) -> str:
    """Shard 0 is the bare bucket (the unsharded layout); shard k > 0 is <bucket>#<k>."""
    return bucket if shard == 0 else f"{bucket}#{shard}"


def bucket_shards(bucket: str, shards_read: int) -> list[str]:
    """Every shard partition of a bucket a reader must read."""
    return [bucket_shard(bucket, shard) for shard in range(shards_read)]


def shard_family(partition: str) -> tuple[str, int] | None:
    """(bucket family, shard count written) of a sharded GSI2 partition; None for any other partition."""
    for prefix, shards in (("EXP#", EXPIRY_SHARDS), ("GEXP#", GRANT_EXPIRY_SHARDS), (ALERTS_DUE, ALERTS_DUE_SHARDS)):
        if partition.startswith(prefix):
            return prefix.rstrip("#"), shards
    return None


def grant_expiry_day(expires_at_iso: str) -> str:
    """Grants expire days or months ahead: day buckets let the sweeper look a week back for cheap."""
    return f"GEXP#{expires_at_iso[:10]}"


def grant_expiry_bucket(expires_at_iso: str, grant_identity: str) -> str:
    return bucket_shard(grant_expiry_day(expires_at_iso), shard_of(grant_identity, GRANT_EXPIRY_SHARDS))


def expiry_minute(expires_at_iso: str) -> str:
    """Reservations expiring in the same minute share a bucket: the sweeper reads past buckets."""
    return f"EXP#{expires_at_iso[:16]}"


def expiry_bucket(expires_at_iso: str, reservation_id: str) -> str:
    return bucket_shard(expiry_minute(expires_at_iso), shard_of(reservation_id, EXPIRY_SHARDS))


def alerts_due(event_id: str) -> str:
    return bucket_shard(ALERTS_DUE, shard_of(event_id, ALERTS_DUE_SHARDS))


SWEEP_WATERMARK: Key = {"pk": "SWEEPER", "sk": "WATERMARK"}  # written once a run by the sweeper only


def analytics_query(tenant_id: str, query_id: str) -> Key:
    """An Athena query a tenant started: who may poll it, and how to shape its rows (TTL: a day)."""
    return {"pk": f"T#{tenant_id}#AQ#{query_id}", "sk": "QUERY"}
