/**
 * The agent protocol's `resolve` (DESIGN.md section 4), brokered through the authority: a live
 * grant answers with `secret` at once; otherwise the agent gets `pending` and, when it asked to
 * wait, the Link long-polls the authority until the person approves (then fetches the value),
 * denies (`denied`), or the request expires or the agent's timeout passes (`timeout`). The
 * requesting process's identity goes with every call so the approval prompt names who is asking.
 * `resolveMany` (several variables, one card, partial results) lives in resolve-many.ts.
 */
import { auditProgram } from "../../../shared/authority.js";
import { isRetryable, LinkError, NOT_SIGNED_IN_MESSAGE } from "../../../shared/errors.js";
import type { LinkMessage, Resolve, ResolveMany } from "../../../shared/protocol.js";
import type { Requester } from "../process/requester.js";
import { POLL_MS, type ResolverDeps } from "./resolve-deps.js";
import { resolveMany } from "./resolve-many.js";
import { AGENT_DEFAULTS } from "../../../shared/defaults.js";

export type { ResolverDeps } from "./resolve-deps.js";

/**
 * Answers one `resolve` or `resolveMany` of `requester`: its frames go through `send`; `signal`
 * aborts when the requester goes away (its connection closed), and then nothing more is sent.
 */
export type ResolveHandler = (
  requester: Requester,
  request: Resolve | ResolveMany,
  send: (m: LinkMessage) => void,
  signal: AbortSignal,
) => Promise<void>;

/** The Link's answer to `resolve` and `resolveMany` (the agent channel's `AgentHost.resolve`). */
export function createAgentResolver(deps: ResolverDeps): ResolveHandler {
  const one = resolveOne(deps);
  return (requester, request, send, signal) =>
    request.type === "resolveMany"
      ? resolveMany(deps, requester, request, send, signal)
      : one(requester, request, send, signal);
}

function resolveOne(deps: ResolverDeps) {
  return async (
    requester: Requester,
    request: Resolve,
    send: (m: LinkMessage) => void,
    signal: AbortSignal,
  ): Promise<void> => {
    const fail = (code: LinkError["code"], message: string): void => {
      send({ type: "error", id: request.id, code, message, retryable: isRetryable(code) });
    };
    const agent = requester.agent;
    const instanceId = deps.instanceId();
    if (agent === null || instanceId === null) {
      fail("not_logged_in", NOT_SIGNED_IN_MESSAGE);
      return;
    }
    await requester.identification;
    const deadline = deps.now() + (request.timeoutMs ?? AGENT_DEFAULTS.approvalWaitMs);
    const identity = { instanceId, agentClientId: agent.clientId };
    let announced = false;
    const hit = deps.cache.get(agent.clientId, request.variable, requester.process, deps.now());
    if (hit !== null) {
      send({
        type: "secret",
        id: request.id,
        variable: request.variable,
        value: hit.value,
        grantId: hit.grantId,
        expiresAt: hit.expiresAt === null ? null : new Date(hit.expiresAt).toISOString(),
      });
      deps.cache.recordUse({
        grantId: hit.grantId,
        at: deps.now(),
        agentClientId: agent.clientId,
        pid: requester.process?.pid ?? null,
        program: auditProgram(requester.process),
      });
      return;
    }
    try {
      for (;;) {
        const generation = deps.cache.generation;
        const client = deps.authority();
        if (client === null) {
          fail("authority_unavailable", "This Piper Link has no authority configured.");
          return;
        }
        const result = await client.resolve({
          ...identity,
          ...(agent.name !== undefined ? { agentName: agent.name } : {}),
          variable: request.variable,
          ...(request.reason !== undefined ? { reason: request.reason } : {}),
          process: requester.process,
        });
        if (result.status === "granted") {
          if (result.reusable)
            deps.cache.put(
              agent.clientId,
              request.variable,
              requester.process,
              { value: result.value, grantId: result.grantId, expiresAt: result.expiresAt },
              generation,
            );
          send({
            type: "secret",
            id: request.id,
            variable: request.variable,
            value: result.value,
            grantId: result.grantId,
            expiresAt: result.expiresAt === null ? null : new Date(result.expiresAt).toISOString(),
          });
          deps.log.info(
            {
              conn: requester.connectionId,
              clientId: agent.clientId,
              variable: result.variable,
              grantId: result.grantId,
            },
            "secret delivered",
          );
          return;
        }
        if (!announced) {
          send({ type: "pending", id: request.id, requestId: result.requestId, approveIn: "Piper Link" });
          announced = true;
          deps.log.info(
            { conn: requester.connectionId, clientId: agent.clientId, requestId: result.requestId },
            "request pending",
          );
        }
        if (!request.wait) return;
        const left = deadline - deps.now();
        if (left <= 0) {
          fail(
            "timeout",
            "Nobody approved the request in time. It stays pending in Piper Link; ask again to keep waiting.",
          );
          return;
        }
        if (signal.aborted) return;
        const outcome = await client.wait(
          result.requestId,
          { ...identity, timeoutMs: Math.min(left, POLL_MS) },
          signal,
        );
        if (outcome.status === "denied") {
          fail("denied", "The request was denied in Piper Link.");
          return;
        }
        if (outcome.status === "requester_gone") {
          fail("requester_gone", "The request ended because the program that asked has exited.");
          return;
        }
        if (outcome.status === "expired") {
          fail("timeout", "The request expired before anyone approved it.");
          return;
        }
        // approved: loop to fetch the value; pending: keep waiting until the deadline.
      }
    } catch (err) {
      if (signal.aborted) return;
      if (err instanceof LinkError) {
        fail(err.code === "unauthorized" ? "not_logged_in" : err.code, err.message);
        return;
      }
      throw err;
    }
  };
}
