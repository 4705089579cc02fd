/**
 * The embedded authority serves only the user who runs it (like the Link's loopback server, DESIGN.md
 * section 3): on Linux a connection's owner is read from /proc/net/tcp(6); another user's process
 * (which could otherwise create an account here and sign the Link into it) is refused before
 * anything is served. Elsewhere the owner cannot be read; such connections are served, as before.
 */
import fs from "node:fs/promises";
import { findSocketUid, type SocketEnds } from "../shared/socket-owner.js";

/** Verdict for one connection: served, or refused with the reason. */
export type LocalUserVerdict = { allow: true } | { allow: false; message: string };

/** Whether the connection `ends` (null: the socket is already gone) belongs to this process's user. */
export async function checkLocalUser(ends: SocketEnds | null, procRoot = "/proc"): Promise<LocalUserVerdict> {
  const ownUid = typeof process.getuid === "function" ? process.getuid() : null;
  if (ownUid === null) return { allow: true };
  if (ends === null)
    return { allow: false, message: "The connection closed before the authority could tell which user owns it." };
  let readable = false;
  for (const file of ["net/tcp", "net/tcp6"]) {
    const text = await fs.readFile(`${procRoot}/${file}`, "utf8").catch(() => null);
    if (text === null) continue;
    readable = true;
    const uid = findSocketUid(text, ends);
    if (uid === ownUid) return { allow: true };
    if (uid !== null)
      return {
        allow: false,
        message: "This authority serves only the user who runs it; this connection comes from another user's process.",
      };
  }
  if (!readable) return { allow: true };
  return { allow: false, message: "The authority could not tell which user owns this connection, so it is refused." };
}
