// The client against a real `quotaflow serve`: the seed's flow (the README walkthrough), typed errors,
// withReservation, and the routes the server serves today.

import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import {
  ConnectionFailedError,
  IdempotencyKeyReusedError,
  InsufficientQuotaError,
  InvalidRequestError,
  NotFoundError,
  QuotaflowError,
  ReservationNotPendingError,
  UnauthenticatedError,
  counter,
  createClient,
} from "quotaflow";

import { counter as counterOf, newTenant, seedPaygo, startServer } from "./support.js";

let server;

before(async () => {
  server = await startServer();
});
after(async () => {
  await server?.stop();
});

async function seeded(userId = "u1", quota = 100_000) {
  const tenant = await newTenant(server);
  await seedPaygo(tenant.qf, userId, quota);
  return tenant;
}

test("the seed walkthrough: hold 4,000, commit 800, 99,200 remain, the ledger and verify agree", async () => {
  const { qf } = await seeded();
  const reservation = await qf.reserve("u1", { tokens: 4000 }, { ttlSeconds: 300, idempotencyKey: "call-42" });
  assert.match(reservation.id, /^rsv_/);
  assert.equal(reservation.status, "pending");
  assert.deepEqual(reservation.lines, { tokens: 4000 });

  const committed = await reservation.commit({ tokens: 800 });
  assert.deepEqual(committed.committed, [{ meter: "tokens", amount: 800 }]);
  assert.deepEqual(committed.refunded, [{ meter: "tokens", amount: 3200 }]);
  assert.equal(reservation.status, "committed");

  const usage = await qf.usage("u1");
  assert.equal(usage.planId, "plan_paygo");
  assert.deepEqual(
    { ...counter(usage, "tokens") },
    {
      meter: "tokens",
      label: "Tokens",
      period: "none",
      periodStart: null,
      periodEnd: null,
      enforcement: "hard",
      quota: 100_000,
      credits: 0,
      used: 800,
      reserved: 0,
      remaining: 99_200,
    },
  );
  assert.deepEqual(await qf.canUse("u1", "tokens", 99_201), { allowed: false, remaining: 99_200 });
  assert.deepEqual(await qf.canUse("u1", "tokens", 99_200), { allowed: true, remaining: 99_200 });

  const ledger = await qf.ledger("u1", { limit: 10 });
  assert.deepEqual(
    ledger.entries.map((entry) => entry.kind),
    ["commit", "reserve", "quota_change"],
  );
  assert.equal(ledger.entries[0].deltaUsed, 800);
  assert.deepEqual(await qf.verify(), { ok: true, checked: 1, problems: [] });
});

test("a refused reserve is an InsufficientQuotaError with meter, requested, available, and holds nothing", async () => {
  const { qf } = await seeded("u1", 1000);
  const refused = await qf.reserve("u1", { tokens: 1001 }).catch((error) => error);
  assert.ok(refused instanceof InsufficientQuotaError);
  assert.ok(refused instanceof QuotaflowError);
  assert.equal(refused.code, "insufficient_quota");
  assert.equal(refused.status, 402);
  assert.deepEqual([refused.meter, refused.requested, refused.available], ["tokens", 1001, 1000]);
  assert.equal(counterOf(await qf.usage("u1"), "tokens").reserved, 0);
});

test("each API error arrives as its own class", async () => {
  const { qf } = await seeded();
  const unknownMeter = await qf.reserve("u1", { images: 1 }).catch((error) => error);
  assert.ok(unknownMeter instanceof InvalidRequestError);
  assert.equal(unknownMeter.field, "lines[0].meter");

  assert.ok((await qf.getPlan("plan_nope").catch((error) => error)) instanceof NotFoundError);
  assert.ok((await qf.usage("nobody").catch((error) => error)) instanceof NotFoundError);

  const reservation = await qf.reserve("u1", { tokens: 10 });
  await reservation.release();
  const again = await qf.commitReservation(reservation.id, { tokens: 1 }).catch((error) => error);
  assert.ok(again instanceof ReservationNotPendingError);
  assert.equal(again.status, 409);

  const stranger = createClient({ apiKey: "qf_sk_not_a_key", baseUrl: server.url });
  assert.ok((await stranger.usage("u1").catch((error) => error)) instanceof UnauthenticatedError);
});

test("bad amounts are refused before any request", async () => {
  const nowhere = createClient({ apiKey: "qf_sk_x", baseUrl: "http://127.0.0.1:9", retry: { attemptsMax: 1 } });
  for (const amount of [1.5, -1, Number.MAX_SAFE_INTEGER + 1, "4000", true]) {
    await assert.rejects(nowhere.reserve("u1", { tokens: amount }), TypeError);
  }
  await assert.rejects(nowhere.canUse("u1", "tokens", 0.5), TypeError);
  // A well-formed call does reach the network (and finds nothing there).
  await assert.rejects(nowhere.usage("u1"), ConnectionFailedError);
});

test("withReservation commits what the callback returns", async () => {
  const { qf } = await seeded();
  const outcome = await qf.withReservation("u1", { tokens: 4000 }, async (r) => {
    assert.equal(r.status, "pending");
    return { tokens: 1200 };
  });
  assert.equal(outcome.status, "committed");
  const tokens = counterOf(await qf.usage("u1"), "tokens");
  assert.deepEqual([tokens.used, tokens.reserved, tokens.remaining], [1200, 0, 98_800]);
});

test("withReservation releases the hold when the callback throws, and rethrows", async () => {
  const { qf } = await seeded();
  let held;
  await assert.rejects(
    qf.withReservation("u1", { tokens: 4000 }, async (r) => {
      held = r;
      throw new Error("the LLM call failed");
    }),
    /the LLM call failed/,
  );
  assert.equal((await qf.getReservation(held.id)).status, "released");
  const tokens = counterOf(await qf.usage("u1"), "tokens");
  assert.deepEqual([tokens.used, tokens.reserved], [0, 0]);
});

test("withReservation releases when the callback returns nothing, and leaves a reservation it ended alone", async () => {
  const { qf } = await seeded();
  assert.equal((await qf.withReservation("u1", { tokens: 10 }, async () => {})).status, "released");
  const outcome = await qf.withReservation("u1", { tokens: 10 }, async (r) => {
    await r.commit({ tokens: 3 });
  });
  assert.equal(outcome, undefined);
  assert.equal(counterOf(await qf.usage("u1"), "tokens").used, 3);
});

test("an aborted call inside withReservation still gives the hold back", async () => {
  const { qf } = await seeded();
  const controller = new AbortController();
  let held;
  await assert.rejects(
    qf.withReservation(
      "u1",
      { tokens: 500 },
      async (r) => {
        held = r;
        controller.abort(new Error("the user went away"));
        throw controller.signal.reason;
      },
      { signal: controller.signal },
    ),
    /the user went away/,
  );
  assert.equal((await qf.getReservation(held.id)).status, "released");
});

test("track, refund, credits, and the subscription read back in camelCase", async () => {
  const { qf } = await seeded("u1", 1000);
  const event = await qf.track("u1", { tokens: 300 }, { properties: { model: "gpt-4o" } });
  assert.match(event.eventId, /./);
  await assert.rejects(qf.track("u1", { tokens: 701 }), InsufficientQuotaError);
  assert.match((await qf.refund("u1", { tokens: 100 }, { reason: "generation failed" })).refundId, /./);
  assert.match((await qf.grantCredits("u1", "tokens", 5000)).grantId, /./);
  const tokens = counterOf(await qf.usage("u1"), "tokens");
  assert.deepEqual([tokens.used, tokens.credits, tokens.remaining], [200, 5000, 5800]);
  assert.equal((await qf.listCredits("u1")).length, 1);

  const subscription = await qf.getSubscription("u1");
  assert.equal(subscription.planId, "plan_paygo");
  assert.deepEqual(subscription.customLimits, { tokens: { quota: 1000 } });
  assert.equal((await qf.listPlans()).length, 1);
});

test("meter keys with dots and underscores are data and are never renamed", async () => {
  const { qf } = await newTenant(server);
  const plan = await qf.putPlan("plan_llm", {
    name: "LLM",
    limits: { "llm.input_tokens": { label: "Input", quota: 50, period: "day", enforcement: "hard", alerts: [80] } },
    stripe: { meterEventNames: { "llm.input_tokens": "llm_input" } },
  });
  assert.deepEqual(Object.keys(plan.limits), ["llm.input_tokens"]);
  assert.deepEqual(plan.stripe.meterEventNames, { "llm.input_tokens": "llm_input" });
  await qf.upsertSubscription({ userId: "u9", planId: "plan_llm", customLimits: { "llm.input_tokens": { quota: 70 } } });
  const usage = await qf.usage("u9");
  assert.equal(counter(usage, "llm.input_tokens").quota, 70);
  assert.match(counter(usage, "llm.input_tokens").periodStart, /^\d{4}-\d\d-\d\dT00:00:00Z$/);
});

test("prices: a quote, and a commit of a model call priced by the server", async () => {
  const { qf } = await newTenant(server);
  await qf.putPrice("gpt-4o", {
    inputPerMillionCents: 250,
    cachedInputPerMillionCents: 125,
    outputPerMillionCents: 1000,
    markupPercent: 40,
  });
  await qf.putPlan("plan_prepaid", {
    name: "Prepaid",
    limits: {
      tokens: { label: "Tokens", quota: 1_000_000, period: "month" },
      cents: { label: "Balance (cents)", quota: 0, period: "none" },
    },
  });
  await qf.upsertSubscription({ userId: "u1", planId: "plan_prepaid" });
  await qf.grantCredits("u1", "cents", 500);
  const quote = await qf.quote("gpt-4o", { inputTokens: 12_000, maxOutputTokens: 4_000 });
  assert.deepEqual([quote.tokens, quote.costCents], [16_000, 10]);
  const reservation = await qf.reserve("u1", { tokens: quote.tokens, cents: quote.costCents });
  await reservation.commit({
    tokens: 13_500,
    cents: { fromModel: { model: "gpt-4o", inputTokens: 1760, cachedInputTokens: 10_240, outputTokens: 1500 } },
  });
  // ceil((1760×250 + 10240×125 + 1500×1000) × 140 / 10^8) = 5
  assert.equal(counterOf(await qf.usage("u1"), "cents").remaining, 495);
  assert.equal((await qf.listPrices()).length, 1);
});

test("the same Idempotency-Key with another body is an IdempotencyKeyReusedError", async () => {
  const { qf } = await seeded();
  await qf.reserve("u1", { tokens: 10 }, { idempotencyKey: "once" });
  await assert.rejects(qf.reserve("u1", { tokens: 11 }, { idempotencyKey: "once" }), IdempotencyKeyReusedError);
});

test("admin keys, settings, webhooks, user-token secret rotation, and multi-run quotes", async () => {
  const admin = createClient({ apiKey: server.adminKey, baseUrl: server.url });
  const { qf, tenantId } = await seeded();
  assert.deepEqual(await qf.health(), { ok: true });

  const extra = await admin.createKey(tenantId, "secret");
  const second = createClient({ apiKey: extra.key, baseUrl: server.url });
  assert.equal(counterOf(await second.usage("u1"), "tokens").quota, 100_000);
  await admin.revokeKey(tenantId, extra.keyId);
  await assert.rejects(second.usage("u1"), UnauthenticatedError);

  const settings = await qf.putSettings({ defaultPlanId: "plan_paygo", allowedOrigins: ["https://app.example.com"] });
  assert.equal(settings.defaultPlanId, "plan_paygo");
  assert.deepEqual((await qf.getSettings()).allowedOrigins, ["https://app.example.com"]);
  assert.equal((await qf.usage("newcomer")).planId, "plan_paygo");

  const webhook = await qf.putWebhook({ url: "https://app.example.com/hooks/quotaflow", secret: "whsec_0123456789abcdef" });
  assert.equal(webhook.url, "https://app.example.com/hooks/quotaflow");
  assert.doesNotMatch(JSON.stringify(await qf.getWebhook()), /0123456789abcdef/);

  assert.match((await qf.rotateUserTokenSecret()).rotatedAt, /^\d{4}-/);

  const stripe = await qf.putStripeConfig({
    webhookSecret: "whsec_0123456789abcdef",
    apiKey: "rk_test_0123456789abcdef",
    creditPacks: { price_Pack_100k: { meter: "tokens", amount: 100_000 } },
    plansByPrice: { price_Pro: "plan_paygo" },
  });
  assert.deepEqual(stripe.creditPacks, { price_Pack_100k: { meter: "tokens", amount: 100_000 } });
  assert.deepEqual((await qf.getStripeConfig()).plansByPrice, { price_Pro: "plan_paygo" });
  assert.doesNotMatch(JSON.stringify(await qf.getStripeConfig()), /0123456789ab/);

  await qf.putPrice("gpt-4o", { inputPerMillionCents: 250, outputPerMillionCents: 1000, markupPercent: 40 });
  const runs = await qf.quoteRuns([
    { model: "gpt-4o", inputTokens: 1000, maxOutputTokens: 500 },
    { model: "gpt-4o", inputTokens: 2000, maxOutputTokens: 500 },
  ]);
  assert.equal(runs.tokens, 4000);
  assert.equal(Object.keys(await qf.getPrice("gpt-4o")).length > 0, true);
});
