// Idempotency replay through the client: a key sent again returns the first answer and changes nothing.

import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import { InsufficientQuotaError } from "quotaflow";

import { counter, newTenant, seedPaygo, startServer } from "./support.js";

let server;

before(async () => {
  server = await startServer();
});
after(async () => {
  await server?.stop();
});

async function seeded(quota = 100_000) {
  const tenant = await newTenant(server);
  await seedPaygo(tenant.qf, "u1", quota);
  return tenant.qf;
}

test("a reserve sent twice under one key returns the same reservation and holds once", async () => {
  const qf = await seeded();
  const first = await qf.reserve("u1", { tokens: 4000 }, { idempotencyKey: "call-42" });
  const again = await qf.reserve("u1", { tokens: 4000 }, { idempotencyKey: "call-42" });
  assert.equal(again.id, first.id);
  assert.equal(again.expiresAt, first.expiresAt);
  assert.equal(counter(await qf.usage("u1"), "tokens").reserved, 4000);
});

test("re-running a whole reserve -> commit step under its key replays it instead of charging twice", async () => {
  const qf = await seeded();
  const step = () =>
    qf.withReservation("u1", { tokens: 4000 }, async () => ({ tokens: 800 }), { idempotencyKey: "job-9:call-1" });
  const first = await step();
  const rerun = await step();
  assert.deepEqual(rerun, first);
  const tokens = counter(await qf.usage("u1"), "tokens");
  assert.deepEqual([tokens.used, tokens.reserved, tokens.remaining], [800, 0, 99_200]);
});

test("a refusal is stored too: the same key stays refused after credits arrive, a new key is not", async () => {
  const qf = await seeded(100);
  await assert.rejects(qf.track("u1", { tokens: 150 }, { idempotencyKey: "evt-1" }), InsufficientQuotaError);
  await qf.grantCredits("u1", "tokens", 100);
  await assert.rejects(qf.track("u1", { tokens: 150 }, { idempotencyKey: "evt-1" }), InsufficientQuotaError);
  await qf.track("u1", { tokens: 150 }, { idempotencyKey: "evt-2" });
  assert.equal(counter(await qf.usage("u1"), "tokens").used, 150);
});

test("each write without a key of its own gets a fresh one", async () => {
  const qf = await seeded();
  await qf.track("u1", { tokens: 1 });
  await qf.track("u1", { tokens: 1 });
  assert.equal(counter(await qf.usage("u1"), "tokens").used, 2);
});

test("a key that is not 1-255 printable ASCII characters is refused before any request", async () => {
  const qf = await seeded();
  await assert.rejects(qf.track("u1", { tokens: 1 }, { idempotencyKey: "" }), TypeError);
  await assert.rejects(qf.track("u1", { tokens: 1 }, { idempotencyKey: "é" }), TypeError);
  // A reservation's key leaves room for the `:release` of its later steps.
  await assert.rejects(qf.reserve("u1", { tokens: 1 }, { idempotencyKey: "k".repeat(250) }), TypeError);
  await qf.reserve("u1", { tokens: 1 }, { idempotencyKey: "k".repeat(247) });
});
