// Grant terms, the person's side (issue 13 item 5, issue 14 items 3 and 4): the CLI's approve flags
// for mode and policy, `grants limit`, and secrets' own host lists, against a real Link with its
// embedded authority (compiled CLI, real keyring), a real WebSocket agent, and a local HTTPS
// upstream with its own CA.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { z } from "zod";
import { GrantViewSchema, SecretViewSchema } from "../src/shared/authority.js";
import { LinkStatusSchema } from "../src/shared/control.js";
import { localWeekdayHour } from "../src/shared/grant-terms.js";
import type { LinkMessage } from "../src/shared/protocol.js";
import { endOfDay } from "../src/shared/grant-terms-text.js";
import { parseWeekdays } from "../src/main/cli/terms-options.js";
import { cli, cliJson, newEnv, stopAll, type CliEnv } from "./cli-helpers.js";
import { startUpstream, type TestUpstream } from "./calls-upstream.js";
import { connectAgent, tempDir, type TestAgent } from "./helpers.js";

after(stopAll);

const TOKEN = "sk-terms-0123456789abcdef";

describe("CLI words for terms (pure)", () => {
  it("reads weekday ranges, also over the weekend", () => {
    assert.deepEqual(parseWeekdays("mon-fri"), [1, 2, 3, 4, 5]);
    assert.deepEqual(parseWeekdays("fri-mon"), [0, 1, 5, 6]);
    assert.deepEqual(parseWeekdays("sat,sun"), [0, 6]);
  });

  it("ends a date at midnight after it, in the named zone (DST included)", () => {
    assert.equal(endOfDay({ year: 2026, month: 1, day: 15 }, "UTC"), Date.UTC(2026, 0, 16));
    assert.equal(endOfDay({ year: 2026, month: 1, day: 15 }, "Europe/Berlin"), Date.UTC(2026, 0, 15, 23));
    // The night from 28 to 29 March 2026 Berlin moves to summer time: midnight on the 29th is still CET.
    assert.equal(endOfDay({ year: 2026, month: 3, day: 29 }, "Europe/Berlin"), Date.UTC(2026, 2, 29, 22));
  });
});

describe("grant terms through a real Link", () => {
  let upstream: TestUpstream | undefined;
  let e: CliEnv;
  let agent: TestAgent | undefined;
  let nextId = 1;
  let origin = "";
  let host = "";
  let received: TestUpstream["received"] = [];

  function connected(): TestAgent {
    assert.ok(agent, "the agent is connected");
    return agent;
  }

  before(async () => {
    const up = await startUpstream(await tempDir("piper-terms-ca-"));
    upstream = up;
    up.routes.set("/v1/ok", (_r, res) => res.end("fine"));
    origin = up.origin;
    host = up.origin.replace("https://", "");
    received = up.received;
    e = await newEnv();
    e.env["PIPER_LINK_EXTRA_CA"] = up.caFile;
    const status = cliJson(e, ["start", "--port", "0"], LinkStatusSchema);
    cliJson(e, ["dev", "sign-in"], LinkStatusSchema);
    for (const name of ["USE_ONLY", "LIMITED", "HOSTED"])
      assert.equal(cli(e, ["secrets", "set", name], `${TOKEN}\n`).code, 0);
    const a = await connectAgent(status.url);
    agent = a;
    assert.equal((await a.hello(0, "agent_terms")).type, "welcome");
  });

  after(async () => {
    // Also after a failed start: the upstream must close, or it keeps the test process alive.
    agent?.close();
    await upstream?.close();
  });

  /** Sends a frame and waits for its final answer; `approve(requestId)` runs when it is pending. */
  async function ask(frame: Record<string, unknown>, approve?: (requestId: string) => void): Promise<LinkMessage> {
    const id = nextId++;
    const a = connected();
    a.send({ ...frame, id });
    for (;;) {
      const m = await a.next((x) => "id" in x && x.id === id, 20_000);
      if (m.type === "pending") {
        approve?.(m.requestId);
        continue;
      }
      if (m.type === "call.head" || m.type === "call.chunk") continue;
      return m;
    }
  }
  const read = (variable: string, approve?: (requestId: string) => void) =>
    ask({ type: "resolve", variable, wait: true, timeoutMs: 20_000 }, approve);
  const callWith = (variable: string, url: string, approve?: (requestId: string) => void) =>
    ask({ type: "call", method: "GET", url, auth: { bearer: variable } }, approve);

  it("refuses bad approve and limit values with exit 2 and a sentence, before anything is sent", () => {
    for (const args of [
      ["--hours", "17-9"],
      ["--hours", "9-25"],
      ["--weekdays", "funday"],
      ["--tz", "Mars/Olympus_Mons"],
      ["--max-per-hour", "0"],
      ["--max-per-day", "many"],
      ["--ends", "2026-02-30"],
      ["--ends", "2001-01-01"],
      ["--host", "api.example.com"],
      ["--use-only"],
      ["--use-only", "--host", "bad host"],
      ["--use-only", "--host", "a.example.com", "--rule", "GET no-slash"],
      ["--tz", "Europe/Berlin"],
    ]) {
      const r = cli(e, ["approve", "req_doesnotexist", ...args]);
      assert.equal(r.code, 2, `${args.join(" ")}: ${r.stdout}${r.stderr}`);
      assert.match(r.stderr, /^piper-link: [A-Z-].*\.\n/m, `${args.join(" ")} says why: ${r.stderr}`);
    }
    for (const args of [["--none", "--max-per-day", "3"], [], ["--hours", "8-8"]]) {
      const r = cli(e, ["grants", "limit", "gr_doesnotexist", ...args]);
      assert.equal(r.code, 2, `grants limit ${args.join(" ")}: ${r.stdout}${r.stderr}`);
    }
  });

  it("a use-only grant refuses a read with destination_not_allowed, and serves a call to its host", async () => {
    const answer = await read("USE_ONLY", (requestId) => {
      const r = cli(e, [
        "approve",
        requestId,
        "--until-revoked",
        "--use-only",
        "--host",
        host,
        "--rule",
        "GET /v1/*",
        "--json",
      ]);
      assert.equal(r.code, 0, r.stdout + r.stderr);
      const grant = GrantViewSchema.parse(JSON.parse(r.stdout));
      assert.deepEqual(grant.mode, { kind: "use", destinations: [{ host: host, method: "GET", path: "/v1/*" }] });
    });
    assert.equal(answer.type, "error");
    assert.equal(answer.code, "destination_not_allowed");
    const called = await callWith("USE_ONLY", `${origin}/v1/ok`);
    assert.equal(called.type, "call.end", JSON.stringify(called));
    const grants = cli(e, ["grants"]);
    assert.match(grants.stdout, /may: use only via Piper Link: GET 127\.0\.0\.1:\d+\/v1\/\*/);
    assert.match(grants.stdout, /binds to: this program \(executable, script and folder\): \S+node/);
  });

  it("a policy whose hours exclude now refuses with policy_violation; `grants limit --none` lifts it", async () => {
    const zone = "Pacific/Kiritimati";
    const hour = localWeekdayHour(Date.now(), zone).hour;
    // An hour-long window that starts two hours from now (there), so now is outside it.
    const from = (hour + 2) % 23;
    let grantId = "";
    const first = await read("LIMITED", (requestId) => {
      const grant = cliJson(
        e,
        [
          "approve",
          requestId,
          "--until-revoked",
          "--hours",
          `${from}-${from + 1}`,
          "--tz",
          zone,
          "--max-per-day",
          "50",
        ],
        GrantViewSchema,
      );
      grantId = grant.id;
      assert.deepEqual(grant.policy, {
        timeZone: zone,
        hours: { fromHour: from, toHour: from + 1 },
        maxUsesPerDay: 50,
      });
    });
    assert.equal(first.type, "error");
    assert.equal(first.code, "policy_violation");
    assert.match(first.message, new RegExp(`allowed only from ${from}:00`));

    const lifted = cliJson(e, ["grants", "limit", grantId, "--none"], GrantViewSchema);
    assert.equal(lifted.policy, null);
    const second = await read("LIMITED");
    assert.equal(second.type, "secret", JSON.stringify(second));

    const limited = cliJson(
      e,
      ["grants", "limit", grantId, "--weekdays", "mon-fri", "--max-per-hour", "5", "--tz", "Europe/Berlin"],
      GrantViewSchema,
    );
    assert.deepEqual(limited.policy, { timeZone: "Europe/Berlin", weekdays: [1, 2, 3, 4, 5], maxUsesPerHour: 5 });
    const listed = cliJson(e, ["grants"], z.array(GrantViewSchema)).find((g) => g.id === grantId);
    assert.deepEqual(listed?.policy, limited.policy);
    const activity = cli(e, ["activity", "--json"]);
    assert.match(activity.stdout, /"action": "grant\.policy_changed"/);
  });

  it("a secret with its own hosts is refused for a call elsewhere, still readable, and `secrets hosts` widens it", async () => {
    const hosted = cliJson(e, ["secrets", "hosts", "HOSTED", "--host", "api.openai.com"], SecretViewSchema);
    assert.deepEqual(hosted.hosts, ["api.openai.com"]);
    const refused = await callWith("HOSTED", `${origin}/v1/ok`, (requestId) =>
      assert.equal(cli(e, ["approve", requestId, "--until-revoked"]).code, 0),
    );
    assert.equal(refused.type, "error", JSON.stringify(refused));
    assert.equal(refused.code, "destination_not_allowed");
    assert.match(refused.message, /HOSTED may only be sent to api\.openai\.com/);
    assert.equal(
      received.filter((r) => r.headers["authorization"] === `Bearer ${TOKEN}` && r.url === "/v1/ok").length,
      1,
      "only the use-only grant's call reached the upstream",
    );

    // Reads are about the agent's own copy, not where the Link sends it.
    const value = await read("HOSTED", (requestId) =>
      assert.equal(cli(e, ["approve", requestId, "--until-revoked"]).code, 0),
    );
    assert.equal(value.type, "secret", JSON.stringify(value));

    const widened = cliJson(
      e,
      ["secrets", "hosts", "HOSTED", "--host", "api.openai.com", "--host", host],
      SecretViewSchema,
    );
    assert.equal(widened.hosts?.length, 2);
    const allowed = await callWith("HOSTED", `${origin}/v1/ok`);
    assert.equal(allowed.type, "call.end", JSON.stringify(allowed));

    // Narrowing again applies at once, also to a grant that just served.
    cliJson(e, ["secrets", "hosts", "HOSTED", "--host", "api.openai.com"], SecretViewSchema);
    const again = await callWith("HOSTED", `${origin}/v1/ok`);
    assert.equal(again.type === "error" ? again.code : again.type, "destination_not_allowed");

    const any = cliJson(e, ["secrets", "hosts", "HOSTED", "--any"], SecretViewSchema);
    assert.equal(any.hosts, null);
    const set = cli(e, ["secrets", "set", "FRESH", "--host", "api.example.com", "--json"], `${TOKEN}\n`);
    assert.deepEqual(SecretViewSchema.parse(JSON.parse(set.stdout)).hosts, ["api.example.com"]);
    assert.equal(cli(e, ["secrets", "hosts", "FRESH"]).code, 2);
  });
});
