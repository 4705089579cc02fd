/**
 * Who is the program on the other end of a loopback connection: the process holding its socket and
 * its program identity (uid, pid + start time, executable, the script an interpreter runs, cwd,
 * terminal session and parent chain, what the interpreter was told to load, and the content hash),
 * all from the OS, never from the agent. One interface, one implementation per platform: Linux reads
 * /proc (peer-resolver-linux.ts), macOS asks `lsof` (peer-resolver-darwin.ts); elsewhere, or when
 * the process belongs to another user, the answer is `null`.
 */
import type { PeerProcess } from "../../../shared/process.js";
import type { SocketEnds } from "../../../shared/socket-owner.js";
import { createLsofPeerResolver } from "./peer-resolver-darwin.js";
import { createProcPeerResolver } from "./peer-resolver-linux.js";

export interface PeerResolver {
  /** The process on the peer's end of the connection `ends` (both endpoints, as the Link's socket names them). */
  lookup(ends: SocketEnds): Promise<PeerProcess | null>;
  /**
   * Checks an identity this resolver gave (see `recheckLinuxProcess`) before each use: the same
   * identity while nothing changed, a fresh one when the program changed, null when the process is
   * gone. Absent: identities are not re-checked (platforms without /proc).
   */
  recheck?(p: PeerProcess): Promise<PeerProcess | null>;
}

/** The resolver for this platform (see the module comment). */
export function createPeerResolver(): PeerResolver {
  if (process.platform === "linux") return createProcPeerResolver();
  if (process.platform === "darwin") return createLsofPeerResolver();
  return { lookup: () => Promise.resolve(null) };
}
