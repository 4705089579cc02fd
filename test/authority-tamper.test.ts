// The authority does not trust its own files. An agent running as the person can write the SQLite
// file with better-sqlite3 (as it would with sqlite3): a grant row or a token row it inserts is not
// honoured, and a grant whose mode or a secret whose hosts it widens in the file is refused. An
// upgraded database is sealed at its first start with a key (its grants become legacy, its token
// hashes keyed), and a Link that knows the database was sealed refuses to adopt unMAC'd rows. A
// rotation moves everything to a new data key and replaces every credential.
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { after, describe, it } from "node:test";
import SQLite from "better-sqlite3";
import {
  createAuthorityClient,
  type AuthorityClient,
  type Credentials,
} from "../src/main/core/authority/authority-client.js";
import { startAuthority, type RunningAuthority } from "../src/server/authority.js";
import { newDataKey, parseDataKeys } from "../src/server/crypto.js";
import { openDatabase } from "../src/server/db.js";
import { LinkError } from "../src/shared/errors.js";
import { sqliteDatabase, type TestDatabase } from "./db-helpers.js";
import { linkSigner, newApprovalKey } from "./presence-helpers.js";

const credentials = (token: string): Credentials => ({
  bearer: () => Promise.resolve(token),
  rejected: () => undefined,
});
const approvalKey = newApprovalKey();
const sign = linkSigner(approvalKey);

const open: Array<() => Promise<void>> = [];
after(async () => {
  for (const close of open.reverse()) await close();
});

async function serve(
  db: TestDatabase,
  dataKeys: string,
  extra: Partial<Parameters<typeof startAuthority>[0]> = {},
): Promise<{ authority: RunningAuthority; logs: string[] }> {
  const logs: string[] = [];
  const authority = await startAuthority({
    db: db.location,
    dataKeys: parseDataKeys(dataKeys),
    approvalKey,
    host: "127.0.0.1",
    port: 0,
    tls: null,
    log: (msg, fields) => logs.push(`${msg} ${JSON.stringify(fields ?? {})}`),
    ...extra,
  });
  open.push(() => authority.close());
  return { authority, logs };
}

function clientOf(authority: RunningAuthority, token: string): AuthorityClient {
  const client = createAuthorityClient({ url: authority.url, credentials: credentials(token) });
  open.push(() => {
    client.close();
    return Promise.resolve();
  });
  return client;
}

async function unauthorized(p: Promise<unknown>): Promise<void> {
  await assert.rejects(p, (err: unknown) => err instanceof LinkError && err.code === "unauthorized");
}

describe("an agent that writes the SQLite file", () => {
  it("inserts a grant row and a token row: neither is honoured, and both are logged as tampering", async () => {
    const db = await sqliteDatabase();
    open.push(() => db.drop());
    const { authority, logs } = await serve(db, `k1:${newDataKey()}`);
    const { userId, linkToken } = await authority.service.createUser("Pat");
    const instanceId = await authority.service.registerInstance(userId, "m");
    await authority.service.setSecret(userId, "OPENAI_API_KEY", "sk-secret");
    const client = clientOf(authority, linkToken);
    const first = await client.resolve({ instanceId, agentClientId: "evil", variable: "OPENAI_API_KEY" });
    assert.equal(first.status, "pending");

    const file = new SQLite(db.location);
    try {
      const agent = file.prepare("select id from agents where client_id = ?").get("evil") as { id: string };
      const secret = file.prepare("select id from secrets where name = ?").get("OPENAI_API_KEY") as { id: string };
      // A grant as the authority would write one, without the key to MAC it (with a made-up MAC too).
      const insert = file.prepare(
        "insert into grants (id, user_id, agent_id, variable, secret_id, scope, expires_at, instance_id, created_at, binding, legacy, mac) values (?, ?, ?, ?, ?, 'until_revoked', null, ?, ?, 'client', 0, ?)",
      );
      insert.run("gr_forged1", userId, agent.id, "openai_api_key", secret.id, instanceId, Date.now(), null);
      insert.run(
        "gr_forged2",
        userId,
        agent.id,
        "openai_api_key",
        secret.id,
        instanceId,
        Date.now(),
        `k1.${randomBytes(32).toString("base64url")}`,
      );
      // A Link token of its own: the old unkeyed hash, and a keyed-looking one.
      const token = `plt_${randomBytes(32).toString("base64url")}`;
      const sha = createHash("sha256").update(token).digest("hex");
      file
        .prepare("insert into link_tokens (token_hash, user_id, label, created_at, mac) values (?, ?, 'mine', ?, null)")
        .run(sha, userId, Date.now());
      file
        .prepare("insert into link_tokens (token_hash, user_id, label, created_at, mac) values (?, ?, 'mine', ?, null)")
        .run(`k1.${sha}`, userId, Date.now());

      const again = await client.resolve({ instanceId, agentClientId: "evil", variable: "OPENAI_API_KEY" });
      assert.equal(again.status, "pending", "a forged grant delivers nothing");
      assert.deepEqual(
        (await client.listGrants(true)).map((g) => g.id),
        [],
        "and is not listed",
      );
      await unauthorized(clientOf(authority, token).listGrants());
      assert.ok(
        logs.some((l) => l.startsWith("tampering") && l.includes("gr_forged1")),
        logs.join("\n"),
      );
    } finally {
      file.close();
    }
  });

  it("widens a real grant's mode, binding or destinations, a secret's hosts or name in the file: refused", async () => {
    const db = await sqliteDatabase();
    open.push(() => db.drop());
    const { authority } = await serve(db, `k1:${newDataKey()}`);
    const { userId, linkToken } = await authority.service.createUser("Pat");
    const instanceId = await authority.service.registerInstance(userId, "m");
    await authority.service.setSecret(userId, "TOKEN", "v-token");
    await authority.service.setSecret(userId, "CHEAP", "v-cheap");
    const client = clientOf(authority, linkToken);
    const use = { method: "GET", url: "https://api.example.com/v1" };
    const pending = await client.resolve({ instanceId, agentClientId: "evil", variable: "TOKEN", use });
    assert.equal(pending.status, "pending");
    const grant = await client.approve(
      pending.requestId,
      {
        scope: { kind: "until_revoked" },
        binding: "client",
        mode: { kind: "use", destinations: [{ host: "api.example.com" }] },
      },
      sign,
    );
    const served = await client.resolve({ instanceId, agentClientId: "evil", variable: "TOKEN", use });
    assert.equal(served.status, "granted", "the real grant serves its call");

    const file = new SQLite(db.location);
    try {
      // Use-only to read.
      const mode = file.prepare("select mode from grants where id = ?").get(grant.id) as { mode: string };
      file.prepare("update grants set mode = null where id = ?").run(grant.id);
      const read = await client.resolve({ instanceId, agentClientId: "evil", variable: "TOKEN" });
      assert.equal(read.status, "pending", "a grant whose mode was widened in the file serves nothing");
      // Another destination.
      file
        .prepare("update grants set mode = ? where id = ?")
        .run(JSON.stringify({ kind: "use", destinations: [{ host: "evil.example" }] }), grant.id);
      assert.equal(
        (
          await client.resolve({
            instanceId,
            agentClientId: "evil",
            variable: "TOKEN",
            use: { method: "GET", url: "https://evil.example/x" },
          })
        ).status,
        "pending",
      );
      // Put back exactly: honoured again (the MAC covers the terms, nothing else).
      file.prepare("update grants set mode = ? where id = ?").run(mode.mode, grant.id);
      assert.equal(
        (await client.resolve({ instanceId, agentClientId: "evil", variable: "TOKEN", use })).status,
        "granted",
      );
      // Re-point the grant's agent row to another client ID.
      file.prepare("update agents set client_id = 'other' where client_id = 'evil'").run();
      assert.equal(
        (await client.resolve({ instanceId, agentClientId: "other", variable: "TOKEN", use })).status,
        "pending",
      );
      file.prepare("update agents set client_id = 'evil' where client_id = 'other'").run();
      // A secret's hosts widened in the file: the secret is no longer there for anyone.
      await client.setSecretHosts("TOKEN", ["api.example.com"], sign);
      file.prepare("update secrets set hosts = null where name = 'TOKEN'").run();
      assert.ok(!(await client.listSecrets()).some((s) => s.name === "TOKEN"));
      assert.notEqual(
        (await client.resolve({ instanceId, agentClientId: "evil", variable: "TOKEN", use })).status,
        "granted",
      );
      // Names swapped in the file: the person's yes for CHEAP must not hand out TOKEN.
      file.prepare("update secrets set name = 'CHEAP2' where name = 'CHEAP'").run();
      assert.ok(!(await client.listSecrets()).some((s) => s.name === "CHEAP2"));
    } finally {
      file.close();
    }
  });
});

describe("upgrade and rotation", () => {
  it("a database from before row MACs is sealed at its first start: grants become legacy and keep serving, old token hashes keep working; kept with a proof", async () => {
    const db = await sqliteDatabase();
    open.push(() => db.drop());
    // What an older version left: the tables as they were (the migration adds columns), rows without MACs, unkeyed hashes.
    const opened = await openDatabase(db.location);
    await opened.close();
    const file = new SQLite(db.location);
    const t = Date.now();
    const token = `plt_${randomBytes(32).toString("base64url")}`;
    file.prepare("insert into users (id, display_name, created_at) values ('usr_1', 'Pat', ?)").run(t);
    file
      .prepare("insert into link_tokens (token_hash, user_id, label, created_at) values (?, 'usr_1', 'local', ?)")
      .run(createHash("sha256").update(token).digest("hex"), t);
    file
      .prepare(
        "insert into instances (id, user_id, name, created_at, last_seen_at) values ('inst_1', 'usr_1', 'm', ?, ?)",
      )
      .run(t, t);
    file
      .prepare(
        "insert into agents (id, user_id, client_id, first_seen_at, last_seen_at) values ('ag_1', 'usr_1', 'old-agent', ?, ?)",
      )
      .run(t, t);
    file.close();
    const dataKey = newDataKey();
    {
      // The secret is written through a service (it must be encrypted), then its MAC removed as an old row would be.
      const { authority } = await serve(db, `k1:${dataKey}`, { adoptUnsealed: true });
      await authority.service.setSecret("usr_1", "TOKEN", "v-old");
      await authority.close();
      open.pop();
    }
    const strip = new SQLite(db.location);
    strip.prepare("update secrets set mac = null").run();
    strip
      .prepare("update link_tokens set token_hash = ?, mac = null")
      .run(createHash("sha256").update(token).digest("hex"));
    strip
      .prepare(
        "insert into grants (id, user_id, agent_id, variable, secret_id, scope, instance_id, created_at, binding) select 'gr_old', 'usr_1', 'ag_1', 'token', id, 'until_revoked', 'inst_1', ?, 'client' from secrets",
      )
      .run(t);
    strip.prepare("delete from authority_meta").run();
    strip.close();

    // A Link that knows this database was sealed before refuses to adopt: nothing unMAC'd serves.
    {
      const { authority, logs } = await serve(db, `k1:${dataKey}`, { adoptUnsealed: false });
      await unauthorized(clientOf(authority, token).listGrants());
      assert.ok(logs.some((l) => l.startsWith("tampering")));
      await authority.close();
      open.pop();
    }
    const reset = new SQLite(db.location);
    reset.prepare("delete from authority_meta").run();
    reset.close();

    const { authority } = await serve(db, `k1:${dataKey}`);
    const client = clientOf(authority, token);
    const legacy = await client.listLegacyGrants();
    assert.deepEqual(
      legacy.map((g) => [g.id, g.legacy, g.binding?.kind]),
      [["gr_old", true, "client"]],
    );
    const served = await client.resolve({ instanceId: "inst_1", agentClientId: "old-agent", variable: "TOKEN" });
    assert.equal(served.status, "granted", "a legacy grant serves until the person ends it");
    await assert.rejects(
      client.call("keepLegacyGrants", { body: { grantIds: ["gr_old"] } }),
      (err: unknown) => err instanceof LinkError && err.code === "presence_required",
    );
    assert.equal(await client.keepLegacyGrants(["gr_old"], sign), 1);
    assert.deepEqual(await client.listLegacyGrants(), []);
    assert.equal(
      (await client.resolve({ instanceId: "inst_1", agentClientId: "old-agent", variable: "TOKEN" })).status,
      "granted",
    );
  });

  it("rotation: secrets re-encrypted and rows re-MAC'd under the new key, every old credential ends, a new Link token works, and the old key is no longer needed", async () => {
    const db = await sqliteDatabase();
    open.push(() => db.drop());
    const k1 = newDataKey();
    const k2 = newDataKey();
    let oldToken: string;
    let instanceId: string;
    {
      const { authority } = await serve(db, `k1:${k1}`);
      const created = await authority.service.createUser("Local user");
      oldToken = created.linkToken;
      instanceId = await authority.service.registerInstance(created.userId, "m");
      await authority.service.setSecret(created.userId, "TOKEN", "v-rotated");
      const client = clientOf(authority, oldToken);
      const pending = await client.resolve({ instanceId, agentClientId: "a", variable: "TOKEN" });
      assert.equal(pending.status, "pending");
      await client.approve(pending.requestId, { scope: { kind: "until_revoked" }, binding: "client" }, sign);
      await authority.close();
      open.pop();
    }
    let newToken: string;
    {
      const { authority } = await serve(db, `k2:${k2},k1:${k1}`, { rotate: true });
      assert.ok(authority.rotated);
      assert.equal(authority.rotated.keyId, "k2");
      assert.equal(authority.rotated.secrets, 1);
      assert.ok(authority.rotated.rows >= 2);
      assert.ok(authority.rotated.linkToken);
      newToken = authority.rotated.linkToken;
      await unauthorized(clientOf(authority, oldToken).listGrants());
      await authority.close();
      open.pop();
    }
    // Only the new key from now on.
    const { authority } = await serve(db, `k2:${k2}`);
    const client = clientOf(authority, newToken);
    const served = await client.resolve({ instanceId, agentClientId: "a", variable: "TOKEN" });
    assert.ok(served.status === "granted");
    assert.equal(served.value, "v-rotated");
    await unauthorized(clientOf(authority, oldToken).listGrants());
  });
});
