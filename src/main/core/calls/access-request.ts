/**
 * The agent protocol's `requestAccess` (protocol.ts): an agent asks for the right to use a secret in
 * calls to one method and URL, without making the call. When one of its live grants already allows
 * that use (the `grants` answer, checked with the grant's destinations) the answer is `granted` and
 * nothing reaches the authority. Otherwise the request goes through the same path as a `call`
 * naming the secret (call-grants.ts, `wait: false`, asking even when a grant exists for other
 * destinations), so the person sees the same request with the same wording; its `pending` becomes
 * the answer. The value the authority may return (a grant appeared meanwhile) stays in the Link.
 */
import { destinationAllows } from "../../../shared/grant-terms.js";
import { LinkError } from "../../../shared/errors.js";
import { normalizeVariable, type AgentGrant, type LinkMessage, type RequestAccess } from "../../../shared/protocol.js";
import type { Requester } from "../process/requester.js";
import type { GrantsAsker } from "../authority/agent-grants.js";
import type { CallGrants } from "./call-grants.js";
import { parseCallUrl } from "./injections.js";

export interface AccessRequestDeps {
  now(): number;
  grants: CallGrants;
  /** The asker's live grants (authority/agent-grants.ts). */
  listGrants(asker: GrantsAsker): Promise<AgentGrant[]>;
}

/**
 * Creates the `requestAccess` handler: for each request of a requester, sends exactly one `access`
 * or `error` frame through `send`.
 * Errors: `bad_request` (the URL is not an absolute https:// URL without credentials), and what the
 * authority says (`not_logged_in`, `authority_unavailable`, `secret_not_found`, `denied`…).
 */
export function createAccessRequester(
  deps: AccessRequestDeps,
): (requester: Requester, request: RequestAccess, send: (m: LinkMessage) => void) => Promise<void> {
  return async (requester, request, send) => {
    await requester.identification;
    const agent = requester.agent;
    if (agent === null) return;
    const { id, variable, method } = request;
    try {
      const url = parseCallUrl(request.url);
      const wanted = normalizeVariable(variable);
      const live = await deps.listGrants({ agent, process: requester.process });
      if (
        live.some(
          (g) =>
            normalizeVariable(g.variable) === wanted && g.mode !== null && destinationAllows(g.mode, method, url).ok,
        )
      ) {
        send({ type: "access", id, variable, state: "granted", requestId: null });
        return;
      }
      // Filled by the `pending` the request sends (a holder: the closure writes it).
      const asked: { requestId: string | null } = { requestId: null };
      const shown = `${method} ${url.href}`;
      const reason = `Use without reading, in a call: ${shown}${request.reason ? ` — ${request.reason}` : ""}`.slice(
        0,
        1000,
      );
      const capture = (m: LinkMessage): void => {
        if (m.type === "pending") asked.requestId = m.requestId;
      };
      try {
        // Never waits: the deadline is now and `wait` is false. The value, if granted, is dropped here.
        await deps.grants.get(
          { agent, process: requester.process, connectionId: requester.connectionId },
          variable,
          { method, url: url.href },
          {
            id,
            reason,
            wait: false,
            askIfRefused: true,
            deadline: deps.now(),
            signal: AbortSignal.timeout(60_000),
            send: capture,
          },
        );
        send({ type: "access", id, variable, state: "granted", requestId: null });
      } catch (err) {
        if (err instanceof LinkError && err.code === "grant_needed" && asked.requestId !== null) {
          send({ type: "access", id, variable, state: "pending", requestId: asked.requestId });
          return;
        }
        throw err;
      }
    } catch (err) {
      if (!(err instanceof LinkError)) throw err;
      send({ type: "error", id, code: err.code, message: err.message, retryable: err.retryable });
    }
  };
}
