// A loopback server speaking OpenAI's Chat Completions wire protocol (JSON, and SSE for streams), so the real
// `openai` client can be pointed at it. Each test says how it answers; every request body is recorded.

import { createServer } from "node:http";

export async function startOpenAIServer() {
  const requests = [];
  let answer = () => ({ status: 500, body: { error: { message: "no answer set" } } });
  const open = new Set();
  const server = createServer(async (incoming, outgoing) => {
    const chunks = [];
    for await (const chunk of incoming) chunks.push(chunk);
    const body = JSON.parse(Buffer.concat(chunks).toString() || "{}");
    requests.push({ path: incoming.url, body });
    const reply = await answer(body);
    if (reply.sse === undefined) {
      outgoing.writeHead(reply.status ?? 200, { "content-type": "application/json" });
      outgoing.end(JSON.stringify(reply.body));
      return;
    }
    outgoing.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
    for (const event of reply.sse) outgoing.write(`data: ${JSON.stringify(event)}\n\n`);
    if (reply.holdOpen) {
      open.add(outgoing); // like a model still generating: ends only when the client goes away
      outgoing.on("close", () => open.delete(outgoing));
      return;
    }
    outgoing.end("data: [DONE]\n\n");
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    baseURL: `http://127.0.0.1:${server.address().port}/v1`,
    requests,
    answerWith(next) {
      answer = next;
    },
    async stop() {
      for (const response of open) response.destroy();
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

export function completion(model, content, usage) {
  return {
    id: "chatcmpl-1",
    object: "chat.completion",
    created: 1_764_000_000,
    model: `${model}-2024-08-06`,
    choices: [{ index: 0, message: { role: "assistant", content, refusal: null }, finish_reason: "stop", logprobs: null }],
    usage,
  };
}

export function chunk(model, content, usage) {
  return {
    id: "chatcmpl-1",
    object: "chat.completion.chunk",
    created: 1_764_000_000,
    model: `${model}-2024-08-06`,
    choices: content === undefined ? [] : [{ index: 0, delta: { content }, finish_reason: null, logprobs: null }],
    ...(usage === undefined ? {} : { usage }),
  };
}
