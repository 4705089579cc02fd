// `piper-link mcp` (issue 14 item 6) driven by an MCP client from the same official SDK: the
// compiled CLI spawned over stdio, a real Link with its embedded authority and real keyring, and
// a local HTTPS upstream with its own CA. Approvals go through the CLI, as a person would give them.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { z } from "zod";
import { AuditPageSchema, RequestViewSchema } from "../src/shared/authority.js";
import { REDACTION_MARK } from "../src/shared/calls.js";
import { LinkStatusSchema } from "../src/shared/control.js";
import type { GrantView } from "../src/shared/authority.js";
import { grantServes } from "../src/main/core/authority/agent-grants.js";
import { needlesFor } from "../src/main/core/calls/redactor.js";
import { BIN, cli, cliJson, cliJsonAsync, newEnv, stopAll, type CliEnv } from "./cli-helpers.js";
import { startUpstream, type TestUpstream } from "./calls-upstream.js";
import { connectAgent, tempDir, waitFor } from "./helpers.js";

after(stopAll);

const TOKEN = "sk-mcp/ab+cd=ef 42xyz";
const BASIC = "bob:s3cret/+x";
const CLIENT_ID = "piper-link-mcp";

const Requests = z.array(RequestViewSchema);
const TextContent = z.array(z.object({ type: z.literal("text"), text: z.string() }));
const HttpResult = z.object({
  status: z.number(),
  headers: z.array(z.tuple([z.string(), z.string()])),
  body: z.string(),
  bodyEncoding: z.enum(["utf8", "base64"]),
  bodyBytes: z.number(),
  bodyTruncated: z.boolean(),
  redacted: z.boolean(),
});
const SecretsResult = z.object({
  secrets: z.array(z.object({ name: z.string(), mode: z.string(), destinations: z.array(z.unknown()) })),
});

describe("grants an agent may list (the `grants` message)", () => {
  const base: GrantView = {
    id: "gr_1",
    agentClientId: "agent_a",
    agentName: null,
    variable: "api_token",
    secretName: "API_TOKEN",
    scope: "until_revoked",
    expiresAt: null,
    process: null,
    instanceId: "inst_1",
    requestId: null,
    createdAt: 0,
    lastUsedAt: null,
    endedAt: null,
    endReason: null,
  };
  const proc = { pid: 42, startTime: 7, executable: "/usr/bin/node", cwd: "/", commandLine: null };
  const asker = { clientId: "agent_a", process: proc, instanceId: "inst_1", now: 1000 };

  it("keeps only the asker's live grants on this instance, and a process grant only for that process", () => {
    assert.equal(grantServes(base, asker), true);
    assert.equal(grantServes({ ...base, instanceId: null }, asker), true);
    assert.equal(grantServes({ ...base, agentClientId: "agent_b" }, asker), false, "another agent's");
    assert.equal(grantServes({ ...base, instanceId: "inst_2" }, asker), false, "another machine's");
    assert.equal(grantServes({ ...base, endedAt: 5, endReason: "revoked" }, asker), false, "ended");
    assert.equal(grantServes({ ...base, scope: "duration", expiresAt: 1000 }, asker), false, "expired");
    assert.equal(grantServes({ ...base, scope: "process", process: { pid: 42, startTime: 7 } }, asker), true);
    assert.equal(
      grantServes({ ...base, scope: "process", process: { pid: 42, startTime: 8 } }, asker),
      false,
      "a pid reused by another process",
    );
    assert.equal(
      grantServes({ ...base, scope: "process", process: { pid: 43, startTime: 7 } }, asker),
      false,
      "another process",
    );
    assert.equal(
      grantServes({ ...base, scope: "process", process: { pid: 42, startTime: 7 } }, { ...asker, process: null }),
      false,
      "an unidentified asker",
    );
  });
});

describe("piper-link mcp without a running Link", () => {
  it("answers every tool with the tool error link_not_running", async () => {
    const e = await newEnv();
    const env: Record<string, string> = {};
    for (const [k, v] of Object.entries(e.env)) if (v !== undefined) env[k] = v;
    // Nothing listens on port 1: the SDK's discovery takes the explicit URL and fails fast.
    env["PIPER_LINK_URL"] = "ws://127.0.0.1:1/v1/link";
    const client = new Client({ name: "piper-link-test", version: "0" });
    await client.connect(
      new StdioClientTransport({ command: process.execPath, args: [BIN, "mcp"], env, stderr: "ignore" }),
    );
    try {
      for (const call of [
        { name: "list_secrets", arguments: {} },
        { name: "http_request", arguments: { url: "https://127.0.0.1:1/x", auth: { bearer: "X" } } },
      ]) {
        const r = await client.callTool(call);
        assert.equal(r.isError, true);
        assert.match(TextContent.parse(r.content)[0]?.text ?? "", /^link_not_running: Piper Link is not running/);
      }
    } finally {
      await client.close();
    }
  });
});

describe("piper-link mcp and call with --profile", () => {
  it("find the Link of the profile named by --profile when PIPER_LINK_PROFILE is not set", async () => {
    const e = await newEnv();
    cliJson(e, ["start", "--port", "0"], LinkStatusSchema);
    cliJson(e, ["dev", "sign-in"], LinkStatusSchema);
    // The same person's environment without the variable: only --profile names the profile.
    const env: Record<string, string> = {};
    for (const [k, v] of Object.entries(e.env)) if (v !== undefined && k !== "PIPER_LINK_PROFILE") env[k] = v;
    const client = new Client({ name: "piper-link-test", version: "0" });
    await client.connect(
      new StdioClientTransport({
        command: process.execPath,
        args: [BIN, "--profile", e.profile, "mcp"],
        env,
        stderr: "ignore",
      }),
    );
    try {
      const r = await client.callTool({ name: "list_secrets", arguments: {} });
      assert.notEqual(r.isError, true, JSON.stringify(r));
      assert.deepEqual(SecretsResult.parse(r.structuredContent).secrets, []);
    } finally {
      await client.close();
    }
    // `call` asks that profile's Link: its request shows up there (no approval in time: an error, not link_not_running).
    const called = cli({ ...e, env }, [
      "--profile",
      e.profile,
      "call",
      "https://127.0.0.1:1/x",
      "--bearer",
      "API_TOKEN",
      "--client-id",
      "agent_profile",
      "--timeout",
      "0",
      "--json",
    ]);
    const error = z.object({ error: z.string() }).parse(JSON.parse(called.stdout)).error;
    assert.notEqual(error, "link_not_running", called.stdout);
    assert.ok(
      cliJson(e, ["requests", "--all"], Requests).some((r) => r.agentClientId === "agent_profile"),
      "the request reached the profile's Link",
    );
  });
});

describe("piper-link mcp (MCP client over stdio, real Link, HTTPS upstream)", () => {
  let upstream: TestUpstream;
  let e: CliEnv;
  let linkUrl = "";
  let mcp: Client;
  /** What `before` started, closed in `after` even when `before` failed half-way. */
  const started: Array<() => Promise<void>> = [];
  const stderr: string[] = [];

  before(async () => {
    upstream = await startUpstream(await tempDir("piper-mcp-ca-"));
    started.push(() => upstream.close());
    upstream.routes.set("/echo", (r, res) => {
      res.setHeader("x-echo-auth", String(r.headers["authorization"] ?? ""));
      res.setHeader("content-type", "application/json");
      res.end(JSON.stringify(r));
    });
    upstream.routes.set("/big", (_r, res) => {
      res.setHeader("content-type", "text/plain");
      res.end("x".repeat(200 * 1024));
    });
    e = await newEnv();
    e.env["PIPER_LINK_EXTRA_CA"] = upstream.caFile;
    linkUrl = cliJson(e, ["start", "--port", "0"], LinkStatusSchema).url;
    cliJson(e, ["dev", "sign-in"], LinkStatusSchema);
    for (const [name, value] of [
      ["API_TOKEN", TOKEN],
      ["BASIC_CRED", BASIC],
    ] as const)
      assert.equal(cli(e, ["secrets", "set", name], `${value}\n`).code, 0);
    const env: Record<string, string> = {};
    for (const [k, v] of Object.entries(e.env)) if (v !== undefined) env[k] = v;
    const transport = new StdioClientTransport({ command: process.execPath, args: [BIN, "mcp"], env, stderr: "pipe" });
    transport.stderr?.on("data", (d: Buffer) => stderr.push(d.toString("utf8")));
    mcp = new Client({ name: "piper-link-test", version: "0" });
    await mcp.connect(transport);
    started.push(() => mcp.close());
  });

  after(async () => {
    for (const close of started.reverse()) await close();
  });

  /** Approves (or denies) the first pending request of the MCP server's agent, once it appears. */
  async function decide(verdict: "approve" | "deny"): Promise<void> {
    let id = "";
    await waitFor(
      async () => {
        const pending = (await cliJsonAsync(e, ["requests"], Requests)).find((r) => r.agentClientId === CLIENT_ID);
        id = pending?.id ?? "";
        return pending !== undefined;
      },
      "the MCP server's pending request",
      20_000,
    );
    await cliJsonAsync(e, verdict === "approve" ? ["approve", id, "--until-revoked"] : ["deny", id], z.unknown());
  }

  async function listSecrets(): Promise<string[]> {
    const r = await mcp.callTool({ name: "list_secrets", arguments: {} });
    assert.notEqual(r.isError, true, JSON.stringify(r));
    return SecretsResult.parse(r.structuredContent).secrets.map((s) => s.name);
  }

  function errorText(r: Awaited<ReturnType<Client["callTool"]>>): string {
    assert.equal(r.isError, true, `expected a tool error, got ${JSON.stringify(r)}`);
    return TextContent.parse(r.content)[0]?.text ?? "";
  }

  it("lists its tools with input schemas", async () => {
    const { tools } = await mcp.listTools();
    assert.deepEqual(tools.map((t) => t.name).sort(), [
      "check_access",
      "http_request",
      "list_secrets",
      "request_access",
      "status",
    ]);
    const http = tools.find((t) => t.name === "http_request");
    assert.deepEqual(http?.inputSchema.required?.slice().sort(), ["auth", "url"]);
  });

  it("makes an approved request with a bearer injection; the upstream gets the value, the agent only the redacted echo", async () => {
    assert.deepEqual(await listSecrets(), [], "nothing is granted yet");
    const calling = mcp.callTool(
      {
        name: "http_request",
        arguments: {
          method: "POST",
          url: `${upstream.origin}/echo?q=1`,
          body: "{}",
          headers: { "content-type": "application/json" },
          auth: { bearer: "API_TOKEN" },
          reason: "test",
        },
      },
      undefined,
      { timeout: 60_000 },
    );
    await decide("approve");
    const r = await calling;
    assert.notEqual(r.isError, true, JSON.stringify(r));
    assert.equal(upstream.received.at(-1)?.headers["authorization"], `Bearer ${TOKEN}`);
    const out = HttpResult.parse(r.structuredContent);
    assert.equal(out.status, 200);
    assert.equal(out.redacted, true);
    assert.equal(out.bodyTruncated, false);
    assert.ok(out.body.includes(REDACTION_MARK));
    assert.deepEqual(
      out.headers.find(([n]) => n === "x-echo-auth"),
      ["x-echo-auth", `Bearer ${REDACTION_MARK}`],
    );
    const everything = JSON.stringify(r);
    for (const needle of needlesFor(TOKEN))
      assert.ok(!everything.includes(needle), `the result carries the value (${needle})`);
    assert.match(stderr.join(""), /waiting for approval/);

    // Now granted: list_secrets names it; another agent's list does not.
    assert.deepEqual(await listSecrets(), ["API_TOKEN"]);
    const other = await connectAgent(linkUrl);
    try {
      assert.equal((await other.hello(1, "agent_other")).type, "welcome");
      other.send({ type: "grants", id: 2 });
      const list = await other.next((m) => "id" in m && m.id === 2);
      assert.ok(list.type === "grants.list");
      assert.deepEqual(list.grants, []);
    } finally {
      other.close();
    }
  });

  it("cuts a long answer at the documented size and says so", async () => {
    const r = await mcp.callTool({
      name: "http_request",
      arguments: { url: `${upstream.origin}/big`, auth: { bearer: "API_TOKEN" } },
    });
    const out = HttpResult.parse(r.structuredContent);
    assert.equal(out.bodyTruncated, true);
    assert.equal(out.bodyBytes, 64 * 1024);
    assert.equal(out.body.length, 64 * 1024);
  });

  it("answers tool errors with the stable code: denied, bad_request", async () => {
    const denied = mcp.callTool(
      { name: "http_request", arguments: { url: `${upstream.origin}/echo`, auth: { basic: "BASIC_CRED" } } },
      undefined,
      { timeout: 60_000 },
    );
    await decide("deny");
    assert.match(errorText(await denied), /^denied: /);
    const before = upstream.received.length;
    assert.match(
      errorText(
        await mcp.callTool({
          name: "http_request",
          arguments: { url: `http://127.0.0.1:${upstream.port}/echo`, auth: { bearer: "API_TOKEN" } },
        }),
      ),
      /^bad_request: /,
    );
    assert.match(
      errorText(
        await mcp.callTool({
          name: "http_request",
          arguments: {
            method: "POST",
            url: `${upstream.origin}/echo`,
            body: "é".repeat(40 * 1024),
            auth: { bearer: "API_TOKEN" },
          },
        }),
      ),
      /^bad_request: The body is larger/,
    );
    assert.equal(upstream.received.length, before, "nothing was sent for refused calls");
    assert.deepEqual(await listSecrets(), ["API_TOKEN"], "the denied secret is not listed");
  });

  it("refuses a jsonField path through a prototype, and the Link keeps serving", async () => {
    const before = upstream.received.length;
    for (const path of ["__proto__.polluted", "constructor.prototype.polluted"]) {
      const r = await mcp.callTool({
        name: "http_request",
        arguments: {
          method: "POST",
          url: `${upstream.origin}/echo`,
          body: "{}",
          auth: { jsonField: { [path]: "API_TOKEN" } },
        },
      });
      // The tool's input schema (the call message's) refuses it before anything reaches the Link.
      assert.match(errorText(r), /may not name __proto__, prototype or constructor/, path);
    }
    assert.equal(upstream.received.length, before, "nothing was sent");
    const r = await mcp.callTool({
      name: "http_request",
      arguments: {
        method: "POST",
        url: `${upstream.origin}/echo`,
        body: "{}",
        auth: { jsonField: { "auth.token": "API_TOKEN" } },
      },
    });
    assert.equal(HttpResult.parse(r.structuredContent).status, 200);
    assert.deepEqual(await listSecrets(), ["API_TOKEN"]);
    assert.ok(cliJson(e, ["status"], LinkStatusSchema).pid > 0);
  });

  it("audits every call: piper-link activity --host / --secret show it, never the value", async () => {
    const host = `127.0.0.1:${upstream.port}`;
    await waitFor(
      async () => (await cliJsonAsync(e, ["activity", "--host", host], AuditPageSchema)).events.length >= 2,
      "the calls in the audit log",
      20_000,
    );
    const page = await cliJsonAsync(e, ["activity", "--host", host, "--secret", "API_TOKEN"], AuditPageSchema);
    assert.ok(
      page.events.every(
        (ev) => ev.action === "call.made" && ev.secretName === "API_TOKEN" && ev.agentClientId === CLIENT_ID,
      ),
    );
    const echo = page.events.find((ev) => ev.call?.path === "/echo");
    assert.ok(echo?.call, JSON.stringify(page));
    assert.deepEqual(
      [echo.call.method, echo.call.host, echo.call.status, echo.call.redacted],
      ["POST", host, 200, true],
    );
    assert.ok(echo.call.bytes > 0);
    assert.equal((await cliJsonAsync(e, ["activity", "--host", "example.com"], AuditPageSchema)).events.length, 0);
    assert.equal(
      (await cliJsonAsync(e, ["activity", "--host", host, "--secret", "BASIC_CRED"], AuditPageSchema)).events.length,
      0,
      "the denied call never had a grant to use",
    );
    const text = cli(e, ["activity", "--host", host]).stdout;
    assert.match(text, new RegExp(`POST ${host.replace(/\./g, "\\.")}/echo -> 200`));
    for (const needle of needlesFor(TOKEN)) assert.ok(!text.includes(needle) && !JSON.stringify(page).includes(needle));
  });
});
