/**
 * How the Link and an authority process talk before HTTP exists: the argv the Link starts it with
 * (`authority serve` / `create-user`, and the marker an Electron utility process gets), and the one
 * JSON line it prints on stdout when ready. Declared once here; `src/server/main.ts` prints these
 * lines and `core/authority/embedded-authority.ts` reads them, without casts.
 */
import { z } from "zod";

/** Put before the authority's argv in an Electron utility process, whose `process.argv` shape is Electron's. */
export const AUTHORITY_ARGV_MARKER = "--piper-authority";

/** The authority's own argv: what follows the marker, or everything after the script when there is none. */
export function authorityArgv(argv: readonly string[]): string[] {
  const at = argv.indexOf(AUTHORITY_ARGV_MARKER);
  return at >= 0 ? argv.slice(at + 1) : argv.slice(2);
}

/** One data key: `id:base64` of 32 bytes (ids are short words such as `k1`). */
const DATA_KEY_PART = "[A-Za-z0-9_-]{1,32}:[A-Za-z0-9+/]{43}=";

/**
 * The keys the Link hands its embedded authority, as one JSON line on the child's stdin (a Node
 * child) or as the first message on its parent port (an Electron utility process): never in argv
 * or the environment, which every process of the same user can read (`/proc/PID/cmdline`,
 * `/proc/PID/environ`).
 * - `dataKeys`: `id:base64[,id:base64…]`, the first is current (encrypts new secrets, keys row
 *   MACs and token hashes); the others are only read.
 * - `approvalKey`: 32 random bytes, base64url, new at every launch: the key of the `link-mac`
 *   proofs of presence (`src/shared/presence.ts`). Only the Link and this child know it.
 * - `rotate`: re-encrypt every secret and re-MAC every row under the current key at start, then
 *   end every credential keyed by an older one and issue the local user a new Link token (reported
 *   in the ready line's `rotated`). The Link then keeps only the current key.
 */
export const AuthorityKeysSchema = z
  .object({
    dataKeys: z
      .string()
      .regex(new RegExp(`^${DATA_KEY_PART}(,${DATA_KEY_PART})*$`), "id:base64 pairs of 32-byte keys, comma-separated"),
    approvalKey: z.string().regex(/^[A-Za-z0-9_-]{43}$/, "32 bytes in base64url"),
    rotate: z.boolean().optional(),
    /**
     * False once the Link has seen this database sealed with row MACs: a database that then looks
     * never sealed was stripped by someone, and its unMAC'd rows must stay refused rather than be
     * adopted as legacy. Absent or true: adopt (the first start after the upgrade).
     */
    adoptUnsealed: z.boolean().optional(),
  })
  .strict();
export type AuthorityKeys = z.infer<typeof AuthorityKeysSchema>;

/** The `serve` / `create-user` flag that says: read `AuthorityKeysSchema` from stdin (or the parent port), not the environment. */
export const KEYS_ON_STDIN_FLAG = "--keys-on-stdin";

/** What a rotation at start did (see `AuthorityKeysSchema.rotate`). */
export const RotationReportSchema = z.object({
  /** The key id everything is now encrypted and MAC'd under. */
  keyId: z.string(),
  secrets: z.number().int().nonnegative(),
  rows: z.number().int().nonnegative(),
  /** The local user's new Link token (the old one, and every other credential, no longer works); null when there is no such user. */
  linkToken: z.string().nullable(),
});
export type RotationReport = z.infer<typeof RotationReportSchema>;

/** The `{url, fingerprint256, engine}` line a served authority prints on stdout once it listens. */
export const AuthorityReadyLineSchema = z.object({
  url: z.url(),
  /** SHA-256 fingerprint (`AA:BB:…`) of its certificate; null when it serves plain HTTP. */
  fingerprint256: z.string().nullable(),
  engine: z.enum(["sqlite", "postgres"]),
  /** Present when the keys asked for a rotation and it ran. */
  rotated: RotationReportSchema.optional(),
});
export type AuthorityReadyLine = z.infer<typeof AuthorityReadyLineSchema>;

/** The line `authority create-user` prints: the new user and a Link token for it. */
export const CreatedUserLineSchema = z.object({ userId: z.string(), linkToken: z.string() });
export type CreatedUserLine = z.infer<typeof CreatedUserLineSchema>;

/**
 * Reads a JSON line printed by the authority process with `schema`. Throws an Error naming `what`
 * when the line is not JSON or not of that shape (a different authority build, or stray output).
 */
export function parseAuthorityLine<S extends z.ZodType>(schema: S, line: string, what: string): z.output<S> {
  let json: unknown;
  try {
    json = JSON.parse(line);
  } catch {
    throw new Error(`The authority's ${what} line is not JSON: ${line.slice(0, 200)}`);
  }
  const parsed = schema.safeParse(json);
  if (!parsed.success) throw new Error(`The authority's ${what} line has an unexpected shape: ${line.slice(0, 200)}`);
  return parsed.data;
}

/** How the Link starts `authority serve` for its embedded authority. */
export interface EmbeddedServeArgs {
  db: string;
  /** Loopback port; 0 picks a free one. */
  port: number;
  tlsDir: string;
  requestTtlMs?: number | undefined;
  agentRatePerSecond?: number | undefined;
}

/** The argv (after `authority`) for the embedded authority's `serve`; `src/server/main.ts` declares the same flags. */
export function embeddedServeArgs(a: EmbeddedServeArgs): string[] {
  return [
    "serve",
    "--db",
    a.db,
    "--listen",
    `127.0.0.1:${a.port}`,
    "--tls-dir",
    a.tlsDir,
    // On a shared machine another user must not reach this user's authority (its sign-up and sign-in).
    "--local-user-only",
    KEYS_ON_STDIN_FLAG,
    ...(a.requestTtlMs ? ["--request-ttl", String(a.requestTtlMs)] : []),
    ...(a.agentRatePerSecond ? ["--agent-rate", String(a.agentRatePerSecond)] : []),
  ];
}

/** The argv (after `authority`) that creates the embedded authority's local user. */
export function createUserArgs(db: string, name: string): string[] {
  return ["create-user", "--db", db, "--name", name, KEYS_ON_STDIN_FLAG];
}
