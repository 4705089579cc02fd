/**
 * The Link core as a library: `createLink(options)` composes the parts — the loopback server
 * (loopback/), the authority connection and grant cache (authority/), the sign-in and instance
 * context (account/), and the runtime files and settings (runtime/) — and runs their lifecycle with
 * an explicit `start()`/`stop()`. Nothing happens at import time and every dependency (keychain,
 * clock, ports, paths, logger) is injected, so tests start their own Link on port 0 with a
 * temporary profile. docs/architecture.md shows where each behaviour lives.
 */
import { randomBytes } from "node:crypto";
import { readFile } from "node:fs/promises";
import type { Logger } from "pino";
import { uiAddress, type ControlEvent, type LinkApi, type LinkStatus } from "../../shared/control.js";
import { CloseCode } from "../../shared/protocol.js";
import { DEFAULT_LINK_PORT } from "../../shared/version.js";
import { createInstanceContext } from "./account/instance-context.js";
import type { KeychainStore } from "./runtime/keychain.js";
import { createSignIn } from "./account/sign-in.js";
import { createSignInSession } from "./account/sign-in-session.js";
export type { AuthorityConfig } from "./authority/configured-authority.js";
import { createAuthorityConnection } from "./authority/connection.js";
import { connectConfiguredAuthority, type AuthorityConfig } from "./authority/configured-authority.js";
import type { EmbeddedAuthority } from "./authority/embedded-authority.js";
import { createGrantCache } from "./authority/grant-cache.js";
import { startLivenessSweeper } from "./authority/local-liveness.js";
import { createUpstream, type Upstream } from "./calls/upstream.js";
import { createAgentHost } from "./agent-host.js";
import { createControlApi } from "./control-api.js";
import { createUiCodes } from "./loopback/ui-codes.js";
import { createEventHub } from "./events.js";
import { grantPage } from "./loopback/grant-page.js";
import { DEFAULT_LIMITS, type LinkLimits } from "./loopback/limits.js";
import { LinkServer, type LinkServerAddress } from "./loopback/link-server.js";
import { createSignInProxy } from "./loopback/sign-in-proxy.js";
import { createPeerResolver, type PeerResolver } from "./loopback/peer-process.js";
import { startPyperEndpoints, type PyperEndpoints } from "./pyper/pyper-endpoints.js";
import { DEFAULT_PYPER_PORT } from "../../shared/pyper.js";
import { acquireInstanceLock, type InstanceLock } from "./runtime/instance-lock.js";
import type { LinkPaths } from "./runtime/paths.js";
import { describeRunningLink, removeRuntimeFiles, writeRuntimeFiles } from "./runtime/runtime-files.js";
import { createSettingsStore } from "./runtime/settings.js";
import { linkStatus } from "./status.js";

export interface LinkOptions {
  profile?: string;
  /** Preferred port (default 31477); 0 picks a free one. */
  port?: number;
  /**
   * Preferred port of the pyper-sdk endpoints on loopback HTTPS (core/pyper/): default 31479, or 0
   * (a free one) when `port` is 0, so tests never collide.
   */
  pyperPort?: number;
  paths: LinkPaths;
  keychain: KeychainStore;
  log: Logger;
  now?: () => number;
  limits?: Partial<LinkLimits>;
  peers?: PeerResolver;
  /**
   * Where secrets come from: the embedded authority (child process, SQLite in the data dir), a
   * remote one (URL + Link token), or none (resolve answers authority_unavailable).
   */
  authority?: AuthorityConfig | null;
  /** How often to retry the keychain after it failed (locked or unavailable), in ms (default 5000). */
  keychainRetryMs?: number;
  /** Called when a control client asks the Link to shut down (the daemon exits after `stop()`). */
  onShutdownRequested?: () => void;
  /** The built browser UI to serve under /ui/ (null or absent: none). */
  uiDir?: string | null;
  /**
   * Calls made for agents (core/calls/). `extraCaFile`: a PEM file of CA certificates trusted for
   * outgoing calls besides the system ones (a corporate proxy's, a test's); absent: the
   * `PIPER_LINK_EXTRA_CA` environment variable; null: none.
   */
  calls?: { extraCaFile?: string | null };
}

export interface Link {
  start(): Promise<LinkStatus>;
  stop(): Promise<void>;
  status(): LinkStatus;
  /** The control API the UI and CLI use (over IPC or the control socket). */
  readonly api: LinkApi;
  /** The per-start control token (DESIGN.md section 3). */
  readonly controlToken: string;
  /** In-process listeners (the Electron shell) hear what control clients hear. */
  subscribe(listener: (event: ControlEvent) => void): () => void;
  /** The address of the browser UI with the control token in its fragment (never sent to a server). */
  uiUrl(): string;
}

export function createLink(options: LinkOptions): Link {
  const now = options.now ?? Date.now;
  const { paths, keychain, log } = options;
  const config = options.authority ?? null;
  const controlToken = randomBytes(32).toString("base64url");

  let server: LinkServer | null = null;
  let address: LinkServerAddress | null = null;
  let startedAt = new Date(now());
  let lock: InstanceLock | null = null;
  let embedded: EmbeddedAuthority | null = null;
  let stopSweeper: () => void = () => undefined;
  let stopping: Promise<void> | null = null;
  let upstream: Upstream | null = null;
  let pyper: PyperEndpoints | null = null;
  // One resolver for both listeners: lookups that arrive together share one /proc scan.
  const peers = options.peers ?? createPeerResolver();

  const events = createEventHub(log);
  const emitStatus = (): void => events.emit({ kind: "status", status: status() });
  const settings = createSettingsStore(paths.dataDir, log);
  const cache = createGrantCache({ log, report: (report) => connection.require().reportUsage(report) });
  const session = createSignInSession({ keychain, client: () => connection.client, log, now });
  const connection = createAuthorityConnection({
    credentials: session,
    cache,
    log,
    onEvent: (event) => events.emit({ kind: "authority", event }),
    onConnectionChange: emitStatus,
  });
  const context = createInstanceContext({
    keychain,
    log,
    retryMs: options.keychainRetryMs ?? 5000,
    onRetried: emitStatus,
    onChange(instanceId) {
      cache.clear("context changed");
      // Credential IDs and scoped tokens were handed out for the previous instance.
      pyper?.clear();
      if (server === null) return;
      const state = instanceId === null ? "logged_out" : "ready";
      log.info({ state }, "context changed");
      server.broadcastContext({ type: "context", instanceId, state });
      emitStatus();
    },
  });
  /** The embedded authority, whose sign-in pages the Link serves on its own origin (issue 15 item 3). */
  const embeddedEndpoint = (): { url: string; pin: string } | null => {
    const endpoint = config?.kind === "embedded" ? connection.endpoint : null;
    return endpoint?.pin ? { url: endpoint.url, pin: endpoint.pin } : null;
  };
  const signIn = createSignIn({
    onWhoChanged: () => emitStatus(),
    session,
    connection,
    context,
    log,
    pagesOrigin: () => (embeddedEndpoint() !== null && address !== null ? `http://127.0.0.1:${address.port}` : null),
  });

  function status(): LinkStatus {
    const base = linkStatus({
      profile: options.profile ?? "default",
      preferredPort: options.port,
      startedAt,
      paths,
      server,
      address,
      context,
      connection,
      authorityMode: config?.kind ?? null,
      signIn,
      session,
      keychainBackend: keychain.backend ?? null,
    });
    return { ...base, pyper: pyper === null ? null : { port: pyper.port, certFile: pyper.certFile } };
  }

  const uiCodes = createUiCodes({ now });
  const api = createControlApi({
    uiCodes,
    connection,
    cache,
    context,
    signIn,
    settings,
    status,
    emit: (event) => events.emit(event),
    shutdown: () => (options.onShutdownRequested ? options.onShutdownRequested() : void link.stop()),
  });

  function createServer(): LinkServer {
    const created: LinkServer = new LinkServer({
      port: options.port ?? DEFAULT_LINK_PORT,
      limits: { ...DEFAULT_LIMITS, ...options.limits },
      log,
      now,
      peers,
      agentHost: createAgentHost({ now, log, connection, context, cache, upstream, agentIdentified: () => created.agentsChanged() }),
      uiDir: options.uiDir ?? null,
      grantPage: (query) =>
        grantPage(query, {
          pendingRequests: () => connection.client?.listRequests("pending") ?? Promise.resolve([]),
          show: (request) => events.emit({ kind: "show", view: "requests", requestId: request.id }),
        }),
      signInProxy: createSignInProxy({ target: embeddedEndpoint }),
      onAgentsChanged: emitStatus,
      controlHost: { now, log, token: controlToken, redeemUiCode: (code) => uiCodes.redeem(code), api },
    });
    stopSweeper = startLivenessSweeper({ authority: () => connection.client, instanceId: () => context.instanceId, log });
    return created;
  }

  /** Stops what `start` started, in reverse order; safe on a partial start. */
  async function teardown(): Promise<void> {
    context.stop();
    signIn.stop();
    await pyper?.stop().catch(() => undefined);
    pyper = null;
    await server?.stop(CloseCode.goingAway).catch(() => undefined);
    events.setBroadcast(null);
    server = null;
    stopSweeper();
    await upstream?.close().catch(() => undefined);
    upstream = null;
    await cache.stop().catch(() => undefined);
    connection.close();
    await embedded?.stop();
    embedded = null;
  }

  const link: Link = {
    api,
    controlToken,
    status,
    subscribe: (listener) => events.subscribe(listener),
    uiUrl: () => uiAddress(address?.port ?? 0, controlToken),
    async start() {
      if (server !== null) throw new Error("This Link is already started.");
      const acquired = await acquireInstanceLock(paths.lockFile, (pid) => describeRunningLink(paths, pid));
      lock = acquired;
      try {
        startedAt = new Date(now());
        await context.load();
        await settings.load();
        const connected = await connectConfiguredAuthority({ config, dataDir: paths.dataDir, keychain, log, linkPort: options.port, connection });
        embedded = connected.embedded;
        signIn.setLocalToken(connected.localToken);
        await signIn.refreshAccount();
        const caFile = options.calls?.extraCaFile === undefined ? (process.env["PIPER_LINK_EXTRA_CA"] ?? null) : options.calls.extraCaFile;
        upstream = createUpstream({ extraCaPem: caFile === null || caFile === "" ? null : await readFile(caFile, "utf8") });
        const started = createServer();
        server = started;
        events.setBroadcast((event) => started.broadcastEvent(event));
        address = await started.start();
        pyper = await startPyperEndpoints({
          port: options.pyperPort ?? (options.port === 0 ? 0 : DEFAULT_PYPER_PORT),
          dataDir: paths.dataDir,
          log,
          now,
          peers,
          authority: () => connection.client,
          instanceId: () => context.instanceId,
        });
        await writeRuntimeFiles(paths, { port: address.port, controlToken, startedAt });
        log.info({ port: address.port, hosts: address.hosts, fallback: address.fallback, state: context.snapshot().state }, "link started");
        return status();
      } catch (err) {
        await teardown();
        await acquired.release();
        lock = null;
        throw err;
      }
    },
    stop() {
      stopping ??= (async () => {
        await teardown();
        await removeRuntimeFiles(paths);
        await lock?.release();
        log.info("link stopped");
      })();
      return stopping;
    },
  };
  return link;
}
