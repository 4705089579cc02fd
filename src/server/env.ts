/**
 * The authority's environment, read once by its composition root (`authorityCommand` in main.ts)
 * and passed down as options: the rest of the server never reads `process.env`.
 */

export interface AuthorityEnv {
  /** `PIPER_AUTHORITY_DATA_KEYS`: `id:key` pairs, the first encrypting new writes; null when unset or empty. */
  readonly dataKeys: string | null;
  /**
   * `PIPER_AUTHORITY_PARENT_PID`: the Link that started this (embedded) authority, which ends when
   * that process has gone; null when unset or not a positive whole number.
   */
  readonly parentPid: number | null;
  /** `PIPER_AUTHORITY_SQLITE_BINDING`: the better-sqlite3 native module built for Electron's ABI; null when unset or empty. */
  readonly sqliteBinding: string | null;
}

/** Reads the authority's variables from `env` (normally `process.env`). Pure; never throws. */
export function readAuthorityEnv(env: NodeJS.ProcessEnv): AuthorityEnv {
  const nonEmpty = (name: string): string | null => {
    const value = env[name];
    return value === undefined || value === "" ? null : value;
  };
  const parent = nonEmpty("PIPER_AUTHORITY_PARENT_PID");
  return {
    dataKeys: nonEmpty("PIPER_AUTHORITY_DATA_KEYS"),
    parentPid: parent !== null && /^\d+$/.test(parent) && Number(parent) > 0 ? Number(parent) : null,
    sqliteBinding: nonEmpty("PIPER_AUTHORITY_SQLITE_BINDING"),
  };
}
