/**
 * Starts one authority process's worth of service: storage (migrated), events, the HTTP(S) API,
 * and the expiry sweeper, with an explicit `close()`. Used by `piper-link authority serve` and by
 * the embedded authority the Link starts.
 */
import type { RotationReport } from "../shared/authority-process.js";
import type { DataKeys } from "./crypto.js";
import { openDatabase, type Engine, type OpenedDatabase } from "./db.js";
import { createLocalBus, createPostgresBus, type EventBus } from "./events.js";
import { buildAuthorityApp } from "./http.js";
import { createOAuthService } from "./oauth.js";
import { createPresenceVerifier } from "./presence.js";
import { createService, type AuthorityService } from "./service/index.js";
import type { TlsIdentity } from "./tls.js";

export interface AuthorityOptions {
  /** SQLite file path, or a postgres:// URL. */
  db: string;
  /** better-sqlite3's native module to load instead of its own (`AuthorityEnv.sqliteBinding`); absent or null: its own. */
  sqliteBinding?: string | null;
  dataKeys: DataKeys;
  /**
   * The embedded authority's approval key (32 bytes, from the Link over a pipe): widening routes
   * then take `link-mac` proofs of presence under it. Null (an operator's authority): they take
   * the account's password instead.
   */
  approvalKey?: Buffer | null;
  /** Re-encrypt and re-MAC everything under the current data key at start (see `AuthorityKeysSchema.rotate`). */
  rotate?: boolean;
  /** May rows of a database never sealed with row MACs be adopted at this start (default true; see `AuthorityKeysSchema.adoptUnsealed`)? */
  adoptUnsealed?: boolean;
  host: string;
  port: number;
  /** TLS identity; null serves plain HTTP, which callers allow only behind a TLS proxy. */
  tls: TlsIdentity | null;
  requestTtlMs?: number;
  /** Per-agent request rate (sustained per second, and burst). */
  agentRate?: { perSecond: number; burst: number };
  sweepIntervalMs?: number;
  /** Polling interval the device flow asks clients for (RFC 8628; default 5 s). */
  deviceIntervalS?: number;
  /** Serve pyper-sdk's unauthenticated endpoints (see `AuthorityHttpOptions.pyperEndpoints`; default false). */
  pyperEndpoints?: boolean;
  /** Serve only the user who runs this process (the embedded authority on loopback; default false). */
  localUserOnly?: boolean;
  /** See `AuthorityHttpOptions.trustProxy`. */
  trustProxy?: string | null;
  /** How often open event streams re-check their credential, in ms (default 5,000). */
  streamRecheckMs?: number;
  now?: () => number;
  log?: (msg: string, fields?: Record<string, unknown>) => void;
}

export interface RunningAuthority {
  url: string;
  engine: Engine;
  fingerprint256: string | null;
  service: AuthorityService;
  /** What the rotation at start did; null when none was asked. */
  rotated: RotationReport | null;
  close(): Promise<void>;
}

export async function startAuthority(options: AuthorityOptions): Promise<RunningAuthority> {
  const log = options.log ?? (() => undefined);
  const opened = await openDatabase(
    options.db,
    (err) => log("database connection lost while idle; the pool opens another", { err: err.message }),
    options.sqliteBinding ?? null,
  );
  let bus: EventBus | null = null;
  try {
    bus =
      opened.engine === "postgres"
        ? await createPostgresBus(opened.url, (err) => log("event bus error", { err: err.message }))
        : createLocalBus();
    return await serveOn(opened, bus, options, log);
  } catch (err) {
    // A start that fails part way lets go of its connections, or an idle pool would keep the process running.
    await bus?.close().catch(() => undefined);
    await opened.close().catch(() => undefined);
    throw err;
  }
}

async function serveOn(
  opened: OpenedDatabase,
  bus: EventBus,
  options: AuthorityOptions,
  log: NonNullable<AuthorityOptions["log"]>,
): Promise<RunningAuthority> {
  const service = createService({
    db: opened.db,
    keys: options.dataKeys,
    bus,
    log,
    ...(options.now ? { now: options.now } : {}),
    ...(options.requestTtlMs !== undefined ? { requestTtlMs: options.requestTtlMs } : {}),
    ...(options.agentRate
      ? { agentRatePerSecond: options.agentRate.perSecond, agentRateBurst: options.agentRate.burst }
      : {}),
  });
  const oauth = createOAuthService({
    db: opened.db,
    keys: options.dataKeys,
    log,
    ...(options.now ? { now: options.now } : {}),
    ...(options.deviceIntervalS !== undefined ? { deviceIntervalS: options.deviceIntervalS } : {}),
  });
  // Before anything is served: the rows' MACs decide what exists.
  const adopted = await service.seal(options.adoptUnsealed ?? true);
  if (adopted > 0)
    log(
      "row MACs: existing rows adopted at the first start with them; grants among them are listed as legacy until kept",
      { rows: adopted },
    );
  const rotated = options.rotate === true ? await service.rotate() : null;
  if (rotated !== null)
    log(
      "data key rotated: every secret re-encrypted and every row re-MAC'd under the current key; every credential replaced",
      { keyId: rotated.keyId, secrets: rotated.secrets, rows: rotated.rows },
    );
  const presence = createPresenceVerifier({
    approvalKey: options.approvalKey ?? null,
    checkPassword: (userId, password, client) => oauth.checkPassword(userId, password, client),
    ...(options.now ? { now: options.now } : {}),
  });
  const { app, drain } = buildAuthorityApp({
    service,
    oauth,
    presence,
    bus,
    https: options.tls ? { key: options.tls.key, cert: options.tls.cert } : null,
    pyperEndpoints: options.pyperEndpoints ?? false,
    localUserOnly: options.localUserOnly ?? false,
    trustProxy: options.trustProxy ?? null,
    ...(options.streamRecheckMs !== undefined ? { streamRecheckMs: options.streamRecheckMs } : {}),
    log,
  });
  await app.listen({ host: options.host, port: options.port });
  const address = app.server.address();
  const port = typeof address === "object" && address !== null ? address.port : options.port;
  const host = options.host.includes(":") ? `[${options.host}]` : options.host;
  const sweeper = setInterval(() => {
    service.expireRequests().catch((err: unknown) => log("expiry sweep failed", { err: String(err) }));
  }, options.sweepIntervalMs ?? 1000);
  sweeper.unref();
  return {
    url: `${options.tls ? "https" : "http"}://${host}:${port}`,
    engine: opened.engine,
    fingerprint256: options.tls?.fingerprint256 ?? null,
    service,
    rotated,
    async close() {
      clearInterval(sweeper);
      // Open event streams and long-polls would hold app.close() open (issue 16 item 15): end them first.
      const closing = app.close();
      drain();
      await closing;
      await bus.close();
      await opened.close();
    },
  };
}
