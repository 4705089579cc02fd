/**
 * The agent protocol's `grants` (protocol.ts): which secrets an agent may use now without asking
 * the person. The authority lists every grant of the account (the window's list); this keeps only
 * those of the asking agent — its client ID, on this instance, live — and, for a grant bound to a
 * process, only when that process is the asker. Only names and terms leave here, never a value.
 */
import { LinkError, NOT_SIGNED_IN_MESSAGE } from "../../../shared/errors.js";
import type { GrantView } from "../../../shared/authority.js";
import type { AgentGrant } from "../../../shared/protocol.js";
import { programKey, type PeerProcess } from "../../../shared/process.js";
import type { AuthorityClient } from "./authority-client.js";
import type { Requester } from "../process/requester.js";

export interface AgentGrantsDeps {
  now(): number;
  authority(): AuthorityClient | null;
  instanceId(): string | null;
}

/** Who asks: the requester's agent and program (process/requester.ts). */
export type GrantsAsker = Pick<Requester, "agent" | "process">;

/** True when `g` is a live grant the asker may use (see the module comment). */
export function grantServes(
  g: GrantView,
  asker: { clientId: string; process: PeerProcess | null; instanceId: string; now: number },
): boolean {
  if (g.agentClientId !== asker.clientId || g.endedAt !== null) return false;
  // A grant without an instance was made before this machine registered; it still serves here.
  if (g.instanceId !== null && g.instanceId !== asker.instanceId) return false;
  if (g.expiresAt !== null && g.expiresAt <= asker.now) return false;
  const p = asker.process;
  const kind = g.binding?.kind ?? "client";
  if (kind === "process" || g.scope === "process") {
    if (g.process === null || p === null || g.process.pid !== p.pid) return false;
    if (g.process.startTime !== null && p.startTime !== null && g.process.startTime !== p.startTime) return false;
  }
  if (kind === "program" || kind === "session") {
    // The same program identity the authority checks (executable + script + folder; and the session).
    const program = g.binding?.program ?? null;
    if (
      program === null ||
      p === null ||
      programKey({ ...p, executable: program.executable, script: program.script, cwd: program.cwd }) !== programKey(p)
    )
      return false;
    if (kind === "session" && (p.sessionId ?? null) !== g.binding?.sessionId) return false;
  }
  return true;
}

/**
 * Creates the `grants` answerer of the agent host. Throws LinkError: `not_logged_in` (nobody signed
 * in, or the authority refused the Link's credential), `authority_unavailable` (none configured).
 * Other authority failures propagate as the authority client's LinkError (retryable on 5xx).
 */
export function createAgentGrants(deps: AgentGrantsDeps): (asker: GrantsAsker) => Promise<AgentGrant[]> {
  return async (asker) => {
    const instanceId = deps.instanceId();
    if (instanceId === null || asker.agent === null) throw new LinkError("not_logged_in", NOT_SIGNED_IN_MESSAGE);
    const client = deps.authority();
    if (client === null) throw new LinkError("authority_unavailable", "This Piper Link has no authority configured.");
    const all = await client.listGrants(false).catch((err: unknown) => {
      if (err instanceof LinkError && err.code === "unauthorized")
        throw new LinkError("not_logged_in", err.message, { cause: err });
      throw err;
    });
    const asking = { clientId: asker.agent.clientId, process: asker.process, instanceId, now: deps.now() };
    const seen = new Map<string, AgentGrant>();
    for (const g of all) {
      if (!grantServes(g, asking)) continue;
      // One entry per variable: several grants for one name are one name to the agent.
      if (!seen.has(g.variable))
        seen.set(g.variable, { variable: g.variable, mode: g.mode ?? null, expiresAt: g.expiresAt });
    }
    return [...seen.values()].sort((a, b) => a.variable.localeCompare(b.variable));
  };
}
