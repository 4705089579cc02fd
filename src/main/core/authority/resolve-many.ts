/**
 * The agent protocol's `resolveMany` (issue 13 item 7, SecFlow's resolve-many): several variables in
 * one message, one approval card, partial results. Each variable is answered from the grant cache or
 * the authority; the variables without a grant become requests that share one batch id (the window
 * shows them as one card, approvable together), announced in ONE `pending` frame. Then one wait loop
 * follows the batch until every request is decided or the agent's deadline passes, and ONE `secrets`
 * frame answers every variable: its value, or an error with its own code.
 */
import { randomBytes } from "node:crypto";
import { auditProgram } from "../../../shared/authority.js";
import { isRetryable, LinkError, NOT_SIGNED_IN_MESSAGE, type ErrorCode } from "../../../shared/errors.js";
import {
  normalizeVariable,
  type LinkMessage,
  type ResolveMany,
  type VariableResult,
} from "../../../shared/protocol.js";
import type { AuthorityClient } from "./authority-client.js";
import { POLL_MS, type ResolverDeps } from "./resolve-deps.js";
import { AGENT_DEFAULTS } from "../../../shared/defaults.js";
import type { Requester } from "../process/requester.js";

/** A variable's state while the batch is being answered. */
type Slot = { kind: "done"; result: VariableResult } | { kind: "pending"; requestId: string };

function failure(code: ErrorCode, message: string): VariableResult {
  return { error: { code, message, retryable: isRetryable(code) } };
}

/** The per-variable error for a failed authority call (an expired sign-in reads as `not_logged_in`). */
function failureFrom(err: LinkError): VariableResult {
  return failure(err.code === "unauthorized" ? "not_logged_in" : err.code, err.message);
}

/** A fresh batch id (`BatchIdSchema`): 16 random bytes, URL-safe. */
export function newBatchId(): string {
  return `batch_${randomBytes(16).toString("base64url")}`;
}

/**
 * The variables of a `resolveMany`, each once, in the order sent. Two spellings of one variable
 * (`OPENAI_API_KEY`, `openai-api-key`) name the same request, so only the first is asked for; the
 * others are answered with its result.
 */
export function distinctVariables(variables: readonly string[]): { asked: string[]; sameAs: Map<string, string> } {
  const asked: string[] = [];
  const sameAs = new Map<string, string>();
  const byKey = new Map<string, string>();
  for (const v of variables) {
    const key = normalizeVariable(v);
    const first = byKey.get(key);
    if (first === undefined) {
      byKey.set(key, v);
      asked.push(v);
    } else if (first !== v) {
      sameAs.set(v, first);
    }
  }
  return { asked, sameAs };
}

/**
 * Answers one `resolveMany` for `requester`: sends at most one `pending` frame (when any variable
 * needs the person) and then exactly one `secrets` frame, or one `error` frame when the whole
 * message cannot be answered (not signed in, no authority). Waits until every request is decided,
 * `request.timeoutMs` (default 120 s) passes, or `signal` aborts (the requester went away; then it
 * sends nothing more).
 * Per-variable codes: `denied`, `timeout`, `requester_gone`, `secret_not_found` (the wait ended and
 * no secret of that name exists, so nobody could approve it yet), `grant_needed` (`wait: false`),
 * and the authority's own errors (`rate_limited`, `authority_unavailable`, `policy_violation`…).
 */
export async function resolveMany(
  deps: ResolverDeps,
  requester: Requester,
  request: ResolveMany,
  send: (m: LinkMessage) => void,
  signal: AbortSignal,
): Promise<void> {
  const agent = requester.agent;
  const instanceId = deps.instanceId();
  if (agent === null || instanceId === null) {
    send({
      type: "error",
      id: request.id,
      code: "not_logged_in",
      message: NOT_SIGNED_IN_MESSAGE,
      retryable: isRetryable("not_logged_in"),
    });
    return;
  }
  const client = deps.authority();
  if (client === null) {
    send({
      type: "error",
      id: request.id,
      code: "authority_unavailable",
      message: "This Piper Link has no authority configured.",
      retryable: true,
    });
    return;
  }
  await requester.identification;
  const deadline = deps.now() + (request.timeoutMs ?? AGENT_DEFAULTS.approvalWaitMs);
  const identity = { instanceId, agentClientId: agent.clientId };
  const batchId = newBatchId();
  const { asked, sameAs } = distinctVariables(request.variables);
  const slots = new Map<string, Slot>();
  // A function, not a property read: the requester may go away during any await below.
  const gone = (): boolean => signal.aborted;

  /** Asks the authority for one variable (after a cache miss): a value, a pending request, or an error. */
  async function ask(authority: AuthorityClient, variable: string): Promise<Slot> {
    const generation = deps.cache.generation;
    try {
      const result = await authority.resolve({
        ...identity,
        ...(agent?.name !== undefined ? { agentName: agent.name } : {}),
        variable,
        ...(request.reason !== undefined ? { reason: request.reason } : {}),
        process: requester.process,
        batchId,
      });
      if (result.status === "pending") return { kind: "pending", requestId: result.requestId };
      if (result.reusable)
        deps.cache.put(
          identity.agentClientId,
          variable,
          requester.process,
          { value: result.value, grantId: result.grantId, expiresAt: result.expiresAt },
          generation,
        );
      deps.log.info(
        {
          conn: requester.connectionId,
          clientId: identity.agentClientId,
          variable: result.variable,
          grantId: result.grantId,
        },
        "secret delivered",
      );
      return {
        kind: "done",
        result: {
          value: result.value,
          grantId: result.grantId,
          expiresAt: result.expiresAt === null ? null : new Date(result.expiresAt).toISOString(),
        },
      };
    } catch (err) {
      if (err instanceof LinkError) return { kind: "done", result: failureFrom(err) };
      throw err;
    }
  }

  // 1. Each variable: the cache, else the authority (in order, so the card lists them as asked).
  for (const variable of asked) {
    const hit = deps.cache.get(identity.agentClientId, variable, requester.process, deps.now());
    if (hit !== null) {
      slots.set(variable, {
        kind: "done",
        result: {
          value: hit.value,
          grantId: hit.grantId,
          expiresAt: hit.expiresAt === null ? null : new Date(hit.expiresAt).toISOString(),
        },
      });
      deps.cache.recordUse({
        grantId: hit.grantId,
        at: deps.now(),
        agentClientId: identity.agentClientId,
        pid: requester.process?.pid ?? null,
        program: auditProgram(requester.process),
      });
      continue;
    }
    slots.set(variable, await ask(client, variable));
    if (gone()) return;
  }

  const pendingIds = (): Array<[string, string]> =>
    [...slots].flatMap(([v, s]) => (s.kind === "pending" ? [[v, s.requestId] as [string, string]] : []));
  const first = pendingIds();
  if (first.length > 0) {
    const requestIds = [...new Set(first.map(([, id]) => id))];
    send({
      type: "pending",
      id: request.id,
      requestId: requestIds[0] ?? "",
      requestIds,
      batchId,
      approveIn: "Piper Link",
    });
    deps.log.info(
      { conn: requester.connectionId, clientId: identity.agentClientId, requestIds, batchId },
      "requests pending",
    );
  }

  // 2. One wait loop for the batch: follow the first undecided request; decisions on the others
  // are read when their turn comes (the answer is one frame, so the order of noticing is free).
  // Past the deadline each remaining request is still read once (a zero wait), so one decided
  // while the loop waited on another is answered with its decision, not a timeout.
  const outOfTime = new Set<string>();
  if (request.wait) {
    for (;;) {
      const next = pendingIds().find(([v]) => !outOfTime.has(v));
      if (next === undefined || gone()) break;
      const [variable, requestId] = next;
      const left = Math.max(0, deadline - deps.now());
      let status: "pending" | "approved" | "denied" | "expired" | "requester_gone";
      try {
        status = (await client.wait(requestId, { ...identity, timeoutMs: Math.min(left, POLL_MS) }, signal)).status;
      } catch (err) {
        if (gone()) return;
        if (!(err instanceof LinkError)) throw err;
        // The batch shares its fate: an authority that cannot be asked answers every waiting variable.
        for (const [v] of pendingIds()) slots.set(v, { kind: "done", result: failureFrom(err) });
        break;
      }
      if (status === "approved") slots.set(variable, await ask(client, variable));
      else if (status === "denied")
        slots.set(variable, { kind: "done", result: failure("denied", "The request was denied in Piper Link.") });
      else if (status === "requester_gone")
        slots.set(variable, {
          kind: "done",
          result: failure("requester_gone", "The request ended because the program that asked has exited."),
        });
      else if (status === "expired")
        slots.set(variable, {
          kind: "done",
          result: failure("timeout", "The request expired before anyone approved it."),
        });
      else if (left === 0) outOfTime.add(variable);
    }
  }
  if (gone()) return;

  // 3. What is still pending: `grant_needed` when the agent did not wait; else a timeout, or
  // `secret_not_found` when no secret of that name exists (nobody could have approved it yet).
  const waiting = pendingIds();
  if (waiting.length > 0) {
    const existing = request.wait ? await secretNames(client) : null;
    for (const [variable, requestId] of waiting) {
      if (!request.wait) {
        slots.set(variable, {
          kind: "done",
          result: failure("grant_needed", `${variable} needs approval in Piper Link (request ${requestId}).`),
        });
      } else if (existing !== null && !existing.has(normalizeVariable(variable))) {
        const shown = variable.toUpperCase();
        slots.set(variable, {
          kind: "done",
          result: failure(
            "secret_not_found",
            `There is no secret named ${shown} in Piper yet, so nobody could approve it. Add it (piper-link secrets set ${shown}) and ask again; the request stays pending meanwhile.`,
          ),
        });
      } else {
        slots.set(variable, {
          kind: "done",
          result: failure(
            "timeout",
            "Nobody approved the request in time. It stays pending in Piper Link; ask again to keep waiting.",
          ),
        });
      }
    }
  }

  const answered = new Map<string, VariableResult>();
  for (const [variable, slot] of slots) if (slot.kind === "done") answered.set(variable, slot.result);
  for (const [variable, first] of sameAs) {
    const r = answered.get(first);
    if (r !== undefined) answered.set(variable, r);
  }
  // fromEntries defines own properties, so a variable named `__proto__` is answered like any other.
  send({ type: "secrets", id: request.id, results: Object.fromEntries(answered) });
}

/** The normalized names of the person's secrets; null when they cannot be read (then: plain timeout). */
async function secretNames(client: AuthorityClient): Promise<Set<string> | null> {
  try {
    return new Set((await client.listSecrets()).map((s) => normalizeVariable(s.name)));
  } catch {
    return null;
  }
}
