// The same-user attack suite: an agent running as the person's own OS user (a prompt-injected coding
// agent with a shell) tries every way it has to approve its own request or read what the Link keeps,
// each a real process of that user against a real Link (the compiled CLI, its embedded authority, a
// real Secret Service) that the person unlocked at a terminal. Every attack must end with no value
// delivered and a clear refusal; the legitimate paths beside them must keep working.
//
// Root ignores dumpability and file modes, so when the suite runs as root the Link and the attacker
// both run as a second, non-root user (`piper-attack`, created when missing) with its own D-Bus and
// gnome-keyring; otherwise both run as the current user. Each attack prints one line (what was tried,
// what came back) as a test diagnostic, for the record.
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import {
  chmodSync,
  chownSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { after, before, describe, it, mock, type TestContext } from "node:test";
import { z } from "zod";
import { GrantViewSchema, RequestViewSchema } from "../src/shared/authority.js";
import { LinkStatusSchema, redactInstanceId, type LinkStatus } from "../src/shared/control.js";
import { PIN_TRIES_ALLOWED } from "../src/shared/presence.js";
import { keychainService } from "../src/main/core/runtime/keychain.js";
import { resolveLinkPaths } from "../src/main/core/runtime/paths.js";
import { NO_TERMINAL_MESSAGE } from "../src/main/cli/terminal-proof.js";
import { PRESENCE_REQUIRED_MESSAGE } from "../src/main/core/presence/presence.js";
import { pinBackoffMs } from "../src/main/core/vault/vault.js";
import { CHROMIUM_SKIP } from "./chromium.js";
import { startTestLink, TEST_PASSPHRASE, TEST_PIN, uniqueProfile, waitFor } from "./helpers.js";
import { copyReadableByAll, ensureTestUser } from "./as-user.js";

const PROJECT = fileURLToPath(new URL("..", import.meta.url));
const VALUE = "sk-attack-suite-7f3a9c21-the-value";
const SECRET = "ATTACK_SECRET";
const HOST = "api.example.com";
const ATTACK_USER = "piper-attack";
const IS_ROOT = process.getuid?.() === 0;
const PYTHON = "/usr/bin/python3";

/**
 * Parts of issue 20 that other branches deliver: until they are in this tree, the tests that need
 * them still run and print their result, marked TODO with the reason (never skipped in silence).
 */

/** Answers the person types at the CLI's prompts: a new passphrase and PIN on the first start, then the PIN or passphrase. */
const PERSON: ReadonlyArray<readonly [string, string]> = [
  ["Enter to skip and approve with the passphrase\\): $", TEST_PIN],
  ["Choose an approval PIN \\(6\\+ digits\\): $", TEST_PIN],
  ["Repeat the PIN: $", TEST_PIN],
  ["work well\\): $", TEST_PASSPHRASE],
  ["Repeat it: $", TEST_PASSPHRASE],
  ["PIN: $", TEST_PIN],
  ["passphrase: $", TEST_PASSPHRASE],
  ["Passphrase to unlock Piper Link: $", TEST_PASSPHRASE],
];

// ---------------------------------------------------------------------------------------------
// Running processes as the Link's user

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** The user that runs the Link and the attacker: its home, environment and (as root) its own keyring bus. */
interface UserEnv {
  home: string;
  profile: string;
  env: Record<string, string>;
  /** Where the project is readable by that user (the worktree, or a copy readable by all). */
  root: string;
  bin: string;
}

let user: UserEnv;
/** Set once `user` is: the clean-up has something to clean. */
let prepared = false;
let bus: ReturnType<typeof spawn> | null = null;
/** Everything every attacker process printed, to show the value never left the Link. */
let attackerOutput = "";

function ensureAttackUser(): void {
  ensureTestUser(ATTACK_USER);
}

function userIds(): { uid: number; gid: number } {
  const uid = Number(spawnSync("id", ["-u", ATTACK_USER], { encoding: "utf8" }).stdout.trim());
  const gid = Number(spawnSync("id", ["-g", ATTACK_USER], { encoding: "utf8" }).stdout.trim());
  return { uid, gid };
}

/** The argv that runs `argv` as the Link's user with exactly `env` (runuser when we are root). */
function asUser(argv: readonly string[], env: Record<string, string>): [string, string[]] {
  if (!IS_ROOT) return [argv[0] ?? "", argv.slice(1)];
  return [
    "runuser",
    ["-u", ATTACK_USER, "--", "/usr/bin/env", "-i", ...Object.entries(env).map(([k, v]) => `${k}=${v}`), ...argv],
  ];
}

/**
 * Runs `argv` as the Link's user and collects its output. `detached` puts it in a new session: no
 * controlling terminal, as an agent's subprocess has none.
 */
function run(
  argv: readonly string[],
  opts: { input?: string; timeoutMs?: number; detached?: boolean; env?: Record<string, string> } = {},
): Promise<Run> {
  const env = { ...user.env, ...opts.env };
  const [cmd, args] = asUser(argv, env);
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      cwd: user.root,
      env: IS_ROOT ? { PATH: env["PATH"] ?? "" } : env,
      stdio: ["pipe", "pipe", "pipe"],
      detached: opts.detached ?? true,
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (c: Buffer) => (stdout += c.toString()));
    child.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
    const timer = setTimeout(() => child.kill("SIGKILL"), opts.timeoutMs ?? 60_000);
    child.once("error", reject);
    child.once("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    child.stdin.end(opts.input ?? "");
  });
}

const node = (...args: string[]): string[] => [process.execPath, ...args];
const cliArgv = (...args: string[]): string[] => node(user.bin, ...args);
/** A TypeScript attacker script under test/attacks, run with tsx as the Link's user. */
const attackArgv = (script: string, ...args: string[]): string[] =>
  node("--import", "tsx", path.join(user.root, "test", "attacks", script), ...args);

/** Runs the CLI with a pty the caller allocates (test/pty_run.py), typing `answers` at its prompts. */
function ptyArgv(
  args: readonly string[],
  answers: ReadonlyArray<readonly [string, string]>,
  transcript?: string,
): string[] {
  return [
    PYTHON,
    path.join(user.root, "test", "pty_run.py"),
    JSON.stringify({ answers, timeout: 60, ...(transcript ? { transcript } : {}) }),
    "--",
    ...cliArgv(...args),
  ];
}

/** The CLI as the person runs it at a terminal (the pty types the person's answers). */
async function person(args: string[], transcript?: string): Promise<Run> {
  return run(ptyArgv(args, PERSON, transcript));
}

/** An attacker process: its output is kept, so the suite can show the value never reached it. */
async function attacker(argv: string[], opts: Parameters<typeof run>[1] = {}): Promise<Run> {
  const r = await run(argv, opts);
  attackerOutput += r.stdout + r.stderr;
  return r;
}

/** The JSON document a command printed last (one line, or the CLI's pretty-printed --json). */
function lastJson(text: string): unknown {
  const lines = text.trim().split("\n");
  for (let i = lines.length - 1; i >= 0; i--) {
    if (!/^[{[]/.test(lines[i] ?? "")) continue;
    try {
      return JSON.parse(lines.slice(i).join("\n")) as unknown;
    } catch {
      // Not the start of the last document; look further up.
    }
  }
  throw new Error(`no JSON in output: ${text}`);
}

const ErrorOut = z.object({ error: z.string(), message: z.string() });

async function status(): Promise<LinkStatus> {
  const r = await run(cliArgv("status", "--json"));
  return LinkStatusSchema.parse(lastJson(r.stdout));
}

async function pending(): Promise<z.infer<typeof RequestViewSchema>[]> {
  const r = await run(cliArgv("requests", "--json"));
  return z.array(RequestViewSchema).parse(lastJson(r.stdout));
}

/** A long-lived agent process of the user asking for the secret; `pending` is its request ID. */
interface Agent {
  requestId: string;
  output: () => string;
  done: Promise<{ delivered?: string; refused?: string }>;
  stop(): void;
}

function startAgent(clientId: string, counted = true): Promise<Agent> {
  const [cmd, args] = asUser(attackArgv("agent.ts", SECRET, clientId), user.env);
  const child = spawn(cmd, args, {
    cwd: user.root,
    env: IS_ROOT ? { PATH: user.env["PATH"] ?? "" } : user.env,
    stdio: ["ignore", "pipe", "pipe"],
    detached: true,
  });
  let out = "";
  child.stdout.on("data", (c: Buffer) => (out += c.toString()));
  child.stderr.on("data", (c: Buffer) => (out += c.toString()));
  const done = new Promise<{ delivered?: string; refused?: string }>((resolve) =>
    child.once("close", () => {
      if (counted) attackerOutput += out;
      const last = out
        .trim()
        .split("\n")
        .filter((l) => l.startsWith("{"))
        .pop();
      resolve(
        last === undefined
          ? { refused: `exited: ${out}` }
          : (JSON.parse(last) as { delivered?: string; refused?: string }),
      );
    }),
  );
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`agent ${clientId} never got a pending request: ${out}`)), 30_000);
    child.stdout.on("data", () => {
      const m = /\{"pending":"([^"]+)"\}/.exec(out);
      if (m?.[1] === undefined) return;
      clearTimeout(timer);
      resolve({ requestId: m[1], output: () => out, done, stop: () => child.kill("SIGTERM") });
    });
    void done.then(() => {
      clearTimeout(timer);
      reject(new Error(`agent ${clientId} ended before its request was pending: ${out}`));
    });
  });
}

/**
 * Where the Link's user can read the project: the worktree itself when it can (every folder above
 * it enterable, the files readable), else a copy readable by all in `base` (a clone under root's
 * 0700 home, or files made under umask 077).
 */
function reachableProject(base: string, env: Record<string, string>): string {
  if (!IS_ROOT) return PROJECT;
  const probe = [
    "bin/piper-link.js",
    "dist/main/cli/main.js",
    "node_modules/tsx/package.json",
    "node_modules/better-sqlite3/package.json",
    "test/pty_run.py",
    "test/attacks/agent.ts",
    "packages/sdk/dist/packages/sdk/src/index.js",
  ];
  const [cmd, args] = asUser(
    ["/bin/sh", "-c", probe.map((p) => `test -r ${JSON.stringify(path.join(PROJECT, p))}`).join(" && ")],
    env,
  );
  if (spawnSync(cmd, args).status === 0) return PROJECT;
  const copy = path.join(base, "project");
  mkdirSync(copy, { mode: 0o755 });
  for (const part of [
    "bin",
    "dist",
    "src",
    "packages",
    "test",
    "node_modules",
    "package.json",
    "tsconfig.base.json",
    "tsconfig.json",
  ])
    copyReadableByAll(path.join(PROJECT, part), path.join(copy, part));
  // The SDK is an npm workspace: node_modules/@piper-link/sdk links to packages/sdk. Made again as
  // that link in the copy (a dereferenced copy of it is not found by every Node version's resolver).
  const sdk = path.join(copy, "node_modules", "@piper-link", "sdk");
  rmSync(sdk, { recursive: true, force: true });
  mkdirSync(path.dirname(sdk), { recursive: true, mode: 0o755 });
  symlinkSync(path.join("..", "..", "packages", "sdk"), sdk);
  return copy;
}

/** As root: the Link's user gets its own session bus with an unlocked gnome-keyring; returns its address. */
async function startUserBus(env: Record<string, string>): Promise<string> {
  const script = `echo -n attack-keyring | gnome-keyring-daemon --unlock --components=secrets >/dev/null 2>&1; echo "BUS=$DBUS_SESSION_BUS_ADDRESS"; exec sleep 1000`;
  const [cmd, args] = asUser(["dbus-run-session", "--", "sh", "-c", script], env);
  bus = spawn(cmd, args, { env: { PATH: env["PATH"] ?? "" }, stdio: ["ignore", "pipe", "inherit"], detached: true });
  let out = "";
  bus.stdout?.on("data", (c: Buffer) => (out += c.toString()));
  await waitFor(() => /BUS=\S+\n/.test(out), "the Link user's D-Bus and gnome-keyring", 20_000);
  return /BUS=(\S+)/.exec(out)?.[1] ?? "";
}

// ---------------------------------------------------------------------------------------------

let link: LinkStatus;
/** The person's own agent and grant (approved at a terminal with the PIN). */
let grantId = "";

function note(t: TestContext, line: string): void {
  t.diagnostic(line);
}

describe("same-user attacks: an agent running as you cannot say yes or read the vault", { concurrency: false }, () => {
  before(async () => {
    if (IS_ROOT) ensureAttackUser();
    const base = mkdtempSync(path.join(IS_ROOT ? "/tmp" : (process.env["TMPDIR"] ?? "/tmp"), "piper-attack-"));
    chmodSync(base, 0o755);
    const home = path.join(base, "home");
    mkdirSync(home, { mode: 0o700 });
    if (IS_ROOT) {
      const { uid, gid } = userIds();
      chownSync(home, uid, gid);
    }
    const profile = uniqueProfile();
    const env: Record<string, string> = {
      PATH: process.env["PATH"] ?? "/usr/local/bin:/usr/bin:/bin",
      HOME: home,
      XDG_RUNTIME_DIR: path.join(home, "run"),
      XDG_DATA_HOME: path.join(home, "data"),
      XDG_STATE_HOME: path.join(home, "state"),
      XDG_CONFIG_HOME: path.join(home, "config"),
      PIPER_LINK_PROFILE: profile,
      LANG: "C.UTF-8",
      ...(process.env["PIPER_TEST_CHROMIUM"] ? { PIPER_TEST_CHROMIUM: process.env["PIPER_TEST_CHROMIUM"] } : {}),
    };
    const root = reachableProject(base, env);
    user = { home, profile, env, root, bin: path.join(root, "bin", "piper-link.js") };
    prepared = true;
    env["DBUS_SESSION_BUS_ADDRESS"] = IS_ROOT
      ? await startUserBus(env)
      : (process.env["DBUS_SESSION_BUS_ADDRESS"] ?? "");
    const mkdirs = await run(["/bin/mkdir", "-m", "700", "-p", env["XDG_RUNTIME_DIR"] ?? ""]);
    assert.equal(mkdirs.code, 0, mkdirs.stderr);

    // The person's first start, at a terminal: a new passphrase and PIN, typed (no passphrase file).
    const started = await person(["start", "--port", "0", "--json"]);
    assert.equal(started.code, 0, started.stdout + started.stderr);
    link = LinkStatusSchema.parse(lastJson(started.stdout));
    assert.equal(link.vault.state, "unlocked");
    assert.equal(link.vault.unattended, false);
    assert.ok(link.vault.pinSet);
    const signIn = await run(cliArgv("dev", "sign-in", "--json"));
    assert.equal(signIn.code, 0, signIn.stderr);
    // The secret may go only to HOST: widening that list is a yes the person gives with the PIN.
    const set = await run(ptyArgv(["secrets", "set", SECRET, "--host", HOST, "--json"], PERSON), {
      input: `${VALUE}\n`,
    });
    assert.equal(set.code, 0, set.stdout + set.stderr);
  });

  after(async () => {
    if (prepared) await run(cliArgv("stop"));
    if (bus?.pid !== undefined) {
      try {
        process.kill(-bus.pid, "SIGTERM");
      } catch {
        // Already gone.
      }
    }
  });

  it("the person approves at a terminal with the PIN (the legitimate path); the agent gets the value", async (t) => {
    const agent = await startAgent("person_agent", false);
    const r = await person(["approve", agent.requestId, "--until-revoked", "--json"]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    grantId = GrantViewSchema.parse(lastJson(r.stdout)).id;
    assert.equal((await agent.done).delivered, VALUE);
    note(t, `legit: approve ${agent.requestId} at a terminal, PIN typed -> grant ${grantId}, value delivered`);
  });

  describe("with the attacker's own request pending", { concurrency: false }, () => {
    let agent: Agent;
    before(async () => {
      agent = await startAgent("attacker");
    });

    it("1. self-approval through the CLI with no terminal: exit 2, presence_required", async (t) => {
      const r = await attacker(cliArgv("approve", agent.requestId, "--until-revoked", "--bind", "any", "--json"), {
        detached: true,
      });
      assert.equal(r.code, 2, r.stdout + r.stderr);
      const err = ErrorOut.parse(lastJson(r.stdout));
      assert.equal(err.error, "presence_required");
      assert.equal(err.message, NO_TERMINAL_MESSAGE);
      assert.equal(
        (await pending()).some((p) => p.id === agent.requestId),
        true,
        "the request is still pending",
      );
      note(
        t,
        `attack 1a: piper-link approve ${agent.requestId} --until-revoked --bind any (no tty) -> exit ${r.code} ${err.error}`,
      );
    });

    it("3. the control channel with the token from the control file: widening calls need a proof; deny, revoke, lock and status do not", async (t) => {
      const approve = { requestId: agent.requestId, scope: { kind: "until_revoked" }, binding: "client" };
      const batch = { items: [{ requestId: agent.requestId }], scope: { kind: "until_revoked" }, binding: "client" };
      const widen = { grantId, policy: null };
      const hosts = { name: SECRET, hosts: null };
      const quiet = { notifications: false };
      const calls = [
        { method: "approveRequest", params: approve },
        { method: "approveRequests", params: batch },
        { method: "updateGrantPolicy", params: widen },
        { method: "setSecretHosts", params: hosts },
        { method: "updateSettings", params: quiet },
        {
          method: "approveRequest",
          params: { ...approve, presence: { method: "passphrase", passphrase: "a guess at the passphrase" } },
        },
        {
          method: "approveRequests",
          params: { ...batch, presence: { method: "passkey", challengeId: "made-up", response: { id: "x" } } },
        },
        { method: "setSecretHosts", params: { ...hosts, presence: { method: "pin", pin: "135790" } } },
        { method: "updateSettings", params: { ...quiet, presence: { method: "password", password: "made up" } } },
        { method: "status", params: {} },
        { method: "listRequests", params: { status: "pending" } },
      ];
      const r = await attacker(attackArgv("control.ts", JSON.stringify(calls)));
      assert.equal(r.code, 0, r.stderr);
      const answers = z
        .array(
          z.object({
            method: z.string(),
            ok: z.boolean(),
            code: z.string().optional(),
            message: z.string().optional(),
          }),
        )
        .parse(lastJson(r.stdout));
      const codes = answers.map((a) => (a.ok ? "ok" : a.code));
      // A wrong guess is counted: the next guess right after it waits (rate_limited) — refused unchecked.
      assert.deepEqual(
        codes,
        [
          "presence_required",
          "presence_required",
          "presence_required",
          "presence_required",
          "presence_required",
          "presence_failed",
          "presence_failed",
          "rate_limited",
          "presence_failed",
          "ok",
          "ok",
        ],
        JSON.stringify(answers),
      );
      assert.equal(answers[0]?.message, PRESENCE_REQUIRED_MESSAGE);
      const after = await status();
      assert.equal(after.vault.state, "unlocked");
      assert.equal(
        (await pending()).some((p) => p.id === agent.requestId),
        true,
      );
      for (const [i, a] of answers.entries())
        note(
          t,
          `attack 3: ${a.method}${"presence" in (calls[i]?.params ?? {}) ? " + made-up proof" : ""} with the control token -> ${a.ok ? "ok" : `${a.code}`}`,
        );
    });

    it("4. the keychain: every item is a sealed blob; the Link token found there opens nothing at the authority", async (t) => {
      const authorityUrl = link.authority?.url ?? "";
      const r = await attacker(attackArgv("keychain.ts", "read", keychainService(user.profile), authorityUrl));
      assert.equal(r.code, 0, r.stderr);
      const read = z
        .object({
          total: z.number(),
          items: z.array(z.object({ item: z.string(), value: z.string() })),
          tried: z.array(z.object({ item: z.string(), route: z.string(), status: z.number() })),
        })
        .parse(lastJson(r.stdout));
      const names = read.items.map((i) => i.item).sort();
      assert.equal(read.total, read.items.length, "every item of the service was read");
      for (const item of ["vault", "instance-id", "authority-data-key", "authority-link-token", "authority-settings"])
        assert.ok(names.includes(item), `the keychain holds ${item}: ${names.join(", ")}`);
      for (const { item, value } of read.items) {
        if (item === "vault") assert.match(value, /^\{"format":"piper-link-vault","version":1,"kdf":\{"name":"scrypt"/);
        else assert.match(value, /^pls1\.[A-Za-z0-9+/=]+\.[A-Za-z0-9+/=]*\.[A-Za-z0-9+/=]+$/, `${item} is sealed`);
      }
      assert.ok(read.tried.length > 0, "the attacker tried the Link token");
      for (const tried of read.tried) assert.equal(tried.status, 401, JSON.stringify(tried));
      note(
        t,
        `attack 4: secret-tool search service=${keychainService(user.profile)} -> ${read.items.length} items, all sealed (pls1.…/vault record); ${read.tried.map((x) => `${x.item} as bearer on ${x.route} -> ${x.status}`).join("; ")}`,
      );
    });

    it("5. the embedded authority's database: nothing on disk or in the keychain decrypts a secret", async (t) => {
      const db = path.join(
        resolveLinkPaths(user.profile, { platform: "linux", env: user.env, homedir: user.home }).dataDir,
        "authority",
        "authority.sqlite",
      );
      const r = await attacker(attackArgv("database.ts", "decrypt", db, keychainService(user.profile), VALUE));
      assert.equal(r.code, 0, r.stderr);
      const out = z
        .object({
          secrets: z.number(),
          files: z.number(),
          keysTried: z.number(),
          opened: z.number(),
          valueFoundIn: z.string().nullable(),
        })
        .parse(lastJson(r.stdout));
      assert.ok(out.secrets >= 1);
      assert.equal(out.opened, 0);
      assert.equal(out.valueFoundIn, null);
      note(
        t,
        `attack 5: ${out.keysTried} candidate keys from ${out.files} files and the keychain on ${out.secrets} secret rows -> opened ${out.opened}; value in plaintext nowhere`,
      );
    });

    it("5b. a grant row written into the authority's SQLite file with better-sqlite3 is not honoured", async (t) => {
      const db = path.join(
        resolveLinkPaths(user.profile, { platform: "linux", env: user.env, homedir: user.home }).dataDir,
        "authority",
        "authority.sqlite",
      );
      const forge = await attacker(attackArgv("database.ts", "forge", db, "attacker", SECRET));
      assert.equal(forge.code, 0, forge.stderr);
      const forged = z.object({ forged: z.boolean() }).loose().parse(lastJson(forge.stdout));
      assert.equal(forged.forged, true, forge.stdout);
      // Not counted in the attacker's output: until the row MACs land, this attack succeeds.
      const asked = await run(attackArgv("agent.ts", SECRET, "attacker", "--no-wait"));
      const last = lastJson(asked.stdout) as { delivered?: string; refused?: string };
      note(
        t,
        `attack 5b: INSERT INTO grants (a copy of a live grant for the attacker, binding client = any program) -> the attacker's resolve got ${last.delivered !== undefined ? "THE VALUE" : last.refused}`,
      );
      assert.equal(last.delivered, undefined);
      assert.ok(!asked.stdout.includes(VALUE));
    });

    it(
      "2. the browser window through `ui --print` and headless Chromium: Approve gives nothing without the PIN",
      { skip: CHROMIUM_SKIP },
      async (t) => {
        const r = await attacker(attackArgv("ui.ts", user.bin, agent.requestId), { timeoutMs: 90_000 });
        assert.equal(r.code, 0, r.stdout + r.stderr);
        const out = z
          .object({
            url: z.string(),
            clicked: z.boolean(),
            pageText: z.string(),
            fromPage: z.object({ ok: z.boolean(), code: z.string().nullable(), message: z.string().nullable() }),
          })
          .parse(lastJson(r.stdout));
        assert.equal(out.fromPage.ok, false);
        assert.equal(out.fromPage.code, "presence_required");
        assert.equal(
          (await pending()).some((p) => p.id === agent.requestId),
          true,
          "still pending after the clicks",
        );
        if (out.clicked) assert.match(out.pageText, /PIN|passkey|needs you/i);
        note(
          t,
          `attack 2: ui --print + Chromium on ${out.url}: ${out.clicked ? "clicked Approve in the window -> asked for the PIN, nothing approved; " : "(window not built: no Approve to click) "}approveRequest from the page's script -> ${out.fromPage.code}`,
        );
      },
    );

    it("deny works with the control token alone; the attacker's agent ends with a refusal, never the value", async (t) => {
      const r = await attacker(
        attackArgv("control.ts", JSON.stringify([{ method: "denyRequest", params: { requestId: agent.requestId } }])),
      );
      const [deny] = z.array(z.object({ ok: z.boolean(), code: z.string().optional() })).parse(lastJson(r.stdout));
      assert.equal(deny?.ok, true, r.stdout);
      const end = await agent.done;
      assert.equal(end.delivered, undefined);
      assert.ok(end.refused);
      note(t, `deny with the token alone -> ok; the attacker's agent got ${end.refused}`);
    });
  });

  it("4b. a plaintext instance ID planted in the keychain is ignored by the Link", async (t) => {
    const before = await attacker(
      attackArgv("keychain.ts", "read", keychainService(user.profile), "https://127.0.0.1:1"),
    );
    const original = z
      .object({ items: z.array(z.object({ item: z.string(), value: z.string() })) })
      .parse(lastJson(before.stdout))
      .items.find((i) => i.item === "instance-id")?.value;
    assert.ok(original?.startsWith("pls1."));
    const planted = "inst_planted_by_the_agent";
    const plant = await attacker(
      attackArgv("keychain.ts", "plant", keychainService(user.profile), "instance-id", planted),
    );
    assert.deepEqual(lastJson(plant.stdout), { planted: true, stderr: "" });
    // The Link reads the item again at its next unlock.
    assert.equal((await run(cliArgv("lock", "--json"))).code, 0);
    const unlocked = await person(["unlock", "--json"]);
    assert.equal(unlocked.code, 0, unlocked.stdout + unlocked.stderr);
    const s = await status();
    assert.notEqual(s.instanceIdRedacted, redactInstanceId(planted));
    const log = readFileSync(
      resolveLinkPaths(user.profile, { platform: "linux", env: user.env, homedir: user.home }).logFile,
      "utf8",
    );
    assert.match(log, /a value not sealed by this vault was found and ignored/);
    // Put the sealed value back, as it was (the attack ends; the suite goes on with the same Link).
    await run(attackArgv("keychain.ts", "plant", keychainService(user.profile), "instance-id", original ?? ""));
    assert.equal((await run(cliArgv("lock", "--json"))).code, 0);
    assert.equal((await person(["unlock", "--json"])).code, 0);
    note(
      t,
      `attack 4b: secret-tool store instance-id=${planted} (plaintext), Link relocked and unlocked -> ignored (instance ${s.instanceIdRedacted ?? "none"}, not the planted one, log: "not sealed by this vault … ignored")`,
    );
  });

  it("revoke and lock work with the control token alone; locked, agents get `locked`; the person unlocks", async (t) => {
    const r = await attacker(
      attackArgv(
        "control.ts",
        JSON.stringify([
          { method: "revokeGrant", params: { grantId } },
          { method: "lock", params: {} },
        ]),
      ),
    );
    const answers = z.array(z.object({ method: z.string(), ok: z.boolean() })).parse(lastJson(r.stdout));
    assert.deepEqual(
      answers.map((a) => a.ok),
      [true, true],
      r.stdout,
    );
    assert.equal((await status()).vault.state, "locked");
    const asked = await attacker(attackArgv("agent.ts", SECRET, "attacker", "--no-wait"));
    assert.deepEqual(lastJson(asked.stdout), { refused: "locked" });
    const unlocked = await person(["unlock", "--json"]);
    assert.equal(unlocked.code, 0, unlocked.stdout + unlocked.stderr);
    assert.equal(LinkStatusSchema.parse(lastJson(unlocked.stdout)).vault.state, "unlocked");
    note(
      t,
      `revokeGrant + lock with the token alone -> ok; an agent while locked -> locked; legit: piper-link unlock at a terminal -> unlocked`,
    );
  });

  it("legit: a batch of two requests approved at a terminal with one PIN", async (t) => {
    const a = await startAgent("batch_one", false);
    const b = await startAgent("batch_two", false);
    const transcript = path.join(user.home, "batch.transcript");
    const r = await person(["approve", a.requestId, b.requestId, "--once", "--json"], transcript);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const shown = readFileSync(transcript, "utf8");
    assert.equal(shown.match(/PIN: /g)?.length, 1, shown);
    assert.equal((await a.done).delivered, VALUE);
    assert.equal((await b.done).delivered, VALUE);
    note(t, `legit: approve ${a.requestId} ${b.requestId} --once at a terminal -> one PIN prompt, both delivered`);
  });

  it("6. memory: /proc/PID/mem and environ of the Link and its authority are refused, SIGUSR1 opens no inspector (also with the attacker as the Link's ancestor)", async (t) => {
    const children = readdirSync("/proc")
      .filter((n) => /^\d+$/.test(n))
      .filter((n) => {
        try {
          const stat = readFileSync(`/proc/${n}/stat`, "utf8");
          return (
            Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]) === link.pid &&
            readFileSync(`/proc/${n}/cmdline`, "utf8").includes("serve")
          );
        } catch {
          return false;
        }
      });
    // The ancestor case first: its own Link, unlocked from a passphrase file (this attack is about the process, not the vault).
    const passFile = path.join(user.home, "ancestor-passphrase");
    writeFileSync(passFile, `${TEST_PASSPHRASE}\n`, { mode: 0o600 });
    if (IS_ROOT) chownSync(passFile, userIds().uid, userIds().gid);
    const ancestor = await attacker(attackArgv("memory.ts", "--spawn-link", user.bin), {
      env: { PIPER_LINK_PROFILE: uniqueProfile(), PIPER_LINK_PASSPHRASE_FILE: passFile },
      timeoutMs: 90_000,
    });
    const direct = await attacker(attackArgv("memory.ts", String(link.pid), ...children));
    const Results = z.object({
      spawned: z.boolean(),
      results: z.array(
        z.object({
          pid: z.number(),
          mem: z.string(),
          environ: z.string(),
          usr1: z.string(),
          alive: z.string(),
          inspector: z.boolean(),
        }),
      ),
    });
    const all = [
      ...Results.parse(lastJson(ancestor.stdout)).results.map((x) => ({ ...x, who: "ancestor" })),
      ...Results.parse(lastJson(direct.stdout)).results.map((x) => ({ ...x, who: "same user" })),
    ];
    for (const x of all)
      note(
        t,
        `attack 6 (${x.who}): pid ${x.pid}: /proc/pid/mem -> ${x.mem}; environ -> ${x.environ}; kill -USR1 -> ${x.usr1}, ${x.alive}, inspector ${x.inspector ? "OPENED" : "closed"}`,
      );
    assert.ok(all.length >= 4, JSON.stringify(all));
    for (const x of all) {
      assert.match(x.mem, /^refused/, JSON.stringify(x));
      assert.match(x.environ, /^refused/, JSON.stringify(x));
      assert.equal(x.inspector, false, JSON.stringify(x));
      assert.equal(x.alive, "alive", JSON.stringify(x));
    }
  });

  it("1b. self-approval with a pty the agent allocates: wrong PINs fail, then the Link locks and the right PIN no longer helps until the passphrase", async (t) => {
    const agent = await startAgent("pty_attacker");
    const guesses: string[] = [];
    // Each run types a guess at every PIN prompt; the Link checks one and refuses the next unchecked
    // while its wait after a wrong PIN runs (rate_limited), so a run costs one or two of the tries.
    for (let i = 1; i <= PIN_TRIES_ALLOWED && guesses.at(-1) !== "locked"; i++) {
      const transcript = path.join(user.home, `guess-${i}.transcript`);
      const r = await attacker(
        ptyArgv(
          ["approve", agent.requestId, "--until-revoked", "--bind", "any", "--json"],
          [["PIN: $", `00000${i}`]],
          transcript,
        ),
      );
      assert.notEqual(r.code, 0);
      const err = ErrorOut.parse(lastJson(r.stdout));
      guesses.push(err.error);
      assert.ok(["presence_failed", "rate_limited", "locked"].includes(err.error), JSON.stringify(err));
      if (i === 1) assert.match(readFileSync(transcript, "utf8"), /Wrong PIN/);
      const failures = (await status()).vault.pinFailures;
      await new Promise((resolve) => setTimeout(resolve, pinBackoffMs(failures) + 100));
    }
    assert.equal(guesses.at(-1), "locked", guesses.join(", "));
    const s = await status();
    assert.equal(s.vault.state, "locked");
    assert.equal(s.vault.lockedReason, "too_many_wrong_pins");
    const asked = await attacker(attackArgv("agent.ts", SECRET, "pty_attacker", "--no-wait"));
    assert.deepEqual(lastJson(asked.stdout), { refused: "locked" });
    // The right PIN, typed at a terminal, no longer approves anything.
    const right = await person(["approve", agent.requestId, "--until-revoked", "--json"]);
    assert.equal(ErrorOut.parse(lastJson(right.stdout)).error, "locked");
    // Its wait may outlive the lock; it has had its chance.
    const end =
      (await Promise.race([agent.done, new Promise<null>((resolve) => setTimeout(() => resolve(null), 3000))])) ??
      (agent.stop(), await agent.done);
    assert.equal(end.delivered, undefined);
    const unlocked = await person(["unlock", "--json"]);
    assert.equal(unlocked.code, 0, unlocked.stdout + unlocked.stderr);
    assert.equal((await status()).vault.state, "unlocked");
    note(
      t,
      `attack 1b: piper-link approve in a pty the agent opened, ${PIN_TRIES_ALLOWED} guessed PINs -> ${guesses.join(", ")}; then status: locked (too_many_wrong_pins), agents -> locked, the right PIN -> locked; the agent got ${end.refused ?? "nothing"}; legit unlock with the passphrase -> unlocked`,
    );
  });

  it("no attacker process ever printed the value", (t) => {
    assert.ok(attackerOutput.length > 0);
    assert.ok(!attackerOutput.includes(VALUE), "the value appeared in an attacker's output");
    note(t, `all attacker output (${attackerOutput.length} characters) searched: the value is not in it`);
  });
});

describe("legit: idle lock and the upgrade of a profile from before the vault (in-process Link)", () => {
  it("locks after the idle time without the person (agent traffic does not count)", async (t) => {
    let clock = Date.parse("2030-01-01T00:00:00Z");
    mock.timers.enable({ apis: ["setInterval"] });
    const test = await startTestLink({ now: () => clock });
    try {
      assert.equal(test.link.status().vault.state, "unlocked");
      const idleMs = test.link.status().vault.idleLockMinutes * 60_000;
      clock += idleMs - 60_000;
      mock.timers.tick(60_000);
      assert.equal(test.link.status().vault.state, "unlocked");
      clock += 60_000;
      mock.timers.tick(60_000);
      await waitFor(() => test.link.status().vault.state === "locked", "the idle lock");
      assert.equal(test.link.status().vault.lockedReason, "idle");
      note(t, `legit: idle lock after ${idleMs / 60_000} min without the person -> locked (idle)`);
    } finally {
      mock.timers.reset();
      await test.stop();
    }
  });

  it("an existing profile's plaintext items are sealed at the vault's creation and nothing is lost", async (t) => {
    const test = await startTestLink({ instanceId: "inst_upgrade_000123" });
    try {
      const raw = await test.keychain.get("instance-id");
      assert.ok(raw?.startsWith("pls1."), `sealed after the upgrade: ${raw}`);
      assert.equal(test.link.status().instanceIdRedacted, redactInstanceId("inst_upgrade_000123"));
      test.link.lock();
      await test.link.unlock(TEST_PASSPHRASE);
      assert.equal(test.link.status().instanceIdRedacted, redactInstanceId("inst_upgrade_000123"));
      note(
        t,
        "legit: upgrade: a plaintext instance-id from before -> sealed (pls1.…), the same instance ID served before and after a lock/unlock",
      );
    } finally {
      await test.stop();
    }
  });
});

// Keep the temp folders out of the way when the process ends (the Link's user owns some of them).
process.once("exit", () => {
  if (!prepared) return;
  const base = path.dirname(user.home);
  if (base.includes("piper-attack-") && statSync(base, { throwIfNoEntry: false }) !== undefined)
    rmSync(base, { recursive: true, force: true });
});
