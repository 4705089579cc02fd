/**
 * The keychain as the rest of the core sees it once the vault exists: the same `KeychainStore`,
 * with every value sealed under the vault key on the way in and opened on the way out. While the
 * vault is locked every read fails with `locked`. A value that this vault did not seal (written in
 * plaintext by another process of the user, or copied from another profile) is never used: it reads
 * as absent and the log says so, so a planted refresh token or data key cannot steer the Link.
 */
import type { Logger } from "pino";
import type { KeychainItem, KeychainStore } from "../runtime/keychain.js";
import { lockedError, type Vault } from "./vault.js";

export function createSealedKeychain(raw: KeychainStore, vault: Vault, log: Logger): KeychainStore {
  return {
    service: raw.service,
    ...(raw.backend !== undefined ? { backend: raw.backend } : {}),
    async get(item: KeychainItem) {
      // Checked first: the file keychain would otherwise wait for a passphrase nobody has given.
      if (vault.state !== "unlocked") throw lockedError();
      const stored = await raw.get(item);
      if (stored === null) return null;
      const value = vault.openItem(item, stored);
      if (value === null)
        log.warn(
          { item },
          "keychain: a value not sealed by this vault was found and ignored (written by another program, or another profile's)",
        );
      return value;
    },
    async set(item, value) {
      await raw.set(item, vault.sealItem(item, value));
    },
    async delete(item) {
      if (vault.state !== "unlocked") throw lockedError();
      return raw.delete(item);
    },
    ...(raw.close !== undefined ? { close: () => raw.close?.() } : {}),
  };
}
