/**
 * Grants "for the life of a process" end when that process does. The authority cannot see local
 * processes, so the Link checks, every few seconds, the process-scoped grants of this instance and
 * revokes those whose pid is gone or now names another process (different start time).
 */
import type { Logger } from "pino";
import type { AuthorityClient } from "./authority-client.js";
import { describeLinuxProcess } from "../loopback/peer-process.js";

export interface SweeperDeps {
  authority(): AuthorityClient | null;
  instanceId(): string | null;
  log: Logger;
  intervalMs?: number;
}

export async function sweepProcessGrants(deps: SweeperDeps): Promise<number> {
  const client = deps.authority();
  const instanceId = deps.instanceId();
  if (client === null || instanceId === null || process.platform !== "linux") return 0;
  const grants = await client.listGrants(false);
  let ended = 0;
  for (const g of grants) {
    if (g.scope !== "process" || g.process === null || g.instanceId !== instanceId) continue;
    const now = await describeLinuxProcess(g.process.pid);
    if (now.startTime !== null && now.startTime === g.process.startTime) continue;
    await client.revokeGrant(g.id, "process_exited");
    deps.log.info({ grantId: g.id, pid: g.process.pid }, "process-scoped grant ended: process exited");
    ended += 1;
  }
  return ended;
}

export function startProcessGrantSweeper(deps: SweeperDeps): () => void {
  let running = false;
  const timer = setInterval(() => {
    if (running) return;
    running = true;
    sweepProcessGrants(deps)
      .catch((err: unknown) => deps.log.debug({ err: String(err) }, "process grant sweep skipped"))
      .finally(() => {
        running = false;
      });
  }, deps.intervalMs ?? 2000);
  timer.unref();
  return () => clearInterval(timer);
}
