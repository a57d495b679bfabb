// The README's example, run as written against a real server; and the README shows exactly examples/quickstart.ts.

import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { pathToFileURL } from "node:url";
import { promisify } from "node:util";

import { newTenant, packageRoot, startServer } from "./support.js";

const run = promisify(execFile);
let server;

before(async () => {
  server = await startServer();
});
after(async () => {
  await server?.stop();
});

async function readmeExample() {
  const readme = await readFile(join(packageRoot, "README.md"), "utf8");
  const block = /<!-- quickstart:start -->\n```ts\n([\s\S]*?)```\n<!-- quickstart:end -->/.exec(readme);
  assert.ok(block, "README.md has the quickstart block");
  return block[1];
}

test("the README shows examples/quickstart.ts as it is", async () => {
  const example = await readFile(join(packageRoot, "examples/quickstart.ts"), "utf8");
  assert.equal(await readmeExample(), example);
});

test("the README example runs as written and prints what its comments say", async () => {
  const source = await readmeExample();
  // The example has no type annotations, so it runs as a module once it imports the built package by path.
  const dist = pathToFileURL(join(packageRoot, "dist/index.js")).href;
  const runnable = source.replace(`from "quotaflow"`, `from ${JSON.stringify(dist)}`);
  assert.notEqual(runnable, source);
  const dir = await mkdtemp(join(tmpdir(), "quotaflow-readme-"));
  try {
    const file = join(dir, "quickstart.mjs");
    await writeFile(file, runnable);
    const { secretKey } = await newTenant(server);
    const env = { ...process.env, QUOTAFLOW_URL: server.url, QUOTAFLOW_API_KEY: secretKey };
    const { stdout } = await run(process.execPath, [file], { env });
    const expected = [...source.matchAll(/console\.log\(.*\/\/ (.*)$/gm)].map((match) => match[1]);
    assert.deepEqual(stdout.trimEnd().split("\n"), expected);
    assert.deepEqual(expected, ["Tokens 800 99200", "false", "tokens 1000000 99200"]);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
