/**
 * The "source" a client's failed guesses are counted against: its IPv4 address, or the /64 network
 * of an IPv6 one. One IPv6 host is usually given a whole /64 (RFC 6177, RFC 7421), so counting single
 * IPv6 addresses would hand one attacker 2^64 fresh budgets. An IPv4-mapped IPv6 address
 * (::ffff:a.b.c.d) counts as its IPv4 address.
 */
import { ipAddressBytes, mappedIPv4 } from "../shared/socket-owner.js";

/** `address` as a throttling key: "192.0.2.7", or "2001:db8:0:1::/64"; text that is not an IP address is kept as it is. */
export function clientSource(address: string): string {
  const bytes = ipAddressBytes(address);
  if (bytes === null || bytes.length === 4) return address;
  const v4 = mappedIPv4(bytes);
  if (v4 !== null) return v4.join(".");
  const hextets = [0, 2, 4, 6].map((i) => (((bytes[i] ?? 0) << 8) | (bytes[i + 1] ?? 0)).toString(16));
  return `${hextets.join(":")}::/64`;
}
