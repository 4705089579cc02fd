/**
 * Storage for the authority: Kysely over SQLite (better-sqlite3 12, embedded default) or PostgreSQL
 * (`pg`, selected by a postgres:// URL). One migration set runs on both at open. Times are epoch
 * milliseconds in bigint columns; the pg driver is told to return them as numbers.
 */
import SQLite from "better-sqlite3";
import { Kysely, Migrator, PostgresDialect, SqliteDialect, sql, type Migration, type MigrationProvider } from "kysely";
import pg from "pg";

export interface UsersTable {
  id: string;
  display_name: string;
  created_at: number;
  /** Accounts that sign in through the authority's pages (null for a token-only local user). */
  email: string | null;
  password_hash: string | null;
}
export interface WebSessionsTable {
  id_hash: string;
  user_id: string;
  csrf: string;
  created_at: number;
  expires_at: number;
}
export interface OAuthCodesTable {
  code_hash: string;
  user_id: string;
  client_id: string;
  redirect_uri: string;
  code_challenge: string;
  created_at: number;
  expires_at: number;
  used_at: number | null;
  family_id: string;
}
export interface OAuthTokensTable {
  token_hash: string;
  kind: "access" | "refresh";
  user_id: string;
  client_id: string;
  family_id: string;
  created_at: number;
  expires_at: number;
  /** Refresh tokens: set when exchanged for a new one; a second use means theft. */
  used_at: number | null;
  revoked_at: number | null;
  /** Row MAC over (token_hash, kind, user_id, client_id, family_id, expires_at) (migration 009). */
  mac: string | null;
}
export interface DeviceCodesTable {
  device_code_hash: string;
  user_code: string;
  client_id: string;
  user_id: string | null;
  status: "pending" | "approved" | "denied" | "used";
  created_at: number;
  expires_at: number;
  interval_s: number;
  last_poll_at: number | null;
}
export interface LinkTokensTable {
  /** Keyed hash (crypto.ts `tokenHasher`; migration 009). */
  token_hash: string;
  user_id: string;
  label: string;
  created_at: number;
  /** Row MAC over (token_hash, user_id) (migration 009); a row without a valid one is not honoured. */
  mac: string | null;
}
export interface InstancesTable {
  id: string;
  user_id: string;
  name: string;
  created_at: number;
  last_seen_at: number;
  /** Set at sign-out (issue 13 item 8): a revoked instance is invalid everywhere from then on. */
  revoked_at: number | null;
}
export interface AgentsTable {
  id: string;
  user_id: string;
  client_id: string;
  display_name: string | null;
  first_seen_at: number;
  last_seen_at: number;
}
export interface SecretsTable {
  id: string;
  user_id: string;
  name: string;
  ciphertext: string;
  key_id: string;
  created_at: number;
  updated_at: number;
  /** The hosts the secret may ever be sent to by the Link's calls (JSON string array; migration 007); null: any. */
  hosts: string | null;
  /** Row MAC over (id, user_id, name, hosts) (migration 009): a renamed secret or a widened host list is not honoured. */
  mac: string | null;
}
export interface GrantsTable {
  id: string;
  user_id: string;
  agent_id: string;
  variable: string;
  secret_id: string;
  scope: "once" | "until" | "until_revoked" | "process";
  expires_at: number | null;
  instance_id: string | null;
  process_pid: number | null;
  process_start_time: number | null;
  request_id: string | null;
  created_at: number;
  last_used_at: number | null;
  ended_at: number | null;
  end_reason: string | null;
  /** GrantBindingKind (src/shared/grant-terms.ts); grants made before bindings are `client`. */
  binding: "process" | "session" | "program" | "client";
  /** programKey() of the approved program (program and session bindings). */
  program_key: string | null;
  /** JSON {executable, script, cwd} of the approved program, for display. */
  program: string | null;
  /** sessionKey() of the approved terminal session (session bindings). */
  session_key: string | null;
  session_id: number | null;
  /** JSON GrantMode; null means read. */
  mode: string | null;
  /** JSON GrantPolicy; null means no limits. */
  policy: string | null;
  /** 1 for a grant approved before proofs of presence existed (migration 009), until the person keeps it; else 0. */
  legacy: number;
  /** Row MAC over everything the grant holds and its agent's client ID (service/row-macs.ts; migration 009). */
  mac: string | null;
}
export interface RequestsTable {
  id: string;
  user_id: string;
  instance_id: string;
  agent_id: string;
  variable: string;
  reason: string | null;
  process: string | null;
  /** The agent's display name when the request was made (migration 005); null when it gave none. */
  agent_display_name: string | null;
  created_at: number;
  expires_at: number;
  status: "pending" | "approved" | "denied" | "expired" | "requester_gone";
  decided_at: number | null;
  /** programKey() of the requesting program: a request is per client ID + variable + program. */
  program_key: string | null;
  grant_id: string | null;
  /** Requests made together by one `resolveMany` share it (migration 006); null for a lone request. */
  batch_id: string | null;
  /** 1, or 0 when the requester never waits for the answer (pyper-sdk; migration 008). */
  requester_waits: number;
}
export interface ScopedTokensTable {
  token_hash: string;
  user_id: string;
  agent_id: string;
  instance_id: string;
  grant_ids: string;
  expires_at: number;
}
export interface AuditTable {
  id: string;
  user_id: string;
  at: number;
  actor: string;
  action: string;
  agent_client_id: string | null;
  variable: string | null;
  request_id: string | null;
  grant_id: string | null;
  secret_name: string | null;
  outcome: string;
  detail: string | null;
  /** JSON AuditProgram (shared/authority.ts): the verified program the event is about (migration 010); null for none. */
  program: string | null;
}

/**
 * Failed sign-ins and failed device-code entries, shared by every authority process on one
 * database so throttling counts them all (issue 16 items 13 and 14). Rows older than the window
 * are deleted as new ones arrive.
 */
export interface AuthFailuresTable {
  id: string;
  /** "sign_in" or "device_code". */
  kind: string;
  /** The normalized email (sign-in) or the signed-in user's id (device code); null when unknown. */
  account: string | null;
  /** The client's address as the server saw it. */
  address: string;
  /** Hash of the web session (device code entry); null for sign-in. */
  session: string | null;
  at: number;
}

/** Facts about the database itself (migration 009): `row_macs` names the data key rows were first MAC'd under. */
export interface AuthorityMetaTable {
  key: string;
  value: string;
}

export interface Database {
  authority_meta: AuthorityMetaTable;
  users: UsersTable;
  link_tokens: LinkTokensTable;
  instances: InstancesTable;
  agents: AgentsTable;
  secrets: SecretsTable;
  grants: GrantsTable;
  requests: RequestsTable;
  scoped_tokens: ScopedTokensTable;
  audit_events: AuditTable;
  web_sessions: WebSessionsTable;
  oauth_codes: OAuthCodesTable;
  oauth_tokens: OAuthTokensTable;
  device_codes: DeviceCodesTable;
  auth_failures: AuthFailuresTable;
}

export type Engine = "sqlite" | "postgres";

const migrations: Record<string, Migration> = {
  "001_initial": {
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable("users")
        .addColumn("id", "text", (c) => c.primaryKey())
        .addColumn("display_name", "text", (c) => c.notNull())
        .addColumn("created_at", "bigint", (c) => c.notNull())
        .execute();
      await db.schema
        .createTable("link_tokens")
        .addColumn("token_hash", "text", (c) => c.primaryKey())
        .addColumn("user_id", "text", (c) => c.notNull().references("users.id"))
        .addColumn("label", "text", (c) => c.notNull())
        .addColumn("created_at", "bigint", (c) => c.notNull())
        .execute();
      await db.schema
        .createTable("instances")
        .addColumn("id", "text", (c) => c.primaryKey())
        .addColumn("user_id", "text", (c) => c.notNull().references("users.id"))
        .addColumn("name", "text", (c) => c.notNull())
        .addColumn("created_at", "bigint", (c) => c.notNull())
        .addColumn("last_seen_at", "bigint", (c) => c.notNull())
        .execute();
      await db.schema
        .createTable("agents")
        .addColumn("id", "text", (c) => c.primaryKey())
        .addColumn("user_id", "text", (c) => c.notNull().references("users.id"))
        .addColumn("client_id", "text", (c) => c.notNull())
        .addColumn("display_name", "text")
        .addColumn("first_seen_at", "bigint", (c) => c.notNull())
        .addColumn("last_seen_at", "bigint", (c) => c.notNull())
        .addUniqueConstraint("agents_user_client", ["user_id", "client_id"])
        .execute();
      await db.schema
        .createTable("secrets")
        .addColumn("id", "text", (c) => c.primaryKey())
        .addColumn("user_id", "text", (c) => c.notNull().references("users.id"))
        .addColumn("name", "text", (c) => c.notNull())
        .addColumn("ciphertext", "text", (c) => c.notNull())
        .addColumn("key_id", "text", (c) => c.notNull())
        .addColumn("created_at", "bigint", (c) => c.notNull())
        .addColumn("updated_at", "bigint", (c) => c.notNull())
        .addUniqueConstraint("secrets_user_name", ["user_id", "name"])
        .execute();
      await db.schema
        .createTable("grants")
        .addColumn("id", "text", (c) => c.primaryKey())
        .addColumn("user_id", "text", (c) => c.notNull().references("users.id"))
        .addColumn("agent_id", "text", (c) => c.notNull().references("agents.id"))
        .addColumn("variable", "text", (c) => c.notNull())
        // No foreign key: deleting a secret ends its grants but keeps them for the record.
        .addColumn("secret_id", "text", (c) => c.notNull())
        .addColumn("scope", "text", (c) => c.notNull())
        .addColumn("expires_at", "bigint")
        .addColumn("instance_id", "text")
        .addColumn("process_pid", "bigint")
        .addColumn("process_start_time", "bigint")
        .addColumn("request_id", "text")
        .addColumn("created_at", "bigint", (c) => c.notNull())
        .addColumn("last_used_at", "bigint")
        .addColumn("ended_at", "bigint")
        .addColumn("end_reason", "text")
        .execute();
      await db.schema.createIndex("grants_lookup").on("grants").columns(["agent_id", "variable", "ended_at"]).execute();
      await db.schema
        .createTable("requests")
        .addColumn("id", "text", (c) => c.primaryKey())
        .addColumn("user_id", "text", (c) => c.notNull().references("users.id"))
        .addColumn("instance_id", "text", (c) => c.notNull())
        .addColumn("agent_id", "text", (c) => c.notNull().references("agents.id"))
        .addColumn("variable", "text", (c) => c.notNull())
        .addColumn("reason", "text")
        .addColumn("process", "text")
        .addColumn("created_at", "bigint", (c) => c.notNull())
        .addColumn("expires_at", "bigint", (c) => c.notNull())
        .addColumn("status", "text", (c) => c.notNull())
        .addColumn("decided_at", "bigint")
        .addColumn("grant_id", "text")
        .execute();
      await db.schema.createIndex("requests_pending").on("requests").columns(["user_id", "status"]).execute();
      await db.schema
        .createTable("scoped_tokens")
        .addColumn("token_hash", "text", (c) => c.primaryKey())
        .addColumn("user_id", "text", (c) => c.notNull())
        .addColumn("agent_id", "text", (c) => c.notNull())
        .addColumn("instance_id", "text", (c) => c.notNull())
        .addColumn("grant_ids", "text", (c) => c.notNull())
        .addColumn("expires_at", "bigint", (c) => c.notNull())
        .execute();
      await db.schema
        .createTable("audit_events")
        .addColumn("id", "text", (c) => c.primaryKey())
        .addColumn("user_id", "text", (c) => c.notNull())
        .addColumn("at", "bigint", (c) => c.notNull())
        .addColumn("actor", "text", (c) => c.notNull())
        .addColumn("action", "text", (c) => c.notNull())
        .addColumn("agent_client_id", "text")
        .addColumn("variable", "text")
        .addColumn("request_id", "text")
        .addColumn("grant_id", "text")
        .addColumn("secret_name", "text")
        .addColumn("outcome", "text", (c) => c.notNull())
        .addColumn("detail", "text")
        .execute();
      await db.schema.createIndex("audit_user_id").on("audit_events").columns(["user_id", "id"]).execute();
    },
  },
};

migrations["002_accounts_oauth"] = {
  async up(db: Kysely<unknown>) {
    await db.schema.alterTable("users").addColumn("email", "text").execute();
    await db.schema.alterTable("users").addColumn("password_hash", "text").execute();
    await db.schema.createIndex("users_email").on("users").column("email").unique().execute();
    await db.schema
      .createTable("web_sessions")
      .addColumn("id_hash", "text", (c) => c.primaryKey())
      .addColumn("user_id", "text", (c) => c.notNull().references("users.id"))
      .addColumn("csrf", "text", (c) => c.notNull())
      .addColumn("created_at", "bigint", (c) => c.notNull())
      .addColumn("expires_at", "bigint", (c) => c.notNull())
      .execute();
    await db.schema
      .createTable("oauth_codes")
      .addColumn("code_hash", "text", (c) => c.primaryKey())
      .addColumn("user_id", "text", (c) => c.notNull())
      .addColumn("client_id", "text", (c) => c.notNull())
      .addColumn("redirect_uri", "text", (c) => c.notNull())
      .addColumn("code_challenge", "text", (c) => c.notNull())
      .addColumn("created_at", "bigint", (c) => c.notNull())
      .addColumn("expires_at", "bigint", (c) => c.notNull())
      .addColumn("used_at", "bigint")
      .addColumn("family_id", "text", (c) => c.notNull())
      .execute();
    await db.schema
      .createTable("oauth_tokens")
      .addColumn("token_hash", "text", (c) => c.primaryKey())
      .addColumn("kind", "text", (c) => c.notNull())
      .addColumn("user_id", "text", (c) => c.notNull())
      .addColumn("client_id", "text", (c) => c.notNull())
      .addColumn("family_id", "text", (c) => c.notNull())
      .addColumn("created_at", "bigint", (c) => c.notNull())
      .addColumn("expires_at", "bigint", (c) => c.notNull())
      .addColumn("used_at", "bigint")
      .addColumn("revoked_at", "bigint")
      .execute();
    await db.schema.createIndex("oauth_tokens_family").on("oauth_tokens").column("family_id").execute();
    await db.schema
      .createTable("device_codes")
      .addColumn("device_code_hash", "text", (c) => c.primaryKey())
      .addColumn("user_code", "text", (c) => c.notNull().unique())
      .addColumn("client_id", "text", (c) => c.notNull())
      .addColumn("user_id", "text")
      .addColumn("status", "text", (c) => c.notNull())
      .addColumn("created_at", "bigint", (c) => c.notNull())
      .addColumn("expires_at", "bigint", (c) => c.notNull())
      .addColumn("interval_s", "integer", (c) => c.notNull())
      .addColumn("last_poll_at", "bigint")
      .execute();
  },
};

migrations["003_revocation_and_throttling"] = {
  async up(db: Kysely<unknown>) {
    await db.schema.alterTable("instances").addColumn("revoked_at", "bigint").execute();
    await db.schema
      .createTable("auth_failures")
      .addColumn("id", "text", (c) => c.primaryKey())
      .addColumn("kind", "text", (c) => c.notNull())
      .addColumn("account", "text")
      .addColumn("address", "text", (c) => c.notNull())
      .addColumn("session", "text")
      .addColumn("at", "bigint", (c) => c.notNull())
      .execute();
    await db.schema
      .createIndex("auth_failures_account")
      .on("auth_failures")
      .columns(["kind", "account", "at"])
      .execute();
    await db.schema
      .createIndex("auth_failures_address")
      .on("auth_failures")
      .columns(["kind", "address", "at"])
      .execute();
    await db.schema
      .createIndex("auth_failures_session")
      .on("auth_failures")
      .columns(["kind", "session", "at"])
      .execute();
    // The grant list and the sign-out path look grants up by instance.
    await db.schema.createIndex("grants_instance").on("grants").columns(["instance_id", "ended_at"]).execute();
  },
};

migrations["004_grant_binding"] = {
  async up(db: Kysely<unknown>) {
    // Grants made before bindings keep their old meaning: any program claiming the client ID.
    await db.schema
      .alterTable("grants")
      .addColumn("binding", "text", (c) => c.notNull().defaultTo("client"))
      .execute();
    for (const column of ["program_key", "program", "session_key", "mode", "policy"]) {
      await db.schema.alterTable("grants").addColumn(column, "text").execute();
    }
    await db.schema.alterTable("grants").addColumn("session_id", "bigint").execute();
    await db.schema.alterTable("requests").addColumn("program_key", "text").execute();
    await db.schema
      .createIndex("requests_pending_key")
      .on("requests")
      .columns(["agent_id", "instance_id", "variable", "status"])
      .execute();
  },
};

/**
 * History keeps what it said (issue 15 item 8): a request shows the agent's name as it was when the
 * request was made, not the name the agent uses today. One nullable column, filled for existing rows
 * from the agent's current name (the best that is known about them). Runs on SQLite and PostgreSQL.
 * (The process was already kept per request, as JSON in `requests.process`.)
 */
migrations["005_request_history"] = {
  async up(db: Kysely<unknown>) {
    await db.schema.alterTable("requests").addColumn("agent_display_name", "text").execute();
    await sql`update requests set agent_display_name = (select display_name from agents where agents.id = requests.agent_id)`.execute(
      db,
    );
  },
};

migrations["006_request_batches"] = {
  async up(db: Kysely<unknown>) {
    // One prompt for several secrets (issue 13 item 7): the window groups a batch into one card.
    await db.schema.alterTable("requests").addColumn("batch_id", "text").execute();
    await db.schema.createIndex("requests_batch").on("requests").columns(["batch_id"]).execute();
  },
};

/**
 * Each secret may carry the hosts it may ever be sent to (DESIGN.md section 8, issue 14 item 3): a
 * nullable JSON array of host rules; null (every existing secret) means no limit. Runs on SQLite and
 * PostgreSQL.
 */
migrations["007_secret_hosts"] = {
  async up(db: Kysely<unknown>) {
    await db.schema.alterTable("secrets").addColumn("hosts", "text").execute();
  },
};

/**
 * A requester that never waits for the answer (pyper-sdk raises with a grant link and its script
 * ends): its request lives while its terminal session does, and its next run reuses it. An integer
 * (1/0) so SQLite and PostgreSQL store it alike; every existing request waited.
 */
migrations["008_requester_waits"] = {
  async up(db: Kysely<unknown>) {
    await db.schema
      .alterTable("requests")
      .addColumn("requester_waits", "integer", (c) => c.notNull().defaultTo(1))
      .execute();
  },
};

/**
 * The authority does not trust its own files: every row that grants anything gets a MAC under a
 * key derived from the data key, and token hashes become keyed (crypto.ts). The migration only adds
 * the columns (it has no key); the first start with a key MACs the existing rows and marks the
 * grants that existed as legacy (service/row-macs.ts `sealRows`). Runs on SQLite and PostgreSQL.
 */
migrations["009_row_macs"] = {
  async up(db: Kysely<unknown>) {
    for (const table of ["grants", "secrets", "link_tokens", "oauth_tokens"]) {
      await db.schema.alterTable(table).addColumn("mac", "text").execute();
    }
    await db.schema
      .alterTable("grants")
      .addColumn("legacy", "integer", (c) => c.notNull().defaultTo(0))
      .execute();
    await db.schema
      .createTable("authority_meta")
      .addColumn("key", "text", (c) => c.primaryKey())
      .addColumn("value", "text", (c) => c.notNull())
      .execute();
  },
};

/** Audit events name the verified program (executable, script, folder, pid), not only the client ID the agent chose. */
migrations["010_audit_program"] = {
  async up(db: Kysely<unknown>) {
    await db.schema.alterTable("audit_events").addColumn("program", "text").execute();
  },
};

const provider: MigrationProvider = { getMigrations: () => Promise.resolve(migrations) };

export interface OpenedDatabase {
  db: Kysely<Database>;
  engine: Engine;
  /** For PostgreSQL: the connection string (LISTEN/NOTIFY opens its own client). */
  url: string;
  close(): Promise<void>;
}

/**
 * Opens `location` — a postgres:// URL or a SQLite file path — and runs pending migrations.
 * `onConnectionError` hears a PostgreSQL connection that failed while idle in the pool (the server
 * restarted, an administrator ended it): node-postgres emits that on the pool, and without a
 * listener it would end the process; the pool drops the connection and opens a new one when asked.
 * `sqliteBinding`: better-sqlite3's native module to load instead of its own (under Electron, one
 * built for Electron's ABI: `AuthorityEnv.sqliteBinding`); null: its own.
 */
export async function openDatabase(
  location: string,
  onConnectionError: (err: Error) => void = () => undefined,
  sqliteBinding: string | null = null,
): Promise<OpenedDatabase> {
  const engine: Engine = /^postgres(ql)?:\/\//.test(location) ? "postgres" : "sqlite";
  let db: Kysely<Database>;
  let sqlite: SQLite.Database | null = null;
  if (engine === "postgres") {
    // bigint (int8) columns hold epoch milliseconds, well inside Number's safe range.
    const types = new pg.TypeOverrides();
    types.setTypeParser(pg.types.builtins.INT8, (value: string) => Number(value));
    const pool = new pg.Pool({ connectionString: location, max: 10, types });
    pool.on("error", onConnectionError);
    db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
  } else {
    // Under Electron the native module must be built for Electron's ABI; the shell points to that build.
    sqlite = new SQLite(location, sqliteBinding !== null ? { nativeBinding: sqliteBinding } : {});
    // First: another process opening the same fresh file may hold the lock that switching to WAL needs.
    sqlite.pragma("busy_timeout = 5000");
    sqlite.pragma("journal_mode = WAL");
    // In WAL mode NORMAL keeps the database consistent across crashes; only the last commits
    // before a power loss may be lost, which is the usual trade for one fsync per checkpoint.
    sqlite.pragma("synchronous = NORMAL");
    sqlite.pragma("foreign_keys = ON");
    db = new Kysely<Database>({ dialect: new SqliteDialect({ database: sqlite }) });
  }
  const migrator = new Migrator({
    db,
    provider,
    migrationTableName: "piper_migrations",
    migrationLockTableName: "piper_migrations_lock",
  });
  // Two processes may open one fresh database at once (two authorities, a CLI command beside the
  // Link's). Kysely's migration lock is a PostgreSQL advisory lock, and a no-op on SQLite (it assumes
  // one process); there the whole run, from reading which migrations are done to the last one,
  // happens in one write transaction taken up front (BEGIN IMMEDIATE waits up to busy_timeout for the
  // other process's), so the second process finds every migration done and runs none. SQLite's DDL is
  // transactional, so a failed run leaves nothing half-made.
  let error: unknown;
  try {
    sqlite?.exec("BEGIN IMMEDIATE");
    ({ error } = await migrator.migrateToLatest());
    if (sqlite?.inTransaction === true) sqlite.exec(error === undefined ? "COMMIT" : "ROLLBACK");
  } catch (err) {
    error = err;
  }
  if (error !== undefined) {
    await db.destroy();
    throw error instanceof Error ? error : new Error("database migration failed", { cause: error });
  }
  return { db, engine, url: location, close: () => db.destroy() };
}

export { sql };
