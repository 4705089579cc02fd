/**
 * Passkeys as a proof of presence (DESIGN.md section 9): registering the person's passkeys and
 * checking an assertion that proves them present for one exact action, with @simplewebauthn/server.
 *
 * A proof's WebAuthn challenge is SHA-256(nonce ‖ action), so the authenticator's signature covers
 * the action itself (a proof for one request, or for other terms, cannot pass for another), and each
 * challenge is single-use, lives `PASSKEY_CHALLENGE_TTL_MS` and exists only in this process's memory.
 * Only user-verifying answers count (WebAuthn L2 section 7.2 step 17 with userVerification
 * "required": the UV flag must be set), and the origin must be the Link's own page exactly: the RP ID
 * `localhost` is shared by every page on any localhost port, so the RP ID alone says nothing about
 * which page asked. Where the passkeys are kept is the caller's (`load`/`save`: the vault).
 */
import { createHash, randomBytes } from "node:crypto";
import type * as WebAuthn from "@simplewebauthn/server";
import type {
  PublicKeyCredentialCreationOptionsJSON,
  PublicKeyCredentialRequestOptionsJSON,
} from "@simplewebauthn/server";
import { LinkError } from "../../../shared/errors.js";
import {
  PASSKEY_CHALLENGE_TTL_MS,
  PASSKEY_RP_ID,
  PASSKEYS_MAX,
  PasskeyAssertionResponseSchema,
  PasskeyRegistrationResponseSchema,
  StoredPasskeySchema,
  type StoredPasskey,
} from "../../../shared/passkeys.js";

/**
 * @simplewebauthn/server, loaded on the first passkey operation: with its CBOR, ASN.1 and X.509
 * libraries it is the largest package of the daemon (about 130 ms to load and 10+ MB of memory),
 * and most Links never register a passkey.
 */
const webauthn = (): Promise<typeof WebAuthn> => import("@simplewebauthn/server");

/** Challenges outstanding at once; the oldest is dropped first (a loop asking for challenges cannot grow memory). */
export const PASSKEY_CHALLENGES_MAX_OUTSTANDING = 32;

export interface PasskeysOptions {
  /** The WebAuthn RP ID; default `PASSKEY_RP_ID` ("localhost"). */
  rpId?: string;
  /** The name authenticators show for the RP; default "Piper Link". */
  rpName?: string;
  /** The account name authenticators show beside the RP name; default "Piper Link approvals". */
  userName?: string;
  /**
   * The one origin answers may come from, exactly (scheme, host, port), e.g. `http://localhost:31477`
   * (`passkeyOrigin(port)`). A function because the port is known only once the Link listens.
   */
  origin: () => string;
  /** The clock, ms since the epoch; default `Date.now`. */
  now?: () => number;
  /** The registered passkeys (the vault's sealed JSON, parsed). */
  load: () => Promise<StoredPasskey[]>;
  /** Keeps the whole list after a registration, a removal, or a proof that moved a counter. */
  save: (passkeys: StoredPasskey[]) => Promise<void>;
}

/**
 * `T` as a plain object type: the same members, and (unlike an interface) assignable to the control
 * contract's `Record<string, unknown>` for WebAuthn options, so results pass through unconverted.
 */
export type PlainJson<T> = { [K in keyof T]: T[K] };

/** A passkey challenge as the window gets it: WebAuthn options for the browser, and the id to answer with. */
export interface PasskeyProofChallenge {
  challengeId: string;
  /** ISO 8601; the challenge is refused from this instant on. */
  expiresAt: string;
  /** For `navigator.credentials.get` (`PublicKeyCredential.parseRequestOptionsFromJSON`). */
  options: PlainJson<PublicKeyCredentialRequestOptionsJSON>;
}

export interface Passkeys {
  /**
   * Options for `navigator.credentials.create` (`PublicKeyCredential.parseCreationOptionsFromJSON`):
   * RP `localhost`, user verification required, a discoverable credential preferred, the known
   * passkeys excluded (an authenticator is registered once), a fresh random user handle (several
   * Links on one machine share the RP ID `localhost`; a shared handle would let one Link's
   * registration overwrite another's discoverable credential). The challenge is single-use and valid
   * `PASSKEY_CHALLENGE_TTL_MS`.
   */
  registrationOptions(): Promise<{ challengeId: string; options: PlainJson<PublicKeyCredentialCreationOptionsJSON> }>;
  /**
   * Verifies the browser's answer to a registration challenge (`PasskeyRegistrationResponseSchema`;
   * user verification required, origin exact, RP ID `localhost`) and saves the new passkey under
   * `name`. Returns it.
   * @throws LinkError `presence_failed` when the challenge is unknown, used, expired, or the answer
   *   does not verify; `conflict` when this passkey is already registered; `bad_request` when the
   *   Link already keeps `PASSKEYS_MAX` passkeys.
   */
  register(challengeId: string, response: unknown, name: string): Promise<StoredPasskey>;
  /**
   * A challenge for a proof of presence for `action` (the exact call it will prove, e.g.
   * `presenceAction(method, params)` from src/shared/presence.ts): the WebAuthn challenge is
   * SHA-256(32 random bytes ‖ UTF-8 action), single-use, valid `PASSKEY_CHALLENGE_TTL_MS`,
   * user verification required, the registered passkeys allowed.
   * @throws LinkError `presence_failed` when no passkey is registered.
   */
  challenge(action: string): Promise<PasskeyProofChallenge>;
  /**
   * Resolves (with the passkey used, its counter saved) when `response` is a valid answer to
   * challenge `challengeId`, issued for this same `action`, unexpired and unused; the challenge is
   * consumed by any attempt, good or bad. The answer must come from a registered passkey, from
   * the exact origin, with the user verified, and a counter that grew (when the authenticator counts).
   * @throws LinkError `presence_failed` with a sentence saying which rule failed.
   */
  verify(challengeId: string, action: string, response: unknown): Promise<StoredPasskey>;
  /** The registered passkeys. */
  list(): Promise<StoredPasskey[]>;
  /** Removes the passkey with credential ID `id`; false when there was none. */
  remove(id: string): Promise<boolean>;
}

type Pending =
  | { kind: "registration"; challenge: string; expiresAt: number }
  | { kind: "proof"; nonce: Buffer; action: string; expiresAt: number };

/** The proof challenge for `action`: SHA-256(nonce ‖ action). The nonce has a fixed length, so the split is unambiguous. */
function boundChallenge(nonce: Buffer, action: string): Uint8Array<ArrayBuffer> {
  return new Uint8Array(createHash("sha256").update(nonce).update(action, "utf8").digest());
}

/** A challenge as the browser's clientDataJSON carries it (base64url of its bytes, WebAuthn L2 section 5.8.1). */
function encoded(challenge: Uint8Array): string {
  return Buffer.from(challenge).toString("base64url");
}

function failed(message: string, cause?: unknown): LinkError {
  return new LinkError("presence_failed", message, cause === undefined ? undefined : { cause });
}

/**
 * The sentence for an answer @simplewebauthn/server refused; its messages are for developers, so
 * the ones a person can act on are recognised and said plainly, the rest kept in parentheses.
 */
function refusal(err: unknown, origin: string): LinkError {
  const detail = err instanceof Error ? err.message : String(err);
  if (/origin/i.test(detail))
    return failed(
      `The passkey was used on another page; only Piper Link's own page at ${origin} counts. Approve there.`,
      err,
    );
  if (/user verification/i.test(detail))
    return failed(
      "The passkey did not verify you (no PIN, fingerprint or screen lock was checked). Use a passkey that asks for one.",
      err,
    );
  if (/challenge/i.test(detail))
    return failed(
      "This passkey proof was made for another challenge or action; ask for a new one for this action.",
      err,
    );
  if (/counter/i.test(detail))
    return failed(
      "This passkey's counter went backwards, which happens when a passkey was copied. Remove it and register it again.",
      err,
    );
  return failed(`The passkey's answer did not verify (${detail.slice(0, 200)}). Try again.`, err);
}

/**
 * The Link's passkeys. Challenges live in this object's memory only; passkeys are read with `load`
 * and written with `save`, one change at a time (a proof's counter update never loses a concurrent
 * registration). See `Passkeys` for each method's shape and errors.
 */
export function createPasskeys(options: PasskeysOptions): Passkeys {
  const rpID = options.rpId ?? PASSKEY_RP_ID;
  const rpName = options.rpName ?? "Piper Link";
  const userName = options.userName ?? "Piper Link approvals";
  const now = options.now ?? Date.now;
  const pending = new Map<string, Pending>();
  let writes: Promise<unknown> = Promise.resolve();

  /** Runs `change` after every earlier one, so each reads what the previous one saved. */
  function serially<T>(change: () => Promise<T>): Promise<T> {
    const run = writes.then(change, change);
    writes = run.catch(() => undefined);
    return run;
  }

  async function loaded(): Promise<StoredPasskey[]> {
    return StoredPasskeySchema.array().parse(await options.load());
  }

  function issue(entry: (expiresAt: number) => Pending): { challengeId: string; expiresAt: number } {
    const t = now();
    for (const [id, p] of pending) if (p.expiresAt <= t) pending.delete(id);
    while (pending.size >= PASSKEY_CHALLENGES_MAX_OUTSTANDING) {
      const oldest = pending.keys().next().value;
      if (oldest === undefined) break;
      pending.delete(oldest);
    }
    const challengeId = randomBytes(16).toString("base64url");
    const expiresAt = t + PASSKEY_CHALLENGE_TTL_MS;
    pending.set(challengeId, entry(expiresAt));
    return { challengeId, expiresAt };
  }

  /** Takes the challenge out of the store (whatever happens next, it is spent) and checks it is live. */
  function take(challengeId: string): Pending | undefined {
    const entry = pending.get(challengeId);
    pending.delete(challengeId);
    if (entry !== undefined && entry.expiresAt <= now())
      throw failed(
        `This passkey challenge expired (each lasts ${PASSKEY_CHALLENGE_TTL_MS / 60_000} minutes); ask for a new one.`,
      );
    return entry;
  }
  const unknownChallenge = () => failed("This passkey challenge is unknown or was already used; ask for a new one.");

  return {
    async registrationOptions() {
      const known = await loaded();
      // Bytes, not a string: @simplewebauthn/server would take a string as UTF-8 text to encode.
      const challenge = new Uint8Array(randomBytes(32));
      const options_ = await (
        await webauthn()
      ).generateRegistrationOptions({
        rpName,
        rpID,
        userName,
        userDisplayName: userName,
        challenge,
        timeout: PASSKEY_CHALLENGE_TTL_MS,
        attestationType: "none",
        excludeCredentials: known.map((p) => ({ id: p.id, transports: p.transports })),
        authenticatorSelection: { residentKey: "preferred", userVerification: "required" },
      });
      const { challengeId } = issue((expiresAt) => ({
        kind: "registration",
        challenge: encoded(challenge),
        expiresAt,
      }));
      return { challengeId, options: options_ };
    },

    async register(challengeId, response, name) {
      const entry = take(challengeId);
      if (entry?.kind !== "registration") throw unknownChallenge();
      const parsed = PasskeyRegistrationResponseSchema.safeParse(response);
      if (!parsed.success)
        throw failed("That is not a browser's answer to a passkey registration; try again from Piper Link's page.");
      const origin = options.origin();
      let verification;
      try {
        verification = await (
          await webauthn()
        ).verifyRegistrationResponse({
          response: parsed.data,
          expectedChallenge: entry.challenge,
          expectedOrigin: origin,
          expectedRPID: rpID,
          requireUserPresence: true,
          requireUserVerification: true,
        });
      } catch (err) {
        throw refusal(err, origin);
      }
      if (!verification.verified) throw failed("The passkey's registration did not verify. Try again.");
      const { credential, userVerified } = verification.registrationInfo;
      if (!userVerified) throw refusal(new Error("user verification required"), origin);
      const stored = StoredPasskeySchema.parse({
        id: credential.id,
        publicKey: Buffer.from(credential.publicKey).toString("base64url"),
        counter: credential.counter,
        transports: (credential.transports ?? []).filter((t) => /^[a-z-]{1,32}$/.test(t)).slice(0, 10),
        name,
        createdAt: new Date(now()).toISOString(),
      });
      return serially(async () => {
        const list = await loaded();
        if (list.some((p) => p.id === stored.id))
          throw new LinkError("conflict", "This passkey is already registered with this Piper Link.");
        if (list.length >= PASSKEYS_MAX)
          throw new LinkError(
            "bad_request",
            `This Piper Link already keeps ${PASSKEYS_MAX} passkeys; remove one first.`,
          );
        await options.save([...list, stored]);
        return stored;
      });
    },

    async challenge(action) {
      const known = await loaded();
      if (known.length === 0)
        throw failed("No passkey is registered with this Piper Link; register one in Settings, or use the PIN.");
      const nonce = randomBytes(32);
      const options_ = await (
        await webauthn()
      ).generateAuthenticationOptions({
        rpID,
        challenge: boundChallenge(nonce, action),
        timeout: PASSKEY_CHALLENGE_TTL_MS,
        userVerification: "required",
        allowCredentials: known.map((p) => ({ id: p.id, transports: p.transports })),
      });
      const { challengeId, expiresAt } = issue((at) => ({ kind: "proof", nonce, action, expiresAt: at }));
      return { challengeId, expiresAt: new Date(expiresAt).toISOString(), options: options_ };
    },

    async verify(challengeId, action, response) {
      const entry = take(challengeId);
      if (entry?.kind !== "proof") throw unknownChallenge();
      if (entry.action !== action)
        throw failed("This passkey proof was asked for another action; ask for a new one for this action.");
      const parsed = PasskeyAssertionResponseSchema.safeParse(response);
      if (!parsed.success)
        throw failed("That is not a browser's answer to a passkey challenge; try again from Piper Link's page.");
      const origin = options.origin();
      return serially(async () => {
        const list = await loaded();
        const at = list.findIndex((p) => p.id === parsed.data.id);
        const passkey = list[at];
        if (passkey === undefined)
          throw failed("This passkey is not registered with this Piper Link; use one registered in Settings.");
        let verification;
        try {
          verification = await (
            await webauthn()
          ).verifyAuthenticationResponse({
            response: parsed.data,
            // Recomputed from the action given now, not read back: the signature itself must cover it.
            expectedChallenge: encoded(boundChallenge(entry.nonce, action)),
            expectedOrigin: origin,
            expectedRPID: rpID,
            credential: {
              id: passkey.id,
              publicKey: Buffer.from(passkey.publicKey, "base64url"),
              counter: passkey.counter,
              transports: passkey.transports,
            },
            requireUserVerification: true,
          });
        } catch (err) {
          throw refusal(err, origin);
        }
        if (!verification.verified || !verification.authenticationInfo.userVerified)
          throw refusal(new Error("user verification required"), origin);
        const used = { ...passkey, counter: verification.authenticationInfo.newCounter };
        if (used.counter !== passkey.counter) await options.save(list.map((p, i) => (i === at ? used : p)));
        return used;
      });
    },

    list: loaded,

    remove(id) {
      return serially(async () => {
        const list = await loaded();
        const rest = list.filter((p) => p.id !== id);
        if (rest.length === list.length) return false;
        await options.save(rest);
        return true;
      });
    },
  };
}
