/**
 * The locked vault (DESIGN.md section 9): what lets a process act as this Link — the refresh
 * token, the Link's credential to the authority, the embedded authority's data key, the instance
 * ID — is kept in the keychain only sealed under a random **vault key**, which is itself wrapped
 * under a key derived from the person's passphrase (scrypt, vault-crypto.ts). The keychain holds
 * the wrapped record (item `vault`) and sealed blobs; the vault key, the PIN verifier and the
 * passkeys live in this process's memory only while unlocked.
 *
 * Unlock: passphrase → scrypt → key-encryption key → open the record → vault key + payload. Lock
 * (asked, idle, sign-out, stop, too many wrong PINs): every key buffer is zeroed and dropped.
 * "Idle" is time since the person last showed presence (an unlock or a proof); agent traffic and
 * status reads do not count.
 *
 * Wrong PINs are counted in a small file beside the profile's data (so restarts do not reset the
 * count); after `PIN_TRIES_ALLOWED` in a row the vault locks and only the full passphrase opens it
 * again. Each wrong PIN also opens a growing wait during which PINs are refused unchecked.
 */
import fs from "node:fs/promises";
import path from "node:path";
import type { Logger } from "pino";
import { z } from "zod";
import { LinkError } from "../../../shared/errors.js";
import {
  DEFAULT_IDLE_LOCK_MINUTES,
  PIN_MIN_LENGTH,
  PIN_TRIES_ALLOWED,
  PinSchema,
  passphraseWeakness,
  pinMacMessage,
  type LockReason,
} from "../../../shared/presence.js";
import { createHmac, randomBytes } from "node:crypto";
import { readFileOrNull, writeFileAtomic } from "../runtime/files.js";
import { SEALED_ITEMS, type KeychainItem, type KeychainStore } from "../runtime/keychain.js";
import {
  BoxSchema,
  KdfSchema,
  PIN_KDF,
  VAULT_KDF,
  deriveKey,
  newKdf,
  open,
  sameBytes,
  seal,
  type Kdf,
} from "./vault-crypto.js";

const RecordHeaderSchema = z.object({ format: z.literal("piper-link-vault"), version: z.literal(1), kdf: KdfSchema });
const RecordSchema = RecordHeaderSchema.extend({ box: BoxSchema });
type RecordHeader = z.infer<typeof RecordHeaderSchema>;

const PayloadSchema = z.object({
  vaultKey: z.string().min(40),
  pin: z.object({ kdf: KdfSchema, hash: z.string().min(40) }).nullable(),
  /** Passkeys as core/presence/passkeys.ts stores them; kept opaque here. */
  passkeys: z.array(z.record(z.string(), z.unknown())).default([]),
  idleLockMinutes: z.number().int().positive().default(DEFAULT_IDLE_LOCK_MINUTES),
  createdAt: z.string(),
  /** Set when the vault was made over a profile that kept its items in plaintext: credentials still to rotate. */
  upgradedAt: z.string().nullable().default(null),
  rotated: z.boolean().default(true),
});
type Payload = z.infer<typeof PayloadSchema>;

/** The prefix of a sealed keychain value: `pls1.<nonce>.<ciphertext>.<tag>` (base64). An older Link reads it as a malformed key and stops. */
const SEALED_PREFIX = "pls1.";

const FailuresSchema = z.object({ failures: z.number().int().nonnegative(), lastAt: z.number().nonnegative() });

/** The wait after the n-th wrong PIN in a row before another PIN is checked, in ms: 1 s, 2 s, 4 s… */
export function pinBackoffMs(failures: number): number {
  return failures === 0 ? 0 : 1000 * 2 ** Math.min(failures - 1, 10);
}

export type VaultState = "new" | "locked" | "unlocked";

/** The longest wait a wrong unlock passphrase imposes, in ms: long enough to make guessing pointless, short enough that an agent's guesses cannot keep the person out. */
const UNLOCK_WAIT_CAP_MS = 30_000;
/** Wrong tries (of any proof) before a wrong unlock passphrase starts to wait: a typo or two costs nothing. */
const FREE_UNLOCK_TRIES = 2;

export interface VaultOptions {
  /** The raw keychain (OS or file): the record and the sealed items are kept in it. */
  keychain: KeychainStore;
  dataDir: string;
  log: Logger;
  now: () => number;
  /** scrypt parameters for a new vault (default VAULT_KDF); tests may lower N to MIN_SCRYPT_N. */
  kdf?: { N: number; r: number; p: number };
  /** Hands the passphrase to the file keychain, whose file the same passphrase opens (one passphrase, not two). */
  shareWithFileKeychain?: (passphrase: string | null) => void;
}

export interface UnlockOptions {
  /** The passphrase came from `PIPER_LINK_PASSPHRASE_FILE`: unprotected at rest, and never a proof. */
  unattended?: boolean;
}

export interface Vault {
  readonly state: VaultState;
  readonly lockedReason: LockReason | null;
  readonly unattended: boolean;
  readonly pinSet: boolean;
  readonly pinFailures: number;
  readonly idleLockMinutes: number;
  /** The passkeys as stored (opaque records); empty while locked. */
  readonly passkeys: readonly Record<string, unknown>[];
  /** True when the vault was made over plaintext items and the credentials are not rotated yet. */
  readonly needsRotation: boolean;
  /** Reads whether a vault exists (`new` / `locked`); never needs the passphrase. */
  probe(): Promise<VaultState>;
  /**
   * Creates the vault (state `new` only) with `passphrase` (strength-checked: `bad_request` with the
   * sentence) and an optional PIN, seals every item already in the keychain in plaintext (an
   * upgraded profile) and unlocks. Returns the items it sealed.
   */
  create(
    passphrase: string,
    options?: UnlockOptions & { pin?: string; upgradeOfFile?: boolean },
  ): Promise<KeychainItem[]>;
  /** Unlocks; a wrong passphrase is `presence_failed` (scrypt's cost is the throttle). `locked` → `unlocked`. */
  unlock(passphrase: string, options?: UnlockOptions): Promise<void>;
  /** Zeroes and drops every key; listeners hear why. Safe when already locked. */
  lock(reason: LockReason): void;
  onLock(listener: (reason: LockReason) => void): () => void;
  /** Seals `value` for `item` under the vault key. Throws `locked`. */
  sealItem(item: KeychainItem, value: string): string;
  /** Opens a sealed value of `item`; null when it is not sealed by this vault (plaintext, another vault, tampered). Throws `locked`. */
  openItem(item: KeychainItem, stored: string): string | null;
  /** Checks an approval PIN: resolves when right; `presence_failed` (tries left), `rate_limited` (wait), `locked` (too many). */
  checkPin(pin: string): Promise<void>;
  /** The PIN verifier's scrypt parameters (salt base64), for a `pin-mac` challenge. Throws `presence_failed` when no PIN is set. */
  pinParams(): Kdf;
  /** Checks a `pin-mac` (base64url HMAC-SHA256 keyed with the PIN verifier over `pinMacMessage(nonce, action)`), counted as a PIN. */
  checkPinMac(nonce: string, action: string, mac: string): Promise<void>;
  /** Checks the passphrase as a proof (not while unattended). Throws `presence_failed`. */
  checkPassphrase(passphrase: string): Promise<void>;
  /** Checks the passphrase even when unattended (only for a first PIN on such a vault). Throws `presence_failed`. */
  checkPassphraseUnattended(passphrase: string): Promise<void>;
  setPin(pin: string): Promise<void>;
  setIdleLockMinutes(minutes: number): Promise<void>;
  savePasskeys(list: Record<string, unknown>[]): Promise<void>;
  /** Records that the credentials of an upgraded profile were rotated. */
  markRotated(): Promise<void>;
  /** The person showed presence now (an unlock or a good proof): the idle clock restarts. */
  touch(): void;
  /** Locks when the person has been away longer than the idle lock; called by a timer, and by tests with their clock. */
  checkIdle(): void;
}

/** `locked`, in the person's words: what to do to unlock. */
export function lockedError(): LinkError {
  return new LinkError(
    "locked",
    "Piper Link is locked. Unlock it in its window or with `piper-link unlock` at a terminal, then try again.",
  );
}

export function isSealedValue(value: string): boolean {
  return value.startsWith(SEALED_PREFIX);
}

export function createVault(options: VaultOptions): Vault {
  const { keychain, log, now } = options;
  const failuresFile = path.join(options.dataDir, "presence-failures.json");
  let state: VaultState = "locked";
  let lockedReason: LockReason | null = "started";
  let unattended = false;
  let kek: Buffer | null = null;
  let vaultKey: Buffer | null = null;
  let header: RecordHeader | null = null;
  let payload: Payload | null = null;
  let pinVerifier: { kdf: Kdf; hash: Buffer } | null = null;
  let failures = { failures: 0, lastAt: 0 };
  let lastPresence = now();
  const listeners = new Set<(reason: LockReason) => void>();

  const aadOf = (h: RecordHeader): string => `piper-link-vault\n${keychain.service}\n${JSON.stringify(h)}`;
  const itemAad = (item: KeychainItem): string => `piper-link-item\n${keychain.service}\n${item}`;

  async function loadFailures(): Promise<void> {
    const text = await readFileOrNull(failuresFile).catch(() => null);
    const parsed = text === null ? null : FailuresSchema.safeParse(safeJson(text));
    failures = parsed?.success ? parsed.data : { failures: 0, lastAt: 0 };
  }
  async function saveFailures(): Promise<void> {
    await writeFileAtomic(failuresFile, `${JSON.stringify(failures)}\n`).catch((err: unknown) =>
      log.error({ err: String(err) }, "vault: could not record PIN failures"),
    );
  }

  /** Clears the wrong-proof count (a good proof, the person's own unlock, a new vault or PIN) and records it. */
  async function clearFailures(): Promise<void> {
    failures = { failures: 0, lastAt: 0 };
    await saveFailures();
  }

  async function writeRecord(): Promise<void> {
    if (kek === null || header === null || payload === null) throw lockedError();
    const box = seal(kek, Buffer.from(JSON.stringify(payload), "utf8"), aadOf(header));
    await keychain.set("vault", JSON.stringify({ ...header, box }));
  }

  /** Changes the unlocked payload and writes the wrapped record again. Throws `locked`. */
  async function updatePayload(change: Partial<Payload>): Promise<void> {
    opened();
    if (payload === null) throw lockedError();
    applyPayload({ ...payload, ...change });
    await writeRecord();
  }

  function applyPayload(p: Payload): void {
    payload = p;
    vaultKey = Buffer.from(p.vaultKey, "base64");
    pinVerifier = p.pin === null ? null : { kdf: p.pin.kdf, hash: Buffer.from(p.pin.hash, "base64") };
  }

  async function pinVerifierFor(pin: string): Promise<{ kdf: Kdf; hash: string }> {
    const kdf = newKdf(PIN_KDF);
    return { kdf, hash: (await deriveKey(pin, kdf)).toString("base64") };
  }

  function opened(): { key: Buffer } {
    if (state !== "unlocked" || vaultKey === null) throw lockedError();
    return { key: vaultKey };
  }

  function requirePin(): { kdf: Kdf; hash: Buffer } {
    opened();
    if (pinVerifier === null)
      throw new LinkError("presence_failed", "No approval PIN is set; use your passphrase (or set a PIN in Settings).");
    return pinVerifier;
  }

  /**
   * One proof attempt (a PIN, its MAC, or the passphrase): refused unchecked while the wait after a
   * wrong one runs (`rate_limited`) or once the tries are used up (`locked`); a good one clears the
   * count and restarts the idle clock; a wrong one is counted (persisted), and the last allowed one
   * locks the vault.
   */
  async function attempt(what: "PIN" | "passphrase", check: () => Promise<boolean>): Promise<void> {
    opened();
    if (failures.failures >= PIN_TRIES_ALLOWED) {
      vault.lock("too_many_wrong_pins");
      throw new LinkError(
        "locked",
        `Wrong PIN or passphrase ${PIN_TRIES_ALLOWED} times: Piper Link locked itself. Unlock it with your passphrase (in its window, or \`piper-link unlock\` at a terminal).`,
      );
    }
    const wait = failures.lastAt + pinBackoffMs(failures.failures) - now();
    if (wait > 0)
      throw new LinkError("rate_limited", `Too many wrong tries; try again in ${Math.ceil(wait / 1000)} s.`, {
        retryable: true,
      });
    if (await check()) {
      await clearFailures();
      lastPresence = now();
      return;
    }
    failures = { failures: failures.failures + 1, lastAt: now() };
    await saveFailures();
    const left = PIN_TRIES_ALLOWED - failures.failures;
    log.warn({ failures: failures.failures, what }, "vault: a wrong proof of presence");
    if (left <= 0) {
      vault.lock("too_many_wrong_pins");
      throw new LinkError(
        "locked",
        `Wrong ${what} ${PIN_TRIES_ALLOWED} times in a row: Piper Link locked itself. Unlock it with your passphrase.`,
      );
    }
    throw new LinkError(
      "presence_failed",
      `Wrong ${what} — ${left} ${left === 1 ? "try" : "tries"} left before Piper Link locks.`,
    );
  }

  const vault: Vault = {
    get state() {
      return state;
    },
    get lockedReason() {
      return state === "locked" ? lockedReason : null;
    },
    get unattended() {
      return state === "unlocked" && unattended;
    },
    get pinSet() {
      return pinVerifier !== null;
    },
    get pinFailures() {
      return failures.failures;
    },
    get idleLockMinutes() {
      return payload?.idleLockMinutes ?? DEFAULT_IDLE_LOCK_MINUTES;
    },
    get passkeys() {
      return payload?.passkeys ?? [];
    },
    get needsRotation() {
      return payload !== null && !payload.rotated;
    },
    async probe() {
      await loadFailures();
      if (state === "unlocked") return state;
      // The file keychain cannot be read without the passphrase: its file existing means a vault does.
      if (keychain.backend === "file") {
        const exists = await fs.stat(path.join(options.dataDir, "keychain.enc")).then(
          () => true,
          () => false,
        );
        state = exists ? "locked" : "new";
      } else {
        state = (await keychain.get("vault")) === null ? "new" : "locked";
      }
      return state;
    },
    async create(passphrase, opts = {}) {
      if (state !== "new")
        throw new LinkError("conflict", "Piper Link already has a passphrase; unlock with it instead.");
      // The passphrase of an existing keychain file is kept as it is: it already protects the keys.
      const weak = opts.upgradeOfFile === true ? null : passphraseWeakness(passphrase);
      if (weak !== null) throw new LinkError("bad_request", weak);
      if (opts.pin !== undefined) PinSchema.parse(opts.pin);
      options.shareWithFileKeychain?.(passphrase);
      // Items written before vaults existed are in plaintext: they are sealed now, and their
      // credentials rotated once the authority is up (the agent may hold copies).
      const plaintext: Partial<Record<KeychainItem, string>> = {};
      for (const item of SEALED_ITEMS) {
        const value = await keychain.get(item);
        if (value !== null && !isSealedValue(value)) plaintext[item] = value;
      }
      const upgraded = Object.keys(plaintext).length > 0;
      header = { format: "piper-link-vault", version: 1, kdf: newKdf(options.kdf ?? VAULT_KDF) };
      kek = await deriveKey(passphrase, header.kdf);
      applyPayload({
        vaultKey: randomBytes(32).toString("base64"),
        pin: opts.pin === undefined ? null : await pinVerifierFor(opts.pin),
        passkeys: [],
        idleLockMinutes: DEFAULT_IDLE_LOCK_MINUTES,
        createdAt: new Date(now()).toISOString(),
        upgradedAt: upgraded ? new Date(now()).toISOString() : null,
        rotated: !upgraded,
      });
      state = "unlocked";
      unattended = opts.unattended ?? false;
      await writeRecord();
      const sealed: KeychainItem[] = [];
      for (const [item, value] of Object.entries(plaintext) as [KeychainItem, string][]) {
        await keychain.set(item, vault.sealItem(item, value));
        sealed.push(item);
      }
      await clearFailures();
      lastPresence = now();
      log.info({ sealed, upgraded }, "vault created");
      return sealed;
    },
    async unlock(passphrase, opts = {}) {
      if (state === "unlocked") return;
      if (state === "new")
        throw new LinkError(
          "conflict",
          "Piper Link has no passphrase yet; choose one first (the window asks, or `piper-link unlock` at a terminal).",
        );
      options.shareWithFileKeychain?.(passphrase);
      let text: string | null;
      try {
        text = await keychain.get("vault");
      } catch (err) {
        options.shareWithFileKeychain?.(null);
        keychain.forgetKey?.();
        // The file keychain refuses a wrong passphrase before the vault sees it.
        if (err instanceof LinkError && err.code === "keychain_locked" && keychain.backend === "file")
          throw new LinkError("presence_failed", "That passphrase does not unlock Piper Link.");
        throw err;
      }
      if (text === null && keychain.backend === "file") {
        // A keychain file from before vaults: its passphrase (just proven by opening it) becomes the vault's.
        state = "new";
        await vault.create(passphrase, { ...opts, upgradeOfFile: true });
        return;
      }
      if (text === null)
        throw new LinkError(
          "keychain_unavailable",
          "The vault record is missing from the keychain; Piper Link cannot unlock.",
        );
      const record = RecordSchema.safeParse(safeJson(text));
      if (!record.success)
        throw new LinkError(
          "keychain_unavailable",
          "The vault record in the keychain is not one this Piper Link can read (changed, or written by a newer version).",
        );
      const { box, ...h } = record.data;
      // Wrong passphrases are slowed (never locked out: the person's own unlock must stay possible).
      const wait = Math.min(
        failures.lastAt + pinBackoffMs(Math.max(0, failures.failures - FREE_UNLOCK_TRIES)) - now(),
        UNLOCK_WAIT_CAP_MS,
      );
      if (wait > 0)
        throw new LinkError("rate_limited", `Too many wrong tries; try again in ${Math.ceil(wait / 1000)} s.`, {
          retryable: true,
        });
      const key = await deriveKey(passphrase, h.kdf);
      const plain = open(key, box, aadOf(h));
      if (plain === null) {
        key.fill(0);
        options.shareWithFileKeychain?.(null);
        keychain.forgetKey?.();
        failures = { failures: failures.failures + 1, lastAt: now() };
        await saveFailures();
        throw new LinkError("presence_failed", "That passphrase does not unlock Piper Link.");
      }
      const parsed = PayloadSchema.safeParse(safeJson(plain.toString("utf8")));
      plain.fill(0);
      if (!parsed.success)
        throw new LinkError(
          "keychain_unavailable",
          "The vault opened but its content is not one this Piper Link can read.",
        );
      header = h;
      kek = key;
      applyPayload(parsed.data);
      state = "unlocked";
      lockedReason = null;
      unattended = opts.unattended ?? false;
      // Only the person clears the wrong-PIN count: an unattended restart (from the passphrase file,
      // which any process of the user can trigger) keeps it, so restarting buys no new guesses.
      if (!unattended) await clearFailures();
      lastPresence = now();
      log.info({ unattended }, "vault unlocked");
    },
    lock(reason) {
      if (state !== "unlocked") return;
      kek?.fill(0);
      vaultKey?.fill(0);
      pinVerifier?.hash.fill(0);
      kek = vaultKey = null;
      pinVerifier = null;
      payload = null;
      header = null;
      state = "locked";
      lockedReason = reason;
      unattended = false;
      options.shareWithFileKeychain?.(null);
      keychain.forgetKey?.();
      log.info({ reason }, "vault locked");
      for (const listener of listeners) listener(reason);
    },
    onLock(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    sealItem(item, value) {
      const box = seal(opened().key, Buffer.from(value, "utf8"), itemAad(item));
      return `${SEALED_PREFIX}${box.nonce}.${box.ciphertext}.${box.tag}`;
    },
    openItem(item, stored) {
      const { key } = opened();
      if (!isSealedValue(stored)) return null;
      const [nonce = "", ciphertext = "", tag = ""] = stored.slice(SEALED_PREFIX.length).split(".");
      const box = BoxSchema.safeParse({ nonce, ciphertext, tag });
      if (!box.success) return null;
      return open(key, box.data, itemAad(item))?.toString("utf8") ?? null;
    },
    checkPin(pin) {
      return attempt("PIN", async () => {
        const verifier = requirePin();
        return sameBytes(await deriveKey(pin, verifier.kdf), verifier.hash);
      });
    },
    pinParams() {
      const verifier = requirePin();
      return { ...verifier.kdf };
    },
    checkPinMac(nonce, action, mac) {
      return attempt("PIN", () => {
        const verifier = requirePin();
        const expected = createHmac("sha256", verifier.hash).update(pinMacMessage(nonce, action)).digest();
        return Promise.resolve(sameBytes(Buffer.from(mac, "base64url"), expected));
      });
    },
    async checkPassphrase(passphrase) {
      opened();
      if (unattended)
        throw new LinkError(
          "presence_failed",
          "Piper Link was unlocked from a passphrase file, so the passphrase cannot prove you are here; use your PIN or a passkey.",
        );
      return vault.checkPassphraseUnattended(passphrase);
    },
    checkPassphraseUnattended(passphrase) {
      // Counted with wrong PINs: guessing the passphrase as a proof is slowed and locks the same way.
      return attempt("passphrase", async () => {
        if (header === null || kek === null) throw lockedError();
        return sameBytes(await deriveKey(passphrase, header.kdf), kek);
      });
    },
    async setPin(pin) {
      opened();
      if (!PinSchema.safeParse(pin).success)
        throw new LinkError("bad_request", `Choose a PIN of at least ${PIN_MIN_LENGTH} digits (digits only).`);
      await updatePayload({ pin: await pinVerifierFor(pin) });
      await clearFailures();
    },
    setIdleLockMinutes: (minutes) => updatePayload({ idleLockMinutes: minutes }),
    savePasskeys: (list) => updatePayload({ passkeys: list }),
    markRotated: () => updatePayload({ rotated: true }),
    touch() {
      lastPresence = now();
    },
    checkIdle() {
      if (state === "unlocked" && now() - lastPresence >= vault.idleLockMinutes * 60_000) vault.lock("idle");
    },
  };
  return vault;
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}
