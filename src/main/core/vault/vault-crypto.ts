/**
 * The vault's cryptography, kept small and standard: scrypt (Node's own `crypto.scrypt`,
 * memory-hard, RFC 7914) turns the passphrase into a key-encryption key; AES-256-GCM (NIST SP
 * 800-38D) wraps the vault's payload under it and seals each keychain item under the vault key.
 * Every ciphertext carries its context as additional data, so a blob moved to another item, a
 * changed KDF parameter or a tampered header fails like a wrong key.
 */
import { createCipheriv, createDecipheriv, randomBytes, scrypt, timingSafeEqual } from "node:crypto";
import { z } from "zod";

/**
 * The passphrase KDF: scrypt N=2^17, r=8, p=1 — 128 MiB and about 0.3–0.4 s per derivation on the
 * machines this runs on (the unlock bench prints it), OWASP's floor for scrypt. The same
 * parameters as the encrypted-file keychain, whose file this passphrase also opens.
 */
export const VAULT_KDF = { N: 2 ** 17, r: 8, p: 1 } as const;
/**
 * The PIN verifier's KDF: scrypt N=2^14 (16 MiB, ~20 ms). The verifier is never at rest outside the
 * passphrase-wrapped payload, so its cost only slows guesses against a stolen unlocked memory image;
 * the Link's own throttle (a few tries, then a full lock) is what stops online guessing.
 */
export const PIN_KDF = { N: 2 ** 14, r: 8, p: 1 } as const;
/** The lowest N accepted from a stored header or a test option (scrypt's interactive floor in RFC 7914 section 2). */
export const MIN_SCRYPT_N = 2 ** 14;

export const KdfSchema = z.object({
  name: z.literal("scrypt"),
  N: z
    .number()
    .int()
    .min(MIN_SCRYPT_N)
    .max(2 ** 22),
  r: z.number().int().min(1).max(32),
  p: z.number().int().min(1).max(16),
  salt: z.string().min(16),
});
export type Kdf = z.infer<typeof KdfSchema>;

export const BoxSchema = z.object({ nonce: z.string().min(16), ciphertext: z.string(), tag: z.string().min(16) });
export type Box = z.infer<typeof BoxSchema>;

/** Derives 32 bytes from `secret` with scrypt under `kdf` (its salt base64). Rejects only on a bad parameter. */
export function deriveKey(secret: string, kdf: Kdf): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    // maxmem must exceed 128·N·r (scrypt's own need); Node's default of 32 MiB does not.
    scrypt(
      secret.normalize("NFC"),
      Buffer.from(kdf.salt, "base64"),
      32,
      { N: kdf.N, r: kdf.r, p: kdf.p, maxmem: 256 * kdf.N * kdf.r },
      (err, key) => (err ? reject(err) : resolve(key)),
    );
  });
}

/** A new KDF header with a fresh 16-byte salt. */
export function newKdf(params: { N: number; r: number; p: number }): Kdf {
  return { name: "scrypt", N: params.N, r: params.r, p: params.p, salt: randomBytes(16).toString("base64") };
}

/** AES-256-GCM with a random 96-bit nonce; `aad` binds the box to its context. */
export function seal(key: Buffer, plaintext: Buffer, aad: string): Box {
  const nonce = randomBytes(12);
  const cipher = createCipheriv("aes-256-gcm", key, nonce);
  cipher.setAAD(Buffer.from(aad, "utf8"));
  const ciphertext = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  return {
    nonce: nonce.toString("base64"),
    ciphertext: ciphertext.toString("base64"),
    tag: cipher.getAuthTag().toString("base64"),
  };
}

/** Opens a box sealed by `seal` under `key` with the same `aad`; null when the key or context is wrong or the box was changed. */
export function open(key: Buffer, box: Box, aad: string): Buffer | null {
  try {
    const decipher = createDecipheriv("aes-256-gcm", key, Buffer.from(box.nonce, "base64"));
    decipher.setAAD(Buffer.from(aad, "utf8"));
    decipher.setAuthTag(Buffer.from(box.tag, "base64"));
    return Buffer.concat([decipher.update(Buffer.from(box.ciphertext, "base64")), decipher.final()]);
  } catch {
    return null;
  }
}

/** Constant-time equality of two byte strings of any length. */
export function sameBytes(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}
