/**
 * Accounts and OAuth 2.0 for the Link (DESIGN.md section 5): passwords hashed with scrypt (Node's
 * built-in memory-hard KDF), web sessions, brute-force throttling, the authorization-code grant
 * with PKCE (S256 only) for the public `piper-link` client and loopback redirect URIs on any port
 * (RFC 8252), the device authorization grant (RFC 8628), refresh-token rotation with reuse
 * detection, and revocation (RFC 7009).
 *
 * Tokens are opaque random strings stored as SHA-256 hashes, not JWTs: every Link API call already
 * looks the user up in the database, so opaque tokens cost nothing extra, need no signing keys,
 * and revocation (sign-out, reuse detection) takes effect at once.
 */
import { createHash, randomBytes, randomInt, scrypt as scryptCb, timingSafeEqual } from "node:crypto";
import { promisify } from "node:util";
import type { Kysely } from "kysely";
import type { DeviceAuthorization, TokenResponse } from "../shared/authority.js";
/** Re-exported for the server's callers; defined once in the shared contract. */
export { LINK_CLIENT_ID } from "../shared/authority.js";
import { clientSource } from "./client-source.js";
import type { Database } from "./db.js";
import { tokenHasher, type DataKeys } from "./crypto.js";
import { newId, newToken } from "./ids.js";
import { createRowMacs } from "./service/row-macs.js";
import { ServiceError } from "./service/errors.js";

const scrypt = promisify(scryptCb) as (
  password: string,
  salt: Buffer,
  keylen: number,
  options: { N: number; r: number; p: number; maxmem: number },
) => Promise<Buffer>;

const SCRYPT = { N: 2 ** 15, r: 8, p: 1, maxmem: 64 * 1024 * 1024 };

export async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(16);
  const key = await scrypt(password, salt, 32, SCRYPT);
  return `scrypt$${SCRYPT.N}$${SCRYPT.r}$${SCRYPT.p}$${salt.toString("base64")}$${key.toString("base64")}`;
}

export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const [kind, n, r, p, salt, key] = stored.split("$");
  if (kind !== "scrypt" || !n || !r || !p || !salt || !key) return false;
  const expected = Buffer.from(key, "base64");
  const actual = await scrypt(password, Buffer.from(salt, "base64"), expected.length, {
    N: Number(n),
    r: Number(r),
    p: Number(p),
    maxmem: SCRYPT.maxmem,
  });
  return timingSafeEqual(actual, expected);
}

/** RFC 8252 section 7.3: http on a loopback host, any port. */
export function isLoopbackRedirect(uri: string): boolean {
  try {
    const u = new URL(uri);
    return (
      u.protocol === "http:" &&
      ["127.0.0.1", "[::1]", "localhost"].includes(u.hostname) &&
      u.port !== "" &&
      u.hash === "" &&
      u.username === ""
    );
  } catch {
    return false;
  }
}

export function pkceChallenge(verifier: string): string {
  return createHash("sha256").update(verifier).digest("base64url");
}

/**
 * Sign-in throttling (see `signIn`), per 15-minute window: failures for one account from one client
 * source before that pair is slowed to one checked attempt per `slowedIntervalMs` (only one once the
 * account has `perAccount` failures from all sources), and failures from one source (any accounts)
 * before its wrong passwords are answered 429.
 */
export const SIGN_IN_LIMITS = {
  windowMs: 15 * 60_000,
  perAccountAddress: 5,
  slowedIntervalMs: 60_000,
  perAddress: 20,
  perAccount: 30,
} as const;
/**
 * Device user-code entry (see `approveDevice`), per 15-minute window: wrong codes per session and per
 * account before that account is slowed to one checked entry per `slowedIntervalMs`, and wrong codes
 * from one address before every account that has failed from there is slowed the same way.
 */
export const DEVICE_LIMITS = {
  windowMs: 15 * 60_000,
  perSession: 5,
  perAccount: 10,
  perAddress: 20,
  slowedIntervalMs: 60_000,
} as const;

type FailureKind = "sign_in" | "device_code";

/**
 * Failed sign-ins and code entries in the `auth_failures` table, shared by all authority processes
 * on one database. Rows older than `keepMs` are deleted as new ones are added.
 */
function createFailureLog(db: Kysely<Database>, now: () => number, keepMs: number) {
  return {
    /** Failures of `kind` whose `column` equals `value`, since `since` (epoch ms). */
    count: async (
      kind: FailureKind,
      column: "account" | "address" | "session",
      value: string,
      since: number,
    ): Promise<number> => {
      const row = await db
        .selectFrom("auth_failures")
        .select((eb) => eb.fn.countAll<number>().as("n"))
        .where("kind", "=", kind)
        .where(column, "=", value)
        .where("at", ">", since)
        .executeTakeFirstOrThrow();
      return row.n;
    },
    /** Records a failure (or an attempt not yet known to have failed); returns its row id. */
    add: async (f: {
      kind: FailureKind;
      account: string | null;
      address: string;
      session: string | null;
    }): Promise<string> => {
      const t = now();
      const id = newId("af");
      await db
        .insertInto("auth_failures")
        .values({ id, ...f, at: t })
        .execute();
      await db
        .deleteFrom("auth_failures")
        .where("at", "<=", t - keepMs)
        .execute();
      return id;
    },
    remove: async (id: string): Promise<void> => {
      await db.deleteFrom("auth_failures").where("id", "=", id).execute();
    },
    /**
     * Rows of `kind` matching every given column since `since`, other than row `except`: how many,
     * and when the latest was (epoch ms; 0 when none).
     */
    recent: async (
      kind: FailureKind,
      match: { account?: string; address?: string; session?: string },
      since: number,
      except: string,
    ): Promise<{ count: number; latest: number }> => {
      let q = db
        .selectFrom("auth_failures")
        .select((eb) => [eb.fn.countAll<number>().as("n"), eb.fn.max<number | null>("at").as("latest")])
        .where("kind", "=", kind)
        .where("at", ">", since)
        .where("id", "!=", except);
      if (match.account !== undefined) q = q.where("account", "=", match.account);
      if (match.address !== undefined) q = q.where("address", "=", match.address);
      if (match.session !== undefined) q = q.where("session", "=", match.session);
      const row = await q.executeTakeFirstOrThrow();
      return { count: row.n, latest: row.latest ?? 0 };
    },
    clearPair: async (kind: FailureKind, account: string, address: string): Promise<void> => {
      await db
        .deleteFrom("auth_failures")
        .where("kind", "=", kind)
        .where("account", "=", account)
        .where("address", "=", address)
        .execute();
    },
  };
}

export interface OAuthOptions {
  db: Kysely<Database>;
  /** The data keys: tokens, codes and sessions are stored as keyed hashes, token rows carry MACs (row-macs.ts). */
  keys: DataKeys;
  /** Where token rows refused for a missing or wrong MAC are reported (default: nowhere). */
  log?: (msg: string, fields?: Record<string, unknown>) => void;
  now?: () => number;
  accessTtlMs?: number;
  refreshTtlMs?: number;
  deviceIntervalS?: number;
}

export type OAuthService = ReturnType<typeof createOAuthService>;

export function createOAuthService(options: OAuthOptions) {
  const { db } = options;
  const now = options.now ?? Date.now;
  const accessTtl = options.accessTtlMs ?? 15 * 60_000;
  const refreshTtl = options.refreshTtlMs ?? 90 * 24 * 3600_000;
  const deviceInterval = options.deviceIntervalS ?? 5;
  const failures = createFailureLog(db, now, Math.max(SIGN_IN_LIMITS.windowMs, DEVICE_LIMITS.windowMs));
  const hashes = tokenHasher(options.keys);
  const macs = createRowMacs(options.keys, (table, id) =>
    options.log?.("tampering: a row without a valid MAC was refused (treated as absent)", { table, id }),
  );
  /** A token row as stored: keyed hash and MAC. */
  const tokenRow = (
    token: string,
    row: {
      kind: "access" | "refresh";
      user_id: string;
      client_id: string;
      family_id: string;
      created_at: number;
      expires_at: number;
    },
  ) => {
    const token_hash = hashes.of(token);
    return { ...row, token_hash, used_at: null, revoked_at: null, mac: macs.oauthToken.mac({ ...row, token_hash }) };
  };

  const invalidGrant = (why: string): ServiceError => new ServiceError(400, "invalid_grant", why);

  async function issueTokens(userId: string, clientId: string, familyId: string): Promise<TokenResponse> {
    const access = newToken("pat");
    const refresh = newToken("prt");
    const t = now();
    await db
      .insertInto("oauth_tokens")
      .values([
        tokenRow(access, {
          kind: "access",
          user_id: userId,
          client_id: clientId,
          family_id: familyId,
          created_at: t,
          expires_at: t + accessTtl,
        }),
        tokenRow(refresh, {
          kind: "refresh",
          user_id: userId,
          client_id: clientId,
          family_id: familyId,
          created_at: t,
          expires_at: t + refreshTtl,
        }),
      ])
      .execute();
    return {
      access_token: access,
      token_type: "Bearer",
      expires_in: Math.floor(accessTtl / 1000),
      refresh_token: refresh,
    };
  }

  async function revokeFamily(familyId: string): Promise<void> {
    await db
      .updateTable("oauth_tokens")
      .set({ revoked_at: now() })
      .where("family_id", "=", familyId)
      .where("revoked_at", "is", null)
      .execute();
  }

  const oauth = {
    async accountCount(): Promise<number> {
      const row = await db
        .selectFrom("users")
        .select((eb) => eb.fn.countAll<number>().as("n"))
        .where("email", "is not", null)
        .executeTakeFirstOrThrow();
      return row.n;
    },

    async signUp(email: string, password: string, name: string): Promise<string> {
      const normalized = email.trim().toLowerCase();
      if (!/^[^\s@]+@[^\s@]+$/.test(normalized))
        throw new ServiceError(400, "invalid_request", "Enter a valid email address.");
      if (password.length < 10)
        throw new ServiceError(400, "invalid_request", "Use a password of at least 10 characters.");
      const exists = await db.selectFrom("users").select("id").where("email", "=", normalized).executeTakeFirst();
      if (exists)
        throw new ServiceError(409, "account_exists", "There is already an account with this email. Sign in instead.");
      const id = newId("usr");
      await db
        .insertInto("users")
        .values({
          id,
          display_name: name.trim() || normalized,
          created_at: now(),
          email: normalized,
          password_hash: await hashPassword(password),
        })
        .execute();
      return id;
    },

    /**
     * Checks a password (issue 16 item 14). Attempts and failures are rows in the shared database, so
     * every authority process on one PostgreSQL sees the same counts. A lock anyone can trigger for
     * any email would let one stranger lock a whole team out, so the limits follow OWASP's
     * authentication cheat sheet ("an attacker can lock out accounts"): they slow the *source* that
     * keeps failing, never the account for everyone. A source is an IPv4 address or an IPv6 /64
     * (`clientSource`). The rule, per 15-minute window:
     *
     * - One account from one source: after 5 failures, that source may try that account once a
     *   minute; sooner attempts are refused (429 `too_many_attempts`) before the password is checked,
     *   so a refusal says nothing about the password (no oracle). A source that has never failed for
     *   the account is always checked: the person, elsewhere, signs in whatever a stranger does.
     * - One account from everywhere: once the account has 30 failures from all sources (guessing
     *   spread over many addresses), a source that has failed for it once is slowed the same way;
     *   a source with no failure for it is still checked.
     * - One source, any accounts: after 20 failures, wrong passwords from it are answered 429 too,
     *   but the password is still checked and a correct one signs in (many people share an address:
     *   NAT, an office, a VPN).
     *
     * The attempt is recorded *before* the password is checked and counted as a failure until it
     * proves right, so attempts sent in parallel see each other: a burst cannot slip several checks
     * through the one-a-minute slot. A correct password removes that source's failures for the
     * account (no other source's). `client` is the address the server saw (behind a proxy, the one
     * it forwarded: `--trust-proxy`). Throws 401 `invalid_credentials` or 429 `too_many_attempts`.
     */
    async signIn(email: string, password: string, client: string): Promise<string> {
      const normalized = email.trim().toLowerCase();
      const source = clientSource(client);
      const since = now() - SIGN_IN_LIMITS.windowMs;
      const attempt = await failures.add({ kind: "sign_in", account: normalized, address: source, session: null });
      const before = await failures.recent("sign_in", { account: normalized, address: source }, since, attempt);
      const spread = (await failures.count("sign_in", "account", normalized, since)) > SIGN_IN_LIMITS.perAccount;
      const allowance = spread ? 1 : SIGN_IN_LIMITS.perAccountAddress;
      if (before.count >= allowance && now() - before.latest < SIGN_IN_LIMITS.slowedIntervalMs) {
        // Not checked, so not a failure: only checked attempts renew the wait.
        await failures.remove(attempt);
        throw new ServiceError(
          429,
          "too_many_attempts",
          "Too many failed sign-ins for this account from this network. One attempt a minute is allowed from here; if you did not make them, someone sharing your network may be guessing, so sign in from another network.",
        );
      }
      const user = await db
        .selectFrom("users")
        .select(["id", "password_hash"])
        .where("email", "=", normalized)
        .executeTakeFirst();
      // An unknown email costs the same hashing time as a known one (no account enumeration by timing).
      const ok = user?.password_hash
        ? await verifyPassword(password, user.password_hash)
        : (await hashPassword(password), false);
      if (!ok || !user) {
        // This attempt's row stays: it is the failure.
        if ((await failures.count("sign_in", "address", source, since)) >= SIGN_IN_LIMITS.perAddress) {
          throw new ServiceError(
            429,
            "too_many_attempts",
            "Too many failed sign-ins from this network. Wait 15 minutes and try again.",
          );
        }
        throw new ServiceError(401, "invalid_credentials", "Wrong email or password.");
      }
      await failures.clearPair("sign_in", normalized, source);
      return user.id;
    },

    /**
     * A proof of presence for a team authority (presence.ts): is `password` the password of account
     * `userId`? Checked and throttled exactly as a sign-in from `client` (see `signIn`: the same
     * failures per account and source). False for a wrong password or an account without one (a
     * token-only local user); 429 `too_many_attempts` when throttled.
     */
    async checkPassword(userId: string, password: string, client: string): Promise<boolean> {
      const row = await db.selectFrom("users").select("email").where("id", "=", userId).executeTakeFirst();
      if (row?.email === null || row?.email === undefined) return false;
      try {
        await oauth.signIn(row.email, password, client);
        return true;
      } catch (err) {
        if (err instanceof ServiceError && err.status === 401) return false;
        throw err;
      }
    },

    async createSession(userId: string): Promise<{ id: string; csrf: string }> {
      const id = newToken("pws");
      const csrf = randomBytes(24).toString("base64url");
      await db
        .insertInto("web_sessions")
        .values({ id_hash: hashes.of(id), user_id: userId, csrf, created_at: now(), expires_at: now() + 12 * 3600_000 })
        .execute();
      return { id, csrf };
    },

    async session(id: string | undefined): Promise<{ userId: string; csrf: string } | null> {
      if (!id) return null;
      const row = await db
        .selectFrom("web_sessions")
        .select(["user_id", "csrf", "expires_at"])
        .where("id_hash", "in", hashes.lookup(id))
        .executeTakeFirst();
      return row && row.expires_at > now() ? { userId: row.user_id, csrf: row.csrf } : null;
    },

    async createCode(userId: string, clientId: string, redirectUri: string, codeChallenge: string): Promise<string> {
      const code = newToken("pac");
      await db
        .insertInto("oauth_codes")
        .values({
          code_hash: hashes.of(code),
          user_id: userId,
          client_id: clientId,
          redirect_uri: redirectUri,
          code_challenge: codeChallenge,
          created_at: now(),
          expires_at: now() + 60_000,
          used_at: null,
          family_id: newId("fam"),
        })
        .execute();
      return code;
    },

    async exchangeCode(params: {
      code: string;
      clientId: string;
      redirectUri: string;
      codeVerifier: string;
    }): Promise<TokenResponse> {
      const row = await db
        .selectFrom("oauth_codes")
        .selectAll()
        .where("code_hash", "in", hashes.lookup(params.code))
        .executeTakeFirst();
      if (row === undefined) throw invalidGrant("Unknown authorization code.");
      // Single use: claim it atomically; a replay also revokes what the first use issued (RFC 6749 4.1.2).
      const claim = await db
        .updateTable("oauth_codes")
        .set({ used_at: now() })
        .where("code_hash", "=", row.code_hash)
        .where("used_at", "is", null)
        .executeTakeFirst();
      if (Number(claim.numUpdatedRows) !== 1) {
        await revokeFamily(row.family_id);
        throw invalidGrant("This authorization code was already used.");
      }
      if (row.expires_at <= now()) throw invalidGrant("The authorization code expired.");
      if (row.client_id !== params.clientId) throw invalidGrant("The code was issued to another client.");
      if (row.redirect_uri !== params.redirectUri)
        throw invalidGrant("redirect_uri does not match the authorization request.");
      if (
        !/^[A-Za-z0-9._~-]{43,128}$/.test(params.codeVerifier) ||
        pkceChallenge(params.codeVerifier) !== row.code_challenge
      )
        throw invalidGrant("PKCE verification failed.");
      return issueTokens(row.user_id, row.client_id, row.family_id);
    },

    async refresh(refreshToken: string, clientId: string): Promise<TokenResponse> {
      const row = await db
        .selectFrom("oauth_tokens")
        .selectAll()
        .where("token_hash", "in", hashes.lookup(refreshToken))
        .where("kind", "=", "refresh")
        .executeTakeFirst();
      if (row === undefined || row.client_id !== clientId || !macs.oauthToken.valid(row))
        throw invalidGrant("Unknown refresh token.");
      if (row.revoked_at !== null) throw invalidGrant("This refresh token was revoked. Sign in again.");
      const claim = await db
        .updateTable("oauth_tokens")
        .set({ used_at: now() })
        .where("token_hash", "=", row.token_hash)
        .where("used_at", "is", null)
        .executeTakeFirst();
      if (Number(claim.numUpdatedRows) !== 1) {
        // A rotated refresh token came back: someone holds a copy. End the whole session family.
        await revokeFamily(row.family_id);
        throw invalidGrant("This refresh token was already used; the session has been revoked. Sign in again.");
      }
      if (row.expires_at <= now()) throw invalidGrant("The refresh token expired. Sign in again.");
      return issueTokens(row.user_id, row.client_id, row.family_id);
    },

    /** RFC 7009: revoking a refresh token ends its family (and so its access tokens). */
    async revoke(token: string): Promise<void> {
      const row = await db
        .selectFrom("oauth_tokens")
        .select(["family_id", "kind"])
        .where("token_hash", "in", hashes.lookup(token))
        .executeTakeFirst();
      if (row === undefined) return;
      if (row.kind === "refresh") await revokeFamily(row.family_id);
      else
        await db
          .updateTable("oauth_tokens")
          .set({ revoked_at: now() })
          .where("token_hash", "in", hashes.lookup(token))
          .execute();
    },

    async userForAccessToken(token: string): Promise<string | null> {
      const row = await db
        .selectFrom("oauth_tokens")
        .select(["token_hash", "kind", "user_id", "client_id", "family_id", "expires_at", "revoked_at", "mac"])
        .where("token_hash", "in", hashes.lookup(token))
        .where("kind", "=", "access")
        .executeTakeFirst();
      return row && row.revoked_at === null && row.expires_at > now() && macs.oauthToken.valid(row)
        ? row.user_id
        : null;
    },

    async deviceAuthorization(
      clientId: string,
    ): Promise<Omit<DeviceAuthorization, "verification_uri" | "verification_uri_complete">> {
      const deviceCode = newToken("pdc");
      // Eight letters from an alphabet without look-alikes, shown as XXXX-XXXX.
      const alphabet = "BCDFGHJKLMNPQRSTVWXZ";
      const raw = Array.from({ length: 8 }, () => alphabet[randomInt(alphabet.length)]).join("");
      const userCode = `${raw.slice(0, 4)}-${raw.slice(4)}`;
      await db
        .insertInto("device_codes")
        .values({
          device_code_hash: hashes.of(deviceCode),
          user_code: userCode,
          client_id: clientId,
          user_id: null,
          status: "pending",
          created_at: now(),
          expires_at: now() + 10 * 60_000,
          interval_s: deviceInterval,
          last_poll_at: null,
        })
        .execute();
      return { device_code: deviceCode, user_code: userCode, expires_in: 600, interval: deviceInterval };
    },

    /**
     * Binds a pending device code to the signed-in user (RFC 8628 section 3.3). User codes are
     * short, so entry is rate-limited (RFC 8628 section 5.1), by the rule sign-in follows (see
     * `signIn`): slow the one who keeps guessing, never lock the person out. Everyone who enters a
     * code is signed in, so the guesser is an account. Per 15-minute window, counted in the shared
     * database:
     *
     * - An account with 5 wrong codes in one web session, or 10 in all, may enter one code a minute;
     *   sooner entries are refused (429 `too_many_attempts`) before the code is looked at, so a
     *   refusal says nothing about the code.
     * - An address with 20 wrong codes (any accounts: one guesser with several accounts behind a
     *   NAT) slows the same way every account that has entered a wrong code from it; an account
     *   that has not is checked as usual, so the person sharing the address connects their Link.
     *
     * As in `signIn`, the entry is recorded before the code is checked and counted as a failure
     * until it proves right, so entries sent in parallel see each other. `client.session` is the raw
     * session cookie (stored hashed) and `client.address` the address the server saw. Throws 400
     * `invalid_user_code` or 429.
     */
    async approveDevice(userId: string, userCode: string, client: { session: string; address: string }): Promise<void> {
      const since = now() - DEVICE_LIMITS.windowMs;
      const session = hashes.of(client.session);
      const source = clientSource(client.address);
      const attempt = await failures.add({ kind: "device_code", account: userId, address: source, session });
      const account = await failures.recent("device_code", { account: userId }, since, attempt);
      const slowed =
        (await failures.recent("device_code", { session }, since, attempt)).count >= DEVICE_LIMITS.perSession ||
        account.count >= DEVICE_LIMITS.perAccount ||
        ((await failures.recent("device_code", { address: source }, since, attempt)).count >=
          DEVICE_LIMITS.perAddress &&
          (await failures.recent("device_code", { account: userId, address: source }, since, attempt)).count > 0);
      if (slowed && now() - account.latest < DEVICE_LIMITS.slowedIntervalMs) {
        // Not checked, so not a failure: only checked entries renew the wait.
        await failures.remove(attempt);
        throw new ServiceError(
          429,
          "too_many_attempts",
          "Too many wrong codes were entered from this account. One code a minute is allowed: wait a minute, then enter the code your terminal shows.",
        );
      }
      const normalized = userCode
        .trim()
        .toUpperCase()
        .replace(/[^A-Z]/g, "");
      const code = `${normalized.slice(0, 4)}-${normalized.slice(4)}`;
      const r = await db
        .updateTable("device_codes")
        .set({ status: "approved", user_id: userId })
        .where("user_code", "=", code)
        .where("status", "=", "pending")
        .where("expires_at", ">", now())
        .executeTakeFirst();
      if (Number(r.numUpdatedRows) !== 1) {
        // This entry's row stays: it is the failure.
        throw new ServiceError(
          400,
          "invalid_user_code",
          "That code is not valid or has expired. Check the code in your terminal.",
        );
      }
      await failures.remove(attempt);
    },

    async pollDevice(deviceCode: string, clientId: string): Promise<TokenResponse> {
      const row = await db
        .selectFrom("device_codes")
        .selectAll()
        .where("device_code_hash", "in", hashes.lookup(deviceCode))
        .executeTakeFirst();
      if (row === undefined || row.client_id !== clientId) throw invalidGrant("Unknown device code.");
      const t = now();
      if (row.expires_at <= t) throw new ServiceError(400, "expired_token", "The device code expired. Start again.");
      if (row.status === "used") throw invalidGrant("This device code was already used.");
      if (row.status === "denied") throw new ServiceError(400, "access_denied", "The request was denied.");
      if (row.status === "pending") {
        // RFC 8628 section 3.5. A client that waits `interval` after each answer arrives reaches us a
        // little early or late (timers, latency), so polls within a tolerance of the interval are on
        // time. An early poll raises the interval but does not move the clock: otherwise a client
        // polling steadily at the interval would be early again forever (issue 16 item 2).
        const toleranceMs = Math.min(1000, row.interval_s * 200);
        const tooSoon = row.last_poll_at !== null && t - row.last_poll_at < row.interval_s * 1000 - toleranceMs;
        if (tooSoon) {
          await db
            .updateTable("device_codes")
            .set({ interval_s: row.interval_s + 5 })
            .where("device_code_hash", "=", row.device_code_hash)
            .execute();
          throw new ServiceError(400, "slow_down", `Poll at most every ${row.interval_s + 5} s.`);
        }
        await db
          .updateTable("device_codes")
          .set({ last_poll_at: t })
          .where("device_code_hash", "=", row.device_code_hash)
          .execute();
        throw new ServiceError(400, "authorization_pending", "Waiting for the person to enter the code.");
      }
      const claim = await db
        .updateTable("device_codes")
        .set({ status: "used" })
        .where("device_code_hash", "=", row.device_code_hash)
        .where("status", "=", "approved")
        .executeTakeFirst();
      if (Number(claim.numUpdatedRows) !== 1 || row.user_id === null)
        throw invalidGrant("This device code was already used.");
      return issueTokens(row.user_id, row.client_id, newId("fam"));
    },
  };
  return oauth;
}
