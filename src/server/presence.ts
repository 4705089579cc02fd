/**
 * The authority's own check of a proof of presence on a widening route (DESIGN.md section 9): the
 * party that enforces a yes verifies it, so a stolen Link token, or a process that reaches this
 * authority directly, cannot approve. Two forms, one per kind of authority:
 * - Embedded (an approval key came from the Link over a pipe): `link-mac`, HMAC-SHA256 under that
 *   key of `presenceMessage(action, nonce, at)`, accepted within `PRESENCE_MAC_TTL_MS` of this
 *   process's clock and each nonce once (kept in memory until it could no longer be accepted).
 *   The key is new at every launch, so a proof made for an earlier child is worthless.
 * - Team (no approval key): `password`, the account's password, checked with its stored hash and
 *   throttled like a sign-in per account and source (oauth.ts `signIn`).
 */
import { createHmac, timingSafeEqual } from "node:crypto";
import { PRESENCE_MAC_TTL_MS, presenceMessage, type AuthorityPresence } from "../shared/presence.js";
import { ServiceError } from "./service/index.js";

export interface PresenceVerifierOptions {
  /** The embedded authority's approval key (32 bytes); null for a team authority. */
  approvalKey: Buffer | null;
  now?: () => number;
  /**
   * Checks `password` for account `userId` from `client` (the address the server saw). Resolves
   * true when right, false when wrong or the account has none; throws 429 `too_many_attempts` when
   * throttled.
   */
  checkPassword: (userId: string, password: string, client: string) => Promise<boolean>;
}

export type PresenceVerifier = ReturnType<typeof createPresenceVerifier>;

/** HMAC-SHA256 of the presence message under `key`, base64url (43 characters). */
export function linkPresenceMac(key: Buffer, action: string, nonce: string, at: number): string {
  return createHmac("sha256", key)
    .update(presenceMessage(action, nonce, at), "utf8")
    .digest("base64url");
}

export function createPresenceVerifier(options: PresenceVerifierOptions) {
  const now = options.now ?? Date.now;
  const key = options.approvalKey;
  /** Nonces seen, with the time after which their proof is out of its window anyway. */
  const used = new Map<string, number>();

  function forgetOld(t: number): void {
    for (const [nonce, until] of used) if (until < t) used.delete(nonce);
  }

  const failed = (why: string): ServiceError => new ServiceError(403, "presence_failed", why);

  return {
    /** Which form this authority accepts (what a client must send). */
    form: key === null ? ("password" as const) : ("link-mac" as const),

    /**
     * Resolves when `presence` proves the person's presence for exactly `action` on `userId`'s
     * account. 403 `presence_required` without one; 403 `presence_failed` for the other form, a
     * MAC over anything else, an `at` outside the window, a nonce already used, or a wrong
     * password; 429 `too_many_attempts` when password checks are throttled.
     */
    async verify(
      userId: string,
      action: string,
      presence: AuthorityPresence | undefined,
      client: string,
    ): Promise<void> {
      if (presence === undefined) {
        throw new ServiceError(
          403,
          "presence_required",
          key === null
            ? "This change needs your account password as a proof that you are there."
            : "This change needs a proof that you are there: approve it in Piper Link's window or at a terminal.",
        );
      }
      if (key === null) {
        if (presence.kind !== "password")
          throw failed("This authority checks your account password itself; a Link's proof means nothing to it.");
        if (!(await options.checkPassword(userId, presence.password, client)))
          throw failed("That password is not right; nothing was changed.");
        return;
      }
      if (presence.kind !== "link-mac")
        throw failed("This authority accepts only the proof Piper Link makes after checking you are there.");
      const expected = Buffer.from(linkPresenceMac(key, action, presence.nonce, presence.at), "base64url");
      const given = Buffer.from(presence.mac, "base64url");
      if (given.length !== expected.length || !timingSafeEqual(given, expected))
        throw failed("The proof of presence does not match this change; nothing was changed.");
      const t = now();
      if (Math.abs(t - presence.at) > PRESENCE_MAC_TTL_MS)
        throw failed("The proof of presence has expired; approve again.");
      forgetOld(t);
      if (used.has(presence.nonce)) throw failed("This proof of presence was already used; approve again.");
      used.set(presence.nonce, presence.at + PRESENCE_MAC_TTL_MS);
    },
  };
}
