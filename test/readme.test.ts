// The README's "Try it" block, run as written (issue 15 item 4): each line goes to bash in a
// temporary HOME against the compiled CLI. What a person types and a test cannot, is done the way
// a person would, and each substitution is named here:
// - `npx piper-link` is this clone's bin: checked once literally (`npx piper-link --version` in the
//   clone, offline), then run as `node bin/piper-link.js` (the same file npx runs) to keep the test fast;
// - `start` gets `--port 0` (tests run side by side; 31477 may be taken), and `31477` in addresses
//   becomes the port it got;
// - `login` runs as written, in a session that looks like SSH (no display), so it offers the device
//   code; the person's browser is a cookie-keeping HTTP client on the Link's own origin;
// - the comment line "an agent asks for OPENAI_API_KEY" is a real agent on the WebSocket;
// - `req_…` is the ID that `requests` printed.
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { after, describe, it } from "node:test";
import { LinkStatusSchema } from "../src/shared/control.js";
import { Browser, csrfOf } from "./browser-helpers.js";
import { BIN, cliJson, newEnv, PERSON_ANSWERS, PTY_RUN, PYTHON, stopAll, type CliEnv } from "./cli-helpers.js";
import { connectAgent, pendingRequestId, waitFor, type TestAgent } from "./helpers.js";

after(stopAll);

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

/** The lines of the first ```sh block after the line that starts with "Try it". */
function tryItBlock(readme: string): string[] {
  const start = readme.search(/^Try it/m);
  assert.ok(start >= 0, 'the README has a "Try it" section');
  const fence = /```sh\n([\s\S]*?)```/.exec(readme.slice(start));
  assert.ok(fence?.[1], 'the "Try it" section has a sh block');
  return fence[1].split("\n").filter((line) => line.trim() !== "");
}

/** A line without its trailing `# comment` (the block has no `#` inside commands). */
function command(line: string): string {
  return line.replace(/\s+#.*$/, "").trim();
}

/**
 * Runs one line of the block as a person at a terminal would: bash with a pty as its controlling
 * terminal (test/pty_run.py), where the person types the passphrase and PIN when asked.
 */
function bash(
  e: CliEnv,
  line: string,
  env: NodeJS.ProcessEnv = e.env,
): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(
    PYTHON,
    [PTY_RUN, JSON.stringify({ answers: PERSON_ANSWERS, timeout: 60 }), "--", "bash", "-c", line],
    { cwd: ROOT, env, encoding: "utf8", timeout: 70_000 },
  );
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** Runs the README's login line in an SSH-like session and completes the device sign-in as a person would. */
async function signInAsWritten(e: CliEnv, line: string, port: number): Promise<void> {
  const env: NodeJS.ProcessEnv = { ...e.env, SSH_CONNECTION: "192.0.2.10 50000 192.0.2.20 22" };
  delete env["DISPLAY"];
  delete env["WAYLAND_DISPLAY"];
  const child = spawn("bash", ["-c", line], { cwd: ROOT, env, stdio: ["ignore", "pipe", "pipe"] });
  let err = "";
  child.stderr.on("data", (c: Buffer) => (err += c.toString()));
  const exited = new Promise<number | null>((resolve) => child.on("exit", resolve));
  await waitFor(() => /enter the code [A-Z]{4}-[A-Z]{4}/.test(err), "the device code");
  const code = /enter the code ([A-Z]{4}-[A-Z]{4})/.exec(err)?.[1] ?? "";
  const person = new Browser(`http://127.0.0.1:${port}`);
  const signup = await person.follow(`/device?user_code=${code}`);
  const next = /name="next" value="([^"]+)"/.exec(signup.text)?.[1]?.replace(/&#38;/g, "&") ?? "";
  const created = await person.post("/signup", {
    csrf: csrfOf(signup.text),
    next,
    name: "Reader",
    email: "reader@example.com",
    password: "correct horse battery",
  });
  const devicePage = await person.follow(created.location ?? "");
  await person.post("/device", { csrf: csrfOf(devicePage.text), user_code: code });
  assert.equal(await exited, 0, err);
}

describe("the README's Try it block", () => {
  it("`npx piper-link` finds this clone's own CLI", () => {
    const r = spawnSync("npx", ["piper-link", "--version"], {
      cwd: ROOT,
      encoding: "utf8",
      timeout: 120_000,
      env: { ...process.env, npm_config_offline: "true", npm_config_update_notifier: "false" },
    });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout.trim(), /^\d+\.\d+\.\d+/);
  });

  it("runs as written: start, login, the context endpoint, a secret, an agent's pending request approved, grants, activity, stop", async () => {
    const e = await newEnv();
    // A person at a terminal: no passphrase file; `start` asks for a new passphrase and PIN, `approve` for the PIN.
    delete e.env["PIPER_LINK_PASSPHRASE_FILE"];
    const lines = tryItBlock(readFileSync(path.join(ROOT, "README.md"), "utf8"));
    const cliCommand = `'${process.execPath}' '${BIN}'`;
    let port = 0;
    let agent: TestAgent | null = null;
    let requestId: string | null = null;
    let requestsOutput = "";
    const seen: string[] = [];
    try {
      for (const line of lines) {
        if (line.trim().startsWith("#")) {
          if (/an agent asks for OPENAI_API_KEY/.test(line)) {
            const status = cliJson(e, ["status"], LinkStatusSchema);
            agent = await connectAgent(status.url);
            await agent.hello(1, "agent_readme");
            agent.send({ type: "resolve", id: 2, variable: "OPENAI_API_KEY", wait: true, timeoutMs: 60_000 });
            requestId = pendingRequestId(await agent.next((m) => "id" in m && m.id === 2));
            seen.push("agent");
          }
          continue;
        }
        let cmd = command(line).replaceAll("npx piper-link", cliCommand);
        assert.ok(!cmd.includes("piper-link ") || cmd.includes(BIN), `every command uses npx piper-link: ${line}`);
        if (/ start$/.test(cmd)) cmd += " --port 0";
        if (port !== 0) cmd = cmd.replaceAll(":31477", `:${port}`);
        if (requestId !== null)
          cmd = cmd.replaceAll("req_…", /req_[A-Za-z0-9_-]+/.exec(requestsOutput)?.[0] ?? "req_missing");
        if (/ login$/.test(cmd)) {
          await signInAsWritten(e, cmd, port);
          seen.push("login");
          continue;
        }
        const r = bash(e, cmd);
        assert.equal(r.code, 0, `${line}\n${r.stdout}${r.stderr}`);
        if (/ start --port 0$/.test(cmd)) port = cliJson(e, ["status"], LinkStatusSchema).port;
        if (cmd.startsWith("curl")) assert.match(r.stdout, /^\{"instanceId":"inst_[^"]+"\}$/);
        if (/ requests$/.test(cmd)) {
          requestsOutput = r.stdout;
          assert.ok(
            requestId !== null && r.stdout.includes(requestId),
            `requests lists the agent's request: ${r.stdout}`,
          );
        }
        if (/ approve /.test(cmd)) {
          assert.ok(agent, "an agent asked before the approval");
          const secret = await agent.next((m) => "id" in m && m.id === 2);
          assert.deepEqual(
            { type: secret.type, value: "value" in secret ? secret.value : null },
            { type: "secret", value: "sk-…" },
          );
        }
        seen.push(cmd.replaceAll(cliCommand, "piper-link").split(" ").slice(0, 2).join(" "));
      }
      assert.deepEqual(seen, [
        "piper-link start",
        "login",
        "curl -s",
        "echo -n",
        "agent",
        "piper-link requests",
        "piper-link approve",
        "piper-link grants;",
        "piper-link stop",
      ]);
    } finally {
      agent?.close();
    }
  });
});
