/**
 * The approval-fatigue figure (issue 13 item 10), printed by `npm run bench`: how many times a person
 * must approve in a working day, for each choice of grant binding, driven through the real authority
 * service (src/server/service) on SQLite with a fake clock — no sockets, no timings.
 *
 * The day: one agent program (same executable + script + cwd) in one terminal session asks for 3
 * secrets on each of 20 runs, ~25 minutes apart (each run a new process: new pid and start time).
 * The person approves every request with the Approve dialog's terms (DEFAULT_GRANT_TERMS, or a
 * narrower binding to show why the default is what it is), either one prompt per secret or one batch
 * card per run (`resolveMany`, "Approve all"). Targets (issue 13 item 10): with the default, at most
 * 3 approvals, and at most 1 with the batch prompt; a second program in another directory gets its
 * own prompt; a program that claims the first one's client ID gets its own prompt and nothing else.
 */
import { randomBytes } from "node:crypto";
import type { ApproveBody } from "../src/shared/authority.js";
import { DEFAULT_GRANT_TERMS, type GrantBindingKind } from "../src/shared/grant-terms.js";
import type { PeerProcess } from "../src/shared/process.js";
import { newDataKey, parseDataKeys } from "../src/server/crypto.js";
import { openDatabase } from "../src/server/db.js";
import { createLocalBus } from "../src/server/events.js";
import { createService, type AuthorityService } from "../src/server/service/index.js";

/** The day as the figure models it; every field has the value by default. */
export interface FatigueDay {
  /** Runs of the agent in the day (20). */
  runs: number;
  /** Minutes between two runs (25). */
  minutesApart: number;
  /** Secrets each run asks for (3). */
  secrets: readonly string[];
  /** What the person approves with: the dialog's default binding, or a narrower one. */
  binding: GrantBindingKind;
  /** One prompt per secret (`getSecret`), or one card per run for all of them (`getSecrets`). */
  batch: boolean;
  /** The run from which the program's content is new (an upgrade of its script); absent: unchanged all day. */
  changedAtRun?: number;
}

export const WORKING_DAY: FatigueDay = {
  runs: 20,
  minutesApart: 25,
  secrets: ["OPENAI_API_KEY", "GITHUB_TOKEN", "DATABASE_URL"],
  binding: DEFAULT_GRANT_TERMS.binding,
  batch: false,
};

/** What the day cost the person and what the agents got. */
export interface FatigueCount {
  /** Times the person approved: one per prompt (per card with `batch`). */
  approvals: number;
  /** Values the first program received (runs x secrets when every approval was given). */
  served: number;
  /** Prompts the same agent's second program (same client ID, another directory) got for one run. */
  secondProgramPrompts: number;
  /** Prompts a program claiming the first one's client ID got for one run (never approved). */
  impostorPrompts: number;
  /** Values that program received without anyone approving it (must be 0). */
  impostorServed: number;
  /** Prompts whose card said the program changed since it was approved. */
  changedPrompts: number;
}

const CLIENT_ID = "claude-code";
const SESSION = { sessionId: 4242, sessionLeader: { pid: 4242, startTime: 1000, executable: "/bin/bash" } };

/** A process of a program: the OS-read identity the Link would send (pid and start time per run). */
function processOf(
  program: { executable: string; script: string; cwd: string },
  run: number,
  contentHash = "a".repeat(64),
): PeerProcess {
  return {
    contentHash,
    loads: [],
    pid: 10_000 + run,
    startTime: 50_000 + run * 100,
    uid: 1000,
    executable: program.executable,
    script: program.script,
    cwd: program.cwd,
    commandLine: [program.executable, program.script],
    ...SESSION,
    parents: [SESSION.sessionLeader],
  };
}

const AGENT = { executable: "/usr/bin/node", script: "/home/me/project/agent.mjs", cwd: "/home/me/project" };
const SECOND = { ...AGENT, script: "/home/me/other/agent.mjs", cwd: "/home/me/other" };
const IMPOSTOR = { executable: "/usr/bin/python3", script: "/tmp/grab.py", cwd: "/tmp" };

/** The Approve dialog's terms with `binding` (its lifetime, mode and policy stay the default's). */
function termsWith(binding: GrantBindingKind): ApproveBody {
  const lifetime = DEFAULT_GRANT_TERMS.lifetime;
  const scope: ApproveBody["scope"] =
    lifetime.kind === "duration" ? { kind: "duration", durationMs: lifetime.durationMs } : lifetime;
  return { scope, binding };
}

interface World {
  service: AuthorityService;
  userId: string;
  instanceId: string;
  clock: { t: number };
}

/**
 * One run of a program: asks for every secret (one batch when `batch`), and returns the request
 * ids left pending and how many values it got. `batch` requests share one batch id, as the Link's
 * `resolveMany` sends them.
 */
async function ask(
  w: World,
  process: PeerProcess,
  secrets: readonly string[],
  batch: boolean,
): Promise<{ pending: string[]; served: number }> {
  const batchId = batch ? `batch_${randomBytes(12).toString("base64url")}` : undefined;
  const pending: string[] = [];
  let served = 0;
  for (const variable of secrets) {
    const r = await w.service.resolve(w.userId, {
      instanceId: w.instanceId,
      agentClientId: CLIENT_ID,
      agentName: "Claude Code",
      variable,
      process,
      ...(batchId ? { batchId } : {}),
    });
    if (r.status === "granted") served += 1;
    else pending.push(r.requestId);
  }
  return { pending, served };
}

/** The cards the window shows for `requestIds`: one per batch, one per lone request. */
async function cardsFor(w: World, requestIds: readonly string[]): Promise<number> {
  const wanted = new Set(requestIds);
  const shown = (await w.service.listRequests(w.userId, "pending")).filter((r) => wanted.has(r.id));
  return new Set(shown.map((r) => r.batchId ?? r.id)).size;
}

/**
 * Plays `day` against a fresh authority service (SQLite in memory, fake clock starting 09:00) and
 * counts what it cost: approvals (prompts the person answered), values served, and the prompts of a
 * second program of the same agent and of a program that claims its client ID. Deterministic.
 */
export async function countApprovals(day: FatigueDay = WORKING_DAY): Promise<FatigueCount> {
  const opened = await openDatabase(":memory:");
  const clock = { t: Date.UTC(2026, 0, 5, 9, 0, 0) };
  try {
    const service = createService({
      db: opened.db,
      keys: parseDataKeys(`k1:${newDataKey()}`),
      bus: createLocalBus(),
      now: () => clock.t,
    });
    const { userId } = await service.createUser("Fatigue");
    const instanceId = await service.registerInstance(userId, "laptop");
    for (const name of day.secrets) await service.setSecret(userId, name, `value-of-${name}`);
    const w: World = { service, userId, instanceId, clock };
    const terms = termsWith(day.binding);
    let approvals = 0;
    let served = 0;
    let changedPrompts = 0;
    for (let run = 0; run < day.runs; run++) {
      clock.t += run === 0 ? 0 : day.minutesApart * 60_000;
      const proc = processOf(
        AGENT,
        run,
        day.changedAtRun !== undefined && run >= day.changedAtRun ? "b".repeat(64) : "a".repeat(64),
      );
      const asked = await ask(w, proc, day.secrets, day.batch);
      served += asked.served;
      if (asked.pending.length === 0) continue;
      const shown = (await w.service.listRequests(w.userId, "pending")).filter((r) => asked.pending.includes(r.id));
      changedPrompts += shown.filter((r) => r.process?.changedSinceApproval === true).length;
      // The person sees the card(s) a few seconds later and approves with the dialog's terms.
      clock.t += 10_000;
      approvals += day.batch ? await cardsFor(w, asked.pending) : asked.pending.length;
      for (const requestId of asked.pending) await service.approve(userId, requestId, terms);
      clock.t += 1_000;
      served += (await ask(w, proc, day.secrets, day.batch)).served;
    }
    // The same agent's program in another directory, once, right after the last run.
    clock.t += 60_000;
    const second = await ask(w, processOf(SECOND, 100), day.secrets, day.batch);
    const secondProgramPrompts = await cardsFor(w, second.pending);
    // Another program that says it is claude-code: its own prompt, nothing served.
    const impostor = await ask(w, processOf(IMPOSTOR, 200), day.secrets, day.batch);
    return {
      approvals,
      served,
      secondProgramPrompts,
      impostorPrompts: await cardsFor(w, impostor.pending),
      impostorServed: impostor.served,
      changedPrompts,
    };
  } finally {
    await opened.close();
  }
}

/** One printed line of the figure. */
export interface FatigueLine {
  name: string;
  oneByOne: number;
  batch: number;
  /** A readable target, or null for lines shown for comparison only. */
  target: string | null;
  pass: boolean | null;
}

/**
 * The figure's lines: the default binding (with targets), the narrower ones for comparison, and the
 * second program and the impostor (with targets). `count` is injectable for tests of the rule.
 */
export async function fatigueLines(
  count: (day: FatigueDay) => Promise<FatigueCount> = countApprovals,
): Promise<FatigueLine[]> {
  const lines: FatigueLine[] = [];
  const both = async (binding: GrantBindingKind): Promise<[FatigueCount, FatigueCount]> => [
    await count({ ...WORKING_DAY, binding, batch: false }),
    await count({ ...WORKING_DAY, binding, batch: true }),
  ];
  const [one, many] = await both(DEFAULT_GRANT_TERMS.binding);
  const everyoneServed = one.served === WORKING_DAY.runs * WORKING_DAY.secrets.length && many.served === one.served;
  lines.push({
    name: `approvals, default (${DEFAULT_GRANT_TERMS.binding})`,
    oneByOne: one.approvals,
    batch: many.approvals,
    target: "<= 3; <= 1 batch",
    pass: one.approvals <= 3 && many.approvals <= 1 && everyoneServed,
  });
  // The program's script is upgraded once, mid-day: asked again once per secret (one card with the
  // batch prompt), each card saying it changed; the unchanged program stays within the default's target.
  const [upOne, upMany] = [
    await count({ ...WORKING_DAY, changedAtRun: 10, batch: false }),
    await count({ ...WORKING_DAY, changedAtRun: 10, batch: true }),
  ];
  lines.push({
    name: "approvals, program changed once (re-asks counted)",
    oneByOne: upOne.approvals,
    batch: upMany.approvals,
    target: "<= 3 + 3; <= 2 batch; cards say changed",
    pass:
      upOne.approvals <= 6 &&
      upMany.approvals <= 2 &&
      upOne.changedPrompts === WORKING_DAY.secrets.length &&
      upMany.changedPrompts === WORKING_DAY.secrets.length,
  });
  for (const binding of ["session", "process"] as const) {
    if (binding === DEFAULT_GRANT_TERMS.binding) continue;
    const [o, m] = await both(binding);
    lines.push({
      name: `approvals, narrower (${binding})`,
      oneByOne: o.approvals,
      batch: m.approvals,
      target: null,
      pass: null,
    });
  }
  lines.push({
    name: "second program, other directory: prompts",
    oneByOne: one.secondProgramPrompts,
    batch: many.secondProgramPrompts,
    target: ">= 1",
    pass: one.secondProgramPrompts >= 1 && many.secondProgramPrompts >= 1,
  });
  lines.push({
    name: "program claiming the client ID: prompts",
    oneByOne: one.impostorPrompts,
    batch: many.impostorPrompts,
    target: ">= 1, none served",
    pass:
      one.impostorPrompts >= 1 && many.impostorPrompts >= 1 && one.impostorServed === 0 && many.impostorServed === 0,
  });
  return lines;
}

/** Prints the figure as a table (for bench/run.ts) and returns its lines for the JSON report. */
export async function printFatigue(): Promise<FatigueLine[]> {
  const lines = await fatigueLines();
  const d = WORKING_DAY;
  console.log(
    `\nApproval fatigue (fake clock, real service on SQLite): one agent program in one terminal session, ${d.secrets.length} secrets, ${d.runs} runs ${d.minutesApart} min apart, each run a new process; the person approves with the dialog's terms:`,
  );
  const rows = lines.map((l) => [
    l.name,
    String(l.oneByOne),
    String(l.batch),
    l.target ?? "-",
    l.pass === null ? "" : l.pass ? "PASS" : "MISS",
  ]);
  const header = ["case", "one prompt per secret", "batch prompt", "target", "result"];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  for (const cells of [header, widths.map((w) => "-".repeat(w)), ...rows])
    console.log(cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join("  "));
  return lines;
}
