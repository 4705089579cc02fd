/**
 * The agent protocol's checks without the value (protocol.ts `validate`, `metadata`,
 * `permissionCheck`): whether a name is usable, what the person's secret behind it is (name, hosts,
 * dates) and whether this program holds a live grant for it. They read the authority's lists of
 * secrets and grants; none of them reads a value, asks the person or writes to the audit log.
 *
 * A variable maps to a secret through a live grant of the asker (whose `secretName` the person chose
 * when approving), else to the secret of the same normalized name, as the authority resolves it.
 */
import { LinkError, NOT_SIGNED_IN_MESSAGE } from "../../../shared/errors.js";
import type { GrantView, SecretView } from "../../../shared/authority.js";
import {
  MAX_SECRET_NAME_CHARS,
  normalizeVariable,
  type CheckRequest,
  type GrantTermsView,
  type LinkMessage,
} from "../../../shared/protocol.js";
import { grantServes, type AgentGrantsDeps, type GrantsAsker } from "./agent-grants.js";

/** The live grant of the asker for `variable`, if any (the first the authority lists). */
function liveGrant(
  grants: readonly GrantView[],
  variable: string,
  asking: Parameters<typeof grantServes>[1],
): GrantView | null {
  const wanted = normalizeVariable(variable);
  return grants.find((g) => normalizeVariable(g.variable) === wanted && grantServes(g, asking)) ?? null;
}

function termsOf(g: GrantView): GrantTermsView {
  return {
    grantId: g.id,
    secretName: g.secretName,
    binding: g.binding?.kind ?? (g.scope === "process" ? "process" : "client"),
    scope: g.scope,
    mode: g.mode ?? null,
    policy: g.policy ?? null,
    expiresAt: g.expiresAt,
  };
}

/** A sentence saying why `normalized` cannot name a secret, or null when it can. */
function nameProblem(variable: string, normalized: string): string | null {
  if (normalized === "")
    return `${JSON.stringify(variable.slice(0, 80))} has no letters or digits, so it cannot name a secret.`;
  if (normalized.length > MAX_SECRET_NAME_CHARS)
    return `A secret name is at most ${MAX_SECRET_NAME_CHARS} characters; this one is ${normalized.length} once normalized.`;
  return null;
}

/**
 * Creates the answerer of the three checks. Resolves with the reply frame (`validate.result`,
 * `metadata.result`, `permissionCheck.result`). Throws LinkError: `not_logged_in` (nobody signed in,
 * or the authority refused the Link's credential), `authority_unavailable` (none configured),
 * `secret_not_found` (`metadata` of a name no secret is mapped to); other authority failures
 * propagate as the authority client's LinkError.
 */
export function createAgentChecks(
  deps: AgentGrantsDeps,
): (asker: GrantsAsker, request: CheckRequest) => Promise<LinkMessage> {
  return async (asker, request) => {
    const instanceId = deps.instanceId();
    if (instanceId === null || asker.agent === null) throw new LinkError("not_logged_in", NOT_SIGNED_IN_MESSAGE);
    const client = deps.authority();
    if (client === null) throw new LinkError("authority_unavailable", "This Piper Link has no authority configured.");
    const asAgent = <T>(p: Promise<T>): Promise<T> =>
      p.catch((err: unknown) => {
        if (err instanceof LinkError && err.code === "unauthorized")
          throw new LinkError("not_logged_in", err.message, { cause: err });
        throw err;
      });
    const asking = { clientId: asker.agent.clientId, process: asker.process, instanceId, now: deps.now() };
    const { variable } = request;
    const normalized = normalizeVariable(variable);
    const grants = await asAgent(client.listGrants(false));
    const grant = liveGrant(grants, variable, asking);
    if (request.type === "permissionCheck") {
      return {
        type: "permissionCheck.result",
        id: request.id,
        variable,
        granted: grant !== null,
        grant: grant === null ? null : termsOf(grant),
      };
    }
    const problem = nameProblem(variable, normalized);
    let secret: SecretView | null = null;
    if (problem === null) {
      const secrets = await asAgent(client.listSecrets());
      const mappedName = normalizeVariable(grant?.secretName ?? variable);
      secret = secrets.find((s) => normalizeVariable(s.name) === mappedName) ?? null;
    }
    if (request.type === "validate") {
      return {
        type: "validate.result",
        id: request.id,
        variable,
        normalized,
        wellFormed: problem === null,
        problem,
        mapped: secret !== null,
        secretName: secret?.name ?? null,
      };
    }
    if (secret === null) {
      throw new LinkError(
        "secret_not_found",
        problem ??
          `No secret of the person's is mapped to ${variable}. They can add one (piper-link secrets set ${normalized.toUpperCase()}).`,
      );
    }
    return {
      type: "metadata.result",
      id: request.id,
      variable,
      secret: {
        name: secret.name,
        hosts: secret.hosts,
        createdAt: new Date(secret.createdAt).toISOString(),
        updatedAt: new Date(secret.updatedAt).toISOString(),
      },
    };
  };
}
