/**
 * Secret values at rest: AES-256-GCM with a random 96-bit nonce per write, the owner and name as
 * associated data (a ciphertext moved to another row fails to decrypt), and a key id so keys can
 * rotate: new writes use the current key, reads use the key the row names.
 */
import { createCipheriv, createDecipheriv, randomBytes } from "node:crypto";

export interface DataKeys {
  currentId: string;
  keys: ReadonlyMap<string, Buffer>;
}

/** Parses `id:base64,id2:base64` (the first is current) into keys of 32 bytes each. */
export function parseDataKeys(spec: string): DataKeys {
  const keys = new Map<string, Buffer>();
  let currentId: string | null = null;
  for (const part of spec.split(",").map((s) => s.trim()).filter(Boolean)) {
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
