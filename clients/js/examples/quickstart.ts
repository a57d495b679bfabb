import { counter, createClient, InsufficientQuotaError } from "quotaflow";

const qf = createClient(); // QUOTAFLOW_URL and QUOTAFLOW_API_KEY (the tenant's secret key)

await qf.putPlan("plan_paygo", { name: "Pay as you go", limits: { tokens: { label: "Tokens", quota: 0, period: "none" } } });
await qf.upsertSubscription({ userId: "u1", planId: "plan_paygo", customLimits: { tokens: { quota: 100_000 } } });

// hold an upper bound before the LLM call, commit what it really used; the rest comes back
await qf.withReservation("u1", { tokens: 4000 }, async () => {
  return { tokens: 800 }; // what the callback returns is committed; a throw (or returning nothing) releases the hold
}, { ttlSeconds: 300 });

const tokens = counter(await qf.usage("u1"), "tokens");
console.log(tokens.label, tokens.used, tokens.remaining); // Tokens 800 99200
console.log((await qf.canUse("u1", "tokens", 99_201)).allowed); // false

try {
  await qf.reserve("u1", { tokens: 1_000_000 });
} catch (refused) {
  if (!(refused instanceof InsufficientQuotaError)) throw refused;
  console.log(refused.meter, refused.requested, refused.available); // tokens 1000000 99200
}
