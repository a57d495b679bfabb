"""The only module that knows the single table's key formats.

    pk                          sk                       item
    T#<tenant>                  TENANT                   tenant settings
    T#<tenant>                  KEY#<key_id>             an API key's listing (hash, kind)
    T#<tenant>                  PLAN#<plan_id>           a plan
    T#<tenant>                  PRICE#<model>            a model's current price
    T#<tenant>#PRICE#<model>    V#<version>              every price version (history)
    APIKEY#<sha256>             APIKEY                   key lookup by hash
    T#<tenant>#U#<user>         S#SUB                    subscription (+ effective limits, limits_version)
    T#<tenant>#U#<user>         S#CTR#<meter>            the meter's current counter
    T#<tenant>#U#<user>         H#CTR#<meter>#<period>   a closed period's counter
    T#<tenant>#U#<user>         L#<entry_id>             ledger entry (time-ordered ids)
    T#<tenant>#U#<user>         G#<meter>#<grant_id>     credit grant
    T#<tenant>#U#<user>         S#CB#<meter>             credit book: the meter's grants as of its last credit event
    T#<tenant>#R#<reservation>  RSV                      reservation
    T#<tenant>#I#<sha256(key)>  IDEM                     idempotency record (TTL)

GSI1 (gsi1pk, gsi1sk) = (T#<tenant>#PLAN#<plan_id>, <user>) on subscriptions: a plan's subscribers.
GSI2 (gsi2pk, gsi2sk) = (EXP#<minute bucket>, <expires_at>#<tenant>#<reservation>) on pending reservations only:
the sweeper's view of what is overdue, across tenants.
Expiring credit grants also sit in GSI2, under day buckets: (GEXP#<day>, <expires_at>#<tenant>#<user>#<meter>#<id>).
GSI3 (gsi3pk, gsi3sk) = (T#<tenant>#U#<user>, <expires_at>#<reservation>) on pending reservations only: one user's
holds, for the lazy reclaim on a refused reserve.
Ids never contain '#': the API admits only [A-Za-z0-9_.:@-].
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


def user_partition(tenant_id: str, user_id: str) -> str:
    return f"T#{tenant_id}#U#{user_id}"


def subscription(tenant_id: str, user_id: str) -> Key:
    return {"pk": user_partition(tenant_id, user_id), "sk": SUBSCRIPTION_SK}


def counter_current(tenant_id: str, user_id: str, meter: str) -> Key:
    return {"pk": user_partition(tenant_id, user_id), "sk": f"{COUNTER_CURRENT_PREFIX}{meter}"}


def counter_closed(tenant_id: str, user_id: str, meter: str, period_key: str) -> Key:
    return {"pk": user_partition(tenant_id, user_id), "sk": f"{COUNTER_CLOSED_PREFIX}{meter}#{period_key}"}


def ledger_entry(tenant_id: str, user_id: str, entry_id: str) -> Key:
    return {"pk": user_partition(tenant_id, user_id), "sk": f"{LEDGER_PREFIX}{entry_id}"}


def reservation(tenant_id: str, reservation_id: str) -> Key:
    return {"pk": f"T#{tenant_id}#R#{reservation_id}", "sk": "RSV"}


def idempotency(tenant_id: str, idempotency_key: str) -> Key:
    digest = hashlib.sha256(idempotency_key.encode()).hexdigest()
    return {"pk": f"T#{tenant_id}#I#{digest}", "sk": "IDEM"}


def plan_subscribers(tenant_id: str, plan_id: str) -> str:
    return f"T#{tenant_id}#PLAN#{plan_id}"


GRANT_PREFIX = "G#"
STRIPE_TENANTS = "STRIPE_TENANTS"  # partition listing the tenants with a Stripe configuration (billing export)


ALERTS_DUE = "ALERTS#DUE"  # GSI2 partition of alerts awaiting (re)delivery, sorted by next attempt


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


def grant_expiry_bucket(expires_at_iso: str) -> str:
    """Grants expire days or months ahead: day buckets let the sweeper look a week back for cheap."""
    return f"GEXP#{expires_at_iso[:10]}"


def expiry_bucket(expires_at_iso: str) -> str:
    """Reservations expiring in the same minute share a GSI2 partition: the sweeper reads past buckets."""
    return f"EXP#{expires_at_iso[:16]}"
