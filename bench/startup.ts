/**
 * Unlock to serving (the second half of a start, after start to prompt in bench/capacity.ts): a
 * Link that started locked is given the passphrase, and serves agents once it has opened the vault,
 * started its embedded authority and connected to it. The passphrase KDF (scrypt at VAULT_KDF) is
 * part of that wait by design, and its cost is a security choice with its own band (bench/presence.ts):
 * it is measured on its own, in the same process right after each unlock, and taken out.
 *
 * Each sample is a fresh process (plain JS on dist/, see SAMPLE_CODE) on a profile a first process prepared
 * (vault created, signed in to the embedded authority); the keychain is the bench's in-memory one,
 * carried between the processes in a file of the throwaway profile. Figures per sample:
 *   wall: link.unlock() called -> resolved (the authority up and connected);
 *   KDF: one derivation at VAULT_KDF right after, wall and CPU time;
 *   CPU: the Link process's CPU time over the unlock (process.cpuUsage, all threads, so the
 *        KDF's pool thread too) minus the KDF's, plus the embedded authority process's CPU time up
 *        to then (it starts within the unlock): the work of unlocking, which load does not inflate.
 */
import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { z } from "zod";
import { createLink } from "../dist/main/core/link.js";
import { silentLogger } from "../dist/main/core/runtime/logger.js";
import { readLinkEnv } from "../dist/main/core/runtime/env.js";
import { resolveLinkPaths, type LinkPaths } from "../dist/main/core/runtime/paths.js";
import type { KeychainItem, KeychainStore } from "../src/main/core/runtime/keychain.js";
import { BENCH_PASSPHRASE, BENCH_UNLOCK } from "./bench-helpers.js";
import type { Figure } from "./capacity.js";
import { p50 } from "./measure.js";

const here = fileURLToPath(import.meta.url);
const SampleSchema = z.object({
  wallMs: z.number(),
  kdfMs: z.number(),
  kdfCpuMs: z.number(),
  cpuMs: z.number(),
  authorityCpuMs: z.number(),
});
type Sample = z.infer<typeof SampleSchema>;

function profilePaths(home: string): LinkPaths {
  return resolveLinkPaths("bench-unlock", {
    platform: "linux",
    env: { XDG_RUNTIME_DIR: home, XDG_DATA_HOME: home, XDG_STATE_HOME: home },
    homedir: home,
  });
}

/** The bench's in-memory keychain, loaded from and saved to `file` (a throwaway profile's). */
function fileBackedMemoryKeychain(file: string): { keychain: KeychainStore; save: () => void } {
  const items = new Map<KeychainItem, string>(
    fs.existsSync(file) ? (JSON.parse(fs.readFileSync(file, "utf8")) as [KeychainItem, string][]) : [],
  );
  const keychain: KeychainStore = {
    service: "bench-unlock",
    get: (k) => Promise.resolve(items.get(k) ?? null),
    set: (k, v) => Promise.resolve(void items.set(k, v)),
    delete: (k) => Promise.resolve(items.delete(k)),
  };
  return { keychain, save: () => fs.writeFileSync(file, JSON.stringify([...items])) };
}

function benchLink(home: string, keychain: KeychainStore, unlock: boolean): ReturnType<typeof createLink> {
  return createLink({
    env: readLinkEnv(process.env),
    profile: "bench-unlock",
    port: 0,
    paths: profilePaths(home),
    keychain,
    log: silentLogger(),
    authority: { kind: "embedded" },
    ...(unlock ? { unlock: BENCH_UNLOCK } : {}),
  });
}

/** First process: creates the vault and signs in, so later starts are a returning person's. */
async function prepare(home: string): Promise<void> {
  const { keychain, save } = fileBackedMemoryKeychain(path.join(home, "keychain.json"));
  const link = benchLink(home, keychain, true);
  await link.start();
  await link.api.devSignIn({ name: "bench" });
  await link.stop();
  save();
}

/**
 * One sample, run as plain JavaScript on the compiled dist/ (no tsx): the embedded
 * authority inherits the Link's Node options, and a TypeScript loader in them would be measured as
 * part of its start. Starts locked, then unlocks; prints a SampleSchema line.
 */
const SAMPLE_CODE = `
  import fs from "node:fs";
  import path from "node:path";
  const dist = process.env.BENCH_DIST;
  const { createLink } = await import(dist + "/main/core/link.js");
  const { silentLogger } = await import(dist + "/main/core/runtime/logger.js");
  const { resolveLinkPaths } = await import(dist + "/main/core/runtime/paths.js");
  const { readLinkEnv: readEnv } = await import(dist + "/main/core/runtime/env.js");
  const { deriveKey, newKdf, VAULT_KDF } = await import(dist + "/main/core/vault/vault-crypto.js");
  const home = process.env.BENCH_HOME, passphrase = process.env.BENCH_PASSPHRASE;
  const file = path.join(home, "keychain.json");
  const items = new Map(JSON.parse(fs.readFileSync(file, "utf8")));
  const keychain = { service: "bench-unlock", get: async (k) => items.get(k) ?? null, set: async (k, v) => void items.set(k, v), delete: async (k) => items.delete(k) };
  const paths = resolveLinkPaths("bench-unlock", { platform: "linux", env: { XDG_RUNTIME_DIR: home, XDG_DATA_HOME: home, XDG_STATE_HOME: home }, homedir: home });
  const link = createLink({ env: readEnv(process.env), profile: "bench-unlock", port: 0, paths, keychain, log: silentLogger(), authority: { kind: "embedded" } });
  const started = await link.start();
  if (started.vault.state !== "locked") throw new Error("expected a locked start, got " + started.vault.state);
  const ms = (u) => (u.user + u.system) / 1000;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const status = await link.unlock(passphrase);
  const wallMs = performance.now() - t0;
  const linkCpu = ms(process.cpuUsage(cpu0));
  if (status.vault.state !== "unlocked") throw new Error("the unlock did not unlock");
  // The embedded authority is this process's child, started within the unlock.
  let authorityCpuMs = 0;
  for (const pid of fs.readFileSync("/proc/" + process.pid + "/task/" + process.pid + "/children", "utf8").trim().split(/\\s+/).filter(Boolean)) {
    for (const tid of fs.readdirSync("/proc/" + pid + "/task")) authorityCpuMs += Number(fs.readFileSync("/proc/" + pid + "/task/" + tid + "/schedstat", "utf8").split(" ")[0]) / 1e6;
  }
  const k0 = process.cpuUsage();
  const t1 = performance.now();
  (await deriveKey(passphrase, newKdf(VAULT_KDF))).fill(0);
  const kdfMs = performance.now() - t1;
  const kdfCpuMs = ms(process.cpuUsage(k0));
  await link.stop();
  fs.writeFileSync(file, JSON.stringify([...items]));
  process.stdout.write(JSON.stringify({ wallMs, kdfMs, kdfCpuMs, cpuMs: linkCpu - kdfCpuMs + authorityCpuMs, authorityCpuMs }) + "\\n");
  process.exit(0);
`;

function sampleUnlock(home: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const env = {
      ...process.env,
      BENCH_DIST: path.resolve(path.dirname(here), "../dist"),
      BENCH_HOME: home,
      BENCH_PASSPHRASE,
    };
    // A file, not `node -e`: the authority is spawned with the Link's execArgv, which would hold the code.
    const script = path.join(home, "unlock-sample.mjs");
    fs.writeFileSync(script, SAMPLE_CODE);
    const child = spawn(process.execPath, [script], { env, stdio: ["ignore", "pipe", "inherit"] });
    let out = "";
    child.stdout.on("data", (c: Buffer) => (out += c.toString()));
    child.once("exit", (code) =>
      code === 0 ? resolve(out) : reject(new Error(`the unlock sample exited with ${code}`)),
    );
  });
}

function runChild(args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["--import", "tsx", here, ...args], { stdio: ["ignore", "pipe", "inherit"] });
    let out = "";
    child.stdout.on("data", (c: Buffer) => (out += c.toString()));
    child.once("exit", (code) =>
      code === 0 ? resolve(out) : reject(new Error(`startup ${args[0] ?? ""} exited with ${code}`)),
    );
  });
}

/** Unlock to serving, KDF excluded, and the KDF on its own (see the module comment). */
export async function unlockFigures(full: boolean): Promise<Figure[]> {
  const home = fs.mkdtempSync(path.join(os.tmpdir(), "piper-bench-unlock-"));
  try {
    await runChild(["prepare", home]);
    const samples: Sample[] = [];
    for (let i = 0; i < (full ? 9 : 5); i++)
      samples.push(SampleSchema.parse(JSON.parse((await sampleUnlock(home)).trim())));
    const cpu = p50(samples.map((s) => s.cpuMs));
    const info = (name: string, value: number): Figure => ({ name, value, unit: "ms", target: null, pass: true });
    return [
      // The same bound as start to prompt, read the same way (CPU time; see capacity.ts startFigures).
      {
        name: "unlock to serving, KDF excluded (median CPU time: Link minus its KDF, plus the embedded authority's start)",
        value: cpu,
        unit: "ms",
        target: 500,
        pass: cpu < 500,
      },
      info(
        "  of which the embedded authority process's start (median CPU time)",
        p50(samples.map((s) => s.authorityCpuMs)),
      ),
      info(
        "  the same, median wall minus the KDF's wall (same process, right after; includes waiting for other processes)",
        p50(samples.map((s) => s.wallMs - s.kdfMs)),
      ),
      info("  unlock wall as measured, KDF included (median)", p50(samples.map((s) => s.wallMs))),
      info("  the KDF on its own: scrypt at VAULT_KDF, median wall", p50(samples.map((s) => s.kdfMs))),
      info("  the KDF on its own: median CPU time", p50(samples.map((s) => s.kdfCpuMs))),
    ];
  } finally {
    fs.rmSync(home, { recursive: true, force: true });
  }
}

if (process.argv[1] !== undefined && fs.realpathSync(process.argv[1]) === here) {
  const [kind, home] = process.argv.slice(2);
  if (kind === "prepare" && home) await prepare(home);
  else
    for (const f of await unlockFigures(process.argv.includes("--full")))
      console.log(`${f.name}: ${f.value.toFixed(1)} ${f.unit}${f.target === null ? "" : f.pass ? " PASS" : " MISS"}`);
  process.exit(0);
}
