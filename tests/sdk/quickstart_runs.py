from quotaflow import Client

qf = Client()  # QUOTAFLOW_URL and QUOTAFLOW_API_KEY (the tenant's secret key)

qf.put_plan("plan_agents", "Agents", {"tokens": {"label": "Tokens", "quota": 100_000, "period": "month"}})
qf.upsert_subscription("u1", "plan_agents")

# one budget for the whole agent run; a heartbeat keeps the hold alive while the run works
with qf.run("u1", {"tokens": 12_000}, ttl_seconds=120, heartbeat_seconds=30) as run:
    for step, used in [("plan", 1_500), ("search", 6_000), ("answer", 2_500)]:
        # used = what this step's LLM call reported
        drawn = run.draw({"tokens": used}, {"step": step})
        print(step, drawn.held[0].amount)  # what is left of the run's budget
    if drawn.held[0].amount < 5_000:
        run.increase({"tokens": 10_000})  # a bigger hold, refused (InsufficientQuota) if it does not fit
# leaving the block finishes the run: what is left of the hold comes back, the draws stay recorded

print(qf.usage("u1").counter("tokens").remaining)  # 90000
print([s.properties["step"] for s in run.steps().steps])  # ['plan', 'search', 'answer']
