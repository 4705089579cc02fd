/**
 * The machine's TCP socket tables (Linux: /proc/net/tcp and tcp6): which socket inode and which uid
 * own a loopback connection, matched on both endpoints (`shared/socket-owner.ts`). The owner check
 * (user-guard.ts) asks for the uid of every connection; the peer resolver asks for the inode, to find
 * the processes holding it (peer-resolver-linux.ts).
 */
import path from "node:path";
import { findSocketUid, parseSocketLine, type SocketEnds } from "../../../shared/socket-owner.js";
import { readOrNull } from "./proc-linux.js";

/**
 * Parses /proc/net/tcp or tcp6 into "local remote" (both endpoints in /proc's hex, see
 * `peerLineKeys`) -> socket inode.
 */
export function parseProcNetTcp(text: string, into = new Map<string, string>()): Map<string, string> {
  for (const raw of text.split("\n").slice(1)) {
    const line = parseSocketLine(raw);
    if (line !== null && line.inode !== "0") into.set(line.key, line.inode);
  }
  return into;
}

/**
 * Who owns the peer's socket: `{ uid }` when /proc/net/tcp{,6} lists the peer's end; `{ uid: null,
 * reason: "not_found" }` when those files are readable but do not (the caller fails closed);
 * `{ uid: null, reason: "unsupported" }` when they cannot be read (not Linux, /proc not mounted).
 */
export type SocketOwner = { uid: number } | { uid: null; reason: "not_found" | "unsupported" };

/** The reads of /proc/net/tcp{,6} that lookups can still join, per proc root (see `socketTables`). */
const tableReads = new Map<string, { joining: Promise<(string | null)[]> | null; inFlight: Promise<unknown> }>();

/**
 * The text of `<procRoot>/net/tcp` and `net/tcp6` (null for one that cannot be read), read after this
 * call: a connection accepted before the call is listed. Calls that arrive while a read is queued
 * share it, and a read starts only once the previous one ended, so a thousand connections arriving
 * together cost a few reads rather than a thousand (each file lists every socket of the machine:
 * about 150 bytes a line, 300 KB with a thousand agents connected).
 */
export function socketTables(procRoot: string): Promise<(string | null)[]> {
  let reads = tableReads.get(procRoot);
  if (reads === undefined) {
    reads = { joining: null, inFlight: Promise.resolve() };
    tableReads.set(procRoot, reads);
  }
  if (reads.joining !== null) return reads.joining;
  const state = reads;
  // Starts after the read in flight (which may predate the caller's connection) and after this
  // tick's callers joined; from then on, new callers queue the next read.
  const read: Promise<(string | null)[]> = state.inFlight.then(() => {
    if (state.joining === read) state.joining = null;
    return Promise.all(["net/tcp", "net/tcp6"].map((file) => readOrNull(path.join(procRoot, file))));
  });
  state.joining = read;
  state.inFlight = read.catch(() => undefined);
  return read;
}

/** Looks up the owner uid of a loopback peer's socket (see `SocketOwner`); `ends` null (socket gone) is not found. */
export async function socketOwner(ends: SocketEnds | null, procRoot = "/proc"): Promise<SocketOwner> {
  const texts = await socketTables(procRoot);
  for (const text of texts) {
    const uid = text === null || ends === null ? null : findSocketUid(text, ends);
    if (uid !== null) return { uid };
  }
  return { uid: null, reason: texts.some((t) => t !== null) ? "not_found" : "unsupported" };
}
