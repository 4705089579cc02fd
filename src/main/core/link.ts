/**
 * The Link core as a library: `createLink(options)` composes the parts — the sign-in and instance
 * context (account/), the authority connection and grant cache (authority/), the listeners
 * (serving.ts: loopback/, pyper/, calls/) and the runtime files and settings (runtime/) — and runs
 * their lifecycle with an explicit `start()`/`stop()`. Nothing happens at import time and every
 * dependency (keychain, clock, ports, paths, logger) is injected, so tests start their own Link on
 * port 0 with a temporary profile. docs/architecture.md shows where each behaviour lives.
 */
import { randomBytes } from "node:crypto";
import { uiAddress, type LinkStatus } from "../../shared/control.js";
import { DEFAULT_IDLE_LOCK_MINUTES, PIN_TRIES_ALLOWED, type VaultStatus } from "../../shared/presence.js";
import { createInstanceContext } from "./account/instance-context.js";
import { createSignIn } from "./account/sign-in.js";
import { createSignInSession } from "./account/sign-in-session.js";
import { connectConfiguredAuthority } from "./authority/configured-authority.js";
import { createAuthorityConnection } from "./authority/connection.js";
import type { EmbeddedAuthority } from "./authority/embedded-authority.js";
import { createGrantCache } from "./authority/grant-cache.js";
import { createControlApi } from "./control-api.js";
import { createEventHub } from "./events.js";
import type { Link, LinkOptions } from "./link-options.js";
import { createPeerResolver } from "./loopback/peer-process.js";
import { createUiCodes } from "./loopback/ui-codes.js";
import { acquireInstanceLock, type InstanceLock } from "./runtime/instance-lock.js";
import { createResidualRisks } from "./runtime/residual-risks.js";
import { describeRunningLink, removeRuntimeFiles, writeRuntimeFiles } from "./runtime/runtime-files.js";
import { createSettingsStore } from "./runtime/settings.js";
import { startServing, type Serving } from "./serving.js";
import { linkStatus } from "./status.js";
import { DEFAULT_LINK_PORT } from "../../shared/version.js";

export type { AuthorityConfig } from "./authority/configured-authority.js";
export type { Link, LinkOptions } from "./link-options.js";

export function createLink(options: LinkOptions): Link {
  const now = options.now ?? Date.now;
  const { paths, keychain, log } = options;
  const config = options.authority ?? null;
  const controlToken = randomBytes(32).toString("base64url");

  let serving: Serving | null = null;
  let startedAt = new Date(now());
  let lock: InstanceLock | null = null;
  let embedded: EmbeddedAuthority | null = null;
  let stopping: Promise<void> | null = null;
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
      if (serving === null) return;
      // Credential IDs and scoped tokens were handed out for the previous instance.
      serving.pyper.clear();
      const state = instanceId === null ? "logged_out" : "ready";
      log.info({ state }, "context changed");
      serving.server.broadcastContext({ type: "context", instanceId, state });
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
    pagesOrigin: () => (embeddedEndpoint() !== null && serving !== null ? `http://127.0.0.1:${serving.address.port}` : null),
  });

  // Replaced by the vault (core/vault/) in the next change.
  const vaultStatus = (): VaultStatus => ({ state: "unlocked", lockedReason: null, unattended: false, pinSet: false, passkeys: 0, proofs: [], idleLockMinutes: DEFAULT_IDLE_LOCK_MINUTES, legacyGrants: 0, pinFailures: 0, pinTriesAllowed: PIN_TRIES_ALLOWED });

  const residualRisks = createResidualRisks({ profile: options.profile ?? "default", installRoot: options.installRoot ?? null, now });

  function status(): LinkStatus {
    const { server = null, address = null, pyper = null } = serving ?? {};
    const vault = vaultStatus();
    const risks = residualRisks.current({ preferredPort: options.port ?? DEFAULT_LINK_PORT, port: address?.port ?? null, fallback: address?.fallback ?? false, unattended: vault.unattended, dumpableFailure: options.hardening?.dumpableFailure ?? null });
    const base = linkStatus({ profile: options.profile ?? "default", preferredPort: options.port, startedAt, paths, server, address, context, connection, authorityMode: config?.kind ?? null, signIn, session, keychainBackend: keychain.backend ?? null, vault, risks });
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

  /** Stops what `start` started, in reverse order; safe on a partial start. */
  async function teardown(): Promise<void> {
    context.stop();
    signIn.stop();
    await serving?.stop();
    serving = null;
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
    uiUrl: () => uiAddress(serving?.address.port ?? 0, controlToken),
    async start() {
      if (serving !== null) throw new Error("This Link is already started.");
      const acquired = await acquireInstanceLock(paths.lockFile, (pid) => describeRunningLink(paths, pid));
      lock = acquired;
      try {
        startedAt = new Date(now());
        // The authority first: an embedded one whose database is gone deletes the instance ID it had
        // registered (embedded-authority.ts), so the context is read from the keychain after it.
        const connected = await connectConfiguredAuthority({ config, dataDir: paths.dataDir, keychain, log, linkPort: options.port, connection });
        embedded = connected.embedded;
        signIn.setLocalToken(connected.localToken);
        await context.load();
        await settings.load();
        await signIn.refreshAccount();
        serving = await startServing({ options, dataDir: paths.dataDir, log, now, peers, connection, context, cache, events, api, controlToken, uiCodes, embeddedEndpoint, onAgentsChanged: emitStatus });
        const { port, hosts, fallback } = serving.address;
        await writeRuntimeFiles(paths, { port, controlToken, startedAt });
        log.info({ port, hosts, fallback, state: context.snapshot().state }, "link started");
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
