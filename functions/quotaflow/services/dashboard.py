"""Read-only aggregations for the operator dashboard: the tenant's users ranked by consumption this period.

Reads only. Cost: the tenant's plans and their subscriber index (audit.tenant_users), then one Query per user
(the same read as `usage`), so a listing is bounded by USERS_SCANNED_MAX users; past that it says `truncated`."""

from __future__ import annotations

from fractions import Fraction
from itertools import islice

from quotaflow.ledger.errors import InvalidRequest, NotFound
from quotaflow.ledger.model import Model
from quotaflow.ledger.periods import iso
from quotaflow.services import audit, balances
from quotaflow.services.scope import Scope
from quotaflow.services.views import CounterView

USERS_SCANNED_MAX = 1_000  # users read per listing: one Query each
USERS_LISTED_MAX = 1_000
USERS_LISTED_DEFAULT = 100


class UserRow(Model):
    user_id: str
    plan_id: str
    ranked_by: str  # the meter this row is ranked by: the one asked for, else the user's most used one
    counters: list[CounterView]  # every meter of the user's plan, as `usage` shows them


class UsersView(Model):
    meter: str | None
    as_of: str
    users: list[UserRow]
    meters: list[str]  # every meter seen on the users read, for a picker
    scanned: int  # users read
    truncated: bool  # the tenant has more users than one listing reads (USERS_SCANNED_MAX)


def users_by_consumption(scope: Scope, meter: str | None, limit: int) -> UsersView:
    """The tenant's users by `used` this period on `meter`, most first (users without that meter are left out).
    Without a meter: by the largest share of allowance (quota + credits) used on any one meter."""
    if not 1 <= limit <= USERS_LISTED_MAX:
        raise InvalidRequest(f"limit must be 1..{USERS_LISTED_MAX}", field="limit")
    user_ids = list(islice(audit.tenant_users(scope), USERS_SCANNED_MAX + 1))
    truncated = len(user_ids) > USERS_SCANNED_MAX
    user_ids = user_ids[:USERS_SCANNED_MAX]
    rows: list[tuple[tuple[Fraction, int, str], UserRow]] = []
    meters: set[str] = set()
    for user_id in user_ids:
        try:
            usage = balances.usage(scope, user_id)
        except NotFound:  # the subscription went away between the index read and this one
            continue
        meters.update(counter.meter for counter in usage.counters)
        ranked = _ranking_counter(usage.counters, meter)
        if ranked is None:
            continue
        row = UserRow(user_id=user_id, plan_id=usage.plan_id, ranked_by=ranked.meter, counters=usage.counters)
        rows.append(((-_share_used(ranked) if meter is None else Fraction(0), -ranked.used, user_id), row))
    rows.sort(key=lambda pair: pair[0])
    return UsersView(
        meter=meter,
        as_of=iso(scope.now),
        users=[row for _, row in rows[:limit]],
        meters=sorted(meters),
        scanned=len(user_ids),
        truncated=truncated,
    )


def _ranking_counter(counters: list[CounterView], meter: str | None) -> CounterView | None:
    if meter is not None:
        return next((counter for counter in counters if counter.meter == meter), None)
    if not counters:
        return None
    return max(counters, key=lambda counter: (_share_used(counter), counter.used))


def _share_used(counter: CounterView) -> Fraction:
    """used / (quota + credits), exactly; a zero allowance counts each unit used as a whole allowance."""
    return Fraction(counter.used, max(1, counter.quota + counter.credits))
