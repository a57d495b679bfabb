"""Accounts: organizations, teams and workspaces that hold shared pools above their members.

An account is a holder like a user (its own plan, counters, ledger, grants, in its own partition); accounts form
a tree at most ACCOUNT_LEVELS_MAX deep, and a user belongs to at most one account, its leaf. The tree is kept as
each account's parent (in its subscription item) plus a child link under the parent, so it can be walked up (a
write's levels) and down (how deep a subtree is, before it moves)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from quotaflow.ledger.errors import InvalidRequest, NotFound
from quotaflow.ledger.plans import LimitOverride
from quotaflow.services.levels import ACCOUNT_LEVELS_MAX
from quotaflow.services.plans import link_customer, plan_for
from quotaflow.services.scope import Scope
from quotaflow.services.users import resync
from quotaflow.services.views import AccountView
from quotaflow.store import items, keys
from quotaflow.store.table import Item

CHILDREN_PAGES_MAX = 10  # 10,000 sub-accounts per account


def put_account(
    scope: Scope,
    account_id: str,
    name: str,
    plan_id: str,
    custom_limits: dict[str, LimitOverride],
    parent_id: str | None,
    stripe_customer_id: str | None,
    period_anchor: datetime | None = None,
    pool_shards: int | None = None,
) -> AccountView:
    """Create or replace an account; its plan applies to its pool counters at once, like a user's.
    `pool_shards` left out keeps the account's (1 for a new one); it may grow, never shrink (services/pools.py)."""
    plan = plan_for(scope, plan_id, custom_limits)
    holder = keys.account_holder(account_id)
    previous = _account_item(scope, account_id)
    old_parent = previous["subscription"].get("account_id") if previous else None
    if parent_id is not None:
        _check_placement(scope, account_id, parent_id)
    changes: dict[str, Any] = {
        "custom_limits": custom_limits,
        "stripe_customer_id": stripe_customer_id,
        "period_anchor": period_anchor,
        "account_id": parent_id,
        "name": name,
    }
    if pool_shards is not None:
        changes["pool_shards"] = None if pool_shards == 1 else pool_shards  # 1 is the unsharded layout
    resync(scope, holder, plan, changes=changes)
    if old_parent != parent_id:
        if parent_id is not None:
            scope.store.put({**keys.account_child(scope.tenant_id, parent_id, account_id), "child_id": account_id})
        if old_parent is not None:
            scope.store.delete(keys.account_child(scope.tenant_id, old_parent, account_id))
    link_customer(scope, holder, stripe_customer_id)
    return get_account(scope, account_id)


def get_account(scope: Scope, account_id: str) -> AccountView:
    item = _account_item(scope, account_id)
    if item is None:
        raise NotFound(f"account {account_id!r} does not exist", account_id=account_id)
    return _view(scope, account_id, item)


def require_account(scope: Scope, account_id: str) -> str:
    """The account's holder id; 404 for an unknown account."""
    if _account_item(scope, account_id) is None:
        raise NotFound(f"account {account_id!r} does not exist", account_id=account_id)
    return keys.account_holder(account_id)


def _account_item(scope: Scope, account_id: str) -> Item | None:
    return scope.store.get(keys.subscription(scope.tenant_id, keys.account_holder(account_id)))


def _check_placement(scope: Scope, account_id: str, parent_id: str) -> None:
    """A parent must exist, must not be the account or below it, and the tree stays ACCOUNT_LEVELS_MAX deep."""
    chain = [parent_id]  # the parent and its ancestors, nearest first
    while True:
        item = _account_item(scope, chain[-1])
        if item is None:
            raise InvalidRequest(f"parent account {chain[-1]!r} does not exist", field="parent_id")
        above = item["subscription"].get("account_id")
        if above is None:
            break
        if len(chain) > ACCOUNT_LEVELS_MAX:
            raise InvalidRequest("the account tree above the parent is too deep", field="parent_id")
        chain.append(above)
    if account_id in chain:
        raise InvalidRequest(f"account {account_id!r} cannot be placed below itself", field="parent_id")
    if len(chain) + 1 + _height(scope, account_id) > ACCOUNT_LEVELS_MAX:
        raise InvalidRequest(f"accounts nest at most {ACCOUNT_LEVELS_MAX} levels deep", field="parent_id")


def _height(scope: Scope, account_id: str) -> int:
    """How many levels of sub-accounts lie below the account (0: none)."""
    level, height = [account_id], 0
    while level and height < ACCOUNT_LEVELS_MAX:
        below = [
            item["child_id"]
            for parent in level
            for item in scope.store.query_all(
                keys.user_partition(scope.tenant_id, keys.account_holder(parent)),
                keys.ACCOUNT_CHILD_PREFIX,
                pages_max=CHILDREN_PAGES_MAX,
            )
        ]
        if not below:
            break
        height += 1
        level = below
    return height


def _view(scope: Scope, account_id: str, item: Item) -> AccountView:
    subscription = items.subscription_from(item)
    return AccountView(
        account_id=account_id,
        name=subscription.name or account_id,
        plan_id=subscription.plan_id,
        custom_limits={m: o.model_dump(exclude_none=True) for m, o in subscription.custom_limits.items()},
        parent_id=subscription.account_id,
        stripe_customer_id=subscription.stripe_customer_id,
        pool_shards=subscription.pool_shards or 1,
        updated_at=item.get("updated_at", scope.now.strftime("%Y-%m-%dT%H:%M:%SZ")),
    )
