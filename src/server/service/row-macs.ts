/**
 * Row MACs (DESIGN.md section 9): the authority does not trust its own files. An agent running as
 * the person can write the database file (sqlite3), so every row that grants anything carries a MAC
 * under a key derived from the data key, which reaches this process only over a pipe: a grant (all
 * its terms, its binding, mode and policy, and its agent's client ID, so re-pointing an agent row
 * does not move it), a secret's name and hosts (its value is already sealed by AES-GCM), a Link
 * token and an OAuth token. A row whose MAC is missing or wrong is treated as absent and logged as
 * tampering. Token hashes are keyed as well (crypto.ts `tokenHasher`), so a token row written by
 * hand never matches a token.
 *
 * `sealRows` runs at every start: the first start with a key after the upgrade MACs the rows that
 * exist (the grants among them become legacy: approved without a proof) and keys their token
 * hashes; later starts find the `row_macs` mark and leave rows alone. `rotateRows` moves everything
 * to the current data key (AuthorityKeysSchema `rotate`).
 */
import type { Kysely, Selectable } from "kysely";
import type { RotationReport } from "../../shared/authority-process.js";
import {
  decryptSecret,
  encryptSecret,
  keyIdOf,
  keyTokenHash,
  rowMac,
  rowMacValid,
  type DataKeys,
  type TokenHasher,
} from "../crypto.js";
import type { Database, GrantsTable, LinkTokensTable, OAuthTokensTable, SecretsTable } from "../db.js";
import { newToken } from "../ids.js";

type Grant = Selectable<GrantsTable>;
type Secret = Pick<Selectable<SecretsTable>, "id" | "user_id" | "name" | "hosts" | "mac">;
type LinkToken = Pick<Selectable<LinkTokensTable>, "token_hash" | "user_id" | "mac">;
type OAuthToken = Pick<
  Selectable<OAuthTokensTable>,
  "token_hash" | "kind" | "user_id" | "client_id" | "family_id" | "expires_at" | "mac"
>;

function grantFields(g: Omit<Grant, "mac" | "last_used_at" | "end_reason">, clientId: string) {
  return [
    g.id,
    g.user_id,
    g.agent_id,
    clientId,
    g.variable,
    g.secret_id,
    g.scope,
    g.expires_at,
    g.instance_id,
    g.process_pid,
    g.process_start_time,
    g.request_id,
    g.created_at,
    g.ended_at,
    g.binding,
    g.program_key,
    g.program,
    g.session_key,
    g.session_id,
    g.mode,
    g.policy,
    g.legacy,
  ] as const;
}
const secretFields = (s: Omit<Secret, "mac">) => [s.id, s.user_id, s.name, s.hosts] as const;
const linkTokenFields = (t: Omit<LinkToken, "mac">) => [t.token_hash, t.user_id] as const;
const oauthTokenFields = (t: Omit<OAuthToken, "mac">) =>
  [t.token_hash, t.kind, t.user_id, t.client_id, t.family_id, t.expires_at] as const;

export type RowMacs = ReturnType<typeof createRowMacs>;

/**
 * MAC makers and checkers per table. A failed check calls `tamper(table, id)` (the caller's log),
 * once per row per process, and answers false: the caller treats the row as absent.
 */
export function createRowMacs(keys: DataKeys, tamper: (table: string, id: string) => void) {
  const reported = new Set<string>();
  const check = (table: string, id: string, ok: boolean): boolean => {
    if (!ok && !reported.has(`${table}:${id}`)) {
      reported.add(`${table}:${id}`);
      tamper(table, id);
    }
    return ok;
  };
  return {
    grant: {
      mac: (g: Omit<Grant, "mac" | "last_used_at" | "end_reason">, clientId: string): string =>
        rowMac(keys, "grants", grantFields(g, clientId)),
      valid: (g: Grant, clientId: string): boolean =>
        check("grants", g.id, rowMacValid(keys, "grants", grantFields(g, clientId), g.mac)),
    },
    secret: {
      mac: (s: Omit<Secret, "mac">): string => rowMac(keys, "secrets", secretFields(s)),
      valid: (s: Secret): boolean => check("secrets", s.id, rowMacValid(keys, "secrets", secretFields(s), s.mac)),
    },
    linkToken: {
      mac: (t: Omit<LinkToken, "mac">): string => rowMac(keys, "link_tokens", linkTokenFields(t)),
      valid: (t: LinkToken): boolean =>
        check("link_tokens", t.token_hash.slice(0, 12), rowMacValid(keys, "link_tokens", linkTokenFields(t), t.mac)),
    },
    oauthToken: {
      mac: (t: Omit<OAuthToken, "mac">): string => rowMac(keys, "oauth_tokens", oauthTokenFields(t)),
      valid: (t: OAuthToken): boolean =>
        check("oauth_tokens", t.token_hash.slice(0, 12), rowMacValid(keys, "oauth_tokens", oauthTokenFields(t), t.mac)),
    },
  };
}

/** Tables whose tokens are stored as hashes, and the column. */
const HASHED = [
  ["link_tokens", "token_hash"],
  ["oauth_tokens", "token_hash"],
  ["oauth_codes", "code_hash"],
  ["web_sessions", "id_hash"],
  ["device_codes", "device_code_hash"],
  ["scoped_tokens", "token_hash"],
] as const;

/** The mark `sealRows` leaves: the data key id rows were first MAC'd under. */
const SEALED = "row_macs";

/**
 * At start: when the database has never been sealed, MACs every existing grant (marked legacy),
 * secret and token row under the current key and keys the token hashes, then marks it sealed. With
 * `adopt` false (the Link knows this database was sealed before, so a missing mark means someone
 * removed it), nothing is adopted: the rows without MACs stay absent, and only the mark is written.
 * Returns how many rows were adopted; `tamper` hears a refused adoption.
 */
export async function sealRows(
  db: Kysely<Database>,
  keys: DataKeys,
  adopt: boolean,
  tamper: (table: string, id: string) => void,
): Promise<number> {
  const mark = await db.selectFrom("authority_meta").select("value").where("key", "=", SEALED).executeTakeFirst();
  if (mark !== undefined) return 0;
  const macs = createRowMacs(keys, () => undefined);
  // Two processes may start on one unsealed database at once. The mark is written first, as the
  // transaction's first statement: that takes the write lock (SQLite) or waits on the other's
  // uncommitted row (PostgreSQL), and the process that finds the mark already there adopts nothing.
  return db.transaction().execute(async (trx) => {
    const marked = await trx
      .insertInto("authority_meta")
      .values({ key: SEALED, value: keys.currentId })
      .onConflict((oc) => oc.column("key").doNothing())
      .executeTakeFirst();
    if (marked.numInsertedOrUpdatedRows !== 1n) return 0;
    if (!adopt) {
      tamper("authority_meta", SEALED);
      return 0;
    }
    let n = 0;
    // Token hashes first: the token rows' MACs cover them.
    for (const [table, column] of HASHED) {
      const rows = await trx.selectFrom(table).select(`${column} as hash`).execute();
      for (const { hash } of rows) {
        if (keyIdOf(hash) !== null) continue;
        await trx
          .updateTable(table)
          .set({ [column]: keyTokenHash(keys, keys.currentId, hash) })
          .where(column, "=", hash)
          .execute();
      }
    }
    const clientIds = new Map(
      (await trx.selectFrom("agents").select(["id", "client_id"]).execute()).map((a) => [a.id, a.client_id]),
    );
    for (const g of await trx.selectFrom("grants").selectAll().execute()) {
      const legacy = { ...g, legacy: 1 };
      await trx
        .updateTable("grants")
        .set({ legacy: 1, mac: macs.grant.mac(legacy, clientIds.get(g.agent_id) ?? "") })
        .where("id", "=", g.id)
        .execute();
      n++;
    }
    for (const s of await trx.selectFrom("secrets").select(["id", "user_id", "name", "hosts"]).execute()) {
      await trx
        .updateTable("secrets")
        .set({ mac: macs.secret.mac(s) })
        .where("id", "=", s.id)
        .execute();
      n++;
    }
    for (const t of await trx.selectFrom("link_tokens").select(["token_hash", "user_id"]).execute()) {
      await trx
        .updateTable("link_tokens")
        .set({ mac: macs.linkToken.mac(t) })
        .where("token_hash", "=", t.token_hash)
        .execute();
      n++;
    }
    for (const t of await trx
      .selectFrom("oauth_tokens")
      .select(["token_hash", "kind", "user_id", "client_id", "family_id", "expires_at"])
      .execute()) {
      await trx
        .updateTable("oauth_tokens")
        .set({ mac: macs.oauthToken.mac(t) })
        .where("token_hash", "=", t.token_hash)
        .execute();
      n++;
    }
    return n;
  });
}

/**
 * Moves everything to the current data key (`keys.currentId`), for a Link that rotates after an
 * upgrade because an agent may hold copies of the old key and tokens: re-encrypts every secret
 * under it, re-MACs every grant and secret whose MAC is valid under an older key (a row that was
 * already tampered with stays refused), deletes every credential (Link tokens, OAuth tokens and
 * codes, web sessions, device codes, scoped tokens: their hashes are keyed by the old key, and
 * their holders may not be the person), and issues the token-only local user (the embedded
 * authority's) a new Link token. One transaction: it happens entirely or not at all, and running
 * it again is harmless. After it, the old keys are no longer needed.
 */
export async function rotateRows(
  db: Kysely<Database>,
  keys: DataKeys,
  hasher: TokenHasher,
  now: number,
  tamper: (table: string, id: string) => void,
): Promise<RotationReport> {
  const macs = createRowMacs(keys, tamper);
  return db.transaction().execute(async (trx) => {
    let secrets = 0;
    let rows = 0;
    for (const s of await trx.selectFrom("secrets").selectAll().execute()) {
      const valid = macs.secret.valid(s);
      const value =
        s.key_id === keys.currentId ? null : decryptSecret(keys, s.key_id, `${s.user_id}:${s.id}`, s.ciphertext);
      const sealed = value === null ? null : encryptSecret(keys, `${s.user_id}:${s.id}`, value);
      if (sealed !== null) secrets++;
      const remac = valid && keyIdOf(s.mac ?? "") !== keys.currentId;
      if (remac) rows++;
      if (sealed !== null || remac) {
        await trx
          .updateTable("secrets")
          .set({
            ...(sealed !== null ? { ciphertext: sealed.ciphertext, key_id: sealed.keyId } : {}),
            ...(remac ? { mac: macs.secret.mac(s) } : {}),
          })
          .where("id", "=", s.id)
          .execute();
      }
    }
    const clientIds = new Map(
      (await trx.selectFrom("agents").select(["id", "client_id"]).execute()).map((a) => [a.id, a.client_id]),
    );
    for (const g of await trx.selectFrom("grants").selectAll().execute()) {
      const clientId = clientIds.get(g.agent_id) ?? "";
      if (keyIdOf(g.mac ?? "") === keys.currentId || !macs.grant.valid(g, clientId)) continue;
      await trx
        .updateTable("grants")
        .set({ mac: macs.grant.mac(g, clientId) })
        .where("id", "=", g.id)
        .execute();
      rows++;
    }
    for (const [table] of HASHED) await trx.deleteFrom(table).execute();
    const local = await trx
      .selectFrom("users")
      .select("id")
      .where("email", "is", null)
      .orderBy("created_at")
      .executeTakeFirst();
    let linkToken: string | null = null;
    if (local !== undefined) {
      linkToken = newToken("plt");
      const token_hash = hasher.of(linkToken);
      await trx
        .insertInto("link_tokens")
        .values({
          token_hash,
          user_id: local.id,
          label: "local (rotated)",
          created_at: now,
          mac: macs.linkToken.mac({ token_hash, user_id: local.id }),
        })
        .execute();
    }
    await trx.updateTable("authority_meta").set({ value: keys.currentId }).where("key", "=", SEALED).execute();
    return { keyId: keys.currentId, secrets, rows, linkToken };
  });
}
