from datetime import UTC, datetime

from quotaflow import Client

qf = Client()  # QUOTAFLOW_URL and QUOTAFLOW_API_KEY (the tenant's secret key)

qf.put_plan(
    "plan_pro",
    "Pro",
    {
        "tokens": {
            "quota": 1_000_000,
            "period": "month",
            # what is left at the period's end comes back as a grant, capped, usable for 2 periods
            "rollover": {"max": 250_000, "expires_after_periods": 2},
        }
    },
    features={"gpt-4o": True, "max_context_tokens": 128_000, "support": "email"},
)
# billed on the 31st at 09:30 UTC: periods start then (on the last day of shorter months)
qf.upsert_subscription(
    "u7",
    "plan_pro",
    period_anchor=datetime(2026, 1, 31, 9, 30, tzinfo=UTC),
    custom_features={"support": "priority"},
)
print(qf.usage("u7").counter("tokens").period_start.strftime("%H:%M"))  # 09:30
print(qf.entitlements("u7").features)  # the plan's features with the overrides on top
print(qf.can_use_feature("u7", "gpt-4o").allowed, qf.can_use_feature("u7", "o3").allowed)  # True False
