// The agent protocol against a real Link on port 0 with a real keyring and real WebSocket clients.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import fs from "node:fs/promises";
import { createRequire } from "node:module";
import { after, before, describe, it } from "node:test";
import { DiscoveryFileSchema } from "../src/shared/discovery.js";
import { CloseCode } from "../src/shared/protocol.js";
import { connectAgent, startTestLink, TEST_PASSPHRASE, waitFor, type TestLink } from "./helpers.js";
import { readSealed } from "./vault-reader.js";

describe("agent protocol", () => {
  let t: TestLink;
  before(async () => {
    t = await startTestLink();
  });
  after(async () => {
    await t.stop();
  });
  /** Signing out locks the Link too; the person unlocks again (the next test signs in again). */
  async function signOut(): Promise<void> {
    await t.link.api.logout({});
    assert.equal(t.link.status().vault.lockedReason, "signed_out");
    await t.link.api.unlock({ passphrase: TEST_PASSPHRASE });
  }

  it("answers hello with not_logged_in, then pushes context when an instance ID appears and disappears", async () => {
    const agent = await connectAgent(t.url);
    const reply = await agent.hello(1);
    assert.deepEqual(reply, {
      type: "error",
      id: 1,
      code: "not_logged_in",
      message: "Piper Link is running but nobody is signed in. Open Piper Link and sign in.",
      retryable: false,
    });
    await t.link.api.setInstanceId({ instanceId: "inst_push_0001" });
    assert.deepEqual(await agent.next((m) => m.type === "context"), {
      type: "context",
      instanceId: "inst_push_0001",
      state: "ready",
    });
    assert.equal(await readSealed(t.keychain, "instance-id"), "inst_push_0001");

    const welcome = await agent.hello("again");
    assert.equal(welcome.type, "welcome");
    assert.equal(welcome.instanceId, "inst_push_0001");
    assert.equal(welcome.link.version, "0.1.0");

    await signOut();
    assert.deepEqual(await agent.next((m) => m.type === "context"), {
      type: "context",
      instanceId: null,
      state: "logged_out",
      reason: "not_logged_in",
    });
    assert.equal(await t.keychain.get("instance-id"), null);
    agent.close();
  });

  it("does not push context to connections that have not said hello", async () => {
    const silent = await connectAgent(t.url);
    const helloed = await connectAgent(t.url);
    await helloed.hello(1);
    await t.link.api.setInstanceId({ instanceId: "inst_quiet_0002" });
    await helloed.next((m) => m.type === "context");
    assert.equal(silent.received.length, 0);
    await signOut();
    silent.close();
    helloed.close();
  });

  it("requires hello before resolve, and answers authority_unavailable when the Link has no authority", async () => {
    await t.link.api.setInstanceId({ instanceId: "inst_resolve_0003" });
    const agent = await connectAgent(t.url);
    agent.send({ type: "resolve", id: 7, variable: "OPENAI_API_KEY" });
    const early = await agent.next();
    assert.equal(early.type === "error" && early.code, "hello_required");
    await agent.hello(8);
    agent.send({ type: "resolve", id: 9, variable: "OPENAI_API_KEY", reason: "testing" });
    const reply = await agent.next((m) => "id" in m && m.id === 9);
    assert.equal(reply.type, "error");
    assert.equal(reply.code, "authority_unavailable");
    assert.equal(reply.retryable, true);
    await signOut();
    agent.send({ type: "resolve", id: 10, variable: "OPENAI_API_KEY" });
    const loggedOut = await agent.next((m) => "id" in m && m.id === 10);
    assert.equal(loggedOut.type === "error" && loggedOut.code, "not_logged_in");
    agent.close();
  });

  it("answers unknown types, bad fields and wrong protocol versions with stable codes, echoing the id", async () => {
    const agent = await connectAgent(t.url);
    agent.send({ type: "teleport", id: "u1" });
    assert.deepEqual(await agent.next(), {
      type: "error",
      id: "u1",
      code: "unknown_type",
      message: 'Unknown message type "teleport".',
      retryable: false,
    });
    agent.send({ type: "hello", id: "h1", protocol: 1, agent: {} });
    const bad = await agent.next();
    assert.equal(bad.type === "error" && bad.code, "bad_request");
    assert.equal(bad.type === "error" && bad.id, "h1");
    agent.send({ type: "hello", id: "h2", protocol: 99, agent: { clientId: "x" } });
    const proto = await agent.next();
    assert.equal(proto.type === "error" && proto.code, "unsupported_protocol");
    agent.send("{not json");
    const malformed = await agent.next();
    assert.deepEqual(malformed.type === "error" && [malformed.code, malformed.id], ["malformed_frame", null]);
    agent.close();
  });

  it("publishes a private discovery file with the real address", async () => {
    const stat = await fs.stat(t.paths.discoveryFile);
    assert.equal(stat.mode & 0o777, 0o600);
    assert.equal((await fs.stat(t.paths.runtimeDir)).mode & 0o777, 0o700);
    const file = DiscoveryFileSchema.parse(JSON.parse(await fs.readFile(t.paths.discoveryFile, "utf8")));
    assert.equal(file.url, `ws://127.0.0.1:${t.port}/v1/link`);
    assert.equal(file.pid, process.pid);
    assert.equal(file.version, "0.1.0");
    assert.ok(!Number.isNaN(Date.parse(file.startedAt)));
    assert.equal((await fs.stat(t.paths.controlFile)).mode & 0o777, 0o600);
  });

  it("serves the pyper-sdk context endpoint: 503 not_logged_in, then 200 with the instance ID", async () => {
    const base = `http://127.0.0.1:${t.port}`;
    const out = await fetch(`${base}/piper-link-context`);
    assert.equal(out.status, 503);
    assert.equal(((await out.json()) as { error: string }).error, "not_logged_in");
    await t.link.api.setInstanceId({ instanceId: "inst_http_0004" });
    const ok = await fetch(`http://localhost:${t.port}/piper-link-context`);
    assert.equal(ok.status, 200);
    assert.deepEqual(await ok.json(), { instanceId: "inst_http_0004" });
    assert.equal(ok.headers.get("content-type"), "application/json; charset=utf-8");
    const health = await fetch(`${base}/healthz`);
    assert.equal(health.status, 200);
    assert.deepEqual(await health.json(), { status: "ok", version: "0.1.0", state: "ready" });
    await signOut();
  });

  it("identifies the process on the other end of each agent connection", async () => {
    // A separate agent process, so the pid and working directory are not the test's own.
    const child = spawn(
      process.execPath,
      [
        "-e",
        `const W=require(process.argv[2]);const w=new W(process.argv[1],"piper-link.v1");w.on("open",()=>w.send(JSON.stringify({type:"hello",id:1,protocol:1,agent:{clientId:"agent_child",name:"Child"}})));setInterval(()=>{},1000)`,
        t.url,
        createRequire(import.meta.url).resolve("ws"),
      ],
      { cwd: "/tmp", stdio: "ignore" },
    );
    try {
      await waitFor(
        () => t.link.status().agents.some((a) => a.clientId === "agent_child" && a.process !== null),
        "the child agent to be identified",
      );
      const agent = t.link.status().agents.find((a) => a.clientId === "agent_child");
      assert.ok(agent?.process);
      assert.equal(agent.process.pid, child.pid);
      assert.equal(agent.process.cwd, "/tmp");
      assert.equal(agent.process.executable, await fs.realpath(process.execPath));
      assert.ok(agent.process.commandLine?.includes(t.url));
      assert.equal(typeof agent.process.startTime, "number");
      assert.equal(agent.name, "Child");
    } finally {
      child.kill();
    }
  });

  it("closes agent connections with 1001 going-away on stop and removes its files", async () => {
    const other = await startTestLink();
    const agent = await connectAgent(other.url);
    await agent.hello(1);
    await other.link.stop();
    assert.equal(await agent.closed, CloseCode.goingAway);
    await assert.rejects(fs.stat(other.paths.discoveryFile), { code: "ENOENT" });
    await assert.rejects(fs.stat(other.paths.controlFile), { code: "ENOENT" });
    await assert.rejects(fs.stat(other.paths.lockFile), { code: "ENOENT" });
    await other.stop();
  });
});
