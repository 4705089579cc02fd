/**
 * Runs the Link core as a foreground daemon (headless mode, `piper-link start --foreground`):
 * builds the real dependencies (the profile's chosen keychain backend among them), starts, and shuts down gracefully on SIGINT/SIGTERM or when a
 * control client asks, closing agent sockets with 1001 and removing the discovery file.
 */
import path from "node:path";
import type { LinkStatus } from "../../shared/control.js";
import type { KeychainBackend } from "../../shared/control.js";
import { openKeychain } from "./runtime/keychain-choice.js";
import { rememberKeychainChoice } from "./runtime/settings.js";
import { createLink, type AuthorityConfig, type Link } from "./link.js";
import { createFileLogger } from "./runtime/logger.js";
import { resolveLinkPaths, type LinkPaths } from "./runtime/paths.js";
import { builtUiDir } from "./loopback/ui-assets.js";

export interface DaemonOptions {
  profile: string;
  port: number;
  paths?: LinkPaths;
  /** Defaults to the embedded authority. */
  authority?: AuthorityConfig | null;
  /** Called once the Link serves. */
  onReady?: (status: LinkStatus, link: Link) => void;
  onStopped?: (signal: string) => void;
  /**
   * The keychain backend chosen for this start (`--keychain`); it is remembered for the profile. By
   * default the remembered one, else the OS keychain.
   */
  keychain?: KeychainBackend | undefined;
  /** The built browser UI; by default the install's out/renderer, when it was built. */
  uiDir?: string | null;
}

export interface RunningDaemon {
  link: Link;
  /** Resolves when the daemon has stopped (signal, control `shutdown`, or `stop()`). */
  done: Promise<string>;
  stop(reason: string): Promise<void>;
}

export async function startDaemon(options: DaemonOptions): Promise<RunningDaemon> {
  const paths = options.paths ?? resolveLinkPaths(options.profile);
  const logger = await createFileLogger(paths.logDir);
  let finish: (reason: string) => void = () => undefined;
  const done = new Promise<string>((resolve) => {
    finish = resolve;
  });
  let stopping: Promise<void> | null = null;
  const stop = (reason: string): Promise<void> => {
    stopping ??= (async () => {
      logger.log.info({ reason }, "shutting down");
      await link.stop();
      logger.flush();
      process.off("SIGINT", onSignal);
      process.off("SIGTERM", onSignal);
      finish(reason);
    })();
    return stopping;
  };
  const onSignal = (signal: NodeJS.Signals): void => void stop(signal);

  if (options.keychain !== undefined) await rememberKeychainChoice(paths.dataDir, options.keychain);
  const keychain = await openKeychain({ profile: options.profile, dataDir: paths.dataDir });
  const link = createLink({
    profile: options.profile,
    port: options.port,
    paths,
    keychain,
    log: logger.log,
    authority: options.authority === undefined ? { kind: "embedded" } : options.authority,
    onShutdownRequested: () => void stop("shutdown requested"),
    // src/main/core and dist/main/core are both three levels below the package root.
    uiDir: options.uiDir !== undefined ? options.uiDir : await builtUiDir(path.resolve(import.meta.dirname, "../../../out/renderer")),
  });
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  try {
    const status = await link.start();
    options.onReady?.(status, link);
  } catch (err) {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
    logger.flush();
    throw err;
  }
  return { link, done, stop };
}
