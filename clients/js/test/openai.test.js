// The metering wrapper with the real `openai` client against a loopback server speaking OpenAI's protocol,
// and a real `quotaflow serve` holding the balance.

import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import OpenAI from "openai";
import { InsufficientQuotaError } from "quotaflow";
import { OUTPUT_TOKENS_WHEN_UNSET_DEFAULT, estimatePromptTokens, estimateTokens, meter } from "quotaflow/openai";

import { chunk, completion, startOpenAIServer } from "./openai-server.js";
import { counter, newTenant, seedPaygo, startServer } from "./support.js";

let server;
let provider;

before(async () => {
  server = await startServer();
  provider = await startOpenAIServer();
});
after(async () => {
  await provider?.stop();
  await server?.stop();
});

const MODEL = "gpt-4o";
const messages = [
  { role: "system", content: "You are terse." },
  { role: "user", content: "Name three primes." },
];
const promptEstimate = estimatePromptTokens(messages);

function openaiClient() {
  return new OpenAI({ apiKey: "sk-loopback", baseURL: provider.baseURL, maxRetries: 0 });
}

async function seeded(quota = 100_000) {
  const { qf } = await newTenant(server);
  await seedPaygo(qf, "u1", quota);
  return qf;
}

const tokens = async (qf) => counter(await qf.usage("u1"), "tokens");

test("a completion holds the prompt estimate plus max_tokens, then commits the reported usage", async () => {
  const qf = await seeded();
  const heldDuringCall = [];
  provider.answerWith(async () => {
    heldDuringCall.push((await tokens(qf)).reserved);
    return { body: completion(MODEL, "2, 3, 5", { prompt_tokens: 20, completion_tokens: 7, total_tokens: 27 }) };
  });
  const openai = meter(openaiClient(), qf, { userId: "u1" });
  const answer = await openai.chat.completions.create({ model: MODEL, max_tokens: 400, messages });
  assert.equal(answer.choices[0].message.content, "2, 3, 5");
  assert.deepEqual(heldDuringCall, [promptEstimate + 400]);
  const after = await tokens(qf);
  assert.deepEqual([after.used, after.reserved], [27, 0]);
});

test("without an output cap the hold uses the default cap, times n", async () => {
  const qf = await seeded();
  const heldDuringCall = [];
  provider.answerWith(async () => {
    heldDuringCall.push((await tokens(qf)).reserved);
    return { body: completion(MODEL, "ok", { prompt_tokens: 20, completion_tokens: 2, total_tokens: 22 }) };
  });
  await meter(openaiClient(), qf, { userId: "u1" }).chat.completions.create({ model: MODEL, n: 2, messages });
  assert.deepEqual(heldDuringCall, [promptEstimate + 2 * OUTPUT_TOKENS_WHEN_UNSET_DEFAULT]);
});

test("a refused hold throws InsufficientQuotaError and OpenAI never sees the request", async () => {
  const qf = await seeded(100);
  const seen = provider.requests.length;
  const openai = meter(openaiClient(), qf, { userId: "u1" });
  const refused = await openai.chat.completions.create({ model: MODEL, max_tokens: 400, messages }).catch((e) => e);
  assert.ok(refused instanceof InsufficientQuotaError);
  assert.equal(refused.requested, promptEstimate + 400);
  assert.equal(provider.requests.length, seen);
});

test("an OpenAI error releases the hold and reaches the caller as OpenAI's own error", async () => {
  const qf = await seeded();
  provider.answerWith(() => ({ status: 400, body: { error: { message: "bad model", type: "invalid_request_error" } } }));
  const openai = meter(openaiClient(), qf, { userId: "u1" });
  await assert.rejects(openai.chat.completions.create({ model: MODEL, max_tokens: 50, messages }), OpenAI.BadRequestError);
  const after = await tokens(qf);
  assert.deepEqual([after.used, after.reserved], [0, 0]);
});

test("a stream asks for usage, and commits the usage of its last chunk", async () => {
  const qf = await seeded();
  provider.answerWith(() => ({
    sse: [chunk(MODEL, "2, "), chunk(MODEL, "3, "), chunk(MODEL, "5"), chunk(MODEL, undefined, { prompt_tokens: 20, completion_tokens: 5, total_tokens: 25 })],
  }));
  const openai = meter(openaiClient(), qf, { userId: "u1" });
  const stream = await openai.chat.completions.create({ model: MODEL, max_tokens: 50, messages, stream: true });
  assert.deepEqual(provider.requests.at(-1).body.stream_options, { include_usage: true });
  assert.equal((await tokens(qf)).reserved, promptEstimate + 50, "held while the stream is open");
  let text = "";
  for await (const part of stream) text += part.choices[0]?.delta?.content ?? "";
  assert.equal(text, "2, 3, 5");
  const after = await tokens(qf);
  assert.deepEqual([after.used, after.reserved], [25, 0]);
});

test("a stream closed early commits the prompt estimate and what was produced so far", async () => {
  const qf = await seeded();
  provider.answerWith(() => ({ sse: [chunk(MODEL, "Two, "), chunk(MODEL, "three, "), chunk(MODEL, "five")], holdOpen: true }));
  const openai = meter(openaiClient(), qf, { userId: "u1" });
  const stream = await openai.chat.completions.create({ model: MODEL, max_tokens: 500, messages, stream: true });
  let text = "";
  for await (const part of stream) {
    text += part.choices[0]?.delta?.content ?? "";
    if (text.length >= "Two, three, ".length) break;
  }
  assert.equal(text, "Two, three, ");
  const after = await tokens(qf);
  assert.deepEqual([after.used, after.reserved], [promptEstimate + estimateTokens(text), 0]);
});

test("a stream that fails before producing anything releases its hold", async () => {
  const qf = await seeded();
  provider.answerWith(() => ({ sse: [{ error: { message: "overloaded", type: "server_error" } }] }));
  const openai = meter(openaiClient(), qf, { userId: "u1" });
  const stream = await openai.chat.completions.create({ model: MODEL, max_tokens: 50, messages, stream: true });
  await assert.rejects(async () => {
    for await (const part of stream) assert.fail(`no chunk expected, got ${JSON.stringify(part)}`);
  }, /overloaded/);
  const after = await tokens(qf);
  assert.deepEqual([after.used, after.reserved], [0, 0]);
});

test("toReadableStream is metered too", async () => {
  const qf = await seeded();
  provider.answerWith(() => ({ sse: [chunk(MODEL, "ok"), chunk(MODEL, undefined, { prompt_tokens: 9, completion_tokens: 1, total_tokens: 10 })] }));
  const openai = meter(openaiClient(), qf, { userId: "u1" });
  const stream = await openai.chat.completions.create({ model: MODEL, max_tokens: 5, messages, stream: true });
  const reader = stream.toReadableStream().getReader();
  while (!(await reader.read()).done);
  const after = await tokens(qf);
  assert.deepEqual([after.used, after.reserved], [10, 0]);
});

test("on a cents meter the hold is the quote and the commit is the reported counts at the model's price", async () => {
  const { qf } = await newTenant(server);
  await qf.putPrice(MODEL, { inputPerMillionCents: 250, cachedInputPerMillionCents: 125, outputPerMillionCents: 1000, markupPercent: 40 });
  await qf.putPlan("plan_prepaid", {
    name: "Prepaid",
    limits: {
      tokens: { label: "Tokens", quota: 1_000_000, period: "month" },
      cents: { label: "Balance (cents)", quota: 0, period: "none" },
    },
  });
  await qf.upsertSubscription({ userId: "u1", planId: "plan_prepaid" });
  await qf.grantCredits("u1", "cents", 500);
  const quote = await qf.quote(MODEL, { inputTokens: promptEstimate, maxOutputTokens: 4000 });
  const held = [];
  provider.answerWith(async () => {
    held.push(counter(await qf.usage("u1"), "cents").reserved);
    const usage = { prompt_tokens: 12_000, completion_tokens: 1500, total_tokens: 13_500, prompt_tokens_details: { cached_tokens: 10_240 } };
    return { body: completion(MODEL, "…", usage) };
  });
  const openai = meter(openaiClient(), qf, { userId: "u1", meters: { tokens: "tokens", cents: "cents" } });
  await openai.chat.completions.create({ model: MODEL, max_tokens: 4000, messages });
  assert.deepEqual(held, [quote.costCents]);
  const usage = await qf.usage("u1");
  // ceil((1760×250 + 10240×125 + 1500×1000) × 140 / 10^8) = 5 cents
  assert.deepEqual([counter(usage, "cents").used, counter(usage, "cents").reserved], [5, 0]);
  assert.equal(counter(usage, "tokens").used, 13_500);
});

test("everything but chat.completions.create is the client's own", async () => {
  const qf = await seeded();
  const original = openaiClient();
  const openai = meter(original, qf, { userId: "u1" });
  assert.equal(openai.baseURL, original.baseURL);
  assert.equal(openai.chat.completions.list, original.chat.completions.list);
  assert.equal(openai.models, original.models);
});
