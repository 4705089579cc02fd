/** Limits of the loopback server, with their defaults (DESIGN.md section 3). All are options of `createLink`. */
import { MAX_FRAME_BYTES } from "../../../shared/protocol.js";

export interface LinkLimits {
  /** Largest WebSocket frame; larger ones close the connection with 1009. */
  maxFrameBytes: number;
  /** Time to send `hello` (agent) or `auth` (control) after connecting. */
  handshakeTimeoutMs: number;
  /** A connection that sends nothing for this long is closed with 4001. */
  idleTimeoutMs: number;
  /** Ping interval; a connection that misses one pong is terminated. */
  heartbeatIntervalMs: number;
  /** Global ceiling of WebSocket connections, well above the 1,000 agents the Link serves. */
  maxConnections: number;
  /** Per peer process, so one misbehaving process cannot lock out the others. */
  maxConnectionsPerProcess: number;
  /** Sustained messages per second per connection. */
  messagesPerSecond: number;
  /** Messages a connection may send at once above the sustained rate. */
  messageBurst: number;
  /** Invalid frames per minute before the connection is closed with 4002. */
  maxProtocolErrors: number;
  /** Rate-limited frames per minute before the connection is closed with 4003. */
  maxRateLimitStrikes: number;
}

export const DEFAULT_LIMITS: LinkLimits = {
  maxFrameBytes: MAX_FRAME_BYTES,
  handshakeTimeoutMs: 10_000,
  idleTimeoutMs: 30 * 60_000,
  heartbeatIntervalMs: 30_000,
  maxConnections: 4096,
  maxConnectionsPerProcess: 256,
  messagesPerSecond: 50,
  messageBurst: 100,
  maxProtocolErrors: 20,
  maxRateLimitStrikes: 200,
};
