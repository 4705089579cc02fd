/**
 * Which authority this Link uses (`options.authority`): the embedded one, started here as a child
 * process with SQLite in the data directory and reached over pinned HTTPS on loopback, a remote one
 * (URL, optional provisioned Link token and private CA), or none.
 */
import type { Logger } from "pino";
import type { KeychainStore } from "../account/keychain.js";
import type { SignIn } from "../account/sign-in.js";
import type { AuthorityConnection } from "./connection.js";
import { DEFAULT_AUTHORITY_PORT, startEmbeddedAuthority, type AuthorityLauncher, type EmbeddedAuthority } from "./embedded-authority.js";

export type AuthorityConfig =
  | { kind: "embedded"; requestTtlMs?: number; agentRatePerSecond?: number; port?: number; launcher?: AuthorityLauncher }
  | { kind: "remote"; url: string; linkToken?: string | null; ca?: string | null };

export interface ConnectAuthorityDeps {
  config: AuthorityConfig | null;
  dataDir: string;
  keychain: KeychainStore;
  log: Logger;
  /** The Link's own preferred port: a Link on port 0 (tests, extra profiles) gives its authority port 0 too. */
  linkPort: number | undefined;
  signIn: SignIn;
  connection: AuthorityConnection;
}

/**
 * Starts or points at the configured authority and connects to it. Returns the embedded
 * authority (to stop with the Link) or null. Throws what the embedded authority's start throws.
 */
export async function connectConfiguredAuthority(deps: ConnectAuthorityDeps): Promise<EmbeddedAuthority | null> {
  const { config, signIn, connection } = deps;
  let embedded: EmbeddedAuthority | null = null;
  if (config?.kind === "embedded") {
    embedded = await startEmbeddedAuthority({
      dataDir: deps.dataDir,
      keychain: deps.keychain,
      log: deps.log,
      ...(config.requestTtlMs !== undefined ? { requestTtlMs: config.requestTtlMs } : {}),
      ...(config.agentRatePerSecond !== undefined ? { agentRatePerSecond: config.agentRatePerSecond } : {}),
      ...(config.launcher !== undefined ? { launcher: config.launcher } : {}),
      port: config.port ?? (deps.linkPort === 0 ? 0 : undefined) ?? DEFAULT_AUTHORITY_PORT,
      onRestart: (next) => connection.connect({ url: next.url, pin: next.pin, ca: null }),
    });
    signIn.setLocalToken(embedded.linkToken);
    connection.connect({ url: embedded.url, pin: embedded.pin, ca: null });
  } else if (config?.kind === "remote") {
    signIn.setLocalToken(config.linkToken ?? null);
    connection.connect({ url: config.url, pin: null, ca: config.ca ?? null });
  }
  await signIn.refreshAccount();
  return embedded;
}
