// The Python SDK (python/, import name piper_link): installed the way the README says
// (`/usr/bin/python3 -m venv --system-site-packages .venv && .venv/bin/pip install
// --no-build-isolation ./python`) into a temporary folder, type-checked with mypy --strict, then its
// pytest suite runs against real Links the suite starts itself (compiled CLI, real keyring,
// approvals typed at a real prompt through test/pty_run.py) and this file's local HTTPS upstream.
// A missing python3, venv, pytest or mypy fails the test: it never skips.
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { after, before, describe, it } from "node:test";
import { BIN, PERSON_ANSWERS, PTY_RUN, PYTHON } from "./cli-helpers.js";
import { startUpstream, type TestUpstream } from "./calls-upstream.js";
import { tempDir, TEST_PASSPHRASE } from "./helpers.js";

const ROOT = fileURLToPath(new URL("..", import.meta.url));

/** The values the pytest suite stores; the upstream checks injections against them (never echoing them back). */
const TOKEN = "sk-py/ab+cd=ef 42xyz";
const BASIC = "alice:pa55/word+x";

function sha256(text: string): string {
  return createHash("sha256").update(text).digest("hex");
}

/** Runs a command without blocking the event loop (the upstream lives in this process). */
function run(cmd: string, args: string[], env: NodeJS.ProcessEnv, cwd = ROOT): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { cwd, env, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout.on("data", (d: Buffer) => {
      out += d.toString("utf8");
      process.stdout.write(d);
    });
    child.stderr.on("data", (d: Buffer) => {
      out += d.toString("utf8");
      process.stderr.write(d);
    });
    child.on("close", (code) => resolve({ code: code ?? -1, out }));
    child.on("error", (err) => resolve({ code: -1, out: String(err) }));
  });
}

describe("Python SDK (python/): README install, mypy --strict, pytest against a real Link", () => {
  let upstream: TestUpstream;
  let venv = "";
  let release: (() => void) | null = null;

  before(async () => {
    const version = spawnSync(PYTHON, ["--version"], { encoding: "utf8" });
    assert.equal(
      version.status,
      0,
      `${PYTHON} is required for the Python SDK's tests (apt-get install python3 python3-venv python3-pytest python3-websockets python3-hatchling mypy)`,
    );
    upstream = await startUpstream(await tempDir("piper-py-ca-"));
    upstream.routes.set("/echo", (r, res) => {
      res.setHeader("content-type", "application/json");
      res.setHeader("x-echo-auth", String(r.headers["authorization"] ?? ""));
      res.end(JSON.stringify(r));
    });
    // Which injections arrived as expected, without sending any value back.
    upstream.routes.set("/inspect", (r, res) => {
      const url = new URL(r.url, "https://x");
      let json: unknown;
      try {
        json = JSON.parse(r.body);
      } catch {
        json = null;
      }
      const token = (json as { auth?: { token?: unknown } } | null)?.auth?.token;
      res.setHeader("content-type", "application/json");
      res.end(
        JSON.stringify({
          method: r.method,
          bearer: r.headers["authorization"] === `Bearer ${TOKEN}`,
          basic: r.headers["authorization"] === `Basic ${Buffer.from(BASIC).toString("base64")}`,
          header: r.headers["x-api-key"] === TOKEN,
          query: url.searchParams.get("key") === TOKEN,
          bodyField: token === TOKEN,
          formField: new URLSearchParams(r.body).get("token") === TOKEN,
        }),
      );
    });
    // Streams one event, then holds the answer open until /release: the first chunk must reach the agent first.
    upstream.routes.set("/stream", (_r, res) => {
      res.writeHead(200, { "content-type": "text/event-stream" });
      res.write(`data: one ${TOKEN}\n\n`);
      release = () => res.end("data: two\n\n");
    });
    // What the docs' examples call (api.openai.com is pointed here).
    upstream.routes.set("/v1/models", (_r, res) => {
      res.setHeader("content-type", "application/json");
      res.end(JSON.stringify({ object: "list", data: [{ id: "model-a" }] }));
    });
    upstream.routes.set("/release", (_r, res) => {
      release?.();
      res.end("released");
    });
    venv = path.join(await tempDir("piper-py-venv-"), ".venv");
    // The README's command, as written (from the repository's root).
    const create = await run(PYTHON, ["-m", "venv", "--system-site-packages", venv], process.env);
    assert.equal(create.code, 0, create.out);
    const install = await run(path.join(venv, "bin", "pip"), ["install", "--no-build-isolation", "./python"], {
      ...process.env,
      PIP_NO_INDEX: "1",
      PIP_DISABLE_PIP_VERSION_CHECK: "1",
    });
    assert.equal(install.code, 0, install.out);
  });

  after(async () => {
    release?.();
    await upstream.close();
  });

  it("is mypy --strict clean (the package and its tests)", async () => {
    const r = await run("mypy", ["--strict", "src/piper_link", "tests"], process.env, path.join(ROOT, "python"));
    assert.equal(r.code, 0, r.out);
  });

  it("passes its pytest suite against a real Link", async () => {
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      PIPER_TEST_NODE: process.execPath,
      PIPER_TEST_BIN: BIN,
      PIPER_TEST_PTY: PTY_RUN,
      PIPER_TEST_PYTHON: PYTHON,
      PIPER_TEST_ANSWERS: JSON.stringify(PERSON_ANSWERS),
      PIPER_TEST_PASSPHRASE: TEST_PASSPHRASE,
      PIPER_TEST_UPSTREAM: upstream.origin,
      PIPER_TEST_UPSTREAM_CA: upstream.caFile,
      PIPER_TEST_TOKEN: TOKEN,
      PIPER_TEST_BASIC: BASIC,
      PIPER_TEST_TOKEN_SHA256: sha256(TOKEN),
      PIPER_TEST_REPO: ROOT,
    };
    // The installed package, not the source tree: pytest runs from the tests folder with the venv's python.
    const r = await run(
      path.join(venv, "bin", "python"),
      ["-m", "pytest", "-p", "no:cacheprovider", "-q", "-rfE", "tests"],
      env,
      path.join(ROOT, "python"),
    );
    assert.equal(r.code, 0, "pytest failed; its output is above");
    assert.match(r.out, /\d+ passed/);
    assert.doesNotMatch(r.out, /\d+ skipped/);
  });
});
