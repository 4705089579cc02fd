/**
 * Getting a secret's value for a call, through the same grant path as `resolve` (resolver.ts): the
 * authority answers with the value and the grant's terms, or creates a pending request — whose
 * reason names the exact method and URL — and the Link waits for the person as for `resolve`. The
 * resolve carries `use: {method, url}` so the authority checks the grant's mode, destinations and
 * policy on every use. Values for calls are kept in memory only for grants without a policy (the
 * authority counts policy uses), only while the grant cache may answer (event stream up), and they
 * are cleared with it; they are kept apart from the `resolve` cache so a use-only grant can never
 * answer a read.
 */
import { DEFAULT_GRANT_TERMS, destinationAllows, type GrantTerms } from "../../../shared/grant-terms.js";
import { LinkError, NOT_SIGNED_IN_MESSAGE } from "../../../shared/errors.js";
import { normalizeVariable, type LinkMessage, type RequestId } from "../../../shared/protocol.js";
import { identityMemoryKey, type PeerProcess } from "../../../shared/process.js";
import { AuthorityCallError } from "../authority/authority-client.js";
import { POLL_MS, type ResolverDeps } from "../authority/resolve-deps.js";

/** What a resolve needs is what a call's grants need; the `resolve` cache's generation and enabled state govern this one. */
export type CallGrantDeps = ResolverDeps;

/** A value resolved for a call, with the terms that govern its use. */
export interface CallGrant {
  value: string;
  grantId: string;
  terms: GrantTerms;
  fromCache: boolean;
}

export interface CallRequester {
  agent: { clientId: string; name?: string | undefined };
  process: PeerProcess | null;
  connectionId: string;
}

export interface CallGrants {
  /**
   * The value of `variable` for a call with `use.method` to `use.url`. Sends `pending` (once per
   * request) through `send`; waits for the person when `wait`, until `deadline` (ms). Throws
   * LinkError: `denied`, `timeout`, `grant_needed`, `destination_not_allowed`, `policy_violation`,
   * `not_logged_in`, `authority_unavailable`.
   */
  get(
    requester: CallRequester,
    variable: string,
    use: { method: string; url: string },
    o: {
      id: RequestId;
      reason: string;
      wait: boolean;
      askIfRefused?: boolean;
      deadline: number;
      signal: AbortSignal;
      send: (m: LinkMessage) => void;
    },
  ): Promise<CallGrant>;
}

interface Entry {
  value: string;
  grantId: string;
  terms: GrantTerms;
  expiresAt: number | null;
  generation: number;
}

export function createCallGrants(deps: CallGrantDeps): CallGrants {
  const entries = new Map<string, Entry>();
  const key = (r: CallRequester, variable: string): string =>
    `${r.agent.clientId}\u0000${normalizeVariable(variable)}\u0000${identityMemoryKey(r.process)}`;

  function cached(k: string): Entry | null {
    const e = entries.get(k);
    if (e === undefined) return null;
    if (
      !deps.cache.enabled ||
      e.generation !== deps.cache.generation ||
      (e.expiresAt !== null && e.expiresAt <= deps.now())
    ) {
      entries.delete(k);
      return null;
    }
    return e;
  }

  return {
    async get(requester, variable, use, o) {
      const instanceId = deps.instanceId();
      if (instanceId === null) throw new LinkError("not_logged_in", NOT_SIGNED_IN_MESSAGE);
      const k = key(requester, variable);
      const hit = cached(k);
      // A cached grant answers only where it may go; elsewhere the authority decides (and, when the
      // call asks, turns it into a request naming the method and URL).
      if (hit !== null && destinationAllows(hit.terms.mode, use.method, new URL(use.url)).ok) {
        return { value: hit.value, grantId: hit.grantId, terms: hit.terms, fromCache: true };
      }
      const identity = { instanceId, agentClientId: requester.agent.clientId };
      let announced = false;
      try {
        for (;;) {
          const generation = deps.cache.generation;
          const client = deps.authority();
          if (client === null)
            throw new LinkError("authority_unavailable", "This Piper Link has no authority configured.");
          const result = await client.resolve({
            ...identity,
            ...(requester.agent.name !== undefined ? { agentName: requester.agent.name } : {}),
            variable,
            reason: o.reason,
            process: requester.process,
            use,
            ...(o.askIfRefused === true ? { askBeyondGrant: true } : {}),
          });
          if (result.status === "granted") {
            const terms = result.terms ?? DEFAULT_GRANT_TERMS;
            if (
              result.reusable &&
              terms.policy === null &&
              deps.cache.enabled &&
              generation === deps.cache.generation
            ) {
              if (entries.size >= 10_000) entries.clear();
              entries.set(k, {
                value: result.value,
                grantId: result.grantId,
                terms,
                expiresAt: result.expiresAt,
                generation,
              });
            }
            return { value: result.value, grantId: result.grantId, terms, fromCache: false };
          }
          if (!announced) {
            o.send({ type: "pending", id: o.id, requestId: result.requestId, approveIn: "Piper Link" });
            announced = true;
            deps.log.info(
              { conn: requester.connectionId, clientId: requester.agent.clientId, requestId: result.requestId },
              "call request pending",
            );
          }
          if (!o.wait)
            throw new LinkError(
              "grant_needed",
              `${variable} needs approval in Piper Link for ${use.method} ${use.url}.`,
            );
          const left = o.deadline - deps.now();
          if (left <= 0)
            throw new LinkError(
              "timeout",
              "Nobody approved the request in time. It stays pending in Piper Link; ask again to keep waiting.",
            );
          if (o.signal.aborted) throw new LinkError("timeout", "The call was cancelled while waiting for approval.");
          const outcome = await client.wait(
            result.requestId,
            { ...identity, timeoutMs: Math.min(left, POLL_MS) },
            o.signal,
          );
          if (outcome.status === "denied") throw new LinkError("denied", "The request was denied in Piper Link.");
          if (outcome.status === "expired")
            throw new LinkError("timeout", "The request expired before anyone approved it.");
          if (outcome.status === "requester_gone")
            throw new LinkError("requester_gone", "The request ended because the program that asked has exited.");
        }
      } catch (err) {
        if (err instanceof AuthorityCallError) {
          // The authority's own verdicts on the grant's terms pass through with their reason.
          if (err.authorityCode === "destination_not_allowed" || err.authorityCode === "policy_violation")
            throw new LinkError(err.authorityCode, err.message, { cause: err });
          if (err.code === "unauthorized") throw new LinkError("not_logged_in", err.message, { cause: err });
        }
        throw err;
      }
    },
  };
}
