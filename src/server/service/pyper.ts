/**
 * pyper-sdk compatibility (DESIGN.md section 5): resolve mapping, scoped credentials, raw exchange.
 * pyper-sdk 0.7 sends no agent credential, so these calls carry only an instance ID; they are served
 * only when the operator turns the authority's pyper endpoints on (the Link serves its own,
 * authenticated, on loopback). A revoked (signed-out) instance answers 401 `invalid_instance`.
 */
import { normalizeVariable } from "../../shared/protocol.js";
import { newToken } from "../ids.js";
import { parseGrantIds, type GrantRow, type ServiceDeps } from "./deps.js";
import { ServiceError } from "./errors.js";
import { servesUnidentified, type Grants } from "./grants.js";
import type { InstancesAgents } from "./instances-agents.js";
import type { Limits } from "./limits.js";
import type { Requests } from "./requests.js";

interface Parts {
  grants: Grants;
  instances: InstancesAgents;
  requests: Requests;
  limits: Limits;
}

/** The pyper part; `scopedTtlMs` is the lifetime of a scoped credential. */
export function createPyper(deps: ServiceDeps, parts: Parts, scopedTtlMs: number) {
  const { db, now, tokens: hashes } = deps;
  const { grants, instances, requests, limits } = parts;

  /**
   * A grant serves pyper only while live, unexpired, of the instance's account, and only when its
   * binding holds for a caller nobody can identify (`servesUnidentified`): these endpoints see no
   * program, so a grant bound to one (or a use-only grant) is never served here, whoever holds its ID.
   */
  function serves(g: GrantRow, ownerId: string, instanceId: string): boolean {
    return (
      g.user_id === ownerId && servesUnidentified(g, instanceId) && (g.scope !== "until" || (g.expires_at ?? 0) > now())
    );
  }

  return {
    /** `{agentClientId, instanceId, variableName}` -> credential id; 404 `mapping_not_found` (request created); 403 after a revoke. */
    resolveMapping: async (body: {
      agentClientId: string;
      instanceId: string;
      variableName: string;
    }): Promise<{ credentialId: string }> => {
      limits.agent(body.instanceId, body.agentClientId);
      const variable = normalizeVariable(body.variableName);
      if (variable.length === 0)
        throw new ServiceError(400, "invalid_request", "variableName has no usable characters.");
      const userId = await instances.liveInstanceOwner(body.instanceId);
      const agent = await instances.upsertAgent(userId, body.agentClientId, null);
      const grant = await grants.findLive(userId, agent, variable, body.instanceId, null);
      if (grant !== null) return { credentialId: grant.id };
      const ended = await db
        .selectFrom("grants")
        .select(["id"])
        .where("agent_id", "=", agent.id)
        .where("variable", "=", variable)
        .where("end_reason", "=", "revoked")
        .executeTakeFirst();
      const request = await requests.createOrReuse(userId, body.instanceId, agent, variable, null, null);
      if (ended !== undefined) {
        throw new ServiceError(
          403,
          "permission_denied",
          `The grant for '${variable}' was revoked. Approve request ${request.id} in Piper Link to restore access.`,
        );
      }
      throw new ServiceError(
        404,
        "mapping_not_found",
        `No grant for '${variable}' yet. Approve request ${request.id} in Piper Link, then retry.`,
      );
    },

    /** Issues a short-lived token bound to those of `credentialIds` the agent may use; 403 when none. */
    scopedCredentials: async (body: {
      agentClientId: string;
      instanceId: string;
      credentialIds: string[];
    }): Promise<{ access_token: string; granted_credential_ids: string[]; expires_in: number }> => {
      limits.agent(body.instanceId, body.agentClientId);
      const userId = await instances.liveInstanceOwner(body.instanceId);
      const agent = await instances.upsertAgent(userId, body.agentClientId, null);
      const rows =
        body.credentialIds.length === 0
          ? []
          : await db
              .selectFrom("grants")
              .selectAll()
              .where("id", "in", body.credentialIds)
              .where("agent_id", "=", agent.id)
              .where("ended_at", "is", null)
              .execute();
      const usable = new Set(
        rows
          .filter((g) => serves(g, userId, body.instanceId) && deps.macs.grant.valid(g, agent.client_id))
          .map((g) => g.id),
      );
      // In the order asked, as pyper-sdk lists them.
      const granted = body.credentialIds.filter((id, i) => usable.has(id) && body.credentialIds.indexOf(id) === i);
      if (granted.length === 0)
        throw new ServiceError(403, "permission_denied", "None of these credentials is granted to this agent.");
      const token = newToken("pst");
      await db
        .insertInto("scoped_tokens")
        .values({
          token_hash: hashes.of(token),
          user_id: userId,
          agent_id: agent.id,
          instance_id: body.instanceId,
          grant_ids: JSON.stringify(granted),
          expires_at: now() + scopedTtlMs,
        })
        .execute();
      await db.deleteFrom("scoped_tokens").where("expires_at", "<", now()).execute();
      return { access_token: token, granted_credential_ids: granted, expires_in: Math.floor(scopedTtlMs / 1000) };
    },

    /**
     * Raw exchange. pyper-sdk sends no token here, so the exchange requires that a scoped
     * credential bound to this grant was issued to this agent and instance and is still valid
     * (and, when a bearer token is sent, that it is that credential). 401 `invalid_token`, 403
     * `permission_denied`.
     */
    exchange: async (
      body: { agentClientId: string; instanceId: string; piperCredentialId: string },
      bearer: string | null,
    ): Promise<{ secret_value: string }> => {
      limits.agent(body.instanceId, body.agentClientId);
      const userId = await instances.liveInstanceOwner(body.instanceId);
      const agent = await instances.upsertAgent(userId, body.agentClientId, null);
      let tokens = db
        .selectFrom("scoped_tokens")
        .selectAll()
        .where("agent_id", "=", agent.id)
        .where("instance_id", "=", body.instanceId)
        .where("expires_at", ">", now());
      if (bearer !== null) tokens = tokens.where("token_hash", "in", hashes.lookup(bearer));
      const bound = (await tokens.execute()).some((t) => parseGrantIds(t.grant_ids).includes(body.piperCredentialId));
      if (!bound)
        throw new ServiceError(
          401,
          "invalid_token",
          "No valid scoped credential covers this credential ID; request scoped credentials first.",
        );
      const grant = await db
        .selectFrom("grants")
        .selectAll()
        .where("id", "=", body.piperCredentialId)
        .where("agent_id", "=", agent.id)
        .where("ended_at", "is", null)
        .executeTakeFirst();
      if (grant === undefined || !serves(grant, userId, body.instanceId)) {
        throw new ServiceError(403, "permission_denied", "This credential is no longer granted to this agent.");
      }
      const delivered = await grants.deliver(grant, agent, "pyper");
      if (delivered === null)
        throw new ServiceError(403, "permission_denied", "This credential is no longer granted to this agent.");
      return { secret_value: delivered.value };
    },
  };
}
