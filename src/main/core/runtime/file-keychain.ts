/**
 * The encrypted-file keychain, for machines without an OS keychain (a bare server with no Secret
 * Service). Modelled on aws-vault's "file" backend: one file in the profile's data directory
 * (`keychain.enc`, mode 0600, replaced atomically), its items encrypted together with AES-256-GCM
 * under a key derived from a passphrase with scrypt (memory-hard; N=2^17, r=8, p=1, 128 MiB), a
 * random salt per file and a random nonce per write. The header (format, version, KDF and its
 * parameters, salt) is the cipher's additional data, so a changed parameter fails like a wrong
 * passphrase. A wrong passphrase is `keychain_locked`; nothing is ever written in plaintext.
 */
import { createCipheriv, createDecipheriv, randomBytes, scrypt } from "node:crypto";
import path from "node:path";
import { z } from "zod";
import { LinkError } from "../../../shared/errors.js";
import { readFileOrNull, writeFileAtomic } from "./files.js";
import type { KeychainItem, KeychainStore } from "./keychain.js";

/** The file's name inside the profile's data directory. */
export const FILE_KEYCHAIN_NAME = "keychain.enc";

/** scrypt's cost: 2^17 × 8 × 128 bytes = 128 MiB of memory per derivation (OWASP's scrypt floor is 2^17). */
export const FILE_KEYCHAIN_KDF = { N: 2 ** 17, r: 8, p: 1 } as const;

const HeaderSchema = z.object({
  format: z.literal("piper-link-file-keychain"),
  version: z.literal(1),
  kdf: z.object({
    name: z.literal("scrypt"),
    N: z
      .number()
      .int()
      .min(2 ** 14)
      .max(2 ** 22),
    r: z.number().int().min(1).max(32),
    p: z.number().int().min(1).max(16),
    salt: z.string().min(16),
  }),
});
type Header = z.infer<typeof HeaderSchema>;
const FileSchema = z.object({
  header: HeaderSchema,
  nonce: z.string().min(16),
  ciphertext: z.string(),
  tag: z.string().min(16),
});
const ItemsSchema = z.record(z.string(), z.string());

export interface FileKeychainOptions {
  /** The profile's data directory; the file is `<dataDir>/keychain.enc`. */
  dataDir: string;
  /** The service name shown in status (as for the OS keychain). */
  service: string;
  /**
   * Gives the passphrase, asked once on first use (prompt, environment or credential file; see
   * `passphraseFromEnvironment`). Throws a `LinkError` when none can be had.
   */
  passphrase: () => Promise<string>;
  /** KDF parameters; tests may lower N to keep runs short. Defaults to `FILE_KEYCHAIN_KDF`. */
  kdf?: { N: number; r: number; p: number };
}

function deriveKey(passphrase: string, header: Header): Promise<Buffer> {
  const { N, r, p, salt } = header.kdf;
  return new Promise((resolve, reject) => {
    // maxmem must exceed 128·N·r (scrypt's own memory need), which Node's 32 MiB default does not.
    scrypt(
      passphrase.normalize("NFC"),
      Buffer.from(salt, "base64"),
      32,
      { N, r, p, maxmem: 256 * N * r },
      (err, key) => (err ? reject(err) : resolve(key)),
    );
  });
}

function lockedError(file: string): LinkError {
  return new LinkError(
    "keychain_locked",
    `The keychain file ${file} could not be opened with this passphrase (wrong passphrase, or the file was changed). Unlock with the passphrase it was created with (at the terminal, or in the file PIPER_LINK_PASSPHRASE_FILE names), and try again.`,
  );
}

/**
 * Opens (or, on the first `set`, creates) the encrypted keychain file of a profile. `get` returns
 * `null` for an absent item or an absent file; every failure is a `LinkError`: `keychain_locked`
 * for a wrong passphrase or a tampered file, `keychain_unavailable` for an unreadable one.
 */
export function createFileKeychainStore(options: FileKeychainOptions): KeychainStore {
  const file = path.join(options.dataDir, FILE_KEYCHAIN_NAME);
  const kdf = options.kdf ?? FILE_KEYCHAIN_KDF;
  /** The key for the file's current salt, derived once per process (derivation costs ~0.5 s). */
  let cached: { salt: string; key: Buffer } | null = null;
  let writing: Promise<unknown> = Promise.resolve();

  async function keyFor(header: Header): Promise<Buffer> {
    if (cached !== null && cached.salt === header.kdf.salt) return cached.key;
    const key = await deriveKey(await options.passphrase(), header);
    cached = { salt: header.kdf.salt, key };
    return key;
  }

  /** The items and header, or null when there is no file yet. Re-read on every call: another process (the CLI while the Link is stopped) may have written it. */
  async function load(): Promise<{ header: Header; items: Record<string, string> } | null> {
    let text: string | null;
    try {
      text = await readFileOrNull(file);
    } catch (err) {
      throw new LinkError(
        "keychain_unavailable",
        `The keychain file ${file} cannot be read: ${err instanceof Error ? err.message : String(err)}`,
        { cause: err },
      );
    }
    if (text === null) return null;
    let parsed: z.infer<typeof FileSchema>;
    try {
      parsed = FileSchema.parse(JSON.parse(text));
    } catch (err) {
      throw new LinkError(
        "keychain_unavailable",
        `The keychain file ${file} is not a Piper Link keychain file (or a newer version of one).`,
        { cause: err },
      );
    }
    const key = await keyFor(parsed.header);
    try {
      const decipher = createDecipheriv("aes-256-gcm", key, Buffer.from(parsed.nonce, "base64"));
      decipher.setAAD(Buffer.from(JSON.stringify(parsed.header)));
      decipher.setAuthTag(Buffer.from(parsed.tag, "base64"));
      const plain = Buffer.concat([decipher.update(Buffer.from(parsed.ciphertext, "base64")), decipher.final()]);
      return { header: parsed.header, items: ItemsSchema.parse(JSON.parse(plain.toString("utf8"))) };
    } catch (err) {
      // GCM's tag check failed: wrong key. Forget it so a corrected passphrase source is asked again.
      cached = null;
      throw Object.assign(lockedError(file), { cause: err });
    }
  }

  async function save(header: Header, items: Record<string, string>): Promise<void> {
    const key = await keyFor(header);
    const nonce = randomBytes(12);
    const cipher = createCipheriv("aes-256-gcm", key, nonce);
    cipher.setAAD(Buffer.from(JSON.stringify(header)));
    const ciphertext = Buffer.concat([cipher.update(JSON.stringify(items), "utf8"), cipher.final()]);
    const body = {
      header,
      nonce: nonce.toString("base64"),
      ciphertext: ciphertext.toString("base64"),
      tag: cipher.getAuthTag().toString("base64"),
    };
    await writeFileAtomic(file, `${JSON.stringify(body)}\n`);
  }

  /** Read-modify-write, serialized within this process so the last change wins whole. */
  function change(mutate: (items: Record<string, string>) => Record<string, string>): Promise<void> {
    const run = writing.then(async () => {
      const current = await load();
      const header: Header = current?.header ?? {
        format: "piper-link-file-keychain",
        version: 1,
        kdf: { name: "scrypt", ...kdf, salt: randomBytes(16).toString("base64") },
      };
      await save(header, mutate(current?.items ?? {}));
    });
    writing = run.catch(() => undefined);
    return run;
  }

  return {
    service: options.service,
    backend: "file",
    async get(item: KeychainItem) {
      await writing;
      return (await load())?.items[item] ?? null;
    },
    set: (item, value) => change((items) => ({ ...items, [item]: value })),
    forgetKey() {
      cached?.key.fill(0);
      cached = null;
    },
    async delete(item) {
      await writing;
      const current = await load();
      if (current === null || !(item in current.items)) return false;
      await change((items) => Object.fromEntries(Object.entries(items).filter(([name]) => name !== item)));
      return true;
    },
  };
}
