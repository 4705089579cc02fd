/**
 * The Link's status as the window and `piper-link status` show it (shared `LinkStatus`), read from
 * the parts that own each piece: the loopback server, the instance context, the authority
 * connection and the sign-in.
 */
import { redactInstanceId, type KeychainBackend, type LinkStatus } from "../../shared/control.js";
import type { ResidualRisk, VaultStatus } from "../../shared/presence.js";
import { DEFAULT_LINK_PORT, LINK_VERSION } from "../../shared/version.js";
import type { InstanceContext } from "./account/instance-context.js";
import type { SignIn } from "./account/sign-in.js";
import type { SignInSession } from "./account/sign-in-session.js";
import type { AuthorityConnection } from "./authority/connection.js";
import type { LinkServer } from "./loopback/link-server.js";
import { agentChannelUrl } from "./runtime/runtime-files.js";
import type { LinkPaths } from "./runtime/paths.js";

export interface StatusParts {
  profile: string;
  preferredPort: number | undefined;
  startedAt: Date;
  paths: LinkPaths;
  server: LinkServer | null;
  address: { port: number; fallback: boolean } | null;
  context: InstanceContext;
  connection: AuthorityConnection;
  authorityMode: "embedded" | "remote" | null;
  signIn: SignIn;
  session: SignInSession;
  /** The keychain backend in use (null for an injected store that does not say). */
  keychainBackend: KeychainBackend | null;
  /** The vault's state and the proofs of presence that count now. */
  vault: VaultStatus;
  /** Residual risks the Link can see. */
  risks: ResidualRisk[];
}

export function linkStatus(p: StatusParts): LinkStatus {
  const port = p.address?.port ?? 0;
  const { instanceId, keychainError } = p.context;
  const client = p.connection.client;
  return {
    version: LINK_VERSION,
    pid: process.pid,
    profile: p.profile,
    startedAt: p.startedAt.toISOString(),
    url: agentChannelUrl(port),
    port,
    preferredPort: p.preferredPort ?? DEFAULT_LINK_PORT,
    portFallback: p.address?.fallback ?? false,
    state: instanceId === null ? "logged_out" : "ready",
    instanceIdRedacted: instanceId === null ? null : redactInstanceId(instanceId),
    keychain:
      keychainError === null
        ? { ok: true, backend: p.keychainBackend, code: null, message: null }
        : { ok: false, backend: p.keychainBackend, code: keychainError.code, message: keychainError.message },
    vault: p.vault,
    risks: p.risks,
    agents: p.server ? [...p.server.agents].map((a) => a.describe()) : [],
    authority:
      client === null || p.authorityMode === null
        ? null
        : {
            url: client.url,
            mode: p.authorityMode,
            connected: p.connection.state.connected,
            error: p.connection.state.error,
            account: p.session.error !== null ? "none" : p.signIn.account,
            signInError: p.session.error,
          },
    // Who is signed in only while this machine is: after a sign-out the last name is not news.
    account: instanceId === null ? null : p.signIn.who.account,
    machine: instanceId === null ? null : p.signIn.who.machine,
    discoveryFile: p.paths.discoveryFile,
    logFile: p.paths.logFile,
  };
}
