/**
 * Users and their Link tokens, instances (one per machine a Link signed in on) and agents (one per
 * client ID per user). An instance is valid until revoked: sign-out revokes it (issue 13 item 8),
 * and from then on every agent-facing call naming it answers 401 `invalid_instance`.
 */
import { newId, newToken } from "../ids.js";
import type { AuditLog } from "./audit.js";
import type { AgentRow, ServiceDeps } from "./deps.js";
import { invalidInstance, ServiceError } from "./errors.js";

export type InstancesAgents = ReturnType<typeof createInstancesAgents>;

/** What revoking an instance did. */
import type { InstanceRevoked, Me } from "../../shared/authority-routes.js";
export type { InstanceRevoked };

/** The instances-and-agents part; `endGrantsOfInstance` comes from the grants part. */
export function createInstancesAgents(
  deps: ServiceDeps,
  audit: AuditLog,
  grants: { endGrantsOfInstance(instanceId: string, reason: string, actor: string): Promise<number> },
) {
  const { db, bus, now, macs, tokens } = deps;

  /** The account a live (not revoked) instance belongs to. 401 `invalid_instance` otherwise. */
  async function liveInstanceOwner(instanceId: string): Promise<string> {
    const row = await db
      .selectFrom("instances")
      .select(["user_id", "revoked_at"])
      .where("id", "=", instanceId)
      .executeTakeFirst();
    if (row === undefined || row.revoked_at !== null) throw invalidInstance();
    return row.user_id;
  }

  return {
    liveInstanceOwner,

    /**
     * Checks that `instanceId` is live and belongs to `userId` (the caller's bearer credential):
     * only the Link that owns an instance may act for it (issue 13 item 3). The same 401
     * `invalid_instance` for unknown, revoked and foreign instances, so a caller learns nothing
     * about other accounts' instances.
     */
    requireOwnInstance: async (userId: string, instanceId: string): Promise<void> => {
      if ((await liveInstanceOwner(instanceId)) !== userId) throw invalidInstance();
    },

    /** Creates a token-only local user and its first Link token (shown once, stored hashed). */
    createUser: async (displayName: string, tokenLabel = "local"): Promise<{ userId: string; linkToken: string }> => {
      const userId = newId("usr");
      const linkToken = newToken("plt");
      await db
        .insertInto("users")
        .values({ id: userId, display_name: displayName, created_at: now(), email: null, password_hash: null })
        .execute();
      const token_hash = tokens.of(linkToken);
      await db
        .insertInto("link_tokens")
        .values({
          token_hash,
          user_id: userId,
          label: tokenLabel,
          created_at: now(),
          mac: macs.linkToken.mac({ token_hash, user_id: userId }),
        })
        .execute();
      await audit.record({ userId, actor: "system", action: "user.created", outcome: "ok" });
      return { userId, linkToken };
    },

    /** The user a Link token belongs to, or null (also for a token row the authority did not write). */
    userForLinkToken: async (token: string): Promise<string | null> => {
      const rows = await db
        .selectFrom("link_tokens")
        .select(["token_hash", "user_id", "mac"])
        .where("token_hash", "in", tokens.lookup(token))
        .execute();
      return rows.find((r) => macs.linkToken.valid(r))?.user_id ?? null;
    },

    /**
     * Who `userId` is (issue 15 item 7): display name, email (null for a token-only local user) and,
     * when `instanceId` is given, that instance's name if it is this user's and live (else null:
     * a caller learns nothing about other accounts' instances).
     */
    whoAmI: async (userId: string, instanceId: string | undefined): Promise<Me> => {
      const row = await db
        .selectFrom("users")
        .select(["display_name", "email"])
        .where("id", "=", userId)
        .executeTakeFirst();
      if (row === undefined) throw new ServiceError(404, "not_found", "This account no longer exists.");
      const instance =
        instanceId === undefined
          ? null
          : ((await db
              .selectFrom("instances")
              .select(["id", "name"])
              .where("id", "=", instanceId)
              .where("user_id", "=", userId)
              .where("revoked_at", "is", null)
              .executeTakeFirst()) ?? null);
      return { userId, name: row.display_name, email: row.email, instance };
    },

    /** Registers a machine's Link for the user; returns the new instance ID. */
    registerInstance: async (userId: string, name: string): Promise<string> => {
      const id = newId("inst");
      await db
        .insertInto("instances")
        .values({ id, user_id: userId, name, created_at: now(), last_seen_at: now(), revoked_at: null })
        .execute();
      await audit.record({ userId, actor: "user", action: "instance.registered", outcome: "ok", detail: name });
      return id;
    },

    /** True when the instance is the user's and not revoked (a Link keeps using it only then). */
    instanceExists: async (userId: string, instanceId: string): Promise<boolean> => {
      const row = await db
        .selectFrom("instances")
        .select(["id"])
        .where("id", "=", instanceId)
        .where("user_id", "=", userId)
        .where("revoked_at", "is", null)
        .executeTakeFirst();
      return row !== undefined;
    },

    /**
     * Sign-out (issue 13 item 8): marks the user's instance revoked, ends the live grants made on
     * it (reason "signed out") and expires its pending requests. Idempotent. 404
     * `instance_not_found` when the instance is not this user's.
     */
    revokeInstance: async (userId: string, instanceId: string): Promise<InstanceRevoked> => {
      const row = await db
        .selectFrom("instances")
        .select(["revoked_at"])
        .where("id", "=", instanceId)
        .where("user_id", "=", userId)
        .executeTakeFirst();
      if (row === undefined)
        throw new ServiceError(404, "instance_not_found", `No instance ${instanceId} for this account.`);
      const t = now();
      // Revoke first, so nothing can be served through the instance while its grants are ended.
      await db
        .updateTable("instances")
        .set({ revoked_at: t })
        .where("id", "=", instanceId)
        .where("revoked_at", "is", null)
        .execute();
      const grantsEnded = await grants.endGrantsOfInstance(instanceId, "signed out", "user");
      const expired = await db
        .updateTable("requests")
        .set({ status: "expired", decided_at: t })
        .where("instance_id", "=", instanceId)
        .where("status", "=", "pending")
        .returning(["id"])
        .execute();
      for (const r of expired) await bus.publish({ type: "request.decided", userId, id: r.id, status: "expired" });
      if (row.revoked_at === null)
        await audit.record({
          userId,
          actor: "user",
          action: "instance.revoked",
          outcome: "signed out",
          detail: `${grantsEnded} grants ended`,
        });
      return { instanceId, revokedAt: row.revoked_at ?? t, grantsEnded };
    },

    /** The agent row for (user, client ID), created on first sight; updates its last-seen time and name. */
    upsertAgent: async (userId: string, clientId: string, name: string | null): Promise<AgentRow> => {
      const t = now();
      const existing = await db
        .selectFrom("agents")
        .selectAll()
        .where("user_id", "=", userId)
        .where("client_id", "=", clientId)
        .executeTakeFirst();
      if (existing !== undefined) {
        await db
          .updateTable("agents")
          .set({ last_seen_at: t, display_name: name ?? existing.display_name })
          .where("id", "=", existing.id)
          .execute();
        return { ...existing, last_seen_at: t, display_name: name ?? existing.display_name };
      }
      const row: AgentRow = {
        id: newId("ag"),
        user_id: userId,
        client_id: clientId,
        display_name: name,
        first_seen_at: t,
        last_seen_at: t,
      };
      try {
        await db.insertInto("agents").values(row).execute();
        return row;
      } catch {
        // Another process inserted it first (unique user_id + client_id).
        return db
          .selectFrom("agents")
          .selectAll()
          .where("user_id", "=", userId)
          .where("client_id", "=", clientId)
          .executeTakeFirstOrThrow();
      }
    },
  };
}
