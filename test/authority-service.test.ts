// The authority's rules on both storage engines: real SQLite files and a real PostgreSQL server.
import assert from "node:assert/strict";
import fs from "node:fs/promises";
import { describe, it } from "node:test";
import { newDataKey, parseDataKeys, type DataKeys } from "../src/server/crypto.js";
import type { Kysely } from "kysely";
import { openDatabase, sql, type Database, type OpenedDatabase } from "../src/server/db.js";
import { createLocalBus } from "../src/server/events.js";
import { createService, ServiceError, type AuthorityService } from "../src/server/service/index.js";
import { PENDING_LIMITS } from "../src/server/service/requests.js";
import { ENGINES, type TestDatabase } from "./db-helpers.js";
import { pendingRequestId } from "./helpers.js";

interface Fixture {
  service: AuthorityService;
  keys: DataKeys;
  opened: OpenedDatabase;
  userId: string;
  instanceId: string;
  clock: { t: number };
  db: TestDatabase;
  done(): Promise<void>;
}

async function fixture(make: () => Promise<TestDatabase>): Promise<Fixture> {
  const db = await make();
  const opened = await openDatabase(db.location);
  const clock = { t: 1_800_000_000_000 };
  const keys = parseDataKeys(`k1:${newDataKey()}`);
  const service = createService({
    db: opened.db,
    keys,
    bus: createLocalBus(),
    now: () => clock.t,
    requestTtlMs: 60_000,
  });
  const { userId } = await service.createUser("Test");
  const instanceId = await service.registerInstance(userId, "test machine");
  return {
    service,
    keys,
    opened,
    userId,
    instanceId,
    clock,
    db,
    async done() {
      await opened.close();
      await db.drop();
    },
  };
}

const proc = {
  pid: 4242,
  executable: "/usr/bin/python3",
  cwd: "/home/p/agent",
  commandLine: ["python3", "agent.py"],
  startTime: 777,
};

async function rejectsWith(p: Promise<unknown>, status: number, code: string): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof ServiceError, String(err));
    assert.equal(err.code, code);
    assert.equal(err.status, status);
    return true;
  });
}

for (const engine of ENGINES) {
  describe(`authority service on ${engine.name}`, { skip: engine.skip }, () => {
    it("runs migrations idempotently: a second open runs none and keeps every row", async () => {
      const f = await fixture(engine.make);
      try {
        await f.service.setSecret(f.userId, "OPENAI_API_KEY", "sk-kept-across-opens");
        const ledger = async (db: Kysely<Database>): Promise<Array<{ name: string; timestamp: string }>> =>
          (
            await sql<{
              name: string;
              timestamp: string;
            }>`select name, timestamp from piper_migrations order by name`.execute(db)
          ).rows;
        const counts = async (db: Kysely<Database>): Promise<number[]> =>
          Promise.all(
            ["users", "instances", "secrets", "link_tokens"].map(async (table) =>
              Number(
                (await sql<{ n: number | string }>`select count(*) as n from ${sql.table(table)}`.execute(db)).rows[0]
                  ?.n,
              ),
            ),
          );
        const before = await ledger(f.opened.db);
        const rowsBefore = await counts(f.opened.db);
        assert.ok(before.length > 0, "the first open ran the migrations");
        assert.equal(new Set(before.map((m) => m.name)).size, before.length, "each migration ran once");
        assert.deepEqual(
          rowsBefore.map((n) => n > 0),
          [true, true, true, true],
          "the fixture wrote a row in every table counted",
        );
        const again = await openDatabase(f.db.location);
        try {
          assert.deepEqual(await ledger(again.db), before, "the second open ran no migration (same names, same times)");
          assert.deepEqual(
            await counts(again.db),
            rowsBefore,
            "every row written before the second open is still there",
          );
          const reopened = createService({
            db: again.db,
            keys: f.keys,
            bus: createLocalBus(),
            now: () => f.clock.t,
            requestTtlMs: 60_000,
          });
          assert.deepEqual(
            (await reopened.listSecrets(f.userId)).map((s) => s.name),
            ["OPENAI_API_KEY"],
          );
        } finally {
          await again.close();
        }
      } finally {
        await f.done();
      }
    });

    it("pending -> approve (until revoked) -> value; second call immediate; revoke -> pending again", async () => {
      const f = await fixture(engine.make);
      try {
        await f.service.setSecret(f.userId, "OPENAI_API_KEY", "sk-test-value-1");
        const first = await f.service.resolve(f.userId, {
          instanceId: f.instanceId,
          agentClientId: "agent_a",
          agentName: "Agent A",
          variable: "OPENAI_API_KEY",
          reason: "needs it",
          process: proc,
        });
        assert.equal(first.status, "pending");
        const again = await f.service.resolve(f.userId, {
          instanceId: f.instanceId,
          agentClientId: "agent_a",
          variable: "openai-api-key",
          process: proc,
        });
        assert.equal(pendingRequestId(again), pendingRequestId(first), "the same program's pending request is reused");
        const [pending] = await f.service.listRequests(f.userId);
        assert.ok(pending);
        assert.deepEqual(
          [pending.agentName, pending.variable, pending.reason, pending.process?.pid],
          ["Agent A", "openai_api_key", "needs it", 4242],
        );
        const grant = await f.service.approve(f.userId, pending.id, { scope: { kind: "until_revoked" } });
        const value = await f.service.resolve(f.userId, {
          instanceId: f.instanceId,
          agentClientId: "agent_a",
          variable: "OPENAI_API_KEY",
          process: proc,
        });
        const terms = { binding: "program", lifetime: { kind: "until_revoked" }, mode: { kind: "read" }, policy: null };
        assert.deepEqual(value, {
          status: "granted",
          value: "sk-test-value-1",
          grantId: grant.id,
          expiresAt: null,
          variable: "openai_api_key",
          reusable: true,
          terms,
        });
        assert.equal(
          (
            await f.service.resolve(f.userId, {
              instanceId: f.instanceId,
              agentClientId: "agent_a",
              variable: "OPENAI_API_KEY",
              process: proc,
            })
          ).status,
          "granted",
        );
        // Bound to the program that asked: a caller the Link could not identify is not that program.
        assert.equal(
          (
            await f.service.resolve(f.userId, {
              instanceId: f.instanceId,
              agentClientId: "agent_a",
              variable: "OPENAI_API_KEY",
            })
          ).status,
          "pending",
        );
        await f.service.revokeGrant(f.userId, grant.id);
        assert.equal(
          (
            await f.service.resolve(f.userId, {
              instanceId: f.instanceId,
              agentClientId: "agent_a",
              variable: "OPENAI_API_KEY",
              process: proc,
            })
          ).status,
          "pending",
        );
        const grants = await f.service.listGrants(f.userId, true);
        assert.equal(grants[0]?.endReason, "revoked");
        // A decided request cannot be decided twice.
        await rejectsWith(f.service.deny(f.userId, pending.id), 409, "request_not_pending");
      } finally {
        await f.done();
      }
    });

    it("once grants are used up; duration grants expire; process grants match only that process", async () => {
      const f = await fixture(engine.make);
      try {
        await f.service.setSecret(f.userId, "TOKEN", "tok-1");
        const ask = async (p: typeof proc | null = proc) =>
          f.service.resolve(f.userId, {
            instanceId: f.instanceId,
            agentClientId: "agent_b",
            variable: "TOKEN",
            process: p,
          });
        const r1 = await ask();
        assert.equal(r1.status, "pending");
        await f.service.approve(f.userId, pendingRequestId(r1), { scope: { kind: "once" } });
        assert.equal((await ask()).status, "granted");
        assert.equal((await ask()).status, "pending", "a once grant serves one call");

        const r2 = (await f.service.listRequests(f.userId))[0];
        assert.ok(r2);
        await f.service.approve(f.userId, r2.id, { scope: { kind: "duration", durationMs: 60_000 } });
        const timed = await ask();
        assert.equal(timed.status === "granted" && timed.expiresAt, f.clock.t + 60_000);
        f.clock.t += 61_000;
        assert.equal((await ask()).status, "pending", "an expired grant no longer serves");

        const r3 = (await f.service.listRequests(f.userId))[0];
        assert.ok(r3);
        await f.service.approve(f.userId, r3.id, { scope: { kind: "process" } });
        assert.equal((await ask()).status, "granted");
        assert.equal((await ask({ ...proc, startTime: 778 })).status, "pending", "same pid, another process");
        assert.equal((await ask(null)).status, "pending", "unknown process");
      } finally {
        await f.done();
      }
    });

    it("deny, expiry, and approval errors with stable codes", async () => {
      const f = await fixture(engine.make);
      try {
        const r = await f.service.resolve(f.userId, {
          instanceId: f.instanceId,
          agentClientId: "agent_c",
          variable: "MISSING",
        });
        assert.equal(r.status, "pending");
        const id = pendingRequestId(r);
        await rejectsWith(f.service.approve(f.userId, id, { scope: { kind: "once" } }), 409, "secret_not_found");
        await rejectsWith(
          f.service.approve(f.userId, "req_nope", { scope: { kind: "once" } }),
          404,
          "request_not_found",
        );
        await rejectsWith(f.service.approve(f.userId, id, { scope: { kind: "process" } }), 409, "secret_not_found");
        const denied = await f.service.deny(f.userId, id);
        assert.equal(denied.status, "denied");
        assert.equal(
          await f.service.waitForRequest(f.userId, { instanceId: f.instanceId, agentClientId: "agent_c" }, id, 1000),
          "denied",
        );

        const r2 = await f.service.resolve(f.userId, {
          instanceId: f.instanceId,
          agentClientId: "agent_c",
          variable: "MISSING",
        });
        const id2 = pendingRequestId(r2);
        assert.notEqual(id2, id, "a denied request is not reused");
        f.clock.t += 61_000;
        assert.equal(await f.service.expireRequests(), 1);
        assert.equal((await f.service.listRequests(f.userId, "all")).find((x) => x.id === id2)?.status, "expired");
        await rejectsWith(
          f.service.resolve(f.userId, { instanceId: "inst_unknown", agentClientId: "a", variable: "X" }),
          401,
          "invalid_instance",
        );
        await rejectsWith(
          f.service.resolve(f.userId, { instanceId: f.instanceId, agentClientId: "a", variable: "!!!" }),
          400,
          "invalid_request",
        );
      } finally {
        await f.done();
      }
    });

    it("wakes a waiting agent when the request is approved", async () => {
      const f = await fixture(engine.make);
      try {
        await f.service.setSecret(f.userId, "WAKE", "w");
        const r = await f.service.resolve(f.userId, {
          instanceId: f.instanceId,
          agentClientId: "agent_w",
          variable: "WAKE",
        });
        const id = pendingRequestId(r);
        const waiting = f.service.waitForRequest(
          f.userId,
          { instanceId: f.instanceId, agentClientId: "agent_w" },
          id,
          30_000,
        );
        await f.service.approve(f.userId, id, { scope: { kind: "once" } });
        assert.equal(await waiting, "approved");
      } finally {
        await f.done();
      }
    });

    it("stores secrets encrypted, bound to their row, and never in the audit log", async () => {
      const f = await fixture(engine.make);
      try {
        const marker = "sk-VERY-UNIQUE-marker-9f8e7d";
        await f.service.setSecret(f.userId, "MARKED", marker);
        const rows = await f.opened.db.selectFrom("secrets").selectAll().execute();
        assert.equal(rows.length, 1);
        assert.ok(!rows[0]?.ciphertext.includes(marker));
        assert.ok(
          !Buffer.from(rows[0]?.ciphertext ?? "", "base64")
            .toString("latin1")
            .includes(marker),
        );
        const r = await f.service.resolve(f.userId, {
          instanceId: f.instanceId,
          agentClientId: "agent_m",
          variable: "MARKED",
        });
        await f.service.approve(f.userId, pendingRequestId(r), { scope: { kind: "until_revoked" } });
        assert.equal(
          (
            await f.service.resolve(f.userId, {
              instanceId: f.instanceId,
              agentClientId: "agent_m",
              variable: "MARKED",
            })
          ).status,
          "granted",
        );
        const audit = await f.opened.db.selectFrom("audit_events").selectAll().execute();
        assert.ok(audit.length >= 4);
        assert.ok(!JSON.stringify(audit).includes(marker));
        if (engine.name === "sqlite") {
          await f.opened.close();
          for (const file of [f.db.location, `${f.db.location}-wal`]) {
            const bytes = await fs.readFile(file).catch(() => Buffer.alloc(0));
            assert.ok(!bytes.includes(marker), `${file} contains the secret value`);
          }
          f.opened = await openDatabase(f.db.location);
        }
      } finally {
        await f.done();
      }
    });

    it("every ask, decision, delivery, end and call in the audit log names the verified program, so two programs with one client ID read apart", async () => {
      const f = await fixture(engine.make);
      try {
        await f.service.setSecret(f.userId, "TOKEN", "tok-audit");
        const other = {
          ...proc,
          pid: 5151,
          executable: "/usr/bin/node",
          cwd: "/srv/other",
          commandLine: ["node", "other.js"],
          script: "/srv/other/other.js",
          startTime: 888,
        };
        // Events in one millisecond have no order of their own: one tick between steps.
        const ask = (p: typeof proc) => {
          f.clock.t += 1;
          return f.service.resolve(f.userId, {
            instanceId: f.instanceId,
            agentClientId: "same_id",
            variable: "TOKEN",
            process: p,
          });
        };
        const asked = await ask(proc);
        f.clock.t += 1;
        const grant = await f.service.approve(f.userId, pendingRequestId(asked), { scope: { kind: "until_revoked" } });
        assert.equal((await ask(proc)).status, "granted");
        const denied = await ask(other);
        f.clock.t += 1;
        await f.service.deny(f.userId, pendingRequestId(denied));
        const call = {
          secretNames: ["TOKEN"],
          method: "GET",
          host: "api.example.com",
          path: "/v1",
          status: 200,
          bytes: 2,
          durationMs: 1,
          redacted: false,
          error: null,
          program: "/usr/bin/python3",
        };
        f.clock.t += 1;
        const cached = {
          grantId: grant.id,
          at: f.clock.t,
          agentClientId: "same_id",
          pid: proc.pid,
          program: { executable: proc.executable, script: null, cwd: proc.cwd, pid: proc.pid },
        };
        assert.equal(await f.service.recordUsage(f.userId, { uses: [cached] }), 1);
        f.clock.t += 1;
        assert.equal(
          await f.service.recordUsage(f.userId, { uses: [{ ...cached, call: { ...call, fromCache: true } }] }),
          1,
        );
        f.clock.t += 1;
        await f.service.revokeGrant(f.userId, grant.id);
        const events = (await f.service.listAudit(f.userId, { limit: 50, agent: "same_id" })).events;
        const named = events.map((e) => [
          e.action,
          e.program?.executable ?? null,
          e.program?.cwd ?? null,
          e.program?.pid ?? null,
        ]);
        const python = ["/usr/bin/python3", "/home/p/agent", 4242];
        const node = ["/usr/bin/node", "/srv/other", 5151];
        assert.deepEqual(named.reverse(), [
          ["request.created", ...python],
          ["request.approved", ...python],
          ["secret.delivered", ...python],
          ["request.created", ...node],
          ["request.denied", ...node],
          ["secret.delivered", ...python],
          ["call.made", ...python],
          ["grant.ended", "/usr/bin/python3", "/home/p/agent", null],
        ]);
        assert.equal(events.find((e) => e.action === "request.denied")?.program?.script, "/srv/other/other.js");
      } finally {
        await f.done();
      }
    });

    it("pages the audit log and filters it by agent and variable", async () => {
      const f = await fixture(engine.make);
      try {
        for (let i = 0; i < 7; i++) {
          f.clock.t += 1;
          await f.service.resolve(f.userId, {
            instanceId: f.instanceId,
            agentClientId: `agent_${i % 2}`,
            variable: `VAR_${i}`,
          });
        }
        const first = await f.service.listAudit(f.userId, { limit: 3 });
        assert.equal(first.events.length, 3);
        assert.ok(first.nextCursor);
        const second = await f.service.listAudit(f.userId, { limit: 3, before: first.nextCursor });
        assert.ok(second.events.every((e) => e.id < (first.events[2]?.id ?? "")));
        const byAgent = await f.service.listAudit(f.userId, { limit: 50, agent: "agent_1" });
        assert.equal(byAgent.events.length, 3);
        const byVar = await f.service.listAudit(f.userId, { limit: 50, variable: "var_4" });
        assert.equal(byVar.events.length, 1);
      } finally {
        await f.done();
      }
    });

    it("pyper flow: mapping_not_found creates a request; after approval scoped credentials and exchange give the value", async () => {
      const f = await fixture(engine.make);
      try {
        await f.service.setSecret(f.userId, "PY_KEY", "py-secret");
        const ident = { agentClientId: "py_agent", instanceId: f.instanceId };
        await rejectsWith(
          f.service.pyperResolveMapping({ ...ident, variableName: "py_key" }),
          404,
          "mapping_not_found",
        );
        const [req] = await f.service.listRequests(f.userId);
        assert.ok(req);
        assert.equal(req.agentClientId, "py_agent");
        await f.service.approve(f.userId, req.id, { scope: { kind: "until_revoked" } });
        const { credentialId } = await f.service.pyperResolveMapping({ ...ident, variableName: "py_key" });
        await rejectsWith(
          f.service.pyperExchange({ ...ident, piperCredentialId: credentialId }, null),
          401,
          "invalid_token",
        );
        const scoped = await f.service.pyperScopedCredentials({ ...ident, credentialIds: [credentialId] });
        assert.deepEqual(scoped.granted_credential_ids, [credentialId]);
        assert.equal(
          (await f.service.pyperExchange({ ...ident, piperCredentialId: credentialId }, null)).secret_value,
          "py-secret",
        );
        await rejectsWith(
          f.service.pyperExchange({ ...ident, piperCredentialId: credentialId }, "pst_wrong"),
          401,
          "invalid_token",
        );
        await rejectsWith(
          f.service.pyperScopedCredentials({
            agentClientId: "other",
            instanceId: f.instanceId,
            credentialIds: [credentialId],
          }),
          403,
          "permission_denied",
        );
        await f.service.revokeGrant(f.userId, credentialId);
        await rejectsWith(
          f.service.pyperExchange({ ...ident, piperCredentialId: credentialId }, null),
          403,
          "permission_denied",
        );
        await rejectsWith(
          f.service.pyperResolveMapping({ ...ident, variableName: "py_key" }),
          403,
          "permission_denied",
        );
      } finally {
        await f.done();
      }
    });

    it("one program cannot bury the person under requests: 20 pending per program (whatever client IDs it claims), then 429; another program still asks", async () => {
      const f = await fixture(engine.make);
      try {
        const flooder = { ...proc, script: "/home/p/agent/flood.py" };
        for (let i = 0; i < PENDING_LIMITS.perProgram; i++) {
          pendingRequestId(
            await f.service.resolve(f.userId, {
              instanceId: f.instanceId,
              agentClientId: `claimed_${i}`,
              variable: `V_${i}`,
              process: flooder,
            }),
          );
        }
        await rejectsWith(
          f.service.resolve(f.userId, {
            instanceId: f.instanceId,
            agentClientId: "claimed_more",
            variable: "V_MORE",
            process: flooder,
          }),
          429,
          "rate_limited",
        );
        // Asking again for something already pending is no new request: still answered.
        pendingRequestId(
          await f.service.resolve(f.userId, {
            instanceId: f.instanceId,
            agentClientId: "claimed_0",
            variable: "V_0",
            process: flooder,
          }),
        );
        pendingRequestId(
          await f.service.resolve(f.userId, {
            instanceId: f.instanceId,
            agentClientId: "claimed_0",
            variable: "V_0",
            process: { ...proc, script: "/home/p/agent/honest.py" },
          }),
        );
        // Once they expire, the program may ask again.
        f.clock.t += 61_000;
        pendingRequestId(
          await f.service.resolve(f.userId, {
            instanceId: f.instanceId,
            agentClientId: "claimed_more",
            variable: "V_MORE",
            process: flooder,
          }),
        );
      } finally {
        await f.done();
      }
    });

    it("lists many requests, grants and audit events with one query each (joins, not a query per row)", async () => {
      const f = await fixture(engine.make);
      try {
        await f.service.setSecret(f.userId, "SHARED", "v");
        // 30 agents, two variables each: 60 requests, 30 of them approved into grants.
        for (let i = 0; i < 30; i++) {
          for (const variable of ["SHARED", `OTHER_${i}`]) {
            const r = await f.service.resolve(f.userId, {
              instanceId: f.instanceId,
              agentClientId: `agent_${i}`,
              agentName: `Agent ${i}`,
              variable,
            });
            if (variable === "SHARED")
              await f.service.approve(f.userId, pendingRequestId(r), { scope: { kind: "until_revoked" } });
          }
        }
        let queries = 0;
        const counted = f.opened.db.withPlugin({
          transformQuery: (args) => {
            queries += 1;
            return args.node;
          },
          transformResult: (args) => Promise.resolve(args.result),
        });
        // The same data key: rows MAC'd under another would be refused.
        const service = createService({ db: counted, keys: f.keys, bus: createLocalBus(), now: () => f.clock.t });
        const measure = async <T>(run: () => Promise<T>): Promise<{ value: T; queries: number }> => {
          queries = 0;
          const value = await run();
          return { value, queries };
        };
        const requests = await measure(() => service.listRequests(f.userId, "all"));
        assert.equal(requests.value.length, 60);
        assert.equal(requests.queries, 1, "the request list is one query");
        assert.ok(
          requests.value.every((r) => r.agentName === `Agent ${r.agentClientId.slice("agent_".length)}`),
          "each request names its own agent",
        );
        const grants = await measure(() => service.listGrants(f.userId, true));
        assert.equal(grants.value.length, 30);
        assert.equal(grants.queries, 1, "the grant list is one query");
        assert.ok(
          grants.value.every(
            (g) => g.secretName === "SHARED" && g.agentName === `Agent ${g.agentClientId.slice("agent_".length)}`,
          ),
        );
        const audit = await measure(() => service.listAudit(f.userId, { limit: 500 }));
        assert.ok(audit.value.events.length >= 90);
        assert.equal(audit.queries, 1);
        // A usage report reads its grants in one query; then one update and one audit row per grant.
        const uses = grants.value.map((g, i) => ({
          grantId: g.id,
          at: f.clock.t + i,
          agentClientId: g.agentClientId,
          pid: 7,
        }));
        const usage = await measure(() => service.recordUsage(f.userId, { uses }));
        assert.equal(usage.value, 30);
        assert.equal(usage.queries, 1 + 2 * 30);
        // A deleted secret's grants stay listed, named "(deleted)".
        await service.deleteSecret(f.userId, "SHARED");
        assert.ok(
          (await service.listGrants(f.userId, true)).every(
            (g) => g.secretName === "(deleted)" && g.endReason === "secret_deleted",
          ),
        );
      } finally {
        await f.done();
      }
    });

    it("agent calls need the instance's own account; a revoked instance is invalid everywhere and its grants end", async () => {
      const f = await fixture(engine.make);
      try {
        await f.service.setSecret(f.userId, "KEY", "alice-value");
        const ask = (userId: string, instanceId: string) =>
          f.service.resolve(userId, { instanceId, agentClientId: "agent_x", variable: "KEY" });
        const r = await ask(f.userId, f.instanceId);
        const grant = await f.service.approve(f.userId, pendingRequestId(r), { scope: { kind: "until_revoked" } });
        assert.equal((await ask(f.userId, f.instanceId)).status, "granted");

        // Bob holds a valid credential of his own and Alice's instance ID: refused, as if unknown.
        const bob = await f.service.createUser("Bob");
        const bobInstance = await f.service.registerInstance(bob.userId, "bob's machine");
        await rejectsWith(ask(bob.userId, f.instanceId), 401, "invalid_instance");
        await rejectsWith(
          f.service.waitForRequest(
            bob.userId,
            { instanceId: f.instanceId, agentClientId: "agent_x" },
            pendingRequestId(r),
            10,
          ),
          401,
          "invalid_instance",
        );
        // Bob's own instance and the same client ID: Alice's grant never serves under Bob's account.
        await f.service.setSecret(bob.userId, "KEY", "bob-value");
        assert.equal((await ask(bob.userId, bobInstance)).status, "pending");
        // A request made on one instance cannot be waited for through another of the same account.
        const second = await f.service.registerInstance(f.userId, "second machine");
        await rejectsWith(
          f.service.waitForRequest(
            bob.userId,
            { instanceId: bobInstance, agentClientId: "agent_x" },
            pendingRequestId(r),
            10,
          ),
          404,
          "request_not_found",
        );

        // Sign-out: Bob cannot revoke Alice's instance; Alice can, and the grant ends.
        await rejectsWith(f.service.revokeInstance(bob.userId, f.instanceId), 404, "instance_not_found");
        const pyperIdent = { agentClientId: "agent_x", instanceId: f.instanceId };
        const { credentialId } = await f.service.pyperResolveMapping({ ...pyperIdent, variableName: "KEY" });
        await f.service.pyperScopedCredentials({ ...pyperIdent, credentialIds: [credentialId] });
        const pendingOnIt = await ask(f.userId, f.instanceId).then(() =>
          f.service.resolve(f.userId, { instanceId: f.instanceId, agentClientId: "agent_x", variable: "NOT_GRANTED" }),
        );
        const revoked = await f.service.revokeInstance(f.userId, f.instanceId);
        assert.deepEqual([revoked.instanceId, revoked.grantsEnded], [f.instanceId, 1]);
        assert.deepEqual(
          (await f.service.revokeInstance(f.userId, f.instanceId)).revokedAt,
          revoked.revokedAt,
          "revoking again changes nothing",
        );
        const ended = (await f.service.listGrants(f.userId, true)).find((g) => g.id === grant.id);
        assert.equal(ended?.endReason, "signed out");
        assert.equal(
          (await f.service.listRequests(f.userId, "all")).find((x) => x.id === pendingRequestId(pendingOnIt))?.status,
          "expired",
        );
        assert.equal(await f.service.instanceExists(f.userId, f.instanceId), false);
        await rejectsWith(ask(f.userId, f.instanceId), 401, "invalid_instance");
        await rejectsWith(
          f.service.pyperResolveMapping({ ...pyperIdent, variableName: "KEY" }),
          401,
          "invalid_instance",
        );
        await rejectsWith(
          f.service.pyperScopedCredentials({ ...pyperIdent, credentialIds: [credentialId] }),
          401,
          "invalid_instance",
        );
        await rejectsWith(
          f.service.pyperExchange({ ...pyperIdent, piperCredentialId: credentialId }, null),
          401,
          "invalid_instance",
        );
        // Usage reported for the ended grant of a revoked instance is not recorded.
        assert.equal(
          await f.service.recordUsage(f.userId, {
            uses: [{ grantId: grant.id, at: f.clock.t, agentClientId: "agent_x", pid: null }],
          }),
          0,
        );
        // The account's other instance keeps working.
        assert.equal((await ask(f.userId, second)).status, "pending");
      } finally {
        await f.done();
      }
    });

    it("rate-limits one agent without affecting another", async () => {
      const db = await engine.make();
      const opened = await openDatabase(db.location);
      try {
        const service = createService({
          db: opened.db,
          keys: parseDataKeys(`k1:${newDataKey()}`),
          bus: createLocalBus(),
          agentRateBurst: 3,
          agentRatePerSecond: 0.001,
        });
        const { userId } = await service.createUser("T");
        const instanceId = await service.registerInstance(userId, "m");
        for (let i = 0; i < 3; i++)
          await service.resolve(userId, { instanceId, agentClientId: "noisy", variable: "X" });
        await rejectsWith(
          service.resolve(userId, { instanceId, agentClientId: "noisy", variable: "X" }),
          429,
          "rate_limited",
        );
        assert.equal(
          (await service.resolve(userId, { instanceId, agentClientId: "quiet", variable: "X" })).status,
          "pending",
        );
      } finally {
        await opened.close();
        await db.drop();
      }
    });
  });
}

describe("data keys", () => {
  it("decrypts rows written under an older key after rotation", async () => {
    const { encryptSecret, decryptSecret } = await import("../src/server/crypto.js");
    const k1 = newDataKey();
    const k2 = newDataKey();
    const old = parseDataKeys(`k1:${k1}`);
    const row = encryptSecret(old, "u:s", "value");
    const rotated = parseDataKeys(`k2:${k2},k1:${k1}`);
    assert.equal(decryptSecret(rotated, row.keyId, "u:s", row.ciphertext), "value");
    assert.equal(encryptSecret(rotated, "u:s", "v").keyId, "k2");
    assert.throws(() => decryptSecret(rotated, row.keyId, "u:other", row.ciphertext));
    assert.throws(() => parseDataKeys("k1:c2hvcnQ="), /32 bytes/);
  });
});
