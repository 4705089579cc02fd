// One prompt for several secrets (issue 13 item 7): `resolveMany` on the agent protocol and the
// SDK's `getSecrets` against a real Link with its embedded authority (child process, HTTPS, SQLite,
// real keyring); the person's decisions through the control API (`approveRequests`, `denyRequest`).
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { z } from "zod";
import { RequestViewSchema, type RequestView } from "../src/shared/authority.js";
import { ApproveItemResultSchema, LinkStatusSchema } from "../src/shared/control.js";
import { DEFAULT_GRANT_TERMS } from "../src/shared/grant-terms.js";
import type { LinkMessage } from "../src/shared/protocol.js";
import { createPiperClient, PiperError, type SecretsEntry } from "@piper-link/sdk";
import { cli, cliJson, cliJsonAsync, newEnv, stopAll } from "./cli-helpers.js";
import { connectAgent, startTestLink, TEST_PROOF, waitFor, type TestAgent, type TestLink } from "./helpers.js";

let t: TestLink;
const agents: TestAgent[] = [];

/** The Approve dialog's default terms, as the window sends them with "Approve all". */
const DEFAULT_TERMS = {
  scope:
    DEFAULT_GRANT_TERMS.lifetime.kind === "duration"
      ? { kind: "duration" as const, durationMs: DEFAULT_GRANT_TERMS.lifetime.durationMs }
      : { kind: "until_revoked" as const },
  binding: DEFAULT_GRANT_TERMS.binding,
};

async function agent(clientId: string): Promise<TestAgent> {
  const a = await connectAgent(t.url);
  agents.push(a);
  assert.equal((await a.hello(1, clientId)).type, "welcome");
  return a;
}

async function pendingOf(clientId: string, count: number): Promise<RequestView[]> {
  let found: RequestView[] = [];
  await waitFor(async () => {
    found = (await t.link.api.listRequests({ status: "pending" })).filter((r) => r.agentClientId === clientId);
    return found.length === count;
  }, `${count} pending requests of ${clientId}`);
  return found;
}

function valueOf(entry: SecretsEntry | undefined): string {
  assert.ok(entry !== undefined && "value" in entry, `expected a value, got ${JSON.stringify(entry)}`);
  return entry.value;
}

describe("resolveMany: one card for several secrets, partial results (issue 13 item 7)", () => {
  before(async () => {
    t = await startTestLink({ authority: { kind: "embedded" } });
    await t.link.api.devSignIn({});
    for (const name of ["GRANTED_A", "DENIED_C", "BATCH_X", "BATCH_Y"])
      await t.link.api.setSecret({ name, value: `value-of-${name}` });
  });
  after(async () => {
    for (const a of agents) a.close();
    await t.stop();
  });

  it("protocol: one pending frame for the missing ones, then one secrets frame — granted, secret not found, denied", async () => {
    const a = await agent("agent_many");
    // GRANTED_A already has a grant for this program.
    a.send({ type: "resolve", id: 2, variable: "GRANTED_A", wait: false });
    const first = await a.next((m) => "id" in m && m.id === 2, 15_000);
    assert.equal(first.type, "pending");
    await t.link.api.approveRequest({ requestId: first.requestId, ...DEFAULT_TERMS, presence: TEST_PROOF });

    a.send({
      type: "resolveMany",
      id: 3,
      variables: ["GRANTED_A", "MISSING_B", "DENIED_C"],
      reason: "deploy",
      timeoutMs: 2500,
    });
    const pending = await a.next((m) => "id" in m && m.id === 3, 15_000);
    assert.equal(pending.type, "pending");
    const cards = await pendingOf("agent_many", 2);
    assert.deepEqual(
      new Set(pending.requestIds),
      new Set(cards.map((r) => r.id)),
      "one pending frame names every request",
    );
    assert.equal(pending.requestId, pending.requestIds?.[0]);
    assert.ok(pending.batchId);
    assert.deepEqual(
      cards.map((r) => r.batchId),
      [pending.batchId, pending.batchId],
      "the requests share one batch: one card",
    );
    assert.deepEqual(cards.map((r) => r.variable).sort(), ["denied_c", "missing_b"]);

    // The person approves the missing one (fails on its own, clearly) and denies the other.
    const missing = cards.find((r) => r.variable === "missing_b");
    const denied = cards.find((r) => r.variable === "denied_c");
    assert.ok(missing && denied);
    const approved = await t.link.api.approveRequests({
      items: [{ requestId: missing.id }, { requestId: "req_nobody" }],
      ...DEFAULT_TERMS,
      presence: TEST_PROOF,
    });
    assert.deepEqual(
      approved.results.map((r) => (r.ok ? [r.requestId, "ok"] : [r.requestId, r.error.code])),
      [
        [missing.id, "secret_not_found"],
        ["req_nobody", "not_found"],
      ],
      "each item fails on its own, with its code",
    );
    await t.link.api.denyRequest({ requestId: denied.id });

    const answer: LinkMessage = await a.next((m) => "id" in m && m.id === 3, 15_000);
    assert.equal(answer.type, "secrets");
    const { GRANTED_A, MISSING_B, DENIED_C } = answer.results;
    assert.ok(GRANTED_A && "value" in GRANTED_A);
    assert.equal(GRANTED_A.value, "value-of-GRANTED_A");
    assert.ok(MISSING_B && "error" in MISSING_B);
    assert.equal(MISSING_B.error.code, "secret_not_found");
    assert.ok(DENIED_C && "error" in DENIED_C);
    assert.equal(DENIED_C.error.code, "denied");
    assert.equal(a.received.filter((m) => "id" in m && m.id === 3).length, 0, "nothing more for this message");

    // More than 32 variables is a bad request for the whole message.
    a.send({ type: "resolveMany", id: 4, variables: Array.from({ length: 33 }, (_, i) => `V${i}`) });
    const tooMany = await a.next((m) => "id" in m && m.id === 4);
    assert.equal(tooMany.type === "error" ? tooMany.code : tooMany.type, "bad_request");
  });

  it("SDK getSecrets: one card, Approve all with the dialog's default terms, env fallback for a denied one; asked again, no prompt", async () => {
    const client = createPiperClient({ clientId: "agent_sdk_many", linkUrl: t.url, env: { BATCH_Z: "z-from-env" } });
    try {
      let announced: { variables: string[]; requestIds: string[]; batchId: string | null } | null = null;
      const asked = client.getSecrets(["BATCH_X", "BATCH_Y", "BATCH_Z"], {
        reason: "nightly job",
        timeoutMs: 20_000,
        onPending: (info) => (announced = info),
      });
      const cards = await pendingOf("agent_sdk_many", 3);
      const batch = cards[0]?.batchId;
      assert.ok(batch);
      assert.ok(
        cards.every((r) => r.batchId === batch),
        "one card for the three",
      );
      await waitFor(() => announced !== null, "onPending");

      const z = cards.find((r) => r.variable === "batch_z");
      assert.ok(z);
      const xy = cards.filter((r) => r !== z).map((r) => ({ requestId: r.id }));
      const all = await t.link.api.approveRequests({ items: xy, ...DEFAULT_TERMS, presence: TEST_PROOF });
      assert.deepEqual(
        all.results.map((r) => r.ok),
        [true, true],
      );
      assert.deepEqual(
        all.results.map((r) => (r.ok ? r.grant.binding?.kind : null)),
        ["program", "program"],
      );
      await t.link.api.denyRequest({ requestId: z.id });

      const got = await asked;
      assert.deepEqual(Object.keys(got).sort(), ["BATCH_X", "BATCH_Y", "BATCH_Z"]);
      assert.equal(valueOf(got["BATCH_X"]), "value-of-BATCH_X");
      assert.equal(valueOf(got["BATCH_Y"]), "value-of-BATCH_Y");
      assert.deepEqual(
        got["BATCH_Z"],
        { value: "z-from-env", source: "environment_variable", variable: "BATCH_Z" },
        "denied at the Link, found in the environment",
      );
      assert.equal(got["BATCH_X"] && "source" in got["BATCH_X"] ? got["BATCH_X"].source : null, "piper");

      // The same program asks again: served at once, no new request.
      const again = await client.getSecrets(["BATCH_X", "BATCH_Y"], { wait: false });
      assert.equal(valueOf(again["BATCH_X"]), "value-of-BATCH_X");
      assert.equal(valueOf(again["BATCH_Y"]), "value-of-BATCH_Y");
      assert.deepEqual(await pendingOf("agent_sdk_many", 0), []);
    } finally {
      client.close();
    }
  });

  it("SDK getSecrets without fallback: per-variable errors carry their code (grant_needed with wait: false)", async () => {
    const client = createPiperClient({ clientId: "agent_sdk_nowait", linkUrl: t.url, fallbackToEnv: false });
    try {
      const got = await client.getSecrets(["BATCH_X", "NOPE_1"], { wait: false });
      for (const v of ["BATCH_X", "NOPE_1"]) {
        const entry = got[v];
        assert.ok(entry && "error" in entry, `${v}: ${JSON.stringify(entry)}`);
        assert.ok(entry.error instanceof PiperError);
        assert.equal(entry.error.code, "grant_needed");
      }
      await assert.rejects(
        client.getSecrets([]),
        (err: unknown) => err instanceof PiperError && err.code === "invalid_variable",
      );
    } finally {
      client.close();
    }
  });
});

describe("piper-link approve ID1 ID2 … (the compiled CLI against a running Link)", () => {
  after(stopAll);

  it("approves several with the same flags, reports each, and exits non-zero when one fails", async () => {
    const e = await newEnv();
    const status = cliJson(e, ["start", "--port", "0"], LinkStatusSchema);
    cliJson(e, ["dev", "sign-in"], LinkStatusSchema);
    for (const name of ["CLI_P", "CLI_Q"]) assert.equal(cli(e, ["secrets", "set", name], `value-of-${name}\n`).code, 0);
    const a = await connectAgent(status.url);
    try {
      assert.equal((await a.hello(1, "agent_cli_many")).type, "welcome");
      // Long enough for two CLI calls on a loaded machine; CLI_R (no secret) then answers at this deadline.
      a.send({ type: "resolveMany", id: 2, variables: ["CLI_P", "CLI_Q", "CLI_R"], timeoutMs: 15_000 });
      assert.equal((await a.next((m) => "id" in m && m.id === 2, 15_000)).type, "pending");
      const cards = await cliJsonAsync(e, ["requests"], z.array(RequestViewSchema));
      const batch = cards[0]?.batchId;
      assert.ok(
        typeof batch === "string" && cards.length === 3 && cards.every((r) => r.batchId === batch),
        "one card: the three share a batch",
      );
      const ids = ["cli_p", "cli_q", "cli_r"].map((v) => cards.find((r) => r.variable === v)?.id ?? "");
      const out = cli(e, ["approve", ...ids, "--for", "1h", "--json"]);
      assert.equal(out.code, 1, out.stderr);
      const results = z.array(ApproveItemResultSchema).parse(JSON.parse(out.stdout));
      assert.deepEqual(
        results.map((r) => (r.ok ? r.grant.scope : r.error.code)),
        ["duration", "duration", "secret_not_found"],
      );
      assert.notEqual(cli(e, ["approve", ...ids, "--secret", "CLI_P"]).code, 0, "--secret names one request's secret");
      const answer = await a.next((m) => "id" in m && m.id === 2, 15_000);
      assert.equal(answer.type, "secrets");
      assert.deepEqual(
        Object.entries(answer.results).map(([k, r]) => [k, "value" in r ? r.value : r.error.code]),
        [
          ["CLI_P", "value-of-CLI_P"],
          ["CLI_Q", "value-of-CLI_Q"],
          ["CLI_R", "secret_not_found"],
        ],
      );
    } finally {
      a.close();
    }
  });
});
