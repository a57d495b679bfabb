// A loopback proxy in front of `quotaflow serve` that misbehaves on cue: answers for the server, forwards and then
// drops the answer, or never answers. It records every request it gets.

import { createServer } from "node:http";

/**
 * `decide(request, index)` picks what happens to the index-th request (0-based):
 * "forward", "forward-then-drop" (the server applies it, the client never hears), "stall", or
 * `{ status, headers, body }` to answer without forwarding.
 */
export async function startFlakyProxy(targetUrl, decide) {
  const requests = [];
  const stalled = new Set();
  const server = createServer(async (incoming, outgoing) => {
    const chunks = [];
    for await (const chunk of incoming) chunks.push(chunk);
    const request = { method: incoming.method, path: incoming.url, headers: incoming.headers, body: Buffer.concat(chunks) };
    const action = decide(request, requests.length);
    requests.push(request);
    if (action === "stall") {
      stalled.add(outgoing);
      return;
    }
    if (typeof action === "object") {
      outgoing.writeHead(action.status, { "content-type": "application/json", ...action.headers });
      outgoing.end(JSON.stringify(action.body ?? {}));
      return;
    }
    const headers = { ...incoming.headers };
    delete headers.host;
    delete headers["content-length"];
    const answer = await fetch(targetUrl + incoming.url, {
      method: incoming.method,
      headers,
      body: request.body.length > 0 ? request.body : undefined,
    });
    const text = await answer.text();
    if (action === "forward-then-drop") {
      incoming.socket.destroy();
      return;
    }
    outgoing.writeHead(answer.status, Object.fromEntries(answer.headers));
    outgoing.end(text);
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address();
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    async stop() {
      for (const response of stalled) response.destroy();
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

export const unavailable = { status: 503, headers: { "retry-after": "0" }, body: { error: { code: "unavailable", message: "try again" } } };
