// The CLI in a person's words (issue 15 item 8), run as a person runs it: the compiled `piper-link`,
// a real Link with its embedded authority, real agents (one in a child process that exits while its
// request waits), each test in its own HOME. Checks the --help order, JSON usage errors, refused
// option values, the status column of `requests --all`, and local times and sentences in `activity`.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import path from "node:path";
import { after, describe, it } from "node:test";
import { z } from "zod";
import { LinkStatusSchema } from "../src/shared/control.js";
import { createPiperClient, PiperForbiddenError, type PiperClient } from "@piper-link/sdk";
import { cli, cliJson, cliJsonAsync, newEnv, stopAll } from "./cli-helpers.js";

const clients: PiperClient[] = [];
after(() => {
  for (const c of clients) c.close();
  stopAll();
});

const UsageErrorSchema = z.object({ error: z.literal("usage"), message: z.string() }).strict();
const IdsSchema = z.array(z.object({ id: z.string(), variable: z.string(), status: z.string() }));
const AuditJsonSchema = z.object({
  events: z.array(z.object({ at: z.number(), action: z.string(), agentClientId: z.string().nullable() })),
});

/** An agent in its own process: asks for `variable`, prints the pending request's id, and exits. */
const ONE_SHOT_AGENT = `
const WebSocket = require("ws");
const ws = new WebSocket(process.argv[1], "piper-link.v1");
ws.on("open", () => ws.send(JSON.stringify({ type: "hello", id: 1, protocol: 1, agent: { clientId: "agent_gone", name: "Gone Agent" } })));
ws.on("message", (data) => {
  const m = JSON.parse(String(data));
  if (m.type === "welcome") ws.send(JSON.stringify({ type: "resolve", id: 2, variable: "GONE_TOKEN", wait: true, timeoutMs: 60000 }));
  if (m.type === "pending") { process.stdout.write(m.requestId); process.exit(0); }
  if (m.type === "error") { process.stderr.write(JSON.stringify(m)); process.exit(1); }
});`;

describe("piper-link in a person's words", () => {
  it("--help lists commands in the order a person uses them", async () => {
    const e = await newEnv();
    const help = cli(e, ["--help"]);
    assert.equal(help.code, 0);
    const listed = [...(help.stdout.split("Commands:")[1]?.matchAll(/^ {2}([a-z-]+)/gm) ?? [])].map((m) => m[1]);
    assert.deepEqual(listed.slice(0, 6), ["start", "login", "status", "stop", "logout", "ui"]);
    const order = [
      "start",
      "login",
      "status",
      "stop",
      "logout",
      "ui",
      "unlock",
      "lock",
      "pin",
      "secrets",
      "requests",
      "approve",
      "deny",
      "grants",
      "revoke",
      "activity",
      "run",
      "service",
      "dev",
      "authority",
      "help",
    ];
    const known = listed.filter((c): c is string => c !== undefined && order.includes(c));
    assert.deepEqual(
      known,
      order.filter((c) => known.includes(c)),
      "the named commands come in this order",
    );
    assert.equal(listed[listed.length - 1], "help");
  });

  it("usage errors are JSON under --json (exit 2, nothing on stderr) and a sentence otherwise", async () => {
    const e = await newEnv();
    for (const args of [
      ["requests", "--bogus"],
      ["nosuch"],
      ["approve"],
      ["activity", "--before", "garbage"],
      ["authority", "serve"],
      ["secrets", "set"],
    ]) {
      const r = cli(e, [...args, "--json"]);
      assert.equal(r.code, 2, `${args.join(" ")}: ${r.stdout}${r.stderr}`);
      assert.equal(r.stderr, "", `${args.join(" ")} prints nothing but the JSON`);
      const body = UsageErrorSchema.parse(JSON.parse(r.stdout));
      assert.match(body.message, /^[A-Z].*\.$/, "a sentence");
      assert.doesNotMatch(body.message, /\n/, "one line");
    }
    // commander's suggestion for a near miss, as part of the sentence.
    assert.equal(
      UsageErrorSchema.parse(JSON.parse(cli(e, ["logot", "--json"]).stdout)).message,
      "Unknown command 'logot'. Did you mean logout? Run piper-link --help for usage.",
    );
    const human = cli(e, ["requests", "--bogus"]);
    assert.equal(human.code, 2);
    assert.match(human.stderr, /^piper-link: Unknown option '--bogus'\./);
  });

  it("authority serve and create-user without a usable PIPER_AUTHORITY_DATA_KEYS: one line saying what to set and how, exit 2, nothing created", async () => {
    const e = await newEnv();
    delete e.env["PIPER_AUTHORITY_DATA_KEYS"];
    const db = path.join(e.home, "authority.sqlite");
    const tlsDir = path.join(e.home, "tls");
    for (const args of [
      ["authority", "serve", "--db", db, "--tls-dir", tlsDir],
      ["authority", "create-user", "--db", db],
    ]) {
      const r = cli(e, args);
      assert.equal(r.code, 2, `${args.join(" ")}: ${r.stdout}${r.stderr}`);
      assert.equal(r.stdout, "");
      const lines = r.stderr.trimEnd().split("\n");
      assert.equal(lines.length, 1, `one line, no stack trace: ${r.stderr}`);
      assert.match(
        lines[0] ?? "",
        /^piper-link: PIPER_AUTHORITY_DATA_KEYS is not set.*k1:\$\(openssl rand -base64 32\)/,
      );
    }
    e.env["PIPER_AUTHORITY_DATA_KEYS"] = "k1:c2hvcnQ=";
    const short = cli(e, ["authority", "serve", "--db", db, "--tls-dir", tlsDir]);
    assert.equal(short.code, 2);
    assert.match(
      short.stderr,
      /^piper-link: PIPER_AUTHORITY_DATA_KEYS is not valid: Data key k1 must be 32 bytes .*openssl rand -base64 32.*\n$/,
    );
    // Refused before anything was made.
    assert.ok(!existsSync(db) && !existsSync(tlsDir));
    // The other refusal of `serve` said nothing at all before (exit 2 with an empty stderr).
    e.env["PIPER_AUTHORITY_DATA_KEYS"] = `k1:${randomBytes(32).toString("base64")}`;
    const noTls = cli(e, ["authority", "serve", "--db", db]);
    assert.equal(noTls.code, 2);
    assert.match(noTls.stderr, /^piper-link: Give --tls-dir or --tls-key\/--tls-cert/);
  });

  it("refuses bad option values with a sentence and exit 2 before anything runs", async () => {
    const e = await newEnv();
    const cases: Array<[string[], RegExp]> = [
      [["activity", "--before", "garbage"], /cursor printed after a previous page/],
      [["activity", "--before", "2026-01-01"], /dates are not accepted/],
      [["activity", "--limit", "0"], /whole number from 1 to 500/],
      [["activity", "--limit", "abc"], /whole number from 1 to 500/],
      [["activity", "--limit", "501"], /whole number from 1 to 500/],
      [["approve", "req_x", "--for", "5x"], /a number and a unit/],
      [["approve", "req_x", "--for", "0s"], /from 1 second to 366 days/],
      [["approve", "req_x", "--for", "400d"], /from 1 second to 366 days/],
    ];
    for (const [args, sentence] of cases) {
      const r = cli(e, args);
      assert.equal(r.code, 2, `${args.join(" ")} exits 2: ${r.stderr}`);
      assert.match(r.stderr, sentence, args.join(" "));
      // Refused by the CLI itself: no Link runs here, so reaching it would say "not running" (exit 3).
      assert.doesNotMatch(r.stderr, /not running/);
    }
  });

  it("requests --all has a status column; activity reads in sentences and local times, grant ends included under the agent", async () => {
    const e = await newEnv();
    // A time zone far from UTC (+05:45) shows that times are local, not UTC.
    e.env["TZ"] = "Asia/Kathmandu";
    const status = cliJson(e, ["start", "--port", "0"], LinkStatusSchema);
    cliJson(e, ["dev", "sign-in"], LinkStatusSchema);
    assert.equal(cli(e, ["secrets", "set", "OPENAI_API_KEY"], "sk-polish-value").code, 0);

    // An agent that asks, then exits while its request waits: "requester gone".
    const gone = spawnSync(process.execPath, ["-e", ONE_SHOT_AGENT, status.url], { encoding: "utf8", timeout: 30_000 });
    assert.equal(gone.status, 0, gone.stderr);
    const goneId = gone.stdout.trim();
    assert.match(goneId, /^req_/);

    // A live agent: approved for 1 hour, then revoked; and a request that is denied.
    const agent = createPiperClient({
      clientId: "agent_polish",
      name: "Polish Agent",
      linkUrl: status.url,
      fallbackToEnv: false,
      approvalTimeoutMs: 60_000,
    });
    clients.push(agent);
    const pendingId = async (variable: string): Promise<string> => {
      for (;;) {
        const hit = (await cliJsonAsync(e, ["requests"], IdsSchema)).find((r) => r.variable === variable);
        if (hit !== undefined) return hit.id;
        await new Promise((r) => setImmediate(r));
      }
    };
    const first = agent.getSecret("OPENAI_API_KEY");
    const grant = await cliJsonAsync(
      e,
      ["approve", await pendingId("openai_api_key"), "--for", "1h"],
      z.object({ id: z.string() }),
    );
    assert.equal((await first).value, "sk-polish-value");
    const denied = agent.getSecret("DENY_ME").catch((err: unknown) => err);
    await cliJsonAsync(e, ["deny", await pendingId("deny_me")], z.object({ id: z.string() }));
    assert.ok((await denied) instanceof PiperForbiddenError);
    await cliJsonAsync(e, ["revoke", grant.id], z.object({ id: z.string() }));

    const all = cli(e, ["requests", "--all"]);
    assert.equal(all.code, 0, all.stderr);
    const lines = all.stdout.trim().split("\n");
    assert.match(lines[0] ?? "", /^STATUS\s+REQUEST$/);
    const statusOf = (id: string): string | undefined =>
      lines
        .find((l) => l.includes(id))
        ?.split(/ {2,}/)[0]
        ?.trim();
    assert.equal(statusOf(goneId), "requester gone");
    const byVariable = new Map(
      IdsSchema.parse(JSON.parse(cli(e, ["requests", "--all", "--json"]).stdout)).map((r) => [r.variable, r.id]),
    );
    assert.equal(statusOf(byVariable.get("openai_api_key") ?? "?"), "approved");
    assert.equal(statusOf(byVariable.get("deny_me") ?? "?"), "denied");
    assert.doesNotMatch(all.stdout, /\d{4}-\d\d-\d\dT\d\d:/, "no ISO/UTC timestamps in human output");

    const activity = cli(e, ["activity", "--agent", "agent_polish"]);
    assert.equal(activity.code, 0, activity.stderr);
    assert.match(activity.stdout, /Approved\s+OPENAI_API_KEY\s+agent agent_polish: approved for 1 hour/);
    assert.match(
      activity.stdout,
      /Grant ended\s+OPENAI_API_KEY\s+agent agent_polish: revoked by you/,
      "the revocation shows under its agent",
    );
    assert.match(activity.stdout, /Denied\s+DENY_ME\s+agent agent_polish: denied/);
    // The verified program, not only the client ID the agent chose.
    assert.match(
      activity.stdout,
      new RegExp(
        `Denied\\s+DENY_ME\\s+agent agent_polish: denied\\s+program pid \\d+ ${process.execPath.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}`,
      ),
    );
    assert.doesNotMatch(activity.stdout, /: until\b|request\.approved|\d{4}-\d\d-\d\dT/);
    // Times are the person's local time (here +05:45), next to "… ago"; JSON keeps epoch ms.
    const page = AuditJsonSchema.parse(JSON.parse(cli(e, ["activity", "--agent", "agent_polish", "--json"]).stdout));
    const newest = page.events[0];
    assert.ok(newest);
    const local = new Date(newest.at).toLocaleString(undefined, {
      dateStyle: "medium",
      timeStyle: "short",
      timeZone: "Asia/Kathmandu",
    });
    assert.ok(
      activity.stdout.split("\n")[0]?.includes(`(${local})`),
      `the newest line shows ${local}: ${activity.stdout}`,
    );
    assert.match(activity.stdout.split("\n")[0] ?? "", /^(just now|\d+ s ago|\d+ min ago) /);
  });
});
