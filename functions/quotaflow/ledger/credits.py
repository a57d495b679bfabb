"""Credit grants: amounts added outside the period allowance, spent after it, possibly expiring.

A counter keeps one `credits` balance per meter; which grant a spent credit came from is derived, not written
on every reserve and commit: credits are spent in burn order, earliest expiry first (grants that never expire
last), then oldest first. So when a grant expires or its payment is refunded, what is left of it is exactly
    its amount - its share of everything spent so far, allocated in burn order.
Attributing spending at the moment it matters, rather than as it happens, keeps a reserve and a commit at one
DynamoDB call whatever the number of grants, and it is the attribution most favourable to the user: expiring
credits are always the ones used first."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

GrantStatus = Literal["active", "expired", "revoked"]
NEVER = "9999-12-31T23:59:59Z"  # sorts after every real expiry


@dataclass(frozen=True)
class Grant:
    grant_id: str
    meter: str
    amount: int
    created_at: str
    expires_at: str | None
    status: GrantStatus = "active"
    removed: int = 0  # what expiry or revocation took back (the part never spent)

    @property
    def burn_key(self) -> tuple[str, str, str]:
        return (self.expires_at or NEVER, self.created_at, self.grant_id)

    @property
    def spent_when_ended(self) -> int:
        return self.amount - self.removed

    def expired_at(self, now: datetime) -> bool:
        return self.expires_at is not None and self.expires_at <= now.strftime("%Y-%m-%dT%H:%M:%SZ")


def remaining(grants: Sequence[Grant], unspent_now: int) -> dict[str, int]:
    """What is left of each active grant, given the credits the counter still holds unspent.

    Everything granted, less what ended grants gave back, less what is unspent now, was spent; ended grants
    keep the share they had when they ended, and the rest is allocated to active grants in burn order."""
    active = sorted((g for g in grants if g.status == "active"), key=lambda g: g.burn_key)
    granted_active = sum(g.amount for g in active)
    spent_by_active = max(0, granted_active - unspent_now)
    left: dict[str, int] = {}
    for grant in active:
        share = min(grant.amount, spent_by_active)
        spent_by_active -= share
        left[grant.grant_id] = grant.amount - share
    return left
