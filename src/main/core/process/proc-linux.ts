/**
 * Reading /proc (Linux, proc(5)): the few files the process room reads and the formats of their
 * text. Reads return null instead of throwing: a process may exit, or belong to another user, at
 * any moment, and the callers treat an unreadable field as unknown.
 */
import fsCallback from "node:fs";
import fs from "node:fs/promises";

/** The text of `file`, or null when it cannot be read. */
export function readOrNull(file: string): Promise<string | null> {
  // open, read until 0, close through the callback API: /proc files report size 0, and the
  // promise readFile's chunked path costs about 3x the CPU (this runs before every request).
  return new Promise((resolve) => {
    fsCallback.open(file, "r", (openError, fd) => {
      if (openError !== null) {
        resolve(null);
        return;
      }
      const chunks: Buffer[] = [];
      let total = 0;
      const done = (text: string | null): void => fsCallback.close(fd, () => resolve(text));
      const step = (): void => {
        const buf = Buffer.allocUnsafe(PROC_READ_BYTES);
        fsCallback.read(fd, buf, 0, buf.length, null, (readError, n) => {
          if (readError !== null) return done(null);
          if (n === 0) return done(Buffer.concat(chunks, total).toString("utf8"));
          chunks.push(buf.subarray(0, n));
          total += n;
          // An environment or command line is at most a few MiB (ARG_MAX); more is not a /proc file.
          if (total > PROC_MAX_BYTES) return done(null);
          step();
        });
      };
      step();
    });
  });
}

/** One read of a /proc file: a page or more, so most files take one read and the end-of-file read. */
const PROC_READ_BYTES = 16 * 1024;
/** Beyond this a /proc text is refused (null), like an unreadable one. */
const PROC_MAX_BYTES = 8 * 1024 * 1024;

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
  /** Field 3: R, S, D, … ; Z (zombie) and X (dead) name a process that has exited. */
  state: string;
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
  return { state: after[0] ?? "", ppid, session, startTime };
}

/** True for a stat line's state of a process that has exited but not been reaped (Z) or is dying (X). */
export function hasExited(stat: StatFields): boolean {
  return stat.state === "Z" || stat.state === "X";
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
