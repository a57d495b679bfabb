// A real `quotaflow serve` (embedded DynamoDB) for the suites, started from the repository's own venv.
// If it cannot start, the suite fails: nothing here skips.

import { spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

import { createClient } from "quotaflow";

export const packageRoot = resolve(dirname(fileURLToPath(import.meta.url)), "..");
export const repoRoot = resolve(packageRoot, "../..");
const SERVE_READY_MS_MAX = 90_000;
const READY_LINE = /quotaflow serving on (http:\/\/\S+)/;

/** Starts `quotaflow serve --port 0` and resolves once it listens: { url, adminKey, stop() }. */
export async function startServer() {
  const executable = join(repoRoot, ".venv/bin/quotaflow");
  if (!existsSync(executable)) throw new Error(`${executable} is missing: run \`make install\` at the repository root`);
  const adminKey = `qf_admin_${randomUUID().replaceAll("-", "")}`;
  const env = {
    ...process.env,
    QUOTAFLOW_ADMIN_KEY: adminKey,
    // This checkout's code, whichever checkout the venv was installed from.
    PYTHONPATH: [join(repoRoot, "functions"), process.env.PYTHONPATH].filter(Boolean).join(":"),
  };
  const child = spawn(executable, ["serve", "--host", "127.0.0.1", "--port", "0"], {
    env,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stderrTail = "";
  child.stderr.on("data", (chunk) => {
    stderrTail = (stderrTail + chunk).slice(-4000);
  });
  const exited = new Promise((resolveExit) => child.once("exit", (code, signal) => resolveExit({ code, signal })));
  const url = await new Promise((resolveUrl, reject) => {
    let stdout = "";
    const timer = setTimeout(() => reject(new Error(`quotaflow serve did not start in ${SERVE_READY_MS_MAX} ms\n${stderrTail}`)), SERVE_READY_MS_MAX);
    child.stdout.on("data", (chunk) => {
      stdout += chunk;
      const ready = READY_LINE.exec(stdout);
      if (ready) {
        clearTimeout(timer);
        resolveUrl(ready[1]);
      }
    });
    child.once("error", (error) => {
      clearTimeout(timer);
      reject(error);
    });
    exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`quotaflow serve exited (${code ?? signal}) before listening\n${stderrTail}`));
    });
  });
  child.stdout.resume();
  return {
    url,
    adminKey,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
      await exited;
    },
  };
}

/** A new tenant on `server`: its keys, and a client with its secret key. */
export async function newTenant(server, options = {}) {
  const admin = createClient({ apiKey: server.adminKey, baseUrl: server.url });
  const tenantId = `t_${randomUUID().slice(0, 8)}`;
  const created = await admin.createTenant(tenantId);
  const qf = createClient({ apiKey: created.secretKey, baseUrl: options.baseUrl ?? server.url, ...options.client });
  return { tenantId, secretKey: created.secretKey, publishableKey: created.publishableKey, qf };
}

/** The seed: plan_paygo (tokens, hard, no allowance) and user u1 with 100,000 tokens. */
export async function seedPaygo(qf, userId = "u1", quota = 100_000) {
  await qf.putPlan("plan_paygo", {
    name: "Pay as you go",
    limits: { tokens: { label: "Tokens", quota: 0, period: "none", enforcement: "hard" } },
  });
  await qf.upsertSubscription({ userId, planId: "plan_paygo", customLimits: { tokens: { quota } } });
}

export function counter(usage, meter) {
  const found = usage.counters.find((c) => c.meter === meter);
  if (!found) throw new Error(`no counter ${meter} in ${JSON.stringify(usage)}`);
  return found;
}
