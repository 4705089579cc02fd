/**
 * The Link's live connection to its authority: the current client, its event stream, and whether
 * revocations can be heard. Reconnecting (a new endpoint after the embedded authority restarted, or
 * the same endpoint after the account changed) replaces the client and its stream; the grant cache
 * answers from memory only while the stream is up, because only then does it hear revocations.
 */
import type { Logger } from "pino";
import { LinkError } from "../../../shared/errors.js";
import type { AuthorityEvent } from "../../../shared/authority.js";
import { createAuthorityClient, type AuthorityClient, type Credentials } from "./authority-client.js";
import type { GrantCache } from "./grant-cache.js";

/** Where the authority is: its URL, the pinned certificate fingerprint (embedded) or a private CA (remote). */
export interface AuthorityEndpoint {
  url: string;
  pin: string | null;
  ca: string | null;
}

export interface AuthorityConnection {
  /** The current client, or null before the first `connect` (no authority configured). */
  readonly client: AuthorityClient | null;
  /** Where the current client connects (null before the first `connect`). */
  readonly endpoint: AuthorityEndpoint | null;
  /** Is the event stream up, and the last error seen (a sentence) if not. */
  readonly state: { connected: boolean; error: string | null };
  /** The current client; throws `authority_unavailable` when no authority is configured. */
  require(): AuthorityClient;
  /** Connects to `endpoint`, replacing any earlier client and stream. */
  connect(endpoint: AuthorityEndpoint): void;
  /** Connects again to the same endpoint: the stream is bound to the account that opened it. */
  reconnect(): void;
  close(): void;
  /** Closes and forgets the authority (the vault locked): `client` is null until the next `connect`. */
  disconnect(): void;
}

export interface AuthorityConnectionDeps {
  credentials: Credentials;
  cache: GrantCache;
  log: Logger;
  /** Every authority event, after the cache has dropped what it invalidates. */
  onEvent(event: AuthorityEvent): void;
  /** The stream went up or down. */
  onConnectionChange(): void;
}

export function createAuthorityConnection(deps: AuthorityConnectionDeps): AuthorityConnection {
  const { cache, log } = deps;
  let client: AuthorityClient | null = null;
  let endpoint: AuthorityEndpoint | null = null;
  let state: { connected: boolean; error: string | null } = { connected: false, error: null };
  let unfollow: () => void = () => undefined;

  function close(): void {
    unfollow();
    unfollow = () => undefined;
    client?.close();
  }

  function connect(next: AuthorityEndpoint): void {
    endpoint = next;
    cache.clear("authority connection");
    close();
    const created = createAuthorityClient({
      url: next.url,
      pin: next.pin,
      ca: next.ca,
      credentials: deps.credentials,
      log: (msg, fields) => log.warn(fields, msg),
    });
    client = created;
    unfollow = created.follow(
      (event) => {
        if (event.type === "grant.changed" || event.type === "secret.changed") cache.clear(event.type);
        deps.onEvent(event);
      },
      (connected, error) => {
        cache.setEnabled(connected);
        const changed = connected !== state.connected;
        state = { connected, error };
        if (changed) {
          log.info({ connected, error }, "authority connection");
          deps.onConnectionChange();
        }
      },
    );
  }

  return {
    get client() {
      return client;
    },
    get state() {
      return state;
    },
    get endpoint() {
      return endpoint;
    },
    require() {
      if (client === null) throw new LinkError("authority_unavailable", "This Piper Link has no authority configured.");
      return client;
    },
    connect,
    reconnect() {
      if (endpoint !== null) connect(endpoint);
    },
    close,
    disconnect() {
      close();
      client = null;
      endpoint = null;
      cache.setEnabled(false);
      cache.clear("disconnected");
      if (state.connected) {
        state = { connected: false, error: null };
        deps.onConnectionChange();
      }
    },
  };
}
