// The approval flow end to end on real processes: the compiled CLI starts a Link with its embedded
// authority (child process, HTTPS, SQLite, real keyring); agents are real WebSocket clients (and
// real child processes where their process identity matters); approvals go through the CLI.
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import fs from "node:fs/promises";
import { createRequire } from "node:module";
import path from "node:path";
import { after, describe, it } from "node:test";
import { z } from "zod";
import { AuditPageSchema, GrantViewSchema, RequestViewSchema } from "../src/shared/authority.js";
import { LinkStatusSchema } from "../src/shared/control.js";
import type { LinkMessage } from "../src/shared/protocol.js";
import { cli, cliJson, newEnv, stopAll, type CliEnv } from "./cli-helpers.js";
import { connectAgent, pendingRequestId, waitFor, type TestAgent } from "./helpers.js";

after(stopAll);

const VALUE = "sk-e2e-0123456789-unique-value";

async function startSignedIn(extra: string[] = []): Promise<{ e: CliEnv; url: string; pid: number }> {
  const e = await newEnv();
  const status = cliJson(e, ["start", "--port", "0", ...extra], LinkStatusSchema);
  assert.equal(status.authority?.mode, "embedded");
  cliJson(e, ["dev", "sign-in"], LinkStatusSchema);
  const stored = cli(e, ["secrets", "set", "OPENAI_API_KEY"], `${VALUE}\n`);
  assert.equal(stored.code, 0, stored.stderr);
  return { e, url: status.url, pid: status.pid };
}

let nextId = 100;
async function resolve(
  agent: TestAgent,
  extra: Record<string, unknown> = {},
): Promise<{ id: number; first: LinkMessage }> {
  const id = nextId++;
  agent.send({ type: "resolve", id, variable: "OPENAI_API_KEY", reason: "e2e test", ...extra });
  return { id, first: await agent.next((m) => "id" in m && m.id === id, 15_000) };
}

function pendingRequests(e: CliEnv) {
  return cliJson(e, ["requests"], z.array(RequestViewSchema));
}

describe("approval flow (Link + embedded authority, real processes)", () => {
  it("pending -> approve once -> value; until revoked -> immediate; revoke -> pending; deny -> denied; all audited, value nowhere at rest", async () => {
    const { e, url } = await startSignedIn();
    const agent = await connectAgent(url);
    assert.equal((await agent.hello(1, "agent_e2e")).type, "welcome");

    // 1. No grant: pending, visible with the requesting process.
    const r1 = await resolve(agent);
    assert.equal(r1.first.type, "pending");
    const [req] = pendingRequests(e);
    assert.ok(req);
    assert.equal(req.id, pendingRequestId(r1.first));
    assert.equal(req.agentClientId, "agent_e2e");
    assert.equal(req.reason, "e2e test");
    assert.ok(req.process);
    assert.equal(req.process.pid, process.pid);
    assert.equal(req.process.cwd, process.cwd());

    // 2. Approve once: the waiting call returns the value.
    cliJson(e, ["approve", req.id, "--once"], GrantViewSchema);
    const secret = await agent.next((m) => "id" in m && m.id === r1.id && m.type !== "pending", 15_000);
    assert.equal(secret.type, "secret");
    assert.equal(secret.value, VALUE);

    // 3. Used up: pending again; approve until revoked; then immediate.
    const r2 = await resolve(agent);
    assert.equal(r2.first.type, "pending");
    const grant = cliJson(e, ["approve", pendingRequests(e)[0]?.id ?? "", "--until-revoked"], GrantViewSchema);
    assert.equal((await agent.next((m) => "id" in m && m.id === r2.id && m.type !== "pending", 15_000)).type, "secret");
    const r3 = await resolve(agent);
    assert.equal(r3.first.type, "secret", "a live grant answers at once");
    const grants = cliJson(e, ["grants"], z.array(GrantViewSchema));
    assert.deepEqual(
      grants.map((g) => [g.id, g.scope, g.agentClientId, g.secretName]),
      [[grant.id, "until_revoked", "agent_e2e", "OPENAI_API_KEY"]],
    );

    // 4. Revoke: the next call is pending again. Deny it: the agent gets `denied`.
    cliJson(e, ["revoke", grant.id], GrantViewSchema);
    const r4 = await resolve(agent);
    assert.equal(r4.first.type, "pending");
    cliJson(e, ["deny", pendingRequests(e)[0]?.id ?? ""], RequestViewSchema);
    const denied = await agent.next((m) => "id" in m && m.id === r4.id && m.type !== "pending", 15_000);
    assert.deepEqual(denied.type === "error" && [denied.code, denied.retryable], ["denied", false]);

    // 5. wait:false returns right after `pending`.
    const r5 = await resolve(agent, { wait: false });
    assert.equal(r5.first.type, "pending");

    // 6. Every step is in the audit log; the value is in no file at rest and in no log.
    const audit = cliJson(e, ["activity", "--limit", "100"], AuditPageSchema);
    const actions = audit.events.map((ev) => ev.action);
    for (const a of [
      "instance.registered",
      "secret.created",
      "request.created",
      "request.approved",
      "secret.delivered",
      "grant.ended",
      "request.denied",
    ]) {
      assert.ok(actions.includes(a), `audit lacks ${a}: ${actions.join(",")}`);
    }
    assert.ok(!JSON.stringify(audit).includes(VALUE));
    agent.close();
    assert.equal(cli(e, ["stop"]).code, 0);
    const files = [...(await listFiles(e.paths.dataDir)), ...(await listFiles(e.paths.logDir))];
    assert.ok(files.some((f) => f.endsWith("authority.sqlite")));
    for (const f of files) assert.ok(!(await fs.readFile(f)).includes(VALUE), `${f} contains the secret value`);
  });

  it("a grant for the life of a process ends when that process exits", async () => {
    const { e, url } = await startSignedIn();
    const first = spawnAgent(url, "agent_proc");
    try {
      await waitFor(() => pendingRequests(e).length === 1, "the child agent's request");
      const [req] = pendingRequests(e);
      assert.equal(req?.process?.pid, first.child.pid);
      const grant = cliJson(e, ["approve", req?.id ?? "", "--while-process-runs"], GrantViewSchema);
      assert.equal(grant.scope, "process");
      await waitFor(() => first.lines.some((l) => l.includes(VALUE)), "the child to receive the value");
      // The same process asks again: immediate.
      first.child.stdin?.write("again\n");
      await waitFor(() => first.lines.filter((l) => l.includes(VALUE)).length === 2, "the second answer");
      first.child.kill();
      await waitFor(
        () =>
          cliJson(e, ["grants", "--all"], z.array(GrantViewSchema)).some(
            (g) => g.id === grant.id && g.endReason === "process_exited",
          ),
        "the grant to end",
        15_000,
      );
    } finally {
      first.child.kill();
    }
    const second = spawnAgent(url, "agent_proc");
    try {
      await waitFor(() => second.lines.some((l) => l.includes('"pending"')), "a new process to be pending");
    } finally {
      second.child.kill();
    }
    assert.equal(cli(e, ["stop"]).code, 0);
  });

  it("expired requests answer `timeout`", async () => {
    const { e, url } = await startSignedIn(["--request-ttl", "1500"]);
    const agent = await connectAgent(url);
    await agent.hello(1, "agent_slow");
    const r = await resolve(agent, { timeoutMs: 30_000 });
    assert.equal(r.first.type, "pending");
    const outcome = await agent.next((m) => "id" in m && m.id === r.id && m.type !== "pending", 15_000);
    assert.deepEqual(outcome.type === "error" && outcome.code, "timeout");
    assert.equal(cliJson(e, ["requests", "--all"], z.array(RequestViewSchema))[0]?.status, "expired");
    agent.close();
    assert.equal(cli(e, ["stop"]).code, 0);
  });

  it("survives kill -9 of the Link during a pending approval: the request is kept and the reconnected agent gets the value", async () => {
    const { e, url, pid } = await startSignedIn();
    const agent = await connectAgent(url);
    await agent.hello(1, "agent_crash");
    const r = await resolve(agent);
    assert.equal(r.first.type, "pending");
    const requestId = pendingRequestId(r.first);
    process.kill(pid, "SIGKILL");
    await agent.closed;

    const restarted = cliJson(e, ["start", "--port", "0"], LinkStatusSchema);
    assert.notEqual(restarted.pid, pid);
    assert.equal(restarted.state, "ready", "still signed in after the crash");
    assert.deepEqual(
      pendingRequests(e).map((x) => x.id),
      [requestId],
    );

    const again = await connectAgent(restarted.url);
    await again.hello(1, "agent_crash");
    const r2 = await resolve(again);
    assert.equal(pendingRequestId(r2.first), requestId, "the reconnected agent waits on the same request");
    cliJson(e, ["approve", requestId, "--once"], GrantViewSchema);
    const secret = await again.next((m) => "id" in m && m.id === r2.id && m.type !== "pending", 15_000);
    assert.equal(secret.type === "secret" && secret.value, VALUE);
    again.close();
    assert.equal(cli(e, ["stop"]).code, 0);
  });

  it("reports authority_unavailable (retryable) when the Link has no authority", async () => {
    const e = await newEnv();
    const status = cliJson(e, ["start", "--port", "0", "--authority", "none"], LinkStatusSchema);
    cli(e, ["dev", "set-instance", "inst_none_0001"]);
    const agent = await connectAgent(status.url);
    await agent.hello(1);
    const r = await resolve(agent);
    assert.deepEqual(r.first.type === "error" && [r.first.code, r.first.retryable], ["authority_unavailable", true]);
    const secrets = cli(e, ["secrets", "list"]);
    assert.equal(secrets.code, 1);
    assert.match(secrets.stderr, /no authority configured/);
    agent.close();
    cli(e, ["logout"]);
    assert.equal(cli(e, ["stop"]).code, 0);
  });
});

async function listFiles(dir: string): Promise<string[]> {
  const entries = await fs.readdir(dir, { withFileTypes: true, recursive: true }).catch(() => []);
  return entries.filter((d) => d.isFile()).map((d) => path.join(d.parentPath, d.name));
}

/** A separate agent process that resolves OPENAI_API_KEY now and on each line of stdin, printing replies. */
function spawnAgent(url: string, clientId: string): { child: ChildProcess; lines: string[] } {
  const wsPath = createRequire(import.meta.url).resolve("ws");
  const code = `
    const W = require(${JSON.stringify(wsPath)});
    const ws = new W(${JSON.stringify(url)}, "piper-link.v1");
    let id = 10;
    const ask = () => ws.send(JSON.stringify({ type: "resolve", id: id++, variable: "OPENAI_API_KEY", timeoutMs: 60000 }));
    ws.on("open", () => { ws.send(JSON.stringify({ type: "hello", id: 1, protocol: 1, agent: { clientId: ${JSON.stringify(clientId)} } })); ask(); });
    ws.on("message", (d) => console.log(String(d)));
    process.stdin.on("data", ask);`;
  const child = spawn(process.execPath, ["-e", code], { stdio: ["pipe", "pipe", "inherit"] });
  const lines: string[] = [];
  child.stdout.on("data", (c: Buffer) => lines.push(...c.toString().split("\n").filter(Boolean)));
  return { child, lines };
}
