// Browser mode: the publishable key plus a user token minted by the backend reads usage and asks can-use,
// for that user only.

import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import { ForbiddenError, UnauthenticatedError, counter, createClient } from "quotaflow";

import { newTenant, seedPaygo, startServer } from "./support.js";

let server;
let tenant;

before(async () => {
  server = await startServer();
  tenant = await newTenant(server);
  await seedPaygo(tenant.qf, "u1");
  await seedPaygo(tenant.qf, "u2");
  await tenant.qf.track("u1", { tokens: 800 });
});
after(async () => {
  await server?.stop();
});

function browser(userToken) {
  return createClient({ apiKey: tenant.publishableKey, baseUrl: server.url, userToken });
}

test("with a user token the publishable key reads that user's usage and asks can-use", async () => {
  const { token } = await tenant.qf.createUserToken("u1", { ttlSeconds: 600 });
  const qf = browser(token);
  assert.equal(counter(await qf.usage("u1"), "tokens").remaining, 99_200);
  assert.deepEqual(await qf.canUse("u1", "tokens", 99_201), { allowed: false, remaining: 99_200 });
  const lines = await qf.canUse("u1", { tokens: 100 });
  assert.deepEqual(lines.meters, [{ meter: "tokens", allowed: true, remaining: 99_200 }]);
});

test("the token may come from a function, asked on each request", async () => {
  let asked = 0;
  const qf = browser(async () => {
    asked += 1;
    return (await tenant.qf.createUserToken("u1")).token;
  });
  await qf.usage("u1");
  await qf.canUse("u1", "tokens", 1);
  assert.equal(asked, 2);
});

test("a token for another user is 403, a forged or missing one 401", async () => {
  const { token } = await tenant.qf.createUserToken("u1");
  await assert.rejects(browser(token).usage("u2"), ForbiddenError);
  await assert.rejects(browser(`${token.slice(0, -2)}xx`).usage("u1"), UnauthenticatedError);
  const withoutToken = createClient({ apiKey: tenant.publishableKey, baseUrl: server.url });
  await assert.rejects(withoutToken.usage("u1"), UnauthenticatedError);
});

test("the publishable key can do nothing else, even with a token", async () => {
  const { token } = await tenant.qf.createUserToken("u1");
  // A BrowserClient has no reserve; the same object, used as the full client, is refused by the server.
  const qf = /** @type {import("quotaflow").QuotaflowClient} */ (browser(token));
  await assert.rejects(qf.reserve("u1", { tokens: 1 }), ForbiddenError);
  await assert.rejects(qf.track("u1", { tokens: 1 }), ForbiddenError);
  assert.equal(counter(await tenant.qf.usage("u1"), "tokens").used, 800);
});
