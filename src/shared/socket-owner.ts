/**
 * Who owns a loopback TCP connection, read from Linux's /proc/net/tcp and /proc/net/tcp6 text: the
 * uid column of the line for the peer's end. Pure text parsing, shared by the Link's loopback server
 * and the embedded authority (both serve only the user who runs them; Tailscale's local API checks the
 * peer's uid on loopback TCP the same way).
 *
 * A line is matched on both full endpoints, address and port (the kernel's socket identity), never on
 * ports alone: another user can bind the same source port on another loopback address (127.0.0.2,
 * ::1) while this user's connection is open, and a port-only match could then read this user's line
 * for the other user's connection.
 */

/** The two ends of an accepted connection, as the server's socket names them. */
export interface SocketEnds {
  /** The peer's address and port (the socket's remoteAddress / remotePort). */
  peerAddress: string;
  peerPort: number;
  /** This server's address and port on that connection (localAddress / localPort). */
  localAddress: string;
  localPort: number;
}

/** The ends of an accepted socket; null once the socket is gone (its addresses are then unknown). */
export function socketEnds(socket: {
  remoteAddress?: string | undefined;
  remotePort?: number | undefined;
  localAddress?: string | undefined;
  localPort?: number | undefined;
}): SocketEnds | null {
  const { remoteAddress, remotePort, localAddress, localPort } = socket;
  if (remoteAddress === undefined || remotePort === undefined || localAddress === undefined || localPort === undefined)
    return null;
  return { peerAddress: remoteAddress, peerPort: remotePort, localAddress, localPort };
}

const hex2 = (b: number): string => b.toString(16).toUpperCase().padStart(2, "0");

/** This machine's byte order (what os.endianness() says; shared code does not import node:os). */
const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

/**
 * /proc prints an address as 32-bit words, each in the host's byte order, as %08X (net/ipv4/tcp_ipv4.c,
 * net/ipv6/tcp_ipv6.c): 127.0.0.1 on a little-endian machine is 0100007F.
 */
function procWords(bytes: number[]): string {
  let out = "";
  for (let i = 0; i < bytes.length; i += 4) {
    const word = bytes.slice(i, i + 4);
    out += (LITTLE_ENDIAN ? word.reverse() : word).map(hex2).join("");
  }
  return out;
}

/** The 4 bytes of a dotted IPv4 address; null when it is not one. */
function ipv4Bytes(address: string): number[] | null {
  if (!/^\d{1,3}(\.\d{1,3}){3}$/.test(address)) return null;
  const bytes = address.split(".").map(Number);
  return bytes.every((b) => b <= 255) ? bytes : null;
}

/** The 16 bytes of an IPv6 address (may end in a dotted IPv4 part, may carry a %zone); null when it is not one. */
function ipv6Bytes(address: string): number[] | null {
  if (!address.includes(":")) return null;
  let text = address.split("%")[0] ?? "";
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text)?.[1];
  let tail: number[] = [];
  if (v4 !== undefined) {
    const parsed = ipv4Bytes(v4);
    if (parsed === null) return null;
    tail = parsed;
    text = text.slice(0, -v4.length);
    if (text.endsWith(":") && !text.endsWith("::")) text = text.slice(0, -1);
  }
  const groups = (part: string): number[] =>
    part === "" ? [] : part.split(":").map((g) => (/^[0-9a-fA-F]{1,4}$/.test(g) ? parseInt(g, 16) : NaN));
  const halves = text.split("::");
  if (halves.length > 2) return null;
  const [head = "", rest] = halves;
  const before = groups(head);
  const after = rest === undefined ? [] : groups(rest);
  const zeros = 8 - tail.length / 2 - before.length - after.length;
  if (zeros < 0 || (rest === undefined && zeros !== 0)) return null;
  const words = [...before, ...Array<number>(rest === undefined ? 0 : zeros).fill(0), ...after];
  if (words.some((w) => Number.isNaN(w))) return null;
  return [...words.flatMap((w) => [w >> 8, w & 0xff]), ...tail];
}

/** The IPv4 address (4 bytes) inside an IPv4-mapped IPv6 address (::ffff:a.b.c.d, RFC 4291 2.5.5.2); null for any other. */
export function mappedIPv4(bytes: readonly number[]): number[] | null {
  const mapped =
    bytes.length === 16 && bytes.slice(0, 10).every((b) => b === 0) && bytes[10] === 0xff && bytes[11] === 0xff;
  return mapped ? bytes.slice(12) : null;
}

/** The bytes of an IPv4 (4) or IPv6 (16) address in text form; null when it is neither. */
export function ipAddressBytes(address: string): number[] | null {
  return ipv4Bytes(address) ?? ipv6Bytes(address);
}

/**
 * The ways /proc can write the endpoint `address`:`port` ("0100007F:1F90"): an IPv4 address as in
 * /proc/net/tcp; an IPv6 one as in tcp6; an IPv4-mapped IPv6 address (::ffff:a.b.c.d, what a
 * dual-stack server reports for an IPv4 peer) in both forms, since the peer's own socket may be an
 * IPv4 one. Empty for a string that is not an IP address.
 */
export function procEndpointForms(address: string, port: number): string[] {
  const p = port.toString(16).toUpperCase().padStart(4, "0");
  const v4 = ipv4Bytes(address);
  if (v4 !== null) return [`${procWords(v4)}:${p}`];
  const bytes = ipv6Bytes(address);
  if (bytes === null) return [];
  const forms = [`${procWords(bytes)}:${p}`];
  const inner = mappedIPv4(bytes);
  if (inner !== null) forms.push(`${procWords(inner)}:${p}`);
  return forms;
}

/**
 * The line keys ("local remote", /proc's own hex) under which the peer's end of `ends` can appear:
 * local = the peer's endpoint, remote = this server's.
 */
export function peerLineKeys(ends: SocketEnds): string[] {
  const peer = procEndpointForms(ends.peerAddress, ends.peerPort);
  const local = procEndpointForms(ends.localAddress, ends.localPort);
  return peer.flatMap((a) => local.map((b) => `${a} ${b}`));
}

/** Splits one /proc/net/tcp line: the "local remote" key, uid and inode; null for the header or a short line. */
export function parseSocketLine(line: string): { key: string; uid: number; inode: string } | null {
  // sl, local_address, rem_address, st, tx:rx, tr:when, retrnsmt, uid, timeout, inode
  const cols = line.trim().split(/\s+/);
  const [local, remote, uidText, inode] = [cols[1], cols[2], cols[7], cols[9]];
  if (
    local === undefined ||
    remote === undefined ||
    uidText === undefined ||
    inode === undefined ||
    !/^\d+$/.test(uidText)
  )
    return null;
  return { key: `${local} ${remote}`, uid: Number(uidText), inode };
}

/** The uid column of the line for the peer's end of `ends` (see `peerLineKeys`); null when no line is there. */
export function findSocketUid(text: string, ends: SocketEnds): number | null {
  const keys = new Set(peerLineKeys(ends));
  if (keys.size === 0) return null;
  // Only lines holding the peer's port can match: find those by text, then compare whole endpoints.
  const port = `:${ends.peerPort.toString(16).toUpperCase().padStart(4, "0")} `;
  for (let at = text.indexOf(port); at >= 0; at = text.indexOf(port, at + 1)) {
    const start = text.lastIndexOf("\n", at) + 1;
    const end = text.indexOf("\n", at);
    const line = parseSocketLine(text.slice(start, end < 0 ? undefined : end));
    if (line !== null && keys.has(line.key)) return line.uid;
  }
  return null;
}
