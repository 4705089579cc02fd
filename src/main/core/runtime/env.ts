/**
 * The Link's environment, read once. The core library never reads `process.env` itself (an eslint
 * rule keeps it so): a composition root (the CLI's main, the desktop app's index, a test) calls
 * `readLinkEnv(process.env)` and passes the typed result down, so every variable the Link obeys is
 * named here and a test can hand the core any environment without touching its own.
 */
import os from "node:os";
import path from "node:path";
import type { PlatformEnv } from "../../../shared/discovery.js";
import { hasDisplay } from "./display.js";
import { keychainTimeoutMs } from "./keychain.js";

/**
 * A file holding the passphrase, for unattended starts (a server, a systemd credential via
 * `LoadCredential=` → `$CREDENTIALS_DIRECTORY/...`). Unlocking from it is "unprotected at rest":
 * the file opens everything offline, so the passphrase is then never accepted as a proof of
 * presence. There is no variable that carries the passphrase itself: the environment of a process
 * is readable by the user's other processes.
 */
export const PASSPHRASE_FILE_ENV = "PIPER_LINK_PASSPHRASE_FILE";
/** The older name of `PASSPHRASE_FILE_ENV` (the file keychain's), still read. */
export const LEGACY_PASSPHRASE_FILE_ENV = "PIPER_LINK_KEYCHAIN_PASSPHRASE_FILE";

/** The passphrase file named in `env`, if any. */
function passphraseFile(env: NodeJS.ProcessEnv): string | null {
  const file = env[PASSPHRASE_FILE_ENV] || env[LEGACY_PASSPHRASE_FILE_ENV];
  return file === undefined || file === "" ? null : file;
}

export interface LinkEnv {
  /**
   * The environment as it was read (a copy). Only for what must see all of it: the children the
   * Link starts (keychain helper, embedded authority), which inherit it minus what they must not
   * get, and the folder rules of `shared/discovery.ts` (`platformEnv`).
   */
  readonly vars: Readonly<NodeJS.ProcessEnv>;
  readonly platform: NodeJS.Platform;
  /** The user's home folder (`os.homedir()`, which itself follows `HOME`). */
  readonly homedir: string;
  /** `XDG_CONFIG_HOME`, else `~/.config`: the autostart entry and the systemd user unit live under it. */
  readonly configHome: string;
  /** `PIPER_LINK_PROFILE` as given (undefined when unset; "" is kept, the CLI reads it as the default). */
  readonly profile: string | undefined;
  /** `PIPER_LINK_LOG_LEVEL`, a pino level; default "info". */
  readonly logLevel: string;
  /** `PIPER_LINK_EXTRA_CA`: a PEM file of extra CAs trusted for upstream calls; null when unset or empty. */
  readonly extraCaFile: string | null;
  /** `PIPER_LINK_AUTHORITY_TOKEN`: the Link token for a team authority; null when unset. */
  readonly authorityToken: string | null;
  /** `PIPER_LINK_AUTHORITY_CA`: a PEM file for a team authority's certificate; null when unset. */
  readonly authorityCaFile: string | null;
  /** `PIPER_LINK_PASSPHRASE_FILE` (or its older name): a file holding the vault passphrase; null when unset. */
  readonly passphraseFile: string | null;
  /** The OS-keychain bound in force, in ms (`PIPER_LINK_KEYCHAIN_TIMEOUT_MS` can only shorten it). */
  readonly keychainTimeoutMs: number;
  /** Whether a browser opened here would be seen (`SSH_CONNECTION`, `DISPLAY`, `WAYLAND_DISPLAY`; runtime/display.ts). */
  readonly display: boolean;
  /** Whether this process runs under `npm start` (npm sets `npm_lifecycle_event`): advice then names npm's command. */
  readonly underNpmStart: boolean;
}

/**
 * Reads the Link's variables from `env` (normally `process.env`, at a composition root). Pure apart
 * from copying `env`: nothing is validated beyond what each field's note says, and nothing throws.
 */
export function readLinkEnv(
  env: NodeJS.ProcessEnv,
  platform: NodeJS.Platform = process.platform,
  homedir: string = os.homedir(),
): LinkEnv {
  const vars: NodeJS.ProcessEnv = { ...env };
  const nonEmpty = (name: string): string | null => {
    const value = vars[name];
    return value === undefined || value === "" ? null : value;
  };
  return Object.freeze({
    vars: Object.freeze(vars),
    platform,
    homedir,
    configHome: vars["XDG_CONFIG_HOME"] || path.join(homedir, ".config"),
    profile: vars["PIPER_LINK_PROFILE"],
    logLevel: vars["PIPER_LINK_LOG_LEVEL"] ?? "info",
    extraCaFile: nonEmpty("PIPER_LINK_EXTRA_CA"),
    authorityToken: vars["PIPER_LINK_AUTHORITY_TOKEN"] ?? null,
    authorityCaFile: vars["PIPER_LINK_AUTHORITY_CA"] ?? null,
    passphraseFile: passphraseFile(vars),
    keychainTimeoutMs: keychainTimeoutMs(vars),
    display: hasDisplay(vars, platform),
    underNpmStart: vars["npm_lifecycle_event"] === "start",
  });
}

/** The platform facts `shared/discovery.ts` resolves folders from. */
export function platformEnv(env: LinkEnv): PlatformEnv {
  return { platform: env.platform, env: env.vars, homedir: env.homedir };
}

/**
 * The environment for a child process the Link starts: the Link's own, without `NODE_OPTIONS`
 * (code it names with --require or --import would run inside the child, which holds keys) and
 * without the names in `drop`, plus `add`.
 */
export function childEnv(
  env: LinkEnv,
  add: Readonly<Record<string, string>> = {},
  drop: readonly string[] = [],
): NodeJS.ProcessEnv {
  const dropped = new Set(["NODE_OPTIONS", ...drop]);
  return Object.fromEntries(Object.entries({ ...env.vars, ...add }).filter(([name]) => !dropped.has(name)));
}
