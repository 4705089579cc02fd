// The embedded authority gets its keys over a pipe: neither its argv nor its environment (both
// readable by every process of the user in /proc) holds the data key or the approval key; each
// launch, a restart included, has a new approval key, and the old one's proofs are refused. A
// rotation at start leaves the keychain with only the new data key and a new Link token. Real
// parts: the Node child, the test run's gnome-keyring, the Link's authority client.
import assert from "node:assert/strict";
import fs from "node:fs/promises";
import { after, describe, it } from "node:test";
import pino from "pino";
import {
  createAuthorityClient,
  signLinkPresence,
  type AuthorityClient,
} from "../src/main/core/authority/authority-client.js";
import { startEmbeddedAuthority, type EmbeddedAuthority } from "../src/main/core/authority/embedded-authority.js";
import { createKeychainStore } from "../src/main/core/runtime/keychain.js";
import { authorityPresenceAction } from "../src/shared/authority-presence.js";
import { LinkError } from "../src/shared/errors.js";
import { tempDir, testLinkEnv, uniqueProfile, waitFor } from "./helpers.js";

const log = pino({ level: "silent" });
const cleanup: Array<() => Promise<void>> = [];
after(async () => {
  for (const c of cleanup.reverse()) await c();
});

/** The embedded authority's child of this process: pid, argv and environment as any same-user process reads them. */
async function authorityChild(): Promise<{ pid: number; cmdline: string; environ: string }> {
  for (const entry of await fs.readdir("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = await fs.readFile(`/proc/${entry}/stat`, "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      const cmdline = (await fs.readFile(`/proc/${entry}/cmdline`, "utf8")).replaceAll("\0", " ");
      if (ppid === process.pid && cmdline.includes(" serve "))
        return {
          pid: Number(entry),
          cmdline,
          environ: (await fs.readFile(`/proc/${entry}/environ`, "utf8")).replaceAll("\0", "\n"),
        };
    } catch {
      // A process that ended while being read.
    }
  }
  throw new Error("no embedded authority child found");
}

function clientFor(authority: { url: string; pin: string }, token: string): AuthorityClient {
  const client = createAuthorityClient({
    url: authority.url,
    pin: authority.pin,
    credentials: { bearer: () => Promise.resolve(token), rejected: () => undefined },
  });
  cleanup.push(() => {
    client.close();
    return Promise.resolve();
  });
  return client;
}

describe("the embedded authority's keys travel over a pipe", () => {
  it(
    "argv and environment hold no key; each launch has its own approval key; a rotation keeps only the new key and a new token",
    { timeout: 90_000 },
    async () => {
      const dataDir = await tempDir("piper-embedded-");
      const keychain = createKeychainStore({ env: testLinkEnv(), profile: uniqueProfile() });
      cleanup.push(async () => {
        for (const item of ["authority-data-key", "authority-link-token", "authority-settings"] as const)
          await keychain.delete(item);
        keychain.close?.();
        await fs.rm(dataDir, { recursive: true, force: true });
      });
      let restarted: { url: string; pin: string } | null = null;
      const embedded: EmbeddedAuthority = await startEmbeddedAuthority({
        dataDir,
        env: testLinkEnv(),
        keychain,
        log,
        port: 0,
        onRestart: (next) => (restarted = next),
      });
      cleanup.push(() => embedded.stop());
      const dataKey = await keychain.get("authority-data-key");
      assert.ok(dataKey);
      const first = embedded.approvalKey();
      assert.equal(first.length, 32);

      const child = await authorityChild();
      assert.ok(child.cmdline.includes("--keys-on-stdin"));
      for (const secret of [dataKey, first.toString("base64url"), first.toString("base64")]) {
        assert.ok(!child.cmdline.includes(secret), "argv holds no key");
        assert.ok(!child.environ.includes(secret), "the environment holds no key");
      }
      assert.ok(!child.environ.includes("PIPER_AUTHORITY_DATA_KEYS"));

      // The approval key works for this child; after a restart, only the new one does.
      const client = clientFor(embedded, embedded.linkToken);
      const { instanceId } = await client.registerInstance("m");
      await client.setSecret("TOKEN", "v", undefined, () => assert.fail("no proof for a value alone"));
      const a = await client.resolve({ instanceId, agentClientId: "a", variable: "TOKEN" });
      assert.ok(a.status === "pending");
      const old = (action: string) => signLinkPresence(first, action);
      process.kill(child.pid, "SIGKILL");
      await waitFor(() => restarted !== null, "the embedded authority restarts", 30_000);
      assert.ok(restarted);
      const second = embedded.approvalKey();
      assert.ok(!second.equals(first), "a restart makes a new approval key");
      const after = clientFor(restarted, embedded.linkToken);
      await assert.rejects(
        after.approve(a.requestId, { scope: { kind: "once" } }, old),
        (err: unknown) => err instanceof LinkError && err.code === "presence_failed",
      );
      await after.approve(a.requestId, { scope: { kind: "once" } }, (action) =>
        signLinkPresence(embedded.approvalKey(), action),
      );
      assert.equal(
        authorityPresenceAction("keepLegacyGrants", { grantIds: ["b", "a", "a"] }),
        authorityPresenceAction("keepLegacyGrants", { grantIds: ["a", "b"] }),
      );
      await embedded.stop();

      // Rotation at the next start: a new key id, only it kept, a new Link token, the value still readable.
      const rotated = await startEmbeddedAuthority({
        dataDir,
        env: testLinkEnv(),
        keychain,
        log,
        port: 0,
        rotateKeys: true,
      });
      cleanup.push(() => rotated.stop());
      const stored = await keychain.get("authority-data-key");
      assert.ok(stored !== null && stored.startsWith("k2:") && !stored.includes(","), "only the new key is kept");
      assert.ok(!stored.includes(dataKey));
      assert.notEqual(rotated.linkToken, embedded.linkToken);
      assert.equal(await keychain.get("authority-link-token"), rotated.linkToken);
      const fresh = clientFor(rotated, rotated.linkToken);
      const b = await fresh.resolve({ instanceId, agentClientId: "b", variable: "TOKEN" });
      assert.ok(b.status === "pending");
      await fresh.approve(b.requestId, { scope: { kind: "once" } }, (action) =>
        signLinkPresence(rotated.approvalKey(), action),
      );
      const got = await fresh.resolve({ instanceId, agentClientId: "b", variable: "TOKEN" });
      assert.ok(got.status === "granted");
      assert.equal(got.value, "v");
      await assert.rejects(
        clientFor(rotated, embedded.linkToken).listGrants(),
        (err: unknown) => err instanceof LinkError && err.code === "unauthorized",
      );
    },
  );
});
