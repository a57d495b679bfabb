from quotaflow import Client, InsufficientQuota

qf = Client()  # QUOTAFLOW_URL and QUOTAFLOW_API_KEY (the tenant's secret key)

# the Acme workspace shares 800,000 tokens a month; each member may use at most 500,000
qf.put_plan("plan_seat", "Seat", {"tokens": {"label": "Tokens", "quota": 500_000, "period": "month"}})
qf.put_plan("plan_team", "Team", {"tokens": {"label": "Tokens", "quota": 800_000, "period": "month"}})
qf.put_account("acme", "Acme", "plan_team")
qf.upsert_subscription("alice", "plan_seat", account_id="acme")
qf.upsert_subscription("bob", "plan_seat", account_id="acme")

try:
    qf.reserve("alice", {"tokens": 500_001})  # over her seat
except InsufficientQuota as refused:
    print(refused.scope, refused.available)  # user 500000

qf.track("alice", {"tokens": 500_000})  # posted to alice and to the pool, in one transaction
try:
    qf.reserve("bob", {"tokens": 300_001})  # bob's seat has room, the pool has 300,000 left
except InsufficientQuota as refused:
    print(refused.scope, refused.account_id, refused.available)  # account acme 300000

print(qf.usage("bob").effective["tokens"])  # remaining=300000 limited_by='account:acme'
