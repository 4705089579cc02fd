/** Shared parts of the soak suite: a signed-in Link with granted agents, load workers, and figures. */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { z } from "zod";
import { LinkStatusSchema, type LinkStatus } from "../src/shared/control.js";
import { cli, cliJson, newEnv, type CliEnv } from "../test/cli-helpers.js";
import { connectAgent, pendingRequestId } from "../test/helpers.js";

export const VALUE = "sk-soak-5b1e0c-never-logged";
export const VARIABLE = "OPENAI_API_KEY";
/** How long the load runs (SOAK_SECONDS, default 60). */
export const SOAK_MS = Number(process.env["SOAK_SECONDS"] ?? "60") * 1000;

const WORKER = fileURLToPath(new URL("./agent-worker.mjs", import.meta.url));

export interface SoakLink {
  e: CliEnv;
  status: LinkStatus;
}

/** A Link (embedded authority) started by the CLI, signed in, holding the secret. */
export async function startSignedInLink(extra: string[] = [], nodeOptions?: string): Promise<SoakLink> {
  const e = await newEnv();
  const startEnv = nodeOptions === undefined ? e : { ...e, env: { ...e.env, NODE_OPTIONS: nodeOptions } };
  const status = cliJson(startEnv, ["start", "--port", "0", ...extra], LinkStatusSchema);
  cliJson(e, ["dev", "sign-in"], LinkStatusSchema);
  assert.equal(cli(e, ["secrets", "set", VARIABLE], `${VALUE}\n`).code, 0);
  return { e, status };
}

/** Gives `clientId` an until-revoked grant for VARIABLE (ask as that agent, approve through the CLI). */
export async function grant(link: SoakLink, clientId: string): Promise<void> {
  const agent = await connectAgent(link.status.url);
  try {
    assert.equal((await agent.hello(1, clientId)).type, "welcome");
    agent.send({ type: "resolve", id: 2, variable: VARIABLE, wait: false });
    const first = await agent.next((m) => "id" in m && m.id === 2, 15_000);
    // The soak's agents are many worker processes standing for one agent, none of them the program
    // that asked here: the grant covers any program with this client ID, chosen explicitly.
    cliJson(
      link.e,
      ["approve", pendingRequestId(first), "--until-revoked", "--bind", "any"],
      z.object({ id: z.string() }),
    );
  } finally {
    agent.close();
  }
}

export const WorkerSummarySchema = z.object({
  ok: z.number(),
  errors: z.record(z.string(), z.number()),
  closes: z.record(z.string(), z.number()),
  retryable: z.number(),
  latencyMsMax: z.number(),
});
export type WorkerSummary = z.infer<typeof WorkerSummarySchema>;

export interface LoadOptions {
  clientId: string;
  connections: number;
  durationMs: number;
  intervalMs: number;
}

/** Runs one load worker process; resolves with its summary when its deadline has passed. */
export function runWorker(url: string, o: LoadOptions): Promise<WorkerSummary> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [WORKER, JSON.stringify({ url, variable: VARIABLE, ...o })], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    let out = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.once("exit", (code) => {
      if (code !== 0) return reject(new Error(`load worker exited ${code}`));
      resolve(WorkerSummarySchema.parse(JSON.parse(out.trim())));
    });
  });
}

export function mergeSummaries(all: WorkerSummary[]): WorkerSummary {
  const merged: WorkerSummary = { ok: 0, errors: {}, closes: {}, retryable: 0, latencyMsMax: 0 };
  for (const s of all) {
    merged.ok += s.ok;
    merged.retryable += s.retryable;
    merged.latencyMsMax = Math.max(merged.latencyMsMax, s.latencyMsMax);
    for (const [k, v] of Object.entries(s.errors)) merged.errors[k] = (merged.errors[k] ?? 0) + v;
    for (const [k, v] of Object.entries(s.closes)) merged.closes[k] = (merged.closes[k] ?? 0) + v;
  }
  return merged;
}

export function rssMb(pid: number): number {
  const kb = Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1] ?? "0");
  return Math.round(kb / 102.4) / 10;
}

/** Open file descriptors of a process (sockets included): leaks show up here. */
export function fdCount(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

/** The direct children of a process (the Link's embedded authority). */
/**
 * The embedded authority processes the Link `pid` started: its children whose command line runs the
 * authority (`authority serve`), not the keychain's short-lived helper processes.
 */
export function authorityPids(pid: number): number[] {
  return childPids(pid).filter((child) => {
    try {
      return readFileSync(path.join("/proc", String(child), "cmdline"), "utf8")
        .split("\0")
        .includes("serve");
    } catch {
      return false;
    }
  });
}

export function childPids(pid: number): number[] {
  const out: number[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(path.join("/proc", name, "stat"), "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      if (ppid === pid) out.push(Number(name));
    } catch {
      // the process ended while we looked
    }
  }
  return out;
}

/** Prints a figure block that stays in CI output. */
export function report(title: string, figures: Record<string, string | number>): void {
  const width = Math.max(...Object.keys(figures).map((k) => k.length));
  const lines = Object.entries(figures).map(([k, v]) => `#   ${k.padEnd(width)}  ${v}`);
  process.stdout.write(`# ${title}\n${lines.join("\n")}\n`);
}
