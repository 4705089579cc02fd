/**
 * Grants and requests tied to local processes end when those processes do (issue 13 items 4 and
 * 5). The authority cannot see this machine's processes, so the Link that owns the instance checks
 * every few seconds: process-bound grants whose process exited (or whose pid now names another
 * process, told apart by start time), session-bound grants whose terminal session leader exited,
 * and pending requests whose requesting process exited ("requester gone": approving them must fail,
 * since nobody is left to receive the secret) — or, for a requester that never waits for the answer
 * (pyper-sdk), whose terminal session ended.
 */
import type { Logger } from "pino";
import type { ApproveBody, GrantView, RequestView } from "../../../shared/authority.js";
import { LinkError } from "../../../shared/errors.js";
import { sessionKey } from "../../../shared/process.js";
import { isPidAlive } from "../runtime/files.js";
import { describeLinuxProcess } from "../process/describe-linux.js";
import type { AuthorityClient } from "./authority-client.js";

export interface LivenessDeps {
  authority(): AuthorityClient | null;
  instanceId(): string | null;
  log: Logger;
  /** The sweep's period in ms; default `LIVENESS_SWEEP_MS`. */
  intervalMs?: number;
}

/**
 * How often the sweep runs by default, in ms: a process-bound grant outlives its process by at most
 * this long (plus one sweep), and each sweep costs two authority calls and a /proc read per grant.
 */
export const LIVENESS_SWEEP_MS = 2000;

/**
 * Is the process (pid + start time in clock ticks) still the one that was seen? On Linux the start
 * time tells a reused pid apart; elsewhere only the pid can be checked (untested here).
 */
export async function processAlive(ref: { pid: number; startTime: number | null }): Promise<boolean> {
  if (process.platform !== "linux") return isPidAlive(ref.pid);
  const now = await describeLinuxProcess(ref.pid);
  return now.startTime !== null && now.startTime === ref.startTime;
}

/** The process a grant lives by: its own process, or its terminal session's leader; null when none. */
function grantAnchor(
  g: GrantView,
): { ref: { pid: number; startTime: number | null }; reason: "process_exited" | "session_ended" } | null {
  const kind = g.binding?.kind ?? "client";
  if ((kind === "process" || (kind === "client" && g.scope === "process")) && g.process !== null)
    return { ref: g.process, reason: "process_exited" };
  if (kind === "session" && g.binding?.sessionLeader) return { ref: g.binding.sessionLeader, reason: "session_ended" };
  return null;
}

/**
 * What a pending request lives by, when its requester was identified: the requesting process; or,
 * for a requester that never waits for the answer (pyper-sdk: it raises with a grant link and its
 * script ends), its terminal session's leader, so the person can approve after the script ended and
 * its next run in that terminal gets the grant. Such a request without a terminal session (a
 * container entered without setsid, a service) lives until it expires. Null: nothing local ends it.
 */
export function requestAnchor(r: RequestView): { pid: number; startTime: number | null } | null {
  if (r.process === null) return null;
  if (r.requesterWaits !== false) return { pid: r.process.pid, startTime: r.process.startTime };
  return sessionKey(r.process) !== null ? (r.process.sessionLeader ?? null) : null;
}

/**
 * Throws `requester_gone` (and ends the request at the authority) when what pending request
 * `request` lives by has ended (requestAnchor); used before an approval so a "yes" never goes to a
 * newcomer that reused the agent's name. A request whose process has exited but which lives on
 * (a requester that never waits) cannot be approved for "this process": that throws `bad_request`,
 * and the request stays, to be approved for the program or the terminal session.
 */
export async function requireRequesterAlive(
  client: AuthorityClient,
  request: RequestView,
  terms?: Pick<ApproveBody, "scope" | "binding">,
): Promise<void> {
  const anchor = requestAnchor(request);
  if (anchor !== null && !(await processAlive(anchor))) {
    await client.requesterGone(request.id);
    const who =
      anchor.pid === request.process?.pid
        ? `The program that asked for ${request.variable} (pid ${anchor.pid}) has exited`
        : `The terminal session that asked for ${request.variable} (session ${anchor.pid}) has ended`;
    throw new LinkError("requester_gone", `${who}, so there is nobody to give it to. Nothing was approved.`);
  }
  const forProcess = terms !== undefined && (terms.binding === "process" || terms.scope.kind === "process");
  const outlives = request.process !== null && (anchor === null || anchor.pid !== request.process.pid);
  if (forProcess && outlives && request.process !== null && !(await processAlive(request.process))) {
    throw new LinkError(
      "bad_request",
      `The program that asked for ${request.variable} (pid ${request.process.pid}) has ended, as pyper-sdk programs do after asking, so there is no process to bind to. Approve it for this program${sessionKey(request.process) !== null ? " or this terminal session" : ""}: its next run gets it.`,
    );
  }
}

/** One sweep; returns how many grants and requests it ended. */
export async function sweepLocalBindings(deps: LivenessDeps): Promise<{ grants: number; requests: number }> {
  const client = deps.authority();
  const instanceId = deps.instanceId();
  if (client === null || instanceId === null) return { grants: 0, requests: 0 };
  let grants = 0;
  let requests = 0;
  for (const g of await client.listGrants(false)) {
    if (g.instanceId !== instanceId) continue;
    const anchor = grantAnchor(g);
    if (anchor === null || (await processAlive(anchor.ref))) continue;
    await client.revokeGrant(g.id, anchor.reason);
    deps.log.info(
      { grantId: g.id, pid: anchor.ref.pid, reason: anchor.reason },
      "grant ended: its process or session ended",
    );
    grants += 1;
  }
  for (const r of await client.listRequests("pending")) {
    const ref = requestAnchor(r);
    if (r.instanceId !== instanceId || ref === null || (await processAlive(ref))) continue;
    await client.requesterGone(r.id);
    deps.log.info(
      { requestId: r.id, pid: ref.pid },
      "request ended: the requesting process or its terminal session ended",
    );
    requests += 1;
  }
  return { grants, requests };
}

/** Sweeps every `intervalMs` (default `LIVENESS_SWEEP_MS`) until the returned stop function is called. */
export function startLivenessSweeper(deps: LivenessDeps): () => void {
  let running = false;
  const timer = setInterval(() => {
    if (running) return;
    running = true;
    sweepLocalBindings(deps)
      .catch((err: unknown) => deps.log.debug({ err: String(err) }, "liveness sweep skipped"))
      .finally(() => {
        running = false;
      });
  }, deps.intervalMs ?? LIVENESS_SWEEP_MS);
  timer.unref();
  return () => clearInterval(timer);
}
