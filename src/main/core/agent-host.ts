/**
 * What the agent channel needs from the rest of the core (`AgentHost`): the context agents are
 * told, and the handlers of their messages — `resolve` / `resolveMany` (authority/), `grants`
 * (authority/agent-grants.ts), `validate` / `metadata` / `permissionCheck` (authority/agent-checks.ts),
 * `call` and `requestAccess` (calls/), and whom Piper Link's own commands ask for
 * (process/acting-for.ts). Composed here so link.ts only wires parts together.
 */
import type { Logger } from "pino";
import type { InstanceContext } from "./account/instance-context.js";
import { createAgentChecks } from "./authority/agent-checks.js";
import { createAgentGrants } from "./authority/agent-grants.js";
import type { AuthorityConnection } from "./authority/connection.js";
import type { GrantCache } from "./authority/grant-cache.js";
import { createAgentResolver } from "./authority/resolver.js";
import { createAccessRequester } from "./calls/access-request.js";
import { createCallGrants } from "./calls/call-grants.js";
import { createCallHandler } from "./calls/call-handler.js";
import type { Upstream } from "./calls/upstream.js";
import { actingForIdentity } from "./process/acting-for.js";
import type { AgentHost } from "./loopback/agent-channel.js";
import { identifyLinuxProcess } from "./process/identify-linux.js";

export interface AgentHostParts {
  now: () => number;
  log: Logger;
  connection: AuthorityConnection;
  context: InstanceContext;
  cache: GrantCache;
  /** The HTTPS client for calls made for agents; null: calls are not offered. */
  upstream: Upstream | null;
  /** An agent said hello (the window's list of agents follows). */
  agentIdentified: () => void;
}

export function createAgentHost(p: AgentHostParts): AgentHost {
  const { now, log, connection, context, cache, upstream } = p;
  const authority = () => connection.client;
  const instanceId = () => context.instanceId;
  return {
    now,
    log,
    context: () => context.snapshot(),
    authorityUrl: () => connection.client?.url ?? null,
    resolve: createAgentResolver({ now, log, authority, instanceId, cache }),
    grants: createAgentGrants({ now, authority, instanceId }),
    checks: createAgentChecks({ now, authority, instanceId }),
    ...(upstream !== null
      ? {
          call: createCallHandler({
            now,
            log,
            upstream,
            grants: createCallGrants({ now, log, authority, instanceId, cache }),
            recordUse: (use) => cache.recordUse(use),
          }),
        }
      : {}),
    // Asks as a call naming the secret would, with `wait: false`; no value ever leaves the Link.
    requestAccess: createAccessRequester({
      now,
      grants: createCallGrants({ now, log, authority, instanceId, cache }),
      listGrants: createAgentGrants({ now, authority, instanceId }),
    }),
    agentIdentified: p.agentIdentified,
    actingFor: (peer, claim) =>
      actingForIdentity(peer, claim, (pid) =>
        process.platform === "linux" ? identifyLinuxProcess(pid) : Promise.resolve(null),
      ),
  };
}
