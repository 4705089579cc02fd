/**
 * Secrets by name: encrypted at rest (crypto.ts, AES-256-GCM bound to `user:id`), values
 * write-only towards the UI. Names match like variables (normalized), so `OPENAI_API_KEY` and
 * `openai-api-key` are one secret. Deleting a secret ends its grants but keeps them for the record.
 */
import type { SecretView } from "../../shared/authority.js";
import { normalizeVariable } from "../../shared/protocol.js";
import { decryptSecret, encryptSecret } from "../crypto.js";
import { newId } from "../ids.js";
import type { AuditLog } from "./audit.js";
import type { ServiceDeps } from "./deps.js";
import { ServiceError } from "./errors.js";

/** Decrypts one of the user's secrets; null when it no longer exists. Throws when its key is missing. */
export async function readSecret({ db, keys }: ServiceDeps, userId: string, secretId: string): Promise<{ name: string; value: string } | null> {
  const row = await db.selectFrom("secrets").selectAll().where("id", "=", secretId).where("user_id", "=", userId).executeTakeFirst();
  if (row === undefined) return null;
  return { name: row.name, value: decryptSecret(keys, row.key_id, `${userId}:${row.id}`, row.ciphertext) };
}

export type Secrets = ReturnType<typeof createSecrets>;

/** The secrets part; `endGrantsOfSecret` comes from the grants part (deleting ends them). */
export function createSecrets(deps: ServiceDeps, audit: AuditLog, grants: { endGrantsOfSecret(secretId: string, reason: string, actor: string): Promise<number> }) {
  const { db, keys, bus, now } = deps;

  /** The user's secret whose normalized name equals `name`'s, or null. */
  async function findByName(userId: string, name: string): Promise<{ id: string; name: string } | null> {
    const wanted = normalizeVariable(name);
    const rows = await db.selectFrom("secrets").select(["id", "name"]).where("user_id", "=", userId).execute();
    return rows.find((r) => normalizeVariable(r.name) === wanted) ?? null;
  }

  return {
    findByName,

    /** Names and times only, sorted by name: values never leave the authority towards the UI. */
    list: async (userId: string): Promise<SecretView[]> => {
      const rows = await db.selectFrom("secrets").select(["id", "name", "created_at", "updated_at"]).where("user_id", "=", userId).orderBy("name").execute();
      return rows.map((r) => ({ id: r.id, name: r.name, createdAt: r.created_at, updatedAt: r.updated_at }));
    },

    /** Creates or replaces (same normalized name) a secret; live grants keep serving the new value. */
    set: async (userId: string, name: string, value: string): Promise<SecretView> => {
      const t = now();
      const existing = await findByName(userId, name);
      const id = existing?.id ?? newId("sec");
      const { ciphertext, keyId } = encryptSecret(keys, `${userId}:${id}`, value);
      if (existing === null) {
        await db.insertInto("secrets").values({ id, user_id: userId, name, ciphertext, key_id: keyId, created_at: t, updated_at: t }).execute();
      } else {
        await db.updateTable("secrets").set({ ciphertext, key_id: keyId, updated_at: t }).where("id", "=", id).execute();
      }
      await audit.record({ userId, actor: "user", action: existing === null ? "secret.created" : "secret.updated", outcome: "ok", secretName: existing?.name ?? name });
      await bus.publish({ type: "secret.changed", userId, id, status: existing === null ? "created" : "updated" });
      const row = await db.selectFrom("secrets").select(["id", "name", "created_at", "updated_at"]).where("id", "=", id).executeTakeFirstOrThrow();
      return { id: row.id, name: row.name, createdAt: row.created_at, updatedAt: row.updated_at };
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
