/**
 * Reading /proc (Linux, proc(5)): the few files the process room reads and the formats of their
 * text. Reads return null instead of throwing: a process may exit, or belong to another user, at
 * any moment, and the callers treat an unreadable field as unknown.
 */
import fs from "node:fs/promises";

/** The text of `file`, or null when it cannot be read. */
export async function readOrNull(file: string): Promise<string | null> {
  try {
    return await fs.readFile(file, "utf8");
  } catch {
    return null;
  }
}

/** Where the symlink `file` points (/proc/<pid>/exe, cwd, fd/N), or null when it cannot be read. */
export async function readlinkOrNull(file: string): Promise<string | null> {
  try {
    return await fs.readlink(file);
  } catch {
    return null;
  }
}

/** The fields of /proc/<pid>/stat this module needs (proc(5)); null when the text is not a stat line. */
export interface StatFields {
  /** Field 4. */
  ppid: number;
  /** Field 6: the session id, which is the session leader's pid. */
  session: number;
  /** Field 22: clock ticks after boot. */
  startTime: number;
}

export function parseStat(stat: string): StatFields | null {
  const close = stat.lastIndexOf(")");
  if (close < 0) return null;
  // After the comm field: state is field 3, so field N is at index N - 3.
  const after = stat.slice(close + 2).split(" ");
  const ppid = Number(after[1]);
  const session = Number(after[3]);
  const startTime = Number(after[19]);
  if (![ppid, session, startTime].every((n) => Number.isInteger(n))) return null;
  return { ppid, session, startTime };
}

/** The effective uid from /proc/<pid>/status (`Uid:` real, effective, saved, filesystem). */
export function parseStatusUid(status: string): number | null {
  const m = /^Uid:\s+\d+\s+(\d+)/m.exec(status);
  return m?.[1] === undefined ? null : Number(m[1]);
}

/** Parses /proc/<pid>/environ (NUL-separated NAME=value) into a map; the first of a repeated name wins, as getenv(3) finds it. */
export function parseEnviron(text: string): Map<string, string> {
  const env = new Map<string, string>();
  for (const entry of text.split("\0")) {
    const eq = entry.indexOf("=");
    if (eq <= 0) continue;
    const key = entry.slice(0, eq);
    if (!env.has(key)) env.set(key, entry.slice(eq + 1));
  }
  return env;
}
