/**
 * Grants and requests tied to local processes end when those processes do (issue 13 items 4 and
 * 5). The authority cannot see this machine's processes, so the Link that owns the instance checks
 * every few seconds: process-bound grants whose process exited (or whose pid now names another
 * process, told apart by start time), session-bound grants whose terminal session leader exited,
 * and pending requests whose requesting process exited ("requester gone": approving them must fail,
 * since nobody is left to receive the secret).
 */
import type { Logger } from "pino";
import type { GrantView, RequestView } from "../../../shared/authority.js";
import { LinkError } from "../../../shared/errors.js";
import { isPidAlive } from "../runtime/files.js";
import { describeLinuxProcess } from "../loopback/peer-process.js";
import type { AuthorityClient } from "./authority-client.js";

export interface LivenessDeps {
  authority(): AuthorityClient | null;
  instanceId(): string | null;
  log: Logger;
  intervalMs?: number;
}

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
function grantAnchor(g: GrantView): { ref: { pid: number; startTime: number | null }; reason: "process_exited" | "session_ended" } | null {
  const kind = g.binding?.kind ?? "client";
  if ((kind === "process" || (kind === "client" && g.scope === "process")) && g.process !== null) return { ref: g.process, reason: "process_exited" };
  if (kind === "session" && g.binding?.sessionLeader) return { ref: g.binding.sessionLeader, reason: "session_ended" };
  return null;
}

/** The process a pending request came from, when it was identified. */
function requester(r: RequestView): { pid: number; startTime: number | null } | null {
  return r.process === null ? null : { pid: r.process.pid, startTime: r.process.startTime };
}

/**
 * Throws `requester_gone` (and ends the request at the authority) when the process that made
 * pending request `request` has exited; used before an approval so a "yes" never goes to a
 * newcomer that reused the agent's name.
 */
export async function requireRequesterAlive(client: AuthorityClient, request: RequestView): Promise<void> {
  const ref = requester(request);
  if (ref === null || (await processAlive(ref))) return;
  await client.requesterGone(request.id);
  throw new LinkError("requester_gone", `The program that asked for ${request.variable} (pid ${ref.pid}) has exited, so there is nobody to give it to. Nothing was approved.`);
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
    deps.log.info({ grantId: g.id, pid: anchor.ref.pid, reason: anchor.reason }, "grant ended: its process or session ended");
    grants += 1;
  }
  for (const r of await client.listRequests("pending")) {
    const ref = requester(r);
    if (r.instanceId !== instanceId || ref === null || (await processAlive(ref))) continue;
    await client.requesterGone(r.id);
    deps.log.info({ requestId: r.id, pid: ref.pid }, "request ended: the requesting process exited");
    requests += 1;
  }
  return { grants, requests };
}

/** Sweeps every `intervalMs` (default 2 s) until the returned stop function is called. */
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
  }, deps.intervalMs ?? 2000);
  timer.unref();
  return () => clearInterval(timer);
}
