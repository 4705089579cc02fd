// pyper-sdk agents reach their secrets through the Link's own loopback HTTPS endpoints (issue 13
// item 9, issue 15 item 6): a real Link started by the compiled CLI, a Python client (stdlib urllib,
// an ssl context that trusts only the Link's certificate) that makes the three calls exactly as
// pyper-sdk 0.7 does, the person's decisions through the CLI, and a second local user (`nobody`).
import assert from "node:assert/strict";
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from "node:child_process";
import fs from "node:fs/promises";
import path from "node:path";
import readline from "node:readline";
import { after, before, describe, it } from "node:test";
import pino from "pino";
import { z } from "zod";
import { GrantViewSchema, RequestViewSchema, type RequestView } from "../src/shared/authority.js";
import { LinkStatusSchema } from "../src/shared/control.js";
import { createPyperHandlers, PyperFailure } from "../src/main/core/pyper/pyper-handlers.js";
import { PYPER_PATHS, PyperSettingsSchema, type PyperSettings } from "../src/shared/pyper.js";
import { cli, cliJson, cliJsonAsync, newEnv, stopAll, type CliEnv } from "./cli-helpers.js";
import { tempDir, waitFor } from "./helpers.js";

after(stopAll);

const VALUE = "ntn-pyper-link-0123456789";

/**
 * A pyper-sdk style agent: discovers the instance once (as pyper-sdk caches it), then makes one
 * attempt (resolve mapping -> scoped credentials -> raw exchange, no token on the exchange) at
 * start and one more for every line on stdin, printing each outcome as a JSON line. argv: the
 * settings JSON, the client ID, the variable, an instance ID to use instead of the discovered one
 * (or ""), and "verify" or "no-verify" (a second user cannot read the certificate file).
 */
const AGENT = `
import json, ssl, sys, urllib.request, urllib.error
settings, client, variable, override, mode = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
if mode == "verify":
    ctx = ssl.create_default_context(cafile=settings["certFile"])
else:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
def discover():
    try:
        with urllib.request.urlopen(settings["linkServiceUrl"], timeout=5) as r:
            return json.load(r)["instanceId"]
    except Exception:
        return "inst_unknown"
instance = override or discover()
def post(url, payload):
    req = urllib.request.Request(url, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=20) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        return e.code, json.load(e)
def attempt():
    ident = {"agentClientId": client, "instanceId": instance}
    st, body = post(settings["resolveMappingUrl"], {**ident, "variableName": variable})
    if st != 200:
        return {"step": "resolve", "status": st, "error": body.get("error"), "description": body.get("error_description")}
    st, body = post(settings["getScopedUrl"], {**ident, "credentialIds": [body["credentialId"]]})
    if st != 200:
        return {"step": "scoped", "status": st, "error": body.get("error")}
    if not isinstance(body.get("access_token"), str) or not body.get("expires_in"):
        return {"step": "scoped", "status": st, "error": "bad answer"}
    st, body = post(settings["exchangeSecretUrl"], {**ident, "piperCredentialId": body["granted_credential_ids"][0]})
    return {"step": "exchange", "status": st, "value": body.get("secret_value"), "error": body.get("error")}
print(json.dumps(attempt()), flush=True)
for _ in sys.stdin:
    print(json.dumps(attempt()), flush=True)
`;

const OutcomeSchema = z.object({
  step: z.enum(["resolve", "scoped", "exchange"]),
  status: z.number(),
  error: z.string().nullable().optional(),
  description: z.string().nullable().optional(),
  value: z.string().nullable().optional(),
});
type Outcome = z.infer<typeof OutcomeSchema>;

/** A running agent process: `next()` is its next outcome line, `again()` asks for another attempt. */
interface PyAgent {
  child: ChildProcessWithoutNullStreams;
  next(): Promise<Outcome>;
  again(): Promise<Outcome>;
  end(): Promise<void>;
}

function startAgent(command: string[], cwd: string): PyAgent {
  const [exe = "python3", ...args] = command;
  const child = spawn(exe, args, { cwd, stdio: ["pipe", "pipe", "pipe"] });
  let stderr = "";
  child.stderr.setEncoding("utf8").on("data", (c: string) => (stderr += c));
  const lines = readline.createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  const next = async (): Promise<Outcome> => {
    const line = await lines.next();
    if (line.done === true) throw new Error(`the agent ended without an answer: ${stderr}`);
    return OutcomeSchema.parse(JSON.parse(line.value));
  };
  return {
    child,
    next,
    again: () => {
      child.stdin.write("again\n");
      return next();
    },
    end: async () => {
      if (child.exitCode !== null) return;
      const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
      child.stdin.end();
      await exited;
    },
  };
}

const python = spawnSync("python3", ["--version"]);
const isRoot = typeof process.getuid === "function" && process.getuid() === 0;

describe(
  "pyper-sdk endpoints on the Link (loopback HTTPS)",
  {
    skip:
      process.platform !== "linux" ? "Linux only (/proc identity)" : python.error ? "python3 is not installed" : false,
  },
  () => {
    let e: CliEnv;
    let settings: PyperSettings;
    let dir: string;
    let script: string;
    const agents: PyAgent[] = [];
    const agent = (clientId: string, variable: string, override = ""): PyAgent => {
      const a = startAgent(["python3", script, JSON.stringify(settings), clientId, variable, override, "verify"], dir);
      agents.push(a);
      return a;
    };
    let canaries = 0;
    /**
     * Returns once the Link's liveness sweep has run since the call: a canary agent, the leader of a
     * terminal session of its own, asks, is killed, and its request ends as requester_gone, which
     * only a sweep does. Every pending request that existed before the call was in that sweep.
     */
    const afterASweep = async (): Promise<void> => {
      const clientId = `py_canary_${(canaries += 1)}`;
      // detached: the child calls setsid(), so python leads its own session, which ends when it does.
      const child = spawn("python3", [script, JSON.stringify(settings), clientId, "canary_token", "", "verify"], {
        cwd: dir,
        detached: true,
        stdio: ["pipe", "pipe", "pipe"],
      });
      const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
      try {
        const outcome = await readline.createInterface({ input: child.stdout })[Symbol.asyncIterator]().next();
        assert.equal(outcome.done, false, "the canary printed its outcome");
        const [canary] = (await cliJsonAsync(e, ["requests"], z.array(RequestViewSchema))).filter(
          (r) => r.agentClientId === clientId,
        );
        assert.ok(canary?.process, "the canary's request names it");
        assert.equal(canary.process.sessionLeader?.pid, child.pid, "the canary leads its own terminal session");
        child.kill("SIGKILL");
        await exited;
        await waitFor(
          async () =>
            (await cliJsonAsync(e, ["requests", "--all"], z.array(RequestViewSchema))).some(
              (r) => r.id === canary.id && r.status === "requester_gone",
            ),
          "a liveness sweep to end the canary's request",
        );
      } finally {
        child.kill("SIGKILL");
      }
    };
    /** Returns once process `pid` has exited (its /proc entry is gone). */
    const ended = (pid: number, what: string): Promise<void> =>
      waitFor(
        async () =>
          !(await fs.stat(`/proc/${pid}`).then(
            () => true,
            () => false,
          )),
        what,
      );

    before(async () => {
      e = await newEnv();
      // A short sweep period: the tests wait for what a sweep did (afterASweep), not for its period.
      const status = cliJson(e, ["start", "--port", "0", "--liveness-sweep-ms", "100"], LinkStatusSchema);
      assert.ok(status.pyper, "status names the pyper endpoints");
      assert.notEqual(status.pyper.port, status.port);
      cliJson(e, ["dev", "sign-in"], LinkStatusSchema);
      assert.equal(cli(e, ["secrets", "set", "NOTION_TOKEN"], VALUE).code, 0);
      settings = cliJson(e, ["pyper"], PyperSettingsSchema);
      dir = await tempDir("piper-pyper-agent-");
      script = path.join(dir, "pyper_agent.py");
      await fs.writeFile(script, AGENT);
    });
    after(() => {
      for (const a of agents) a.child.kill();
    });

    it("`piper-link pyper` prints PiperClient's settings, a session that trusts the Link's certificate for its pyper origin only, and the certificate path", async () => {
      const status = cliJson(e, ["status"], LinkStatusSchema);
      const port = status.pyper?.port ?? 0;
      assert.deepEqual(settings, {
        resolveMappingUrl: `https://127.0.0.1:${port}${PYPER_PATHS.resolveMapping}`,
        getScopedUrl: `https://127.0.0.1:${port}${PYPER_PATHS.scopedCredentials}`,
        exchangeSecretUrl: `https://127.0.0.1:${port}${PYPER_PATHS.exchangeSecret}`,
        linkServiceUrl: `http://localhost:${status.port}/piper-link-context`,
        grantPageUrl: `http://127.0.0.1:${status.port}/grant`,
        pyperOrigin: `https://127.0.0.1:${port}/`,
        certFile: status.pyper?.certFile,
      });
      const certPath = cli(e, ["pyper", "--cert-path"]);
      assert.equal(certPath.stdout.trim(), settings.certFile);
      assert.match(await fs.readFile(certPath.stdout.trim(), "utf8"), /BEGIN CERTIFICATE/);

      const snippet = cli(e, ["pyper"]);
      assert.equal(snippet.code, 0, snippet.stderr);
      for (const url of [
        settings.resolveMappingUrl,
        settings.getScopedUrl,
        settings.exchangeSecretUrl,
        settings.grantPageUrl,
      ])
        assert.ok(snippet.stdout.includes(JSON.stringify(url)), url);
      assert.match(snippet.stdout, /requests_session=session/);
      assert.doesNotMatch(snippet.stdout, /REQUESTS_CA_BUNDLE/);

      // The snippet's session, run as printed (up to PiperClient, which is not installed here): the
      // Link's origin verifies against its certificate; the same Link under another origin does not,
      // so the certificate is trusted for the pyper URLs only and requests' CA store is untouched.
      const hasRequests = spawnSync("python3", ["-c", "import requests"]).status === 0;
      if (hasRequests) {
        const sessionPart = snippet.stdout
          .slice(0, snippet.stdout.indexOf("piper = PiperClient("))
          .replace("from piper_sdk.client import PiperClient", "");
        const probe = `${sessionPart}
import json
def status_of(url):
    try:
        return session.post(url, json={}, timeout=10).status_code
    except requests.exceptions.SSLError:
        return "ssl_error"
print(json.dumps([status_of(${JSON.stringify(settings.resolveMappingUrl)}), status_of(${JSON.stringify(settings.resolveMappingUrl.replace("127.0.0.1", "localhost"))})]))
`;
        const r = spawnSync("python3", ["-c", probe], { encoding: "utf8", timeout: 30_000 });
        assert.deepEqual(JSON.parse(r.stdout.trim()), [400, "ssl_error"], r.stderr);
      }
    });

    it("answers mapping_not_found first, with a pending request that names the python program; after approval the scoped token and the exchange give the value", async () => {
      const a = agent("py_agent", "notion_token");
      const first = await a.next();
      assert.equal(first.step, "resolve");
      assert.equal(first.status, 404);
      assert.equal(first.error, "mapping_not_found");
      const pending = await cliJsonAsync(e, ["requests"], z.array(RequestViewSchema));
      const request = pending.find((r) => r.agentClientId === "py_agent");
      assert.ok(request, JSON.stringify(pending));
      assert.match(first.description ?? "", new RegExp(request.id));
      // The program the OS reports, not the agent's words: python3.x running this script, in its directory.
      const proc = request.process;
      assert.ok(proc, "the request names the calling process");
      assert.equal(proc.pid, a.child.pid);
      const realPython = spawnSync("python3", ["-c", "import os, sys; print(os.path.realpath(sys.executable))"], {
        encoding: "utf8",
      }).stdout.trim();
      assert.match(realPython, /\/python3\.\d+$/);
      assert.equal(proc.executable, realPython);
      assert.equal(proc.script, script);
      assert.equal(proc.cwd, await fs.realpath(dir));
      assert.equal(request.variable, "notion_token");

      await cliJsonAsync(e, ["approve", request.id, "--until-revoked"], GrantViewSchema);
      assert.deepEqual(await a.again(), { step: "exchange", status: 200, value: VALUE, error: null });
      // Every exchange is resolved again at the authority: still served while the grant lives.
      assert.deepEqual(await a.again(), { step: "exchange", status: 200, value: VALUE, error: null });
    });

    it("refuses an instance ID that is not this Link's current one with 401 invalid_instance", async () => {
      const a = agent("py_agent", "notion_token", "inst_of_another_machine");
      const r = await a.next();
      assert.deepEqual([r.step, r.status, r.error], ["resolve", 401, "invalid_instance"]);
      await a.end();
    });

    it("binds scoped tokens and credential IDs to the process that resolved them", async () => {
      // A credential ID learnt elsewhere (here: the grant's own ID) is no use to another process.
      const grant = (await cliJsonAsync(e, ["grants"], z.array(GrantViewSchema))).find(
        (g) => g.agentClientId === "py_agent",
      );
      assert.ok(grant);
      const probe = `
import json, ssl, sys, urllib.request, urllib.error
s = json.loads(sys.argv[1])
ctx = ssl.create_default_context(cafile=s["certFile"])
with urllib.request.urlopen(s["linkServiceUrl"], timeout=5) as r:
    instance = json.load(r)["instanceId"]
out = []
for url, body in ((s["getScopedUrl"], {"credentialIds": [sys.argv[2]]}), (s["exchangeSecretUrl"], {"piperCredentialId": sys.argv[2]})):
    req = urllib.request.Request(url, data=json.dumps({"agentClientId": "py_agent", "instanceId": instance, **body}).encode(), headers={"Content-Type": "application/json"}, method="POST")
    try:
        urllib.request.urlopen(req, context=ctx, timeout=10); out.append(200)
    except urllib.error.HTTPError as e:
        out.append([e.code, json.load(e)["error"]])
print(json.dumps(out))
`;
      const r = spawnSync("python3", ["-c", probe, JSON.stringify(settings), grant.id], {
        encoding: "utf8",
        timeout: 30_000,
      });
      assert.deepEqual(
        JSON.parse(r.stdout.trim()),
        [
          [403, "permission_denied"],
          [401, "invalid_token"],
        ],
        r.stderr,
      );
    });

    it(
      "refuses a process of another uid with 403 foreign_user",
      { skip: isRoot ? false : "needs root to run the agent as a second user (runuser -u nobody)" },
      async () => {
        // The script goes on the command line: `nobody` cannot read this user's temp files or certificate.
        const a = startAgent(
          [
            "runuser",
            "-u",
            "nobody",
            "--",
            "python3",
            "-c",
            AGENT,
            JSON.stringify(settings),
            "py_agent",
            "notion_token",
            "inst_guessed",
            "no-verify",
          ],
          "/",
        );
        agents.push(a);
        const r = await a.next();
        assert.deepEqual([r.step, r.status, r.error], ["resolve", 403, "foreign_user"]);
        assert.doesNotMatch(r.description ?? "", /inst_/);
        await a.end();
      },
    );

    it("serves a once grant exactly once (the resolve's delivery is held for this process's exchange)", async () => {
      const a = agent("py_once", "notion_token");
      assert.equal((await a.next()).error, "mapping_not_found");
      const request = (await cliJsonAsync(e, ["requests"], z.array(RequestViewSchema))).find(
        (r: RequestView) => r.agentClientId === "py_once",
      );
      assert.ok(request);
      await cliJsonAsync(e, ["approve", request.id, "--once"], GrantViewSchema);
      assert.deepEqual(await a.again(), { step: "exchange", status: 200, value: VALUE, error: null });
      const after = await a.again();
      assert.deepEqual([after.step, after.error], ["resolve", "mapping_not_found"]);
      await a.end();
    });

    it("a script that ends after asking, as pyper-sdk scripts do: its request lives while its terminal session does, the next run reuses it, and approved for the program the run after gets the value", async () => {
      // A terminal session of its own: `setsid sh` leads it and runs each command line it is sent, as
      // a person's shell would; each run makes one attempt (stdin is /dev/null) and ends.
      const shell = spawn("setsid", ["sh"], {
        cwd: dir,
        stdio: ["pipe", "pipe", "pipe"],
        env: { ...process.env, SETTINGS: JSON.stringify(settings), SCRIPT: script },
      });
      const lines = readline.createInterface({ input: shell.stdout })[Symbol.asyncIterator]();
      const run = async (variable: string): Promise<Outcome> => {
        shell.stdin.write(`python3 "$SCRIPT" "$SETTINGS" py_short ${variable} "" verify < /dev/null\n`);
        const line = await lines.next();
        assert.equal(line.done, false, "the run printed its outcome");
        return OutcomeSchema.parse(JSON.parse(line.value));
      };
      const pendingOf = async (variable: string): Promise<RequestView[]> =>
        (await cliJsonAsync(e, ["requests"], z.array(RequestViewSchema))).filter(
          (r) => r.agentClientId === "py_short" && r.variable === variable,
        );
      try {
        assert.equal((await run("short_token")).error, "mapping_not_found");
        const [first] = await pendingOf("short_token");
        assert.ok(first?.process, "a pending request names the first run");
        assert.equal(first.requesterWaits, false);
        assert.equal(first.process.sessionId, shell.pid, "the script ran in the shell's session");
        // A liveness sweep after the run ended leaves its request waiting: the terminal session lives.
        await ended(first.process.pid, "the first run to end");
        await afterASweep();
        const stillThere = await pendingOf("short_token");
        assert.deepEqual(
          stillThere.map((r) => r.id),
          [first.id],
          "still pending after the run ended and a sweep ran",
        );
        const listed = cli(e, ["requests"]).stdout;
        assert.match(listed, /does not wait: approve, then run it again/);

        // The next run, before anyone answered, asks the same thing: one card, naming the latest run.
        assert.equal((await run("short_token")).error, "mapping_not_found");
        const [second, ...more] = await pendingOf("short_token");
        assert.equal(more.length, 0, "one request for both runs");
        assert.equal(second?.id, first.id);
        assert.notEqual(second.process?.pid, first.process.pid, "the request names the latest run");

        // "While this process runs" has no process to bind to; the request stays, to be approved otherwise.
        const refused = cli(e, [
          "approve",
          first.id,
          "--bind",
          "process",
          "--until-revoked",
          "--secret",
          "NOTION_TOKEN",
        ]);
        assert.notEqual(refused.code, 0);
        assert.match(refused.stderr + refused.stdout, /Approve it for this program or this terminal session/);
        assert.equal((await pendingOf("short_token")).length, 1);
        const grant = await cliJsonAsync(
          e,
          ["approve", first.id, "--until-revoked", "--secret", "NOTION_TOKEN"],
          GrantViewSchema,
        );
        assert.equal(grant.binding?.kind, "program");
        assert.deepEqual(await run("short_token"), { step: "exchange", status: 200, value: VALUE, error: null });

        // When the terminal session ends, what it asked and nobody answered has nobody to go to.
        assert.equal((await run("short_other")).error, "mapping_not_found");
        const [other] = await pendingOf("short_other");
        assert.ok(other);
        shell.kill("SIGKILL");
        await waitFor(
          async () =>
            (await cliJsonAsync(e, ["requests", "--all"], z.array(RequestViewSchema))).some(
              (r) => r.id === other.id && r.status === "requester_gone",
            ),
          "the request to end with its session",
        );
      } finally {
        shell.kill("SIGKILL");
      }
    });

    it("a script without a live terminal session (as in a container entered without setsid): its request lives until it expires, the next run joins it, and it is approved for the program", async () => {
      const out = path.join(dir, "nosession.out");
      // setsid makes sh a session leader that exits at once; the script starts a second later in that
      // session, whose leader is gone: there is no terminal session to live by.
      const launch = (): void => {
        const r = spawnSync(
          "setsid",
          [
            "sh",
            "-c",
            `(sleep 1; python3 "$SCRIPT" "$SETTINGS" py_nosess nosess_token "" verify) < /dev/null >> "${out}" 2>&1 &`,
          ],
          { cwd: dir, env: { ...process.env, SETTINGS: JSON.stringify(settings), SCRIPT: script } },
        );
        assert.equal(r.status, 0);
      };
      const outcomes = async (): Promise<Outcome[]> =>
        (await fs.readFile(out, "utf8").catch(() => ""))
          .split("\n")
          .filter((l) => l.length > 0)
          .map((l) => OutcomeSchema.parse(JSON.parse(l)));
      const pending = async (): Promise<RequestView[]> =>
        (await cliJsonAsync(e, ["requests"], z.array(RequestViewSchema))).filter(
          (r) => r.agentClientId === "py_nosess",
        );
      launch();
      await waitFor(async () => (await outcomes()).length === 1, "the first run's outcome", 20_000);
      assert.equal((await outcomes())[0]?.error, "mapping_not_found");
      const [request] = await pending();
      assert.ok(request?.process);
      assert.equal(request.process.sessionLeader, null, "no live session leader");
      await ended(request.process.pid, "the first run to end");
      await afterASweep();
      assert.deepEqual(
        (await pending()).map((r) => r.id),
        [request.id],
        "still pending after the run ended and a sweep ran",
      );
      launch();
      await waitFor(async () => (await outcomes()).length === 2, "the second run's outcome", 20_000);
      const [joined] = await pending();
      assert.deepEqual([joined?.id], [request.id], "the next run joins it");
      await ended(joined?.process?.pid ?? 0, "the second run to end");
      const refused = cli(e, ["approve", request.id, "--bind", "process", "--once", "--secret", "NOTION_TOKEN"]);
      assert.notEqual(refused.code, 0);
      assert.match(refused.stderr + refused.stdout, /Approve it for this program: its next run gets it/);
      await cliJsonAsync(e, ["approve", request.id, "--until-revoked", "--secret", "NOTION_TOKEN"], GrantViewSchema);
      launch();
      await waitFor(async () => (await outcomes()).length === 3, "the third run's outcome", 20_000);
      assert.deepEqual((await outcomes())[2], { step: "exchange", status: 200, value: VALUE, error: null });
    });

    it("answers 401 invalid_instance after `piper-link logout`, to an agent that kept the instance ID", async () => {
      const a = agents[0];
      assert.ok(a, "the first agent still runs, holding the instance ID it discovered");
      assert.equal(cli(e, ["logout"]).code, 0);
      await waitFor(
        async () => (await cliJsonAsync(e, ["status"], LinkStatusSchema)).state === "logged_out",
        "the Link to be signed out",
      );
      const r = await a.again();
      assert.deepEqual([r.step, r.status, r.error], ["resolve", 401, "invalid_instance"]);
      await a.end();
    });
  },
);

describe("pyper handlers: the Link's own instance check", () => {
  it("refuses another instance, and any instance when nobody is signed in, before calling an authority", async () => {
    // No authority configured: a call that got past the instance check would answer 503 authority_unavailable.
    let current: string | null = "inst_this_link_0001";
    const handlers = createPyperHandlers({
      now: Date.now,
      log: pino({ level: "silent" }),
      authority: () => null,
      instanceId: () => current,
    });
    const ask = (instanceId: string): Promise<unknown> =>
      handlers.resolveMapping({ agentClientId: "a", instanceId, variableName: "x" }, null);
    await assert.rejects(
      ask("inst_this_link_0001"),
      (err: unknown) => err instanceof PyperFailure && err.code === "authority_unavailable",
    );
    await assert.rejects(
      ask("inst_another_machine"),
      (err: unknown) => err instanceof PyperFailure && err.status === 401 && err.code === "invalid_instance",
    );
    current = null;
    await assert.rejects(
      ask("inst_this_link_0001"),
      (err: unknown) => err instanceof PyperFailure && err.status === 401 && err.code === "invalid_instance",
    );
  });
});
