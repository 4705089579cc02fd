/**
 * The Link core as a library: `createLink(options)` wires the keychain, the loopback server, the
 * discovery and control files and the single-instance lock, with an explicit `start()`/`stop()`.
 * Nothing happens at import time and every dependency (keychain, clock, ports, paths, logger) is
 * injected, so tests start their own Link on port 0 with a temporary profile.
 */
import { randomBytes } from "node:crypto";
import os from "node:os";
import type { Logger } from "pino";
import { redactInstanceId, uiAddress, type ControlEvent, type LinkApi, type LinkStatus } from "../../shared/control.js";
import type { DiscoveryFile } from "../../shared/discovery.js";
import { LinkError } from "../../shared/errors.js";
import { CloseCode, type ContextPush } from "../../shared/protocol.js";
import { DEFAULT_LINK_PORT, LINK_VERSION } from "../../shared/version.js";
import { NOT_LOGGED_IN_MESSAGE, type ContextSnapshot } from "./loopback/agent-channel.js";
import { createAuthorityClient, type AuthorityClient } from "./authority/authority-client.js";
import { DEFAULT_AUTHORITY_PORT, startEmbeddedAuthority, type AuthorityLauncher, type EmbeddedAuthority } from "./authority/embedded-authority.js";
import { createAgentResolver } from "./authority/resolver.js";
import { createSignInSession } from "./account/sign-in-session.js";
import { createGrantCache } from "./authority/grant-cache.js";
import { startBrowserLogin, startDeviceLogin, type LoginAttempt } from "./account/login.js";
import { startProcessGrantSweeper } from "./authority/process-grants.js";
import { readFileOrNull, removeIfOwned, writeFileAtomic } from "./runtime/files.js";
import { acquireInstanceLock, type InstanceLock } from "./runtime/instance-lock.js";
import type { KeychainStore } from "./account/keychain.js";
import { DEFAULT_LIMITS, type LinkLimits } from "./loopback/limits.js";
import { LinkServer, type LinkServerAddress } from "./loopback/link-server.js";
import type { LinkPaths } from "./runtime/paths.js";
import { createPeerResolver, type PeerResolver } from "./loopback/peer-process.js";
import { createSettingsStore } from "./runtime/settings.js";
import { grantPage } from "./loopback/grant-page.js";

export interface LinkOptions {
  profile?: string;
  /** Preferred port (default 31477); 0 picks a free one. */
  port?: number;
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
  /** How often to retry the keychain after it failed (locked or unavailable). */
  keychainRetryMs?: number;
  /** Called when a control client asks the Link to shut down (the daemon exits after `stop()`). */
  onShutdownRequested?: () => void;
  /** The built browser UI to serve under /ui/ (null or absent: none). */
  uiDir?: string | null;
}

export type AuthorityConfig =
  | { kind: "embedded"; requestTtlMs?: number; agentRatePerSecond?: number; port?: number; launcher?: AuthorityLauncher }
  | { kind: "remote"; url: string; linkToken?: string | null; ca?: string | null };

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
  const profile = options.profile ?? "default";
  const now = options.now ?? Date.now;
  const limits: LinkLimits = { ...DEFAULT_LIMITS, ...options.limits };
  const { paths, keychain, log } = options;
  const controlToken = randomBytes(32).toString("base64url");

  let instanceId: string | null = null;
  let keychainError: LinkError | null = null;
  let address: LinkServerAddress | null = null;
  let startedAt = new Date(now());
  let lock: InstanceLock | null = null;
  let retryTimer: NodeJS.Timeout | null = null;
  let stopping: Promise<void> | null = null;
  let authority: AuthorityClient | null = null;
  let authorityState: { connected: boolean; error: string | null } = { connected: false, error: null };
  let embedded: EmbeddedAuthority | null = null;
  const session = createSignInSession({ keychain, client: () => authority, log, now });
  let account: "oauth" | "local-token" | "none" = "none";
  let localToken = false;
  const logins = new Map<string, LoginAttempt>();
  const settings = createSettingsStore(paths.dataDir, log);
  const listeners = new Set<(event: ControlEvent) => void>();

  /** Sends an event to every control client (UI, CLI) and in-process listener (Electron shell). */
  function emit(event: ControlEvent): void {
    server?.broadcastEvent(event);
    for (const listener of listeners) {
      try {
        listener(event);
      } catch (err) {
        log.error({ err: err instanceof Error ? err.message : String(err) }, "event listener failed");
      }
    }
  }

  async function refreshAccount(): Promise<void> {
    account = (await session.hasOAuth().catch(() => false)) ? "oauth" : localToken ? "local-token" : "none";
  }
  let unfollow: () => void = () => undefined;
  let stopSweeper: () => void = () => undefined;
  const cache = createGrantCache({ log, report: (report) => requireAuthority().reportUsage(report) });

  /** Runs a change through the authority, dropping cached grants before and after it. */
  async function changing<T>(what: string, op: () => Promise<T>): Promise<T> {
    cache.clear(what);
    try {
      return await op();
    } finally {
      cache.clear(what);
    }
  }

  function requireAuthority(): AuthorityClient {
    if (authority === null) throw new LinkError("authority_unavailable", "This Piper Link has no authority configured.");
    return authority;
  }

  let endpoint: { url: string; pin: string | null; ca: string | null } | null = null;

  /**
   * (Re)connects to the authority. Also called when the account changes (login, logout): the event
   * stream is bound to the account that opened it, and the grant cache relies on hearing that
   * account's revocations.
   */
  function useAuthority(url: string, pin: string | null, ca: string | null): void {
    endpoint = { url, pin, ca };
    cache.clear("authority connection");
    unfollow();
    authority?.close();
    const client = createAuthorityClient({ url, pin, ca, credentials: session, log: (msg, fields) => log.warn(fields, msg) });
    authority = client;
    unfollow = client.follow(
      (event) => {
        if (event.type === "grant.changed" || event.type === "secret.changed") cache.clear(event.type);
        emit({ kind: "authority", event });
      },
      (connected, error) => {
        // Answer from memory only while revocations can be heard.
        cache.setEnabled(connected);
        const changed = connected !== authorityState.connected;
        authorityState = { connected, error };
        if (changed) {
          log.info({ connected, error }, "authority connection");
          emit({ kind: "status", status: status() });
        }
      },
    );
  }

  function snapshot(): ContextSnapshot {
    if (instanceId !== null) return { state: "ready", instanceId };
    if (keychainError !== null) return { state: "logged_out", error: { code: keychainError.code, message: keychainError.message } };
    return { state: "logged_out", error: { code: "not_logged_in", message: NOT_LOGGED_IN_MESSAGE } };
  }

  function status(): LinkStatus {
    const port = address?.port ?? 0;
    return {
      version: LINK_VERSION,
      pid: process.pid,
      profile,
      startedAt: startedAt.toISOString(),
      url: `ws://127.0.0.1:${port}/v1/link`,
      port,
      preferredPort: options.port ?? DEFAULT_LINK_PORT,
      portFallback: address?.fallback ?? false,
      state: instanceId === null ? "logged_out" : "ready",
      instanceIdRedacted: instanceId === null ? null : redactInstanceId(instanceId),
      keychain: keychainError === null ? { ok: true, code: null, message: null } : { ok: false, code: keychainError.code, message: keychainError.message },
      agents: server ? [...server.agents].map((a) => a.describe()) : [],
      authority:
        authority === null || options.authority == null
          ? null
          : {
              url: authority.url,
              mode: options.authority.kind,
              connected: authorityState.connected,
              error: authorityState.error,
              account: session.error !== null ? "none" : account,
              signInError: session.error,
            },
      discoveryFile: paths.discoveryFile,
      logFile: paths.logFile,
    };
  }

  /** Applies a new instance ID (or none) and tells every connected agent and UI. */
  function setContext(next: string | null): void {
    const changed = next !== instanceId;
    if (changed) cache.clear("context changed");
    instanceId = next;
    if (!changed || server === null) return;
    const push: ContextPush = { type: "context", instanceId: next, state: next === null ? "logged_out" : "ready" };
    log.info({ state: push.state }, "context changed");
    server.broadcastContext(push);
    emit({ kind: "status", status: status() });
  }

  async function loadContext(): Promise<void> {
    try {
      const stored = await keychain.get("instance-id");
      keychainError = null;
      setContext(stored);
    } catch (err) {
      keychainError = err instanceof LinkError ? err : new LinkError("keychain_unavailable", String(err));
      log.error({ code: keychainError.code, err: keychainError.message }, "keychain read failed");
      scheduleKeychainRetry();
    }
  }

  function scheduleKeychainRetry(): void {
    if (retryTimer !== null || stopping !== null) return;
    retryTimer = setTimeout(() => {
      retryTimer = null;
      void loadContext().then(() => emit({ kind: "status", status: status() }));
    }, options.keychainRetryMs ?? 5000);
    retryTimer.unref();
  }

  const api: LinkApi = {
    status: () => Promise.resolve(status()),
    async setInstanceId({ instanceId: id }) {
      await keychain.set("instance-id", id);
      keychainError = null;
      setContext(id);
      return status();
    },
    async logout() {
      await session.signOut();
      await keychain.delete("instance-id");
      await refreshAccount();
      if (endpoint !== null) useAuthority(endpoint.url, endpoint.pin, endpoint.ca);
      setContext(null);
      return status();
    },
    async loginStart({ device }) {
      const client = requireAuthority();
      const attempt = device ? await startDeviceLogin(client) : await startBrowserLogin(client);
      // Settled by loginWait; a login nobody waits for must not become an unhandled rejection.
      attempt.tokens.catch(() => undefined);
      const loginId = randomBytes(9).toString("base64url");
      logins.set(loginId, attempt);
      setTimeout(() => {
        attempt.cancel();
        logins.delete(loginId);
      }, 15 * 60_000).unref();
      return { loginId, kind: attempt.kind, authorizeUrl: attempt.authorizeUrl, verificationUri: attempt.verificationUri, verificationUriComplete: attempt.verificationUriComplete, userCode: attempt.userCode };
    },
    async loginWait({ loginId, timeoutMs }) {
      const attempt = logins.get(loginId);
      if (attempt === undefined) throw new LinkError("not_found", "No sign-in in progress with that ID. Run `piper-link login` again.");
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new LinkError("timeout", "Nobody completed the sign-in in time. Run `piper-link login` again.")), timeoutMs);
      });
      try {
        const tokens = await Promise.race([attempt.tokens, timeout]);
        await session.accept(tokens);
        await refreshAccount();
        if (endpoint !== null) useAuthority(endpoint.url, endpoint.pin, endpoint.ca);
        const client = requireAuthority();
        // Same machine, same account: keep the instance; otherwise register this machine.
        const existing = await keychain.get("instance-id");
        const id = existing !== null && (await client.instanceIsMine(existing)) ? existing : (await client.registerInstance(os.hostname())).instanceId;
        await keychain.set("instance-id", id);
        keychainError = null;
        setContext(id);
        emit({ kind: "status", status: status() });
        log.info({ method: attempt.kind }, "signed in");
        return status();
      } finally {
        clearTimeout(timer);
        attempt.cancel();
        logins.delete(loginId);
      }
    },
    async devSignIn({ name }) {
      const client = requireAuthority();
      const { instanceId: id } = await client.registerInstance(name ?? "This machine");
      await keychain.set("instance-id", id);
      keychainError = null;
      setContext(id);
      return status();
    },
    listRequests: ({ status: which }) => requireAuthority().listRequests(which),
    approveRequest: ({ requestId, ...body }) => requireAuthority().approve(requestId, body),
    denyRequest: ({ requestId }) => requireAuthority().deny(requestId),
    listGrants: ({ all }) => requireAuthority().listGrants(all),
    revokeGrant: ({ grantId }) => changing("revoke", () => requireAuthority().revokeGrant(grantId)),
    listSecrets: () => requireAuthority().listSecrets(),
    setSecret: ({ name, value }) => changing("secret set", () => requireAuthority().setSecret(name, value)),
    async deleteSecret({ name }) {
      await changing("secret deleted", () => requireAuthority().deleteSecret(name));
      return { deleted: true as const };
    },
    listActivity: (q) => requireAuthority().audit(q),
    getSettings: () => Promise.resolve(settings.get()),
    async updateSettings(change) {
      const next = await settings.update(change);
      emit({ kind: "settings", settings: next });
      return next;
    },
    shutdown() {
      // Answer first, then stop: the caller gets its reply before the socket closes.
      setImmediate(() => (options.onShutdownRequested ? options.onShutdownRequested() : void link.stop()));
      return Promise.resolve({ stopping: true as const });
    },
  };

  let server: LinkServer | null = null;

  async function describeOwner(pid: number): Promise<string> {
    const text = await readFileOrNull(paths.discoveryFile);
    let url: string | null;
    try {
      url = text === null ? null : ((JSON.parse(text) as { url?: string }).url ?? null);
    } catch {
      url = null;
    }
    return `Piper Link is already running (pid ${pid}${url ? `, ${url}` : ""}). Use \`piper-link status\` to see it or \`piper-link stop\` to stop it.`;
  }

  const link: Link = {
    api,
    controlToken,
    status,
    subscribe(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    uiUrl: () => uiAddress(address?.port ?? 0, controlToken),
    async start() {
      if (server !== null) throw new Error("This Link is already started.");
      lock = await acquireInstanceLock(paths.lockFile, describeOwner);
      try {
        startedAt = new Date(now());
        await loadContext();
        await settings.load();
        const config = options.authority ?? null;
        if (config?.kind === "embedded") {
          embedded = await startEmbeddedAuthority({
            dataDir: paths.dataDir,
            keychain,
            log,
            ...(config.requestTtlMs !== undefined ? { requestTtlMs: config.requestTtlMs } : {}),
            ...(config.agentRatePerSecond !== undefined ? { agentRatePerSecond: config.agentRatePerSecond } : {}),
            ...(config.launcher !== undefined ? { launcher: config.launcher } : {}),
            // A Link on an ephemeral port (tests, extra profiles) gives its authority one too.
            port: config.port ?? (options.port === 0 ? 0 : undefined) ?? DEFAULT_AUTHORITY_PORT,
            onRestart: (next) => useAuthority(next.url, next.pin, null),
          });
          session.setLocalToken(embedded.linkToken);
          localToken = true;
          useAuthority(embedded.url, embedded.pin, null);
        } else if (config?.kind === "remote") {
          session.setLocalToken(config.linkToken ?? null);
          localToken = config.linkToken != null;
          useAuthority(config.url, null, config.ca ?? null);
        }
        await refreshAccount();
        stopSweeper = startProcessGrantSweeper({ authority: () => authority, instanceId: () => instanceId, log });
        server = new LinkServer({
          port: options.port ?? DEFAULT_LINK_PORT,
          limits,
          log,
          now,
          peers: options.peers ?? createPeerResolver(),
          agentHost: {
            now,
            log,
            context: snapshot,
            authorityUrl: () => authority?.url ?? null,
            resolve: createAgentResolver({ now, log, authority: () => authority, instanceId: () => instanceId, cache }),
            agentIdentified: () => server?.agentsChanged(),
          },
          uiDir: options.uiDir ?? null,
          grantPage: (query) =>
            grantPage(query, {
              pendingRequests: () => (authority === null ? Promise.resolve([]) : authority.listRequests("pending")),
              show: (request) => emit({ kind: "show", view: "requests", requestId: request.id }),
            }),
          onAgentsChanged: () => emit({ kind: "status", status: status() }),
          controlHost: { now, log, token: controlToken, api },
        });
        address = await server.start();
        const discovery: DiscoveryFile = {
          url: `ws://127.0.0.1:${address.port}/v1/link`,
          pid: process.pid,
          version: LINK_VERSION,
          startedAt: startedAt.toISOString(),
        };
        await writeFileAtomic(paths.discoveryFile, `${JSON.stringify(discovery, null, 2)}\n`);
        await writeFileAtomic(
          paths.controlFile,
          `${JSON.stringify({ url: `ws://127.0.0.1:${address.port}/v1/control`, token: controlToken, pid: process.pid })}\n`,
        );
        log.info({ port: address.port, hosts: address.hosts, fallback: address.fallback, state: snapshot().state }, "link started");
        return status();
      } catch (err) {
        await server?.stop(CloseCode.goingAway).catch(() => undefined);
        server = null;
        stopSweeper();
        unfollow();
        authority?.close();
        await embedded?.stop();
        await lock.release();
        lock = null;
        throw err;
      }
    },
    stop() {
      stopping ??= (async () => {
        if (retryTimer) clearTimeout(retryTimer);
        await server?.stop(CloseCode.goingAway);
        stopSweeper();
        unfollow();
        await cache.stop().catch(() => undefined);
        authority?.close();
        await embedded?.stop();
        await removeIfOwned(paths.discoveryFile, process.pid);
        await removeIfOwned(paths.controlFile, process.pid);
        await lock?.release();
        log.info("link stopped");
      })();
      return stopping;
    },
  };
  return link;
}
