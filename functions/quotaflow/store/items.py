"""Domain objects <-> table items. Field names in items are short-lived only here."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from quotaflow.ledger.amounts import Line
from quotaflow.ledger.counters import Counter
from quotaflow.ledger.credits import CreditBook
from quotaflow.ledger.entries import LedgerEntry
from quotaflow.ledger.periods import Anchoring, iso, parse_iso
from quotaflow.ledger.plans import EffectiveLimit, Plan, Subscription
from quotaflow.ledger.reservations import Reservation
from quotaflow.store import keys
from quotaflow.store.table import Item

COUNTER_FIELDS = ("quota", "credits", "used", "reserved", "available")


def counter_item(
    tenant_id: str, user_id: str, counter: Counter, *, closed: bool = False, rev: int = 0, shard: int = 0
) -> Item:
    key = (
        keys.counter_shard_closed(tenant_id, user_id, counter.meter, counter.period_key, shard)
        if closed
        else keys.counter_shard(tenant_id, user_id, counter.meter, shard)
    )
    return {
        **key,
        "meter": counter.meter,
        "period": counter.period,
        "period_key": counter.period_key,
        "period_end": counter.period_end,
        "label": counter.label,
        "enforcement": counter.enforcement,
        "limits_version": counter.limits_version,
        "rev": rev,
        "alerts": list(counter.alerts),
        **{name: getattr(counter, name) for name in COUNTER_FIELDS},
    }


def counter_from(item: Item) -> Counter:
    return Counter(
        meter=item["meter"],
        period=item["period"],
        period_key=item["period_key"],
        period_end=item.get("period_end"),
        label=item["label"],
        enforcement=item["enforcement"],
        limits_version=item["limits_version"],
        alerts=tuple(item.get("alerts", ())),
        **{name: item[name] for name in COUNTER_FIELDS},
    )


def plan_item(tenant_id: str, plan: Plan) -> Item:
    return {
        **keys.plan(tenant_id, plan.plan_id),
        "plan": plan.model_dump(mode="json"),
        "version": plan.version,
    }


def plan_from(item: Item) -> Plan:
    return Plan.model_validate({**item["plan"], "version": item["version"]})


def subscription_item(
    tenant_id: str,
    subscription: Subscription,
    limits: dict[str, EffectiveLimit],
    limits_version: int,
    *,
    implicit: bool,
    updated_at: datetime,
    features: dict[str, bool | int | str],
    anchoring: Anchoring,
    started_at: datetime,
) -> Item:
    return {
        **keys.subscription(tenant_id, subscription.user_id),
        "subscription": subscription.model_dump(mode="json", exclude_none=True),
        "limits": {meter: limit.model_dump(mode="json") for meter, limit in limits.items()},
        "limits_version": limits_version,
        "features": features,
        "period_anchor": iso(anchoring.anchor),
        "anchored_since": iso(anchoring.since) if anchoring.since else None,
        "started_at": iso(started_at),
        "implicit": implicit,
        "updated_at": iso(updated_at),
        "gsi1pk": keys.plan_subscribers(tenant_id, subscription.plan_id),
        "gsi1sk": subscription.user_id,
    }


def subscription_from(item: Item) -> Subscription:
    return Subscription.model_validate(item["subscription"])


def anchoring_from(item: Item) -> Anchoring:
    """The holder's stored anchoring; items from before anchoring existed are on the calendar."""
    since = item.get("anchored_since")
    return (
        Anchoring(parse_iso(item["period_anchor"]), parse_iso(since) if since else None)
        if item.get("period_anchor")
        else Anchoring()
    )


def started_from(item: Item, default: datetime) -> datetime:
    return parse_iso(item["started_at"]) if item.get("started_at") else default


def limits_from(item: Item) -> dict[str, EffectiveLimit]:
    return {meter: EffectiveLimit.model_validate(raw) for meter, raw in item["limits"].items()}


def lines_to(lines: tuple[Line, ...] | list[Line]) -> list[dict[str, Any]]:
    return [{"meter": line.meter, "amount": line.amount} for line in lines]


def lines_from(raw: list[dict[str, Any]]) -> tuple[Line, ...]:
    return tuple(Line(meter=line["meter"], amount=line["amount"]) for line in raw)


def reservation_item(tenant_id: str, reservation: Reservation, ttl_epoch_s: int) -> Item:
    expires = iso(reservation.expires_at)
    return {
        **keys.reservation(tenant_id, reservation.reservation_id),
        "reservation_id": reservation.reservation_id,
        "user_id": reservation.user_id,
        "lines": lines_to(reservation.lines),
        "held": lines_to(reservation.held),
        "drawn": lines_to(reservation.drawn),
        "held_on": held_on_to(reservation.held_on),
        **({"held_shards": reservation.held_shards} if reservation.held_shards else {}),
        "status": reservation.status,
        "created_at": iso(reservation.created_at),
        "expires_at": expires,
        "ttl": ttl_epoch_s,
        "gsi2pk": keys.expiry_bucket(expires, reservation.reservation_id),
        "gsi2sk": f"{expires}#{tenant_id}#{reservation.reservation_id}",
        "gsi3pk": keys.user_partition(tenant_id, reservation.user_id),
        "gsi3sk": f"{expires}#{reservation.reservation_id}",
    }


def held_on_to(held_on: dict[str, tuple[str, ...]]) -> dict[str, list[str]]:
    return {holder: list(meters) for holder, meters in held_on.items()}


def reservation_from(item: Item) -> Reservation:
    return Reservation(
        reservation_id=item["reservation_id"],
        user_id=item["user_id"],
        lines=lines_from(item["lines"]),
        status=item["status"],
        created_at=parse_iso(item["created_at"]),
        expires_at=parse_iso(item["expires_at"]),
        held=lines_from(item["held"]) if "held" in item else lines_from(item["lines"]),  # made before draws: whole
        drawn=lines_from(item.get("drawn", [])),
        version=item.get("version", 0),
        held_on=_held_on(item),
        held_shards=dict(item.get("held_shards", {})),
    )


def _held_on(item: Item) -> dict[str, tuple[str, ...]]:
    """The levels a reservation holds on; one made before accounts holds on its user alone."""
    if "held_on" in item:
        return {holder: tuple(meters) for holder, meters in item["held_on"].items()}
    return {item["user_id"]: tuple(line["meter"] for line in item["lines"])}


def entry_item(tenant_id: str, user_id: str, entry: LedgerEntry, shard: int = 0) -> Item:
    return {
        **keys.ledger_entry(tenant_id, user_id, entry.entry_id, shard),
        "entry_id": entry.entry_id,
        "at": entry.at,
        "kind": entry.kind,
        "meter": entry.meter,
        "period_key": entry.period_key,
        "du": entry.delta_used,
        "dr": entry.delta_reserved,
        "dc": entry.delta_credits,
        "dq": entry.delta_quota,
        "ref": entry.ref,
    }


def entry_from(item: Item) -> LedgerEntry:
    return LedgerEntry(
        entry_id=item["entry_id"],
        at=item["at"],
        kind=item["kind"],
        meter=item["meter"],
        period_key=item["period_key"],
        delta_used=item["du"],
        delta_reserved=item["dr"],
        delta_credits=item["dc"],
        delta_quota=item["dq"],
        ref=item.get("ref"),
        properties=item.get("properties"),
    )


def credit_book_item(tenant_id: str, user_id: str, meter: str, book: CreditBook) -> Item:
    return {
        **keys.credit_book(tenant_id, user_id, meter),
        "meter": meter,
        "left": book.left,
        "spending": [[grant_id, amount] for grant_id, amount in book.spending],
        "version": book.version,
    }


def credit_book_from(item: Item) -> CreditBook:
    spending = tuple((grant_id, amount) for grant_id, amount in item["spending"])
    return CreditBook(dict(item["left"]), spending, item["version"])
