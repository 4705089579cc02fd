/**
 * Which authority this Link uses (`options.authority`): the embedded one, started here as a child
 * process with SQLite in the data directory and reached over pinned HTTPS on loopback, a remote one
 * (URL, optional provisioned Link token and private CA), or none.
 */
import type { Logger } from "pino";
import type { LinkEnv } from "../runtime/env.js";
import type { KeychainStore } from "../runtime/keychain.js";
import type { AuthorityConnection } from "./connection.js";
import {
  DEFAULT_AUTHORITY_PORT,
  startEmbeddedAuthority,
  type AuthorityLauncher,
  type EmbeddedAuthority,
} from "./embedded-authority.js";

export type AuthorityConfig =
  | {
      kind: "embedded";
      requestTtlMs?: number;
      agentRatePerSecond?: number;
      port?: number;
      launcher?: AuthorityLauncher;
    }
  | { kind: "remote"; url: string; linkToken?: string | null; ca?: string | null };

export interface ConnectAuthorityDeps {
  config: AuthorityConfig | null;
  dataDir: string;
  /** The Link's environment (the embedded authority's process inherits it). */
  env: LinkEnv;
  keychain: KeychainStore;
  log: Logger;
  /** The Link's own preferred port: a Link on port 0 (tests, extra profiles) gives its authority port 0 too. */
  linkPort: number | undefined;
  connection: AuthorityConnection;
  /** Re-key the embedded authority at this start (data key and Link token), e.g. after the vault sealed plaintext items an agent may have copied. */
  rotateKeys?: boolean;
}

/** What was started: the embedded authority (to stop with the Link) and the Link token to use without an OAuth sign-in. */
export interface ConnectedAuthority {
  embedded: EmbeddedAuthority | null;
  localToken: string | null;
}

/**
 * Starts or points at the configured authority and connects to it. Throws what the embedded
 * authority's start throws.
 */
export async function connectConfiguredAuthority(deps: ConnectAuthorityDeps): Promise<ConnectedAuthority> {
  const { config, connection } = deps;
  if (config?.kind === "embedded") {
    const embedded = await startEmbeddedAuthority({
      dataDir: deps.dataDir,
      env: deps.env,
      keychain: deps.keychain,
      log: deps.log,
      ...(config.requestTtlMs !== undefined ? { requestTtlMs: config.requestTtlMs } : {}),
      ...(config.agentRatePerSecond !== undefined ? { agentRatePerSecond: config.agentRatePerSecond } : {}),
      ...(config.launcher !== undefined ? { launcher: config.launcher } : {}),
      port: config.port ?? (deps.linkPort === 0 ? 0 : undefined) ?? DEFAULT_AUTHORITY_PORT,
      ...(deps.rotateKeys === true ? { rotateKeys: true } : {}),
      onRestart: (next) => connection.connect({ url: next.url, pin: next.pin, ca: null }),
    });
    connection.connect({ url: embedded.url, pin: embedded.pin, ca: null });
    return { embedded, localToken: embedded.linkToken };
  }
  if (config?.kind === "remote") {
    connection.connect({ url: config.url, pin: null, ca: config.ca ?? null });
    return { embedded: null, localToken: config.linkToken ?? null };
  }
  return { embedded: null, localToken: null };
}
