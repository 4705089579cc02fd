/**
 * What the agent protocol's `resolve` (resolver.ts) and `resolveMany` (resolve-many.ts) share: the
 * parts they read and how long they wait for the person.
 */
import type { Logger } from "pino";
import type { AuthorityClient } from "./authority-client.js";
import type { GrantCache } from "./grant-cache.js";

export interface ResolverDeps {
  /** Milliseconds since the epoch. */
  now(): number;
  log: Logger;
  /** The live authority client, or null while none is configured or connected. */
  authority(): AuthorityClient | null;
  /** This Link's instance ID, or null while nobody is signed in. */
  instanceId(): string | null;
  cache: GrantCache;
}

/** One long-poll at most this long (ms); the loop continues until the agent's own deadline. */
export const POLL_MS = 55_000;
