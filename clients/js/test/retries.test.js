// Retries through a flaky loopback proxy in front of a real server: the same Idempotency-Key on every attempt,
// so what the server applied once stays applied once.

import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import { ConnectionFailedError, InvalidRequestError, ThrottledError, UnavailableError, createClient } from "quotaflow";

import { startFlakyProxy, unavailable } from "./flaky-proxy.js";
import { counter, newTenant, seedPaygo, startServer } from "./support.js";

let server;
const proxies = [];

before(async () => {
  server = await startServer();
});
after(async () => {
  for (const proxy of proxies) await proxy.stop();
  await server?.stop();
});

const FAST_RETRIES = { backoffBaseMs: 1, backoffMaxMs: 5 };

/** A seeded tenant, and a client of it that talks through a proxy deciding with `decide`. */
async function throughProxy(decide, clientOptions = {}) {
  const { qf, secretKey } = await newTenant(server);
  await seedPaygo(qf);
  const proxy = await startFlakyProxy(server.url, decide);
  proxies.push(proxy);
  const flaky = createClient({ apiKey: secretKey, baseUrl: proxy.url, retry: FAST_RETRIES, ...clientOptions });
  return { qf, flaky, proxy };
}

const keys = (proxy) => proxy.requests.map((request) => request.headers["idempotency-key"]);

test("503 with Retry-After is retried under the same key, and the hold is made once", async () => {
  const { qf, flaky, proxy } = await throughProxy((_, index) => (index < 2 ? unavailable : "forward"));
  const reservation = await flaky.reserve("u1", { tokens: 4000 });
  assert.equal(proxy.requests.length, 3);
  assert.equal(new Set(keys(proxy)).size, 1);
  assert.equal(keys(proxy)[0], reservation.idempotencyKey);
  assert.equal(counter(await qf.usage("u1"), "tokens").reserved, 4000);
});

test("a write whose answer was lost is sent again and replayed, not applied twice", async () => {
  const { qf, flaky, proxy } = await throughProxy((request, index) =>
    index === 0 && request.path === "/v1/reservations" ? "forward-then-drop" : "forward",
  );
  const reservation = await flaky.reserve("u1", { tokens: 4000 });
  assert.equal(proxy.requests.length, 2);
  assert.equal(new Set(keys(proxy)).size, 1);
  const tokens = counter(await qf.usage("u1"), "tokens");
  assert.equal(tokens.reserved, 4000, "one hold, though the server got the request twice");
  assert.equal((await qf.getReservation(reservation.id)).status, "pending");
});

test("a commit whose answer was lost is retried with the reservation's derived key and charged once", async () => {
  const { qf, flaky, proxy } = await throughProxy((request) =>
    request.path.endsWith("/commit") && proxy.requests.filter((r) => r.path.endsWith("/commit")).length === 0
      ? "forward-then-drop"
      : "forward",
  );
  const reservation = await flaky.reserve("u1", { tokens: 4000 }, { idempotencyKey: "call-7" });
  const result = await reservation.commit({ tokens: 800 });
  assert.deepEqual(result.committed, [{ meter: "tokens", amount: 800 }]);
  const commits = proxy.requests.filter((request) => request.path.endsWith("/commit"));
  assert.deepEqual(
    commits.map((request) => request.headers["idempotency-key"]),
    ["call-7:commit", "call-7:commit"],
  );
  const tokens = counter(await qf.usage("u1"), "tokens");
  assert.deepEqual([tokens.used, tokens.reserved], [800, 0]);
});

test("retries are bounded: 429 every time ends in a ThrottledError after attemptsMax attempts", async () => {
  const throttled = { status: 429, headers: { "retry-after": "0" }, body: { error: { code: "throttled", message: "slow down" } } };
  const { flaky, proxy } = await throughProxy(() => throttled, { retry: { ...FAST_RETRIES, attemptsMax: 3 } });
  const error = await flaky.usage("u1").catch((failure) => failure);
  assert.ok(error instanceof ThrottledError);
  assert.equal(error.retryAfterSeconds, 0);
  assert.equal(proxy.requests.length, 3);
});

test("a Retry-After longer than the client will wait is not waited for", async () => {
  const later = { ...unavailable, headers: { "retry-after": "3600" } };
  const { flaky, proxy } = await throughProxy(() => later);
  const error = await flaky.usage("u1").catch((failure) => failure);
  assert.ok(error instanceof UnavailableError);
  assert.equal(error.retryAfterSeconds, 3600);
  assert.equal(proxy.requests.length, 1);
});

test("an in-flight duplicate (409 conflict with Retry-After) is retried; other 4xx are not", async () => {
  const inFlight = { status: 409, headers: { "retry-after": "0" }, body: { error: { code: "conflict", message: "in flight" } } };
  let conflictsLeft = 1;
  const { flaky, proxy } = await throughProxy(() => (conflictsLeft-- > 0 ? inFlight : "forward"));
  await flaky.track("u1", { tokens: 5 });
  assert.equal(proxy.requests.length, 2);
  assert.equal(new Set(keys(proxy)).size, 1);

  proxy.requests.length = 0;
  await assert.rejects(flaky.track("u1", { nope: 5 }), InvalidRequestError);
  assert.equal(proxy.requests.length, 1);
});

test("an attempt that gets no answer times out and is retried; then ConnectionFailedError", async () => {
  const { flaky, proxy } = await throughProxy(() => "stall", { timeoutMs: 200, retry: { ...FAST_RETRIES, attemptsMax: 2 } });
  const error = await flaky.reserve("u1", { tokens: 1 }).catch((failure) => failure);
  assert.ok(error instanceof ConnectionFailedError);
  assert.match(error.message, /no response within 200 ms/);
  assert.equal(proxy.requests.length, 2);
  assert.equal(new Set(keys(proxy)).size, 1);
});

test("an AbortSignal stops the call and its retries, rejecting with the signal's reason", async () => {
  const controller = new AbortController();
  const { flaky, proxy } = await throughProxy(() => {
    setImmediate(() => controller.abort(new Error("navigated away")));
    return "stall";
  });
  await assert.rejects(flaky.usage("u1", { signal: controller.signal }), /navigated away/);
  assert.equal(proxy.requests.length, 1);
  await assert.rejects(flaky.usage("u1", { signal: controller.signal }), /navigated away/);
  assert.equal(proxy.requests.length, 1, "an already aborted signal sends nothing");
});

test("bodies go out as the API's snake_case JSON; meter and property names as written", async () => {
  const { flaky, proxy } = await throughProxy(() => "forward");
  await flaky.reserve("u1", { tokens: 10 }, { ttlSeconds: 60 });
  await flaky.track("u1", { tokens: 1 }, { properties: { stepName: "search", model_id: "m1" } });
  const [reserve, track] = proxy.requests.map((request) => JSON.parse(request.body.toString()));
  assert.deepEqual(reserve, { user_id: "u1", lines: [{ meter: "tokens", amount: 10 }], ttl_seconds: 60 });
  assert.deepEqual(track, {
    user_id: "u1",
    lines: [{ meter: "tokens", amount: 1 }],
    properties: { stepName: "search", model_id: "m1" },
  });
  assert.equal(proxy.requests[0].headers["content-type"], "application/json");
  assert.match(proxy.requests[0].headers.authorization, /^Bearer qf_sk_/);
});
