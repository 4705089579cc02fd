/**
 * Secret values at rest: AES-256-GCM with a random 96-bit nonce per write, the owner and name as
 * associated data (a ciphertext moved to another row fails to decrypt), and a key id so keys can
 * rotate: new writes use the current key, reads use the key the row names.
 */
import {
  createCipheriv,
  createDecipheriv,
  createHash,
  createHmac,
  hkdfSync,
  randomBytes,
  timingSafeEqual,
} from "node:crypto";

export interface DataKeys {
  currentId: string;
  keys: ReadonlyMap<string, Buffer>;
}

/** Parses `id:base64,id2:base64` (the first is current) into keys of 32 bytes each. */
export function parseDataKeys(spec: string): DataKeys {
  const keys = new Map<string, Buffer>();
  let currentId: string | null = null;
  for (const part of spec
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean)) {
    const at = part.indexOf(":");
    const id = at > 0 ? part.slice(0, at) : "k1";
    const key = Buffer.from(at > 0 ? part.slice(at + 1) : part, "base64");
    if (key.length !== 32) throw new Error(`Data key ${id} must be 32 bytes (base64); got ${key.length}.`);
    keys.set(id, key);
    currentId ??= id;
  }
  if (currentId === null) throw new Error("No data key given.");
  return { currentId, keys };
}

export function newDataKey(): string {
  return randomBytes(32).toString("base64");
}

export function encryptSecret(keys: DataKeys, aad: string, plaintext: string): { ciphertext: string; keyId: string } {
  const key = keys.keys.get(keys.currentId);
  if (key === undefined) throw new Error("current data key missing");
  const iv = randomBytes(12);
  const cipher = createCipheriv("aes-256-gcm", key, iv);
  cipher.setAAD(Buffer.from(aad, "utf8"));
  const body = Buffer.concat([cipher.update(plaintext, "utf8"), cipher.final()]);
  return { ciphertext: Buffer.concat([iv, cipher.getAuthTag(), body]).toString("base64"), keyId: keys.currentId };
}

export function decryptSecret(keys: DataKeys, keyId: string, aad: string, ciphertext: string): string {
  const key = keys.keys.get(keyId);
  if (key === undefined) throw new Error(`Data key ${keyId} is not configured; it is needed to read this secret.`);
  const raw = Buffer.from(ciphertext, "base64");
  const decipher = createDecipheriv("aes-256-gcm", key, raw.subarray(0, 12));
  decipher.setAAD(Buffer.from(aad, "utf8"));
  decipher.setAuthTag(raw.subarray(12, 28));
  return Buffer.concat([decipher.update(raw.subarray(28)), decipher.final()]).toString("utf8");
}

/**
 * What a data key is also used for, each through its own key derived with HKDF-SHA256 (RFC 5869;
 * empty salt, 32 bytes) and one of these info strings, so a MAC, a token hash and a ciphertext
 * never share a key. Changing an info string invalidates every row MAC or token hash made under it.
 */
export const DERIVED_KEY_INFO = {
  /** MACs over the rows that grant anything (grants, secrets' names and hosts, token rows). */
  rowMac: "piper-authority row-mac v1",
  /** Keyed hashes of tokens (Link tokens, OAuth tokens and codes, web sessions, device and scoped codes). */
  tokenHash: "piper-authority token-hash v1",
} as const;

const derivedCache = new WeakMap<Buffer, Map<string, Buffer>>();

/** The key derived from data key `keyId` for `purpose`. Throws when that data key is not configured. */
export function derivedKey(keys: DataKeys, keyId: string, purpose: keyof typeof DERIVED_KEY_INFO): Buffer {
  const key = keys.keys.get(keyId);
  if (key === undefined) throw new Error(`Data key ${keyId} is not configured.`);
  let cache = derivedCache.get(key);
  if (cache === undefined) {
    cache = new Map();
    derivedCache.set(key, cache);
  }
  let derived = cache.get(purpose);
  if (derived === undefined) {
    derived = Buffer.from(hkdfSync("sha256", key, Buffer.alloc(0), DERIVED_KEY_INFO[purpose], 32));
    cache.set(purpose, derived);
  }
  return derived;
}

/** A JSON value for a row MAC's input. */
type MacField = string | number | null;

/**
 * The MAC of one row: `<keyId>.<base64url HMAC-SHA256>` under the row-MAC key of the current data
 * key, over the table's name and the row's fields in a fixed order (JSON, so no two field lists
 * share an encoding).
 */
export function rowMac(keys: DataKeys, table: string, fields: readonly MacField[]): string {
  return macWith(keys, keys.currentId, table, fields);
}

function macWith(keys: DataKeys, keyId: string, table: string, fields: readonly MacField[]): string {
  const mac = createHmac("sha256", derivedKey(keys, keyId, "rowMac"))
    .update(JSON.stringify([table, ...fields]), "utf8")
    .digest("base64url");
  return `${keyId}.${mac}`;
}

/** True when `stored` is a valid MAC of these fields under a configured key (the one it names). */
export function rowMacValid(
  keys: DataKeys,
  table: string,
  fields: readonly MacField[],
  stored: string | null,
): boolean {
  if (stored === null) return false;
  const keyId = stored.slice(0, stored.indexOf("."));
  if (keyId.length === 0 || !keys.keys.has(keyId)) return false;
  const expected = Buffer.from(macWith(keys, keyId, table, fields));
  const given = Buffer.from(stored);
  return expected.length === given.length && timingSafeEqual(expected, given);
}

/** The data key a stored MAC or token hash was made with (`<keyId>.…`), or null for an unkeyed one. */
export function keyIdOf(stored: string): string | null {
  const at = stored.indexOf(".");
  return at > 0 ? stored.slice(0, at) : null;
}

/** SHA-256 of a token, hex: what the authority stored before token hashes were keyed. */
export function unkeyedTokenHash(token: string): string {
  return createHash("sha256").update(token).digest("hex");
}

/**
 * Upgrades an unkeyed token hash (SHA-256 hex) to the keyed form under data key `keyId`:
 * `<keyId>.<hex HMAC-SHA256(token-hash key, sha256hex(token))>`. Keying the SHA-256 rather than the
 * token lets a database from before keyed hashes be upgraded without knowing its tokens.
 */
export function keyTokenHash(keys: DataKeys, keyId: string, sha256hex: string): string {
  return `${keyId}.${createHmac("sha256", derivedKey(keys, keyId, "tokenHash"))
    .update(sha256hex, "utf8")
    .digest("hex")}`;
}

/**
 * Keyed token hashes: without the data key nobody can write a token row the authority honours.
 * `of(token)`: the hash to store (current key); `lookup(token)`: the hashes to look a token up by
 * (one per configured key, current first).
 */
export interface TokenHasher {
  of(token: string): string;
  lookup(token: string): string[];
}

export function tokenHasher(keys: DataKeys): TokenHasher {
  return {
    of: (token) => keyTokenHash(keys, keys.currentId, unkeyedTokenHash(token)),
    lookup: (token) => {
      const plain = unkeyedTokenHash(token);
      return [keys.currentId, ...[...keys.keys.keys()].filter((id) => id !== keys.currentId)].map((id) =>
        keyTokenHash(keys, id, plain),
      );
    },
  };
}
