/**
 * The Link's sign-in to its authority: a refresh token in the keychain, a short-lived access token
 * in memory, refreshed on demand (one refresh at a time; the authority rotates the refresh token
 * and the new one replaces the old in the keychain). An expired or revoked refresh token becomes a
 * clear "sign in again" state, never a crash: the refused token stays in the keychain as the marker
 * of that state until the person signs in again or logs out. Only a Link that was never signed in
 * with OAuth uses the locally provisioned token of the embedded authority — never as a silent
 * fallback for an ended sign-in, which would switch accounts.
 */
import type { Logger } from "pino";
import { LinkError } from "../../../shared/errors.js";
import { LINK_CLIENT_ID, type TokenResponse } from "../../../shared/authority.js";
import { AuthorityCallError, type AuthorityClient, type Credentials } from "../authority/authority-client.js";
import type { KeychainStore } from "../runtime/keychain.js";

export const SIGN_IN_AGAIN = "Your sign-in expired or was revoked. Sign in again with `piper-link login`.";

export interface SignInSession extends Credentials {
  /** Stores a fresh sign-in (refresh token to the keychain). */
  accept(tokens: TokenResponse): Promise<void>;
  /** Revokes the session at the authority (best effort) and forgets it. */
  signOut(): Promise<void>;
  setLocalToken(token: string | null): void;
  hasOAuth(): Promise<boolean>;
  /** Drops every token held in memory (the vault locked); the next call reads the keychain again. */
  forget(): void;
  /**
   * Trades the stored refresh token for a new one now, so a copy taken before the vault sealed it is
   * worthless (refresh tokens rotate, and the authority ends the whole sign-in when a used one comes back).
   * Resolves false when there is no OAuth sign-in.
   */
  rotate(): Promise<boolean>;
  readonly error: string | null;
}

export function createSignInSession(options: {
  keychain: KeychainStore;
  client: () => AuthorityClient | null;
  log: Logger;
  now: () => number;
}): SignInSession {
  const { keychain, log, now } = options;
  let access: { token: string; expiresAt: number } | null = null;
  let refreshing: Promise<string | null> | null = null;
  let localToken: string | null = null;
  let error: string | null = null;
  /** A refresh token the authority refused; not tried again. */
  let dead: string | null = null;
  /**
   * The refresh token as stored in the keychain, read once (undefined: not read yet). Every change
   * goes through this session while the Link runs, so the keychain is not asked on every call to the
   * authority — under load that would be thousands of D-Bus round trips a second.
   */
  let stored: string | null | undefined;
  let loading: Promise<string | null> | null = null;

  function storedRefreshToken(): Promise<string | null> {
    if (stored !== undefined) return Promise.resolve(stored);
    loading ??= keychain
      .get("refresh-token")
      .then((value) => (stored = value))
      .finally(() => {
        loading = null;
      });
    return loading;
  }

  async function store(value: string | null): Promise<void> {
    if (value === null) await keychain.delete("refresh-token");
    else await keychain.set("refresh-token", value);
    stored = value;
  }

  async function refresh(refreshToken: string): Promise<string | null> {
    const client = options.client();
    if (client === null) return null;
    try {
      const tokens = await client.oauthToken({
        grant_type: "refresh_token",
        refresh_token: refreshToken,
        client_id: LINK_CLIENT_ID,
      });
      await store(tokens.refresh_token);
      access = { token: tokens.access_token, expiresAt: now() + tokens.expires_in * 1000 };
      error = null;
      return tokens.access_token;
    } catch (err) {
      if (
        err instanceof AuthorityCallError &&
        (err.authorityCode === "invalid_grant" || err.authorityCode === "invalid_client")
      ) {
        log.warn({ reason: err.message }, "refresh token refused; signed out");
        error = SIGN_IN_AGAIN;
        dead = refreshToken;
        return null;
      }
      throw err;
    }
  }

  return {
    async bearer() {
      if (access !== null && access.expiresAt - 30_000 > now()) return access.token;
      const token = await storedRefreshToken();
      if (token === null) return localToken;
      if (token === dead) return null;
      refreshing ??= refresh(token).finally(() => {
        refreshing = null;
      });
      return refreshing;
    },
    rejected(token) {
      if (access?.token === token) access = null;
    },
    async accept(tokens) {
      await store(tokens.refresh_token);
      dead = null;
      access = { token: tokens.access_token, expiresAt: now() + tokens.expires_in * 1000 };
      error = null;
    },
    async signOut() {
      const token = await storedRefreshToken();
      access = null;
      if (token !== null) {
        await options
          .client()
          ?.revokeToken(token)
          .catch((err: unknown) =>
            log.warn({ err: String(err) }, "could not revoke the refresh token at the authority"),
          );
      }
      await store(null);
      dead = null;
      error = null;
    },
    setLocalToken(token) {
      localToken = token;
    },
    forget() {
      access = null;
      refreshing = null;
      stored = undefined;
      localToken = null;
      dead = null;
    },
    async rotate() {
      const token = await storedRefreshToken();
      if (token === null) return false;
      access = null;
      return (await refresh(token)) !== null;
    },
    async hasOAuth() {
      return (await storedRefreshToken()) !== null;
    },
    get error() {
      return error;
    },
  };
}

export { LinkError };
