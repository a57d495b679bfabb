"""Credit grants: amounts added outside the period allowance, spent after it, possibly expiring.

A counter keeps one `credits` balance per meter; which grant a spent credit came from is derived, not written
on every reserve and commit, so those stay one DynamoDB call whatever the number of grants. The derivation
starts from a **credit book**: a snapshot of what each active grant held, and of this period's credit spending
in time order, taken in the same transaction as every credit event (a grant, a grant's end, a refund).
Between two credit events only spending happens, so

    spent since the snapshot = what the book holds - what the counter holds unspent now,

allocated from the snapshot in burn order: earliest expiry first (grants that never expire last), then oldest.
A grant enters the book whole at the moment it is granted, so it pays only for usage after it arrived: burn
order applies at the moment of each use. A refund undoes the newest credit spending first, giving each credit
back to the grant that paid it; what an ended grant paid for comes back unattributed (never expiring).
A grant that arrives while usage stands beyond quota and credits (a soft meter's or a commit's overage)
settles that overage first, as the counter's `available` always did."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from quotaflow.ledger.counters import Counter, spent_credits, unspent_credits
from quotaflow.ledger.errors import InvariantViolation

GrantStatus = Literal["active", "expired", "revoked"]
NEVER = "9999-12-31T23:59:59Z"  # sorts after every real expiry
UNATTRIBUTED = "unattributed"  # credits no active grant holds: refunds of what an ended grant had paid for
SPENDING_ENTRIES_MAX = 500  # a refund reaching further back than this gives its credits back unattributed


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


@dataclass(frozen=True)
class CreditBook:
    """One meter's credits as of its last credit event."""

    left: dict[str, int]  # per active grant (and UNATTRIBUTED): what it held
    spending: tuple[tuple[str, int], ...] = ()  # this period's credit spending, oldest first: (grant_id, amount)
    version: int = 0  # the book's item is replaced only over the version it was computed from

    @property
    def held(self) -> int:
        return sum(self.left.values())


class _Wallet:
    """A working copy of a book: spends forward in burn order, refunds backward in time order."""

    def __init__(self, grants: Iterable[Grant], book: CreditBook) -> None:
        self.active = {g.grant_id: g for g in grants if g.status == "active"}
        missing = sorted(set(self.active) - set(book.left))
        if missing:
            raise InvariantViolation(f"active grants {missing} are not in the credit book")
        self.left = {grant_id: book.left[grant_id] for grant_id in self.active}
        self.left[UNATTRIBUTED] = book.left.get(UNATTRIBUTED, 0)
        self.spending = list(book.spending)

    @property
    def burn_order(self) -> list[str]:
        return [*sorted(self.active, key=lambda grant_id: self.active[grant_id].burn_key), UNATTRIBUTED]

    def move(self, spent: int) -> None:
        if spent >= 0:
            self._spend(spent)
        else:
            self._unspend(-spent)

    def _spend(self, amount: int) -> None:
        for grant_id in self.burn_order:
            taken = min(self.left[grant_id], amount)
            if taken:
                self.left[grant_id] -= taken
                self.spending.append((grant_id, taken))
                amount -= taken
        if amount:
            raise InvariantViolation(f"{amount} credits spent beyond what the book holds")

    def _unspend(self, amount: int) -> None:
        while amount and self.spending:
            grant_id, spent = self.spending.pop()
            given = min(spent, amount)
            holder = grant_id if grant_id in self.active else UNATTRIBUTED
            self.left[holder] += given
            amount -= given
            if spent > given:
                self.spending.append((grant_id, spent - given))
        self.left[UNATTRIBUTED] += amount

    def keep_spending(self, amount: int) -> None:
        """Keep the newest `amount` of spending (this period's; refunds reach no further), merged and bounded."""
        kept: list[tuple[str, int]] = []
        for grant_id, spent in reversed(self.spending):
            if amount <= 0 or len(kept) >= SPENDING_ENTRIES_MAX:
                break
            part = min(spent, amount)
            if kept and kept[-1][0] == grant_id:
                kept[-1] = (grant_id, kept[-1][1] + part)
            else:
                kept.append((grant_id, part))
            amount -= part
        self.spending = kept[::-1]

    def add(self, grant: Grant) -> None:
        self.active[grant.grant_id] = grant
        self.left[grant.grant_id] = grant.amount

    def end(self, grant_id: str) -> None:
        del self.active[grant_id]
        del self.left[grant_id]

    def book(self, version: int) -> CreditBook:
        left = {grant_id: amount for grant_id, amount in self.left.items() if amount or grant_id != UNATTRIBUTED}
        return CreditBook(left, tuple(self.spending), version)


def remaining(grants: Iterable[Grant], book: CreditBook, counter: Counter) -> dict[str, int]:
    """What is left of each active grant now, given the book and the counter as it stands."""
    wallet = _Wallet(grants, book)
    wallet.move(book.held - unspent_credits(counter))
    return {grant_id: left for grant_id, left in wallet.left.items() if grant_id != UNATTRIBUTED}


def rebooked(
    grants: Iterable[Grant],
    book: CreditBook,
    before: Counter,
    after: Counter,
    *,
    added: Grant | None = None,
    ended: str | None = None,
) -> CreditBook:
    """The book after a credit event that takes the counter from `before` to `after`: the spending since the
    last snapshot is allocated first, then a grant enters whole or an ended one leaves, then the event's own
    change of credit spending (a refund's, or the overage a new grant settles) is applied."""
    wallet = _Wallet(grants, book)
    wallet.move(book.held - unspent_credits(before))
    wallet.keep_spending(spent_credits(before))
    if ended is not None:
        wallet.end(ended)
    if added is not None:
        wallet.add(added)
    wallet.move(spent_credits(after) - spent_credits(before))
    return wallet.book(book.version + 1)
