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
import { PIN_TRIES_ALLOWED, type LockReason, type VaultStatus } from "../../shared/presence.js";
import { LinkError } from "../../shared/errors.js";
import { createPresenceGate } from "./presence/presence.js";
import type { Passkeys } from "./presence/passkeys.js";
import { passkeyOrigin, StoredPasskeysSchema } from "../../shared/passkeys.js";
import { createSealedKeychain } from "./vault/sealed-keychain.js";
import { createVault } from "./vault/vault.js";
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
import { createPeerResolver } from "./process/peer-resolver.js";
import { createUiCodes } from "./loopback/ui-codes.js";
import { acquireInstanceLock, type InstanceLock } from "./runtime/instance-lock.js";
import { createResidualRisks } from "./runtime/residual-risks.js";
import { describeRunningLink, removeRuntimeFiles, writeRuntimeFiles } from "./runtime/runtime-files.js";
import { createSettingsStore } from "./runtime/settings.js";
import { startServing, type Serving } from "./serving.js";
import { linkStatus } from "./status.js";
import { DEFAULT_LINK_PORT } from "../../shared/version.js";
import { verifyMemoryClosed } from "../../platform/memory-check.js";

export type { AuthorityConfig } from "./authority/configured-authority.js";
export type { Link, LinkOptions } from "./link-options.js";

/** A keychain that is locked or missing: something the Link can wait out, not a reason to stop. */
function isKeychainFailure(err: unknown): err is LinkError {
  return err instanceof LinkError && (err.code === "keychain_locked" || err.code === "keychain_unavailable");
}

/** How often the idle lock is checked, in ms (a minute: the idle lock is set in minutes). */
const IDLE_CHECK_MS = 60_000;

export function createLink(options: LinkOptions): Link {
  const now = options.now ?? Date.now;
  const { paths, log } = options;
  // The vault keeps its record in the raw keychain; everything else reads and writes sealed values.
  const vault = createVault({
    keychain: options.keychain,
    dataDir: paths.dataDir,
    log,
    now,
    ...(options.vaultKdf !== undefined ? { kdf: options.vaultKdf } : {}),
    ...(options.shareWithFileKeychain !== undefined ? { shareWithFileKeychain: options.shareWithFileKeychain } : {}),
  });
  const keychain = createSealedKeychain(options.keychain, vault, log);
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
      serving.server.broadcastContext({
        type: "context",
        instanceId,
        state,
        ...(instanceId === null ? { reason: vault.state === "unlocked" ? "not_logged_in" : "locked" } : {}),
      });
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
    pagesOrigin: () =>
      embeddedEndpoint() !== null && serving !== null ? `http://127.0.0.1:${serving.address.port}` : null,
  });

  // Passkeys live in the vault's payload (sealed with it); their challenges in memory only. The
  // WebAuthn library (about 24 MB resident) loads on the first passkey call, not at start.
  let passkeysLoaded: Promise<Passkeys> | null = null;
  const loadPasskeys = (): Promise<Passkeys> =>
    (passkeysLoaded ??= import("./presence/passkeys.js").then(({ createPasskeys }) =>
      createPasskeys({
        origin: () => passkeyOrigin(serving?.address.port ?? 0),
        now,
        load: () => Promise.resolve(StoredPasskeysSchema.parse(vault.passkeys)),
        save: (list) => vault.savePasskeys(list),
      }),
    ));
  const passkeys: Passkeys = {
    registrationOptions: async () => (await loadPasskeys()).registrationOptions(),
    register: async (challengeId, response, name) => (await loadPasskeys()).register(challengeId, response, name),
    challenge: async (action) => (await loadPasskeys()).challenge(action),
    verify: async (challengeId, action, response) => (await loadPasskeys()).verify(challengeId, action, response),
    list: async () => (await loadPasskeys()).list(),
    remove: async (id) => (await loadPasskeys()).remove(id),
  };
  const presence = createPresenceGate({
    vault,
    now,
    memoryCheck: () => refuseIfMemoryOpen(),
    authority: () =>
      config === null
        ? null
        : config.kind === "remote"
          ? { kind: "remote" }
          : { kind: "embedded", approvalKey: () => embedded?.approvalKey() ?? null },
    passkeys,
  });
  let legacyGrants = 0;
  /** Grants approved before proofs existed, as the authority counts them; shown until the person keeps or ends them. */
  async function countLegacyGrants(): Promise<void> {
    const client = connection.client;
    legacyGrants =
      client === null
        ? 0
        : await client.listLegacyGrants().then(
            (list) => list.length,
            () => legacyGrants,
          );
    emitStatus();
  }
  const vaultStatus = (): VaultStatus => ({
    state: vault.state,
    lockedReason: vault.lockedReason,
    unattended: vault.unattended,
    pinSet: vault.pinSet,
    passkeys: vault.passkeys.length,
    proofs: presence.proofs(),
    idleLockMinutes: vault.idleLockMinutes,
    legacyGrants: vault.state === "unlocked" ? legacyGrants : 0,
    pinFailures: vault.pinFailures,
    pinTriesAllowed: PIN_TRIES_ALLOWED,
  });

  const localDisplay = options.localDisplay ?? options.env.display;
  const residualRisks = createResidualRisks({
    profile: options.profile ?? "default",
    env: options.env,
    installRoot: options.installRoot ?? null,
    now,
  });

  function status(): LinkStatus {
    const { server = null, address = null, pyper = null } = serving ?? {};
    const vaultView = vaultStatus();
    const risks = residualRisks.current({
      preferredPort: options.port ?? DEFAULT_LINK_PORT,
      port: address?.port ?? null,
      fallback: address?.fallback ?? false,
      unattended: vaultView.unattended,
      dumpableFailure: memoryOpen ?? options.hardening?.dumpableFailure ?? null,
    });
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
      vault: vaultView,
      risks,
    });
    return {
      ...base,
      pyper: pyper === null ? null : { port: pyper.port, certFile: pyper.certFile },
      signInFlow: localDisplay ? "browser" : "device",
    };
  }

  const uiCodes = createUiCodes({ now });
  const api = createControlApi({
    uiCodes,
    vault,
    presence,
    passkeys,
    unlock: (passphrase) => unlock(passphrase, false),
    create: (passphrase, pin) => create(passphrase, pin, false),
    lock: (reason) => lockNow(reason),
    connection,
    cache,
    context,
    signIn,
    settings,
    status,
    emit: (event) => events.emit(event),
    shutdown: () => (options.onShutdownRequested ? options.onShutdownRequested() : void link.stop()),
    legacyChanged: () => countLegacyGrants(),
  });

  /**
   * Opens what needs the vault's keys: the authority (the embedded one is started with its data key),
   * the instance ID, the sign-in. After an upgrade from plaintext items, their credentials are rotated
   * once (the agent may hold copies).
   */
  async function openUnlocked(): Promise<void> {
    context.setLocked(false);
    // After an upgrade the embedded authority's data key and Link token were readable in plaintext: re-keyed now.
    const connected = await connectConfiguredAuthority({
      config,
      dataDir: paths.dataDir,
      env: options.env,
      keychain,
      log,
      linkPort: options.port,
      connection,
      rotateKeys: vault.needsRotation,
    });
    embedded = connected.embedded;
    signIn.setLocalToken(connected.localToken);
    await context.load();
    await signIn.refreshAccount();
    if (vault.needsRotation) await rotateAfterUpgrade();
    await countLegacyGrants();
    idleTimer ??= setInterval(() => vault.checkIdle(), options.idleCheckMs ?? IDLE_CHECK_MS);
    idleTimer.unref();
    emitStatus();
  }

  /**
   * Rotates what an agent may have copied while the items were plaintext: the embedded authority was
   * re-keyed as it started (data key, Link token; its OAuth sign-ins end), and a remote authority's
   * refresh token is traded for a new one here.
   */
  async function rotateAfterUpgrade(): Promise<void> {
    const rotated = await (config?.kind === "embedded" ? Promise.resolve(true) : session.rotate()).catch(
      (err: unknown) => {
        log.warn(
          { err: String(err) },
          "vault: could not rotate the refresh token after the upgrade; will try at the next unlock",
        );
        return null;
      },
    );
    if (rotated === null) return;
    await vault.markRotated();
    log.info({ refreshTokenRotated: rotated }, "vault: credentials rotated after the upgrade");
  }

  /** Closes what needs the keys; the listeners stay up and answer `locked`. */
  async function closeUnlocked(): Promise<void> {
    if (idleTimer !== null) clearInterval(idleTimer);
    idleTimer = null;
    context.setLocked(true);
    session.forget();
    signIn.setLocalToken(null);
    connection.disconnect();
    serving?.pyper.clear();
    const stopping = embedded;
    embedded = null;
    await stopping?.stop();
  }

  let idleTimer: NodeJS.Timeout | null = null;
  let opening: Promise<void> | null = null;
  vault.onLock((reason) => {
    void closeUnlocked().then(() => {
      log.info({ reason }, "link locked");
      emitStatus();
    });
  });

  async function afterUnlock(): Promise<void> {
    opening ??= openUnlocked().finally(() => {
      opening = null;
    });
    await opening;
  }

  /** Why this process's memory was found open at the last passphrase, or null: shown as `not_dumpable_failed`. */
  let memoryOpen: string | null = null;
  /**
   * Refuses the passphrase when this process's memory is open now (platform/memory-check.ts): a
   * program running as the person traces it, or made it dumpable again after it hardened itself.
   * Whatever took the passphrase would be read with the keys it unlocks. Root and other systems
   * than Linux are not checked; nor the dumpable flag when hardening already failed at start.
   */
  async function refuseIfMemoryOpen(): Promise<void> {
    const reason = await verifyMemoryClosed({ dumpable: (options.hardening?.dumpableFailure ?? null) === null });
    if (reason === null) return;
    memoryOpen = reason;
    log.error({ reason }, "vault: refused the passphrase: the process's memory is open to other programs");
    emitStatus();
    throw new LinkError(
      "internal_error",
      `Piper Link will not take your passphrase or PIN: another program is tracing it or has opened its memory (${reason}), and would read what it unlocks. Stop that program (a debugger, strace), then restart Piper Link (\`piper-link stop\`, then \`piper-link start\`).`,
    );
  }

  async function unlock(passphrase: string, unattended: boolean): Promise<LinkStatus> {
    if (serving === null) throw new LinkError("not_running", "This Link is not started.");
    if (vault.state === "unlocked") return status();
    await refuseIfMemoryOpen();
    await vault.unlock(passphrase, { unattended });
    await afterUnlock();
    return status();
  }

  async function create(passphrase: string, pin: string | undefined, unattended: boolean): Promise<LinkStatus> {
    if (serving === null) throw new LinkError("not_running", "This Link is not started.");
    await refuseIfMemoryOpen();
    await vault.create(passphrase, { unattended, ...(pin !== undefined ? { pin } : {}) });
    await afterUnlock();
    return status();
  }

  function lockNow(reason: LockReason): LinkStatus {
    vault.lock(reason);
    return status();
  }

  /** Unlocks (or creates) the vault with a passphrase given at start; a wrong passphrase file is `keychain_locked`, naming it. */
  async function unlockAsGiven(given: NonNullable<LinkOptions["unlock"]>): Promise<void> {
    const passphrase = typeof given.passphrase === "string" ? given.passphrase : await given.passphrase();
    try {
      if (vault.state === "new") await create(passphrase, given.pin, given.unattended ?? false);
      else await unlock(passphrase, given.unattended ?? false);
    } catch (err) {
      if (!(err instanceof LinkError) || err.code !== "presence_failed" || given.unattended !== true) throw err;
      throw new LinkError(
        "keychain_locked",
        "The passphrase file (PIPER_LINK_PASSPHRASE_FILE) does not unlock Piper Link: put the passphrase the vault was made with in it, or start on a terminal to be asked.",
      );
    }
  }

  let unlockRetry: NodeJS.Timeout | null = null;
  /** Tries the given passphrase again every keychainRetryMs until the keychain answers (or the Link stops). */
  function retryUnlockLater(given: NonNullable<LinkOptions["unlock"]>): void {
    unlockRetry = setTimeout(() => {
      unlockRetry = null;
      void (async () => {
        try {
          await vault.probe();
          await unlockAsGiven(given);
          context.setKeychainError(null);
          log.info("keychain answered: unlocked");
        } catch (err) {
          if (serving === null) return;
          context.setKeychainError(err instanceof LinkError ? err : new LinkError("keychain_unavailable", String(err)));
          retryUnlockLater(given);
        }
        emitStatus();
      })();
    }, options.keychainRetryMs ?? 5000);
    unlockRetry.unref();
  }

  /** Stops what `start` started, in reverse order; safe on a partial start. */
  async function teardown(): Promise<void> {
    if (unlockRetry !== null) clearTimeout(unlockRetry);
    unlockRetry = null;
    vault.lock("started");
    await closeUnlocked();
    context.stop();
    signIn.stop();
    await serving?.stop();
    serving = null;
    await cache.stop().catch(() => undefined);
    connection.close();
  }

  const link: Link = {
    api,
    controlToken,
    status,
    subscribe: (listener) => events.subscribe(listener),
    uiUrl: () => uiAddress(serving?.address.port ?? 0, controlToken),
    unlock: (passphrase) => unlock(passphrase, false),
    lock: () => lockNow("by_request"),
    async start() {
      if (serving !== null) throw new Error("This Link is already started.");
      const acquired = await acquireInstanceLock(paths.lockFile, (pid) => describeRunningLink(paths, pid));
      lock = acquired;
      try {
        startedAt = new Date(now());
        // Locked until the person's passphrase arrives: the listeners answer `locked` meanwhile.
        context.setLocked(true);
        // Without an embedded authority (whose data key is in the keychain) the Link serves with a
        // keychain that does not answer yet, says so, and unlocks once it does.
        const waitOut = (err: unknown): LinkError => {
          if (!isKeychainFailure(err) || config?.kind === "embedded") throw err;
          return err;
        };
        let keychainFailure = await vault.probe().then(() => null, waitOut);
        await settings.load();
        serving = await startServing({
          options,
          dataDir: paths.dataDir,
          log,
          now,
          peers,
          connection,
          context,
          cache,
          events,
          api,
          controlToken,
          uiCodes,
          embeddedEndpoint,
          onAgentsChanged: emitStatus,
        });
        const { port, hosts, fallback } = serving.address;
        // Given a passphrase (a file, a test), unlock before the runtime files say the Link is up, so
        // whoever finds it through them finds it ready.
        const given = options.unlock ?? null;
        if (keychainFailure === null && given !== null)
          keychainFailure = await unlockAsGiven(given).then(() => null, waitOut);
        if (keychainFailure !== null) {
          context.setKeychainError(keychainFailure);
          if (given !== null) retryUnlockLater(given);
        }
        await writeRuntimeFiles(paths, { port, controlToken, startedAt });
        log.info({ port, hosts, fallback, vault: vault.state }, "link started");
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
