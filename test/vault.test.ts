// The locked vault and the presence gate, through the core's own API as the window and the CLI use
// it (DESIGN.md section 9): a Link that starts locked serves nothing, a wrong passphrase or PIN is
// refused and counted, too many wrong PINs lock the Link, idle time locks it, and what the keychain
// holds is sealed — a value planted there in plaintext is ignored.
import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import { LinkError } from "../src/shared/errors.js";
import { createHmac } from "node:crypto";
import { PIN_TRIES_ALLOWED, pinMacMessage, presenceAction } from "../src/shared/presence.js";
import { deriveKey } from "../src/main/core/vault/vault-crypto.js";
import { PiperLinkLockedError, createPiperClient } from "@piper-link/sdk";
import { createKeychainStore } from "../src/main/core/runtime/keychain.js";
import {
  connectAgent,
  startTestLink,
  TEST_PASSPHRASE,
  TEST_PIN,
  TEST_PROOF,
  testLinkEnv,
  uniqueProfile,
  type TestLink,
} from "./helpers.js";

const started: TestLink[] = [];
after(async () => {
  for (const t of started) await t.stop();
});

async function link(options: Parameters<typeof startTestLink>[0] = {}): Promise<TestLink> {
  const t = await startTestLink({ authority: null, ...options });
  started.push(t);
  return t;
}

function code(err: unknown): string {
  return err instanceof LinkError ? err.code : `not a LinkError: ${String(err)}`;
}

describe("the vault", () => {
  it("a Link started without the passphrase is locked: agents get `locked`, pyper-sdk's context endpoint 503, the SDK a PiperLinkLockedError", async () => {
    const t = await link({ unlock: null });
    const status = t.link.status();
    assert.equal(status.vault.state, "new");
    const agent = await connectAgent(t.url);
    const hello = await agent.hello();
    assert.equal(hello.type === "error" ? hello.code : hello.type, "locked");
    agent.close();
    const res = await fetch(`http://127.0.0.1:${t.port}/piper-link-context`);
    assert.equal(res.status, 503);
    assert.equal(((await res.json()) as { error: string }).error, "locked");
    const piper = createPiperClient({ clientId: "agent_locked", linkUrl: t.url, fallbackToEnv: false });
    await assert.rejects(
      piper.getSecret("OPENAI_API_KEY"),
      (err: unknown) => err instanceof PiperLinkLockedError && err.code === "locked" && err.retryable,
    );
    piper.close();
  });

  it("a first run refuses a weak passphrase, then creates the vault; a wrong passphrase does not unlock, the right one does", async () => {
    const t = await link({ unlock: null });
    await assert.rejects(
      t.link.api.createVault({ passphrase: "short" }),
      (err: unknown) => code(err) === "bad_request",
    );
    await assert.rejects(
      t.link.api.createVault({ passphrase: "aaaaaaaaaaaaaaaa" }),
      (err: unknown) => code(err) === "bad_request",
    );
    const created = await t.link.api.createVault({ passphrase: TEST_PASSPHRASE, pin: TEST_PIN });
    assert.equal(created.vault.state, "unlocked");
    assert.deepEqual(created.vault.proofs, ["pin", "passphrase"]);
    await t.link.api.lock({});
    assert.equal(t.link.status().vault.state, "locked");
    await assert.rejects(
      t.link.api.unlock({ passphrase: "not the passphrase at all" }),
      (err: unknown) => code(err) === "presence_failed",
    );
    assert.equal((await t.link.api.unlock({ passphrase: TEST_PASSPHRASE })).vault.state, "unlocked");
  });

  it("what the keychain holds is sealed, and a plaintext value planted there is ignored", async () => {
    const profile = uniqueProfile();
    const raw = createKeychainStore({ env: testLinkEnv(), profile });
    const t = await link({ profile, keychain: raw });
    await t.link.api.setInstanceId({ instanceId: "inst_sealed_1234" });
    const stored = await raw.get("instance-id");
    assert.ok(stored?.startsWith("pls1."), `stored as ${stored}`);
    assert.ok(!(stored ?? "").includes("inst_sealed_1234"));
    // Another program of the user writes its own instance ID in plaintext: the Link does not take it.
    await raw.set("instance-id", "inst_planted_by_agent");
    await t.link.api.lock({});
    await t.link.api.unlock({ passphrase: TEST_PASSPHRASE });
    assert.equal(t.link.status().state, "logged_out");
  });

  it("an existing profile's plaintext items are sealed at its first unlock, and nothing is lost", async () => {
    const profile = uniqueProfile();
    const raw = createKeychainStore({ env: testLinkEnv(), profile });
    await raw.set("instance-id", "inst_from_before_1234");
    const t = await link({ profile, keychain: raw });
    assert.equal(t.link.status().state, "ready");
    assert.match(t.link.status().instanceIdRedacted ?? "", /1234$/);
    assert.ok((await raw.get("instance-id"))?.startsWith("pls1."));
  });
});

describe("the presence gate", () => {
  it("approving needs a proof: none is `presence_required`; wrong PINs are counted, slowed and lock the Link at the limit", async () => {
    let clock = Date.now();
    const t = await link({ now: () => clock });
    const approve = (presence?: { method: "pin"; pin: string }) =>
      t.link.api.approveRequest({
        requestId: "req_whatever",
        scope: { kind: "once" },
        ...(presence !== undefined ? { presence } : {}),
      });
    await assert.rejects(approve(), (err: unknown) => code(err) === "presence_required");
    await assert.rejects(
      approve({ method: "pin", pin: "000000" }),
      (err: unknown) => code(err) === "presence_failed" && /4 tries left/.test((err as Error).message),
    );
    // Straight away again: refused unchecked (the wait after a wrong PIN).
    await assert.rejects(approve({ method: "pin", pin: TEST_PIN }), (err: unknown) => code(err) === "rate_limited");
    for (let i = 2; i <= PIN_TRIES_ALLOWED; i++) {
      clock += 60_000;
      await assert.rejects(
        approve({ method: "pin", pin: "000000" }),
        (err: unknown) => code(err) === (i === PIN_TRIES_ALLOWED ? "locked" : "presence_failed"),
      );
    }
    const status = t.link.status();
    assert.equal(status.vault.state, "locked");
    assert.equal(status.vault.lockedReason, "too_many_wrong_pins");
    clock += 60_000;
    await assert.rejects(approve({ method: "pin", pin: TEST_PIN }), (err: unknown) => code(err) === "locked");
    await t.link.api.unlock({ passphrase: TEST_PASSPHRASE });
    assert.equal(t.link.status().vault.pinFailures, 0);
  });

  it("a captured PIN proof (the CLI's pin-mac) is worthless for another request, other terms, or a second time", async () => {
    let clock = Date.now();
    const t = await link({ now: () => clock });
    const terms = { requestId: "req_A", scope: { kind: "once" as const } };
    const challenge = await t.link.api.pinChallenge({ method: "approveRequest", params: terms });
    // What a relay on the control channel would see: the challenge and the MAC, never the PIN.
    const key = await deriveKey(TEST_PIN, { name: "scrypt", ...challenge.kdf });
    const mac = createHmac("sha256", key)
      .update(pinMacMessage(challenge.nonce, presenceAction("approveRequest", terms)))
      .digest("base64url");
    const captured = { method: "pin-mac" as const, challengeId: challenge.challengeId, mac };
    // Replayed for another request: refused (and the challenge is used up by the attempt).
    await assert.rejects(
      t.link.api.approveRequest({ requestId: "req_B", scope: { kind: "once" }, presence: captured }),
      (err: unknown) =>
        code(err) === "presence_failed" && /another request or other terms/.test((err as Error).message),
    );
    await assert.rejects(
      t.link.api.approveRequest({ ...terms, presence: captured }),
      (err: unknown) => code(err) === "presence_failed" && /expired or was already used/.test((err as Error).message),
    );
    // A fresh challenge for other terms, answered with the MAC computed for the first terms: refused.
    clock += 60_000;
    const wider = await t.link.api.pinChallenge({
      method: "approveRequest",
      params: { ...terms, scope: { kind: "until_revoked" } },
    });
    await assert.rejects(
      t.link.api.approveRequest({
        ...terms,
        scope: { kind: "until_revoked" },
        presence: { method: "pin-mac", challengeId: wider.challengeId, mac },
      }),
      (err: unknown) => code(err) === "presence_failed",
    );
    // The right MAC for the right call passes the gate (the request itself does not exist: not_found, not a presence error).
    clock += 60_000;
    const good = await t.link.api.pinChallenge({ method: "approveRequest", params: terms });
    const goodMac = createHmac("sha256", key)
      .update(pinMacMessage(good.nonce, presenceAction("approveRequest", terms)))
      .digest("base64url");
    await assert.rejects(
      t.link.api.approveRequest({
        ...terms,
        presence: { method: "pin-mac", challengeId: good.challengeId, mac: goodMac },
      }),
      (err: unknown) => !["presence_failed", "presence_required", "rate_limited", "locked"].includes(code(err)),
    );
  });

  it("wrong PINs are remembered across an unattended restart (restarting buys no new guesses); the person's own unlock clears them", async () => {
    const t = await link();
    await assert.rejects(
      t.link.api.approveRequest({
        requestId: "req_x",
        scope: { kind: "once" },
        presence: { method: "pin", pin: "111111" },
      }),
      (err: unknown) => code(err) === "presence_failed",
    );
    await t.link.stop();
    const again = await link({
      profile: t.profile,
      keychain: t.keychain,
      paths: t.paths,
      unlock: { passphrase: TEST_PASSPHRASE, unattended: true },
    });
    assert.equal(again.link.status().vault.pinFailures, 1);
    assert.equal(again.link.status().vault.unattended, true);
    await again.link.api.lock({});
    await again.link.api.unlock({ passphrase: TEST_PASSPHRASE });
    assert.equal(again.link.status().vault.pinFailures, 0);
  });

  it("deny, revoke and lock need no proof; widening a secret's hosts does, narrowing does not", async () => {
    const t = await link({ authority: { kind: "embedded" } });
    await t.link.api.devSignIn({});
    await t.link.api.setSecret({
      name: "API_KEY",
      value: "sk-1",
      hosts: ["api.example.com", "b.example.com"],
      presence: TEST_PROOF,
    });
    await t.link.api.setSecretHosts({ name: "API_KEY", hosts: ["api.example.com"] });
    await assert.rejects(
      t.link.api.setSecretHosts({ name: "API_KEY", hosts: ["evil.example.net"] }),
      (err: unknown) => code(err) === "presence_required",
    );
    await assert.rejects(
      t.link.api.setSecretHosts({ name: "API_KEY", hosts: null }),
      (err: unknown) => code(err) === "presence_required",
    );
    await assert.rejects(
      t.link.api.denyRequest({ requestId: "req_none" }),
      (err: unknown) => code(err) !== "presence_required",
    );
    await t.link.api.updateSettings({ notifications: true });
    await assert.rejects(
      t.link.api.updateSettings({ notifications: false }),
      (err: unknown) => code(err) === "presence_required",
    );
    assert.equal(
      (await t.link.api.updateSettings({ notifications: false, presence: TEST_PROOF })).notifications,
      false,
    );
    assert.equal((await t.link.api.lock({})).vault.state, "locked");
  });

  it("locks after the idle time without the person; agent traffic does not count as the person", async () => {
    let clock = Date.now();
    const t = await link({ now: () => clock, idleCheckMs: 20 });
    assert.equal(t.link.status().vault.idleLockMinutes, 12 * 60);
    await assert.rejects(
      t.link.api.setIdleLock({ minutes: 24 * 60 }),
      (err: unknown) => code(err) === "presence_required",
    );
    await t.link.api.setIdleLock({ minutes: 5 });
    clock += 4 * 60_000;
    const agent = await connectAgent(t.url);
    await agent.hello();
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(t.link.status().vault.state, "unlocked");
    clock += 2 * 60_000;
    const deadline = Date.now() + 5000;
    while (t.link.status().vault.state !== "locked" && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 20));
    assert.equal(t.link.status().vault.lockedReason, "idle");
    const pushed = await agent.next((m) => m.type === "context");
    assert.equal(pushed.type === "context" ? pushed.reason : null, "locked");
    agent.close();
  });
});
