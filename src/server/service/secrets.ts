/**
 * Secrets by name: encrypted at rest (crypto.ts, AES-256-GCM bound to `user:id`), values
 * write-only towards the UI. Names match like variables (normalized), so `OPENAI_API_KEY` and
 * `openai-api-key` are one secret. Deleting a secret ends its grants but keeps them for the record.
 * Each secret may carry the hosts it may ever be sent to by the Link's calls (migration 007,
 * DESIGN.md section 8); `requests.resolve` checks them on every delivery for a call.
 */
import { SecretHostsSchema, type SecretHosts, type SecretView } from "../../shared/authority.js";
import { normalizeVariable } from "../../shared/protocol.js";
import { decryptSecret, encryptSecret } from "../crypto.js";
import { newId } from "../ids.js";
import type { AuditLog } from "./audit.js";
import { parseStored, type ServiceDeps } from "./deps.js";
import { ServiceError } from "./errors.js";

/**
 * The hosts a stored secret may be sent to: null when none are stored (no limit of its own). A list
 * that was stored but cannot be read allows no host at all (fail closed): `[]`.
 */
export function secretHosts(stored: string | null): string[] | null {
  if (stored === null) return null;
  return parseStored(stored, SecretHostsSchema) ?? [];
}

/**
 * Decrypts one of the user's secrets; null when it no longer exists. Throws when its key is missing.
 * `hosts`: where the Link's calls may send it (see `secretHosts`).
 */
export async function readSecret(
  { db, keys, macs }: ServiceDeps,
  userId: string,
  secretId: string,
): Promise<{ name: string; value: string; hosts: string[] | null } | null> {
  const row = await db
    .selectFrom("secrets")
    .selectAll()
    .where("id", "=", secretId)
    .where("user_id", "=", userId)
    .executeTakeFirst();
  // A renamed secret or a widened host list the authority did not write is no secret at all.
  if (row === undefined || !macs.secret.valid(row)) return null;
  return {
    name: row.name,
    value: decryptSecret(keys, row.key_id, `${userId}:${row.id}`, row.ciphertext),
    hosts: secretHosts(row.hosts),
  };
}

const VIEW_COLUMNS = ["id", "user_id", "name", "created_at", "updated_at", "hosts", "mac"] as const;

function toView(r: {
  id: string;
  name: string;
  created_at: number;
  updated_at: number;
  hosts: string | null;
}): SecretView {
  return { id: r.id, name: r.name, createdAt: r.created_at, updatedAt: r.updated_at, hosts: secretHosts(r.hosts) };
}

/** How a host list is stored: JSON, lower case (host names are case-insensitive), or null for none. */
function storedHosts(hosts: SecretHosts | null): string | null {
  return hosts === null ? null : JSON.stringify([...new Set(hosts.map((h) => h.toLowerCase()))]);
}

export type Secrets = ReturnType<typeof createSecrets>;

/** The secrets part; `endGrantsOfSecret` comes from the grants part (deleting ends them). */
export function createSecrets(
  deps: ServiceDeps,
  audit: AuditLog,
  grants: { endGrantsOfSecret(secretId: string, reason: string, actor: string): Promise<number> },
) {
  const { db, keys, bus, now, macs } = deps;

  /** The user's secret rows whose normalized name equals `name`'s, MAC'd or not. */
  async function rowsNamed(userId: string, name: string) {
    const wanted = normalizeVariable(name);
    const rows = await db
      .selectFrom("secrets")
      .select(["id", "user_id", "name", "hosts", "mac"])
      .where("user_id", "=", userId)
      .execute();
    return rows.filter((r) => normalizeVariable(r.name) === wanted);
  }

  /** The user's secret whose normalized name equals `name`'s, or null (rows without a valid MAC do not count). */
  async function findByName(
    userId: string,
    name: string,
  ): Promise<{ id: string; name: string; hosts: string | null } | null> {
    return (await rowsNamed(userId, name)).find((r) => macs.secret.valid(r)) ?? null;
  }

  async function view(id: string): Promise<SecretView> {
    return toView(await db.selectFrom("secrets").select(VIEW_COLUMNS).where("id", "=", id).executeTakeFirstOrThrow());
  }

  return {
    findByName,

    /** Names, times and host lists, sorted by name: values never leave the authority towards the UI. */
    list: async (userId: string): Promise<SecretView[]> => {
      const rows = await db
        .selectFrom("secrets")
        .select(VIEW_COLUMNS)
        .where("user_id", "=", userId)
        .orderBy("name")
        .execute();
      return rows.filter((r) => macs.secret.valid(r)).map(toView);
    },

    /**
     * Creates or replaces (same normalized name) a secret; live grants keep serving the new value.
     * `hosts`: where it may be sent (undefined keeps a replaced secret's list; null removes it).
     */
    set: async (userId: string, name: string, value: string, hosts?: SecretHosts | null): Promise<SecretView> => {
      const t = now();
      const named = await rowsNamed(userId, name);
      const existing = named.find((r) => macs.secret.valid(r)) ?? null;
      // A row of that name the authority did not write is replaced whole: nothing of it is kept.
      const forged = existing === null ? (named[0] ?? null) : null;
      const id = existing?.id ?? forged?.id ?? newId("sec");
      const { ciphertext, keyId } = encryptSecret(keys, `${userId}:${id}`, value);
      if (existing === null && forged === null) {
        const row = { id, user_id: userId, name, hosts: storedHosts(hosts ?? null) };
        await db
          .insertInto("secrets")
          .values({ ...row, ciphertext, key_id: keyId, created_at: t, updated_at: t, mac: macs.secret.mac(row) })
          .execute();
      } else {
        const row = {
          id,
          user_id: userId,
          name: existing?.name ?? name,
          hosts: hosts !== undefined ? storedHosts(hosts) : (existing?.hosts ?? null),
        };
        await db
          .updateTable("secrets")
          .set({
            name: row.name,
            ciphertext,
            key_id: keyId,
            updated_at: t,
            hosts: row.hosts,
            mac: macs.secret.mac(row),
          })
          .where("id", "=", id)
          .execute();
      }
      await audit.record({
        userId,
        actor: "user",
        action: existing === null ? "secret.created" : "secret.updated",
        outcome: "ok",
        secretName: existing?.name ?? name,
      });
      await bus.publish({ type: "secret.changed", userId, id, status: existing === null ? "created" : "updated" });
      return view(id);
    },

    /**
     * Sets the hosts a secret may ever be sent to (null: any). Audited as `secret.hosts_changed`
     * with the list in its detail (host names are not secret). 404 `secret_not_found`.
     */
    setHosts: async (userId: string, name: string, hosts: SecretHosts | null): Promise<SecretView> => {
      const secret = await findByName(userId, name);
      if (secret === null) throw new ServiceError(404, "secret_not_found", `No secret named ${name}.`);
      const stored = storedHosts(hosts);
      await db
        .updateTable("secrets")
        .set({
          hosts: stored,
          updated_at: now(),
          mac: macs.secret.mac({ id: secret.id, user_id: userId, name: secret.name, hosts: stored }),
        })
        .where("id", "=", secret.id)
        .execute();
      await audit.record({
        userId,
        actor: "user",
        action: "secret.hosts_changed",
        outcome: "ok",
        secretName: secret.name,
        detail: stored ?? "any",
      });
      await bus.publish({ type: "secret.changed", userId, id: secret.id, status: "updated" });
      return view(secret.id);
    },

    /** Deletes a secret and ends its live grants ("secret_deleted"). 404 `secret_not_found` when absent. */
    delete: async (userId: string, name: string): Promise<void> => {
      const secret = await findByName(userId, name);
      if (secret === null) throw new ServiceError(404, "secret_not_found", `No secret named ${name}.`);
      await grants.endGrantsOfSecret(secret.id, "secret_deleted", "user");
      await db.deleteFrom("secrets").where("id", "=", secret.id).execute();
      await audit.record({ userId, actor: "user", action: "secret.deleted", outcome: "ok", secretName: secret.name });
      await bus.publish({ type: "secret.changed", userId, id: secret.id, status: "deleted" });
    },
  };
}
