/**
 * Runs the Link core as a foreground daemon (headless mode, `piper-link start --foreground`):
 * builds the real dependencies (the profile's chosen keychain backend among them), starts, and shuts down gracefully on SIGINT/SIGTERM or when a
 * control client asks, closing agent sockets with 1001 and removing the discovery file. A signal
 * during the start ends it too: the keychain is closed, so a start waiting on a keychain that never
 * answers fails at once instead of at the keychain's bound (issue 16 item 3).
 */
import path from "node:path";
import type { LinkStatus } from "../../shared/control.js";
import type { KeychainBackend } from "../../shared/control.js";
import { openKeychain, readPassphraseFile } from "./runtime/keychain-choice.js";
import { rememberKeychainChoice } from "./runtime/settings.js";
import { createLink, type AuthorityConfig, type Link } from "./link.js";
import { platformEnv, type LinkEnv } from "./runtime/env.js";
import { createFileLogger } from "./runtime/logger.js";
import { resolveLinkPaths, type LinkPaths } from "./runtime/paths.js";
import { builtUiDir } from "./loopback/ui-assets.js";
import { hardenProcess, type HardeningResult } from "../../platform/harden.js";

/** Holds the passphrase the vault was given, for the file keychain; `wait` resolves once one is set. */
function createPassphraseSlot(): { set: (passphrase: string | null) => void; wait: () => Promise<string> } {
  let value: string | null = null;
  let waiters: Array<(passphrase: string) => void> = [];
  return {
    set(passphrase) {
      value = passphrase;
      if (passphrase === null) return;
      for (const w of waiters) w(passphrase);
      waiters = [];
    },
    wait: () => (value !== null ? Promise.resolve(value) : new Promise((resolve) => waiters.push(resolve))),
  };
}

export interface DaemonOptions {
  profile: string;
  /** The process's environment, read once by the caller (`readLinkEnv(process.env)`, runtime/env.ts). */
  env: LinkEnv;
  port: number;
  paths?: LinkPaths;
  /** Defaults to the embedded authority. */
  authority?: AuthorityConfig | null;
  /** Called once the Link serves. */
  onReady?: (status: LinkStatus, link: Link) => void | Promise<void>;
  onStopped?: (signal: string) => void;
  /**
   * The keychain backend chosen for this start (`--keychain`); it is remembered for the profile. By
   * default the remembered one, else the OS keychain.
   */
  keychain?: KeychainBackend | undefined;
  /** The built browser UI; by default the install's out/renderer, when it was built. */
  uiDir?: string | null;
  /**
   * What the caller's own hardening of this process gave (the desktop app hardens itself first,
   * with its own debugger policy). Absent: the daemon hardens the process itself before anything
   * else, and refuses to start with a debugger enabled.
   */
  hardened?: HardeningResult;
  /**
   * The package root of the running code, checked for the residual risk `install_writable`. By
   * default the folder three levels above this module (src/main/core or dist/main/core); the
   * desktop app, whose core is bundled elsewhere, passes its app path.
   */
  installRoot?: string;
  /** The liveness sweep's period in ms (LinkOptions `livenessSweepMs`); absent: the default. */
  livenessSweepMs?: number | undefined;
}

/**
 * How `startDaemon` rejects when SIGINT or SIGTERM arrived before the Link served: the start was
 * stopped on purpose, it did not fail. Whatever the start had begun is stopped again first.
 */
export class StoppedBeforeStart extends Error {
  constructor(readonly signal: NodeJS.Signals) {
    super(`Piper Link stopped (${signal}) before it had started.`);
    this.name = "StoppedBeforeStart";
  }
}

export interface RunningDaemon {
  link: Link;
  /** Whether the process could be made non-dumpable (a residual risk when not). */
  hardening: HardeningResult;
  /** Resolves when the daemon has stopped (signal, control `shutdown`, or `stop()`). */
  done: Promise<string>;
  stop(reason: string): Promise<void>;
}

/**
 * Starts the Link and resolves once it serves. Rejects with the start's error (a `LinkError` such
 * as `keychain_locked`; `bad_request` when Node's debugger is enabled, before anything is read), or
 * with `StoppedBeforeStart` when a stop signal arrived first.
 */
export async function startDaemon(options: DaemonOptions): Promise<RunningDaemon> {
  // First, before any key is read: no debugger, SIGUSR1 caught, memory closed to other processes.
  const hardening = options.hardened ?? (await hardenProcess("link", { env: options.env.vars }));
  const paths = options.paths ?? resolveLinkPaths(options.profile, platformEnv(options.env));
  const logger = await createFileLogger(paths.logDir, options.env.logLevel);
  if (hardening.notDumpable === false)
    logger.log.warn(
      { reason: hardening.dumpableFailure },
      "the process could not be made non-dumpable: other programs of this user may read its memory",
    );
  let finish: (reason: string) => void = () => undefined;
  const done = new Promise<string>((resolve) => {
    finish = resolve;
  });
  let stopping: Promise<void> | null = null;
  const stop = (reason: string): Promise<void> => {
    stopping ??= (async () => {
      logger.log.info({ reason }, "shutting down");
      // First: nothing a stop does needs the keychain, and a call stuck in it (a locked keyring's
      // prompt) must neither hold the stop nor outlive the process in its helper.
      keychain.close?.();
      await link.stop();
      logger.flush();
      process.off("SIGINT", onSignal);
      process.off("SIGTERM", onSignal);
      finish(reason);
    })();
    return stopping;
  };
  /** The stop signal that arrived while the Link was starting, if one did (a field: set in a handler, which narrowing does not see). */
  const duringStart: { signal: NodeJS.Signals | null } = { signal: null };
  let started = false;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (started) return void stop(signal);
    // The start cannot be stopped half-way; closing the keychain makes a start that waits on it
    // fail now, and the start's own failure path undoes what it had begun.
    if (duringStart.signal === null) logger.log.info({ signal }, "stop signal during start");
    duringStart.signal ??= signal;
    keychain.close?.();
  };

  if (options.keychain !== undefined) await rememberKeychainChoice(paths.dataDir, options.keychain);
  // The file keychain opens with the vault's passphrase (one passphrase, not two): it waits for the
  // passphrase the vault is given at unlock, and forgets it at lock.
  const slot = createPassphraseSlot();
  const keychain = await openKeychain({
    profile: options.profile,
    dataDir: paths.dataDir,
    env: options.env,
    passphrase: slot.wait,
  });
  const file = options.env.passphraseFile;
  const link = createLink({
    profile: options.profile,
    port: options.port,
    paths,
    env: options.env,
    keychain,
    log: logger.log,
    authority: options.authority === undefined ? { kind: "embedded" } : options.authority,
    onShutdownRequested: () => void stop("shutdown requested"),
    shareWithFileKeychain: slot.set,
    // Unattended: a server or service names a passphrase file. Unprotected at rest, and said so.
    ...(file !== null ? { unlock: { passphrase: () => readPassphraseFile(file), unattended: true } } : {}),
    // src/main/core and dist/main/core are both three levels below the package root.
    uiDir:
      options.uiDir !== undefined
        ? options.uiDir
        : await builtUiDir(path.resolve(import.meta.dirname, "../../../out/renderer")),
    installRoot: options.installRoot ?? path.resolve(import.meta.dirname, "../../.."),
    hardening,
    ...(options.livenessSweepMs !== undefined ? { livenessSweepMs: options.livenessSweepMs } : {}),
  });
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  let status: LinkStatus;
  try {
    status = await link.start();
  } catch (err) {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
    keychain.close?.();
    if (duringStart.signal !== null)
      logger.log.info({ err: err instanceof Error ? err.message : String(err) }, "start ended after the stop signal");
    logger.flush();
    // After a stop signal the start's error is, as a rule, the closed keychain's: the signal is the reason.
    if (duringStart.signal !== null) throw new StoppedBeforeStart(duringStart.signal);
    throw err;
  }
  if (duringStart.signal !== null) {
    // The start finished without needing the keychain after the signal; stop what it started.
    await stop(duringStart.signal);
    throw new StoppedBeforeStart(duringStart.signal);
  }
  started = true;
  await options.onReady?.(status, link);
  return { link, hardening, done, stop };
}
