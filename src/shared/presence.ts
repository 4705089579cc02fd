/**
 * Presence and the locked vault (DESIGN.md section 9): the contracts of "only the person can say
 * yes". A **proof of presence** travels with every widening control call (approve, widen a grant's
 * terms, add a destination, turn a protection off); the Link checks it in memory (PIN, passphrase,
 * passkey) and, for the embedded authority, hands the authority a MAC over the exact action; a team
 * authority checks its own proof (the account password). The **vault** is what the Link keeps at
 * rest, wrapped under a key derived from the person's passphrase; `VaultStatus` is what the window
 * and `status` show of it. Pure: no I/O, no `node:` modules.
 */
import { z } from "zod";

/** The shortest approval PIN: 6 digits (a 4-digit PIN falls to the few guesses the Link allows far too often). */
export const PIN_MIN_LENGTH = 6;
/** The shortest passphrase accepted for a new vault, in characters. */
export const PASSPHRASE_MIN_LENGTH = 10;

export const PinSchema = z
  .string()
  .regex(/^\d+$/, "a PIN is digits only")
  .min(PIN_MIN_LENGTH, `a PIN has at least ${PIN_MIN_LENGTH} digits`)
  .max(32, "a PIN has at most 32 digits");

/**
 * A proof of presence, as a window or the CLI sends it with a widening call.
 * - `pin`: the approval PIN, checked only in the Link's memory after an unlock (throttled; a few
 *   wrong ones lock the Link).
 * - `passphrase`: the unlock passphrase (never accepted while the vault was unlocked unattended,
 *   from a passphrase file, since that file unwraps everything offline).
 * - `passkey`: a WebAuthn assertion over a challenge from `presenceChallenge`, which is bound to the
 *   exact action (verified with @simplewebauthn/server; user verification required).
 * - `password`: the account password, forwarded to a team authority, which checks it itself.
 * - `pin-mac`: the PIN without the PIN (the CLI's form): HMAC-SHA256 keyed with scrypt(PIN) under
 *   the parameters `pinChallenge` gave, over `pinMacMessage(nonce, action)`. What crosses the
 *   control channel is good for that one action and challenge only, so a program that relays the
 *   channel (a rewritten control file) cannot reuse it; it is still a PIN verifier to guess at
 *   offline, so a long PIN or a passkey is stronger.
 */
export const PresenceProofSchema = z.discriminatedUnion("method", [
  z.object({ method: z.literal("pin"), pin: z.string().min(1).max(64) }).strict(),
  z.object({ method: z.literal("passphrase"), passphrase: z.string().min(1).max(1024) }).strict(),
  z
    .object({
      method: z.literal("passkey"),
      challengeId: z.string().min(1).max(128),
      response: z.record(z.string(), z.unknown()),
    })
    .strict(),
  z.object({ method: z.literal("password"), password: z.string().min(1).max(1024) }).strict(),
  z
    .object({
      method: z.literal("pin-mac"),
      challengeId: z.string().min(1).max(128),
      mac: z.string().regex(/^[A-Za-z0-9_-]{43}$/),
    })
    .strict(),
]);
export type PresenceProof = z.infer<typeof PresenceProofSchema>;
export type PresenceMethod = PresenceProof["method"];

/**
 * What the Link hands the authority with a widening call:
 * - `link-mac`: the embedded authority's form. The Link checked the person's proof itself and sends
 *   HMAC-SHA256(approval key, `presenceMessage(action, nonce, at)`), keyed by a secret it gave the
 *   authority child over a pipe at unlock. `at` is ms since the epoch; the authority accepts it for
 *   `PRESENCE_MAC_TTL_MS` and each nonce once.
 * - `password`: a team authority's form: the account password, checked and throttled by the
 *   authority (a PIN held in one Link's memory proves nothing to a remote service).
 */
export const AuthorityPresenceSchema = z.discriminatedUnion("kind", [
  z
    .object({
      kind: z.literal("link-mac"),
      nonce: z.string().regex(/^[A-Za-z0-9_-]{16,64}$/),
      at: z.number().int().nonnegative(),
      mac: z.string().regex(/^[A-Za-z0-9_-]{43}$/),
    })
    .strict(),
  z.object({ kind: z.literal("password"), password: z.string().min(1).max(1024) }).strict(),
]);
export type AuthorityPresence = z.infer<typeof AuthorityPresenceSchema>;

/** What a `pin-mac` covers: the challenge's nonce and the exact action. */
export function pinMacMessage(nonce: string, action: string): string {
  return `piper-link-pin-v1\n${nonce}\n${action}`;
}

/** A PIN challenge: the verifier's scrypt parameters (salt base64) and a single-use nonce bound to one action. */
export const PinChallengeSchema = z.object({
  challengeId: z.string(),
  expiresAt: z.string(),
  nonce: z.string(),
  kdf: z.object({ N: z.number().int(), r: z.number().int(), p: z.number().int(), salt: z.string() }),
});
export type PinChallenge = z.infer<typeof PinChallengeSchema>;

/** How long a `link-mac` presence is accepted after its `at`, in ms. */
export const PRESENCE_MAC_TTL_MS = 60_000;

/** A JSON value, for canonical encoding. */
type Json = string | number | boolean | null | Json[] | { [key: string]: Json };

function canonical(value: unknown): Json {
  if (value === null || typeof value === "string" || typeof value === "boolean") return value;
  if (typeof value === "number") return Number.isFinite(value) ? value : null;
  if (Array.isArray(value)) return value.map(canonical);
  if (typeof value === "object") {
    const out: { [key: string]: Json } = {};
    for (const key of Object.keys(value).sort()) {
      const v: unknown = (value as Record<string, unknown>)[key];
      if (v !== undefined) out[key] = canonical(v);
    }
    return out;
  }
  return null;
}

/**
 * The exact action a proof is bound to: the operation's name and every term of it (request ids,
 * scope, binding, mode, destinations, policy, the secret's name…) as canonical JSON (keys sorted,
 * `undefined` dropped), without the proof itself. Two actions that differ in any term give
 * different strings, so a proof for one is worthless for the other.
 */
export function presenceAction(operation: string, terms: Record<string, unknown>): string {
  return JSON.stringify({ op: operation, terms: canonical(withoutPresence(terms)) });
}

/** A call's params without its proof: the terms it asks for. */
export function withoutPresence<T extends { presence?: unknown }>(params: T): Omit<T, "presence"> {
  const terms = { ...params };
  delete terms.presence;
  return terms;
}

/** The string a `link-mac` covers: action, nonce and time, newline-separated (none can hold a newline unescaped). */
export function presenceMessage(action: string, nonce: string, at: number): string {
  return `piper-link-presence-v1\n${nonce}\n${at}\n${action}`;
}

/** Why the vault is locked, for the window's Locked screen and `status`. */
export const LockReasonSchema = z.enum(["started", "by_request", "idle", "signed_out", "too_many_wrong_pins"]);
export type LockReason = z.infer<typeof LockReasonSchema>;

/** A risk the Link can see and cannot remove itself (item 13 of the presence issue): shown in `status` and Settings. */
export const ResidualRiskSchema = z.object({
  code: z.enum([
    "x11_session",
    "ptrace_scope_0",
    "install_writable",
    "unit_writable",
    "port_taken",
    "unattended_unlock",
    "not_dumpable_failed",
  ]),
  message: z.string(),
});
export type ResidualRisk = z.infer<typeof ResidualRiskSchema>;

/**
 * The vault as the window and `status` show it.
 * - `state`: `new` (no passphrase chosen yet: the window asks for one), `locked`, `unlocked`.
 * - `unattended`: unlocked from `PIPER_LINK_PASSPHRASE_FILE` — unprotected at rest, said wherever shown.
 * - `proofs`: which proofs of presence this Link accepts now, in the order the window offers them.
 * - `idleLockMinutes`: the Link locks after this long without the person (an unlock or a proof); agent traffic does not count.
 * - `legacyGrants`: grants approved before proofs existed, waiting for the person to keep or end them.
 */
export const VaultStatusSchema = z.object({
  state: z.enum(["new", "locked", "unlocked"]),
  lockedReason: LockReasonSchema.nullable(),
  unattended: z.boolean(),
  pinSet: z.boolean(),
  passkeys: z.number().int().nonnegative(),
  proofs: z.array(z.enum(["pin", "passphrase", "passkey", "password"])),
  idleLockMinutes: z.number().int().positive(),
  legacyGrants: z.number().int().nonnegative(),
  /** Wrong PINs since the last good proof; the Link locks at `pinTriesAllowed`. */
  pinFailures: z.number().int().nonnegative(),
  pinTriesAllowed: z.number().int().positive(),
});
export type VaultStatus = z.infer<typeof VaultStatusSchema>;

/** The idle lock's default, in minutes (12 h, as 1Password's default "lock after" for its desktop app). */
export const DEFAULT_IDLE_LOCK_MINUTES = 12 * 60;
/** Wrong PINs in a row before the Link locks and wants the full passphrase. */
export const PIN_TRIES_ALLOWED = 5;

/**
 * A rough strength check for a new passphrase: at least `PASSPHRASE_MIN_LENGTH` characters and not
 * one repeated character or an obvious sequence. Returns the sentence to show, or null when it is fine.
 */
export function passphraseWeakness(passphrase: string): string | null {
  if (passphrase.length < PASSPHRASE_MIN_LENGTH)
    return `Choose a passphrase of at least ${PASSPHRASE_MIN_LENGTH} characters (a few words are easiest to remember).`;
  if (new Set(passphrase).size < 5)
    return "That passphrase repeats too few characters; choose one with more variety (a few unrelated words work well).";
  const lower = passphrase.toLowerCase();
  for (const weak of ["password", "passphrase", "1234567890", "qwertyuiop", "piper-link", "piperlink"]) {
    if (lower.includes(weak) && lower.length - weak.length < 6)
      return "That passphrase is too easy to guess; add a few unrelated words.";
  }
  return null;
}
