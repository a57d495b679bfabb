from quotaflow import Client, InsufficientQuota

qf = Client()  # QUOTAFLOW_URL and QUOTAFLOW_API_KEY (the tenant's secret key)

qf.put_plan("plan_paygo", "Pay as you go", {"tokens": {"label": "Tokens", "quota": 0, "period": "none"}})
qf.upsert_subscription("u1", "plan_paygo", custom_limits={"tokens": {"quota": 100_000}})

# hold an upper bound before the LLM call, commit what it really used; the rest comes back
with qf.reserve("u1", {"tokens": 4000}, ttl_seconds=300) as r:
    r.commit({"tokens": 800})  # leaving the block uncommitted, or by an exception, releases the hold

tokens = qf.usage("u1").counter("tokens")
print(tokens.label, tokens.used, tokens.remaining)  # Tokens 800 99200
print(qf.can_use("u1", "tokens", 99_201).allowed)  # False

try:
    qf.reserve("u1", {"tokens": 1_000_000})
except InsufficientQuota as refused:
    print(refused.meter, refused.requested, refused.available)  # tokens 1000000 99200
