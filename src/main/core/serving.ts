/**
 * What a started Link listens with, started together and stopped together: the loopback server
 * (agent and control channels, the browser UI, the pyper-sdk grant page, the sign-in proxy), the
 * pyper-sdk endpoints on loopback HTTPS, the upstream for calls made for agents, and the sweeper that
 * ends grants whose process or terminal session is gone. core/link.ts owns the parts they share
 * (authority connection, grant cache, instance context, events) and hands them in.
 */
import { readFile } from "node:fs/promises";
import type { Logger } from "pino";
import type { LinkApi } from "../../shared/control.js";
import { CloseCode } from "../../shared/protocol.js";
import { DEFAULT_PYPER_PORT } from "../../shared/pyper.js";
import { DEFAULT_LINK_PORT } from "../../shared/version.js";
import type { InstanceContext } from "./account/instance-context.js";
import { createAgentHost } from "./agent-host.js";
import { pinnedConnector } from "./authority/authority-client.js";
import type { AuthorityConnection } from "./authority/connection.js";
import type { GrantCache } from "./authority/grant-cache.js";
import { startLivenessSweeper } from "./authority/local-liveness.js";
import { createUpstream, type Upstream } from "./calls/upstream.js";
import type { EventHub } from "./events.js";
import type { LinkOptions } from "./link-options.js";
import { grantPage } from "./loopback/grant-page.js";
import { DEFAULT_LIMITS } from "./loopback/limits.js";
import { LinkServer, type LinkServerAddress } from "./loopback/link-server.js";
import type { PeerResolver } from "./process/peer-resolver.js";
import { createSignInProxy } from "./loopback/sign-in-proxy.js";
import type { UiCodes } from "./loopback/ui-codes.js";
import { startPyperEndpoints, type PyperEndpoints } from "./pyper/pyper-endpoints.js";

export interface ServingParts {
  options: Pick<LinkOptions, "env" | "port" | "pyperPort" | "limits" | "uiDir" | "calls" | "livenessSweepMs">;
  dataDir: string;
  log: Logger;
  now: () => number;
  peers: PeerResolver;
  connection: AuthorityConnection;
  context: InstanceContext;
  cache: GrantCache;
  events: EventHub;
  api: LinkApi;
  /** The per-start control token (DESIGN.md section 3). */
  controlToken: string;
  uiCodes: UiCodes;
  /** The embedded authority whose sign-in pages the Link serves on its own origin, or null. */
  embeddedEndpoint: () => { url: string; pin: string } | null;
  onAgentsChanged: () => void;
}

export interface Serving {
  readonly server: LinkServer;
  readonly address: LinkServerAddress;
  readonly pyper: PyperEndpoints;
  /** Stops everything `startServing` started, in reverse order; never throws. */
  stop(): Promise<void>;
}

/**
 * Starts the listeners on the preferred ports (31477 and 31479 by default; 0 for free ones).
 * Errors: the server's (port taken and no fallback, `EADDRINUSE`), the pyper endpoints' and an
 * unreadable extra-CA file's; whatever started before the failure is stopped again first.
 */
export async function startServing(p: ServingParts): Promise<Serving> {
  const { options, log, now, peers, connection, context, cache, events } = p;
  let upstream: Upstream | null = null;
  let server: LinkServer | null = null;
  let pyper: PyperEndpoints | null = null;
  let stopSweeper: () => void = () => undefined;
  async function stop(): Promise<void> {
    await pyper?.stop().catch(() => undefined);
    await server?.stop(CloseCode.goingAway).catch(() => undefined);
    events.setBroadcast(null);
    stopSweeper();
    await upstream?.close().catch(() => undefined);
  }
  try {
    const caFile = options.calls?.extraCaFile === undefined ? options.env.extraCaFile : options.calls.extraCaFile;
    upstream = createUpstream({ extraCaPem: caFile === null || caFile === "" ? null : await readFile(caFile, "utf8") });
    const created: LinkServer = new LinkServer({
      port: options.port ?? DEFAULT_LINK_PORT,
      limits: { ...DEFAULT_LIMITS, ...options.limits },
      log,
      now,
      peers,
      agentHost: createAgentHost({
        now,
        log,
        connection,
        context,
        cache,
        upstream,
        agentIdentified: () => created.agentsChanged(),
      }),
      uiDir: options.uiDir ?? null,
      grantPage: (query) =>
        grantPage(query, {
          pendingRequests: () => connection.client?.listRequests("pending") ?? Promise.resolve([]),
          show: (request) => events.emit({ kind: "show", view: "requests", requestId: request.id }),
        }),
      signInProxy: createSignInProxy({ target: p.embeddedEndpoint, pinnedConnector }),
      onAgentsChanged: p.onAgentsChanged,
      controlHost: { now, log, token: p.controlToken, redeemUiCode: (code) => p.uiCodes.redeem(code), api: p.api },
    });
    server = created;
    stopSweeper = startLivenessSweeper({
      authority: () => connection.client,
      instanceId: () => context.instanceId,
      log,
      ...(options.livenessSweepMs !== undefined ? { intervalMs: options.livenessSweepMs } : {}),
    });
    events.setBroadcast((event) => created.broadcastEvent(event));
    const address = await created.start();
    const endpoints = await startPyperEndpoints({
      port: options.pyperPort ?? (options.port === 0 ? 0 : DEFAULT_PYPER_PORT),
      dataDir: p.dataDir,
      log,
      now,
      peers,
      authority: () => connection.client,
      instanceId: () => context.instanceId,
    });
    pyper = endpoints;
    return { server: created, address, pyper: endpoints, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
