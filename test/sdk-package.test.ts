// The SDK in someone else's project (issue 15): pack this project with `npm pack`, unpack the tarball
// into a fresh project's node_modules the way `npm install <tarball>` lays it out, and run docs/sdk.md's
// quick start there — against a real Link, and with the Link down — as a person would.
// The SDK's own runtime dependencies (ws, zod) are linked from this checkout instead of fetched:
// tests only talk to loopback, and `npm ci` caches tarballs but not the registry metadata an offline
// `npm install` would need.
import assert from "node:assert/strict";
import { execFile, spawnSync } from "node:child_process";
import fs from "node:fs/promises";
import path from "node:path";
import { promisify } from "node:util";
import { after, before, describe, it } from "node:test";
import { z } from "zod";
import { GrantViewSchema, RequestViewSchema } from "../src/shared/authority.js";
import { LinkStatusSchema } from "../src/shared/control.js";
import { cli, cliJson, cliJsonAsync, newEnv, stopAll } from "./cli-helpers.js";
import { tempDir, waitFor } from "./helpers.js";

after(stopAll);
const execFileAsync = promisify(execFile);
const ROOT = path.resolve(import.meta.dirname, "..");

/** The quick start exactly as docs/sdk.md shows it (the first ```js block after "## Quick start"). */
async function quickStart(): Promise<string> {
  const doc = await fs.readFile(path.join(ROOT, "docs", "sdk.md"), "utf8");
  const block = /## Quick start[\s\S]*?```js\n([\s\S]*?)```/.exec(doc)?.[1];
  assert.ok(block, "docs/sdk.md has a quick start");
  return block;
}

describe("the SDK installed from a packed tarball", () => {
  let project = "";

  before(async () => {
    const dir = await tempDir("piper-sdk-pack-");
    const pack = spawnSync("npm", ["pack", "--silent", "--pack-destination", dir], { cwd: ROOT, encoding: "utf8" });
    assert.equal(pack.status, 0, pack.stderr);
    const tarball = path.join(dir, pack.stdout.trim().split("\n").pop() ?? "");
    project = path.join(dir, "my-agent");
    const pkgDir = path.join(project, "node_modules", "piper-link");
    await fs.mkdir(pkgDir, { recursive: true });
    const untar = spawnSync("tar", ["-xzf", tarball, "-C", pkgDir, "--strip-components=1"], { encoding: "utf8" });
    assert.equal(untar.status, 0, untar.stderr);
    for (const dep of ["ws", "zod"]) await fs.symlink(path.join(ROOT, "node_modules", dep), path.join(project, "node_modules", dep));
    await fs.writeFile(path.join(project, "package.json"), JSON.stringify({ name: "my-agent", private: true, type: "module" }));
    await fs.writeFile(path.join(project, "agent.mjs"), await quickStart());
  });

  it("the tarball carries the SDK and its types under the piper-link/sdk export", async () => {
    const pkg = z.object({ exports: z.record(z.string(), z.unknown()) }).parse(JSON.parse(await fs.readFile(path.join(project, "node_modules", "piper-link", "package.json"), "utf8")));
    assert.ok(pkg.exports["./sdk"]);
    await fs.access(path.join(project, "node_modules", "piper-link", "dist", "sdk", "index.js"));
    await fs.access(path.join(project, "node_modules", "piper-link", "dist", "sdk", "index.d.ts"));
  });

  it("runs the quick start: a clear sentence and exit 1 when the Link is down, never a stack trace", () => {
    const env: NodeJS.ProcessEnv = { ...process.env, PIPER_LINK_URL: "ws://127.0.0.1:9/v1/link" };
    delete env["OPENAI_API_KEY"];
    const r = spawnSync(process.execPath, ["agent.mjs"], { cwd: project, encoding: "utf8", env });
    assert.equal(r.status, 1, r.stdout + r.stderr);
    assert.match(r.stderr, /\[secret_unavailable\]/);
    assert.match(r.stderr, /not running|could not reach|Start it/i);
    assert.doesNotMatch(r.stderr, /\n\s+at /, "no stack trace");
  });

  it("runs the quick start against a real Link: pending, approved, the key delivered", async () => {
    const e = await newEnv();
    const status = cliJson(e, ["start", "--port", "0"], LinkStatusSchema);
    cliJson(e, ["dev", "sign-in"], LinkStatusSchema);
    assert.equal(cli(e, ["secrets", "set", "OPENAI_API_KEY"], "sk-packed-0123456789").code, 0);
    const env: NodeJS.ProcessEnv = { ...process.env, PIPER_LINK_URL: status.url };
    delete env["OPENAI_API_KEY"];
    const agent = execFileAsync(process.execPath, ["agent.mjs"], { cwd: project, env });
    let requestId: string | undefined;
    await waitFor(async () => {
      requestId = (await cliJsonAsync(e, ["requests"], z.array(RequestViewSchema)))[0]?.id;
      return requestId !== undefined;
    }, "the quick start's pending request");
    await cliJsonAsync(e, ["approve", requestId ?? "", "--once"], GrantViewSchema);
    const { stdout, stderr } = await agent;
    assert.match(stderr, /Approve OPENAI_API_KEY in Piper Link/);
    assert.equal(stdout.trim(), "got a key from piper, 20 characters");
  });
});
