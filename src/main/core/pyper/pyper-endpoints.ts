/**
 * The pyper room's one entry for link.ts: loads (or creates) the certificate, builds the handlers
 * and starts the HTTPS listener, and hands back what status and sign-out need (port, certificate
 * file, `clear`). See pyper-server.ts for the checks on each request and pyper-handlers.ts for
 * what each endpoint does.
 */
import type { Logger } from "pino";
import type { AuthorityClient } from "../authority/authority-client.js";
import type { PeerResolver } from "../process/peer-resolver.js";
import { createPyperHandlers } from "./pyper-handlers.js";
import { startPyperServer } from "./pyper-server.js";
import { loadOrCreatePyperTls } from "./pyper-tls.js";

export interface PyperEndpointsOptions {
  /** Preferred port; 0 picks a free one. */
  port: number;
  /** The Link's data directory: the certificate lives in `<dataDir>/pyper/`. */
  dataDir: string;
  log: Logger;
  now: () => number;
  peers: PeerResolver;
  authority: () => AuthorityClient | null;
  instanceId: () => string | null;
}

export interface PyperEndpoints {
  port: number;
  fallback: boolean;
  /** The certificate agents trust for `https://127.0.0.1:<port>/` only. */
  certFile: string;
  /** Forgets every credential ID and scoped token handed out (the instance changed). */
  clear(): void;
  stop(): Promise<void>;
}

/** Starts the pyper-sdk endpoints; rejects when the certificate cannot be written or no port bound. */
export async function startPyperEndpoints(options: PyperEndpointsOptions): Promise<PyperEndpoints> {
  const tls = await loadOrCreatePyperTls(options.dataDir, options.now);
  const handlers = createPyperHandlers({
    now: options.now,
    log: options.log,
    authority: options.authority,
    instanceId: options.instanceId,
  });
  const listener = await startPyperServer({
    port: options.port,
    tls,
    log: options.log,
    peers: options.peers,
    handlers,
  });
  options.log.info({ port: listener.port, fallback: listener.fallback }, "pyper-sdk endpoints listening");
  return {
    port: listener.port,
    fallback: listener.fallback,
    certFile: tls.certFile,
    clear: () => handlers.clear(),
    stop: async () => {
      handlers.clear();
      await listener.stop();
    },
  };
}
