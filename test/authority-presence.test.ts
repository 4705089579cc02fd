// Proofs of presence checked by the authority itself, on SQLite and PostgreSQL: every widening route
// (approve, a grant's policy, a secret's hosts, a secret set with hosts, keeping legacy grants)
// refuses without a proof (403 presence_required) and with a proof for anything else (403
// presence_failed): another request, other terms, after its time, twice, under another key. Deny
// and revoke need none. A team authority (no approval key) takes the account password instead,
// checked and throttled like a sign-in. The Link's real client makes every call.
import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import {
  createAuthorityClient,
  signLinkPresence,
  type AuthorityClient,
  type Credentials,
} from "../src/main/core/authority/authority-client.js";
import { startAuthority, type RunningAuthority } from "../src/server/authority.js";
import { newDataKey, parseDataKeys } from "../src/server/crypto.js";
import { openDatabase } from "../src/server/db.js";
import { createOAuthService } from "../src/server/oauth.js";
import { createPresenceVerifier } from "../src/server/presence.js";
import { ServiceError } from "../src/server/service/index.js";
import { authorityPresenceAction } from "../src/shared/authority-presence.js";
import { LinkError } from "../src/shared/errors.js";
import { PRESENCE_MAC_TTL_MS } from "../src/shared/presence.js";
import { ENGINES, sqliteDatabase, type TestDatabase } from "./db-helpers.js";
import { linkSigner, newApprovalKey } from "./presence-helpers.js";

const credentials = (token: string): Credentials => ({
  bearer: () => Promise.resolve(token),
  rejected: () => undefined,
});

/** Rejects with a LinkError of `code` (the client passes the authority's presence codes through). */
async function refused(p: Promise<unknown>, code: string): Promise<void> {
  await assert.rejects(p, (err: unknown) => err instanceof LinkError && err.code === code);
}

interface World {
  authority: RunningAuthority;
  client: AuthorityClient;
  approvalKey: Buffer;
  userId: string;
  instanceId: string;
  clock: { t: number };
  /** A new pending request for `variable` from agent `agent`. */
  pending(variable: string, agent?: string): Promise<string>;
  done(): Promise<void>;
}

async function world(db: TestDatabase): Promise<World> {
  const approvalKey = newApprovalKey();
  const clock = { t: Date.now() };
  const authority = await startAuthority({
    db: db.location,
    dataKeys: parseDataKeys(`k1:${newDataKey()}`),
    approvalKey,
    host: "127.0.0.1",
    port: 0,
    tls: null,
    now: () => clock.t,
    log: () => undefined,
  });
  const { userId, linkToken } = await authority.service.createUser("Pat");
  const instanceId = await authority.service.registerInstance(userId, "m");
  const client = createAuthorityClient({ url: authority.url, credentials: credentials(linkToken) });
  return {
    authority,
    client,
    approvalKey,
    userId,
    instanceId,
    clock,
    async pending(variable, agent = "agent") {
      const r = await client.resolve({ instanceId, agentClientId: agent, variable });
      assert.equal(r.status, "pending");
      return r.requestId;
    },
    async done() {
      client.close();
      await authority.close();
      await db.drop();
    },
  };
}

for (const engine of ENGINES) {
  describe(`proofs of presence at the authority on ${engine.name}`, { skip: engine.skip }, () => {
    const worlds: World[] = [];
    const make = async (): Promise<World> => {
      const w = await world(await engine.make());
      worlds.push(w);
      return w;
    };
    after(async () => {
      for (const w of worlds) await w.done();
    });

    it("every widening route refuses without a proof (presence_required); deny and revoke need none; a valid proof passes", async () => {
      const w = await make();
      const sign = linkSigner(w.approvalKey);
      await w.authority.service.setSecret(w.userId, "TOKEN", "v1");
      const id = await w.pending("TOKEN");
      const grant = await w.client.approve(id, { scope: { kind: "until_revoked" } }, sign);
      await refused(
        w.client.updateGrantPolicy(grant.id, null, () => ({
          kind: "link-mac",
          nonce: "n".repeat(22),
          at: w.clock.t,
          mac: "A".repeat(43),
        })),
        "presence_failed",
      );
      await w.client.updateGrantPolicy(grant.id, { maxUsesPerDay: 5 }, sign);
      await w.client.setSecretHosts("TOKEN", ["api.example.com"], sign);
      await w.client.setSecret("TOKEN", "v2", ["api.example.com"], sign);
      // A value alone widens nothing: no proof asked.
      await w.client.setSecret("TOKEN", "v3", undefined, () => assert.fail("no proof is asked for a value alone"));
      const denied = await w.pending("TOKEN", "other");
      await w.client.deny(denied);
      await w.client.revokeGrant(grant.id);
    });

    it("refuses a widening call that carries no proof at all: 403 presence_required on each route", async () => {
      const w = await make();
      await w.authority.service.setSecret(w.userId, "TOKEN", "v1");
      const id = await w.pending("TOKEN");
      const grant = await w.client.approve(id, { scope: { kind: "until_revoked" } }, linkSigner(w.approvalKey));
      const id2 = await w.pending("TOKEN", "b");
      // The route table's own calls, without `presence`.
      await refused(
        w.client.call("approveRequest", { params: { id: id2 }, body: { scope: { kind: "once" } } }),
        "presence_required",
      );
      await refused(
        w.client.call("updateGrantPolicy", { params: { id: grant.id }, body: { policy: null } }),
        "presence_required",
      );
      await refused(
        w.client.call("setSecretHosts", { params: { name: "TOKEN" }, body: { hosts: null } }),
        "presence_required",
      );
      await refused(
        w.client.call("setSecret", { params: { name: "TOKEN" }, body: { value: "x", hosts: null } }),
        "presence_required",
      );
      await refused(w.client.call("keepLegacyGrants", { body: { grantIds: [grant.id] } }), "presence_required");
      // Nothing changed.
      assert.equal(
        (await w.client.listRequests()).some((r) => r.id === id2),
        true,
      );
    });

    it("replay: a proof for request A is refused for request B, for other terms, after its time, twice, and under another key", async () => {
      const w = await make();
      await w.authority.service.setSecret(w.userId, "TOKEN", "v1");
      const a = await w.pending("TOKEN", "a");
      const b = await w.pending("TOKEN", "b");
      const termsA = { scope: { kind: "once" as const } };
      const proofA = signLinkPresence(
        w.approvalKey,
        authorityPresenceAction("approveRequest", { requestId: a, ...termsA }),
        w.clock.t,
      );
      // For B.
      await refused(
        w.client.approve(b, termsA, () => proofA),
        "presence_failed",
      );
      // Other terms for A: wider scope, another binding, read instead of use.
      await refused(
        w.client.approve(a, { scope: { kind: "until_revoked" } }, () => proofA),
        "presence_failed",
      );
      await refused(
        w.client.approve(a, { ...termsA, binding: "client" }, () => proofA),
        "presence_failed",
      );
      // Another key (an agent's guess, or a previous child's).
      await refused(
        w.client.approve(a, termsA, (action) => signLinkPresence(newApprovalKey(), action, w.clock.t)),
        "presence_failed",
      );
      // After its time.
      w.clock.t += PRESENCE_MAC_TTL_MS + 1;
      await refused(
        w.client.approve(a, termsA, () => proofA),
        "presence_failed",
      );
      w.clock.t -= PRESENCE_MAC_TTL_MS + 1;
      // The right one works once; a second use of the same proof is refused.
      await w.client.approve(a, termsA, () => proofA);
      const c = await w.pending("TOKEN", "c");
      const proofC = signLinkPresence(
        w.approvalKey,
        authorityPresenceAction("approveRequest", { requestId: c, ...termsA }),
        w.clock.t,
      );
      await w.client.approve(c, termsA, () => proofC);
      // The same proof twice: refused before the request is even looked at (a fresh one gets the request's own answer).
      await refused(
        w.client.approve(c, termsA, () => proofC),
        "presence_failed",
      );
      await refused(w.client.approve(c, termsA, linkSigner(w.approvalKey)), "conflict");
      // Policy and hosts proofs name their grant, secret and terms too.
      const grant = (await w.client.listGrants())[0];
      assert.ok(grant);
      const policyProof = signLinkPresence(
        w.approvalKey,
        authorityPresenceAction("updateGrantPolicy", { grantId: grant.id, policy: { maxUsesPerDay: 3 } }),
      );
      await refused(
        w.client.updateGrantPolicy(grant.id, null, () => policyProof),
        "presence_failed",
      );
      await w.client.updateGrantPolicy(grant.id, { maxUsesPerDay: 3 }, () => policyProof);
      await refused(
        w.client.updateGrantPolicy(grant.id, { maxUsesPerDay: 3 }, () => policyProof),
        "presence_failed",
      );
      await w.authority.service.setSecret(w.userId, "OTHER", "v");
      const hostsProof = signLinkPresence(
        w.approvalKey,
        authorityPresenceAction("setSecretHosts", { name: "TOKEN", hosts: ["api.example.com"] }),
      );
      await refused(
        w.client.setSecretHosts("OTHER", ["api.example.com"], () => hostsProof),
        "presence_failed",
      );
      await refused(
        w.client.setSecretHosts("TOKEN", null, () => hostsProof),
        "presence_failed",
      );
      await w.client.setSecretHosts("TOKEN", ["api.example.com"], () => hostsProof);
    });

    it("keeping legacy grants needs a proof over exactly those ids; a grant approved with a proof is not legacy", async () => {
      const w = await make();
      await w.authority.service.setSecret(w.userId, "TOKEN", "v1");
      const g1 = await w.client.approve(
        await w.pending("TOKEN", "a"),
        { scope: { kind: "until_revoked" }, binding: "client" },
        linkSigner(w.approvalKey),
      );
      assert.deepEqual(await w.client.listLegacyGrants(), []);
      const keepOne = signLinkPresence(
        w.approvalKey,
        authorityPresenceAction("keepLegacyGrants", { grantIds: [g1.id] }),
      );
      await refused(
        w.client.keepLegacyGrants([g1.id, "gr_other"], () => keepOne),
        "presence_failed",
      );
      assert.equal(await w.client.keepLegacyGrants([g1.id], () => keepOne), 0, "not legacy: nothing to keep");
    });
  });
}

describe("a team authority (no approval key) takes the account password as the proof, throttled like a sign-in", () => {
  it("right password passes, wrong fails with presence_failed, a link-mac is refused, and repeated wrong ones are slowed (429)", async () => {
    const db = await sqliteDatabase();
    const opened = await openDatabase(db.location);
    try {
      let t = Date.now();
      const oauth = createOAuthService({ db: opened.db, keys: parseDataKeys(`k1:${newDataKey()}`), now: () => t });
      const userId = await oauth.signUp("pat@example.com", "correct horse battery", "Pat");
      const verifier = createPresenceVerifier({
        approvalKey: null,
        now: () => t,
        checkPassword: (u, p, c) => oauth.checkPassword(u, p, c),
      });
      const action = authorityPresenceAction("approveRequest", { requestId: "req_1", scope: { kind: "once" } });
      const code = async (p: Promise<void>): Promise<string> => {
        try {
          await p;
          return "ok";
        } catch (err) {
          assert.ok(err instanceof ServiceError);
          return `${err.status} ${err.code}`;
        }
      };
      assert.equal(await code(verifier.verify(userId, action, undefined, "10.0.0.1")), "403 presence_required");
      assert.equal(
        await code(
          verifier.verify(userId, action, { kind: "password", password: "correct horse battery" }, "10.0.0.1"),
        ),
        "ok",
      );
      assert.equal(
        await code(verifier.verify(userId, action, signLinkPresence(newApprovalKey(), action), "10.0.0.1")),
        "403 presence_failed",
      );
      for (let i = 0; i < 5; i++)
        assert.equal(
          await code(verifier.verify(userId, action, { kind: "password", password: `wrong ${i}` }, "10.0.0.1")),
          "403 presence_failed",
        );
      // The sixth try from this source within a minute is not even checked (sign-in throttling).
      assert.equal(
        await code(
          verifier.verify(userId, action, { kind: "password", password: "correct horse battery" }, "10.0.0.1"),
        ),
        "429 too_many_attempts",
      );
      // Another source is not slowed by this one's failures.
      assert.equal(
        await code(
          verifier.verify(userId, action, { kind: "password", password: "correct horse battery" }, "10.9.0.1"),
        ),
        "ok",
      );
      t += 61_000;
      assert.equal(
        await code(
          verifier.verify(userId, action, { kind: "password", password: "correct horse battery" }, "10.0.0.1"),
        ),
        "ok",
      );
    } finally {
      await opened.close();
      await db.drop();
    }
  });
});
