/**
 * Only this user's processes (issue 13 item 2, DESIGN.md section 3): loopback is shared by every
 * account on the machine, so a request or WebSocket upgrade from a socket owned by another uid is
 * refused before anything is served. Tailscale's local API makes the same check on loopback TCP.
 * This module is the pure decision; `socketOwner` (socket-table-linux.ts) finds the owner.
 */
import type { ErrorCode } from "../../../shared/errors.js";
import type { PeerProcess } from "../../../shared/process.js";
import type { SocketOwner } from "./socket-table-linux.js";

/** A refused connection: the HTTP status, code and sentence the loopback servers answer with. */
export interface UserRejection {
  status: 403;
  code: Extract<ErrorCode, "foreign_user">;
  message: string;
}

/**
 * The verdict on one connection: `allow` (owner verified, or unverifiable on this platform, in
 * which case `unverified` asks the caller to log it once) or a rejection to send.
 */
export type PeerUserVerdict = { allow: true; unverified: boolean } | { allow: false; rejection: UserRejection };

/**
 * Decides whether a connection whose socket is owned by `owner` may be served by a Link running as
 * `ownUid` (null: the platform has no uids, e.g. Windows). Rules:
 * - the owner's uid equals ours: allow;
 * - another uid: 403 `foreign_user`;
 * - /proc lists no such socket although it is readable (Linux): refuse too, because the owner cannot
 *   be shown to be us (fail closed; a live connection is always listed, so this is not expected);
 * - the owner cannot be determined at all (not Linux, /proc missing) or we have no uid: allow,
 *   marked unverified so the server logs it once.
 */
export function checkPeerUser(owner: SocketOwner, ownUid: number | null): PeerUserVerdict {
  if (ownUid === null) return { allow: true, unverified: true };
  if (owner.uid === null) {
    if (owner.reason === "unsupported") return { allow: true, unverified: true };
    return {
      allow: false,
      rejection: foreignUser("Piper Link could not tell which user owns this connection, so it is refused."),
    };
  }
  if (owner.uid === ownUid) return { allow: true, unverified: false };
  return {
    allow: false,
    rejection: foreignUser(
      "This Piper Link serves only the user who runs it; this connection comes from another user's process.",
    ),
  };
}

/**
 * True when the process found holding an admitted connection (peer-resolver.ts) belongs to another
 * uid than `ownUid`. The owner check admits by the socket's uid; this second check keeps a grant
 * from ever binding to another user's program. Unknown uids (no process found, no uids here) are
 * not foreign: the owner check already decided those.
 */
export function isForeignProcess(process: Pick<PeerProcess, "uid"> | null, ownUid: number | null): boolean {
  return process !== null && process.uid !== null && ownUid !== null && process.uid !== ownUid;
}

function foreignUser(message: string): UserRejection {
  return { status: 403, code: "foreign_user", message };
}
