"""Plans, subscriptions and tenant settings. A limit change reaches every affected counter at once."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from quotaflow.ledger.errors import Conflict, InvalidRequest, NotFound
from quotaflow.ledger.periods import iso
from quotaflow.ledger.plans import (
    METERS_PER_PLAN_MAX,
    LimitOverride,
    Plan,
    Subscription,
    effective_limits,
    feature_allowed,
)
from quotaflow.ledger.pools import check_shardable
from quotaflow.services.scope import Scope
from quotaflow.services.users import default_plan_id, get_plan, load_user, resync
from quotaflow.services.views import EntitlementsView, FeatureAllowanceView, SettingsView, SubscriptionView
from quotaflow.store import items, keys
from quotaflow.store.table import ConditionFailed, Item

PLANS_PAGES_MAX = 10
SUBSCRIBER_PAGES_MAX = 100  # 100,000 subscribers per plan change; past that the change is refused, not partial


def put_plan(scope: Scope, plan: Plan) -> Plan:
    """Create or replace a plan, then apply its limits to every subscriber's current counters."""
    previous = scope.store.get(keys.plan(scope.tenant_id, plan.plan_id))
    version = previous["version"] + 1 if previous else 1
    stored = plan.model_copy(update={"version": version})
    condition = "version = :v" if previous else "attribute_not_exists(pk)"
    values = {":v": previous["version"]} if previous else None
    item = items.plan_item(scope.tenant_id, stored)
    for subscriber in _subscribers(scope, plan.plan_id):  # a sharded pool on it must stay possible on the new one
        subscription = items.subscription_from(subscriber)
        shards = subscription.pool_shards or 1
        check_shardable(effective_limits(stored, subscription.custom_limits), shards, None, has_credits=False)
    try:
        scope.store.put(item, condition=condition, values=values)
    except ConditionFailed:
        raise Conflict(f"plan {plan.plan_id} changed concurrently; retry") from None
    for subscriber in _subscribers(scope, plan.plan_id):  # read after the put: nobody joining meanwhile is missed
        resync(scope, subscriber["gsi1sk"], stored, implicit=bool(subscriber.get("implicit")))
    return stored


def _subscribers(scope: Scope, plan_id: str) -> Iterator[Item]:
    return scope.store.query_all(
        keys.plan_subscribers(scope.tenant_id, plan_id),
        "",
        pages_max=SUBSCRIBER_PAGES_MAX,
        index=keys.GSI_PLAN_SUBSCRIBERS,
    )


def list_plans(scope: Scope) -> list[Plan]:
    pk, prefix = keys.plans_prefix(scope.tenant_id)
    return [items.plan_from(item) for item in scope.store.query_all(pk, prefix, pages_max=PLANS_PAGES_MAX)]


def put_subscription(
    scope: Scope,
    user_id: str,
    plan_id: str,
    custom_limits: dict[str, LimitOverride],
    stripe_customer_id: str | None,
    account_id: str | None = None,
    *,
    custom_features: dict[str, bool | int | str] | None = None,
    period_anchor: datetime | None = None,
) -> SubscriptionView:
    """Replace the user's subscription (fields left out take their defaults) and apply it to the counters; with
    `account_id`, the user is a member of that account and draws on its pools (and those above it) too."""
    plan = plan_for(scope, plan_id, custom_limits)
    if (
        account_id is not None
        and scope.store.get(keys.subscription(scope.tenant_id, keys.account_holder(account_id))) is None
    ):
        raise NotFound(f"account {account_id!r} does not exist", account_id=account_id)
    changes = {
        "custom_limits": custom_limits,
        "custom_features": custom_features or {},
        "stripe_customer_id": stripe_customer_id,
        "period_anchor": period_anchor,
        "account_id": account_id,
    }
    subscription = resync(scope, user_id, plan, changes=changes)
    link_customer(scope, user_id, stripe_customer_id)
    return subscription_view(subscription, scope)


def plan_for(scope: Scope, plan_id: str, custom_limits: dict[str, LimitOverride]) -> Plan:
    """The plan a holder subscribes to, once its overrides are checked against it (404 for an unknown plan)."""
    plan = get_plan(scope, plan_id)
    for meter, override in custom_limits.items():
        if meter not in plan.limits and override.quota is None:
            raise InvalidRequest(
                f"custom limit {meter!r} is not in plan {plan_id}: it needs a quota",
                field=f"custom_limits.{meter}.quota",
            )
    if len(set(plan.limits) | set(custom_limits)) > METERS_PER_PLAN_MAX:
        raise InvalidRequest(f"at most {METERS_PER_PLAN_MAX} meters per holder", field="custom_limits")
    return plan


def link_customer(scope: Scope, user_id: str, stripe_customer_id: str | None) -> None:
    """Remember which user a Stripe customer is, for subscription events that carry only the customer."""
    if stripe_customer_id:
        scope.store.put({**keys.stripe_customer(scope.tenant_id, stripe_customer_id), "user_id": user_id})


def subscription_view(subscription: Subscription, scope: Scope) -> SubscriptionView:
    return SubscriptionView(
        user_id=subscription.user_id,
        plan_id=subscription.plan_id,
        custom_limits={m: o.model_dump(exclude_none=True) for m, o in subscription.custom_limits.items()},
        custom_features=subscription.custom_features,
        period_anchor=iso(subscription.period_anchor) if subscription.period_anchor else None,
        stripe_customer_id=subscription.stripe_customer_id,
        account_id=subscription.account_id,
        updated_at=scope.now.strftime("%Y-%m-%dT%H:%M:%SZ"),
    )


def get_subscription(scope: Scope, user_id: str) -> SubscriptionView:
    item = scope.store.get(keys.subscription(scope.tenant_id, user_id))
    if item is None or item.get("implicit"):
        raise NotFound(f"user {user_id!r} has no subscription", user_id=user_id)
    view = subscription_view(items.subscription_from(item), scope)
    return view.model_copy(update={"updated_at": item["updated_at"]})


def get_settings(scope: Scope) -> SettingsView:
    tenant = scope.store.get(keys.tenant(scope.tenant_id)) or {}
    return SettingsView(
        tenant_id=scope.tenant_id,
        default_plan_id=tenant.get("default_plan_id"),
        allowed_origins=tenant.get("allowed_origins", []),
    )


def put_settings(
    scope: Scope, *, allowed_origins: list[str] | None, change_default_plan: bool, default_plan: str | None
) -> SettingsView:
    """Change what is given (`allowed_origins` None: unchanged). A new default plan moves the users on the old
    one along (users the app never subscribed itself)."""
    if allowed_origins is not None:
        scope.store.update(
            keys.tenant(scope.tenant_id), "SET allowed_origins = :origins", values={":origins": allowed_origins}
        )
    if change_default_plan:
        _set_default_plan(scope, default_plan)
    return get_settings(scope)


def _set_default_plan(scope: Scope, default_plan: str | None) -> None:
    new_plan = get_plan(scope, default_plan) if default_plan else None
    old_plan_id = default_plan_id(scope)
    scope.store.update(keys.tenant(scope.tenant_id), "SET default_plan_id = :plan", values={":plan": default_plan})
    if old_plan_id and new_plan and old_plan_id != new_plan.plan_id:
        for subscriber in scope.store.query_all(
            keys.plan_subscribers(scope.tenant_id, old_plan_id),
            "",
            pages_max=SUBSCRIBER_PAGES_MAX,
            index=keys.GSI_PLAN_SUBSCRIBERS,
        ):
            if subscriber.get("implicit"):
                resync(scope, subscriber["gsi1sk"], new_plan, implicit=True)


def entitlements(scope: Scope, user_id: str) -> EntitlementsView:
    """The user's features: the plan's, with the subscription's `custom_features` on top. Read fresh (one
    Query), never from the container's cache: an entitlement just revoked is revoked at once."""
    return EntitlementsView(user_id=user_id, features=load_user(scope, user_id).limits.features)


def can_use_feature(scope: Scope, user_id: str, feature: str) -> FeatureAllowanceView:
    features = load_user(scope, user_id).limits.features
    return FeatureAllowanceView(allowed=feature_allowed(features.get(feature)))
