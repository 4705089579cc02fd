/**
 * The embedded authority serves only the user who runs it (like the Link's loopback server, DESIGN.md
 * section 3): on Linux a connection's owner is read from /proc/net/tcp(6); another user's process
 * (which could otherwise create an account here and sign the Link into it) is refused before
 * anything is served. Elsewhere the owner cannot be read; such connections are served, as before.
 */
import fs from "node:fs/promises";
import { findSocketUid } from "../shared/socket-owner.js";

/** Verdict for one connection: served, or refused with the reason. */
export type LocalUserVerdict = { allow: true } | { allow: false; message: string };

/** True when the connection from `peerPort` to `localPort` belongs to this process's user. */
export async function checkLocalUser(peerPort: number, localPort: number, procRoot = "/proc"): Promise<LocalUserVerdict> {
  const ownUid = typeof process.getuid === "function" ? process.getuid() : null;
  if (ownUid === null) return { allow: true };
  let readable = false;
  for (const file of ["net/tcp", "net/tcp6"]) {
    const text = await fs.readFile(`${procRoot}/${file}`, "utf8").catch(() => null);
    if (text === null) continue;
    readable = true;
    const uid = findSocketUid(text, peerPort, localPort);
    if (uid === ownUid) return { allow: true };
    if (uid !== null) return { allow: false, message: "This authority serves only the user who runs it; this connection comes from another user's process." };
  }
  if (!readable) return { allow: true };
  return { allow: false, message: "The authority could not tell which user owns this connection, so it is refused." };
}
