/**
 * What `createLink` takes and what it returns (core/link.ts composes the parts; this file only names
 * the contract, so a reader of link.ts sees the lifecycle and not the options' documentation).
 */
import type { Logger } from "pino";
import type { HardeningResult } from "../../platform/harden.js";
import type { ControlEvent, LinkApi, LinkStatus } from "../../shared/control.js";
import type { AuthorityConfig } from "./authority/configured-authority.js";
import type { LinkLimits } from "./loopback/limits.js";
import type { PeerResolver } from "./process/peer-resolver.js";
import type { LinkEnv } from "./runtime/env.js";
import type { KeychainStore } from "./runtime/keychain.js";
import type { LinkPaths } from "./runtime/paths.js";

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
  /** The environment the Link was started with, read once by its composition root (runtime/env.ts). */
  env: LinkEnv;
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
   * outgoing calls besides the system ones (a corporate proxy's, a test's); absent: `env.extraCaFile`
   * (`PIPER_LINK_EXTRA_CA`); null: none.
   */
  calls?: { extraCaFile?: string | null };
  /**
   * Unlock (or, on a first run, create) the vault as soon as the Link serves: the passphrase (or a
   * function that reads it, e.g. from PIPER_LINK_PASSPHRASE_FILE), a PIN for a new vault, and whether
   * it came unattended (from a file: unprotected at rest, never a proof). Absent: the Link starts
   * locked and waits for `unlock` (window, CLI).
   */
  unlock?: { passphrase: string | (() => Promise<string>); pin?: string; unattended?: boolean } | null;
  /** How often the idle lock is checked, in ms (default 60 000); tests with their own clock check more often. */
  idleCheckMs?: number;
  /**
   * How often the liveness sweep looks for ended processes and terminal sessions, in ms (default
   * `LIVENESS_SWEEP_MS`, 2 s; authority/local-liveness.ts). Tests sweep more often, so they wait for
   * a sweep's effect rather than for its period.
   */
  livenessSweepMs?: number;
  /** scrypt parameters for a new vault (default: VAULT_KDF in core/vault/vault-crypto.ts); tests lower N, never below 2^14. */
  vaultKdf?: { N: number; r: number; p: number };
  /** The file keychain's passphrase is the vault's (one passphrase): the daemon passes the slot that feeds it. */
  shareWithFileKeychain?: (passphrase: string | null) => void;
  /**
   * The package root of the running code (or the desktop app's archive), checked for the residual
   * risk `install_writable`; absent: not checked.
   */
  installRoot?: string | null;
  /** What hardening this process gave (platform/harden.ts); a `dumpableFailure` is the residual risk `not_dumpable_failed`. */
  hardening?: Pick<HardeningResult, "dumpableFailure">;
  /**
   * Whether the person sees this machine's display (a browser opened here, a loopback redirect back
   * here); default: `env.display` (`hasDisplay` in runtime/display.ts). Status's `signInFlow`.
   */
  localDisplay?: boolean;
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
  /** Unlocks with the passphrase (the window and CLI go through `api.unlock`). */
  unlock(passphrase: string): Promise<LinkStatus>;
  /** Locks now (keys leave memory; agents get `locked`). */
  lock(): LinkStatus;
  /** The address of the browser UI with the control token in its fragment (never sent to a server). */
  uiUrl(): string;
}
