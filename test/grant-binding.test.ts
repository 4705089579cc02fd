// A grant means what the prompt showed (issue 13): every failure the issue lists, tried the way it
// was found — real agent processes (node scripts, a copy of the node binary as "another program",
// `setsid` for a terminal session of their own), a real Link with its embedded authority, and the
// person's decisions through the compiled CLI.
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import fs from "node:fs/promises";
import { createRequire } from "node:module";
import path from "node:path";
import readline from "node:readline";
import { after, describe, it } from "node:test";
import { z } from "zod";
import { GrantViewSchema, RequestViewSchema, type RequestView } from "../src/shared/authority.js";
import { LinkStatusSchema } from "../src/shared/control.js";
import { BIN, cli, cliJson, cliJsonAsync, newEnv, stopAll, type CliEnv } from "./cli-helpers.js";
import { tempDir, waitFor } from "./helpers.js";

after(stopAll);

const VALUE = "sk-binding-test-0123456789";
const WS_MODULE = createRequire(import.meta.url).resolve("ws");

/** An agent program: hello as `clientId`, resolve `variable` (waiting), print every frame as a JSON line. */
function agentSource(): string {
  return `
import WebSocket from ${JSON.stringify(WS_MODULE)};
const [url, clientId, variable] = process.argv.slice(2);
const ws = new WebSocket(url, "piper-link.v1");
ws.on("message", (data) => process.stdout.write(data.toString() + "\\n"));
ws.on("open", () => {
  ws.send(JSON.stringify({ type: "hello", id: 1, protocol: 1, agent: { clientId, name: "Claude Code" } }));
  ws.send(JSON.stringify({ type: "resolve", id: 2, variable, reason: "needs it for the build", wait: true, timeoutMs: 120000 }));
});
ws.on("close", () => process.exit(0));
`;
}

interface Agent {
  child: ChildProcess;
  frames: Array<Record<string, unknown>>;
  exited: Promise<void>;
}

function startAgent(command: string, args: string[], cwd: string): Agent {
  // PWD as a shell sets it: a relative script counts only when its start folder is confirmed.
  const child = spawn(command, args, { cwd, env: { ...process.env, PWD: cwd }, stdio: ["ignore", "pipe", "inherit"] });
  const frames: Array<Record<string, unknown>> = [];
  readline
    .createInterface({ input: child.stdout })
    .on("line", (line) => frames.push(z.record(z.string(), z.unknown()).parse(JSON.parse(line))));
  return { child, frames, exited: new Promise((resolve) => child.once("exit", () => resolve())) };
}

async function signedInLink(): Promise<{ e: CliEnv; url: string; dir: string }> {
  const e = await newEnv();
  const status = cliJson(e, ["start", "--port", "0"], LinkStatusSchema);
  cliJson(e, ["dev", "sign-in"], LinkStatusSchema);
  assert.equal(cli(e, ["secrets", "set", "X"], VALUE).code, 0);
  const dir = await tempDir("piper-binding-");
  await fs.writeFile(path.join(dir, "agent-a.mjs"), agentSource());
  await fs.writeFile(path.join(dir, "agent-b.mjs"), agentSource());
  return { e, url: status.url, dir };
}

async function requests(e: CliEnv, all = false): Promise<RequestView[]> {
  return cliJsonAsync(e, all ? ["requests", "--all"] : ["requests"], z.array(RequestViewSchema));
}

async function pendingFrom(e: CliEnv, pid: number): Promise<RequestView> {
  let found: RequestView | undefined;
  await waitFor(async () => {
    found = (await requests(e)).find((r) => r.process?.pid === pid);
    return found !== undefined;
  }, `a pending request from pid ${pid}`);
  assert.ok(found);
  return found;
}

function secretFrames(agent: Agent): Array<Record<string, unknown>> {
  return agent.frames.filter((f) => f["type"] === "secret");
}

describe("a grant goes only to the program the person saw (issue 13)", () => {
  it("another program claiming the same client ID gets its own request; the dead requester's request ends and cannot be approved", async () => {
    const { e, url, dir } = await signedInLink();
    // The first program: node running agent-a.mjs, saying it is claude-code.
    const first = startAgent(process.execPath, ["agent-a.mjs", url, "claude-code", "X"], dir);
    const r1 = await pendingFrom(e, first.child.pid ?? -1);
    assert.equal(r1.agentClientId, "claude-code");
    assert.equal(r1.process?.script, path.join(dir, "agent-a.mjs"));
    first.child.kill("SIGKILL");
    await first.exited;

    // Another program (a different executable) says the same client ID and asks for the same variable.
    const otherNode = path.join(dir, "other-node");
    await fs.copyFile(process.execPath, otherNode);
    await fs.chmod(otherNode, 0o755);
    const second = startAgent(otherNode, ["agent-b.mjs", url, "claude-code", "X"], dir);
    const r2 = await pendingFrom(e, second.child.pid ?? -1);
    assert.notEqual(r2.id, r1.id, "the newcomer does not join the first program's request");
    assert.equal(r2.process?.executable, otherNode);

    // Approving the dead program's request fails clearly, with a non-zero exit, and creates no grant.
    const approve = cli(e, ["approve", r1.id, "--until-revoked", "--json"]);
    assert.notEqual(approve.code, 0, approve.stdout);
    assert.equal(z.object({ error: z.string() }).parse(JSON.parse(approve.stdout)).error, "requester_gone");
    assert.deepEqual(cliJson(e, ["grants"], z.array(GrantViewSchema)), []);
    assert.deepEqual(secretFrames(second), [], "the newcomer got nothing from the first request");
    const history = await requests(e, true);
    assert.equal(history.find((r) => r.id === r1.id)?.status, "requester_gone");

    // The newcomer's own request, approved, reaches it.
    cliJson(e, ["approve", r2.id, "--once"], GrantViewSchema);
    await waitFor(() => secretFrames(second).length === 1, "the second program's secret");
    assert.equal(secretFrames(second)[0]?.["value"], VALUE);
    second.child.kill();
  });

  it("a request whose process exited ends as requester_gone by itself (shown in requests --all)", async () => {
    const { e, url, dir } = await signedInLink();
    const agent = startAgent(process.execPath, ["agent-a.mjs", url, "claude-code", "X"], dir);
    const r = await pendingFrom(e, agent.child.pid ?? -1);
    agent.child.kill("SIGKILL");
    await agent.exited;
    await waitFor(
      async () => (await requests(e, true)).find((x) => x.id === r.id)?.status === "requester_gone",
      "the request to end as requester_gone",
    );
    assert.deepEqual(await requests(e), []);
    const human = cli(e, ["approve", r.id]);
    assert.notEqual(human.code, 0);
    assert.match(human.stderr, /exited|nobody/i);
  });

  it("a program grant serves the same program again, not a program with another script or folder", async () => {
    const { e, url, dir } = await signedInLink();
    const a = startAgent(process.execPath, ["agent-a.mjs", url, "claude-code", "X"], dir);
    const r = await pendingFrom(e, a.child.pid ?? -1);
    const grant = cliJson(e, ["approve", r.id, "--until-revoked"], GrantViewSchema);
    assert.equal(grant.binding?.kind, "program");
    const { contentHash, ...paths } = grant.binding.program ?? {};
    assert.deepEqual(paths, {
      executable: await fs.realpath(process.execPath),
      script: path.join(dir, "agent-a.mjs"),
      cwd: dir,
    });
    assert.match(contentHash ?? "", /^[0-9a-f]{64}$/, "bound to the content too");
    await waitFor(() => secretFrames(a).length === 1, "the secret");
    a.child.kill();

    // The same program, a new process: served at once.
    const again = startAgent(process.execPath, ["agent-a.mjs", url, "claude-code", "X"], dir);
    await waitFor(() => secretFrames(again).length === 1, "the same program served without a prompt");
    again.child.kill();

    // The same paths with other content: asked again, and the card says it changed.
    await fs.appendFile(path.join(dir, "agent-a.mjs"), "// replaced after the approval\n");
    const replaced = startAgent(process.execPath, ["agent-a.mjs", url, "claude-code", "X"], dir);
    const changed = await pendingFrom(e, replaced.child.pid ?? -1);
    assert.equal(changed.process?.changedSinceApproval, true);
    assert.match(cli(e, ["requests"]).stdout, /changed since you approved it/);
    assert.deepEqual(secretFrames(replaced), []);
    replaced.child.kill();

    // Same executable, another script: its own prompt.
    const otherScript = startAgent(process.execPath, ["agent-b.mjs", url, "claude-code", "X"], dir);
    await pendingFrom(e, otherScript.child.pid ?? -1);
    otherScript.child.kill();

    // Same executable and script, another folder: its own prompt.
    const elsewhere = await tempDir("piper-binding-elsewhere-");
    await fs.copyFile(path.join(dir, "agent-a.mjs"), path.join(elsewhere, "agent-a.mjs"));
    const otherCwd = startAgent(process.execPath, ["agent-a.mjs", url, "claude-code", "X"], elsewhere);
    await pendingFrom(e, otherCwd.child.pid ?? -1);
    assert.deepEqual(secretFrames(otherCwd), []);
    otherCwd.child.kill();
  });

  it("a session grant ends when the terminal session's leader exits", async () => {
    const { e, url, dir } = await signedInLink();
    // setsid: the agent leads a session of its own, as a program started in a new terminal would.
    const a = startAgent("setsid", [process.execPath, "agent-a.mjs", url, "claude-code", "X"], dir);
    await waitFor(async () => (await requests(e)).length === 1, "the request");
    const [r] = await requests(e);
    assert.ok(r?.process?.sessionId);
    const grant = cliJson(e, ["approve", r.id, "--until-revoked", "--bind", "session"], GrantViewSchema);
    assert.equal(grant.binding?.kind, "session");
    assert.equal(grant.binding.sessionId, r.process.sessionId);
    await waitFor(() => secretFrames(a).length === 1, "the secret");
    a.child.kill("SIGKILL");
    await a.exited;
    await waitFor(
      async () =>
        (await cliJsonAsync(e, ["grants", "--all"], z.array(GrantViewSchema))).find((g) => g.id === grant.id)
          ?.endReason === "session_ended",
      "the grant to end with its session",
    );
  });

  it("piper-link run binds the grant to the wrapped command, not to every command run through it", async () => {
    const { e, dir } = await signedInLink();
    const runIn = (cwd: string, command: string[], timeoutMs: number): ChildProcess =>
      spawn(process.execPath, [BIN, "run", "--secret", "X", "--timeout", String(timeoutMs), "--", ...command], {
        cwd,
        env: e.env,
        stdio: ["ignore", "pipe", "pipe"],
      });
    const output = (child: ChildProcess): Promise<{ code: number | null; stdout: string }> =>
      new Promise((resolve) => {
        let stdout = "";
        child.stdout?.on("data", (c: Buffer) => (stdout += c.toString()));
        child.once("exit", (code) => resolve({ code, stdout }));
      });

    const first = runIn(dir, ["printenv", "X"], 60_000);
    const firstDone = output(first);
    let r: RequestView | undefined;
    await waitFor(async () => {
      r = (await requests(e))[0];
      return r !== undefined;
    }, "run's request");
    assert.ok(r?.process);
    assert.equal(r.process.executable, await fs.realpath("/usr/bin/printenv"), "the prompt names the wrapped command");
    assert.equal(r.process.cwd, dir);
    const grant = cliJson(e, ["approve", r.id, "--until-revoked"], GrantViewSchema);
    assert.equal(grant.binding?.program?.executable, await fs.realpath("/usr/bin/printenv"));
    assert.deepEqual(await firstDone, { code: 0, stdout: `${VALUE}\n` });

    // The same command from the same folder: no prompt.
    assert.deepEqual(await output(runIn(dir, ["printenv", "X"], 60_000)), { code: 0, stdout: `${VALUE}\n` });

    // Code loaded into `piper-link run` (NODE_OPTIONS) cannot borrow the command's identity: the Link
    // does not honour its claim, so the request names `piper-link run` itself and nothing is served.
    const injected = await tempDir("piper-run-injected-");
    await fs.writeFile(path.join(injected, "steal.cjs"), "// loaded into piper-link run by another program\n");
    const stolen = spawn(process.execPath, [BIN, "run", "--secret", "X", "--timeout", "3000", "--", "printenv", "X"], {
      cwd: dir,
      env: { ...e.env, NODE_OPTIONS: `--require=${path.join(injected, "steal.cjs")}` },
      stdio: ["ignore", "pipe", "pipe"],
    });
    const stolenDone = output(stolen);
    await waitFor(
      async () => (await requests(e)).some((x) => x.process?.script?.endsWith("piper-link.js") === true),
      "the injected run's own request",
    );
    const stolenResult = await stolenDone;
    assert.notEqual(stolenResult.code, 0);
    assert.doesNotMatch(stolenResult.stdout, new RegExp(VALUE));

    // Another command from another folder: not covered; it asks, and gets nothing without a yes.
    const elsewhere = await tempDir("piper-run-elsewhere-");
    const other = output(runIn(elsewhere, ["sh", "-c", 'echo "got:$X"'], 3000));
    await waitFor(
      async () => (await requests(e)).some((x) => x.process?.cwd === elsewhere),
      "the other command's own request",
    );
    const done = await other;
    assert.notEqual(done.code, 0);
    assert.doesNotMatch(done.stdout, new RegExp(VALUE));

    // Inline code is its own program: approving `sh -c 'echo first…'` in a folder does not cover other
    // code run with `sh -c` there (the prompt and the grant show the code).
    const inlineDir = await tempDir("piper-run-inline-");
    const approvedCode = runIn(inlineDir, ["sh", "-c", 'echo "first:$X"'], 60_000);
    const approvedDone = output(approvedCode);
    let inline: RequestView | undefined;
    await waitFor(async () => {
      inline = (await requests(e)).find((x) => x.process?.cwd === inlineDir);
      return inline !== undefined;
    }, "the inline code's request");
    assert.ok(inline?.process);
    assert.equal(inline.process.script, "[inline]");
    assert.deepEqual(inline.process.commandLine, ["sh", "-c", 'echo "first:$X"']);
    const inlineGrant = cliJson(e, ["approve", inline.id, "--until-revoked"], GrantViewSchema);
    assert.deepEqual(inlineGrant.binding?.program?.commandLine, ["sh", "-c", 'echo "first:$X"']);
    assert.match(cli(e, ["grants"]).stdout, /\[inline\] -c echo "first:\$X" in /);
    assert.deepEqual(await approvedDone, { code: 0, stdout: `first:${VALUE}\n` });
    assert.deepEqual(
      await output(runIn(inlineDir, ["sh", "-c", 'echo "first:$X"'], 60_000)),
      { code: 0, stdout: `first:${VALUE}\n` },
      "the same code again: no prompt",
    );
    const exfil = output(runIn(inlineDir, ["sh", "-c", 'echo "EXFIL:$X"'], 3000));
    await waitFor(
      async () =>
        (await requests(e)).some(
          (x) => x.process?.cwd === inlineDir && x.process.commandLine?.includes('echo "EXFIL:$X"') === true,
        ),
      "the other code's own request",
    );
    const exfilDone = await exfil;
    assert.notEqual(exfilDone.code, 0);
    assert.doesNotMatch(exfilDone.stdout, new RegExp(VALUE));
  });

  it("sign-out revokes this machine's instance: its grants end as signed out", async () => {
    const { e, url, dir } = await signedInLink();
    const a = startAgent(process.execPath, ["agent-a.mjs", url, "claude-code", "X"], dir);
    const r = await pendingFrom(e, a.child.pid ?? -1);
    const grant = cliJson(e, ["approve", r.id, "--until-revoked"], GrantViewSchema);
    await waitFor(() => secretFrames(a).length === 1, "the secret");
    a.child.kill();
    cliJson(e, ["logout"], z.object({ loggedOut: z.literal(true) }));
    // Signing out locked the Link: the person unlocks at a terminal, then signs in again.
    assert.equal(cli(e, ["unlock"]).code, 0);
    cliJson(e, ["dev", "sign-in"], LinkStatusSchema);
    const ended = cliJson(e, ["grants", "--all"], z.array(GrantViewSchema)).find((g) => g.id === grant.id);
    assert.ok(ended?.endedAt, "the old instance's grant ended");
    assert.equal(ended.endReason, "signed out");
    // The same program on the new instance is asked again.
    const b = startAgent(process.execPath, ["agent-a.mjs", url, "claude-code", "X"], dir);
    await pendingFrom(e, b.child.pid ?? -1);
    assert.deepEqual(secretFrames(b), []);
    b.child.kill();
  });
});
