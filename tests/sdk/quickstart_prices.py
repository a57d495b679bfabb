from quotaflow import Client
from quotaflow.sdk import from_openai

qf = Client()  # QUOTAFLOW_URL and QUOTAFLOW_API_KEY (the tenant's secret key)

# what a model costs you, in cents per million tokens, and your markup on it
qf.put_price(
    "gpt-4o",
    input_per_million_cents=250,
    cached_input_per_million_cents=125,
    output_per_million_cents=1000,
    markup_percent=40,
)
qf.put_plan(
    "plan_prepaid",
    "Prepaid",
    {
        "tokens": {"label": "Tokens", "quota": 1_000_000, "period": "month"},
        "cents": {"label": "Balance (cents)", "quota": 0, "period": "none"},
    },
)
qf.upsert_subscription("u1", "plan_prepaid")
qf.grant_credits("u1", "cents", 500)  # $5.00 of credits

# before the call: its worst case, at the current price, held
quote = qf.quote("gpt-4o", input_tokens=12_000, max_output_tokens=4_000)
print(quote.tokens, quote.cost_cents)  # 16000 10

with qf.reserve("u1", {"tokens": quote.tokens, "cents": quote.cost_cents}) as r:
    # response = openai.chat.completions.create(model="gpt-4o", max_tokens=4_000, messages=...)
    response = {
        "usage": {
            "prompt_tokens": 12_000,
            "completion_tokens": 1_500,
            "prompt_tokens_details": {"cached_tokens": 10_240},
        }
    }
    usage = from_openai(response["usage"], "gpt-4o")  # a dict as the HTTP API returns it, or the SDK's response.usage
    r.commit({"tokens": usage.total_tokens, "cents": usage})  # the server prices the real counts; the rest comes back

print(usage.total_tokens, qf.usage("u1").counter("cents").remaining)  # 13500 495
