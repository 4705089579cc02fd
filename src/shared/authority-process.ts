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

/** The `{url, fingerprint256, engine}` line a served authority prints on stdout once it listens. */
export const AuthorityReadyLineSchema = z.object({
  url: z.url(),
  /** SHA-256 fingerprint (`AA:BB:…`) of its certificate; null when it serves plain HTTP. */
  fingerprint256: z.string().nullable(),
  engine: z.enum(["sqlite", "postgres"]),
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
    ...(a.requestTtlMs ? ["--request-ttl", String(a.requestTtlMs)] : []),
    ...(a.agentRatePerSecond ? ["--agent-rate", String(a.agentRatePerSecond)] : []),
  ];
}

/** The argv (after `authority`) that creates the embedded authority's local user. */
export function createUserArgs(db: string, name: string): string[] {
  return ["create-user", "--db", db, "--name", name];
}
