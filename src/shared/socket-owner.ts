/**
 * Who owns a loopback TCP connection, read from Linux's /proc/net/tcp and /proc/net/tcp6 text: the
 * uid column of the peer's end. Pure text parsing, shared by the Link's loopback server and the
 * embedded authority (both serve only the user who runs them; Tailscale's local API checks the peer's
 * uid on loopback TCP the same way).
 */

/**
 * Finds the uid column of the line whose local port is `peerPort` and remote port `linkPort` (the
 * peer's end of the connection), scanning the text for the port rather than splitting every line.
 * Null when no such line is there.
 */
export function findSocketUid(text: string, peerPort: number, linkPort: number): number | null {
  const local = `:${peerPort.toString(16).toUpperCase().padStart(4, "0")} `;
  const remote = `:${linkPort.toString(16).toUpperCase().padStart(4, "0")} `;
  for (let at = text.indexOf(local); at >= 0; at = text.indexOf(local, at + 1)) {
    const start = text.lastIndexOf("\n", at) + 1;
    const endAt = text.indexOf("\n", at);
    const cols = text.slice(start, endAt < 0 ? undefined : endAt).trim().split(/\s+/);
    // sl, local_address, rem_address, st, tx:rx, tr:when, retrnsmt, uid, timeout, inode
    if (cols[1]?.endsWith(local.trimEnd()) && cols[2]?.endsWith(remote.trimEnd())) {
      const uid = Number(cols[7]);
      if (Number.isInteger(uid)) return uid;
    }
  }
  return null;
}
