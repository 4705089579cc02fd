// The SDK in someone else's project: @piper-link/sdk (packages/sdk) installed with npm into a fresh
// folder, once from its `npm pack` tarball and once from the repository's folder, as docs/sdk.md
// says; then docs/sdk.md's quick start runs there — with the Link down, and against a real Link
// approved at a terminal with the PIN — as a person would. Also: the tarball is small and depends
// on ws and zod only, frames are typed from the shared protocol (a misspelt type does not compile),
// and the app's own tarball installs (its postinstall ships and compiles nothing there).
// npm runs with --offline: ws and zod come as tarballs packed from this checkout's node_modules (the
// tests only talk to loopback, and `npm ci` caches tarballs but not the registry metadata an
// online resolve would need). Packing skips the prepack build: the suite builds before it runs.
import assert from "node:assert/strict";
import { execFile, spawnSync, type SpawnSyncReturns } from "node:child_process";
import fs from "node:fs/promises";
import { createRequire } from "node:module";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { after, before, describe, it } from "node:test";
import { z } from "zod";
import { GrantViewSchema, RequestViewSchema } from "../src/shared/authority.js";
import { LinkStatusSchema } from "../src/shared/control.js";
import { LINK_VERSION } from "../src/shared/version.js";
import { cli, cliJson, cliJsonAsync, newEnv, stopAll } from "./cli-helpers.js";
import { tempDir, waitFor } from "./helpers.js";

after(stopAll);
const execFileAsync = promisify(execFile);
const ROOT = path.resolve(import.meta.dirname, "..");
const SDK_DIR = path.join(ROOT, "packages", "sdk");
const TSC = createRequire(import.meta.url).resolve("typescript/bin/tsc");

const PackageJson = z.object({
  name: z.string(),
  version: z.string(),
  dependencies: z.record(z.string(), z.string()).optional(),
  bundleDependencies: z.array(z.string()).optional(),
  scripts: z.record(z.string(), z.string()).optional(),
  exports: z.record(z.string(), z.unknown()).optional(),
});
const PackList = z.array(
  z.object({
    filename: z.string(),
    size: z.number(),
    files: z.array(z.object({ path: z.string() })),
    bundled: z.array(z.string()),
  }),
);

function ok(r: SpawnSyncReturns<string>, what: string): string {
  assert.equal(r.status, 0, `${what}: ${r.stdout}${r.stderr}`);
  return r.stdout;
}

/** `npm pack` of `dir` into `dest` (no lifecycle scripts); what npm reports about the tarball. */
function pack(dir: string, dest: string): z.infer<typeof PackList>[number] {
  const out = ok(
    spawnSync("npm", ["pack", "--json", "--ignore-scripts", "--pack-destination", dest, dir], {
      cwd: dest,
      encoding: "utf8",
    }),
    `npm pack ${dir}`,
  );
  const [info] = PackList.parse(JSON.parse(out));
  assert.ok(info);
  return info;
}

/** The quick start exactly as docs/sdk.md shows it (the first ```js block after "## Quick start"). */
async function quickStart(): Promise<string> {
  const doc = await fs.readFile(path.join(ROOT, "docs", "sdk.md"), "utf8");
  const block = /## Quick start[\s\S]*?```js\n([\s\S]*?)```/.exec(doc)?.[1];
  assert.ok(block, "docs/sdk.md has a quick start");
  return block;
}

/** A fresh project in `dir` with the quick start as agent.mjs, `npm install --offline <specs>` run there. */
async function freshProject(dir: string, specs: string[]): Promise<string> {
  await fs.mkdir(dir);
  await fs.writeFile(
    path.join(dir, "package.json"),
    JSON.stringify({ name: "my-agent", private: true, type: "module" }),
  );
  await fs.writeFile(path.join(dir, "agent.mjs"), await quickStart());
  ok(
    spawnSync("npm", ["install", "--offline", "--no-audit", "--no-fund", ...specs], { cwd: dir, encoding: "utf8" }),
    `npm install ${specs.join(" ")}`,
  );
  return dir;
}

describe("@piper-link/sdk installed into a fresh project", () => {
  let base = "";
  let tarball = "";
  let fromTarball = "";
  let fromFolder = "";

  before(async () => {
    base = await tempDir("piper-sdk-pack-");
    const info = pack(SDK_DIR, base);
    tarball = path.join(base, info.filename);
    // The SDK's two dependencies, as the registry would give them.
    const deps = ["ws", "zod"].map((d) => path.join(base, pack(path.join(ROOT, "node_modules", d), base).filename));
    fromTarball = await freshProject(path.join(base, "from-tarball"), [...deps, tarball]);
    // From the repository's folder: npm links it, and its dependencies come from the repository's node_modules.
    fromFolder = await freshProject(path.join(base, "from-folder"), [SDK_DIR]);
  });

  it("the tarball is the SDK alone: compiled JS and types, ws and zod its only dependencies, no install script", async () => {
    const info = pack(SDK_DIR, await tempDir("piper-sdk-pack-"));
    const files = info.files.map((f) => f.path);
    assert.ok(
      files.includes("dist/packages/sdk/src/index.js") && files.includes("dist/packages/sdk/src/index.d.ts"),
      files.join("\n"),
    );
    // The shared protocol is compiled into the package, not imported from the app.
    assert.ok(files.includes("dist/src/shared/protocol.js"));
    assert.deepEqual(
      files.filter(
        (f) => !/^dist\/(packages\/sdk\/src|src\/shared)\/[\w-]+\.(js|d\.ts)$/.test(f) && f !== "package.json",
      ),
      [],
    );
    assert.ok(!files.some((f) => /src\/(main|server|platform|renderer|preload)\//.test(f)), "nothing of the app");
    assert.ok(info.size < 100_000, `a small tarball (${info.size} bytes)`);
    const installed = path.join(fromTarball, "node_modules", "@piper-link", "sdk");
    const pkg = PackageJson.parse(JSON.parse(await fs.readFile(path.join(installed, "package.json"), "utf8")));
    assert.equal(pkg.version, LINK_VERSION);
    assert.deepEqual(Object.keys(pkg.dependencies ?? {}).sort(), ["ws", "zod"]);
    assert.deepEqual(
      Object.keys(pkg.scripts ?? {}).filter((s) => /install|prepare/.test(s)),
      [],
    );
    // Installed flat: the project's node_modules holds the SDK, ws and zod, and nothing else.
    assert.deepEqual(
      (await fs.readdir(path.join(fromTarball, "node_modules"))).filter((n) => !n.startsWith(".")).sort(),
      ["@piper-link", "ws", "zod"],
    );
  });

  it("a TypeScript project compiles against the installed types", async () => {
    const file = path.join(fromTarball, "check.ts");
    await fs.writeFile(
      file,
      `import { createPiperClient, PiperError, type SecretResult } from "@piper-link/sdk";\n` +
        `const piper = createPiperClient({ clientId: "my-agent" });\n` +
        `const r: Promise<SecretResult> = piper.getSecret("OPENAI_API_KEY", { reason: "typed" });\n` +
        `r.catch((e: unknown) => e instanceof PiperError && e.code);\n` +
        `// @ts-expect-error getSecret takes a name, not a number\n` +
        `void piper.getSecret(42);\n`,
    );
    const args = [
      TSC,
      "--noEmit",
      "--strict",
      "--module",
      "nodenext",
      "--moduleResolution",
      "nodenext",
      "--target",
      "es2023",
      "--types",
      "node",
      "--typeRoots",
      path.join(ROOT, "node_modules", "@types"),
      file,
    ];
    ok(spawnSync(process.execPath, args, { cwd: fromTarball, encoding: "utf8" }), "tsc over a consumer's file");
  });

  it("runs the quick start from both installs: a clear sentence and exit 1 when the Link is down, never a stack trace", () => {
    const env: NodeJS.ProcessEnv = { ...process.env, PIPER_LINK_URL: "ws://127.0.0.1:9/v1/link" };
    delete env["OPENAI_API_KEY"];
    for (const project of [fromTarball, fromFolder]) {
      const r = spawnSync(process.execPath, ["agent.mjs"], { cwd: project, encoding: "utf8", env });
      assert.equal(r.status, 1, r.stdout + r.stderr);
      assert.match(r.stderr, /\[secret_unavailable\]/);
      assert.match(r.stderr, /not running|could not reach|Start it/i);
      assert.doesNotMatch(r.stderr, /\n\s+at /, "no stack trace");
    }
  });

  it("runs the quick start from both installs against a real Link: pending, approved at the terminal, the key delivered", async () => {
    const e = await newEnv();
    const status = cliJson(e, ["start", "--port", "0"], LinkStatusSchema);
    cliJson(e, ["dev", "sign-in"], LinkStatusSchema);
    assert.equal(cli(e, ["secrets", "set", "OPENAI_API_KEY"], "sk-packed-0123456789").code, 0);
    const env: NodeJS.ProcessEnv = { ...process.env, PIPER_LINK_URL: status.url };
    delete env["OPENAI_API_KEY"];
    for (const project of [fromTarball, fromFolder]) {
      const agent = execFileAsync(process.execPath, ["agent.mjs"], { cwd: project, env });
      let requestId: string | undefined;
      await waitFor(async () => {
        requestId = (await cliJsonAsync(e, ["requests"], z.array(RequestViewSchema)))[0]?.id;
        return requestId !== undefined;
      }, "the quick start's pending request");
      await cliJsonAsync(e, ["approve", requestId ?? "", "--once"], GrantViewSchema);
      const { stdout, stderr } = await agent;
      assert.match(stderr, /Approve OPENAI_API_KEY in Piper Link/);
      assert.equal(stdout.trim(), "got a key from piper, 20 characters", project);
    }
  });
});

describe("frames are typed from the shared protocol", () => {
  /** tsc over a probe importing the SDK's frame encoder; its exit status and output. */
  async function compileProbe(body: string): Promise<SpawnSyncReturns<string>> {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), "piper-frame-probe-"));
    const frames = path.relative(dir, path.join(SDK_DIR, "src", "frames.js"));
    const file = path.join(dir, "probe.ts");
    await fs.writeFile(file, `import { encodeFrame } from ${JSON.stringify(frames)};\n${body}\n`);
    const args = [
      TSC,
      "--noEmit",
      "--strict",
      "--exactOptionalPropertyTypes",
      "--module",
      "nodenext",
      "--moduleResolution",
      "nodenext",
      "--target",
      "es2023",
      "--types",
      "node",
      "--typeRoots",
      path.join(ROOT, "node_modules", "@types"),
      file,
    ];
    return spawnSync(process.execPath, args, { cwd: dir, encoding: "utf8" });
  }

  it("a frame the protocol defines compiles; a misspelt type or a wrong field does not", async () => {
    const good = `encodeFrame({ type: "resolve", id: "r-1", variable: "OPENAI_API_KEY", reason: "why" });\nencodeFrame({ type: "grants", id: 2 });`;
    ok(await compileProbe(good), "the well-formed frames");
    const bad = await compileProbe(
      `${good}\nencodeFrame({ type: "reslove", id: "r-2", variable: "OPENAI_API_KEY" });\nencodeFrame({ type: "resolve", id: "r-3", variabel: "OPENAI_API_KEY" });`,
    );
    assert.notEqual(bad.status, 0, "a misspelt message type or field must not compile");
    assert.match(bad.stdout, /probe\.ts\(4,\d+\): error TS\d+:.*"reslove"/, "the misspelt type");
    assert.match(bad.stdout, /probe\.ts\(5,\d+\): error TS\d+:.*'variabel'/, "the misspelt field");
  });

  it("the SDK puts every frame on the wire through encodeFrame", async () => {
    const client = await fs.readFile(path.join(SDK_DIR, "src", "client.ts"), "utf8");
    assert.doesNotMatch(client, /JSON\.stringify/, "a frame built with JSON.stringify escapes the protocol's types");
    assert.ok((client.match(/encodeFrame\(\{ ?\n?\s*type: "/g) ?? []).length >= 5);
  });
});

describe("the app's own tarball (piper-link)", () => {
  it("ships its postinstall, which compiles nothing where there are no sources, and bundles the SDK", async () => {
    const dest = await tempDir("piper-app-pack-");
    const info = pack(ROOT, dest);
    const files = info.files.map((f) => f.path);
    assert.ok(files.includes("scripts/postinstall.mjs"), "package.json's postinstall script is in the tarball");
    assert.ok(files.includes("dist/main/cli/main.js"));
    assert.ok(
      !files.some((f) => f.startsWith("src/") || f.startsWith("dist/.test/")),
      "no sources, no test declarations",
    );
    assert.ok(info.bundled.includes("@piper-link/sdk"), "the SDK is not on the registry: the app carries it");
    assert.ok(files.includes("node_modules/@piper-link/sdk/dist/packages/sdk/src/index.js"));
    const dir = path.join(dest, "unpacked");
    await fs.mkdir(dir);
    ok(
      spawnSync("tar", ["-xzf", path.join(dest, info.filename), "-C", dir, "--strip-components=1"], {
        encoding: "utf8",
      }),
      "tar",
    );
    const pkg = PackageJson.parse(JSON.parse(await fs.readFile(path.join(dir, "package.json"), "utf8")));
    assert.equal(pkg.scripts?.["postinstall"], "node scripts/postinstall.mjs");
    // As npm runs it after `npm install piper-link-<version>.tgz`: from the package's folder, without TypeScript.
    const env: NodeJS.ProcessEnv = { ...process.env };
    delete env["ELECTRON_SKIP_BINARY_DOWNLOAD"];
    const r = spawnSync(process.execPath, ["scripts/postinstall.mjs"], { cwd: dir, encoding: "utf8", env });
    assert.equal(r.status, 0, r.stdout + r.stderr);
    assert.doesNotMatch(r.stdout + r.stderr, /compiling|error/i);
    await assert.rejects(fs.access(path.join(dir, "dist", ".tsbuildinfo.node")), "nothing was compiled");
  });
});
